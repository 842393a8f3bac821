//! Rejected mistakes: every file in `tests/bad-cases/` holds one mistake in an otherwise valid
//! case, and its first line says where and how `check` must report it:
//!
//! ```toml
//! # expect: LINE:COLUMN: message fragment
//! ```
//!
//! (the comment itself is line 1). `check` must exit 2 and print `<path>:LINE:COLUMN: ` followed
//! by the fragment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;

/// Fewer files than this means cases were lost, not that the format got stricter.
const AT_LEAST: usize = 20;

fn bad_cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-cases")
}

fn check(path: &Path) -> Output {
    Command::new(cargo_bin("mpm-harness"))
        .arg("check")
        .arg(path)
        .output()
        .expect("run mpm-harness check")
}

/// The `# expect:` line of a bad case: `(LINE:COLUMN, fragment)`.
fn expectation(text: &str) -> Option<(String, String)> {
    let rest = text.lines().next()?.strip_prefix("# expect:")?.trim();
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts.next()?.trim().parse().ok()?;
    let column: usize = parts.next()?.trim().parse().ok()?;
    let fragment = parts.next()?.trim();
    if fragment.is_empty() {
        return None;
    }
    Some((format!("{line}:{column}"), fragment.to_string()))
}

/// One bad case: `None` if `check` reports it as its `# expect:` line says, else why not.
fn mismatch(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).expect("read bad case");
    let Some((position, fragment)) = expectation(&text) else {
        return Some("first line is not `# expect: LINE:COLUMN: message fragment`".into());
    };
    let out = check(path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", out.status.code()));
    }
    let prefix = format!("{}:{position}: ", path.display());
    match stderr.find(&prefix) {
        None => problems.push(format!("no `{prefix}` in stderr")),
        Some(at) if !stderr[at + prefix.len()..].contains(&fragment) => {
            problems.push(format!("no `{fragment}` after `{prefix}`"))
        }
        Some(_) => {}
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!(
            "{}\n    actual stderr: {}",
            problems.join("; "),
            stderr.trim()
        ))
    }
}

#[test]
fn every_bad_case_is_rejected_at_its_place() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(bad_cases_dir())
        .expect("tests/bad-cases exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= AT_LEAST,
        "only {} bad cases in {}, expected at least {AT_LEAST}",
        files.len(),
        bad_cases_dir().display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            mismatch(f).map(|why| format!("{name}: {why}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad cases not reported as expected:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The names a pipeline gives its requests (`p`, `p#2`) can be awaited and expected. As a TOML
/// key `p#2` must be quoted: bare, `#` starts a comment.
#[test]
fn a_pipelines_request_names_are_known() {
    let case = r#"
id = "good/pipeline-names"
title = "a pipeline's second request is p#2"

[[step]]
open = "a"
[[step]]
pipeline = "a"
paths = ["/", "/"]
as = "p"
[[step]]
await = ["p", "p#2"]

[expect.all]
requests = { "p#2" = 200 }
"#;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("good")).expect("theme folder");
    let path = dir.path().join("good/pipeline-names.toml");
    std::fs::write(&path, case).expect("write case");
    let out = check(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `# expect:` parser itself, so that a malformed line is a failure, not a skipped file.
#[test]
fn expectation_lines_parse() {
    assert_eq!(
        expectation("# expect: 12:9: `await` names `p#3`\nid = \"x\""),
        Some(("12:9".into(), "`await` names `p#3`".into()))
    );
    assert_eq!(expectation("# expect: 3: no column"), None);
    assert_eq!(expectation("# expect: 3:4:"), None);
    assert_eq!(expectation("id = \"x\""), None);
}
