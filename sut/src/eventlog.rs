//! The machine-readable event log (`--event-log PATH`, JSON lines) and the human error log
//! (stderr, in Apache's `[module:level] [pid N] message` shape).
//!
//! Master and children append to the same file, opened once with `O_APPEND` before the first
//! fork; each event is one `write()` of one line, so lines from different processes never mix.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Something the server did that a harness may want to see. The server serialises it and the
/// harness deserialises the same type ([`EventLine`]), so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The master is accepting connections.
    Ready { addr: String, mpm: String },
    /// A child process was forked.
    ChildSpawned {
        child: i32,
        slot: usize,
        generation: u32,
    },
    /// A child finished starting and serves.
    ChildReady {
        child: i32,
        slot: usize,
        generation: u32,
    },
    /// A child process ended; `signal` is set when a signal killed it, and `signal_name` is how
    /// Apache's log names that signal (APR's words: `Segmentation fault`, `Killed`, `signal #16`).
    /// The name is text for people, made from the number for any signal there is; the number is
    /// the field to match on.
    ChildExited {
        child: i32,
        slot: usize,
        generation: u32,
        code: Option<i32>,
        signal: Option<i32>,
        signal_name: Option<String>,
        during_startup: bool,
    },
    /// The master could not fork.
    ForkFailed { slot: usize, error: String },
    /// A child died before it served; the master waits before the next attempt.
    StartupBackoff { failures: u32, delay_ms: u64 },
    /// A child reported a fatal start-up error: the server stops.
    ChildFatal { child: i32, code: i32 },
    /// Maintenance would start more workers but MaxRequestWorkers is reached.
    MaxRequestWorkers { limit: u32 },
    /// Maintenance retired an idle child (above MaxSpare*).
    ChildRetired { child: i32, slot: usize },
    /// A signal moved the server to another phase.
    Signal {
        signal: ControlSignal,
        action: SignalAction,
    },
    /// A new generation of children starts.
    Generation { generation: u32 },
    /// The server is gone.
    Stopped { reason: StopReason },
    /// A connection was closed because a timeout expired (`header`, `body`, `keepalive`, `write`).
    Timeout {
        kind: TimeoutKind,
        slot: usize,
        thread: Option<usize>,
        client: String,
    },
    /// Event MPM: idle keep-alive connections closed early because workers were busy (EV-5).
    KeepAliveClosedEarly { slot: usize, count: usize },
    /// accept() failed.
    AcceptError { slot: usize, error: String },
}

/// Which timeout closed a connection ([`Event::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutKind {
    /// mod_reqtimeout's handshake stage, or Timeout while a TLS handshake was read.
    #[serde(rename = "handshake")]
    Handshake,
    /// mod_reqtimeout's header stage, or Timeout while a request's head was read.
    #[serde(rename = "header")]
    Header,
    /// mod_reqtimeout's body stage, or Timeout while a request body was read.
    #[serde(rename = "body")]
    Body,
    /// KeepAliveTimeout: no next request came.
    #[serde(rename = "keepalive")]
    KeepAlive,
    /// Timeout while the client did not take the response.
    #[serde(rename = "write")]
    Write,
}

impl TimeoutKind {
    /// Every kind, in declaration order.
    pub const ALL: [TimeoutKind; 5] = [
        TimeoutKind::Handshake,
        TimeoutKind::Header,
        TimeoutKind::Body,
        TimeoutKind::KeepAlive,
        TimeoutKind::Write,
    ];

    /// The name in the log (`keepalive`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Handshake => "handshake",
            TimeoutKind::Header => "header",
            TimeoutKind::Body => "body",
            TimeoutKind::KeepAlive => "keepalive",
            TimeoutKind::Write => "write",
        }
    }
}

/// A signal the master acts on ([`Event::Signal`], [`StopReason::Signal`]), by its name in the
/// log (`SIGTERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControlSignal {
    /// Stop now.
    #[serde(rename = "SIGTERM")]
    Term,
    /// Stop now, as TERM.
    #[serde(rename = "SIGINT")]
    Int,
    /// Restart now.
    #[serde(rename = "SIGHUP")]
    Hup,
    /// Restart gracefully.
    #[serde(rename = "SIGUSR1")]
    Usr1,
    /// Stop gracefully.
    #[serde(rename = "SIGWINCH")]
    Winch,
}

impl ControlSignal {
    /// Every control signal, in declaration order.
    pub const ALL: [ControlSignal; 5] = [
        ControlSignal::Term,
        ControlSignal::Int,
        ControlSignal::Hup,
        ControlSignal::Usr1,
        ControlSignal::Winch,
    ];

