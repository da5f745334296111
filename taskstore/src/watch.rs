//! Sleeping until the store may have changed, cheaply: every commit writes the store's
//! WAL file, so its size and modification time are checked (one `stat` each) at an
//! interval that starts at 1 ms after a change and doubles to 8 ms; after a second
//! without change it slows to 16 ms, after ten seconds to 32 ms (on these virtual
//! machines a timer wake-up costs about 70 µs of CPU, so a long wait stays well under
//! 1 % of a core). A change seen here is a hint; callers confirm it with the store's change
//! counter, which they also check at least every 100 ms in case a write kept the
//! file's size and time.
//!
//! Why not inotify: creating and closing an inotify instance costs milliseconds at
//! process exit (the kernel waits for a grace period), more than this polling costs
//! in a long wait, and it would delay every `task-wait` that returns.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const FIRST: Duration = Duration::from_millis(1);
const BACKSTOP: Duration = Duration::from_millis(100);

/// The longest nap after `quiet` without any change.
fn slowest(quiet: Duration) -> Duration {
    Duration::from_millis(match quiet.as_secs() {
        0 => 8,
        1..=9 => 16,
        _ => 32,
    })
}

type Signature = Vec<Option<(u64, SystemTime)>>;

pub struct Watcher {
    paths: Vec<PathBuf>,
    seen: Signature,
    nap: Duration,
    changed_at: Instant,
}

impl Watcher {
    pub fn new(paths: Vec<PathBuf>) -> Watcher {
        let seen = signature(&paths);
        Watcher {
            paths,
            seen,
            nap: FIRST,
            changed_at: Instant::now(),
        }
    }

    /// Sleep until a watched file changes, `max` passes, or the backstop interval
    /// passes. True when a file changed.
    pub fn wait(&mut self, max: Duration) -> bool {
        let start = Instant::now();
        let limit = max.min(BACKSTOP);
        loop {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(self.nap.min(left));
            self.nap = (self.nap * 2).min(slowest(self.changed_at.elapsed()));
            let now = signature(&self.paths);
            if now != self.seen {
                self.seen = now;
                self.nap = FIRST;
                self.changed_at = Instant::now();
                return true;
            }
        }
    }
}

fn signature(paths: &[PathBuf]) -> Signature {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}
