//! The server configuration: Apache's directive names, defaults and validation (the settings
//! table of `docs/statements.md`), read from an Apache-style file (`Directive value` lines, `#` comments) and
//! `--set Directive=value` overrides.
//!
//! One table (`DIRECTIVES`) holds each directive whole: its name and older names, the MPMs it
//! belongs to, its default (written as a value, and applied as one) and how a value is checked
//! and applied. [`Config::is_fault_directive`] and [`Config::default_value`] answer from it.
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

use crate::tls::TlsServer;

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

/// One stage of mod_reqtimeout's RequestReadTimeout: `header=20-40,MinRate=500`. Its
/// `Default` is a disabled stage (Apache's default is in the directive table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage {
    /// The initial timeout; zero disables the stage (Timeout applies per read).
    pub timeout: Duration,
    /// The cap on extensions (`-40`); `None` = no cap.
    pub max: Option<Duration>,
    /// Bytes per second that extend the timeout by one second; 0 = no extension.
    pub min_rate: u64,
}

/// mod_reqtimeout's stages. Its `Default` disables both (Apache's default is in the directive
/// table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestReadTimeout {
    /// The TLS handshake (off by default, as Apache's: then Timeout bounds each read).
    pub handshake: Stage,
    pub header: Stage,
    pub body: Stage,
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

impl FaultSettings {
    /// The setting of `site`.
    fn at_mut(&mut self, site: FaultSite) -> &mut Option<FaultSetting> {
        match site {
            FaultSite::ChildStart => &mut self.child_start,
            FaultSite::Fork => &mut self.fork,
            FaultSite::Accept => &mut self.accept,
        }
    }
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
    /// SSLEngine: the listener serves TLS.
    pub(crate) ssl_engine: bool,
    pub(crate) ssl_certificate_file: Option<PathBuf>,
    pub(crate) ssl_certificate_key_file: Option<PathBuf>,
    /// Built from the two files when SSLEngine is on (validation).
    pub(crate) tls: Option<TlsServer>,
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

impl Scope {
    fn allows(self, mpm: Mpm) -> bool {
        match self {
            Scope::All => true,
            Scope::Prefork => mpm == Mpm::Prefork,
            Scope::Threaded => mpm.is_threaded(),
            Scope::Event => mpm == Mpm::Event,
        }
    }
}

/// A directive's default, written as a value of it would be (`5`, `On`, `200ms`), and applied
/// as a value is.
#[derive(Clone, Copy)]
enum Initial {
    /// Unset until the directive is given (a fault site, mod_ssl's files).
    Unset,
    /// The same under every MPM.
    All(&'static str),
    /// prefork's, and worker's and event's.
    ByMpm {
        prefork: &'static str,
        threaded: &'static str,
    },
}

impl Initial {
    fn for_mpm(self, mpm: Mpm) -> Option<&'static str> {
        match self {
            Initial::Unset => None,
            Initial::All(text) => Some(text),
            Initial::ByMpm { prefork, threaded } => {
                Some(if mpm.is_threaded() { threaded } else { prefork })
            }
        }
    }
}

/// Checks a value and sets what it configures; [`Explicit`] records that a setting was given
/// where its default depends on other settings.
type SetFn = fn(&mut Config, &str, &mut Explicit) -> Result<(), String>;

/// How a directive's value is applied.
#[derive(Clone, Copy)]
enum Apply {
    /// A setting of the server.
    Setting(SetFn),
    /// A fault at a site no request reaches (`FAULT [COUNT] [after SKIP]`), performed only with
    /// `--faults`.
    Fault(FaultSite),
}

/// One directive refhttpd knows: Apache's name (matched case-insensitively, as Apache) and the
/// older names Apache still takes for it, the MPMs it belongs to, its default, and how a value
/// is checked and applied.
struct Directive {
    name: &'static str,
    aliases: &'static [&'static str],
    scope: Scope,
    default: Initial,
    apply: Apply,
}

impl Directive {
    const fn setting(name: &'static str, scope: Scope, default: Initial, set: SetFn) -> Directive {
        Directive {
            name,
            aliases: &[],
            scope,
            default,
            apply: Apply::Setting(set),
        }
    }

