//! The start-up profile's hook (`bench/bench.py profile`). Built with the cargo feature
//! `probe`, a binary run with `TASK_PROBE_EXIT=PHASE` exits right after that phase, so
//! the bench times each phase as the difference between two such runs of the real
//! binary. Without the feature (every normal build) `phase` compiles to nothing.

/// The phases, in the order a call passes them.
pub const PHASES: &[&str] = &["start", "parse", "open", "statement", "commit"];

#[inline(always)]
pub fn phase(_name: &str) {
    #[cfg(feature = "probe")]
    if std::env::var_os("TASK_PROBE_EXIT").is_some_and(|v| v == _name) {
        std::process::exit(0);
    }
}
