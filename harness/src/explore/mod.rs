//! Explore: scenarios nobody wrote, judged against the model of their MPM.
//!
//! A proptest strategy generates [`Scenario`]s; the [`Model`] predicts every request and every
//! connection's end; the scenario and its predictions are written as a case file (TOML, the
//! catalogue's own format), loaded back as any case is, run against a real server and judged by
//! the verdict. A disagreement is shrunk by proptest — each candidate run on the server again —
//! to a minimal scenario, whose case file (with the seed in a comment) is written for anyone to
//! commit: `check` accepts it and `run` fails on it the same way.

pub mod model;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use refhttpd::Mpm;

use crate::explore::model::{End, Latency, Model, Op, Predicted, Scenario, HOLD, PROBE_TIMEOUT};
use crate::judge::{Run, RunResult};
use crate::spec::Target;

/// The most connections and operations a generated scenario has: a run takes well under a
/// second.
const MAX_CONNECTIONS: usize = 4;
const MAX_OPS: usize = 6;
/// The most spare workers (beyond one per connection).
const MAX_SPARE: usize = 2;
/// How long a wait for the server to settle (a replacement started, a close done) may take.
const SETTLE: &str = "5s";
/// How long a restart may take to end the connections and start a new generation (Apache's
/// master SIGKILLs what ignores it at 9 s).
const RESTART: &str = "12s";

/// Scenarios: one to four connections, zero to two spare workers, MaxKeepAliveRequests
/// unlimited or one to three, up to six operations. Shrinking goes towards fewer connections,
/// no spare worker, no MaxKeepAliveRequests and fewer, plainer operations. The operations name
/// a connection out of four, folded onto those the scenario has: shrinking the number of
/// connections keeps the operations (a flat-mapped strategy would draw new ones).
pub fn scenarios() -> impl Strategy<Value = Scenario> {
    let conn = 0..MAX_CONNECTIONS;
    let op = prop_oneof![
        3 => conn.clone().prop_map(|conn| Op::Request { conn }),
        2 => conn.clone().prop_map(|conn| Op::Hold { conn }),
        2 => conn.clone().prop_map(|conn| Op::Crash { conn }),
        2 => Just(Op::Probe),
        1 => conn.clone().prop_map(|conn| Op::Kill { conn }),
        1 => conn.prop_map(|conn| Op::Close { conn }),
        1 => Just(Op::Restart),
        1 => Just(Op::Graceful),
        1 => Just(Op::Expire),
    ];
    (
        1..=MAX_CONNECTIONS,
        0..=MAX_SPARE,
        prop_oneof![3 => Just(0u32), 1 => 1..=3u32],
        proptest::collection::vec(op, 0..=MAX_OPS),
    )
        .prop_map(|(n, spare, max_keepalive, ops)| Scenario {
            connections: n,
            spare,
            max_keepalive,
            ops: ops.into_iter().map(|op| fold(op, n)).collect(),
        })
}

/// `op` on one of `n` connections.
fn fold(op: Op, n: usize) -> Op {
    match op {
        Op::Hold { conn } => Op::Hold { conn: conn % n },
        Op::Crash { conn } => Op::Crash { conn: conn % n },
        Op::Close { conn } => Op::Close { conn: conn % n },
        Op::Kill { conn } => Op::Kill { conn: conn % n },
        Op::Request { conn } => Op::Request { conn: conn % n },
        Op::Probe | Op::Restart | Op::Graceful | Op::Expire => op,
    }
}

/// What to explore.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mpm: Mpm,
    pub target: Target,
    pub runs: u32,
    pub seed: u64,
    /// Where a minimal disagreeing case is written.
    pub out: PathBuf,
    pub model: Model,
}

/// What exploring came to.
#[derive(Debug)]
pub enum Outcome {
    /// Every scenario agreed with the model.
    Agreed { runs: u32, took: Duration },
    /// A disagreement, shrunk and written.
    Mismatch(Finding),
}

/// A minimal disagreeing scenario.
#[derive(Debug)]
pub struct Finding {
    pub path: PathBuf,
    pub scenario: Scenario,
    /// Runs on the server, generation and shrinking together.
    pub runs: u32,
    pub took: Duration,
    /// The verdict's failed checks on the minimal case.
    pub why: String,
}

