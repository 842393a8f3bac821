//! The runner: one (case, MPM, target) — start the server, start the observers, play the
//! scenario step by step, let in-flight work settle, stop the server, hand everything observed
//! to the verdict.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
use nix::unistd::Pid;
use refhttpd::config::Mpm;

use crate::driver::Connection;
use crate::observe::{self, Entry, Observation, Outcome, State, Store};
use crate::spec::{Action, Case, ConditionSpec};
use crate::target::{Launch, RunningServer, Target};
use crate::verdict::{self, Check, Verdict};

/// How long the runner lets sent requests finish after the last step.
const SETTLE: Duration = Duration::from_secs(3);

/// What one run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    pub case: String,
    pub mpm: Mpm,
    pub target: Target,
    pub verdict: Verdict,
    pub timeline: Vec<Entry>,
    pub duration_ms: f64,
    /// The server's own error log (stderr).
    pub server_log: String,
}

/// What the scenario did that the verdict needs: which connection each request went on and
/// whether it carried a process-killing fault.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    pub conn_of: BTreeMap<String, String>,
    pub fatal: Vec<String>,
    pub order: Vec<String>,
}

/// Runs one case under one MPM against one target.
pub fn run(case: &Case, mpm: Mpm, target: Target) -> Run {
    let started = Instant::now();
    let store = Store::new();
    let launch = Launch {
        mpm,
        settings: case.settings(mpm),
        faults: case.faults,
        apache_only: case
            .server
            .apache
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    };
    let mut checks = Vec::new();
    let mut sent = Sent::default();
    let mut server_log = String::new();
    let server = match target {
        Target::Reference => RunningServer::start_reference(&launch, &store),
        Target::Apache => RunningServer::start_apache(&launch, &store),
    };
    match server {
        Err(e) => checks.push(Check::fail("server starts", e.to_string())),
        Ok(mut server) => {
            let mut observers = server.start_observers(&store);
            observers.push(observe::sample_processes(store.clone(), server.master));
            let mut play = Play {
                store: &store,
                server: &server,
                conns: BTreeMap::new(),
                sent: &mut sent,
                checks: &mut checks,
            };
            play.scenario(case, mpm, target);
            play.settle(case, mpm);
            drop(play);
            // Fresh scoreboard and /proc samples, so the timeline ends with the state the scenario left.
            let (boards, procs) = {
                let s = store.lock();
                (s.samples, s.proc_samples)
            };
            store.wait_until(Instant::now() + Duration::from_millis(500), |s| {
                s.samples >= boards + 2 && s.proc_samples >= procs + 2
            });
            store.push(Observation::Teardown);
            server.stop();
            server_log = server.error_log_text();
            store.close();
            for o in observers {
                let _ = o.join();
            }
        }
    }
    let timeline = store.entries();
    let verdict = verdict::judge(case, mpm, target, &timeline, &sent, checks);
    Run {
        case: case.id.clone(),
        mpm,
        target,
        verdict,
        timeline,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        server_log,
    }
}

struct Play<'a> {
    store: &'a Store,
    server: &'a RunningServer,
    conns: BTreeMap<String, Connection>,
    sent: &'a mut Sent,
    checks: &'a mut Vec<Check>,
}

