//! Spec cases: the typed model a case file loads into, and the loader.
//!
//! A case is a TOML file under `specs/<theme>/` (format: [`file`](mod@file), JSON Schema: [`schema`]; a
//! [`file::CaseFile`] made in code is written as one by [`case_text`]).
//! Loading ([`load`], [`load_dir`], [`parse`]) turns it into a [`Case`] that holds nothing the
//! runner or the verdict must interpret again: MPMs, targets, signals, event kinds, outcomes and
//! the crash scope are enums; every request has its final name; every connection and request a
//! step or an expectation names exists; statement IDs are the behaviour statements'. Anything else is a
//! [`SpecError`] with file, line and column, saying what is wrong and what would be valid.

pub mod condition;
pub mod file;
mod load;
mod skeleton;
mod statements;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mpm_faults::{BlastRadius, Fault};
use refhttpd::{EventKind, Mpm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::condition::{Condition, Count};

pub use load::{find_files, load, load_dir, misplaced, parse, schema, SpecError};
pub use skeleton::{schema_line, write_new_case, NewCaseError, SCHEMA_FILE};
pub use statements::{settings, statement, statements, Setting, Statement, AREAS};
pub use write::{case_text, Comments};

/// Where a case runs: a server the harness knows how to start (see `target` for each one's
/// module and capabilities).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// refhttpd, embedded.
    Reference,
    /// Apache httpd 2.4 from the system package.
    Apache,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::Reference, Target::Apache];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Reference => "reference",
            Target::Apache => "apache",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded, validated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub title: String,
    /// Behaviour statement IDs (`specs/statements.toml`).
    pub checks: Vec<String>,
    pub tags: Vec<String>,
    pub mpms: Vec<Mpm>,
    /// The targets it runs against.
    pub targets: Vec<Target>,
    pub path: PathBuf,
    pub server: ServerSettings,
    pub steps: Vec<Step>,
    pub expect: BTreeMap<Section, Expect>,
}

/// How the server is started.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// Faults enabled (`/fault/...`, Fault* directives).
    pub faults: bool,
    /// HTTPS, with a certificate made for the run.
    pub tls: bool,
    /// Directives by layer: every MPM, prefork, threaded (worker and event), worker, event.
    pub all: BTreeMap<String, String>,
    pub prefork: BTreeMap<String, String>,
    pub threaded: BTreeMap<String, String>,
    pub worker: BTreeMap<String, String>,
    pub event: BTreeMap<String, String>,
    /// Directives for Apache's httpd.conf only.
    pub apache: BTreeMap<String, String>,
}

impl ServerSettings {
    /// The directives for `mpm`: `all`, then `prefork` or `threaded`, then `worker`/`event`.
    pub fn for_mpm(&self, mpm: Mpm) -> Vec<(String, String)> {
        let mut layers = vec![&self.all];
        match mpm {
            Mpm::Prefork => layers.push(&self.prefork),
            Mpm::Worker => layers.extend([&self.threaded, &self.worker]),
            Mpm::Event => layers.extend([&self.threaded, &self.event]),
        }
        let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
        for layer in layers {
            for (k, v) in layer {
                merged.insert(k, v);
            }
        }
        merged
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// A scenario step with its source line.
#[derive(Debug, Clone)]
pub struct Step {
    pub line: usize,
    /// Runs only under these MPMs (`None`: all).
    pub only: Option<Vec<Mpm>>,
    /// Runs only against these targets (`None`: all).
    pub targets: Option<Vec<Target>>,
    pub action: Action,
}

impl Step {
    /// Whether the step runs under `mpm` against `target`.
    pub fn runs(&self, mpm: Mpm, target: Target) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&mpm))
            && self.targets.as_ref().is_none_or(|t| t.contains(&target))
    }
}

/// A request to send, as the client writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A well-formed request.
    Http {
        method: String,
        path: String,
        body: Option<String>,
        /// The `Connection` header's token, if the request sends one.
        connection: Option<ConnectionToken>,
        http10: bool,
    },
    /// Exact bytes (a malformed request); one response is expected.
    Raw(String),
}