/// Generates, predicts, runs and compares `settings.runs` scenarios; shrinks the first that
/// disagrees. `progress` hears a line per run. An error is a harness failure (a server that
/// would not start), not a disagreement.
pub fn explore(settings: &Settings, progress: impl Fn(&str)) -> Result<Outcome, String> {
    let started = Instant::now();
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&settings.seed.to_le_bytes());
    let config = Config {
        cases: settings.runs,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let runs = std::cell::Cell::new(0u32);
    let broken: std::cell::RefCell<Option<String>> = Default::default();
    let result = runner.run(&scenarios(), |scenario| {
        if broken.borrow().is_some() {
            return Ok(());
        }
        runs.set(runs.get() + 1);
        let text = case_text(&scenario, settings, None);
        let run = match run_text(&text, settings) {
            Ok(run) => run,
            Err(e) => {
                *broken.borrow_mut() = Some(e);
                return Ok(());
            }
        };
        progress(&format!(
            "[{:>4}] {} {}",
            runs.get(),
            run.verdict.result.as_str(),
            describe(&scenario)
        ));
        match run.verdict.result {
            RunResult::Passed => Ok(()),
            RunResult::Failed => Err(TestCaseError::fail(failed_checks(&run))),
            RunResult::Error => {
                *broken.borrow_mut() = run.verdict.error.clone().or(Some("error".into()));
                Ok(())
            }
        }
    });
    if let Some(e) = broken.into_inner() {
        return Err(e);
    }
    match result {
        Ok(()) => Ok(Outcome::Agreed {
            runs: runs.get(),
            took: started.elapsed(),
        }),
        Err(TestError::Fail(why, minimal)) => {
            let path = write_finding(&minimal, settings, why.message())?;
            Ok(Outcome::Mismatch(Finding {
                path,
                scenario: minimal,
                runs: runs.get(),
                took: started.elapsed(),
                why: why.to_string(),
            }))
        }
        Err(TestError::Abort(why)) => Err(format!("exploring stopped: {why}")),
    }
}

/// Loads `text` as a case and runs it under the settings' MPM and target.
fn run_text(text: &str, settings: &Settings) -> Result<Run, String> {
    let case = crate::spec::parse(Path::new("explored.toml"), text)
        .map_err(|e| format!("the explorer wrote a case the loader refuses: {e}\n{text}"))?;
    Ok(crate::execute(&case, settings.mpm, settings.target))
}