    const fn fault(name: &'static str, site: FaultSite) -> Directive {
        Directive {
            name,
            aliases: &[],
            scope: Scope::All,
            default: Initial::Unset,
            apply: Apply::Fault(site),
        }
    }

    const fn alias(self, aliases: &'static [&'static str]) -> Directive {
        Directive { aliases, ..self }
    }

    /// The directive called `name` (or one of its older names), case-insensitively.
    fn find(name: &str) -> Option<&'static Directive> {
        DIRECTIVES.iter().find(|d| {
            std::iter::once(&d.name)
                .chain(d.aliases)
                .any(|n| n.eq_ignore_ascii_case(name))
        })
    }

    fn is_fault(&self) -> bool {
        matches!(self.apply, Apply::Fault(_))
    }

    /// Applies `value` (trimmed) to `cfg`; the message says what is wrong with it.
    fn apply_to(
        &self,
        cfg: &mut Config,
        value: &str,
        explicit: &mut Explicit,
    ) -> Result<(), String> {
        match self.apply {
            Apply::Setting(set) => set(cfg, value, explicit),
            Apply::Fault(site) => {
                *cfg.faults.at_mut(site) = Some(fault_setting(value, site)?);
                Ok(())
            }
        }
    }
}

/// Sets `field` to a parsed value.
fn set<T>(field: &mut T, parsed: Result<T, String>) -> Result<(), String> {
    *field = parsed?;
    Ok(())
}

