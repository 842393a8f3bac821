//! Serving requests on a connection, the part every MPM shares: read a request head within
//! RequestReadTimeout, read the body, run the handler (a panic is caught here, at the worker
//! boundary, and answered 500), write the response within Timeout, and decide whether the
//! connection stays open (KeepAlive, MaxKeepAliveRequests, the client's wishes, a graceful stop).
//!
//! How the wait *between* requests happens is the MPM's business: prefork and worker wait in the
//! worker ([`serve_connection`]); event hands the connection back to its listener thread.

use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use crate::config::Stage;
use crate::conn::{Conn, IoFailure, Wait};
use crate::context::WorkerCtx;
use crate::eventlog::TimeoutKind;
use crate::handler::{self, Body, Handled, Response, PATTERN};
use crate::http::body::{ChunkedDecoder, LengthDecoder};
use crate::http::request::{parse_head, BodyKind, Limits, RequestHead};
use crate::http::response::{status_drops_connection, KeepAliveParams, Persistence, ResponseHead};
use crate::scoreboard::WorkerState;

/// Apache's FlushMaxThreshold: an in-memory response with more than this left unwritten keeps its
/// worker writing; less than this, or a file-like body, can be set aside (event MPM, EV-2).
pub const FLUSH_MAX_THRESHOLD: u64 = 64 * 1024;

/// How a worker may finish writing a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The worker writes everything itself (prefork, worker).
    Blocking,
    /// What the client does not take at once may be handed to the listener (event).
    Async,
}

/// What happens to the connection after a request.
pub enum After {
    /// The response is sent; the connection may carry another request.
    KeepAlive,
    /// Close lingeringly: stop sending, then read and discard what the client still sends
    /// until it closes, for at most 2 s, so that a response is not lost to a reset (Apache's
    /// `ap_lingering_close`, for every end but an abort).
    Close,
    /// Drop the connection at once (client gone, fault `close`, a failed write).
    Abort,
    /// Event only: the rest of the response is to be written by the listener.
    WriteLater(Outgoing),
}

/// A response being written: the head, then the body, with how far each got.
pub struct Outgoing {
    head: Vec<u8>,
    head_done: usize,
    body: Body,
    body_done: u64,
    /// Keep the connection open once everything is written.
    pub keep_alive: bool,
}

impl Outgoing {
    /// Bytes already serialised whole (an error response, `100 Continue`).
    fn whole(bytes: Vec<u8>) -> Outgoing {
        Outgoing {
            head: bytes,
            head_done: 0,
            body: Body::Empty,
            body_done: 0,
            keep_alive: false,
        }
    }

    /// Bytes still to write.
    pub fn remaining(&self) -> u64 {
        self.head[self.head_done..].len() as u64 + (self.body.len() - self.body_done)
    }

    /// Whether the rest can be set aside cheaply (file-like, or small enough), EV-2.
    pub fn can_set_aside(&self) -> bool {
        matches!(self.body, Body::Pattern(_) | Body::Empty)
            || self.remaining() <= FLUSH_MAX_THRESHOLD
    }

    /// Writes as much as `w` takes without blocking. `Ok(true)`: all written.
    pub fn write_some<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        loop {
            let chunk: &[u8] = if self.head_done < self.head.len() {
                &self.head[self.head_done..]
            } else if self.body_done < self.body.len() {
                self.body_chunk()
            } else {
                // Over TLS the session may still hold the last records.
                return match w.flush() {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                    Err(e) => Err(e),
                };
            };
            match w.write(chunk) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                // Non-blocking: a write never sleeps, so it is never interrupted (no EINTR).
                Err(e) => return Err(e),
            }
        }
    }

    fn body_chunk(&self) -> &[u8] {
        match &self.body {
            Body::Empty => &[],
            Body::Bytes(b) => &b[self.body_done as usize..],
            Body::Pattern(len) => {
                let at = (self.body_done % PATTERN.len() as u64) as usize;
                let left = (len - self.body_done).min((PATTERN.len() - at) as u64) as usize;
                &PATTERN[at..at + left]
            }
        }
    }

    fn advance(&mut self, n: usize) {
        if self.head_done < self.head.len() {
            self.head_done += n;
        } else {
            self.body_done += n as u64;
        }
    }

    /// Total bytes of the response.
    pub fn total(&self) -> u64 {
        self.head.len() as u64 + self.body.len()
    }
}

