//! Replay: a run's recording, stored by `run --json`, is judged again to the same verdict — on
//! golden recordings kept here (a crash under each MPM, a load, a wait that never held; made by
//! `mpm-harness --specs harness/tests/recordings/specs run --json
//! harness/tests/recordings/reference.json`), and on a fresh run through the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use mpm_harness::judge::RunResult;

fn recordings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recordings")
}

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpm-harness"))
}

#[test]
fn golden_recordings_are_judged_again_to_the_verdict_they_got() {
    let text = std::fs::read_to_string(recordings().join("reference.json")).unwrap();
    let stored = mpm_harness::read_runs(&text).expect("the golden recordings read back");
    let cases = mpm_harness::spec::load_dir(&recordings().join("specs")).expect("their cases");
    let kinds: Vec<(&str, RunResult)> = stored
        .iter()
        .map(|r| (r.case.as_str(), r.verdict.result))
        .collect();
    // What they hold: a crash under each MPM, a load under each, a failed wait.
    for (case, result, runs) in [
        ("golden/crash", RunResult::Passed, 3),
        ("golden/load", RunResult::Passed, 3),
        ("golden/wait-fails", RunResult::Failed, 1),
    ] {
        assert_eq!(
            kinds.iter().filter(|k| **k == (case, result)).count(),
            runs,
            "{kinds:?}"
        );
    }
    for run in &stored {
        let case = cases.iter().find(|c| c.id == run.case).unwrap();
        let again = mpm_harness::rejudge(case, run);
        assert_eq!(
            again.verdict.checks, run.verdict.checks,
            "{} under {} judged again",
            run.case, run.mpm
        );
        assert_eq!(again.verdict.result, run.verdict.result);
    }
}

/// A stored run judged again under a changed expectation: the verdict follows the case as it
/// is now, from the same recording.
#[test]
fn a_changed_expectation_changes_the_verdict_of_a_stored_run() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(specs.join("golden")).unwrap();
    for name in ["crash", "load", "wait-fails"] {
        let from = recordings().join(format!("specs/golden/{name}.toml"));
        let text = std::fs::read_to_string(from).unwrap();
        // Prefork's other requests said to fail: the recording disagrees.
        let text = text.replace("other_requests = 200", "other_requests = \"failed\"");
        std::fs::write(specs.join(format!("golden/{name}.toml")), text).unwrap();
    }
    let out = harness()
        .arg("--specs")
        .arg(&specs)
        .arg("judge")
        .arg(recordings().join("reference.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL golden/crash::prefork::reference (was PASS)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS golden/crash::worker::reference"),
        "{stdout}"
    );
}

/// `run --json` then `judge`: the same result for every run, and the same exit code.
#[test]
fn judge_gives_the_verdict_run_gave() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let specs = recordings().join("specs");
    let out = harness()
        .arg("--specs")
        .arg(&specs)
        .args(["run", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let ran = String::from_utf8_lossy(&out.stdout).into_owned();
    let judged = harness()
        .arg("--specs")
        .arg(&specs)
        .arg("judge")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(judged.status.code(), Some(1), "{judged:?}");
    let judged = String::from_utf8_lossy(&judged.stdout).into_owned();
    let results = |text: &str| -> Vec<String> {
        let mut r: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with('['))
            .filter_map(|l| l.split("] ").nth(1))
            .map(|l| l.split(" (").next().unwrap_or(l).to_string())
            .collect();
        r.sort();
        r
    };
    assert_eq!(results(&ran), results(&judged), "{ran}\n{judged}");
    assert!(
        judged.contains("6 passed, 1 failed, 0 errors (judged again)"),
        "{judged}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[{\"case\": 1}]").unwrap();
    let out = harness().arg("judge").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1 column 11"),
        "{out:?}"
    );
}
