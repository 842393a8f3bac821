//! The memory oracle (TS-2): what a request kept stays in the process that served it, and goes
//! when that process is replaced — decided from the /proc samples of the run (each process's
//! PSS), never from the server's own account.
//!
//! The process is the request's `X-Served-By` pid. "Before" is the last /proc sample taken
//! before the request was sent (samples are recorded when something changed, so the last one
//! recorded is what /proc said until the next); its growth is its largest PSS in any later
//! sample, less its PSS before. The other processes are compared at that same sample, so that
//! they are weighed at one moment with it; the server as a whole at the last sample of the
//! scenario (the runner takes a fresh one as the scenario ends).

use super::{About, Check};
use crate::observe::{resource_samples, Entry, Observation, Resources, State};
use crate::spec::file::Size;
use crate::spec::MemoryExpect;

/// The checks of `memory = { name = e }`, each about request `name`.
pub fn checks(name: &str, e: &MemoryExpect, timeline: &[Entry], state: &State) -> Vec<Check> {
    let about = || About::Request { name: name.into() };
    match Seen::of(name, timeline, state) {
        Ok(seen) => seen
            .checks(name, e)
            .into_iter()
            .map(|c| c.about(about()))
            .collect(),
        Err(why) => vec![
            Check::fail(format!("memory of the process that served {name}"), why).about(about()),
        ],
    }
}

/// What the timeline shows of the process that served a request.
struct Seen<'a> {
    pid: i32,
    /// The last sample before the request was sent, and the process's PSS there.
    before: &'a Resources,
    before_pss: u64,
    /// The sample where the process's PSS was largest after the send: its moment, itself, and
    /// that PSS.
    peak_at_ms: f64,
    peak: &'a Resources,
    peak_pss: u64,
    /// The last sample of the scenario: its moment, itself.
    last_at_ms: f64,
    last: &'a Resources,
    /// When the process's exit was seen after the send.
    exit: Option<f64>,
}

