//! The verdict on hand-built recordings: every oracle, passing and failing, so that no check
//! holds by construction.

use std::path::Path;

use refhttpd::{EventKind, Mpm};

use super::*;
use crate::observe::{ChildWorkers, Ending, ErrorClass, Sent, ServedBy, StepRecord, Summary};
use crate::spec::condition::Source;
use crate::spec::{parse, Case};

fn case(text: &str) -> Case {
    parse(Path::new("specs/t/case.toml"), text).expect("a valid case")
}

fn reference() -> Capabilities {
    Target::Reference.capabilities()
}

fn apache() -> Capabilities {
    Target::Apache.capabilities()
}

/// A recording built by hand, in time order.
#[derive(Default)]
struct Rec(Recording);

impl Rec {
    /// Adds an observation in time order (after those at the same moment).
    fn at(mut self, at_ms: f64, what: Observation) -> Rec {
        let i = self.0.timeline.partition_point(|e| e.at_ms <= at_ms);
        self.0.timeline.insert(i, Entry { at_ms, what });
        self
    }

    /// A request sent; `fatal`: it carried `crash:segv`.
    fn sent(mut self, name: &str, conn: &str, fatal: bool) -> Rec {
        self.0.sent.push(Sent {
            name: name.into(),
            conn: conn.into(),
            fault: fatal.then(|| "crash:segv".parse().expect("a fault")),
        });
        self
    }

    fn step(mut self, line: usize, text: &str, result: StepResult) -> Rec {
        self.0.steps.push(StepRecord {
            line,
            text: text.into(),
            result,
        });
        self
    }
}

fn ok(request: &str, conn: &str, pid: i32) -> Observation {
    ok_in(request, conn, pid, 1.0)
}

fn ok_in(request: &str, conn: &str, pid: i32, latency_ms: f64) -> Observation {
    Observation::Response {
        request: request.into(),
        conn: conn.into(),
        status: 200,
        served_by: Some(ServedBy {
            pid,
            slot: None,
            thread: None,
        }),
        closes: false,
        bytes: 2,
        body: BodyShape::Pattern,
        headers: vec![
            ("Keep-Alive".into(), "timeout=5, max=100".into()),
            ("X-Served-By".into(), format!("pid={pid}")),
        ],
        shared: None,
        latency_ms,
    }
}

fn failed(request: &str, conn: &str, class: ErrorClass) -> Observation {
    Observation::RequestFailed {
        request: request.into(),
        conn: conn.into(),
        class,
        latency_ms: 5.0,
    }
}

fn closed(conn: &str) -> Observation {
    Observation::ConnClosedByServer {
        conn: conn.into(),
        class: ErrorClass::Closed,
    }
}

fn died(pid: i32) -> Observation {
    Observation::ChildExited {
        pid,
        ending: Ending::Signaled(11),
    }
}

fn board(pids: &[i32], accepting: u64) -> Observation {
    Observation::Scoreboard(Summary {
        children: pids
            .iter()
            .map(|&pid| ChildWorkers {
                pid,
                ..Default::default()
            })
            .collect(),
        processes: pids.len() as u64,
        accepting,
        ..Default::default()
    })
}

fn check<'a>(v: &'a Verdict, what: &str) -> &'a Check {
    v.checks
        .iter()
        .find(|c| c.what.starts_with(what))
        .unwrap_or_else(|| panic!("no check `{what}` in {:#?}", v.checks))
}

const CRASH: &str = r#"
id = "t/crash"
title = "t"
[server]
faults = true
[[step]]
open = ["a", "b", "c", "d"]
[[step]]
send = "a"
as = "warm-a"
[[step]]
send = "b"
as = "warm-b"
[[step]]
send = "c"
as = "warm-c"
[[step]]
send = "b"
fault = "sleep:1s"
as = "slow-b"
[[step]]
send = "a"
fault = "crash:segv"
as = "crash"
[expect.all]
crash = { scope = "SCOPE", recovered_within = "500ms", recovery_reference_only = true }
"#;

fn crash_case(scope: &str) -> Case {
    case(&CRASH.replace("SCOPE", scope))
}

/// a and b warmed on child 10, c on child 20; slow-b in flight on b when a's request crashes
/// child 10; the server cuts a and b; a replacement (30) accepts 300 ms after the crash.
fn crash_recording() -> Rec {
    Rec::default()
        .sent("warm-a", "a", false)
        .sent("warm-b", "b", false)
        .sent("warm-c", "c", false)
        .sent("slow-b", "b", false)
        .sent("crash", "a", true)
        .at(10.0, board(&[10, 20], 2))
        .at(20.0, ok("warm-a", "a", 10))
        .at(21.0, ok("warm-b", "b", 10))
        .at(22.0, ok("warm-c", "c", 20))
        .at(100.0, failed("crash", "a", ErrorClass::Closed))
        .at(100.5, failed("slow-b", "b", ErrorClass::Reset))
        .at(101.0, closed("a"))
        .at(101.0, closed("b"))
        .at(102.0, died(10))
        .at(103.0, board(&[10, 20], 1))
        .at(150.0, board(&[20], 1))
        .at(400.0, board(&[30, 20], 2))
}

