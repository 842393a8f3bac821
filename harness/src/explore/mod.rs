//! Explore: scenarios nobody wrote, judged against the model of their MPM.
//!
//! A proptest strategy generates [`Scenario`]s; the [`Model`] predicts every request and every
//! connection's end; the scenario and its predictions are made a case file (the spec's file
//! types, [`CaseFile`], written as TOML, the catalogue's own format, by [`crate::spec::case_text`]),
//! loaded back as any case is, run against a real server and judged by the verdict. A disagreement is shrunk by proptest — each candidate run on the server again —
//! to a minimal scenario, whose case file (with the seed in a comment) is written for anyone to
//! commit: `check` accepts it and `run` fails on it the same way.

pub mod model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mpm_faults::{CrashSignal, Fault};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use refhttpd::{EventKind, Mpm};
use toml::Spanned;

use crate::explore::model::{
    End, Model, Op, Predicted, Scenario, SharedState, HOLD, MARGIN, PROBE_TIMEOUT,
};
use crate::judge::{Run, RunResult};
use crate::spec::condition::Count;
use crate::spec::file::{
    CaseFile, ConditionFile, Directives, Dur, ExpectFile, Kind, NameList, RequestExpectFile,
    ServerFile, StepFile, Text, Value,
};
use crate::spec::{Comments, ExpectedOutcome, MasterSignal, SharedExpect, Target};

/// The most connections and operations a generated scenario has: a run takes well under a
/// second.
const MAX_CONNECTIONS: usize = 4;
const MAX_OPS: usize = 6;
/// The most spare workers (beyond one per connection).
const MAX_SPARE: usize = 2;
/// How long a wait for the server to settle (a replacement started, a close done) may take.
const SETTLE: Duration = Duration::from_secs(5);
/// How long a restart may take to end the connections and start a new generation (Apache's
/// master SIGKILLs what ignores it at 9 s).
const RESTART: Duration = Duration::from_secs(12);

/// Scenarios: one to four connections, zero to two spare workers, MaxKeepAliveRequests
/// unlimited or one to three, up to six operations. Shrinking goes towards fewer connections,
/// no spare worker, no MaxKeepAliveRequests and fewer, plainer operations. The operations name
/// a connection out of four, folded onto those the scenario has: shrinking the number of
/// connections keeps the operations (a flat-mapped strategy would draw new ones).
///
/// One scenario in four draws its operations mostly from `shared:` requests ([`shared_ops`]),
/// two connections and two operations at least: in the full mix a crash, a kill or a restart
/// soon ends what a child holds at once, and two `shared:` requests seldom overlap in one child
/// to the end (TS-1).
pub fn scenarios() -> impl Strategy<Value = Scenario> {
    prop_oneof![
        3 => scenarios_of(1, every_op(), 0),
        1 => scenarios_of(2, shared_ops(), 2),
    ]
}

/// Scenarios of at least `connections` connections and `ops` operations drawn from `op`.
fn scenarios_of(
    connections: usize,
    op: BoxedStrategy<Op>,
    ops: usize,
) -> impl Strategy<Value = Scenario> {
    (
        connections..=MAX_CONNECTIONS,
        0..=MAX_SPARE,
        prop_oneof![3 => Just(0u32), 1 => 1..=3u32],
        proptest::collection::vec(op, ops..=MAX_OPS),
    )
        .prop_map(|(n, spare, max_keepalive, ops)| Scenario {
            connections: n,
            spare,
            max_keepalive,
            ops: ops.into_iter().map(|op| fold(op, n)).collect(),
        })
}

/// Every operation, plainer ones first (shrinking goes towards them).
fn every_op() -> BoxedStrategy<Op> {
    let conn = 0..MAX_CONNECTIONS;
    prop_oneof![
        3 => conn.clone().prop_map(|conn| Op::Request { conn }),
        2 => conn.clone().prop_map(|conn| Op::Hold { conn }),
        2 => conn.clone().prop_map(|conn| Op::Shared { conn }),
        2 => conn.clone().prop_map(|conn| Op::Crash { conn }),
        2 => Just(Op::Probe),
        1 => conn.clone().prop_map(|conn| Op::Kill { conn }),
        1 => conn.prop_map(|conn| Op::Close { conn }),
        1 => Just(Op::Restart),
        1 => Just(Op::Graceful),
        1 => Just(Op::Expire),
    ]
    .boxed()
}

