//! The `apache` target: real Apache httpd 2.4 from the system package, started per (case, MPM)
//! in its own temp dir from a generated `httpd.conf`, with the fault handler that the harness
//! ships (`harness/apache/fault.lua`, run by mod_lua) serving the same paths as refhttpd.
//!
//! Observers (no request to Apache, so they also see a server whose every worker is busy):
//! - the scoreboard: the generated configuration names a `ScoreBoardFile`, which Apache keeps
//!   as a POSIX shared-memory object; the harness finds it in the master's memory map and reads
//!   worker states, process slots, quiescing/accepting flags and the async connection counters
//!   with Apache 2.4's record layout (checked against the object's size before use);
//! - a `/proc` watcher: a child that exits stays a zombie until Apache's once-a-second
//!   maintenance reaps it, and `/proc/<pid>/stat` shows its wait status meanwhile — so exits
//!   are seen at once with their signal or exit code (Apache logs neither a non-zero exit nor a
//!   kill by SIGKILL/SIGTERM);
//! - an error-log tail: `exit signal …` (for exits the watcher missed), `server reached
//!   MaxRequestWorkers`, signals and restarts, read timeouts, mapped to the reference's event
//!   names.
//!
//! Readiness is read from the scoreboard too (a waiting worker in an accepting child), so the
//! harness sends Apache no request of its own. A case without faults
//! gets a handler that answers `/fault/...` with 404, as refhttpd without `--faults`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use refhttpd::{EventKind, Mpm};

use super::{
    temp_dir, Capabilities, Group, Launch, Server, ServerProcess, StartError, Started, Target,
    TargetKind, START_TIMEOUT,
};
use crate::observe::board::{Board, ProcessRow};
use crate::observe::{Ending, Follower, Observation, ProcSampler, Sampler, Store, Summary};
use crate::spec::condition::Source;

/// The Apache target.
pub struct Apache;

/// The event kinds Apache's error log and process table show.
const EVENTS: [EventKind; 8] = [
    EventKind::ChildSpawned,
    EventKind::ChildExited,
    EventKind::ChildFatal,
    EventKind::MaxRequestWorkers,
    EventKind::Signal,
    EventKind::Generation,
    EventKind::Stopped,
    EventKind::Timeout,
];

impl TargetKind for Apache {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sources: &Source::ALL,
            events: &EVENTS,
            fault_paths: true,
            // refhttpd's fault sites (FaultChildStart, FaultFork, FaultAccept) have no Apache
            // equivalent.
            fault_sites: false,
            judges_reference_only: false,
        }
    }

    fn available(&self) -> Result<(), String> {
        available()
    }

    fn start(&self, launch: &Launch, store: &Store) -> Result<Started, StartError> {
        start(launch, store)
    }
}

/// The fault handler, written into each server's temp dir.
const FAULT_LUA: &str = include_str!("../../../apache/fault.lua");

/// Where Debian's apache2 keeps its modules; `MPM_HARNESS_APACHE_MODULES` overrides.
const DEFAULT_MODULES: &str = "/usr/lib/apache2/modules";
/// Where Debian's apache2 binary is; `MPM_HARNESS_APACHE` overrides, else `apache2` or `httpd`
/// on PATH.
const DEFAULT_HTTPD: &str = "/usr/sbin/apache2";

/// Modules every generated configuration loads (besides the MPM's).
const MODULES: [(&str, &str); 4] = [
    ("authz_core_module", "mod_authz_core.so"),
    ("status_module", "mod_status.so"),
    ("lua_module", "mod_lua.so"),
    ("reqtimeout_module", "mod_reqtimeout.so"),
];