/// Serves requests on `conn` until it closes, waiting in this thread between requests (prefork
/// and worker: the worker owns the connection through every keep-alive wait, WK-2).
pub fn serve_connection(mut conn: Conn, w: &mut WorkerCtx<'_>) {
    let mut started = Instant::now();
    loop {
        match serve_request(&mut conn, w, started, WriteMode::Blocking) {
            After::KeepAlive => {}
            After::Close => return linger(conn, w),
            After::Abort | After::WriteLater(_) => return,
        }
        if conn.buf.is_empty() && !next_request_comes(&conn, w) {
            w.log_timeout(TimeoutKind::KeepAlive, &conn.peer);
            return linger(conn, w);
        }
        started = Instant::now();
    }
}

/// Waits in state `K` for the next request, for at most KeepAliveTimeout: whether it came. A
/// graceful stop that comes meanwhile is noted (the child accepts no more) but does not end
/// the wait: as Apache's prefork and worker, the child only checks between requests, so the
/// connection is kept until its next request (served, then closed) or its KeepAliveTimeout
/// (PM-6).
fn next_request_comes(conn: &Conn, w: &WorkerCtx<'_>) -> bool {
    w.slot.set_state(WorkerState::KeepAlive);
    let deadline = Instant::now() + w.child.cfg.keep_alive_timeout;
    loop {
        let control = (!w.child.is_graceful()).then(|| w.child.control_fd());
        match conn.wait(PollFlags::POLLIN, Some(deadline), control) {
            Ok(Wait::Interrupted) => w.child.begin_graceful(),
            Ok(Wait::Ready) => return true,
            Ok(Wait::TimedOut) | Err(_) => return false,
        }
    }
}

/// Lingering close in the worker (prefork, worker), for every end but an abort, as Apache's
/// `ap_lingering_close`: after `Connection: close`, an error, or a keep-alive timeout, the
/// worker (in `C`) reads what the client still sends until it closes its end, for at most 2 s.
/// A client that keeps its end open holds the worker that long (EV-3: under event the
/// listener does it instead).
pub fn linger(conn: Conn, w: &WorkerCtx<'_>) {
    w.slot.set_state(WorkerState::Closing);
    conn.lingering_close();
}

/// Serves one request: the head (already begun or arriving), the body, the handler, the response.
///
/// `started` is when reading this request began: the accept time of a new connection, or when
/// the first byte of a kept-alive request arrived; the header timeout counts from there.
pub fn serve_request(
    conn: &mut Conn,
    w: &mut WorkerCtx<'_>,
    started: Instant,
    mode: WriteMode,
) -> After {
    w.slot.set_state(WorkerState::Reading);
    let started = match handshake(conn, w) {
        Ok(true) => Instant::now(),
        Ok(false) => started,
        Err(after) => return after,
    };
    let head = match read_head(conn, w, started) {
        Ok(head) => head,
        Err(after) => return after,
    };
    w.slot
        .begin_request(&head.request_line(), &conn.peer.ip().to_string());
    // As Apache (the end of ap_read_request): once the head is read, the worker is "sending the
    // reply" (W) for the rest of the request, body and handler included (SB-1).
    w.slot.set_state(WorkerState::Writing);
    if let Err(after) = read_body(conn, w, &head) {
        return after;
    }
    let response = match catch_unwind(AssertUnwindSafe(|| handler::handle(&head, w))) {
        Ok(Handled::Respond(r)) => r,
        Ok(Handled::DropConnection) => return After::Abort,
        Err(_) => Response::error(500),
    };
    conn.requests += 1;
    let keep_alive = keep_alive_allowed(conn, w, &head, &response);
    let out = build_response(w, &head, response, keep_alive, conn.requests);
    send(conn, w, out, mode)
}

/// Whether the connection stays open after this response (KA-1, KA-2, KA-3). As Apache counts
/// (`ap_set_keepalive`), MaxKeepAliveRequests is the number of requests allowed *after* the
/// first: the response to request N+1 closes (`conn.requests` already counts this one). A status
/// that drops the connection (a handler's 500 included) closes it whatever else allows (KA-3).
fn keep_alive_allowed(
    conn: &Conn,
    w: &WorkerCtx<'_>,
    head: &RequestHead,
    response: &Response,
) -> bool {
    let cfg = &w.child.cfg;
    let max = cfg.max_keep_alive_requests;
    cfg.keep_alive
        && head.keep_alive
        && !head.must_close
        && !response.close
        && !status_drops_connection(response.status)
        && (max == 0 || conn.requests <= max)
        && !w.child.stopping()
}