impl<'a> Seen<'a> {
    fn of(name: &str, timeline: &'a [Entry], state: &State) -> Result<Seen<'a>, String> {
        let pid = state
            .outcomes
            .get(name)
            .and_then(|o| o.pid())
            .ok_or_else(|| {
                format!(
                    "no X-Served-By pid to say which process served it: {}",
                    super::describe_outcome(state.outcomes.get(name))
                )
            })?;
        let sent = timeline
            .iter()
            .position(
                |e| matches!(&e.what, Observation::RequestSent { request, .. } if request == name),
            )
            .ok_or_else(|| format!("{name} was never sent"))?;
        let samples = resource_samples(timeline);
        let (_, before) = samples
            .iter()
            .rev()
            .find(|(i, _)| *i < sent)
            .copied()
            .ok_or_else(|| format!("no /proc sample was taken before {name} was sent"))?;
        let before_pss = before.pss_of(pid).ok_or_else(|| {
            format!(
                "pid {pid} is not in the last /proc sample before {name} was sent ({before}): \
                 the process must exist before the request (warm its connection first)"
            )
        })?;
        let (peak_index, peak, peak_pss) = samples
            .iter()
            .filter(|(i, _)| *i > sent)
            .filter_map(|(i, r)| r.pss_of(pid).map(|p| (*i, *r, p)))
            // The first of equal largest: the moment it got there.
            .fold(
                None,
                |best: Option<(usize, &Resources, u64)>, x| match best {
                    Some(b) if b.2 >= x.2 => Some(b),
                    _ => Some(x),
                },
            )
            .ok_or_else(|| format!("pid {pid} is in no /proc sample after {name} was sent"))?;
        let (last_index, last) = *samples.last().expect("a sample before the send");
        let exit = timeline[sent..]
            .iter()
            .find(|e| matches!(e.what, Observation::ChildExited { pid: p, .. } if p == pid))
            .map(|e| e.at_ms);
        Ok(Seen {
            pid,
            before,
            before_pss,
            peak_at_ms: timeline[peak_index].at_ms,
            peak,
            peak_pss,
            last_at_ms: timeline[last_index].at_ms,
            last,
            exit,
        })
    }

    fn checks(&self, name: &str, e: &MemoryExpect) -> Vec<Check> {
        let mut checks = Vec::new();
        if e.grew_at_least.is_some() || e.grew_at_most.is_some() {
            checks.push(self.grew(name, e.grew_at_least, e.grew_at_most));
        }
        if let Some(most) = e.others_grew_at_most {
            checks.push(self.others(name, most));
        }
        match e.replaced {
            Some(true) => checks.push(self.replaced(name)),
            Some(false) => checks.push(self.stayed(name)),
            None => {}
        }
        if let Some(most) = e.server_grew_at_most {
            checks.push(self.server(name, most));
        }
        checks
    }

    /// Its growth, before to largest, within the bounds.
    fn grew(&self, name: &str, at_least: Option<u64>, at_most: Option<u64>) -> Check {
        let grew = growth(self.before_pss, self.peak_pss);
        let bounds = match (at_least, at_most) {
            (Some(l), Some(m)) => format!("{} … {}", Size(l), Size(m)),
            (Some(l), None) => format!("≥ {}", Size(l)),
            (None, Some(m)) => format!("≤ {}", Size(m)),
            (None, None) => "any".into(),
        };
        let held =
            at_least.is_none_or(|l| grew >= kib(l)) && at_most.is_none_or(|m| grew <= kib(m));
        Check::new(
            format!("memory: the process that served {name} grew by {bounds}"),
            held,
            format!(
                "pid {}: PSS {} before, {} at its largest ({}, at {:.0} ms)",
                self.pid,
                mib(self.before_pss as i64),
                mib(self.peak_pss as i64),
                signed_mib(grew),
                self.peak_at_ms
            ),
        )
    }

    /// Every other process alive before and at the peak grew by at most `most`.
    fn others(&self, name: &str, most: u64) -> Check {
        let what = format!(
            "memory: every other process grew by ≤ {} while the one that served {name} grew",
            Size(most)
        );
        let mut others: Vec<(i32, i64)> = self
            .peak
            .processes_memory
            .iter()
            .filter(|p| p.pid != self.pid)
            .filter_map(|p| Some((p.pid, growth(self.before.pss_of(p.pid)?, p.pss_kb))))
            .collect();
        if others.is_empty() {
            return Check::fail(
                what,
                format!(
                    "no other process was in both the sample before {name} was sent and the one \
                     at {:.0} ms: nothing to compare",
                    self.peak_at_ms
                ),
            );
        }
        others.sort_by_key(|(pid, grew)| (std::cmp::Reverse(*grew), *pid));
        let over: Vec<String> = others
            .iter()
            .filter(|(_, grew)| *grew > kib(most))
            .map(|(pid, grew)| format!("pid {pid} {}", signed_mib(*grew)))
            .collect();
        let (top_pid, top) = others[0];
        let detail = if over.is_empty() {
            format!(
                "at {:.0} ms, {} other processes; the most: pid {top_pid} {}",
                self.peak_at_ms,
                others.len(),
                signed_mib(top)
            )
        } else {
            format!(
                "at {:.0} ms, of {} other processes grew more: {}",
                self.peak_at_ms,
                others.len(),
                over.join(", ")
            )
        };
        Check::new(what, over.is_empty(), detail)
    }

    /// It exited after the request and the pool is whole again in the last sample.
    fn replaced(&self, name: &str) -> Check {
        let what = format!("memory: the process that served {name} was replaced");
        let pid = self.pid;
        let Some(exit_at_ms) = self.exit else {
            return Check::fail(
                what,
                format!(
                    "pid {pid} did not exit during the scenario (last sample: {})",
                    self.last
                ),
            );
        };
        // (/proc may show it gone before its exit is recorded: the last sample is judged, not
        // the order of the two.)
        if self.last.pss_of(pid).is_some() {
            return Check::fail(
                what,
                format!("pid {pid} exited at {exit_at_ms:.0} ms, yet /proc still shows it last"),
            );
        }
        Check::new(
            what,
            self.last.processes >= self.before.processes,
            format!(
                "pid {pid} exited at {exit_at_ms:.0} ms; at {:.0} ms {} processes ({} before \
                 {name}{})",
                self.last_at_ms,
                self.last.processes,
                self.before.processes,
                if self.last.processes < self.before.processes {
                    ": the pool is not whole again"
                } else {
                    ""
                }
            ),
        )
    }

    /// It is still alive at the end.
    fn stayed(&self, name: &str) -> Check {
        let what = format!("memory: the process that served {name} is still alive at the end");
        let pid = self.pid;
        let detail = match (self.exit, self.last.pss_of(pid)) {
            (Some(at), _) => format!("pid {pid} exited at {at:.0} ms"),
            (None, Some(pss)) => format!(
                "pid {pid} at {:.0} ms: PSS {}",
                self.last_at_ms,
                mib(pss as i64)
            ),
            (None, None) => format!("pid {pid} is not in the last sample ({})", self.last),
        };
        Check::new(
            what,
            self.exit.is_none() && self.last.pss_of(pid).is_some(),
            detail,
        )
    }

    /// The server's summed PSS at the end is within `most` of what it was before the request.
    fn server(&self, name: &str, most: u64) -> Check {
        let grew = growth(self.before.pss_kb, self.last.pss_kb);
        Check::new(
            format!(
                "memory: the server's PSS at the end is at most {} above what it was before {name}",
                Size(most)
            ),
            grew <= kib(most),
            format!(
                "{} before ({} processes), {} at {:.0} ms ({} processes): {}",
                mib(self.before.pss_kb as i64),
                self.before.processes,
                mib(self.last.pss_kb as i64),
                self.last_at_ms,
                self.last.processes,
                signed_mib(grew)
            ),
        )
    }
}

/// From `before` to `after`, KiB (negative when it shrank).
fn growth(before: u64, after: u64) -> i64 {
    after as i64 - before as i64
}

/// Bytes as KiB, the unit of /proc's figures.
fn kib(bytes: u64) -> i64 {
    (bytes / 1024) as i64
}

/// KiB as MiB, one decimal.
fn mib(kb: i64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A growth in KiB as MiB with its sign.
fn signed_mib(kb: i64) -> String {
    if kb >= 0 {
        format!("+{}", mib(kb))
    } else {
        mib(kb)
    }
}
