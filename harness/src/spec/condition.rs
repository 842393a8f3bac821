//! Conditions: what `wait`, `check`, `seen` and `never` test, how they are decided on a set of
//! facts, and how they print.
//!
//! A [`Condition`] is typed at load (no string is interpreted again here). It is decided on any
//! [`Facts`]: the runner gives the live state of a run restricted to observations made after the
//! step began; the verdict gives the state replayed from a recording. Neither depends on the
//! other, both depend on this module.

use std::fmt;

use refhttpd::EventKind;
use serde::Serialize;

/// A count: an exact number, or bounds. (Its text, in a case file and wherever it is
/// serialised, is the case file's: see `file`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Exactly(u64),
    Range {
        at_least: Option<u64>,
        at_most: Option<u64>,
    },
}

impl Count {
    /// At least one.
    pub const SOME: Count = Count::Range {
        at_least: Some(1),
        at_most: None,
    };

    pub fn holds(&self, n: u64) -> bool {
        match *self {
            Count::Exactly(x) => n == x,
            Count::Range { at_least, at_most } => {
                at_least.is_none_or(|l| n >= l) && at_most.is_none_or(|m| n <= m)
            }
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Count::Exactly(x) => write!(f, "{x}"),
            Count::Range {
                at_least: Some(l),
                at_most: Some(m),
            } => write!(f, "{l}..={m}"),
            Count::Range {
                at_least: Some(l), ..
            } => write!(f, "≥{l}"),
            Count::Range {
                at_most: Some(m), ..
            } => write!(f, "≤{m}"),
            Count::Range { .. } => f.write_str("any"),
        }
    }
}

/// Where a quantity is observed; a target declares which sources it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The server's scoreboard (worker states, processes, async counters).
    Scoreboard,
    /// `/proc`: the server's processes, threads and PSS.
    Proc,
    /// Child process endings.
    ProcessExits,
    /// The server's own log of events.
    Events,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Scoreboard,
        Source::Proc,
        Source::ProcessExits,
        Source::Events,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scoreboard => "scoreboard",
            Source::Proc => "/proc",
            Source::ProcessExits => "process exits",
            Source::Events => "event log",
        }
    }
}

/// A number a condition can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Workers busy (mod_status BusyWorkers; prefork and worker count `K` as busy).
    BusyWorkers,
    /// Workers idle (IdleWorkers).
    IdleWorkers,
    /// Workers in keep-alive (`K`).
    KeepaliveWorkers,
    /// Workers sending a reply (`W`).
    WritingWorkers,
    /// Worker slots of live children marked starting (`S`), in all ThreadLimit slots of each:
    /// 0 once the pool is up (a slot beyond ThreadsPerChild is dead, `.`).
    StartingWorkers,
    /// Connections event's listener holds in keep-alive (ConnsAsyncKeepAlive).
    AsyncKeepalive,
    /// Connections event's listener is writing (ConnsAsyncWriting).
    AsyncWriting,
    /// Connections event's listener is closing lingeringly (ConnsAsyncClosing).
    AsyncClosing,
    /// Live child processes.
    Processes,
    /// Live child processes that accept connections.
    Accepting,
    /// Threads of the server's processes (master and children).
    Threads,
    /// Summed PSS of the server's processes, KiB.
    PssKb,
    /// Child exits observed so far (any cause).
    ChildExits,
}

impl Quantity {
    pub const ALL: [Quantity; 13] = [
        Quantity::BusyWorkers,
        Quantity::IdleWorkers,
        Quantity::KeepaliveWorkers,
        Quantity::WritingWorkers,
        Quantity::StartingWorkers,
        Quantity::AsyncKeepalive,
        Quantity::AsyncWriting,
        Quantity::AsyncClosing,
        Quantity::Processes,
        Quantity::Accepting,
        Quantity::Threads,
        Quantity::PssKb,
        Quantity::ChildExits,
    ];

    /// The key in a case file.
    pub fn key(self) -> &'static str {
        match self {
            Quantity::BusyWorkers => "busy_workers",
            Quantity::IdleWorkers => "idle_workers",
            Quantity::KeepaliveWorkers => "keepalive_workers",
            Quantity::WritingWorkers => "writing_workers",
            Quantity::StartingWorkers => "starting_workers",
            Quantity::AsyncKeepalive => "async_keepalive",
            Quantity::AsyncWriting => "async_writing",
            Quantity::AsyncClosing => "async_closing",
            Quantity::Processes => "processes",
            Quantity::Accepting => "accepting",
            Quantity::Threads => "threads",
            Quantity::PssKb => "pss_kb",
            Quantity::ChildExits => "child_exits",
        }
    }

    /// Where it is observed.
    pub fn source(self) -> Source {
        match self {
            Quantity::Threads | Quantity::PssKb => Source::Proc,
            Quantity::ChildExits => Source::ProcessExits,
            _ => Source::Scoreboard,
        }
    }
}

/// What a condition is decided on.
pub trait Facts {
    /// The quantity now; `None` when no (fresh enough) sample of its source exists.
    fn quantity(&self, q: Quantity) -> Option<u64>;
    /// Server events of this kind so far.
    fn events(&self, kind: EventKind) -> u64;
    /// Whether the master has exited.
    fn master_exited(&self) -> bool;
    /// Whether the server has ended this client connection.
    fn closed_by_server(&self, conn: &str) -> bool;
    /// Whether the response to this request has begun to arrive (or the request has ended).
    fn responding(&self, request: &str) -> bool;
}

