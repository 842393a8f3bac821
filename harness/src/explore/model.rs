//! An executable model of each MPM: given a scenario, what the behaviour statements
//! (`specs/statements.toml`) say every request comes to (and within what latency) and how every
//! connection ends. Pure: no I/O, no clock.
//!
//! The scenarios it speaks of ([`Scenario`]) are those the explorer generates: a pool of one
//! worker per connection plus `spare` (prefork: a child each; worker and event: one child with a
//! thread each), connections warmed one at a time so that each is owned by a known process, then
//! operations — a request held in its handler (`sleep`), a crash, a kill, a close, a plain
//! request, a probe (a new connection whose client gives up after [`PROBE_TIMEOUT`]) — and
//! finally a request on every connection still open. What decides the outcomes:
//!
//! - the crash's blast radius (PF-2: the crashing connection; WK-3, EV-6: every connection of the
//!   child, busy or idle);
//! - keep-alive holding: under prefork and worker a connection keeps its worker through every
//!   keep-alive wait (PF-1, WK-2), so a probe finds a worker only while fewer connections are
//!   open than there are workers — otherwise it waits in the backlog (PF-3, WK-4) for longer
//!   than its client does; under event a worker is free after each response (EV-1), and a
//!   probe that finds every worker busy makes the listener close its idle keep-alive
//!   connections (EV-5);
//! - MaxKeepAliveRequests (KA-1: after that many requests *after the first*, the response
//!   closes the connection), and a crash's replacement (PM-4) restoring the pool;
//! - pipelining behind a held request on the same connection;
//! - restarts (PM-6): HUP ends every connection and cuts what is in flight; USR1 lets the
//!   request in its handler finish (what is pipelined behind it is never read), event's
//!   listener closes idle keep-alive connections at once, a prefork or worker child serves an
//!   idle connection's next request; the old generation keeps its slots while it holds
//!   connections;
//! - KeepAliveTimeout (KA-1): in a scenario that waits for it, it ends every connection and
//!   frees the workers they kept (WK-2);
//! - state a handler keeps per process (TS-1): a `shared:` request is clobbered when another of
//!   its child surely writes during its hold, intact when none can — from the scenario's
//!   structure (which requests are held at once, on which child, in which order they surely
//!   wrote), never from timing measured in the run (the harness's oracle does that, and the two
//!   are compared).
//!
//! Where timing decides, the prediction says so ([`Predicted::Either`], [`End::Unknown`]) and
//! never guesses.

use std::time::Duration;

use mpm_faults::BlastRadius;
use refhttpd::Mpm;

use crate::spec::DurationBounds;

/// AsyncRequestWorkerFactor, Apache's default (the explorer does not set it).
const ASYNC_REQUEST_WORKER_FACTOR: usize = 2;

/// KeepAliveTimeout in a scenario whose connections expire ([`Op::Expire`]).
pub const KEEPALIVE_TIMEOUT_SHORT: Duration = Duration::from_secs(1);
/// KeepAliveTimeout otherwise: no connection expires while a scenario runs.
pub const KEEPALIVE_TIMEOUT_LONG: Duration = Duration::from_secs(30);

/// How long a held request holds its worker.
pub const HOLD: Duration = Duration::from_millis(400);
/// How long a probe's client waits for its response before it gives up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Before a `shared:` request sent while another may hold in the same child, once the held
/// requests are in their handlers (`W`), the explorer waits this long more: each of them wrote
/// its token before the new one is sent (and the harness's oracle, ordering requests by send
/// and answer times, can tell so too).
pub const MARGIN: Duration = Duration::from_millis(100);
/// After this many margins a held request may have ended: each took [`MARGIN`] off its
/// [`HOLD`], and what else the explorer waited for meanwhile is not counted.
const MARGINS_WHILE_HELD: u32 = 2;
/// What an answered request may take beyond the holds it waits for: generous, so that a busy
/// machine does not fail a run, and far below a keep-alive wait (30 s) that a wrong worker
/// assignment would cost.
pub const SLACK: Duration = Duration::from_secs(2);

/// One operation of a scenario, on connection `conn` (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A request that holds its worker for [`HOLD`] (`sleep:…`), left in flight.
    Hold { conn: usize },
    /// A request that keeps state per process (`shared:` [`HOLD`], TS-1): it writes a token of
    /// its own into its process's one slot, holds its worker, reads the slot back and answers
    /// `intact` or `clobbered`; left in flight. When another `shared:` request may still hold
    /// in the same child, the explorer first waits for the held requests to be in their
    /// handlers and then [`MARGIN`], so that those surely wrote first.
    Shared { conn: usize },
    /// A request that crashes its child (`crash:segv`), awaited, and the death waited for.
    Crash { conn: usize },
    /// The client closes the connection.
    Close { conn: usize },
    /// SIGKILL to the child that answered the connection's warm-up request, and a wait for the
    /// server to end the connection.
    Kill { conn: usize },
    /// A plain request, awaited.
    Request { conn: usize },
    /// A new connection with a plain request, once the workers the model expects free are idle;
    /// its client gives up after [`PROBE_TIMEOUT`], then closes it.
    Probe,
    /// SIGHUP to the master (PM-6): every connection the server holds is closed, requests in
    /// flight are cut, a new generation serves; then a wait until the server has ended every
    /// connection the client did not close.
    Restart,
    /// SIGUSR1 to the master (PM-6): a graceful restart. Requests in flight finish; event's
    /// listener closes its idle keep-alive connections at once, while a prefork or worker
    /// child keeps one until its next request (served) or KeepAliveTimeout; a new generation
    /// serves. Then a wait for the new generation (and under event for the closes).
    Graceful,
    /// A wait until the server has ended every connection the client kept: in a scenario with
    /// this operation KeepAliveTimeout is [`KEEPALIVE_TIMEOUT_SHORT`] (KA-1), so the idle ones
    /// expire — and may have expired at any point before, the model not knowing how long each
    /// operation took: until then every connection is open or closed.
    Expire,
}