impl Request {
    /// A plain `GET path`, keep-alive.
    pub fn get(path: &str) -> Request {
        Request::Http {
            method: "GET".into(),
            path: path.into(),
            body: None,
            connection: None,
            http10: false,
        }
    }
}

/// What a `shared:` request must have found in its process's slot (TS-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharedExpect {
    /// Its own token: no other request of its process wrote there during its hold.
    Intact,
    /// Another request's token.
    Clobbered,
}

impl SharedExpect {
    pub fn as_str(self) -> &'static str {
        match self {
            SharedExpect::Intact => "intact",
            SharedExpect::Clobbered => "clobbered",
        }
    }
}

/// What a response body holds, as the verdict asks about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyShape {
    Empty,
    /// The bytes every server under test sends for `/bytes/SIZE` and `/static/SIZE`: 64-byte
    /// lines `abc…zabc…zabc…k\n`, repeated, cut at SIZE. Defined here independently of the
    /// servers, so that a server that sends the right length of the wrong bytes is caught.
    Pattern,
    /// Anything else.
    Other,
}

impl BodyShape {
    /// The shape of `body`.
    pub fn of(body: &[u8]) -> BodyShape {
        if body.is_empty() {
            BodyShape::Empty
        } else if body.iter().enumerate().all(|(i, &b)| b == pattern_byte(i)) {
            BodyShape::Pattern
        } else {
            BodyShape::Other
        }
    }
}

/// Byte `i` of the pattern: 63 letters of the alphabet, from `a` again at each line, then `\n`.
fn pattern_byte(i: usize) -> u8 {
    let column = i % 64;
    if column == 63 {
        b'\n'
    } else {
        b"abcdefghijklmnopqrstuvwxyz"[column % 26]
    }
}

/// What a request expectation asks of one response header field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderExpect {
    /// This value, exactly (leading and trailing blanks aside).
    Value(String),
    /// `true`: present, with any value; `false`: absent.
    Present(bool),
}

/// A request's `Connection` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionToken {
    /// `close`: the response is the connection's last.
    Close,
    /// `keep-alive`: asks for a persistent connection, which a kept-alive response announces
    /// with a `Keep-Alive` header (KA-1; HTTP/1.0's only way to keep one).
    KeepAlive,
}

impl ConnectionToken {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionToken::Close => "close",
            ConnectionToken::KeepAlive => "keep-alive",
        }
    }
}

/// What a step does. Every request carries its final name.
#[derive(Debug, Clone)]
pub enum Action {
    /// Connections to open; `rcvbuf`: each one's receive buffer, set before connecting.
    Open {
        names: Vec<String>,
        rcvbuf: Option<u32>,
    },
    /// Connections opened with a TLS handshake that stops after `bytes` of the ClientHello
    /// (`None`: half of it).
    StallHandshake {
        names: Vec<String>,
        bytes: Option<u32>,
    },
    Send {
        conn: String,
        name: String,
        request: Request,
        /// The server fault the path asks for (`/fault/<fault>`).
        fault: Option<Fault>,
    },
    /// Keep-alive connections opened and served one request each (`GET /`), one at a time, so
    /// that the child owning each is known: (connection, request) each. Under event each waits
    /// until the worker that served it is free again, so the next one never finds it busy.
    /// `on`: each must land on such a child (placement); `within` bounds each.
    Warm {
        conns: Vec<(String, String)>,
        rcvbuf: Option<u32>,
        on: Option<Placement>,
        within: Duration,
    },
    /// Several requests in one write: (name, path) each.
    Pipeline {
        conn: String,
        requests: Vec<(String, String)>,
    },
    SlowHead {
        conn: String,
        name: String,
        interval: Duration,
    },
    /// `POST /` whose body of `length` bytes is sent one byte per `interval`.
    SlowBody {
        conn: String,
        name: String,
        interval: Duration,
        length: u64,
    },
    SlowRead {
        conn: String,
        name: String,
        path: String,
        rate: u32,
    },
    Reset(Vec<String>),
    HalfClose(Vec<String>),
    Close(Vec<String>),
    /// Wait until every named request has an outcome, at most `within`; `give_up`: the client
    /// then gives up on those still waiting (closes their connections: outcome `timeout`) and
    /// the scenario goes on, instead of stopping there.
    Await {
        requests: Vec<String>,
        within: Duration,
        give_up: bool,
    },
    Wait {
        condition: Condition,
        within: Duration,
    },
    Check(Condition),
    Signal(MasterSignal),
    KillChildOf {
        request: String,
        signal: nix::sys::signal::Signal,
    },
    Sleep {
        duration: Duration,
        reason: String,
    },
    /// Check `/server-status?auto` now.
    Status(Vec<(String, StatusExpect)>),
    /// Drive load in the background; awaited by its name.
    Load(LoadStep),
}