#[test]
fn blast_radius_process_exactly_the_dead_childs_connections() {
    let v = judge(
        &crash_case("process"),
        Mpm::Worker,
        &reference(),
        &crash_recording().0,
    );
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);
    assert!(check(&v, "a child crashed").passed());
    assert!(check(&v, "blast radius (process)").passed());
}

#[test]
fn blast_radius_one_request_too_many() {
    let rec = crash_recording()
        .sent("late-c", "c", false)
        .at(200.0, failed("late-c", "c", ErrorClass::Closed));
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec.0);
    let c = check(&v, "blast radius");
    assert!(c.failed());
    assert!(
        c.detail.contains("failed but should not: late-c on c"),
        "{}",
        c.detail
    );
    assert_eq!(v.result, RunResult::Failed);
}

#[test]
fn blast_radius_one_request_too_few() {
    let mut rec = crash_recording();
    // slow-b's connection survives its child's crash: another process answers on it.
    rec.0.timeline.retain(
        |e| !matches!(&e.what, Observation::RequestFailed { request, .. } if request == "slow-b"),
    );
    rec = rec.at(900.0, ok("slow-b", "b", 30));
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec.0);
    let c = check(&v, "blast radius");
    assert!(c.failed());
    assert!(
        c.detail
            .contains("should have failed: slow-b on b survived"),
        "{}",
        c.detail
    );
}

/// A response the dead child wrote before it died is no survivor, however late its reader
/// recorded it (after the crashing request's failure).
#[test]
fn blast_radius_a_response_of_the_dead_child_recorded_late_is_not_a_survivor() {
    let mut rec = crash_recording();
    for e in &mut rec.0.timeline {
        if matches!(&e.what, Observation::RequestFailed { request, .. } if request == "slow-b") {
            e.what = ok("slow-b", "b", 10);
        }
    }
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec.0);
    assert!(check(&v, "blast radius").passed(), "{:#?}", v.checks);
}

/// d, warmed on the crashing child, was closed by the client before the crash. The server's
/// end of it and the client's close race: whichever the recording shows first, the verdict is
/// the same.
#[test]
fn blast_radius_a_connection_the_client_closed_first_is_not_the_crashs() {
    let client_close = || Observation::ConnClosedByClient { conn: "d".into() };
    let warmed_d = || {
        crash_recording()
            .sent("warm-d", "d", false)
            .at(23.0, ok("warm-d", "d", 10))
    };
    // The client's close first, the server's never seen (the client stopped reading).
    let client_first = warmed_d().at(90.0, client_close());
    // The server's end reached the socket first (it answered the close at once).
    let server_first = warmed_d().at(89.0, closed("d"));
    for (order, rec) in [
        ("client first", client_first),
        ("server first", server_first),
    ] {
        for mpm in [Mpm::Worker, Mpm::Event] {
            let v = judge(&crash_case("process"), mpm, &reference(), &rec.0);
            assert!(
                check(&v, "blast radius").passed(),
                "{order} under {mpm}: {:#?}",
                v.checks
            );
        }
    }
    // Closed by the client only after the crash, the server's end never seen: the crash did
    // not end it.
    let late = warmed_d().at(150.0, client_close());
    let v = judge(&crash_case("process"), Mpm::Event, &reference(), &late.0);
    let c = check(&v, "blast radius");
    assert!(c.failed());
    assert!(c.detail.contains("still open: [\"d\"]"), "{}", c.detail);
}

#[test]
fn blast_radius_idle_keepalive_connection_of_the_dead_child_must_end() {
    // d was warmed on the crashing child and sat idle; the server never ended it.
    let rec = crash_recording()
        .sent("warm-d", "d", false)
        .at(23.0, ok("warm-d", "d", 10));
    let v = judge(&crash_case("process"), Mpm::Event, &reference(), &rec.0);
    let c = check(&v, "blast radius");
    assert!(c.failed());
    assert!(c.detail.contains("still open: [\"d\"]"), "{}", c.detail);
    // Ended by the server: the oracle is satisfied.
    let rec = crash_recording()
        .sent("warm-d", "d", false)
        .at(23.0, ok("warm-d", "d", 10))
        .at(101.5, closed("d"));
    let v = judge(&crash_case("process"), Mpm::Event, &reference(), &rec.0);
    assert!(check(&v, "blast radius").passed(), "{:#?}", v.checks);
}

#[test]
fn blast_radius_a_connection_never_warmed_cannot_be_attributed() {
    // d had no response before the crash: nobody knows which child owned it, so its failure is
    // not excused.
    let rec = crash_recording()
        .sent("first-d", "d", false)
        .at(100.7, failed("first-d", "d", ErrorClass::Closed));
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec.0);
    let c = check(&v, "blast radius");
    assert!(c.failed());
    assert!(c.detail.contains("first-d on d"), "{}", c.detail);
    assert!(c.detail.contains("told which child owned"), "{}", c.detail);
}

