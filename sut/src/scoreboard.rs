//! The shared-memory scoreboard (Apache's `scoreboard.h`): one record per child process and one
//! per worker thread, in a versioned `#[repr(C)]` layout that the master creates before it forks
//! and every process updates with atomics.
//!
//! With a path the scoreboard is backed by a file, so another process (the harness) can map it
//! read-only with [`ScoreboardView::open`] and watch worker states without taking a worker — also
//! while the pool is exhausted. All `unsafe` of the layout (mmap, the casts into the mapping) is
//! in this module.

use std::fs::OpenOptions;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::config::Mpm;

/// `RHSB` + layout version; a reader refuses any other.
pub const MAGIC: u64 = 0x5248_5342_0000_0000 | LAYOUT_VERSION as u64;
/// Bumped whenever a record below changes.
pub const LAYOUT_VERSION: u32 = 1;

const REQUEST_LEN: usize = 128;
const CLIENT_LEN: usize = 48;

/// What a worker is doing (mod_status letters, SB-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum WorkerState {
    /// `.` no process in the slot (or a thread beyond ThreadsPerChild).
    Dead = 0,
    /// `_` waiting for a connection.
    Idle,
    /// `S` starting up.
    Starting,
    /// `R` reading a request.
    Reading,
    /// `W` sending a reply.
    Writing,
    /// `K` waiting in keep-alive for the next request.
    KeepAlive,
    /// `D` DNS lookup.
    Dns,
    /// `C` closing the connection.
    Closing,
    /// `L` logging.
    Logging,
    /// `G` gracefully finishing.
    Graceful,
    /// `I` idle cleanup of a worker.
    IdleCleanup,
}

impl WorkerState {
    const ALL: [WorkerState; 11] = [
        WorkerState::Dead,
        WorkerState::Idle,
        WorkerState::Starting,
        WorkerState::Reading,
        WorkerState::Writing,
        WorkerState::KeepAlive,
        WorkerState::Dns,
        WorkerState::Closing,
        WorkerState::Logging,
        WorkerState::Graceful,
        WorkerState::IdleCleanup,
    ];

    /// The mod_status scoreboard letter.
    pub fn as_char(self) -> char {
        match self {
            WorkerState::Dead => '.',
            WorkerState::Idle => '_',
            WorkerState::Starting => 'S',
            WorkerState::Reading => 'R',
            WorkerState::Writing => 'W',
            WorkerState::KeepAlive => 'K',
            WorkerState::Dns => 'D',
            WorkerState::Closing => 'C',
            WorkerState::Logging => 'L',
            WorkerState::Graceful => 'G',
            WorkerState::IdleCleanup => 'I',
        }
    }

    fn from_raw(raw: u32) -> WorkerState {
        Self::ALL
            .get(raw as usize)
            .copied()
            .unwrap_or(WorkerState::Dead)
    }

    /// Busy as mod_status counts it: neither idle, dead, starting nor in idle cleanup.
    pub fn is_busy(self) -> bool {
        !matches!(
            self,
            WorkerState::Idle
                | WorkerState::Dead
                | WorkerState::Starting
                | WorkerState::IdleCleanup
        )
    }
}

/// The life of a process slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ProcessStatus {
    /// No child.
    Empty = 0,
    /// Forked, not yet serving.
    Starting,
    /// Serving.
    Ready,
    /// Asked to stop gracefully; finishing what it holds.
    Graceful,
}

impl ProcessStatus {
    fn from_raw(raw: u32) -> ProcessStatus {
        match raw {
            1 => ProcessStatus::Starting,
            2 => ProcessStatus::Ready,
            3 => ProcessStatus::Graceful,
            _ => ProcessStatus::Empty,
        }
    }
}

/// The first record of the mapping.
#[repr(C)]
pub struct Header {
    magic: AtomicU64,
    layout_version: AtomicU32,
    mpm: AtomicU32,
    server_limit: AtomicU32,
    thread_limit: AtomicU32,
    threads_per_child: AtomicU32,
    master_pid: AtomicI32,
    generation: AtomicU32,
    _reserved: AtomicU32,
    started_ms: AtomicU64,
}

