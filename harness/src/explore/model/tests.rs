//! The model's tests: what it predicts for hand-written scenarios under each MPM, and the
//! properties every prediction keeps.

use super::*;

fn outcomes(p: &Prediction) -> Vec<(&str, Predicted)> {
    p.requests
        .iter()
        .map(|r| (r.name.as_str(), r.outcome))
        .collect()
}

/// Three connections; one held in its handler; a crash on another.
fn crash_beside_a_held_request() -> Scenario {
    ample(3, vec![Op::Hold { conn: 0 }, Op::Crash { conn: 1 }])
}

#[test]
fn prefork_loses_the_crashing_connection_only() {
    let p = Model::of(Mpm::Prefork).predict(&crash_beside_a_held_request());
    use Predicted::*;
    assert_eq!(
        outcomes(&p),
        [
            ("hold-0", Answered),
            ("crash-1", Failed),
            ("last-0", Answered),
            ("last-1", Failed),
            ("last-2", Answered)
        ]
    );
    assert_eq!(p.ends, [End::Open, End::ClosedByServer, End::Open]);
    assert_eq!(p.crashes, 1);
}

#[test]
fn worker_and_event_lose_every_connection_of_the_child() {
    for mpm in [Mpm::Worker, Mpm::Event] {
        let p = Model::of(mpm).predict(&crash_beside_a_held_request());
        use Predicted::*;
        assert_eq!(
            outcomes(&p),
            [
                ("hold-0", Failed),
                ("crash-1", Failed),
                ("last-0", Failed),
                ("last-1", Failed),
                ("last-2", Failed)
            ],
            "{mpm}"
        );
        assert_eq!(p.ends, [End::ClosedByServer; 3], "{mpm}");
    }
}

