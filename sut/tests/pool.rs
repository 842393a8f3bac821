//! Pool exhaustion (PF-3, WK-4, PM-3) and keep-alive hold versus release (PF-1, WK-2, EV-1).

mod support;

use std::time::{Duration, Instant};

use rstest::rstest;
use support::Options;

/// A server of exactly two workers for `mpm`, with the given keep-alive timeout.
fn two_workers<'a>(mpm: &'a str, keep_alive: &str) -> Options<'a> {
    let opts = Options::new(mpm)
        .set("KeepAliveTimeout", keep_alive)
        .set("StartServers", if mpm == "prefork" { 2 } else { 1 })
        .faults();
    if mpm == "prefork" {
        opts.set("ServerLimit", 2).set("MinSpareServers", 1)
    } else {
        opts.set("ServerLimit", 1)
            .set("ThreadsPerChild", 2)
            .set("MinSpareThreads", 1)
    }
}

/// With every worker busy the next connection is queued in the backlog, not refused, and served
/// once a worker frees; the master logs once that MaxRequestWorkers is reached.
#[rstest]
fn exhausted_pool_queues_the_next_connection(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = two_workers(mpm, "5s").start();
    server.wait_idle_workers(2);
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let mut c = server.connect();
            c.send_get("/fault/sleep:1500ms");
            c
        })
        .collect();
    server.wait_scoreboard("both workers busy", |s| {
        s.busy_workers() == 2 && s.idle_workers() == 0
    });
    let started = Instant::now();
    let mut queued = server.connect();
    let r = queued
        .get("/")
        .expect("queued connection is served, not refused");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served before a worker freed ({:?})",
        started.elapsed()
    );
    for mut c in busy {
        assert_eq!(c.read_response().unwrap().status, 200);
    }
    let event = server.wait_event("MaxRequestWorkers reached", |e| {
        e["event"] == "max_request_workers"
    });
    assert_eq!(event["limit"], 2);
    let reached = server
        .events()
        .iter()
        .filter(|e| e["event"] == "max_request_workers")
        .count();
    assert_eq!(reached, 1, "logged once");
}

/// prefork and worker hold a worker in `K` for every idle keep-alive connection: with both held,
/// a third client waits for a KeepAliveTimeout. event releases them: the third is answered at once
/// and the connections are counted as async keep-alive.
#[rstest]
fn keep_alive_holds_workers_except_under_event(#[values("prefork", "worker", "event")] mpm: &str) {
    let keep_alive = Duration::from_millis(1500);
    let server = two_workers(mpm, "1500ms").start();
    server.wait_idle_workers(2);
    let mut idle: Vec<_> = (0..2).map(|_| server.connect()).collect();
    for c in &mut idle {
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    if mpm == "event" {
        let s = server.wait_scoreboard("two async keep-alive connections", |s| {
            s.conns_async_keepalive() == 2 && s.idle_workers() == 2
        });
        assert_eq!(s.count(refhttpd::WorkerState::KeepAlive), 0);
    } else {
        server.wait_scoreboard("two workers in K", |s| {
            s.count(refhttpd::WorkerState::KeepAlive) == 2
        });
    }
    let started = Instant::now();
    let mut third = server.connect();
    assert_eq!(third.get("/").unwrap().status, 200);
    let waited = started.elapsed();
    if mpm == "event" {
        assert!(
            waited < keep_alive / 2,
            "event held a worker: third waited {waited:?}"
        );
        for c in &mut idle {
            assert_eq!(
                c.get("/").unwrap().status,
                200,
                "event kept the idle connection"
            );
        }
    } else {
        assert!(
            waited >= keep_alive * 2 / 3,
            "{mpm} answered the third after {waited:?}: no worker was held in keep-alive"
        );
    }
}

/// EV-1 after a request that came while the worker was busy on the same connection: the worker
/// serves it, then gives the connection back to the listener — it does not wait there for a
/// request that is not coming (found by `mpm-harness explore`: the readiness of the second
/// request, recorded while the worker had the connection, sent it to a worker again).
#[test]
fn event_frees_the_worker_after_a_request_that_came_while_it_was_busy() {
    let server = two_workers("event", "30s").start();
    server.wait_idle_workers(2);
    let mut c = server.connect();
    assert_eq!(c.get("/").unwrap().status, 200);
    c.send_get("/fault/sleep:300ms");
    server.wait_scoreboard("the sleep on a worker", |s| s.busy_workers() == 1);
    c.send_get("/");
    assert_eq!(c.read_response().unwrap().status, 200);
    assert_eq!(c.read_response().unwrap().status, 200);
    let s = server.wait_scoreboard("both workers idle, the connection in the listener", |s| {
        s.idle_workers() == 2 && s.conns_async_keepalive() == 1
    });
    assert_eq!(s.busy_workers(), 0);
    assert_eq!(c.get("/").unwrap().status, 200, "the connection is kept");
}

/// KA-1: after MaxKeepAliveRequests keep-alive requests (the first request plus N more, as
/// Apache counts) the last response says `Connection: close` and the server closes; an idle
/// connection is closed after KeepAliveTimeout.
#[rstest]
fn keep_alive_limits(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = two_workers(mpm, "300ms")
        .set("MaxKeepAliveRequests", 3)
        .start();
    let mut c = server.connect();
    for i in 1..=4 {
        let r = c.get_asking_keep_alive("/").unwrap();
        assert_eq!(r.closes(), i == 4, "request {i}: {:?}", r.headers);
        if i < 4 {
            assert_eq!(
                r.header("Keep-Alive"),
                Some(format!("timeout=1, max={}", 4 - i).as_str())
            );
        }
    }
    assert!(c.is_closed_by_server());
    let mut idle = server.connect();
    assert_eq!(idle.get("/").unwrap().status, 200);
    let started = Instant::now();
    assert!(idle.is_closed_by_server(), "idle connection not closed");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed before KeepAliveTimeout"
    );
    let logged = server.wait_event("the keep-alive timeout", |e| {
        e["event"] == "timeout" && e["kind"] == "keepalive"
    });
    // Under event the listener holds the idle connection and closes it, not a worker.
    assert_eq!(logged["thread"].is_null(), mpm == "event", "{logged}");
}

/// KA-2: `Connection: close` and HTTP/1.0 without keep-alive end the connection.
#[rstest]
fn client_asks_to_close(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = two_workers(mpm, "5s").start();
    let mut c = server.connect();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(c.read_response().unwrap().closes());
    assert!(c.is_closed_by_server());
    let mut c = server.connect();
    c.send_raw(b"GET / HTTP/1.0\r\n\r\n");
    assert!(c.read_response().unwrap().closes());
    assert!(c.is_closed_by_server());
    let mut c = server.connect();
    c.send_raw(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(!c.read_response().unwrap().closes());
    c.send_raw(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 200);
}