/// Serialises head and (for small bodies) body into one buffer.
fn build_response(
    w: &mut WorkerCtx<'_>,
    head: &RequestHead,
    response: Response,
    keep_alive: bool,
    served: u32,
) -> Outgoing {
    let cfg = &w.child.cfg;
    let persistence = match (keep_alive, head.asks_keep_alive) {
        (false, _) => Persistence::Close,
        (true, false) => Persistence::Implied,
        (true, true) => Persistence::Announced(KeepAliveParams {
            timeout_secs: cfg.keep_alive_timeout.as_secs().max(1),
            // Apache's `left`: MaxKeepAliveRequests less the responses kept alive before.
            max: (cfg.max_keep_alive_requests > 0)
                .then(|| (cfg.max_keep_alive_requests + 1).saturating_sub(served)),
        }),
    };
    let mut headers = vec![
        ("Content-Type", response.content_type),
        (crate::served_by::SERVED_BY_HEADER, w.served_by.as_str()),
    ];
    headers.extend(response.headers.iter().map(|(n, v)| (*n, v.as_str())));
    let mut bytes = std::mem::take(&mut w.out);
    bytes.clear();
    ResponseHead {
        status: response.status,
        headers: &headers,
        content_length: Some(response.body.len()),
        persistence,
    }
    .write_to(&mut bytes);
    let body = if head.method == "HEAD" {
        Body::Empty
    } else {
        match response.body {
            Body::Bytes(b) if b.len() <= 16 * 1024 => {
                bytes.extend_from_slice(&b);
                Body::Empty
            }
            other => other,
        }
    };
    Outgoing {
        head: bytes,
        head_done: 0,
        body,
        body_done: 0,
        keep_alive,
    }
}

/// Writes the response: all of it in the worker, or (event) what the client takes at once and
/// the rest handed to the listener when that is cheap.
fn send(conn: &mut Conn, w: &mut WorkerCtx<'_>, mut out: Outgoing, mode: WriteMode) -> After {
    let written = write_out(conn, w, &mut out, mode);
    if matches!(written, Written::Failed) {
        return After::Abort;
    }
    // Counted once the response is all written or handed to the listener whole.
    w.slot.end_request(out.total());
    if matches!(written, Written::SetAside) {
        return After::WriteLater(out);
    }
    let keep_alive = out.keep_alive;
    recycle(w, out);
    if keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// How far a worker got with a response.
enum Written {
    All,
    /// Event only: the rest is for the listener.
    SetAside,
    /// The client is gone, or it took nothing for `Timeout` (TO-2, logged).
    Failed,
}

/// Writes `out` from this worker; every wait for the client to take more is bounded by Timeout
/// (Apache's `Timeout` is per I/O operation, not per response). Under `Async`, stops as soon as
/// the client takes no more and the rest can be set aside (EV-2). Every response goes through
/// here: handler responses, error responses, `100 Continue`.
fn write_out(conn: &mut Conn, w: &WorkerCtx<'_>, out: &mut Outgoing, mode: WriteMode) -> Written {
    w.slot.set_state(WorkerState::Writing);
    let timeout = w.child.cfg.timeout;
    loop {
        match out.write_some(&mut conn.stream) {
            Ok(true) => return Written::All,
            Ok(false) => {}
            Err(_) => return Written::Failed,
        }
        if mode == WriteMode::Async && out.can_set_aside() {
            return Written::SetAside;
        }
        match conn.wait(PollFlags::POLLOUT, Some(Instant::now() + timeout), None) {
            Ok(Wait::Ready) => {}
            _ => {
                w.log_timeout(TimeoutKind::Write, &conn.peer);
                return Written::Failed;
            }
        }
    }
}

/// Keeps the head buffer for the next response.
fn recycle(w: &mut WorkerCtx<'_>, out: Outgoing) {
    if out.head.capacity() <= 64 * 1024 {
        w.out = out.head;
    }
}

/// Completes a new connection's TLS handshake in this worker (TL-2), within the handshake
/// stage of RequestReadTimeout (off by default: Timeout per read). `Ok(true)`: a handshake was
/// made, and the header stage starts now; `Ok(false)`: none was due.
fn handshake(conn: &mut Conn, w: &WorkerCtx<'_>) -> Result<bool, After> {
    if !conn.stream.is_handshaking() {
        return Ok(false);
    }
    let cfg = &w.child.cfg;
    let started = Instant::now();
    let stage = &cfg.request_read_timeout.handshake;
    match conn.handshake(|received| stage_deadline(stage, started, received, cfg.timeout)) {
        Ok(()) => Ok(true),
        Err(IoFailure::TimedOut) => {
            w.log_timeout(TimeoutKind::Handshake, &conn.peer);
            Err(After::Abort)
        }
        Err(IoFailure::Gone) => Err(After::Abort),
    }
}

/// Reads until a complete head is buffered, within the header stage of RequestReadTimeout.
fn read_head(
    conn: &mut Conn,
    w: &mut WorkerCtx<'_>,
    started: Instant,
) -> Result<RequestHead, After> {
    let cfg = &w.child.cfg;
    let limits = limits(w);
    let stage = &cfg.request_read_timeout.header;
    let mut received = conn.buf.len() as u64;
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&conn.buf, &limits) {
                Ok(Some((head, n))) => {
                    conn.consume(n);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(respond_error(conn, w, e.status())),
            }
        }
        let deadline = stage_deadline(stage, started, received, cfg.timeout);
        match conn.fill(deadline) {
            Ok(n) => received += n as u64,
            Err(IoFailure::TimedOut) if conn.buf.is_empty() => {
                w.log_timeout(TimeoutKind::Header, &conn.peer);
                return Err(After::Abort);
            }
            Err(IoFailure::TimedOut) => {
                w.log_timeout(TimeoutKind::Header, &conn.peer);
                return Err(respond_error(conn, w, 408));
            }
            Err(_) => return Err(After::Abort),
        }
    }
}

