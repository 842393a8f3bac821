//! The crash oracle, in two halves. First the facts the recording gives about the crash
//! ([`Crash`]): which children died and how, when the crash was seen and the earliest it can
//! have been caused, which connections the crashed child owned and which requests were at
//! stake on them, when the pool was whole again. Then the checks made on those facts: a child
//! crashed, the blast radius of the scenario's requests and of each load, the recovery.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mpm_faults::BlastRadius;

use super::{describe_outcome, load, Check, Judge};
use crate::observe::load::LoadRun;
use crate::observe::{Ending, Entry, Observation, Recording, RequestOutcome, Sent, State, Summary};
use crate::spec::CrashExpect;

impl Judge<'_> {
    /// The crash oracle: a child crashed, the blast radius (of the requests, then of each
    /// load), and the recovery when the case asks for one.
    pub(super) fn crash(&self, spec: &CrashExpect) -> Vec<Check> {
        let Some(crash) = Crash::of(self.timeline, self.rec, self.state) else {
            return vec![no_crash()];
        };
        let mut checks = vec![crash.a_child_crashed(), crash.blast_radius(spec.scope)];
        checks.extend(
            self.rec
                .loads
                .iter()
                .map(|run| crash.blast_radius_under(run, spec.scope)),
        );
        if let Some(within) = spec.recovered_within {
            checks.push(self.unless_reference_only(
                crash.recovered_within(within),
                spec.recovery_reference_only,
            ));
        }
        checks
    }
}

/// What the recording tells of a crash, derived once; the checks judge only these.
struct Crash<'a> {
    /// The children that died by a signal or a non-zero exit, in time order.
    deaths: Vec<Death>,
    /// Their pids.
    dead: BTreeSet<i32>,
    /// When the crash was seen (ms): the earliest failure of a request that carried it, a
    /// kill, an exit, or the server cutting a connection of the crashed child.
    seen_at: f64,
    /// The earliest the crash can have happened (ms): its cause sent (a fatal request, under
    /// load too), a kill; never after it was seen.
    caused_from: f64,
    /// The connections the crashed child owned when it died (it gave their last response
    /// before the crash), but those the client closed first.
    owned: BTreeSet<&'a str>,
    /// Those of them the server never closed.
    left_open: Vec<&'a str>,
    /// The requests the crash may have touched: all sent, but those whose connection the client
    /// closed before the crash (their fate was that close) unless they carried the crash.
    at_stake: Vec<AtStake<'a>>,
    /// The requests sent that got no response.
    failed: Vec<&'a str>,
    /// When the pool was whole again.
    recovery: Recovery,
}

/// A child that died by a signal or a non-zero exit.
struct Death {
    at_ms: f64,
    pid: i32,
    ending: Ending,
}

/// A request sent, as the crash concerns it.
struct AtStake<'a> {
    sent: &'a Sent,
    outcome: Option<&'a RequestOutcome>,
    /// The child that last answered on its connection before the crash, if any did.
    owner: Option<i32>,
    /// On a connection of the crashed child and not yet answered when the child died.
    in_flight: bool,
}

/// When the pool was whole again after the crash: the crashed child gone from the scoreboard
/// and as many accepting processes as in the last sample before the crash that showed it.
enum Recovery {
    /// No scoreboard sample showed the crashed child.
    Unseen,
    /// Never back to the `accepting` processes it had.
    Never { accepting: u64 },
    /// Back to `accepting` processes at `at_ms`.
    At { at_ms: f64, accepting: u64 },
}

