//! Apache's scoreboard as the harness reads it: [`ApacheBoard`] finds the POSIX shared-memory
//! object that the generated `ScoreBoardFile` names, checks it against Apache 2.4's record
//! layout, and reads its process slots and worker states into the harness's [`Board`] rows.

use std::path::Path;

use crate::observe::board::{Board, ProcessRow};

/// Apache's own scoreboard, read from the shared memory that `ScoreBoardFile` names (a POSIX
/// shm object under /dev/shm, found through the master's memory map). Reading it takes no
/// worker, so it also works when every worker is busy — unlike `/server-status`.
///
/// Layout of Apache httpd 2.4 on LP64 Linux (include/scoreboard.h), after APR's 8-byte size
/// header: `global_score` (56 bytes: server_limit, thread_limit, …), `process_score` × server
/// limit (40 bytes: pid, generation, quiescing, not_accepting, connections, write_completion,
/// lingering_close, keep_alive, …), then `worker_score` × thread limit per process (336 bytes:
/// tid, thread_num, pid, generation, status, …). The header's size must match the file's, and
/// the process and worker records must add up to it, or the file is not used.
pub struct ApacheBoard {
    file: std::fs::File,
    pub server_limit: usize,
    pub thread_limit: usize,
}

const APR_HEADER: u64 = 8;
const GLOBAL_SCORE: u64 = 56;
const PROCESS_SCORE: u64 = 40;
const WORKER_SCORE: u64 = 336;

/// Worker status codes (`SERVER_DEAD` … `SERVER_IDLE_KILL`) as mod_status's letters.
const WORKER_LETTERS: [char; 11] = ['.', 'S', '_', 'R', 'W', 'K', 'L', 'D', 'C', 'G', 'I'];

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

impl ApacheBoard {
    /// Finds the scoreboard among the master's shared mappings.
    pub fn find(master: i32) -> Option<ApacheBoard> {
        let maps = std::fs::read_to_string(format!("/proc/{master}/maps")).ok()?;
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.starts_with("/dev/shm/"))
            .find_map(|p| ApacheBoard::open(Path::new(p)))
    }

    pub fn open(path: &Path) -> Option<ApacheBoard> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut head = [0u8; 16];
        file.read_exact_at(&mut head, 0).ok()?;
        let size = u64::from_le_bytes(head[..8].try_into().ok()?);
        let server_limit = u64::from(u32_at(&head, 8));
        let thread_limit = u64::from(u32_at(&head, 12));
        let needed = APR_HEADER
            + GLOBAL_SCORE
            + server_limit * PROCESS_SCORE
            + server_limit * thread_limit * WORKER_SCORE;
        let sane = size == len
            && (1..=200_000).contains(&server_limit)
            && (1..=100_000).contains(&thread_limit)
            && needed <= len;
        sane.then_some(ApacheBoard {
            file,
            server_limit: server_limit as usize,
            thread_limit: thread_limit as usize,
        })
    }

    /// Every process slot with a pid, as read from the shared memory: every ThreadLimit worker
    /// slot's letter.
    pub(super) fn read(&self) -> Option<Board> {
        use std::os::unix::fs::FileExt;
        let procs_at = APR_HEADER + GLOBAL_SCORE;
        let mut procs = vec![0u8; self.server_limit * PROCESS_SCORE as usize];
        self.file.read_exact_at(&mut procs, procs_at).ok()?;
        let workers_at = procs_at + procs.len() as u64;
        let mut board = Board::default();
        let mut block = vec![0u8; self.thread_limit * WORKER_SCORE as usize];
        for slot in 0..self.server_limit {
            // pid (4), generation (4), quiescing (1), not_accepting (1), connections (4, at
            // 12), write_completion (16), lingering_close (20), keep_alive (24).
            let p = &procs[slot * PROCESS_SCORE as usize..][..PROCESS_SCORE as usize];
            let pid = u32_at(p, 0) as i32;
            if pid <= 0 {
                continue;
            }
            let at = workers_at + (slot * self.thread_limit) as u64 * WORKER_SCORE;
            self.file.read_exact_at(&mut block, at).ok()?;
            board.processes.push(ProcessRow {
                pid,
                generation: u32_at(p, 4),
                accepting: p[9] == 0,
                stopping: p[8] != 0,
                // tid (8), thread_num (4), pid (4), generation (4), status (1).
                workers: (0..self.thread_limit)
                    .map(|t| block[t * WORKER_SCORE as usize + 20] as usize)
                    .map(|status| WORKER_LETTERS.get(status).copied().unwrap_or('?'))
                    .collect(),
                async_writing: u32_at(p, 16),
                async_closing: u32_at(p, 20),
                async_keepalive: u32_at(p, 24),
            });
        }
        Some(board)
    }
}
