//! A small forked process that outlives worker-spawn by a moment: when worker-spawn
//! dies, however it dies (kill -9 included), its end of a pipe closes and the guardian
//! SIGKILLs every process group still running a task, then every process that carries
//! this worker-spawn's mark in its environment (`MARK`): that also catches a command
//! started but not yet announced when worker-spawn died, and whatever a command
//! started in another process group; last it removes the `--tmux` folder. (A
//! parent-death signal would reach only each command itself, not the processes it
//! started, and would force a slow fork() for every command instead of posix_spawn().)

use crate::error::{Error, Result};
use nix::sys::signal::{killpg, signal, SigHandler, Signal};
use nix::unistd::{fork, ForkResult, Pid};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, PipeWriter, Write};
use std::path::Path;
use std::sync::Mutex;

/// The environment variable every command gets: `NAME=VALUE` marks it as ours.
pub const MARK: &str = "WORKER_SPAWN_MARK";

pub struct Guardian {
    tx: Mutex<PipeWriter>,
    /// This worker-spawn's mark (pid and start time: unique on this host).
    pub mark: String,
}

impl Guardian {
    /// Fork the guardian. Call before any thread is started. `leftover`: a folder of
    /// worker-spawn's to remove once it is gone.
    pub fn start(mark: String, leftover: Option<&Path>) -> Result<Guardian> {
        let (reader, writer) = std::io::pipe()?;
        // SAFETY: called while the process has a single thread, so the child may do
        // anything; it only reads a pipe, sends signals and exits.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(writer);
                close_others(std::os::fd::AsRawFd::as_raw_fd(&reader));
                for sig in [
                    Signal::SIGINT,
                    Signal::SIGTERM,
                    Signal::SIGHUP,
                    Signal::SIGPIPE,
                ] {
                    // SAFETY: ignoring a signal installs no handler code.
                    let _ = unsafe { signal(sig, SigHandler::SigIgn) };
                }
                guard(BufReader::new(reader), &format!("{MARK}={mark}"));
                if let Some(dir) = leftover {
                    let _ = std::fs::remove_dir_all(dir);
                }
                std::process::exit(0);
            }
            Ok(ForkResult::Parent { .. }) => Ok(Guardian {
                tx: Mutex::new(writer),
                mark,
            }),
            Err(e) => Err(Error::store(format!(
                "cannot start the guardian process: {e}"
            ))),
        }
    }

    /// Process group `pgid` runs a task: kill it if worker-spawn dies.
    pub fn watch(&self, pgid: i32) {
        self.send(format!("+{pgid}\n"));
    }

    /// Process group `pgid` is done.
    pub fn unwatch(&self, pgid: i32) {
        self.send(format!("-{pgid}\n"));
    }

    fn send(&self, line: String) {
        // Writes of a few bytes to a pipe are atomic; a failure means the guardian is
        // gone, and then there is nobody to tell.
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.write_all(line.as_bytes());
    }
}

fn guard(reader: BufReader<std::io::PipeReader>, mark: &str) {
    let mut groups: HashSet<i32> = HashSet::new();
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let (op, n) = line.split_at(1.min(line.len()));
        match (op, n.parse::<i32>()) {
            ("+", Ok(pg)) => {
                groups.insert(pg);
            }
            ("-", Ok(pg)) => {
                groups.remove(&pg);
            }
            _ => {}
        }
    }
    // End of file: worker-spawn is gone.
    for pg in groups {
        let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
    }
    // Twice: a marked process may have forked while the first sweep ran.
    for _ in 0..2 {
        kill_marked(mark.as_bytes());
    }
}

/// SIGKILL every process whose environment holds `mark` (`NAME=VALUE`).
fn kill_marked(mark: &[u8]) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|var| var == mark) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// In the guardian: close every descriptor but standard input, output and error and
/// `keep`. What worker-spawn had open is not the guardian's to hold: a detached pool's
/// pipe to its caller, held here, would keep the caller waiting until the pool ends.
fn close_others(keep: i32) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2 && fd != keep)
        .collect();
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}