impl Op {
    /// The scenario connection it acts on (a probe opens its own).
    pub fn conn(self) -> Option<usize> {
        match self {
            Op::Hold { conn }
            | Op::Shared { conn }
            | Op::Crash { conn }
            | Op::Close { conn }
            | Op::Request { conn }
            | Op::Kill { conn } => Some(conn),
            Op::Probe | Op::Restart | Op::Graceful | Op::Expire => None,
        }
    }
}

/// A scenario: `connections` warmed keep-alive connections on a pool of `connections + spare`
/// workers, then `ops` in order, then a request on every connection the client did not close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub connections: usize,
    /// Workers beyond one per connection.
    pub spare: usize,
    /// MaxKeepAliveRequests (0: unlimited).
    pub max_keepalive: u32,
    pub ops: Vec<Op>,
}

impl Scenario {
    /// The pool: processes under prefork, threads of the one child under worker and event.
    pub fn workers(&self) -> usize {
        self.connections + self.spare
    }

    /// Whether its connections expire (KeepAliveTimeout [`KEEPALIVE_TIMEOUT_SHORT`]); else
    /// KeepAliveTimeout is [`KEEPALIVE_TIMEOUT_LONG`], longer than any scenario runs.
    pub fn expires(&self) -> bool {
        self.ops.contains(&Op::Expire)
    }

    /// Its KeepAliveTimeout.
    pub fn keepalive_timeout(&self) -> Duration {
        if self.expires() {
            KEEPALIVE_TIMEOUT_SHORT
        } else {
            KEEPALIVE_TIMEOUT_LONG
        }
    }
}

/// What a request comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predicted {
    /// Answered, 200, within the latency window.
    Answered,
    /// No response: the connection was cut (or already closed by the server).
    Failed,
    /// No response before the client gave up (a probe waiting for a worker).
    TimedOut,
    /// Timing decides: any of the outcomes may be seen, and the model does not guess.
    Either,
}

/// What an answered `shared:` request finds in its process's slot (TS-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    /// Its own token: no other request of its child can have written during its hold.
    Intact,
    /// Another's: a request of its child surely wrote during its hold.
    Clobbered,
    /// The order of the writes is timing: the model does not guess.
    Either,
}

/// One request of the scenario as the explorer sends it, with its prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictedRequest {
    pub name: String,
    /// Its connection; `None` for a probe (on a connection of its own).
    pub conn: Option<usize>,
    pub outcome: Predicted,
    /// When answered: how long from sent to response.
    pub latency: Option<DurationBounds>,
    /// A `shared:` request predicted answered: what it finds.
    pub shared: Option<SharedState>,
}

/// How a connection ends, by the end of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Open, as far as the server is concerned.
    Open,
    /// Closed by the client (`close`).
    ClosedByClient,
    /// Closed by the server (its process died, or MaxKeepAliveRequests).
    ClosedByServer,
    /// Closed by the server, then by the client before the client may have seen it: which the
    /// client saw first is timing.
    ClosedByEither,
    /// Open or closed by the server: timing decides (EV-5, a crash that may not have run).
    Unknown,
}

/// Every prediction for one scenario under one MPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub requests: Vec<PredictedRequest>,
    pub ends: Vec<End>,
    /// Child deaths the scenario causes (crashes and kills that find their child).
    pub crashes: usize,
    /// Before an operation (its index; the number of operations + a connection: before that
    /// connection's last request, which is then awaited alone),
    /// how many workers are idle, at least, once the server has settled (replacements
    /// started, closes done, the worker of the last response back): what the explorer waits
    /// for before it. Before every probe; under event also before a request on an idle
    /// keep-alive connection, since Apache shows a worker that has just answered as busy for
    /// a moment (EV-1), and a request arriving then on an idle connection while the other
    /// workers are busy is closed unanswered (EV-8) — a race the model does not predict.
    pub idle_before: Vec<(usize, usize)>,
    /// The connections the server certainly ends at an operation (its index), for the
    /// explorer to wait for: event's close of idle keep-alive connections on a graceful
    /// restart.
    pub closed_at: Vec<(usize, Vec<usize>)>,
    /// Before a restart (its index), how many held requests are certainly in their handlers:
    /// the explorer waits until that many workers are writing (`W`), so that the signal finds
    /// them there (Apache's worker and event cut only the sockets of workers that have taken
    /// their request; one still on its way to a worker would be answered).
    pub writing_before: Vec<(usize, usize)>,
    /// Before a graceful restart under prefork and worker (its index), how many workers wait
    /// in keep-alive (`K`) on the idle connections, at least: the explorer waits for them, so
    /// that each child is past its check of the signal after its last response (Apache's
    /// `ap_process_http_sync_connection` closes the connection when the signal came before).
    pub keepalive_before: Vec<(usize, usize)>,
    /// Before a `shared:` request (its index) sent while another may hold in the same child:
    /// how many workers to wait for in their handlers (`W`, the held requests certainly in
    /// flight; 0: none), before [`MARGIN`].
    pub margin_before: Vec<(usize, usize)>,
}

