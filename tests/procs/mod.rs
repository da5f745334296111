//! Helpers for tests that run a binary in the background and talk to it while it runs:
//! signals, readiness, deadlines, and checks that processes are gone.
//!
//! Use it next to `util` with `mod procs;`. Linux only (it reads /proc).
#![allow(dead_code)]

use crate::util::{wait_until, Run, DEADLINE};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child process whose stdout and stderr are collected as they arrive.
pub struct Bg {
    name: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn drain(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

impl Bg {
    /// Start binary `bin ARGS…` on the store `s` in the background.
    pub fn start(s: &crate::util::Store, bin: &str, args: &[&str]) -> Bg {
        let mut c = s.std_cmd(bin);
        c.args(args);
        Bg::spawn(bin, c)
    }

    /// Start `cmd` with stdout and stderr piped (stdin as the command set it).
    pub fn spawn(name: &str, mut cmd: Command) -> Bg {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            drain(child.stdout.take().expect("piped"), Arc::clone(&stdout)),
            drain(child.stderr.take().expect("piped"), Arc::clone(&stderr)),
        ];
        Bg {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stdin, when the command was set up with `Stdio::piped()`; drop it to close.
    pub fn take_stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().expect("stdin was not piped")
    }

    /// SIGKILL it without reaping it: it stays a zombie until [`Bg::wait`].
    pub fn kill_unreaped(&mut self) {
        self.child.kill().expect("kill -9");
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Still running (not exited yet).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send a signal by name (`INT`, `TERM`, `KILL`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Wait until the process catches SIGINT and SIGTERM (its handlers are installed), so
    /// that a signal sent now is handled by the program, not by the default action.
    pub fn wait_for_handlers(&mut self) {
        let pid = self.pid();
        wait_until(DEADLINE, || {
            assert!(
                self.running(),
                "{} exited before it was ready\n--- stderr\n{}",
                self.name,
                self.stderr()
            );
            catches(pid, 2) && catches(pid, 15)
        });
    }

    /// Wait until stderr contains `needle` (e.g. a progress line), failing if it exits.
    pub fn wait_for_stderr(&mut self, needle: &str) {
        let start = Instant::now();
        loop {
            if self.stderr().contains(needle) {
                return;
            }
            if !self.running() {
                let r = self.finish_now();
                panic!(
                    "{} exited (code {}) before printing {needle:?}\n--- stdout\n{}--- stderr\n{}",
                    self.name, r.code, r.stdout, r.stderr
                );
            }
            if start.elapsed() > DEADLINE {
                self.kill_hard();
                panic!(
                    "{} never printed {needle:?} on stderr\n--- stderr\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL it and reap it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn finish_now(&mut self) -> Run {
        let status = self.child.wait().expect("wait");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Wait (at most `timeout`) for it to exit; panic with its output if it does not.
    #[track_caller]
    pub fn wait_timeout(mut self, timeout: Duration) -> Run {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if !self.running() {
                return self.finish_now();
            }
            if start.elapsed() > timeout {
                self.kill_hard();
                panic!(
                    "{} did not exit within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                    self.name,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// [`Bg::wait_timeout`] with the shared [`DEADLINE`].
    #[track_caller]
    pub fn wait(self) -> Run {
        self.wait_timeout(DEADLINE)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // A test that panicked must not leave its child running.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill_hard();
        }
    }
}

/// Whether process `pid` has a handler for signal `sig` (SigCgt in /proc/PID/status).
pub fn catches(pid: u32, sig: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// `(state, process group)` of a process, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?.to_string();
    let pgrp = f.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

fn dead(state: &str) -> bool {
    matches!(state, "Z" | "X" | "x")
}

/// The process is gone: no such pid, or a zombie (this sandbox's init may not reap
/// orphans, and a zombie runs nothing).
pub fn gone(pid: u32) -> bool {
    stat(pid).is_none_or(|(state, _)| dead(&state))
}

/// No live process is left in process group `pgid`.
pub fn group_gone(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    !dir.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(stat)
            .is_some_and(|(state, pg)| pg == pgid && !dead(&state))
    })
}

/// Wait until `path` holds a pid (written by a command: `echo $$ > FILE`) and return it.
#[track_caller]
pub fn read_pid(path: &Path) -> u32 {
    let mut pid = 0;
    wait_until(DEADLINE, || {
        match std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(p) => {
                pid = p;
                true
            }
            None => false,
        }
    });
    pid
}
