//! Test support: start a real `refhttpd` (port 0, temp dir, own process group), talk HTTP/1.1
//! to it (plain requests on a fresh connection with reqwest; everything that needs control of
//! the connection over raw sockets, its responses framed by the harness's own client, never by
//! refhttpd's parser), and watch its scoreboard and event log until a condition
//! holds or a deadline passes. Dropping a [`Server`] stops its whole process group. How a
//! process ended is a nix [`WaitStatus`]: an exit code or the signal that killed it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use refhttpd::{ScoreboardView, Snapshot};

/// The three MPMs, as `--mpm` spells them.
pub const MPMS: [&str; 3] = ["prefork", "worker", "event"];

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running refhttpd.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub master: i32,
    pub mpm: String,
    /// The `mpm=` of the ready line.
    pub ready_mpm: String,
    pub dir: tempfile::TempDir,
    pub scoreboard_path: PathBuf,
    pub event_log_path: PathBuf,
}

/// How to start a server.
pub struct Options<'a> {
    pub mpm: &'a str,
    pub sets: Vec<String>,
    pub faults: bool,
    pub config: Option<PathBuf>,
}

impl<'a> Options<'a> {
    pub fn new(mpm: &'a str) -> Self {
        Options {
            mpm,
            sets: Vec::new(),
            faults: false,
            config: None,
        }
    }

    pub fn config(mut self, path: &std::path::Path) -> Self {
        self.config = Some(path.to_path_buf());
        self
    }

    pub fn set(mut self, directive: &str, value: impl std::fmt::Display) -> Self {
        self.sets.push(format!("{directive}={value}"));
        self
    }

    pub fn faults(mut self) -> Self {
        self.faults = true;
        self
    }

    pub fn start(self) -> Server {
        Server::start(self)
    }
}

pub fn refhttpd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_refhttpd"))
}

/// How process `pid` ended, signal kept.
pub fn wait_status(pid: u32, status: ExitStatus) -> WaitStatus {
    let pid = Pid::from_raw(pid as i32);
    WaitStatus::from_raw(pid, status.into_raw()).expect("an exit or signal status")
}

/// A refhttpd that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub pid: Pid,
    pub status: WaitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The status of a process that exited with `code`, to compare with [`Finished::status`].
    pub fn exited(&self, code: i32) -> WaitStatus {
        WaitStatus::Exited(self.pid, code)
    }
}

/// Runs refhttpd with `args` until it ends; kills it (and fails) after [`DEADLINE`].
pub fn run_to_end<I, S>(args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let child = Command::new(refhttpd_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn refhttpd");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(DEADLINE) else {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        panic!("refhttpd did not end within {DEADLINE:?}");
    };
    let output = output.expect("wait for refhttpd");
    Finished {
        pid: Pid::from_raw(pid as i32),
        status: wait_status(pid, output.status),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The plain HTTP client: a fresh connection per request (nothing is kept idle, so no worker is
/// held in keep-alive by a connection the test does not know of).
fn http() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(DEADLINE)
            .build()
            .expect("HTTP client")
    })
}

