//! The `refhttpd` command line (README.md, *refhttpd by hand*): parse, start the master, print the `ready` line.
//!
//! Kept in the library so that another binary (the harness) can run the same server by
//! re-executing itself with these arguments.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use nix::sys::signal::Signal;

use crate::config::Mpm;
use crate::eventlog::{error_log, Level};
use crate::master::{module, Master, ServerOptions};

/// A reference HTTP/1.1 server with Apache's prefork, worker and event MPMs.
#[derive(Debug, Clone, Parser)]
#[command(name = "refhttpd", version, about)]
pub struct Args {
    /// The multi-processing module.
    #[arg(long, value_enum)]
    pub mpm: Mpm,
    /// An Apache-style configuration file (`Directive value` lines, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A directive that wins over the file, e.g. `--set KeepAliveTimeout=200ms` (repeatable).
    #[arg(long = "set", value_name = "DIRECTIVE=VALUE")]
    pub sets: Vec<String>,
    /// Address to listen on (port 0 picks a free port); the `Listen` directive otherwise.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Perform faults: `/fault/<fault>` requests and the Fault* directives. Off by default.
    #[arg(long)]
    pub faults: bool,
    /// Back the shared-memory scoreboard with this file, so other processes can map it.
    #[arg(long, value_name = "PATH")]
    pub scoreboard: Option<PathBuf>,
    /// Write process and connection events here as JSON lines.
    #[arg(long, value_name = "PATH")]
    pub event_log: Option<PathBuf>,
}

impl Args {
    /// The server options these arguments describe (`--listen` becomes the last `Listen`).
    fn options(&self) -> ServerOptions {
        let mut sets = self.sets.clone();
        if let Some(listen) = &self.listen {
            sets.push(format!("Listen={listen}"));
        }
        ServerOptions {
            mpm: self.mpm,
            config_file: self.config.clone(),
            sets,
            faults_enabled: self.faults,
            scoreboard: self.scoreboard.clone(),
            event_log: self.event_log.clone(),
        }
    }
}

/// Runs the server the arguments describe until it stops; returns the process exit code
/// (0 stopped, 1 failed to start or a child reported a fatal error, 2 bad configuration).
///
/// # Call it from a single-threaded process
///
/// The calling process becomes the master, which forks the children. A child of a process with
/// other threads would inherit the locks they hold (the allocator's, stdio's) with no thread to
/// release them, so `run` must be called while the calling thread is the process's only one:
/// first thing in `main`, before anything starts a thread, as the `refhttpd` binary and the
/// harness's re-executed `__serve` mode do. It checks this: in a process with more threads
/// (`Threads:` in `/proc/self/status`) it starts nothing, says so on stderr and returns 1, as for
/// a failed start. Where `/proc` cannot be read it cannot count, and goes on.
pub fn run(args: &Args) -> i32 {
    if let Err(message) = check_single_threaded() {
        let _ = writeln!(std::io::stderr(), "refhttpd: {message}");
        return 1;
    }
    // The master dies with whoever started it (PM: nothing outlives a killed harness); its
    // children die with it.
    let parent = nix::unistd::getppid();
    if crate::os::die_with_parent(Signal::SIGTERM, parent).is_err() {
        return 1;
    }
    let opts = args.options();
    let mpm = opts.mpm;
    let master = match Master::start(opts) {
        Ok(master) => master,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "refhttpd: {}", e.message);
            return e.code;
        }
    };
    let exit = master.run(|addr| {
        let mut out = std::io::stdout().lock();
        let ready = Ready {
            addr,
            master: std::process::id() as i32,
            mpm,
        };
        let _ = writeln!(out, "{ready}");
        let _ = out.flush();
        error_log(
            module(mpm),
            Level::Notice,
            format_args!(
                "{} configured -- resuming normal operations",
                crate::SERVER_VERSION
            ),
        );
    });
    exit.code()
}

/// Refuses a process with threads besides the calling one: the master forks (see [`run`]).
fn check_single_threaded() -> Result<(), String> {
    match crate::os::thread_count() {
        Ok(threads) if threads > 1 => Err(format!(
            "fork needs a single-threaded process, and this one runs {threads} threads: \
             call refhttpd::run before anything starts a thread"
        )),
        // One thread, or no /proc to count them in.
        _ => Ok(()),
    }
}

/// The line refhttpd prints once it accepts: `ready <ip:port> pid=<master pid> mpm=<mpm>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub addr: std::net::SocketAddr,
    pub master: i32,
    pub mpm: Mpm,
}

impl std::fmt::Display for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ready {} pid={} mpm={}",
            self.addr, self.master, self.mpm
        )
    }
}

impl Ready {
    /// Reads a ready line; `None` for anything else.
    pub fn parse(line: &str) -> Option<Ready> {
        let mut words = line.split_whitespace();
        if words.next()? != "ready" {
            return None;
        }
        let addr = words.next()?.parse().ok()?;
        let master = words.next()?.strip_prefix("pid=")?.parse().ok()?;
        let mpm = words.next()?.strip_prefix("mpm=")?.parse().ok()?;
        Some(Ready { addr, master, mpm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` while another thread of this process waits, whatever the test runner does.
    fn with_another_thread<T>(f: impl FnOnce() -> T) -> T {
        let (stop, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _ = wait.recv();
        });
        let result = f();
        drop(stop);
        other.join().unwrap();
        result
    }

    #[test]
    fn run_refuses_a_process_with_other_threads() {
        let threads = with_another_thread(|| crate::os::thread_count().unwrap());
        assert!(threads >= 2, "{threads}");
        let refused = with_another_thread(check_single_threaded).unwrap_err();
        assert!(
            refused.starts_with("fork needs a single-threaded process"),
            "{refused}"
        );
        // A bad directive too: were the check missing, run would stop at the configuration
        // (code 2) before it binds or forks anything; refused, it is 1, as for a failed start.
        let args = Args::parse_from(["refhttpd", "--mpm", "prefork", "--set", "Frobnicate=1"]);
        assert_eq!(with_another_thread(|| run(&args)), 1);
    }

    #[test]
    fn ready_line_round_trips() {
        let ready = Ready {
            addr: "127.0.0.1:4321".parse().unwrap(),
            master: 77,
            mpm: Mpm::Event,
        };
        assert_eq!(ready.to_string(), "ready 127.0.0.1:4321 pid=77 mpm=event");
        assert_eq!(Ready::parse(&format!("{ready}\n")), Some(ready));
        assert_eq!(Ready::parse("refhttpd: bad configuration"), None);
    }
}
