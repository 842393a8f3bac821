//! `/server-status` in mod_status's formats: the machine-readable `?auto` text (SB-2) and a small
//! HTML page, rendered from a scoreboard [`Snapshot`]; and a parser for `?auto` text, which the
//! harness also uses on real Apache.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::scoreboard::Snapshot;

/// What the status page shows besides the scoreboard.
pub struct StatusInfo {
    pub server_version: &'static str,
    pub uptime: Duration,
    pub total_kbytes: u64,
}

/// The `?auto` text, with mod_status's keys.
pub fn render_auto(s: &Snapshot, info: &StatusInfo) -> String {
    let mut out = String::new();
    let uptime = info.uptime.as_secs();
    let accesses = s.total_accesses();
    let mpm = s.mpm.map(|m| m.as_str()).unwrap_or("unknown");
    let _ = writeln!(out, "localhost");
    let _ = writeln!(out, "ServerVersion: {}", info.server_version);
    let _ = writeln!(out, "ServerMPM: {mpm}");
    let _ = writeln!(out, "ParentServerConfigGeneration: {}", s.generation + 1);
    let _ = writeln!(out, "ParentServerMPMGeneration: {}", s.generation);
    let _ = writeln!(out, "ServerUptimeSeconds: {uptime}");
    let _ = writeln!(out, "Total Accesses: {accesses}");
    let _ = writeln!(out, "Total kBytes: {}", info.total_kbytes);
    let _ = writeln!(out, "Uptime: {uptime}");
    if uptime > 0 {
        let _ = writeln!(out, "ReqPerSec: {}", accesses as f64 / uptime as f64);
    }
    let _ = writeln!(out, "BusyWorkers: {}", s.busy_workers());
    let _ = writeln!(
        out,
        "GracefulWorkers: {}",
        s.count(crate::scoreboard::WorkerState::Graceful)
    );
    let _ = writeln!(out, "IdleWorkers: {}", s.idle_workers());
    let _ = writeln!(out, "Processes: {}", s.live_processes().count());
    let _ = writeln!(out, "Stopping: {}", s.stopping());
    let _ = writeln!(out, "ConnsTotal: {}", s.conns_total());
    let _ = writeln!(out, "ConnsAsyncWriting: {}", s.conns_async_writing());
    let _ = writeln!(out, "ConnsAsyncKeepAlive: {}", s.conns_async_keepalive());
    let _ = writeln!(out, "ConnsAsyncClosing: {}", s.conns_async_closing());
    let _ = writeln!(out, "Scoreboard: {}", s.scoreboard_line());
    out
}

/// A human-readable page: the summary, the scoreboard and one row per live worker.
pub fn render_html(s: &Snapshot, info: &StatusInfo) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><title>Server Status</title></head><body>\n<h1>Server Status</h1>\n<pre>\n",
    );
    out.push_str(&escape(&render_auto(s, info)));
    out.push_str("</pre>\n<table border=\"1\"><tr><th>Slot</th><th>PID</th><th>Thread</th><th>M</th><th>Acc</th><th>Bytes</th><th>Client</th><th>Request</th></tr>\n");
    for (p, w) in s.workers() {
        if p.pid == 0 || w.state == crate::scoreboard::WorkerState::Dead {
            continue;
        }
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.slot,
            p.pid,
            w.thread,
            w.state.as_char(),
            w.requests,
            w.bytes,
            escape(&w.client),
            escape(&w.request)
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Parses `?auto` text into its `Key: value` pairs (the first line, the host name, has no key
/// and is skipped).
pub fn parse_auto(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mpm;
    use crate::scoreboard::{ProcessStatus, Scoreboard, WorkerState};

    #[test]
    fn auto_has_mod_status_keys_and_parses_back() {
        let sb = Scoreboard::create(Mpm::Event, 2, 2, 2, None).unwrap();
        sb.process(0).set_pid(10);
        sb.process(0).set_status(ProcessStatus::Ready);
        sb.worker(0, 0).set_state(WorkerState::Idle);
        sb.worker(0, 1).set_state(WorkerState::Writing);
        sb.process(0)
            .async_keepalive()
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let info = StatusInfo {
            server_version: "refhttpd/test",
            uptime: Duration::from_secs(2),
            total_kbytes: 0,
        };
        let text = render_auto(&sb.snapshot(), &info);
        let map = parse_auto(&text);
        assert_eq!(map["ServerMPM"], "event");
        assert_eq!(map["BusyWorkers"], "1");
        assert_eq!(map["IdleWorkers"], "1");
        assert_eq!(map["Processes"], "1");
        assert_eq!(map["ConnsAsyncKeepAlive"], "3");
        assert_eq!(map["Scoreboard"], "_W..");
        for key in [
            "Total Accesses",
            "Stopping",
            "ConnsTotal",
            "ConnsAsyncWriting",
            "ConnsAsyncClosing",
        ] {
            assert!(map.contains_key(key), "missing {key}");
        }
    }
}
