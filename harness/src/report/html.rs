//! The HTML report: one self-contained file (inline CSS, inline SVG, a few lines of inline
//! script for the filters; no network, no external script or font) that opens from disk and
//! stays readable when printed. The matrix first — every cell links to its run, and rows and runs
//! can be filtered by case, MPM, target and result — then each run: its picture
//! ([`Picture`]), its checks (expected versus observed; a failed one highlighted and linked to
//! its moment in the picture), and the text timeline.
//!
//! The document is well-formed XML as well as HTML, so that the tests can parse it strictly.

use std::fmt::Write;

use refhttpd::Mpm;

use super::picture::{anchor, esc, Picture};
use crate::judge::{About, Check, Run, RunResult, Status};
use crate::spec::{Case, Target};

const STYLE: &str = r#"
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 2px 8px; font-size: 0.9em; text-align: left; }
td.cell a { text-decoration: none; color: inherit; display: block; }
.PASS { background: #e8f5e9; } .FAIL { background: #ffcdd2; font-weight: bold; }
.ERROR { background: #fff3cd; font-weight: bold; } .na { color: #999; }
tr.failed td { background: #ffebee; font-weight: bold; }
tr.not-judged td { color: #777; }
.filters { margin: 1em 0; padding: 0.5em; background: #f5f5f5; }
.filters label { margin-right: 1em; }
section.run { border-top: 2px solid #ddd; margin-top: 1.5em; }
svg.picture { border: 1px solid #eee; max-width: 100%; height: auto; }
pre { font-size: 0.8em; background: #fafafa; padding: 0.5em; overflow-x: auto; }
.hidden { display: none; }
@media print {
  .filters { display: none; }
  section.run { break-inside: avoid-page; }
  details > pre { display: block; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// Hides the matrix rows and runs the filters exclude (written without `<` or `&`, so that the
/// document stays well-formed XML).
const SCRIPT: &str = r#"
function applyFilters() {
  var text = document.getElementById('f-case').value.toLowerCase();
  var picks = {};
  ['mpm', 'target', 'result'].forEach(function (k) {
    picks[k] = document.getElementById('f-' + k).value;
  });
  function shown(el) {
    if (el.dataset.case.toLowerCase().indexOf(text) === -1) { return false; }
    var ok = true;
    ['mpm', 'target', 'result'].forEach(function (k) {
      if (picks[k] !== '' ) {
        var have = (el.dataset[k] || '').split(' ');
        if (have.indexOf(picks[k]) === -1) { ok = false; }
      }
    });
    return ok;
  }
  document.querySelectorAll('[data-case]').forEach(function (el) {
    el.classList.toggle('hidden', !shown(el));
  });
}
document.querySelectorAll('.filters input, .filters select').forEach(function (el) {
  el.addEventListener('input', applyFilters);
});
"#;

/// The whole report for `runs` of `cases`, with the matrix over `targets` × `mpms`.
pub fn document(
    title: &str,
    cases: &[Case],
    runs: &[Run],
    targets: &[Target],
    mpms: &[Mpm],
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(title),
        esc(title)
    );
    let passed = runs.iter().filter(|r| r.verdict.passed()).count();
    let _ = write!(
        out,
        "<p>{} runs: {passed} passed, {} failed, {} errors.</p>",
        runs.len(),
        runs.iter()
            .filter(|r| r.verdict.result == RunResult::Failed)
            .count(),
        runs.iter()
            .filter(|r| r.verdict.result == RunResult::Error)
            .count()
    );
    filters(&mut out, targets, mpms);
    matrix(&mut out, cases, runs, targets, mpms);
    for (i, run) in runs.iter().enumerate() {
        run_section(&mut out, &format!("run-{i}"), run);
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

fn filters(out: &mut String, targets: &[Target], mpms: &[Mpm]) {
    let options = |values: Vec<&str>| -> String {
        std::iter::once("<option value=\"\">any</option>".to_string())
            .chain(
                values
                    .into_iter()
                    .map(|v| format!("<option value=\"{v}\">{v}</option>")),
            )
            .collect()
    };
    let _ = write!(
        out,
        "<div class=\"filters\"><label>case <input id=\"f-case\" type=\"search\" placeholder=\"crash/\"/></label><label>MPM <select id=\"f-mpm\">{}</select></label><label>target <select id=\"f-target\">{}</select></label><label>result <select id=\"f-result\">{}</select></label></div>",
        options(mpms.iter().map(|m| m.as_str()).collect()),
        options(targets.iter().map(|t| t.as_str()).collect()),
        options(vec!["PASS", "FAIL", "ERROR"])
    );
}

fn matrix(out: &mut String, cases: &[Case], runs: &[Run], targets: &[Target], mpms: &[Mpm]) {
    let columns: Vec<(Mpm, Target)> = targets
        .iter()
        .flat_map(|t| mpms.iter().map(move |m| (*m, *t)))
        .collect();
    out.push_str("<table class=\"matrix\"><tr><th>case</th>");
    for (m, t) in &columns {
        let _ = write!(out, "<th>{}/{}</th>", m.as_str(), t.as_str());
    }
    out.push_str("</tr>");
    for case in cases {
        let mine: Vec<(usize, &Run)> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.case == case.id)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let results: Vec<&str> = mine
            .iter()
            .map(|(_, r)| r.verdict.result.as_str())
            .collect();
        let _ = write!(
            out,
            "<tr data-case=\"{}\" data-mpm=\"{}\" data-target=\"{}\" data-result=\"{}\"><td>{}</td>",
            esc(&case.id),
            join(mine.iter().map(|(_, r)| r.mpm.as_str())),
            join(mine.iter().map(|(_, r)| r.target.as_str())),
            join(results.iter().copied()),
            esc(&case.id)
        );
        for (m, t) in &columns {
            let cell: Vec<&(usize, &Run)> = mine
                .iter()
                .filter(|(_, r)| r.mpm == *m && r.target == *t)
                .collect();
            if cell.is_empty() {
                out.push_str("<td class=\"na\">n.a.</td>");
                continue;
            }
            // The link goes to the first run that did not pass, else the first.
            let (i, first) = cell
                .iter()
                .find(|(_, r)| !r.verdict.passed())
                .or(cell.first())
                .map(|(i, r)| (*i, *r))
                .expect("not empty");
            let runs_here: Vec<&Run> = cell.iter().map(|(_, r)| *r).collect();
            let _ = write!(
                out,
                "<td class=\"cell {}\"><a href=\"#run-{i}\">{}</a></td>",
                first.verdict.result.as_str(),
                esc(&super::cell(&runs_here))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn join<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = values.collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

fn run_section(out: &mut String, id: &str, run: &Run) {
    let _ = write!(
        out,
        "<section class=\"run\" id=\"{id}\" data-case=\"{}\" data-mpm=\"{}\" data-target=\"{}\" data-result=\"{}\"><h2 class=\"{}\">{} under {} against {}: {} ({:.0} ms)</h2>",
        esc(&run.case),
        run.mpm.as_str(),
        run.target.as_str(),
        run.verdict.result.as_str(),
        run.verdict.result.as_str(),
        esc(&run.case),
        run.mpm.as_str(),
        run.target.as_str(),
        run.verdict.result.as_str(),
        run.duration_ms
    );
    if let Some(e) = &run.verdict.error {
        let _ = write!(out, "<p class=\"ERROR\">harness error: {}</p>", esc(e));
    }
    let picture = Picture::of(run);
    out.push_str(&picture.svg(id));
    if let Some((from, to)) = picture.around_faults() {
        let _ = write!(
            out,
            "<p>Around the fault, {from:.1} ms to {to:.1} ms:</p>{}",
            picture.svg_between(&format!("{id}-zoom"), from, to)
        );
    }
    checks(out, id, &run.verdict.checks, !picture.windows.is_empty());
    let _ = write!(
        out,
        "<details><summary>timeline (text)</summary><pre>{}</pre></details></section>",
        esc(&super::timeline(run))
    );
}

fn checks(out: &mut String, id: &str, checks: &[Check], has_fault: bool) {
    if checks.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"checks\"><tr><th>result</th><th>expected</th><th>observed</th></tr>",
    );
    for c in checks {
        let (class, word) = match &c.status {
            Status::Passed => ("passed", "ok".to_string()),
            Status::Failed => ("failed", "FAILED".to_string()),
            Status::NotJudged(why) => ("not-judged", format!("not judged: {why}")),
        };
        let what = if c.failed() {
            format!(
                "<a href=\"#{}\">{}</a>",
                moment(id, &c.about, has_fault),
                esc(&c.what)
            )
        } else {
            esc(&c.what)
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{what}</td><td>{}</td></tr>",
            esc(&word),
            esc(&c.detail)
        );
    }
    out.push_str("</table>");
}

/// Where a failed check shows in the picture: its step's marker, its request's bar, the first
/// fault window for the crash oracle's checks, or the run.
fn moment(id: &str, about: &About, has_fault: bool) -> String {
    match about {
        About::Step { line } => format!("{id}-step-{line}"),
        About::Request { name } => format!("{id}-req-{}", anchor(name)),
        About::Crash if has_fault => format!("{id}-fault-0"),
        About::Crash | About::Run | About::Load { .. } => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::picture::tests::{crash_run, shared_run, well_formed};
    use super::*;

    #[test]
    fn the_document_is_self_contained_well_formed_and_links_its_cells_and_failures() {
        let run = crash_run();
        let case = crate::spec::parse(
            std::path::Path::new("specs/t/picture.toml"),
            "id = \"t/picture\"\ntitle = \"t\"\nmpms = [\"worker\"]\n",
        )
        .unwrap();
        let page = document("t", &[case], &[run], &[Target::Reference], &[Mpm::Worker]);
        let classes = well_formed(page.trim_start_matches("<!DOCTYPE html>\n"));
        assert_eq!(classes.get("run"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("lane conn"), Some(&2), "{classes:?}");
        // The matrix cell links to its run; the failed check to its step's marker.
        assert!(page.contains("<a href=\"#run-0\">FAIL</a>"), "{page}");
        assert!(page.contains("href=\"#run-0-step-30\""), "{page}");
        assert!(page.contains("id=\"run-0-step-30\""));
        // Nothing is fetched: no external script, style, font or image.
        for outside in ["src=", "<link", "@import", "url(", "href=\"http"] {
            assert!(!page.contains(outside), "`{outside}` in the report");
        }
    }

    #[test]
    fn a_clobber_is_drawn_without_a_reference_and_told_in_the_text_timeline() {
        let run = shared_run();
        let case = crate::spec::parse(
            std::path::Path::new("specs/t/shared.toml"),
            "id = \"t/shared\"\ntitle = \"t\"\nmpms = [\"worker\"]\n",
        )
        .unwrap();
        let page = document("t", &[case], &[run], &[Target::Reference], &[Mpm::Worker]);
        let classes = well_formed(page.trim_start_matches("<!DOCTYPE html>\n"));
        assert_eq!(classes.get("clobbered"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("clobber"), Some(&1), "{classes:?}");
        // The hatch is strokes, not a pattern: nothing the page refers to.
        for outside in ["src=", "<link", "@import", "url(", "href=\"http"] {
            assert!(!page.contains(outside), "`{outside}` in the report");
        }
        assert!(
            page.contains("shared state clobbered (by second)"),
            "{page}"
        );
    }
}
