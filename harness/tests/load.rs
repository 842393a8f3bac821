//! The load driver against a real reference server: what it measures is what happened.
//!
//! Its own `main` (libtest-mimic), because the reference target re-executes the test binary to
//! run refhttpd (`serve_if_asked`).

use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use mpm_harness::drive::load::{self as loadgen, MixEntry, Plan, Quiet};
use mpm_harness::observe::load::{ConnEnd, LoadRun};
use mpm_harness::observe::Store;
use mpm_harness::spec::Target;
use mpm_harness::target::{serve_if_asked, Launch, Started};
use refhttpd::Mpm;

fn main() {
    serve_if_asked();
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("a_stall_is_counted_from_the_intended_start", stall_counted),
        Trial::test("the_closed_model_keeps_its_connections", closed_model_keeps),
        Trial::test(
            "without_keepalive_each_request_has_a_connection",
            one_per_request,
        ),
        Trial::test(
            "the_cli_reports_throughput_and_both_percentiles",
            cli_reports,
        ),
        Trial::test("the_cli_answers_bad_usage_with_exit_2", cli_bad_usage),
        Trial::test(
            "over_tls_keepalive_makes_one_handshake_per_connection",
            tls_keepalive,
        ),
        Trial::test(
            "over_tls_without_keepalive_each_response_has_its_handshake",
            tls_one_per_request,
        ),
        Trial::test(
            "the_cli_drives_https_trusting_the_servers_certificate",
            cli_https,
        ),
        Trial::test(
            "running_out_of_descriptors_is_the_drivers_error_not_a_refusal",
            own_limit,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// A reference server; stopped (the whole group) when dropped.
struct Server {
    store: Store,
    started: Option<Started>,
}

impl Server {
    fn start(mpm: Mpm, settings: &[(&str, &str)], faults: bool) -> Server {
        Server::launch(mpm, settings, faults, false)
    }

    /// Serving TLS with a certificate made for it, which `endpoint()` trusts.
    fn start_tls(mpm: Mpm, settings: &[(&str, &str)]) -> Server {
        Server::launch(mpm, settings, false, true)
    }

    fn launch(mpm: Mpm, settings: &[(&str, &str)], faults: bool, tls: bool) -> Server {
        let store = Store::new();
        let launch = Launch {
            mpm,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            faults,
            tls,
            apache_only: Vec::new(),
        };
        let started = Target::Reference
            .kind()
            .start(&launch, &store)
            .expect("the reference server starts");
        Server {
            store,
            started: Some(started),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.started.as_ref().expect("running").server.addr()
    }

    fn endpoint(&self) -> mpm_harness::drive::Endpoint {
        self.started.as_ref().expect("running").server.endpoint()
    }

    /// The certificate file a TLS server was started with: its master's `--set
    /// SSLCertificateFile=…`.
    fn certificate_file(&self) -> Option<String> {
        let master = self.started.as_ref()?.server.master();
        let cmdline = std::fs::read(format!("/proc/{master}/cmdline")).ok()?;
        cmdline
            .split(|&b| b == 0)
            .filter_map(|arg| std::str::from_utf8(arg).ok())
            .find_map(|arg| arg.strip_prefix("SSLCertificateFile="))
            .map(str::to_string)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut s) = self.started.take() {
            s.server.stop();
            self.store.close();
            for o in s.observers {
                let _ = o.join();
            }
        }
    }
}

fn drive(plan: &Plan) -> LoadRun {
    loadgen::run(plan, Instant::now(), &mut Quiet).expect("the load runs")
}

/// Every request had a connection of its own (`keepalive = false`).
fn ensure_a_connection_per_request(run: &LoadRun) -> Result<(), Failed> {
    ensure(
        run.connections.len() as u64 == run.counts.requests,
        format!(
            "{} connections for {} requests",
            run.connections.len(),
            run.counts.requests
        ),
    )
}

fn ensure(ok: bool, what: impl Into<String>) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

/// Two connections asked for 20 requests a second each, of a handler that takes 100 ms: each
/// connection can only do ten, so requests fall ever further behind their schedule. The raw
/// latency stays at the handler's 100 ms; the corrected one grows with the lag — what a user
/// of the server would have seen.
fn stall_counted() -> Result<(), Failed> {
    let server = Server::start(Mpm::Worker, &[], true);
    let mut plan = Plan::new("stall", server.endpoint(), 2, Duration::from_secs(1));
    plan.rate = Some(40.0);
    plan.mix = vec![MixEntry {
        path: "/fault/sleep:100ms".into(),
        weight: 1,
        fatal: false,
    }];
    let run = drive(&plan);
    ensure(
        run.counts.failed() == 0,
        format!("failures: {:?}", run.counts),
    )?;
    ensure(
        run.counts.requests == 40,
        format!("every scheduled request is sent: {:?}", run.counts),
    )?;
    ensure(
        (95.0..200.0).contains(&run.raw.p50),
        format!("raw p50 is the handler's time: {}", run.raw),
    )?;
    // The last of each connection's twenty was due at 0.95 s and answered at about 2 s.
    ensure(
        run.corrected.max >= 900.0 && run.corrected.p50 >= 300.0,
        format!("corrected: {}; raw: {}", run.corrected, run.raw),
    )?;
    ensure(
        run.throughput < 25.0,
        format!("two connections answer about 20/s: {}", run.throughput),
    )
}

/// The closed model on keep-alive: as many connections as asked, none reopened, every request
/// answered, and the owner of each known.
fn closed_model_keeps() -> Result<(), Failed> {
    let server = Server::start(Mpm::Worker, &[("MaxKeepAliveRequests", "0")], false);
    let run = drive(&Plan::new(
        "closed",
        server.endpoint(),
        4,
        Duration::from_millis(300),
    ));
    ensure(run.counts.failed() == 0, format!("{:?}", run.counts))?;
    ensure(
        run.counts.requests >= 100,
        format!("{} requests", run.counts.requests),
    )?;
    ensure(
        run.connections.len() == 4,
        format!("{} connections", run.connections.len()),
    )?;
    ensure(
        run.connections
            .iter()
            .all(|c| c.owner.is_some() && c.end == ConnEnd::Open),
        format!("{:?}", run.connections),
    )?;
    let requests = run.counts.requests as usize;
    ensure(run.requests.len() == requests, "every request is recorded")?;
    // Every interval is accounted for: their requests add up to the whole.
    let by_interval: u64 = run.intervals.iter().map(|i| i.done).sum();
    ensure(
        by_interval == run.counts.requests,
        format!("{by_interval} in intervals of {}", run.counts.requests),
    )
}

/// `keepalive = false`: `Connection: close` on each request, a connection each, ended after
/// its response as announced.
fn one_per_request() -> Result<(), Failed> {
    let server = Server::start(Mpm::Prefork, &[], false);
    let mut plan = Plan::new("fresh", server.endpoint(), 2, Duration::from_millis(300));
    plan.keepalive = false;
    let run = drive(&plan);
    ensure(run.counts.failed() == 0, format!("{:?}", run.counts))?;
    ensure_a_connection_per_request(&run)?;
    ensure(
        run.connections
            .iter()
            .all(|c| matches!(c.end, ConnEnd::Announced | ConnEnd::Open)),
        "each ended after its response",
    )
}

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpm-harness"))
}

fn cli_reports() -> Result<(), Failed> {
    let server = Server::start(Mpm::Event, &[], false);
    let out = harness()
        .args(["load", &format!("http://{}/", server.addr())])
        .args(["--connections", "3", "--duration", "300ms", "--rate", "100"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.code() == Some(0), format!("{stdout}{stderr}"))?;
    for line in [
        "requests/s: ",
        "latency (corrected): p50",
        "latency (raw): p50",
        "driver peak RSS",
    ] {
        ensure(stdout.contains(line), format!("no `{line}` in {stdout}"))?;
    }
    ensure(
        !stdout.contains("TLS handshakes"),
        format!("no TLS line for a plain run: {stdout}"),
    )?;
    // 100 requests/s for 0.3 s: 30 requests, all answered.
    ensure(
        stdout.contains("requests: 30 in") && stdout.contains(" 0 failed"),
        stdout.to_string(),
    )?;
    ensure(
        stderr.contains("requests/s"),
        format!("a progress line: {stderr}"),
    )
}

fn cli_bad_usage() -> Result<(), Failed> {
    for (args, code, says) in [
        (
            vec!["load", "ftp://example.org/"],
            2,
            "only http:// and https://",
        ),
        (
            vec!["load", "http://127.0.0.1:9/", "--cacert", "server.crt"],
            2,
            "--cacert is for https://",
        ),
        (
            vec!["load", "http://127.0.0.1:9/", "--connections", "0"],
            2,
            "above 0",
        ),
        (vec!["load", "http:///"], 2, "no host"),
    ] {
        let out = harness().args(&args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure(
            out.status.code() == Some(code) && stderr.contains(says),
            format!("{args:?}: {:?} {stderr}", out.status.code()),
        )?;
    }
    // Nothing listens on a port just released: every request refused, exit 1.
    let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let out = harness()
        .args(["load", &format!("http://{free}/"), "--duration", "100ms"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(
        out.status.code() == Some(1) && stderr.contains("no request was answered"),
        format!("{:?} {stderr}", out.status.code()),
    )
}

/// With room for 64 descriptors, 200 connections cannot all be opened: that is the driver's
/// limit, reported as an error (exit 1), not counted as requests the server refused.
fn own_limit() -> Result<(), Failed> {
    let server = Server::start(Mpm::Event, &[], false);
    let out = Command::new("bash")
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_mpm-harness"))
        .args(["load", &format!("http://{}/", server.addr())])
        .args(["--connections", "200", "--duration", "300ms"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(
        out.status.code() == Some(1)
            && stderr.contains("the load driver cannot open a connection")
            && !stdout.contains("requests/s:"),
        format!("{:?}\n{stdout}\n{stderr}", out.status.code()),
    )
}

/// Keep-alive over TLS: every request answered, and one full handshake per connection, made
/// when it opened.
fn tls_keepalive() -> Result<(), Failed> {
    let server = Server::start_tls(Mpm::Worker, &[("MaxKeepAliveRequests", "0")]);
    let run = drive(&Plan::new(
        "tls-closed",
        server.endpoint(),
        4,
        Duration::from_millis(300),
    ));
    ensure(run.counts.failed() == 0, format!("{:?}", run.counts))?;
    ensure(
        run.counts.responses == run.counts.requests && run.counts.requests >= 20,
        format!("{:?}", run.counts),
    )?;
    ensure(
        run.connections.len() == 4
            && run
                .connections
                .iter()
                .all(|c| c.owner.is_some() && c.end == ConnEnd::Open),
        format!("{:?}", run.connections),
    )?;
    let tls = run.tls.ok_or("a run over TLS has its TLS figures")?;
    ensure(tls.handshakes == 4, format!("{tls:?}"))?;
    ensure(
        run.summary().contains("TLS handshakes: 4 completed"),
        run.summary(),
    )
}

/// A connection per request over TLS: each response came after a handshake of its own (the
/// last connections may have completed theirs without an answer yet, if the run ended so).
fn tls_one_per_request() -> Result<(), Failed> {
    let server = Server::start_tls(Mpm::Worker, &[]);
    let mut plan = Plan::new(
        "tls-fresh",
        server.endpoint(),
        2,
        Duration::from_millis(300),
    );
    plan.keepalive = false;
    let run = drive(&plan);
    ensure(run.counts.failed() == 0, format!("{:?}", run.counts))?;
    let tls = run.tls.ok_or("a run over TLS has its TLS figures")?;
    let responses = run.counts.responses;
    ensure(
        responses >= 10 && (responses..=responses + 2).contains(&tls.handshakes),
        format!("{tls:?} for {:?}", run.counts),
    )?;
    ensure_a_connection_per_request(&run)?;
    ensure(
        tls.handshakes_per_s > 0.0,
        format!("handshakes per second: {tls:?}"),
    )
}

/// `mpm-harness load https://… --cacert <the server's certificate>`: answered, and the
/// handshakes in the summary.
fn cli_https() -> Result<(), Failed> {
    let server = Server::start_tls(Mpm::Event, &[("MaxKeepAliveRequests", "0")]);
    let Some(cert) = server.certificate_file() else {
        return Err("the server's certificate file is not on its command line".into());
    };
    let out = harness()
        .args(["load", &format!("https://{}/", server.addr())])
        .args(["--cacert", &cert])
        .args(["--connections", "3", "--duration", "300ms"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.code() == Some(0), format!("{stdout}{stderr}"))?;
    ensure(
        stdout.contains(" 0 failed") && stdout.contains("TLS handshakes: 3 completed"),
        stdout.to_string(),
    )
}