/// Every directive refhttpd knows, with Apache's defaults (refhttpd's own for `Listen`: a free
/// port on the loopback address). A default goes through the same checks as a given value.
static DIRECTIVES: &[Directive] = &[
    Directive::setting(
        "Listen",
        Scope::All,
        Initial::All("127.0.0.1:0"),
        |c, v, _| set(&mut c.listen, parse_listen(v)),
    ),
    Directive::setting(
        "ListenBacklog",
        Scope::All,
        Initial::All("511"),
        |c, v, _| set(&mut c.listen_backlog, number(v, 1)),
    ),
    Directive::setting(
        "SendBufferSize",
        Scope::All,
        Initial::All("0"),
        |c, v, _| set(&mut c.send_buffer_size, send_buffer_size(v)),
    ),
    Directive::setting(
        "StartServers",
        Scope::All,
        Initial::ByMpm {
            prefork: "5",
            threaded: "3",
        },
        |c, v, _| set(&mut c.start_servers, number(v, 0)),
    ),
    Directive::setting(
        "MinSpareServers",
        Scope::Prefork,
        Initial::All("5"),
        |c, v, _| set(&mut c.min_spare_servers, number(v, 0)),
    ),
    Directive::setting(
        "MaxSpareServers",
        Scope::Prefork,
        Initial::All("10"),
        |c, v, _| set(&mut c.max_spare_servers, number(v, 0)),
    ),
    Directive::setting(
        "ServerLimit",
        Scope::All,
        Initial::ByMpm {
            prefork: "256",
            threaded: "16",
        },
        |c, v, _| set(&mut c.server_limit, number(v, 1)),
    ),
    Directive::setting(
        "ThreadLimit",
        Scope::Threaded,
        Initial::ByMpm {
            prefork: "1",
            threaded: "64",
        },
        |c, v, _| set(&mut c.thread_limit, number(v, 1)),
    ),
    Directive::setting(
        "ThreadsPerChild",
        Scope::Threaded,
        Initial::ByMpm {
            prefork: "1",
            threaded: "25",
        },
        |c, v, _| set(&mut c.threads_per_child, number(v, 1)),
    ),
    Directive::setting(
        "MinSpareThreads",
        Scope::Threaded,
        Initial::All("75"),
        |c, v, _| set(&mut c.min_spare_threads, number(v, 0)),
    ),
    Directive::setting(
        "MaxSpareThreads",
        Scope::Threaded,
        Initial::All("250"),
        |c, v, _| set(&mut c.max_spare_threads, number(v, 0)),
    ),
    Directive::setting(
        "MaxRequestWorkers",
        Scope::All,
        Initial::ByMpm {
            prefork: "256",
            threaded: "400",
        },
        |c, v, explicit| {
            explicit.max_request_workers = true;
            set(&mut c.max_request_workers, number(v, 1))
        },
    )
    .alias(&["MaxClients"]),
    Directive::setting(
        "MaxConnectionsPerChild",
        Scope::All,
        Initial::All("0"),
        |c, v, _| set(&mut c.max_connections_per_child, number(v, 0)),
    )
    .alias(&["MaxRequestsPerChild"]),
    Directive::setting(
        "AsyncRequestWorkerFactor",
        Scope::Event,
        Initial::All("2"),
        |c, v, _| {
            let f: f64 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
            if !(f.is_finite() && f > 0.0) {
                return Err(format!("`{v}` must be a positive number"));
            }
            // As Apache's set_worker_factor: below 1 counts as 1.
            c.async_request_worker_factor = f.max(1.0);
            Ok(())
        },
    ),
    Directive::setting("KeepAlive", Scope::All, Initial::All("On"), |c, v, _| {
        set(&mut c.keep_alive, on_off(v))
    }),
    Directive::setting(
        "KeepAliveTimeout",
        Scope::All,
        Initial::All("5"),
        |c, v, _| set(&mut c.keep_alive_timeout, parse_duration(v)),
    ),
    Directive::setting(
        "MaxKeepAliveRequests",
        Scope::All,
        Initial::All("100"),
        |c, v, _| set(&mut c.max_keep_alive_requests, number(v, 0)),
    ),
    Directive::setting("Timeout", Scope::All, Initial::All("60"), |c, v, _| {
        set(&mut c.timeout, positive_duration(v))
    }),
    Directive::setting(
        "GracefulShutdownTimeout",
        Scope::All,
        Initial::All("0"),
        |c, v, _| {
            let d = parse_duration(v)?;
            c.graceful_shutdown_timeout = (!d.is_zero()).then_some(d);
            Ok(())
        },
    ),
    Directive::setting(
        "LimitRequestLine",
        Scope::All,
        Initial::All("8190"),
        |c, v, _| set(&mut c.limit_request_line, number(v, 1)),
    ),
    Directive::setting(
        "LimitRequestFieldSize",
        Scope::All,
        Initial::All("8190"),
        |c, v, _| set(&mut c.limit_request_field_size, number(v, 1)),
    ),
    Directive::setting(
        "LimitRequestFields",
        Scope::All,
        Initial::All("100"),
        |c, v, _| set(&mut c.limit_request_fields, number(v, 1)),
    ),
    Directive::setting(
        "LimitRequestBody",
        Scope::All,
        Initial::All("1073741824"),
        |c, v, _| set(&mut c.limit_request_body, size::parse(v)),
    ),
    Directive::setting(
        "RequestReadTimeout",
        Scope::All,
        Initial::All("header=20-40,MinRate=500 body=20,MinRate=500"),
        |c, v, _| parse_reqtimeout(v, &mut c.request_read_timeout),
    ),
    // mod_ssl's: the file directives are checked as they are read, so an unreadable file is an
    // error at its line; the pair is put together when SSLEngine is on (validation).
    Directive::setting("SSLEngine", Scope::All, Initial::All("off"), |c, v, _| {
        set(&mut c.ssl_engine, on_off(v))
    }),
    Directive::setting(
        "SSLCertificateFile",
        Scope::All,
        Initial::Unset,
        |c, v, _| {
            let path = PathBuf::from(v);
            crate::tls::certificates(&path)?;
            c.ssl_certificate_file = Some(path);
            Ok(())
        },
    ),
    Directive::setting(
        "SSLCertificateKeyFile",
        Scope::All,
        Initial::Unset,
        |c, v, _| {
            let path = PathBuf::from(v);
            crate::tls::private_key(&path)?;
            c.ssl_certificate_key_file = Some(path);
            Ok(())
        },
    ),
    Directive::fault("FaultChildStart", FaultSite::ChildStart),
    Directive::fault("FaultFork", FaultSite::Fork),
    Directive::fault("FaultAccept", FaultSite::Accept),
];