/// Where a placed connection must land, by the child that served an earlier request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    SameChildAs(String),
    OtherChildThan(String),
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::SameChildAs(r) => write!(f, "on the child that served {r}"),
            Placement::OtherChildThan(r) => write!(f, "on a child other than {r}'s"),
        }
    }
}

/// The request name a `warm` step gives the request that warms connection `conn`.
pub fn warm_request_name(conn: &str) -> String {
    format!("warm-{conn}")
}

/// A load: many connections driven while the scenario goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadStep {
    /// Its name (in the requests' namespace: `await` waits for its end).
    pub name: String,
    pub connections: u32,
    /// Requests per second over all connections (open model); `None`: closed model.
    pub rate: Option<u32>,
    pub duration: Duration,
    /// Keep connections alive (default), or a new connection per request.
    pub keepalive: bool,
    /// Every connection is answered once before the load starts (and before the step ends),
    /// so that the child owning each is known before a later step crashes one.
    pub warm: bool,
    pub mix: Vec<LoadMix>,
    /// A request without a response after this long has timed out.
    pub timeout: Duration,
}

/// One entry of a load's request mix.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadMix {
    /// The request path (`/fault/<fault>` for a fault).
    pub path: String,
    pub fault: Option<Fault>,
    pub weight: u32,
}

/// Default per-request timeout of a load.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a `status` step expects of one `server-status?auto` key.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusExpect {
    /// A number in these bounds.
    Count(Count),
    /// Exactly this value.
    Value(String),
    /// Present, any value.
    Present,
}

impl StatusExpect {
    /// Whether the key's value (`None`: absent) meets it.
    pub fn holds(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (_, None) => false,
            (StatusExpect::Present, Some(_)) => true,
            (StatusExpect::Value(want), Some(v)) => v == want,
            (StatusExpect::Count(c), Some(v)) => v.parse::<u64>().is_ok_and(|n| c.holds(n)),
        }
    }
}

impl std::fmt::Display for StatusExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusExpect::Count(c) => write!(f, "{c}"),
            StatusExpect::Value(v) => write!(f, "{v:?}"),
            StatusExpect::Present => f.write_str("present"),
        }
    }
}

/// The keys mod_status's `?auto` page may show (Apache 2.4).
pub const STATUS_KEYS: [&str; 36] = [
    "ServerVersion",
    "ServerMPM",
    "Server Built",
    "CurrentTime",
    "RestartTime",
    "ParentServerConfigGeneration",
    "ParentServerMPMGeneration",
    "ServerUptimeSeconds",
    "ServerUptime",
    "Load1",
    "Load5",
    "Load15",
    "Total Accesses",
    "Total kBytes",
    "Total Duration",
    "CPUUser",
    "CPUSystem",
    "CPUChildrenUser",
    "CPUChildrenSystem",
    "CPULoad",
    "Uptime",
    "ReqPerSec",
    "BytesPerSec",
    "BytesPerReq",
    "DurationPerReq",
    "BusyWorkers",
    "GracefulWorkers",
    "IdleWorkers",
    "Processes",
    "Stopping",
    "ConnsTotal",
    "ConnsAsyncWriting",
    "ConnsAsyncKeepAlive",
    "ConnsAsyncClosing",
    "ConnsAsyncWaitIO",
    "Scoreboard",
];

