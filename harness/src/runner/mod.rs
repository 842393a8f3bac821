//! The runner: one (case, MPM, target) — refuse what the target cannot show, start the
//! server, play the scenario step by step, let in-flight work settle, stop the server, and hand
//! back a [`Recording`]. It judges nothing: the verdict does, from the recording alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use refhttpd::Mpm;

use std::thread::JoinHandle;

use mpm_faults::Fault;

use crate::drive::connection::{Connection, Landed};
use crate::drive::load::{self as loadgen, MixEntry, Plan, Progress};
use crate::observe::load::{Interval, LoadRun};
use crate::observe::{
    process_state, ErrorClass, Observation, Recording, RequestOutcome, Sent, StepRecord,
    StepResult, Store,
};
use crate::spec::condition::{Condition, Count, Quantity, Source};
use crate::spec::{Action, Case, LoadStep, Placement, Request, StatusExpect, Step};
use crate::target::{Capabilities, Launch, Server, Target};

/// How long the runner lets sent requests finish after the last step.
const SETTLE: Duration = Duration::from_secs(3);
/// How long a client close waits for the reader to record a server end that has reached the
/// socket already.
const SERVER_END_RECORDED: Duration = Duration::from_millis(500);
/// How many connections a placement opens before it gives up.
const PLACEMENT_TRIES: u32 = 24;
/// How long a `status` step waits for the page.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a wait samples again while its condition does not hold.
const RESAMPLE: Duration = Duration::from_millis(2);
/// A load's figures are kept per interval of this length.
const LOAD_INTERVAL: Duration = Duration::from_millis(100);
/// How long a SIGSTOP may take to stop a child: until then a signal sent after it (the master's
/// SIGTERM) could still end the child instead of finding it stopped.
const STOP_TAKES_EFFECT: Duration = Duration::from_secs(1);
/// What a load's warm-up allows beyond its timeout: a connect that found the listen backlog
/// full is retried by the kernel after 1 s, then 3 s.
const CONNECT_RETRIES: Duration = Duration::from_secs(5);

/// Why a (case, MPM, target) cannot run: a step the target cannot serve or observe. `None`
/// when it can. Expectations on what the target lacks are not refused: they are not judged.
pub fn refusal(case: &Case, mpm: Mpm, target: Target, caps: &Capabilities) -> Option<String> {
    if let Some((k, _)) = case.settings(mpm).iter().find(|(k, _)| !caps.honours(k)) {
        return Some(format!(
            "the {target} target does not honour {k} (a refhttpd fault site); this case cannot \
             run there"
        ));
    }
    if case.server.faults && !caps.fault_paths {
        return Some(format!("the {target} target serves no /fault/... paths"));
    }
    for step in case.steps_for(mpm, target) {
        let Some(c) = step.action.condition() else {
            continue;
        };
        if let Some(s) = c.sources().into_iter().find(|s| !caps.has(*s)) {
            return Some(format!(
                "line {}: the {target} target has no {} to decide `{c}`; give the step \
                 `targets = [...]`",
                step.line,
                s.as_str()
            ));
        }
        if let Some(k) = c.event_kinds().find(|k| !caps.reports(*k)) {
            return Some(format!(
                "line {}: the {target} target does not report {k} events, so `{c}` would never \
                 hold; give the step `targets = [...]`",
                step.line
            ));
        }
    }
    None
}