#[test]
fn blast_radius_connection_scope_spares_the_other_requests() {
    // prefork: only the crashing request fails; slow-b (another child under prefork) must not.
    let v = judge(
        &crash_case("connection"),
        Mpm::Prefork,
        &reference(),
        &crash_recording().0,
    );
    let c = check(&v, "blast radius (connection)");
    assert!(c.failed());
    assert!(
        c.detail.contains("failed but should not: slow-b"),
        "{}",
        c.detail
    );
    let mut rec = crash_recording();
    rec.0.timeline.retain(
        |e| !matches!(&e.what, Observation::RequestFailed { request, .. } if request == "slow-b"),
    );
    rec = rec.at(900.0, ok("slow-b", "b", 11));
    let v = judge(
        &crash_case("connection"),
        Mpm::Prefork,
        &reference(),
        &rec.0,
    );
    assert!(
        check(&v, "blast radius (connection)").passed(),
        "{:#?}",
        v.checks
    );
}

#[test]
fn no_crash_at_all_fails_the_oracle() {
    let mut rec = crash_recording();
    rec.0
        .timeline
        .retain(|e| !matches!(e.what, Observation::ChildExited { .. }));
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec.0);
    assert!(check(&v, "a child crashed").failed());
    // A clean exit (code 0) is no crash either.
    let rec = crash_recording().at(
        102.0,
        Observation::ChildExited {
            pid: 10,
            ending: Ending::Exited(0),
        },
    );
    let mut rec = rec;
    rec.0.timeline.retain(|e| {
        !matches!(
            e.what,
            Observation::ChildExited {
                ending: Ending::Signaled(_),
                ..
            }
        )
    });
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec.0);
    assert!(check(&v, "a child crashed").failed());
}

#[test]
fn recovery_within_too_late_never_and_not_judged_on_apache() {
    let v = judge(
        &crash_case("process"),
        Mpm::Worker,
        &reference(),
        &crash_recording().0,
    );
    let c = check(&v, "pool whole again within 500ms");
    assert!(c.passed(), "{c:?}");
    assert!(
        c.detail.contains("300.0 ms after the crash"),
        "{}",
        c.detail
    );

    let mut late = crash_recording();
    late.0.timeline.pop();
    let late = late.at(700.0, board(&[30, 20], 2));
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &late.0);
    assert!(check(&v, "pool whole").failed());

    let mut never = crash_recording();
    never.0.timeline.pop();
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &never.0);
    let c = check(&v, "pool whole");
    assert!(c.failed());
    assert!(
        c.detail.contains("never back to 2 accepting"),
        "{}",
        c.detail
    );

    // recovery_reference_only: judged on the reference, not judged on Apache — not a pass.
    let v = judge(&crash_case("process"), Mpm::Worker, &apache(), &late.0);
    assert!(matches!(
        check(&v, "pool whole").status,
        Status::NotJudged(_)
    ));
    assert_eq!(v.result, RunResult::Passed);
    assert!(v.has_not_judged());
}

const REQUESTS: &str = r#"
id = "t/requests"
title = "t"
[[step]]
open = ["a", "b"]
[[step]]
send = "a"
as = "first"
[[step]]
send = "a"
as = "again"
[[step]]
send = "b"
as = "other"
[[step]]
pipeline = "b"
paths = ["/", "/"]
as = "p"
[expect.all]
requests = { first = { status = 200, latency_at_most = "100ms", headers = { keep-alive = "timeout=5, max=100", Connection = false, X-Served-By = true } }, again = { status = 200, same_child_as = "first", closes = false }, other = { outcome = "ok", other_child_than = "first", latency_at_least = "50ms" }, p = { bytes = 2, body = "pattern" }, "p#2" = "failed" }
"#;

fn requests_recording() -> Rec {
    Rec::default()
        .sent("first", "a", false)
        .sent("again", "a", false)
        .sent("other", "b", false)
        .sent("p", "b", false)
        .sent("p#2", "b", false)
        .at(1.0, ok_in("first", "a", 10, 20.0))
        .at(2.0, ok("again", "a", 10))
        .at(3.0, ok_in("other", "b", 20, 60.0))
        .at(4.0, ok("p", "b", 20))
        .at(5.0, failed("p#2", "b", ErrorClass::Reset))
}

#[test]
fn request_expectations_pass_when_met() {
    let v = judge(
        &case(REQUESTS),
        Mpm::Worker,
        &reference(),
        &requests_recording().0,
    );
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);
    assert_eq!(v.checks.len(), 5);
    // A passing check names the header checks it made.
    let d = &check(&v, "request first").detail;
    assert!(
        d.ends_with(
            "headers as expected: no Connection, X-Served-By present, keep-alive: \
             \"timeout=5, max=100\""
        ),
        "{d}"
    );
}