fn failed_checks(run: &Run) -> String {
    run.verdict
        .checks
        .iter()
        .filter(|c| c.failed())
        .map(|c| format!("{}: {}", c.what, c.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The scenario in a line.
pub fn describe(s: &Scenario) -> String {
    let ops: Vec<String> = s
        .ops
        .iter()
        .map(|op| match op {
            Op::Hold { conn } => format!("hold c{conn}"),
            Op::Crash { conn } => format!("crash c{conn}"),
            Op::Close { conn } => format!("close c{conn}"),
            Op::Request { conn } => format!("request c{conn}"),
            Op::Kill { conn } => format!("kill c{conn}'s child"),
            Op::Probe => "probe".to_string(),
            Op::Restart => "restart (HUP)".to_string(),
            Op::Graceful => "graceful restart (USR1)".to_string(),
            Op::Expire => "until KeepAliveTimeout".to_string(),
        })
        .collect();
    let limit = match s.max_keepalive {
        0 => String::new(),
        m => format!(", MaxKeepAliveRequests {m}"),
    };
    format!(
        "{} connections, {} workers{limit}; {}",
        s.connections,
        s.workers(),
        ops.join(", ")
    )
}

fn write_finding(s: &Scenario, settings: &Settings, why: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(&settings.out)
        .map_err(|e| format!("{}: {e}", settings.out.display()))?;
    let name = format!(
        "{}-{}-seed-{}",
        settings.mpm.as_str(),
        settings.target.as_str(),
        settings.seed
    );
    let path = settings.out.join(format!("{name}.toml"));
    let text = case_text(s, settings, Some(why));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// A step that waits until the server has ended these connections (none: no step).
fn wait_closed(t: &mut String, conns: &[usize], within: &str) {
    if conns.is_empty() {
        return;
    }
    let names: Vec<String> = conns.iter().map(|c| format!("\"c{c}\"")).collect();
    let _ = writeln!(
        t,
        "[[step]]\nwait = {{ closed = [{}] }}\nwithin = \"{within}\"",
        names.join(", ")
    );
}

/// The case file of a scenario: settings sized for it, the steps, and the model's predictions
/// as expectations for the settings' MPM.
pub fn case_text(s: &Scenario, settings: &Settings, found: Option<&str>) -> String {
    let mpm = settings.mpm;
    let prediction = settings.model.predict(s);
    let n = s.connections;
    let mut t = String::new();
    if let Some(why) = found {
        let _ = writeln!(
            t,
            "# Found by `mpm-harness explore --mpm {mpm} --target {} --seed {}` and shrunk: the\n\
             # server disagreed with the model of {mpm} (its crash takes: {}; keep-alive {}).\n\
             # What the verdict said: {}\n",
            settings.target,
            settings.seed,
            if settings.model.one_child
                && settings.model.blast_radius == mpm_faults::BlastRadius::Process
            {
                "every connection"
            } else {
                "its own connection"
            },
            if settings.model.keepalive_holds_worker {
                "holds a worker"
            } else {
                "frees the worker"
            },
            why.replace('\n', " ")
        );
    }
    let _ = writeln!(
        t,
        "id = \"{}/{}-{}-seed-{}\"\ntitle = \"explored: {}\"\nmpms = [\"{mpm}\"]\ntargets = [\"{}\"]\ntags = [\"explored\"]\n",
        // The folder it is written to is its theme.
        settings
            .out
            .file_name()
            .map_or("found".into(), |n| n.to_string_lossy()),
        mpm.as_str(),
        settings.target.as_str(),
        settings.seed,
        describe(s),
        settings.target.as_str()
    );
    // The pool stays whole: prefork's spare minimum is the pool, so a dead child is always
    // replaced (PM-2), and worker's and event's one child is replaced as it dies.
    let pool = s.workers();
    let _ = writeln!(
        t,
        "[server]\nfaults = true\nall = {{ KeepAliveTimeout = \"{}ms\", MaxKeepAliveRequests = {} }}\n\
         prefork = {{ StartServers = {pool}, MinSpareServers = {pool}, MaxSpareServers = {pool}, ServerLimit = {pool}, MaxRequestWorkers = {pool} }}\n\
         threaded = {{ ServerLimit = 1, StartServers = 1, ThreadsPerChild = {pool}, MaxRequestWorkers = {pool}, MinSpareThreads = 1, MaxSpareThreads = {pool} }}\n",
        s.keepalive_timeout().as_millis(),
        s.max_keepalive
    );
    let _ = writeln!(
        t,
        "[[step]]\nwait = {{ idle_workers = {{ at_least = {pool} }} }}\n"
    );
    // Each connection warmed alone, so that the process owning it is known; under event the
    // worker is back before the next one (EV-5).
    for c in 0..n {
        let _ = writeln!(
            t,
            "[[step]]\nopen = \"c{c}\"\n[[step]]\nsend = \"c{c}\"\nas = \"warm-{c}\"\n[[step]]\nawait = \"warm-{c}\""
        );
        if mpm == Mpm::Event {
            let _ = writeln!(t, "[[step]]\nwait = {{ busy_workers = 0 }}");
        }
        t.push('\n');
    }
    let closed_before = |c: usize, k: usize| {
        s.ops[..k]
            .iter()
            .any(|op| matches!(op, Op::Close { conn } if *conn == c))
    };
    // The connections the client has not closed before operation k.
    let kept_before =
        |k: usize| -> Vec<usize> { (0..n).filter(|c| !closed_before(*c, k)).collect() };
    let mut held = Vec::new();
    // Waits for the server to settle where the model needs it (before every probe; under
    // event before a request on an idle keep-alive connection).
    // After a restart the new generation may take longer: Apache prefork starts it one child a
    // second, once the old idle ones have gone (2 s).
    let settle = |t: &mut String, k: usize| {
        let idle = prediction.idle_before_op(k).unwrap_or(0);
        let restarted = s.ops[..k.min(s.ops.len())]
            .iter()
            .any(|op| matches!(op, Op::Restart | Op::Graceful));
        let within = if restarted { RESTART } else { SETTLE };
        if idle > 0 {
            let _ = writeln!(
                t,
                "[[step]]\nwait = {{ idle_workers = {{ at_least = {idle} }} }}\nwithin = \"{within}\""
            );
        }
    };
    // Before a restart: until the held requests the model counts in their handlers are there.
    // (And before a graceful one under prefork and worker: until the idle connections'
    // workers wait in keep-alive.)
    let writing = |t: &mut String, k: usize| {
        let at = |v: &[(usize, usize)]| v.iter().find(|(op, _)| *op == k).map(|(_, n)| *n);
        let mut conditions = Vec::new();
        if let Some(w) = at(&prediction.writing_before) {
            conditions.push(format!("writing_workers = {{ at_least = {w} }}"));
        }
        if let Some(ka) = at(&prediction.keepalive_before) {
            conditions.push(format!("keepalive_workers = {{ at_least = {ka} }}"));
        }
        if !conditions.is_empty() {
            let _ = writeln!(
                t,
                "[[step]]\nwait = {{ {} }}\nwithin = \"{SETTLE}\"",
                conditions.join(", ")
            );
        }
    };
    // After a restart at operation k: until the new generation has started (each logs an
    // event, the first included). Apache coalesces a signal that comes while a restart is
    // under way with that restart.
    let new_generation = |t: &mut String, k: usize| {
        let generations = 1 + s.ops[..=k]
            .iter()
            .filter(|op| matches!(op, Op::Restart | Op::Graceful))
            .count();
        let _ = writeln!(
            t,
            "[[step]]\nwait = {{ event = \"generation\", events = {{ at_least = {generations} }} }}\nwithin = \"{RESTART}\""
        );
    };
    for (k, op) in s.ops.iter().enumerate() {
        settle(&mut t, k);
        match op {
            Op::Hold { conn } => {
                let _ = writeln!(
                    t,
                    "[[step]]\nsend = \"c{conn}\"\nfault = \"sleep:{}ms\"\nas = \"hold-{k}\"\n",
                    HOLD.as_millis()
                );
                held.push(format!("\"hold-{k}\""));
            }
            Op::Crash { conn } => {
                let _ = writeln!(
                    t,
                    "[[step]]\nsend = \"c{conn}\"\nfault = \"crash:segv\"\nas = \"crash-{k}\"\n[[step]]\nawait = \"crash-{k}\"\n"
                );
            }
            Op::Close { conn } => {
                let _ = writeln!(t, "[[step]]\nclose = \"c{conn}\"\n");
            }
            // SIGKILL to the child that answered the warm-up, then until the server has ended
            // the connection (at once when an earlier death did). Not after the client's own
            // close of it: the server's end would never be seen.
            Op::Kill { conn } if !closed_before(*conn, k) => {
                let _ = writeln!(
                    t,
                    "[[step]]\nkill_child_of = \"warm-{conn}\"\n[[step]]\nwait = {{ closed = [\"c{conn}\"] }}\nwithin = \"3s\"\n"
                );
            }
            Op::Kill { .. } => {}
            // Once the workers the model expects free are idle (what the probe's answer
            // depends on: a replacement started, a close done), a new connection whose client
            // gives up after PROBE_TIMEOUT. With `Connection: close`: the server ends it after
            // its response, so no worker has to notice the client's close later (under
            // Apache's event a worker reads that end, and a request arriving meanwhile may
            // find none free).
            Op::Probe => {
                let _ = writeln!(
                    t,
                    "[[step]]\nopen = \"p{k}\"\n[[step]]\nsend = \"p{k}\"\nconnection_close = true\nas = \"probe-{k}\"\n\
                     [[step]]\nawait = \"probe-{k}\"\ntimeout = \"{}ms\"\n[[step]]\nclose = \"p{k}\"\n",
                    PROBE_TIMEOUT.as_millis()
                );
            }
            // Once the held requests are in their handlers, HUP; then until the server has
            // ended every connection the client kept and the new generation has started.
            // Apache's old children go once their handlers return (400 ms here), but a worker
            // child stopping gracefully (an earlier USR1) ignores the restart while a thread
            // waits on a kept-alive connection, until the master's SIGKILL at 9 s.
            Op::Restart => {
                writing(&mut t, k);
                let _ = writeln!(t, "[[step]]\nsignal = \"restart\"");
                wait_closed(&mut t, &kept_before(k), RESTART);
                new_generation(&mut t, k);
                t.push('\n');
            }
            // USR1, then until the new generation has started (every generation logs one
            // event, the first included) — the old children have been told by then — and under
            // event until its listener has closed the idle connections (Apache's may wait for a
            // worker to free: a held request's 400 ms).
            Op::Graceful => {
                writing(&mut t, k);
                let _ = writeln!(t, "[[step]]\nsignal = \"graceful\"");
                new_generation(&mut t, k);
                let closed: Vec<usize> = prediction
                    .closed_at
                    .iter()
                    .filter(|(op, _)| *op == k)
                    .flat_map(|(_, conns)| conns.iter().copied())
                    .collect();
                wait_closed(&mut t, &closed, "3s");
                t.push('\n');
            }
            // Until the server has ended every connection the client kept: KeepAliveTimeout
            // after the last of what is held on it.
            Op::Expire => {
                wait_closed(&mut t, &kept_before(k), RESTART);
                t.push('\n');
            }
            Op::Request { conn } => {
                let _ = writeln!(
                    t,
                    "[[step]]\nsend = \"c{conn}\"\nas = \"req-{k}\"\n[[step]]\nawait = \"req-{k}\"\n"
                );
            }
        }
    }
    // A request on every connection the client did not close: whether it is answered says
    // whether the server kept the connection. Where the model settles the server first
    // (event, an idle connection), they go one at a time.
    let mut last = Vec::new();
    for c in kept_before(s.ops.len()) {
        let k = s.ops.len() + c;
        let alone = prediction.idle_before_op(k).is_some();
        settle(&mut t, k);
        let _ = writeln!(t, "[[step]]\nsend = \"c{c}\"\nas = \"last-{c}\"");
        if alone {
            let _ = writeln!(t, "[[step]]\nawait = \"last-{c}\"");
        }
        last.push(format!("\"last-{c}\""));
    }
    let awaited: Vec<String> = held.into_iter().chain(last).collect();
    if !awaited.is_empty() {
        let _ = writeln!(t, "[[step]]\nawait = [{}]\n", awaited.join(", "));
    }
    // The predictions.
    let _ = writeln!(t, "[expect.{mpm}]");
    let mut requests: Vec<String> = Vec::new();
    for r in &prediction.requests {
        match (r.outcome, r.latency) {
            (Predicted::Answered, Some(Latency { at_least, at_most })) => {
                let least = if at_least.is_zero() {
                    String::new()
                } else {
                    format!(", latency_at_least = \"{}ms\"", at_least.as_millis())
                };
                requests.push(format!(
                    "\"{}\" = {{ status = 200{least}, latency_at_most = \"{}ms\" }}",
                    r.name,
                    at_most.as_millis()
                ))
            }
            (Predicted::Answered, None) => requests.push(format!("\"{}\" = 200", r.name)),
            (Predicted::Failed, _) => requests.push(format!("\"{}\" = \"failed\"", r.name)),
            (Predicted::TimedOut, _) => requests.push(format!("\"{}\" = \"timeout\"", r.name)),
            // Left open by timing: any outcome (it is awaited all the same).
            (Predicted::Either, _) => {}
        }
    }
    if !requests.is_empty() {
        let _ = writeln!(t, "requests = {{ {} }}", requests.join(", "));
    }
    let cut: Vec<String> = (0..n)
        .filter(|c| prediction.ends[*c] == End::ClosedByServer)
        .map(|c| format!("\"c{c}\""))
        .collect();
    let kept: Vec<String> = (0..n)
        .filter(|c| matches!(prediction.ends[*c], End::Open | End::ClosedByClient))
        .map(|c| format!("{{ closed = [\"c{c}\"] }}"))
        .collect();
    if !cut.is_empty() {
        let _ = writeln!(t, "seen = [{{ closed = [{}] }}]", cut.join(", "));
    }
    if !kept.is_empty() {
        let _ = writeln!(t, "never = [{}]", kept.join(", "));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mpm: Mpm) -> Settings {
        Settings {
            mpm,
            target: Target::Reference,
            runs: 1,
            seed: 7,
            out: PathBuf::from("/nonexistent"),
            model: Model::of(mpm),
        }
    }

    proptest! {
        /// Whatever the generator makes, the explorer writes a case the loader accepts, for
        /// every MPM, and the expectations name every request it sends.
        #[test]
        fn every_scenario_is_a_valid_case(s in scenarios()) {
            for mpm in Mpm::ALL {
                let text = case_text(&s, &settings(mpm), Some("why"));
                let case = crate::spec::parse(Path::new("x.toml"), &text);
                prop_assert!(case.is_ok(), "{:?}\n{}", case.err(), text);
            }
        }
    }

    #[test]
    fn a_crash_beside_a_held_request_is_predicted_per_mpm() {
        let s = Scenario {
            connections: 2,
            spare: 2,
            max_keepalive: 0,
            ops: vec![Op::Hold { conn: 0 }, Op::Crash { conn: 1 }],
        };
        let prefork = case_text(&s, &settings(Mpm::Prefork), None);
        assert!(
            prefork.contains(
                "\"hold-0\" = { status = 200, latency_at_least = \"400ms\", latency_at_most = \"2400ms\" }"
            ),
            "{prefork}"
        );
        assert!(
            prefork.contains("never = [{ closed = [\"c0\"] }]"),
            "{prefork}"
        );
        let worker = case_text(&s, &settings(Mpm::Worker), None);
        assert!(worker.contains("\"hold-0\" = \"failed\""), "{worker}");
        assert!(worker.contains("\"last-0\" = \"failed\""), "{worker}");
        assert!(
            worker.contains("seen = [{ closed = [\"c0\", \"c1\"] }]"),
            "{worker}"
        );
    }
}