/// An observable condition; every part must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Condition {
    /// Bounds on quantities, in the order written.
    pub counts: Vec<(Quantity, Count)>,
    /// Server events of a kind (default count: at least one).
    pub event: Option<(EventKind, Count)>,
    pub master_exited: Option<bool>,
    /// Connections the server has ended.
    pub closed: Vec<String>,
    /// Requests whose response has begun to arrive.
    pub responding: Vec<String>,
}

impl Condition {
    /// Whether every part holds on `facts`; a quantity without a sample does not hold.
    pub fn holds(&self, facts: &impl Facts) -> bool {
        self.counts
            .iter()
            .all(|(q, c)| facts.quantity(*q).is_some_and(|n| c.holds(n)))
            && self
                .event
                .is_none_or(|(kind, count)| count.holds(facts.events(kind)))
            && self
                .master_exited
                .is_none_or(|m| m == facts.master_exited())
            && self.closed.iter().all(|c| facts.closed_by_server(c))
            && self.responding.iter().all(|r| facts.responding(r))
    }

    /// The sources it is observed in.
    pub fn sources(&self) -> Vec<Source> {
        let mut s: Vec<Source> = self.counts.iter().map(|(q, _)| q.source()).collect();
        if self.event.is_some() {
            s.push(Source::Events);
        }
        s.sort();
        s.dedup();
        s
    }

    /// The event kinds it counts.
    pub fn event_kinds(&self) -> impl Iterator<Item = EventKind> + '_ {
        self.event.iter().map(|(k, _)| *k)
    }

    /// What the facts show for each part, in the condition's terms.
    pub fn observed(&self, facts: &impl Facts) -> String {
        let mut parts: Vec<String> = self
            .counts
            .iter()
            .map(|(q, _)| match facts.quantity(*q) {
                Some(n) => format!("{}={n}", q.key()),
                None => format!("{}=no fresh sample", q.key()),
            })
            .collect();
        if let Some((kind, _)) = self.event {
            parts.push(format!("event {kind}×{}", facts.events(kind)));
        }
        if self.master_exited.is_some() {
            parts.push(format!("master_exited={}", facts.master_exited()));
        }
        for c in &self.closed {
            parts.push(format!(
                "{c} {}",
                if facts.closed_by_server(c) {
                    "closed by server"
                } else {
                    "open"
                }
            ));
        }
        for r in &self.responding {
            parts.push(format!(
                "{r} {}",
                if facts.responding(r) {
                    "responding"
                } else {
                    "not yet answered"
                }
            ));
        }
        parts.join(", ")
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .counts
            .iter()
            .map(|(q, c)| format!("{}={c}", q.key()))
            .collect();
        if let Some((kind, count)) = self.event {
            parts.push(format!("event {kind}×{count}"));
        }
        if let Some(m) = self.master_exited {
            parts.push(format!("master_exited={m}"));
        }
        if !self.closed.is_empty() {
            parts.push(format!("closed by server: {}", self.closed.join(", ")));
        }
        if !self.responding.is_empty() {
            parts.push(format!("responding: {}", self.responding.join(", ")));
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Fixed {
        q: BTreeMap<Quantity, u64>,
        events: BTreeMap<EventKind, u64>,
        master_exited: bool,
        closed: Vec<String>,
    }

    impl Facts for Fixed {
        fn quantity(&self, q: Quantity) -> Option<u64> {
            self.q.get(&q).copied()
        }
        fn events(&self, kind: EventKind) -> u64 {
            self.events.get(&kind).copied().unwrap_or(0)
        }
        fn master_exited(&self) -> bool {
            self.master_exited
        }
        fn closed_by_server(&self, conn: &str) -> bool {
            self.closed.iter().any(|c| c == conn)
        }

        fn responding(&self, _request: &str) -> bool {
            false
        }
    }

    #[test]
    fn every_part_must_hold_and_a_missing_sample_never_holds() {
        let c = Condition {
            counts: vec![
                (Quantity::BusyWorkers, Count::Exactly(0)),
                (
                    Quantity::IdleWorkers,
                    Count::Range {
                        at_least: Some(2),
                        at_most: None,
                    },
                ),
            ],
            event: Some((EventKind::Timeout, Count::SOME)),
            master_exited: None,
            closed: vec!["a".into()],
            responding: Vec::new(),
        };
        let mut f = Fixed::default();
        assert!(!c.holds(&f), "no samples");
        f.q.insert(Quantity::BusyWorkers, 0);
        f.q.insert(Quantity::IdleWorkers, 2);
        assert!(!c.holds(&f), "no event yet");
        f.events.insert(EventKind::Timeout, 1);
        assert!(!c.holds(&f), "a still open");
        f.closed.push("a".into());
        assert!(c.holds(&f));
        f.q.insert(Quantity::BusyWorkers, 1);
        assert!(!c.holds(&f));
        assert_eq!(
            c.to_string(),
            "busy_workers=0, idle_workers=≥2, event timeout×≥1, closed by server: a"
        );
        assert_eq!(
            c.observed(&f),
            "busy_workers=1, idle_workers=2, event timeout×1, a closed by server"
        );
    }

    #[test]
    fn counts() {
        assert!(Count::Exactly(3).holds(3));
        assert!(!Count::Exactly(3).holds(4));
        let r = Count::Range {
            at_least: Some(1),
            at_most: Some(2),
        };
        assert!(!r.holds(0) && r.holds(1) && r.holds(2) && !r.holds(3));
        assert_eq!(r.to_string(), "1..=2");
    }

    #[test]
    fn quantities_name_their_source() {
        assert_eq!(Quantity::Threads.source(), Source::Proc);
        assert_eq!(Quantity::ChildExits.source(), Source::ProcessExits);
        assert_eq!(Quantity::AsyncWriting.source(), Source::Scoreboard);
    }
}
