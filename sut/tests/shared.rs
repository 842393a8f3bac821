//! State a handler keeps per process (TS-1): `shared:DUR` writes its request's token into the
//! one slot its process keeps, holds, and reads it back. Two requests that overlap in one child
//! of a threaded MPM see each other's write: exactly one of them (the one that wrote first)
//! finds the other's token. Under prefork each request has its process to itself.

mod support;

use rstest::rstest;
use support::{Options, Response, Server};

/// Sends `/fault/shared:DUR` on `n` connections at once, each sent once the one before is being
/// served (the scoreboard shows it busy), and reads the answers.
fn overlapping(server: &Server, n: usize, hold: &str) -> Vec<Response> {
    let mut clients = Vec::new();
    for i in 0..n {
        let mut c = server.connect();
        c.send_get(&format!("/fault/shared:{hold}"));
        clients.push(c);
        server.wait_scoreboard(&format!("{} busy", i + 1), |s| s.busy_workers() > i);
    }
    clients
        .into_iter()
        .map(|mut c| c.read_response().expect("a shared: request is answered"))
        .collect()
}

fn state(r: &Response) -> &str {
    assert_eq!(r.status, 200);
    r.header("X-Shared-State").expect("X-Shared-State")
}

#[rstest]
fn overlapping_requests_in_one_threaded_child_clobber_each_other(
    #[values("worker", "event")] mpm: &str,
) {
    let server = Options::new(mpm)
        .set("StartServers", 1)
        .set("ServerLimit", 1)
        .set("ThreadsPerChild", 4)
        .set("MinSpareThreads", 1)
        .set("MaxSpareThreads", 4)
        .set("MaxRequestWorkers", 4)
        .faults()
        .start();
    server.wait_idle_workers(4);
    let answers = overlapping(&server, 2, "600ms");
    assert_eq!(answers[0].served_by_pid(), answers[1].served_by_pid());
    let states: Vec<&str> = answers.iter().map(state).collect();
    let clobbered: Vec<&Response> = answers.iter().filter(|r| state(r) == "clobbered").collect();
    assert_eq!(
        clobbered.len(),
        1,
        "exactly one of two is clobbered: {states:?}"
    );
    let intact = answers
        .iter()
        .find(|r| state(r) == "intact")
        .expect("one intact");
    assert_eq!(
        clobbered[0].header("X-Shared-Found"),
        intact.header("X-Shared-Token"),
        "the clobbered request found the other's token"
    );
    // One at a time, nothing is clobbered.
    assert_eq!(state(&server.get("/fault/shared:10ms")), "intact");
}

#[test]
fn under_prefork_each_request_has_its_process_to_itself() {
    let server = Options::new("prefork")
        .set("StartServers", 3)
        .set("MinSpareServers", 1)
        .set("MaxSpareServers", 8)
        .faults()
        .start();
    server.wait_idle_workers(3);
    let answers = overlapping(&server, 3, "400ms");
    let pids: std::collections::BTreeSet<i32> = answers.iter().map(|r| r.served_by_pid()).collect();
    assert_eq!(pids.len(), 3, "three requests, three children");
    for r in &answers {
        assert_eq!(state(r), "intact");
    }
}

#[test]
fn without_faults_it_is_not_found() {
    let server = Options::new("worker").start();
    let r = server.get("/fault/shared:10ms");
    assert_eq!(r.status, 404);
    assert!(r.header("X-Shared-State").is_none());
}
