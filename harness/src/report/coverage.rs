//! Coverage of the catalogue: for each behaviour statement (`specs/statements.toml`), the cases
//! that check it under each MPM it speaks of and the targets they run on; for each directive of
//! the settings table, the cases that set it to something other than its default. What no case
//! covers is listed, and `mpm-harness coverage` exits 1 while anything is. Also the readable
//! page of the statements themselves, `docs/statements.md` (`mpm-harness statements`).

use std::collections::BTreeMap;
use std::fmt::Write;

use refhttpd::Mpm;

use crate::runner::refusal;
use crate::spec::{settings, statements, Case, Setting, Statement, Target, AREAS};

/// The cases covering one (statement, MPM), with the targets each runs on.
pub type ByMpm = BTreeMap<Mpm, Vec<(String, Vec<Target>)>>;

/// One statement's coverage.
#[derive(Debug, Clone)]
pub struct StatementCoverage {
    pub statement: &'static Statement,
    pub by_mpm: ByMpm,
}

/// One directive's coverage: per MPM, the cases that set it off its default, with the value.
#[derive(Debug, Clone)]
pub struct SettingCoverage {
    pub setting: &'static Setting,
    pub by_mpm: BTreeMap<Mpm, Vec<(String, String)>>,
}

/// The catalogue's coverage.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub statements: Vec<StatementCoverage>,
    pub settings: Vec<SettingCoverage>,
}

/// The coverage of `cases`.
pub fn of(cases: &[Case]) -> Coverage {
    let statements = statements()
        .iter()
        .map(|statement| {
            let mut by_mpm = ByMpm::new();
            for mpm in statement.mpms() {
                let covering = cases
                    .iter()
                    .filter(|c| c.mpms.contains(&mpm) && c.checks.contains(&statement.id))
                    .map(|c| (c.id.clone(), runs_on(c, mpm)))
                    .collect();
                by_mpm.insert(mpm, covering);
            }
            StatementCoverage { statement, by_mpm }
        })
        .collect();
    let settings = settings()
        .iter()
        .map(|setting| {
            let mut by_mpm = BTreeMap::new();
            for mpm in Mpm::ALL {
                let Some(default) = setting.default_for(mpm) else {
                    continue;
                };
                let setting_cases: Vec<(String, String)> = cases
                    .iter()
                    .filter(|c| c.mpms.contains(&mpm))
                    .filter_map(|c| {
                        c.settings(mpm)
                            .into_iter()
                            .find(|(k, v)| *k == setting.name && !same_value(v, default))
                            .map(|(_, v)| (c.id.clone(), v))
                    })
                    .collect();
                by_mpm.insert(mpm, setting_cases);
            }
            SettingCoverage { setting, by_mpm }
        })
        .collect();
    Coverage {
        statements,
        settings,
    }
}

/// The command that writes `docs/statements.md`.
pub const STATEMENTS_COMMAND: &str =
    "cargo run --release -p mpm-harness -- statements > docs/statements.md";

/// `docs/statements.md`: every statement in full with its sources, and the settings table, from
/// `specs/statements.toml`.
pub fn statements_page() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Behaviour statements\n");
    let _ = writeln!(
        out,
        "<!-- Generated from specs/statements.toml by `{STATEMENTS_COMMAND}`; edit that file, \
         not this one (harness/tests/docs.rs fails while they differ). -->\n"
    );
    out.push_str(
        "What a conforming prefork, worker or event MPM does, as numbered statements. A spec \
case names the statements it checks in `checks`; `mpm-harness coverage` lists the cases that \
check each one, per MPM and target. Each statement says where it comes from: a page of the \
[Apache HTTP Server 2.4 manual](https://httpd.apache.org/docs/2.4/) (offline after \
`apt-get install apache2-doc`, under /usr/share/doc/apache2-doc/manual/), a function of Apache \
httpd's source, an RFC, or a measurement of Debian's Apache on this project's machines \
(*seen*, with the version it was made on). Where a statement and Apache disagree, Apache is \
right and the statement is fixed; what running the catalogue against Apache showed is in \
[spec-notes.md](spec-notes.md).\n",
    );
    let _ = writeln!(out, "\n## Settings\n");
    out.push_str(
        "Apache's directive names, meanings and defaults. Durations take a unit \
(`KeepAliveTimeout 200ms`), as Apache's do; the cases use short ones so that the catalogue \
stays fast.\n\n",
    );
    let _ = writeln!(out, "| directive | prefork | worker / event | notes |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for s in settings() {
        let name = s.markdown_name();
        let threaded = match (&s.threaded, &s.event) {
            (Some(t), _) => t.clone(),
            (None, Some(e)) => format!("event only: {e}"),
            (None, None) => "—".to_string(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {threaded} | {} |",
            s.prefork.as_deref().unwrap_or("—"),
            s.note.as_deref().unwrap_or("")
        );
    }
    for (area, heading) in AREAS {
        let _ = writeln!(out, "\n## {heading}\n");
        let mut first = true;
        for s in statements()
            .iter()
            .filter(|s| s.id.split('-').next() == Some(area))
        {
            if !first {
                out.push('\n');
            }
            first = false;
            out.push_str(&s.markdown());
        }
    }
    out
}

/// The targets a case runs on under `mpm` (those that do not refuse it).
fn runs_on(case: &Case, mpm: Mpm) -> Vec<Target> {
    case.targets
        .iter()
        .copied()
        .filter(|t| refusal(case, mpm, *t, &t.capabilities()).is_none())
        .collect()
}