#[test]
fn each_request_expectation_can_fail() {
    let mutate = |from: &str, to: Observation| {
        let mut r = requests_recording();
        for e in &mut r.0.timeline {
            let name = match &e.what {
                Observation::Response { request, .. }
                | Observation::RequestFailed { request, .. } => request.clone(),
                _ => continue,
            };
            if name == from {
                e.what = to.clone();
            }
        }
        judge(&case(REQUESTS), Mpm::Worker, &reference(), &r.0)
    };
    // Too slow.
    let v = mutate("first", ok_in("first", "a", 10, 150.0));
    assert!(check(&v, "request first")
        .detail
        .contains("expected latency ≤ 100ms"));
    // Another child than the one it must share.
    let v = mutate("again", ok("again", "a", 11));
    assert!(check(&v, "request again")
        .detail
        .contains("expected the same child as first"));
    // The same child than the one it must not share; and too fast.
    let v = mutate("other", ok_in("other", "b", 10, 10.0));
    let d = &check(&v, "request other").detail;
    assert!(d.contains("expected another child than first"), "{d}");
    assert!(d.contains("expected latency ≥ 50ms"), "{d}");
    // Failed where a response was expected: status and outcome both say so.
    let v = mutate("first", failed("first", "a", ErrorClass::Closed));
    assert!(check(&v, "request first")
        .detail
        .contains("expected status 200"));
    // A body of another length (a pipelined response out of order).
    let mut longer = ok("p", "b", 20);
    if let Observation::Response { bytes, .. } = &mut longer {
        *bytes = 3000;
    }
    let v = mutate("p", longer);
    assert!(check(&v, "request p")
        .detail
        .contains("expected a body of 2 bytes"));
    // Other bytes of the right length.
    let mut corrupt = ok("p", "b", 20);
    if let Observation::Response { body, .. } = &mut corrupt {
        *body = BodyShape::Other;
    }
    let v = mutate("p", corrupt);
    assert!(check(&v, "request p")
        .detail
        .contains("expected the pattern's body"));
    // Header fields: another value, one that must be absent, one that must be present.
    let with_headers = |headers: &[(&str, &str)]| {
        let mut r = ok_in("first", "a", 10, 20.0);
        if let Observation::Response { headers: h, .. } = &mut r {
            *h = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        }
        r
    };
    let v = mutate(
        "first",
        with_headers(&[
            ("Keep-Alive", "timeout=5, max=99"),
            ("X-Served-By", "pid=10"),
        ]),
    );
    let d = &check(&v, "request first").detail;
    assert!(
        d.contains(r#"expected keep-alive: "timeout=5, max=100", got "timeout=5, max=99""#),
        "{d}"
    );
    let v = mutate(
        "first",
        with_headers(&[
            ("Keep-Alive", "timeout=5, max=100"),
            ("connection", "Keep-Alive"),
        ]),
    );
    let d = &check(&v, "request first").detail;
    assert!(
        d.contains(r#"expected no header Connection, got "Keep-Alive""#),
        "{d}"
    );
    assert!(d.contains("expected a header X-Served-By"), "{d}");
    // A response where a failure was expected.
    let v = mutate("p#2", ok("p#2", "b", 20));
    assert!(check(&v, "request p#2")
        .detail
        .contains("expected outcome failed"));
    // Connection: close where keep-alive was expected.
    let mut closing = ok("again", "a", 10);
    if let Observation::Response { closes, .. } = &mut closing {
        *closes = true;
    }
    let v = mutate("again", closing);
    let d = &check(&v, "request again").detail;
    assert!(
        d.starts_with(
            "expected the connection kept open after this response; the response said \
             `Connection: close`; observed 200"
        ),
        "{d}"
    );
    // No outcome at all.
    let mut r = requests_recording();
    r.0.timeline.retain(
        |e| !matches!(&e.what, Observation::Response { request, .. } if request == "first"),
    );
    let v = judge(&case(REQUESTS), Mpm::Worker, &reference(), &r.0);
    assert!(check(&v, "request first").detail.contains("still pending"));
    assert_eq!(v.result, RunResult::Failed);
}

const EVENTS: &str = r#"
id = "t/events"
title = "t"
[[step]]
open = "a"
[expect.all]
events = { timeout = 1 }
seen = [{ busy_workers = 2 }]
never = [{ threads = { at_least = 10 } }]
[expect.reference]
events = { keep_alive_closed_early = 0 }
"#;

fn event(kind: EventKind) -> Observation {
    Observation::ServerEvent {
        event: kind,
        pid: 1,
        detail: serde_json::Value::Null,
    }
}

#[test]
fn events_seen_and_never() {
    let good = Rec::default()
        .at(1.0, event(EventKind::Timeout))
        .at(
            2.0,
            Observation::Scoreboard(Summary {
                busy: 2,
                ..Default::default()
            }),
        )
        .at(
            3.0,
            Observation::Resources(crate::observe::Resources {
                processes: 2,
                threads: 5,
                pss_kb: 1,
                ..Default::default()
            }),
        );
    let v = judge(&case(EVENTS), Mpm::Event, &reference(), &good.0);
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);

    let bad = Rec::default()
        .at(1.0, event(EventKind::Timeout))
        .at(1.5, event(EventKind::Timeout))
        .at(1.7, event(EventKind::KeepAliveClosedEarly))
        .at(
            3.0,
            Observation::Resources(crate::observe::Resources {
                processes: 2,
                threads: 12,
                pss_kb: 1,
                ..Default::default()
            }),
        );
    let v = judge(&case(EVENTS), Mpm::Event, &reference(), &bad.0);
    assert!(check(&v, "server event timeout").failed());
    assert!(check(&v, "server event keep_alive_closed_early").failed());
    assert_eq!(check(&v, "seen: busy_workers=2").detail, "never observed");
    assert!(check(&v, "never: threads")
        .detail
        .contains("observed at 3 ms"));

    // On Apache: keep_alive_closed_early is reference-only and not reported there either.
    let v = judge(&case(EVENTS), Mpm::Event, &apache(), &bad.0);
    assert!(matches!(
        check(&v, "server event keep_alive_closed_early").status,
        Status::NotJudged(_)
    ));
    assert!(check(&v, "server event timeout").failed());
}

#[test]
fn what_the_target_cannot_observe_is_not_judged() {
    let blind = Capabilities {
        sources: &[Source::Scoreboard],
        events: &[],
        fault_paths: true,
        fault_sites: false,
        judges_reference_only: true,
    };
    let v = judge(&case(EVENTS), Mpm::Event, &blind, &Rec::default().0);
    assert!(matches!(
        check(&v, "never: threads").status,
        Status::NotJudged(_)
    ));
    assert!(matches!(
        check(&v, "server event timeout").status,
        Status::NotJudged(_)
    ));
    assert!(check(&v, "seen: busy_workers").failed());
}

#[test]
fn scenario_steps_become_checks() {
    let rec = Rec::default()
        .step(3, "wait", StepResult::Held)
        .step(
            4,
            "check busy_workers=1",
            StepResult::Checked {
                held: false,
                observed: "busy_workers=0".into(),
            },
        )
        .step(
            5,
            "wait for idle_workers=2",
            StepResult::TimedOut {
                observed: "idle_workers=1".into(),
            },
        );
    let v = judge(&case(EVENTS), Mpm::Event, &reference(), &rec.0);
    assert!(check(&v, "line 4: check").failed());
    assert!(check(&v, "line 5: wait").detail.contains("never held"));
    assert!(!v.checks.iter().any(|c| c.what.starts_with("line 3")));
}

#[test]
fn a_response_from_the_master_fails_pm1() {
    let mut rec = requests_recording();
    rec.0.master = Some(20);
    let v = judge(&case(REQUESTS), Mpm::Worker, &reference(), &rec.0);
    let c = check(&v, "the master serves no request");
    assert!(c.failed());
    assert!(c.detail.contains("other, p"), "{}", c.detail);
    rec.0.master = Some(99);
    let v = judge(&case(REQUESTS), Mpm::Worker, &reference(), &rec.0);
    assert!(check(&v, "the master serves no request").passed());
}

#[test]
fn a_broken_harness_is_an_error_not_a_verdict() {
    let rec = Recording {
        error: Some("reference server for event did not start".into()),
        ..Default::default()
    };
    let v = judge(&case(EVENTS), Mpm::Event, &reference(), &rec);
    assert_eq!(v.result, RunResult::Error);
    assert!(v.checks.is_empty());
    assert!(!v.passed());
}

#[test]
fn the_harness_teardown_is_not_judged() {
    // A crash that the harness's own stop caused (after Teardown) is not the case's.
    let rec = crash_recording();
    let mut timeline = rec.0.timeline.clone();
    let at = timeline
        .iter()
        .position(|e| matches!(e.what, Observation::ChildExited { .. }))
        .unwrap();
    timeline.insert(
        at,
        Entry {
            at_ms: 101.9,
            what: Observation::Teardown,
        },
    );
    let rec = Recording { timeline, ..rec.0 };
    let v = judge(&crash_case("process"), Mpm::Worker, &reference(), &rec);
    assert!(check(&v, "a child crashed").failed());
}

#[test]
fn recovery_seen_before_the_exit_is_observed_counts_from_the_first_cut() {
    // The scoreboard shows the replacement (30) before the event log says child 10 died, and
    // the first sign of the crash is slow-b cut at 50 ms.
    let rec = Rec::default()
        .sent("warm-a", "a", false)
        .sent("warm-b", "b", false)
        .sent("slow-b", "b", false)
        .sent("crash", "a", true)
        .at(10.0, board(&[10, 20], 2))
        .at(20.0, ok("warm-a", "a", 10))
        .at(21.0, ok("warm-b", "b", 10))
        .at(49.0, board(&[10, 20], 2))
        .at(50.0, failed("slow-b", "b", ErrorClass::Closed))
        .at(51.0, closed("a"))
        .at(52.0, board(&[30, 20], 2))
        .at(60.0, died(10))
        .at(60.0, failed("crash", "a", ErrorClass::Closed))
        .at(900.0, board(&[30, 20], 2));
    let v = judge(&crash_case("process"), Mpm::Event, &reference(), &rec.0);
    let c = check(&v, "pool whole again");
    assert!(c.passed(), "{c:?}");
    assert!(c.detail.contains("2.0 ms after the crash"), "{}", c.detail);
}

const CONNECTS: &str = r#"
id = "t/connects"
title = "t"
[[step]]
open = ["fast", "slow"]
[expect.all]
connects = { fast = { at_most = "500ms" }, slow = { at_least = "900ms", at_most = "4s" } }
"#;

fn opened(conn: &str, took_ms: f64) -> Observation {
    Observation::ConnOpened {
        conn: conn.into(),
        took_ms,
    }
}

#[test]
fn connect_times_are_judged_both_ways() {
    let judged = |fast: f64, slow: Option<f64>| {
        let mut r = Rec::default().at(1.0, opened("fast", fast));
        if let Some(ms) = slow {
            r = r.at(2.0, opened("slow", ms));
        }
        judge(&case(CONNECTS), Mpm::Prefork, &reference(), &r.0)
    };
    let v = judged(0.2, Some(3000.0));
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);
    // A backlog that had room: the slow one opened at once.
    let v = judged(0.2, Some(0.3));
    assert!(check(&v, "connection slow").failed());
    assert!(!check(&v, "connection fast").failed());
    // Too slow for its bound, either side.
    assert!(check(&judged(600.0, Some(3000.0)), "connection fast").failed());
    assert!(check(&judged(0.2, Some(4100.0)), "connection slow").failed());
    // Never opened.
    let v = judged(0.2, None);
    assert_eq!(check(&v, "connection slow").detail, "never opened");
}