impl Play<'_> {
    fn scenario(&mut self, case: &Case, mpm: Mpm, target: Target) {
        for step in case.steps_for(mpm, target.as_str()) {
            self.store.push(Observation::Step {
                line: step.line,
                text: describe(&step.action),
            });
            if !self.step(&step.action, step.line) {
                self.store.push(Observation::Note {
                    text: format!("scenario stopped at line {}", step.line),
                });
                return;
            }
        }
    }

    /// Performs one step; false stops the scenario (a wait that never held).
    fn step(&mut self, action: &Action, line: usize) -> bool {
        match action {
            Action::Open(names) => {
                for name in names {
                    if let Ok(c) = Connection::open(name, self.server.addr, self.store) {
                        self.conns.insert(name.clone(), c);
                    }
                }
            }
            Action::Send {
                conn,
                request,
                method,
                path,
                fault,
                body,
                connection_close,
                http10,
                raw,
            } => {
                let Some(c) = self.conns.get_mut(conn) else {
                    return self.refused(conn, request.as_deref());
                };
                let name = match raw {
                    Some(bytes) => c.send_raw(self.store, request.as_deref(), bytes.as_bytes()),
                    None => c.send(
                        self.store,
                        request.as_deref(),
                        method,
                        path,
                        body.as_deref(),
                        *connection_close,
                        *http10,
                    ),
                };
                if fault
                    .as_ref()
                    .is_some_and(|f| f.blast_radius() == mpm_faults::BlastRadius::Process)
                {
                    self.sent.fatal.push(name.clone());
                }
                self.note_sent(conn, name);
            }
            Action::Pipeline {
                conn,
                paths,
                request,
            } => {
                let Some(c) = self.conns.get_mut(conn) else {
                    return self.refused(conn, request.as_deref());
                };
                for name in c.pipeline(self.store, request.as_deref(), paths) {
                    self.note_sent(conn, name);
                }
            }
            Action::SlowHead { conn, interval } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    let name = c.slow_head(self.store, *interval);
                    self.note_sent(conn, name);
                }
            }
            Action::SlowRead {
                conn,
                path,
                rate,
                request,
            } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    let name = c.slow_read(self.store, request.as_deref(), path, *rate);
                    self.note_sent(conn, name);
                }
            }
            Action::Reset(names) => names.iter().for_each(|n| {
                if let Some(c) = self.conns.get_mut(n) {
                    c.reset();
                }
            }),
            Action::HalfClose(names) => names.iter().for_each(|n| {
                if let Some(c) = self.conns.get_mut(n) {
                    c.half_close();
                }
            }),
            Action::Close(names) => names.iter().for_each(|n| {
                if let Some(c) = self.conns.get_mut(n) {
                    c.close();
                }
            }),
            Action::Await { requests, within } => {
                let deadline = Instant::now() + *within;
                let held = self.store.wait_until(deadline, |s| {
                    requests.iter().all(|r| s.outcomes.contains_key(r))
                });
                if !held {
                    let missing: Vec<&String> = {
                        let s = self.store.lock();
                        requests
                            .iter()
                            .filter(|r| !s.outcomes.contains_key(*r))
                            .collect()
                    };
                    self.checks.push(Check::fail(
                        format!("line {line}: await {}", requests.join(", ")),
                        format!("no outcome within {:?} for {missing:?}", within),
                    ));
                    return false;
                }
            }
            Action::Wait { condition, within } => {
                let deadline = Instant::now() + *within;
                let held = self.store.wait_until(deadline, |s| holds(condition, s));
                if !held {
                    let now = describe_state(&self.store.lock());
                    self.checks.push(Check::fail(
                        format!("line {line}: wait for {}", describe_condition(condition)),
                        format!("never held within {within:?}; last seen: {now}"),
                    ));
                    return false;
                }
            }
            Action::Check(condition) => {
                let s = self.store.lock();
                let ok = holds(condition, &s);
                let what = format!("line {line}: {}", describe_condition(condition));
                let state = describe_state(&s);
                drop(s);
                self.checks.push(if ok {
                    Check::pass(what, state)
                } else {
                    Check::fail(what, format!("observed {state}"))
                });
            }
            Action::Signal(sig) => {
                if let Err(e) = self.server.signal(sig.signal()) {
                    self.checks
                        .push(Check::fail(format!("line {line}: signal"), e.to_string()));
                    return false;
                }
            }
            Action::KillChildOf { request, signal } => {
                let pid = match self.store.lock().outcomes.get(request) {
                    Some(Outcome::Response {
                        served_by: Some(by),
                        ..
                    }) => by.pid,
                    _ => 0,
                };
                if pid <= 0 || pid == self.server.master {
                    self.checks.push(Check::fail(
                        format!("line {line}: kill the child of {request}"),
                        "that request has no served-by child".to_string(),
                    ));
                    return false;
                }
                self.store.push(Observation::Killed {
                    pid,
                    signal: signal.to_string(),
                });
                let _ = kill(Pid::from_raw(pid), *signal);
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

    fn note_sent(&mut self, conn: &str, name: String) {
        self.sent.conn_of.insert(name.clone(), conn.to_string());
        self.sent.order.push(name);
    }

    /// A send on a connection that never opened: the request is refused.
    fn refused(&mut self, conn: &str, request: Option<&str>) -> bool {
        let name = request.unwrap_or(conn).to_string();
        self.store.push(Observation::RequestFailed {
            request: name.clone(),
            conn: conn.to_string(),
            class: observe::ErrorClass::Refused,
            latency_ms: 0.0,
        });
        self.note_sent(conn, name);
        true
    }

    /// Lets every sent request reach an outcome (bounded), then closes the client side.
    /// A case that expects a crash also waits (bounded) for the process exit to be observed, so
    /// the oracle does not depend on how fast the observers caught up.
    fn settle(&mut self, case: &Case, mpm: Mpm) {
        let names = self.sent.order.clone();
        let expects_crash = case.expectations(mpm).crash.is_some()
            || case.reference_expectations(mpm).crash.is_some();
        let deadline = Instant::now() + SETTLE;
        self.store.wait_until(deadline, |s| {
            names.iter().all(|r| s.outcomes.contains_key(r))
                && (!expects_crash || s.child_exits > 0)
        });
        for c in self.conns.values_mut() {
            c.close();
        }
        self.conns.clear();
    }
}