impl Header {
    pub fn set_master_pid(&self, pid: i32) {
        self.master_pid.store(pid, Ordering::Release);
    }
    pub fn master_pid(&self) -> i32 {
        self.master_pid.load(Ordering::Acquire)
    }
    pub fn set_generation(&self, generation: u32) {
        self.generation.store(generation, Ordering::Release);
    }
    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One child process's record.
#[repr(C)]
pub struct ProcessSlot {
    pid: AtomicI32,
    generation: AtomicU32,
    status: AtomicU32,
    accepting: AtomicU32,
    connections: AtomicU32,
    async_keepalive: AtomicU32,
    async_writing: AtomicU32,
    async_closing: AtomicU32,
}

impl ProcessSlot {
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::Release);
    }
    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }
    pub fn set_generation(&self, generation: u32) {
        self.generation.store(generation, Ordering::Release);
    }
    pub fn status(&self) -> ProcessStatus {
        ProcessStatus::from_raw(self.status.load(Ordering::Acquire))
    }
    pub fn set_status(&self, status: ProcessStatus) {
        self.status.store(status as u32, Ordering::Release);
    }
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire) != 0
    }
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting as u32, Ordering::Release);
    }
    /// Open connections of this child (mod_status ConnsTotal).
    pub fn connections(&self) -> &AtomicU32 {
        &self.connections
    }
    /// Connections the event listener holds in keep-alive.
    pub fn async_keepalive(&self) -> &AtomicU32 {
        &self.async_keepalive
    }
    /// Connections whose response the event listener is finishing.
    pub fn async_writing(&self) -> &AtomicU32 {
        &self.async_writing
    }
    /// Connections the event listener is closing (lingering close).
    pub fn async_closing(&self) -> &AtomicU32 {
        &self.async_closing
    }
    /// Empties the slot (no process).
    pub fn reset(&self) {
        self.pid.store(0, Ordering::Release);
        self.status
            .store(ProcessStatus::Empty as u32, Ordering::Release);
        self.accepting.store(0, Ordering::Release);
        for counter in [
            &self.connections,
            &self.async_keepalive,
            &self.async_writing,
            &self.async_closing,
        ] {
            counter.store(0, Ordering::Release);
        }
    }
}

/// One worker thread's record. Only its own thread (and the master, while the slot has no
/// process) writes it.
#[repr(C)]
pub struct WorkerSlot {
    state: AtomicU32,
    tid: AtomicI32,
    access_count: AtomicU64,
    bytes_served: AtomicU64,
    last_used_ms: AtomicU64,
    /// Seqlock over `request` and `client`: odd while they are being written.
    text_seq: AtomicU32,
    _pad: AtomicU32,
    request: [AtomicU8; REQUEST_LEN],
    client: [AtomicU8; CLIENT_LEN],
}

impl WorkerSlot {
    pub fn state(&self) -> WorkerState {
        WorkerState::from_raw(self.state.load(Ordering::Acquire))
    }
    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u32, Ordering::Release);
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
    }
    pub fn set_tid(&self, tid: i32) {
        self.tid.store(tid, Ordering::Relaxed);
    }
    /// Records the request line and client of the request being served.
    pub fn begin_request(&self, request_line: &str, client: &str) {
        // Odd while writing. A writer killed here (SIGTERM, a crash) leaves it odd: the next
        // writer of the slot starts from whatever it finds.
        let odd = self.text_seq.fetch_or(1, Ordering::AcqRel) | 1;
        store_text(&self.request, request_line);
        store_text(&self.client, client);
        self.text_seq.store(odd.wrapping_add(1), Ordering::Release);
    }
    /// Counts a served request and its bytes.
    pub fn end_request(&self, bytes: u64) {
        self.access_count.fetch_add(1, Ordering::Relaxed);
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
    }
    /// The request line and client, read consistently unless the writer keeps the seqlock:
    /// after a bounded number of tries (its writer may have died mid-write and never release
    /// it) what is there is returned, since the texts are only shown, never judged.
    fn texts(&self) -> (String, String) {
        const TRIES: u32 = 1000;
        for _ in 0..TRIES {
            let before = self.text_seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let request = load_text(&self.request);
            let client = load_text(&self.client);
            if self.text_seq.load(Ordering::Acquire) == before {
                return (request, client);
            }
        }
        (load_text(&self.request), load_text(&self.client))
    }
}