impl Action {
    /// The requests (and loads) the step sends, by name.
    pub fn sends(&self) -> Vec<&str> {
        match self {
            Action::Send { name, .. }
            | Action::SlowHead { name, .. }
            | Action::SlowBody { name, .. }
            | Action::SlowRead { name, .. } => vec![name],
            Action::Pipeline { requests, .. } => requests.iter().map(|(n, _)| n.as_str()).collect(),
            Action::Warm { conns, .. } => conns.iter().map(|(_, r)| r.as_str()).collect(),
            Action::Load(l) => vec![&l.name],
            _ => Vec::new(),
        }
    }

    /// The conditions the step decides (wait, check).
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            Action::Wait { condition, .. } | Action::Check(condition) => Some(condition),
            _ => None,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Open {
                names,
                rcvbuf: None,
            } => write!(f, "open {}", names.join(", ")),
            Action::Open {
                names,
                rcvbuf: Some(b),
            } => write!(
                f,
                "open {} with a {b}-byte receive buffer",
                names.join(", ")
            ),
            Action::Send {
                conn,
                name,
                request: Request::Raw(raw),
                ..
            } => write!(f, "send raw {raw:?} on {conn} as {name}"),
            Action::Send {
                conn,
                name,
                request: Request::Http { method, path, .. },
                ..
            } => write!(f, "send {method} {path} on {conn} as {name}"),
            Action::Warm {
                conns, rcvbuf, on, ..
            } => {
                let c: Vec<&str> = conns.iter().map(|(c, _)| c.as_str()).collect();
                write!(f, "warm {}", c.join(", "))?;
                if let Some(b) = rcvbuf {
                    write!(f, " with a {b}-byte receive buffer")?;
                }
                match on {
                    Some(p) => write!(f, " {p}"),
                    None => Ok(()),
                }
            }
            Action::Pipeline { conn, requests } => {
                let r: Vec<String> = requests.iter().map(|(n, p)| format!("{n}={p}")).collect();
                write!(f, "pipeline {} on {conn}", r.join(" "))
            }
            Action::SlowHead {
                conn,
                name,
                interval,
            } => write!(f, "slow head {name} on {conn}, a byte per {interval:?}"),
            Action::SlowBody {
                conn,
                name,
                interval,
                length,
            } => write!(
                f,
                "slow body {name} on {conn}: {length} bytes, a byte per {interval:?}"
            ),
            Action::SlowRead {
                conn,
                name,
                path,
                rate,
            } => write!(f, "slow read {name} of {path} on {conn} at {rate} B/s"),
            Action::StallHandshake { names, bytes } => write!(
                f,
                "open {} with a TLS handshake stalled after {} of the ClientHello",
                names.join(", "),
                bytes.map_or("half".to_string(), |b| format!("{b} bytes"))
            ),
            Action::Reset(n) => write!(f, "reset {}", n.join(", ")),
            Action::HalfClose(n) => write!(f, "half-close {}", n.join(", ")),
            Action::Close(n) => write!(f, "close {}", n.join(", ")),
            Action::Await {
                requests,
                within,
                give_up: false,
            } => write!(f, "await {} (within {within:?})", requests.join(", ")),
            Action::Await {
                requests, within, ..
            } => write!(
                f,
                "await {} (the client gives up after {within:?})",
                requests.join(", ")
            ),
            Action::Wait { condition, within } => {
                write!(f, "wait for {condition} (within {within:?})")
            }
            Action::Check(c) => write!(f, "check {c}"),
            Action::Signal(s) => write!(f, "signal the master: {} ({})", s.name(), s.signal()),
            Action::KillChildOf { request, signal } => {
                write!(f, "kill the child that served {request} with {signal}")
            }
            Action::Sleep { duration, reason } => write!(f, "fixed sleep {duration:?} ({reason})"),
            Action::Status(keys) => {
                let k: Vec<String> = keys.iter().map(|(k, e)| format!("{k}={e}")).collect();
                write!(f, "server-status?auto: {}", k.join(", "))
            }
            Action::Load(l) => {
                let mix: Vec<String> = l
                    .mix
                    .iter()
                    .map(|m| format!("{}×{}", m.weight, m.path))
                    .collect();
                write!(
                    f,
                    "load {}: {} connections, {}, {:?}, {}{}, mix {}",
                    l.name,
                    l.connections,
                    l.rate
                        .map(|r| format!("{r} requests/s"))
                        .unwrap_or_else(|| "closed model".into()),
                    l.duration,
                    if l.keepalive {
                        "keep-alive"
                    } else {
                        "a connection per request"
                    },
                    if l.warm { ", warmed first" } else { "" },
                    mix.join(" ")
                )
            }
        }
    }
}

