//! The spec case format (TOML, one file per case under `specs/<theme>/`) and its loader.
//!
//! A [`Case`] names the SPEC.md statements it checks, the server settings, a scenario of
//! [`Step`]s and the expectations per MPM. Loading validates everything a run would need, so a
//! bad file fails at load time with file, line, column and what is wrong ([`SpecError`]).
//! `mpm-harness schema` prints the JSON Schema of [`CaseFile`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpm_faults::Fault;
use refhttpd::config::Mpm;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The file as written (what the JSON Schema describes).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Unique id, `theme/name` (the file's path under `specs/` without `.toml` by convention).
    pub id: String,
    /// One line saying what the case shows.
    pub title: String,
    /// SPEC.md statements the case checks (`PF-2`, `EV-5`, …).
    #[serde(default)]
    pub checks: Vec<String>,
    /// Free tags for filtering (`crash`, `keepalive`, …).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The MPMs the case runs under (default: all three).
    #[serde(default)]
    pub mpms: Option<Vec<String>>,
    /// Server settings, Apache directive names.
    #[serde(default)]
    pub server: ServerSpec,
    /// The scenario, in order.
    #[serde(rename = "step", default)]
    pub steps: Vec<StepSpec>,
    /// Expectations: `all` applies to every MPM, then `prefork`, `worker`, `event` add to it.
    /// `reference` and `reference-<mpm>` hold expectations judged on the reference server only
    /// (Apache cannot meet them by design); the matrix marks such passes.
    #[serde(default)]
    pub expect: BTreeMap<String, ExpectSpec>,
}

/// How the server is started for the case.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Start the server with faults enabled (`/fault/...` paths, Fault* directives).
    #[serde(default)]
    pub faults: bool,
    /// Directives for every MPM.
    #[serde(default)]
    pub all: BTreeMap<String, Value>,
    /// Directives for prefork only.
    #[serde(default)]
    pub prefork: BTreeMap<String, Value>,
    /// Directives for worker and event.
    #[serde(default)]
    pub threaded: BTreeMap<String, Value>,
    /// Directives for worker only.
    #[serde(default)]
    pub worker: BTreeMap<String, Value>,
    /// Directives for event only.
    #[serde(default)]
    pub event: BTreeMap<String, Value>,
    /// Directives written into Apache's httpd.conf only, for every MPM (Apache settings with no
    /// reference equivalent, e.g. `EnableSendfile = "On"`); not validated here.
    #[serde(default)]
    pub apache: BTreeMap<String, Value>,
}

