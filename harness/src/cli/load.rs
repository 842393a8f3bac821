//! `mpm-harness load`: the load driver on its own, against any HTTP/1.1 server.

use super::args::{LoadArgs, OnOff};
use super::{FAILED, PASSED, USAGE};

/// `mpm-harness load`: the load driver on its own.
pub(super) fn load_cmd(args: &LoadArgs) -> i32 {
    use crate::drive::load::{self as loadgen, MixEntry, Plan, Progress};
    use crate::observe::load::Interval;

    let (addr, path) = match target_of(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.url);
            return USAGE;
        }
    };
    if args.connections == 0 || args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
        eprintln!("error: --connections and --rate must be above 0");
        return USAGE;
    }
    loadgen::raise_fd_limit();
    let mut plan = Plan::new("load", addr, args.connections, args.duration);
    plan.rate = args.rate;
    plan.keepalive = matches!(args.keepalive, OnOff::On);
    plan.timeout = args.timeout;
    plan.interval = std::time::Duration::from_secs(1);
    plan.keep_requests = false;
    plan.mix = vec![MixEntry {
        path,
        weight: 1,
        fatal: false,
    }];

    struct Line {
        seconds: f64,
    }
    impl Progress for Line {
        fn interval(&mut self, i: &Interval) {
            self.seconds += i.length_ms / 1000.0;
            eprintln!("[{:6.1} s] {i}", self.seconds);
        }
    }
    eprintln!(
        "driving {} at {addr}: {} connections for {:?}{}",
        args.url,
        args.connections,
        args.duration,
        args.rate
            .map(|r| format!(", {r} requests/s"))
            .unwrap_or_default()
    );
    let run = match loadgen::run(&plan, std::time::Instant::now(), &mut Line { seconds: 0.0 }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return FAILED;
        }
    };
    println!("{}", run.summary());
    // The driver's own memory (ru_maxrss is in KiB on Linux): what its connections cost it.
    if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        println!("  driver peak RSS: {} KiB", usage.max_rss());
    }
    if let Some(file) = &args.json {
        let text = serde_json::to_string_pretty(&run).expect("serialisable");
        if let Err(e) = std::fs::write(file, text) {
            eprintln!("error: {}: {e}", file.display());
            return USAGE;
        }
    }
    if run.counts.responses == 0 {
        eprintln!("error: no request was answered");
        return FAILED;
    }
    PASSED
}

/// The address and path of an `http://` URL.
pub(super) fn target_of(url: &str) -> Result<(std::net::SocketAddr, String), String> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are driven")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err("no host".into());
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} has no address"))?;
    Ok((addr, path))
}
