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
pub fn run(args: &Args) -> i32 {
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