const MASTER_EXIT: &str = r#"
id = "t/master-exit"
title = "t"
[[step]]
signal = "stop"
[expect.all]
master_exit = 0
"#;

#[test]
fn the_master_exit_code_is_judged() {
    let judged_with = |ending: Option<Ending>, outlived_by: Vec<i32>| {
        let mut r = Rec::default();
        if let Some(ending) = ending {
            r = r.at(
                1.0,
                Observation::MasterExited {
                    ending,
                    outlived_by,
                },
            );
        }
        judge(&case(MASTER_EXIT), Mpm::Event, &reference(), &r.0)
    };
    let judged = |ending: Option<Ending>| judged_with(ending, Vec::new());
    assert_eq!(judged(Some(Ending::Exited(0))).result, RunResult::Passed);
    // The right code, but a child still ran: the master did not wait for it.
    let v = judged_with(Some(Ending::Exited(0)), vec![41]);
    assert_eq!(
        check(&v, "the master exits").detail,
        "exit code 0, while pids [41] of its group still ran"
    );
    let v = judged(Some(Ending::Exited(1)));
    assert_eq!(check(&v, "the master exits").detail, "exit code 1");
    assert!(check(&judged(Some(Ending::Signaled(9))), "the master exits").failed());
    assert!(check(&judged(None), "the master exits").failed());
}

