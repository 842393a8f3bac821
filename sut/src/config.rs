//! The server configuration: Apache's directive names, defaults and validation (the settings
//! table of `docs/statements.md`), read from an Apache-style file (`Directive value` lines, `#` comments) and
//! `--set Directive=value` overrides.
//!
//! Values Apache corrects (MaxSpareServers below MinSpareServers + 1, MaxRequestWorkers not a
//! multiple of ThreadsPerChild, …) are corrected the same way with a warning; values Apache
//! refuses are a [`ConfigError`] naming where the directive came from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use mpm_faults::{duration, size, Fault, FaultSite};

/// The multi-processing module.
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
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mpm {
    Prefork,
    Worker,
    Event,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Prefork, Mpm::Worker, Mpm::Event];

    pub fn as_str(self) -> &'static str {
        match self {
            Mpm::Prefork => "prefork",
            Mpm::Worker => "worker",
            Mpm::Event => "event",
        }
    }

    /// Worker and event run threads; prefork does not.
    pub fn is_threaded(self) -> bool {
        self != Mpm::Prefork
    }
}

impl fmt::Display for Mpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mpm {
    type Err = String;
    fn from_str(s: &str) -> Result<Mpm, String> {
        Mpm::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown MPM `{s}` (use prefork, worker or event)"))
    }
}

/// One stage of mod_reqtimeout's RequestReadTimeout: `header=20-40,MinRate=500`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The initial timeout; zero disables the stage (Timeout applies per read).
    pub timeout: Duration,
    /// The cap on extensions (`-40`); `None` = no cap.
    pub max: Option<Duration>,
    /// Bytes per second that extend the timeout by one second; 0 = no extension.
    pub min_rate: u64,
}

/// mod_reqtimeout's stages.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestReadTimeout {
    pub header: Stage,
    pub body: Stage,
}

impl Default for RequestReadTimeout {
    fn default() -> Self {
        RequestReadTimeout {
            header: Stage {
                timeout: Duration::from_secs(20),
                max: Some(Duration::from_secs(40)),
                min_rate: 500,
            },
            body: Stage {
                timeout: Duration::from_secs(20),
                max: None,
                min_rate: 500,
            },
        }
    }
}

/// A fault configured at a site outside requests: `FAULT [COUNT] [after SKIP]` — pass the site
/// by `after` times, then perform the fault `count` times (`None`: always).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSetting {
    pub fault: Fault,
    pub count: Option<u32>,
    pub after: u32,
}

/// Faults at the sites no request reaches (only performed with `--faults`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSettings {
    pub child_start: Option<FaultSetting>,
    pub fork: Option<FaultSetting>,
    pub accept: Option<FaultSetting>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) mpm: Mpm,
    pub(crate) listen: SocketAddr,
    pub(crate) listen_backlog: u32,
    /// SendBufferSize: SO_SNDBUF of the listening socket, which accepted connections inherit
    /// (0: the kernel's default, which grows with the connection).
    pub(crate) send_buffer_size: u32,
    pub(crate) start_servers: u32,
    pub(crate) min_spare_servers: u32,
    pub(crate) max_spare_servers: u32,
    pub(crate) server_limit: u32,
    pub(crate) thread_limit: u32,
    pub(crate) threads_per_child: u32,
    pub(crate) min_spare_threads: u32,
    pub(crate) max_spare_threads: u32,
    pub(crate) max_request_workers: u32,
    pub(crate) max_connections_per_child: u32,
    pub(crate) async_request_worker_factor: f64,
    pub(crate) keep_alive: bool,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_keep_alive_requests: u32,
    pub(crate) timeout: Duration,
    /// `None` = wait for ever (GracefulShutdownTimeout 0).
    pub(crate) graceful_shutdown_timeout: Option<Duration>,
    pub(crate) limit_request_line: usize,
    pub(crate) limit_request_field_size: usize,
    pub(crate) limit_request_fields: usize,
    /// 0 = unlimited.
    pub(crate) limit_request_body: u64,
    pub(crate) request_read_timeout: RequestReadTimeout,
    pub(crate) faults: FaultSettings,
    /// Corrections made while validating, for the error log.
    pub(crate) warnings: Vec<String>,
}

