//! prefork: a single-threaded child that serves one connection at a time, keep-alive waits
//! included (PF-1). Idle, it waits on the shared listening socket and on the master's control
//! pipe; a graceful stop ends it as soon as its current connection is done.

use std::net::TcpListener;
use std::sync::atomic::Ordering;

use nix::poll::PollTimeout;

use crate::context::{ChildShared, WorkerCtx};
use crate::mpm::{
    accept, connections_exhausted, wait_for_listener, Accepted, ListenWait, ACCEPT_BACKOFF,
};
use crate::scoreboard::WorkerState;
use crate::serve::serve_connection;

/// Runs a prefork child; returns its exit code.
pub fn run(shared: &ChildShared, listener: TcpListener) -> i32 {
    let mut w = WorkerCtx::new(shared, 0);
    w.slot.set_state(WorkerState::Idle);
    shared.announce_ready();
    let mut accepted = 0u64;
    loop {
        w.slot.set_state(WorkerState::Idle);
        if connections_exhausted(shared, accepted) {
            shared.begin_graceful();
        }
        if shared.is_graceful() {
            break;
        }
        match wait_for_listener(shared, &listener, PollTimeout::NONE) {
            ListenWait::Stop => shared.begin_graceful(),
            ListenWait::Idle => {}
            ListenWait::Readable => match accept(shared, &listener) {
                Accepted::Conn(conn) => {
                    accepted += 1;
                    let connections = shared.process_slot().connections();
                    connections.fetch_add(1, Ordering::Relaxed);
                    serve_connection(conn, &mut w);
                    connections.fetch_sub(1, Ordering::Relaxed);
                }
                Accepted::Nothing => {}
                Accepted::Failed => std::thread::sleep(ACCEPT_BACKOFF),
                Accepted::ListenerClosed => shared.begin_graceful(),
            },
        }
    }
    drop(listener);
    w.slot.set_state(WorkerState::Dead);
    0
}
