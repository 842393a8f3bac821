//! The HTTP/1.1 engine over real sockets (HT-1, HT-2, TO-1, KA-3): bad requests get a 4xx and a
//! closed connection and harm nothing; a status that drops the connection (a handler's 500
//! included) closes a kept-alive one; pipelined requests are answered in order; a slow head is
//! cut with 408.

mod support;

use std::time::{Duration, Instant};

use rstest::rstest;
use support::Options;

#[rstest]
#[case::bad_request_line(b"GARBAGE\r\n\r\n".as_slice(), 400)]
#[case::bad_version(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".as_slice(), 400)]
#[case::no_host(b"GET / HTTP/1.1\r\n\r\n".as_slice(), 400)]
#[case::bad_header(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".as_slice(), 400)]
#[case::obs_fold(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n".as_slice(), 400)]
#[case::duplicate_length(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".as_slice(), 400)]
#[case::invalid_length(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".as_slice(), 400)]
#[case::chunked_not_final(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".as_slice(), 400)]
#[case::unknown_coding(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".as_slice(), 501)]
#[case::bad_chunk(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".as_slice(), 400)]
fn bad_requests_get_4xx_and_a_close(
    #[values("prefork", "worker", "event")] mpm: &str,
    #[case] request: &[u8],
    #[case] status: u16,
) {
    let server = Options::new(mpm).set("StartServers", 1).start();
    let mut c = server.connect();
    c.send_raw(request);
    let r = c.read_response().expect("an error response");
    assert_eq!(r.status, status);
    assert!(r.closes());
    assert!(c.is_closed_by_server());
    assert_eq!(server.get("/").status, 200);
    assert!(server.events().iter().all(|e| e["event"] != "child_exited"));
}

#[rstest]
fn limits_are_enforced(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm)
        .set("StartServers", 1)
        .set("LimitRequestLine", 100)
        .set("LimitRequestFields", 3)
        .set("LimitRequestBody", 10)
        .start();
    let long = format!("/{}", "a".repeat(200));
    assert_eq!(server.get(&long).status, 414);
    let mut c = server.connect();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 400);
    let mut c = server.connect();
    c.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(c.read_response().unwrap().status, 413);
    let mut c = server.connect();
    c.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 413);
    assert_eq!(server.get("/").status, 200);
}

/// KA-3: a handler's 500 (the `panic` fault) and 400 (a fault text that does not parse) say
/// `Connection: close` and end a kept-alive connection, and a request pipelined behind the 500
/// is never answered; a 404 keeps the connection. The child lives.
#[rstest]
fn dropping_statuses_close_a_kept_alive_connection(
    #[values("prefork", "worker", "event")] mpm: &str,
) {
    let server = Options::new(mpm).set("StartServers", 1).faults().start();
    for fault in ["panic", "explode"] {
        let mut c = server.connect();
        let first = c.get("/").unwrap();
        assert_eq!(first.status, 200);
        assert!(!first.closes());
        let missing = c.get("/nothing-here").unwrap();
        assert_eq!(missing.status, 404);
        assert!(!missing.closes(), "a 404 keeps the connection");
        let r = c.get(&format!("/fault/{fault}")).unwrap();
        assert_eq!(
            r.status,
            if fault == "panic" { 500 } else { 400 },
            "{fault}"
        );
        assert!(r.closes(), "{fault}: {:?}", r.headers);
        assert!(
            c.is_closed_by_server(),
            "{fault}: the connection stays open"
        );
        assert_eq!(r.served_by_pid(), first.served_by_pid());
    }
    // A request pipelined behind the failing one is read and discarded, not answered; the 500
    // itself arrives whole (no reset).
    let mut c = server.connect();
    c.send_raw(b"GET /fault/panic HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response().expect("the 500");
    assert_eq!(r.status, 500);
    assert!(r.closes());
    assert_eq!(c.read_response().unwrap_err(), support::ReadError::Closed);
    // Keep-alive still works on a new connection of the same child.
    let mut c = server.connect();
    assert!(!c.get("/").unwrap().closes());
    assert!(!c.get("/").unwrap().closes());
    assert!(server.events().iter().all(|e| e["event"] != "child_exited"));
}

/// HT-2: requests sent back to back on one connection are answered in order; bodies between
/// them are consumed exactly.
#[rstest]
fn pipelined_requests_are_answered_in_order(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm).set("StartServers", 1).start();
    let mut c = server.connect();
    c.send_raw(
        b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /bytes/20 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let lengths: Vec<(u16, usize)> = (0..5)
        .map(|_| {
            let r = c.read_response().unwrap();
            (r.status, r.body.len())
        })
        .collect();
    assert_eq!(lengths[0], (200, 10));
    assert_eq!(lengths[1].0, 200);
    assert_eq!(lengths[2].0, 200);
    assert_eq!(lengths[3], (200, 20));
    assert_eq!(lengths[4].0, 404);
}

/// HT-2 across write completion: a request pipelined behind a large file-like response (which
/// event sets aside for its listener) is answered after it, though the worker had already read it.
#[rstest]
fn a_request_pipelined_behind_a_set_aside_response_is_answered(
    #[values("prefork", "worker", "event")] mpm: &str,
) {
    let server = Options::new(mpm).set("StartServers", 1).start();
    let mut c = server.connect();
    // One write: the worker reads both heads at once.
    c.send_raw(
        b"GET /static/16M HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let big = c.read_response().expect("the large response");
    assert_eq!((big.status, big.body.len()), (200, 16 << 20));
    let next = c.read_response().expect("the pipelined response");
    assert_eq!((next.status, next.body.len()), (200, 10));
    assert_eq!(next.served_by_pid(), big.served_by_pid());
}

/// TO-1: a head that arrives too slowly is cut at the RequestReadTimeout header limit with 408.
#[rstest]
fn slow_head_is_cut_with_408(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm)
        .set("StartServers", 1)
        .set("RequestReadTimeout", "header=1,MinRate=1000000 body=5")
        .start();
    let mut c = server.connect();
    let started = Instant::now();
    c.send_raw(b"GET / HTTP/1.1\r\n");
    let r = c.read_response().expect("408");
    assert_eq!(r.status, 408);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "cut after {waited:?}");
    assert!(c.is_closed_by_server());
    server.wait_event("the header timeout", |e| {
        e["event"] == "timeout" && e["kind"] == "header"
    });
}

/// A connection that sends nothing is closed silently when the header stage expires.
#[rstest]
fn silent_connection_is_closed_without_response(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm)
        .set("StartServers", 1)
        .set("RequestReadTimeout", "header=1")
        .start();
    let mut c = server.connect();
    assert!(c.is_closed_by_server());
}

/// Large bodies, both in memory and file-like, arrive whole.
#[rstest]
fn large_bodies(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm).set("StartServers", 1).start();
    let mut c = server.connect();
    for path in ["/bytes/1M", "/static/3M", "/bytes/100", "/static/1"] {
        let r = c.get(path).unwrap();
        assert_eq!(r.status, 200);
        let expected = mpm_faults::size::parse(path.rsplit('/').next().unwrap()).unwrap();
        assert_eq!(r.body.len() as u64, expected, "{path}");
    }
    drop(c);
    let r = server.get("/server-status?auto");
    let status = refhttpd::parse_auto(&String::from_utf8_lossy(&r.body));
    assert_eq!(status["ServerMPM"], mpm);
    assert!(status["Total Accesses"].parse::<u64>().unwrap() >= 4);
}