/// Runs one case under one MPM against one target.
pub fn run(case: &Case, mpm: Mpm, target: Target) -> Recording {
    loadgen::raise_fd_limit();
    let mut rec = Recording::default();
    let caps = target.capabilities();
    if let Some(why) = refusal(case, mpm, target, &caps) {
        rec.error = Some(format!("refused: {why}"));
        return rec;
    }
    let store = Store::new();
    let launch = Launch {
        mpm,
        settings: case.settings(mpm).into_iter().collect(),
        faults: case.server.faults,
        tls: case.server.tls,
        apache_only: case
            .server
            .apache
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let started = match target.kind().start(&launch, &store) {
        Ok(s) => s,
        Err(e) => {
            rec.error = Some(e.to_string());
            rec.timeline = store.entries();
            return rec;
        }
    };
    let mut server = started.server;
    rec.master = Some(server.master());
    let mut play = Play {
        store: &store,
        server: &*server,
        mpm,
        scoreboard: caps.has(Source::Scoreboard),
        conns: BTreeMap::new(),
        parked: Vec::new(),
        sent: Vec::new(),
        steps: Vec::new(),
        loads: Vec::new(),
    };
    rec.stopped_at = play.scenario(case, mpm, target);
    match play.finish_loads() {
        Ok(loads) => rec.loads = loads,
        Err(e) => rec.error = Some(e),
    }
    play.settle(case.expects_crash(mpm));
    rec.sent = std::mem::take(&mut play.sent);
    rec.steps = std::mem::take(&mut play.steps);
    // Fresh samples, so the timeline ends with the state the scenario left.
    store.sample_now(&Source::ALL);
    // Where the log stood when the scenario ended: what the harness's own stop makes a server
    // write is not the case's to answer for (Apache 2.4.67's event has been seen to log a
    // child's segfault while it stopped, after a case that crashes nothing).
    rec.log_at_teardown = Some(server.error_log().len());
    store.push(Observation::Teardown);
    // The client's connections close only now: what the server does about that (an EOF on an
    // idle keep-alive connection that finds every worker busy, say) is teardown, not the case.
    play.close_connections();
    drop(play);
    let termination = server.stop();
    store.push(Observation::Note {
        text: format!("server stopped: {termination:?}"),
    });
    rec.server_log = server.error_log();
    drop(server);
    store.close();
    for o in started.observers {
        if o.join().is_err() {
            rec.error
                .get_or_insert_with(|| "an observer panicked: the timeline is incomplete".into());
        }
    }
    rec.timeline = store.entries();
    rec
}

struct Play<'a> {
    store: &'a Store,
    server: &'a dyn Server,
    mpm: Mpm,
    /// The target has a scoreboard to settle on.
    scoreboard: bool,
    conns: BTreeMap<String, Connection>,
    /// Under event, the placement tries that landed elsewhere: open until the connections
    /// close at the end, idle in keep-alive (they hold no worker there: EV-1).
    parked: Vec<Landed>,
    sent: Vec<Sent>,
    steps: Vec<StepRecord>,
    /// Loads running in the background.
    loads: Vec<(String, JoinHandle<std::io::Result<LoadRun>>)>,
}

/// A load's progress, into the timeline.
struct Timeline {
    store: Store,
    load: String,
}

impl Progress for Timeline {
    fn warmed(&mut self, all: bool) {
        self.store.push(Observation::LoadWarmed {
            load: self.load.clone(),
            all,
        });
    }

    fn interval(&mut self, interval: &Interval) {
        self.store.push(Observation::LoadInterval {
            load: self.load.clone(),
            interval: *interval,
        });
    }
}

