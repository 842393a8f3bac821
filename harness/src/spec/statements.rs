//! The behaviour statements a case may name in `checks`: SPEC.md's IDs, from
//! `specs/statements.toml`, embedded when the harness is built.

use std::sync::OnceLock;

use serde::Deserialize;

/// One statement: its ID (`PF-2`) and one line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Statement {
    pub id: String,
    pub text: String,
}

#[derive(Deserialize)]
struct File {
    statement: Vec<Statement>,
}

const STATEMENTS: &str = include_str!("../../../specs/statements.toml");

/// Every statement, in SPEC.md's order.
pub fn statements() -> &'static [Statement] {
    static ALL: OnceLock<Vec<Statement>> = OnceLock::new();
    ALL.get_or_init(|| {
        toml::from_str::<File>(STATEMENTS)
            .expect("specs/statements.toml is valid (tested)")
            .statement
    })
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
    }
}
