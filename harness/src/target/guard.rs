//! The guard: a tiny supervisor the harness puts between itself and a server it does not build
//! (Apache), so that nothing outlives the harness.
//!
//! A server of our own (refhttpd) ties its master to the harness and its children to the master.
//! Apache cannot be told to: its children outlive a SIGKILLed master, and a master that is asked
//! to stop waits for a hanging child for up to ten seconds. So the harness starts
//! `<itself> __guard PROGRAM ARGS…` in a new process group; the guard starts the program in that
//! group, prints `guarding <pid>`, and then:
//! - when the program exits, exits with its code;
//! - when the guard is told to stop (SIGTERM/SIGINT, also sent by the kernel when the harness
//!   thread that started it dies), it passes SIGTERM to the program, gives it a grace period,
//!   then SIGKILLs the whole group, itself included.
//!
//! Either way, when the harness is gone by then, the guard first removes the server's temp dir
//! (named by [`SERVER_DIR_ENV`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, SigSet, SigmaskHow, Signal};
use nix::unistd::{getpgrp, Pid};

use super::spawn;

/// The first argument that makes the harness binary act as a guard.
pub const GUARD_ARG: &str = "__guard";

/// How long the guarded program gets to stop before the group is killed.
const GRACE: Duration = Duration::from_secs(3);

/// Runs the guard for `program args…`; never returns.
pub fn run(program: &str, args: &[String]) -> ! {
    let stop_signals = {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set
    };
    // The stop signals are taken by `wait_for_stop` below instead of killing us. Apache's
    // prefork master signals its whole process group (HUP on a restart, USR1 on a graceful
    // one): those are for its children, not for us, and stay blocked here.
    let blocked = {
        let mut set = stop_signals;
        for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGWINCH] {
            set.add(sig);
        }
        set
    };
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    // Our parent is the harness: its death tells us to stop.
    let harness = nix::unistd::getppid();
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env_remove(SERVER_DIR_ENV);
    spawn::with_signals_unblocked(&mut command, blocked);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("guard: cannot start {program}: {e}");
            std::process::exit(127);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "guarding {pid}");
    let _ = out.flush();

    // A thread reports the program's exit; the main thread waits for a stop signal.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(1);
        let _ = tx.send(code);
    });
    let signals = std::thread::spawn(move || wait_for_stop(&stop_signals, pid));
    loop {
        if let Ok(code) = rx.recv_timeout(Duration::from_millis(20)) {
            remove_server_dir_if_orphaned(harness);
            std::process::exit(code);
        }
        if signals.is_finished() {
            break;
        }
    }
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    let code = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or(137);
    // The program stopped (or had its grace); anything it left in the group goes with us.
    remove_server_dir_if_orphaned(harness);
    let _ = killpg(getpgrp(), Signal::SIGKILL);
    std::process::exit(code);
}

/// Waits for a stop signal that is not the program's own: Apache's prefork master sends SIGTERM
/// to its whole process group when GracefulShutdownTimeout expires, and that is for its
/// children, not a request to stop it.
fn wait_for_stop(set: &SigSet, program: Pid) {
    // The set's signals are blocked in this thread: it inherited the mask set before it was
    // spawned.
    loop {
        match spawn::wait_for_signal(set) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(sender) if sender == program => continue,
            _ => return,
        }
    }
}

/// Names a server's temp dir to the process the harness starts for it (`__serve` or
/// `__guard`), which removes the dir if the harness dies first: a SIGKILLed harness never drops
/// its `TempDir`.
pub const SERVER_DIR_ENV: &str = "MPM_HARNESS_SERVER_DIR";

/// Called by a server's top process as it exits: when the harness that started it is gone (or
/// going: being killed), nobody else will remove the server's temp dir.
pub fn remove_server_dir_if_orphaned(harness: Pid) {
    if !os::is_gone(harness) {
        return;
    }
    if let Some(dir) = std::env::var_os(SERVER_DIR_ENV) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(unix)]
mod os {
    use nix::unistd::Pid;

    /// SIGKILL's bit in /proc's pending-signal masks.
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);

    /// Whether `parent` (the process that started us) has exited or is being killed. The death
    /// signal comes when the *thread* that started us ends: we are then reparented to another
    /// thread of the same process, so `getppid` alone cannot tell a harness that is being
    /// SIGKILLed (its threads not all gone yet) from one that is alive.
    pub fn is_gone(parent: Pid) -> bool {
        if nix::unistd::getppid() != parent {
            return true;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{parent}/status")) else {
            return true;
        };
        status.lines().any(|line| match line.split_once(':') {
            Some(("State", v)) => matches!(v.trim_start().chars().next(), Some('Z' | 'X')),
            Some(("SigPnd" | "ShdPnd", v)) => {
                u64::from_str_radix(v.trim(), 16).is_ok_and(|mask| mask & SIGKILL_BIT != 0)
            }
            _ => false,
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_live_parent_is_not_gone() {
            assert!(!super::is_gone(nix::unistd::getppid()));
        }

        #[test]
        fn a_process_that_is_not_our_parent_is_gone() {
            assert!(super::is_gone(nix::unistd::getpid()));
        }
    }
}
