//! The load driver: many HTTP/1.1 connections from one thread on `mio`, in the open model
//! (requests at a constant rate over all connections, each at its scheduled time) or the closed
//! model (each connection sends its next request when the last is answered), keep-alive or a
//! connection per request, over a weighted mix of paths, plain or over TLS.
//!
//! A connection is a small state machine in a `Slot`; no thread, no buffer of its own beyond
//! the bytes of a response that arrived in pieces (and, over TLS, its rustls session), so ten
//! thousand idle keep-alive connections cost little more than their sockets. Over TLS each
//! connection makes a full handshake, driven without blocking like the rest: requests go into
//! the session, its records out while the socket takes them; what the socket brings is
//! decrypted at once, all of it, into the slot's buffer. Handshakes completed are counted
//! ([`TlsFigures`]). Responses are framed by the harness's own client
//! ([`client::frame`]), latencies go into HDR histograms from each request's intended start, and
//! every request and connection is recorded for the crash oracle ([`LoadRun`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use std::os::fd::{AsFd, AsRawFd};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use rustls::ClientConnection;

use super::client::{self, Framed};
use super::wire::{decrypt, send_records, Endpoint};
use crate::observe::load::{
    histogram, micros, ConnEnd, ConnLife, Counts, Interval, LoadOutcome, LoadRequest, LoadRun,
    LoadShape, Percentiles, TlsFigures,
};
use crate::observe::ErrorClass;

/// How long a connection waits before opening again after a refusal.
const RETRY_AFTER_REFUSAL: Duration = Duration::from_millis(10);
/// How often requests are checked against the timeout.
const TIMEOUT_SCAN: Duration = Duration::from_millis(10);
/// A slot's response buffer is given back above this size once empty.
const BUFFER_KEPT: usize = 4096;
/// The token of the timer that wakes the loop for a scheduled request: epoll's own timeout
/// counts in whole milliseconds, which would start every request up to 1 ms late.
const TIMER: Token = Token(usize::MAX);

/// One entry of the request mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixEntry {
    pub path: String,
    pub weight: u32,
    /// Its fault is designed to take down the process that serves it.
    pub fatal: bool,
}

/// What to drive.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// The server, and whether to speak TLS to it.
    pub endpoint: Endpoint,
    pub connections: u32,
    /// Requests per second over all connections (open model); `None`: closed model.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Keep connections alive; otherwise one connection per request (`Connection: close`).
    pub keepalive: bool,
    pub mix: Vec<MixEntry>,
    /// A request without an outcome after this long has timed out.
    pub timeout: Duration,
    /// The length of one interval of figures.
    pub interval: Duration,
    /// Before the measured phase, every connection sends one request (the mix's first
    /// non-fatal path), so that the child owning each is known.
    pub warm: bool,
    /// Keep every request in the run (the crash oracle needs them; a benchmark need not).
    pub keep_requests: bool,
}

impl Plan {
    /// A closed-model, keep-alive plan of `GET /` for `duration`.
    pub fn new(name: &str, endpoint: Endpoint, connections: u32, duration: Duration) -> Plan {
        Plan {
            name: name.to_string(),
            endpoint,
            connections,
            rate: None,
            duration,
            keepalive: true,
            mix: vec![MixEntry {
                path: "/".into(),
                weight: 1,
                fatal: false,
            }],
            timeout: Duration::from_secs(10),
            interval: Duration::from_millis(100),
            warm: false,
            keep_requests: true,
        }
    }

    pub fn shape(&self) -> LoadShape {
        LoadShape {
            connections: self.connections,
            rate: self.rate,
            duration_ms: self.duration.as_secs_f64() * 1000.0,
            keepalive: self.keepalive,
        }
    }
}

/// What a load tells its caller while it runs.
pub trait Progress {
    /// The warm-up is over; `all`: every connection got an answer.
    fn warmed(&mut self, _all: bool) {}
    /// One interval's figures.
    fn interval(&mut self, _interval: &Interval) {}
}

