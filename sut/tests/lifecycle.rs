//! The master's life (PM-1, PM-5, PM-6): graceful restart loses nothing in flight, graceful and
//! immediate stops, start-up failures, and nothing outlives a killed master or a killed parent.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use refhttpd::ProcessStatus;
use rstest::rstest;
use support::{process_gone, wait_gone, Options, Server, DEADLINE};

fn small(mpm: &str) -> Options<'_> {
    let opts = Options::new(mpm).set("StartServers", 2).faults();
    if mpm == "prefork" {
        opts.set("MinSpareServers", 1)
    } else {
        opts.set("ThreadsPerChild", 3).set("MinSpareThreads", 1)
    }
}

fn all_pids(server: &Server) -> Vec<i32> {
    let mut pids = server.child_pids();
    pids.push(server.master);
    pids
}

/// PM-6: USR1 with requests in flight: every one completes with 200, a new generation serves.
#[rstest]
fn graceful_restart_loses_nothing_in_flight(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = small(mpm).start();
    server.wait_idle_workers(2);
    let old = server.child_pids();
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let mut c = server.connect();
            c.send_get("/fault/sleep:1s");
            c
        })
        .collect();
    server.wait_scoreboard("two requests in flight", |s| s.busy_workers() >= 2);
    server.signal(Signal::SIGUSR1);
    server.wait_event("the new generation", |e| {
        e["event"] == "generation" && e["generation"] == 1
    });
    for mut c in in_flight {
        let r = c
            .read_response()
            .expect("in-flight request survives a graceful restart");
        assert_eq!(r.status, 200);
        assert!(
            r.closes(),
            "a gracefully stopping child does not keep the connection"
        );
    }
    wait_gone(&old);
    let r = server.get("/");
    assert_eq!(r.status, 200);
    assert!(
        !old.contains(&r.served_by_pid()),
        "served by an old-generation child"
    );
}

/// PM-6: under a graceful restart prefork and worker keep an idle keep-alive connection until
/// its next request, which the old child serves and then closes (it only checks between
/// requests); event's listener closes it at once.
#[rstest]
fn graceful_restart_and_an_idle_keepalive_connection(
    #[values("prefork", "worker", "event")] mpm: &str,
) {
    let server = small(mpm).start();
    server.wait_idle_workers(2);
    let mut c = server.connect();
    let first = c.get_asking_keep_alive("/").expect("answered");
    assert!(!first.closes());
    let old = first.served_by_pid();
    server.signal(Signal::SIGUSR1);
    if mpm == "event" {
        assert!(c.is_closed_by_server(), "event closes it at once");
        return;
    }
    // The old child has noted the signal, and still holds the connection.
    server.wait_scoreboard("the old child stopping gracefully", |s| {
        s.processes
            .iter()
            .any(|p| p.pid == old && p.status == ProcessStatus::Graceful)
    });
    let next = c.get("/").expect("the next request is served");
    assert_eq!(next.status, 200);
    assert_eq!(next.served_by_pid(), old, "by the old child");
    assert!(next.closes(), "and then the connection is closed");
    wait_gone(&[old]);
}

/// PM-6: WINCH lets the in-flight request finish, then the master exits 0.
#[rstest]
fn graceful_stop_finishes_then_exits(#[values("prefork", "worker", "event")] mpm: &str) {
    let mut server = small(mpm).start();
    server.wait_idle_workers(2);
    let pids = all_pids(&server);
    let mut c = server.connect();
    c.send_get("/fault/sleep:700ms");
    server.wait_scoreboard("the request in flight", |s| s.busy_workers() >= 1);
    server.signal(Signal::SIGWINCH);
    assert_eq!(c.read_response().unwrap().status, 200);
    assert_eq!(server.wait_exit(), server.exited(0));
    wait_gone(&pids);
}

/// PM-6: TERM cuts what is in flight and stops everything now.
#[rstest]
fn term_stops_now(#[values("prefork", "worker", "event")] mpm: &str) {
    let mut server = small(mpm).start();
    server.wait_idle_workers(2);
    let pids = all_pids(&server);
    let mut c = server.connect();
    c.send_get("/fault/hang");
    server.wait_scoreboard("the hanging request", |s| s.busy_workers() >= 1);
    server.signal(Signal::SIGTERM);
    assert!(c.read_response().is_err());
    assert_eq!(server.wait_exit(), server.exited(0));
    wait_gone(&pids);
}

