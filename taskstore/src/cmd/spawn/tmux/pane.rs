//! A `--tmux` window running a command: its process group, the command's status, the
//! output shown in it.

use super::tmux;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// How long a window may take, once its command ended, to show the rest of the output.
const DRAIN: Duration = Duration::from_secs(2);

/// How long a write to the window may wait for the window to read; then the window
/// shows nothing more of this attempt (a terminal stopped with ^S), and the command is
/// not held up by it.
const SHOW_WAIT: Duration = Duration::from_secs(1);

/// Copy `bytes` to the window, if it still reads: waiting up to `SHOW_WAIT` for room,
/// then giving up on the window for the rest of the attempt.
pub fn show(screen: &mut Option<File>, mut bytes: &[u8]) {
    let Some(f) = screen else { return };
    while !bytes.is_empty() {
        match f.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(
                    std::os::fd::AsFd::as_fd(&*f),
                    PollFlags::POLLOUT,
                )];
                let ms = SHOW_WAIT.as_millis() as u16;
                if !matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
                    *screen = None;
                    return;
                }
            }
            Err(_) => {
                *screen = None;
                return;
            }
        }
    }
}

/// How long a command's status may follow its window's shell's end (a closed window).
const STATUS_GRACE: Duration = Duration::from_secs(2);

/// A window running a command.
pub struct Pane {
    /// tmux's id of the window (`@12`).
    window: String,
    /// Its shell's pid: the process group of everything that runs there.
    pid: i32,
    /// Its shell's start time (safe from pid reuse); None without /proc.
    started: Option<u64>,
    status: PathBuf,
    /// The stdout and stderr FIFOs.
    fifos: [PathBuf; 2],
    hung_up: bool,
}

impl Pane {
    /// Window `window`'s shell `pid`, whose script writes `status` and the FIFOs.
    pub(super) fn new(window: String, pid: i32, status: PathBuf, fifos: [PathBuf; 2]) -> Pane {
        Pane {
            window,
            pid,
            started: crate::host::start_time(pid as u32),
            status,
            fifos,
            hung_up: false,
        }
    }

    pub(super) fn window(&self) -> &str {
        &self.window
    }

    pub fn pgid(&self) -> i32 {
        self.pid
    }

    /// The command's exit status, once the script recorded it.
    fn status(&self) -> Option<i32> {
        let s = std::fs::read_to_string(&self.status).ok()?;
        s.strip_suffix('\n')?.trim().parse().ok()
    }

    /// The window's shell still runs.
    fn alive(&self) -> bool {
        match self.started {
            Some(t) => crate::host::start_time(self.pid as u32) == Some(t),
            None => kill(Pid::from_raw(self.pid), None).is_ok(),
        }
    }

    /// The command has ended, or the window's shell has (killed before it recorded a
    /// status, maybe before it opened the FIFOs: then open and close them once, so that
    /// the reader sees their end).
    pub fn exited(&mut self) -> bool {
        if self.status().is_some() {
            return true;
        }
        if self.alive() {
            return false;
        }
        if !self.hung_up {
            self.hung_up = true;
            for p in &self.fifos {
                let _ = OpenOptions::new()
                    .write(true)
                    .custom_flags(OFlag::O_NONBLOCK.bits())
                    .open(p);
            }
        }
        true
    }

    /// Wait for the command's status (a shell killed before it could record one: as
    /// SIGKILL), then, a little, for the window to show the rest of the output: its
    /// shell ends once its `cat` has. (Ended, not reaped: tmux may reap it late, when it
    /// missed the SIGCHLD while it waited for a helper of its own, such as utempter's.)
    pub fn wait(&mut self) -> ExitStatus {
        let code = loop {
            if let Some(code) = self.status() {
                break Some(code);
            }
            if !self.alive() {
                // The window's shell is gone (its window closed): the inner shell, which
                // outlives a hangup, writes the command's status a moment later.
                let until = Instant::now() + STATUS_GRACE;
                let mut code = self.status();
                while code.is_none() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                    code = self.status();
                }
                break code;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let until = Instant::now() + DRAIN;
        while self.alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        match code {
            Some(c) => ExitStatus::from_raw((c & 0xff) << 8),
            None => ExitStatus::from_raw(Signal::SIGKILL as i32),
        }
    }

    /// Close the window (its task completed).
    pub fn close(&self) {
        let _ = tmux(["kill-window", "-t", &self.window]);
    }
}