/// A directive value: written as a TOML string, integer, float or boolean (On/Off).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(true) => f.write_str("On"),
            Value::Bool(false) => f.write_str("Off"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

/// One step as written: exactly one action key (`open`, `send`, `wait`, …) plus its options.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Open connections with these names.
    pub open: Option<Names>,
    /// Send a request on the named connection (`path` or `fault`).
    pub send: Option<String>,
    /// Send several requests back to back in one write on the named connection (`paths`).
    pub pipeline: Option<String>,
    /// Client fault: send a request head slowly on the named connection (slowloris), one byte per
    /// `interval` (default 100ms) for ever or until the server closes.
    pub slow_head: Option<String>,
    /// Client fault: request `path` on the named connection and read the response slowly
    /// (`rate` bytes per second, default 1024).
    pub slow_read: Option<String>,
    /// Client fault: reset the named connections (RST).
    pub reset: Option<Names>,
    /// Client fault: close the writing side of the named connections.
    pub half_close: Option<Names>,
    /// Close the named connections.
    pub close: Option<Names>,
    /// Wait until every named request has an outcome.
    #[serde(rename = "await")]
    pub await_: Option<Names>,
    /// Wait until a condition holds.
    pub wait: Option<ConditionSpec>,
    /// Check a condition now (a verdict item, the scenario goes on).
    pub check: Option<ConditionSpec>,
    /// Signal the master: `graceful` (USR1), `restart` (HUP), `stop` (TERM), `graceful-stop`
    /// (WINCH).
    pub signal: Option<String>,
    /// Kill the child that served this request, with `with` (default SIGKILL).
    pub kill_child_of: Option<String>,
    /// A fixed sleep: only where nothing observable exists; `reason` says why.
    pub sleep: Option<String>,

    /// `send`/`slow_read`: the request path.
    pub path: Option<String>,
    /// `send`: a server fault from the mpm-faults vocabulary (the path becomes `/fault/<fault>`).
    pub fault: Option<String>,
    /// `send`: exact bytes to send instead of a well-formed request (TOML escapes: `\r\n`),
    /// for malformed requests (HT-1).
    pub raw: Option<String>,
    /// `pipeline`: the paths.
    pub paths: Option<Vec<String>>,
    /// `send`: name of the request (default: the connection name, then `#2`, `#3`, …).
    #[serde(rename = "as")]
    pub as_: Option<String>,
    /// `send`: method (default GET).
    pub method: Option<String>,
    /// `send`: a request body (sent with Content-Length).
    pub body: Option<String>,
    /// `send`: ask the server to close after the response.
    #[serde(default)]
    pub connection_close: bool,
    /// `send`: speak HTTP/1.0 (no keep-alive unless asked).
    #[serde(default)]
    pub http10: bool,
    /// `open`: how many connections per name (named `name.1` … `name.N` when above 1).
    pub count: Option<u32>,
    /// `wait`/`await`: deadline (default 10s).
    pub within: Option<String>,
    /// `slow_head`: the pause between bytes.
    pub interval: Option<String>,
    /// `slow_read`: bytes per second.
    pub rate: Option<u32>,
    /// `kill_child_of`: the signal (`SIGKILL`, `SIGSEGV`, …).
    pub with: Option<String>,
    /// `sleep`: why nothing observable can be waited for.
    pub reason: Option<String>,
    /// Run this step only under these MPMs.
    pub only: Option<Vec<String>>,
    /// Run this step only against these targets (`reference`, `apache`): for a wait on
    /// something only one target shows (an event-log kind, a counter Apache lags on, SB-3).
    pub targets: Option<Vec<String>>,
}

/// One name or a list of names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Names::One(n) => vec![n.clone()],
            Names::Many(v) => v.clone(),
        }
    }
}

/// An observable condition; every field given must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// Workers busy (mod_status BusyWorkers).
    pub busy_workers: Option<Count>,
    /// Workers idle (IdleWorkers).
    pub idle_workers: Option<Count>,
    /// Workers in keep-alive (`K`).
    pub keepalive_workers: Option<Count>,
    /// Connections the event listener holds in keep-alive (ConnsAsyncKeepAlive).
    pub async_keepalive: Option<Count>,
    /// Connections the event listener is writing (ConnsAsyncWriting).
    pub async_writing: Option<Count>,
    /// Live child processes.
    pub processes: Option<Count>,
    /// Live child processes that accept connections.
    pub accepting: Option<Count>,
    /// Threads of the server's processes (master and children, from /proc).
    pub threads: Option<Count>,
    /// Summed PSS of the server's processes in KiB (from /proc/<pid>/smaps_rollup).
    pub pss_kb: Option<Count>,
    /// Child exits observed so far (any cause).
    pub child_exits: Option<Count>,
    /// Server events of this kind observed so far (`max_request_workers`, …), with `events`.
    pub event: Option<String>,
    /// How many of `event` (default at least 1).
    pub events: Option<Count>,
    /// The master has exited.
    pub master_exited: Option<bool>,
    /// These connections have been closed by the server.
    pub closed: Option<Names>,
}

/// A count: an exact number, or bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Count {
    Exactly(u64),
    Range {
        at_least: Option<u64>,
        at_most: Option<u64>,
    },
}

impl Count {
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

/// What must be true under one MPM (or `all`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Outcome per named request.
    #[serde(default)]
    pub requests: BTreeMap<String, RequestExpectSpec>,
    /// Outcome of every request not named in `requests`.
    pub other_requests: Option<RequestExpectSpec>,
    /// The crash oracle: which connections a process death may take down.
    pub crash: Option<CrashExpectSpec>,
    /// Server events by kind, counted over the whole run (reference target).
    #[serde(default)]
    pub events: BTreeMap<String, Count>,
    /// Conditions that must have held at some moment of the run (scoreboard timeline).
    #[serde(default)]
    pub seen: Vec<ConditionSpec>,
    /// Conditions that must never have held during the run.
    #[serde(default)]
    pub never: Vec<ConditionSpec>,
}