/// Where a directive came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize },
    Set,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Set => f.write_str("--set"),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {directive}: {message}")]
    Directive {
        origin: Origin,
        directive: String,
        message: String,
    },
    #[error("{origin}: syntax error: {message}")]
    Syntax { origin: Origin, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// A directive as written, before validation.
#[derive(Debug, Clone)]
struct Raw {
    origin: Origin,
    name: String,
    value: String,
}

/// Which MPMs a directive belongs to.
#[derive(Clone, Copy)]
enum Scope {
    All,
    Prefork,
    Threaded,
    Event,
}

/// Every directive refhttpd knows, by Apache's name (case-insensitive, as Apache).
const DIRECTIVES: &[(&str, Scope)] = &[
    ("Listen", Scope::All),
    ("ListenBacklog", Scope::All),
    ("SendBufferSize", Scope::All),
    ("StartServers", Scope::All),
    ("MinSpareServers", Scope::Prefork),
    ("MaxSpareServers", Scope::Prefork),
    ("ServerLimit", Scope::All),
    ("ThreadLimit", Scope::Threaded),
    ("ThreadsPerChild", Scope::Threaded),
    ("MinSpareThreads", Scope::Threaded),
    ("MaxSpareThreads", Scope::Threaded),
    ("MaxRequestWorkers", Scope::All),
    ("MaxClients", Scope::All),
    ("MaxConnectionsPerChild", Scope::All),
    ("MaxRequestsPerChild", Scope::All),
    ("AsyncRequestWorkerFactor", Scope::Event),
    ("KeepAlive", Scope::All),
    ("KeepAliveTimeout", Scope::All),
    ("MaxKeepAliveRequests", Scope::All),
    ("Timeout", Scope::All),
    ("GracefulShutdownTimeout", Scope::All),
    ("LimitRequestLine", Scope::All),
    ("LimitRequestFieldSize", Scope::All),
    ("LimitRequestFields", Scope::All),
    ("LimitRequestBody", Scope::All),
    ("RequestReadTimeout", Scope::All),
    ("FaultChildStart", Scope::All),
    ("FaultFork", Scope::All),
    ("FaultAccept", Scope::All),
];

/// Apache's hard maxima (MAX_SERVER_LIMIT, MAX_THREAD_LIMIT).
const MAX_SERVER_LIMIT_PREFORK: u32 = 200_000;
const MAX_SERVER_LIMIT_THREADED: u32 = 20_000;
const MAX_THREAD_LIMIT: u32 = 100_000;

impl Config {
    /// Apache's defaults for `mpm`.
    fn defaults(mpm: Mpm) -> Config {
        let threaded = mpm.is_threaded();
        Config {
            mpm,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            listen_backlog: 511,
            send_buffer_size: 0,
            start_servers: if threaded { 3 } else { 5 },
            min_spare_servers: 5,
            max_spare_servers: 10,
            server_limit: if threaded { 16 } else { 256 },
            thread_limit: if threaded { 64 } else { 1 },
            threads_per_child: if threaded { 25 } else { 1 },
            min_spare_threads: 75,
            max_spare_threads: 250,
            max_request_workers: if threaded { 400 } else { 256 },
            max_connections_per_child: 0,
            async_request_worker_factor: 2.0,
            keep_alive: true,
            keep_alive_timeout: Duration::from_secs(5),
            max_keep_alive_requests: 100,
            timeout: Duration::from_secs(60),
            graceful_shutdown_timeout: None,
            limit_request_line: 8190,
            limit_request_field_size: 8190,
            limit_request_fields: 100,
            limit_request_body: 1 << 30,
            request_read_timeout: RequestReadTimeout::default(),
            faults: FaultSettings::default(),
            warnings: Vec::new(),
        }
    }

    /// Reads `file` (if any), then the `--set` overrides, applies them over the defaults and
    /// validates. `faults_enabled` only decides whether fault directives are warned about.
    pub fn load(
        mpm: Mpm,
        file: Option<&Path>,
        sets: &[String],
        faults_enabled: bool,
    ) -> Result<Config, ConfigError> {
        let mut raws = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            raws.extend(parse_file(path, &text)?);
        }
        for set in sets {
            raws.push(parse_set(set)?);
        }
        let mut cfg = Config::defaults(mpm);
        let mut explicit = Explicit::default();
        for raw in &raws {
            cfg.apply(raw, &mut explicit)?;
        }
        cfg.validate(&explicit)?;
        if !faults_enabled {
            let f = &cfg.faults;
            if f.child_start.is_some() || f.fork.is_some() || f.accept.is_some() {
                cfg.warnings
                    .push("Fault* directives are ignored without --faults".to_string());
            }
        }
        Ok(cfg)
    }

    fn apply(&mut self, raw: &Raw, explicit: &mut Explicit) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::Directive {
            origin: raw.origin.clone(),
            directive: raw.name.clone(),
            message,
        };
        let Some((name, scope)) = DIRECTIVES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&raw.name))
        else {
            return Err(err(
                "unknown directive, perhaps misspelled or not supported by refhttpd".into(),
            ));
        };
        let allowed = match scope {
            Scope::All => true,
            Scope::Prefork => self.mpm == Mpm::Prefork,
            Scope::Threaded => self.mpm.is_threaded(),
            Scope::Event => self.mpm == Mpm::Event,
        };
        if !allowed {
            return Err(err(format!("not a directive of the {} MPM", self.mpm)));
        }
        let v = raw.value.trim();
        match *name {
            "Listen" => self.listen = parse_listen(v).map_err(err)?,
            "ListenBacklog" => self.listen_backlog = number(v, 1).map_err(err)?,
            "SendBufferSize" => self.send_buffer_size = send_buffer_size(v).map_err(err)?,
            "StartServers" => self.start_servers = number(v, 0).map_err(err)?,
            "MinSpareServers" => self.min_spare_servers = number(v, 0).map_err(err)?,
            "MaxSpareServers" => self.max_spare_servers = number(v, 0).map_err(err)?,
            "ServerLimit" => self.server_limit = number(v, 1).map_err(err)?,
            "ThreadLimit" => self.thread_limit = number(v, 1).map_err(err)?,
            "ThreadsPerChild" => self.threads_per_child = number(v, 1).map_err(err)?,
            "MinSpareThreads" => self.min_spare_threads = number(v, 0).map_err(err)?,
            "MaxSpareThreads" => self.max_spare_threads = number(v, 0).map_err(err)?,
            "MaxRequestWorkers" | "MaxClients" => {
                self.max_request_workers = number(v, 1).map_err(err)?;
                explicit.max_request_workers = true;
            }
            "MaxConnectionsPerChild" | "MaxRequestsPerChild" => {
                self.max_connections_per_child = number(v, 0).map_err(err)?
            }
            "AsyncRequestWorkerFactor" => {
                let f: f64 = v
                    .parse()
                    .map_err(|_| err(format!("`{v}` is not a number")))?;
                if !(f.is_finite() && f > 0.0) {
                    return Err(err(format!("`{v}` must be a positive number")));
                }
                // As Apache's set_worker_factor: below 1 counts as 1.
                self.async_request_worker_factor = f.max(1.0);
            }
            "KeepAlive" => self.keep_alive = on_off(v).map_err(err)?,
            "KeepAliveTimeout" => self.keep_alive_timeout = parse_duration(v).map_err(err)?,
            "MaxKeepAliveRequests" => self.max_keep_alive_requests = number(v, 0).map_err(err)?,
            "Timeout" => self.timeout = positive_duration(v).map_err(err)?,
            "GracefulShutdownTimeout" => {
                let d = parse_duration(v).map_err(err)?;
                self.graceful_shutdown_timeout = (!d.is_zero()).then_some(d);
            }
            "LimitRequestLine" => self.limit_request_line = number::<usize>(v, 1).map_err(err)?,
            "LimitRequestFieldSize" => {
                self.limit_request_field_size = number::<usize>(v, 1).map_err(err)?
            }
            "LimitRequestFields" => {
                self.limit_request_fields = number::<usize>(v, 1).map_err(err)?
            }
            "LimitRequestBody" => {
                self.limit_request_body = size::parse(v).map_err(|e| err(e.to_string()))?
            }
            "RequestReadTimeout" => {
                parse_reqtimeout(v, &mut self.request_read_timeout).map_err(err)?
            }
            "FaultChildStart" => {
                self.faults.child_start =
                    Some(fault_setting(v, FaultSite::ChildStart).map_err(err)?)
            }
            "FaultFork" => self.faults.fork = Some(fault_setting(v, FaultSite::Fork).map_err(err)?),
            "FaultAccept" => {
                self.faults.accept = Some(fault_setting(v, FaultSite::Accept).map_err(err)?)
            }
            other => unreachable!("directive {other} in the table but not applied"),
        }
        Ok(())
    }

    /// Apache's corrections and refusals, in the order its MPMs apply them.
    fn validate(&mut self, explicit: &Explicit) -> Result<(), ConfigError> {
        if self.mpm.is_threaded() {
            self.validate_threaded(explicit)
        } else {
            self.validate_prefork()
        }?;
        if self.start_servers > self.server_limit {
            self.warn(format!(
                "StartServers of {} exceeds ServerLimit of {}, decreasing to match",
                self.start_servers, self.server_limit
            ));
            self.start_servers = self.server_limit;
        }
        Ok(())
    }

    fn validate_prefork(&mut self) -> Result<(), ConfigError> {
        if self.server_limit > MAX_SERVER_LIMIT_PREFORK {
            return Err(ConfigError::Invalid(format!(
                "ServerLimit of {} exceeds compile-time limit of {MAX_SERVER_LIMIT_PREFORK}",
                self.server_limit
            )));
        }
        if self.max_request_workers > self.server_limit {
            self.warn(format!(
                "MaxRequestWorkers of {} exceeds ServerLimit value of {} servers, decreasing MaxRequestWorkers to {}",
                self.max_request_workers, self.server_limit, self.server_limit
            ));
            self.max_request_workers = self.server_limit;
        }
        if self.min_spare_servers == 0 {
            self.warn("MinSpareServers set to non-positive, resetting to 1".into());
            self.min_spare_servers = 1;
        }
        if self.max_spare_servers < self.min_spare_servers + 1 {
            self.max_spare_servers = self.min_spare_servers + 1;
        }
        self.thread_limit = 1;
        self.threads_per_child = 1;
        Ok(())
    }

    fn validate_threaded(&mut self, explicit: &Explicit) -> Result<(), ConfigError> {
        if self.server_limit > MAX_SERVER_LIMIT_THREADED {
            return Err(ConfigError::Invalid(format!(
                "ServerLimit of {} exceeds compile-time limit of {MAX_SERVER_LIMIT_THREADED}",
                self.server_limit
            )));
        }
        if self.thread_limit > MAX_THREAD_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "ThreadLimit of {} exceeds compile-time limit of {MAX_THREAD_LIMIT}",
                self.thread_limit
            )));
        }
        if self.threads_per_child > self.thread_limit {
            self.warn(format!(
                "ThreadsPerChild of {} exceeds ThreadLimit of {}, decreasing to match",
                self.threads_per_child, self.thread_limit
            ));
            self.threads_per_child = self.thread_limit;
        }
        let tpc = self.threads_per_child;
        if !explicit.max_request_workers {
            self.max_request_workers = self.server_limit * tpc;
        }
        if self.max_request_workers < tpc {
            self.warn(format!(
                "MaxRequestWorkers of {} is less than ThreadsPerChild of {tpc}, increasing to {tpc}",
                self.max_request_workers
            ));
            self.max_request_workers = tpc;
        }
        if !self.max_request_workers.is_multiple_of(tpc) {
            let rounded = self.max_request_workers / tpc * tpc;
            self.warn(format!(
                "MaxRequestWorkers of {} is not an integer multiple of ThreadsPerChild of {tpc}, decreasing to nearest multiple {rounded}",
                self.max_request_workers
            ));
            self.max_request_workers = rounded;
        }
        let children = self.max_request_workers / tpc;
        if children > self.server_limit {
            let capped = self.server_limit * tpc;
            self.warn(format!(
                "MaxRequestWorkers of {} would require {children} servers and would exceed ServerLimit of {}, decreasing to {capped}",
                self.max_request_workers, self.server_limit
            ));
            self.max_request_workers = capped;
        }
        // Apache's worker_run()/event_run() with one listener bucket: at least one spare thread,
        // and room for one more child plus a thread above the minimum, so that maintenance does
        // not retire a child it would start again at the next tick.
        self.min_spare_threads = self.min_spare_threads.max(1);
        if self.max_spare_threads < self.min_spare_threads + tpc + 1 {
            self.max_spare_threads = self.min_spare_threads + tpc + 1;
        }
        Ok(())
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// The most children that may run at once: MaxRequestWorkers in children, within
    /// ServerLimit.
    pub(crate) fn max_children(&self) -> u32 {
        (self.max_request_workers / self.threads_per_child.max(1))
            .max(1)
            .min(self.server_limit)
    }
}

