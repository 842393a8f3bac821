//! worker: `ThreadsPerChild` worker threads and one listener thread per child (WK-1). The
//! listener accepts only when a worker is idle and hands it the connection; the worker keeps it
//! for its whole life, every keep-alive wait included (WK-2).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::poll::PollTimeout;

use crate::conn::Conn;
use crate::context::{ChildShared, WorkerCtx};
use crate::mpm::{
    accept, connections_exhausted, run_threaded, wait_for_listener, Accepted, ListenWait,
    ACCEPT_BACKOFF,
};
use crate::scoreboard::WorkerState;
use crate::serve::serve_connection;

/// How often a listener waiting for an idle worker looks at the control pipe.
const CONTROL_CHECK: Duration = Duration::from_millis(100);

/// Connections handed from the listener to the workers.
pub struct Pool {
    state: Mutex<PoolState>,
    /// Signalled when a connection is queued or the pool stops.
    work: Condvar,
    /// Signalled when a worker becomes idle.
    idler: Condvar,
}

struct PoolState {
    queue: VecDeque<Conn>,
    /// Workers waiting for a connection and not yet promised one.
    idle: usize,
    stop: bool,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                idle: 0,
                stop: false,
            }),
            work: Condvar::new(),
            idler: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for an idle worker; true when one is there.
    fn wait_for_idler(&self, timeout: Duration) -> bool {
        let st = self.lock();
        if st.idle > 0 {
            return true;
        }
        let (st, _) = self
            .idler
            .wait_timeout(st, timeout)
            .unwrap_or_else(|e| e.into_inner());
        st.idle > 0
    }

    /// Hands a connection to an idle worker.
    fn dispatch(&self, conn: Conn) {
        let mut st = self.lock();
        st.idle = st.idle.saturating_sub(1);
        st.queue.push_back(conn);
        self.work.notify_one();
    }

    /// Blocks until a connection is handed over; None once the pool stops.
    fn next(&self) -> Option<Conn> {
        let mut st = self.lock();
        st.idle += 1;
        self.idler.notify_one();
        loop {
            if let Some(conn) = st.queue.pop_front() {
                return Some(conn);
            }
            if st.stop {
                st.idle = st.idle.saturating_sub(1);
                return None;
            }
            st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.work.notify_all();
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

/// Runs a worker child; returns its exit code.
pub fn run(shared: &ChildShared, listener: TcpListener) -> i32 {
    let pool = Pool::new();
    run_threaded(
        shared,
        |thread| worker_loop(shared, &pool, thread),
        |_| {},
        || {
            shared.announce_ready();
            listener_loop(shared, &pool, listener);
            pool.stop();
            0
        },
    )
}

/// Accepts a connection whenever a worker is idle, until a graceful stop.
fn listener_loop(shared: &ChildShared, pool: &Pool, listener: TcpListener) {
    let mut accepted = 0u64;
    loop {
        if connections_exhausted(shared, accepted) {
            shared.begin_graceful();
        }
        if shared.check_control() {
            return;
        }
        if !pool.wait_for_idler(CONTROL_CHECK) {
            shared.process_slot().set_accepting(false);
            continue;
        }
        shared.process_slot().set_accepting(true);
        match wait_for_listener(shared, &listener, PollTimeout::NONE) {
            ListenWait::Stop => shared.begin_graceful(),
            ListenWait::Idle => {}
            ListenWait::Readable => match accept(shared, &listener) {
                Accepted::Conn(conn) => {
                    accepted += 1;
                    shared
                        .process_slot()
                        .connections()
                        .fetch_add(1, Ordering::Relaxed);
                    pool.dispatch(conn);
                }
                Accepted::Nothing => {}
                Accepted::Failed => std::thread::sleep(ACCEPT_BACKOFF),
                Accepted::ListenerClosed => shared.begin_graceful(),
            },
        }
    }
}

/// One worker: takes a connection, serves it to its end, again.
fn worker_loop(shared: &ChildShared, pool: &Pool, thread: usize) {
    let mut w = WorkerCtx::new(shared, thread);
    loop {
        w.slot.set_state(if shared.is_graceful() {
            WorkerState::Graceful
        } else {
            WorkerState::Idle
        });
        let Some(conn) = pool.next() else { break };
        serve_connection(conn, &mut w);
        shared
            .process_slot()
            .connections()
            .fetch_sub(1, Ordering::Relaxed);
    }
    w.slot.set_state(WorkerState::Dead);
}
