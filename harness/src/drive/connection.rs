//! Client drivers: named connections that send requests (plain, pipelined, with a server fault)
//! and perform client faults (slow head, slow read, reset, half-close).
//!
//! Each connection has a reader thread that parses responses as they arrive and records each
//! request's outcome in the [`Store`] — responses are matched to requests in order (HTTP/1.1),
//! and when the server ends the connection every request still waiting is recorded as failed with
//! the error class seen.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};

use super::client::{self, Parsed};
use super::wire::{Endpoint, Wire};
use crate::observe::{ErrorClass, Observation, Store};
use crate::spec::{BodyShape, ConnectionToken, Request};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request waiting for its response on a connection.
struct Pending {
    name: String,
    sent: Instant,
}

struct Shared {
    pending: Mutex<VecDeque<Pending>>,
    /// The client closed or reset the connection itself: an end is not the server's doing.
    client_closed: AtomicBool,
    /// The reader saw the connection end; later requests fail at once.
    ended: Mutex<Option<ErrorClass>>,
}

/// One named client connection.
pub struct Connection {
    pub name: String,
    /// `None` once reset (the socket is closed, so the RST goes out).
    stream: Option<Wire>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    dripper: Option<JoinHandle<()>>,
    /// The receive buffer `open` set, if any.
    rcvbuf: Option<u32>,
}

/// A connection opened and served one `GET /` outside the recording: a placement's try, kept
/// if the child that served it is the one wanted ([`Connection::adopt`]), else held open until
/// the placement is over and then closed.
pub struct Landed {
    stream: Wire,
    rcvbuf: Option<u32>,
    took: Duration,
    response: client::Response,
    latency: Duration,
}

impl Landed {
    /// Connects to `addr` and has one request served, within `timeout`.
    pub fn try_open(
        endpoint: &Endpoint,
        rcvbuf: Option<u32>,
        timeout: Duration,
    ) -> Result<Landed, String> {
        let start = Instant::now();
        let tcp = connect(endpoint.addr, rcvbuf).map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream = Wire::over(tcp, endpoint).map_err(|e| format!("tls: {e}"))?;
        let took = start.elapsed();
        let sent = Instant::now();
        let request = client::request_bytes("GET", "/", None, None, false);
        let response =
            client::exchange(&stream, &request, sent + timeout).map_err(|e| e.to_string())?;
        let latency = sent.elapsed();
        let _ = stream.set_read_timeout(None);
        Ok(Landed {
            stream,
            rcvbuf,
            took,
            response,
            latency,
        })
    }

    /// The pid of the child that served it (`X-Served-By`).
    pub fn pid(&self) -> Option<i32> {
        self.response.served_by().map(|s| s.pid)
    }

    /// Whether the server said it would close the connection after the response.
    pub fn closes(&self) -> bool {
        self.response.closes()
    }
}

impl Connection {
    /// Takes over a placement's connection as `name`: its opening and its first exchange (the
    /// request `request`, `GET /`) are recorded now, with the handshake time and latency they
    /// had.
    pub fn adopt(name: &str, landed: Landed, request: &str, store: &Store) -> Connection {
        store.push_all(vec![
            Observation::ConnOpened {
                conn: name.to_string(),
                took_ms: landed.took.as_secs_f64() * 1000.0,
            },
            Observation::RequestSent {
                request: request.to_string(),
                conn: name.to_string(),
                target: "/".into(),
                how: how_sent("GET", false, None),
            },
        ]);
        let p = Pending {
            name: request.to_string(),
            sent: Instant::now() - landed.latency,
        };
        record_response(store, name, p, &landed.response);
        Connection {
            name: name.to_string(),
            rcvbuf: landed.rcvbuf,
            stream: Some(landed.stream),
            shared: Arc::new(Shared {
                pending: Mutex::new(VecDeque::new()),
                client_closed: AtomicBool::new(false),
                ended: Mutex::new(None),
            }),
            reader: None,
            dripper: None,
        }
    }

    /// Connects `name` to `endpoint`; a refusal is recorded and returned as an error. `rcvbuf`,
    /// if given, is the socket's receive buffer, set before the TCP handshake so that the
    /// window the server sees is small from the start. Over TLS the handshake begins with the
    /// first request ([`Wire`]).
    pub fn open(
        name: &str,
        endpoint: &Endpoint,
        rcvbuf: Option<u32>,
        store: &Store,
    ) -> Result<Connection, String> {
        let (stream, took) = connect_recorded(name, endpoint.addr, rcvbuf, store)?;
        let _ = stream.set_nodelay(true);
        let stream = Wire::over(stream, endpoint).map_err(|e| e.to_string())?;
        Ok(Connection::opened(name, stream, took, rcvbuf, store))
    }

