//! mpm-harness: a conformance and fault-injection harness for Apache-style MPMs.
//!
//! Data flows one way, each arrow a plain type:
//!
//! ```text
//! spec file ──load──▶ Case ──runner──▶ target server ◀── drivers (client)
//!                                          │ observers
//!                                          ▼
//!                          Recording ──judge──▶ Verdict ──▶ report
//! ```
//!
//! - [`condition`]: what `wait`, `check`, `seen`, `never` test, shared by runner and verdict;
//! - [`spec`]: the case format and loader (a typed [`spec::Case`]; errors with file:line:column);
//! - [`observe`]: observations, the shared [`observe::Store`], samplers, the [`observe::Recording`];
//! - [`client`], [`driver`]: the harness's own HTTP/1.1 client and its named connections;
//! - [`loadgen`]: the load driver (many connections on one thread, HDR latency);
//! - [`guard`], [`target`]: the servers behind one trait, with their capabilities;
//! - [`runner`]: plays a case against a target into a recording (judges nothing);
//! - [`verdict`]: a pure function of (case, MPM, capabilities, recording);
//! - [`report`]: matrix, timeline, JUnit, JSON;
//! - [`coverage`]: which cases check each statement and set each directive;
//! - [`model`]: an executable model of each MPM (pure), and [`explore`]: random scenarios run
//!   against a server and judged against it, a disagreement shrunk to a case file.
//!
//! No module uses one that comes after it in this list (`tests/architecture.rs` checks it): the
//! runner drives the targets, drivers and observers it starts but never sees the verdict; the
//! verdict judges a recording and never sees the runner or a server.

pub mod cli;
pub mod drive;
pub mod explore;
pub mod judge;
pub mod observe;
pub mod report;
pub mod runner;
pub mod spec;
pub mod target;

use std::path::PathBuf;
use std::time::Instant;

use refhttpd::Mpm;

use crate::judge::Run;
use crate::spec::{Case, Target};

/// The catalogue shipped with the project: `specs/` at the workspace root.
pub fn default_specs_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MPM_HARNESS_SPECS") {
        return PathBuf::from(dir);
    }
    let from_manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs");
    if from_manifest.is_dir() {
        return from_manifest;
    }
    PathBuf::from("specs")
}

/// Runs one case under one MPM against one target and judges it. A panic in the harness is an
/// error result, not a crash of the whole run.
/// Judges a stored run again (`run --json` keeps each run's recording): the verdict its
/// recording gets from `case` now, with the target's capabilities.
pub fn rejudge(case: &Case, stored: &Run) -> Run {
    Run {
        verdict: judge::judge(
            case,
            stored.mpm,
            &stored.target.capabilities(),
            &stored.recording,
        ),
        ..stored.clone()
    }
}

/// Reads the runs `run --json` wrote.
pub fn read_runs(text: &str) -> Result<Vec<Run>, serde_json::Error> {
    serde_json::from_str(text)
}

pub fn execute(case: &Case, mpm: Mpm, target: Target) -> Run {
    let started = Instant::now();
    let recording = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runner::run(case, mpm, target)
    }))
    .unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        observe::Recording {
            error: Some(format!("the harness panicked: {why}")),
            ..Default::default()
        }
    });
    let verdict = judge::judge(case, mpm, &target.capabilities(), &recording);
    Run {
        case: case.id.clone(),
        mpm,
        target,
        verdict,
        recording,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}