/// No progress reports.
pub struct Quiet;
impl Progress for Quiet {}

/// Raises this process's soft limit on open descriptors to its hard limit: a load holds one
/// per connection, and a server started afterwards inherits the room for its side of them.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Runs `plan` to its end on this thread; times in the result are on `clock`.
pub fn run(plan: &Plan, clock: Instant, progress: &mut dyn Progress) -> io::Result<LoadRun> {
    if plan.connections == 0 || plan.mix.is_empty() || plan.rate.is_some_and(|r| r <= 0.0) {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "a load needs connections, a mix and a positive rate",
        ));
    }
    let mut driver = Driver::new(plan, clock)?;
    driver.go(progress)?;
    Ok(driver.finish())
}

/// A request on its way.
struct InFlight {
    mix: u16,
    intended: Instant,
    started: Instant,
    written: usize,
    warm: bool,
}

/// One connection slot: at most one TCP connection and one request at a time.
#[derive(Default)]
struct Slot {
    stream: Option<TcpStream>,
    /// The connection's TLS session, when the endpoint speaks TLS.
    tls: Option<Box<ClientConnection>>,
    /// The current connection's index in `lives`.
    life: u32,
    connected: bool,
    inflight: Option<InFlight>,
    /// Open model: intended starts that came while a request was on its way.
    due: VecDeque<Instant>,
    /// Open model: the next intended start of this slot's schedule.
    next: Option<Instant>,
    /// No new connection before this (after a refusal).
    blocked_until: Option<Instant>,
    /// A response that arrived in pieces.
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The slot's next scheduled request (open model).
    Schedule,
    /// The slot may connect again.
    Unblock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warm,
    Measure,
    Drain,
}

/// Smooth weighted round-robin over the mix: deterministic, and spread evenly.
struct Picker {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl Picker {
    fn new(mix: &[MixEntry]) -> Picker {
        let weights: Vec<i64> = mix.iter().map(|m| i64::from(m.weight)).collect();
        Picker {
            total: weights.iter().sum(),
            current: vec![0; weights.len()],
            weights,
        }
    }

    fn pick(&mut self) -> usize {
        for (c, w) in self.current.iter_mut().zip(&self.weights) {
            *c += w;
        }
        let best = (0..self.current.len())
            .max_by_key(|&i| (self.current[i], Reverse(i)))
            .unwrap_or(0);
        self.current[best] -= self.total;
        best
    }
}

struct Driver<'p> {
    plan: &'p Plan,
    clock: Instant,
    poll: Poll,
    timer: TimerFd,
    slots: Vec<Slot>,
    lives: Vec<ConnLife>,
    requests: Vec<LoadRequest>,
    counts: Counts,
    /// Open model: from the intended start; closed model: filled in at the end.
    corrected: Histogram<u64>,
    raw: Histogram<u64>,
    window: Histogram<u64>,
    window_start: Instant,
    window_done: u64,
    window_failed: u64,
    intervals: Vec<Interval>,
    timers: BinaryHeap<Reverse<(Instant, Timer, u32)>>,
    bytes: Vec<Vec<u8>>,
    picker: Picker,
    phase: Phase,
    started: Instant,
    end: Instant,
    last_outcome: Instant,
    warm_left: u32,
    warm_all: bool,
    /// Responses that came within the measured phase.
    answered_in_time: u64,
    /// TLS handshakes completed after the warm-up, and those within the measured phase.
    handshakes: u64,
    handshakes_in_time: u64,
    /// The driver itself could not go on (out of descriptors or ports): a harness error, not
    /// the server's refusal.
    broken: Option<io::Error>,
    scratch: Vec<u8>,
}

