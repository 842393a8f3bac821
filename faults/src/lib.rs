//! The fault vocabulary that refhttpd and mpm-harness share.
//!
//! One grammar, parsed and printed here: `crash:segv`, `exit:3`, `sleep:200ms`, `leak:10M`, …
//! The server performs a [`Fault`] inside a request handler (`GET /fault/<fault>`) or at a
//! [`FaultSite`] outside requests; the harness uses [`Fault::blast_radius`] to know what a fault
//! is designed to take down.

pub mod duration;
pub mod shared;
pub mod size;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The signal a `crash:*` fault raises in the handling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashSignal {
    Segv,
    Abort,
    Bus,
}

/// A fault that the server can be told to perform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `crash:segv|abort|bus`: the handling thread raises the signal; nothing contains it.
    Crash(CrashSignal),
    /// `exit:N`: the process exits with code N (0–255).
    Exit(u8),
    /// `panic`: a Rust panic in the handler, caught at the worker boundary (500).
    Panic,
    /// `sleep:DUR`: holds the worker for DUR, then 200.
    Sleep(Duration),
    /// `busy:DUR`: spins the CPU for DUR, then 200.
    Busy(Duration),
    /// `hang`: never answers.
    Hang,
    /// `close`: closes the connection without a response.
    Close,
    /// `leak:SIZE`: allocates SIZE bytes and keeps them.
    Leak(u64),
    /// `shared:DUR`: a handler that is not thread-safe. It writes a token of its own request into
    /// the one slot its process keeps (no lock), holds the worker DUR, reads the slot back and
    /// answers 200 with `X-Shared-State: intact`, or `clobbered` when another request wrote
    /// there meanwhile (TS-1).
    Shared(Duration),
    /// `fail:ERRNO`: the operation at a fault site fails with that errno (sites only).
    Fail(Errno),
}

/// errno names accepted by `fail:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    Eagain,
    Enomem,
    Emfile,
    Enfile,
    Econnaborted,
    Eperm,
}

/// What a fault is designed to take down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlastRadius {
    /// The whole process that performs it (every connection it holds).
    Process,
    /// The one connection it is performed on.
    Connection,
    /// The one request (the connection lives on).
    Request,
    /// Nothing fails; a worker is occupied for a while (or for ever).
    None,
    /// The process's memory grows.
    Memory,
}

impl BlastRadius {
    pub const ALL: [BlastRadius; 5] = [
        BlastRadius::Process,
        BlastRadius::Connection,
        BlastRadius::Request,
        BlastRadius::None,
        BlastRadius::Memory,
    ];

    /// The name cases use (`process`, `connection`, …).
    pub fn name(self) -> &'static str {
        match self {
            BlastRadius::Process => "process",
            BlastRadius::Connection => "connection",
            BlastRadius::Request => "request",
            BlastRadius::None => "none",
            BlastRadius::Memory => "memory",
        }
    }
}

impl fmt::Display for BlastRadius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BlastRadius {
    type Err = String;
    fn from_str(s: &str) -> Result<BlastRadius, String> {
        BlastRadius::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = BlastRadius::ALL.iter().map(|b| b.name()).collect();
                format!("unknown blast radius `{s}` (use {})", names.join(", "))
            })
    }
}

/// Places outside request handling where a fault can be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultSite {
    /// In a freshly forked child, before it serves (`FaultChildStart`).
    ChildStart,
    /// The master's `fork()` (`FaultFork`).
    Fork,
    /// A child's `accept()` (`FaultAccept`).
    Accept,
}

/// A fault text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault `{input}`: {reason}")]
pub struct ParseFaultError {
    pub input: String,
    pub reason: String,
}

impl ParseFaultError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        ParseFaultError {
            input: input.to_string(),
            reason: reason.into(),
        }
    }
}

/// The prefix of request paths that perform a fault.
pub const FAULT_PATH_PREFIX: &str = "/fault/";

impl CrashSignal {
    pub const ALL: [CrashSignal; 3] = [CrashSignal::Segv, CrashSignal::Abort, CrashSignal::Bus];

