//! The HTTP/1.1 engine: request heads on `httparse` ([`request`]), body framing ([`body`]) and
//! response heads ([`response`]); property tests of the parsers in `proptests`.

pub mod body;
pub mod request;
pub mod response;

#[cfg(test)]
mod proptests;
