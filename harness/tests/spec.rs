//! Every (case, MPM, target) of the catalogue as its own test, named
//! `<case id>::<mpm>::<target>`: `cargo test -p mpm-harness --test spec -- keepalive`, `--list`,
//! `--exact`, `--ignored` and nextest work as usual. Targets not available here are listed as
//! ignored with the reason.
//!
//! With `MPM_HARNESS_FAIL_FAST` set (ci/mutants.sh sets it), the first failure fails every trial
//! that has not started yet, unrun: a mutant is caught as soon as one case fails.

use std::sync::atomic::{AtomicBool, Ordering};

use libtest_mimic::{Arguments, Failed, Trial};
use mpm_harness::cli::plan;
use mpm_harness::report;
use mpm_harness::spec::{self, Target};
use mpm_harness::target::serve_if_asked;

/// A trial failed (only kept with `MPM_HARNESS_FAIL_FAST`).
static FAILED: AtomicBool = AtomicBool::new(false);

fn main() {
    serve_if_asked();
    let fail_fast = std::env::var_os("MPM_HARNESS_FAIL_FAST").is_some();
    let args = Arguments::from_args();
    let dir = mpm_harness::default_specs_dir();
    let cases = match spec::load_dir(&dir) {
        Ok(cases) => cases,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(mpm_harness::cli::USAGE);
        }
    };
    // libtest has no field for why a test is ignored: say it once, on stderr, so `--list` stays
    // in the plain `name: test` form that cargo-nextest reads.
    if !args.list {
        for target in Target::ALL {
            if let Err(why) = target.available() {
                eprintln!("note: {} tests are ignored: {why}", target.as_str());
            }
        }
    }
    let trials = plan::tests(&cases)
        .into_iter()
        .map(|test| {
            let (case, mpm, target) = (test.case.clone(), test.mpm, test.target);
            Trial::test(test.name(), move || {
                if fail_fast && FAILED.load(Ordering::Acquire) {
                    return Err("not run: an earlier case failed (MPM_HARNESS_FAIL_FAST)".into());
                }
                let run = mpm_harness::execute(&case, mpm, target);
                if run.verdict.passed() {
                    Ok(())
                } else {
                    FAILED.store(true, Ordering::Release);
                    Err(Failed::from(report::timeline(&run)))
                }
            })
            .with_ignored_flag(target.available().is_err())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
