//! Every step outside safe Rust that the targets take to start and supervise a server: the
//! hooks a spawned command runs in the forked child before exec, and the guard's wait for a
//! signal with its sender. Each is a small named function with its `SAFETY` reasoning; the
//! callers (the guard, the Apache and reference targets) only call them.

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Starts `cmd` as the leader of a new process group, so that the whole server can be signalled
/// (and killed) as one group.
pub fn in_new_process_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}

/// Makes the kernel send `cmd`'s process SIGTERM when the thread that spawned it ends — also
/// when the harness is SIGKILLed. SIGTERM, not SIGKILL: the guard then stops its server and
/// removes the server's temp dir.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the hook runs in the forked child before exec and only makes the prctl system
    // call, which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        })
    }
}

/// Unblocks `signals` in `cmd`'s process before exec: a blocked mask is inherited through exec,
/// and the program must get the signals its spawner keeps blocked for itself.
pub fn with_signals_unblocked(cmd: &mut Command, signals: SigSet) -> &mut Command {
    // SAFETY: runs in the forked child before exec and only makes the sigprocmask system call
    // (async-signal-safe) on a set built before the fork; no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&signals), None)
                .map_err(std::io::Error::from)
        })
    }
}

/// Waits for one of `set`'s signals, which the calling thread must have blocked, and returns
/// the pid that sent it (`sigwaitinfo`; nix has no safe form that tells the sender). An
/// interruption is an error of kind `Interrupted`.
pub fn wait_for_signal(set: &SigSet) -> std::io::Result<Pid> {
    // SAFETY: sigwaitinfo only writes the siginfo_t we own; the set is a valid sigset_t. si_pid
    // reads the sender's pid from that siginfo_t, which sigwaitinfo filled in on success.
    let (sig, sender) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigwaitinfo(set.as_ref(), &mut info);
        (sig, info.si_pid())
    };
    if sig < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Pid::from_raw(sender))
}
