//! event: as worker, plus a `mio` listener thread that holds the connections no worker needs
//! (EV-1): idle keep-alive connections until a request is readable, responses the client reads
//! slowly once they can be set aside (write completion, EV-2), and lingering closes (EV-3).
//!
//! The listener accepts only while a worker is idle and the child holds fewer connections than
//! `ThreadsPerChild + AsyncRequestWorkerFactor × idle workers` (EV-4). When it had to wait for a
//! worker, it closes all its idle keep-alive connections as soon as one frees (EV-5).
//!
//! A set-aside response goes on only while a worker is idle: Apache's listener hands each burst
//! of write completion to a worker and waits for one when every worker is busy, so the write
//! stalls until one frees (and that wait counts for EV-5).
//!
//! Connections are registered with the poller once, edge-triggered; while a worker owns one, an
//! event for it only marks it readable, and the listener dispatches it again when it comes back.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use slab::Slab;

use crate::conn::{Conn, Pending, Stream};
use crate::context::{ChildShared, WorkerCtx};
use crate::eventlog::{Event, TimeoutKind};
use crate::mpm::{
    accept, connections_exhausted, run_threaded, Accepted, ACCEPT_BACKOFF, EXIT_CHILD_FATAL,
};
use crate::scoreboard::WorkerState;
use crate::serve::{serve_request, After, Outgoing, WriteMode};

const LISTEN: Token = Token(usize::MAX - 1);
const CONTROL: Token = Token(usize::MAX - 2);
const WAKE: Token = Token(usize::MAX - 3);

/// How long the listener reads and discards in a lingering close.
const LINGER: Duration = Duration::from_secs(2);

/// Work for a worker: a connection whose request has begun (or a new connection).
struct Task {
    conn: Conn,
    token: Option<Token>,
    /// When reading this request began (header timeout start).
    started: Instant,
}

/// A connection (or its end) coming back from a worker.
enum Returned {
    KeepAlive(Conn, Option<Token>),
    Write(Conn, Option<Token>, Box<Outgoing>),
    Linger(Conn, Option<Token>),
    Closed(Option<Token>),
}

/// What the listener and the workers share.
struct Pool {
    queue: Mutex<Queue>,
    work: Condvar,
    returns: Mutex<Vec<Returned>>,
    waker: Waker,
    /// The listener waits for an idle worker: the next worker to become idle wakes it.
    wants_idler: AtomicBool,
}

struct Queue {
    tasks: VecDeque<Task>,
    /// Worker threads running.
    threads: usize,
    /// Workers between taking a task and giving its connection back.
    busy: usize,
    stop: bool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Workers not serving and not yet promised a task. A worker counts as idle from the moment
    /// it gives a connection back, so a request arriving just then does not look like one that
    /// found every worker busy (EV-5).
    fn idlers(&self) -> usize {
        let q = self.lock();
        q.threads.saturating_sub(q.busy + q.tasks.len())
    }

    fn push(&self, task: Task) {
        self.lock().tasks.push_back(task);
        self.work.notify_one();
    }

