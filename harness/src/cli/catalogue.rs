//! The commands on the catalogue itself: load it, `check` case files, `list` its tests,
//! `coverage` of the statements and settings.

use std::path::PathBuf;

use crate::runner;
use crate::spec::{self, Case};

use super::{plan, FAILED, PASSED, USAGE};

pub(super) fn load(dir: Option<PathBuf>) -> Result<Vec<Case>, i32> {
    let dir = dir.unwrap_or_else(crate::default_specs_dir);
    if !dir.is_dir() {
        eprintln!(
            "error: {}: no such folder of spec cases (--specs DIR)",
            dir.display()
        );
        return Err(USAGE);
    }
    let cases = spec::load_dir(&dir).map_err(|errors| {
        for e in errors {
            eprintln!("error: {e}");
        }
        USAGE
    })?;
    if cases.is_empty() {
        eprintln!(
            "error: {}: no case files (a case is <theme>/<name>.toml under it)",
            dir.display()
        );
        return Err(USAGE);
    }
    Ok(cases)
}

/// Checks case files, and every case file under a folder given.
pub(super) fn check(paths: &[PathBuf]) -> i32 {
    let mut code = PASSED;
    let mut files = Vec::new();
    for p in paths {
        // A theme folder (its cases directly in it) is checked file by file.
        let theme: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                    .filter(|f| f.file_name().is_some_and(|n| n != "statements.toml"))
                    .collect()
            })
            .unwrap_or_default();
        if p.is_dir() && !theme.is_empty() && spec::find_files(p).is_empty() {
            let mut theme = theme;
            theme.sort();
            files.extend(theme);
        } else if p.is_dir() {
            let found = spec::find_files(p);
            if found.is_empty() {
                eprintln!(
                    "error: {}: no case files (a case is <theme>/<name>.toml under it)",
                    p.display()
                );
                code = USAGE;
            }
            for e in spec::misplaced(p) {
                eprintln!("error: {e}");
                code = USAGE;
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    for f in &files {
        match spec::load(f) {
            Ok(case) => {
                println!(
                    "{}: ok ({}, {} steps)",
                    f.display(),
                    case.id,
                    case.steps.len()
                );
                for target in case.targets.iter().copied() {
                    for mpm in &case.mpms {
                        let caps = target.capabilities();
                        if let Some(why) = runner::refusal(&case, *mpm, target, &caps) {
                            println!("  note: not runnable under {mpm} on {target}: {why}");
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = USAGE;
            }
        }
    }
    code
}

pub(super) fn coverage(cases: &[Case]) -> i32 {
    let cov = crate::report::coverage::of(cases);
    println!("Statements (cases per MPM; * = runs on the reference only):\n");
    print!("{}", cov.statements_table());
    println!("\nSettings (cases that set the directive off its default, with the value):\n");
    print!("{}", cov.settings_table());
    let uncovered = cov.uncovered();
    if uncovered.is_empty() {
        println!("\nevery statement and every directive is covered");
        PASSED
    } else {
        println!("\nuncovered ({}):", uncovered.len());
        for u in &uncovered {
            println!("  {u}");
        }
        FAILED
    }
}

pub(super) fn list(cases: &[Case], filter: Option<&str>) -> i32 {
    for test in plan::tests(cases) {
        let name = test.name();
        if filter.is_none_or(|f| name.contains(f)) {
            let note = match test.target.available() {
                Ok(()) => String::new(),
                Err(why) => format!("  (not available: {why})"),
            };
            println!("{name}  {}{note}", test.case.title);
        }
    }
    PASSED
}