    /// The name used in the grammar (`segv`, `abort`, `bus`).
    pub fn name(self) -> &'static str {
        match self {
            CrashSignal::Segv => "segv",
            CrashSignal::Abort => "abort",
            CrashSignal::Bus => "bus",
        }
    }

    /// The signal number on Linux (SIGSEGV 11, SIGABRT 6, SIGBUS 7).
    pub fn signal_number(self) -> i32 {
        match self {
            CrashSignal::Segv => 11,
            CrashSignal::Abort => 6,
            CrashSignal::Bus => 7,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl Errno {
    pub const ALL: [Errno; 6] = [
        Errno::Eagain,
        Errno::Enomem,
        Errno::Emfile,
        Errno::Enfile,
        Errno::Econnaborted,
        Errno::Eperm,
    ];

    /// The lower-case name used in the grammar (`eagain`, …).
    pub fn name(self) -> &'static str {
        match self {
            Errno::Eagain => "eagain",
            Errno::Enomem => "enomem",
            Errno::Emfile => "emfile",
            Errno::Enfile => "enfile",
            Errno::Econnaborted => "econnaborted",
            Errno::Eperm => "eperm",
        }
    }

    /// The errno value on Linux.
    pub fn raw(self) -> i32 {
        match self {
            Errno::Eagain => 11,
            Errno::Enomem => 12,
            Errno::Emfile => 24,
            Errno::Enfile => 23,
            Errno::Econnaborted => 103,
            Errno::Eperm => 1,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        Self::ALL.into_iter().find(|e| e.name() == lower)
    }
}

impl FaultSite {
    /// The configuration directive that sets a fault at this site.
    pub fn directive(self) -> &'static str {
        match self {
            FaultSite::ChildStart => "FaultChildStart",
            FaultSite::Fork => "FaultFork",
            FaultSite::Accept => "FaultAccept",
        }
    }
}

impl fmt::Display for FaultSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.directive())
    }
}

impl Fault {
    /// What the fault is designed to take down when performed in a request handler.
    pub fn blast_radius(&self) -> BlastRadius {
        match self {
            Fault::Crash(_) | Fault::Exit(_) => BlastRadius::Process,
            Fault::Close => BlastRadius::Connection,
            Fault::Panic | Fault::Fail(_) => BlastRadius::Request,
            Fault::Sleep(_) | Fault::Busy(_) | Fault::Hang | Fault::Shared(_) => BlastRadius::None,
            Fault::Leak(_) => BlastRadius::Memory,
        }
    }

    /// The request path that performs this fault: `/fault/crash:segv`.
    pub fn request_path(&self) -> String {
        format!("{FAULT_PATH_PREFIX}{self}")
    }

    /// Reads a fault from a request path. `None` when the path is not under `/fault/`; a query
    /// string is ignored.
    pub fn from_request_path(path: &str) -> Option<Result<Fault, ParseFaultError>> {
        let path = path.split('?').next().unwrap_or(path);
        let text = path.strip_prefix(FAULT_PATH_PREFIX)?;
        Some(text.parse())
    }

    /// Whether this fault makes sense at a site outside requests.
    pub fn allowed_at(&self, site: FaultSite) -> bool {
        match site {
            FaultSite::ChildStart => matches!(
                self,
                Fault::Crash(_) | Fault::Exit(_) | Fault::Sleep(_) | Fault::Hang | Fault::Leak(_)
            ),
            FaultSite::Fork | FaultSite::Accept => matches!(self, Fault::Fail(_)),
        }
    }

    /// Whether the fault is designed to end the process that performs it (a crash, an exit):
    /// the request that carries it "carries the crash".
    pub fn ends_its_process(&self) -> bool {
        self.blast_radius() == BlastRadius::Process
    }

    /// Whether the fault may be performed in a request handler (`fail:` is for sites only).
    pub fn allowed_in_request(&self) -> bool {
        !matches!(self, Fault::Fail(_))
    }
}