impl<'p> Driver<'p> {
    fn new(plan: &'p Plan, clock: Instant) -> io::Result<Driver<'p>> {
        let close = (!plan.keepalive).then_some("close");
        let bytes = plan
            .mix
            .iter()
            .map(|m| client::request_bytes("GET", &m.path, None, close, false))
            .collect();
        let now = Instant::now();
        let poll = Poll::new()?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        poll.registry().register(
            &mut SourceFd(&timer.as_fd().as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        Ok(Driver {
            plan,
            clock,
            poll,
            timer,
            slots: (0..plan.connections).map(|_| Slot::default()).collect(),
            lives: Vec::new(),
            requests: Vec::new(),
            counts: Counts::default(),
            corrected: histogram(),
            raw: histogram(),
            window: histogram(),
            window_start: now,
            window_done: 0,
            window_failed: 0,
            intervals: Vec::new(),
            timers: BinaryHeap::new(),
            bytes,
            picker: Picker::new(&plan.mix),
            phase: Phase::Warm,
            started: now,
            end: now,
            last_outcome: now,
            warm_left: 0,
            warm_all: true,
            answered_in_time: 0,
            handshakes: 0,
            handshakes_in_time: 0,
            broken: None,
            scratch: vec![0; 64 * 1024],
        })
    }

    fn ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.clock).as_secs_f64() * 1000.0
    }

    /// Warm-up (if asked), the measured phase, then the drain of what is still on its way.
    fn go(&mut self, progress: &mut dyn Progress) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if self.plan.warm {
            let warm_mix = self.plan.mix.iter().position(|m| !m.fatal).unwrap_or(0) as u16;
            let now = Instant::now();
            for s in 0..self.slots.len() as u32 {
                self.start(s, warm_mix, now, true);
            }
            self.warm_left = self.plan.connections;
            while self.warm_left > 0 {
                self.turn(&mut events)?;
                self.check_broken()?;
            }
            progress.warmed(self.warm_all);
        }
        self.begin_measure();
        let mut next_scan = Instant::now() + TIMEOUT_SCAN;
        loop {
            let now = Instant::now();
            if self.phase == Phase::Measure && now >= self.end {
                self.phase = Phase::Drain;
            }
            if self.phase == Phase::Drain && (self.idle() || now >= self.end + self.plan.timeout) {
                break;
            }
            self.fire_timers(now);
            if now >= next_scan {
                self.time_out(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            if now >= self.window_start + self.plan.interval {
                progress.interval(&self.close_window(now));
            }
            self.turn(&mut events)?;
            self.check_broken()?;
        }
        // What the drain deadline left: requests still on their way or never sent.
        let now = Instant::now();
        for s in 0..self.slots.len() as u32 {
            if self.slots[s as usize].inflight.is_some() {
                self.fail(s, ErrorClass::Timeout, ConnEnd::ByClient, now);
            }
            while let Some(intended) = self.slots[s as usize].due.pop_front() {
                self.unsent(intended, now);
            }
        }
        if self.window_done > 0 || self.intervals.is_empty() {
            progress.interval(&self.close_window(now));
        }
        Ok(())
    }

    fn check_broken(&mut self) -> io::Result<()> {
        match self.broken.take() {
            Some(e) => Err(io::Error::new(
                e.kind(),
                format!(
                    "the load driver cannot open a connection ({e}): its own limit, not the \
                     server's refusal (raise `ulimit -n`, or use fewer connections)"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Starts the measured phase: opens the keep-alive connections, then schedules (open
    /// model) or sends (closed model) the first requests.
    fn begin_measure(&mut self) {
        let now = Instant::now();
        self.phase = Phase::Measure;
        self.started = now;
        self.end = now + self.plan.duration;
        self.window_start = now;
        self.last_outcome = now;
        let n = self.slots.len() as u32;
        for s in 0..n {
            match self.plan.rate {
                Some(rate) => {
                    if self.plan.keepalive && self.slots[s as usize].stream.is_none() {
                        self.connect(s, now);
                    }
                    let first = now + Duration::from_secs_f64(f64::from(s) / rate);
                    if first < self.end {
                        self.slots[s as usize].next = Some(first);
                        self.timers.push(Reverse((first, Timer::Schedule, s)));
                    }
                }
                None => self.next_request(s, now),
            }
        }
    }

    /// One wait for readiness (bounded by the next timer) and the events it brought.
    fn turn(&mut self, events: &mut Events) -> io::Result<()> {
        let now = Instant::now();
        let mut wait = TIMEOUT_SCAN;
        if self.phase == Phase::Measure {
            wait = wait.min(self.end.saturating_duration_since(now));
        }
        if let Some(Reverse((t, _, _))) = self.timers.peek() {
            let left = t.saturating_duration_since(now);
            if left.is_zero() {
                wait = Duration::ZERO;
            } else if left < wait {
                // Woken by the timer, to the microsecond; epoll's timeout only backs it up.
                let _ = self.timer.set(
                    Expiration::OneShot(TimeSpec::from_duration(left)),
                    TimerSetTimeFlags::empty(),
                );
                wait = left + Duration::from_millis(1);
            }
        }
        match self.poll.poll(events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == TIMER {
                let _ = self.timer.wait();
                continue;
            }
            let s = ev.token().0 as u32;
            self.ready(s, ev.is_readable() || ev.is_read_closed() || ev.is_error());
        }
        if self.phase == Phase::Warm {
            // Warm requests that timed out.
            self.time_out(Instant::now());
        }
        Ok(())
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, kind, s))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match kind {
                Timer::Schedule => self.scheduled(s, t),
                Timer::Unblock => {
                    self.slots[s as usize].blocked_until = None;
                    self.next_request(s, now);
                }
            }
        }
    }

    /// Open model: slot `s`'s request intended at `t` is due.
    fn scheduled(&mut self, s: u32, t: Instant) {
        let rate = self.plan.rate.expect("open model");
        let step = Duration::from_secs_f64(f64::from(self.plan.connections) / rate);
        let slot = &mut self.slots[s as usize];
        slot.due.push_back(t);
        let next = t + step;
        if next < self.end {
            slot.next = Some(next);
            self.timers.push(Reverse((next, Timer::Schedule, s)));
        } else {
            slot.next = None;
        }
        self.next_request(s, Instant::now());
    }

    /// Sends slot `s`'s next request if it has one and nothing is on its way.
    fn next_request(&mut self, s: u32, now: Instant) {
        let slot = &mut self.slots[s as usize];
        if slot.inflight.is_some() || slot.blocked_until.is_some() {
            return;
        }
        let intended = match self.plan.rate {
            Some(_) => match slot.due.pop_front() {
                Some(t) => t,
                None => return,
            },
            None if self.phase == Phase::Measure && now < self.end => now,
            None => return,
        };
        let mix = self.picker.pick() as u16;
        self.start(s, mix, intended, false);
    }

    /// Puts a request on slot `s`, opening a connection for it if there is none.
    fn start(&mut self, s: u32, mix: u16, intended: Instant, warm: bool) {
        let now = Instant::now();
        self.slots[s as usize].inflight = Some(InFlight {
            mix,
            intended,
            started: now,
            written: 0,
            warm,
        });
        if self.slots[s as usize].stream.is_none() {
            self.connect(s, now);
        } else if self.slots[s as usize].connected {
            self.write(s);
        }
    }

    /// Opens a new connection on slot `s` (a new life).
    fn connect(&mut self, s: u32, now: Instant) {
        let life = self.lives.len() as u32;
        self.lives.push(ConnLife {
            slot: s,
            owner: None,
            opened_ms: self.ms(now),
            ended_ms: None,
            end: ConnEnd::Open,
        });
        let endpoint = &self.plan.endpoint;
        let stream = TcpStream::connect(endpoint.addr).and_then(|mut stream| {
            let tls = match &endpoint.tls {
                Some(client) => Some(Box::new(client.session(endpoint.addr)?)),
                None => None,
            };
            self.poll.registry().register(
                &mut stream,
                Token(s as usize),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok((stream, tls))
        });
        let slot = &mut self.slots[s as usize];
        slot.life = life;
        slot.connected = false;
        match stream {
            Ok((stream, tls)) => {
                slot.stream = Some(stream);
                slot.tls = tls;
            }
            Err(e) if driver_limit(&e) => {
                slot.stream = None;
                self.broken.get_or_insert(e);
                self.refused(s, now);
            }
            Err(_) => {
                slot.stream = None;
                self.refused(s, now);
            }
        }
    }

    /// The connection could not be opened: its request fails, and the slot waits a moment.
    fn refused(&mut self, s: u32, now: Instant) {
        let until = now + RETRY_AFTER_REFUSAL;
        self.slots[s as usize].blocked_until = Some(until);
        self.timers.push(Reverse((until, Timer::Unblock, s)));
        self.fail(s, ErrorClass::Refused, ConnEnd::Refused, now);
    }

    /// Readiness on slot `s`'s socket.
    fn ready(&mut self, s: u32, readable: bool) {
        let slot = &mut self.slots[s as usize];
        let Some(stream) = slot.stream.as_ref() else {
            return;
        };
        if !slot.connected {
            match stream.take_error() {
                Ok(Some(_)) | Err(_) => return self.refused(s, Instant::now()),
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => slot.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.refused(s, Instant::now()),
            }
        }
        // Over TLS the session may have records to send without a request (the handshake).
        if slot.inflight.is_some() || slot.tls.is_some() {
            self.write(s);
        }
        if readable {
            self.read(s);
        }
    }

    /// Writes what is left of slot `s`'s request, plain or through its TLS session.
    fn write(&mut self, s: u32) {
        if self.slots[s as usize].tls.is_some() {
            self.write_tls(s)
        } else {
            self.write_plain(s)
        }
    }

    /// Reads what slot `s`'s socket holds and handles every complete response.
    fn read(&mut self, s: u32) {
        if self.slots[s as usize].tls.is_some() {
            self.read_tls(s)
        } else {
            self.read_plain(s)
        }
    }

    fn write_plain(&mut self, s: u32) {
        let slot = &mut self.slots[s as usize];
        let (Some(stream), Some(f)) = (slot.stream.as_mut(), slot.inflight.as_mut()) else {
            return;
        };
        let bytes = &self.bytes[f.mix as usize];
        while f.written < bytes.len() {
            match stream.write(&bytes[f.written..]) {
                Ok(n) => f.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let class = class_of(&e);
                    return self.fail(s, class, ConnEnd::UnderRequest, Instant::now());
                }
            }
        }
    }

    fn read_plain(&mut self, s: u32) {
        loop {
            let slot = &mut self.slots[s as usize];
            let Some(stream) = slot.stream.as_mut() else {
                return;
            };
            match stream.read(&mut self.scratch) {
                Ok(0) => return self.server_ended(s, ErrorClass::Closed),
                Ok(n) => {
                    slot.buf.extend_from_slice(&self.scratch[..n]);
                    if !self.responses(s) {
                        return;
                    }
                    // A short read took all there was; the next arrival is a new edge.
                    if n < self.scratch.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.server_ended(s, class_of(&e)),
            }
        }
    }

    /// Puts what is left of slot `s`'s request into its TLS session, and sends the session's
    /// records while the socket takes them (the rest on the next writable edge).
    fn write_tls(&mut self, s: u32) {
        let slot = &mut self.slots[s as usize];
        let (Some(stream), Some(tls)) = (slot.stream.as_mut(), slot.tls.as_deref_mut()) else {
            return;
        };
        loop {
            let mut put = 0;
            if let Some(f) = slot.inflight.as_mut() {
                let bytes = &self.bytes[f.mix as usize];
                if f.written < bytes.len() {
                    // Never refused: at worst fewer bytes are taken (its buffer is full).
                    put = tls.writer().write(&bytes[f.written..]).unwrap_or(0);
                    f.written += put;
                }
            }
            match send_records(tls, stream) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.broke(s, class_of(&e)),
            }
            // More of the request may fit now that the records left (not while handshaking).
            let left = slot
                .inflight
                .as_ref()
                .is_some_and(|f| f.written < self.bytes[f.mix as usize].len());
            if put == 0 || !left {
                return;
            }
        }
    }

    /// Reads what slot `s`'s socket holds, decrypts all of it into the slot's buffer (plaintext
    /// left in the session would never be signalled again), handles every complete response,
    /// then sends what the session has to send (the handshake's next flight, and a request
    /// written before it completed).
    fn read_tls(&mut self, s: u32) {
        loop {
            let slot = &mut self.slots[s as usize];
            let (Some(stream), Some(tls)) = (slot.stream.as_mut(), slot.tls.as_deref_mut()) else {
                return;
            };
            let n = match stream.read(&mut self.scratch) {
                Ok(0) => return self.server_ended(s, ErrorClass::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.server_ended(s, class_of(&e)),
            };
            let handshaking = tls.is_handshaking();
            let decrypted = decrypt(tls, &self.scratch[..n], &mut slot.buf);
            if handshaking && !tls.is_handshaking() {
                self.handshake_completed();
            }
            match decrypted {
                Err(_) => return self.broke(s, ErrorClass::Closed),
                Ok(closed) => {
                    if !self.responses(s) {
                        return;
                    }
                    if closed {
                        return self.server_ended(s, ErrorClass::Closed);
                    }
                }
            }
            // A short read took all there was; the next arrival is a new edge.
            if n < self.scratch.len() {
                break;
            }
        }
        self.write_tls(s);
    }

    /// A TLS handshake completed (counted after the warm-up).
    fn handshake_completed(&mut self) {
        if self.phase == Phase::Warm {
            return;
        }
        self.handshakes += 1;
        if Instant::now() <= self.end {
            self.handshakes_in_time += 1;
        }
    }

    /// Slot `s`'s connection failed under the driver's own reading or writing (a socket error,
    /// or a TLS record or alert the session refused): its request, if any, fails with `class`.
    fn broke(&mut self, s: u32, class: ErrorClass) {
        let end = match self.slots[s as usize].inflight {
            Some(_) => ConnEnd::UnderRequest,
            None => ConnEnd::WhileIdle,
        };
        self.fail(s, class, end, Instant::now());
    }

    /// Handles the complete responses in slot `s`'s buffer; false when the connection is gone.
    fn responses(&mut self, s: u32) -> bool {
        loop {
            let slot = &mut self.slots[s as usize];
            match client::frame(&slot.buf, false) {
                Framed::Incomplete => return true,
                Framed::Invalid(_) => {
                    self.fail(s, ErrorClass::Closed, ConnEnd::ByClient, Instant::now());
                    return false;
                }
                Framed::Complete(head, used) => {
                    slot.buf.drain(..used);
                    if slot.buf.is_empty() && slot.buf.capacity() > BUFFER_KEPT {
                        slot.buf = Vec::new();
                    }
                    if !self.answered(s, head) {
                        return false;
                    }
                }
            }
        }
    }

    /// A response for slot `s`'s request; false when the connection is gone with it.
    fn answered(&mut self, s: u32, head: client::Head) -> bool {
        let now = Instant::now();
        let life = self.slots[s as usize].life as usize;
        if let Some(pid) = head.served_by {
            self.lives[life].owner = Some(pid);
        }
        if self.slots[s as usize].inflight.is_none() {
            // Nothing asked for it: the connection cannot be trusted further.
            self.close(s, ConnEnd::ByClient, now);
            return false;
        }
        self.outcome(
            s,
            LoadOutcome::Response {
                status: head.status,
                shared_intact: head.shared_intact,
            },
            now,
        );
        let gone = if head.closes {
            self.close(s, ConnEnd::Announced, now);
            true
        } else if !self.plan.keepalive {
            self.close(s, ConnEnd::ByClient, now);
            true
        } else {
            false
        };
        self.next_request(s, now);
        !gone
    }

    /// The server ended slot `s`'s connection (EOF or an error).
    fn server_ended(&mut self, s: u32, class: ErrorClass) {
        let now = Instant::now();
        let slot = &mut self.slots[s as usize];
        if slot.inflight.is_some() {
            // A body delimited by the close ends here.
            if let Framed::Complete(head, _) = client::frame(&slot.buf, true) {
                // Closed first, so that the next request opens a connection of its own.
                self.close(s, ConnEnd::Announced, now);
                self.answered(s, head);
                return;
            }
            self.fail(s, class, ConnEnd::UnderRequest, now);
        } else {
            self.close(s, ConnEnd::WhileIdle, now);
            self.next_request(s, now);
        }
    }

    /// Slot `s`'s request failed with `class`; its connection ends as `end`.
    fn fail(&mut self, s: u32, class: ErrorClass, end: ConnEnd, now: Instant) {
        if self.slots[s as usize].inflight.is_some() {
            self.outcome(s, LoadOutcome::Failed { class }, now);
        }
        self.close(s, end, now);
        self.next_request(s, now);
    }

    /// Closes slot `s`'s connection, recording how it ended.
    fn close(&mut self, s: u32, end: ConnEnd, now: Instant) {
        let ms = self.ms(now);
        let slot = &mut self.slots[s as usize];
        if let Some(mut stream) = slot.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        slot.tls = None;
        slot.connected = false;
        slot.buf.clear();
        if let Some(life) = self.lives.get_mut(slot.life as usize) {
            if life.ended_ms.is_none() {
                life.ended_ms = Some(ms);
                life.end = end;
            }
        }
    }

    /// Records how slot `s`'s request ended.
    fn outcome(&mut self, s: u32, outcome: LoadOutcome, now: Instant) {
        let slot = &mut self.slots[s as usize];
        let life = slot.life;
        let Some(f) = slot.inflight.take() else {
            return;
        };
        if f.warm {
            self.warm_left -= 1;
            self.warm_all &= outcome.failed().is_none();
            return;
        }
        let corrected = now.saturating_duration_since(f.intended);
        let raw = now.saturating_duration_since(f.started);
        self.record(corrected, raw, outcome.failed().is_some());
        self.counts.count(outcome);
        if now <= self.end && outcome.failed().is_none() {
            self.answered_in_time += 1;
        }
        self.last_outcome = now;
        if self.plan.keep_requests {
            self.requests.push(LoadRequest {
                conn: life,
                at_ms: self.ms(f.intended),
                latency_ms: corrected.as_secs_f64() * 1000.0,
                raw_ms: raw.as_secs_f64() * 1000.0,
                outcome,
                fatal: self.plan.mix[f.mix as usize].fatal,
                mix: f.mix,
            });
        }
    }

    fn record(&mut self, corrected: Duration, raw: Duration, failed: bool) {
        let (c, r) = (micros(corrected), micros(raw));
        if self.plan.rate.is_some() {
            self.corrected.saturating_record(c);
        }
        self.raw.saturating_record(r);
        self.window.saturating_record(c);
        self.window_done += 1;
        self.window_failed += u64::from(failed);
    }

    /// Open model: an intended request that the drain deadline left unsent.
    fn unsent(&mut self, intended: Instant, now: Instant) {
        let waited = now.saturating_duration_since(intended);
        self.record(waited, Duration::ZERO, true);
        self.counts.count(LoadOutcome::Failed {
            class: ErrorClass::Timeout,
        });
    }

    /// Times out the requests on their way for longer than the plan allows.
    fn time_out(&mut self, now: Instant) {
        for s in 0..self.slots.len() as u32 {
            let late = self.slots[s as usize]
                .inflight
                .as_ref()
                .is_some_and(|f| now.saturating_duration_since(f.started) >= self.plan.timeout);
            if late {
                self.fail(s, ErrorClass::Timeout, ConnEnd::ByClient, now);
            }
        }
    }

    /// Nothing on its way and nothing due.
    fn idle(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.inflight.is_none() && s.due.is_empty())
    }

    /// The figures of the interval that ends now.
    fn close_window(&mut self, now: Instant) -> Interval {
        let ms = |us: u64| us as f64 / 1000.0;
        let w = &self.window;
        let interval = Interval {
            at_ms: self.ms(self.window_start),
            length_ms: now
                .saturating_duration_since(self.window_start)
                .as_secs_f64()
                * 1000.0,
            done: self.window_done,
            failed: self.window_failed,
            p50_ms: if w.is_empty() {
                0.0
            } else {
                ms(w.value_at_quantile(0.5))
            },
            p99_ms: if w.is_empty() {
                0.0
            } else {
                ms(w.value_at_quantile(0.99))
            },
            max_ms: if w.is_empty() { 0.0 } else { ms(w.max()) },
        };
        self.window.reset();
        self.window_start = now;
        self.window_done = 0;
        self.window_failed = 0;
        self.intervals.push(interval);
        interval
    }

    fn finish(mut self) -> LoadRun {
        let now = Instant::now();
        for s in 0..self.slots.len() as u32 {
            self.close(s, ConnEnd::Open, now);
        }
        if self.plan.rate.is_none() {
            // The closed model's correction: a request that took longer than the usual
            // interval between requests stands for those its connection did not send.
            let usual = self.raw.value_at_quantile(0.5).max(1);
            self.corrected = self.raw.clone_correct(usual);
        }
        let elapsed = self.last_outcome.saturating_duration_since(self.started);
        let tls = self.plan.endpoint.tls.is_some().then(|| TlsFigures {
            handshakes: self.handshakes,
            handshakes_per_s: self.handshakes_in_time as f64 / self.plan.duration.as_secs_f64(),
        });
        LoadRun {
            name: self.plan.name.clone(),
            shape: self.plan.shape(),
            started_ms: self.ms(self.started),
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            throughput: self.answered_in_time as f64 / self.plan.duration.as_secs_f64(),
            warmed: self.plan.warm.then_some(self.warm_all),
            counts: self.counts,
            corrected: Percentiles::of(&self.corrected),
            raw: Percentiles::of(&self.raw),
            intervals: std::mem::take(&mut self.intervals),
            opened: self.lives.len(),
            tls,
            requests: std::mem::take(&mut self.requests),
            connections: std::mem::take(&mut self.lives),
            histograms: Some(Box::new((
                std::mem::replace(&mut self.corrected, histogram()),
                std::mem::replace(&mut self.raw, histogram()),
            ))),
        }
    }
}

/// An error of the driver's own making: no descriptor, memory or local port for a socket.
fn driver_limit(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// The error class of a failed read or write.
fn class_of(e: &io::Error) -> ErrorClass {
    match e.kind() {
        ErrorKind::ConnectionReset => ErrorClass::Reset,
        _ => ErrorClass::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_spread_by_weight() {
        let mix = |path: &str, weight| MixEntry {
            path: path.into(),
            weight,
            fatal: false,
        };
        let mut p = Picker::new(&[mix("/a", 3), mix("/b", 1)]);
        let picks: Vec<usize> = (0..8).map(|_| p.pick()).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6);
        // Never two of the light one in a row, and never four of the heavy one.
        assert!(picks.windows(2).all(|w| w != [1, 1]), "{picks:?}");
        assert!(picks.windows(4).all(|w| w != [0, 0, 0, 0]), "{picks:?}");
    }
}