/// The outcome of one request: a status, an outcome class, or a table with latency bounds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RequestExpectSpec {
    Status(u16),
    Outcome(String),
    Full(RequestExpectTable),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestExpectTable {
    pub status: Option<u16>,
    /// `ok` (any response), `failed` (no response), `closed`, `reset`, `refused`, `timeout`.
    pub outcome: Option<String>,
    pub latency_at_least: Option<String>,
    pub latency_at_most: Option<String>,
    /// Served by the same child process as this request.
    pub same_child_as: Option<String>,
    /// Served by another child process than this request.
    pub other_child_than: Option<String>,
    /// The response says `Connection: close` (true) or keeps the connection (false).
    pub closes: Option<bool>,
    /// This expectation holds on the reference server only (Apache cannot meet it by design).
    #[serde(default)]
    pub reference_only: bool,
}

/// The crash oracle.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrashExpectSpec {
    /// `connection`: only requests that carried the crash fail (prefork); `process`: every
    /// connection the crashed child owned fails — busy and idle — and no other (worker, event).
    pub scope: String,
    /// A replacement child accepts within this time after the crash.
    pub recovered_within: Option<String>,
    /// `recovered_within` holds on the reference server only.
    #[serde(default)]
    pub recovery_reference_only: bool,
}

// ---------------------------------------------------------------------------------------------
// The validated model.

/// A loaded, validated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub checks: Vec<String>,
    pub tags: Vec<String>,
    pub mpms: Vec<Mpm>,
    pub path: PathBuf,
    pub faults: bool,
    pub server: ServerSpec,
    pub steps: Vec<Step>,
    pub expect: BTreeMap<String, ExpectSpec>,
}

/// A validated scenario step with its source line.
#[derive(Debug, Clone)]
pub struct Step {
    pub line: usize,
    pub only: Option<Vec<Mpm>>,
    pub targets: Option<Vec<String>>,
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    Open(Vec<String>),
    Send {
        conn: String,
        request: Option<String>,
        method: String,
        path: String,
        fault: Option<Fault>,
        body: Option<String>,
        connection_close: bool,
        http10: bool,
        raw: Option<String>,
    },
    Pipeline {
        conn: String,
        paths: Vec<String>,
        request: Option<String>,
    },
    SlowHead {
        conn: String,
        interval: Duration,
    },
    SlowRead {
        conn: String,
        path: String,
        rate: u32,
        request: Option<String>,
    },
    Reset(Vec<String>),
    HalfClose(Vec<String>),
    Close(Vec<String>),
    Await {
        requests: Vec<String>,
        within: Duration,
    },
    Wait {
        condition: ConditionSpec,
        within: Duration,
    },
    Check(ConditionSpec),
    Signal(MasterSignal),
    KillChildOf {
        request: String,
        signal: nix::sys::signal::Signal,
    },
    Sleep {
        duration: Duration,
        reason: String,
    },
}

/// Signals the harness sends to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterSignal {
    Graceful,
    Restart,
    Stop,
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
}

/// Default deadline of `wait` and `await`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

