//! refhttpd: a reference HTTP/1.1 server with Apache's prefork, worker and event MPMs.
//!
//! Every module is private; the crate root is the whole public face, for the processes that run
//! or watch a server (the `refhttpd` binary, the harness, the tests and benches):
//!
//! - running a server: [`Args`] (the command line), [`run`], and the [`Ready`] line it prints
//!   once it accepts;
//! - its configuration rules: [`Mpm`], [`Config::load`] and its [`ConfigError`], which
//!   directives configure faults ([`Config::is_fault_directive`]) and their defaults
//!   ([`Config::default_value`]);
//! - watching it from outside: [`ScoreboardView`] maps a running server's scoreboard read-only
//!   and gives a [`Snapshot`]; [`EventLine`] reads a line of its event log ([`Event`],
//!   [`EventKind`], and the typed fields of some events: [`TimeoutKind`], [`ControlSignal`],
//!   [`SignalAction`], [`StopReason`]); [`parse_auto`] reads `/server-status?auto`; [`ServedBy`]
//!   reads the `X-Served-By` header every response carries.
//!
//! Inside, the master (`master`) binds, creates the scoreboard and forks children; each child
//! (`child`) runs one MPM (`mpm`) whose workers serve connections (`serve`, `conn`) with the
//! HTTP/1.1 engine (`http`) and the handlers (`handler`); faults are performed in `fault`.
//! Platform calls that need `unsafe` live in `os` and `scoreboard`.

#![warn(unnameable_types)]

mod child;
mod cli;
mod config;
mod conn;
mod context;
mod eventlog;
mod fault;
mod handler;
mod http;
mod master;
mod mpm;
mod os;
mod scoreboard;
mod serve;
mod served_by;
mod status;
mod tls;

pub use crate::cli::{run, Args, Ready};
pub use crate::config::{Config, ConfigError, Mpm, Origin};
pub use crate::eventlog::{
    ControlSignal, Event, EventKind, EventLine, SignalAction, StopReason, TimeoutKind,
};
pub use crate::scoreboard::{
    ProcessSnapshot, ProcessStatus, ScoreboardView, Snapshot, ViewError, WorkerSnapshot,
    WorkerState,
};
pub use crate::served_by::{ServedBy, SERVED_BY_HEADER};
pub use crate::status::parse_auto;

/// `Server:` header and status page version string.
pub const SERVER_VERSION: &str = concat!("refhttpd/", env!("CARGO_PKG_VERSION"));