    /// The name in the log and in the error log (`SIGTERM`).
    pub fn as_str(self) -> &'static str {
        match self {
            ControlSignal::Term => "SIGTERM",
            ControlSignal::Int => "SIGINT",
            ControlSignal::Hup => "SIGHUP",
            ControlSignal::Usr1 => "SIGUSR1",
            ControlSignal::Winch => "SIGWINCH",
        }
    }

    /// The signal number on Linux.
    pub fn number(self) -> i32 {
        match self {
            ControlSignal::Term => libc::SIGTERM,
            ControlSignal::Int => libc::SIGINT,
            ControlSignal::Hup => libc::SIGHUP,
            ControlSignal::Usr1 => libc::SIGUSR1,
            ControlSignal::Winch => libc::SIGWINCH,
        }
    }
}

/// What the master does about a [`ControlSignal`] ([`Event::Signal`]), in the words of its
/// error-log line (`caught SIGTERM, shutting down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignalAction {
    /// TERM, INT: children are killed, the master exits.
    #[serde(rename = "shutting down")]
    ShuttingDown,
    /// HUP: children are killed, a new generation starts.
    #[serde(rename = "doing restart")]
    Restart,
    /// USR1: children finish what they serve, a new generation starts.
    #[serde(rename = "doing graceful restart")]
    GracefulRestart,
    /// WINCH: children finish what they serve, the master exits after the last.
    #[serde(rename = "shutting down gracefully")]
    ShuttingDownGracefully,
}

impl SignalAction {
    /// Every action, in declaration order.
    pub const ALL: [SignalAction; 4] = [
        SignalAction::ShuttingDown,
        SignalAction::Restart,
        SignalAction::GracefulRestart,
        SignalAction::ShuttingDownGracefully,
    ];

    /// The words in the log (`doing graceful restart`).
    pub fn as_str(self) -> &'static str {
        match self {
            SignalAction::ShuttingDown => "shutting down",
            SignalAction::Restart => "doing restart",
            SignalAction::GracefulRestart => "doing graceful restart",
            SignalAction::ShuttingDownGracefully => "shutting down gracefully",
        }
    }
}

/// Why the server stopped ([`Event::Stopped`]). In the log it is one string: the signal's name
/// (`SIGTERM`), or the words of the other reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum StopReason {
    /// TERM or INT: stopped at once.
    Signal(ControlSignal),
    /// WINCH, and the last child left: `graceful stop`.
    GracefulStop,
    /// WINCH, and GracefulShutdownTimeout passed first: `GracefulShutdownTimeout`.
    GracefulShutdownTimeout,
    /// A child reported a fatal start-up error: `fatal child start-up error`.
    ChildFatal,
}

impl StopReason {
    /// Every reason but [`StopReason::Signal`], which has one per [`ControlSignal`].
    const OTHERS: [StopReason; 3] = [
        StopReason::GracefulStop,
        StopReason::GracefulShutdownTimeout,
        StopReason::ChildFatal,
    ];

    /// The text in the log (`SIGTERM`, `graceful stop`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Signal(sig) => sig.as_str(),
            StopReason::GracefulStop => "graceful stop",
            StopReason::GracefulShutdownTimeout => "GracefulShutdownTimeout",
            StopReason::ChildFatal => "fatal child start-up error",
        }
    }
}

impl From<StopReason> for &'static str {
    fn from(reason: StopReason) -> &'static str {
        reason.as_str()
    }
}

impl std::str::FromStr for StopReason {
    type Err = String;
    fn from_str(s: &str) -> Result<StopReason, String> {
        ControlSignal::ALL
            .into_iter()
            .map(StopReason::Signal)
            .chain(StopReason::OTHERS)
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown stop reason `{s}`"))
    }
}

impl TryFrom<String> for StopReason {
    type Error = String;
    fn try_from(s: String) -> Result<StopReason, String> {
        s.parse()
    }
}

/// `Display` as the text in the log.
macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(TimeoutKind, ControlSignal, SignalAction, StopReason);