/// A spec file that cannot be used: where and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct SpecError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Case {
    /// The settings for `mpm`: `all`, then `prefork` or `threaded`, then `worker`/`event`.
    pub fn settings(&self, mpm: Mpm) -> Vec<(String, String)> {
        let s = &self.server;
        let mut layers = vec![&s.all];
        match mpm {
            Mpm::Prefork => layers.push(&s.prefork),
            Mpm::Worker => layers.extend([&s.threaded, &s.worker]),
            Mpm::Event => layers.extend([&s.threaded, &s.event]),
        }
        let mut merged: BTreeMap<&str, String> = BTreeMap::new();
        for layer in layers {
            for (k, v) in layer {
                merged.insert(k, v.to_string());
            }
        }
        merged
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// The expectations for `mpm` on every target: `all` merged with the MPM's own.
    pub fn expectations(&self, mpm: Mpm) -> ExpectSpec {
        self.merged("all", mpm.as_str())
    }

    /// The expectations for `mpm` judged on the reference server only.
    pub fn reference_expectations(&self, mpm: Mpm) -> ExpectSpec {
        self.merged("reference", &format!("reference-{}", mpm.as_str()))
    }

    fn merged(&self, base: &str, specific: &str) -> ExpectSpec {
        let mut merged = self.expect.get(base).cloned().unwrap_or_default();
        if let Some(own) = self.expect.get(specific) {
            merged.requests.extend(own.requests.clone());
            if own.other_requests.is_some() {
                merged.other_requests = own.other_requests.clone();
            }
            if own.crash.is_some() {
                merged.crash = own.crash.clone();
            }
            merged.events.extend(own.events.clone());
            merged.seen.extend(own.seen.clone());
            merged.never.extend(own.never.clone());
        }
        merged
    }

    /// The steps that run under `mpm` against `target`.
    pub fn steps_for<'a>(&'a self, mpm: Mpm, target: &'a str) -> impl Iterator<Item = &'a Step> {
        self.steps.iter().filter(move |s| {
            s.only.as_ref().is_none_or(|o| o.contains(&mpm))
                && s.targets
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| t == target))
        })
    }
}

/// Loads and validates one spec file.
pub fn load(path: &Path) -> Result<Case, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates spec text as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Case, SpecError> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        SpecError {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let file: CaseFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        at(offset, e.message().trim().to_string())
    })?;
    let step_offsets = step_offsets(text);
    let mut v = Validator {
        path,
        text,
        steps: &step_offsets,
        names: Vec::new(),
        requests: Vec::new(),
    };
    v.case(file)
}