impl Play<'_> {
    /// Plays the steps; the line of a step that stopped the scenario.
    fn scenario(&mut self, case: &Case, mpm: Mpm, target: Target) -> Option<usize> {
        // The requests whose process's memory is expected: each is measured from the /proc
        // sample before it to the samples after, so /proc is sampled right before the step that
        // sends one and right after the step that awaits it — what the request kept is seen
        // even when its process leaves soon after (MaxConnectionsPerChild).
        let memory: BTreeSet<String> = [case.expectations(mpm), case.reference_expectations(mpm)]
            .into_iter()
            .flat_map(|e| e.memory.into_keys())
            .collect();
        for step in case.steps_for(mpm, target) {
            self.store.push(Observation::Step {
                line: step.line,
                text: step.action.to_string(),
            });
            if step.action.sends().iter().any(|r| memory.contains(*r)) {
                self.store.sample_now(&[Source::Proc]);
            }
            let done = self.step(step);
            if matches!(&step.action, Action::Await { requests, .. }
                if requests.iter().any(|r| memory.contains(r)))
            {
                self.store.sample_now(&[Source::Proc]);
            }
            if !done {
                self.store.push(Observation::Note {
                    text: format!("scenario stopped at line {}", step.line),
                });
                return Some(step.line);
            }
        }
        None
    }

    fn record(&mut self, step: &Step, result: StepResult) {
        self.steps.push(StepRecord {
            line: step.line,
            text: step.action.to_string(),
            result,
        });
    }

    /// Performs one step; false stops the scenario (a wait that never held).
    fn step(&mut self, step: &Step) -> bool {
        match &step.action {
            Action::Open { names, rcvbuf } => {
                for name in names {
                    if let Ok(c) =
                        Connection::open(name, &self.server.endpoint(), *rcvbuf, self.store)
                    {
                        self.conns.insert(name.clone(), c);
                    }
                }
            }
            Action::StallHandshake { names, bytes } => {
                let endpoint = self.server.endpoint();
                for name in names {
                    let bytes = bytes.map(|b| b as usize);
                    if let Ok(c) = Connection::open_stalled(name, &endpoint, bytes, self.store) {
                        self.conns.insert(name.clone(), c);
                    }
                }
            }
            Action::Send {
                conn,
                name,
                request,
                fault,
            } => {
                match self.conns.get_mut(conn) {
                    Some(c) => c.send(self.store, name, request),
                    None => self.refused(conn, name),
                }
                self.note_sent(conn, name, fault.clone());
            }
            Action::Warm {
                conns,
                rcvbuf,
                on,
                within,
            } => {
                for (conn, request) in conns {
                    let warmed = match on {
                        None => self.warm(conn, request, *rcvbuf, *within),
                        Some(p) => self.place(conn, request, *rcvbuf, p, *within),
                    };
                    if let Err(why) = warmed {
                        self.record(step, StepResult::Failed { why });
                        return false;
                    }
                }
                self.record(step, StepResult::Held);
            }
            Action::Pipeline { conn, requests } => {
                match self.conns.get_mut(conn) {
                    Some(c) => c.pipeline(self.store, requests),
                    None => requests.iter().for_each(|(n, _)| self.refused(conn, n)),
                }
                for (name, _) in requests {
                    self.note_sent(conn, name, None);
                }
            }
            Action::SlowHead {
                conn,
                name,
                interval,
            } => {
                match self.conns.get_mut(conn) {
                    Some(c) => c.slow_head(self.store, name, *interval),
                    None => self.refused(conn, name),
                }
                self.note_sent(conn, name, None);
            }
            Action::SlowBody {
                conn,
                name,
                interval,
                length,
            } => {
                match self.conns.get_mut(conn) {
                    Some(c) => c.slow_body(self.store, name, *interval, *length),
                    None => self.refused(conn, name),
                }
                self.note_sent(conn, name, None);
            }
            Action::SlowRead {
                conn,
                name,
                path,
                rate,
            } => {
                match self.conns.get_mut(conn) {
                    Some(c) => c.slow_read(self.store, name, path, *rate),
                    None => self.refused(conn, name),
                }
                self.note_sent(conn, name, None);
            }
            Action::Reset(names) => {
                for n in names {
                    self.client_ends(n, Connection::reset);
                }
            }
            Action::HalfClose(names) => names.iter().for_each(|n| {
                if let Some(c) = self.conns.get_mut(n) {
                    c.half_close();
                }
            }),
            Action::Close(names) => self.close(names),
            Action::Load(load) => return self.load(step, load),
            Action::Await {
                requests,
                within,
                give_up,
            } => {
                let done = |s: &crate::observe::State, r: &String| {
                    s.outcomes.contains_key(r) || s.loads_finished.contains(r)
                };
                let held = self.store.wait_until(Instant::now() + *within, |s| {
                    requests.iter().all(|r| done(s, r))
                });
                if !held {
                    let pending: Vec<String> = {
                        let s = self.store.lock();
                        requests.iter().filter(|r| !done(&s, r)).cloned().collect()
                    };
                    if *give_up {
                        self.give_up_on(&pending);
                        self.record(step, StepResult::GaveUp { requests: pending });
                        return true;
                    }
                    self.record(step, StepResult::Pending { requests: pending });
                    return false;
                }
                self.record(step, StepResult::Held);
            }
            Action::Wait { condition, within } => {
                let held = self.wait(condition, *within);
                if !held {
                    let observed = self.observed(condition);
                    self.record(step, StepResult::TimedOut { observed });
                    return false;
                }
                self.record(step, StepResult::Held);
            }
            Action::Check(condition) => {
                // Decided on a fresh sample of every source it needs.
                let held = self.wait(condition, Duration::ZERO);
                let observed = self.observed(condition);
                self.record(step, StepResult::Checked { held, observed });
            }
            Action::Signal(sig) => {
                if let Err(e) = self.server.signal(sig.signal()) {
                    let why = format!("signal {} to the master: {e}", sig.signal());
                    self.record(step, StepResult::Failed { why });
                    return false;
                }
            }
            Action::KillChildOf { request, signal } => {
                let pid = self
                    .store
                    .lock()
                    .outcomes
                    .get(request)
                    .and_then(|o| o.pid())
                    .filter(|p| *p > 0 && *p != self.server.master());
                let Some(pid) = pid else {
                    let why = format!("{request} has no served-by child to kill");
                    self.record(step, StepResult::Failed { why });
                    return false;
                };
                self.store.push(Observation::Killed {
                    pid,
                    signal: signal.to_string(),
                });
                let _ = kill(Pid::from_raw(pid), *signal);
                if *signal == Signal::SIGSTOP && !stopped_within(pid, STOP_TAKES_EFFECT) {
                    let why = format!("child {pid} was not stopped within {STOP_TAKES_EFFECT:?}");
                    self.record(step, StepResult::Failed { why });
                    return false;
                }
            }
            Action::Status(keys) => {
                let result = self.status(keys);
                self.record(step, result);
            }
            Action::Sleep { duration, reason } => {
                self.store.push(Observation::Note {
                    text: format!("fixed sleep {duration:?}: {reason}"),
                });
                std::thread::sleep(*duration);
            }
        }
        true
    }

    /// Opens `conn` and has it served one request, `request`; under event, then waits until
    /// the worker that served it is free again (no more workers busy than before).
    fn warm(
        &mut self,
        conn: &str,
        request: &str,
        rcvbuf: Option<u32>,
        within: Duration,
    ) -> Result<(), String> {
        let busy_before = self.busy_now();
        let mut c = Connection::open(conn, &self.server.endpoint(), rcvbuf, self.store)
            .map_err(|e| format!("{conn} could not be opened: {e}"))?;
        c.send(self.store, request, &Request::get("/"));
        self.conns.insert(conn.to_string(), c);
        self.note_sent(conn, request, None);
        let deadline = Instant::now() + within;
        let answered = self
            .store
            .wait_until(deadline, |s| s.outcomes.contains_key(request));
        let outcome = self.store.lock().outcomes.get(request).cloned();
        match outcome {
            _ if !answered => Err(format!("{request} had no response within {within:?}")),
            Some(RequestOutcome::Failed { class, .. }) => {
                Err(format!("{request} failed: {}", class.as_str()))
            }
            Some(o) if o.pid().is_none() => {
                Err(format!("{request} was answered without X-Served-By"))
            }
            _ => self.settle_workers(busy_before, false, deadline),
        }
    }

    /// Opens connections until one is served by a child as `placement` asks, keeps it as
    /// `conn` (its request recorded as `request`), and closes the others — they are held open
    /// until then, so that a child busy with one (prefork, worker) does not take the next.
    fn place(
        &mut self,
        conn: &str,
        request: &str,
        rcvbuf: Option<u32>,
        placement: &Placement,
        within: Duration,
    ) -> Result<(), String> {
        let by = match placement {
            Placement::SameChildAs(r) | Placement::OtherChildThan(r) => r,
        };
        let Some(pid) = self.store.lock().outcomes.get(by).and_then(|o| o.pid()) else {
            return Err(format!("{by} has no served-by child to place {conn} by"));
        };
        let wanted = |p: i32| match placement {
            Placement::SameChildAs(_) => p == pid,
            Placement::OtherChildThan(_) => p != pid,
        };
        self.placeable(placement, pid, by)?;
        let busy_before = self.busy_now();
        let deadline = Instant::now() + within;
        let mut elsewhere: Vec<Landed> = Vec::new();
        let mut tries = 0;
        let landed = loop {
            if tries == PLACEMENT_TRIES || Instant::now() >= deadline {
                let landed: Vec<String> = elsewhere
                    .iter()
                    .filter_map(|l| l.pid().map(|p| p.to_string()))
                    .collect();
                return Err(format!(
                    "{conn} could not be placed {placement} (pid {pid}) in {tries} tries \
                     (they landed on pids {})",
                    landed.join(", ")
                ));
            }
            tries += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let landed = Landed::try_open(&self.server.endpoint(), rcvbuf, left)
                .map_err(|e| format!("{conn}: try {tries}: {e}"))?;
            match landed.pid() {
                Some(p) if wanted(p) && !landed.closes() => break landed,
                Some(_) => elsewhere.push(landed),
                None => return Err(format!("{conn}: try {tries}: no X-Served-By")),
            }
            // Under event the next try waits for the worker that served this one: a connection
            // that finds no idle worker makes event close idle keep-alive connections early
            // (EV-5) — the case's own among them.
            if self.mpm == Mpm::Event {
                self.settle_workers(busy_before, false, deadline)?;
            }
        };
        let served = landed.pid().unwrap_or(0);
        self.conns.insert(
            conn.to_string(),
            Connection::adopt(conn, landed, request, self.store),
        );
        self.note_sent(conn, request, None);
        let others = elsewhere.len();
        // Under event they stay open to the end: event hands a closing connection to a worker,
        // and closes that find none idle in its queue make it close idle keep-alive connections
        // early (EV-5) — the case's own among them (seen on Apache, even with the tries closed
        // one at a time). Elsewhere they close now: they hold their workers.
        let (closed, fate) = if self.mpm == Mpm::Event {
            self.parked.extend(elsewhere);
            (0, "kept open, idle, to the end")
        } else {
            drop(elsewhere);
            (others, "closed")
        };
        self.store.push(Observation::Note {
            text: format!(
                "{conn} placed {placement} (pid {pid}): served by pid {served} on try {tries}; \
                 {others} connection(s) that landed elsewhere {fate}"
            ),
        });
        // Those that landed elsewhere held their workers until they closed.
        self.settle_workers(busy_before, closed > 0, deadline)
    }

    /// Whether a connection can land as `placement` asks now: the child is alive and has an
    /// idle worker (or another child has, for `other_child_than`).
    fn placeable(&self, placement: &Placement, pid: i32, by: &str) -> Result<(), String> {
        if !self.scoreboard {
            return Ok(());
        }
        self.store.sample_now(&[Source::Scoreboard]);
        let Some(summary) = self.store.lock().summary.clone() else {
            return Ok(());
        };
        let children = &summary.children;
        let shown = || {
            children
                .iter()
                .map(|c| format!("pid {} [{}]", c.pid, c.workers))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match placement {
            Placement::SameChildAs(_) => match children.iter().find(|c| c.pid == pid) {
                None => Err(format!(
                    "no such child alive: pid {pid}, which served {by}, is gone (live: {})",
                    shown()
                )),
                Some(c) if !c.has_idle() => Err(format!(
                    "the child that served {by} (pid {pid}) has no idle worker [{}]: no \
                     connection can land there now",
                    c.workers
                )),
                Some(_) => Ok(()),
            },
            Placement::OtherChildThan(_) => {
                if children.iter().any(|c| c.pid != pid && c.has_idle()) {
                    Ok(())
                } else {
                    Err(format!(
                        "no child but the one that served {by} (pid {pid}) has an idle worker \
                         (live: {})",
                        shown()
                    ))
                }
            }
        }
    }

    /// Busy workers now, from a fresh scoreboard sample (`None` without a scoreboard).
    fn busy_now(&self) -> Option<u64> {
        if !self.scoreboard {
            return None;
        }
        self.store.sample_now(&[Source::Scoreboard]);
        self.store.lock().summary.as_ref().map(|s| s.busy)
    }

    /// After a step served a connection it keeps (and closed any in `let_go`), waits until no
    /// more workers are busy than `before`, plus the kept connection's own worker under prefork
    /// and worker (which hold a worker through keep-alive waits). Under event it always waits —
    /// a worker just done with a response is busy for a moment, and a connection arriving then
    /// may close the idle keep-alive connections (EV-5) — elsewhere only when connections were
    /// let go, whose workers free up some time after the close.
    fn settle_workers(
        &self,
        before: Option<u64>,
        let_go: bool,
        deadline: Instant,
    ) -> Result<(), String> {
        let Some(before) = before else {
            return Ok(());
        };
        if self.mpm != Mpm::Event && !let_go {
            return Ok(());
        }
        let kept = u64::from(self.mpm != Mpm::Event);
        let condition = Condition {
            counts: vec![(
                Quantity::BusyWorkers,
                Count::Range {
                    at_least: None,
                    at_most: Some(before + kept),
                },
            )],
            ..Condition::default()
        };
        let within = deadline.saturating_duration_since(Instant::now());
        if self.wait(&condition, within) {
            Ok(())
        } else {
            Err(format!(
                "the workers did not settle: {}",
                self.observed(&condition)
            ))
        }
    }

    /// Starts a load on a thread of its own; with a warm-up, returns once it is over (false
    /// when a connection went unanswered: the owners a crash oracle needs are unknown).
    fn load(&mut self, step: &Step, load: &LoadStep) -> bool {
        let plan = Plan {
            name: load.name.clone(),
            endpoint: self.server.endpoint(),
            connections: load.connections,
            rate: load.rate.map(f64::from),
            duration: load.duration,
            keepalive: load.keepalive,
            mix: load
                .mix
                .iter()
                .map(|m| MixEntry {
                    path: m.path.clone(),
                    weight: m.weight,
                    fatal: m.fault.as_ref().is_some_and(Fault::ends_its_process),
                })
                .collect(),
            timeout: load.timeout,
            interval: LOAD_INTERVAL,
            warm: load.warm,
            keep_requests: true,
        };
        self.store.push(Observation::LoadStarted {
            load: load.name.clone(),
            shape: plan.shape(),
        });
        let mut progress = Timeline {
            store: self.store.clone(),
            load: load.name.clone(),
        };
        let store = self.store.clone();
        let handle = std::thread::spawn(move || {
            let run = loadgen::run(&plan, store.start(), &mut progress);
            // Pushed whatever the end, so that no wait for the load outlasts it.
            store.push(Observation::LoadFinished {
                load: plan.name.clone(),
                summary: match &run {
                    Ok(r) => r.summary(),
                    Err(e) => format!("{}: the driver failed: {e}", plan.name),
                },
            });
            run
        });
        self.loads.push((load.name.clone(), handle));
        if !load.warm {
            return true;
        }
        // Each warm request is bounded by the timeout; the connects by the backlog's retries.
        let deadline = Instant::now() + load.timeout + CONNECT_RETRIES;
        let warmed = self.store.wait_until(deadline, |s| {
            s.loads_warmed.contains_key(&load.name) || s.loads_finished.contains(&load.name)
        });
        let all = self.store.lock().loads_warmed.get(&load.name).copied();
        if warmed && all == Some(true) {
            self.record(step, StepResult::Held);
            return true;
        }
        let why = match all {
            Some(_) => format!("{}: a connection went unanswered in the warm-up", load.name),
            None => format!("{}: the warm-up did not end", load.name),
        };
        self.record(step, StepResult::Failed { why });
        false
    }

    /// Waits for every load to end (each is bounded by its duration and timeout) and hands
    /// back what they recorded.
    fn finish_loads(&mut self) -> Result<Vec<LoadRun>, String> {
        let mut runs = Vec::new();
        for (name, handle) in self.loads.drain(..) {
            match handle.join() {
                Ok(Ok(run)) => runs.push(run),
                Ok(Err(e)) => return Err(format!("load {name}: {e}")),
                Err(_) => return Err(format!("load {name}: the driver panicked")),
            }
        }
        Ok(runs)
    }

    /// Fetches `server-status?auto` on a fresh connection and checks the keys.
    fn status(&self, keys: &[(String, StatusExpect)]) -> StepResult {
        let page = match crate::drive::client::fetch(
            &self.server.endpoint(),
            "/server-status?auto",
            STATUS_TIMEOUT,
        ) {
            Ok(r) if r.status == 200 => crate::drive::client::status_keys(&r.text()),
            Ok(r) => {
                return StepResult::Checked {
                    held: false,
                    observed: format!("server-status answered {}", r.status),
                }
            }
            Err(e) => {
                return StepResult::Checked {
                    held: false,
                    observed: format!("server-status: {e}"),
                }
            }
        };
        self.store
            .push(Observation::StatusPage { keys: page.clone() });
        let held = keys
            .iter()
            .all(|(k, e)| e.holds(page.get(k).map(String::as_str)));
        let observed = keys
            .iter()
            .map(|(k, _)| match page.get(k) {
                Some(v) => format!("{k}: {v}"),
                None => format!("{k} absent"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        StepResult::Checked { held, observed }
    }

    /// Waits for `condition` on observations made from now on, sampling its sources at once
    /// and then every few milliseconds.
    fn wait(&self, condition: &Condition, within: Duration) -> bool {
        self.store.wait_fresh(
            Instant::now() + within,
            &condition.sources(),
            RESAMPLE,
            |fresh| condition.holds(fresh),
        )
    }

    fn observed(&self, condition: &Condition) -> String {
        let s = self.store.lock();
        format!("{} (state: {})", condition.observed(&*s), s.describe())
    }

    /// The client gives up on these requests: it closes their connections, and what was still
    /// waiting there ends as `timeout`.
    fn give_up_on(&mut self, requests: &[String]) {
        let conns: Vec<String> = self
            .sent
            .iter()
            .filter(|s| requests.contains(&s.name))
            .map(|s| s.conn.clone())
            .collect();
        self.close(&conns);
    }

    /// The client closes these connections (those that opened).
    fn close(&mut self, names: &[String]) {
        for name in names {
            self.client_ends(name, Connection::close);
        }
    }

    /// Ends connection `name` from the client's side (`end`: close or reset) and records it —
    /// after the server's end, if that has reached the socket already, so that which of the
    /// two came first is what the sockets saw, not which thread recorded it first.
    fn client_ends(&mut self, name: &str, end: fn(&mut Connection)) {
        let Some(c) = self.conns.get_mut(name) else {
            return;
        };
        let deadline = Instant::now() + SERVER_END_RECORDED;
        while c.server_end_unrecorded() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let open = !c.ended();
        end(c);
        if open {
            self.store.push(Observation::ConnClosedByClient {
                conn: name.to_string(),
            });
        }
    }

    fn note_sent(&mut self, conn: &str, name: &str, fault: Option<Fault>) {
        self.sent.push(Sent {
            name: name.to_string(),
            conn: conn.to_string(),
            fault,
        });
    }

    /// A send on a connection that never opened: the request is refused.
    fn refused(&self, conn: &str, name: &str) {
        self.store.push(Observation::RequestFailed {
            request: name.to_string(),
            conn: conn.to_string(),
            class: ErrorClass::Refused,
            latency_ms: 0.0,
        });
    }

    /// Lets every sent request reach an outcome (bounded). A case that expects a crash also
    /// waits (bounded) for the process exit to be observed, so the oracle does not depend on how
    /// fast the observers caught up.
    fn settle(&mut self, expects_crash: bool) {
        let names: Vec<String> = self.sent.iter().map(|s| s.name.clone()).collect();
        let deadline = Instant::now() + SETTLE;
        self.store.wait_fresh(
            deadline,
            &[Source::ProcessExits],
            Duration::from_millis(5),
            |f| {
                names.iter().all(|r| f.state.outcomes.contains_key(r))
                    && (!expects_crash || f.state.child_exits > 0)
            },
        );
        // A close by the server that has reached a socket belongs to the scenario: its reader,
        // which may lag behind under load, records it before the scenario ends.
        while self.conns.values().any(Connection::server_end_unrecorded)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn close_connections(&mut self) {
        for c in self.conns.values_mut() {
            c.close();
        }
        self.conns.clear();
        self.parked.clear();
    }
}

/// Whether process `pid` is stopped (`T` in /proc) before `within` has passed.
fn stopped_within(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if process_state(pid) == Some('T') {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(RESAMPLE);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn case(extra_step: &str) -> Case {
        let text = format!(
            "id = \"t/r\"\ntitle = \"t\"\n[[step]]\nopen = \"a\"\n[[step]]\n{extra_step}\n"
        );
        crate::spec::parse(Path::new("t.toml"), &text).unwrap()
    }

    #[test]
    fn a_step_the_target_cannot_decide_is_refused_before_the_server_starts() {
        let c = case("wait = { event = \"keep_alive_closed_early\" }");
        let apache = Target::Apache.capabilities();
        let why = refusal(&c, Mpm::Event, Target::Apache, &apache).expect("refused");
        assert!(why.contains("line 5"), "{why}");
        assert!(why.contains("keep_alive_closed_early"), "{why}");
        let reference = Target::Reference.capabilities();
        assert_eq!(refusal(&c, Mpm::Event, Target::Reference, &reference), None);
        // Limited to the reference, the step no longer stops the case on Apache.
        let c = case("wait = { event = \"keep_alive_closed_early\" }\ntargets = [\"reference\"]");
        assert_eq!(refusal(&c, Mpm::Event, Target::Apache, &apache), None);
    }

    #[test]
    fn a_setting_the_target_does_not_honour_is_refused() {
        let text = "id = \"t/r\"\ntitle = \"t\"\n[server]\nfaults = true\nall = { FaultFork = \"fail:EAGAIN\" }\n";
        let c = crate::spec::parse(Path::new("t.toml"), text).unwrap();
        let apache = Target::Apache.capabilities();
        let why = refusal(&c, Mpm::Prefork, Target::Apache, &apache).expect("refused");
        assert!(why.contains("FaultFork"), "{why}");
    }
}
