//! `worker-spawn --detach`: the pool goes on in a session of its own, so that the caller
//! — Claude Code's Bash tool moves a call to the background after two minutes and stops
//! its whole process group ten minutes later — can return at once. What can be checked
//! is checked before: the flags (clap), the command (`check_runnable`), the store (it
//! opens).

use crate::cli::{SpawnArgs, SpawnFormat};
use crate::error::{Error, Result};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where detached pools write their talk: beside the store; for a PostgreSQL store,
/// in `$XDG_STATE_HOME/parallel-tasks` (else `~/.local/state/parallel-tasks`, else the
/// temporary folder).
fn log_dir(args: &SpawnArgs) -> Result<PathBuf> {
    let path = args.store.path()?;
    if crate::store::is_url(&path.to_string_lossy()) {
        let dir = crate::cli::xdg_home("XDG_STATE_HOME", ".local/state")
            .unwrap_or_else(std::env::temp_dir)
            .join("parallel-tasks");
        std::fs::create_dir_all(&dir)?;
        return Ok(dir);
    }
    let db = std::path::absolute(path)?;
    Ok(db.parent().unwrap_or(Path::new("/")).to_path_buf())
}

fn log_name(dir: &Path, list: &crate::model::ListId, pid: u32) -> PathBuf {
    dir.join(format!("worker-spawn-{list}-{pid}.log"))
}

/// Which side of the fork this is.
pub enum Side {
    /// The caller, with its exit code.
    Caller(u8),
    /// The pool, detached, with its log file and the way to tell the caller it runs.
    Pool(PathBuf, Started),
}

/// Tells the waiting caller that the pool runs: its pid and log. Said once the pool has
/// recorded itself in the store, so that `task-list --workers` and `worker-spawn --stop`
/// right after the caller returns find it. Dropped unsaid (the pool failed to start),
/// the caller reports that.
pub struct Started {
    to_caller: std::io::PipeWriter,
    log: PathBuf,
}

impl Started {
    pub fn say(mut self) {
        // A caller that went away already cannot be told; the pool runs anyway.
        let said = format!("{} {}", std::process::id(), self.log.display());
        let _ = self.to_caller.write_all(said.as_bytes());
    }
}

/// Fork the pool off. The caller prints its pid and log file.
pub fn start(args: &SpawnArgs, out: &mut dyn Write) -> Result<Side> {
    drop(args.store.open(super::access(args))?);
    let dir = log_dir(args)?;
    let list = args.store.list.clone();
    let (mut from_pool, mut to_caller) = std::io::pipe()?;
    // SAFETY: no other thread exists yet (the guardian, the signal handlers and the
    // workers all start after this), so the child may go on running Rust code.
    match unsafe { fork() }.map_err(|e| Error::store(format!("cannot fork: {e}")))? {
        ForkResult::Child => {
            drop(from_pool);
            let detached = || -> std::io::Result<PathBuf> {
                setsid()?;
                let path = log_name(&dir, &list, std::process::id());
                let log = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(&path)?;
                dup2_stdin(File::open("/dev/null")?)?;
                dup2_stdout(&log)?;
                dup2_stderr(&log)?;
                Ok(path)
            };
            let path = match detached() {
                Ok(path) => path,
                Err(e) => {
                    let _ = to_caller.write_all(format!("\0{e}").as_bytes());
                    std::process::exit(5);
                }
            };
            // The pool is a child of this process, which only waits for it: an orphan
            // is reaped by init, which can take seconds, and until then its pid looks
            // alive to `kill -0` and to a script waiting for the pool to end. Reaped at
            // once here, the pool's pid is gone when the pool is.
            // SAFETY: still no other thread (see above).
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    // The log is named after the pool, not after the process that waits.
                    let named = log_name(&dir, &list, std::process::id());
                    let log = match std::fs::rename(&path, &named) {
                        Ok(()) => named,
                        Err(_) => path,
                    };
                    Ok(Side::Pool(log.clone(), Started { to_caller, log }))
                }
                Ok(ForkResult::Parent { child }) => {
                    drop(to_caller);
                    let code = loop {
                        match nix::sys::wait::waitpid(child, None) {
                            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => break c,
                            Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => {
                                break 128 + s as i32
                            }
                            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                            Err(_) => break 1,
                        }
                    };
                    std::process::exit(code)
                }
                Err(e) => {
                    let _ = to_caller.write_all(format!("\0cannot fork: {e}").as_bytes());
                    std::process::exit(5);
                }
            }
        }
        ForkResult::Parent { .. } => {
            drop(to_caller);
            let mut said = Vec::new();
            from_pool.read_to_end(&mut said)?;
            let said = String::from_utf8_lossy(&said).into_owned();
            let Some((child, said)) = said
                .split_once(' ')
                .and_then(|(pid, log)| Some((pid.parse::<i32>().ok()?, log.to_string())))
            else {
                let why = match said.trim_start_matches('\0') {
                    "" => "it ended before it began (its log there says why)".to_string(),
                    why => why.to_string(),
                };
                return Err(Error::store(format!(
                    "the detached pool did not start (log folder {}): {why}",
                    dir.display()
                )));
            };
            match args.format {
                SpawnFormat::Text => writeln!(out, "pid {child} log {said}")?,
                SpawnFormat::Json => {
                    writeln!(out, "{}", serde_json::json!({"pid": child, "log": said}))?
                }
            }
            Ok(Side::Caller(0))
        }
    }
}
