//! Verdicts: a pure function of (case, MPM, the target's capabilities, the recording).
//!
//! Each check is passed, failed or not judged (reference-only on another target, or an
//! observable the target lacks), and says what was expected and what was seen. A run whose
//! harness broke is an error, not a conformance failure and never a pass.
//!
//! The central oracle is the crash blast radius: when a child dies, the requests that fail are
//! exactly those whose connections it owned — the crashing one under `connection` scope
//! (prefork), every connection of the child, busy or idle, under `process` scope (worker, event)
//! — and every other request succeeds; optionally the pool is whole again within a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mpm_faults::BlastRadius;
use refhttpd::Mpm;
use serde::{Deserialize, Serialize};

use crate::observe::{Ending, Entry, Observation, Outcome, Recording, State, StepResult, Summary};
use crate::spec::condition::{Condition, Facts};
use crate::spec::{
    BodyShape, Case, ConnectExpect, CrashExpect, Expect, ExpectedOutcome, HeaderExpect,
    RequestExpect, Target,
};
use crate::target::Capabilities;

/// What a check came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    /// Not judged on this target, and why.
    NotJudged(String),
}

/// What a check is about: where the report shows its moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum About {
    /// The run as a whole.
    #[default]
    Run,
    /// A step of the scenario, by its line.
    Step { line: usize },
    /// A named request.
    Request { name: String },
    /// The crash oracle (the fault that caused it).
    Crash,
    /// A named load.
    Load { name: String },
}

/// One judged expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub what: String,
    /// What it is about (the report links a failed check to that moment).
    #[serde(default)]
    pub about: About,
    pub status: Status,
    /// What was observed (and, when it failed, what was expected).
    pub detail: String,
}

impl Check {
    fn new(what: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            about: About::Run,
            status: if passed {
                Status::Passed
            } else {
                Status::Failed
            },
            detail: detail.into(),
        }
    }

    fn fail(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(what, false, detail)
    }

    fn pass(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(what, true, detail)
    }

    /// This check, about `about`.
    pub fn about(mut self, about: About) -> Check {
        self.about = about;
        self
    }

    /// This check, not judged for `why`.
    fn not_judged(mut self, why: impl Into<String>) -> Check {
        self.status = Status::NotJudged(why.into());
        self
    }

    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Failed
    }
}

/// What a run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Every judged check passed.
    Passed,
    /// A check failed: the server does not conform.
    Failed,
    /// The harness broke: nothing was judged.
    Error,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Passed => "PASS",
            RunResult::Failed => "FAIL",
            RunResult::Error => "ERROR",
        }
    }
}

/// All checks of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub result: RunResult,
    pub checks: Vec<Check>,
    /// Why the harness broke, for `Error`.
    pub error: Option<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.result == RunResult::Passed
    }

    /// Some check was not judged.
    pub fn has_not_judged(&self) -> bool {
        self.checks
            .iter()
            .any(|c| matches!(c.status, Status::NotJudged(_)))
    }
}

/// A judged run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub case: String,
    pub mpm: Mpm,
    pub target: Target,
    pub verdict: Verdict,
    pub recording: Recording,
    pub duration_ms: f64,
}

/// Judges a recording.
pub fn judge(case: &Case, mpm: Mpm, caps: &Capabilities, rec: &Recording) -> Verdict {
    if let Some(error) = &rec.error {
        return Verdict {
            result: RunResult::Error,
            checks: Vec::new(),
            error: Some(error.clone()),
        };
    }
    let timeline = rec.scenario();
    let state = State::replay(timeline);
    let judge = Judge {
        timeline,
        rec,
        state: &state,
        caps,
    };
    let mut checks = judge.steps();
    checks.extend(judge.master_serves_nothing());
    checks.extend(judge.section(&case.expectations(mpm), false));
    checks.extend(judge.section(&case.reference_expectations(mpm), true));
    let result = if checks.iter().any(Check::failed) {
        RunResult::Failed
    } else {
        RunResult::Passed
    };
    Verdict {
        result,
        checks,
        error: None,
    }
}

const REFERENCE_ONLY: &str = "reference-only: Apache cannot meet it by design";

struct Judge<'a> {
    timeline: &'a [Entry],
    rec: &'a Recording,
    state: &'a State,
    caps: &'a Capabilities,
}

