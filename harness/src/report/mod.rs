//! Reports: the conformance matrix (rows = cases, columns = MPM × target), a run's timeline and
//! verdict in words (`repro`, failures), JUnit XML and JSON; the self-contained HTML report with
//! a picture of every run ([`html`], [`picture`]).

pub mod coverage;
pub mod html;
pub mod picture;

use std::collections::BTreeMap;
use std::fmt::Write;

use refhttpd::Mpm;

use crate::judge::{Run, RunResult, Status};
use crate::observe::{Entry, Observation};
use crate::spec::{Case, Target};

/// The matrix cell of the runs of one (case, MPM, target): `PASS`, `FAIL`, `ERROR` for one
/// run; `PASS 10/10`, `FAIL 8/10`, `ERROR 9/10` (runs passed of runs) for several. A `*` says
/// some expectation was not judged on that target.
pub fn cell(runs: &[&Run]) -> String {
    let n = runs.len();
    let passed = runs.iter().filter(|r| r.verdict.passed()).count();
    let errors = runs
        .iter()
        .filter(|r| r.verdict.result == RunResult::Error)
        .count();
    let word = if errors > 0 {
        "ERROR"
    } else if passed == n {
        "PASS"
    } else {
        "FAIL"
    };
    let star = if runs.iter().any(|r| r.verdict.has_not_judged()) {
        "*"
    } else {
        ""
    };
    if n == 1 {
        format!("{word}{star}")
    } else {
        format!("{word}{star} {passed}/{n}")
    }
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
            let cell =
                if !case.mpms.contains(m) || !case.targets.contains(t) || skipped.contains_key(t) {
                    "n.a.".to_string()
                } else {
                    let mine: Vec<&Run> = runs
                        .iter()
                        .filter(|r| r.case == case.id && r.mpm == *m && r.target == *t)
                        .collect();
                    if mine.is_empty() {
                        "-".to_string()
                    } else {
                        cell(&mine)
                    }
                };
            let _ = write!(out, "  {cell:>17}");
        }
        out.push('\n');
    }
    for (t, why) in skipped {
        let _ = writeln!(out, "n.a. {}: {why}", t.as_str());
    }
    if runs.iter().any(|r| r.verdict.has_not_judged()) {
        out.push_str(
            "*: some expectations were not judged on that target (reference-only, or an \
             observable it lacks)\n",
        );
    }
    if runs.iter().any(|r| r.verdict.result == RunResult::Error) {
        out.push_str("ERROR: the harness broke (nothing was judged); see the run's error\n");
    }
    if runs.len() > cases.len() * columns.len().max(1) {
        out.push_str("N/M: runs passed of runs\n");
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
    let shared = shared_notes(&run.recording.timeline);
    for e in &run.recording.timeline {
        if let Some(line) = timeline_line(e, &shared) {
            let _ = writeln!(out, "{:>9.1} ms  {line}", e.at_ms);
        }
    }
    out.push_str(&verdict_text(run));
    out
}

/// What a `shared:` request's answer said (TS-1), and the requests on either side of a clobber:
/// the one whose token it found, the ones that found its token in place of theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedNote {
    pub intact: bool,
    /// The token it found in its process's slot (its own when intact).
    pub found: String,
    /// When clobbered: the request whose token it found, when the run's responses hold it.
    pub by: Option<String>,
    /// The requests that found its token in place of their own, in the order they answered.
    pub clobbered: Vec<String>,
}

impl SharedNote {
    /// For a tooltip: `shared state clobbered by second`, `shared state intact; clobbered first`.
    pub fn words(&self) -> String {
        let mut out = if self.intact {
            "shared state intact".to_string()
        } else {
            match (&self.by, self.found.as_str()) {
                (Some(by), _) => format!("shared state clobbered by {by}"),
                (None, "") => "shared state clobbered".to_string(),
                (None, token) => format!(
                    "shared state clobbered by a request not among the run's answers (token {token})"
                ),
            }
        };
        if !self.clobbered.is_empty() {
            let _ = write!(out, "; clobbered {}", self.clobbered.join(", "));
        }
        out
    }

