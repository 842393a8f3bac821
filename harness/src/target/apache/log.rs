//! Apache's error log as server events: [`parse_log_line`] reads one line (`exit signal …`,
//! `server reached MaxRequestWorkers`, signals and restarts, a new generation, read timeouts)
//! into the reference's event names, and the [`ErrorLog`] tail records them — the exit signals
//! only for exits the `/proc` watcher missed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use refhttpd::{ControlSignal, EventKind, SignalAction, TimeoutKind};

use super::{lock, record_exit, Shared};
use crate::observe::{Ending, Follower, Observation, Sampler, Store};
use crate::spec::condition::Source;

/// One error-log line as observations.
#[derive(Debug, PartialEq)]
pub enum LogLine {
    ChildSignal {
        child: i32,
        signal: i32,
    },
    Event {
        event: EventKind,
        detail: serde_json::Value,
    },
}

/// Reads one line of Apache's error log.
pub fn parse_log_line(line: &str) -> Option<(i32, LogLine)> {
    let pid = line
        .split_once("[pid ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let event =
        |event: EventKind, detail: serde_json::Value| Some((pid, LogLine::Event { event, detail }));
    if line.contains("AH00052:") || line.contains("AH00051:") {
        // "child pid 1234 exit signal Segmentation fault (11)[, possible coredump in …]"
        let rest = line.split_once("child pid ")?.1;
        let child = rest.split_whitespace().next()?.parse().ok()?;
        let signal = rest
            .split_once(" exit signal ")?
            .1
            .split_once('(')?
            .1
            .split_once(')')?
            .0
            .parse()
            .ok()?;
        return Some((pid, LogLine::ChildSignal { child, signal }));
    }
    // Message texts, not AH numbers: each MPM logs the same message under its own number.
    if line.contains("server reached MaxRequestWorkers setting") {
        return event(EventKind::MaxRequestWorkers, serde_json::json!({}));
    }
    // worker/event when ServerLimit × ThreadsPerChild is the cap: the same condition, logged
    // every maintenance tick (the tail keeps the first only).
    if line.contains("scoreboard is full, not at MaxRequestWorkers") {
        return event(
            EventKind::MaxRequestWorkers,
            serde_json::json!({ "apache": "scoreboard is full" }),
        );
    }
    if line.contains("AH00050:") {
        let child: i32 = line
            .split_once("Child ")?
            .1
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        return event(EventKind::ChildFatal, serde_json::json!({ "child": child }));
    }
    // In refhttpd's words (its event log's), so both targets' events read alike.
    let signal = |sig: ControlSignal, action: SignalAction| {
        event(
            EventKind::Signal,
            serde_json::json!({ "signal": sig, "action": action }),
        )
    };
    if line.contains("caught SIGTERM, shutting down") {
        return signal(ControlSignal::Term, SignalAction::ShuttingDown);
    }
    if line.contains("caught SIGWINCH, shutting down gracefully") {
        return signal(ControlSignal::Winch, SignalAction::ShuttingDownGracefully);
    }
    // Prefork's words, then worker's and event's ("SIGUSR1 received.  Doing graceful restart").
    if line.contains("Graceful restart requested, doing restart")
        || line.contains("received.  Doing graceful restart")
    {
        return signal(ControlSignal::Usr1, SignalAction::GracefulRestart);
    }
    if line.contains("SIGHUP received.") {
        return signal(ControlSignal::Hup, SignalAction::Restart);
    }
    // "… configured -- resuming normal operations": a generation starts (first one included).
    if line.contains("resuming normal operations") {
        return event(EventKind::Generation, serde_json::json!({}));
    }
    if line.contains("AH01382:") {
        return event(
            EventKind::Timeout,
            serde_json::json!({ "kind": TimeoutKind::Header }),
        );
    }
    if line.contains("AH01383:") {
        return event(
            EventKind::Timeout,
            serde_json::json!({ "kind": TimeoutKind::Body }),
        );
    }
    None
}

/// Apache's error log as observations: exit signals (for exits the watcher missed), and the
/// events it logs.
pub(super) struct ErrorLog {
    follower: Follower,
    shared: Arc<Mutex<Shared>>,
    signal_seen: BTreeSet<i32>,
    scoreboard_full_seen: bool,
}

impl ErrorLog {
    /// A tail of `path` from its start, recording exits into `shared`.
    pub(super) fn new(path: PathBuf, shared: Arc<Mutex<Shared>>) -> ErrorLog {
        ErrorLog {
            follower: Follower::new(path),
            shared,
            signal_seen: BTreeSet::new(),
            scoreboard_full_seen: false,
        }
    }
}

impl Sampler for ErrorLog {
    fn sources(&self) -> &'static [Source] {
        &[Source::Events, Source::ProcessExits]
    }

    fn sample(&mut self, store: &Store) -> bool {
        let (shared, signal_seen, full_seen) = (
            &self.shared,
            &mut self.signal_seen,
            &mut self.scoreboard_full_seen,
        );
        self.follower.read_new(|line| match parse_log_line(line) {
            Some((_, LogLine::ChildSignal { child, signal })) if signal_seen.insert(child) => {
                let mut s = lock(shared);
                record_exit(store, &mut s, child, Ending::Signaled(signal));
            }
            Some((_, LogLine::ChildSignal { .. })) => {}
            // "scoreboard is full" is logged every maintenance tick: the first one counts.
            Some((_, LogLine::Event { detail, .. }))
                if detail.get("apache").is_some() && *full_seen => {}
            Some((pid, LogLine::Event { event, detail })) => {
                *full_seen |= detail.get("apache").is_some();
                store.push(Observation::ServerEvent { event, pid, detail });
            }
            None => {}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_log_lines() {
        let l = "[Wed Nov 25 22:01:13.117001 2026] [core:notice] [pid 15801:tid 15801] AH00052: \
                 child pid 15803 exit signal Segmentation fault (11)";
        assert_eq!(
            parse_log_line(l),
            Some((
                15801,
                LogLine::ChildSignal {
                    child: 15803,
                    signal: 11
                }
            ))
        );
        let l = "[x] [mpm_event:error] [pid 7:tid 7] AH00484: server reached MaxRequestWorkers \
                 setting, consider raising the MaxRequestWorkers setting";
        assert!(matches!(
            parse_log_line(l),
            Some((
                7,
                LogLine::Event {
                    event: EventKind::MaxRequestWorkers,
                    ..
                }
            ))
        ));
    }
}