/// Which settings were given (MaxRequestWorkers defaults to ServerLimit × ThreadsPerChild).
#[derive(Default)]
struct Explicit {
    max_request_workers: bool,
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<Raw>, ConfigError> {
    let mut raws = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('<') {
            return Err(ConfigError::Syntax {
                origin,
                message: format!("sections such as `{line}` are not supported"),
            });
        }
        let (name, value) = match line.split_once(char::is_whitespace) {
            Some((n, v)) => (n, v.trim()),
            None => {
                return Err(ConfigError::Directive {
                    origin,
                    directive: line.to_string(),
                    message: "needs a value".into(),
                })
            }
        };
        raws.push(Raw {
            origin,
            name: name.to_string(),
            value: unquote(value).to_string(),
        });
    }
    Ok(raws)
}

fn parse_set(set: &str) -> Result<Raw, ConfigError> {
    match set.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok(Raw {
            origin: Origin::Set,
            name: name.trim().to_string(),
            value: value.trim().to_string(),
        }),
        _ => Err(ConfigError::Syntax {
            origin: Origin::Set,
            message: format!("`{set}` is not Directive=value"),
        }),
    }
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

fn number<T>(v: &str, min: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let n: T = v
        .parse()
        .map_err(|_| format!("`{v}` is not a whole number"))?;
    if n < min {
        return Err(format!("must be at least {min}, got {v}"));
    }
    Ok(n)
}