const LOG_LINES: &str = r#"
id = "t/log"
title = "t"
[[step]]
signal = "stop"
[expect.all]
log_has = ["exit signal Segmentation fault"]
log_never = ["exit status"]
"#;

#[test]
fn error_log_lines_are_judged() {
    let judged = |log: &str| {
        let mut r = Rec::default().0;
        r.server_log = log.to_string();
        judge(&case(LOG_LINES), Mpm::Prefork, &reference(), &r)
    };
    let crash = "[mpm_prefork:notice] child pid 7 exit signal Segmentation fault (11)\n";
    let v = judged(crash);
    assert_eq!(v.result, RunResult::Passed);
    assert!(check(&v, "the error log has").detail.contains("pid 7"));
    // Missing, or a line that must not be there.
    assert!(check(&judged(""), "the error log has").failed());
    let v = judged(&format!("{crash}[core:notice] child pid 8 exit status 0\n"));
    assert!(check(&v, "the error log never has").failed());
    assert!(!check(&v, "the error log has").failed());
    // A miss shows the lines nearest to the text: the words it shares with them.
    let log = "[mpm_prefork:notice] resuming normal operations\n\
               [core:notice] child pid 9 exit signal Abort (6)\n\
               [mpm_prefork:notice] caught SIGTERM, shutting down\n";
    let c = judged(log);
    let c = check(&c, "the error log has");
    assert!(c.failed());
    assert_eq!(
        c.detail,
        "no such line; nearest: \"[core:notice] child pid 9 exit signal Abort (6)\""
    );
    // Nothing in common: the log's last lines.
    let c = judged("[core:notice] one\n[core:notice] two\n");
    assert_eq!(
        check(&c, "the error log has").detail,
        "no such line; none shares a word; the log ends: \"[core:notice] one\" | \
         \"[core:notice] two\""
    );
}