/// Apache's hard maxima (MAX_SERVER_LIMIT, MAX_THREAD_LIMIT).
const MAX_SERVER_LIMIT_PREFORK: u32 = 200_000;
const MAX_SERVER_LIMIT_THREADED: u32 = 20_000;
const MAX_THREAD_LIMIT: u32 = 100_000;

impl Config {
    /// The defaults for `mpm`: every directive's default of the table, applied over
    /// [`Config::unset`].
    fn defaults(mpm: Mpm) -> Config {
        let mut cfg = Config::unset(mpm);
        let mut given = Explicit::default();
        for d in DIRECTIVES {
            if let Some(text) = d.default.for_mpm(mpm) {
                // Every default is checked under every MPM by the tests
                // (the_tables_defaults_are_the_settings_apache_starts_with).
                d.apply_to(&mut cfg, text, &mut given)
                    .unwrap_or_else(|e| panic!("the default of {} is refused: {e}", d.name));
            }
        }
        cfg
    }

    /// A configuration no directive has set yet: zero, off, empty. The defaults come from the
    /// directive table ([`Config::defaults`]).
    fn unset(mpm: Mpm) -> Config {
        Config {
            mpm,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            listen_backlog: 0,
            send_buffer_size: 0,
            start_servers: 0,
            min_spare_servers: 0,
            max_spare_servers: 0,
            server_limit: 0,
            thread_limit: 0,
            threads_per_child: 0,
            min_spare_threads: 0,
            max_spare_threads: 0,
            max_request_workers: 0,
            max_connections_per_child: 0,
            async_request_worker_factor: 0.0,
            keep_alive: false,
            keep_alive_timeout: Duration::ZERO,
            max_keep_alive_requests: 0,
            timeout: Duration::ZERO,
            graceful_shutdown_timeout: None,
            limit_request_line: 0,
            limit_request_field_size: 0,
            limit_request_fields: 0,
            limit_request_body: 0,
            request_read_timeout: RequestReadTimeout::default(),
            ssl_engine: false,
            ssl_certificate_file: None,
            ssl_certificate_key_file: None,
            tls: None,
            faults: FaultSettings::default(),
            warnings: Vec::new(),
        }
    }

    /// Whether `directive` is one refhttpd knows that configures a fault (`FaultChildStart`,
    /// `FaultFork`, `FaultAccept`: performed only with `--faults`, never by Apache). Names are
    /// matched as in a configuration, case-insensitively; an unknown name is not one.
    pub fn is_fault_directive(directive: &str) -> bool {
        Directive::find(directive).is_some_and(Directive::is_fault)
    }