fn store_text(field: &[AtomicU8], text: &str) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(field.len() - 1);
    for (cell, b) in field
        .iter()
        .zip(bytes[..n].iter().chain(std::iter::once(&0)))
    {
        cell.store(*b, Ordering::Relaxed);
    }
}

fn load_text(field: &[AtomicU8]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sizes and offsets of the records in a mapping.
#[derive(Clone, Copy)]
struct Layout {
    server_limit: usize,
    thread_limit: usize,
}

impl Layout {
    fn processes_offset(self) -> usize {
        size_of::<Header>().next_multiple_of(64)
    }
    fn workers_offset(self) -> usize {
        (self.processes_offset() + self.server_limit * size_of::<ProcessSlot>())
            .next_multiple_of(64)
    }
    fn len(self) -> usize {
        self.workers_offset() + self.server_limit * self.thread_limit * size_of::<WorkerSlot>()
    }
}

/// A mapped scoreboard (read-write in the server, read-only in observers).
struct Mapping {
    base: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: the mapping is only accessed through atomics, so sharing it between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above: every field of every record is an atomic.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least `layout.len()` bytes, page-aligned, and a Header of
        // atomics is valid for any bit pattern (zeroed or written by the server).
        unsafe { &*(self.base.as_ptr() as *const Header) }
    }

    fn process(&self, slot: usize) -> &ProcessSlot {
        assert!(
            slot < self.layout.server_limit,
            "process slot {slot} out of range"
        );
        let offset = self.layout.processes_offset() + slot * size_of::<ProcessSlot>();
        // SAFETY: offset is in bounds (checked slot), 64-byte aligned base plus a multiple of the
        // record size, and the record is made of atomics, valid for any bit pattern.
        unsafe { &*(self.base.as_ptr().add(offset) as *const ProcessSlot) }
    }

    fn worker(&self, slot: usize, thread: usize) -> &WorkerSlot {
        assert!(
            slot < self.layout.server_limit,
            "process slot {slot} out of range"
        );
        assert!(
            thread < self.layout.thread_limit,
            "thread {thread} out of range"
        );
        let index = slot * self.layout.thread_limit + thread;
        let offset = self.layout.workers_offset() + index * size_of::<WorkerSlot>();
        // SAFETY: as for `process`: in bounds, aligned, atomics only.
        unsafe { &*(self.base.as_ptr().add(offset) as *const WorkerSlot) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; no reference into the mapping
        // outlives `self` (they all borrow it).
        let _ = unsafe { munmap(self.base.cast(), self.len) };
    }
}

/// The server's scoreboard: created by the master before it forks, shared with every child.
pub struct Scoreboard {
    map: Mapping,
}

impl Scoreboard {
    /// Creates a zeroed scoreboard for `server_limit` processes of `thread_limit` workers,
    /// backed by `path` when given (truncated and sized), else anonymous shared memory.
    pub fn create(
        mpm: Mpm,
        server_limit: u32,
        thread_limit: u32,
        threads_per_child: u32,
        path: Option<&Path>,
    ) -> io::Result<Scoreboard> {
        let layout = Layout {
            server_limit: server_limit as usize,
            thread_limit: thread_limit.max(1) as usize,
        };
        let len = NonZeroUsize::new(layout.len()).expect("scoreboard has a header");
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        let base = match path {
            Some(path) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)?;
                file.set_len(len.get() as u64)?;
                // SAFETY: a fresh shared mapping of a file we just sized; nothing else aliases it
                // in this process.
                unsafe { mmap(None, len, prot, MapFlags::MAP_SHARED, file.as_fd(), 0) }?
            }
            // SAFETY: a fresh anonymous shared mapping, zero-filled by the kernel.
            None => unsafe { mmap_anonymous(None, len, prot, MapFlags::MAP_SHARED) }?,
        };
        let map = Mapping {
            base: base.cast(),
            len: len.get(),
            layout,
        };
        let header = map.header();
        header.mpm.store(mpm_code(mpm), Ordering::Relaxed);
        header.server_limit.store(server_limit, Ordering::Relaxed);
        header
            .thread_limit
            .store(layout.thread_limit as u32, Ordering::Relaxed);
        header
            .threads_per_child
            .store(threads_per_child, Ordering::Relaxed);
        header.started_ms.store(now_ms(), Ordering::Relaxed);
        header
            .layout_version
            .store(LAYOUT_VERSION, Ordering::Relaxed);
        header.magic.store(MAGIC, Ordering::Release);
        Ok(Scoreboard { map })
    }

    pub fn header(&self) -> &Header {
        self.map.header()
    }

    pub fn process(&self, slot: usize) -> &ProcessSlot {
        self.map.process(slot)
    }

    pub fn worker(&self, slot: usize, thread: usize) -> &WorkerSlot {
        self.map.worker(slot, thread)
    }

    pub fn thread_limit(&self) -> usize {
        self.map.layout.thread_limit
    }

    /// A consistent-enough copy of every record (each field read atomically).
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.map)
    }
}

