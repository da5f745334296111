//! Claude Code's lock on a task list: the proper-lockfile scheme its tools use, so that
//! a file written here never races one of its own writes (above all the choice of a new
//! task's id). The lock on `<dir>/.lock` is the directory `<dir>/.lock.lock`: `mkdir`
//! takes it (atomic: exactly one process succeeds), `rmdir` gives it back. A holder
//! refreshes its modification time while it holds it; one older than [`STALE`] was left
//! by a process that died and may be removed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// After this long without a refresh, a lock is taken to be left behind.
pub const STALE: Duration = Duration::from_secs(10);

/// How often the holder refreshes the lock (proper-lockfile: half of STALE; more often
/// here, so that a slow disk never lets it look stale).
const REFRESH: Duration = Duration::from_millis(2_500);

/// A held lock; dropping it gives it back.
pub struct Lock {
    path: PathBuf,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

/// How a wait for the lock ended without it.
#[derive(Debug)]
pub enum NotTaken {
    /// Another live process held it for all of the patience.
    Busy,
    /// `stop` said to give up (a signal arrived).
    Stopped,
    Io(io::Error),
}

impl Lock {
    /// Take the lock of the list in `dir`, waiting while a live process holds it (up to
    /// `patience`), and removing a stale one. `stop` is asked between tries.
    pub fn take(dir: &Path, patience: Duration, stop: &dyn Fn() -> bool) -> Result<Lock, NotTaken> {
        // proper-lockfile resolves the locked file first, so Claude Code creates it.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(".lock"))
            .map_err(NotTaken::Io)?;
        let path = dir.join(".lock.lock");
        let give_up = Instant::now() + patience;
        let mut nap = Duration::from_millis(5);
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Lock::held(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(NotTaken::Io(e)),
            }
            if is_stale(&path) {
                // Another process may remove it at the same moment: either way it is gone.
                let _ = std::fs::remove_dir(&path);
                continue;
            }
            if stop() {
                return Err(NotTaken::Stopped);
            }
            if Instant::now() >= give_up {
                return Err(NotTaken::Busy);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(100));
        }
    }

    fn held(path: PathBuf) -> Lock {
        let (stop, stopped) = mpsc::channel::<()>();
        let dir = path.clone();
        let refresher = std::thread::spawn(move || loop {
            match stopped.recv_timeout(REFRESH) {
                Err(RecvTimeoutError::Timeout) => touch(&dir),
                _ => return,
            }
        });
        Lock {
            path,
            stop: Some(stop),
            refresher: Some(refresher),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn is_stale(path: &Path) -> bool {
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        // Gone already: not stale, just try again.
        return false;
    };
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age > STALE)
}

fn touch(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}