impl Prediction {
    /// How many idle workers to wait for before operation `k` (see `idle_before`), if any.
    pub fn idle_before_op(&self, k: usize) -> Option<usize> {
        self.idle_before
            .iter()
            .find(|(op, _)| *op == k)
            .map(|(_, n)| *n)
    }

    /// Whether to wait [`MARGIN`] before operation `k`, after how many workers in their
    /// handlers (see `margin_before`).
    pub fn margin_before_op(&self, k: usize) -> Option<usize> {
        self.margin_before
            .iter()
            .find(|(op, _)| *op == k)
            .map(|(_, n)| *n)
    }
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
    /// Whether a worker keeps its connection through keep-alive waits (PF-1, WK-2) or is free
    /// after each response (EV-1).
    pub keepalive_holds_worker: bool,
    /// EV-5: a listener that had to wait for a worker closes its idle keep-alive connections.
    pub closes_idle_when_busy: bool,
    /// TS-1: the requests a child serves at once, on its threads, share what a handler keeps
    /// per process (worker, event); prefork's child serves one at a time.
    pub threads_share_state: bool,
}

impl Model {
    /// The MPM as the statements state it.
    pub fn of(mpm: Mpm) -> Model {
        match mpm {
            Mpm::Prefork => Model {
                mpm,
                one_child: false,
                blast_radius: BlastRadius::Connection,
                keepalive_holds_worker: true,
                closes_idle_when_busy: false,
                threads_share_state: false,
            },
            Mpm::Worker => Model {
                mpm,
                one_child: true,
                blast_radius: BlastRadius::Process,
                keepalive_holds_worker: true,
                closes_idle_when_busy: false,
                threads_share_state: true,
            },
            Mpm::Event => Model {
                mpm,
                one_child: true,
                blast_radius: BlastRadius::Process,
                keepalive_holds_worker: false,
                closes_idle_when_busy: true,
                threads_share_state: true,
            },
        }
    }

    /// A deliberately wrong model (the explorer's self-test): `mpm` behaving as `like` does —
    /// prefork whose connections share a child that a crash takes down whole, worker whose
    /// crash takes only its own connection, or event that keeps its workers through keep-alive.
    /// What a handler keeps per process stays as `mpm` keeps it (TS-1): one wrong thing at a
    /// time.
    pub fn pretending(mpm: Mpm, like: Mpm) -> Model {
        Model {
            mpm,
            threads_share_state: Model::of(mpm).threads_share_state,
            ..Model::of(like)
        }
    }

    /// A deliberately wrong model (the explorer's self-test): `mpm` whose threads each keep
    /// their own state, as if a handler's per-process slot were per thread — every `shared:`
    /// request answered finds its own token.
    pub fn isolating_threads(mpm: Mpm) -> Model {
        Model {
            threads_share_state: false,
            ..Model::of(mpm)
        }
    }

    /// Predicts every request and every connection's end.
    pub fn predict(&self, s: &Scenario) -> Prediction {
        let mut sim = Sim::new(self, s);
        for (k, op) in s.ops.iter().enumerate() {
            sim.step(k, *op);
        }
        sim.finish(s.ops.len())
    }
}

/// A connection as the model tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Its last request (MaxKeepAliveRequests) is sent: the server closes it after that
    /// response, and anything after fails.
    Doomed,
    /// Open or closed by the server.
    Unknown,
    ByServer,
    ByClient,
    ByEither,
}

impl State {
    /// The server may still hold it.
    fn live(self) -> bool {
        matches!(self, State::Open | State::Doomed | State::Unknown)
    }
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    state: State,
    /// The process that owns it: a number per process, so that a replacement is another.
    owner: usize,
    /// Requests sent on it, the warm-up included.
    sent: u32,
    /// Its process is stopping gracefully: under prefork and worker its next request is served
    /// and may be its last (whether the child noted the signal before it arrived is timing).
    graceful: bool,
}

/// A request left in flight.
#[derive(Debug, Clone, Copy)]
struct Held {
    request: usize,
    conn: usize,
    /// Certainly still in flight (false: it may have ended, the model lost track of when).
    certain: bool,
    /// The margins ([`MARGIN`]) waited since it was sent.
    margins: u32,
}

/// A `shared:` request that reached the server (or may have), as the model follows it.
#[derive(Debug, Clone, Copy)]
struct SharedHold {
    request: usize,
    conn: usize,
    /// The process that took it.
    owner: usize,
    /// The operation that sent it.
    sent: usize,
    /// Its handler took it as it arrived — nothing held before it on its connection, a worker
    /// for it, an open connection — and wrote its token then.
    at_once: bool,
    /// Surely over: answered (what came after it on its connection was), or its process died.
    over: bool,
    /// Another request of its child surely wrote during its hold.
    clobbered: bool,
    /// Another may have.
    maybe: bool,
}