    /// For the text timeline: `shared state clobbered (by second)`, `shared state intact
    /// (clobbered first)`.
    pub fn timeline_words(&self) -> String {
        let mut about = Vec::new();
        if !self.intact {
            match (&self.by, self.found.as_str()) {
                (Some(by), _) => about.push(format!("by {by}")),
                (None, "") => {}
                (None, token) => about.push(format!("by token {token}, not an answered request")),
            }
        }
        if !self.clobbered.is_empty() {
            about.push(format!("clobbered {}", self.clobbered.join(", ")));
        }
        let state = if self.intact { "intact" } else { "clobbered" };
        if about.is_empty() {
            format!("shared state {state}")
        } else {
            format!("shared state {state} ({})", about.join("; "))
        }
    }
}

/// The shared-state notes of the run's answered `shared:` requests, by request name. A clobbered
/// request's clobberer is the one [`crate::observe::shared_clobberers`] names.
pub fn shared_notes(timeline: &[Entry]) -> BTreeMap<String, SharedNote> {
    let answers: Vec<(&str, &crate::observe::SharedAnswer)> = timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::Response {
                request,
                shared: Some(answer),
                ..
            } => Some((request.as_str(), answer)),
            _ => None,
        })
        .collect();
    let clobberers = crate::observe::shared_clobberers(timeline);
    let mut notes: BTreeMap<String, SharedNote> = BTreeMap::new();
    for &(name, answer) in &answers {
        let by = clobberers.get(name).cloned();
        notes.insert(
            name.to_string(),
            SharedNote {
                intact: answer.intact,
                found: answer.found.clone(),
                by,
                clobbered: Vec::new(),
            },
        );
    }
    for &(name, _) in &answers {
        if let Some(by) = notes[name].by.clone() {
            if let Some(n) = notes.get_mut(&by) {
                n.clobbered.push(name.to_string());
            }
        }
    }
    notes
}

