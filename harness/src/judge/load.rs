//! Judging loads: their figures against a [`LoadExpect`], and the crash oracle per request
//! under load — every failed request was on a connection the crashed child owned (known from
//! that connection's `X-Served-By`) or carried the crash itself, every other request was
//! answered, and every connection the crashed child held when it died was ended.

use std::collections::BTreeSet;
use std::time::Duration;

use mpm_faults::BlastRadius;

use super::{pid_text, Check};
use crate::observe::load::{ConnEnd, LoadRun};
use crate::spec::{DurationBounds, LoadClass, LoadExpect};

/// The checks of one load's expectation; `run` is `None` when the load never started.
pub fn expectation(name: &str, e: &LoadExpect, run: Option<&LoadRun>) -> Vec<Check> {
    let Some(run) = run else {
        return vec![Check::fail(
            format!("load {name} ran"),
            "it never started: the scenario stopped before its step",
        )];
    };
    let mut checks = Vec::new();
    let c = &run.counts;
    for (class, limit) in &e.failures {
        let n = match class {
            LoadClass::Failed => c.failed(),
            LoadClass::Refused => c.refused,
            LoadClass::Reset => c.reset,
            LoadClass::Closed => c.closed,
            LoadClass::Timeout => c.timeout,
            LoadClass::ServerErrors => c.server_errors,
            LoadClass::SharedClobbered => c.shared_clobbered,
        };
        checks.push(Check::new(
            format!("load {name}: {} {limit}", class.as_str()),
            limit.holds(n, c.requests),
            format!("{n} of {} requests ({})", c.requests, share(n, c.requests)),
        ));
    }
    let percentiles = [
        ("p50", e.p50, run.corrected.p50, run.raw.p50),
        ("p99", e.p99, run.corrected.p99, run.raw.p99),
        ("max", e.max, run.corrected.max, run.raw.max),
    ];
    for (label, bound, corrected, raw) in percentiles {
        if let Some(b) = bound {
            checks.push(latency_check(name, label, &b, corrected, raw, c.requests));
        }
    }
    if let Some(at_least) = e.throughput {
        checks.push(Check::new(
            format!("load {name}: ≥ {at_least} responses/s"),
            run.throughput >= at_least,
            format!("{:.0} responses/s", run.throughput),
        ));
    }
    if let Some(count) = e.requests {
        checks.push(Check::new(
            format!("load {name}: requests {count}"),
            count.holds(c.requests),
            format!("{} requests", c.requests),
        ));
    }
    checks
}

fn latency_check(
    name: &str,
    label: &str,
    bound: &DurationBounds,
    corrected_ms: f64,
    raw_ms: f64,
    requests: u64,
) -> Check {
    let what = format!("load {name}: {label} latency {bound}");
    if requests == 0 {
        return Check::fail(what, "no request to measure");
    }
    Check::new(
        what,
        bound.holds(Duration::from_secs_f64(corrected_ms / 1000.0)),
        format!("{corrected_ms:.2} ms from the intended start ({raw_ms:.2} ms raw)"),
    )
}

fn share(n: u64, total: u64) -> String {
    if total == 0 {
        "–".into()
    } else {
        format!("{:.2} %", n as f64 * 100.0 / total as f64)
    }
}

