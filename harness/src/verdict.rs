//! Verdicts: the expectations of a case for one MPM checked against what was observed, each
//! check saying what was expected and what was seen.
//!
//! The central oracle is the crash blast radius: when a child dies, the requests that fail are
//! exactly those whose connections it owned — the crashing one under `connection` scope
//! (prefork), every connection of the child, busy or idle, under `process` scope (worker, event)
//! — and every other request succeeds; optionally the pool is whole again within a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use refhttpd::config::Mpm;
use serde::Serialize;

use crate::observe::{Entry, Observation, Outcome, State, Summary};
use crate::runner::{describe_condition, holds, Sent};
use crate::spec::{Case, CrashExpectSpec, RequestExpect};
use crate::target::Target;

/// One judged expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    pub detail: String,
    /// Holds on the reference server only; not judged against other targets.
    pub reference_only: bool,
}

impl Check {
    pub fn pass(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            passed: true,
            detail: detail.into(),
            reference_only: false,
        }
    }

    pub fn fail(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            passed: false,
            detail: detail.into(),
            reference_only: false,
        }
    }

    fn new(what: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            passed,
            detail: detail.into(),
            reference_only: false,
        }
    }
}

/// All checks of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub checks: Vec<Check>,
}

/// Judges a run.
pub fn judge(
    case: &Case,
    mpm: Mpm,
    target: Target,
    timeline: &[Entry],
    sent: &Sent,
    mut checks: Vec<Check>,
) -> Verdict {
    // The scenario's observations: what the harness's own teardown caused is not judged.
    let scenario_end = timeline
        .iter()
        .position(|e| matches!(e.what, Observation::Teardown))
        .unwrap_or(timeline.len());
    let timeline = &timeline[..scenario_end];
    let mut state = State::default();
    for e in timeline {
        state.apply(&e.what);
    }
    checks.extend(section(&case.expectations(mpm), timeline, sent, &state));
    let mut reference_only = section(&case.reference_expectations(mpm), timeline, sent, &state);
    for c in &mut reference_only {
        c.reference_only = true;
    }
    checks.extend(reference_only);
    if target != Target::Reference {
        for c in checks.iter_mut().filter(|c| c.reference_only) {
            c.passed = true;
            c.detail = format!("reference-only, not judged here ({})", c.detail);
        }
    }
    let passed = checks.iter().all(|c| c.passed);
    Verdict { passed, checks }
}

/// The checks of one expectation section.
fn section(
    expect: &crate::spec::ExpectSpec,
    timeline: &[Entry],
    sent: &Sent,
    state: &State,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let named: BTreeSet<&String> = expect.requests.keys().collect();
    for (name, spec) in &expect.requests {
        let e = RequestExpect::from_spec(spec).expect("validated at load");
        checks.push(request_check(name, &e, state));
    }
    if let Some(spec) = &expect.other_requests {
        let e = RequestExpect::from_spec(spec).expect("validated at load");
        for name in sent.order.iter().filter(|n| !named.contains(n)) {
            checks.push(request_check(name, &e, state));
        }
    }
    if let Some(crash) = &expect.crash {
        checks.extend(crash_checks(crash, timeline, sent, state));
    }
    for (event, count) in &expect.events {
        let n = state.events.get(event).copied().unwrap_or(0);
        checks.push(Check::new(
            format!("server event {event} ×{count}"),
            count.holds(n),
            format!("observed {n}"),
        ));
    }
    for cond in &expect.seen {
        let seen = ever(timeline, |s| holds(cond, s));
        checks.push(Check::new(
            format!("seen: {}", describe_condition(cond)),
            seen.is_some(),
            seen.map(|at| format!("at {at:.0} ms"))
                .unwrap_or_else(|| "never observed".into()),
        ));
    }
    for cond in &expect.never {
        let seen = ever(timeline, |s| holds(cond, s));
        checks.push(Check::new(
            format!("never: {}", describe_condition(cond)),
            seen.is_none(),
            seen.map(|at| format!("observed at {at:.0} ms"))
                .unwrap_or_else(|| "never observed".into()),
        ));
    }
    checks
}

/// The first moment (ms) at which `cond` held while replaying the timeline.
fn ever(timeline: &[Entry], mut cond: impl FnMut(&State) -> bool) -> Option<f64> {
    let mut state = State::default();
    for e in timeline {
        state.apply(&e.what);
        if cond(&state) {
            return Some(e.at_ms);
        }
    }
    None
}