/// `GET path` on a fresh connection to `addr`, within [`DEADLINE`].
pub fn get(addr: SocketAddr, path: &str) -> reqwest::Result<Response> {
    let r = http()
        .get(format!("http://{addr}{path}"))
        .timeout(DEADLINE)
        .send()?;
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = r.bytes()?.to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

impl Server {
    pub fn start(opts: Options<'_>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let scoreboard_path = dir.path().join("scoreboard");
        let event_log_path = dir.path().join("events.jsonl");
        let mut cmd = Command::new(refhttpd_bin());
        cmd.arg("--mpm")
            .arg(opts.mpm)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--scoreboard")
            .arg(&scoreboard_path)
            .arg("--event-log")
            .arg(&event_log_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        if opts.faults {
            cmd.arg("--faults");
        }
        if let Some(config) = &opts.config {
            cmd.arg("--config").arg(config);
        }
        for set in &opts.sets {
            cmd.arg("--set").arg(set);
        }
        let mut child = cmd.spawn().expect("spawn refhttpd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(DEADLINE).unwrap_or_default();
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            master: 0,
            mpm: opts.mpm.to_string(),
            ready_mpm: String::new(),
            dir,
            scoreboard_path,
            event_log_path,
        };
        let ready = parse_ready(&line)
            .unwrap_or_else(|| panic!("refhttpd did not print its ready line, got {line:?}"));
        server.addr = ready.0;
        server.master = ready.1;
        server.ready_mpm = ready.2;
        server
    }

    pub fn scoreboard(&self) -> ScoreboardView {
        ScoreboardView::open(&self.scoreboard_path).expect("open scoreboard")
    }

    pub fn snapshot(&self) -> Snapshot {
        self.scoreboard().snapshot()
    }

    /// Waits until the scoreboard satisfies `cond`; panics with `what` at the deadline.
    pub fn wait_scoreboard(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let view = self.scoreboard();
        let end = Instant::now() + DEADLINE;
        loop {
            let snap = view.snapshot();
            if cond(&snap) {
                return snap;
            }

            if Instant::now() > end {
                let events = std::fs::read_to_string(&self.event_log_path).unwrap_or_default();
                panic!(
                    "scoreboard never showed {what}; last: {} (conns {} keep-alive {} writing {} closing {})\nevents:\n{events}",
                    snap.scoreboard_line(),
                    snap.conns_total(),
                    snap.conns_async_keepalive(),
                    snap.conns_async_writing(),
                    snap.conns_async_closing()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the pool is up: every started child ready, `idle` workers idle.
    pub fn wait_idle_workers(&self, idle: usize) -> Snapshot {
        self.wait_scoreboard(&format!("{idle} idle workers"), |s| {
            s.idle_workers() >= idle
        })
    }

    /// Every event logged so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.event_log_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for an event satisfying `cond`.
    pub fn wait_event(
        &self,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| cond(e)) {
                return e;
            }
            if Instant::now() > end {
                panic!("event log never showed {what}: {:#?}", self.events());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.master), sig).expect("signal master");
    }

    /// Waits for the master to end; returns how it ended.
    pub fn wait_exit(&mut self) -> WaitStatus {
        let mut child = self.child.take().expect("the master is waited for once");
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return wait_status(child.id(), status);
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!("refhttpd master did not exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The status of a master that exited with `code`, to compare with [`Server::wait_exit`].
    pub fn exited(&self, code: i32) -> WaitStatus {
        WaitStatus::Exited(Pid::from_raw(self.master), code)
    }

    /// One plain `GET` on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Live child pids from the scoreboard.
    pub fn child_pids(&self) -> Vec<i32> {
        self.snapshot()
            .processes
            .iter()
            .map(|p| p.pid)
            .filter(|&p| p > 0)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// `ready 127.0.0.1:PORT pid=N mpm=M` → (addr, pid, mpm).
pub fn parse_ready(line: &str) -> Option<(SocketAddr, i32, String)> {
    let ready = refhttpd::Ready::parse(line)?;
    Some((ready.addr, ready.master, ready.mpm.to_string()))
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The child pid from `X-Served-By`.
    pub fn served_by_pid(&self) -> i32 {
        let v = self
            .header(refhttpd::SERVED_BY_HEADER)
            .expect("X-Served-By header");
        refhttpd::ServedBy::parse(v)
            .expect("pid in X-Served-By")
            .pid
    }

    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// How reading a response failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The server closed before a complete response (EOF or reset).
    Closed,
    TimedOut,
    Malformed,
}

/// A raw HTTP/1.1 client connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    pub fn send_get(&mut self, path: &str) {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    }

    pub fn set_timeout(&self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
    }

    /// GET on this connection and read the answer.
    pub fn get(&mut self, path: &str) -> Result<Response, ReadError> {
        self.send_get(path);
        self.read_response()
    }

    /// GET with a `Connection: keep-alive` token, which a kept-alive response answers with a
    /// `Keep-Alive` header.
    pub fn get_asking_keep_alive(&mut self, path: &str) -> Result<Response, ReadError> {
        self.send_raw(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        );
        self.read_response()
    }

    fn fill(&mut self) -> Result<(), ReadError> {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ReadError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(ReadError::TimedOut)
            }
            Err(_) => Err(ReadError::Closed),
        }
    }

    /// Reads one response, framed by the harness's client (not by the server's own parser).
    pub fn read_response(&mut self) -> Result<Response, ReadError> {
        use mpm_harness::drive::client::{parse_response, Parsed};
        loop {
            match parse_response(&self.buf) {
                Parsed::Complete(r, used) => {
                    self.buf.drain(..used);
                    return Ok(Response {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                    });
                }
                Parsed::Incomplete => self.fill()?,
                Parsed::Invalid(_) => return Err(ReadError::Malformed),
            }
        }
    }

    /// True when the server has closed this connection (EOF or reset) within the timeout.
    pub fn is_closed_by_server(&mut self) -> bool {
        self.set_timeout(DEADLINE);
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    pub fn half_close(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Whether a process is gone (no /proc entry, or a zombie nobody reaped yet).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Waits until every pid is gone.
pub fn wait_gone(pids: &[i32]) {
    let end = Instant::now() + DEADLINE;
    while pids.iter().any(|&p| !process_gone(p)) {
        assert!(
            Instant::now() < end,
            "processes still running: {:?}",
            pids.iter()
                .filter(|&&p| !process_gone(p))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
