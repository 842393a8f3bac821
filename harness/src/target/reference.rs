//! The `reference` target: refhttpd, linked into this binary.
//!
//! The harness re-executes itself in a hidden `__serve` mode ([`serve_if_asked`]), so it needs no
//! other binary — from `cargo test` on a clean checkout and from an installed `mpm-harness`
//! alike. The server's master dies with the thread that started it (parent-death signal), so a
//! SIGKILLed harness leaves nothing. Observed through its scoreboard file, its event log and
//! /proc.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use refhttpd::EventKind;

use super::{
    spawn, temp_dir, Capabilities, Group, Launch, Server, ServerProcess, StartError, Started,
    Target, TargetKind, START_TIMEOUT,
};
use crate::observe::{EventLogSampler, ProcSampler, ScoreboardSampler, Store};
use crate::spec::condition::Source;
use crate::target::tls::Certificate;

/// The first argument that makes the harness binary run refhttpd instead.
pub const SERVE_ARG: &str = "__serve";

/// How often the scoreboard and /proc are sampled between on-demand samples.
const SCOREBOARD_EVERY: Duration = Duration::from_millis(2);
const PROC_EVERY: Duration = Duration::from_millis(10);
const LOG_EVERY: Duration = Duration::from_millis(2);

/// Runs refhttpd when this process was started as `<exe> __serve <refhttpd args>`, or the guard
/// when started as `<exe> __guard PROGRAM ARGS…`; returns otherwise. Call it first thing in
/// every `main` that may start a server.
pub fn serve_if_asked() {
    let mut args = std::env::args_os();
    let _exe = args.next();
    let first = args.next();
    if first.as_deref() == Some(std::ffi::OsStr::new(crate::target::guard::GUARD_ARG)) {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        match rest.split_first() {
            Some((program, program_args)) => crate::target::guard::run(program, program_args),
            None => std::process::exit(2),
        }
    }
    if first.is_some_and(|a| a == SERVE_ARG) {
        use clap::Parser;
        let rest = std::iter::once("refhttpd".into()).chain(args);
        let parsed = refhttpd::Args::parse_from(rest);
        let harness = nix::unistd::getppid();
        let code = refhttpd::run(&parsed);
        crate::target::guard::remove_server_dir_if_orphaned(harness);
        std::process::exit(code);
    }
}

/// The reference target.
pub struct Reference;

impl TargetKind for Reference {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sources: &Source::ALL,
            events: &EventKind::ALL,
            fault_paths: true,
            fault_sites: true,
            judges_reference_only: true,
        }
    }

    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    fn start(&self, launch: &Launch, store: &Store) -> Result<Started, StartError> {
        let fail = |reason: String| StartError {
            target: Target::Reference,
            mpm: launch.mpm,
            reason,
        };
        let dir = temp_dir("mpm-harness-").map_err(|e| fail(format!("temp dir: {e}")))?;
        let scoreboard = dir.path().join("scoreboard");
        let event_log = dir.path().join("events.jsonl");
        let error_log = dir.path().join("error.log");
        let stderr = std::fs::File::create(&error_log).map_err(|e| fail(e.to_string()))?;
        let exe = std::env::current_exe().map_err(|e| fail(format!("own executable: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.arg(SERVE_ARG)
            .args(["--mpm", launch.mpm.as_str(), "--listen", "127.0.0.1:0"])
            .arg("--scoreboard")
            .arg(&scoreboard)
            .arg("--event-log")
            .arg(&event_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env(crate::target::guard::SERVER_DIR_ENV, dir.path());
        spawn::in_new_process_group(&mut cmd);
        if launch.faults {
            cmd.arg("--faults");
        }
        // As written: refhttpd types them itself.
        for d in &launch.settings {
            cmd.arg("--set").arg(format!("{}={}", d.name, d.value));
        }
        let tls = match launch.tls {
            true => {
                let cert = Certificate::make(dir.path()).map_err(fail)?;
                cmd.arg("--set").arg("SSLEngine=on");
                cmd.arg("--set")
                    .arg(format!("SSLCertificateFile={}", cert.cert_file.display()));
                cmd.arg("--set")
                    .arg(format!("SSLCertificateKeyFile={}", cert.key_file.display()));
                Some(cert.client)
            }
            false => None,
        };
        let mut child = cmd.spawn().map_err(|e| fail(format!("spawn: {e}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let group = Group::watch(child, store, false);
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let mut server = ServerProcess {
            addr: "127.0.0.1:0".parse().expect("address"),
            tls,
            master: group.leader(),
            group,
            error_log,
            _dir: dir,
        };
        let Some(ready) = refhttpd::Ready::parse(&line) else {
            let log = server.error_log();
            server.stop();
            return Err(fail(format!(
                "no ready line (got {line:?}); stderr: {}",
                log.trim()
            )));
        };
        server.addr = ready.addr;
        server.master = ready.master;
        let observers = vec![
            store.add_sampler(
                Box::new(ScoreboardSampler::new(scoreboard)),
                SCOREBOARD_EVERY,
            ),
            store.add_sampler(Box::new(ProcSampler::new(server.master)), PROC_EVERY),
            store.add_sampler(Box::new(EventLogSampler::new(event_log)), LOG_EVERY),
        ];
        Ok(Started {
            server: Box::new(server),
            observers,
        })
    }
}
