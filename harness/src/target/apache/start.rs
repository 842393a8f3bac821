//! Starting Apache: whether it can run here (the binary and the modules), its temp dir (the
//! generated `httpd.conf`, the fault handler, a `static/` dir its children may write), the
//! start under the guard on a free port (retried on a new port when the port was taken
//! meanwhile), and readiness — read from Apache's own scoreboard, so the harness sends Apache
//! no request of its own.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::board::ApacheBoard;
use super::config::{self, modules_dir, MODULES};
use super::start_observers;
use crate::observe::process_state_and_exit;
use crate::observe::Store;
use crate::target::tls::Certificate;
use crate::target::{
    guard, spawn, temp_dir, Group, Launch, Server, ServerProcess, StartError, Started, Target,
    START_TIMEOUT,
};

/// Where Debian's apache2 binary is; `MPM_HARNESS_APACHE` overrides, else `apache2` or `httpd`
/// on PATH.
const DEFAULT_HTTPD: &str = "/usr/sbin/apache2";

/// Start attempts (a new port each) when the port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// The apache2 (httpd) binary.
fn httpd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MPM_HARNESS_APACHE") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let default = PathBuf::from(DEFAULT_HTTPD);
    if default.is_file() {
        return Some(default);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("apache2"), dir.join("httpd")])
        .find(|p| p.is_file())
}

/// Whether Apache can run here: the binary and every module the harness loads.
pub(super) fn available() -> Result<(), String> {
    if httpd_binary().is_none() {
        return Err(format!(
            "Apache httpd not found ({DEFAULT_HTTPD}, apache2 or httpd on PATH; install the \
             apache2 package or set MPM_HARNESS_APACHE)"
        ));
    }
    let dir = modules_dir();
    let needed = [
        "mod_mpm_prefork.so",
        "mod_mpm_worker.so",
        "mod_mpm_event.so",
    ]
    .into_iter()
    .chain(MODULES.iter().map(|m| m.1));
    let missing: Vec<&str> = needed.filter(|m| !dir.join(m).is_file()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Apache modules missing in {}: {} (set MPM_HARNESS_APACHE_MODULES)",
            dir.display(),
            missing.join(", ")
        ))
    }
}

/// Starts Apache for `launch`; see the module documentation.
pub(super) fn start(launch: &Launch, store: &Store) -> Result<Started, StartError> {
    let fail = |reason: String| StartError {
        target: Target::Apache,
        mpm: launch.mpm,
        reason,
    };
    available().map_err(&fail)?;
    let directives = config::case_directives(launch).map_err(&fail)?;
    let mut last = String::new();
    for _ in 0..START_ATTEMPTS {
        match attempt(launch, store, &directives) {
            Ok(server) => return Ok(server),
            Err((reason, retry)) => {
                last = reason;
                if !retry {
                    break;
                }
            }
        }
    }
    Err(fail(last))
}

/// A free port now (Apache cannot be given port 0); a race with another process is retried.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One start; the error says whether a new port may help.
fn attempt(
    launch: &Launch,
    store: &Store,
    directives: &[String],
) -> Result<Started, (String, bool)> {
    let io = |what: &str, e: std::io::Error| (format!("{what}: {e}"), false);
    let dir = temp_dir("mpm-harness-apache-").map_err(|e| io("temp dir", e))?;
    let path = dir.path().to_path_buf();
    // The children run as nobody: they read the handler and make files under static/.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("temp dir", e))?;
    let static_dir = path.join("static");
    std::fs::create_dir(&static_dir).map_err(|e| io("static dir", e))?;
    std::fs::set_permissions(&static_dir, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| io("static dir", e))?;
    let lua = config::fault_handler(&static_dir, launch.faults);
    std::fs::write(path.join("fault.lua"), lua).map_err(|e| io("fault.lua", e))?;
    let port = free_port().map_err(|e| io("free port", e))?;
    let cert = match launch.tls {
        true => Some(Certificate::make(&path).map_err(|e| (e, false))?),
        false => None,
    };
    let conf = path.join("httpd.conf");
    let tls_files = cert
        .as_ref()
        .map(|c| (c.cert_file.as_path(), c.key_file.as_path()));
    std::fs::write(
        &conf,
        config::config(&path, port, launch.mpm, tls_files, directives),
    )
    .map_err(|e| io("httpd.conf", e))?;
    let error_log = path.join("error.log");
    let stderr = std::fs::File::create(path.join("stderr.log")).map_err(|e| io("stderr", e))?;
    let httpd = httpd_binary().ok_or(("Apache httpd not found".to_string(), false))?;
    // Apache runs under a guard (this binary in its hidden guard mode), which stops the whole
    // group when the harness dies: Apache's own children would outlive it otherwise.
    let exe = std::env::current_exe().map_err(|e| io("own executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg(guard::GUARD_ARG)
        .arg(httpd)
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .env(guard::SERVER_DIR_ENV, &path);
    spawn::in_new_process_group(&mut cmd);
    // The guard stops Apache (and its children) when the thread that started it ends, also
    // when the harness is SIGKILLed.
    spawn::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| io("spawn apache", e))?;
    let group = Pid::from_raw(child.id() as i32);
    let master = match read_guarded_pid(child.stdout.take()) {
        Some(pid) => pid,
        None => {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            return Err(("the guard did not start Apache".to_string(), false));
        }
    };
    let mut server = ServerProcess {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: cert.map(|c| c.client),
        master,
        group: Group::watch(child, store, true),
        error_log: error_log.clone(),
        _dir: dir,
    };
    // Ready when Apache's own scoreboard shows a worker waiting in an accepting child: the
    // master has bound and forked. No request is sent, so no connection is counted before the
    // case begins (MaxConnectionsPerChild, Total Accesses).
    let threads = launch.threads_per_child();
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if store.lock().master_exited {
            break;
        }
        if accepting_worker_waits(server.master, threads) {
            let observers = start_observers(&server, store, &error_log, threads);
            return Ok(Started {
                server: Box::new(server),
                observers,
            });
        }
        store.pause(Duration::from_millis(10));
    }
    let log = format!(
        "{}{}",
        server.error_log(),
        std::fs::read_to_string(path.join("stderr.log")).unwrap_or_default()
    );
    let retry = log.contains("Address already in use");
    server.stop();
    Err((
        format!(
            "Apache did not answer on 127.0.0.1:{port} within {START_TIMEOUT:?}; log: {}",
            log.trim()
        ),
        retry,
    ))
}

/// Whether Apache's scoreboard shows an idle worker in a live child that accepts.
fn accepting_worker_waits(master: i32, threads: usize) -> bool {
    let Some(board) = ApacheBoard::find(master) else {
        return false;
    };
    let Some(rows) = board.read() else {
        return false;
    };
    let live: BTreeSet<i32> = crate::observe::children_with(master, rows.pids())
        .into_iter()
        .filter(|pid| matches!(process_state_and_exit(*pid), Some((state, _)) if state != 'Z'))
        .collect();
    let s = rows.summary_of(threads, &live);
    s.accepting > 0 && s.idle > 0
}

/// The guard's first line, `guarding <pid>`: Apache's master pid.
fn read_guarded_pid(stdout: Option<std::process::ChildStdout>) -> Option<i32> {
    use std::io::BufRead;
    let stdout = stdout?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).ok()?;
    line.trim().strip_prefix("guarding ")?.parse().ok()
}