/// A read-only view of a scoreboard file written by a running server.
pub struct ScoreboardView {
    map: Mapping,
}

/// Why a scoreboard file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot map the scoreboard: {0}")]
    Io(#[from] io::Error),
    #[error("not a refhttpd scoreboard, or not yet initialised (magic {0:#x})")]
    Magic(u64),
    #[error("scoreboard file is {actual} bytes, its header says {expected}")]
    Size { actual: usize, expected: usize },
}

impl ScoreboardView {
    /// Maps the file read-only and checks its header.
    pub fn open(path: &Path) -> Result<ScoreboardView, ViewError> {
        let file = std::fs::File::open(path)?;
        let actual = file.metadata()?.len() as usize;
        let header_len = size_of::<Header>();
        let Some(len) = NonZeroUsize::new(actual).filter(|n| n.get() >= header_len) else {
            return Err(ViewError::Magic(0));
        };
        // SAFETY: a read-only shared mapping of the whole file; we only ever load atomics from it.
        let base = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                file.as_fd(),
                0,
            )
        }
        .map_err(io::Error::from)?;
        let mut map = Mapping {
            base: base.cast(),
            len: len.get(),
            layout: Layout {
                server_limit: 0,
                thread_limit: 0,
            },
        };
        let header = map.header();
        let magic = header.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(ViewError::Magic(magic));
        }
        let layout = Layout {
            server_limit: header.server_limit.load(Ordering::Relaxed) as usize,
            thread_limit: header.thread_limit.load(Ordering::Relaxed) as usize,
        };
        if layout.len() > actual {
            return Err(ViewError::Size {
                actual,
                expected: layout.len(),
            });
        }
        map.layout = layout;
        Ok(ScoreboardView { map })
    }

    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.map)
    }
}

fn mpm_code(mpm: Mpm) -> u32 {
    match mpm {
        Mpm::Prefork => 1,
        Mpm::Worker => 2,
        Mpm::Event => 3,
    }
}

fn mpm_from_code(code: u32) -> Option<Mpm> {
    match code {
        1 => Some(Mpm::Prefork),
        2 => Some(Mpm::Worker),
        3 => Some(Mpm::Event),
        _ => None,
    }
}

/// An owned copy of the scoreboard at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub mpm: Option<Mpm>,
    pub master_pid: i32,
    pub generation: u32,
    pub server_limit: usize,
    pub thread_limit: usize,
    pub threads_per_child: usize,
    pub started_ms: u64,
    pub processes: Vec<ProcessSnapshot>,
}