    /// Blocks until a task comes; None once the pool stops.
    fn next(&self) -> Option<Task> {
        let mut q = self.lock();
        if self.wants_idler.swap(false, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        loop {
            if let Some(task) = q.tasks.pop_front() {
                q.busy += 1;
                return Some(task);
            }
            if q.stop {
                return None;
            }
            q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, returned: Returned) {
        self.lock().busy -= 1;
        self.returns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(returned);
        let _ = self.waker.wake();
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.work.notify_all();
    }
}

/// Runs an event child; returns its exit code.
pub fn run(shared: &ChildShared, listener: TcpListener) -> i32 {
    let Ok(poll) = Poll::new() else {
        return EXIT_CHILD_FATAL;
    };
    let Ok(waker) = Waker::new(poll.registry(), WAKE) else {
        return EXIT_CHILD_FATAL;
    };
    let pool = Pool {
        queue: Mutex::new(Queue {
            tasks: VecDeque::new(),
            threads: 0,
            busy: 0,
            stop: false,
        }),
        work: Condvar::new(),
        returns: Mutex::new(Vec::new()),
        waker,
        wants_idler: AtomicBool::new(false),
    };
    run_threaded(
        shared,
        |thread| worker_loop(shared, &pool, thread),
        // The listener counts idle workers among those started so far.
        |started| pool.lock().threads = started,
        || {
            let code = match Listener::new(shared, &pool, poll, listener) {
                Ok(mut l) => {
                    shared.announce_ready();
                    l.run();
                    0
                }
                Err(_) => EXIT_CHILD_FATAL,
            };
            pool.stop();
            code
        },
    )
}

/// Whether a connection waits in the listen backlog, without taking it.
fn connection_waiting(listen: &TcpListener) -> bool {
    let mut fds = [PollFd::new(listen.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// One worker: serves requests that are readable, returns the connection to the listener
/// between requests.
fn worker_loop(shared: &ChildShared, pool: &Pool, thread: usize) {
    let mut w = WorkerCtx::new(shared, thread);
    loop {
        w.slot.set_state(WorkerState::Idle);
        let Some(task) = pool.next() else { break };
        let returned = serve_task(task, &mut w);
        w.slot.set_state(WorkerState::Idle);
        pool.give_back(returned);
    }
    w.slot.set_state(WorkerState::Dead);
}

/// Serves requests on a connection while they keep coming without a wait.
fn serve_task(task: Task, w: &mut WorkerCtx<'_>) -> Returned {
    let Task {
        mut conn,
        token,
        mut started,
    } = task;
    loop {
        match serve_request(&mut conn, w, started, WriteMode::Async) {
            After::KeepAlive => {}
            After::Close => return Returned::Linger(conn, token),
            After::Abort => return Returned::Closed(token),
            After::WriteLater(out) => return Returned::Write(conn, token, Box::new(out)),
        }
        if conn.buf.is_empty() {
            match conn.try_fill() {
                Ok(Some(0)) | Err(_) => return Returned::Closed(token),
                Ok(Some(_)) => {}
                // The listener keeps the socket only (EV-7): the read buffer goes.
                Ok(None) => return Returned::KeepAlive(conn, token),
            }
        }
        started = Instant::now();
    }
}

/// A connection the listener knows of.
enum Held {
    /// A worker has it; `readable` records an event that came meanwhile.
    Busy {
        readable: bool,
    },
    KeepAlive(Idle),
    Writing(Idle, Box<Outgoing>),
    Lingering(TcpStream, u64),
}

/// A connection parked in the listener, with as little as possible (EV-7): over TLS the
/// session goes with it (its keys and sequence numbers; no plaintext: see [`Stream`]).
struct Idle {
    stream: Stream,
    peer: SocketAddr,
    requests: u32,
    /// Matches the timeout queue entry that may expire it.
    serial: u64,
    /// What the worker had already read of the requests pipelined behind a set-aside response,
    /// served once it is written. Empty (no allocation) for a kept-alive connection.
    read_ahead: Vec<u8>,
}

/// Timeout queues: all entries of one queue have the same timeout, so insertion order is
/// deadline order.
type TimeoutQueue = VecDeque<(Instant, usize, u64)>;

/// What a connection held by the listener waits for, each with its own timeout queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The next request (KeepAliveTimeout).
    KeepAlive,
    /// The client to take more of a set-aside response (Timeout).
    Write,
    /// The end of a lingering close (2 s).
    Linger,
}

impl Timer {
    /// The timeout an expiry is logged as; a lingering close just ends.
    fn logged_as(self) -> Option<TimeoutKind> {
        match self {
            Timer::KeepAlive => Some(TimeoutKind::KeepAlive),
            Timer::Write => Some(TimeoutKind::Write),
            Timer::Linger => None,
        }
    }
}

impl Held {
    /// The timer this connection waits on, with the serial its queue entry must match.
    fn timer(&self) -> Option<(Timer, u64)> {
        match self {
            Held::Busy { .. } => None,
            Held::KeepAlive(idle) => Some((Timer::KeepAlive, idle.serial)),
            Held::Writing(idle, _) => Some((Timer::Write, idle.serial)),
            Held::Lingering(_, serial) => Some((Timer::Linger, *serial)),
        }
    }

    /// The client, where the listener kept it.
    fn peer(&self) -> Option<SocketAddr> {
        match self {
            Held::KeepAlive(idle) | Held::Writing(idle, _) => Some(idle.peer),
            Held::Busy { .. } | Held::Lingering(..) => None,
        }
    }
}

#[derive(Default)]
struct Counts {
    open: u32,
    keepalive: u32,
    writing: u32,
    closing: u32,
}

struct Listener<'a> {
    shared: &'a ChildShared,
    pool: &'a Pool,
    poll: Poll,
    listen: Option<TcpListener>,
    conns: Slab<Held>,
    keepalive_q: TimeoutQueue,
    write_q: TimeoutQueue,
    linger_q: TimeoutQueue,
    serial: u64,
    /// A connection or request found every worker busy (EV-5).
    workers_were_busy: bool,
    /// Set-aside responses whose client can take more, waiting for an idle worker.
    write_waits: Vec<usize>,
    /// The listening socket signalled a connection that is not accepted yet.
    listen_pending: bool,
    /// The connection limit stopped accepting (Apache's listeners disabled by
    /// connections_above_limit): accepting resumes only one idle worker lower.
    at_limit: bool,
    /// After a failed accept(): not before this instant. The listening socket reports no new
    /// readiness for a connection already waiting, so the retry is a deadline of its own.
    accept_retry: Option<Instant>,
    accepted: u64,
    counts: Counts,
}

impl<'a> Listener<'a> {
    fn new(
        shared: &'a ChildShared,
        pool: &'a Pool,
        poll: Poll,
        listen: TcpListener,
    ) -> io::Result<Listener<'a>> {
        let registry = poll.registry();
        registry.register(
            &mut SourceFd(&listen.as_raw_fd()),
            LISTEN,
            Interest::READABLE,
        )?;
        registry.register(
            &mut SourceFd(&shared.control_fd().as_raw_fd()),
            CONTROL,
            Interest::READABLE,
        )?;
        Ok(Listener {
            shared,
            pool,
            poll,
            listen: Some(listen),
            conns: Slab::new(),
            keepalive_q: VecDeque::new(),
            write_q: VecDeque::new(),
            linger_q: VecDeque::new(),
            serial: 0,
            workers_were_busy: false,
            write_waits: Vec::new(),
            listen_pending: true,
            at_limit: false,
            accept_retry: None,
            accepted: 0,
            counts: Counts::default(),
        })
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            self.take_returns();
            self.resume_waiting_writes();
            self.close_idle_if_workers_were_busy();
            self.accept_while_allowed();
            self.publish_counts();
            if self.shared.is_graceful() && self.counts.open == 0 {
                return;
            }
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()) + Duration::from_millis(1));
            // No signal handler runs in a child (TERM keeps its default, the graceful signals
            // are ignored), so epoll_wait is never interrupted: any error is a broken poller.
            if self.poll.poll(&mut events, timeout).is_err() {
                return;
            }
            for event in events.iter() {
                match event.token() {
                    LISTEN => self.listen_pending = true,
                    CONTROL => self.begin_graceful(),
                    WAKE => {}
                    Token(key) => self.on_conn_event(key, event.is_readable(), event.is_writable()),
                }
            }
            self.expire(Instant::now());
        }
    }

    /// Takes the connections the workers gave back.
    fn take_returns(&mut self) {
        let returned =
            std::mem::take(&mut *self.pool.returns.lock().unwrap_or_else(|e| e.into_inner()));
        for r in returned {
            match r {
                Returned::KeepAlive(conn, token) => self.back_from_worker(conn, token),
                Returned::Write(conn, token, out) => {
                    let key = self.adopt(conn.stream.as_raw_fd(), token);
                    self.start_writing(key, conn, out);
                }
                Returned::Linger(conn, token) => {
                    let key = self.adopt(conn.stream.as_raw_fd(), token);
                    self.start_lingering(key, conn.stream);
                }
                Returned::Closed(token) => {
                    if let Some(Token(key)) = token {
                        self.conns.try_remove(key);
                    }
                    self.counts.open = self.counts.open.saturating_sub(1);
                }
            }
        }
    }

    /// The slab key for a connection coming back: its old one, or a new registration.
    fn adopt(&mut self, fd: i32, token: Option<Token>) -> usize {
        if let Some(Token(key)) = token {
            if self.conns.contains(key) {
                return key;
            }
        }
        let key = self.conns.insert(Held::Busy { readable: false });
        let _ = self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        key
    }

    /// A worker finished a request and the client has not sent the next one yet.
    fn back_from_worker(&mut self, conn: Conn, token: Option<Token>) {
        let readable = match token.and_then(|Token(k)| self.conns.get(k)) {
            Some(Held::Busy { readable }) => *readable,
            _ => false,
        };
        let key = self.adopt(conn.stream.as_raw_fd(), token);
        if self.shared.is_graceful() {
            return self.close(key);
        }
        // A readiness event recorded while the worker had the connection may be for bytes the
        // worker has read since (a pipelined request it served): hand it back only for bytes
        // still waiting, or the client's close, else a worker would sit through the keep-alive
        // wait (EV-1). Bytes that come later raise a new event.
        if readable && conn.stream.still_readable() {
            self.conns[key] = Held::Busy { readable: false };
            return self.dispatch(conn, key);
        }
        self.hold_keepalive(key, conn.stream, conn.peer, conn.requests);
    }

    fn hold_keepalive(&mut self, key: usize, stream: Stream, peer: SocketAddr, requests: u32) {
        self.serial += 1;
        let deadline = Instant::now() + self.shared.cfg.keep_alive_timeout;
        self.keepalive_q.push_back((deadline, key, self.serial));
        self.conns[key] = Held::KeepAlive(Idle {
            stream,
            peer,
            requests,
            serial: self.serial,
            read_ahead: Vec::new(),
        });
        self.counts.keepalive += 1;
    }

    /// Hands a connection with a readable request to a worker.
    fn dispatch(&mut self, conn: Conn, key: usize) {
        if self.pool.idlers() == 0 {
            self.note_workers_busy();
        }
        self.pool.push(Task {
            conn,
            token: Some(Token(key)),
            started: Instant::now(),
        });
    }

    fn note_workers_busy(&mut self) {
        self.workers_were_busy = true;
        self.pool.wants_idler.store(true, Ordering::Release);
    }

    fn on_conn_event(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(held) = self.conns.get_mut(key) else {
            return;
        };
        match held {
            Held::Busy { readable: r } => *r |= readable,
            Held::KeepAlive(_) if readable => self.request_arrived(key),
            Held::KeepAlive(_) => {}
            Held::Writing(..) if writable => self.write_ready(key),
            Held::Writing(..) => {}
            Held::Lingering(..) => self.continue_lingering(key),
        }
    }

    /// A kept-alive connection became readable: give it to a worker. With every worker busy the
    /// request is not queued (EV-8, as Apache): the connection stays with the listener, which
    /// closes it with the other idle ones once a worker frees (EV-5).
    fn request_arrived(&mut self, key: usize) {
        if self.pool.idlers() == 0 {
            self.note_workers_busy();
            return;
        }
        let Held::KeepAlive(idle) =
            std::mem::replace(&mut self.conns[key], Held::Busy { readable: false })
        else {
            return;
        };
        self.counts.keepalive -= 1;
        let conn = Conn {
            stream: idle.stream,
            peer: idle.peer,
            buf: Vec::new(),
            requests: idle.requests,
        };
        self.dispatch(conn, key);
    }

    fn start_writing(&mut self, key: usize, conn: Conn, out: Box<Outgoing>) {
        self.serial += 1;
        let deadline = Instant::now() + self.shared.cfg.timeout;
        self.write_q.push_back((deadline, key, self.serial));
        let idle = Idle {
            stream: conn.stream,
            peer: conn.peer,
            requests: conn.requests,
            serial: self.serial,
            read_ahead: conn.buf,
        };
        self.conns[key] = Held::Writing(idle, out);
        self.counts.writing += 1;
        self.continue_writing(key);
    }

    /// The client of a set-aside response can take more. As Apache's event, whose listener hands
    /// each such burst to a worker and waits for one (`get_worker` blocking, in
    /// CONN_STATE_WRITE_COMPLETION), the write goes on only while a worker is idle. With every
    /// worker busy it waits, without its Timeout running (Apache has taken it off the write
    /// queue), and the wait counts as one for a worker (EV-5). Seen on Apache 2.4.67: a slow
    /// reader's response stalled while two requests held both workers, and went on when they
    /// ended.
    fn write_ready(&mut self, key: usize) {
        if self.pool.idlers() > 0 {
            return self.continue_writing(key);
        }
        self.note_workers_busy();
        if let Some(Held::Writing(idle, _)) = self.conns.get_mut(key) {
            // Its write-queue entry no longer matches: no timeout while it waits.
            self.serial += 1;
            idle.serial = self.serial;
            self.write_waits.push(key);
        }
    }

    /// Once a worker is idle, the writes that waited for one go on, each with a fresh Timeout.
    fn resume_waiting_writes(&mut self) {
        if self.write_waits.is_empty() || self.pool.idlers() == 0 {
            return;
        }
        for key in std::mem::take(&mut self.write_waits) {
            let Some(Held::Writing(idle, _)) = self.conns.get_mut(key) else {
                continue;
            };
            self.serial += 1;
            idle.serial = self.serial;
            let deadline = Instant::now() + self.shared.cfg.timeout;
            self.write_q.push_back((deadline, key, self.serial));
            self.continue_writing(key);
        }
    }

    /// Writes what the client takes of a set-aside response.
    fn continue_writing(&mut self, key: usize) {
        let Some(Held::Writing(idle, out)) = self.conns.get_mut(key) else {
            return;
        };
        let before = out.remaining();
        match out.write_some(&mut idle.stream) {
            // Timeout bounds each wait for the client, as a blocking write's does (TO-2): progress
            // re-arms it.
            Ok(false) if out.remaining() < before => {
                self.serial += 1;
                idle.serial = self.serial;
                let deadline = Instant::now() + self.shared.cfg.timeout;
                self.write_q.push_back((deadline, key, self.serial));
            }
            Ok(false) => {}
            Ok(true) => {
                let keep_alive = out.keep_alive && !self.shared.is_graceful();
                let Held::Writing(idle, _) =
                    std::mem::replace(&mut self.conns[key], Held::Busy { readable: false })
                else {
                    return;
                };
                self.counts.writing -= 1;
                if keep_alive {
                    self.after_write_keepalive(key, idle);
                } else {
                    self.start_lingering(key, idle.stream);
                }
            }
            Err(_) => {
                self.counts.writing -= 1;
                self.conns[key] = Held::Busy { readable: false };
                self.close(key);
            }
        }
    }

    /// After write completion: a request may already be waiting (we did not watch for it). It is
    /// handed to a worker, queued if none is idle, never refused as a kept-alive request is
    /// (EV-8): in Apache the worker that wrote the last burst goes on to the request already
    /// read behind it (`data_in_input_filters`), and the last burst itself waited for a worker
    /// ([`Listener::write_ready`]). Seen on Apache 2.4.67: a request pipelined behind a slow
    /// response was answered right after it, though every worker had been busy meanwhile.
    fn after_write_keepalive(&mut self, key: usize, idle: Idle) {
        // What the worker read before the response was set aside, or what came since.
        let pending = if idle.read_ahead.is_empty() {
            idle.stream.peek()
        } else {
            Pending::Bytes
        };
        match pending {
            Pending::End => self.close(key),
            Pending::Bytes => {
                let conn = Conn {
                    stream: idle.stream,
                    peer: idle.peer,
                    buf: idle.read_ahead,
                    requests: idle.requests,
                };
                self.dispatch(conn, key);
            }
            Pending::Nothing => self.hold_keepalive(key, idle.stream, idle.peer, idle.requests),
        }
    }

    /// Lingering close in the listener (EV-3): stop sending, read and discard until EOF or 2 s.
    fn start_lingering(&mut self, key: usize, mut stream: Stream) {
        if stream.shutdown_write().is_err() {
            self.conns[key] = Held::Busy { readable: false };
            return self.close(key);
        }
        let stream = stream.into_socket();
        self.serial += 1;
        self.linger_q
            .push_back((Instant::now() + LINGER, key, self.serial));
        self.conns[key] = Held::Lingering(stream, self.serial);
        self.counts.closing += 1;
        self.continue_lingering(key);
    }

    fn continue_lingering(&mut self, key: usize) {
        let Some(Held::Lingering(stream, _)) = self.conns.get_mut(key) else {
            return;
        };
        let mut sink = [0u8; 4096];
        // Non-blocking: a read never sleeps, so it is never interrupted (no EINTR).
        loop {
            match stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.close(key);
    }

    /// Closes a connection the listener holds and forgets it.
    fn close(&mut self, key: usize) {
        match self.conns.try_remove(key) {
            Some(Held::KeepAlive(_)) => self.counts.keepalive -= 1,
            Some(Held::Writing(..)) => self.counts.writing -= 1,
            Some(Held::Lingering(..)) => self.counts.closing -= 1,
            Some(Held::Busy { .. }) => {}
            None => return,
        }
        self.counts.open = self.counts.open.saturating_sub(1);
    }

    /// EV-5: after waiting for a worker, close every idle keep-alive connection at once.
    fn close_idle_if_workers_were_busy(&mut self) {
        if !self.workers_were_busy || self.pool.idlers() == 0 {
            return;
        }
        self.workers_were_busy = false;
        let count = self.close_all_keepalive();
        if count > 0 {
            self.shared.events.emit(Event::KeepAliveClosedEarly {
                slot: self.shared.slot,
                count,
            });
        }
    }

    fn close_all_keepalive(&mut self) -> usize {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, h)| matches!(h, Held::KeepAlive(_)))
            .map(|(k, _)| k)
            .collect();
        for &key in &keys {
            self.close(key);
        }
        self.keepalive_q.clear();
        keys.len()
    }

    /// Accepts while a worker is idle and the child is under its connection limit (EV-4).
    fn accept_while_allowed(&mut self) {
        if self.accept_retry.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.accept_retry = None;
        while self.listen_pending && self.listen.is_some() {
            if connections_exhausted(self.shared, self.accepted) {
                self.begin_graceful();
                return;
            }
            let idlers = self.pool.idlers();
            if idlers == 0 {
                // Only a connection that is really waiting found every worker busy (EV-5).
                if self.listen.as_ref().is_some_and(connection_waiting) {
                    self.note_workers_busy();
                }
                self.set_accepting(false);
                return;
            }
            if !self.under_connection_limit(idlers) {
                self.at_limit = true;
                self.set_accepting(false);
                return;
            }
            self.at_limit = false;
            self.set_accepting(true);
            let Some(listen) = &self.listen else { return };
            match accept(self.shared, listen) {
                Accepted::Conn(conn) => {
                    self.accepted += 1;
                    self.counts.open += 1;
                    self.pool.push(Task {
                        conn,
                        token: None,
                        started: Instant::now(),
                    });
                }
                Accepted::Nothing => self.listen_pending = false,
                Accepted::Failed => {
                    self.accept_retry = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Accepted::ListenerClosed => {
                    self.begin_graceful();
                    return;
                }
            }
        }
    }

    fn set_accepting(&self, accepting: bool) {
        self.shared.process_slot().set_accepting(accepting);
    }

    /// Apache's connections_above_limit(), inverted: ThreadsPerChild + idle workers × the
    /// factor's integer part (Apache divides `worker_factor / WORKER_FACTOR_SCALE` in integers,
    /// so 1.5 counts as 1), with one idle worker fewer once the limit stopped accepting, so that
    /// the listener does not flip on and off at the limit.
    fn under_connection_limit(&self, idlers: usize) -> bool {
        let cfg = &self.shared.cfg;
        let active = self.counts.open - self.counts.closing;
        let per_idler = cfg.async_request_worker_factor.trunc() as u32;
        let idlers = idlers.saturating_sub(usize::from(self.at_limit)) as u32;
        active < cfg.threads_per_child + idlers * per_idler
    }

    /// A graceful stop: accept nothing more, close idle connections, finish the rest.
    fn begin_graceful(&mut self) {
        self.shared.begin_graceful();
        if let Some(listen) = self.listen.take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&listen.as_raw_fd()));
        }
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&self.shared.control_fd().as_raw_fd()));
        self.close_all_keepalive();
    }

    fn next_deadline(&self) -> Option<Instant> {
        [&self.keepalive_q, &self.write_q, &self.linger_q]
            .iter()
            .filter_map(|q| q.front().map(|(d, _, _)| *d))
            .chain(self.accept_retry)
            .min()
    }

    /// Closes what timed out.
    fn expire(&mut self, now: Instant) {
        self.expire_queue(Timer::KeepAlive, now);
        self.expire_queue(Timer::Write, now);
        self.expire_queue(Timer::Linger, now);
    }

    fn queue_mut(&mut self, timer: Timer) -> &mut TimeoutQueue {
        match timer {
            Timer::KeepAlive => &mut self.keepalive_q,
            Timer::Write => &mut self.write_q,
            Timer::Linger => &mut self.linger_q,
        }
    }

    /// Takes the entries of `timer`'s queue whose deadline has passed, and closes each
    /// connection still waiting on that entry (its serial matches: no newer wait re-armed it),
    /// logging the timeout.
    fn expire_queue(&mut self, timer: Timer, now: Instant) {
        while let Some(&(deadline, key, serial)) = self.queue_mut(timer).front() {
            if deadline > now {
                break;
            }
            self.queue_mut(timer).pop_front();
            let Some(held) = self.conns.get(key) else {
                continue;
            };
            if held.timer() != Some((timer, serial)) {
                continue;
            }
            if let (Some(kind), Some(peer)) = (timer.logged_as(), held.peer()) {
                self.log_timeout(kind, peer);
            }
            self.close(key);
        }
    }

    fn log_timeout(&self, kind: TimeoutKind, peer: SocketAddr) {
        self.shared.events.emit(Event::Timeout {
            kind,
            slot: self.shared.slot,
            thread: None,
            client: peer.to_string(),
        });
    }

    /// Publishes the connection counts to the scoreboard (mod_status Conns*).
    fn publish_counts(&self) {
        let slot = self.shared.process_slot();
        slot.connections()
            .store(self.counts.open, Ordering::Relaxed);
        slot.async_keepalive()
            .store(self.counts.keepalive, Ordering::Relaxed);
        slot.async_writing()
            .store(self.counts.writing, Ordering::Relaxed);
        slot.async_closing()
            .store(self.counts.closing, Ordering::Relaxed);
    }
}