impl<'a> Crash<'a> {
    /// The facts of the crash, or `None` when no child crashed.
    fn of(timeline: &'a [Entry], rec: &'a Recording, state: &'a State) -> Option<Crash<'a>> {
        let deaths = deaths(timeline);
        if deaths.is_empty() {
            return None;
        }
        let dead: BTreeSet<i32> = deaths.iter().map(|d| d.pid).collect();
        let fatal = fatal_requests(&rec.sent);
        let first_sign = first_sign(timeline, &fatal, &deaths);
        // A connection the client closed before the crash is not the crash's to end: whichever
        // of its two closes was recorded first, it leaves the oracle's view at the client's.
        let client_closed = client_closed_before(timeline, first_sign);
        let owners = owners_before(timeline, first_sign, &client_closed);
        let owned = owned_by(&owners, &dead);
        let seen_at = first_cut(timeline, &owned, first_sign);
        let at_stake = rec
            .sent
            .iter()
            .filter(|sent| sent.fatal() || !client_closed.contains(sent.conn.as_str()))
            .map(|sent| {
                let outcome = state.outcomes.get(&sent.name);
                let owner = owners.get(sent.conn.as_str()).copied();
                let in_flight = in_flight(timeline, &sent.name, outcome, owner, &dead, seen_at);
                AtStake {
                    sent,
                    outcome,
                    owner,
                    in_flight,
                }
            })
            .collect();
        Some(Crash {
            caused_from: cause_sent(timeline, &rec.loads, &fatal).min(seen_at),
            left_open: left_open(&owned, state),
            failed: unanswered(&rec.sent, state),
            recovery: recovery(timeline, seen_at, &dead),
            deaths,
            dead,
            seen_at,
            owned,
            at_stake,
        })
    }
}

/// The children that died by a signal or a non-zero exit.
fn deaths(timeline: &[Entry]) -> Vec<Death> {
    timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::ChildExited { pid, ending } if ending.is_crash() => Some(Death {
                at_ms: e.at_ms,
                pid: *pid,
                ending: *ending,
            }),
            _ => None,
        })
        .collect()
}

/// The names of the requests that carried the crash.
fn fatal_requests(sent: &[Sent]) -> BTreeSet<&str> {
    sent.iter()
        .filter(|s| s.fatal())
        .map(|s| s.name.as_str())
        .collect()
}

/// The first sign of the crash (ms): the earliest failure of a fatal request, a kill, or the
/// exit.
fn first_sign(timeline: &[Entry], fatal: &BTreeSet<&str>, deaths: &[Death]) -> f64 {
    kills_and(timeline, |o| {
        matches!(o, Observation::RequestFailed { request, .. } if fatal.contains(request.as_str()))
    })
    .chain(deaths.iter().map(|d| d.at_ms))
    .fold(f64::INFINITY, f64::min)
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

/// Connection → the child pid that last answered on it at or before `t` (ms), but the
/// connections `left_out`.
fn owners_before<'a>(
    timeline: &'a [Entry],
    t: f64,
    left_out: &BTreeSet<&str>,
) -> BTreeMap<&'a str, i32> {
    let mut owners = BTreeMap::new();
    for e in timeline.iter().take_while(|e| e.at_ms <= t) {
        if let Observation::Response {
            conn,
            served_by: Some(by),
            ..
        } = &e.what
        {
            owners.insert(conn.as_str(), by.pid);
        }
    }
    owners.retain(|conn, _| !left_out.contains(conn));
    owners
}

/// The connections whose owner is one of `dead`.
fn owned_by<'a>(owners: &BTreeMap<&'a str, i32>, dead: &BTreeSet<i32>) -> BTreeSet<&'a str> {
    owners
        .iter()
        .filter(|(_, pid)| dead.contains(pid))
        .map(|(conn, _)| *conn)
        .collect()
}

/// When the crash was seen (ms): at `first_sign`, or sooner when the server cut a connection
/// of the dead child before it — the exit is observed late (a log line, a zombie).
fn first_cut(timeline: &[Entry], owned: &BTreeSet<&str>, first_sign: f64) -> f64 {
    timeline
        .iter()
        .take_while(|e| e.at_ms <= first_sign)
        .filter_map(|e| match &e.what {
            Observation::RequestFailed { conn, .. }
            | Observation::ConnClosedByServer { conn, .. }
                if owned.contains(conn.as_str()) =>
            {
                Some(e.at_ms)
            }
            _ => None,
        })
        .fold(first_sign, f64::min)
}

