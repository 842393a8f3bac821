//! `mpm-harness load`: the load driver on its own, against any HTTP/1.1 server.

use super::args::{LoadArgs, OnOff};
use super::{FAILED, PASSED, USAGE};
use crate::drive::{Endpoint, TlsClient};

/// `mpm-harness load`: the load driver on its own.
pub(super) fn load_cmd(args: &LoadArgs) -> i32 {
    use crate::drive::load::{self as loadgen, MixEntry, Plan, Progress};
    use crate::observe::load::Interval;

    let (endpoint, path) = match target_of(&args.url, args.cacert.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.url);
            return USAGE;
        }
    };
    let addr = endpoint.addr;
    if args.connections == 0 || args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
        eprintln!("error: --connections and --rate must be above 0");
        return USAGE;
    }
    loadgen::raise_fd_limit();
    let mut plan = Plan::new("load", endpoint, args.connections, args.duration);
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

/// The endpoint and path of an `http://` or `https://` URL; `cacert`: the certificate an
/// `https://` server must present.
pub(super) fn target_of(
    url: &str,
    cacert: Option<&std::path::Path>,
) -> Result<(Endpoint, String), String> {
    use std::net::ToSocketAddrs;
    let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false, 80)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true, 443)
    } else {
        return Err("only http:// and https:// URLs are driven".into());
    };
    if cacert.is_some() && !tls {
        return Err("--cacert is for https:// URLs".into());
    }
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
        format!("{authority}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} has no address"))?;
    let tls = match (tls, cacert) {
        (false, _) => None,
        (true, Some(file)) => Some(TlsClient::trusting(file)?),
        (true, None) => Some(TlsClient::trusting_anything()),
    };
    Ok((Endpoint { addr, tls }, path))
}
