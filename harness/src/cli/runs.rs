//! The commands that run cases and judge them: `run` (the catalogue, in parallel jobs),
//! `repro` (one run, its timeline) and `judge` (stored runs judged again).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use refhttpd::Mpm;

use crate::judge::{Run, RunResult};
use crate::report;
use crate::spec::{Case, Target};

use super::{jobs, plan, FAILED, PASSED, USAGE};

pub(super) fn repro(
    cases: &[Case],
    id: &str,
    mpm: Mpm,
    target: Target,
    html: Option<&Path>,
) -> i32 {
    let Some(case) = cases.iter().find(|c| c.id == id) else {
        eprintln!("error: no case `{id}`; `mpm-harness list` shows them");
        return USAGE;
    };
    if let Err(why) = target.available() {
        eprintln!("error: target {} is not available: {why}", target.as_str());
        return USAGE;
    }
    let run = crate::execute(case, mpm, target);
    print!("{}", report::timeline(&run));
    let code = if run.verdict.passed() { PASSED } else { FAILED };
    if let Some(path) = html {
        let title = format!("mpm-harness repro {id} --mpm {mpm} --target {target}");
        let page = report::html::document(
            &title,
            std::slice::from_ref(case),
            &[run],
            &[target],
            &[mpm],
        );
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("error: writing {}: {e}", path.display());
            return USAGE;
        }
    }
    code
}

/// What `run` was asked, typed.
pub(super) struct RunArgs {
    pub(super) filter: Option<String>,
    pub(super) mpms: Vec<Mpm>,
    pub(super) targets: Vec<Target>,
    pub(super) junit: Option<PathBuf>,
    pub(super) json: Option<PathBuf>,
    pub(super) html: Option<PathBuf>,
    pub(super) repeat: u32,
    pub(super) jobs: usize,
}

/// How a set of runs came out, counted once for the closing line and the exit code.
struct Tally {
    passed: usize,
    failed: usize,
    errors: usize,
}

impl Tally {
    fn of(runs: &[Run]) -> Tally {
        let count = |r: RunResult| runs.iter().filter(|x| x.verdict.result == r).count();
        Tally {
            passed: count(RunResult::Passed),
            failed: count(RunResult::Failed),
            errors: count(RunResult::Error),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} errors",
            self.passed, self.failed, self.errors
        )
    }

    fn exit_code(&self) -> i32 {
        if self.failed + self.errors > 0 {
            FAILED
        } else {
            PASSED
        }
    }
}

/// A run's line, `[  i/total] passed <name><after>`, and a run that did not pass its timeline.
fn run_lines(i: usize, total: usize, run: &Run, after: &str) -> String {
    let mut text = format!(
        "[{:>3}/{total}] {} {}{after}\n",
        i + 1,
        run.verdict.result.as_str(),
        report::test_name(&run.case, run.mpm, run.target),
    );
    if !run.verdict.passed() {
        text.push_str(&report::timeline(run));
    }
    text
}

/// Writes a report file, or says why not.
fn write_report(path: &Path, text: String) -> Result<(), i32> {
    std::fs::write(path, text).map_err(|e| {
        eprintln!("error: writing {}: {e}", path.display());
        USAGE
    })
}