/// The kind of an [`Event`] without its data: what spec cases count and wait for. Its names
/// are the `event` tags of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Ready,
    ChildSpawned,
    ChildReady,
    ChildExited,
    ForkFailed,
    StartupBackoff,
    ChildFatal,
    MaxRequestWorkers,
    ChildRetired,
    Signal,
    Generation,
    Stopped,
    Timeout,
    KeepAliveClosedEarly,
    AcceptError,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 15] = [
        EventKind::Ready,
        EventKind::ChildSpawned,
        EventKind::ChildReady,
        EventKind::ChildExited,
        EventKind::ForkFailed,
        EventKind::StartupBackoff,
        EventKind::ChildFatal,
        EventKind::MaxRequestWorkers,
        EventKind::ChildRetired,
        EventKind::Signal,
        EventKind::Generation,
        EventKind::Stopped,
        EventKind::Timeout,
        EventKind::KeepAliveClosedEarly,
        EventKind::AcceptError,
    ];

    /// The name in the log and in spec cases (`child_exited`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Ready => "ready",
            EventKind::ChildSpawned => "child_spawned",
            EventKind::ChildReady => "child_ready",
            EventKind::ChildExited => "child_exited",
            EventKind::ForkFailed => "fork_failed",
            EventKind::StartupBackoff => "startup_backoff",
            EventKind::ChildFatal => "child_fatal",
            EventKind::MaxRequestWorkers => "max_request_workers",
            EventKind::ChildRetired => "child_retired",
            EventKind::Signal => "signal",
            EventKind::Generation => "generation",
            EventKind::Stopped => "stopped",
            EventKind::Timeout => "timeout",
            EventKind::KeepAliveClosedEarly => "keep_alive_closed_early",
            EventKind::AcceptError => "accept_error",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// What kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Ready { .. } => EventKind::Ready,
            Event::ChildSpawned { .. } => EventKind::ChildSpawned,
            Event::ChildReady { .. } => EventKind::ChildReady,
            Event::ChildExited { .. } => EventKind::ChildExited,
            Event::ForkFailed { .. } => EventKind::ForkFailed,
            Event::StartupBackoff { .. } => EventKind::StartupBackoff,
            Event::ChildFatal { .. } => EventKind::ChildFatal,
            Event::MaxRequestWorkers { .. } => EventKind::MaxRequestWorkers,
            Event::ChildRetired { .. } => EventKind::ChildRetired,
            Event::Signal { .. } => EventKind::Signal,
            Event::Generation { .. } => EventKind::Generation,
            Event::Stopped { .. } => EventKind::Stopped,
            Event::Timeout { .. } => EventKind::Timeout,
            Event::KeepAliveClosedEarly { .. } => EventKind::KeepAliveClosedEarly,
            Event::AcceptError { .. } => EventKind::AcceptError,
        }
    }
}

/// One line of the event log: when, which process, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub t_ms: u64,
    pub pid: u32,
    #[serde(flatten)]
    pub event: Event,
}

impl EventLine {
    /// Reads one line as the server wrote it.
    pub fn parse(line: &str) -> Result<EventLine, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Where events go: a file shared by all processes of the server, or nowhere.
#[derive(Clone, Default)]
pub struct EventLog {
    file: Option<Arc<File>>,
}

impl EventLog {
    /// Opens (creates, appends to) the event log at `path`.
    pub fn open(path: &Path) -> io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Some(Arc::new(file)),
        })
    }

    /// A log that drops every event.
    pub fn disabled() -> EventLog {
        EventLog::default()
    }

    /// Appends one event as one JSON line.
    pub fn emit(&self, event: Event) {
        let Some(file) = &self.file else { return };
        let line = EventLine {
            t_ms: unix_ms(),
            pid: std::process::id(),
            event,
        };
        if let Ok(mut text) = serde_json::to_vec(&line) {
            text.push(b'\n');
            // One write of one line: O_APPEND keeps lines of different processes apart.
            let _ = (&**file).write_all(&text);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Severity of an error-log line, with Apache's names.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error,
    Warn,
    Notice,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
        }
    }
}