    /// The default of `directive` under `mpm`, written as a value of it would be (`5`, `On`,
    /// `header=20-40,MinRate=500 body=20,MinRate=500`); `None` for a directive refhttpd does not
    /// know, one that is not a directive of `mpm`, and one unset until given (a fault site,
    /// mod_ssl's files).
    pub fn default_value(mpm: Mpm, directive: &str) -> Option<&'static str> {
        let d = Directive::find(directive)?;
        if !d.scope.allows(mpm) {
            return None;
        }
        d.default.for_mpm(mpm)
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
        let Some(directive) = Directive::find(&raw.name) else {
            return Err(err(
                "unknown directive, perhaps misspelled or not supported by refhttpd".into(),
            ));
        };
        if !directive.scope.allows(self.mpm) {
            return Err(err(format!("not a directive of the {} MPM", self.mpm)));
        }
        directive
            .apply_to(self, raw.value.trim(), explicit)
            .map_err(err)
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
        self.validate_tls()
    }

    /// SSLEngine on needs a certificate, and a key that serves it (mod_ssl refuses to start
    /// otherwise).
    fn validate_tls(&mut self) -> Result<(), ConfigError> {
        if !self.ssl_engine {
            self.tls = None;
            return Ok(());
        }
        let Some(cert) = &self.ssl_certificate_file else {
            return Err(ConfigError::Invalid(
                "SSLEngine is on but no certificate is configured (SSLCertificateFile)".into(),
            ));
        };
        let server = TlsServer::load(cert, self.ssl_certificate_key_file.as_deref())
            .map_err(ConfigError::Invalid)?;
        self.tls = Some(server);
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

/// `handshake=0 header=20-40,MinRate=500 body=20,MinRate=500` (mod_reqtimeout); a stage not
/// given keeps its value.
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
            "handshake" => rrt.handshake = stage,
            other => {
                return Err(format!(
                    "unknown stage `{other}` (use handshake, header or body)"
                ))
            }
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

    /// The defaults as they were written out field by field before the directive table held
    /// them.
    fn apaches_defaults(mpm: Mpm) -> Config {
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
            request_read_timeout: RequestReadTimeout {
                // handshake=0: off (mod_reqtimeout's default since 2.4.39).
                handshake: Stage::default(),
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
            },
            // mod_ssl: off, no certificate.
            ssl_engine: false,
            ssl_certificate_file: None,
            ssl_certificate_key_file: None,
            tls: None,
            faults: FaultSettings::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn the_tables_defaults_are_the_settings_apache_starts_with() {
        for mpm in Mpm::ALL {
            assert_eq!(Config::defaults(mpm), apaches_defaults(mpm), "{mpm}");
        }
    }

    #[test]
    fn the_table_names_each_directive_once_and_each_fault_site_by_its_directive() {
        let mut names: Vec<String> = DIRECTIVES
            .iter()
            .flat_map(|d| std::iter::once(&d.name).chain(d.aliases))
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a name twice in the table");
        for d in DIRECTIVES {
            if let Apply::Fault(site) = d.apply {
                assert_eq!(d.name, site.directive());
                assert!(d.name.starts_with("Fault"), "{}", d.name);
            } else {
                assert!(!d.name.starts_with("Fault"), "{}", d.name);
            }
        }
    }

    #[test]
    fn fault_directives_are_known_as_such() {
        for name in ["FaultChildStart", "FaultFork", "FaultAccept", "faultfork"] {
            assert!(Config::is_fault_directive(name), "{name}");
        }
        for name in ["Timeout", "MaxClients", "FaultNowhere", "Frobnicate", ""] {
            assert!(!Config::is_fault_directive(name), "{name}");
        }
    }

    #[test]
    fn every_default_is_a_value_the_directive_takes() {
        for mpm in Mpm::ALL {
            for d in DIRECTIVES {
                let Some(default) = Config::default_value(mpm, d.name) else {
                    assert!(
                        matches!(d.default, Initial::Unset) || !d.scope.allows(mpm),
                        "{} has no default under {mpm}",
                        d.name
                    );
                    continue;
                };
                let c = load(mpm, &[&format!("{}={default}", d.name)])
                    .unwrap_or_else(|e| panic!("{} under {mpm}: {e}", d.name));
                assert_eq!(c, load(mpm, &[]).unwrap(), "{} under {mpm}", d.name);
            }
        }
        assert_eq!(
            Config::default_value(Mpm::Prefork, "StartServers"),
            Some("5")
        );
        assert_eq!(Config::default_value(Mpm::Event, "startservers"), Some("3"));
        assert_eq!(
            Config::default_value(Mpm::Worker, "MaxClients"),
            Some("400")
        );
        assert_eq!(
            Config::default_value(Mpm::Event, "AsyncRequestWorkerFactor"),
            Some("2")
        );
        assert_eq!(
            Config::default_value(Mpm::Worker, "AsyncRequestWorkerFactor"),
            None
        );
        assert_eq!(Config::default_value(Mpm::Prefork, "ThreadsPerChild"), None);
        assert_eq!(Config::default_value(Mpm::Event, "FaultFork"), None);
        assert_eq!(Config::default_value(Mpm::Event, "Frobnicate"), None);
    }

    #[test]
    fn aliases_set_what_their_directive_sets() {
        let c = load(Mpm::Prefork, &["MaxClients=7", "MaxRequestsPerChild=9"]).unwrap();
        assert_eq!((c.max_request_workers, c.max_connections_per_child), (7, 9));
        let c = load(Mpm::Worker, &["ThreadsPerChild=5", "MaxClients=10"]).unwrap();
        assert_eq!(
            c.max_request_workers, 10,
            "given, so not ServerLimit × ThreadsPerChild"
        );
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