/// Reads and discards the request body, within the body stage of RequestReadTimeout.
fn read_body(conn: &mut Conn, w: &mut WorkerCtx<'_>, head: &RequestHead) -> Result<(), After> {
    let limit = w.child.cfg.limit_request_body;
    let mut decoder = match head.body {
        BodyKind::None => return Ok(()),
        BodyKind::Length(n) => Decoder::Length(LengthDecoder::new(n)),
        BodyKind::Chunked => Decoder::Chunked(ChunkedDecoder::new(limit)),
    };
    if head.expect_continue {
        let mut out = Outgoing::whole(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
        // A client that does not take it will not send the body either: the read times out.
        let _ = write_out(conn, w, &mut out, WriteMode::Blocking);
    }
    let stage = w.child.cfg.request_read_timeout.body.clone();
    let started = Instant::now();
    let mut received = 0u64;
    // LimitRequestBody is enforced by the head (Content-Length) and the chunked decoder.
    let mut sink = Vec::new();
    loop {
        if !conn.buf.is_empty() {
            sink.clear();
            match decoder.decode(&conn.buf, &mut sink) {
                Ok(n) => conn.consume(n),
                Err(e) => return Err(respond_error(conn, w, e.status())),
            }
        }
        if decoder.is_done() {
            return Ok(());
        }
        let deadline = stage_deadline(&stage, started, received, w.child.cfg.timeout);
        match conn.fill(deadline) {
            Ok(n) => received += n as u64,
            Err(IoFailure::TimedOut) => {
                w.log_timeout(TimeoutKind::Body, &conn.peer);
                return Err(respond_error(conn, w, 408));
            }
            Err(_) => return Err(After::Abort),
        }
    }
}

enum Decoder {
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
}

impl Decoder {
    fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, crate::http::request::HttpError> {
        match self {
            Decoder::Length(d) => d.decode(input, out),
            Decoder::Chunked(d) => d.decode(input, out),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Decoder::Length(d) => d.is_done(),
            Decoder::Chunked(d) => d.is_done(),
        }
    }
}

/// The deadline of a mod_reqtimeout stage: `timeout`, extended by one second per `MinRate` bytes
/// received, never past `max`. A disabled stage (timeout 0) falls back to `Timeout` per read.
pub fn stage_deadline(
    stage: &Stage,
    started: Instant,
    received: u64,
    timeout: Duration,
) -> Instant {
    if stage.timeout.is_zero() {
        return Instant::now() + timeout;
    }
    let mut allowed = stage.timeout;
    if stage.min_rate > 0 {
        allowed += Duration::from_secs_f64(received as f64 / stage.min_rate as f64);
    }
    if let Some(max) = stage.max {
        allowed = allowed.min(max);
    }
    started + allowed
}

fn limits(w: &WorkerCtx<'_>) -> Limits {
    let cfg = &w.child.cfg;
    Limits {
        request_line: cfg.limit_request_line,
        field_size: cfg.limit_request_field_size,
        fields: cfg.limit_request_fields,
        body: cfg.limit_request_body,
    }
}

/// Answers an error status with `Connection: close` and asks for a lingering close (HT-1).
fn respond_error(conn: &mut Conn, w: &mut WorkerCtx<'_>, status: u16) -> After {
    let response = Response::error(status);
    let mut bytes = Vec::with_capacity(512);
    let headers = [
        ("Content-Type", response.content_type),
        (crate::served_by::SERVED_BY_HEADER, w.served_by.as_str()),
    ];
    ResponseHead {
        status,
        headers: &headers,
        content_length: Some(response.body.len()),
        persistence: Persistence::Close,
    }
    .write_to(&mut bytes);
    if let Body::Bytes(b) = &response.body {
        bytes.extend_from_slice(b);
    }
    let mut out = Outgoing::whole(bytes);
    match write_out(conn, w, &mut out, WriteMode::Blocking) {
        Written::All => {
            w.slot.end_request(out.total());
            After::Close
        }
        Written::SetAside | Written::Failed => After::Abort,
    }
}
