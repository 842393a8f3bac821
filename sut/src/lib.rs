//! refhttpd: a reference HTTP/1.1 server with Apache's prefork, worker and event MPMs.
//!
//! The binary is a thin shell over [`cli::run`]; the library also gives other processes a
//! read-only view of a running server's scoreboard ([`scoreboard::ScoreboardView`]) and the
//! parsers of its formats (configuration, `server-status?auto`).
//!
//! Process model: [`master`] binds, creates the [`scoreboard`] and forks children; each child
//! ([`child`]) runs one MPM ([`mpm`]) whose workers serve connections ([`serve`], [`conn`]) with
//! the HTTP/1.1 engine ([`http`]) and the handlers ([`handler`]). Platform calls that need
//! `unsafe` live in [`os`] and [`scoreboard`].

pub mod child;
pub mod cli;
pub mod config;
pub mod conn;
pub mod eventlog;
pub mod handler;
pub mod http;
pub mod master;
pub mod mpm;
pub mod os;
pub mod scoreboard;
pub mod serve;
pub mod status;

/// `Server:` header and status page version string.
pub const SERVER_VERSION: &str = concat!("refhttpd/", env!("CARGO_PKG_VERSION"));
