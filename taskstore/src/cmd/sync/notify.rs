//! Notice a change in Claude Code's folder without reading it: inotify on Linux (through
//! `nix`, already a dependency, so no crate of its own). Elsewhere, or when inotify is
//! unavailable, there is none and task-sync reads the folder every second instead.
//!
//! Only the names the side counts wake a pass (Claude Code's task files and
//! `.highwatermark`; a queue's items): the locks (Claude Code's and our own) and our
//! temporary files change at every pass and must not wake the next.

use std::path::{Path, PathBuf};

pub struct Notify {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: nix::sys::inotify::Inotify,
    path: PathBuf,
    counts: fn(&str) -> bool,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Notify {
    /// Watch `path` (a folder) for changes of the names `counts` accepts; None when
    /// inotify cannot.
    pub fn new(path: &Path, counts: fn(&str) -> bool) -> Option<Notify> {
        use nix::sys::inotify::{InitFlags, Inotify};
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let n = Notify {
            fd,
            path: path.to_path_buf(),
            counts,
        };
        n.watch().then_some(n)
    }

    fn watch(&self) -> bool {
        use nix::sys::inotify::AddWatchFlags as F;
        let what = F::IN_CLOSE_WRITE
            | F::IN_MODIFY
            | F::IN_CREATE
            | F::IN_DELETE
            | F::IN_MOVED_FROM
            | F::IN_MOVED_TO
            | F::IN_DELETE_SELF
            | F::IN_MOVE_SELF;
        self.fd.add_watch(&self.path, what).is_ok()
    }

    /// Whether a counted file changed since the last call (reads every pending event). A
    /// folder removed as a whole is made again and watched anew.
    pub fn changed(&mut self) -> bool {
        use nix::sys::inotify::AddWatchFlags as F;
        let mut changed = false;
        let mut lost = false;
        while let Ok(events) = self.fd.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if e.mask
                    .intersects(F::IN_IGNORED | F::IN_DELETE_SELF | F::IN_MOVE_SELF)
                {
                    lost = true;
                }
                let name = e.name.as_ref().and_then(|n| n.to_str());
                if name.is_some_and(self.counts) {
                    changed = true;
                }
            }
        }
        if lost {
            let _ = std::fs::create_dir_all(&self.path);
            self.watch();
            changed = true;
        }
        changed
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Notify {
    pub fn new(_path: &Path, _counts: fn(&str) -> bool) -> Option<Notify> {
        None
    }

    pub fn changed(&mut self) -> bool {
        false
    }
}
