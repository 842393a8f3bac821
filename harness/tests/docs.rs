//! The repository documents itself: the statements page is what `mpm-harness statements` prints
//! from `specs/statements.toml`, and no file points at documents outside the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

#[test]
fn the_statements_page_is_the_commands_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_mpm-harness"))
        .arg("statements")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(root().join("docs/statements.md")).unwrap_or_default();
    assert!(
        printed == committed,
        "docs/statements.md is not what `mpm-harness statements` prints from \
         specs/statements.toml; write it again with\n    {}",
        mpm_harness::report::coverage::STATEMENTS_COMMAND
    );
}

/// The files git tracks (every file but `target/` and `.git/` where git is not at hand).
fn files() -> Vec<PathBuf> {
    let root = root();
    if let Ok(out) = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
    {
        if out.status.success() && !out.stdout.is_empty() {
            return out
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
                .collect();
        }
    }
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" {
                    dirs.push(p);
                }
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn no_file_points_outside_the_repository() {
    // Written in two pieces so that this file does not name them itself.
    let outside = [concat!("..", "/shared"), concat!("shared", "/SPEC.md")];
    let mut found = Vec::new();
    let files = files();
    assert!(files.len() > 50, "{} files", files.len());
    for file in files {
        // Text files only: binary ones (pictures) are not read.
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if outside.iter().any(|o| line.contains(o)) {
                found.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the statements are specs/statements.toml (docs/statements.md), in the repository:\n{}",
        found.join("\n")
    );
}

/// Editors check case files against `specs/case.schema.json` (each file's `#:schema` line points
/// there): it is what `mpm-harness schema` prints, and every case file starts with the line.
#[test]
fn every_case_points_at_the_schema_the_harness_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_mpm-harness"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let committed =
        std::fs::read_to_string(root().join("specs/case.schema.json")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "specs/case.schema.json is not what `mpm-harness schema` prints; write it again with\n    \
         cargo run --release -p mpm-harness -- schema > specs/case.schema.json"
    );
    let line = mpm_harness::spec::schema_line();
    let without: Vec<PathBuf> = mpm_harness::spec::find_files(&root().join("specs"))
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().next() != Some(line.as_str()))
                .unwrap_or(true)
        })
        .collect();
    assert!(
        without.is_empty(),
        "case files whose first line is not `{line}`: {without:#?}"
    );
}
