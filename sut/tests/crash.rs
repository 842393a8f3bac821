//! Crash isolation (PF-2, WK-3, EV-6, PM-4): a crash takes down exactly the connections of the
//! crashed process — one under prefork, every connection of that child (busy and idle in
//! keep-alive) under worker and event — and the master replaces the child at once.

mod support;

use std::collections::BTreeMap;
use std::thread;

use rstest::rstest;
use support::{Client, Options, ReadError, Server};

/// prefork: four children; three hold sleeping requests, the fourth crashes. Only the crashing
/// connection fails.
#[rstest]
fn prefork_crash_affects_only_the_crashing_connection(
    #[values("crash:segv", "crash:abort", "exit:3")] fault: &str,
) {
    let server = Options::new("prefork")
        .set("StartServers", 4)
        .set("MinSpareServers", 1)
        .set("MaxSpareServers", 8)
        .faults()
        .start();
    server.wait_idle_workers(4);
    let sleepers: Vec<_> = (0..3)
        .map(|_| {
            let mut c = server.connect();
            c.send_get("/fault/sleep:1500ms");
            c
        })
        .collect();
    server.wait_scoreboard("3 busy children", |s| s.busy_workers() >= 3);
    let mut crasher = server.connect();
    let crashed = crasher.get(&format!("/fault/{fault}"));
    assert_eq!(
        crashed.unwrap_err(),
        ReadError::Closed,
        "the crashing request gets no response"
    );
    for mut c in sleepers {
        let r = c
            .read_response()
            .expect("a sibling's request survives the crash");
        assert_eq!(r.status, 200);
    }
    let exited = server.wait_event("child_exited", |e| e["event"] == "child_exited");
    match fault {
        // Named in APR's words, as Apache's master logs them.
        "crash:segv" => {
            assert_eq!(exited["signal"], 11);
            assert_eq!(exited["signal_name"], "Segmentation fault");
        }
        "crash:abort" => {
            assert_eq!(exited["signal"], 6);
            assert_eq!(exited["signal_name"], "Abort");
        }
        _ => assert_eq!(exited["code"], 3),
    }
    assert_eq!(server.get("/").status, 200);
}

/// Opens keep-alive connections until both children of a two-child server hold at least two;
/// returns them grouped by the pid that served them.
fn spread_over_children(server: &Server) -> BTreeMap<i32, Vec<Client>> {
    let mut by_pid: BTreeMap<i32, Vec<Client>> = BTreeMap::new();
    for _ in 0..40 {
        let mut c = server.connect();
        let r = c.get("/").expect("keep-alive request");
        assert_eq!(r.status, 200);
        assert!(!r.closes());
        by_pid.entry(r.served_by_pid()).or_default().push(c);
        if by_pid.len() == 2 && by_pid.values().all(|cs| cs.len() >= 2) {
            return by_pid;
        }
    }
    panic!(
        "could not get connections on both children: {:?}",
        by_pid.iter().map(|(p, c)| (p, c.len())).collect::<Vec<_>>()
    );
}

/// worker and event: a crash in one thread ends the child and every connection it held, busy or
/// idle; the other child's connections are untouched.
#[rstest]
fn threaded_crash_takes_every_connection_of_the_child_and_no_other(
    #[values("worker", "event")] mpm: &str,
) {
    let server = Options::new(mpm)
        .set("ServerLimit", 2)
        .set("StartServers", 2)
        .set("ThreadsPerChild", 3)
        .set("MinSpareThreads", 1)
        .set("KeepAliveTimeout", "30s")
        .faults()
        .start();
    server.wait_idle_workers(6);
    let mut groups = spread_over_children(&server);
    let pids: Vec<i32> = groups.keys().copied().collect();
    let (victim, survivor) = (pids[0], pids[1]);
    let mut victim_conns = groups.remove(&victim).unwrap();
    let mut survivor_conns = groups.remove(&survivor).unwrap();

    // One busy request on each child, then the crash on the victim.
    let mut victim_busy = victim_conns.pop().unwrap();
    let mut survivor_busy = survivor_conns.pop().unwrap();
    victim_busy.send_get("/fault/sleep:2s");
    survivor_busy.send_get("/fault/sleep:2s");
    server.wait_scoreboard("two sleeping requests", |s| s.busy_workers() >= 2);
    let mut crasher = victim_conns.pop().unwrap();
    assert_eq!(
        crasher.get("/fault/crash:segv").unwrap_err(),
        ReadError::Closed
    );

    assert_eq!(victim_busy.read_response().unwrap_err(), ReadError::Closed);
    for mut idle in victim_conns {
        assert!(
            idle.is_closed_by_server(),
            "an idle connection of the crashed child survived"
        );
    }
    let r = survivor_busy
        .read_response()
        .expect("the other child's request survives");
    assert_eq!(r.status, 200);
    assert_eq!(r.served_by_pid(), survivor);
    for mut idle in survivor_conns {
        let r = idle
            .get("/")
            .expect("the other child's idle connection survives");
        assert_eq!(r.served_by_pid(), survivor);
    }
    let exited = server.wait_event("the victim's exit", |e| {
        e["event"] == "child_exited" && e["child"] == victim
    });
    assert_eq!(exited["signal"], 11);
    assert_eq!(exited["signal_name"], "Segmentation fault");
}

/// PM-4: the replacement is started at once, not at the next maintenance tick.
#[rstest]
fn crashed_child_is_replaced_at_once(#[values("prefork", "worker", "event")] mpm: &str) {
    let mut opts = Options::new(mpm).set("StartServers", 2).faults();
    if mpm == "prefork" {
        opts = opts.set("MinSpareServers", 1);
    } else {
        opts = opts.set("ThreadsPerChild", 2).set("MinSpareThreads", 1);
    }
    let server = opts.start();
    let before = server.wait_scoreboard("two ready children", |s| {
        s.live_processes().count() == 2 && s.idle_workers() >= 2
    });
    let old: Vec<i32> = before.live_processes().map(|p| p.pid).collect();
    let mut c = server.connect();
    assert!(c.get("/fault/crash:segv").is_err());
    let exited = server.wait_event("child_exited", |e| e["event"] == "child_exited");
    let spawned = server.wait_event("a replacement", |e| {
        e["event"] == "child_spawned"
            && !old.contains(&e["child"].as_i64().unwrap_or(0).try_into().unwrap())
    });
    let gap = spawned["t_ms"].as_f64().unwrap() - exited["t_ms"].as_f64().unwrap();
    assert!(
        gap < 500.0,
        "replacement {gap} ms after the exit: waited for a maintenance tick"
    );
    server.wait_scoreboard("two ready children again", |s| {
        s.live_processes().count() == 2 && s.live_processes().all(|p| p.accepting)
    });
    // Replacement keeps serving.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr;
            thread::spawn(move || {
                support::get(addr, "/")
                    .map(|r| r.status)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(200));
    }
}
