//! The `mpm-harness` command line: the arguments as written (`args`, clap), the tests they
//! plan ([`plan`]), the scheduler that runs them ([`jobs`]), and the commands — on the catalogue
//! (`catalogue`: `check`, `list`, `coverage`), on runs (`runs`: `run`, `repro`, `judge`),
//! `load` and `explore`. `schema`, `new` and `statements` print what the spec and report layers
//! make.
//!
//! Every command ends in one of three exit codes: [`PASSED`], [`FAILED`], [`USAGE`].

mod args;
mod catalogue;
mod explore;
pub mod jobs;
mod load;
pub mod plan;
mod runs;

use clap::Parser;
use refhttpd::Mpm;

use crate::spec::{self, Target};

use args::{Cli, Command};

/// Exit code: every run passed (or the command did what it was asked)…
pub const PASSED: i32 = 0;
/// … a run failed, or was an error (the harness broke), or explore found a disagreement …
pub const FAILED: i32 = 1;
/// … bad usage or a bad case (which names its file, line and column).
pub const USAGE: i32 = 2;

/// Parses the command line, runs the command, and gives the process's exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Schema => {
            println!("{}", spec::schema());
            PASSED
        }
        Command::Check { files } => catalogue::check(&files),
        Command::New { id } => {
            let given = cli
                .specs
                .as_ref()
                .map(|d| format!(" --specs {}", d.display()))
                .unwrap_or_default();
            let specs = cli.specs.unwrap_or_else(crate::default_specs_dir);
            match spec::write_new_case(&specs, &id) {
                Ok(path) => {
                    println!(
                        "wrote {}: `mpm-harness check {}` checks it, \
                         `mpm-harness{given} run {id} --target reference --target apache` runs it",
                        path.display(),
                        path.display()
                    );
                    PASSED
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    USAGE
                }
            }
        }
        Command::Statements => {
            print!("{}", crate::report::coverage::statements_page());
            PASSED
        }
        Command::Load(args) => load::load_cmd(&args),
        Command::Explore {
            mpm,
            target,
            runs,
            seed,
            out,
            pretend,
        } => explore::explore_cmd(mpm, target, runs, seed, out, pretend),
        command => match catalogue::load(cli.specs) {
            Err(code) => code,
            Ok(cases) => match command {
                Command::List { filter } => catalogue::list(&cases, filter.as_deref()),
                Command::Judge { file } => runs::judge_cmd(&cases, &file),
                Command::Coverage => catalogue::coverage(&cases),
                Command::Repro {
                    case,
                    mpm,
                    target,
                    html,
                } => runs::repro(&cases, &case, mpm, target, html.as_deref()),
                Command::Run {
                    filter,
                    mpm,
                    target,
                    junit,
                    json,
                    html,
                    repeat,
                    jobs,
                } => runs::run(
                    &cases,
                    runs::RunArgs {
                        filter,
                        mpms: if mpm.is_empty() {
                            Mpm::ALL.to_vec()
                        } else {
                            mpm
                        },
                        targets: if target.is_empty() {
                            vec![Target::Reference]
                        } else {
                            target
                        },
                        junit,
                        json,
                        html,
                        repeat: repeat.max(1),
                        jobs: jobs.max(1),
                    },
                ),
                _ => unreachable!(),
            },
        },
    };
    code
}
