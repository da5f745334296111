//! SIGINT and SIGTERM as a flag the long-running loops look at, so that they end with
//! the documented exit codes (130, 143) after cleaning up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use signal_hook::consts::{SIGINT, SIGTERM};

#[derive(Clone)]
pub struct Signals {
    last: Arc<AtomicUsize>,
}

impl Signals {
    /// Catch SIGINT and SIGTERM from now on.
    pub fn install() -> crate::Result<Signals> {
        let last = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_usize(sig, Arc::clone(&last), sig as usize).map_err(
                |e| crate::Error::store(format!("cannot install a signal handler: {e}")),
            )?;
        }
        Ok(Signals { last })
    }

    /// The last signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

/// The exit code of a program stopped by `sig`: 128 + its number (130, 143).
pub fn exit_code(sig: i32) -> u8 {
    (128 + sig) as u8
}
