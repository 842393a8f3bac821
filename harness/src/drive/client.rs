//! The harness's side of HTTP/1.1: request bytes, response framing and a one-shot fetch.
//!
//! Independent of the server it judges: the status line and headers are parsed by httparse,
//! and the body's framing (Content-Length, chunked, or until the server closes) by this module —
//! never by refhttpd's own parser, so a bug there cannot cancel out on both sides. The driver,
//! the placement of warm connections, Apache's readiness probe, the tests and the bench all use
//! this one client.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::wire::{Endpoint, Wire};
use crate::observe::{ServedBy, SharedAnswer};

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Who served it (`X-Served-By`).
    pub fn served_by(&self) -> Option<ServedBy> {
        self.header(refhttpd::SERVED_BY_HEADER)
            .and_then(ServedBy::parse)
    }

    /// What a `shared:` request found (TS-1), when the response says.
    pub fn shared(&self) -> Option<SharedAnswer> {
        use mpm_faults::shared;
        let intact = shared_intact(self.header(shared::STATE_HEADER)?)?;
        Some(SharedAnswer {
            intact,
            token: self.header(shared::TOKEN_HEADER).unwrap_or("").to_string(),
            found: self.header(shared::FOUND_HEADER).unwrap_or("").to_string(),
        })
    }

    /// The response says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.header("Connection").is_some_and(closes)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first of `headers` named `name` (case-insensitive); values are stored trimmed.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What the start of a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A response and the bytes it took.
    Complete(Response, usize),
    /// Not HTTP: the connection cannot be read further.
    Invalid(String),
}

/// How the body of a response is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parses one response at the start of `buf`. A body delimited by the end of the connection is
/// never complete here: see [`parse_at_eof`].
pub fn parse_response(buf: &[u8]) -> Parsed {
    parse(buf, false)
}

/// As [`parse_response`], once the server has closed: a close-delimited body ends here.
pub fn parse_at_eof(buf: &[u8]) -> Parsed {
    parse(buf, true)
}

/// What the load driver needs of a response, read without copying its head or body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `Connection: close`.
    pub closes: bool,
    /// The pid of `X-Served-By`.
    pub served_by: Option<i32>,
    /// What a `shared:` request found: intact (true) or clobbered (false).
    pub shared_intact: Option<bool>,
}

/// What the start of a buffer holds, as [`frame`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    Incomplete,
    /// A response's head and the bytes the whole response took.
    Complete(Head, usize),
    Invalid(String),
}

/// Frames one response at the start of `buf` as [`parse_response`] does (`eof`: the server has
/// closed, as [`parse_at_eof`]), without building it: the load driver's parser.
pub fn frame(buf: &[u8], eof: bool) -> Framed {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    match locate(buf, eof, &mut headers) {
        Ok(None) => Framed::Incomplete,
        Err(e) => Framed::Invalid(e),
        Ok(Some((status, headers, span))) => {
            let value = |name: &str| {
                headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
            };
            let head = Head {
                status,
                closes: value("Connection").is_some_and(closes),
                served_by: value(refhttpd::SERVED_BY_HEADER)
                    .and_then(ServedBy::parse)
                    .map(|b| b.pid),
                shared_intact: value(mpm_faults::shared::STATE_HEADER).and_then(shared_intact),
            };
            Framed::Complete(head, span.end)
        }
    }
}

/// `intact` or `clobbered`, as a `shared:` request's state header says.
fn shared_intact(state: &str) -> Option<bool> {
    match state {
        mpm_faults::shared::INTACT => Some(true),
        mpm_faults::shared::CLOBBERED => Some(false),
        _ => None,
    }
}

