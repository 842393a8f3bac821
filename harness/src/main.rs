//! The `mpm-harness` command line: `list`, `run`, `repro`, `check`, `schema`.
//!
//! Exit codes: 0 all passed, 1 a case failed or a run was an error (the harness broke), 2 usage
//! or spec error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clap::{Parser, Subcommand};
use mpm_harness::report;
use mpm_harness::runner;
use mpm_harness::spec::{self, Case, Target};
use mpm_harness::target::serve_if_asked;
use mpm_harness::verdict::{Run, RunResult};
use refhttpd::Mpm;

/// Exit codes: every run passed (or the command did what it was asked)…
const PASSED: i32 = 0;
/// … a run failed, or was an error (the harness broke), or explore found a disagreement …
const FAILED: i32 = 1;
/// … bad usage or a bad case (which names its file, line and column).
const USAGE: i32 = 2;

#[derive(Parser)]
#[command(
    name = "mpm-harness",
    version,
    about = "Conformance and fault-injection harness for Apache-style MPMs"
)]
struct Cli {
    /// Where the spec cases are (default: the project's `specs/`).
    #[arg(long, global = true, value_name = "DIR")]
    specs: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every (case, MPM, target) test.
    List {
        /// Only names containing this text.
        filter: Option<String>,
    },
    /// Run the catalogue (or the cases matching FILTER) and print the conformance matrix.
    Run {
        /// Only tests whose name (`<case>::<mpm>::<target>`) contains this text.
        filter: Option<String>,
        /// MPMs to run (default: all three).
        #[arg(long, value_enum)]
        mpm: Vec<Mpm>,
        /// Targets to run (default: reference).
        #[arg(long, value_enum)]
        target: Vec<Target>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write every run's verdict and timeline as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a self-contained HTML report here: the matrix and a picture of every run.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Run everything N times.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Runs in parallel (most of a run is waiting on the server: six fit two cores).
        #[arg(long, short, default_value_t = 6)]
        jobs: usize,
    },
    /// Run one case under one MPM and print its timeline and verdict.
    Repro {
        case: String,
        #[arg(long, value_enum)]
        mpm: Mpm,
        #[arg(long, value_enum, default_value = "reference")]
        target: Target,
        /// Also write the run as a self-contained HTML report (its picture, checks, timeline).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Validate spec files.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the spec case format.
    Schema,
    /// Judge stored runs again (a `run --json` file) with the cases as they are now: the
    /// per-run lines, the matrix and the exit code, as `run` prints them.
    Judge {
        /// The JSON report `run --json FILE` wrote.
        file: PathBuf,
    },
    /// Write a new case, THEME/NAME, under the specs folder: a commented skeleton that `check`
    /// accepts and `run` passes, for you to make your own.
    New {
        /// The case's id: its theme folder and file name (`crash/segv-isolation`).
        id: String,
    },
    /// Which cases check each behaviour statement (per MPM and target) and set each directive;
    /// exit 1 while anything is uncovered.
    Coverage,
    /// Print the behaviour statements in full, with their sources, and the settings table, as
    /// markdown (`docs/statements.md` is this output).
    Statements,
    /// Random scenarios judged against an executable model of each MPM; a disagreement is shrunk
    /// to a minimal case file under --out. Exit 0 when every run agreed, 1 on a mismatch.
    Explore {
        /// MPMs to explore (default: all three).
        #[arg(long, value_enum)]
        mpm: Vec<Mpm>,
        /// Targets (default: reference).
        #[arg(long, value_enum)]
        target: Vec<Target>,
        /// Scenarios per MPM and target.
        #[arg(long, default_value_t = 100)]
        runs: u32,
        /// The same seed replays the same scenarios (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Where a minimal disagreeing case is written (default: the catalogue's `found/`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Judge against a deliberately wrong model (the explorer's self-test).
        #[arg(long, value_enum, hide = true)]
        pretend: Option<Pretend>,
    },
    /// Drive load against any HTTP/1.1 server (as wrk or oha do): a progress line each second,
    /// then requests/s and latency percentiles, corrected for coordinated omission and raw.
    Load(LoadArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// `http://HOST[:PORT][/PATH]`.
    url: String,
    /// Connections, all from one thread.
    #[arg(long, short, default_value_t = 50)]
    connections: u32,
    /// How long to drive (`10`, `10s`, `500ms`).
    #[arg(long, short, default_value = "10s", value_parser = duration)]
    duration: std::time::Duration,
    /// Requests per second over all connections (open model); without it, each connection
    /// sends its next request when the last is answered (closed model).
    #[arg(long, short)]
    rate: Option<f64>,
    /// Keep connections alive, or open one per request.
    #[arg(long, value_enum, default_value = "on")]
    keepalive: OnOff,
    /// A request without a response after this long has timed out.
    #[arg(long, default_value = "10s", value_parser = duration)]
    timeout: std::time::Duration,
    /// Write the whole run (figures, intervals, connections) as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Wrong models for the explorer's self-test.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Pretend {
    /// Prefork whose crash takes every connection, as worker's does.
    PreforkLosesEverything,
    /// Worker whose crash takes only its own connection, as prefork's does.
    WorkerLosesOne,
    /// Event that keeps a worker through each keep-alive wait, as worker does.
    EventKeepsWorkers,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    mpm_faults::duration::parse(text)
}

fn main() {
    serve_if_asked();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Schema => {
            println!("{}", spec::schema());
            PASSED
        }
        Command::Check { files } => check(&files),
        Command::New { id } => {
            let given = cli
                .specs
                .as_ref()
                .map(|d| format!(" --specs {}", d.display()))
                .unwrap_or_default();
            let specs = cli.specs.unwrap_or_else(mpm_harness::default_specs_dir);
            match spec::write_new_case(&specs, &id) {
                Ok(path) => {
                    println!(
                        "wrote {}: `mpm-harness check {}` checks it, \
                         `mpm-harness{given} run {id} --target reference --target apache` runs it",
                        path.display(),
                        path.display()
                    );
                    PASSED
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    USAGE
                }
            }
        }
        Command::Statements => {
            print!("{}", mpm_harness::coverage::statements_page());
            PASSED
        }
        Command::Load(args) => load_cmd(&args),
        Command::Explore {
            mpm,
            target,
            runs,
            seed,
            out,
            pretend,
        } => explore_cmd(mpm, target, runs, seed, out, pretend),
        command => match load(cli.specs) {
            Err(code) => code,
            Ok(cases) => match command {
                Command::List { filter } => list(&cases, filter.as_deref()),
                Command::Judge { file } => judge_cmd(&cases, &file),
                Command::Coverage => coverage(&cases),
                Command::Repro {
                    case,
                    mpm,
                    target,
                    html,
                } => repro(&cases, &case, mpm, target, html.as_deref()),
                Command::Run {
                    filter,
                    mpm,
                    target,
                    junit,
                    json,
                    html,
                    repeat,
                    jobs,
                } => run(
                    &cases,
                    RunArgs {
                        filter,
                        mpms: if mpm.is_empty() {
                            Mpm::ALL.to_vec()
                        } else {
                            mpm
                        },
                        targets: if target.is_empty() {
                            vec![Target::Reference]
                        } else {
                            target
                        },
                        junit,
                        json,
                        html,
                        repeat: repeat.max(1),
                        jobs: jobs.max(1),
                    },
                ),
                _ => unreachable!(),
            },
        },
    };
    std::process::exit(code);
}

fn load(dir: Option<PathBuf>) -> Result<Vec<Case>, i32> {
    let dir = dir.unwrap_or_else(mpm_harness::default_specs_dir);
    if !dir.is_dir() {
        eprintln!(
            "error: {}: no such folder of spec cases (--specs DIR)",
            dir.display()
        );
        return Err(USAGE);
    }
    let cases = spec::load_dir(&dir).map_err(|errors| {
        for e in errors {
            eprintln!("error: {e}");
        }
        USAGE
    })?;
    if cases.is_empty() {
        eprintln!(
            "error: {}: no case files (a case is <theme>/<name>.toml under it)",
            dir.display()
        );
        return Err(USAGE);
    }
    Ok(cases)
}

/// Checks case files, and every case file under a folder given.
fn check(paths: &[PathBuf]) -> i32 {
    let mut code = PASSED;
    let mut files = Vec::new();
    for p in paths {
        // A theme folder (its cases directly in it) is checked file by file.
        let theme: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                    .filter(|f| f.file_name().is_some_and(|n| n != "statements.toml"))
                    .collect()
            })
            .unwrap_or_default();
        if p.is_dir() && !theme.is_empty() && spec::find_files(p).is_empty() {
            let mut theme = theme;
            theme.sort();
            files.extend(theme);
        } else if p.is_dir() {
            let found = spec::find_files(p);
            if found.is_empty() {
                eprintln!(
                    "error: {}: no case files (a case is <theme>/<name>.toml under it)",
                    p.display()
                );
                code = USAGE;
            }
            for e in spec::misplaced(p) {
                eprintln!("error: {e}");
                code = USAGE;
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    for f in &files {
        match spec::load(f) {
            Ok(case) => {
                println!(
                    "{}: ok ({}, {} steps)",
                    f.display(),
                    case.id,
                    case.steps.len()
                );
                for target in case.targets.iter().copied() {
                    for mpm in &case.mpms {
                        let caps = target.capabilities();
                        if let Some(why) = runner::refusal(&case, *mpm, target, &caps) {
                            println!("  note: not runnable under {mpm} on {target}: {why}");
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = USAGE;
            }
        }
    }
    code
}

fn coverage(cases: &[Case]) -> i32 {
    let cov = mpm_harness::coverage::of(cases);
    println!("Statements (cases per MPM; * = runs on the reference only):\n");
    print!("{}", cov.statements_table());
    println!("\nSettings (cases that set the directive off its default, with the value):\n");
    print!("{}", cov.settings_table());
    let uncovered = cov.uncovered();
    if uncovered.is_empty() {
        println!("\nevery statement and every directive is covered");
        PASSED
    } else {
        println!("\nuncovered ({}):", uncovered.len());
        for u in &uncovered {
            println!("  {u}");
        }
        FAILED
    }
}

fn list(cases: &[Case], filter: Option<&str>) -> i32 {
    for case in cases {
        for mpm in &case.mpms {
            for target in case.targets.iter().copied() {
                let name = report::test_name(&case.id, *mpm, target);
                if filter.is_none_or(|f| name.contains(f)) {
                    let note = match target.available() {
                        Ok(()) => String::new(),
                        Err(why) => format!("  (not available: {why})"),
                    };
                    println!("{name}  {}{note}", case.title);
                }
            }
        }
    }
    PASSED
}

fn repro(cases: &[Case], id: &str, mpm: Mpm, target: Target, html: Option<&Path>) -> i32 {
    let Some(case) = cases.iter().find(|c| c.id == id) else {
        eprintln!("error: no case `{id}`; `mpm-harness list` shows them");
        return USAGE;
    };
    if let Err(why) = target.available() {
        eprintln!("error: target {} is not available: {why}", target.as_str());
        return USAGE;
    }
    let run = mpm_harness::execute(case, mpm, target);
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

struct RunArgs {
    filter: Option<String>,
    mpms: Vec<Mpm>,
    targets: Vec<Target>,
    junit: Option<PathBuf>,
    json: Option<PathBuf>,
    html: Option<PathBuf>,
    repeat: u32,
    jobs: usize,
}

fn run(cases: &[Case], args: RunArgs) -> i32 {
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
    let mut work: Vec<(&Case, Mpm, Target)> = Vec::new();
    for _ in 0..args.repeat {
        for case in cases {
            for mpm in args.mpms.iter().filter(|m| case.mpms.contains(m)) {
                for t in targets.iter().filter(|t| case.targets.contains(t)) {
                    let name = report::test_name(&case.id, *mpm, *t);
                    if args.filter.as_deref().is_none_or(|f| name.contains(f)) {
                        work.push((case, *mpm, *t));
                    }
                }
            }
        }
    }
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
    let queue = Mutex::new(work.into_iter().enumerate());
    let runs: Mutex<Vec<Run>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(total.max(1)) {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((i, (case, mpm, target))) = next else {
                    return;
                };
                let run = mpm_harness::execute(case, mpm, target);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "[{:>3}/{total}] {} {} ({:.1} s)",
                    i + 1,
                    run.verdict.result.as_str(),
                    report::test_name(&run.case, mpm, target),
                    run.duration_ms / 1000.0
                );
                if !run.verdict.passed() {
                    let _ = write!(out, "{}", report::timeline(&run));
                }
                drop(out);
                runs.lock().unwrap_or_else(|e| e.into_inner()).push(run);
            });
        }
    });
    let runs = runs.into_inner().unwrap_or_else(|e| e.into_inner());
    let count = |r: RunResult| runs.iter().filter(|x| x.verdict.result == r).count();
    let (passed, failed, errors) = (
        count(RunResult::Passed),
        count(RunResult::Failed),
        count(RunResult::Error),
    );
    println!();
    print!(
        "{}",
        report::matrix(cases, &runs, &args.targets, &args.mpms, &skipped)
    );
    println!(
        "\n{passed} passed, {failed} failed, {errors} errors, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, report::junit(&runs)) {
            eprintln!("error: writing {}: {e}", path.display());
            return USAGE;
        }
    }
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, report::json(&runs)) {
            eprintln!("error: writing {}: {e}", path.display());
            return USAGE;
        }
    }
    if let Some(path) = &args.html {
        // In the catalogue's order, whatever order they finished in.
        let mut ordered: Vec<&Run> = runs.iter().collect();
        let place = |id: &str| cases.iter().position(|c| c.id == id).unwrap_or(usize::MAX);
        ordered.sort_by_key(|r| (place(&r.case), r.mpm, r.target));
        let ordered: Vec<Run> = ordered.into_iter().cloned().collect();
        let page = report::html::document("mpm-harness run", cases, &ordered, &targets, &args.mpms);
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("error: writing {}: {e}", path.display());
            return USAGE;
        }
    }
    if failed + errors > 0 {
        FAILED
    } else {
        PASSED
    }
}