/// Whether `request` (its `outcome`, the `owner` of its connection) was in flight on a
/// connection of the children `dead` when they died at `crash_at`: not answered by then, nor
/// by one of them at all (a response of the dead child was written before it died, however
/// late it was recorded).
fn in_flight(
    timeline: &[Entry],
    request: &str,
    outcome: Option<&RequestOutcome>,
    owner: Option<i32>,
    dead: &BTreeSet<i32>,
    crash_at: f64,
) -> bool {
    let answered_by_dead = outcome
        .and_then(RequestOutcome::pid)
        .is_some_and(|p| dead.contains(&p));
    owner.is_some_and(|p| dead.contains(&p))
        && !answered_by_dead
        && !answered_before(timeline, request, crash_at)
}

/// Whether `request` was answered at or before `t`.
fn answered_before(timeline: &[Entry], request: &str, t: f64) -> bool {
    timeline
        .iter()
        .take_while(|e| e.at_ms <= t)
        .any(|e| matches!(&e.what, Observation::Response { request: r, .. } if r == request))
}

/// Whether the outcome is a response.
fn answered(outcome: Option<&RequestOutcome>) -> bool {
    matches!(outcome, Some(RequestOutcome::Response { .. }))
}

/// The earliest moment a cause of the crash went out (ms): a fatal request sent (by the
/// scenario or a load), a kill.
fn cause_sent(timeline: &[Entry], loads: &[LoadRun], fatal: &BTreeSet<&str>) -> f64 {
    kills_and(timeline, |o| {
        matches!(o, Observation::RequestSent { request, .. } if fatal.contains(request.as_str()))
    })
    .chain(
        loads
            .iter()
            .flat_map(|l| l.requests.iter().filter(|r| r.fatal).map(|r| r.at_ms)),
    )
    .fold(f64::INFINITY, f64::min)
}

/// The moments (ms) of the kills in the timeline and of the observations `of_fatal` picks (of a
/// request that carried the crash).
fn kills_and<'a>(
    timeline: &'a [Entry],
    of_fatal: impl Fn(&Observation) -> bool + 'a,
) -> impl Iterator<Item = f64> + 'a {
    timeline
        .iter()
        .filter(move |e| matches!(e.what, Observation::Killed { .. }) || of_fatal(&e.what))
        .map(|e| e.at_ms)
}

/// The connections of `owned` that the server never closed.
fn left_open<'a>(owned: &BTreeSet<&'a str>, state: &State) -> Vec<&'a str> {
    owned
        .iter()
        .copied()
        .filter(|conn| !state.closed_conns.contains_key(*conn))
        .collect()
}

/// The names of the requests sent that got no response.
fn unanswered<'a>(sent: &'a [Sent], state: &State) -> Vec<&'a str> {
    sent.iter()
        .filter(|s| !answered(state.outcomes.get(&s.name)))
        .map(|s| s.name.as_str())
        .collect()
}

/// When the pool was whole again after the crash at `crash_at` of the children `dead`.
fn recovery(timeline: &[Entry], crash_at: f64, dead: &BTreeSet<i32>) -> Recovery {
    let samples = crate::observe::scoreboard_samples(timeline);
    let shows_dead = |s: &Summary| s.pids().any(|p| dead.contains(&p));
    // The pool as it was: the last sample before the crash that shows the child.
    let Some(before) = samples
        .iter()
        .rev()
        .find(|(at, s)| *at <= crash_at && shows_dead(s))
        .or_else(|| samples.iter().find(|(_, s)| shows_dead(s)))
        .map(|(_, s)| *s)
    else {
        return Recovery::Unseen;
    };
    // Whole again: after the last sample that still shows the dead child (which may be seen
    // before its exit is), as many accepting processes as before.
    let last_dead = samples
        .iter()
        .rposition(|(_, s)| shows_dead(s))
        .unwrap_or(0);
    match samples[last_dead + 1..]
        .iter()
        .find(|(_, s)| s.accepting >= before.accepting && !shows_dead(s))
    {
        Some((at, s)) => Recovery::At {
            at_ms: *at,
            accepting: s.accepting,
        },
        None => Recovery::Never {
            accepting: before.accepting,
        },
    }
}

