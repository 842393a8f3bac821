//! The shared-state oracle (TS-1): what each `shared:DUR` request must have found, decided from
//! what the harness saw — when it sent each request, when the answer came, and which child
//! served it (X-Served-By) — never from the server's own account.
//!
//! A `shared:` request writes its token into its process's one slot some time after it was sent,
//! holds the worker DUR, and reads the slot back some time before its answer arrived. So its
//! write lies in `[sent, answered − DUR]` and its read in `[sent + DUR, answered]`. It is
//! clobbered exactly when another `shared:` request of the same process wrote between its write
//! and its read. From the bounds:
//!
//! - *clobbered*: another request of the same child surely wrote in that span (its write's
//!   bounds lie inside it);
//! - *intact*: every other request's write surely lies outside it, or in another child;
//! - *either*: the bounds overlap, or a request's child is unknown — the harness cannot tell
//!   the order, and says so.
//!
//! Under prefork a child serves one request at a time: nothing is ever clobbered, whatever the
//! timing (the other half of TS-1).

use std::collections::BTreeMap;

use mpm_faults::Fault;
use refhttpd::Mpm;

use super::{About, Check};
use crate::observe::load::LoadOutcome;
use crate::observe::{shared_clobberers, Entry, Observation, Recording, SharedAnswer};
use crate::spec::{Action, Case};

/// A `shared:` request as seen, with what it found (when its answer said).
type Seen = (SharedRequest, Option<SharedAnswer>);

/// The shared-state checks of a run: one for each answered `shared:` request of the scenario,
/// and one for each load whose mix sends them — what each found against what the timing says it
/// must have found. Scenario and load requests are foreseen together: they share the processes.
pub fn checks(case: &Case, mpm: Mpm, timeline: &[Entry], rec: &Recording) -> Vec<Check> {
    let mut seen = scenario_requests(timeline, rec);
    let scenario = seen.len();
    let loads = load_requests(case, rec);
    seen.extend(loads.iter().flat_map(|(_, rs)| rs.iter().cloned()));
    if seen.is_empty() {
        return Vec::new();
    }
    let requests: Vec<SharedRequest> = seen.iter().map(|(r, _)| r.clone()).collect();
    let foreseen = foresee(mpm, &requests);
    let clobberers = shared_clobberers(timeline);
    let mut checks: Vec<Check> = seen[..scenario]
        .iter()
        .zip(foreseen.iter().cloned())
        .filter_map(|((r, answer), foreseen)| check(r, answer.as_ref(), foreseen, &clobberers))
        .collect();
    let mut at = scenario;
    for (load, rs) in &loads {
        let part = at..at + rs.len();
        checks.push(load_check(load, &seen[part.clone()], &foreseen[part]));
        at += rs.len();
    }
    checks
}

/// The `shared:` requests the scenario sent, as the harness saw them, each with what it found
/// (when its answer said).
fn scenario_requests(timeline: &[Entry], rec: &Recording) -> Vec<Seen> {
    rec.sent
        .iter()
        .filter_map(|s| match s.fault {
            Some(Fault::Shared(hold)) => Some((s.name.as_str(), hold)),
            _ => None,
        })
        .filter_map(|(name, hold)| {
            let sent_ms = timeline.iter().find_map(|e| match &e.what {
                Observation::RequestSent { request, .. } if request == name => Some(e.at_ms),
                _ => None,
            })?;
            let answer = timeline.iter().find_map(|e| match &e.what {
                Observation::Response {
                    request,
                    served_by,
                    shared,
                    ..
                } if request == name => Some((e.at_ms, served_by.map(|b| b.pid), shared.clone())),
                _ => None,
            });
            let request = SharedRequest {
                name: name.to_string(),
                pid: answer.as_ref().and_then(|a| a.1),
                sent_ms,
                answered_ms: answer.as_ref().map(|a| a.0),
                hold_ms: hold.as_secs_f64() * 1000.0,
            };
            Some((request, answer.and_then(|a| a.2)))
        })
        .collect()
}

/// Each load's `shared:` requests (named `<load>#<n>`), with what each found. A request went
/// out no earlier than its latency less its raw time before its outcome (its connection's
/// connect, for a new one, came first); its outcome came at its intended start plus its latency.
fn load_requests(case: &Case, rec: &Recording) -> Vec<(String, Vec<Seen>)> {
    let mut out = Vec::new();
    for run in &rec.loads {
        let Some(mix) = case.steps.iter().find_map(|s| match &s.action {
            Action::Load(l) if l.name == run.name => Some(&l.mix),
            _ => None,
        }) else {
            continue;
        };
        let hold_of = |m: u16| match mix.get(m as usize).and_then(|e| e.fault.as_ref()) {
            Some(Fault::Shared(hold)) => Some(*hold),
            _ => None,
        };
        let requests: Vec<_> = run
            .requests
            .iter()
            .enumerate()
            .filter_map(|(n, r)| {
                let hold = hold_of(r.mix)?;
                let answered_ms = r.at_ms + r.latency_ms;
                let (pid, found) = match r.outcome {
                    LoadOutcome::Response { shared_intact, .. } => (run.owner(r), shared_intact),
                    LoadOutcome::Failed { .. } => (None, None),
                };
                let request = SharedRequest {
                    name: format!("{}#{n}", run.name),
                    pid,
                    sent_ms: answered_ms - r.raw_ms,
                    answered_ms: found.map(|_| answered_ms),
                    hold_ms: hold.as_secs_f64() * 1000.0,
                };
                // A load keeps no tokens: what it found is all it says.
                let answer = found.map(|intact| SharedAnswer {
                    intact,
                    token: String::new(),
                    found: String::new(),
                });
                Some((request, answer))
            })
            .collect();
        if !requests.is_empty() {
            out.push((run.name.clone(), requests));
        }
    }
    out
}