/// The model's walk through one scenario.
struct Sim<'a> {
    model: &'a Model,
    workers: usize,
    max_keepalive: u32,
    conns: Vec<Conn>,
    requests: Vec<PredictedRequest>,
    held: Vec<Held>,
    crashes: usize,
    next_process: usize,
    idle_before: Vec<(usize, usize)>,
    closed_at: Vec<(usize, Vec<usize>)>,
    writing_before: Vec<(usize, usize)>,
    keepalive_before: Vec<(usize, usize)>,
    /// A graceful restart came since the last hard one.
    restarted_gracefully: bool,
    /// Event: a probe found every worker busy, so the child may have stopped accepting.
    may_not_accept: bool,
    /// The `shared:` requests sent, in order.
    shared: Vec<SharedHold>,
    /// The operations before which the explorer waits [`MARGIN`].
    margins: Vec<usize>,
    margin_before: Vec<(usize, usize)>,
}

impl<'a> Sim<'a> {
    fn new(model: &'a Model, s: &Scenario) -> Sim<'a> {
        // Where connections expire, each may have at any moment.
        let state = if s.expires() {
            State::Unknown
        } else {
            State::Open
        };
        let conns = (0..s.connections)
            .map(|c| Conn {
                state,
                owner: if model.one_child { usize::MAX } else { c },
                sent: 1,
                graceful: false,
            })
            .collect();
        Sim {
            model,
            workers: s.workers(),
            max_keepalive: s.max_keepalive,
            conns,
            requests: Vec::new(),
            held: Vec::new(),
            crashes: 0,
            next_process: s.connections + 1,
            idle_before: Vec::new(),
            closed_at: Vec::new(),
            writing_before: Vec::new(),
            keepalive_before: Vec::new(),
            restarted_gracefully: false,
            may_not_accept: false,
            shared: Vec::new(),
            margins: Vec::new(),
            margin_before: Vec::new(),
        }
    }

    fn step(&mut self, k: usize, op: Op) {
        let Some(c) = op.conn() else {
            return match op {
                Op::Restart => {
                    self.note_writing(k);
                    self.restart()
                }
                Op::Graceful => {
                    self.note_writing(k);
                    self.graceful(k)
                }
                Op::Expire => self.expire(),
                _ => self.probe(k),
            };
        };
        if !matches!(op, Op::Close { .. } | Op::Kill { .. }) {
            self.settle_before_arrival(k, c);
        }
        match op {
            Op::Hold { .. } => {
                self.hold(format!("hold-{k}"), c);
            }
            Op::Shared { .. } => self.shared(k, c),
            Op::Request { .. } => self.request(k, c),
            Op::Crash { .. } => self.crash(k, c),
            Op::Close { .. } => self.close(c),
            Op::Kill { .. } => self.kill(c),
            Op::Probe | Op::Restart | Op::Graceful | Op::Expire => {
                unreachable!("no connection of the scenario's")
            }
        }
    }

    /// Event: a request about to arrive on `c` while it is idle in keep-alive waits until the
    /// workers not holding a request are idle. When it may still find every worker busy — the
    /// others held, and the one left busy for a moment with what the server does in the
    /// background (the last response, a lingering close) — it may be closed unanswered
    /// (EV-8), and the listener's idle connections with it (EV-5).
    fn settle_before_arrival(&mut self, k: usize, c: usize) {
        if self.model.keepalive_holds_worker
            || self.conns[c].state != State::Open
            || self.holds_on(c) > 0
        {
            return;
        }
        if self.idle_before.last().map(|(op, _)| *op) != Some(k) {
            self.idle_before
                .push((k, self.workers.saturating_sub(self.busy_conns())));
        }
        if self.may_find_every_worker_busy() {
            self.may_close_idle_keepalive();
        }
    }

    /// Event: whether what arrives now may find every worker busy — those holding requests,
    /// and the one left busy for a moment with the last response or a close.
    fn may_find_every_worker_busy(&self) -> bool {
        self.busy_conns() + 1 >= self.workers
    }

    /// EV-5: a listener that had to wait for a worker closes its idle keep-alive connections —
    /// which of the open ones are idle by then is timing.
    fn may_close_idle_keepalive(&mut self) {
        if !self.model.closes_idle_when_busy {
            return;
        }
        for conn in &mut self.conns {
            if conn.state == State::Open {
                conn.state = State::Unknown;
            }
        }
    }

    /// The connections with a request held in flight (or that may still be).
    fn busy_conns(&self) -> usize {
        self.conns_holding(|_| true)
    }

    /// The connections with a held request that `which` picks: one worker each.
    fn conns_holding(&self, which: impl Fn(&Held) -> bool) -> usize {
        let mut busy: Vec<usize> = self
            .held
            .iter()
            .filter(|h| which(h))
            .map(|h| h.conn)
            .collect();
        busy.sort_unstable();
        busy.dedup();
        busy.len()
    }

    fn push(
        &mut self,
        name: String,
        conn: Option<usize>,
        outcome: Predicted,
        latency: Option<DurationBounds>,
    ) -> usize {
        self.requests.push(PredictedRequest {
            name,
            conn,
            outcome,
            latency: latency.filter(|_| outcome == Predicted::Answered),
            shared: None,
        });
        self.requests.len() - 1
    }

    /// Before a restart: the held requests certainly in their handlers, one worker each.
    fn note_writing(&mut self, k: usize) {
        let writing = self.conns_holding(|h| h.certain);
        if writing > 0 {
            self.writing_before.push((k, writing));
        }
    }

    /// Counts a request sent on an open connection: the one that reaches MaxKeepAliveRequests
    /// after the first is answered with a close (KA-1).
    fn count(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        conn.sent += 1;
        if self.max_keepalive > 0 && conn.sent > self.max_keepalive && conn.state == State::Open {
            conn.state = State::Doomed;
        } else if conn.graceful && conn.state == State::Open {
            // Served by a child stopping gracefully, which closes the connection after it once
            // it has noted the signal (PM-6): open or closed, as timing has it.
            conn.state = State::Unknown;
        }
    }

    /// Whether a request sent now on `c` finds the connection closed (or closing behind what
    /// is in flight): it fails, and does nothing on the server.
    fn refused_by(&self, c: usize) -> bool {
        matches!(
            self.conns[c].state,
            State::Doomed | State::ByServer | State::ByClient | State::ByEither
        )
    }

    /// The holds in flight on `c`.
    fn holds_on(&self, c: usize) -> u32 {
        self.held.iter().filter(|h| h.conn == c).count() as u32
    }

    /// An awaited request (or crash) on `c` queues behind what is held there: by the time it is
    /// answered, those held requests were answered. Waiting so takes as long as a held request
    /// lasts, so every other request held meanwhile, sent about the same time, ends about then
    /// too: whether it ends before what comes next is timing, and the model does not guess.
    fn wait_behind_holds(&mut self, c: usize, crash: bool) {
        if self.holds_on(c) == 0 {
            return;
        }
        // Every `shared:` request sent on it before is answered by then: its handler is done.
        for r in self.shared.iter_mut().filter(|r| r.conn == c) {
            r.over = true;
        }
        for h in &mut self.held {
            if h.conn != c {
                h.certain = false;
                self.requests[h.request].outcome = Predicted::Either;
            } else if crash {
                // A crash pipelined behind a held request: the held one's handler finishes,
                // but Apache's prefork and worker flush a response only when no pipelined
                // request is waiting (`ap_process_request`: `if (!c->data_in_input_filters)`
                // flush), so the crash may take the response with it; the reference sends it
                // first. Either is allowed (docs/spec-notes.md, HT-2).
                self.requests[h.request].outcome = Predicted::Either;
            }
        }
        self.held.retain(|h| h.conn != c);
    }

    /// What an answered request on `c` may take: the holds before it there, and the slack.
    fn window(&self, c: usize, own: Duration) -> DurationBounds {
        DurationBounds::between(own, HOLD * self.holds_on(c) + own + SLACK)
    }

    /// A request held in its handler for [`HOLD`], named `name`: its index, unless refused.
    fn hold(&mut self, name: String, c: usize) -> Option<usize> {
        if self.refused_by(c) {
            self.push(name, Some(c), Predicted::Failed, None);
            return None;
        }
        let outcome = if self.conns[c].state == State::Unknown {
            Predicted::Either
        } else {
            Predicted::Answered
        };
        let window = self.window(c, HOLD);
        self.count(c);
        let request = self.push(name, Some(c), outcome, Some(window));
        self.held.push(Held {
            request,
            conn: c,
            certain: outcome == Predicted::Answered,
            margins: 0,
        });
        Some(request)
    }

    /// A `shared:` request on `c` (TS-1), held as [`Sim::hold`] holds. Against every other
    /// `shared:` request of the same child not surely over, sent on another connection (on one
    /// connection requests never overlap):
    ///
    /// - the earlier one wrote before this one was sent when its handler took it at once and a
    ///   margin came between: its write is not within this one's hold; otherwise it may be;
    /// - this one surely writes within the earlier one's hold when, besides, the earlier one is
    ///   certainly still in flight and this one's handler takes it at once; otherwise it may.
    ///
    /// Clobbered when one surely wrote within its hold, intact when none may have, either
    /// otherwise. In another child (prefork's every connection, a replacement) nothing is
    /// shared.
    fn shared(&mut self, k: usize, c: usize) {
        let name = format!("shared-{k}");
        if self.refused_by(c) {
            self.hold(name, c);
            return;
        }
        let owner = self.conns[c].owner;
        let alongside = |r: &SharedHold| !r.over && r.owner == owner && r.conn != c;
        if self.shared.iter().any(alongside) {
            self.margin(k);
        }
        let first_on_conn = self.holds_on(c) == 0;
        let Some(request) = self.hold(name, c) else {
            return;
        };
        let at_once = first_on_conn && self.requests[request].outcome == Predicted::Answered;
        let mut own = SharedHold {
            request,
            conn: c,
            owner,
            sent: k,
            at_once,
            over: false,
            clobbered: false,
            maybe: false,
        };
        let margins = &self.margins;
        let held = &self.held;
        for earlier in self.shared.iter_mut().filter(|r| alongside(r)) {
            let wrote_before =
                earlier.at_once && margins.iter().any(|&m| earlier.sent < m && m <= k);
            if !wrote_before {
                own.maybe = true;
            }
            let in_flight = held
                .iter()
                .any(|h| h.request == earlier.request && h.certain);
            if wrote_before && in_flight && at_once {
                earlier.clobbered = true;
            } else {
                earlier.maybe = true;
            }
        }
        self.shared.push(own);
    }

    /// Before a `shared:` request: the explorer waits until the held requests certainly in
    /// flight are in their handlers, then [`MARGIN`] — time that each held request loses.
    fn margin(&mut self, k: usize) {
        self.margin_before
            .push((k, self.conns_holding(|h| h.certain)));
        self.margins.push(k);
        for h in &mut self.held {
            h.margins += 1;
            if h.margins >= MARGINS_WHILE_HELD {
                h.certain = false;
            }
        }
    }

    fn request(&mut self, k: usize, c: usize) {
        let name = format!("req-{k}");
        let refused = self.refused_by(c);
        let unknown = self.conns[c].state == State::Unknown;
        let window = self.window(c, Duration::ZERO);
        self.wait_behind_holds(c, false);
        let outcome = match (refused, unknown) {
            (true, _) => Predicted::Failed,
            (false, true) => Predicted::Either,
            (false, false) => Predicted::Answered,
        };
        if !refused {
            self.count(c);
        }
        self.push(name, Some(c), outcome, Some(window));
    }

    fn crash(&mut self, k: usize, c: usize) {
        let name = format!("crash-{k}");
        if self.refused_by(c) {
            // Nothing crashes; behind a held last request it waits for that one's response.
            self.wait_behind_holds(c, false);
            self.push(name, Some(c), Predicted::Failed, None);
            return;
        }
        let unknown = self.conns[c].state == State::Unknown;
        self.wait_behind_holds(c, true);
        self.count(c);
        if unknown {
            self.push(name, Some(c), Predicted::Either, None);
            self.maybe_cut(c);
        } else {
            self.push(name, Some(c), Predicted::Failed, None);
            self.cut(c);
        }
    }

    /// The client's close: what it still waited for there it gives up on.
    fn close(&mut self, c: usize) {
        let state = self.conns[c].state;
        let in_flight = self.held.iter().any(|h| h.conn == c && h.certain);
        let idle_doomed = state == State::Doomed && !in_flight;
        self.conns[c].state = match state {
            State::Open => State::ByClient,
            // The server closed it after its last response, or will.
            State::Doomed if idle_doomed => State::ByEither,
            State::Doomed => State::ByClient,
            State::ByServer | State::Unknown | State::ByEither => State::ByEither,
            State::ByClient => State::ByClient,
        };
        self.end_held(|h| h.conn == c);
    }

    /// The held requests `which` picks lose their connection: those certainly in flight fail,
    /// those that may have ended already are left to timing.
    fn end_held(&mut self, which: impl Fn(&Held) -> bool) {
        for h in self.held.iter().filter(|h| which(h)) {
            self.requests[h.request].outcome = if h.certain {
                Predicted::Failed
            } else {
                Predicted::Either
            };
        }
        self.held.retain(|h| !which(h));
    }

    /// SIGKILL to the child that answered `c`'s warm-up: if it is alive — it may still hold `c`,
    /// or (worker, event) another connection, as a child stopping gracefully does with a
    /// request in flight when its idle connections are closed — it dies with every connection
    /// it holds. The explorer does not kill after the client's own close.
    fn kill(&mut self, c: usize) {
        if matches!(self.conns[c].state, State::ByClient | State::ByEither) {
            return;
        }
        let owner = self.conns[c].owner;
        let alive = self
            .conns
            .iter()
            .any(|o| o.owner == owner && o.state.live());
        if alive {
            self.cut(c);
        }
    }

    /// `c`'s child dies: the connections it holds (per the blast radius) are cut, the requests
    /// in flight there fail, and a replacement (another process) takes its place.
    fn cut(&mut self, c: usize) {
        self.crashes += 1;
        let dead = self.conns[c].owner;
        for r in self.shared.iter_mut().filter(|r| r.owner == dead) {
            r.over = true;
        }
        let cut = self.taken_with(c);
        for &o in &cut {
            self.conns[o].state = State::ByServer;
        }
        self.end_held(|h| cut.contains(&h.conn));
        let next = self.next_process;
        for conn in &mut self.conns {
            if conn.owner == dead {
                conn.owner = next;
            }
        }
        self.next_process += 1;
    }

    /// HUP: the old generation goes with every connection it holds, what was in flight fails
    /// (or may have ended), and a new generation of other processes serves.
    fn restart(&mut self) {
        let live: Vec<usize> = (0..self.conns.len())
            .filter(|&c| self.conns[c].state.live())
            .collect();
        for &c in &live {
            self.conns[c].state = State::ByServer;
        }
        if self.model.one_child {
            // A threaded child stopping gracefully (an earlier USR1) is past the point where
            // Apache's would cut its workers' sockets: its handlers run on, and it goes when
            // they are done or at the master's SIGKILL (9 s); the reference kills it at once.
            let conns = &self.conns;
            for h in self.held.iter_mut().filter(|h| conns[h.conn].graceful) {
                h.certain = false;
            }
        }
        self.end_held(|h| live.contains(&h.conn));
        for conn in &mut self.conns {
            conn.owner = self.next_process;
            self.next_process += 1;
        }
        self.may_not_accept = false;
        self.restarted_gracefully = false;
    }

    /// USR1: what is in flight finishes (no lower bound on a held request's latency: Apache
    /// prefork's graceful signal cuts a handler's sleep short, PM-6); every connection the old
    /// generation holds is its last. Event's listener closes the idle ones at once (and a busy
    /// one after its response); a prefork or worker child keeps an idle one until its next
    /// request, which it serves.
    fn graceful(&mut self, k: usize) {
        for h in &self.held {
            if let Some(latency) = &mut self.requests[h.request].latency {
                latency.at_least = Some(Duration::ZERO);
            }
        }
        // Only the first request held on a connection is in its handler: the child closes the
        // connection after that response, and what was pipelined behind it is never read —
        // unless the first had ended already.
        let mut first_on: Vec<(usize, bool)> = Vec::new();
        let requests = &mut self.requests;
        self.held
            .retain(|h| match first_on.iter().find(|(c, _)| *c == h.conn) {
                None => {
                    first_on.push((h.conn, h.certain));
                    true
                }
                Some(&(_, first_certain)) => {
                    requests[h.request].outcome = if first_certain && h.certain {
                        Predicted::Failed
                    } else {
                        Predicted::Either
                    };
                    false
                }
            });
        let keeps_idle = self.model.keepalive_holds_worker;
        if keeps_idle {
            // (A connection an earlier USR1 left with its child is past that check: Apache
            // shows its worker as `G`.)
            let idle = self.count_state(|c, s| {
                s == State::Open && self.holds_on(c) == 0 && !self.conns[c].graceful
            });
            if idle > 0 {
                self.keepalive_before.push((k, idle));
            }
        }
        let mut closed = Vec::new();
        for c in 0..self.conns.len() {
            let state = self.conns[c].state;
            if !state.live() {
                continue;
            }
            let busy = self.holds_on(c) > 0;
            let certain = self.held.iter().any(|h| h.conn == c && h.certain);
            self.conns[c].graceful = true;
            let next = match state {
                State::Doomed => State::Doomed,
                // Event: whether busy or idle (or closed), it ends: anything after fails.
                _ if !keeps_idle && busy => State::Doomed,
                _ if !keeps_idle => State::ByServer,
                // Prefork, worker: a response in flight is the last; one that may have ended
                // leaves the connection idle, kept until its next request.
                State::Open if certain => State::Doomed,
                State::Open if busy => State::Unknown,
                other => other,
            };
            if next == State::ByServer {
                closed.push(c);
            }
            self.conns[c].state = next;
        }
        if !closed.is_empty() {
            self.closed_at.push((k, closed));
        }
        self.may_not_accept = false;
        self.restarted_gracefully = true;
        // The waits for the new generation and the closes take a while: what is held may
        // have ended by the next operation.
        self.lose_track_of_holds();
    }

    /// KeepAliveTimeout: every connection the server still held is ended once it has been idle
    /// that long (after what was held on it); the workers they kept are free (WK-2).
    fn expire(&mut self) {
        for conn in &mut self.conns {
            if conn.state.live() {
                conn.state = State::ByServer;
            }
        }
        self.lose_track_of_holds();
    }

    /// Whether a process of an old generation may still hold a connection (and, under worker
    /// and event, the one child's slot).
    fn old_generation_may_live(&self) -> bool {
        (0..self.conns.len()).any(|c| {
            let conn = &self.conns[c];
            conn.graceful
                && match conn.state {
                    State::Open | State::Unknown => true,
                    State::Doomed => self.holds_on(c) > 0,
                    _ => false,
                }
        })
    }

    /// A crash that may or may not run (its connection may be closed already): what it would
    /// take is open or closed, and what is in flight there may end either way.
    fn maybe_cut(&mut self, c: usize) {
        for o in self.taken_with(c) {
            self.conns[o].state = State::Unknown;
            for h in self.held.iter_mut().filter(|h| h.conn == o) {
                h.certain = false;
                self.requests[h.request].outcome = Predicted::Either;
            }
        }
    }

    /// The connections a death of `c`'s child takes down (those it still holds).
    fn taken_with(&self, c: usize) -> Vec<usize> {
        let dead = self.conns[c].owner;
        (0..self.conns.len())
            .filter(|&o| {
                self.conns[o].state.live()
                    && match self.model.blast_radius {
                        BlastRadius::Connection => o == c,
                        _ => self.conns[o].owner == dead,
                    }
            })
            .collect()
    }

    fn count_state(&self, f: impl Fn(usize, State) -> bool) -> usize {
        (0..self.conns.len())
            .filter(|&c| f(c, self.conns[c].state))
            .count()
    }

    /// A new connection: answered when a worker is free for it before its client gives up.
    fn probe(&mut self, k: usize) {
        let name = format!("probe-{k}");
        let workers = self.workers;
        let latency = Some(DurationBounds::between(Duration::ZERO, PROBE_TIMEOUT));
        if self.model.one_child
            && (self.old_generation_may_live()
                || self.model.keepalive_holds_worker && self.restarted_gracefully)
        {
            // The old child keeps the one slot while it holds a connection: the reference
            // starts the new one after it, Apache at once on the threads' slots it left
            // (worker.c, "slot is still in use - back of the bus"). Under worker Apache's new
            // child, sharing the slot with an old one still finishing (a connection the client
            // had just closed), was seen not to accept for a second with its threads idle
            // (once in 165 runs). Either is allowed.
            self.idle_before.push((k, 0));
            self.push(name, None, Predicted::Either, latency);
            self.lose_track_of_holds();
            return;
        }
        if self.model.keepalive_holds_worker {
            // Every connection the server holds keeps its worker (PF-1, WK-2); a doomed one
            // frees it after its last response, one whose end is unknown may.
            let surely = self.count_state(|_, s| s == State::Open);
            let maybe = self.count_state(|c, s| {
                s == State::Unknown || (s == State::Doomed && self.holds_on(c) > 0)
            });
            self.idle_before
                .push((k, workers.saturating_sub(surely + maybe)));
            let outcome = if workers > surely + maybe {
                Predicted::Answered
            } else if workers <= surely {
                Predicted::TimedOut
            } else {
                Predicted::Either
            };
            self.push(name, None, outcome, latency);
        } else {
            // A worker is free after each response (EV-1): only the holds in flight keep
            // theirs, and they end before the probe's client gives up.
            self.idle_before
                .push((k, workers.saturating_sub(self.busy_conns())));
            let pressed = self.may_find_every_worker_busy();
            if pressed {
                self.may_close_idle_keepalive();
            }
            // Having stopped accepting, Apache's child starts again only while it holds fewer
            // connections than ThreadsPerChild + AsyncRequestWorkerFactor × (idle workers − 1)
            // (event.c `connections_above_limit`, "off by listeners_disabled() to avoid flip
            // flop"; EV-4 without the − 1): a child of one thread holding one keep-alive
            // connection waits for it to close (docs/spec-notes.md, EV-4). The reference
            // accepts again. Either is allowed.
            let live = self.count_state(|_, s| s.live());
            if pressed {
                self.may_not_accept = true;
            }
            let outcome = if self.may_not_accept
                && live + ASYNC_REQUEST_WORKER_FACTOR >= workers * (1 + ASYNC_REQUEST_WORKER_FACTOR)
            {
                Predicted::Either
            } else {
                Predicted::Answered
            };
            self.push(name, None, outcome, latency);
        }
        // The wait for idle workers before it, and the probe itself, may take a while (a
        // lingering close, a replacement's start, the client's timeout): the holds in flight
        // may have ended meanwhile.
        self.lose_track_of_holds();
    }

    /// The probe waited (its client's timeout, or a hold's end): the holds in flight may have
    /// ended meanwhile.
    fn lose_track_of_holds(&mut self) {
        for h in &mut self.held {
            h.certain = false;
        }
    }

    /// A request on every connection the client did not close: answered where the server kept
    /// the connection, failed where it ended it.
    fn finish(mut self, ops: usize) -> Prediction {
        // Under event the last requests on idle connections go out one at a time, each once
        // the server has settled (numbered after the operations, one per connection).
        for c in 0..self.conns.len() {
            self.settle_before_arrival(ops + c, c);
        }
        let mut ends: Vec<End> = self
            .conns
            .iter()
            .map(|c| match c.state {
                State::Open => End::Open,
                // Its last request is sent on it.
                State::Doomed | State::ByServer => End::ClosedByServer,
                State::Unknown => End::Unknown,
                State::ByClient => End::ClosedByClient,
                State::ByEither => End::ClosedByEither,
            })
            .collect();
        for (c, end) in ends.iter_mut().enumerate() {
            let state = self.conns[c].state;
            let outcome = match state {
                State::ByClient | State::ByEither => continue,
                State::Open => Predicted::Answered,
                State::Unknown => Predicted::Either,
                State::Doomed | State::ByServer => Predicted::Failed,
            };
            let window = self.window(c, Duration::ZERO);
            if state == State::Open {
                self.count(c);
                if self.conns[c].state != State::Open {
                    // This one reaches MaxKeepAliveRequests, or a child stopping gracefully
                    // serves it: its response may close the connection as the scenario ends,
                    // seen or not.
                    *end = End::Unknown;
                }
            }
            self.push(format!("last-{c}"), Some(c), outcome, Some(window));
        }
        for r in &self.shared {
            let request = &mut self.requests[r.request];
            if request.outcome != Predicted::Answered {
                continue;
            }
            request.shared = Some(if !self.model.threads_share_state {
                SharedState::Intact
            } else if r.clobbered {
                SharedState::Clobbered
            } else if r.maybe {
                SharedState::Either
            } else {
                SharedState::Intact
            });
        }
        Prediction {
            requests: self.requests,
            ends,
            crashes: self.crashes,
            idle_before: self.idle_before,
            closed_at: self.closed_at,
            writing_before: self.writing_before,
            keepalive_before: self.keepalive_before,
            margin_before: self.margin_before,
        }
    }
}

#[cfg(test)]
mod tests;
