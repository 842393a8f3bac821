//! The scoreboard as the harness reads it, whatever the target: a row per process slot with the
//! raw facts (pid, generation, accepting, stopping, each worker's mod_status letter, the event
//! listener's connection counters), and one function that counts it as mod_status defines its
//! figures. Each target fills rows from its own raw slots; neither the reference server's own
//! counting (what renders its `/server-status`) nor Apache's is used, so a counting bug in a
//! server cannot hide in its own oracle.

use std::collections::BTreeSet;

use super::{ChildWorkers, Summary};

/// One process slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessRow {
    pub pid: i32,
    pub generation: u32,
    /// The child takes new connections (not `not_accepting` in Apache's terms).
    pub accepting: bool,
    /// The child is finishing gracefully (Apache's `quiescing`): it takes no new connection.
    pub stopping: bool,
    /// Each worker slot's letter (`_`, `K`, `W`, …), ThreadLimit of them.
    pub workers: Vec<char>,
    pub async_keepalive: u32,
    pub async_writing: u32,
    pub async_closing: u32,
}

/// The live process slots of a scoreboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    pub processes: Vec<ProcessRow>,
}

impl Board {
    /// The pids of its rows.
    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(|p| p.pid).collect()
    }

    /// [`Board::summary`] of the rows whose pid is in `live`.
    pub fn summary_of(&self, threads_per_child: usize, live: &BTreeSet<i32>) -> Summary {
        Board {
            processes: self
                .processes
                .iter()
                .filter(|p| live.contains(&p.pid))
                .cloned()
                .collect(),
        }
        .summary(threads_per_child)
    }

    /// The figures cases speak of, counted as mod_status counts them, over the first
    /// `threads_per_child` workers of each live process (the slots beyond ThreadsPerChild
    /// count only when starting).
    pub fn summary(&self, threads_per_child: usize) -> Summary {
        let threads = threads_per_child.max(1);
        let mut s = Summary::default();
        for p in self.processes.iter().filter(|p| p.pid > 0) {
            s.processes += 1;
            if p.accepting && !p.stopping {
                s.accepting += 1;
            }
            s.async_keepalive += u64::from(p.async_keepalive);
            s.async_writing += u64::from(p.async_writing);
            s.async_closing += u64::from(p.async_closing);
            s.starting_workers += p.workers.iter().filter(|&&w| w == 'S').count() as u64;
            for &w in p.workers.iter().take(threads) {
                match w {
                    // Waiting for a connection; not in a child that takes none.
                    '_' if !p.stopping => s.idle += 1,
                    // Idle, no process, starting, idle cleanup: not busy.
                    '_' | '.' | 'S' | 'I' => {}
                    'K' => {
                        s.keepalive_workers += 1;
                        s.busy += 1;
                    }
                    'W' => {
                        s.writing_workers += 1;
                        s.busy += 1;
                    }
                    _ => s.busy += 1,
                }
            }
            s.children.push(ChildWorkers {
                pid: p.pid,
                workers: p.workers.iter().take(threads).collect(),
            });
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: i32, workers: &str) -> ProcessRow {
        ProcessRow {
            pid,
            accepting: true,
            workers: workers.chars().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_as_mod_status_does() {
        let board = Board {
            processes: vec![
                row(10, "_KWR.S"),
                ProcessRow {
                    stopping: true,
                    ..row(11, "_GK_")
                },
                row(0, "KKKK"),
                ProcessRow {
                    accepting: false,
                    async_keepalive: 3,
                    ..row(12, "I__S")
                },
            ],
        };
        let s = board.summary(4);
        assert_eq!((s.processes, s.accepting), (3, 1));
        // 10: K W R busy, _ idle; 11 (stopping): G K busy, its _ not idle; 12: I not busy.
        assert_eq!((s.busy, s.idle), (5, 3));
        assert_eq!((s.keepalive_workers, s.writing_workers), (2, 1));
        // S in every ThreadLimit slot: 10's sixth slot and 12's fourth.
        assert_eq!(s.starting_workers, 2);
        assert_eq!(s.async_keepalive, 3);
        assert_eq!(s.letters(), "_KWR|_GK_|I__S");
        assert_eq!(s.pids().collect::<Vec<_>>(), vec![10, 11, 12]);
    }
}