/// Byte offsets of each `[[step]]` header, to report step errors at their line.
fn step_offsets(text: &str) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("[[step]]") {
            offsets.push(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    offsets
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Finds the offset of `key` in the text, to point at the place an error is about.
fn find_key(text: &str, from: usize, key: &str) -> usize {
    text[from.min(text.len())..]
        .find(key)
        .map(|i| i + from)
        .unwrap_or(from)
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    steps: &'a [usize],
    names: Vec<String>,
    requests: Vec<String>,
}

impl Validator<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> SpecError {
        let (line, column) = line_col(self.text, offset);
        SpecError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    fn case(&mut self, file: CaseFile) -> Result<Case, SpecError> {
        if file.id.trim().is_empty() || file.id.contains(char::is_whitespace) {
            return Err(self.err(
                find_key(self.text, 0, "id"),
                "`id` must be a non-empty word like `crash/segv-isolation`",
            ));
        }
        let mpms = match &file.mpms {
            None => Mpm::ALL.to_vec(),
            Some(list) => self.mpms(list, find_key(self.text, 0, "mpms"))?,
        };
        for (name, _) in file
            .server
            .all
            .iter()
            .chain(&file.server.prefork)
            .chain(&file.server.threaded)
            .chain(&file.server.worker)
            .chain(&file.server.event)
            .chain(&file.server.apache)
        {
            self.directive_name(name)?;
        }
        for mpm in &mpms {
            self.server_settings(&file, *mpm)?;
        }
        let mut steps = Vec::new();
        for (i, spec) in file.steps.iter().enumerate() {
            let offset = self.steps.get(i).copied().unwrap_or(0);
            steps.push(self.step(spec, offset)?);
        }
        for (key, expect) in &file.expect {
            let offset = find_key(self.text, 0, &format!("[expect.{key}"));
            let mpm_key = key.strip_prefix("reference-").unwrap_or(key);
            let known = key == "all"
                || key == "reference"
                || Mpm::ALL.iter().any(|m| m.as_str() == mpm_key);
            if !known {
                return Err(self.err(
                    offset,
                    format!(
                        "unknown expectation section `{key}` (use all, prefork, worker, event, reference or reference-<mpm>)"
                    ),
                ));
            }
            self.expectations(expect, offset)?;
        }
        Ok(Case {
            id: file.id,
            title: file.title,
            checks: file.checks,
            tags: file.tags,
            mpms,
            path: self.path.to_path_buf(),
            faults: file.server.faults,
            server: file.server,
            steps,
            expect: file.expect,
        })
    }

    fn mpms(&self, list: &[String], offset: usize) -> Result<Vec<Mpm>, SpecError> {
        list.iter()
            .map(|m| m.parse::<Mpm>().map_err(|e| self.err(offset, e)))
            .collect()
    }

    fn directive_name(&self, name: &str) -> Result<(), SpecError> {
        let ok = name.chars().all(|c| c.is_ascii_alphanumeric()) && !name.is_empty();
        if !ok {
            return Err(self.err(
                find_key(self.text, 0, name),
                format!("`{name}` is not a directive name"),
            ));
        }
        Ok(())
    }

    /// Validates the merged settings with refhttpd's own configuration rules.
    fn server_settings(&self, file: &CaseFile, mpm: Mpm) -> Result<(), SpecError> {
        let case = Case {
            id: String::new(),
            title: String::new(),
            checks: vec![],
            tags: vec![],
            mpms: vec![],
            path: PathBuf::new(),
            faults: file.server.faults,
            server: file.server.clone(),
            steps: vec![],
            expect: BTreeMap::new(),
        };
        let sets: Vec<String> = case
            .settings(mpm)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if let Err(e) = refhttpd::config::Config::load(mpm, None, &sets, true) {
            let message = e.to_string();
            let directive = message
                .strip_prefix("--set: ")
                .and_then(|m| m.split(':').next())
                .unwrap_or("");
            let offset = if directive.is_empty() {
                find_key(self.text, 0, "[server")
            } else {
                find_key(self.text, 0, directive)
            };
            return Err(self.err(
                offset,
                format!(
                    "server setting for {mpm}: {}",
                    message.trim_start_matches("--set: ")
                ),
            ));
        }
        Ok(())
    }

    fn step(&mut self, s: &StepSpec, offset: usize) -> Result<Step, SpecError> {
        let actions = [
            ("open", s.open.is_some()),
            ("send", s.send.is_some()),
            ("pipeline", s.pipeline.is_some()),
            ("slow_head", s.slow_head.is_some()),
            ("slow_read", s.slow_read.is_some()),
            ("reset", s.reset.is_some()),
            ("half_close", s.half_close.is_some()),
            ("close", s.close.is_some()),
            ("await", s.await_.is_some()),
            ("wait", s.wait.is_some()),
            ("check", s.check.is_some()),
            ("signal", s.signal.is_some()),
            ("kill_child_of", s.kill_child_of.is_some()),
            ("sleep", s.sleep.is_some()),
        ];
        let given: Vec<&str> = actions
            .iter()
            .filter(|(_, g)| *g)
            .map(|(n, _)| *n)
            .collect();
        if given.len() != 1 {
            return Err(self.err(
                offset,
                format!(
                    "a step needs exactly one action ({}), found {}",
                    actions.map(|(n, _)| n).join(", "),
                    if given.is_empty() {
                        "none".to_string()
                    } else {
                        given.join(" and ")
                    }
                ),
            ));
        }
        let err = |m: String| SpecError {
            path: self.path.to_path_buf(),
            line: line_col(self.text, offset).0,
            column: line_col(self.text, offset).1,
            message: m,
        };
        let only = match &s.only {
            None => None,
            Some(list) => Some(self.mpms(list, offset)?),
        };
        if let Some(targets) = &s.targets {
            if let Some(bad) = targets.iter().find(|t| *t != "reference" && *t != "apache") {
                return Err(err(format!(
                    "unknown target `{bad}` (use reference or apache)"
                )));
            }
        }
        let within = self
            .duration(s.within.as_deref(), offset)?
            .unwrap_or(DEFAULT_WITHIN);
        let action = match given[0] {
            "open" => {
                let names = s.open.as_ref().unwrap().to_vec();
                let count = s.count.unwrap_or(1);
                let mut opened = Vec::new();
                for name in names {
                    if count == 1 {
                        opened.push(name);
                    } else {
                        opened.extend((1..=count).map(|i| format!("{name}.{i}")));
                    }
                }
                for name in &opened {
                    if self.names.contains(name) {
                        return Err(err(format!("connection `{name}` is opened twice")));
                    }
                    self.names.push(name.clone());
                }
                Action::Open(opened)
            }
            "send" => {
                let conn = self.conn(s.send.as_ref().unwrap(), offset)?;
                let fault = match &s.fault {
                    None => None,
                    Some(text) => Some(text.parse::<Fault>().map_err(|e| err(e.to_string()))?),
                };
                if s.raw.is_some() && (s.path.is_some() || fault.is_some() || s.body.is_some()) {
                    return Err(err(
                        "`raw` replaces the whole request: no `path`, `fault` or `body` with it"
                            .into(),
                    ));
                }
                let path = match (&s.path, &fault) {
                    (Some(_), Some(_)) => {
                        return Err(err("`send` takes `path` or `fault`, not both".into()))
                    }
                    (Some(p), None) if p.starts_with('/') => p.clone(),
                    (Some(p), None) => return Err(err(format!("path `{p}` must start with `/`"))),
                    (None, Some(f)) => f.request_path(),
                    (None, None) => "/".to_string(),
                };
                let request = self.request_name(s.as_.clone(), offset)?;
                Action::Send {
                    conn,
                    request,
                    method: s.method.clone().unwrap_or_else(|| "GET".into()),
                    path,
                    fault,
                    body: s.body.clone(),
                    connection_close: s.connection_close,
                    http10: s.http10,
                    raw: s.raw.clone(),
                }
            }
            "pipeline" => {
                let conn = self.conn(s.pipeline.as_ref().unwrap(), offset)?;
                let paths = s
                    .paths
                    .clone()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| err("`pipeline` needs `paths`".into()))?;
                Action::Pipeline {
                    conn,
                    paths,
                    request: self.request_name(s.as_.clone(), offset)?,
                }
            }
            "slow_head" => Action::SlowHead {
                conn: self.conn(s.slow_head.as_ref().unwrap(), offset)?,
                interval: self
                    .duration(s.interval.as_deref(), offset)?
                    .unwrap_or(Duration::from_millis(100)),
            },
            "slow_read" => Action::SlowRead {
                conn: self.conn(s.slow_read.as_ref().unwrap(), offset)?,
                path: s
                    .path
                    .clone()
                    .ok_or_else(|| err("`slow_read` needs `path`".into()))?,
                rate: s.rate.unwrap_or(1024).max(1),
                request: self.request_name(s.as_.clone(), offset)?,
            },
            "reset" => Action::Reset(self.conns(s.reset.as_ref().unwrap(), offset)?),
            "half_close" => Action::HalfClose(self.conns(s.half_close.as_ref().unwrap(), offset)?),
            "close" => Action::Close(self.conns(s.close.as_ref().unwrap(), offset)?),
            "await" => {
                let requests = s.await_.as_ref().unwrap().to_vec();
                for r in &requests {
                    if !self.requests.contains(r) && !self.names.contains(r) {
                        return Err(err(format!(
                            "`await` names `{r}`, which no earlier step sends"
                        )));
                    }
                }
                Action::Await { requests, within }
            }
            "wait" => Action::Wait {
                condition: self.condition(s.wait.as_ref().unwrap(), offset)?,
                within,
            },
            "check" => Action::Check(self.condition(s.check.as_ref().unwrap(), offset)?),
            "signal" => Action::Signal(match s.signal.as_deref().unwrap() {
                "graceful" => MasterSignal::Graceful,
                "restart" => MasterSignal::Restart,
                "stop" => MasterSignal::Stop,
                "graceful-stop" => MasterSignal::GracefulStop,
                other => {
                    return Err(err(format!(
                        "unknown signal `{other}` (use graceful, restart, stop or graceful-stop)"
                    )))
                }
            }),
            "kill_child_of" => {
                let request = s.kill_child_of.clone().unwrap();
                if !self.requests.contains(&request) && !self.names.contains(&request) {
                    return Err(err(format!(
                        "`kill_child_of` names `{request}`, which no earlier step sends"
                    )));
                }
                let name = s.with.clone().unwrap_or_else(|| "SIGKILL".into());
                let signal = name.parse::<nix::sys::signal::Signal>().map_err(|_| {
                    err(format!(
                        "unknown signal `{name}` (use e.g. SIGKILL, SIGSEGV)"
                    ))
                })?;
                Action::KillChildOf { request, signal }
            }
            "sleep" => {
                let duration = self
                    .duration(s.sleep.as_deref(), offset)?
                    .unwrap_or_default();
                let reason = s
                    .reason
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .ok_or_else(|| {
                        err(
                            "a fixed `sleep` needs a `reason`: why is there nothing to wait for?"
                                .into(),
                        )
                    })?;
                Action::Sleep { duration, reason }
            }
            _ => unreachable!(),
        };
        Ok(Step {
            line: line_col(self.text, offset).0,
            only,
            targets: s.targets.clone(),
            action,
        })
    }

    fn conn(&self, name: &str, offset: usize) -> Result<String, SpecError> {
        if self.names.iter().any(|n| n == name) {
            Ok(name.to_string())
        } else {
            Err(self.err(
                offset,
                format!("connection `{name}` is not opened by an earlier step"),
            ))
        }
    }

    fn conns(&self, names: &Names, offset: usize) -> Result<Vec<String>, SpecError> {
        names
            .to_vec()
            .iter()
            .map(|n| self.conn(n, offset))
            .collect()
    }

    fn request_name(
        &mut self,
        name: Option<String>,
        offset: usize,
    ) -> Result<Option<String>, SpecError> {
        if let Some(n) = &name {
            if self.requests.contains(n) {
                return Err(self.err(offset, format!("request name `{n}` is used twice")));
            }
            self.requests.push(n.clone());
        }
        Ok(name)
    }

    fn duration(&self, text: Option<&str>, offset: usize) -> Result<Option<Duration>, SpecError> {
        text.map(|t| mpm_faults::duration::parse(t).map_err(|e| self.err(offset, e)))
            .transpose()
    }

    fn condition(&self, c: &ConditionSpec, offset: usize) -> Result<ConditionSpec, SpecError> {
        if *c == ConditionSpec::default() {
            return Err(self.err(
                offset,
                "an empty condition always holds; name what to wait for",
            ));
        }
        if c.events.is_some() && c.event.is_none() {
            return Err(self.err(offset, "`events` counts the kind given in `event`"));
        }
        if let Some(closed) = &c.closed {
            self.conns(closed, offset)?;
        }
        Ok(c.clone())
    }

    fn expectations(&self, e: &ExpectSpec, offset: usize) -> Result<(), SpecError> {
        for (name, r) in &e.requests {
            if !self.requests.contains(name) && !self.names.contains(name) {
                return Err(self.err(
                    offset,
                    format!("expectation for request `{name}`, which no step sends"),
                ));
            }
            self.request_expect(r, offset)?;
        }
        if let Some(r) = &e.other_requests {
            self.request_expect(r, offset)?;
        }
        if let Some(c) = &e.crash {
            if c.scope != "connection" && c.scope != "process" {
                return Err(self.err(
                    offset,
                    format!("crash scope `{}` (use connection or process)", c.scope),
                ));
            }
            self.duration(c.recovered_within.as_deref(), offset)?;
        }
        for c in e.seen.iter().chain(&e.never) {
            self.condition(c, offset)?;
        }
        Ok(())
    }

    fn request_expect(&self, r: &RequestExpectSpec, offset: usize) -> Result<(), SpecError> {
        let table = RequestExpect::from_spec(r).map_err(|m| self.err(offset, m))?;
        for other in [&table.same_child_as, &table.other_child_than]
            .into_iter()
            .flatten()
        {
            if !self.requests.contains(other) && !self.names.contains(other) {
                return Err(self.err(offset, format!("`{other}` is not a request of this case")));
            }
        }
        Ok(())
    }
}

/// Outcome classes a request expectation can name.
pub const OUTCOMES: [&str; 7] = [
    "ok", "failed", "closed", "reset", "refused", "timeout", "pending",
];

/// A request expectation, normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestExpect {
    pub status: Option<u16>,
    pub outcome: Option<String>,
    pub latency_at_least: Option<Duration>,
    pub latency_at_most: Option<Duration>,
    pub same_child_as: Option<String>,
    pub other_child_than: Option<String>,
    pub closes: Option<bool>,
    pub reference_only: bool,
}