/// Apache's rule: 0 for the system default, else at least 512 bytes.
fn send_buffer_size(v: &str) -> Result<u32, String> {
    match number(v, 0)? {
        n @ 1..512 => Err(format!(
            "must be at least 512 bytes, or 0 for the system default, got {n}"
        )),
        n => Ok(n),
    }
}

fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("must be On or Off, got `{v}`")),
    }
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    duration::parse(v)
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    let d = duration::parse(v)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = v.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    v.parse::<SocketAddr>()
        .map_err(|_| format!("`{v}` is not a port or IP:PORT"))
}

/// `header=20-40,MinRate=500 body=20,MinRate=500` (mod_reqtimeout); `handshake=` is accepted and
/// ignored (no TLS here).
fn parse_reqtimeout(v: &str, rrt: &mut RequestReadTimeout) -> Result<(), String> {
    for part in v.split_whitespace() {
        let (stage_name, spec) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not stage=timeout[-max][,MinRate=rate]"))?;
        let mut fields = spec.split(',');
        let times = fields.next().unwrap_or("");
        let (timeout, max) = match times.split_once('-') {
            Some((t, m)) => (duration::parse(t)?, Some(duration::parse(m)?)),
            None => (duration::parse(times)?, None),
        };
        if max.is_some_and(|m| m < timeout) {
            return Err(format!("in `{part}` the maximum is below the timeout"));
        }
        let mut min_rate = 0;
        for field in fields {
            let (k, rate) = field
                .split_once('=')
                .filter(|(k, _)| k.eq_ignore_ascii_case("minrate"))
                .ok_or_else(|| format!("`{field}` is not MinRate=bytes"))?;
            let _ = k;
            min_rate = rate
                .parse()
                .map_err(|_| format!("MinRate `{rate}` is not a whole number"))?;
        }
        if max.is_some() && min_rate == 0 {
            return Err(format!("`{part}`: a maximum needs a MinRate"));
        }
        let stage = Stage {
            timeout,
            max,
            min_rate,
        };
        match stage_name.to_ascii_lowercase().as_str() {
            "header" => rrt.header = stage,
            "body" => rrt.body = stage,
            "handshake" => {}
            other => return Err(format!("unknown stage `{other}` (use header or body)")),
        }
    }
    Ok(())
}

