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
//!
//! Here: the verdict's types and the sections of a case's expectations; the crash oracle is in
//! `crash`, a named request's check in `request`, a load's in `load`, shared state in
//! `shared`, the memory of the process that served a request in `memory`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use refhttpd::{EventKind, Mpm};
use serde::{Deserialize, Serialize};

use crate::observe::{Ending, Entry, Observation, Recording, RequestOutcome, State, StepResult};
use crate::spec::condition::{Condition, Count, Facts, Source};
use crate::spec::{
    BodyShape, Case, DurationBounds, Expect, LoadExpect, MemoryExpect, RequestExpect, Target,
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
    checks.extend(shared::checks(case, mpm, timeline, rec));
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

/// What a verdict is judged from: the scenario's timeline, the whole recording, the state the
/// timeline ends in, and what the target can observe.
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

    /// Whether some line of the server's error log contains `text` (`wanted`: by the end, a
    /// line the scenario caused may come at a maintenance tick after it) or none does (while
    /// the scenario ran: not what the harness's stop made the server write).
    fn log_line(&self, text: &str, wanted: bool) -> Check {
        let log = match (wanted, self.rec.log_at_teardown) {
            (false, Some(len)) => self
                .rec
                .server_log
                .get(..len)
                .unwrap_or(&self.rec.server_log),
            _ => &self.rec.server_log,
        };
        let line = log.lines().find(|l| l.contains(text));
        let what = if wanted {
            format!("the error log has {text:?}")
        } else {
            format!("the error log never has {text:?}")
        };
        let observed = match line {
            Some(l) => format!("logged: {}", l.trim()),
            None => match nearest_lines(log, text) {
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
    fn connect(&self, conn: &str, e: &DurationBounds) -> Check {
        let took = self.timeline.iter().find_map(|entry| match &entry.what {
            Observation::ConnOpened { conn: c, took_ms } if c == conn => Some(*took_ms),
            _ => None,
        });
        let what = if e.is_any() {
            format!("connection {conn} opened")
        } else {
            format!("connection {conn} opened in {e}")
        };
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
        let mut checks: Vec<Check> = expect
            .requests
            .iter()
            .map(|(name, e)| self.request(name, e))
            .collect();
        checks.extend(
            expect
                .connects
                .iter()
                .map(|(conn, e)| self.connect(conn, e)),
        );
        checks.extend(expect.master_exit.map(|code| self.master_exit(code)));
        checks.extend(expect.log_has.iter().map(|text| self.log_line(text, true)));
        checks.extend(
            expect
                .log_never
                .iter()
                .map(|text| self.log_line(text, false)),
        );
        if let Some(e) = &expect.other_requests {
            checks.extend(self.other_requests(&expect.requests, e));
        }
        if let Some(crash) = &expect.crash {
            checks.extend(self.crash(crash).into_iter().map(|c| c.about(About::Crash)));
        }
        for (name, e) in &expect.loads {
            checks.extend(self.load(name, e));
        }
        for (name, e) in &expect.memory {
            checks.extend(self.memory(name, e));
        }
        checks.extend(
            expect
                .events
                .iter()
                .map(|(kind, count)| self.events(*kind, count)),
        );
        checks.extend(expect.seen.iter().map(|cond| self.ever_held(cond, true)));
        checks.extend(expect.never.iter().map(|cond| self.ever_held(cond, false)));
        checks
            .into_iter()
            .map(|c| self.unless_reference_only(c, reference_only))
            .collect()
    }

    /// Every request sent that `named` does not name, against `e`.
    fn other_requests<'a>(
        &'a self,
        named: &'a BTreeMap<String, RequestExpect>,
        e: &'a RequestExpect,
    ) -> impl Iterator<Item = Check> + 'a {
        self.rec
            .sent
            .iter()
            .filter(|s| !named.contains_key(&s.name))
            .map(|s| self.request(&s.name, e))
    }

    /// The checks of load `name`'s expectation, about that load.
    fn load(&self, name: &str, e: &LoadExpect) -> Vec<Check> {
        let run = self.rec.loads.iter().find(|l| l.name == name);
        load::expectation(name, e, run)
            .into_iter()
            .map(|c| c.about(About::Load { name: name.into() }))
            .collect()
    }

    /// The memory of the process that served request `name`, against `e`: not judged where the
    /// target has no /proc (or, for `replaced`, does not see process exits).
    fn memory(&self, name: &str, e: &MemoryExpect) -> Vec<Check> {
        let mut needs = vec![Source::Proc];
        if e.replaced.is_some() {
            needs.push(Source::ProcessExits);
        }
        let lacking = needs.into_iter().find(|s| !self.caps.has(*s));
        memory::checks(name, e, self.timeline, self.state)
            .into_iter()
            .map(|c| match lacking {
                Some(s) => c.not_judged(format!("the target has no {}", s.as_str())),
                None => c,
            })
            .collect()
    }

    /// How many server events of `kind` the timeline has, against `count`.
    fn events(&self, kind: EventKind, count: &Count) -> Check {
        let n = self.state.events(kind);
        let check = Check::new(
            format!("server event {kind} ×{count}"),
            count.holds(n),
            format!("observed {n}"),
        );
        if self.caps.reports(kind) {
            check
        } else {
            check.not_judged(format!("the target does not report {kind} events"))
        }
    }

    /// `seen: cond` (`wanted`) or `never: cond`: whether `cond` ever held in the timeline.
    fn ever_held(&self, cond: &Condition, wanted: bool) -> Check {
        let at = first_held(self.timeline, cond);
        let (what, at_text) = if wanted {
            ("seen", "at")
        } else {
            ("never", "observed at")
        };
        let check = Check::new(
            format!("{what}: {cond}"),
            at.is_some() == wanted,
            at.map(|at| format!("{at_text} {at:.0} ms"))
                .unwrap_or_else(|| "never observed".into()),
        );
        self.observable(check, cond)
    }

    /// `check`, or not judged when it holds on the reference server only and this target is
    /// not judged on such checks (a check not judged already stays as it is).
    fn unless_reference_only(&self, check: Check, reference_only: bool) -> Check {
        if !reference_only || self.caps.judges_reference_only {
            return check;
        }
        match check.status {
            Status::NotJudged(_) => check,
            _ => check.not_judged(REFERENCE_ONLY),
        }
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

    /// Request `name` against `e`, about that request.
    fn request(&self, name: &str, e: &RequestExpect) -> Check {
        let check = request::check(name, e, self.state).about(About::Request {
            name: name.to_string(),
        });
        self.unless_reference_only(check, e.reference_only)
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

fn pid_text(pid: Option<i32>) -> String {
    pid.map_or_else(|| "no served-by pid".into(), |p| format!("pid {p}"))
}

/// An outcome in words.
pub fn describe_outcome(o: Option<&RequestOutcome>) -> String {
    match o {
        None => "no outcome (still pending)".into(),
        Some(RequestOutcome::Response {
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
        Some(RequestOutcome::Failed { class, latency }) => {
            format!("{class} after {:.1} ms", latency.as_secs_f64() * 1000.0)
        }
    }
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

mod crash;
mod load;
mod memory;
mod request;
mod shared;
#[cfg(test)]
mod tests;
