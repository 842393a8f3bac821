//! Performing faults (only with `--faults`; the vocabulary is `mpm_faults`'s): a request fault in
//! the handler that serves `/fault/<fault>` ([`in_request`]), and the sites no request reaches,
//! `FaultChildStart`, `FaultFork` and `FaultAccept` ([`Faults`], [`at_child_start`]).
//!
//! A configured site fault is an [`Action`] that carries its own firing count (as fail-rs's
//! actions do): `FaultFork fail:eagain 2` fails the first two forks and no other.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mpm_faults::{Fault, FaultSite};

use crate::config::{FaultSetting, FaultSettings};
use crate::os;

/// A fault configured at a site, how many more times the site is passed before it fires, and
/// how many more times it fires (`None`: every time).
#[derive(Debug)]
pub struct Action {
    setting: FaultSetting,
    to_skip: AtomicU32,
    remaining: Option<AtomicU32>,
}

impl Action {
    pub fn new(setting: &FaultSetting) -> Action {
        Action {
            setting: setting.clone(),
            to_skip: AtomicU32::new(setting.after),
            remaining: setting.count.map(AtomicU32::new),
        }
    }

    /// The fault, when it fires this time. The one place a firing is counted.
    fn fire(&self) -> Option<&Fault> {
        let skipped = self
            .to_skip
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if skipped.is_ok() {
            return None;
        }
        if let Some(remaining) = &self.remaining {
            remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .ok()?;
        }
        Some(&self.setting.fault)
    }
}

/// The faults of one process: whether it performs any, and the actions at the sites outside
/// requests. The master fires `FaultFork` and `FaultChildStart`; each child has its own, so its
/// `FaultAccept` count starts afresh.
#[derive(Debug)]
pub struct Faults {
    enabled: bool,
    child_start: Option<Action>,
    fork: Option<Action>,
    accept: Option<Action>,
}

impl Faults {
    pub fn new(settings: &FaultSettings, enabled: bool) -> Faults {
        let action = |setting: &Option<FaultSetting>| setting.as_ref().map(Action::new);
        Faults {
            enabled,
            child_start: action(&settings.child_start),
            fork: action(&settings.fork),
            accept: action(&settings.accept),
        }
    }

    /// After a configuration reload: a site whose setting is unchanged keeps its action and what
    /// it has left to fire; a changed one starts afresh.
    pub fn reconfigure(&mut self, settings: &FaultSettings) {
        fn update(action: &mut Option<Action>, setting: &Option<FaultSetting>) {
            if action.as_ref().map(|a| &a.setting) != setting.as_ref() {
                *action = setting.as_ref().map(Action::new);
            }
        }
        update(&mut self.child_start, &settings.child_start);
        update(&mut self.fork, &settings.fork);
        update(&mut self.accept, &settings.accept);
    }

    /// Whether this server performs faults at all (`--faults`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn fire<'a>(&self, action: &'a Option<Action>) -> Option<&'a Fault> {
        if !self.enabled {
            return None;
        }
        action.as_ref()?.fire()
    }

    /// The `FaultChildStart` site: the fault the child about to be forked performs before it
    /// serves ([`at_child_start`]).
    pub fn child_start(&self) -> Option<Fault> {
        self.fire(&self.child_start)
            .filter(|f| f.allowed_at(FaultSite::ChildStart))
            .cloned()
    }

    /// The `FaultFork` site: the error the master's `fork()` fails with this time.
    pub fn fork(&self) -> Option<io::Error> {
        self.fire(&self.fork).and_then(failure)
    }

    /// The `FaultAccept` site: the error this child's `accept()` fails with this time.
    pub fn accept(&self) -> Option<io::Error> {
        self.fire(&self.accept).and_then(failure)
    }
}

/// What `fail:ERRNO` makes the operation at a site fail with.
fn failure(fault: &Fault) -> Option<io::Error> {
    match fault {
        Fault::Fail(errno) => Some(io::Error::from_raw_os_error(errno.raw())),
        _ => None,
    }
}

/// What a request fault leaves for the client.
pub enum Answer {
    /// A `text/plain` response with this status.
    Text(u16, String),
    /// `shared:DUR`'s answer: 200, and what the slot held when read back.
    Shared(SharedState),
    /// The connection is closed without a response.
    Close,
}

/// Performs `fault` in the thread handling the request. Crashes and exits end the process here;
/// `panic` unwinds to the worker boundary (500); `hang` never returns.
pub fn in_request(fault: &Fault) -> Answer {
    match fault {
        Fault::Crash(signal) => os::raise_fatal(signal.signal_number()),
        Fault::Exit(code) => os::exit_now(i32::from(*code)),
        Fault::Panic => panic!("fault: panic in the request handler"),
        Fault::Sleep(d) => {
            std::thread::sleep(*d);
            Answer::Text(200, format!("slept {fault}\n"))
        }
        Fault::Busy(d) => {
            spin_for(*d);
            Answer::Text(200, format!("was busy {fault}\n"))
        }
        Fault::Hang => hang(),
        Fault::Close => Answer::Close,
        Fault::Leak(size) => {
            leak(*size);
            Answer::Text(200, format!("leaked {size} bytes\n"))
        }
        Fault::Shared(d) => Answer::Shared(shared_state(*d)),
        Fault::Fail(_) => Answer::Text(
            400,
            format!("`{fault}` is a fault for sites outside requests\n"),
        ),
    }
}