impl RequestExpect {
    pub fn from_spec(r: &RequestExpectSpec) -> Result<RequestExpect, String> {
        let t = match r {
            RequestExpectSpec::Status(s) => RequestExpectTable {
                status: Some(*s),
                ..Default::default()
            },
            RequestExpectSpec::Outcome(o) => RequestExpectTable {
                outcome: Some(o.clone()),
                ..Default::default()
            },
            RequestExpectSpec::Full(t) => t.clone(),
        };
        if let Some(o) = &t.outcome {
            if !OUTCOMES.contains(&o.as_str()) {
                return Err(format!(
                    "unknown outcome `{o}` (use {})",
                    OUTCOMES.join(", ")
                ));
            }
        }
        let d = |t: &Option<String>| t.as_deref().map(mpm_faults::duration::parse).transpose();
        Ok(RequestExpect {
            status: t.status,
            outcome: t.outcome.clone(),
            latency_at_least: d(&t.latency_at_least)?,
            latency_at_most: d(&t.latency_at_most)?,
            same_child_as: t.same_child_as.clone(),
            other_child_than: t.other_child_than.clone(),
            closes: t.closes,
            reference_only: t.reference_only,
        })
    }
}

/// Every `*.toml` under `dir`, sorted.
pub fn find_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Loads every case under `dir`; ids must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, Vec<SpecError>> {
    let mut cases: Vec<Case> = Vec::new();
    let mut errors = Vec::new();
    for path in find_files(dir) {
        match load(&path) {
            Ok(case) => {
                if let Some(other) = cases.iter().find(|c| c.id == case.id) {
                    errors.push(SpecError {
                        path: path.clone(),
                        line: 1,
                        column: 1,
                        message: format!(
                            "id `{}` is also used by {}",
                            case.id,
                            other.path.display()
                        ),
                    });
                } else {
                    cases.push(case);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// The JSON Schema of the case format.
pub fn schema() -> String {
    let schema = schemars::schema_for!(CaseFile);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Case, SpecError> {
        parse(Path::new("specs/x.toml"), text)
    }

    const GOOD: &str = r#"
id = "t/one"
title = "one"
[server]
faults = true
all = { KeepAliveTimeout = "2s" }
threaded = { ThreadsPerChild = 2 }

[[step]]
open = "a"

[[step]]
send = "a"
fault = "sleep:100ms"
as = "s"

[[step]]
await = "s"

[expect.all]
requests = { s = 200 }
"#;

    #[test]
    fn a_good_case_loads() {
        let c = p(GOOD).unwrap();
        assert_eq!(c.steps.len(), 3);
        assert_eq!(c.steps[1].line, 12);
        assert_eq!(
            c.settings(Mpm::Worker),
            vec![
                ("KeepAliveTimeout".to_string(), "2s".to_string()),
                ("ThreadsPerChild".to_string(), "2".to_string())
            ]
        );
        assert_eq!(c.settings(Mpm::Prefork).len(), 1);
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = p("id = \"x\"\ntitle = 3\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 9), "{e}");
        let e = p(&GOOD.replace("fault = \"sleep:100ms\"", "fault = \"sleep:soon\"")).unwrap_err();
        assert_eq!(e.line, 12, "{e}");
        assert!(e.message.contains("sleep"), "{e}");
        let e = p(&GOOD.replace("send = \"a\"", "send = \"b\"")).unwrap_err();
        assert!(e.message.contains("`b` is not opened"), "{e}");
        let e = p(&GOOD.replace("ThreadsPerChild = 2", "ThreadsPerChild = \"many\"")).unwrap_err();
        assert!(e.message.contains("ThreadsPerChild"), "{e}");
        assert_eq!(e.line, 7, "{e}");
        let e = p(&GOOD.replace(
            "[[step]]\nopen = \"a\"",
            "[[step]]\nopen = \"a\"\nsend = \"a\"",
        ))
        .unwrap_err();
        assert!(e.message.contains("exactly one action"), "{e}");
        let e = p(&format!("{GOOD}\nbogus = 1\n")).unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn schema_is_json() {
        let s: serde_json::Value = serde_json::from_str(&schema()).unwrap();
        assert!(s["properties"]["step"].is_object());
    }
}