impl Fault {
    /// One fault of each form (each signal, each errno), in the grammar's order.
    pub fn examples() -> Vec<Fault> {
        let mut all: Vec<Fault> = CrashSignal::ALL.into_iter().map(Fault::Crash).collect();
        all.extend([
            Fault::Exit(3),
            Fault::Panic,
            Fault::Sleep(Duration::from_millis(200)),
            Fault::Busy(Duration::from_millis(200)),
            Fault::Hang,
            Fault::Close,
            Fault::Leak(10 << 20),
            Fault::Shared(Duration::from_millis(300)),
        ]);
        all.extend(Errno::ALL.into_iter().map(Fault::Fail));
        all
    }

    /// How a fault of this form is written, a number, duration or size as a placeholder:
    /// `crash:segv`, `exit:N`, `sleep:DUR`, `leak:SIZE`, `fail:ERRNO`.
    pub fn form(&self) -> String {
        match self {
            Fault::Crash(s) => format!("crash:{}", s.name()),
            Fault::Exit(_) => "exit:N".into(),
            Fault::Panic => "panic".into(),
            Fault::Sleep(_) => "sleep:DUR".into(),
            Fault::Busy(_) => "busy:DUR".into(),
            Fault::Hang => "hang".into(),
            Fault::Close => "close".into(),
            Fault::Leak(_) => "leak:SIZE".into(),
            Fault::Shared(_) => "shared:DUR".into(),
            Fault::Fail(_) => "fail:ERRNO".into(),
        }
    }

    /// The forms a request may carry, listed for a message: `crash:segv, …, leak:SIZE`.
    pub fn request_forms() -> String {
        let mut forms: Vec<String> = Vec::new();
        for f in Fault::examples().iter().filter(|f| f.allowed_in_request()) {
            if !forms.contains(&f.form()) {
                forms.push(f.form());
            }
        }
        forms.join(", ")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash(s) => write!(f, "crash:{}", s.name()),
            Fault::Exit(code) => write!(f, "exit:{code}"),
            Fault::Panic => f.write_str("panic"),
            Fault::Sleep(d) => write!(f, "sleep:{}", duration::format(*d)),
            Fault::Busy(d) => write!(f, "busy:{}", duration::format(*d)),
            Fault::Hang => f.write_str("hang"),
            Fault::Close => f.write_str("close"),
            Fault::Leak(n) => write!(f, "leak:{}", size::format(*n)),
            Fault::Shared(d) => write!(f, "shared:{}", duration::format(*d)),
            Fault::Fail(e) => write!(f, "fail:{}", e.name()),
        }
    }
}

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(input: &str) -> Result<Fault, ParseFaultError> {
        let err = |reason: String| ParseFaultError::new(input, reason);
        let (kind, arg) = match input.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (input, None),
        };
        let need = |what: &str| {
            arg.filter(|a| !a.is_empty()).ok_or_else(|| {
                err(format!(
                    "`{kind}` needs {what}, as in `{kind}:{}`",
                    example(kind)
                ))
            })
        };
        let none = |fault: Fault| match arg {
            None => Ok(fault),
            Some(_) => Err(err(format!("`{kind}` takes no argument"))),
        };
        match kind {
            "crash" => {
                let name = need("a signal")?;
                CrashSignal::from_name(name)
                    .map(Fault::Crash)
                    .ok_or_else(|| err(format!("unknown signal `{name}` (use segv, abort or bus)")))
            }
            "exit" => {
                let code = need("an exit code")?;
                code.parse::<u8>()
                    .map(Fault::Exit)
                    .map_err(|_| err(format!("exit code `{code}` is not in 0..=255")))
            }
            "sleep" => duration::parse(need("a duration")?).map(Fault::Sleep).map_err(err),
            "busy" => duration::parse(need("a duration")?).map(Fault::Busy).map_err(err),
            "leak" => size::parse(need("a size")?).map(Fault::Leak).map_err(err),
            "shared" => duration::parse(need("a duration")?)
                .map(Fault::Shared)
                .map_err(err),
            "fail" => {
                let name = need("an errno name")?;
                Errno::from_name(name).map(Fault::Fail).ok_or_else(|| {
                    err(format!(
                        "unknown errno `{name}` (use eagain, enomem, emfile, enfile, econnaborted or eperm)"
                    ))
                })
            }
            "panic" => none(Fault::Panic),
            "hang" => none(Fault::Hang),
            "close" => none(Fault::Close),
            "" => Err(err("empty fault".into())),
            other => Err(err(format!(
                "unknown fault `{other}` (use crash, exit, panic, sleep, busy, hang, close, leak, shared or fail)"
            ))),
        }
    }
}