    /// Connects `name` to `endpoint` and begins a TLS handshake that stops half-way: the first
    /// `bytes` of a ClientHello (`None`: half of it), then nothing (TL-2). The connection's
    /// reader records the server's end of it.
    pub fn open_stalled(
        name: &str,
        endpoint: &Endpoint,
        bytes: Option<usize>,
        store: &Store,
    ) -> Result<Connection, String> {
        let (tcp, took) = connect_recorded(name, endpoint.addr, None, store)?;
        let sent =
            super::wire::stall_handshake(&tcp, endpoint, bytes).map_err(|e| e.to_string())?;
        let mut c = Connection::opened(name, Wire::raw(tcp), took, None, store);
        store.push(Observation::Note {
            text: format!("{name}: sent {sent} bytes of a TLS ClientHello, then nothing"),
        });
        c.ensure_reader(store, None);
        Ok(c)
    }

    fn opened(
        name: &str,
        stream: Wire,
        took: Duration,
        rcvbuf: Option<u32>,
        store: &Store,
    ) -> Connection {
        store.push(Observation::ConnOpened {
            conn: name.to_string(),
            took_ms: took.as_secs_f64() * 1000.0,
        });
        let shared = Arc::new(Shared {
            pending: Mutex::new(VecDeque::new()),
            client_closed: AtomicBool::new(false),
            ended: Mutex::new(None),
        });
        Connection {
            name: name.to_string(),
            rcvbuf,
            stream: Some(stream),
            shared,
            reader: None,
            dripper: None,
        }
    }

    /// The reader starts with the first request; `rate` limits how fast it reads (slow read).
    fn ensure_reader(&mut self, store: &Store, rate: Option<u32>) {
        if self.reader.is_some() {
            return;
        }
        let Some(Ok(stream)) = self.stream.as_ref().map(Wire::try_clone) else {
            return;
        };
        let shared = self.shared.clone();
        let store = store.clone();
        let name = self.name.clone();
        self.reader = Some(std::thread::spawn(move || {
            read_responses(stream, shared, store, name, rate)
        }));
    }

    /// Sends one request named `name`.
    pub fn send(&mut self, store: &Store, name: &str, request: &Request) {
        let (how, bytes, shown) = match request {
            Request::Http {
                method,
                path,
                body,
                connection,
                http10,
            } => {
                let token = connection.map(ConnectionToken::as_str);
                (
                    how_sent(method, *http10, token),
                    client::request_bytes(method, path, body.as_deref(), token, *http10),
                    path.clone(),
                )
            }
            Request::Raw(raw) => (
                "raw".to_string(),
                raw.as_bytes().to_vec(),
                format!("raw {:?}", raw.chars().take(40).collect::<String>()),
            ),
        };
        self.write_requests(store, vec![(name.to_string(), shown)], &how, &bytes, None);
    }

    /// Sends several requests in one write (HT-2): (name, path) each.
    pub fn pipeline(&mut self, store: &Store, requests: &[(String, String)]) {
        let mut bytes = Vec::new();
        for (_, path) in requests {
            bytes.extend(client::request_bytes("GET", path, None, None, false));
        }
        let how = how_sent("GET", false, None);
        self.write_requests(store, requests.to_vec(), &how, &bytes, None);
    }

    /// Requests `path` and reads the response at `rate` bytes per second.
    pub fn slow_read(&mut self, store: &Store, request: &str, path: &str, rate: u32) {
        // A small receive buffer so the server really meets a slow reader (unless `open` chose
        // one before connecting).
        if let (Some(stream), None) = (&self.stream, self.rcvbuf) {
            set_rcvbuf(stream.socket(), 4096);
        }
        let bytes = client::request_bytes("GET", path, None, None, false);
        self.write_requests(
            store,
            vec![(request.to_string(), path.to_string())],
            &how_sent("GET", false, None),
            &bytes,
            Some(rate),
        );
    }

    /// The observation that `name` went out on this connection (before its bytes do: its
    /// moment is no later than the server's first sight of it).
    fn sent(&self, name: &str, target: &str, how: &str) -> Observation {
        Observation::RequestSent {
            request: name.to_string(),
            conn: self.name.clone(),
            target: target.to_string(),
            how: how.into(),
        }
    }

    fn write_requests(
        &mut self,
        store: &Store,
        requests: Vec<(String, String)>,
        how: &str,
        bytes: &[u8],
        rate: Option<u32>,
    ) {
        let now = Instant::now();
        {
            // Holding `ended` while queueing: the reader either sees these requests or has
            // already ended, never neither.
            let ended = self.shared.ended.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(class) = *ended {
                for (name, target) in &requests {
                    store.push(self.sent(name, target, how));
                    store.push(Observation::RequestFailed {
                        request: name.clone(),
                        conn: self.name.clone(),
                        class,
                        latency_ms: 0.0,
                    });
                }
                return;
            }
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (name, _) in &requests {
                pending.push_back(Pending {
                    name: name.clone(),
                    sent: now,
                });
            }
        }
        for (name, target) in &requests {
            store.push(self.sent(name, target, how));
        }
        self.ensure_reader(store, rate);
        // A write error means the server already ended the connection: the reader records it.
        if let Some(stream) = self.stream.as_ref() {
            let _ = stream.send(bytes);
        }
    }

