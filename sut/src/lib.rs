//! refhttpd (being assembled; the lead restores the full module list).

pub mod config;
pub mod http;
pub mod scoreboard;
pub mod status;

/// `Server:` header and status page version string.
pub const SERVER_VERSION: &str = concat!("refhttpd/", env!("CARGO_PKG_VERSION"));
