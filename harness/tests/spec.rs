//! Every (case, MPM, target) of the catalogue as its own test, named
//! `<case id>::<mpm>::<target>`: `cargo test -p mpm-harness --test spec -- keepalive`, `--list`,
//! `--exact`, `--ignored` and nextest work as usual. Targets not available here are listed as
//! ignored with the reason.

use libtest_mimic::{Arguments, Failed, Trial};
use mpm_harness::report;
use mpm_harness::spec::{self, Target};
use mpm_harness::target::serve_if_asked;

fn main() {
    serve_if_asked();
    let args = Arguments::from_args();
    let dir = mpm_harness::default_specs_dir();
    let cases = match spec::load_dir(&dir) {
        Ok(cases) => cases,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(2);
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
    let mut trials = Vec::new();
    for case in cases {
        for mpm in case.mpms.clone() {
            for target in case.targets.clone() {
                let name = report::test_name(&case.id, mpm, target);
                let case = case.clone();
                let trial = Trial::test(name, move || {
                    let run = mpm_harness::execute(&case, mpm, target);
                    if run.verdict.passed() {
                        Ok(())
                    } else {
                        Err(Failed::from(report::timeline(&run)))
                    }
                });
                trials.push(trial.with_ignored_flag(target.available().is_err()));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