    /// Sends a request head one byte per `interval` on a thread, until the server closes.
    pub fn slow_head(&mut self, store: &Store, name: &str, interval: Duration) {
        let head = b"GET / HTTP/1.1\r\nHost: harness\r\nX-Slow: ";
        let bytes = head.iter().copied().chain(std::iter::repeat(b'a'));
        self.drip(store, name, ("/ (slow head)", "GET"), &[], bytes, interval);
    }

    /// Sends `POST /` with a `length`-byte body: the head at once, then the body one byte per
    /// `interval` on a thread, until it is complete or the server closes.
    pub fn slow_body(&mut self, store: &Store, name: &str, interval: Duration, length: u64) {
        let head = format!("POST / HTTP/1.1\r\nHost: harness\r\nContent-Length: {length}\r\n\r\n");
        let body = std::iter::repeat_n(b'a', length as usize);
        self.drip(
            store,
            name,
            ("/ (slow body)", "POST"),
            head.as_bytes(),
            body,
            interval,
        );
    }

    /// Records request `name` as sent, writes `first` and then `bytes` one per `interval` on a
    /// thread, until they end, the client closes or a write fails.
    fn drip(
        &mut self,
        store: &Store,
        name: &str,
        (shown, method): (&str, &str),
        first: &[u8],
        bytes: impl Iterator<Item = u8> + Send + 'static,
        interval: Duration,
    ) {
        let name = name.to_string();
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pending.push_back(Pending {
                name: name.clone(),
                sent: Instant::now(),
            });
        }
        store.push(Observation::RequestSent {
            request: name.clone(),
            conn: self.name.clone(),
            target: shown.into(),
            how: how_sent(method, false, None),
        });
        self.ensure_reader(store, None);
        let Some(Ok(stream)) = self.stream.as_ref().map(Wire::try_clone) else {
            return;
        };
        if stream.send(first).is_err() {
            return;
        }
        let shared = self.shared.clone();
        self.dripper = Some(std::thread::spawn(move || {
            for byte in bytes {
                if shared.client_closed.load(Ordering::Acquire) || stream.send(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(interval);
            }
        }));
    }

