//! Property tests of the fault grammar: every fault prints to text that parses back to it, and
//! no input makes the parser panic.

use std::time::Duration;

use mpm_faults::{CrashSignal, Errno, Fault};
use proptest::prelude::*;

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        prop::sample::select(CrashSignal::ALL.to_vec()).prop_map(Fault::Crash),
        any::<u8>().prop_map(Fault::Exit),
        Just(Fault::Panic),
        (0u64..10_000_000).prop_map(|us| Fault::Sleep(Duration::from_micros(us))),
        (0u64..100_000).prop_map(|ms| Fault::Busy(Duration::from_millis(ms))),
        Just(Fault::Hang),
        Just(Fault::Close),
        (0u64..(1 << 40)).prop_map(Fault::Leak),
        (0u64..10_000_000).prop_map(|us| Fault::Shared(Duration::from_micros(us))),
        prop::sample::select(Errno::ALL.to_vec()).prop_map(Fault::Fail),
    ]
}

proptest! {
    #[test]
    fn display_round_trips(f in fault()) {
        let text = f.to_string();
        prop_assert_eq!(text.parse::<Fault>(), Ok(f.clone()));
        prop_assert_eq!(Fault::from_request_path(&f.request_path()), Some(Ok(f)));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
        if let Err(e) = s.parse::<Fault>() {
            prop_assert!(e.to_string().contains("invalid fault"));
        }
    }

    #[test]
    fn grammar_shaped_text_never_panics(kind in "(crash|exit|sleep|busy|leak|shared|fail|panic|hang|close|x)", arg in "[0-9a-zA-Z.:]{0,12}") {
        let _ = format!("{kind}:{arg}").parse::<Fault>();
    }
}
