//! Reports: the conformance matrix (rows = cases, columns = MPM × target), a run's timeline and
//! verdict in words (`repro`, failures), JUnit XML and JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use refhttpd::config::Mpm;

use crate::observe::{Entry, Observation};
use crate::runner::Run;
use crate::spec::Case;
use crate::target::Target;

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Pass,
    Fail,
    /// Not applicable or not available, with the reason.
    NotRun(String),
}

/// The conformance matrix.
pub fn matrix(
    cases: &[Case],
    runs: &[Run],
    targets: &[Target],
    mpms: &[Mpm],
    skipped: &BTreeMap<Target, String>,
) -> String {
    let columns: Vec<(Mpm, Target)> = targets
        .iter()
        .flat_map(|t| mpms.iter().map(move |m| (*m, *t)))
        .collect();
    let width = cases.iter().map(|c| c.id.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    let _ = write!(out, "{:width$}", "case");
    for (m, t) in &columns {
        let _ = write!(out, "  {:>17}", format!("{}/{}", m.as_str(), t.as_str()));
    }
    out.push('\n');
    for case in cases {
        if !runs.iter().any(|r| r.case == case.id) && skipped.is_empty() {
            continue;
        }
        let _ = write!(out, "{:width$}", case.id);
        for (m, t) in &columns {
            let cell = if !case.mpms.contains(m) || skipped.contains_key(t) {
                "n.a.".to_string()
            } else {
                let mine: Vec<&Run> = runs
                    .iter()
                    .filter(|r| r.case == case.id && r.mpm == *m && r.target == *t)
                    .collect();
                if mine.is_empty() {
                    "-".to_string()
                } else {
                    let failed = mine.iter().filter(|r| !r.verdict.passed).count();
                    let reference_only = mine
                        .iter()
                        .any(|r| r.verdict.checks.iter().any(|c| c.reference_only));
                    let star = if reference_only && *t != Target::Reference {
                        "*"
                    } else {
                        ""
                    };
                    match (failed, mine.len()) {
                        (0, 1) => format!("PASS{star}"),
                        (0, n) => format!("PASS{star} {n}/{n}"),
                        (_, 1) => "FAIL".into(),
                        (f, n) => format!("FAIL {f}/{n}"),
                    }
                }
            };
            let _ = write!(out, "  {cell:>17}");
        }
        out.push('\n');
    }
    for (t, why) in skipped {
        let _ = writeln!(out, "n.a. {}: {why}", t.as_str());
    }
    if runs
        .iter()
        .any(|r| r.target != Target::Reference && r.verdict.checks.iter().any(|c| c.reference_only))
    {
        out.push_str("PASS*: reference-only expectations were not judged on this target\n");
    }
    out
}

/// The timeline of a run, then its verdict: what each connection, worker and process did.
pub fn timeline(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== {} under {} against {} ({:.0} ms)",
        run.case,
        run.mpm.as_str(),
        run.target.as_str(),
        run.duration_ms
    );
    for e in &run.timeline {
        if let Some(line) = timeline_line(e) {
            let _ = writeln!(out, "{:>9.1} ms  {line}", e.at_ms);
        }
    }
    out.push_str(&verdict_text(run));
    out
}

fn timeline_line(e: &Entry) -> Option<String> {
    Some(match &e.what {
        Observation::Step { line, text } => format!("STEP   (line {line}) {text}"),
        Observation::ConnOpened { conn } => format!("conn   {conn}: opened"),
        Observation::ConnRefused { conn, error } => format!("conn   {conn}: refused ({error})"),
        Observation::RequestSent {
            request,
            conn,
            target,
        } => format!("req    {request}: sent {target} on {conn}"),
        Observation::Response {
            request,
            status,
            served_by,
            closes,
            latency_ms,
            ..
        } => format!(
            "req    {request}: {status} after {latency_ms:.1} ms{}{}",
            served_by
                .as_ref()
                .map(|b| format!(
                    " from pid {}{}",
                    b.pid,
                    b.thread.map(|t| format!(" thread {t}")).unwrap_or_default()
                ))
                .unwrap_or_default(),
            if *closes { " (Connection: close)" } else { "" }
        ),
        Observation::RequestFailed {
            request,
            class,
            latency_ms,
            ..
        } => format!("req    {request}: FAILED ({class}) after {latency_ms:.1} ms"),
        Observation::ConnClosedByServer { conn, class } => {
            format!("conn   {conn}: ended by the server ({class})")
        }
        Observation::Scoreboard(s) => format!("board  {s}"),
        Observation::Resources(r) => format!("procfs {r}"),
        Observation::ServerEvent { event, pid, detail } => {
            if event == "child_exited" {
                return None;
            }
            format!("server {event} (pid {pid}) {detail}")
        }
        Observation::ChildExited { pid, signal, code } => match (signal, code) {
            (Some(s), _) => format!("proc   child {pid} died of signal {s}"),
            (_, Some(c)) => format!("proc   child {pid} exited with code {c}"),
            _ => format!("proc   child {pid} exited"),
        },
        Observation::MasterExited { code } => format!("proc   master exited ({code:?})"),
        Observation::Killed { pid, signal } => {
            format!("proc   harness kills child {pid} with {signal}")
        }
        Observation::Teardown => "STEP   (end) the harness stops the server".to_string(),
        Observation::Note { text } => format!("note   {text}"),
    })
}

/// Each check: what was expected, what was observed.
pub fn verdict_text(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "verdict: {}",
        if run.verdict.passed { "PASS" } else { "FAIL" }
    );
    for c in &run.verdict.checks {
        let _ = writeln!(
            out,
            "  [{}] {}{}: {}",
            if c.passed { "ok" } else { "FAILED" },
            c.what,
            if c.reference_only {
                " (reference-only)"
            } else {
                ""
            },
            c.detail
        );
    }
    out
}

/// The test name of a run: `<case id>::<mpm>::<target>`.
pub fn test_name(case: &str, mpm: Mpm, target: Target) -> String {
    format!("{case}::{}::{}", mpm.as_str(), target.as_str())
}

/// JUnit XML of the runs.
pub fn junit(runs: &[Run]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("mpm-harness");
    let mut suites: BTreeMap<String, TestSuite> = BTreeMap::new();
    for run in runs {
        let suite = suites
            .entry(format!("{}::{}", run.mpm.as_str(), run.target.as_str()))
            .or_insert_with_key(|k| TestSuite::new(k.clone()));
        let status = if run.verdict.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_description(verdict_text(run));
            s
        };
        let mut tc = TestCase::new(test_name(&run.case, run.mpm, run.target), status);
        tc.set_time(std::time::Duration::from_secs_f64(run.duration_ms / 1000.0));
        if !run.verdict.passed {
            tc.set_system_out(timeline(run));
        }
        suite.add_test_case(tc);
    }
    report.add_test_suites(suites.into_values());
    report.to_string().unwrap_or_default()
}

/// JSON of the runs (verdicts and timelines).
pub fn json(runs: &[Run]) -> String {
    serde_json::to_string_pretty(runs).unwrap_or_default()
}
