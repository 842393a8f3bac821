//! The harness's modules depend on each other one way: each uses only modules before it in
//! `LAYERS` (lib.rs explains the order). In particular the runner never sees the verdict, and
//! the verdict never sees the runner: it judges a recording.

use std::path::{Path, PathBuf};

/// From the bottom up.
const LAYERS: [&str; 9] = [
    "spec", "observe", "drive", "target", "runner", "judge", "report", "explore", "cli",
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

/// harness/src is the layers, each a folder, and nothing else beside lib.rs and main.rs: a new
/// top-level module has to take its place in `LAYERS` (and so in the order) to exist.
#[test]
fn the_source_tree_is_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lib.rs" && name != "main.rs")
        .collect();
    found.sort();
    let mut layers: Vec<String> = LAYERS.iter().map(|l| l.to_string()).collect();
    layers.sort();
    assert_eq!(found, layers, "harness/src holds other than the layers");
    for layer in LAYERS {
        assert!(
            src.join(layer).join("mod.rs").is_file(),
            "{layer} is not a folder"
        );
    }
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for layer in LAYERS {
        assert!(
            lib.contains(&format!("mod {layer};")),
            "lib.rs does not declare {layer}"
        );
    }
}

#[test]
fn the_check_sees_a_reach_upwards() {
    assert_eq!(uses("use crate::judge::Check;"), vec!["judge"]);
    assert_eq!(uses("crate::observe_more"), Vec::<&str>::new());
}

/// What the harness may take from refhttpd: only the contracts the two sides share on purpose —
/// the MPM names and the directive rules a case's settings must pass, the ready line, the
/// `X-Served-By` header, the event-log lines, the scoreboard's layout — and the entry point that
/// runs the embedded reference server. Everything the harness concludes, it counts itself.
const SHARED_WITH_REFHTTPD: &[&str] = &[
    // MPM names; the directive rules (`Config::load`) a case's settings are checked against.
    "Mpm",
    "Config",
    // The ready line and X-Served-By.
    "Ready",
    "ServedBy",
    "SERVED_BY_HEADER",
    // The event log's lines.
    "Event",
    "EventKind",
    "EventLine",
    // The words of those lines: a timeout's kind, a control signal and what it does.
    "TimeoutKind",
    "ControlSignal",
    "SignalAction",
    // The scoreboard's layout (raw slots, read-only).
    "ScoreboardView",
    "Snapshot",
    "ProcessStatus",
    // The embedded reference server.
    "Args",
    "run",
];

/// The refhttpd items a source names: `refhttpd::X` and `use refhttpd::{X, Y}`.
fn refhttpd_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    for (i, _) in text.match_indices("refhttpd::") {
        let rest = &text[i + "refhttpd::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(list.len())];
            items.extend(list.split(',').map(|s| s.trim().to_string()));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            items.push(name);
        }
    }
    items.retain(|s| !s.is_empty());
    items
}

#[test]
fn the_harness_takes_from_refhttpd_only_the_shared_contracts() {
    let mut problems = Vec::new();
    for module in LAYERS {
        for file in sources(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for item in refhttpd_items(&text) {
                if !SHARED_WITH_REFHTTPD.contains(&item.as_str()) {
                    problems.push(format!("{} names refhttpd::{item}", file.display()));
                }
            }
            // The server's own counts (what renders its /server-status) are not the oracle's.
            for counting in [".busy_workers()", ".idle_workers()", ".conns_async_"] {
                if text.contains(counting) {
                    problems.push(format!(
                        "{} counts with refhttpd's {counting}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        refhttpd_items("use refhttpd::{EventKind, Mpm}; refhttpd::run(x)"),
        vec!["EventKind", "Mpm", "run"]
    );
}