/// Signals the harness sends to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MasterSignal {
    /// USR1: graceful restart.
    Graceful,
    /// HUP: restart now.
    Restart,
    /// TERM: stop now.
    Stop,
    /// WINCH: graceful stop.
    GracefulStop,
}

impl MasterSignal {
    pub fn signal(self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal;
        match self {
            MasterSignal::Graceful => Signal::SIGUSR1,
            MasterSignal::Restart => Signal::SIGHUP,
            MasterSignal::Stop => Signal::SIGTERM,
            MasterSignal::GracefulStop => Signal::SIGWINCH,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MasterSignal::Graceful => "graceful",
            MasterSignal::Restart => "restart",
            MasterSignal::Stop => "stop",
            MasterSignal::GracefulStop => "graceful-stop",
        }
    }
}

/// Default deadline of `wait` and `await`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

/// An expectation section: for every target, or judged on the reference server only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `all`: every MPM.
    All,
    /// `prefork`, `worker`, `event`.
    Mpm(Mpm),
    /// `reference`: every MPM, reference only.
    Reference,
    /// `reference-<mpm>`.
    ReferenceMpm(Mpm),
}

impl Section {
    pub fn parse(key: &str) -> Option<Section> {
        match key {
            "all" => Some(Section::All),
            "reference" => Some(Section::Reference),
            _ => match key.strip_prefix("reference-") {
                Some(m) => m.parse().ok().map(Section::ReferenceMpm),
                None => key.parse().ok().map(Section::Mpm),
            },
        }
    }
}

/// How a request is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    /// Any response.
    Ok,
    /// No response (refused, reset, closed or timed out).
    Failed,
    /// The connection ended before the response (EOF or RST: either may surface).
    Closed,
    /// The connection was reset (EOF or RST: either may surface).
    Reset,
    /// The connection could not be opened.
    Refused,
    /// The client gave up waiting.
    Timeout,
    /// No outcome by the end of the scenario.
    Pending,
}

/// One request's expectation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestExpect {
    pub status: Option<u16>,
    pub outcome: Option<ExpectedOutcome>,
    /// From sent to response (`any` when not given).
    pub latency: DurationBounds,
    pub same_child_as: Option<String>,
    pub other_child_than: Option<String>,
    pub closes: Option<bool>,
    /// The body's length.
    pub bytes: Option<u64>,
    /// What the body holds.
    pub body: Option<BodyShape>,
    /// What a `shared:` request found.
    pub shared: Option<SharedExpect>,
    /// Response header fields (names case-insensitive).
    pub headers: BTreeMap<String, HeaderExpect>,
    /// Judged on the reference server only.
    pub reference_only: bool,
}

/// The crash oracle.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashExpect {
    /// `Connection`: only the requests that carried the crash fail; `Process`: exactly the
    /// requests on connections the crashed child owned fail, and its idle connections end.
    pub scope: BlastRadius,
    pub recovered_within: Option<Duration>,
    pub recovery_reference_only: bool,
}

/// What the memory of the process that served a request came to, and the server's around it
/// (TS-2), judged from the /proc samples (`file::MemoryExpectFile` says how). Sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryExpect {
    /// Its PSS grew by at least this much, from before the request to its largest after.
    pub grew_at_least: Option<u64>,
    /// … and by at most this much.
    pub grew_at_most: Option<u64>,
    /// Every other process alive at both moments grew by at most this much.
    pub others_grew_at_most: Option<u64>,
    /// `Some(true)`: it exited and the pool is whole again at the end; `Some(false)`: it is
    /// alive at the end.
    pub replaced: Option<bool>,
    /// The server's summed PSS at the end exceeds that before the request by at most this much.
    pub server_grew_at_most: Option<u64>,
}

