//! mpm-harness: a conformance and fault-injection harness for Apache-style MPMs.
//!
//! Data flows one way, each arrow a plain type:
//!
//! ```text
//! spec file ──spec──▶ Case ──runner──▶ target server ◀── drive (client, connections, load)
//!                                          │ observe
//!                                          ▼
//!                          Recording ──judge──▶ Verdict ──▶ report
//! ```
//!
//! The source is nine folders, one a layer, in that order; a layer uses only those before it
//! (`tests/architecture.rs` checks both the tree and the order):
//!
//! - [`spec`]: the case language — files as written, the loader (errors with file:line:column),
//!   the typed [`Case`], conditions (what `wait`, `check`, `seen`, `never` test), statements;
//! - [`observe`]: observations, the shared store, samplers, the scoreboard as the harness counts
//!   it, and the [`Recording`] of a run;
//! - [`drive`]: the harness's own HTTP/1.1 client, a case's named connections, the load driver;
//! - [`target`]: the servers behind one trait (refhttpd embedded, Apache under a guard), with
//!   their capabilities, and every `unsafe` of process spawning;
//! - [`runner`]: plays a case against a target into a recording, and judges nothing;
//! - [`judge`](mod@judge): the verdict, a pure function of (case, MPM, capabilities, recording);
//! - [`report`]: matrix, timeline, JUnit, JSON, the HTML picture, coverage of the catalogue;
//! - [`explore`]: the executable model of each MPM, and random scenarios run against a server
//!   and judged against it, a disagreement shrunk to a case file;
//! - [`cli`]: the command line — arguments, the plan of tests, the job scheduler, the commands.
//!
//! The runner never sees the verdict; the verdict never sees the runner or a server: it judges a
//! recording, and can judge a stored one again ([`rejudge`]).
//!
//! The face most users need is here: load cases ([`load_dir`]), run one ([`execute`]), judge a
//! recording ([`judge()`]) or a stored run again ([`read_runs`], [`rejudge`]).

pub mod cli;
pub mod drive;
pub mod explore;
pub mod judge;
pub mod observe;
pub mod report;
pub mod runner;
pub mod spec;
pub mod target;

pub use crate::judge::{judge, Check, Run, RunResult, Verdict};
pub use crate::observe::Recording;
pub use crate::spec::{load_dir, Case, Target};

use std::path::PathBuf;
use std::time::Instant;

use refhttpd::Mpm;

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

/// Runs one case under one MPM against one target and judges it. A panic in the harness is an
/// error result, not a crash of the whole run.
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