/// Whether a condition holds on the current state.
pub fn holds(c: &ConditionSpec, s: &State) -> bool {
    let summary = s.summary.clone().unwrap_or_default();
    let count = |spec: &Option<crate::spec::Count>, n: u64| spec.is_none_or(|x| x.holds(n));
    count(&c.busy_workers, summary.busy)
        && count(&c.idle_workers, summary.idle)
        && count(&c.keepalive_workers, summary.keepalive_workers)
        && count(&c.async_keepalive, summary.async_keepalive)
        && count(&c.async_writing, summary.async_writing)
        && count(&c.processes, summary.processes)
        && count(&c.accepting, summary.accepting)
        && count(&c.child_exits, s.child_exits)
        && count(&c.threads, s.resources.as_ref().map_or(0, |r| r.threads))
        && count(&c.pss_kb, s.resources.as_ref().map_or(0, |r| r.pss_kb))
        && c.event.as_ref().is_none_or(|e| {
            let n = s.events.get(e).copied().unwrap_or(0);
            c.events
                .unwrap_or(crate::spec::Count::Range {
                    at_least: Some(1),
                    at_most: None,
                })
                .holds(n)
        })
        && c.master_exited.is_none_or(|m| m == s.master_exited)
        && c.closed.as_ref().is_none_or(|names| {
            names
                .to_vec()
                .iter()
                .all(|n| s.closed_conns.contains_key(n))
        })
}

/// A condition in words.
pub fn describe_condition(c: &ConditionSpec) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str, v: &Option<crate::spec::Count>| {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    };
    add("busy_workers", &c.busy_workers);
    add("idle_workers", &c.idle_workers);
    add("keepalive_workers", &c.keepalive_workers);
    add("async_keepalive", &c.async_keepalive);
    add("async_writing", &c.async_writing);
    add("processes", &c.processes);
    add("accepting", &c.accepting);
    add("child_exits", &c.child_exits);
    add("threads", &c.threads);
    add("pss_kb", &c.pss_kb);
    if let Some(e) = &c.event {
        parts.push(format!(
            "event {e}×{}",
            c.events
                .map(|n| n.to_string())
                .unwrap_or_else(|| "≥1".into())
        ));
    }
    if let Some(m) = c.master_exited {
        parts.push(format!("master_exited={m}"));
    }
    if let Some(n) = &c.closed {
        parts.push(format!("closed by server: {}", n.to_vec().join(", ")));
    }
    parts.join(", ")
}

/// The current state in words.
pub fn describe_state(s: &State) -> String {
    let summary = s
        .summary
        .as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "no scoreboard yet".into());
    let events: Vec<String> = s.events.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    let resources = s
        .resources
        .as_ref()
        .map(|r| format!("; {r}"))
        .unwrap_or_default();
    format!(
        "{summary}{resources}; child exits {}; events [{}]; closed by server [{}]",
        s.child_exits,
        events.join(", "),
        s.closed_conns
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A step in words, for the timeline.
pub fn describe(a: &Action) -> String {
    match a {
        Action::Open(n) => format!("open {}", n.join(", ")),
        Action::Send {
            conn,
            request,
            raw: Some(raw),
            ..
        } => format!(
            "send raw {raw:?} on {conn}{}",
            request
                .as_ref()
                .map(|r| format!(" as {r}"))
                .unwrap_or_default()
        ),
        Action::Send {
            conn,
            path,
            request,
            ..
        } => format!(
            "send {path} on {conn}{}",
            request
                .as_ref()
                .map(|r| format!(" as {r}"))
                .unwrap_or_default()
        ),
        Action::Pipeline { conn, paths, .. } => format!("pipeline {} on {conn}", paths.join(" ")),
        Action::SlowHead { conn, interval } => {
            format!("slow head on {conn}, a byte per {interval:?}")
        }
        Action::SlowRead {
            conn, path, rate, ..
        } => format!("slow read of {path} on {conn} at {rate} B/s"),
        Action::Reset(n) => format!("reset {}", n.join(", ")),
        Action::HalfClose(n) => format!("half-close {}", n.join(", ")),
        Action::Close(n) => format!("close {}", n.join(", ")),
        Action::Await { requests, within } => {
            format!("await {} (within {within:?})", requests.join(", "))
        }
        Action::Wait { condition, within } => {
            format!(
                "wait for {} (within {within:?})",
                describe_condition(condition)
            )
        }
        Action::Check(c) => format!("check {}", describe_condition(c)),
        Action::Signal(s) => format!("signal the master: {:?} ({})", s, s.signal()),
        Action::KillChildOf { request, signal } => {
            format!("kill the child that served {request} with {signal}")
        }
        Action::Sleep { duration, reason } => format!("fixed sleep {duration:?} ({reason})"),
    }
}
