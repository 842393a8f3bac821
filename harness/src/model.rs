//! An executable model of each MPM: given a scenario, what SPEC.md says every request comes to
//! and how every connection ends. Pure: no I/O, no clock.
//!
//! The scenarios it speaks of ([`Scenario`]) are those the explorer generates: a pool sized so
//! that every connection gets a worker of its own (prefork: a child each; worker and event: one
//! child with a thread each), connections warmed one at a time so that each is owned by a known
//! process, then operations — a request held in its handler (`sleep`), a crash, a close, a plain
//! request — and finally a request on every connection still open. What decides the outcomes
//! there is the crash's blast radius (PF-2: the crashing connection; WK-3, EV-6: every
//! connection of the child, busy or idle) and keep-alive: a connection the server did not close
//! serves its next request (KA-1 with MaxKeepAliveRequests 0 and a long KeepAliveTimeout).

use mpm_faults::BlastRadius;
use refhttpd::Mpm;

/// One operation of a scenario, on connection `conn` (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A request that holds its worker for a while (`sleep:…`), left in flight.
    Hold { conn: usize },
    /// A request that crashes its child (`crash:segv`), awaited, and the death waited for.
    Crash { conn: usize },
    /// The client closes the connection.
    Close { conn: usize },
    /// SIGKILL to the child that answered the connection's warm-up request, and a wait for the
    /// server to end the connection.
    Kill { conn: usize },
    /// A plain request, awaited.
    Request { conn: usize },
}

impl Op {
    pub fn conn(self) -> usize {
        match self {
            Op::Hold { conn }
            | Op::Crash { conn }
            | Op::Close { conn }
            | Op::Request { conn }
            | Op::Kill { conn } => conn,
        }
    }
}

/// A scenario: `connections` warmed keep-alive connections, then `ops` in order, then a
/// request on every connection the client did not close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub connections: usize,
    pub ops: Vec<Op>,
}

/// What a request comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predicted {
    /// Answered, 200.
    Answered,
    /// No response: the connection was cut (or already closed by the server).
    Failed,
    /// Timing decides: either may be seen, and the model does not guess.
    Either,
}

/// One request of the scenario as the explorer sends it, with its prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub conn: usize,
    pub outcome: Predicted,
}

/// How a connection ends, by the end of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Open, as far as the server is concerned.
    Open,
    /// Closed by the client (`close`).
    ClosedByClient,
    /// Closed by the server (its process died).
    ClosedByServer,
    /// Closed by the server, then by the client before the client may have seen it: which the
    /// client saw first is timing.
    ClosedByEither,
}

/// Every prediction for one scenario under one MPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub requests: Vec<Request>,
    pub ends: Vec<End>,
    /// Child deaths the scenario causes.
    pub crashes: usize,
}

/// A model of one MPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub mpm: Mpm,
    /// Whether every connection belongs to one child (worker and event with ServerLimit 1), or
    /// each to a child of its own (prefork).
    pub one_child: bool,
    /// What a crash takes down.
    pub blast_radius: BlastRadius,
}

impl Model {
    /// The MPM as SPEC.md states it.
    pub fn of(mpm: Mpm) -> Model {
        match mpm {
            Mpm::Prefork => Model {
                mpm,
                one_child: false,
                blast_radius: BlastRadius::Connection,
            },
            Mpm::Worker | Mpm::Event => Model {
                mpm,
                one_child: true,
                blast_radius: BlastRadius::Process,
            },
        }
    }

    /// A deliberately wrong model (the explorer's self-test): `mpm` behaving as `like` does —
    /// prefork whose connections share a child that a crash takes down whole, or worker whose
    /// crash takes only its own connection.
    pub fn pretending(mpm: Mpm, like: Mpm) -> Model {
        Model {
            mpm,
            ..Model::of(like)
        }
    }