/// Writes one line to the error log (stderr) in Apache's shape:
/// `[mpm_event:notice] [pid 123] child pid 456 exit signal Segmentation fault (11)`.
pub fn error_log(module: &str, level: Level, message: std::fmt::Arguments<'_>) {
    let line = format!(
        "[{module}:{}] [pid {}] {message}\n",
        level.as_str(),
        std::process::id()
    );
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Event> {
        vec![
            Event::Ready {
                addr: "127.0.0.1:1".into(),
                mpm: "event".into(),
            },
            Event::ChildSpawned {
                child: 1,
                slot: 0,
                generation: 0,
            },
            Event::ChildReady {
                child: 1,
                slot: 0,
                generation: 0,
            },
            Event::ChildExited {
                child: 1,
                slot: 0,
                generation: 0,
                code: None,
                signal: Some(11),
                signal_name: Some("Segmentation fault".into()),
                during_startup: false,
            },
            Event::ForkFailed {
                slot: 0,
                error: "EAGAIN".into(),
            },
            Event::StartupBackoff {
                failures: 1,
                delay_ms: 10,
            },
            Event::ChildFatal { child: 1, code: 15 },
            Event::MaxRequestWorkers { limit: 4 },
            Event::ChildRetired { child: 1, slot: 0 },
            Event::Signal {
                signal: ControlSignal::Usr1,
                action: SignalAction::GracefulRestart,
            },
            Event::Generation { generation: 1 },
            Event::Stopped {
                reason: StopReason::Signal(ControlSignal::Term),
            },
            Event::Timeout {
                kind: TimeoutKind::Header,
                slot: 0,
                thread: Some(1),
                client: "c".into(),
            },
            Event::KeepAliveClosedEarly { slot: 0, count: 2 },
            Event::AcceptError {
                slot: 0,
                error: "EMFILE".into(),
            },
        ]
    }

    #[test]
    fn every_kind_is_named_as_its_log_tag_and_lines_round_trip() {
        let events = samples();
        let kinds: Vec<EventKind> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds, EventKind::ALL, "one sample per kind, in order");
        for event in events {
            let line = EventLine {
                t_ms: 5,
                pid: 7,
                event,
            };
            let text = serde_json::to_string(&line).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["event"], line.event.kind().as_str(), "{text}");
            let kind: EventKind =
                serde_json::from_value(value["event"].clone()).expect("kind parses from the tag");
            assert_eq!(kind, line.event.kind());
            assert_eq!(EventLine::parse(&text).unwrap(), line, "{text}");
        }
    }

    /// Each enum's text in the log is the string the server wrote before it was an enum, and
    /// reads back to the same value.
    #[test]
    fn typed_fields_write_the_old_strings_and_read_them_back() {
        fn check<T>(value: T, old: &str)
        where
            T: Serialize
                + for<'de> Deserialize<'de>
                + PartialEq
                + std::fmt::Debug
                + std::fmt::Display,
        {
            let text = serde_json::to_string(&value).unwrap();
            assert_eq!(text, format!("\"{old}\""), "{value:?}");
            assert_eq!(value.to_string(), old, "{value:?}");
            let back: T = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value, "{text}");
        }
        let timeouts = ["handshake", "header", "body", "keepalive", "write"];
        for (kind, old) in TimeoutKind::ALL.into_iter().zip(timeouts) {
            check(kind, old);
        }
        // The master named a signal with nix's `Signal::as_str`.
        for sig in ControlSignal::ALL {
            let nix = nix::sys::signal::Signal::try_from(sig.number()).unwrap();
            check(sig, nix.as_str());
            check(StopReason::Signal(sig), nix.as_str());
        }
        let actions = [
            "shutting down",
            "doing restart",
            "doing graceful restart",
            "shutting down gracefully",
        ];
        for (action, old) in SignalAction::ALL.into_iter().zip(actions) {
            check(action, old);
        }
        let reasons = [
            "graceful stop",
            "GracefulShutdownTimeout",
            "fatal child start-up error",
        ];
        for (reason, old) in StopReason::OTHERS.into_iter().zip(reasons) {
            check(reason, old);
        }
        assert!(serde_json::from_str::<StopReason>("\"SIGKILL\"").is_err());
        assert!(serde_json::from_str::<TimeoutKind>("\"keep_alive\"").is_err());
    }

    /// Whole lines, byte for byte as the server wrote them with strings.
    #[test]
    fn lines_with_typed_fields_are_the_old_lines() {
        let line = |event| {
            serde_json::to_string(&EventLine {
                t_ms: 5,
                pid: 7,
                event,
            })
            .unwrap()
        };
        assert_eq!(
            line(Event::Signal {
                signal: ControlSignal::Usr1,
                action: SignalAction::GracefulRestart,
            }),
            r#"{"t_ms":5,"pid":7,"event":"signal","signal":"SIGUSR1","action":"doing graceful restart"}"#
        );
        assert_eq!(
            line(Event::Stopped {
                reason: StopReason::Signal(ControlSignal::Term),
            }),
            r#"{"t_ms":5,"pid":7,"event":"stopped","reason":"SIGTERM"}"#
        );
        assert_eq!(
            line(Event::Stopped {
                reason: StopReason::GracefulShutdownTimeout,
            }),
            r#"{"t_ms":5,"pid":7,"event":"stopped","reason":"GracefulShutdownTimeout"}"#
        );
        assert_eq!(
            line(Event::Timeout {
                kind: TimeoutKind::KeepAlive,
                slot: 1,
                thread: None,
                client: "127.0.0.1:9".into(),
            }),
            r#"{"t_ms":5,"pid":7,"event":"timeout","kind":"keepalive","slot":1,"thread":null,"client":"127.0.0.1:9"}"#
        );
    }
}