impl Judge<'_> {
    /// The scenario's own verdict items: checks, and waits or awaits that never held.
    fn steps(&self) -> Vec<Check> {
        self.rec
            .steps
            .iter()
            .filter_map(|s| {
                let what = format!("line {}: {}", s.line, s.text);
                let about = About::Step { line: s.line };
                match &s.result {
                    StepResult::Held | StepResult::GaveUp { .. } => None,
                    StepResult::TimedOut { observed } => Some(Check::fail(
                        what,
                        format!("never held; last observed {observed}"),
                    )),
                    StepResult::Pending { requests } => Some(Check::fail(
                        what,
                        format!("no outcome in time for {}", requests.join(", ")),
                    )),
                    StepResult::Checked { held, observed } => {
                        Some(Check::new(what, *held, format!("observed {observed}")))
                    }
                    StepResult::Failed { why } => Some(Check::fail(what, why.clone())),
                }
                .map(|c| c.about(about))
            })
            .collect()
    }

    /// The master's exit code (from the whole recording: it may leave as the scenario ends).
    fn master_exit(&self, code: i32) -> Check {
        let ending = self
            .rec
            .timeline
            .iter()
            .find_map(|entry| match &entry.what {
                Observation::MasterExited {
                    ending,
                    outlived_by,
                } => Some((*ending, outlived_by)),
                _ => None,
            });
        let what = format!("the master exits with code {code}, after every process it started");
        match ending {
            Some((Ending::Exited(c), outlived_by)) if outlived_by.is_empty() => {
                Check::new(what, c == code, format!("exit code {c}"))
            }
            Some((Ending::Exited(c), outlived_by)) => Check::fail(
                what,
                format!("exit code {c}, while pids {outlived_by:?} of its group still ran"),
            ),
            Some((other, _)) => Check::fail(what, format!("ended: {other}")),
            None => Check::fail(what, "the master did not exit"),
        }
    }

    /// Whether some line of the server's error log contains `text` (`wanted`) or none does.
    fn log_line(&self, text: &str, wanted: bool) -> Check {
        let line = self.rec.server_log.lines().find(|l| l.contains(text));
        let what = if wanted {
            format!("the error log has {text:?}")
        } else {
            format!("the error log never has {text:?}")
        };
        let observed = match line {
            Some(l) => format!("logged: {}", l.trim()),
            None => match nearest_lines(&self.rec.server_log, text) {
                (_, near) if near.is_empty() => "no such line (the log is empty)".to_string(),
                (shared, near) => format!(
                    "no such line; {}: {}",
                    if shared {
                        "nearest"
                    } else {
                        "none shares a word; the log ends"
                    },
                    near.iter()
                        .map(|l| format!("{:?}", l.trim()))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            },
        };
        Check::new(what, line.is_some() == wanted, observed)
    }

    /// How long opening `conn` took (ListenBacklog: a handshake the backlog had no room for).
    fn connect(&self, conn: &str, e: &ConnectExpect) -> Check {
        let took = self.timeline.iter().find_map(|entry| match &entry.what {
            Observation::ConnOpened { conn: c, took_ms } if c == conn => Some(*took_ms),
            _ => None,
        });
        let what = format!("connection {conn} {e}");
        match took {
            Some(ms) => Check::new(
                what,
                e.holds(Duration::from_secs_f64(ms / 1000.0)),
                format!("opened in {ms:.1} ms"),
            ),
            None => Check::fail(what, "never opened"),
        }
    }

    /// PM-1, in every run: no response came from the master itself.
    fn master_serves_nothing(&self) -> Option<Check> {
        let master = self.rec.master?;
        let by_master: Vec<&str> = self
            .state
            .outcomes
            .iter()
            .filter(|(_, o)| o.pid() == Some(master))
            .map(|(name, _)| name.as_str())
            .collect();
        Some(Check::new(
            "the master serves no request",
            by_master.is_empty(),
            if by_master.is_empty() {
                format!("no response from master pid {master}")
            } else {
                format!(
                    "served by the master (pid {master}): {}",
                    by_master.join(", ")
                )
            },
        ))
    }

    /// The checks of one (merged) expectation section.
    fn section(&self, expect: &Expect, reference_only: bool) -> Vec<Check> {
        let mut checks = Vec::new();
        for (name, e) in &expect.requests {
            checks.push(self.request(name, e));
        }
        for (conn, e) in &expect.connects {
            checks.push(self.connect(conn, e));
        }
        if let Some(code) = expect.master_exit {
            checks.push(self.master_exit(code));
        }
        for text in &expect.log_has {
            checks.push(self.log_line(text, true));
        }
        for text in &expect.log_never {
            checks.push(self.log_line(text, false));
        }
        if let Some(e) = &expect.other_requests {
            for sent in self
                .rec
                .sent
                .iter()
                .filter(|s| !expect.requests.contains_key(&s.name))
            {
                checks.push(self.request(&sent.name, e));
            }
        }
        if let Some(crash) = &expect.crash {
            checks.extend(self.crash(crash).into_iter().map(|c| c.about(About::Crash)));
        }
        for (name, e) in &expect.loads {
            let run = self.rec.loads.iter().find(|l| &l.name == name);
            checks.extend(
                load::expectation(name, e, run)
                    .into_iter()
                    .map(|c| c.about(About::Load { name: name.clone() })),
            );
        }
        for (kind, count) in &expect.events {
            let n = self.state.events(*kind);
            let check = Check::new(
                format!("server event {kind} ×{count}"),
                count.holds(n),
                format!("observed {n}"),
            );
            checks.push(if self.caps.reports(*kind) {
                check
            } else {
                check.not_judged(format!("the target does not report {kind} events"))
            });
        }
        for cond in &expect.seen {
            let at = first_held(self.timeline, cond);
            let check = Check::new(
                format!("seen: {cond}"),
                at.is_some(),
                at.map(|at| format!("at {at:.0} ms"))
                    .unwrap_or_else(|| "never observed".into()),
            );
            checks.push(self.observable(check, cond));
        }
        for cond in &expect.never {
            let at = first_held(self.timeline, cond);
            let check = Check::new(
                format!("never: {cond}"),
                at.is_none(),
                at.map(|at| format!("observed at {at:.0} ms"))
                    .unwrap_or_else(|| "never observed".into()),
            );
            checks.push(self.observable(check, cond));
        }
        if reference_only && !self.caps.judges_reference_only {
            checks = checks
                .into_iter()
                .map(|c| match c.status {
                    Status::NotJudged(_) => c,
                    _ => c.not_judged(REFERENCE_ONLY),
                })
                .collect();
        }
        checks
    }

    /// `check`, or not judged when the target cannot observe what `cond` speaks of.
    fn observable(&self, check: Check, cond: &Condition) -> Check {
        if let Some(s) = cond.sources().into_iter().find(|s| !self.caps.has(*s)) {
            return check.not_judged(format!("the target has no {}", s.as_str()));
        }
        if let Some(k) = cond.event_kinds().find(|k| !self.caps.reports(*k)) {
            return check.not_judged(format!("the target does not report {k} events"));
        }
        check
    }

    fn request(&self, name: &str, e: &RequestExpect) -> Check {
        let check = request_check(name, e, self.state).about(About::Request {
            name: name.to_string(),
        });
        if e.reference_only && !self.caps.judges_reference_only {
            check.not_judged(REFERENCE_ONLY)
        } else {
            check
        }
    }

    /// The crash oracle.
    fn crash(&self, spec: &CrashExpect) -> Vec<Check> {
        let timeline = self.timeline;
        let state = self.state;
        let mut checks = Vec::new();
        let deaths: Vec<(f64, i32, String)> = timeline
            .iter()
            .filter_map(|e| match &e.what {
                Observation::ChildExited { pid, ending } if ending.is_crash() => {
                    Some((e.at_ms, *pid, ending.to_string()))
                }
                _ => None,
            })
            .collect();
        if deaths.is_empty() {
            checks.push(Check::fail(
                "a child crashed",
                "no child died by a signal or a non-zero exit",
            ));
            return checks;
        }
        let dead: BTreeSet<i32> = deaths.iter().map(|d| d.1).collect();
        checks.push(Check::pass(
            "a child crashed",
            deaths
                .iter()
                .map(|(at, pid, how)| format!("pid {pid} ({how}) at {at:.0} ms"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
        // The moment the crash was seen: the earliest failure of a fatal request, a kill, or
        // the exit.
        let fatal: BTreeSet<&str> = self
            .rec
            .sent
            .iter()
            .filter(|s| s.fatal())
            .map(|s| s.name.as_str())
            .collect();
        let crash_at = timeline
            .iter()
            .filter_map(|e| match &e.what {
                Observation::RequestFailed { request, .. } if fatal.contains(request.as_str()) => {
                    Some(e.at_ms)
                }
                Observation::Killed { .. } => Some(e.at_ms),
                _ => None,
            })
            .chain(deaths.iter().map(|d| d.0))
            .fold(f64::INFINITY, f64::min);
        // A connection the client closed before the crash is not the crash's to end: whichever
        // of its two closes was recorded first, it leaves the oracle's view at the client's.
        let client_closed = client_closed_before(timeline, crash_at);
        let owners: BTreeMap<String, i32> = owners_before(timeline, crash_at)
            .into_iter()
            .filter(|(conn, _)| !client_closed.contains(conn.as_str()))
            .collect();
        let owned_by_dead = |conn: &str| owners.get(conn).is_some_and(|p| dead.contains(p));
        // The exit is observed late (a log line, a zombie): the first connection of the dead
        // child that the server cut tells the moment sooner.
        let crash_at = timeline
            .iter()
            .take_while(|e| e.at_ms <= crash_at)
            .filter_map(|e| match &e.what {
                Observation::RequestFailed { conn, .. }
                | Observation::ConnClosedByServer { conn, .. }
                    if owned_by_dead(conn) =>
                {
                    Some(e.at_ms)
                }
                _ => None,
            })
            .fold(crash_at, f64::min);
        let process = spec.scope == BlastRadius::Process;

        let mut problems = Vec::new();
        for sent in &self.rec.sent {
            let (name, conn) = (sent.name.as_str(), sent.conn.as_str());
            if client_closed.contains(conn) && !sent.fatal() {
                // Its fate was the client's close, before the crash.
                continue;
            }
            let outcome = state.outcomes.get(name);
            let failed = !matches!(outcome, Some(Outcome::Response { .. }));
            // A response from the dead child was written before it died, however late its
            // reader recorded it: the request was not in flight at the crash.
            let answered_by_dead = outcome
                .and_then(Outcome::pid)
                .is_some_and(|p| dead.contains(&p));
            let may_fail = sent.fatal()
                || (process
                    && owned_by_dead(conn)
                    && !answered_by_dead
                    && !answered_before(timeline, name, crash_at));
            if failed && !may_fail {
                let why = if owners.contains_key(conn) || !process {
                    ""
                } else {
                    " — no response before the crash told which child owned that connection"
                };
                problems.push(format!(
                    "failed but should not: {name} on {conn} ({}){why}",
                    describe_outcome(outcome)
                ));
            }
            if !failed && may_fail {
                problems.push(format!(
                    "should have failed: {name} on {conn} survived ({})",
                    describe_outcome(outcome)
                ));
            }
        }
        if process {
            // Idle connections of the dead child are cut too.
            let idle_survivors: Vec<&String> = owners
                .iter()
                .filter(|(conn, pid)| dead.contains(pid) && !state.closed_conns.contains_key(*conn))
                .map(|(conn, _)| conn)
                .collect();
            if !idle_survivors.is_empty() {
                problems.push(format!(
                    "connections of the crashed child still open: {idle_survivors:?}"
                ));
            }
        }
        let scope_text = if process {
            "exactly the requests on connections the crashed child owned fail"
        } else {
            "only the requests that carried the crash fail"
        };
        let failed_names: Vec<&str> = self
            .rec
            .sent
            .iter()
            .filter(|s| !matches!(state.outcomes.get(&s.name), Some(Outcome::Response { .. })))
            .map(|s| s.name.as_str())
            .collect();
        checks.push(Check::new(
            format!("blast radius ({}): {scope_text}", spec.scope),
            problems.is_empty(),
            if problems.is_empty() {
                format!(
                    "failed: {failed_names:?}; connections owned by the crashed child: {:?}",
                    owners
                        .iter()
                        .filter(|(_, p)| dead.contains(p))
                        .map(|(c, _)| c)
                        .collect::<Vec<_>>()
                )
            } else {
                problems.join("; ")
            },
        ));
        // Under load, per request: the earliest the crash can have been is when its cause
        // went out.
        let cause_sent = timeline
            .iter()
            .filter_map(|e| match &e.what {
                Observation::RequestSent { request, .. } if fatal.contains(request.as_str()) => {
                    Some(e.at_ms)
                }
                Observation::Killed { .. } => Some(e.at_ms),
                _ => None,
            })
            .chain(
                self.rec
                    .loads
                    .iter()
                    .flat_map(|l| l.requests.iter().filter(|r| r.fatal).map(|r| r.at_ms)),
            )
            .fold(f64::INFINITY, f64::min)
            .min(crash_at);
        for run in &self.rec.loads {
            checks.push(load::blast_radius(run, &dead, cause_sent, spec.scope));
        }
        if let Some(within) = spec.recovered_within {
            let check = recovery_check(timeline, crash_at, &dead, within);
            checks.push(
                if spec.recovery_reference_only && !self.caps.judges_reference_only {
                    check.not_judged(REFERENCE_ONLY)
                } else {
                    check
                },
            );
        }
        checks
    }
}

/// The first moment (ms) at which `cond` held while replaying the timeline.
fn first_held(timeline: &[Entry], cond: &Condition) -> Option<f64> {
    let mut state = State::default();
    for e in timeline {
        state.apply(&e.what);
        if cond.holds(&state) {
            return Some(e.at_ms);
        }
    }
    None
}

fn outcome_matches(want: ExpectedOutcome, outcome: Option<&Outcome>) -> bool {
    use crate::observe::ErrorClass as E;
    let class = match outcome {
        None => return want == ExpectedOutcome::Pending,
        Some(Outcome::Response { .. }) => return want == ExpectedOutcome::Ok,
        Some(Outcome::Failed { class, .. }) => *class,
    };
    match want {
        ExpectedOutcome::Ok | ExpectedOutcome::Pending => false,
        ExpectedOutcome::Failed => true,
        // A connection cut before the response may surface as EOF or RST.
        ExpectedOutcome::Closed | ExpectedOutcome::Reset => matches!(class, E::Closed | E::Reset),
        ExpectedOutcome::Refused => class == E::Refused,
        ExpectedOutcome::Timeout => class == E::Timeout,
    }
}

fn request_check(name: &str, e: &RequestExpect, s: &State) -> Check {
    let outcome = s.outcomes.get(name);
    let mut problems = Vec::new();
    if let Some(want) = e.outcome {
        if !outcome_matches(want, outcome) {
            problems.push(format!(
                "expected outcome {}",
                serde_json::to_value(want)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(status) = e.status {
        match outcome {
            Some(Outcome::Response { status: got, .. }) if *got == status => {}
            _ => problems.push(format!("expected status {status}")),
        }
    }
    let latency = outcome.map(Outcome::latency);
    if let Some(min) = e.latency_at_least {
        if latency.is_none_or(|l| l < min) {
            problems.push(format!("expected latency ≥ {min:?}"));
        }
    }
    if let Some(max) = e.latency_at_most {
        if latency.is_none_or(|l| l > max) {
            problems.push(format!("expected latency ≤ {max:?}"));
        }
    }
    if let Some(closes) = e.closes {
        if let Some(problem) = closes_problem(name, closes, outcome, s) {
            problems.push(problem);
        }
    }
    if let Some(want) = e.bytes {
        match outcome {
            Some(Outcome::Response { bytes, .. }) if *bytes == want => {}
            _ => problems.push(format!("expected a body of {want} bytes")),
        }
    }
    if let Some(want) = e.body {
        match outcome {
            Some(Outcome::Response { body, .. }) if *body == want => {}
            _ => problems.push(format!("expected {} body", body_words(want))),
        }
    }
    for (name, want) in &e.headers {
        if let Some(problem) = header_problem(name, want, outcome) {
            problems.push(problem);
        }
    }
    let pid_of = |r: &str| s.outcomes.get(r).and_then(Outcome::pid);
    if let Some(other) = &e.same_child_as {
        if pid_of(name).is_none() || pid_of(name) != pid_of(other) {
            problems.push(format!(
                "expected the same child as {other} ({})",
                pid_text(pid_of(other))
            ));
        }
    }
    if let Some(other) = &e.other_child_than {
        if pid_of(name).is_none() || pid_of(name) == pid_of(other) {
            problems.push(format!(
                "expected another child than {other} ({})",
                pid_text(pid_of(other))
            ));
        }
    }
    let observed = describe_outcome(outcome);
    let headers_checked: Vec<String> = e
        .headers
        .iter()
        .map(|(name, want)| match want {
            HeaderExpect::Value(v) => format!("{name}: {v:?}"),
            HeaderExpect::Present(true) => format!("{name} present"),
            HeaderExpect::Present(false) => format!("no {name}"),
        })
        .collect();
    Check::new(
        format!("request {name}"),
        problems.is_empty(),
        if !problems.is_empty() {
            format!("{}; observed {observed}", problems.join(", "))
        } else if headers_checked.is_empty() {
            observed
        } else {
            format!(
                "{observed}; headers as expected: {}",
                headers_checked.join(", ")
            )
        },
    )
}

/// What is wrong with how the response to `name` left its connection, if anything: `closes`
/// asks that it said `Connection: close` (and the server closed), or that it did not.
fn closes_problem(
    name: &str,
    closes: bool,
    outcome: Option<&Outcome>,
    s: &State,
) -> Option<String> {
    let said_close = match outcome {
        Some(Outcome::Response { closes: c, .. }) => *c,
        _ => {
            return Some(if closes {
                "expected a response saying `Connection: close`".into()
            } else {
                "expected a response that keeps the connection open".into()
            })
        }
    };
    if said_close == closes {
        return None;
    }
    let conn = s.entries.iter().find_map(|e| match &e.what {
        Observation::Response { request, conn, .. } if request == name => Some(conn.as_str()),
        _ => None,
    });
    let server_closed = conn.is_some_and(|c| s.closed_conns.contains_key(c));
    Some(if closes {
        format!(
            "expected the response to say `Connection: close` and the server to close the \
             connection; the response did not say it{}",
            if server_closed {
                " (the server closed the connection later)"
            } else {
                ", and the connection stayed open"
            }
        )
    } else {
        format!(
            "expected the connection kept open after this response; the response said \
             `Connection: close`{}",
            if server_closed {
                " and the server closed the connection"
            } else {
                ""
            }
        )
    })
}

fn body_words(shape: BodyShape) -> &'static str {
    match shape {
        BodyShape::Empty => "an empty",
        BodyShape::Pattern => "the pattern's",
        BodyShape::Other => "another",
    }
}

/// What is wrong with header `name` of the response, if anything.
fn header_problem(name: &str, want: &HeaderExpect, outcome: Option<&Outcome>) -> Option<String> {
    let Some(Outcome::Response { headers, .. }) = outcome else {
        return Some(format!("expected a response with header {name}"));
    };
    let got = crate::drive::client::header(headers, name);
    let shown = |v: Option<&str>| v.map_or_else(|| "absent".to_string(), |v| format!("{v:?}"));
    match (want, got) {
        (HeaderExpect::Value(v), Some(g)) if g == v.trim() => None,
        (HeaderExpect::Present(true), Some(_)) | (HeaderExpect::Present(false), None) => None,
        (HeaderExpect::Value(v), g) => Some(format!("expected {name}: {v:?}, got {}", shown(g))),
        (HeaderExpect::Present(true), None) => Some(format!("expected a header {name}")),
        (HeaderExpect::Present(false), g) => {
            Some(format!("expected no header {name}, got {}", shown(g)))
        }
    }
}

fn pid_text(pid: Option<i32>) -> String {
    pid.map_or_else(|| "no served-by pid".into(), |p| format!("pid {p}"))
}

/// An outcome in words.
pub fn describe_outcome(o: Option<&Outcome>) -> String {
    match o {
        None => "no outcome (still pending)".into(),
        Some(Outcome::Response {
            status,
            served_by,
            closes,
            bytes,
            body,
            latency,
            ..
        }) => format!(
            "{status} ({bytes} bytes{}) in {:.1} ms{}{}",
            match body {
                BodyShape::Pattern => " of the pattern",
                BodyShape::Empty | BodyShape::Other => "",
            },
            latency.as_secs_f64() * 1000.0,
            served_by
                .as_ref()
                .map(|b| format!(" from pid {}", b.pid))
                .unwrap_or_default(),
            if *closes { ", Connection: close" } else { "" }
        ),
        Some(Outcome::Failed { class, latency }) => {
            format!("{class} after {:.1} ms", latency.as_secs_f64() * 1000.0)
        }
    }
}

/// Connection → the child pid that last answered on it before `t` (ms).
fn owners_before(timeline: &[Entry], t: f64) -> BTreeMap<String, i32> {
    let mut owners = BTreeMap::new();
    for e in timeline.iter().take_while(|e| e.at_ms <= t) {
        if let Observation::Response {
            conn,
            served_by: Some(by),
            ..
        } = &e.what
        {
            owners.insert(conn.clone(), by.pid);
        }
    }
    owners
}

/// The (at most three) lines of `log` that share the most words with `text`, best first — or
/// its last three lines when none shares a word: what a failed `log_has` shows.
fn nearest_lines<'a>(log: &'a str, text: &str) -> (bool, Vec<&'a str>) {
    let words = |s: &str| -> BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let wanted = words(text);
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut scored: Vec<(usize, usize, &str)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (words(l).intersection(&wanted).count(), i, *l))
        .filter(|(shared, ..)| *shared > 0)
        .collect();
    if scored.is_empty() {
        return (false, lines.iter().rev().take(3).rev().copied().collect());
    }
    // Most words shared first; among equals, the later line.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    (true, scored.into_iter().take(3).map(|(.., l)| l).collect())
}

/// The connections the client closed (or reset) at or before `t`.
fn client_closed_before(timeline: &[Entry], t: f64) -> BTreeSet<&str> {
    timeline
        .iter()
        .take_while(|e| e.at_ms <= t)
        .filter_map(|e| match &e.what {
            Observation::ConnClosedByClient { conn } => Some(conn.as_str()),
            _ => None,
        })
        .collect()
}

fn answered_before(timeline: &[Entry], request: &str, t: f64) -> bool {
    timeline
        .iter()
        .take_while(|e| e.at_ms <= t)
        .any(|e| matches!(&e.what, Observation::Response { request: r, .. } if r == request))
}

/// The pool is whole again: the dead child gone from the scoreboard and as many accepting
/// processes as in the last sample before the crash.
fn recovery_check(
    timeline: &[Entry],
    crash_at: f64,
    dead: &BTreeSet<i32>,
    within: Duration,
) -> Check {
    let what = format!("pool whole again within {within:?}");
    let samples: Vec<(f64, &Summary)> = timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::Scoreboard(s) => Some((e.at_ms, s)),
            _ => None,
        })
        .collect();
    let shows_dead = |s: &Summary| s.pids.iter().any(|p| dead.contains(p));
    // The pool as it was: the last sample before the crash that shows the child.
    let Some(before) = samples
        .iter()
        .rev()
        .find(|(at, s)| *at <= crash_at && shows_dead(s))
        .or_else(|| samples.iter().find(|(_, s)| shows_dead(s)))
        .map(|(_, s)| *s)
    else {
        return Check::fail(what, "no scoreboard sample showed the crashed child");
    };
    // Whole again: after the last sample that still shows the dead child (which may be seen
    // before its exit is), as many accepting processes as before.
    let last_dead = samples
        .iter()
        .rposition(|(_, s)| shows_dead(s))
        .unwrap_or(0);
    let recovered = samples[last_dead + 1..]
        .iter()
        .find(|(_, s)| s.accepting >= before.accepting && !shows_dead(s));
    match recovered {
        Some((at, s)) => {
            let took = Duration::from_secs_f64((at - crash_at).max(0.0) / 1000.0);
            Check::new(
                what,
                took <= within,
                format!(
                    "{} accepting processes again {:.1} ms after the crash",
                    s.accepting,
                    took.as_secs_f64() * 1000.0
                ),
            )
        }
        None => Check::fail(
            what,
            format!("never back to {} accepting processes", before.accepting),
        ),
    }
}

mod load;
pub mod shared;
#[cfg(test)]
mod tests;