/// One process slot in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSnapshot {
    pub slot: usize,
    pub pid: i32,
    pub generation: u32,
    pub status: ProcessStatus,
    pub accepting: bool,
    pub connections: u32,
    pub async_keepalive: u32,
    pub async_writing: u32,
    pub async_closing: u32,
    pub workers: Vec<WorkerSnapshot>,
}

/// One worker slot in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSnapshot {
    pub thread: usize,
    pub state: WorkerState,
    pub tid: i32,
    pub requests: u64,
    pub bytes: u64,
    pub last_used_ms: u64,
    pub request: String,
    pub client: String,
}

fn snapshot(map: &Mapping) -> Snapshot {
    let header = map.header();
    let processes = (0..map.layout.server_limit)
        .map(|slot| {
            let p = map.process(slot);
            let workers = (0..map.layout.thread_limit)
                .map(|thread| {
                    let w = map.worker(slot, thread);
                    let (request, client) = w.texts();
                    WorkerSnapshot {
                        thread,
                        state: w.state(),
                        tid: w.tid.load(Ordering::Relaxed),
                        requests: w.access_count.load(Ordering::Relaxed),
                        bytes: w.bytes_served.load(Ordering::Relaxed),
                        last_used_ms: w.last_used_ms.load(Ordering::Relaxed),
                        request,
                        client,
                    }
                })
                .collect();
            ProcessSnapshot {
                slot,
                pid: p.pid(),
                generation: p.generation(),
                status: p.status(),
                accepting: p.accepting(),
                connections: p.connections.load(Ordering::Relaxed),
                async_keepalive: p.async_keepalive.load(Ordering::Relaxed),
                async_writing: p.async_writing.load(Ordering::Relaxed),
                async_closing: p.async_closing.load(Ordering::Relaxed),
                workers,
            }
        })
        .collect();
    Snapshot {
        mpm: mpm_from_code(header.mpm.load(Ordering::Relaxed)),
        master_pid: header.master_pid(),
        generation: header.generation(),
        server_limit: map.layout.server_limit,
        thread_limit: map.layout.thread_limit,
        threads_per_child: header.threads_per_child.load(Ordering::Relaxed) as usize,
        started_ms: header.started_ms.load(Ordering::Relaxed),
        processes,
    }
}

impl Snapshot {
    /// Every worker of every slot, with its process.
    pub fn workers(&self) -> impl Iterator<Item = (&ProcessSnapshot, &WorkerSnapshot)> {
        self.processes
            .iter()
            .flat_map(|p| p.workers.iter().map(move |w| (p, w)))
    }

    /// Workers in `state`.
    pub fn count(&self, state: WorkerState) -> usize {
        self.workers().filter(|(_, w)| w.state == state).count()
    }

    /// Workers waiting for a connection (mod_status IdleWorkers): not those of a process that
    /// stops gracefully (Apache's `quiescing`), which takes no new connection.
    pub fn idle_workers(&self) -> usize {
        self.live_processes()
            .filter(|p| p.status != ProcessStatus::Graceful)
            .flat_map(|p| &p.workers)
            .filter(|w| w.state == WorkerState::Idle)
            .count()
    }

    /// Workers busy as mod_status counts them (BusyWorkers).
    pub fn busy_workers(&self) -> usize {
        self.workers().filter(|(_, w)| w.state.is_busy()).count()
    }

    /// Slots with a live process.
    pub fn live_processes(&self) -> impl Iterator<Item = &ProcessSnapshot> {
        self.processes.iter().filter(|p| p.pid > 0)
    }

    /// Processes finishing gracefully (mod_status Stopping).
    pub fn stopping(&self) -> usize {
        self.live_processes()
            .filter(|p| p.status == ProcessStatus::Graceful)
            .count()
    }

    /// Requests served by live workers (mod_status Total Accesses).
    pub fn total_accesses(&self) -> u64 {
        self.workers().map(|(_, w)| w.requests).sum()
    }

