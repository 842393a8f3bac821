//! The command line as written: clap's types for `mpm-harness` and its subcommands. The
//! commands take them from here, typed and checked (a duration is parsed once, here).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use refhttpd::Mpm;

use crate::spec::Target;

#[derive(Parser)]
#[command(
    name = "mpm-harness",
    version,
    about = "Conformance and fault-injection harness for Apache-style MPMs"
)]
pub(super) struct Cli {
    /// Where the spec cases are (default: the project's `specs/`).
    #[arg(long, global = true, value_name = "DIR")]
    pub(super) specs: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// List every (case, MPM, target) test.
    List {
        /// Only names containing this text.
        filter: Option<String>,
    },
    /// Run the catalogue (or the cases matching FILTER) and print the conformance matrix.
    Run {
        /// Only tests whose name (`<case>::<mpm>::<target>`) contains this text.
        filter: Option<String>,
        /// MPMs to run (default: all three).
        #[arg(long, value_enum)]
        mpm: Vec<Mpm>,
        /// Targets to run (default: reference).
        #[arg(long, value_enum)]
        target: Vec<Target>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write every run's verdict and timeline as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a self-contained HTML report here: the matrix and a picture of every run.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Run everything N times.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Runs in parallel (most of a run is waiting on the server: six fit two cores).
        #[arg(long, short, default_value_t = 6)]
        jobs: usize,
    },
    /// Run one case under one MPM and print its timeline and verdict.
    Repro {
        case: String,
        #[arg(long, value_enum)]
        mpm: Mpm,
        #[arg(long, value_enum, default_value = "reference")]
        target: Target,
        /// Also write the run as a self-contained HTML report (its picture, checks, timeline).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Validate spec files.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the spec case format.
    Schema,
    /// Judge stored runs again (a `run --json` file) with the cases as they are now: the
    /// per-run lines, the matrix and the exit code, as `run` prints them.
    Judge {
        /// The JSON report `run --json FILE` wrote.
        file: PathBuf,
    },
    /// Write a new case, THEME/NAME, under the specs folder: a commented skeleton that `check`
    /// accepts and `run` passes, for you to make your own.
    New {
        /// The case's id: its theme folder and file name (`crash/segv-isolation`).
        id: String,
    },
    /// Which cases check each behaviour statement (per MPM and target) and set each directive;
    /// exit 1 while anything is uncovered.
    Coverage,
    /// Print the behaviour statements in full, with their sources, and the settings table, as
    /// markdown (`docs/statements.md` is this output).
    Statements,
    /// Random scenarios judged against an executable model of each MPM; a disagreement is shrunk
    /// to a minimal case file under --out. Exit 0 when every run agreed, 1 on a mismatch.
    Explore {
        /// MPMs to explore (default: all three).
        #[arg(long, value_enum)]
        mpm: Vec<Mpm>,
        /// Targets (default: reference).
        #[arg(long, value_enum)]
        target: Vec<Target>,
        /// Scenarios per MPM and target.
        #[arg(long, default_value_t = 100)]
        runs: u32,
        /// The same seed replays the same scenarios (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Where a minimal disagreeing case is written (default: the catalogue's `found/`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Judge against a deliberately wrong model (the explorer's self-test).
        #[arg(long, value_enum, hide = true)]
        pretend: Option<Pretend>,
    },
    /// Drive load against any HTTP/1.1 server (as wrk or oha do): a progress line each second,
    /// then requests/s and latency percentiles, corrected for coordinated omission and raw.
    Load(LoadArgs),
}

#[derive(clap::Args)]
pub(super) struct LoadArgs {
    /// `http://HOST[:PORT][/PATH]` or `https://…` (TLS; every new connection makes a full
    /// handshake, and the figures count handshakes per second).
    pub(super) url: String,
    /// For `https://`: trust exactly the certificate(s) in this PEM file, whose names must
    /// include the address driven. Without it any certificate is taken (its signature on the
    /// handshake is still checked).
    #[arg(long, value_name = "FILE")]
    pub(super) cacert: Option<PathBuf>,
    /// Connections, all from one thread.
    #[arg(long, short, default_value_t = 50)]
    pub(super) connections: u32,
    /// How long to drive (`10`, `10s`, `500ms`).
    #[arg(long, short, default_value = "10s", value_parser = duration)]
    pub(super) duration: std::time::Duration,
    /// Requests per second over all connections (open model); without it, each connection
    /// sends its next request when the last is answered (closed model).
    #[arg(long, short)]
    pub(super) rate: Option<f64>,
    /// Keep connections alive, or open one per request.
    #[arg(long, value_enum, default_value = "on")]
    pub(super) keepalive: OnOff,
    /// A request without a response after this long has timed out.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub(super) timeout: std::time::Duration,
    /// Write the whole run (figures, intervals, connections) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub(super) json: Option<PathBuf>,
}

/// Wrong models for the explorer's self-test.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum Pretend {
    /// Prefork whose crash takes every connection, as worker's does.
    PreforkLosesEverything,
    /// Worker whose crash takes only its own connection, as prefork's does.
    WorkerLosesOne,
    /// Event that keeps a worker through each keep-alive wait, as worker does.
    EventKeepsWorkers,
    /// Worker and event whose threads each keep their own state: every `shared:` request
    /// finds its own token (TS-1 says a child's threads share it).
    ThreadsIsolateState,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum OnOff {
    On,
    Off,
}

pub(super) fn duration(text: &str) -> Result<std::time::Duration, String> {
    mpm_faults::duration::parse(text)
}