/// What must be true: one section, or several merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    pub requests: BTreeMap<String, RequestExpect>,
    /// How long opening each named connection may take.
    /// How long each named connection took to open.
    pub connects: BTreeMap<String, DurationBounds>,
    /// The master's exit code.
    pub master_exit: Option<i32>,
    /// Text some line of the server's error log contains.
    pub log_has: Vec<String>,
    /// Text no line of the server's error log contains.
    pub log_never: Vec<String>,
    pub other_requests: Option<RequestExpect>,
    pub crash: Option<CrashExpect>,
    pub events: BTreeMap<EventKind, Count>,
    pub seen: Vec<Condition>,
    pub never: Vec<Condition>,
    /// Expectations on loads, by name.
    pub loads: BTreeMap<String, LoadExpect>,
    /// The memory of the process that served each named request.
    pub memory: BTreeMap<String, MemoryExpect>,
}

/// Which load requests a failure limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoadClass {
    /// No response, whatever the class.
    Failed,
    Refused,
    Reset,
    Closed,
    Timeout,
    /// Responses with a 5xx status.
    ServerErrors,
    /// Answers of `shared:` requests that found another request's token (TS-1).
    SharedClobbered,
}

impl LoadClass {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadClass::Failed => "failed",
            LoadClass::Refused => "refused",
            LoadClass::Reset => "reset",
            LoadClass::Closed => "closed",
            LoadClass::Timeout => "timeout",
            LoadClass::ServerErrors => "server_errors",
            LoadClass::SharedClobbered => "shared_clobbered",
        }
    }
}

/// A number of requests, or a share of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(u64),
    /// A fraction, 0–1.
    Share(f64),
}

impl Amount {
    /// `n` of `total` compared with the amount: below, equal or above.
    fn compare(&self, n: u64, total: u64) -> std::cmp::Ordering {
        match *self {
            Amount::Count(c) => n.cmp(&c),
            Amount::Share(s) => (n as f64)
                .partial_cmp(&(s * total as f64))
                .unwrap_or(std::cmp::Ordering::Equal),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Share(s) => write!(f, "{}%", s * 100.0),
        }
    }
}

/// Bounds on how many requests of a load end some way: counts or shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub at_least: Option<Amount>,
    pub at_most: Option<Amount>,
}

impl Limit {
    /// At most `amount`.
    pub fn at_most(amount: Amount) -> Limit {
        Limit {
            at_least: None,
            at_most: Some(amount),
        }
    }

    /// Whether `n` of `total` keeps within it.
    pub fn holds(&self, n: u64, total: u64) -> bool {
        self.at_least.is_none_or(|a| a.compare(n, total).is_ge())
            && self.at_most.is_none_or(|a| a.compare(n, total).is_le())
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.at_least, self.at_most) {
            (Some(l), Some(m)) => write!(f, "{l} … {m}"),
            (Some(l), None) => write!(f, "≥ {l}"),
            (None, Some(m)) => write!(f, "≤ {m}"),
            (None, None) => f.write_str("any"),
        }
    }
}

/// Bounds on a duration — a request's latency, a load's percentile, how long a connection took
/// to open, a model's window: at least, at most, both or (for "any") neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DurationBounds {
    pub at_least: Option<Duration>,
    pub at_most: Option<Duration>,
}

impl DurationBounds {
    /// From `at_least` to `at_most`, both given.
    pub fn between(at_least: Duration, at_most: Duration) -> DurationBounds {
        DurationBounds {
            at_least: Some(at_least),
            at_most: Some(at_most),
        }
    }

    pub fn holds(&self, d: Duration) -> bool {
        self.at_least.is_none_or(|l| d >= l) && self.at_most.is_none_or(|m| d <= m)
    }

    /// Neither bound given: any duration holds.
    pub fn is_any(&self) -> bool {
        self.at_least.is_none() && self.at_most.is_none()
    }
}