/// The crash oracle over one load. `dead`: the children that crashed; `from`: the earliest
/// moment the crash can have happened (ms; the fatal request sent, the kill); `scope`: the
/// crash takes its whole process, or only the request that carried it fails.
pub fn blast_radius(run: &LoadRun, dead: &BTreeSet<i32>, from: f64, scope: BlastRadius) -> Check {
    let process = scope == BlastRadius::Process;
    let owned_by_dead = |owner: Option<i32>| owner.is_some_and(|p| dead.contains(&p));
    let mut lost = 0u64;
    let mut wrong = Vec::new();
    for r in &run.requests {
        let Some(class) = r.outcome.failed() else {
            continue;
        };
        let owner = run.owner(r);
        let ended = r.at_ms + r.latency_ms;
        if r.fatal || (process && owned_by_dead(owner) && ended >= from) {
            lost += 1;
        } else {
            wrong.push(format!(
                "{class} at {ended:.0} ms on load connection {} (served by {})",
                r.conn,
                pid_text(owner)
            ));
        }
    }
    // The connections the dead child held when it died. Under `process` scope every one must
    // have ended with it; under `connection` scope none may have, but one that carried the
    // crash (an idle one too is lost: the next request simply opens another).
    let carried_crash: BTreeSet<u32> = run
        .requests
        .iter()
        .filter(|r| r.fatal)
        .map(|r| r.conn)
        .collect();
    let mut held = 0;
    let mut survivors = Vec::new();
    let mut cut = Vec::new();
    for (i, c) in run.connections.iter().enumerate() {
        if !owned_by_dead(c.owner) || c.ended_ms.is_some_and(|t| t < from) {
            continue;
        }
        held += 1;
        let ended_by_server = matches!(c.end, ConnEnd::UnderRequest | ConnEnd::WhileIdle);
        if process && !ended_by_server {
            survivors.push(format!("{i} ({:?})", c.end));
        }
        if !process && ended_by_server && !carried_crash.contains(&(i as u32)) {
            cut.push(format!("{i} ({:?})", c.end));
        }
    }
    let total = run.counts.requests;
    let scope = if process {
        "every failure on a connection the crashed child owned, every such connection ended"
    } else {
        "no request failed but the one that carried the crash"
    };
    let what = format!("blast radius under load {}: {scope}", run.name);
    let mut problems = Vec::new();
    if !wrong.is_empty() {
        problems.push(format!(
            "{} requests failed that the crash does not explain, first: {}",
            wrong.len(),
            wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if !survivors.is_empty() {
        problems.push(format!(
            "connections of the crashed child that did not end: {}",
            survivors.join(", ")
        ));
    }
    if !cut.is_empty() {
        problems.push(format!(
            "connections of the crashed child ended with it besides the crash's own: {}",
            cut.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Check::fail(what, problems.join("; "));
    }
    Check::pass(
        what,
        format!(
            "{lost} of {total} load requests lost ({}), on {held} of {} connections the crashed \
             child held ({}); every other request answered",
            share(lost, total),
            run.shape.connections,
            share(held, u64::from(run.shape.connections))
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::load::{
        ConnLife, Counts, LoadOutcome, LoadRequest, LoadShape, Percentiles,
    };
    use crate::observe::ErrorClass;
    use crate::spec::{Amount, Limit};

    const DEAD: i32 = 7;
    const ALIVE: i32 = 8;

    fn life(owner: i32, end: ConnEnd, ended_ms: Option<f64>) -> ConnLife {
        ConnLife {
            slot: 0,
            owner: Some(owner),
            opened_ms: 0.0,
            ended_ms,
            end,
        }
    }

    fn request(conn: u32, at_ms: f64, outcome: LoadOutcome) -> LoadRequest {
        LoadRequest {
            conn,
            at_ms,
            latency_ms: 1.0,
            raw_ms: 1.0,
            outcome,
            fatal: false,
            mix: 0,
        }
    }

    const OK: LoadOutcome = LoadOutcome::Response {
        status: 200,
        shared_intact: None,
    };
    const CLOSED: LoadOutcome = LoadOutcome::Failed {
        class: ErrorClass::Closed,
    };

    /// Two connections: 0 owned by the child that dies at 100 ms, 1 by one that lives.
    fn run(connections: Vec<ConnLife>, requests: Vec<LoadRequest>) -> LoadRun {
        let mut counts = Counts::default();
        for r in &requests {
            counts.count(r.outcome);
        }
        LoadRun {
            name: "traffic".into(),
            shape: LoadShape {
                connections: 2,
                rate: None,
                duration_ms: 1000.0,
                keepalive: true,
            },
            started_ms: 0.0,
            elapsed_ms: 1000.0,
            throughput: 2.0,
            warmed: Some(true),
            counts,
            corrected: Percentiles {
                count: 1,
                p50: 1.0,
                p99: 30.0,
                max: 40.0,
                ..Percentiles::default()
            },
            raw: Percentiles::default(),
            intervals: Vec::new(),
            opened: connections.len(),
            tls: None,
            requests,
            connections,
            histograms: None,
        }
    }

    fn dead() -> BTreeSet<i32> {
        [DEAD].into()
    }

    #[test]
    fn the_dead_childs_connections_may_fail_and_no_other() {
        let lost = run(
            vec![
                life(DEAD, ConnEnd::UnderRequest, Some(101.0)),
                life(ALIVE, ConnEnd::Open, None),
            ],
            vec![
                request(0, 50.0, OK),
                request(0, 100.0, CLOSED),
                request(1, 100.0, OK),
            ],
        );
        let c = blast_radius(&lost, &dead(), 90.0, BlastRadius::Process);
        assert!(c.passed(), "{c:?}");
        assert!(c.detail.contains("1 of 3"), "{c:?}");
        // Under prefork's scope the same loss is a failure.
        assert!(!blast_radius(&lost, &dead(), 90.0, BlastRadius::Connection).passed());

        let wrong = run(
            vec![
                life(DEAD, ConnEnd::UnderRequest, Some(101.0)),
                life(ALIVE, ConnEnd::UnderRequest, Some(101.0)),
            ],
            vec![request(0, 100.0, CLOSED), request(1, 100.0, CLOSED)],
        );
        let c = blast_radius(&wrong, &dead(), 90.0, BlastRadius::Process);
        assert!(!c.passed(), "a live child's connection failed: {c:?}");
        assert!(c.detail.contains("served by pid 8"), "{c:?}");
    }

    #[test]
    fn a_failure_before_the_crash_was_caused_is_not_the_crashs() {
        let early = run(
            vec![life(DEAD, ConnEnd::UnderRequest, Some(20.0))],
            vec![request(0, 10.0, CLOSED)],
        );
        assert!(!blast_radius(&early, &dead(), 90.0, BlastRadius::Process).passed());
    }

    #[test]
    fn a_connection_of_the_dead_child_that_lives_on_fails_the_oracle() {
        let survivor = run(
            vec![life(DEAD, ConnEnd::Open, None)],
            vec![request(0, 50.0, OK)],
        );
        let c = blast_radius(&survivor, &dead(), 90.0, BlastRadius::Process);
        assert!(!c.passed(), "{c:?}");
        // One that ended in good order before the crash is not at stake.
        let before = run(
            vec![life(DEAD, ConnEnd::Announced, Some(60.0))],
            vec![request(0, 50.0, OK)],
        );
        assert!(blast_radius(&before, &dead(), 90.0, BlastRadius::Process).passed());
    }

    #[test]
    fn under_connection_scope_an_idle_connection_lost_with_the_child_fails_the_oracle() {
        // No request failed: the connection was idle when the child died, and the next request
        // went on a new one. The connection was still lost.
        let idle_lost = run(
            vec![
                life(DEAD, ConnEnd::WhileIdle, Some(101.0)),
                life(ALIVE, ConnEnd::Open, None),
            ],
            vec![request(0, 50.0, OK), request(1, 120.0, OK)],
        );
        let c = blast_radius(&idle_lost, &dead(), 90.0, BlastRadius::Connection);
        assert!(!c.passed(), "{c:?}");
        assert!(c.detail.contains("besides the crash's own"), "{c:?}");
        // Under process scope that is just what must happen.
        assert!(blast_radius(&idle_lost, &dead(), 90.0, BlastRadius::Process).passed());
    }

    #[test]
    fn the_request_that_carried_the_crash_may_fail_under_any_scope() {
        let mut fatal = request(0, 100.0, CLOSED);
        fatal.fatal = true;
        let r = run(
            vec![life(DEAD, ConnEnd::UnderRequest, Some(101.0))],
            vec![fatal],
        );
        assert!(blast_radius(&r, &dead(), 90.0, BlastRadius::Connection).passed());
    }

    #[test]
    fn figures_against_their_bounds() {
        let r = run(
            vec![life(ALIVE, ConnEnd::Open, None)],
            vec![request(0, 1.0, OK), request(0, 2.0, CLOSED)],
        );
        let e = |f: fn(&mut LoadExpect)| {
            let mut e = LoadExpect::default();
            f(&mut e);
            expectation("traffic", &e, Some(&r))
        };
        let one = |checks: Vec<Check>| {
            assert_eq!(checks.len(), 1);
            checks[0].passed()
        };
        assert!(!one(e(|e| {
            e.failures
                .insert(LoadClass::Failed, Limit::at_most(Amount::Count(0)));
        })));
        assert!(one(e(|e| {
            e.failures
                .insert(LoadClass::Closed, Limit::at_most(Amount::Share(0.5)));
        })));
        assert!(!one(e(|e| {
            e.failures
                .insert(LoadClass::Closed, Limit::at_most(Amount::Share(0.49)));
        })));
        assert!(one(e(|e| {
            e.failures
                .insert(LoadClass::Refused, Limit::at_most(Amount::Count(0)));
        })));
        fn at_least(a: Amount) -> Limit {
            Limit {
                at_least: Some(a),
                at_most: None,
            }
        }
        assert!(one(e(|e| {
            e.failures
                .insert(LoadClass::Failed, at_least(Amount::Count(1)));
        })));
        assert!(!one(e(|e| {
            e.failures
                .insert(LoadClass::Failed, at_least(Amount::Share(0.51)));
        })));
        assert!(!one(e(|e| {
            e.p99 = Some(DurationBounds {
                at_least: None,
                at_most: Some(Duration::from_millis(20)),
            })
        })));
        assert!(one(e(|e| {
            e.max = Some(DurationBounds {
                at_least: Some(Duration::from_millis(35)),
                at_most: None,
            })
        })));
        assert!(!one(e(|e| e.throughput = Some(2.5))));
        assert!(one(e(|e| e.throughput = Some(2.0))));
        let missing = expectation("traffic", &LoadExpect::default(), None);
        assert!(!missing[0].passed());
    }
}