    /// Kilobytes served (mod_status Total kBytes).
    pub fn total_kbytes(&self) -> u64 {
        self.workers().map(|(_, w)| w.bytes).sum::<u64>() / 1024
    }

    pub fn conns_total(&self) -> u32 {
        self.live_processes().map(|p| p.connections).sum()
    }
    pub fn conns_async_keepalive(&self) -> u32 {
        self.live_processes().map(|p| p.async_keepalive).sum()
    }
    pub fn conns_async_writing(&self) -> u32 {
        self.live_processes().map(|p| p.async_writing).sum()
    }
    pub fn conns_async_closing(&self) -> u32 {
        self.live_processes().map(|p| p.async_closing).sum()
    }

    /// The mod_status scoreboard line: one letter per worker slot, ServerLimit × ThreadLimit.
    pub fn scoreboard_line(&self) -> String {
        self.workers().map(|(_, w)| w.state.as_char()).collect()
    }

    /// The process that holds `pid`, if any.
    pub fn process_by_pid(&self, pid: i32) -> Option<&ProcessSnapshot> {
        self.live_processes().find(|p| p.pid == pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_backed_scoreboard_is_visible_to_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sb");
        let sb = Scoreboard::create(Mpm::Worker, 2, 4, 3, Some(&path)).unwrap();
        sb.header().set_master_pid(42);
        sb.process(1).set_pid(1234);
        sb.process(1).set_status(ProcessStatus::Ready);
        sb.worker(1, 0).set_state(WorkerState::Idle);
        sb.worker(1, 1).set_state(WorkerState::KeepAlive);
        sb.worker(1, 2).begin_request("GET / HTTP/1.1", "127.0.0.1");
        sb.worker(1, 2).end_request(4096);
        let view = ScoreboardView::open(&path).unwrap();
        let snap = view.snapshot();
        assert_eq!(snap.mpm, Some(Mpm::Worker));
        assert_eq!(snap.master_pid, 42);
        assert_eq!(snap.scoreboard_line(), "...._K..");
        assert_eq!(snap.idle_workers(), 1);
        assert_eq!(snap.busy_workers(), 1);
        assert_eq!(snap.total_kbytes(), 4);
        assert_eq!(snap.processes[1].workers[2].request, "GET / HTTP/1.1");
        assert_eq!(snap.process_by_pid(1234).unwrap().slot, 1);
        assert_eq!(snap, sb.snapshot());
    }

    #[test]
    fn reader_refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        assert!(matches!(
            ScoreboardView::open(&path),
            Err(ViewError::Magic(_))
        ));
    }

    #[test]
    fn a_writer_killed_mid_write_does_not_hang_readers() {
        let sb = Scoreboard::create(Mpm::Prefork, 1, 1, 1, None).unwrap();
        let slot = sb.worker(0, 0);
        slot.begin_request("GET /old HTTP/1.1", "::1");
        // What a child killed inside begin_request leaves: the seqlock held.
        slot.text_seq.fetch_or(1, Ordering::AcqRel);
        let snap = sb.snapshot();
        assert_eq!(snap.processes[0].workers[0].request, "GET /old HTTP/1.1");
        // The slot's next worker writes and releases it again.
        slot.begin_request("GET /new HTTP/1.1", "::1");
        assert_eq!(slot.text_seq.load(Ordering::Acquire) % 2, 0);
        assert_eq!(
            sb.snapshot().processes[0].workers[0].request,
            "GET /new HTTP/1.1"
        );
    }

    #[test]
    fn long_request_lines_are_truncated() {
        let sb = Scoreboard::create(Mpm::Prefork, 1, 1, 1, None).unwrap();
        let line = "x".repeat(1000);
        sb.worker(0, 0).begin_request(&line, "::1");
        let snap = sb.snapshot();
        assert_eq!(snap.processes[0].workers[0].request.len(), REQUEST_LEN - 1);
        assert_eq!(snap.processes[0].workers[0].client, "::1");
    }
}