impl std::fmt::Display for DurationBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.at_least, self.at_most) {
            (Some(l), Some(m)) => write!(f, "{l:?} … {m:?}"),
            (Some(l), None) => write!(f, "≥ {l:?}"),
            (None, Some(m)) => write!(f, "≤ {m:?}"),
            (None, None) => f.write_str("any"),
        }
    }
}

/// What a load must come to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadExpect {
    pub failures: BTreeMap<LoadClass, Limit>,
    /// Corrected latency percentiles.
    pub p50: Option<DurationBounds>,
    pub p99: Option<DurationBounds>,
    pub max: Option<DurationBounds>,
    /// Responses per second within the planned duration, at least.
    pub throughput: Option<f64>,
    /// How many requests it made.
    pub requests: Option<Count>,
}

impl Expect {
    /// `self` with `own` layered over it: its requests, other_requests, crash, event counts,
    /// loads and memory win (per name); its seen and never are appended.
    fn merged_with(mut self, own: &Expect) -> Expect {
        self.requests.extend(own.requests.clone());
        self.connects.extend(own.connects.clone());
        if own.master_exit.is_some() {
            self.master_exit = own.master_exit;
        }
        self.log_has.extend(own.log_has.clone());
        self.log_never.extend(own.log_never.clone());
        if own.other_requests.is_some() {
            self.other_requests = own.other_requests.clone();
        }
        if own.crash.is_some() {
            self.crash = own.crash.clone();
        }
        self.events.extend(own.events.clone());
        self.seen.extend(own.seen.clone());
        self.never.extend(own.never.clone());
        self.loads.extend(own.loads.clone());
        self.memory.extend(own.memory.clone());
        self
    }
}

impl Case {
    /// The directives for `mpm`.
    pub fn settings(&self, mpm: Mpm) -> Vec<(String, String)> {
        self.server.for_mpm(mpm)
    }

    /// The expectations for `mpm` on every target: `all` merged with the MPM's own.
    pub fn expectations(&self, mpm: Mpm) -> Expect {
        self.merged(Section::All, Section::Mpm(mpm))
    }

    /// The expectations for `mpm` judged on the reference server only.
    pub fn reference_expectations(&self, mpm: Mpm) -> Expect {
        self.merged(Section::Reference, Section::ReferenceMpm(mpm))
    }

    fn merged(&self, base: Section, specific: Section) -> Expect {
        let base = self.expect.get(&base).cloned().unwrap_or_default();
        match self.expect.get(&specific) {
            Some(own) => base.merged_with(own),
            None => base,
        }
    }

    /// The steps that run under `mpm` against `target`.
    pub fn steps_for(&self, mpm: Mpm, target: Target) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| s.runs(mpm, target))
    }

    /// Whether the run expects a child to crash (the runner waits for its exit to be seen).
    pub fn expects_crash(&self, mpm: Mpm) -> bool {
        self.expectations(mpm).crash.is_some() || self.reference_expectations(mpm).crash.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shapes() {
        let line = b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk\n";
        assert_eq!(line.len(), 64);
        let mut two_lines = line.repeat(2);
        assert_eq!(BodyShape::of(&two_lines), BodyShape::Pattern);
        assert_eq!(BodyShape::of(&two_lines[..70]), BodyShape::Pattern);
        assert_eq!(BodyShape::of(b""), BodyShape::Empty);
        two_lines[100] = b'x';
        assert_eq!(BodyShape::of(&two_lines), BodyShape::Other);
        // The right bytes at the wrong offset: the second line starts where the first did not.
        assert_eq!(BodyShape::of(&line[1..]), BodyShape::Other);
    }

    #[test]
    fn status_expectations() {
        let c = StatusExpect::Count(Count::Range {
            at_least: Some(2),
            at_most: None,
        });
        assert!(c.holds(Some("2")) && !c.holds(Some("1")) && !c.holds(Some("x")));
        assert!(!c.holds(None));
        assert!(StatusExpect::Value("event".into()).holds(Some("event")));
        assert!(!StatusExpect::Value("event".into()).holds(Some("worker")));
        assert!(StatusExpect::Present.holds(Some("")) && !StatusExpect::Present.holds(None));
    }
}
