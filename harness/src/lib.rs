//! mpm-harness: spec cases, runner, oracles (built in a later issue).