/// `mpm-harness judge RUN.json`: each stored run judged again, printed as `run` prints.
fn judge_cmd(cases: &[Case], file: &Path) -> i32 {
    let stored = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            mpm_harness::read_runs(&t).map_err(|e| {
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
        let again = mpm_harness::rejudge(case, run);
        println!(
            "[{:>3}/{total}] {} {}{}",
            i + 1,
            again.verdict.result.as_str(),
            report::test_name(&again.case, again.mpm, again.target),
            if again.verdict.result == run.verdict.result {
                String::new()
            } else {
                format!(" (was {})", run.verdict.result.as_str())
            }
        );
        if !again.verdict.passed() {
            print!("{}", report::timeline(&again));
        }
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
    let count = |r: RunResult| runs.iter().filter(|x| x.verdict.result == r).count();
    let (passed, failed, errors) = (
        count(RunResult::Passed),
        count(RunResult::Failed),
        count(RunResult::Error),
    );
    println!("\n{passed} passed, {failed} failed, {errors} errors (judged again)");
    if failed + errors > 0 {
        FAILED
    } else {
        PASSED
    }
}

/// `mpm-harness load`: the load driver on its own.
fn load_cmd(args: &LoadArgs) -> i32 {
    use mpm_harness::loadgen::{self, MixEntry, Plan, Progress};
    use mpm_harness::observe::load::Interval;

    let (addr, path) = match target_of(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.url);
            return USAGE;
        }
    };
    if args.connections == 0 || args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
        eprintln!("error: --connections and --rate must be above 0");
        return USAGE;
    }
    loadgen::raise_fd_limit();
    let mut plan = Plan::new("load", addr, args.connections, args.duration);
    plan.rate = args.rate;
    plan.keepalive = matches!(args.keepalive, OnOff::On);
    plan.timeout = args.timeout;
    plan.interval = std::time::Duration::from_secs(1);
    plan.keep_requests = false;
    plan.mix = vec![MixEntry {
        path,
        weight: 1,
        fatal: false,
    }];

    struct Line {
        seconds: f64,
    }
    impl Progress for Line {
        fn interval(&mut self, i: &Interval) {
            self.seconds += i.length_ms / 1000.0;
            eprintln!("[{:6.1} s] {i}", self.seconds);
        }
    }
    eprintln!(
        "driving {} at {addr}: {} connections for {:?}{}",
        args.url,
        args.connections,
        args.duration,
        args.rate
            .map(|r| format!(", {r} requests/s"))
            .unwrap_or_default()
    );
    let run = match loadgen::run(&plan, std::time::Instant::now(), &mut Line { seconds: 0.0 }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return FAILED;
        }
    };
    println!("{}", run.summary());
    // The driver's own memory (ru_maxrss is in KiB on Linux): what its connections cost it.
    if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        println!("  driver peak RSS: {} KiB", usage.max_rss());
    }
    if let Some(file) = &args.json {
        let text = serde_json::to_string_pretty(&run).expect("serialisable");
        if let Err(e) = std::fs::write(file, text) {
            eprintln!("error: {}: {e}", file.display());
            return USAGE;
        }
    }
    if run.counts.responses == 0 {
        eprintln!("error: no request was answered");
        return FAILED;
    }
    PASSED
}

/// The address and path of an `http://` URL.
fn target_of(url: &str) -> Result<(std::net::SocketAddr, String), String> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are driven")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err("no host".into());
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} has no address"))?;
    Ok((addr, path))
}

/// `mpm-harness explore`.
fn explore_cmd(
    mpms: Vec<Mpm>,
    targets: Vec<Target>,
    runs: u32,
    seed: Option<u64>,
    out: Option<PathBuf>,
    pretend: Option<Pretend>,
) -> i32 {
    use mpm_harness::explore::{self, Outcome, Settings};
    use mpm_harness::model::Model;

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
    let out = out.unwrap_or_else(|| mpm_harness::default_specs_dir().join("found"));
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
                Ok(Outcome::Agreed { runs, took }) => println!(
                    "{mpm} on {target}: all {runs} scenarios agreed with the model, in {:.1} s \
                     ({:.0} a minute)",
                    took.as_secs_f64(),
                    f64::from(runs) * 60.0 / took.as_secs_f64().max(0.001)
                ),
                Ok(Outcome::Mismatch(f)) => {
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