/// Mostly `shared:` requests, with some of what orders or ends them.
fn shared_ops() -> BoxedStrategy<Op> {
    let conn = 0..MAX_CONNECTIONS;
    prop_oneof![
        2 => conn.clone().prop_map(|conn| Op::Request { conn }),
        1 => conn.clone().prop_map(|conn| Op::Hold { conn }),
        8 => conn.clone().prop_map(|conn| Op::Shared { conn }),
        1 => conn.clone().prop_map(|conn| Op::Crash { conn }),
        1 => Just(Op::Probe),
        1 => conn.prop_map(|conn| Op::Close { conn }),
        1 => Just(Op::Graceful),
    ]
    .boxed()
}

/// `op` on one of `n` connections.
fn fold(op: Op, n: usize) -> Op {
    match op {
        Op::Hold { conn } => Op::Hold { conn: conn % n },
        Op::Shared { conn } => Op::Shared { conn: conn % n },
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
pub enum Exploration {
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
pub fn explore(settings: &Settings, progress: impl Fn(&str)) -> Result<Exploration, String> {
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
        let run = match case_text(&scenario, settings, None).and_then(|t| run_text(&t, settings)) {
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
        Ok(()) => Ok(Exploration::Agreed {
            runs: runs.get(),
            took: started.elapsed(),
        }),
        Err(TestError::Fail(why, minimal)) => {
            let path = write_finding(&minimal, settings, why.message())?;
            Ok(Exploration::Mismatch(Finding {
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
    let ops: Vec<String> = s.ops.iter().map(describe_op).collect();
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

/// An operation in a few words.
fn describe_op(op: &Op) -> String {
    match op {
        Op::Hold { conn } => format!("hold c{conn}"),
        Op::Shared { conn } => format!("shared c{conn}"),
        Op::Crash { conn } => format!("crash c{conn}"),
        Op::Close { conn } => format!("close c{conn}"),
        Op::Request { conn } => format!("request c{conn}"),
        Op::Kill { conn } => format!("kill c{conn}'s child"),
        Op::Probe => "probe".to_string(),
        Op::Restart => "restart (HUP)".to_string(),
        Op::Graceful => "graceful restart (USR1)".to_string(),
        Op::Expire => "until KeepAliveTimeout".to_string(),
    }
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
    let text = case_text(s, settings, Some(why))?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The case file of a scenario, as text: see [`case_file`].
pub fn case_text(s: &Scenario, settings: &Settings, found: Option<&str>) -> Result<String, String> {
    let (file, comments) = case_file(s, settings, found);
    crate::spec::case_text(&file, &comments)
}

/// The case file of a scenario: settings sized for it, the steps (with a comment on what each
/// group is for), and the model's predictions as expectations for the settings' MPM; `found`:
/// what the verdict said of it, for the comment that heads a finding.
pub fn case_file(s: &Scenario, settings: &Settings, found: Option<&str>) -> (CaseFile, Comments) {
    let mpm = settings.mpm;
    let prediction = settings.model.predict(s);
    let n = s.connections;
    let mut comments = Comments::default();
    if let Some(why) = found {
        comments.header = vec![
            format!(
                "Found by `mpm-harness explore --mpm {mpm} --target {} --seed {}` and shrunk: the",
                settings.target, settings.seed,
            ),
            format!(
                "server disagreed with the model of {mpm} (its crash takes: {}; keep-alive {}{}).",
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
                if settings.model.threads_share_state || mpm == Mpm::Prefork {
                    ""
                } else {
                    "; each thread keeps its own state"
                },
            ),
            format!("What the verdict said: {}", why.replace('\n', " ")),
        ];
    }
    // The pool stays whole: prefork's spare minimum is the pool, so a dead child is always
    // replaced (PM-2), and worker's and event's one child is replaced as it dies.
    let pool = s.workers().to_string();
    let server = ServerFile {
        faults: true,
        all: directives([
            (
                "KeepAliveTimeout",
                format!("{}ms", s.keepalive_timeout().as_millis()),
            ),
            ("MaxKeepAliveRequests", s.max_keepalive.to_string()),
        ]),
        prefork: directives(
            [
                "StartServers",
                "MinSpareServers",
                "MaxSpareServers",
                "ServerLimit",
                "MaxRequestWorkers",
            ]
            .map(|d| (d, pool.clone())),
        ),
        threaded: directives([
            ("ServerLimit", "1".into()),
            ("StartServers", "1".into()),
            ("ThreadsPerChild", pool.clone()),
            ("MaxRequestWorkers", pool.clone()),
            ("MinSpareThreads", "1".into()),
            ("MaxSpareThreads", pool.clone()),
        ]),
        ..ServerFile::default()
    };
    let mut steps = Steps::default();
    steps.note("the pool is up");
    steps.push(wait(
        ConditionFile {
            idle_workers: Some(at_least(s.workers())),
            ..ConditionFile::default()
        },
        None,
    ));
    // Each connection warmed alone, so that the process owning it is known; under event the
    // worker is back before the next one (EV-5).
    for c in 0..n {
        steps.note(format!(
            "c{c}, warmed alone: the child owning it is known{}",
            if mpm == Mpm::Event {
                "; its worker is back before the next (EV-5)"
            } else {
                ""
            }
        ));
        steps.push(open(&conn(c)));
        steps.push(send(&conn(c), &format!("warm-{c}")));
        steps.push(await_([format!("warm-{c}")]));
        if mpm == Mpm::Event {
            steps.push(wait(
                ConditionFile {
                    busy_workers: Some(Count::Exactly(0)),
                    ..ConditionFile::default()
                },
                None,
            ));
        }
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
    let settle = |steps: &mut Steps, k: usize| {
        let idle = prediction.idle_before_op(k).unwrap_or(0);
        let restarted = s.ops[..k.min(s.ops.len())]
            .iter()
            .any(|op| matches!(op, Op::Restart | Op::Graceful));
        let within = if restarted { RESTART } else { SETTLE };
        if idle > 0 {
            steps.push(wait(
                ConditionFile {
                    idle_workers: Some(at_least(idle)),
                    ..ConditionFile::default()
                },
                Some(within),
            ));
        }
    };
    // Before a restart: until the held requests the model counts in their handlers are there.
    // (And before a graceful one under prefork and worker: until the idle connections'
    // workers wait in keep-alive.)
    let writing = |steps: &mut Steps, k: usize| {
        let at = |v: &[(usize, usize)]| v.iter().find(|(op, _)| *op == k).map(|(_, n)| *n);
        let condition = ConditionFile {
            writing_workers: at(&prediction.writing_before).map(at_least),
            keepalive_workers: at(&prediction.keepalive_before).map(at_least),
            ..ConditionFile::default()
        };
        if condition.writing_workers.is_some() || condition.keepalive_workers.is_some() {
            steps.push(wait(condition, Some(SETTLE)));
        }
    };
    // After a restart at operation k: until the new generation has started (each logs an
    // event, the first included). Apache coalesces a signal that comes while a restart is
    // under way with that restart.
    let new_generation = |steps: &mut Steps, k: usize| {
        let generations = 1 + s.ops[..=k]
            .iter()
            .filter(|op| matches!(op, Op::Restart | Op::Graceful))
            .count();
        steps.push(wait(
            ConditionFile {
                event: Some(Text(Kind(EventKind::Generation))),
                events: Some(at_least(generations)),
                ..ConditionFile::default()
            },
            Some(RESTART),
        ));
    };
    for (k, op) in s.ops.iter().enumerate() {
        steps.note(match op {
            Op::Kill { conn: c } if closed_before(*c, k) => format!(
                "operation {k}: {} — not done: the client closed c{c}, the server's end of it \
                 would never be seen",
                describe_op(op)
            ),
            _ => format!("operation {k}: {}", describe_op(op)),
        });
        settle(&mut steps, k);
        match op {
            Op::Hold { conn: c } => {
                steps.push(StepFile {
                    fault: Some(at(Text(Fault::Sleep(HOLD)))),
                    ..send(&conn(*c), &format!("hold-{k}"))
                });
                held.push(format!("hold-{k}"));
            }
            // Another shared: request may hold in the same child: until the held requests are
            // in their handlers, and a margin, so that they surely wrote before this one.
            Op::Shared { conn: c } => {
                if let Some(writing) = prediction.margin_before_op(k) {
                    if writing > 0 {
                        steps.push(wait(
                            ConditionFile {
                                writing_workers: Some(at_least(writing)),
                                ..ConditionFile::default()
                            },
                            Some(SETTLE),
                        ));
                    }
                    steps.push(StepFile {
                        sleep: Some(Text(Dur(MARGIN))),
                        reason: Some(
                            "the held shared: requests wrote their tokens before the next is \
                             sent (and the oracle, from send and answer times, can tell)"
                                .into(),
                        ),
                        ..StepFile::default()
                    });
                }
                steps.push(StepFile {
                    fault: Some(at(Text(Fault::Shared(HOLD)))),
                    ..send(&conn(*c), &format!("shared-{k}"))
                });
                held.push(format!("shared-{k}"));
            }
            Op::Crash { conn: c } => {
                steps.push(StepFile {
                    fault: Some(at(Text(Fault::Crash(CrashSignal::Segv)))),
                    ..send(&conn(*c), &format!("crash-{k}"))
                });
                steps.push(await_([format!("crash-{k}")]));
            }
            Op::Close { conn: c } => steps.push(StepFile {
                close: Some(names([conn(*c)])),
                ..StepFile::default()
            }),
            // SIGKILL to the child that answered the warm-up, then until the server has ended
            // the connection (at once when an earlier death did). Not after the client's own
            // close of it: the server's end would never be seen.
            Op::Kill { conn: c } if !closed_before(*c, k) => {
                steps.push(StepFile {
                    kill_child_of: Some(at(format!("warm-{c}"))),
                    ..StepFile::default()
                });
                wait_closed(&mut steps, &[*c], Duration::from_secs(3));
            }
            Op::Kill { .. } => {}
            // Once the workers the model expects free are idle (what the probe's answer
            // depends on: a replacement started, a close done), a new connection whose client
            // gives up after PROBE_TIMEOUT. With `Connection: close`: the server ends it after
            // its response, so no worker has to notice the client's close later (under
            // Apache's event a worker reads that end, and a request arriving meanwhile may
            // find none free).
            Op::Probe => {
                let probe = format!("p{k}");
                steps.push(open(&probe));
                steps.push(StepFile {
                    connection_close: true,
                    ..send(&probe, &format!("probe-{k}"))
                });
                steps.push(StepFile {
                    timeout: Some(Text(Dur(PROBE_TIMEOUT))),
                    ..await_([format!("probe-{k}")])
                });
                steps.push(StepFile {
                    close: Some(names([probe])),
                    ..StepFile::default()
                });
            }
            // Once the held requests are in their handlers, HUP; then until the server has
            // ended every connection the client kept and the new generation has started.
            // Apache's old children go once their handlers return (400 ms here), but a worker
            // child stopping gracefully (an earlier USR1) ignores the restart while a thread
            // waits on a kept-alive connection, until the master's SIGKILL at 9 s.
            Op::Restart => {
                writing(&mut steps, k);
                steps.push(signal(MasterSignal::Restart));
                wait_closed(&mut steps, &kept_before(k), RESTART);
                new_generation(&mut steps, k);
            }
            // USR1, then until the new generation has started (every generation logs one
            // event, the first included) — the old children have been told by then — and under
            // event until its listener has closed the idle connections (Apache's may wait for a
            // worker to free: a held request's 400 ms).
            Op::Graceful => {
                writing(&mut steps, k);
                steps.push(signal(MasterSignal::Graceful));
                new_generation(&mut steps, k);
                let closed: Vec<usize> = prediction
                    .closed_at
                    .iter()
                    .filter(|(op, _)| *op == k)
                    .flat_map(|(_, conns)| conns.iter().copied())
                    .collect();
                wait_closed(&mut steps, &closed, Duration::from_secs(3));
            }
            // Until the server has ended every connection the client kept: KeepAliveTimeout
            // after the last of what is held on it.
            Op::Expire => wait_closed(&mut steps, &kept_before(k), RESTART),
            Op::Request { conn: c } => {
                steps.push(send(&conn(*c), &format!("req-{k}")));
                steps.push(await_([format!("req-{k}")]));
            }
        }
    }
    // A request on every connection the client did not close: whether it is answered says
    // whether the server kept the connection. Where the model settles the server first
    // (event, an idle connection), they go one at a time.
    steps.note("a request on every connection the client kept: answered if the server kept it");
    let mut last = Vec::new();
    for c in kept_before(s.ops.len()) {
        let k = s.ops.len() + c;
        let alone = prediction.idle_before_op(k).is_some();
        settle(&mut steps, k);
        steps.push(send(&conn(c), &format!("last-{c}")));
        if alone {
            steps.push(await_([format!("last-{c}")]));
        }
        last.push(format!("last-{c}"));
    }
    let awaited: Vec<String> = held.into_iter().chain(last).collect();
    if !awaited.is_empty() {
        steps.push(await_(awaited));
    }
    // The predictions.
    let mut expect = ExpectFile::default();
    for r in &prediction.requests {
        // What a shared: request finds, where the model is sure (TS-1).
        let shared = match r.shared {
            Some(SharedState::Intact) => Some(SharedExpect::Intact),
            Some(SharedState::Clobbered) => Some(SharedExpect::Clobbered),
            Some(SharedState::Either) | None => None,
        };
        let outcome = match (r.outcome, r.latency) {
            (Predicted::Answered, Some(latency)) => RequestExpectFile {
                status: Some(200),
                latency_at_least: latency.at_least.filter(|l| !l.is_zero()),
                latency_at_most: latency.at_most,
                shared,
                ..RequestExpectFile::default()
            },
            (Predicted::Answered, None) => RequestExpectFile {
                status: Some(200),
                shared,
                ..RequestExpectFile::default()
            },
            (Predicted::Failed, _) => RequestExpectFile {
                outcome: Some(ExpectedOutcome::Failed),
                ..RequestExpectFile::default()
            },
            (Predicted::TimedOut, _) => RequestExpectFile {
                outcome: Some(ExpectedOutcome::Timeout),
                ..RequestExpectFile::default()
            },
            // Left open by timing: any outcome (it is awaited all the same).
            (Predicted::Either, _) => continue,
        };
        expect.requests.insert(at(r.name.clone()), outcome);
    }
    let cut: Vec<String> = (0..n)
        .filter(|c| prediction.ends[*c] == End::ClosedByServer)
        .map(conn)
        .collect();
    if !cut.is_empty() {
        expect.seen.push(at(closed(cut)));
    }
    expect.never = (0..n)
        .filter(|c| matches!(prediction.ends[*c], End::Open | End::ClosedByClient))
        .map(|c| at(closed([conn(c)])))
        .collect();
    let file = CaseFile {
        // The folder it is written to is its theme.
        id: at(format!(
            "{}/{}-{}-seed-{}",
            settings
                .out
                .file_name()
                .map_or("found".into(), |n| n.to_string_lossy()),
            mpm.as_str(),
            settings.target.as_str(),
            settings.seed,
        )),
        title: format!("explored: {}", describe(s)),
        checks: Vec::new(),
        tags: vec!["explored".into()],
        mpms: Some(vec![mpm]),
        targets: Some(vec![settings.target]),
        server,
        steps: steps.steps,
        expect: BTreeMap::from([(at(mpm.as_str().to_string()), expect)]),
    };
    comments.steps = steps.notes;
    (file, comments)
}

/// The steps of a case being written, and the comments that start their groups.
#[derive(Default)]
struct Steps {
    steps: Vec<Spanned<StepFile>>,
    notes: BTreeMap<usize, String>,
}

impl Steps {
    /// The steps pushed next are for `what`.
    fn note(&mut self, what: impl Into<String>) {
        self.notes.insert(self.steps.len(), what.into());
    }

    fn push(&mut self, step: StepFile) {
        self.steps.push(at(step));
    }
}

/// A value made here, at no place in a file.
fn at<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// Scenario connection `c`.
fn conn(c: usize) -> String {
    format!("c{c}")
}

fn names(list: impl IntoIterator<Item = String>) -> Spanned<NameList> {
    at(NameList(list.into_iter().collect()))
}

fn at_least(n: usize) -> Count {
    Count::Range {
        at_least: Some(n as u64),
        at_most: None,
    }
}

fn directives<const N: usize>(list: [(&str, String); N]) -> Directives {
    list.into_iter()
        .map(|(name, value)| (at(name.to_string()), at(Value(value))))
        .collect()
}

/// The condition that the server has ended these connections.
fn closed(conns: impl IntoIterator<Item = String>) -> ConditionFile {
    ConditionFile {
        closed: Some(names(conns)),
        ..ConditionFile::default()
    }
}

fn open(conn: &str) -> StepFile {
    StepFile {
        open: Some(names([conn.to_string()])),
        ..StepFile::default()
    }
}

/// A plain request on `conn`, named `name`.
fn send(conn: &str, name: &str) -> StepFile {
    StepFile {
        send: Some(at(conn.to_string())),
        as_: Some(at(name.to_string())),
        ..StepFile::default()
    }
}

fn await_(requests: impl IntoIterator<Item = String>) -> StepFile {
    StepFile {
        await_: Some(names(requests)),
        ..StepFile::default()
    }
}

fn wait(condition: ConditionFile, within: Option<Duration>) -> StepFile {
    StepFile {
        wait: Some(at(condition)),
        within: within.map(|d| Text(Dur(d))),
        ..StepFile::default()
    }
}

fn signal(signal: MasterSignal) -> StepFile {
    StepFile {
        signal: Some(signal),
        ..StepFile::default()
    }
}

/// A step that waits until the server has ended these connections (none: no step).
fn wait_closed(steps: &mut Steps, conns: &[usize], within: Duration) {
    if !conns.is_empty() {
        steps.push(wait(closed(conns.iter().map(|c| conn(*c))), Some(within)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Case;

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
                let text = case_text(&s, &settings(mpm), Some("why")).expect("written");
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
        let prefork = case_text(&s, &settings(Mpm::Prefork), None).expect("written");
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
        let worker = case_text(&s, &settings(Mpm::Worker), None).expect("written");
        assert!(worker.contains("\"hold-0\" = \"failed\""), "{worker}");
        assert!(worker.contains("\"last-0\" = \"failed\""), "{worker}");
        assert!(
            worker.contains("seen = [{ closed = [\"c0\", \"c1\"] }]"),
            "{worker}"
        );
    }

    #[test]
    fn a_shared_request_written_while_another_holds_expects_what_the_model_is_sure_of() {
        let s = Scenario {
            connections: 2,
            spare: 0,
            max_keepalive: 0,
            ops: vec![Op::Shared { conn: 0 }, Op::Shared { conn: 1 }],
        };
        let worker = case_text(&s, &settings(Mpm::Worker), None).expect("written");
        for line in [
            "fault = \"shared:400ms\"",
            "wait = { writing_workers = { at_least = 1 } }",
            "sleep = \"100ms\"",
            "\"shared-0\" = { status = 200, latency_at_least = \"400ms\", latency_at_most = \"2400ms\", shared = \"clobbered\" }",
            "\"shared-1\" = { status = 200, latency_at_least = \"400ms\", latency_at_most = \"2400ms\", shared = \"intact\" }",
        ] {
            assert!(worker.contains(line), "{line}\n{worker}");
        }
        // The wrong model writes the same steps, and intact for both.
        let wrong = Settings {
            model: Model::isolating_threads(Mpm::Worker),
            ..settings(Mpm::Worker)
        };
        let wrong = case_text(&s, &wrong, Some("why")).expect("written");
        assert_eq!(wrong.matches("shared = \"intact\"").count(), 2, "{wrong}");
        assert!(wrong.contains("each thread keeps its own state"), "{wrong}");
        // Prefork: a child each, no wait, intact.
        let prefork = case_text(&s, &settings(Mpm::Prefork), None).expect("written");
        assert!(!prefork.contains("sleep"), "{prefork}");
        assert_eq!(
            prefork.matches("shared = \"intact\"").count(),
            2,
            "{prefork}"
        );
    }

    /// What a case loads to, but for the lines its steps are on.
    fn shape(case: &Case) -> (Vec<String>, String, String) {
        let steps = case
            .steps
            .iter()
            .map(|s| format!("{:?} {:?} {:?}", s.only, s.targets, s.action))
            .collect();
        let head = format!(
            "{} {} {:?} {:?} {:?} {:?} {:?}",
            case.id, case.title, case.checks, case.tags, case.mpms, case.targets, case.server
        );
        (steps, head, format!("{:#?}", case.expect))
    }

    proptest! {
        /// A generated case reads back to itself: its text loads to the case its file loads to
        /// (the same steps, the same expectations), and the file read from the text writes the
        /// same text.
        #[test]
        fn a_generated_case_reads_back_to_the_same_steps(s in scenarios()) {
            for mpm in Mpm::ALL {
                let (file, comments) = case_file(&s, &settings(mpm), Some("why"));
                let text = crate::spec::case_text(&file, &comments).expect("written");
                let case = crate::spec::parse(Path::new("x.toml"), &text).expect("loads");
                let steps: usize = file.steps.iter().map(|s| match s.get_ref().action() {
                    Ok(crate::spec::file::StepAction::Request(_)) => 2,
                    _ => 1,
                }).sum();
                prop_assert_eq!(case.steps.len(), steps);
                let reread: CaseFile = toml::from_str(&text).expect("reads");
                let again = crate::spec::case_text(&reread, &comments).expect("written");
                prop_assert_eq!(&again, &text);
                let plain = crate::spec::case_text(&file, &Comments::default()).expect("written");
                let plain = crate::spec::parse(Path::new("x.toml"), &plain).expect("loads");
                prop_assert_eq!(shape(&plain), shape(&case));
            }
        }
    }

    /// The explorer's cases load to what they loaded to when it wrote them line by line
    /// (`tests/fixtures/explored/`, written by that writer): the same server, steps and
    /// expectations, for scenarios with every operation.
    #[test]
    fn generated_cases_load_as_before() {
        let scenarios = [
            (
                "mixed",
                Scenario {
                    connections: 3,
                    spare: 1,
                    max_keepalive: 2,
                    ops: vec![
                        Op::Hold { conn: 0 },
                        Op::Crash { conn: 1 },
                        Op::Probe,
                        Op::Close { conn: 2 },
                        Op::Kill { conn: 2 },
                        Op::Request { conn: 0 },
                    ],
                },
            ),
            (
                "restarts",
                Scenario {
                    connections: 2,
                    spare: 0,
                    max_keepalive: 0,
                    ops: vec![
                        Op::Kill { conn: 0 },
                        Op::Restart,
                        Op::Graceful,
                        Op::Hold { conn: 1 },
                        Op::Expire,
                        Op::Probe,
                    ],
                },
            ),
        ];
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explored");
        for (name, s) in scenarios {
            for mpm in Mpm::ALL {
                let settings = Settings {
                    out: PathBuf::from("/tmp/found"),
                    ..settings(mpm)
                };
                let text =
                    case_text(&s, &settings, Some("a check failed:\nhere")).expect("written");
                let path = fixtures.join(format!("{name}-{mpm}.toml"));
                let before = std::fs::read_to_string(&path).expect("fixture");
                let header = |t: &str| -> Vec<String> {
                    t.lines()
                        .take_while(|l| l.starts_with('#'))
                        .map(String::from)
                        .collect()
                };
                assert_eq!(header(&text), header(&before), "{name}, {mpm}");
                let now =
                    crate::spec::parse(&path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
                let then = crate::spec::parse(&path, &before).expect("the fixture loads");
                assert_eq!(shape(&now), shape(&then), "{name}, {mpm}:\n{text}");
            }
        }
    }
}
