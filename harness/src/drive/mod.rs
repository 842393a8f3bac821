//! The harness's own clients, which drive a server the way users do, over the [`wire`] (plain
//! or TLS): the HTTP/1.1 client
//! ([`client`]: request bytes, response framing, a one-shot fetch), a case's named connections
//! ([`connection`]: requests, pipelining, client faults, each outcome recorded in the store) and
//! the load driver ([`load`]: many connections on one thread, HDR latency).
//!
//! Nothing here knows which server it talks to, nor judges what it sees.

pub mod client;
pub mod connection;
pub mod load;
pub mod wire;

pub use wire::{Endpoint, TlsClient, Wire};