/// HUP restarts now: a new generation serves.
#[rstest]
fn hup_restarts(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = small(mpm).start();
    server.wait_idle_workers(2);
    let old = server.child_pids();
    server.signal(Signal::SIGHUP);
    server.wait_event("the new generation", |e| {
        e["event"] == "generation" && e["generation"] == 1
    });
    wait_gone(&old);
    let r = server.get("/");
    assert!(!old.contains(&r.served_by_pid()));
}

/// Children die with a SIGKILLed master: nothing is left behind.
#[rstest]
fn children_die_with_a_killed_master(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = small(mpm).start();
    server.wait_idle_workers(2);
    let children = server.child_pids();
    assert!(!children.is_empty());
    kill(Pid::from_raw(server.master), Signal::SIGKILL).unwrap();
    wait_gone(&children);
}

/// The master dies with the process that started it, even when that process is SIGKILLed.
#[test]
fn master_dies_with_a_killed_parent() {
    // A shell starts refhttpd and waits; killing the shell must take the server down.
    let dir = tempfile::tempdir().unwrap();
    let sb = dir.path().join("sb");
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" --mpm worker --listen 127.0.0.1:0 --scoreboard "$1" --set StartServers=1 & wait"#)
        .arg(support::refhttpd_bin())
        .arg(&sb)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(shell.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (_, master, _) = support::parse_ready(&line).expect("ready line");
    let view = {
        let end = std::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(v) = refhttpd::ScoreboardView::open(&sb) {
                if v.snapshot().live_processes().count() >= 1 {
                    break v;
                }
            }
            assert!(std::time::Instant::now() < end, "no child started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let children: Vec<i32> = view.snapshot().live_processes().map(|p| p.pid).collect();
    shell.kill().unwrap();
    shell.wait().unwrap();
    let mut all = children.clone();
    all.push(master);
    wait_gone(&all);
}

/// Faults are off by default: `/fault/...` answers 404 and nothing happens.
#[rstest]
fn faults_are_refused_without_the_flag(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm).set("StartServers", 1).start();
    let before = server.get("/");
    for fault in ["crash:segv", "exit:1", "panic", "hang", "close"] {
        let r = server.get(&format!("/fault/{fault}"));
        assert_eq!(r.status, 404, "{fault}");
        assert_eq!(r.served_by_pid(), before.served_by_pid());
    }
    assert!(server.events().iter().all(|e| e["event"] != "child_exited"));
}

/// `panic` is caught at the worker boundary: 500, and the same worker keeps serving.
#[rstest]
fn panic_is_answered_500_and_the_worker_lives(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = small(mpm).start();
    let mut c = server.connect();
    let r = c.get("/fault/panic").unwrap();
    assert_eq!(r.status, 500);
    let pid = r.served_by_pid();
    let again = server.get("/");
    assert_eq!(again.status, 200);
    assert!(!process_gone(pid));
    assert!(server.events().iter().all(|e| e["event"] != "child_exited"));
    // A bad fault text is the client's error.
    assert_eq!(server.get("/fault/explode").status, 400);
}

/// PM-5: a child that crashes while starting is not respawned in a tight loop; one that reports
/// a fatal start-up error (exit 15) stops the server with exit code 1.
#[rstest]
fn start_up_failures_back_off_and_fatal_stops(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = small(mpm).set("FaultChildStart", "crash:segv 3").start();
    let backoff = server.wait_event("a start-up back-off", |e| e["event"] == "startup_backoff");
    assert!(backoff["delay_ms"].as_u64().unwrap() >= 1000);
    // After three failed starts the children come up and serve.
    server.wait_scoreboard("a ready child", |s| s.idle_workers() >= 1);
    assert_eq!(server.get("/").status, 200);

    let mut fatal = small(mpm).set("FaultChildStart", "exit:15").start();
    assert_eq!(fatal.wait_exit(), fatal.exited(1));
    fatal.wait_event("child_fatal", |e| e["event"] == "child_fatal");
}
