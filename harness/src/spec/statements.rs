//! The behaviour statements a case may name in `checks` (SPEC.md's IDs) and the directives of
//! SPEC.md's settings table with their defaults, from `specs/statements.toml`, embedded when
//! the harness is built.

use std::sync::OnceLock;

use refhttpd::Mpm;
use serde::Deserialize;

/// One statement: its ID (`PF-2`) and one line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub id: String,
    pub text: String,
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
}

impl Setting {
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

/// Every statement, in SPEC.md's order.
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
            assert!(
                ["PM", "PF", "WK", "EV", "KA", "TO", "SB", "HT"].contains(&area),
                "{}",
                s.id
            );
            assert!(n.parse::<u32>().is_ok(), "{}", s.id);
        }
        assert!(statement("EV-8").is_some());
        assert!(statement("XX-99").is_none());
        assert_eq!(statement("WK-3").unwrap().mpms(), vec![Mpm::Worker]);
        assert_eq!(statement("KA-1").unwrap().mpms(), Mpm::ALL.to_vec());
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