    /// Whether the server's end of the connection (its FIN, or a reset) has reached this socket
    /// while the reader, which records it, has not got to it yet.
    pub fn server_end_unrecorded(&self) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        if self.reader.is_none()
            || self.shared.client_closed.load(Ordering::Acquire)
            || self
                .shared
                .ended
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
        {
            return false;
        }
        // POLLHUP and POLLERR are reported whether asked for or not.
        let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
        let mut fds = [PollFd::new(stream.as_fd(), rdhup)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Whether the reader has recorded the connection's end (the server's, or the client's).
    pub fn ended(&self) -> bool {
        self.shared
            .ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Resets the connection: SO_LINGER 0, the reader stopped, then the last descriptor closed,
    /// which sends the RST.
    pub fn reset(&mut self) {
        self.shared.client_closed.store(true, Ordering::Release);
        if let Some(stream) = &self.stream {
            set_linger_zero(stream.socket());
            let _ = stream.shutdown(Shutdown::Read);
        }
        self.join_threads();
        self.stream = None;
    }

    /// Closes the writing side (over TLS: close_notify, then the FIN).
    pub fn half_close(&mut self) {
        if let Some(stream) = &self.stream {
            let _ = stream.half_close();
        }
    }

    /// Closes the connection from the client side; a slow reader stops reading.
    pub fn close(&mut self) {
        self.shared.client_closed.store(true, Ordering::Release);
        if let Some(stream) = &self.stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.join_threads();
        self.stream = None;
    }

    fn join_threads(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(s) = self.dripper.take() {
            let _ = s.join();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// The reader thread: parses responses in order and records outcomes.
fn read_responses(
    stream: Wire,
    shared: Arc<Shared>,
    store: Store,
    conn: String,
    rate: Option<u32>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; if rate.is_some() { 512 } else { 64 * 1024 }];
    // Whether the response now arriving was announced as begun (slow reads only).
    let mut begun = false;
    loop {
        // Parse every complete response in the buffer.
        loop {
            let (response, used) = match client::parse_response(&buf) {
                Parsed::Complete(r, used) => (r, used),
                Parsed::Incomplete => break,
                Parsed::Invalid(why) => {
                    store.push(Observation::Note {
                        text: format!("{conn}: unreadable response ({why})"),
                    });
                    return finish(&shared, &store, &conn, ErrorClass::Closed);
                }
            };
            buf.drain(..used);
            begun = false;
            // An interim (1xx) response answers no request by itself.
            if response.status < 200 {
                continue;
            }
            let pending = shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match pending {
                Some(p) => record_response(&store, &conn, p, &response),
                None => store.push(Observation::Note {
                    text: format!(
                        "{conn}: a response ({}) that no request asked for",
                        response.status
                    ),
                }),
            }
        }
        if shared.client_closed.load(Ordering::Acquire) {
            return finish(&shared, &store, &conn, ErrorClass::Closed);
        }
        let n = match stream.fill(&mut buf, &mut chunk) {
            Ok(0) => {
                // A body delimited by the close ends here.
                if let Parsed::Complete(response, _) = client::parse_at_eof(&buf) {
                    buf.clear();
                    let pending = shared
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front();
                    if let Some(p) = pending {
                        record_response(&store, &conn, p, &response);
                    }
                }
                Err(ErrorClass::Closed)
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(ErrorClass::Reset),
            Err(_) => Err(ErrorClass::Closed),
        };
        match n {
            Ok(n) => {
                if rate.is_some() && !begun {
                    begun = announce_begun(&buf, &shared, &store, &conn);
                }
                if let Some(rate) = rate {
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / f64::from(rate)));
                }
            }
            Err(class) => return finish(&shared, &store, &conn, class),
        }
    }
}

/// Records that the response at the front of `buf` has its head in, once it has; true then.
fn announce_begun(buf: &[u8], shared: &Shared, store: &Store, conn: &str) -> bool {
    if !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        return false;
    }
    let pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pending.front() {
        store.push(Observation::ResponseBegun {
            request: p.name.clone(),
            conn: conn.to_string(),
        });
    }
    true
}

/// The connection ended: requests still waiting fail — with the class seen, or `timeout` when
/// the client gave up on them itself.
fn finish(shared: &Shared, store: &Store, conn: &str, class: ErrorClass) {
    let by_client = shared.client_closed.load(Ordering::Acquire);
    let class = if by_client {
        ErrorClass::Timeout
    } else {
        class
    };
    let mut ended = shared.ended.lock().unwrap_or_else(|e| e.into_inner());
    *ended = Some(class);
    let pending: Vec<Pending> = shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    let mut observations: Vec<Observation> = pending
        .into_iter()
        .map(|p| Observation::RequestFailed {
            request: p.name,
            conn: conn.to_string(),
            class,
            latency_ms: p.sent.elapsed().as_secs_f64() * 1000.0,
        })
        .collect();
    if !by_client {
        observations.push(Observation::ConnClosedByServer {
            conn: conn.to_string(),
            class,
        });
    }
    // At one moment and before `ended` is released: a step that saw a request fail here, and
    // anything sent after it, finds the connection's end recorded too (the scenario may end
    // a moment later; explore found a run where the end came after the teardown).
    store.push_all(observations);
    drop(ended);
}

/// How a request goes out, for the timeline: `GET HTTP/1.1, Connection: close`.
fn how_sent(method: &str, http10: bool, connection: Option<&str>) -> String {
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    match connection {
        Some(token) => format!("{method} {version}, Connection: {token}"),
        None => format!("{method} {version}"),
    }
}

fn record_response(store: &Store, conn: &str, p: Pending, response: &client::Response) {
    store.push(Observation::Response {
        request: p.name,
        conn: conn.to_string(),
        status: response.status,
        served_by: response.served_by(),
        closes: response.closes(),
        bytes: response.body.len() as u64,
        body: BodyShape::of(&response.body),
        headers: response.headers.clone(),
        shared: response.shared(),
        latency_ms: p.sent.elapsed().as_secs_f64() * 1000.0,
    });
}

/// Connects `name`, recording a refusal; how long the TCP handshake took.
fn connect_recorded(
    name: &str,
    addr: SocketAddr,
    rcvbuf: Option<u32>,
    store: &Store,
) -> Result<(TcpStream, Duration), String> {
    let start = Instant::now();
    let stream = connect(addr, rcvbuf).map_err(|e| {
        store.push(Observation::ConnRefused {
            conn: name.to_string(),
            error: e.to_string(),
        });
        e.to_string()
    })?;
    Ok((stream, start.elapsed()))
}

fn connect(addr: SocketAddr, rcvbuf: Option<u32>) -> std::io::Result<TcpStream> {
    let Some(bytes) = rcvbuf else {
        return TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_recv_buffer_size(bytes as usize)?;
    socket.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
    Ok(socket.into())
}

fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = setsockopt(stream, sockopt::Linger, &linger);
}

fn set_rcvbuf(stream: &TcpStream, bytes: usize) {
    let _ = setsockopt(stream, sockopt::RcvBuf, &bytes);
}