fn request_check(name: &str, e: &RequestExpect, s: &State) -> Check {
    let outcome = s.outcomes.get(name);
    let observed = describe_outcome(outcome);
    let mut problems = Vec::new();
    let class = match outcome {
        None => "pending",
        Some(Outcome::Response { .. }) => "ok",
        Some(Outcome::Failed { class, .. }) => class.as_str(),
    };
    if let Some(want) = &e.outcome {
        let ok = match want.as_str() {
            "failed" => matches!(class, "refused" | "reset" | "closed" | "timeout"),
            // A connection cut before the response may surface as EOF or RST.
            "closed" | "reset" => matches!(class, "closed" | "reset"),
            other => other == class,
        };
        if !ok {
            problems.push(format!("expected outcome {want}"));
        }
    }
    if let Some(status) = e.status {
        match outcome {
            Some(Outcome::Response { status: got, .. }) if *got == status => {}
            _ => problems.push(format!("expected status {status}")),
        }
    }
    let latency = match outcome {
        Some(Outcome::Response { latency, .. }) | Some(Outcome::Failed { latency, .. }) => {
            Some(*latency)
        }
        None => None,
    };
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
        let got = matches!(outcome, Some(Outcome::Response { closes: c, .. }) if *c == closes);
        if !got {
            problems.push(format!(
                "expected Connection: {}",
                if closes { "close" } else { "keep-alive" }
            ));
        }
    }
    let pid_of = |r: &str| match s.outcomes.get(r) {
        Some(Outcome::Response {
            served_by: Some(by),
            ..
        }) => Some(by.pid),
        _ => None,
    };
    if let Some(other) = &e.same_child_as {
        if pid_of(name).is_none() || pid_of(name) != pid_of(other) {
            problems.push(format!(
                "expected the same child as {other} ({:?})",
                pid_of(other)
            ));
        }
    }
    if let Some(other) = &e.other_child_than {
        if pid_of(name).is_none() || pid_of(name) == pid_of(other) {
            problems.push(format!(
                "expected another child than {other} ({:?})",
                pid_of(other)
            ));
        }
    }
    let mut check = Check::new(
        format!("request {name}"),
        problems.is_empty(),
        if problems.is_empty() {
            observed
        } else {
            format!("{}; observed {observed}", problems.join(", "))
        },
    );
    check.reference_only = e.reference_only;
    check
}

fn describe_outcome(o: Option<&Outcome>) -> String {
    match o {
        None => "no outcome (still pending)".into(),
        Some(Outcome::Response {
            status,
            served_by,
            closes,
            latency,
        }) => format!(
            "{status} in {:.1} ms{}{}",
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

/// The crash oracle.
fn crash_checks(
    spec: &CrashExpectSpec,
    timeline: &[Entry],
    sent: &Sent,
    state: &State,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let deaths: Vec<(f64, i32, String)> = timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::ChildExited { pid, signal, code }
                if signal.is_some() || code.is_some_and(|c| c != 0) =>
            {
                let how = match (signal, code) {
                    (Some(s), _) => format!("signal {s}"),
                    (_, Some(c)) => format!("exit code {c}"),
                    _ => "unknown".into(),
                };
                Some((e.at_ms, *pid, how))
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
    // The moment the crash was seen: the earliest failure of a fatal request, or the exit.
    let crash_at = timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::RequestFailed { request, .. } if sent.fatal.contains(request) => {
                Some(e.at_ms)
            }
            Observation::Killed { .. } => Some(e.at_ms),
            _ => None,
        })
        .chain(deaths.iter().map(|d| d.0))
        .fold(f64::INFINITY, f64::min);
    let owners = owners_before(timeline, crash_at);
    let owned_by_dead = |conn: &str| owners.get(conn).is_some_and(|p| dead.contains(p));

    let mut unexpected = Vec::new();
    let mut lost = Vec::new();
    for name in &sent.order {
        let conn = sent.conn_of.get(name).map(String::as_str).unwrap_or("");
        let failed = !matches!(state.outcomes.get(name), Some(Outcome::Response { .. }));
        let may_fail = sent.fatal.contains(name)
            || (spec.scope == "process"
                && owned_by_dead(conn)
                && !answered_before(timeline, name, crash_at));
        if failed && !may_fail {
            unexpected.push(format!(
                "{name} on {conn} ({})",
                describe_outcome(state.outcomes.get(name))
            ));
        }
        if !failed && may_fail {
            lost.push(format!(
                "{name} on {conn} survived ({})",
                describe_outcome(state.outcomes.get(name))
            ));
        }
    }
    let scope_text = match spec.scope.as_str() {
        "connection" => "only the requests that carried the crash fail",
        _ => "exactly the requests on connections the crashed child owned fail",
    };
    let mut problems = unexpected
        .iter()
        .map(|u| format!("failed but should not: {u}"))
        .collect::<Vec<_>>();
    problems.extend(lost.iter().map(|l| format!("should have failed: {l}")));
    if spec.scope == "process" {
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
    let failed_names: Vec<&String> = sent
        .order
        .iter()
        .filter(|n| !matches!(state.outcomes.get(*n), Some(Outcome::Response { .. })))
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
    if let Some(within) = &spec.recovered_within {
        let within = mpm_faults::duration::parse(within).expect("validated at load");
        let mut check = recovery_check(timeline, crash_at, &dead, within);
        check.reference_only = spec.recovery_reference_only;
        checks.push(check);
    }
    checks
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

fn answered_before(timeline: &[Entry], request: &str, t: f64) -> bool {
    timeline
        .iter()
        .take_while(|e| e.at_ms <= t)
        .any(|e| matches!(&e.what, Observation::Response { request: r, .. } if r == request))
}

/// The pool is whole again: the dead child gone from the scoreboard and as many accepting
/// processes as in the last sample that still showed it.
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
    let Some(last_with_dead) = samples
        .iter()
        .rposition(|(_, s)| s.pids.iter().any(|p| dead.contains(p)))
    else {
        return Check::fail(what, "no scoreboard sample showed the crashed child");
    };
    let before = samples[last_with_dead].1;
    for (at, s) in &samples[last_with_dead + 1..] {
        if s.accepting >= before.accepting && !s.pids.iter().any(|p| dead.contains(p)) {
            let took = Duration::from_secs_f64((at - crash_at).max(0.0) / 1000.0);
            return Check::new(
                what,
                took <= within,
                format!(
                    "{} accepting processes again {:.1} ms after the crash",
                    s.accepting,
                    took.as_secs_f64() * 1000.0
                ),
            );
        }
    }
    Check::fail(
        what,
        format!("never back to {} accepting processes", before.accepting),
    )
}