#[test]
fn what_happens_on_a_closed_connection_fails_and_crashes_nothing() {
    let s = ample(
        2,
        vec![
            Op::Close { conn: 0 },
            Op::Crash { conn: 0 },
            Op::Request { conn: 1 },
        ],
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    use Predicted::*;
    assert_eq!(
        outcomes(&p),
        [
            ("crash-1", Failed),
            ("req-2", Answered),
            ("last-1", Answered)
        ]
    );
    assert_eq!(p.crashes, 0);
    assert_eq!(p.ends, [End::ClosedByClient, End::Open]);
}

#[test]
fn what_queues_behind_a_held_request_finishes_it_first() {
    // The crash on c0 waits for c0's held request (whose response it may take with it);
    // the client's close of c1 gives up on the one held there.
    let s = ample(
        2,
        vec![
            Op::Hold { conn: 0 },
            Op::Hold { conn: 1 },
            Op::Close { conn: 1 },
            Op::Crash { conn: 0 },
        ],
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    use Predicted::*;
    assert_eq!(
        outcomes(&p),
        [
            ("hold-0", Either),
            ("hold-1", Failed),
            ("crash-3", Failed),
            ("last-0", Failed)
        ]
    );
}

#[test]
fn a_crash_behind_a_held_request_leaves_the_others_to_timing() {
    // The crash on c0 waits for c0's held request (400 ms), whose response it may take
    // with it (Apache prefork and worker); the one held on c1, sent just before, ends
    // about then.
    let s = ample(
        2,
        vec![
            Op::Hold { conn: 1 },
            Op::Hold { conn: 0 },
            Op::Crash { conn: 0 },
        ],
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    use Predicted::*;
    assert_eq!(
        outcomes(&p),
        [
            ("hold-0", Either),
            ("hold-1", Either),
            ("crash-2", Failed),
            ("last-0", Failed),
            ("last-1", Failed)
        ]
    );
    assert_eq!(p.ends, [End::ClosedByServer; 2]);
    // The same under prefork: the wait is as long.
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(p.requests[0].outcome, Either);
}

#[test]
fn a_close_after_the_servers_leaves_open_which_was_seen() {
    let s = ample(2, vec![Op::Crash { conn: 0 }, Op::Close { conn: 1 }]);
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(p.ends, [End::ClosedByServer, End::ClosedByEither]);
}

#[test]
fn a_kill_cuts_as_a_crash_does_without_a_request() {
    let s = ample(2, vec![Op::Hold { conn: 1 }, Op::Kill { conn: 0 }]);
    use Predicted::*;
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(
        outcomes(&p),
        [
            ("hold-0", Answered),
            ("last-0", Failed),
            ("last-1", Answered)
        ]
    );
    assert_eq!(p.ends, [End::ClosedByServer, End::Open]);
    let w = Model::of(Mpm::Event).predict(&s);
    assert_eq!(
        outcomes(&w),
        [("hold-0", Failed), ("last-0", Failed), ("last-1", Failed)]
    );
    assert_eq!(w.ends, [End::ClosedByServer; 2]);
}

#[test]
fn a_pretended_model_predicts_the_other_mpm() {
    let s = crash_beside_a_held_request();
    let wrong = Model::pretending(Mpm::Prefork, Mpm::Worker).predict(&s);
    assert_eq!(wrong, Model::of(Mpm::Worker).predict(&s));
    assert_ne!(wrong, Model::of(Mpm::Prefork).predict(&s));
}

#[test]
fn a_second_crash_takes_only_what_the_first_left() {
    let s = ample(3, vec![Op::Crash { conn: 0 }, Op::Crash { conn: 2 }]);
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(p.crashes, 2);
    assert_eq!(
        p.ends,
        [End::ClosedByServer, End::Open, End::ClosedByServer]
    );
    let w = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(w.crashes, 1, "the second crash finds its connection closed");
}

/// Two spare workers, no MaxKeepAliveRequests.
fn ample(connections: usize, ops: Vec<Op>) -> Scenario {
    Scenario {
        spare: 2,
        ..tight(connections, 0, ops)
    }
}

fn tight(connections: usize, max_keepalive: u32, ops: Vec<Op>) -> Scenario {
    Scenario {
        connections,
        spare: 0,
        max_keepalive,
        ops,
    }
}

fn probe(p: &Prediction) -> Predicted {
    p.requests
        .iter()
        .find(|r| r.name.starts_with("probe"))
        .expect("a probe")
        .outcome
}

#[test]
fn with_every_worker_holding_a_keepalive_connection_a_probe_waits_except_under_event() {
    let s = tight(2, 0, vec![Op::Probe]);
    for mpm in [Mpm::Prefork, Mpm::Worker] {
        let p = Model::of(mpm).predict(&s);
        assert_eq!(probe(&p), Predicted::TimedOut, "{mpm}");
        assert_eq!(p.idle_before, [(0, 0)], "{mpm}");
    }
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(probe(&p), Predicted::Answered);
    // Before the probe, and before each last request (the previous one's worker back).
    assert_eq!(p.idle_before, [(0, 2), (1, 2), (2, 2)]);
    assert_eq!(
        p.ends,
        [End::Open; 2],
        "nothing waited: nothing closed early"
    );
    // A spare worker serves it under every MPM.
    let spare = Scenario { spare: 1, ..s };
    for mpm in Mpm::ALL {
        assert_eq!(probe(&Model::of(mpm).predict(&spare)), Predicted::Answered);
    }
}

#[test]
fn a_close_or_a_crash_frees_a_worker_for_the_probe() {
    for first in [
        Op::Close { conn: 0 },
        Op::Crash { conn: 0 },
        Op::Kill { conn: 1 },
    ] {
        let s = tight(2, 0, vec![first, Op::Probe]);
        for mpm in [Mpm::Prefork, Mpm::Worker] {
            let p = Model::of(mpm).predict(&s);
            assert_eq!(probe(&p), Predicted::Answered, "{mpm} after {first:?}");
        }
    }
    // Under worker the crash frees both (the replacement's two threads), under prefork one.
    let s = tight(2, 0, vec![Op::Crash { conn: 0 }, Op::Probe]);
    assert_eq!(Model::of(Mpm::Worker).predict(&s).idle_before, [(1, 2)]);
    assert_eq!(Model::of(Mpm::Prefork).predict(&s).idle_before, [(1, 1)]);
}

#[test]
fn max_keepalive_requests_closes_after_that_many_after_the_first() {
    // MaxKeepAliveRequests 1: the warm-up and one more; the third fails. (A spare worker:
    // under event a child of one leaves every request to timing, EV-8.)
    let s = Scenario {
        spare: 1,
        ..tight(1, 1, vec![Op::Request { conn: 0 }, Op::Request { conn: 0 }])
    };
    use Predicted::*;
    for mpm in Mpm::ALL {
        let p = Model::of(mpm).predict(&s);
        assert_eq!(
            outcomes(&p),
            [("req-0", Answered), ("req-1", Failed), ("last-0", Failed)],
            "{mpm}"
        );
        assert_eq!(p.ends, [End::ClosedByServer], "{mpm}");
    }
    // The closed connection's worker is free again: a probe is answered.
    let s = tight(1, 1, vec![Op::Request { conn: 0 }, Op::Probe]);
    assert_eq!(probe(&Model::of(Mpm::Worker).predict(&s)), Answered);
    // When the last request is the scenario's last, the close may or may not be seen.
    let s = tight(1, 1, vec![]);
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(outcomes(&p), [("last-0", Answered)]);
    assert_eq!(p.ends, [End::Unknown]);
    // A crash behind a held last request never runs.
    let s = tight(2, 1, vec![Op::Hold { conn: 0 }, Op::Crash { conn: 0 }]);
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(p.crashes, 0);
    assert_eq!(p.requests[0].outcome, Answered);
    assert_eq!(p.ends, [End::ClosedByServer, End::Unknown]);
}

#[test]
fn a_probe_that_finds_every_event_worker_busy_leaves_the_keepalive_ends_to_timing() {
    // EV-5: both workers hold a request when the probe arrives.
    let s = tight(
        2,
        0,
        vec![Op::Hold { conn: 0 }, Op::Hold { conn: 1 }, Op::Probe],
    );
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(probe(&p), Predicted::Answered);
    // Before each hold the other worker is idle; before the probe none is.
    assert_eq!(p.idle_before, [(0, 2), (1, 1), (2, 0)]);
    assert_eq!(p.ends, [End::Unknown; 2]);
    use Predicted::*;
    // The second hold arrives with one worker left, which may be busy a moment longer
    // with the first one's arrival (EV-8): it is left to timing.
    assert_eq!(
        outcomes(&p)[..2],
        [("hold-0", Answered), ("hold-1", Either)]
    );
    // Worker: the probe waits, and the connections stay.
    let w = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(probe(&w), TimedOut);
    assert_eq!(w.ends, [End::Open; 2]);
}

#[test]
fn event_pretending_to_keep_its_workers_predicts_a_wait() {
    let s = tight(2, 0, vec![Op::Probe]);
    let wrong = Model::pretending(Mpm::Event, Mpm::Worker).predict(&s);
    assert_eq!(probe(&wrong), Predicted::TimedOut);
    assert_eq!(
        probe(&Model::of(Mpm::Event).predict(&s)),
        Predicted::Answered
    );
}

#[test]
fn latency_windows_count_the_holds_ahead() {
    let ops = vec![
        Op::Hold { conn: 0 },
        Op::Hold { conn: 0 },
        Op::Request { conn: 0 },
    ];
    let s = Scenario {
        spare: 1,
        ..tight(1, 0, ops)
    };
    let p = Model::of(Mpm::Worker).predict(&s);
    let window = |name: &str| {
        p.requests
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.latency)
            .expect("answered")
    };
    assert_eq!(window("hold-0").at_least, Some(HOLD));
    assert_eq!(window("hold-1").at_most, Some(HOLD * 2 + SLACK));
    assert_eq!(window("req-2").at_least, Some(Duration::ZERO));
    assert_eq!(window("req-2").at_most, Some(HOLD * 2 + SLACK));
    assert_eq!(window("last-0").at_most, Some(SLACK));
}

#[test]
fn a_one_thread_event_child_that_stopped_accepting_may_not_start_again() {
    // Apache: 1 thread, 1 keep-alive connection, below its limit only with none.
    let s = tight(1, 0, vec![Op::Hold { conn: 0 }, Op::Probe, Op::Probe]);
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(p.requests[1].outcome, Predicted::Either);
    assert_eq!(p.requests[2].outcome, Predicted::Either);
    // Once the connection is gone it accepts.
    let s = tight(
        1,
        0,
        vec![
            Op::Hold { conn: 0 },
            Op::Probe,
            Op::Close { conn: 0 },
            Op::Probe,
        ],
    );
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(probe_named(&p, "probe-3"), Predicted::Answered);
    // Two threads: three connections would be needed.
    let s = tight(
        2,
        0,
        vec![Op::Hold { conn: 0 }, Op::Hold { conn: 1 }, Op::Probe],
    );
    assert_eq!(
        probe(&Model::of(Mpm::Event).predict(&s)),
        Predicted::Answered
    );
}

fn probe_named(p: &Prediction, name: &str) -> Predicted {
    p.requests
        .iter()
        .find(|r| r.name == name)
        .expect(name)
        .outcome
}

#[test]
fn a_hold_before_a_probe_may_end_while_the_server_settles() {
    // Apache worker: the probe waits for the lingering close of c2 (MaxKeepAliveRequests)
    // to free its thread; the hold on c1 may end meanwhile, before the crash.
    let s = Scenario {
        connections: 4,
        spare: 1,
        max_keepalive: 1,
        ops: vec![
            Op::Hold { conn: 1 },
            Op::Request { conn: 2 },
            Op::Probe,
            Op::Crash { conn: 0 },
        ],
    };
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(probe_named(&p, "hold-0"), Predicted::Either);
    assert_eq!(probe_named(&p, "probe-2"), Predicted::Answered);
    assert_eq!(p.ends[0], End::ClosedByServer);
}

#[test]
fn under_event_a_request_that_may_find_every_worker_busy_is_left_to_timing() {
    use Predicted::*;
    // One thread: every arrival may meet the worker still busy with the last response.
    let s = tight(1, 0, vec![Op::Request { conn: 0 }]);
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(outcomes(&p), [("req-0", Either), ("last-0", Either)]);
    assert_eq!(p.ends, [End::Unknown]);
    // A spare thread: answered, and the same under worker with none.
    let spare = Scenario {
        spare: 1,
        ..s.clone()
    };
    let p = Model::of(Mpm::Event).predict(&spare);
    assert_eq!(outcomes(&p), [("req-0", Answered), ("last-0", Answered)]);
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(outcomes(&p), [("req-0", Answered), ("last-0", Answered)]);
}

#[test]
fn a_graceful_restart_finishes_what_is_in_flight_and_keeps_idle_connections_but_under_event() {
    use Predicted::*;
    let s = ample(
        2,
        vec![
            Op::Hold { conn: 0 },
            Op::Graceful,
            Op::Request { conn: 1 },
            Op::Probe,
        ],
    );
    // Prefork: the held request is answered (no lower bound: a sleep may be cut short)
    // and its connection closed after it; the idle one is served once more.
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(
        outcomes(&p),
        [
            ("hold-0", Answered),
            ("req-2", Answered),
            ("probe-3", Answered),
            ("last-0", Failed),
            ("last-1", Either)
        ]
    );
    assert_eq!(
        p.requests[0].latency.and_then(|l| l.at_least),
        Some(Duration::ZERO)
    );
    assert_eq!(p.ends, [End::ClosedByServer, End::Unknown]);
    assert!(p.closed_at.is_empty());
    // Worker: the old child keeps the one slot while it holds c1: the probe is left open.
    let w = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(w.requests[2].outcome, Either);
    // Event: the idle connection is closed at once, the busy one after its response; the
    // new child serves the probe.
    let e = Model::of(Mpm::Event).predict(&s);
    assert_eq!(
        outcomes(&e),
        [
            ("hold-0", Answered),
            ("req-2", Failed),
            ("probe-3", Either),
            ("last-0", Failed),
            ("last-1", Failed)
        ]
    );
    assert_eq!(e.closed_at, [(1, vec![1])]);
    assert_eq!(e.ends, [End::ClosedByServer; 2]);
    // Once the old child has nothing left, the new one serves — under worker as timing
    // has it (Apache's new child may not accept while sharing the slot with the old one).
    let s = ample(1, vec![Op::Graceful, Op::Close { conn: 0 }, Op::Probe]);
    for mpm in [Mpm::Prefork, Mpm::Event] {
        let p = Model::of(mpm).predict(&s);
        assert_eq!(probe(&p), Answered, "{mpm}");
    }
    assert_eq!(probe(&Model::of(Mpm::Worker).predict(&s)), Either);
    // A hard restart after it starts afresh.
    let s = ample(1, vec![Op::Graceful, Op::Restart, Op::Probe]);
    assert_eq!(probe(&Model::of(Mpm::Worker).predict(&s)), Answered);
}

#[test]
fn a_graceful_restart_serves_only_the_request_in_its_handler_and_under_worker_outlives_a_hup() {
    use Predicted::*;
    // What is pipelined behind the held request is never read.
    let s = ample(
        1,
        vec![Op::Hold { conn: 0 }, Op::Hold { conn: 0 }, Op::Graceful],
    );
    for mpm in Mpm::ALL {
        let p = Model::of(mpm).predict(&s);
        assert_eq!(
            outcomes(&p),
            [("hold-0", Answered), ("hold-1", Failed), ("last-0", Failed)],
            "{mpm}"
        );
    }
    // A request on a connection its threaded child keeps after USR1, then HUP: Apache's
    // child lets the handler finish, the reference's dies at once.
    let s = ample(1, vec![Op::Graceful, Op::Hold { conn: 0 }, Op::Restart]);
    assert_eq!(
        Model::of(Mpm::Worker).predict(&s).requests[0].outcome,
        Either
    );
    assert_eq!(
        Model::of(Mpm::Prefork).predict(&s).requests[0].outcome,
        Failed
    );
    assert_eq!(
        Model::of(Mpm::Worker).predict(&s).writing_before,
        [(2, 1)],
        "the explorer waits for the hold in its handler before the HUP"
    );
    // Event: a kill through a connection the graceful restart closed may still find the
    // old child, busy with the held request (which may have ended during the restart's
    // waits); either way the connection ends.
    let s = ample(
        2,
        vec![Op::Hold { conn: 0 }, Op::Graceful, Op::Kill { conn: 1 }],
    );
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(p.requests[0].outcome, Either);
    assert_eq!(p.ends, [End::ClosedByServer; 2]);
    // No kill after the client's own close (the explorer sends none).
    let s = tight(2, 0, vec![Op::Close { conn: 1 }, Op::Kill { conn: 1 }]);
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(p.crashes, 0);
    assert_eq!(p.ends, [End::Open, End::ClosedByClient]);
    // Before a second USR1 the connections kept since the first are not waited for in `K`.
    let s = ample(2, vec![Op::Graceful, Op::Graceful]);
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(p.keepalive_before, [(0, 2)]);
}

#[test]
fn keepalive_timeout_ends_every_idle_connection_and_frees_its_worker() {
    use Predicted::*;
    let s = tight(
        2,
        0,
        vec![
            Op::Hold { conn: 0 },
            Op::Expire,
            Op::Probe,
            Op::Request { conn: 1 },
        ],
    );
    for mpm in Mpm::ALL {
        let p = Model::of(mpm).predict(&s);
        // Before: open or expired. After: closed, and the probe finds the pool free.
        assert_eq!(
            outcomes(&p),
            [
                ("hold-0", Either),
                ("probe-2", Answered),
                ("req-3", Failed),
                ("last-0", Failed),
                ("last-1", Failed)
            ],
            "{mpm}"
        );
        assert_eq!(p.ends, [End::ClosedByServer; 2], "{mpm}");
    }
    assert_eq!(s.keepalive_timeout(), KEEPALIVE_TIMEOUT_SHORT);
    // Without the wait nothing expires.
    let s = tight(2, 0, vec![Op::Probe]);
    assert_eq!(s.keepalive_timeout(), KEEPALIVE_TIMEOUT_LONG);
    assert_eq!(
        probe(&Model::of(Mpm::Worker).predict(&s)),
        TimedOut,
        "WK-2: every worker holds a connection"
    );
}

#[test]
fn a_hard_restart_closes_everything_and_a_new_generation_serves() {
    use Predicted::*;
    let s = Scenario {
        spare: 1,
        ..tight(
            2,
            0,
            vec![
                Op::Hold { conn: 0 },
                Op::Restart,
                Op::Probe,
                Op::Kill { conn: 1 },
            ],
        )
    };
    for mpm in Mpm::ALL {
        let p = Model::of(mpm).predict(&s);
        assert_eq!(
            outcomes(&p),
            [
                ("hold-0", Failed),
                ("probe-2", Answered),
                ("last-0", Failed),
                ("last-1", Failed)
            ],
            "{mpm}"
        );
        assert_eq!(p.ends, [End::ClosedByServer; 2], "{mpm}");
        assert_eq!(p.crashes, 0, "{mpm}: the kill finds its child gone");
        // The whole new pool is idle before the probe.
        assert!(p.idle_before.contains(&(2, 3)), "{mpm}");
    }
}

fn shared_states(p: &Prediction) -> Vec<(&str, Option<SharedState>)> {
    p.requests
        .iter()
        .filter(|r| r.name.starts_with("shared"))
        .map(|r| (r.name.as_str(), r.shared))
        .collect()
}

#[test]
fn of_two_shared_requests_in_one_child_the_first_is_clobbered_but_never_under_prefork() {
    use SharedState::*;
    let s = ample(2, vec![Op::Shared { conn: 0 }, Op::Shared { conn: 1 }]);
    for mpm in [Mpm::Worker, Mpm::Event] {
        let p = Model::of(mpm).predict(&s);
        assert_eq!(
            shared_states(&p),
            [("shared-0", Some(Clobbered)), ("shared-1", Some(Intact))],
            "{mpm}"
        );
        // The second waits for the first in its handler, then the margin.
        assert_eq!(p.margin_before, [(1, 1)], "{mpm}");
        assert!(p.requests.iter().all(|r| r.outcome == Predicted::Answered));
    }
    // A child each: nothing to wait for, nothing shared.
    let p = Model::of(Mpm::Prefork).predict(&s);
    assert_eq!(
        shared_states(&p),
        [("shared-0", Some(Intact)), ("shared-1", Some(Intact))]
    );
    assert!(p.margin_before.is_empty());
}

#[test]
fn each_shared_request_is_clobbered_by_the_next_while_it_surely_holds() {
    use SharedState::*;
    let s = ample(
        4,
        (0..4).map(|conn| Op::Shared { conn }).collect::<Vec<_>>(),
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(
        shared_states(&p),
        [
            ("shared-0", Some(Clobbered)),
            ("shared-1", Some(Clobbered)),
            ("shared-2", Some(Clobbered)),
            ("shared-3", Some(Intact))
        ]
    );
    // Two margins on: the first may have ended, and is not waited for in `W`.
    assert_eq!(p.margin_before, [(1, 1), (2, 2), (3, 2)]);
}

#[test]
fn where_the_order_of_the_writes_is_timing_the_model_says_either() {
    use SharedState::*;
    // Behind a held request on its connection the first writes when that one ends: any time.
    let s = ample(
        2,
        vec![
            Op::Hold { conn: 0 },
            Op::Shared { conn: 0 },
            Op::Shared { conn: 1 },
        ],
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(
        shared_states(&p),
        [("shared-1", Some(Either)), ("shared-2", Some(Either))]
    );
    // After a probe's waits the first may have ended: the second may or may not write in its
    // hold; the first surely wrote before the second was sent.
    let s = ample(
        2,
        vec![Op::Shared { conn: 0 }, Op::Probe, Op::Shared { conn: 1 }],
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(
        shared_states(&p),
        [("shared-0", Some(Either)), ("shared-2", Some(Intact))]
    );
    // Event with a worker each: the second may find none free (EV-8), and may not write.
    let s = tight(2, 0, vec![Op::Shared { conn: 0 }, Op::Shared { conn: 1 }]);
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(p.requests[1].outcome, Predicted::Either);
    assert_eq!(
        shared_states(&p),
        [("shared-0", Some(Either)), ("shared-1", None)]
    );
}

#[test]
fn a_shared_request_over_or_in_another_child_shares_nothing() {
    use SharedState::*;
    // Answered before the second is sent (a request queued behind it was).
    let s = ample(
        2,
        vec![
            Op::Shared { conn: 0 },
            Op::Request { conn: 0 },
            Op::Shared { conn: 1 },
        ],
    );
    let p = Model::of(Mpm::Event).predict(&s);
    assert_eq!(
        shared_states(&p),
        [("shared-0", Some(Intact)), ("shared-2", Some(Intact))]
    );
    assert!(p.margin_before.is_empty());
    // On one connection requests never overlap.
    let s = ample(1, vec![Op::Shared { conn: 0 }, Op::Shared { conn: 0 }]);
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(
        shared_states(&p),
        [("shared-0", Some(Intact)), ("shared-1", Some(Intact))]
    );
    // A kill takes the child with the first; its replacement serves the second.
    let s = ample(
        2,
        vec![
            Op::Shared { conn: 0 },
            Op::Kill { conn: 1 },
            Op::Shared { conn: 1 },
        ],
    );
    let p = Model::of(Mpm::Worker).predict(&s);
    assert_eq!(
        shared_states(&p),
        [("shared-0", None), ("shared-2", None)],
        "both cut with their child, or sent on a closed connection"
    );
}

#[test]
fn a_model_whose_threads_keep_their_own_state_predicts_intact() {
    let s = ample(2, vec![Op::Shared { conn: 0 }, Op::Shared { conn: 1 }]);
    for mpm in [Mpm::Worker, Mpm::Event] {
        let wrong = Model::isolating_threads(mpm).predict(&s);
        assert_eq!(
            shared_states(&wrong),
            [
                ("shared-0", Some(SharedState::Intact)),
                ("shared-1", Some(SharedState::Intact))
            ],
            "{mpm}"
        );
        assert_ne!(wrong, Model::of(mpm).predict(&s));
    }
}