fn timeline_line(e: &Entry, shared: &BTreeMap<String, SharedNote>) -> Option<String> {
    Some(match &e.what {
        Observation::Step { line, text } => format!("STEP   (line {line}) {text}"),
        Observation::ConnOpened { conn, took_ms } => {
            format!("conn   {conn}: opened in {took_ms:.1} ms")
        }
        Observation::ConnRefused { conn, error } => format!("conn   {conn}: refused ({error})"),
        Observation::RequestSent {
            request,
            conn,
            target,
            how,
        } => format!("req    {request}: sent {target} on {conn} ({how})"),
        Observation::Response {
            request,
            status,
            served_by,
            closes,
            latency_ms,
            ..
        } => format!(
            "req    {request}: {status} after {latency_ms:.1} ms{}{}{}",
            served_by
                .as_ref()
                .map(|b| format!(
                    " from pid {}{}",
                    b.pid,
                    b.thread.map(|t| format!(" thread {t}")).unwrap_or_default()
                ))
                .unwrap_or_default(),
            if *closes { " (Connection: close)" } else { "" },
            shared
                .get(request)
                .map(|n| format!(", {}", n.timeline_words()))
                .unwrap_or_default()
        ),
        Observation::RequestFailed {
            request,
            class,
            latency_ms,
            ..
        } => format!("req    {request}: FAILED ({class}) after {latency_ms:.1} ms"),
        Observation::ResponseBegun { request, .. } => {
            format!("req    {request}: response head in, body still coming")
        }
        Observation::ConnClosedByServer { conn, class } => {
            format!("conn   {conn}: ended by the server ({class})")
        }
        Observation::ConnClosedByClient { conn } => format!("conn   {conn}: closed by the client"),
        Observation::Scoreboard(s) => format!("board  {s}"),
        Observation::Resources(r) => format!("procfs {r}"),
        Observation::ServerEvent { event, pid, detail } => {
            if *event == refhttpd::EventKind::ChildExited {
                return None;
            }
            format!("server {event} (pid {pid}) {detail}")
        }
        Observation::ChildExited { pid, ending } => format!("proc   child {pid} ended: {ending}"),
        Observation::MasterExited {
            ending,
            outlived_by,
        } if outlived_by.is_empty() => format!("proc   master ended: {ending}"),
        Observation::MasterExited {
            ending,
            outlived_by,
        } => format!("proc   master ended: {ending}; its group lives on in pids {outlived_by:?}"),
        Observation::Killed { pid, signal } => {
            format!("proc   harness kills child {pid} with {signal}")
        }
        Observation::StatusPage { keys } => format!(
            "status {}",
            keys.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Observation::LoadStarted { load, shape } => format!("load   {load}: started, {shape}"),
        Observation::LoadWarmed { load, all: true } => {
            format!("load   {load}: warmed, every connection answered once")
        }
        Observation::LoadWarmed { load, all: false } => {
            format!("load   {load}: warm-up over, some connections unanswered")
        }
        Observation::LoadInterval { load, interval } => format!("load   {load}: {interval}"),
        Observation::LoadFinished { load, summary } => {
            let summary = summary
                .strip_prefix(&format!("{load}: "))
                .unwrap_or(summary);
            format!(
                "load   {load}: ended, {}",
                summary.replace("\n  ", "\n             ")
            )
        }
        Observation::Teardown => "STEP   (end) the harness stops the server".to_string(),
        Observation::Note { text } => format!("note   {text}"),
    })
}

/// Each check: what was expected, what was observed.
pub fn verdict_text(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "verdict: {}", run.verdict.result.as_str());
    if let Some(e) = &run.verdict.error {
        let _ = writeln!(out, "  harness error: {e}");
    }
    for c in &run.verdict.checks {
        let mark = match &c.status {
            Status::Passed => "ok".to_string(),
            Status::Failed => "FAILED".to_string(),
            Status::NotJudged(_) => "not judged".to_string(),
        };
        let why = match &c.status {
            Status::NotJudged(why) => format!(" ({why})"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  [{mark}] {}{why}: {}", c.what, c.detail);
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
        let status = match run.verdict.result {
            RunResult::Passed => TestCaseStatus::success(),
            RunResult::Failed => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_description(verdict_text(run));
                s
            }
            RunResult::Error => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(run.verdict.error.clone().unwrap_or_default());
                s.set_description(verdict_text(run));
                s
            }
        };
        let mut tc = TestCase::new(test_name(&run.case, run.mpm, run.target), status);
        tc.set_time(std::time::Duration::from_secs_f64(run.duration_ms / 1000.0));
        if !run.verdict.passed() {
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

#[cfg(test)]
mod tests {
    use super::picture::tests::shared_run;
    use super::*;

    #[test]
    fn a_response_line_says_what_its_shared_request_found() {
        let text = timeline(&shared_run());
        let line = |name: &str| {
            text.lines()
                .find(|l| l.contains(&format!("req    {name}: 200")))
                .unwrap_or_else(|| panic!("no answer of {name} in\n{text}"))
                .to_string()
        };
        assert!(
            line("first").ends_with(
                "first: 200 after 800.0 ms from pid 11 thread 0, shared state clobbered (by second)"
            ),
            "{text}"
        );
        assert!(
            line("second").ends_with(", shared state intact (clobbered first)"),
            "{text}"
        );
        assert!(
            line("elsewhere").ends_with(", shared state intact"),
            "{text}"
        );
    }

    #[test]
    fn a_clobberer_the_run_did_not_answer_is_named_by_its_token() {
        let mut run = shared_run();
        run.recording.timeline.retain(
            |e| !matches!(&e.what, Observation::Response { request, .. } if request == "second"),
        );
        let notes = shared_notes(&run.recording.timeline);
        assert_eq!(notes["first"].by, None, "elsewhere's token 2 is child 12's");
        assert_eq!(
            notes["first"].words(),
            "shared state clobbered by a request not among the run's answers (token 2)"
        );
        assert!(
            timeline(&run).contains("shared state clobbered (by token 2, not an answered request)")
        );
    }
}