/// `crash:segv` or `crash:segv 3` (perform it the first 3 times).
fn fault_setting(v: &str, site: FaultSite) -> Result<FaultSetting, String> {
    let mut words = v.split_whitespace();
    let text = words.next().ok_or("needs a fault")?;
    let fault: Fault = text
        .parse()
        .map_err(|e: mpm_faults::ParseFaultError| e.to_string())?;
    if !fault.allowed_at(site) {
        return Err(format!("`{fault}` cannot be performed at {site}"));
    }
    let whole = |what: &str, n: &str| {
        n.parse::<u32>()
            .map_err(|_| format!("{what} `{n}` is not a whole number"))
    };
    let mut next = words.next();
    let count = match next {
        Some(n) if n != "after" => {
            next = words.next();
            Some(whole("count", n)?)
        }
        _ => None,
    };
    let after = match next {
        None => 0,
        Some("after") => whole("after", words.next().ok_or("`after` needs a number")?)?,
        Some(extra) => return Err(format!("unexpected `{extra}` (FAULT [COUNT] [after N])")),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected `{extra}` (FAULT [COUNT] [after N])"));
    }
    Ok(FaultSetting {
        fault,
        count,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(mpm: Mpm, sets: &[&str]) -> Result<Config, ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(mpm, None, &sets, true)
    }

    /// Parses configuration text as if it came from `path`.
    fn from_text(mpm: Mpm, path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::defaults(mpm);
        let mut explicit = Explicit::default();
        for raw in parse_file(path, text)? {
            cfg.apply(&raw, &mut explicit)?;
        }
        cfg.validate(&explicit)?;
        Ok(cfg)
    }

    #[test]
    fn defaults_are_apaches() {
        let p = load(Mpm::Prefork, &[]).unwrap();
        assert_eq!(
            (p.start_servers, p.server_limit, p.max_request_workers),
            (5, 256, 256)
        );
        assert_eq!((p.min_spare_servers, p.max_spare_servers), (5, 10));
        let w = load(Mpm::Worker, &[]).unwrap();
        assert_eq!(
            (w.start_servers, w.server_limit, w.threads_per_child),
            (3, 16, 25)
        );
        assert_eq!(
            (
                w.max_request_workers,
                w.min_spare_threads,
                w.max_spare_threads
            ),
            (400, 75, 250)
        );
        assert_eq!(w.keep_alive_timeout, Duration::from_secs(5));
        assert_eq!(w.timeout, Duration::from_secs(60));
        assert_eq!(w.limit_request_body, 1 << 30);
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    }

    #[test]
    fn max_spare_threads_leaves_room_for_a_child_and_a_thread() {
        let c = load(
            Mpm::Worker,
            &[
                "ThreadsPerChild=2",
                "MinSpareThreads=1",
                "MaxSpareThreads=3",
            ],
        )
        .unwrap();
        assert_eq!((c.min_spare_threads, c.max_spare_threads), (1, 4));
        let c = load(
            Mpm::Event,
            &[
                "ThreadsPerChild=2",
                "MinSpareThreads=0",
                "MaxSpareThreads=9",
            ],
        )
        .unwrap();
        assert_eq!((c.min_spare_threads, c.max_spare_threads), (1, 9));
    }

    #[test]
    fn send_buffer_size_is_0_or_at_least_512() {
        assert_eq!(load(Mpm::Event, &[]).unwrap().send_buffer_size, 0);
        let c = load(Mpm::Event, &["SendBufferSize=16384"]).unwrap();
        assert_eq!(c.send_buffer_size, 16384);
        let e = load(Mpm::Prefork, &["SendBufferSize=100"]).unwrap_err();
        assert!(e.to_string().contains("at least 512 bytes"), "{e}");
    }

    #[test]
    fn durations_take_units() {
        let c = load(Mpm::Event, &["KeepAliveTimeout=200ms", "Timeout=3"]).unwrap();
        assert_eq!(c.keep_alive_timeout, Duration::from_millis(200));
        assert_eq!(c.timeout, Duration::from_secs(3));
    }

    #[test]
    fn apache_corrections() {
        let c = load(Mpm::Worker, &["ThreadsPerChild=4", "MaxRequestWorkers=10"]).unwrap();
        assert_eq!(c.max_request_workers, 8);
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("not an integer multiple")));
        let c = load(Mpm::Prefork, &["MinSpareServers=8", "MaxSpareServers=2"]).unwrap();
        assert_eq!(c.max_spare_servers, 9);
        let c = load(Mpm::Prefork, &["ServerLimit=4"]).unwrap();
        assert_eq!(c.max_request_workers, 4);
        assert_eq!(c.start_servers, 4);
        let c = load(Mpm::Event, &["ThreadsPerChild=2", "MaxRequestWorkers=4"]).unwrap();
        assert_eq!(c.max_children(), 2);
        assert_eq!(c.max_spare_threads, 250);
    }

    #[test]
    fn errors_name_the_place() {
        let e = load(Mpm::Worker, &["KeepAliveTimeout=soon"]).unwrap_err();
        assert!(e.to_string().starts_with("--set: KeepAliveTimeout:"), "{e}");
        let e = load(Mpm::Prefork, &["ThreadsPerChild=4"]).unwrap_err();
        assert!(
            e.to_string().contains("not a directive of the prefork MPM"),
            "{e}"
        );
        let e = from_text(Mpm::Worker, Path::new("x.conf"), "# c\n\nFrobnicate 3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.conf:3: Frobnicate: unknown directive, perhaps misspelled or not supported by refhttpd"
        );
        assert!(load(Mpm::Worker, &["Timeout=0"]).is_err());
        assert!(load(Mpm::Worker, &["nonsense"]).is_err());
    }

    #[test]
    fn request_read_timeout_and_faults() {
        let c = load(
            Mpm::Event,
            &[
                "RequestReadTimeout=header=1-2,MinRate=100 body=0",
                "FaultFork=fail:eagain 2",
            ],
        )
        .unwrap();
        assert_eq!(
            c.request_read_timeout.header.timeout,
            Duration::from_secs(1)
        );
        assert_eq!(
            c.request_read_timeout.header.max,
            Some(Duration::from_secs(2))
        );
        assert_eq!(c.request_read_timeout.body.timeout, Duration::ZERO);
        assert_eq!(c.faults.fork.as_ref().unwrap().count, Some(2));
        assert!(load(Mpm::Event, &["FaultFork=crash:segv"]).is_err());
        assert!(load(Mpm::Event, &["FaultChildStart=fail:eagain"]).is_err());
    }
}
