//! Sleeping until another process commits a change of a list: what `task-wait` and
//! `task-list --watch` share.
//!
//! The store's change signal (`Store::wait_change`: on SQLite a cheap `stat` of its
//! files every 1–8 ms, on PostgreSQL a `LISTEN`) ends the sleep; then the change
//! counter is polled every millisecond for up to 50 ms until the commit is published,
//! and only a changed counter counts as a change. Holds no lock.

use crate::error::Result;
use crate::model::ListId;
use crate::store::Store;
use std::time::{Duration, Instant};

pub struct Waker {
    seen: u64,
    hot_until: Instant,
}

impl Waker {
    /// Start from the list as it is now: only later commits count.
    pub fn new(store: &mut dyn Store, list: &ListId) -> Result<Waker> {
        Ok(Waker {
            seen: store.change_counter(list)?,
            hot_until: Instant::now(),
        })
    }

    /// Sleep at most `max` (and at most one nap of the change signal, ≤ 100 ms on
    /// SQLite): true when the list changed since the last call that said so.
    pub fn sleep(&mut self, store: &mut dyn Store, list: &ListId, max: Duration) -> Result<bool> {
        // Right after a write, poll for its commit every millisecond for a while.
        let nap = if Instant::now() < self.hot_until {
            max.min(Duration::from_millis(1))
        } else {
            max
        };
        let woke = if nap < Duration::from_millis(2) {
            std::thread::sleep(nap);
            false
        } else {
            store.wait_change(list, nap)?
        };
        if woke {
            self.hot_until = Instant::now() + Duration::from_millis(50);
        }
        let now = store.change_counter(list)?;
        if now == self.seen {
            return Ok(false);
        }
        self.seen = now;
        Ok(true)
    }
}
