//! The behaviour statements a case may name in `checks` and the directives the cases configure,
//! with their defaults, from `specs/statements.toml`, embedded when the harness is built; and
//! the readable page made of them, `docs/statements.md` (`mpm-harness statements`).

use std::sync::OnceLock;

use refhttpd::Mpm;
use serde::Deserialize;

/// The areas of the statements, in order: ID prefix and heading.
pub const AREAS: [(&str, &str); 10] = [
    ("PM", "The parent (PM)"),
    ("PF", "prefork (PF)"),
    ("WK", "worker (WK)"),
    ("EV", "event (EV)"),
    ("KA", "Keep-alive (KA)"),
    ("TO", "Timeouts (TO)"),
    ("SB", "Scoreboard and status (SB)"),
    (
        "TS",
        "What a handler keeps per process: thread safety and memory (TS)",
    ),
    ("TL", "TLS (TL)"),
    ("HT", "HTTP/1.1 (HT)"),
];

/// One statement: its ID (`PF-2`), one line, the whole statement and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub id: String,
    /// One line, for coverage output and error messages.
    pub text: String,
    /// The whole statement, every number in it (tested to be there).
    #[serde(default)]
    pub full: String,
    /// Where it comes from (tested to be there).
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Why no case can show it on Apache, when none can (its coverage is then the reference's).
    pub apache: Option<String>,
    /// The MPMs it speaks of, where its area does not say (SB-3 is about event).
    pub mpms: Option<Vec<Mpm>>,
}

impl Statement {
    /// The MPMs it speaks of: PF prefork, WK worker, EV event, the others all three.
    pub fn mpms(&self) -> Vec<Mpm> {
        if let Some(m) = &self.mpms {
            return m.clone();
        }
        match self.id.split('-').next() {
            Some("PF") => vec![Mpm::Prefork],
            Some("WK") => vec![Mpm::Worker],
            Some("EV") => vec![Mpm::Event],
            _ => Mpm::ALL.to_vec(),
        }
    }

    /// Its section of `docs/statements.md`: a heading, the whole statement, its sources.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n{}\n", self.id, self.full.trim());
        if let Some(m) = &self.mpms {
            let names: Vec<String> = m.iter().map(ToString::to_string).collect();
            out.push_str(&format!("\nSpeaks of: {}.\n", names.join(", ")));
        }
        if let Some(why) = &self.apache {
            out.push_str(&format!("\nNot checked on Apache: {why}.\n"));
        }
        out.push_str("\nSources:\n\n");
        for s in &self.sources {
            out.push_str(&format!("- {}\n", s.markdown()));
        }
        out
    }
}

/// Where a statement comes from: exactly one of a manual page, a source file, an RFC, or a
/// measurement on Apache.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A page of the Apache HTTP Server 2.4 manual, relative to its root (`mod/event.html`,
    /// `mod/core.html#timeout`).
    pub manual: Option<String>,
    /// A file of Apache httpd's source (`server/mpm/event/event.c`).
    pub file: Option<String>,
    /// The function in `file` (`process_socket`).
    pub function: Option<String>,
    /// An RFC and section (`RFC 9112 §9.3`).
    pub rfc: Option<String>,
    /// A measurement on Apache: the version it was made on (`2.4.71`; `2.4` where the version
    /// was not recorded).
    pub seen: Option<String>,
    /// What in it: a section, a line, what was measured.
    pub note: Option<String>,
}

/// Where the manual's pages are.
const MANUAL: &str = "https://httpd.apache.org/docs/2.4/";

impl Source {
    /// Whether it names exactly one origin, and a function only in a file.
    pub fn is_well_formed(&self) -> bool {
        let kinds = [&self.manual, &self.file, &self.rfc, &self.seen]
            .iter()
            .filter(|k| k.is_some())
            .count();
        kinds == 1 && (self.function.is_none() || self.file.is_some())
    }

    /// One markdown line: what and where, then the note.
    pub fn markdown(&self) -> String {
        let what = if let Some(page) = &self.manual {
            format!("manual: [{page}]({MANUAL}{page})")
        } else if let Some(file) = &self.file {
            match &self.function {
                Some(f) => format!("source: `{file}` `{f}`"),
                None => format!("source: `{file}`"),
            }
        } else if let Some(rfc) = &self.rfc {
            rfc.clone()
        } else if let Some(version) = &self.seen {
            if version.matches('.').count() < 2 {
                format!("seen on Apache {version} (version not recorded)")
            } else {
                format!("seen on Apache {version}")
            }
        } else {
            String::new()
        };
        match &self.note {
            Some(note) => format!("{what} — {note}"),
            None => what,
        }
    }
}