fn example(kind: &str) -> &'static str {
    match kind {
        "crash" => "segv",
        "exit" => "3",
        "sleep" | "busy" | "shared" => "200ms",
        "leak" => "10M",
        _ => "eagain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_table() {
        assert_eq!("crash:segv".parse(), Ok(Fault::Crash(CrashSignal::Segv)));
        assert_eq!("exit:3".parse(), Ok(Fault::Exit(3)));
        assert_eq!("panic".parse(), Ok(Fault::Panic));
        assert_eq!(
            "sleep:200ms".parse(),
            Ok(Fault::Sleep(Duration::from_millis(200)))
        );
        assert_eq!("busy:1".parse(), Ok(Fault::Busy(Duration::from_secs(1))));
        assert_eq!("hang".parse(), Ok(Fault::Hang));
        assert_eq!("close".parse(), Ok(Fault::Close));
        assert_eq!("leak:10M".parse(), Ok(Fault::Leak(10 << 20)));
        assert_eq!(
            "shared:300ms".parse(),
            Ok(Fault::Shared(Duration::from_millis(300)))
        );
        assert_eq!("fail:EAGAIN".parse(), Ok(Fault::Fail(Errno::Eagain)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = "crash:kill".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("unknown signal `kill`"), "{e}");
        let e = "exit:300".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("0..=255"), "{e}");
        let e = "sleep".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("sleep:200ms"), "{e}");
        let e = "panic:now".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("takes no argument"), "{e}");
        assert!("explode".parse::<Fault>().is_err());
    }

    #[test]
    fn request_paths() {
        let f = Fault::Crash(CrashSignal::Abort);
        assert_eq!(f.request_path(), "/fault/crash:abort");
        assert_eq!(
            Fault::from_request_path("/fault/crash:abort?x=1"),
            Some(Ok(f))
        );
        assert_eq!(Fault::from_request_path("/other"), None);
        assert!(matches!(
            Fault::from_request_path("/fault/nope"),
            Some(Err(_))
        ));
    }

    #[test]
    fn every_example_reads_back_and_its_form_is_listed_where_it_may_be_used() {
        let examples = Fault::examples();
        for f in &examples {
            assert_eq!(f.to_string().parse::<Fault>().as_ref(), Ok(f));
        }
        let request = Fault::request_forms();
        assert_eq!(
            request,
            "crash:segv, crash:abort, crash:bus, exit:N, panic, sleep:DUR, busy:DUR, hang, \
             close, leak:SIZE, shared:DUR"
        );
        for f in &examples {
            assert_eq!(
                request.split(", ").any(|form| form == f.form()),
                f.allowed_in_request(),
                "{f}"
            );
        }
        // Every kind the grammar reads has an example.
        for kind in [
            "crash", "exit", "panic", "sleep", "busy", "hang", "close", "leak", "shared", "fail",
        ] {
            assert!(
                examples
                    .iter()
                    .any(|f| f.form().split(':').next() == Some(kind)),
                "{kind}"
            );
        }
    }

    #[test]
    fn sites() {
        assert!(Fault::Crash(CrashSignal::Segv).allowed_at(FaultSite::ChildStart));
        assert!(!Fault::Panic.allowed_at(FaultSite::ChildStart));
        assert!(Fault::Fail(Errno::Eagain).allowed_at(FaultSite::Fork));
        assert!(!Fault::Exit(1).allowed_at(FaultSite::Accept));
        assert_eq!(
            Fault::Crash(CrashSignal::Segv).blast_radius(),
            BlastRadius::Process
        );
        assert_eq!(Fault::Panic.blast_radius(), BlastRadius::Request);
    }
}