/// Whether a `Connection` value holds the `close` token.
fn closes(value: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

fn parse(buf: &[u8], eof: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let (status, headers, span) = match locate(buf, eof, &mut headers) {
        Ok(Some(found)) => found,
        Ok(None) => return Parsed::Incomplete,
        Err(e) => return Parsed::Invalid(e),
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let rest = &buf[span.head..span.end];
    let body = if span.chunked {
        let mut data = Vec::new();
        // Already walked whole by `locate`.
        let _ = walk_chunks(rest, |part| data.extend_from_slice(part));
        data
    } else {
        rest.to_vec()
    };
    Parsed::Complete(
        Response {
            status,
            headers,
            body,
        },
        span.end,
    )
}

/// Where a response's parts end in the buffer.
struct Span {
    /// The head's length.
    head: usize,
    /// The end of the whole response.
    end: usize,
    chunked: bool,
}

/// Finds the response at the start of `buf`: its status, its header fields and where it ends;
/// `None` when more bytes are needed.
#[allow(clippy::type_complexity)]
fn locate<'b, 'h>(
    buf: &'b [u8],
    eof: bool,
    headers: &'h mut [httparse::Header<'b>],
) -> Result<Option<(u16, &'h [httparse::Header<'b>], Span)>, String> {
    let mut resp = httparse::Response::new(headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let headers: &'h [httparse::Header<'b>] = resp.headers;
    let fields = headers
        .iter()
        .map(|h| (h.name, std::str::from_utf8(h.value).unwrap_or("")));
    let rest = &buf[head..];
    let (used, chunked) = match framing(status, fields)? {
        Framing::None => (0, false),
        Framing::Length(n) if rest.len() >= n => (n, false),
        Framing::Length(_) => return Ok(None),
        Framing::Chunked => match walk_chunks(rest, |_| {})? {
            Some(n) => (n, true),
            None => return Ok(None),
        },
        Framing::UntilClose if eof => (rest.len(), false),
        Framing::UntilClose => return Ok(None),
    };
    let span = Span {
        head,
        end: head + used,
        chunked,
    };
    Ok(Some((status, headers, span)))
}

fn framing<'h>(
    status: u16,
    headers: impl Iterator<Item = (&'h str, &'h str)> + Clone,
) -> Result<Framing, String> {
    if status < 200 || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let all = |name: &'static str| {
        headers
            .clone()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(te) = all("Transfer-Encoding").last() {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = all("Content-Length").flat_map(|v| v.split(','));
    match lengths.next() {
        None => Ok(Framing::UntilClose),
        Some(first) => {
            let n: usize = first
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length `{first}`"))?;
            if lengths.any(|other| other.trim().parse::<usize>() != Ok(n)) {
                return Err("conflicting Content-Length values".into());
            }
            Ok(Framing::Length(n))
        }
    }
}

/// Decodes a chunked body at the start of `buf`: the data and the bytes used (through the last
/// chunk and the trailer section), `None` when incomplete.
pub fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut data = Vec::new();
    Ok(walk_chunks(buf, |part| data.extend_from_slice(part))?.map(|used| (data, used)))
}

