//! The tests of a catalogue: every (case, MPM, target) a case declares, each named
//! `<case id>::<mpm>::<target>`. `run` and `list` plan from here, and so does the `spec` test
//! binary that `cargo test` runs, so a name means the same test everywhere.

use refhttpd::Mpm;

use crate::report;
use crate::spec::{Case, Target};

/// One test: a case under one MPM against one target.
#[derive(Debug, Clone, Copy)]
pub struct Test<'a> {
    pub case: &'a Case,
    pub mpm: Mpm,
    pub target: Target,
}

impl Test<'_> {
    /// `<case id>::<mpm>::<target>`.
    pub fn name(&self) -> String {
        report::test_name(&self.case.id, self.mpm, self.target)
    }
}

/// Every test of `cases`, in the catalogue's order: case, then MPM, then target.
pub fn tests(cases: &[Case]) -> Vec<Test<'_>> {
    let mut tests = Vec::new();
    for case in cases {
        for &mpm in &case.mpms {
            for &target in &case.targets {
                tests.push(Test { case, mpm, target });
            }
        }
    }
    tests
}

/// The tests a `run` picks: those under one of `mpms`, against one of `targets`, whose name
/// contains `filter` (when given), `repeat` times over.
pub fn select<'a>(
    cases: &'a [Case],
    mpms: &[Mpm],
    targets: &[Target],
    filter: Option<&str>,
    repeat: u32,
) -> Vec<Test<'a>> {
    let once: Vec<Test<'a>> = tests(cases)
        .into_iter()
        .filter(|t| mpms.contains(&t.mpm) && targets.contains(&t.target))
        .filter(|t| filter.is_none_or(|f| t.name().contains(f)))
        .collect();
    (0..repeat).flat_map(|_| once.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> Vec<Case> {
        let dir = crate::default_specs_dir();
        crate::spec::load_dir(&dir).expect("the catalogue loads")
    }

    #[test]
    fn every_declared_combination_is_a_test_once() {
        let cases = cases();
        let all = tests(&cases);
        let declared: usize = cases.iter().map(|c| c.mpms.len() * c.targets.len()).sum();
        assert_eq!(all.len(), declared);
        let mut names: Vec<String> = all.iter().map(Test::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), declared, "two tests share a name");
    }

    #[test]
    fn a_selection_keeps_only_what_was_asked_repeated() {
        let cases = cases();
        let picked = select(
            &cases,
            &[Mpm::Worker],
            &[Target::Reference],
            Some("crash/"),
            2,
        );
        assert!(!picked.is_empty());
        assert!(picked.iter().all(|t| t.mpm == Mpm::Worker
            && t.target == Target::Reference
            && t.name().contains("crash/")));
        assert_eq!(picked.len() % 2, 0);
        let half = picked.len() / 2;
        assert_eq!(
            picked[..half].iter().map(Test::name).collect::<Vec<_>>(),
            picked[half..].iter().map(Test::name).collect::<Vec<_>>()
        );
    }
}
