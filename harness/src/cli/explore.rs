//! `mpm-harness explore`: random scenarios per MPM and target, judged against the model.

use std::path::PathBuf;

use refhttpd::Mpm;

use crate::spec::Target;

use super::args::Pretend;
use super::{FAILED, PASSED, USAGE};

/// `mpm-harness explore`.
pub(super) fn explore_cmd(
    mpms: Vec<Mpm>,
    targets: Vec<Target>,
    runs: u32,
    seed: Option<u64>,
    out: Option<PathBuf>,
    pretend: Option<Pretend>,
) -> i32 {
    use crate::explore::model::Model;
    use crate::explore::{self, Exploration, Settings};

    if runs == 0 {
        eprintln!("error: --runs must be above 0");
        return USAGE;
    }
    let mpms = if mpms.is_empty() {
        Mpm::ALL.to_vec()
    } else {
        mpms
    };
    let targets = if targets.is_empty() {
        vec![Target::Reference]
    } else {
        targets
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let out = out.unwrap_or_else(|| crate::default_specs_dir().join("found"));
    let mut code = PASSED;
    for target in targets {
        if let Err(why) = target.available() {
            eprintln!("error: target {target} is not available: {why}");
            return USAGE;
        }
        for &mpm in &mpms {
            let model = match (pretend, mpm) {
                (Some(Pretend::PreforkLosesEverything), Mpm::Prefork) => {
                    Model::pretending(mpm, Mpm::Worker)
                }
                (Some(Pretend::WorkerLosesOne), Mpm::Worker) => {
                    Model::pretending(mpm, Mpm::Prefork)
                }
                (Some(Pretend::EventKeepsWorkers), Mpm::Event) => {
                    Model::pretending(mpm, Mpm::Worker)
                }
                (Some(Pretend::ThreadsIsolateState), Mpm::Worker | Mpm::Event) => {
                    Model::isolating_threads(mpm)
                }
                _ => Model::of(mpm),
            };
            let settings = Settings {
                mpm,
                target,
                runs,
                seed,
                out: out.clone(),
                model,
            };
            println!("== explore {mpm} on {target}: {runs} scenarios, --seed {seed}");
            match explore::explore(&settings, |line| println!("{line}")) {
                Ok(Exploration::Agreed { runs, took }) => println!(
                    "{mpm} on {target}: all {runs} scenarios agreed with the model, in {:.1} s \
                     ({:.0} a minute)",
                    took.as_secs_f64(),
                    f64::from(runs) * 60.0 / took.as_secs_f64().max(0.001)
                ),
                Ok(Exploration::Mismatch(f)) => {
                    code = FAILED;
                    println!(
                        "{mpm} on {target}: MISMATCH, shrunk to {} ({} runs, {:.1} s)\n  \
                         {}\n  written: {}",
                        explore::describe(&f.scenario),
                        f.runs,
                        f.took.as_secs_f64(),
                        f.why,
                        f.path.display()
                    );
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return FAILED;
                }
            }
        }
    }
    code
}
