//! mpm-harness: a conformance and fault-injection harness for Apache-style MPMs.
//!
//! Data flows one way: a spec file ([`spec`]) → the [`runner`] → a [`target`] server → client
//! [`driver`]s and observers ([`observe`]) → the [`verdict`] → a [`report`].

pub mod driver;
pub mod guard;
pub mod observe;
pub mod report;
pub mod runner;
pub mod spec;
pub mod target;
pub mod verdict;

use std::path::PathBuf;

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
