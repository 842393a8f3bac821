//! Two of refhttpd's figures, measured against a release build of refhttpd — the harness binary
//! in its `__serve` mode, which runs refhttpd's own `run` in-process (`ci/bench.sh` runs this and
//! then the wrk comparison with Apache httpd). Requests and response framing come from the
//! harness's client ([`mpm_harness::drive::client`]); the bench keeps its own sockets, since it holds
//! thousands of idle keep-alive connections and times single requests.
//!
//! 1. crash → replacement child accepting, per MPM (goal ≤ 20 ms): a single-child server
//!    (ServerLimit 1) is sent `GET /fault/crash:segv` N times. From the moment the request is
//!    written we time (a) the scoreboard slot showing a new pid, `Ready` and accepting (polled
//!    every 100 µs by a second thread), (b) a `GET /` sent on a fresh connection right after
//!    the crashed connection closed being answered by the new pid (it waits in the listen
//!    backlog: there is no other child), and (c) from the event log, `child_exited` →
//!    `child_ready` of the new pid (millisecond timestamps).
//! 2. event MPM: PSS per idle keep-alive connection with 10,000 of them (goal ≤ 2 KB): sum of
//!    `Pss` in `/proc/<pid>/smaps_rollup` over master and child, with the connections open minus
//!    without (after a short warm-up), divided by the number of connections.
//!
//! Environment: `FIGURES_CRASHES` (default 25), `FIGURES_CONNS` (default 10000),
//! `FIGURES_ONLY` (`crash` or `pss`), `FIGURES_SUMMARY` (also append the table to this file).
//!
//! Every server is started in its own process group and killed (TERM, then KILL) by a guard's
//! `Drop`, so none outlives the bench, panics included; the master also dies with this process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mpm_harness::drive::client::{
    fetch, parse_at_eof, parse_response, request_bytes, Parsed, Response,
};
use mpm_harness::target::SERVE_ARG;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use refhttpd::{ProcessStatus, ScoreboardView};

const DEADLINE: Duration = Duration::from_secs(20);
const CRASH_GOAL_MS: f64 = 20.0;
const PSS_GOAL_BYTES: f64 = 2048.0;