/// A load's `shared:` answers against what the timing says: one check, the disagreements named.
fn load_check(load: &str, seen: &[Seen], foreseen: &[Foreseen]) -> Check {
    let (mut intact, mut clobbered, mut either) = (0, 0, 0);
    let mut wrong = Vec::new();
    for ((r, answer), f) in seen.iter().zip(foreseen) {
        let Some(found) = answer.as_ref().map(|a| a.intact) else {
            continue;
        };
        let right = match f {
            Foreseen::Intact => {
                intact += 1;
                found
            }
            Foreseen::Clobbered { .. } => {
                clobbered += 1;
                !found
            }
            Foreseen::Either { .. } => {
                either += 1;
                true
            }
            Foreseen::Unanswered => true,
        };
        if !right {
            wrong.push(format!(
                "{} found {} (pid {})",
                r.name,
                if found { "intact" } else { "clobbered" },
                r.pid.unwrap_or(0)
            ));
        }
    }
    let detail = format!(
        "{} answers: {intact} surely intact, {clobbered} surely clobbered, {either} either{}",
        intact + clobbered + either,
        if wrong.is_empty() {
            String::new()
        } else {
            format!(
                "; against the timing: {}{}",
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if wrong.len() > 5 { ", …" } else { "" }
            )
        }
    );
    Check {
        about: About::Load {
            name: load.to_string(),
        },
        ..Check::new(
            format!("load {load}: shared state as the timing says (TS-1)"),
            wrong.is_empty(),
            detail,
        )
    }
}

/// The check of one request: `None` when it was not answered (other oracles judge that).
fn check(
    r: &SharedRequest,
    answer: Option<&SharedAnswer>,
    foreseen: Foreseen,
    clobberers: &BTreeMap<String, String>,
) -> Option<Check> {
    let what = format!("shared state of {} (TS-1)", r.name);
    let pid = r.pid?;
    let Some(answer) = answer else {
        return Some(Check::fail(
            what,
            format!("answered by pid {pid} without X-Shared-State"),
        ));
    };
    let found = if answer.intact {
        "intact".to_string()
    } else {
        let whose = clobberers
            .get(&r.name)
            .map_or("a request the harness did not send", String::as_str);
        format!("clobbered (found the token of {whose})")
    };
    let check = match foreseen {
        Foreseen::Unanswered => return None,
        Foreseen::Intact => Check::new(
            what,
            answer.intact,
            format!("{found}; must be intact: no other shared: request of pid {pid} wrote during its hold"),
        ),
        Foreseen::Clobbered { by } => Check::new(
            what,
            !answer.intact,
            format!("{found}; must be clobbered: {by} wrote in pid {pid} during its hold"),
        ),
        Foreseen::Either { why } => {
            Check::new(what, true, found).not_judged(format!("either answer is right: {why}"))
        }
    };
    Some(Check {
        about: About::Request {
            name: r.name.clone(),
        },
        ..check
    })
}

/// A `shared:` request as the harness saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRequest {
    pub name: String,
    /// The child that answered; `None` when unanswered (or without X-Served-By).
    pub pid: Option<i32>,
    pub sent_ms: f64,
    /// When the answer arrived; `None` when none did.
    pub answered_ms: Option<f64>,
    /// Its DUR.
    pub hold_ms: f64,
}

/// What a request must have found.
#[derive(Debug, Clone, PartialEq)]
pub enum Foreseen {
    Intact,
    /// Clobbered by this request (the one whose write surely fell in its hold).
    Clobbered {
        by: String,
    },
    /// Either answer is right: the harness cannot order the requests (why).
    Either {
        why: String,
    },
    /// Unanswered: nothing to judge.
    Unanswered,
}

/// An interval of possible times, ms from the start of the run.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: f64,
    to: f64,
}

impl SharedRequest {
    /// When its write may have happened.
    fn write(&self) -> Span {
        Span {
            from: self.sent_ms,
            to: self
                .answered_ms
                .map_or(f64::INFINITY, |a| (a - self.hold_ms).max(self.sent_ms)),
        }
    }