/// Whether two directive values mean the same: as durations, as numbers, or as words.
fn same_value(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if let (Ok(x), Ok(y)) = (a.parse::<u64>(), b.parse::<u64>()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (
        mpm_faults::duration::parse(a),
        mpm_faults::duration::parse(b),
    ) {
        return x == y;
    }
    a.eq_ignore_ascii_case(b)
}

impl Coverage {
    /// What no case covers, one line each.
    pub fn uncovered(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.statements {
            for (mpm, cases) in &s.by_mpm {
                let id = &s.statement.id;
                if cases.is_empty() {
                    out.push(format!("{id} under {mpm}: no case checks it"));
                    continue;
                }
                for target in Target::ALL {
                    let runs = cases.iter().any(|(_, ts)| ts.contains(&target));
                    let excused = target == Target::Apache && s.statement.apache.is_some();
                    if !runs && !excused {
                        out.push(format!(
                            "{id} under {mpm}: no case that checks it runs on {target}"
                        ));
                    }
                }
            }
        }
        for s in &self.settings {
            if s.by_mpm.values().all(Vec::is_empty) {
                out.push(format!(
                    "{}: no case sets it to another value than its default",
                    s.setting.name
                ));
            }
        }
        out
    }

    /// The statement table: ID, then per MPM the covering cases (`*`: reference only).
    pub fn statements_table(&self) -> String {
        table(
            "statement",
            self.statements.iter().map(|s| {
                let cells = s.by_mpm.iter().map(|(mpm, cases)| {
                    let names = cases.iter().map(|(id, targets)| {
                        let star = if targets.contains(&Target::Apache) {
                            ""
                        } else {
                            "*"
                        };
                        format!("{id}{star}")
                    });
                    (*mpm, names.collect())
                });
                (s.statement.id.as_str(), cells.collect())
            }),
        )
    }

    /// The settings table: directive, then per MPM the cases that set it off its default.
    pub fn settings_table(&self) -> String {
        table(
            "directive",
            self.settings.iter().map(|s| {
                let cells = s.by_mpm.iter().map(|(mpm, cases)| {
                    let names = cases.iter().map(|(id, v)| format!("{id} ({v})"));
                    (*mpm, names.collect())
                });
                (s.setting.name.as_str(), cells.collect())
            }),
        )
    }
}

/// A markdown table: a row per name, a column per MPM; `—` where the row does not speak of the
/// MPM, `**none**` where nothing covers it.
fn table<'a>(
    first: &str,
    rows: impl Iterator<Item = (&'a str, BTreeMap<Mpm, Vec<String>>)>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {first} | prefork | worker | event |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for (name, cells) in rows {
        let _ = write!(out, "| {name} |");
        for mpm in Mpm::ALL {
            let cell = match cells.get(&mpm) {
                None => "—".to_string(),
                Some(cases) if cases.is_empty() => "**none**".to_string(),
                Some(cases) => cases.join(", "),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn case(text: &str) -> Case {
        crate::spec::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn statements_by_mpm_and_target_and_settings_off_their_default() {
        let a = case(
            r#"
id = "t/a"
title = "t"
checks = ["PF-2", "KA-1"]
mpms = ["prefork"]
[server]
all = { KeepAliveTimeout = "5", MaxKeepAliveRequests = 3 }
"#,
        );
        let b = case(
            r#"
id = "t/b"
title = "t"
checks = ["KA-1"]
mpms = ["worker", "event"]
[[step]]
wait = { event = "keep_alive_closed_early" }
only = ["event"]
"#,
        );
        let cov = of(&[a, b]);
        let find = |id: &str| {
            cov.statements
                .iter()
                .find(|s| s.statement.id == id)
                .unwrap()
        };
        let pf2 = find("PF-2");
        assert_eq!(pf2.by_mpm.len(), 1, "PF speaks of prefork only");
        assert_eq!(
            pf2.by_mpm[&Mpm::Prefork],
            vec![("t/a".to_string(), Target::ALL.to_vec())]
        );
        let ka1 = find("KA-1");
        assert_eq!(ka1.by_mpm[&Mpm::Worker][0].1, Target::ALL.to_vec());
        // The event-only wait on an event Apache does not report: reference only.
        assert_eq!(ka1.by_mpm[&Mpm::Event][0].1, vec![Target::Reference]);
        let uncovered = cov.uncovered();
        assert!(
            uncovered.contains(&"KA-1 under event: no case that checks it runs on apache".into()),
            "{uncovered:#?}"
        );
        assert!(uncovered.contains(&"WK-3 under worker: no case checks it".into()));
        assert!(!uncovered.iter().any(|u| u.starts_with("PF-2")));
        // KeepAliveTimeout 5 (seconds) is the default; MaxKeepAliveRequests 3 is not.
        assert!(uncovered.contains(
            &"KeepAliveTimeout: no case sets it to another value than its default".into()
        ));
        assert!(!uncovered
            .iter()
            .any(|u| u.starts_with("MaxKeepAliveRequests")));
        assert!(cov
            .statements_table()
            .contains("| KA-1 | t/a | t/b | t/b* |"));
    }

    #[test]
    fn the_statements_page_has_every_statement_and_directive() {
        let page = statements_page();
        for s in statements() {
            assert!(
                page.contains(&format!("\n### {}\n", s.id)),
                "{} is not on the page",
                s.id
            );
        }
        for s in settings() {
            assert!(page.contains(&format!("[{}](", s.name)), "{}", s.name);
        }
        assert!(page.contains(
            "- manual: [mod/event.html#asyncrequestworkerfactor](https://httpd.apache.org/docs/2.4/mod/event.html#asyncrequestworkerfactor)"
        ));
    }

    #[test]
    fn values_compare_by_meaning() {
        assert!(same_value("5", "5s"));
        assert!(same_value("5000ms", "5s"));
        assert!(!same_value("2s", "5s"));
        assert!(same_value("on", "On"));
        assert!(same_value("0100", "100"));
    }
}