fn main() {
    let crashes = env_usize("FIGURES_CRASHES", 25);
    let conns = env_usize("FIGURES_CONNS", 10_000);
    let only = std::env::var("FIGURES_ONLY").unwrap_or_default();
    raise_nofile();
    let mut report = String::new();
    if only.is_empty() || only == "crash" {
        report += &crash_figure(crashes);
    }
    if only.is_empty() || only == "pss" {
        report += &pss_figure(conns);
    }
    print!("{report}");
    if let Ok(path) = std::env::var("FIGURES_SUMMARY") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("summary file");
        f.write_all(report.as_bytes()).expect("write summary");
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// RLIMIT_NOFILE soft = hard (10,000 client sockets live in this process).
fn raise_nofile() {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

// ---------------------------------------------------------------------------------------------
// The server guard

fn harness_bin() -> PathBuf {
    // Cargo builds the package's binary (same profile) for benches and tells us where it is;
    // `<exe> __serve <refhttpd args>` runs refhttpd.
    PathBuf::from(env!("CARGO_BIN_EXE_mpm-harness"))
}

/// A running refhttpd in its own process group; dropping it kills the whole group.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    master: i32,
    _dir: tempfile::TempDir,
    scoreboard_path: PathBuf,
    event_log_path: PathBuf,
}

impl Server {
    fn start(mpm: &str, sets: &[&str], faults: bool) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let scoreboard_path = dir.path().join("scoreboard");
        let event_log_path = dir.path().join("events.jsonl");
        let mut cmd = Command::new(harness_bin());
        cmd.arg(SERVE_ARG)
            .args(["--mpm", mpm, "--listen", "127.0.0.1:0"])
            .arg("--scoreboard")
            .arg(&scoreboard_path)
            .arg("--event-log")
            .arg(&event_log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        if faults {
            cmd.arg("--faults");
        }
        for set in sets {
            cmd.arg("--set").arg(set);
        }
        let mut child = cmd.spawn().expect("spawn refhttpd");
        let stdout = child.stdout.take().expect("stdout");
        // The guard exists before anything can panic.
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            master: 0,
            _dir: dir,
            scoreboard_path,
            event_log_path,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(DEADLINE).unwrap_or_default();
        let ready =
            refhttpd::Ready::parse(&line).unwrap_or_else(|| panic!("no ready line: {line:?}"));
        server.addr = ready.addr;
        server.master = ready.master;
        server
    }

    fn scoreboard(&self) -> ScoreboardView {
        ScoreboardView::open(&self.scoreboard_path).expect("open scoreboard")
    }

    /// The pid in process slot 0 once it is ready and accepting.
    fn wait_slot_ready(&self, view: &ScoreboardView, not_pid: i32) -> i32 {
        let end = Instant::now() + DEADLINE;
        loop {
            let snap = view.snapshot();
            let p = &snap.processes[0];
            if p.pid > 0 && p.pid != not_pid && p.status == ProcessStatus::Ready && p.accepting {
                return p.pid;
            }
            assert!(Instant::now() < end, "slot 0 never became ready: {p:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.event_log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Whatever is left of the group (children included), and the master if it is still up.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP bits

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn send_get(s: &mut TcpStream, path: &str) {
    s.write_all(&request_bytes("GET", path, None, None, false))
        .expect("send request");
}

/// Reads one response (framed by the harness's client); `None` on EOF, an error (the read
/// timeout included) or bytes that are not a response.
fn read_response(s: &mut TcpStream) -> Option<Response> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        match parse_response(&buf) {
            Parsed::Complete(r, _) => return Some(r),
            Parsed::Invalid(_) => return None,
            Parsed::Incomplete => {}
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return match parse_at_eof(&buf) {
                    Parsed::Complete(r, _) => Some(r),
                    _ => None,
                }
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Figure 1: crash → replacement accepting

struct Stats {
    median: f64,
    max: f64,
}

fn stats(v: &[f64]) -> Stats {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        median,
        max: v[n - 1],
    }
}

fn crash_sets(mpm: &str) -> Vec<&'static str> {
    let mut sets = vec!["ServerLimit=1", "StartServers=1"];
    if mpm == "prefork" {
        sets.extend([
            "MaxRequestWorkers=1",
            "MinSpareServers=1",
            "MaxSpareServers=2",
        ]);
    } else {
        sets.extend([
            "ThreadsPerChild=25",
            "MaxRequestWorkers=25",
            "MinSpareThreads=1",
            "MaxSpareThreads=50",
        ]);
    }
    sets
}

fn crash_figure(crashes: usize) -> String {
    let mut out = String::new();
    out += &format!(
        "\nFigure 1: crash -> replacement child accepting ({crashes} crashes per MPM, \
         single-child server; goal <= {CRASH_GOAL_MS} ms)\n"
    );
    out += &format!(
        "{:<8} {:>22} {:>22} {:>22} {:>5}\n",
        "mpm", "sb accepting med/max", "answered med/max", "exit->ready med/max", "goal"
    );
    for mpm in ["prefork", "worker", "event"] {
        let (accepting, answered, evlog) = crash_runs(mpm, crashes);
        let a = stats(&accepting);
        let b = stats(&answered);
        let e = stats(&evlog);
        let ok = a.max <= CRASH_GOAL_MS && b.max <= CRASH_GOAL_MS;
        out += &format!(
            "{:<8} {:>9.2} / {:>6.2} ms {:>9.2} / {:>6.2} ms {:>9.0} / {:>6.0} ms {:>5}\n",
            mpm,
            a.median,
            a.max,
            b.median,
            b.max,
            e.median,
            e.max,
            if ok { "met" } else { "MISS" }
        );
    }
    out += "  sb accepting: crash request written -> scoreboard slot shows the new pid Ready+accepting\n";
    out += "  answered:     crash request written -> GET / answered with X-Served-By the new pid\n";
    out +=
        "  exit->ready:  event log child_exited -> child_ready of the new pid (1 ms resolution)\n";
    out
}

/// Milliseconds since `t0`.
fn ms_since(t0: Instant, t: Instant) -> f64 {
    t.duration_since(t0).as_secs_f64() * 1000.0
}

fn crash_runs(mpm: &str, crashes: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let server = Server::start(mpm, &crash_sets(mpm), true);
    let view = Arc::new(server.scoreboard());
    let mut old = server.wait_slot_ready(&view, 0);
    // Warm up: a few requests, so the first crash is not also the first request.
    for _ in 0..5 {
        let mut s = connect(server.addr);
        send_get(&mut s, "/");
        read_response(&mut s).expect("warm-up response");
    }
    let (mut accepting, mut answered, mut evlog) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..crashes {
        // The scoreboard watcher: polls slot 0 every 100 µs for a new, ready, accepting pid.
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<(i32, Instant)>();
        let watcher = {
            let view = Arc::clone(&view);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let snap = view.snapshot();
                    let p = &snap.processes[0];
                    if p.pid > 0 && p.pid != old && p.status == ProcessStatus::Ready && p.accepting
                    {
                        let _ = ready_tx.send((p.pid, Instant::now()));
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        let mut s = connect(server.addr);
        let t0 = Instant::now();
        send_get(&mut s, "/fault/crash:segv");
        // The child dies without answering: EOF or reset.
        assert!(
            read_response(&mut s).is_none(),
            "{mpm}: the crash request was answered"
        );
        // Right away: a request that only the replacement can answer (it waits in the backlog).
        let mut probe = connect(server.addr);
        send_get(&mut probe, "/");
        let resp = read_response(&mut probe).expect("answer from the replacement");
        let t_answered = Instant::now();
        assert_eq!(resp.status, 200);
        let new_pid = resp.served_by().expect("X-Served-By pid").pid;
        assert_ne!(new_pid, old, "{mpm}: answered by the crashed child");
        let (sb_pid, t_accepting) = ready_rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("{mpm}: scoreboard never showed the replacement"));
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        assert_eq!(sb_pid, new_pid, "{mpm}: scoreboard and response disagree");
        accepting.push(ms_since(t0, t_accepting));
        answered.push(ms_since(t0, t_answered));
        evlog.push(exit_to_ready_ms(&server, old, new_pid).unwrap_or_else(|| {
            panic!("{mpm} round {round}: no child_exited/child_ready pair in the event log")
        }));
        old = new_pid;
    }
    drop(server);
    (accepting, answered, evlog)
}

/// `child_exited` of `old` → `child_ready` of `new`, from the event log (ms).
fn exit_to_ready_ms(server: &Server, old: i32, new: i32) -> Option<f64> {
    let end = Instant::now() + DEADLINE;
    loop {
        let events = server.events();
        let t = |kind: &str, pid: i32| {
            events
                .iter()
                .find(|e| e["event"] == kind && e["child"] == pid)
                .and_then(|e| e["t_ms"].as_u64())
        };
        if let (Some(exited), Some(ready)) = (t("child_exited", old), t("child_ready", new)) {
            return Some(ready.saturating_sub(exited) as f64);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------------
// Figure 2: event MPM, PSS per idle keep-alive connection

const PSS_SETS: [&str; 9] = [
    "ServerLimit=1",
    "StartServers=1",
    "ThreadsPerChild=25",
    "MaxRequestWorkers=25",
    "MinSpareThreads=1",
    "MaxSpareThreads=50",
    "AsyncRequestWorkerFactor=1000",
    "KeepAliveTimeout=300s",
    "MaxKeepAliveRequests=0",
];

/// Pss (bytes) of one process, from smaps_rollup.
fn pss_bytes(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_else(|e| panic!("smaps_rollup of {pid}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("Pss line")
}

/// Master + every live child.
fn server_pss(server: &Server, view: &ScoreboardView) -> (u64, usize) {
    let mut pids = vec![server.master];
    pids.extend(view.snapshot().live_processes().map(|p| p.pid));
    (pids.iter().map(|&p| pss_bytes(p)).sum(), pids.len())
}

fn status_value(server: &Server, key: &str) -> Option<String> {
    let resp = fetch(
        &mpm_harness::drive::Endpoint::plain(server.addr),
        "/server-status?auto",
        DEADLINE,
    )
    .ok()?;
    resp.text().lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn pss_figure(conns: usize) -> String {
    let server = Server::start("event", &PSS_SETS, false);
    let view = server.scoreboard();
    server.wait_slot_ready(&view, 0);
    // Warm-up on short connections (pages in the request path), then let it settle.
    for _ in 0..200 {
        let mut s = connect(server.addr);
        send_get(&mut s, "/");
        read_response(&mut s).expect("warm-up response");
    }
    wait_keepalive(
        &view,
        |n| n == 0,
        "0 keep-alive connections after the warm-up",
    );
    std::thread::sleep(Duration::from_millis(300));
    let (base, processes) = server_pss(&server, &view);

    let t0 = Instant::now();
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut s = TcpStream::connect(server.addr)
            .unwrap_or_else(|e| panic!("connection {i} of {conns}: {e}"));
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        send_get(&mut s, "/");
        let resp = read_response(&mut s).unwrap_or_else(|| panic!("connection {i}: no response"));
        assert_eq!(resp.status, 200, "connection {i}");
        assert!(!resp.closes(), "connection {i} is not kept alive");
        clients.push(s);
    }
    let open_secs = t0.elapsed().as_secs_f64();
    let held = wait_keepalive(&view, |n| n >= conns, "every connection in keep-alive");
    std::thread::sleep(Duration::from_millis(300));
    let (loaded, _) = server_pss(&server, &view);
    let status_ka = status_value(&server, "ConnsAsyncKeepAlive").unwrap_or_default();
    let per_conn = (loaded as f64 - base as f64) / conns as f64;
    drop(clients);
    drop(server);

    let mut out = String::new();
    out += &format!(
        "\nFigure 2: event MPM, PSS per idle keep-alive connection (goal <= {PSS_GOAL_BYTES} B)\n"
    );
    out += &format!("  server: {}\n", PSS_SETS.join(" "));
    out += &format!(
        "  {conns} connections opened in {open_secs:.1} s; scoreboard keep-alive {held}, \
         server-status ConnsAsyncKeepAlive {status_ka}\n"
    );
    out += &format!(
        "  PSS ({processes} processes): baseline {:.0} KiB, with connections {:.0} KiB\n",
        base as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
    out += &format!(
        "  per connection: {per_conn:.0} B  [{}]\n",
        if per_conn <= PSS_GOAL_BYTES {
            "met"
        } else {
            "MISS"
        }
    );
    out
}

/// Waits until the scoreboard's keep-alive count satisfies `cond`; returns it.
fn wait_keepalive(view: &ScoreboardView, cond: impl Fn(usize) -> bool, what: &str) -> usize {
    let end = Instant::now() + DEADLINE;
    loop {
        let n = view.snapshot().conns_async_keepalive() as usize;
        if cond(n) {
            return n;
        }
        assert!(Instant::now() < end, "never saw {what} (keep-alive {n})");
        std::thread::sleep(Duration::from_millis(10));
    }
}