/// `log_never` judges what the scenario made the server log; a line written while the harness
/// stopped the server is not the case's. `log_has` reads to the end: a line the scenario caused
/// may come at a maintenance tick after it.
#[test]
fn log_never_stops_at_the_teardown_log_has_does_not() {
    let during = "[mpm_prefork:notice] resuming normal operations\n";
    let after = "[core:notice] child pid 8 exit status 1\n\
                 [core:notice] child pid 7 exit signal Segmentation fault (11)\n";
    let mut r = Rec::default().0;
    r.server_log = format!("{during}{after}");
    r.log_at_teardown = Some(during.len());
    let v = judge(&case(LOG_LINES), Mpm::Prefork, &reference(), &r);
    assert!(!check(&v, "the error log never has").failed());
    assert!(!check(&v, "the error log has").failed());
    // Written during the scenario, it counts.
    r.log_at_teardown = Some(during.len() + after.len());
    let v = judge(&case(LOG_LINES), Mpm::Prefork, &reference(), &r);
    assert!(check(&v, "the error log never has").failed());
}

const LEAK: &str = r#"
id = "t/leak"
title = "t"
[server]
faults = true
[[step]]
warm = ["a", "b"]
[[step]]
request = "a"
fault = "leak:64M"
as = "leak"
[expect.all]
memory = { leak = { grew_at_least = "60M", others_grew_at_most = "4M", replaced = false } }
"#;

/// A request sent on a connection.
fn request_sent(request: &str, conn: &str) -> Observation {
    Observation::RequestSent {
        request: request.into(),
        conn: conn.into(),
        target: "/".into(),
        how: "GET HTTP/1.1".into(),
    }
}

/// A /proc sample: each process's PSS in KiB (the master first).
fn memory(pss: &[(i32, u64)]) -> Observation {
    Observation::Resources(crate::observe::Resources {
        processes: pss.len() as u64,
        threads: pss.len() as u64,
        pss_kb: pss.iter().map(|(_, kb)| kb).sum(),
        processes_memory: pss
            .iter()
            .map(|&(pid, pss_kb)| crate::observe::ProcessMemory { pid, pss_kb })
            .collect(),
    })
}

/// Master 1, children 10 (which serves a and the leak) and 20 (b): 10 grows by `grew` KiB, 20 by
/// `other` KiB while it does, and after the answer 10 frees half of it (as Apache's Lua does
/// with its buffer).
fn leak_recording(grew: u64, other: u64) -> Rec {
    Rec::default()
        .sent("warm-a", "a", false)
        .sent("warm-b", "b", false)
        .sent("leak", "a", false)
        .at(1.0, memory(&[(1, 1000), (10, 500), (20, 500)]))
        .at(5.0, ok("warm-a", "a", 10))
        .at(6.0, ok("warm-b", "b", 20))
        .at(10.0, request_sent("leak", "a"))
        .at(20.0, memory(&[(1, 1000), (10, 500 + grew / 2), (20, 500)]))
        .at(
            30.0,
            memory(&[(1, 1000), (10, 500 + grew), (20, 500 + other)]),
        )
        .at(40.0, ok("leak", "a", 10))
        .at(50.0, memory(&[(1, 1000), (10, 500 + grew / 2), (20, 500)]))
}

#[test]
fn memory_grows_in_the_process_that_served_the_request_and_no_other() {
    let v = judge(
        &case(LEAK),
        Mpm::Worker,
        &reference(),
        &leak_recording(66_000, 300).0,
    );
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);
    let grew = check(&v, "memory: the process that served leak grew by ≥ 60M");
    // Its largest, not its last: what it frees before the end does not hide what it held.
    assert!(
        grew.detail.contains("pid 10") && grew.detail.contains("+64.5 MiB"),
        "{grew:?}"
    );
    assert_eq!(
        grew.about,
        About::Request {
            name: "leak".into()
        }
    );
    assert!(check(&v, "memory: every other process").passed());
    assert!(check(&v, "memory: the process that served leak is still alive").passed());

    // Too little in its process.
    let v = judge(
        &case(LEAK),
        Mpm::Worker,
        &reference(),
        &leak_recording(50_000, 0).0,
    );
    assert!(check(&v, "memory: the process that served leak grew").failed());
    // Another process grew too, at the same moment.
    let v = judge(
        &case(LEAK),
        Mpm::Worker,
        &reference(),
        &leak_recording(66_000, 8_000).0,
    );
    let others = check(&v, "memory: every other process");
    assert!(
        others.failed() && others.detail.contains("pid 20 +7.8 MiB"),
        "{others:?}"
    );
    assert!(check(&v, "memory: the process that served leak grew").passed());
}