/// A directive of the settings table and its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub name: String,
    pub prefork: Option<String>,
    /// Worker and event.
    pub threaded: Option<String>,
    /// Event only (over `threaded`).
    pub event: Option<String>,
    /// Its page in the manual (`mod/mpm_common.html#startservers`).
    pub manual: Option<String>,
    /// How Apache adjusts or reads the value.
    pub note: Option<String>,
}

impl Setting {
    /// Its name, linked to its page in the manual.
    pub fn markdown_name(&self) -> String {
        match &self.manual {
            Some(page) => format!("[{}]({MANUAL}{page})", self.name),
            None => self.name.clone(),
        }
    }

    /// Its default under `mpm`; `None` where it is not a directive of that MPM.
    pub fn default_for(&self, mpm: Mpm) -> Option<&str> {
        match mpm {
            Mpm::Prefork => self.prefork.as_deref(),
            Mpm::Worker => self.threaded.as_deref(),
            Mpm::Event => self.event.as_deref().or(self.threaded.as_deref()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    statement: Vec<Statement>,
    setting: Vec<Setting>,
}

fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        toml::from_str(STATEMENTS).expect("specs/statements.toml is valid (tested)")
    })
}

/// The settings table.
pub fn settings() -> &'static [Setting] {
    &file().setting
}

const STATEMENTS: &str = include_str!("../../../specs/statements.toml");

/// Every statement, in the file's order.
pub fn statements() -> &'static [Statement] {
    &file().statement
}

/// The statement with this ID.
pub fn statement(id: &str) -> Option<&'static Statement> {
    statements().iter().find(|s| s.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_loads_with_unique_ids_of_the_spec_form() {
        let all = statements();
        assert!(all.len() >= 33, "{}", all.len());
        let mut ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "duplicate IDs");
        for s in all {
            let (area, n) = s.id.split_once('-').expect("AREA-N");
            assert!(AREAS.iter().any(|(a, _)| *a == area), "{}", s.id);
            assert!(n.parse::<u32>().is_ok(), "{}", s.id);
        }
        assert!(statement("EV-8").is_some());
        assert!(statement("XX-99").is_none());
        assert_eq!(statement("WK-3").unwrap().mpms(), vec![Mpm::Worker]);
        assert_eq!(statement("KA-1").unwrap().mpms(), Mpm::ALL.to_vec());
    }

    #[test]
    fn every_statement_has_its_full_text_and_its_sources() {
        for s in statements() {
            assert!(!s.full.trim().is_empty(), "{} has no `full` text", s.id);
            assert!(!s.sources.is_empty(), "{} has no `sources`", s.id);
            for source in &s.sources {
                assert!(
                    source.is_well_formed(),
                    "{}: a source names exactly one of manual, file, rfc, seen (a function only \
                     with a file): {source:?}",
                    s.id
                );
                if let Some(page) = &source.manual {
                    assert!(page.contains(".html"), "{}: {page}", s.id);
                }
            }
        }
        for s in settings() {
            let page = s.manual.as_deref().unwrap_or_default();
            assert!(page.contains(".html#"), "{} has no manual page", s.name);
        }
        let ev5 = statement("EV-5").unwrap();
        assert!(ev5.full.contains("10.0 s") && ev5.full.contains("4.0 s"));
        assert!(ev5
            .markdown()
            .contains("source: `server/mpm/event/event.c` `listener_thread`"));
    }

    #[test]
    fn the_settings_table_names_directives_refhttpd_knows_with_their_defaults() {
        let all = settings();
        assert!(all.len() >= 22, "{}", all.len());
        for s in all {
            for mpm in Mpm::ALL {
                if let Some(default) = s.default_for(mpm) {
                    let set = format!("{}={default}", s.name);
                    refhttpd::Config::load(mpm, None, &[set], false)
                        .unwrap_or_else(|e| panic!("{} under {mpm}: {e}", s.name));
                }
            }
        }
        let arwf = all
            .iter()
            .find(|s| s.name == "AsyncRequestWorkerFactor")
            .unwrap();
        assert_eq!(arwf.default_for(Mpm::Event), Some("2"));
        assert_eq!(arwf.default_for(Mpm::Worker), None);
    }
}