    /// When its read-back may have happened.
    fn read(&self) -> Span {
        Span {
            from: self.sent_ms + self.hold_ms,
            to: self.answered_ms.unwrap_or(f64::INFINITY),
        }
    }
}

/// What each of `requests` must have found, in their order.
pub fn foresee(mpm: Mpm, requests: &[SharedRequest]) -> Vec<Foreseen> {
    requests
        .iter()
        .map(|a| {
            if a.answered_ms.is_none() || a.pid.is_none() {
                Foreseen::Unanswered
            } else if mpm == Mpm::Prefork {
                Foreseen::Intact
            } else {
                foresee_one(a, requests)
            }
        })
        .collect()
}

fn foresee_one(a: &SharedRequest, requests: &[SharedRequest]) -> Foreseen {
    let (write, read) = (a.write(), a.read());
    let mut unsure = Vec::new();
    for b in requests.iter().filter(|b| b.name != a.name) {
        if b.pid.is_some() && b.pid != a.pid {
            continue;
        }
        let w = b.write();
        let surely_inside = b.pid == a.pid && w.from > write.to && w.to < read.from;
        let surely_outside = w.to < write.from || w.from > read.to;
        if surely_inside {
            return Foreseen::Clobbered { by: b.name.clone() };
        }
        if !surely_outside {
            unsure.push(b.name.clone());
        }
    }
    if unsure.is_empty() {
        Foreseen::Intact
    } else {
        Foreseen::Either {
            why: format!(
                "the write of {} may or may not fall within its hold (the harness cannot \
                 order them from send and answer times{})",
                unsure.join(", "),
                if requests
                    .iter()
                    .any(|b| b.pid.is_none() && unsure.contains(&b.name))
                {
                    ", nor tell every child"
                } else {
                    ""
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, pid: i32, sent: f64, answered: f64) -> SharedRequest {
        SharedRequest {
            name: name.into(),
            pid: Some(pid),
            sent_ms: sent,
            answered_ms: Some(answered),
            hold_ms: 600.0,
        }
    }

    #[test]
    fn of_two_that_overlap_in_one_child_the_earlier_is_clobbered() {
        let rs = [req("a", 7, 0.0, 610.0), req("b", 7, 100.0, 705.0)];
        assert_eq!(
            foresee(Mpm::Worker, &rs),
            vec![Foreseen::Clobbered { by: "b".into() }, Foreseen::Intact]
        );
    }

    #[test]
    fn in_two_children_nothing_is_clobbered() {
        let rs = [req("a", 7, 0.0, 610.0), req("b", 8, 100.0, 705.0)];
        assert_eq!(
            foresee(Mpm::Event, &rs),
            vec![Foreseen::Intact, Foreseen::Intact]
        );
    }

    #[test]
    fn one_after_the_other_nothing_is_clobbered() {
        let rs = [req("a", 7, 0.0, 610.0), req("b", 7, 620.0, 1230.0)];
        assert_eq!(
            foresee(Mpm::Worker, &rs),
            vec![Foreseen::Intact, Foreseen::Intact]
        );
    }

    #[test]
    fn sent_together_the_order_is_unknown() {
        let rs = [req("a", 7, 0.0, 610.0), req("b", 7, 1.0, 612.0)];
        let seen = foresee(Mpm::Worker, &rs);
        assert!(matches!(&seen[0], Foreseen::Either { why } if why.contains('b')));
        assert!(matches!(&seen[1], Foreseen::Either { why } if why.contains('a')));
    }

    #[test]
    fn a_request_of_unknown_child_leaves_an_overlap_open() {
        let mut lost = req("b", 0, 100.0, 0.0);
        lost.pid = None;
        lost.answered_ms = None;
        let rs = [req("a", 7, 0.0, 610.0), lost];
        let seen = foresee(Mpm::Worker, &rs);
        assert!(matches!(&seen[0], Foreseen::Either { why } if why.contains("every child")));
        assert_eq!(seen[1], Foreseen::Unanswered);
    }

    #[test]
    fn under_prefork_nothing_is_clobbered_whatever_the_timing() {
        let rs = [req("a", 7, 0.0, 610.0), req("b", 7, 100.0, 1215.0)];
        assert_eq!(
            foresee(Mpm::Prefork, &rs),
            vec![Foreseen::Intact, Foreseen::Intact]
        );
    }

    #[test]
    fn a_third_request_clobbers_the_second_while_the_second_clobbers_the_first() {
        let rs = [
            req("a", 7, 0.0, 610.0),
            req("b", 7, 100.0, 705.0),
            req("c", 7, 200.0, 806.0),
        ];
        let seen = foresee(Mpm::Worker, &rs);
        assert!(matches!(&seen[0], Foreseen::Clobbered { .. }));
        assert_eq!(seen[1], Foreseen::Clobbered { by: "c".into() });
        assert_eq!(seen[2], Foreseen::Intact);
    }
}