/// The scoreboard samples of the timeline, with their moments (ms).
/// The oracle's first check, failed: no child crashed.
fn no_crash() -> Check {
    Check::fail(
        "a child crashed",
        "no child died by a signal or a non-zero exit",
    )
}

impl Crash<'_> {
    /// The oracle's first check, passed: which children died, how and when.
    fn a_child_crashed(&self) -> Check {
        Check::pass(
            "a child crashed",
            self.deaths
                .iter()
                .map(|d| format!("pid {} ({}) at {:.0} ms", d.pid, d.ending, d.at_ms))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// The blast radius over the scenario's requests: under `connection` scope only the
    /// requests that carried the crash fail; under `process` scope exactly those in flight on
    /// the crashed child's connections, and its idle connections end too.
    fn blast_radius(&self, scope: BlastRadius) -> Check {
        let process = scope == BlastRadius::Process;
        let mut problems: Vec<String> = self
            .at_stake
            .iter()
            .filter_map(|r| r.problem(process))
            .collect();
        if process && !self.left_open.is_empty() {
            problems.push(format!(
                "connections of the crashed child still open: {:?}",
                self.left_open
            ));
        }
        let scope_text = if process {
            "exactly the requests on connections the crashed child owned fail"
        } else {
            "only the requests that carried the crash fail"
        };
        Check::new(
            format!("blast radius ({scope}): {scope_text}"),
            problems.is_empty(),
            if problems.is_empty() {
                format!(
                    "failed: {:?}; connections owned by the crashed child: {:?}",
                    self.failed,
                    self.owned.iter().collect::<Vec<_>>()
                )
            } else {
                problems.join("; ")
            },
        )
    }

    /// The blast radius under a load, per request.
    fn blast_radius_under(&self, run: &LoadRun, scope: BlastRadius) -> Check {
        load::blast_radius(run, &self.dead, self.caused_from, scope)
    }

    /// The pool whole again within `within` of the crash.
    fn recovered_within(&self, within: Duration) -> Check {
        let what = format!("pool whole again within {within:?}");
        match self.recovery {
            Recovery::Unseen => Check::fail(what, "no scoreboard sample showed the crashed child"),
            Recovery::Never { accepting } => Check::fail(
                what,
                format!("never back to {accepting} accepting processes"),
            ),
            Recovery::At { at_ms, accepting } => {
                let took = Duration::from_secs_f64((at_ms - self.seen_at).max(0.0) / 1000.0);
                Check::new(
                    what,
                    took <= within,
                    format!(
                        "{accepting} accepting processes again {:.1} ms after the crash",
                        took.as_secs_f64() * 1000.0
                    ),
                )
            }
        }
    }
}

impl AtStake<'_> {
    /// What is wrong with this request's fate, if anything: it failed though the crash may not
    /// take it, or survived though the crash must.
    fn problem(&self, process: bool) -> Option<String> {
        let (name, conn) = (self.sent.name.as_str(), self.sent.conn.as_str());
        let failed = !answered(self.outcome);
        let may_fail = self.sent.fatal() || (process && self.in_flight);
        if failed && !may_fail {
            let why = if self.owner.is_some() || !process {
                ""
            } else {
                " — no response before the crash told which child owned that connection"
            };
            return Some(format!(
                "failed but should not: {name} on {conn} ({}){why}",
                describe_outcome(self.outcome)
            ));
        }
        if !failed && may_fail {
            return Some(format!(
                "should have failed: {name} on {conn} survived ({})",
                describe_outcome(self.outcome)
            ));
        }
        None
    }
}