/// Performs a `FaultChildStart` fault in a freshly forked child, before it serves.
pub fn at_child_start(fault: &Fault) {
    match fault {
        Fault::Crash(signal) => os::raise_fatal(signal.signal_number()),
        Fault::Exit(code) => os::exit_now(i32::from(*code)),
        Fault::Sleep(d) => std::thread::sleep(*d),
        Fault::Busy(d) => spin_for(*d),
        Fault::Hang => hang(),
        Fault::Leak(size) => leak(*size),
        Fault::Panic => panic!("fault: panic while the child starts"),
        Fault::Close | Fault::Fail(_) | Fault::Shared(_) => {}
    }
}

/// What a `shared:` request found when it read the slot back: its own token (intact), or the
/// token of a request that wrote there meanwhile (clobbered).
pub struct SharedState {
    pub mine: u64,
    pub found: u64,
}

impl SharedState {
    pub fn intact(&self) -> bool {
        self.mine == self.found
    }
}

/// The one slot of state this process keeps for `shared:` requests, as a module that is not
/// thread-safe keeps a global: every thread of the process writes the same slot and nothing
/// serialises them. Each access is one atomic load or store (no undefined behaviour), none held
/// across the wait — so the race between requests is real, the memory safety intact.
static SHARED_SLOT: AtomicU64 = AtomicU64::new(0);
/// Tokens, unique to each request within the process.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// `shared:DUR`: writes this request's token, holds the worker DUR, reads the slot back.
fn shared_state(hold: Duration) -> SharedState {
    let mine = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    SHARED_SLOT.store(mine, Ordering::SeqCst);
    std::thread::sleep(hold);
    let found = SHARED_SLOT.load(Ordering::SeqCst);
    SharedState { mine, found }
}

fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Keeps a core busy for `d`.
fn spin_for(d: Duration) {
    let end = Instant::now() + d;
    let mut x: u64 = 0;
    while Instant::now() < end {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// Allocates `size` bytes, touches every page so they count in RSS, and never frees them.
fn leak(size: u64) {
    let Ok(size) = usize::try_from(size) else {
        return;
    };
    let mut block = vec![0u8; size];
    for b in block.iter_mut().step_by(4096) {
        *b = 1;
    }
    std::mem::forget(std::hint::black_box(block));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> FaultSettings {
        let sets = vec![format!("FaultFork={text}"), format!("FaultAccept={text}")];
        crate::config::Config::load(crate::config::Mpm::Worker, None, &sets, true)
            .unwrap()
            .faults
    }

    #[test]
    fn a_counted_site_fault_fires_that_many_times() {
        let faults = Faults::new(&settings("fail:eagain 2"), true);
        let fired = (0..5).filter(|_| faults.fork().is_some()).count();
        assert_eq!(fired, 2);
        let err = faults.accept().expect("the accept site counts on its own");
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    }

    #[test]
    fn after_passes_the_site_that_many_times_first() {
        let faults = Faults::new(&settings("fail:eagain 1 after 2"), true);
        let fired: Vec<bool> = (0..5).map(|_| faults.fork().is_some()).collect();
        assert_eq!(fired, [false, false, true, false, false]);
        let always_after = Faults::new(&settings("fail:eagain after 1"), true);
        let fired: Vec<bool> = (0..4).map(|_| always_after.accept().is_some()).collect();
        assert_eq!(fired, [false, true, true, true]);
        for bad in [
            "fail:eagain 1 after",
            "fail:eagain after x",
            "fail:eagain 1 2",
        ] {
            let sets = vec![format!("FaultFork={bad}")];
            let e = crate::config::Config::load(crate::config::Mpm::Worker, None, &sets, true)
                .unwrap_err();
            assert!(e.to_string().contains("FaultFork"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_uncounted_site_fault_always_fires_and_none_without_faults() {
        let faults = Faults::new(&settings("fail:emfile"), true);
        assert!((0..100).all(|_| faults.accept().is_some()));
        let off = Faults::new(&settings("fail:emfile"), false);
        assert!(off.fork().is_none() && off.accept().is_none() && !off.enabled());
    }

    #[test]
    fn reconfigure_keeps_the_count_of_an_unchanged_setting() {
        let mut faults = Faults::new(&settings("fail:eagain 1"), true);
        assert!(faults.fork().is_some());
        faults.reconfigure(&settings("fail:eagain 1"));
        assert!(faults.fork().is_none(), "unchanged: already fired");
        faults.reconfigure(&settings("fail:eagain 2"));
        assert_eq!((0..5).filter(|_| faults.fork().is_some()).count(), 2);
    }
}