    /// Predicts every request and every connection's end. Operations on a connection that is
    /// already closed are requests that fail at once (a crash there crashes nothing).
    pub fn predict(&self, s: &Scenario) -> Prediction {
        let mut ends = vec![End::Open; s.connections];
        // The process each open connection belongs to: one child per connection (prefork's
        // pool), or one child for all (worker and event, ServerLimit 1). A number per
        // generation of children, so that a replacement is another process.
        let mut owner: Vec<usize> = (0..s.connections).map(|c| self.first_owner(c)).collect();
        let mut next_process = s.connections + 1;
        let mut requests: Vec<Request> = Vec::new();
        // Requests in flight (held): index into `requests`.
        let mut held: Vec<usize> = Vec::new();
        let mut crashes = 0;
        for (k, op) in s.ops.iter().enumerate() {
            let c = op.conn();
            let open = ends[c] == End::Open;
            let name = match op {
                Op::Hold { .. } => format!("hold-{k}"),
                Op::Crash { .. } => format!("crash-{k}"),
                Op::Close { .. } | Op::Kill { .. } => String::new(),
                Op::Request { .. } => format!("req-{k}"),
            };
            // An awaited request or a crash on a connection queues behind what is held there:
            // by the time it is answered, the held request was answered. Waiting so takes as
            // long as a held request lasts, so every other request held meanwhile, sent about
            // the same time, ends about then too: whether it ends before what comes next (a
            // crash, a close) is timing, and the model does not guess.
            if open
                && matches!(op, Op::Request { .. } | Op::Crash { .. })
                && held.iter().any(|&h| requests[h].conn == c)
            {
                let others: Vec<usize> = held
                    .iter()
                    .copied()
                    .filter(|&h| requests[h].conn != c)
                    .collect();
                for h in others {
                    requests[h].outcome = Predicted::Either;
                }
                // A crash pipelined behind a held request: the held one's handler finishes, but
                // Apache's prefork and worker flush a response only when no pipelined request
                // is waiting (`ap_process_request`: `if (!c->data_in_input_filters)` flush),
                // so the crash may take the response with it; the reference sends it first.
                // Either is allowed (docs/spec-notes.md, HT-2).
                if matches!(op, Op::Crash { .. }) {
                    let mine: Vec<usize> = held
                        .iter()
                        .copied()
                        .filter(|&h| requests[h].conn == c)
                        .collect();
                    for h in mine {
                        requests[h].outcome = Predicted::Either;
                    }
                }
                held.clear();
            }
            match op {
                Op::Close { .. } => {
                    if ends[c] == End::ClosedByServer {
                        ends[c] = End::ClosedByEither;
                    }
                    if open {
                        ends[c] = End::ClosedByClient;
                        // The client gives up on what it still waited for there.
                        let here: Vec<usize> = held
                            .iter()
                            .copied()
                            .filter(|&h| requests[h].conn == c)
                            .collect();
                        for h in here {
                            requests[h].outcome = Predicted::Failed;
                        }
                        held.retain(|&h| requests[h].conn != c);
                    }
                }
                Op::Hold { .. } if open => {
                    held.push(requests.len());
                    requests.push(Request {
                        name,
                        conn: c,
                        outcome: Predicted::Answered,
                    });
                }
                Op::Request { .. } if open => requests.push(Request {
                    name,
                    conn: c,
                    outcome: Predicted::Answered,
                }),
                Op::Crash { .. } | Op::Kill { .. } if open => {
                    crashes += 1;
                    if matches!(op, Op::Crash { .. }) {
                        requests.push(Request {
                            name,
                            conn: c,
                            outcome: Predicted::Failed,
                        });
                    }
                    let dead = owner[c];
                    let cut: Vec<usize> = (0..s.connections)
                        .filter(|&o| {
                            ends[o] == End::Open
                                && match self.blast_radius {
                                    BlastRadius::Connection => o == c,
                                    _ => owner[o] == dead,
                                }
                        })
                        .collect();
                    for &o in &cut {
                        ends[o] = End::ClosedByServer;
                    }
                    // The requests held on cut connections die with them.
                    for &h in &held {
                        if cut.contains(&requests[h].conn) {
                            requests[h].outcome = Predicted::Failed;
                        }
                    }
                    held.retain(|&h| !cut.contains(&requests[h].conn));
                    // The replacement is another process.
                    for o in &mut owner {
                        if *o == dead {
                            *o = next_process;
                        }
                    }
                    next_process += 1;
                }
                // On a closed connection: the request fails at once.
                Op::Hold { .. } | Op::Request { .. } | Op::Crash { .. } => requests.push(Request {
                    name,
                    conn: c,
                    outcome: Predicted::Failed,
                }),
                // Killing a child that is gone already (its connection closed by an earlier
                // death, or by the client: then the explorer does not kill) does nothing.
                Op::Kill { .. } => {}
            }
        }
        // A request on every connection the client did not close: answered where the
        // server kept the connection, failed where it ended it.
        for (c, end) in ends.iter().enumerate() {
            let outcome = match end {
                End::Open => Predicted::Answered,
                End::ClosedByServer => Predicted::Failed,
                End::ClosedByClient | End::ClosedByEither => continue,
            };
            requests.push(Request {
                name: format!("last-{c}"),
                conn: c,
                outcome,
            });
        }
        Prediction {
            requests,
            ends,
            crashes,
        }
    }

    fn first_owner(&self, conn: usize) -> usize {
        if self.one_child {
            usize::MAX
        } else {
            conn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(p: &Prediction) -> Vec<(&str, Predicted)> {
        p.requests
            .iter()
            .map(|r| (r.name.as_str(), r.outcome))
            .collect()
    }

    /// Three connections; one held in its handler; a crash on another.
    fn crash_beside_a_held_request() -> Scenario {
        Scenario {
            connections: 3,
            ops: vec![Op::Hold { conn: 0 }, Op::Crash { conn: 1 }],
        }
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
        let s = Scenario {
            connections: 2,
            ops: vec![
                Op::Close { conn: 0 },
                Op::Crash { conn: 0 },
                Op::Request { conn: 1 },
            ],
        };
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
        let s = Scenario {
            connections: 2,
            ops: vec![
                Op::Hold { conn: 0 },
                Op::Hold { conn: 1 },
                Op::Close { conn: 1 },
                Op::Crash { conn: 0 },
            ],
        };
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
        let s = Scenario {
            connections: 2,
            ops: vec![
                Op::Hold { conn: 1 },
                Op::Hold { conn: 0 },
                Op::Crash { conn: 0 },
            ],
        };
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
        let s = Scenario {
            connections: 2,
            ops: vec![Op::Crash { conn: 0 }, Op::Close { conn: 1 }],
        };
        let p = Model::of(Mpm::Event).predict(&s);
        assert_eq!(p.ends, [End::ClosedByServer, End::ClosedByEither]);
    }

    #[test]
    fn a_kill_cuts_as_a_crash_does_without_a_request() {
        let s = Scenario {
            connections: 2,
            ops: vec![Op::Hold { conn: 1 }, Op::Kill { conn: 0 }],
        };
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
        let s = Scenario {
            connections: 3,
            ops: vec![Op::Crash { conn: 0 }, Op::Crash { conn: 2 }],
        };
        let p = Model::of(Mpm::Prefork).predict(&s);
        assert_eq!(p.crashes, 2);
        assert_eq!(
            p.ends,
            [End::ClosedByServer, End::Open, End::ClosedByServer]
        );
        let w = Model::of(Mpm::Worker).predict(&s);
        assert_eq!(w.crashes, 1, "the second crash finds its connection closed");
    }
}