/// Walks a chunked body at the start of `buf`, handing each chunk's data to `on_data`: the
/// bytes used (through the last chunk and the trailer section), `None` when incomplete.
fn walk_chunks(buf: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&buf[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + line_end])
            .map_err(|_| "chunk size line is not text".to_string())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        if size_text.is_empty() || !size_text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad chunk size `{line}`"));
        }
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size `{size_text}` too large"))?;
        at += line_end + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(end) = find_crlf(&buf[at..]) else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        on_data(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// The bytes of a well-formed request; `connection` is the `Connection` header's value, if any.
pub fn request_bytes(
    method: &str,
    path: &str,
    body: Option<&str>,
    connection: Option<&str>,
    http10: bool,
) -> Vec<u8> {
    let version = if http10 { "1.0" } else { "1.1" };
    let mut head = format!("{method} {path} HTTP/{version}\r\nHost: harness\r\n");
    if let Some(token) = connection {
        head.push_str(&format!("Connection: {token}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b.as_bytes());
    }
    bytes
}

/// The `Key: value` lines of a `server-status?auto` page (mod_status's machine-readable form),
/// read here rather than by refhttpd's own parser.
pub fn status_keys(body: &str) -> std::collections::BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Why a fetch got no response.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    #[error("the server closed before a complete response")]
    Closed,
    #[error("{0}")]
    Invalid(String),
}

/// `GET path` on a fresh connection with `Connection: close`, bounded by `timeout` in all.
pub fn fetch(endpoint: &Endpoint, path: &str, timeout: Duration) -> Result<Response, FetchError> {
    let deadline = Instant::now() + timeout;
    let addr = endpoint.addr;
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| FetchError::Connect { addr, source })?;
    let _ = s.set_nodelay(true);
    let wire = Wire::over(s, endpoint)?;
    let request = request_bytes("GET", path, None, Some("close"), false);
    exchange(&wire, &request, deadline)
}

/// Writes `request` on `wire` and reads one response, by `deadline`; the socket's read timeout
/// is left set.
pub fn exchange(wire: &Wire, request: &[u8], deadline: Instant) -> Result<Response, FetchError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    wire.send(request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match parse_response(&buf) {
            Parsed::Complete(r, _) => return Ok(r),
            Parsed::Invalid(e) => return Err(FetchError::Invalid(e)),
            Parsed::Incomplete => {}
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(FetchError::Timeout(timeout))?;
        wire.set_read_timeout(Some(left))?;
        match wire.fill(&mut buf, &mut chunk) {
            Ok(0) => {
                return match parse_at_eof(&buf) {
                    Parsed::Complete(r, _) => Ok(r),
                    Parsed::Invalid(e) => Err(FetchError::Invalid(e)),
                    Parsed::Incomplete => Err(FetchError::Closed),
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(FetchError::Timeout(timeout))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn complete(buf: &[u8]) -> (Response, usize) {
        match parse_response(buf) {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_and_pipelined_responses() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: pid=7 slot=1 thread=0\r\n\r\nhiHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (r, n) = complete(two);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        assert_eq!(r.served_by().unwrap().pid, 7);
        assert!(!r.closes());
        let (r2, m) = complete(&two[n..]);
        assert_eq!(r2.status, 404);
        assert!(r2.closes());
        assert_eq!(n + m, two.len());
        assert_eq!(parse_response(&two[..n - 1]), Parsed::Incomplete);
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (resp, n) = complete(r);
        assert_eq!(resp.body, b"abc");
        assert_eq!(&r[n..], b"NEXT");
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Parsed::Invalid(_)
        ));
    }

    #[test]
    fn bodiless_statuses_and_close_delimited_bodies() {
        let (r, _) = complete(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
        assert!(r.body.is_empty());
        let b = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(parse_response(b), Parsed::Incomplete);
        match parse_at_eof(b) {
            Parsed::Complete(r, n) => {
                assert_eq!((r.body.as_slice(), n), (&b"until close"[..], b.len()))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx"),
            Parsed::Invalid(_)
        ));
    }

    fn chunk_encode(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts.iter().filter(|p| !p.is_empty()) {
            out.extend(format!("{:x}\r\n", p.len()).bytes());
            out.extend(p);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\n\r\n");
        out
    }

    #[test]
    fn status_page_keys() {
        let keys = status_keys("localhost\nServerMPM: event\nTotal Accesses: 3\nScoreboard: __W\n");
        assert_eq!(keys["ServerMPM"], "event");
        assert_eq!(keys["Total Accesses"], "3");
        assert_eq!(keys["Scoreboard"], "__W");
        assert!(!keys.contains_key("localhost"));
    }

    proptest! {
        #[test]
        fn chunked_bodies_decode_whole_and_every_prefix_is_incomplete(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6)
        ) {
            let encoded = chunk_encode(&parts);
            let (data, used) = decode_chunked(&encoded).unwrap().unwrap();
            prop_assert_eq!(data, parts.concat());
            prop_assert_eq!(used, encoded.len());
            for cut in 0..encoded.len() {
                prop_assert_eq!(decode_chunked(&encoded[..cut]), Ok(None), "prefix {}", cut);
            }
        }

        /// The load driver's framing agrees with the full parser on where every response ends,
        /// its status, its close and its served-by, whatever the framing and the cut.
        #[test]
        fn framing_without_copying_agrees_with_the_parser(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..4),
            chunked in any::<bool>(),
            close in any::<bool>(),
            cut in 0usize..400,
        ) {
            let body = parts.concat();
            let mut bytes = format!(
                "HTTP/1.1 200 OK\r\nX-Served-By: pid=42 slot=0\r\n{}{}\r\n",
                if close { "Connection: keep-alive, close\r\n" } else { "" },
                if chunked {
                    "Transfer-Encoding: chunked\r\n".to_string()
                } else {
                    format!("Content-Length: {}\r\n", body.len())
                }
            )
            .into_bytes();
            bytes.extend(if chunked { chunk_encode(&parts) } else { body.clone() });
            bytes.extend(b"HTTP/1.1 204 No Content\r\n\r\n");
            let cut = cut.min(bytes.len());
            match (frame(&bytes[..cut], false), parse_response(&bytes[..cut])) {
                (Framed::Complete(head, n), Parsed::Complete(r, m)) => {
                    prop_assert_eq!(n, m);
                    prop_assert_eq!(head.status, r.status);
                    prop_assert_eq!(head.closes, r.closes());
                    prop_assert_eq!(head.served_by, r.served_by().map(|b| b.pid));
                    prop_assert_eq!(r.body, body);
                }
                (Framed::Incomplete, Parsed::Incomplete) => {}
                (f, p) => prop_assert!(false, "frame {:?} but parse {:?}", f, p),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_response(&bytes);
            let _ = parse_at_eof(&bytes);
            let _ = frame(&bytes, false);
            let _ = frame(&bytes, true);
        }
    }
}