#[test]
fn memory_needs_the_process_before_the_request() {
    // No /proc sample before the request went out.
    let rec = Rec::default()
        .sent("leak", "a", false)
        .at(10.0, request_sent("leak", "a"))
        .at(30.0, memory(&[(1, 1000), (10, 66_000)]))
        .at(40.0, ok("leak", "a", 10));
    let v = judge(&case(LEAK), Mpm::Worker, &reference(), &rec.0);
    let c = check(&v, "memory of the process that served leak");
    assert!(c.failed() && c.detail.contains("no /proc sample"), "{c:?}");
    // The child that served it did not exist yet.
    let rec = Rec::default()
        .sent("leak", "a", false)
        .at(1.0, memory(&[(1, 1000), (20, 500)]))
        .at(10.0, request_sent("leak", "a"))
        .at(30.0, memory(&[(1, 1000), (10, 66_000), (20, 500)]))
        .at(40.0, ok("leak", "a", 10));
    let v = judge(&case(LEAK), Mpm::Worker, &reference(), &rec.0);
    let c = check(&v, "memory of the process that served leak");
    assert!(
        c.failed() && c.detail.contains("warm its connection"),
        "{c:?}"
    );
    // No answer, so no process to speak of.
    let rec = Rec::default()
        .sent("leak", "a", false)
        .at(1.0, memory(&[(1, 1000), (10, 500)]))
        .at(10.0, request_sent("leak", "a"))
        .at(40.0, failed("leak", "a", ErrorClass::Closed));
    let v = judge(&case(LEAK), Mpm::Worker, &reference(), &rec.0);
    assert!(check(&v, "memory of the process that served leak")
        .detail
        .contains("no X-Served-By pid"));
}

const HANDED_BACK: &str = r#"
id = "t/handed-back"
title = "t"
[server]
faults = true
[[step]]
warm = "a"
[[step]]
request = "a"
fault = "leak:64M"
as = "leak"
[expect.all]
memory = { leak = { grew_at_least = "60M", replaced = true, server_grew_at_most = "4M" } }
"#;

/// Master 1 and child 10, which leaks 64 MiB; then `end`: what follows the answer.
fn handed_back(end: Rec) -> Rec {
    end.sent("warm-a", "a", false)
        .sent("leak", "a", false)
        .at(1.0, memory(&[(1, 1000), (10, 500)]))
        .at(5.0, ok("warm-a", "a", 10))
        .at(10.0, request_sent("leak", "a"))
        .at(30.0, memory(&[(1, 1000), (10, 66_000)]))
        .at(40.0, ok("leak", "a", 10))
}

#[test]
fn memory_handed_back_when_the_child_is_replaced() {
    // The child leaves; its replacement (11) is as small as it was.
    let back = handed_back(
        Rec::default()
            .at(60.0, died(10))
            .at(70.0, memory(&[(1, 1000), (11, 600)])),
    );
    let v = judge(&case(HANDED_BACK), Mpm::Prefork, &reference(), &back.0);
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);

    // /proc shows it gone before its exit is recorded: the same.
    let early = handed_back(
        Rec::default()
            .at(60.0, memory(&[(1, 1000), (11, 600)]))
            .at(61.0, died(10)),
    );
    let v = judge(&case(HANDED_BACK), Mpm::Prefork, &reference(), &early.0);
    assert_eq!(v.result, RunResult::Passed, "{:#?}", v.checks);

    // It never left: not replaced, and the memory is still the server's.
    let kept = handed_back(Rec::default().at(70.0, memory(&[(1, 1000), (10, 66_000)])));
    let v = judge(&case(HANDED_BACK), Mpm::Prefork, &reference(), &kept.0);
    assert!(
        check(&v, "memory: the process that served leak was replaced")
            .detail
            .contains("did not exit")
    );
    assert!(check(&v, "memory: the server's PSS at the end").failed());

    // It left, but nothing took its place yet: its memory is back by construction, and the
    // replacement is what the check waits for.
    let gap = handed_back(
        Rec::default()
            .at(60.0, died(10))
            .at(70.0, memory(&[(1, 1000)])),
    );
    let v = judge(&case(HANDED_BACK), Mpm::Prefork, &reference(), &gap.0);
    let replaced = check(&v, "memory: the process that served leak was replaced");
    assert!(
        replaced.failed() && replaced.detail.contains("not whole again"),
        "{replaced:?}"
    );
    assert!(check(&v, "memory: the server's PSS at the end").passed());

    // It left and was replaced, but the memory stayed with the server (in the master here, as
    // memory the processes share would): not handed back.
    let stayed = handed_back(
        Rec::default()
            .at(60.0, died(10))
            .at(70.0, memory(&[(1, 66_000), (11, 600)])),
    );
    let v = judge(&case(HANDED_BACK), Mpm::Prefork, &reference(), &stayed.0);
    assert!(check(&v, "memory: the process that served leak was replaced").passed());
    let server = check(&v, "memory: the server's PSS at the end");
    assert!(
        server.failed() && server.detail.contains("+63.6 MiB"),
        "{server:?}"
    );
}

#[test]
fn memory_is_not_judged_without_proc() {
    let blind = Capabilities {
        sources: &[Source::Scoreboard, Source::ProcessExits],
        events: &[],
        fault_paths: true,
        fault_sites: false,
        judges_reference_only: true,
    };
    let v = judge(&case(LEAK), Mpm::Worker, &blind, &leak_recording(0, 0).0);
    assert!(!v.checks.is_empty());
    assert!(v
        .checks
        .iter()
        .filter(|c| c.what.starts_with("memory"))
        .all(|c| matches!(&c.status, Status::NotJudged(why) if why.contains("/proc"))));
}
