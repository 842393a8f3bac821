//! The harness's modules depend on each other one way: each uses only modules before it in
//! `LAYERS` (lib.rs explains the order). In particular the runner never sees the verdict, and
//! the verdict never sees the runner: it judges a recording.

use std::path::{Path, PathBuf};

/// From the bottom up.
const LAYERS: [&str; 14] = [
    "model",
    "condition",
    "spec",
    "observe",
    "client",
    "driver",
    "loadgen",
    "guard",
    "target",
    "runner",
    "verdict",
    "report",
    "coverage",
    "explore",
];

fn sources(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files
}

/// The harness modules a file names (`crate::x`).
fn uses(text: &str) -> Vec<&'static str> {
    LAYERS
        .iter()
        .copied()
        .filter(|m| {
            text.match_indices(&format!("crate::{m}")).any(|(i, _)| {
                let after = text[i + "crate::".len() + m.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .collect()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let mut problems = Vec::new();
    for (level, module) in LAYERS.iter().enumerate() {
        let files = sources(module);
        assert!(!files.is_empty(), "no source for module {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in uses(&text) {
                let used_level = LAYERS.iter().position(|m| *m == used).unwrap();
                if used_level > level {
                    problems.push(format!(
                        "{} ({module}) uses crate::{used}, a layer above it",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_a_reach_upwards() {
    assert_eq!(uses("use crate::verdict::Check;"), vec!["verdict"]);
    assert_eq!(uses("crate::observe_more"), Vec::<&str>::new());
}