/// How often the watcher looks at the master's children and the scoreboard.
const PROC_INTERVAL: Duration = Duration::from_millis(3);
/// How long a child that vanished unseen waits for its error-log line before it is recorded
/// without a cause.
const VANISHED_GRACE: Duration = Duration::from_millis(300);
/// Start attempts (a new port each) when the port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// The apache2 (httpd) binary.
pub fn httpd_binary() -> Option<PathBuf> {
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

/// The directory with `mod_*.so`.
pub fn modules_dir() -> PathBuf {
    std::env::var_os("MPM_HARNESS_APACHE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULES))
}

/// Whether Apache can run here: the binary and every module the harness loads.
pub fn available() -> Result<(), String> {
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

/// The case's settings as Apache directive lines. Durations are written in the form each
/// directive takes (`KeepAliveTimeout` accepts `ms`; `Timeout` and `GracefulShutdownTimeout`
/// take whole seconds, rounded up). Fault sites have no Apache equivalent: an error.
pub fn directives(settings: &[(String, String)]) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for (name, value) in settings {
        let value = value.trim();
        let line = match name.as_str() {
            n if n.starts_with("Fault") => {
                return Err(format!(
                    "{n} is a refhttpd fault site with no Apache equivalent; this case cannot \
                     run on Apache"
                ))
            }
            // The harness chooses the address.
            "Listen" => continue,
            "KeepAliveTimeout" => {
                let d = mpm_faults::duration::parse(value).map_err(|e| format!("{name}: {e}"))?;
                format!("{name} {}ms", d.as_millis())
            }
            "Timeout" | "GracefulShutdownTimeout" => {
                let d = mpm_faults::duration::parse(value).map_err(|e| format!("{name}: {e}"))?;
                let mut secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                if name == "Timeout" {
                    secs = secs.max(1);
                }
                format!("{name} {secs}")
            }
            _ => format!("{name} {value}"),
        };
        lines.push(line);
    }
    Ok(lines)
}

/// The generated `httpd.conf`.
pub fn config(dir: &Path, port: u16, mpm: Mpm, directives: &[String]) -> String {
    let modules = modules_dir();
    let d = dir.display();
    let mut c = String::new();
    c.push_str("# Generated by mpm-harness for one (case, MPM) run.\n");
    c.push_str(&format!("ServerRoot \"{d}\"\nServerName localhost\n"));
    c.push_str(&format!("Listen 127.0.0.1:{port}\n"));
    c.push_str(&format!(
        "PidFile \"{d}/httpd.pid\"\nDefaultRuntimeDir \"{d}\"\nErrorLog \"{d}/error.log\"\n"
    ));
    // info: child exit signals (notice), MaxRequestWorkers (error), read timeouts (info).
    c.push_str("LogLevel info\n");
    // A named scoreboard (a POSIX shm object) that the harness reads without taking a worker.
    c.push_str(&format!("ScoreBoardFile \"{d}/scoreboard\"\n"));
    c.push_str(&format!(
        "LoadModule mpm_{m}_module \"{}/mod_mpm_{m}.so\"\n",
        modules.display(),
        m = mpm.as_str()
    ));
    for (name, file) in MODULES {
        c.push_str(&format!(
            "LoadModule {name} \"{}/{file}\"\n",
            modules.display()
        ));
    }
    if nix::unistd::geteuid().is_root() {
        // Children must not run as root; nobody/nogroup by number, on any distribution.
        c.push_str("User #65534\nGroup #65534\n");
    }
    c.push_str(&format!(
        "DocumentRoot \"{d}/static\"\n<Directory />\n    Require all granted\n</Directory>\n"
    ));
    c.push_str(
        "ExtendedStatus On\n<Location /server-status>\n    SetHandler server-status\n</Location>\n",
    );
    // One Lua state per worker thread for the thread's life (leak: keeps what it allocates).
    c.push_str("LuaScope thread\n");
    c.push_str(&format!(
        "LuaHookTranslateName \"{d}/fault.lua\" translate early\n"
    ));
    c.push_str(&format!(
        "LuaMapHandler \"^/(?!server-status$|static/)\" \"{d}/fault.lua\" handle\n"
    ));
    c.push_str("# The case's settings.\n");
    for line in directives {
        c.push_str(line);
        c.push('\n');
    }
    c
}

/// Starts Apache for `launch`; see the module documentation.
fn start(launch: &Launch, store: &Store) -> Result<Started, StartError> {
    let fail = |reason: String| StartError {
        target: Target::Apache,
        mpm: launch.mpm,
        reason,
    };
    available().map_err(&fail)?;
    let mut directives = directives(&launch.settings).map_err(&fail)?;
    directives.extend(launch.apache_only.iter().map(|(k, v)| format!("{k} {v}")));
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
    let lua = format!(
        "STATIC_DIR = {:?}\nFAULTS = {}\n{FAULT_LUA}",
        static_dir.display().to_string(),
        launch.faults
    );
    std::fs::write(path.join("fault.lua"), lua).map_err(|e| io("fault.lua", e))?;
    let port = free_port().map_err(|e| io("free port", e))?;
    let conf = path.join("httpd.conf");
    std::fs::write(&conf, config(&path, port, launch.mpm, directives))
        .map_err(|e| io("httpd.conf", e))?;
    let error_log = path.join("error.log");
    let stderr = std::fs::File::create(path.join("stderr.log")).map_err(|e| io("stderr", e))?;
    let httpd = httpd_binary().ok_or(("Apache httpd not found".to_string(), false))?;
    // Apache runs under a guard (this binary in its hidden guard mode), which stops the whole
    // group when the harness dies: Apache's own children would outlive it otherwise.
    let exe = std::env::current_exe().map_err(|e| io("own executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg(crate::target::guard::GUARD_ARG)
        .arg(httpd)
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .env(crate::target::guard::SERVER_DIR_ENV, &path)
        .process_group(0);
    // SAFETY: the hook runs in the forked child before exec and only makes the prctl system
    // call, which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // The master stops (and stops its children) when the thread that started it ends,
            // also when the harness is SIGKILLed.
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
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
        master,
        group: Group::watch(child, store, true),
        error_log: error_log.clone(),
        _dir: dir,
    };
    // Ready when Apache's own scoreboard shows a worker waiting in an accepting child: the
    // master has bound and forked. No request is sent, so no connection is counted before the
    // case begins (MaxConnectionsPerChild, Total Accesses).
    let threads = threads_per_child(&path, launch.mpm);
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

/// Worker threads per child in the generated configuration.
fn threads_per_child(dir: &Path, mpm: Mpm) -> usize {
    if mpm == Mpm::Prefork {
        return 1;
    }
    let conf = std::fs::read_to_string(dir.join("httpd.conf")).unwrap_or_default();
    // Apache's default.
    setting(&conf, "ThreadsPerChild").unwrap_or(25)
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
        .filter(|pid| matches!(proc_state(*pid), Some((state, _)) if state != 'Z'))
        .collect();
    let s = rows.summary_of(board.threads(threads), &live);
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

/// Apache's own scoreboard, read from the shared memory that `ScoreBoardFile` names (a POSIX
/// shm object under /dev/shm, found through the master's memory map). Reading it takes no
/// worker, so it also works when every worker is busy — unlike `/server-status`.
///
/// Layout of Apache httpd 2.4 on LP64 Linux (include/scoreboard.h), after APR's 8-byte size
/// header: `global_score` (56 bytes: server_limit, thread_limit, …), `process_score` × server
/// limit (40 bytes: pid, generation, quiescing, not_accepting, connections, write_completion,
/// lingering_close, keep_alive, …), then `worker_score` × thread limit per process (336 bytes:
/// tid, thread_num, pid, generation, status, …). The header's size must match the file's, and
/// the process and worker records must add up to it, or the file is not used.
pub struct ApacheBoard {
    file: std::fs::File,
    pub server_limit: usize,
    pub thread_limit: usize,
}

const APR_HEADER: u64 = 8;
const GLOBAL_SCORE: u64 = 56;
const PROCESS_SCORE: u64 = 40;
const WORKER_SCORE: u64 = 336;

/// Worker status codes (`SERVER_DEAD` … `SERVER_IDLE_KILL`) as mod_status's letters.
const WORKER_LETTERS: [char; 11] = ['.', 'S', '_', 'R', 'W', 'K', 'L', 'D', 'C', 'G', 'I'];

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

impl ApacheBoard {
    /// Finds the scoreboard among the master's shared mappings.
    pub fn find(master: i32) -> Option<ApacheBoard> {
        let maps = std::fs::read_to_string(format!("/proc/{master}/maps")).ok()?;
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.starts_with("/dev/shm/"))
            .find_map(|p| ApacheBoard::open(Path::new(p)))
    }

    pub fn open(path: &Path) -> Option<ApacheBoard> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut head = [0u8; 16];
        file.read_exact_at(&mut head, 0).ok()?;
        let size = u64::from_le_bytes(head[..8].try_into().ok()?);
        let server_limit = u64::from(u32_at(&head, 8));
        let thread_limit = u64::from(u32_at(&head, 12));
        let needed = APR_HEADER
            + GLOBAL_SCORE
            + server_limit * PROCESS_SCORE
            + server_limit * thread_limit * WORKER_SCORE;
        let sane = size == len
            && (1..=200_000).contains(&server_limit)
            && (1..=100_000).contains(&thread_limit)
            && needed <= len;
        sane.then_some(ApacheBoard {
            file,
            server_limit: server_limit as usize,
            thread_limit: thread_limit as usize,
        })
    }

    /// A summary of the slots whose process is alive (`live`), each with `threads` workers.
    /// ThreadsPerChild as the board can hold it.
    fn threads(&self, threads: usize) -> usize {
        threads.clamp(1, self.thread_limit)
    }

    /// Every process slot with a pid, as read from the shared memory: every ThreadLimit worker
    /// slot's letter.
    fn read(&self) -> Option<Board> {
        use std::os::unix::fs::FileExt;
        let procs_at = APR_HEADER + GLOBAL_SCORE;
        let mut procs = vec![0u8; self.server_limit * PROCESS_SCORE as usize];
        self.file.read_exact_at(&mut procs, procs_at).ok()?;
        let workers_at = procs_at + procs.len() as u64;
        let mut board = Board::default();
        let mut block = vec![0u8; self.thread_limit * WORKER_SCORE as usize];
        for slot in 0..self.server_limit {
            // pid (4), generation (4), quiescing (1), not_accepting (1), connections (4, at
            // 12), write_completion (16), lingering_close (20), keep_alive (24).
            let p = &procs[slot * PROCESS_SCORE as usize..][..PROCESS_SCORE as usize];
            let pid = u32_at(p, 0) as i32;
            if pid <= 0 {
                continue;
            }
            let at = workers_at + (slot * self.thread_limit) as u64 * WORKER_SCORE;
            self.file.read_exact_at(&mut block, at).ok()?;
            board.processes.push(ProcessRow {
                pid,
                generation: u32_at(p, 4),
                accepting: p[9] == 0,
                stopping: p[8] != 0,
                // tid (8), thread_num (4), pid (4), generation (4), status (1).
                workers: (0..self.thread_limit)
                    .map(|t| block[t * WORKER_SCORE as usize + 20] as usize)
                    .map(|status| WORKER_LETTERS.get(status).copied().unwrap_or('?'))
                    .collect(),
                async_writing: u32_at(p, 16),
                async_closing: u32_at(p, 20),
                async_keepalive: u32_at(p, 24),
            });
        }
        Some(board)
    }
}

/// What the observers share: the exits recorded (by the `/proc` watcher or the error log).
struct Shared {
    exited: BTreeSet<i32>,
    /// The harness is stopping the server: the exits that causes are not the case's.
    stopping: Arc<AtomicBool>,
}

/// How often the watcher looks at the master's children and the scoreboard between on-demand
/// samples, and /proc's resources.
const PROC_EVERY: Duration = Duration::from_millis(10);
/// How often the error log is read between on-demand reads.
const LOG_EVERY: Duration = Duration::from_millis(2);

/// Starts the `/proc` and scoreboard watcher, the /proc resource sampler and the error-log
/// tail.
fn start_observers(
    server: &ServerProcess,
    store: &Store,
    error_log: &Path,
    threads_per_child: usize,
) -> Vec<JoinHandle<()>> {
    let shared = Arc::new(Mutex::new(Shared {
        exited: BTreeSet::new(),
        stopping: server.group.stopping(),
    }));
    let watcher = Watcher {
        shared: shared.clone(),
        master: server.master,
        threads: threads_per_child,
        board: None,
        last: None,
        known: BTreeSet::new(),
        vanished: BTreeMap::new(),
        first: true,
    };
    let log = ErrorLog {
        follower: Follower::new(error_log.to_path_buf()),
        shared,
        signal_seen: BTreeSet::new(),
        scoreboard_full_seen: false,
    };
    vec![
        store.add_sampler(Box::new(watcher), PROC_INTERVAL),
        store.add_sampler(Box::new(ProcSampler::new(server.master)), PROC_EVERY),
        store.add_sampler(Box::new(log), LOG_EVERY),
    ]
}

/// A numeric setting of the generated httpd.conf.
fn setting(conf: &str, name: &str) -> Option<usize> {
    conf.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(name)?.trim().parse().ok())
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process's state letter and, for a zombie, its raw wait status (`/proc/PID/stat` field 52).
fn proc_state(pid: i32) -> Option<(char, Option<i32>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Fields after the command start at field 3 (state); exit_code is field 52.
    let exit = fields.get(49).and_then(|v| v.parse().ok());
    Some((state, exit))
}

fn record_exit(store: &Store, shared: &mut Shared, pid: i32, ending: Ending) {
    if !shared.exited.insert(pid) || shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    store.push_all(vec![
        Observation::ChildExited { pid, ending },
        Observation::ServerEvent {
            event: EventKind::ChildExited,
            pid: 0,
            detail: serde_json::json!({ "child": pid, "ending": ending }),
        },
    ]);
}

/// The master's children (exits from zombies' wait status, spawns) and Apache's scoreboard,
/// recorded when the summary changes.
struct Watcher {
    shared: Arc<Mutex<Shared>>,
    master: i32,
    threads: usize,
    board: Option<ApacheBoard>,
    last: Option<Summary>,
    known: BTreeSet<i32>,
    vanished: BTreeMap<i32, Instant>,
    first: bool,
}

impl Sampler for Watcher {
    fn sources(&self) -> &'static [Source] {
        &[Source::Scoreboard, Source::ProcessExits]
    }

    fn sample(&mut self, store: &Store) -> bool {
        let mut live = Vec::new();
        let mut exits = Vec::new();
        if self.board.is_none() {
            self.board = ApacheBoard::find(self.master);
        }
        // The scoreboard's pids too: /proc's list of children can miss one while another
        // starts or exits, and a missed child would make a sample count one process short.
        // One read of the board a sample, for its pids and its rows.
        let rows = self.board.as_ref().and_then(ApacheBoard::read);
        let on_board = rows.as_ref().map(Board::pids).unwrap_or_default();
        let now = crate::observe::children_with(self.master, on_board);
        for &pid in &now {
            match proc_state(pid) {
                Some(('Z', Some(status))) => exits.push((pid, status)),
                Some(('Z', None)) | None => {}
                Some(_) => live.push(pid),
            }
        }
        let mut s = lock(&self.shared);
        for (pid, status) in exits {
            record_exit(store, &mut s, pid, Ending::from_raw(status));
        }
        for &pid in &live {
            if self.known.insert(pid) && !self.first {
                store.push(Observation::ServerEvent {
                    event: EventKind::ChildSpawned,
                    pid: 0,
                    detail: serde_json::json!({ "child": pid }),
                });
            }
        }
        // Reaped before the watcher saw the zombie: the error log may still name the cause.
        let current: BTreeSet<i32> = now.iter().copied().collect();
        for &pid in self.known.iter().filter(|p| !current.contains(p)) {
            self.vanished.entry(pid).or_insert_with(Instant::now);
        }
        self.known.retain(|p| current.contains(p));
        self.vanished.retain(|&pid, since| {
            if s.exited.contains(&pid) {
                return false;
            }
            if since.elapsed() >= VANISHED_GRACE {
                record_exit(store, &mut s, pid, Ending::Unknown);
                return false;
            }
            true
        });
        self.first = false;
        drop(s);
        let live: BTreeSet<i32> = live.into_iter().collect();
        let (Some(board), Some(rows)) = (&self.board, rows) else {
            return false;
        };
        let summary = rows.summary_of(board.threads(self.threads), &live);
        if self.last.as_ref() != Some(&summary) {
            self.last = Some(summary.clone());
            store.push(Observation::Scoreboard(summary));
        }
        true
    }
}

/// One error-log line as observations.
#[derive(Debug, PartialEq)]
pub enum LogLine {
    ChildSignal {
        child: i32,
        signal: i32,
    },
    Event {
        event: EventKind,
        detail: serde_json::Value,
    },
}

/// Reads one line of Apache's error log.
pub fn parse_log_line(line: &str) -> Option<(i32, LogLine)> {
    let pid = line
        .split_once("[pid ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let event =
        |event: EventKind, detail: serde_json::Value| Some((pid, LogLine::Event { event, detail }));
    if line.contains("AH00052:") || line.contains("AH00051:") {
        // "child pid 1234 exit signal Segmentation fault (11)[, possible coredump in …]"
        let rest = line.split_once("child pid ")?.1;
        let child = rest.split_whitespace().next()?.parse().ok()?;
        let signal = rest
            .split_once(" exit signal ")?
            .1
            .split_once('(')?
            .1
            .split_once(')')?
            .0
            .parse()
            .ok()?;
        return Some((pid, LogLine::ChildSignal { child, signal }));
    }
    // Message texts, not AH numbers: each MPM logs the same message under its own number.
    if line.contains("server reached MaxRequestWorkers setting") {
        return event(EventKind::MaxRequestWorkers, serde_json::json!({}));
    }
    // worker/event when ServerLimit × ThreadsPerChild is the cap: the same condition, logged
    // every maintenance tick (the tail keeps the first only).
    if line.contains("scoreboard is full, not at MaxRequestWorkers") {
        return event(
            EventKind::MaxRequestWorkers,
            serde_json::json!({ "apache": "scoreboard is full" }),
        );
    }
    if line.contains("AH00050:") {
        let child: i32 = line
            .split_once("Child ")?
            .1
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        return event(EventKind::ChildFatal, serde_json::json!({ "child": child }));
    }
    let signal = |sig: &str, action: &str| {
        event(
            EventKind::Signal,
            serde_json::json!({ "signal": sig, "action": action }),
        )
    };
    if line.contains("caught SIGTERM, shutting down") {
        return signal("TERM", "stop");
    }
    if line.contains("caught SIGWINCH, shutting down gracefully") {
        return signal("WINCH", "graceful stop");
    }
    // Prefork's words, then worker's and event's ("SIGUSR1 received.  Doing graceful restart").
    if line.contains("Graceful restart requested, doing restart")
        || line.contains("received.  Doing graceful restart")
    {
        return signal("USR1", "graceful restart");
    }
    if line.contains("SIGHUP received.") {
        return signal("HUP", "restart");
    }
    // "… configured -- resuming normal operations": a generation starts (first one included).
    if line.contains("resuming normal operations") {
        return event(EventKind::Generation, serde_json::json!({}));
    }
    if line.contains("AH01382:") {
        return event(EventKind::Timeout, serde_json::json!({ "kind": "header" }));
    }
    if line.contains("AH01383:") {
        return event(EventKind::Timeout, serde_json::json!({ "kind": "body" }));
    }
    None
}

/// Apache's error log as observations: exit signals (for exits the watcher missed), and the
/// events it logs.
struct ErrorLog {
    follower: Follower,
    shared: Arc<Mutex<Shared>>,
    signal_seen: BTreeSet<i32>,
    scoreboard_full_seen: bool,
}

impl Sampler for ErrorLog {
    fn sources(&self) -> &'static [Source] {
        &[Source::Events, Source::ProcessExits]
    }

    fn sample(&mut self, store: &Store) -> bool {
        let (shared, signal_seen, full_seen) = (
            &self.shared,
            &mut self.signal_seen,
            &mut self.scoreboard_full_seen,
        );
        self.follower.read_new(|line| match parse_log_line(line) {
            Some((_, LogLine::ChildSignal { child, signal })) if signal_seen.insert(child) => {
                let mut s = lock(shared);
                record_exit(store, &mut s, child, Ending::Signaled(signal));
            }
            Some((_, LogLine::ChildSignal { .. })) => {}
            // "scoreboard is full" is logged every maintenance tick: the first one counts.
            Some((_, LogLine::Event { detail, .. }))
                if detail.get("apache").is_some() && *full_seen => {}
            Some((pid, LogLine::Event { event, detail })) => {
                *full_seen |= detail.get("apache").is_some();
                store.push(Observation::ServerEvent { event, pid, detail });
            }
            None => {}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_apache_directives() {
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        let lines = directives(&[
            s("KeepAliveTimeout", "200ms"),
            s("Timeout", "1500ms"),
            s("GracefulShutdownTimeout", "0"),
            s("ThreadsPerChild", "3"),
            s("Listen", "127.0.0.1:0"),
        ])
        .unwrap();
        assert_eq!(
            lines,
            [
                "KeepAliveTimeout 200ms",
                "Timeout 2",
                "GracefulShutdownTimeout 0",
                "ThreadsPerChild 3"
            ]
        );
        assert!(directives(&[s("FaultChildStart", "crash:segv")])
            .unwrap_err()
            .contains("no Apache equivalent"));
    }

    #[test]
    fn error_log_lines() {
        let l = "[Wed Nov 25 22:01:13.117001 2026] [core:notice] [pid 15801:tid 15801] AH00052: \
                 child pid 15803 exit signal Segmentation fault (11)";
        assert_eq!(
            parse_log_line(l),
            Some((
                15801,
                LogLine::ChildSignal {
                    child: 15803,
                    signal: 11
                }
            ))
        );
        let l = "[x] [mpm_event:error] [pid 7:tid 7] AH00484: server reached MaxRequestWorkers \
                 setting, consider raising the MaxRequestWorkers setting";
        assert!(matches!(
            parse_log_line(l),
            Some((
                7,
                LogLine::Event {
                    event: EventKind::MaxRequestWorkers,
                    ..
                }
            ))
        ));
    }
}