pub(super) fn run(cases: &[Case], args: RunArgs) -> i32 {
    let mut skipped = BTreeMap::new();
    let mut targets = Vec::new();
    for t in &args.targets {
        match t.available() {
            Ok(()) => targets.push(*t),
            Err(why) => {
                skipped.insert(*t, why);
            }
        }
    }
    let work = plan::select(
        cases,
        &args.mpms,
        &targets,
        args.filter.as_deref(),
        args.repeat,
    );
    let total = work.len();
    if total == 0 {
        let skipped: Vec<String> = skipped
            .iter()
            .map(|(t, why)| format!("; target {t} is not available: {why}"))
            .collect();
        eprintln!(
            "error: nothing to run: no test of the {} cases matches{} under --mpm {} and \
             --target {}{} (`mpm-harness list` shows the tests)",
            cases.len(),
            args.filter
                .as_deref()
                .map(|f| format!(" `{f}`"))
                .unwrap_or_default(),
            args.mpms
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(","),
            args.targets
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
            skipped.join("")
        );
        return USAGE;
    }
    println!("running {total} tests ({} jobs)", args.jobs);
    let started = std::time::Instant::now();
    let runs = jobs::run_all(
        work,
        args.jobs,
        |test| crate::execute(test.case, test.mpm, test.target),
        |i, run| {
            let took = format!(" ({:.1} s)", run.duration_ms / 1000.0);
            let _ = write!(
                std::io::stdout().lock(),
                "{}",
                run_lines(i, total, run, &took)
            );
        },
    );
    let tally = Tally::of(&runs);
    println!();
    print!(
        "{}",
        report::matrix(cases, &runs, &args.targets, &args.mpms, &skipped)
    );
    println!(
        "\n{}, in {:.1} s",
        tally.line(),
        started.elapsed().as_secs_f64()
    );
    let written = (|| {
        if let Some(path) = &args.junit {
            write_report(path, report::junit(&runs))?;
        }
        if let Some(path) = &args.json {
            write_report(path, report::json(&runs))?;
        }
        if let Some(path) = &args.html {
            // In the catalogue's order, whatever order they finished in.
            let mut ordered: Vec<&Run> = runs.iter().collect();
            let place = |id: &str| cases.iter().position(|c| c.id == id).unwrap_or(usize::MAX);
            ordered.sort_by_key(|r| (place(&r.case), r.mpm, r.target));
            let ordered: Vec<Run> = ordered.into_iter().cloned().collect();
            let page =
                report::html::document("mpm-harness run", cases, &ordered, &targets, &args.mpms);
            write_report(path, page)?;
        }
        Ok(())
    })();
    match written {
        Err(code) => code,
        Ok(()) => tally.exit_code(),
    }
}

/// `mpm-harness judge RUN.json`: each stored run judged again, printed as `run` prints.
pub(super) fn judge_cmd(cases: &[Case], file: &Path) -> i32 {
    let stored = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            crate::read_runs(&t).map_err(|e| {
                format!(
                    "line {} column {}: {e} (a file that `run --json` wrote)",
                    e.line(),
                    e.column()
                )
            })
        }) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return USAGE;
        }
    };
    if stored.is_empty() {
        eprintln!("error: {}: no runs to judge", file.display());
        return USAGE;
    }
    let total = stored.len();
    let mut runs = Vec::new();
    for (i, run) in stored.iter().enumerate() {
        let Some(case) = cases.iter().find(|c| c.id == run.case) else {
            eprintln!(
                "error: {}: a run of `{}`, which is not a case (any more)",
                file.display(),
                run.case
            );
            return USAGE;
        };
        let again = crate::rejudge(case, run);
        let was = if again.verdict.result == run.verdict.result {
            String::new()
        } else {
            format!(" (was {})", run.verdict.result.as_str())
        };
        print!("{}", run_lines(i, total, &again, &was));
        runs.push(again);
    }
    let mut targets: Vec<Target> = runs.iter().map(|r| r.target).collect();
    targets.sort();
    targets.dedup();
    let mut mpms: Vec<Mpm> = runs.iter().map(|r| r.mpm).collect();
    mpms.sort();
    mpms.dedup();
    let judged: Vec<Case> = cases
        .iter()
        .filter(|c| runs.iter().any(|r| r.case == c.id))
        .cloned()
        .collect();
    println!();
    print!(
        "{}",
        report::matrix(&judged, &runs, &targets, &mpms, &BTreeMap::new())
    );
    let tally = Tally::of(&runs);
    println!("\n{} (judged again)", tally.line());
    tally.exit_code()
}
