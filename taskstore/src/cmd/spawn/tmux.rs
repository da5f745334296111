//! `--tmux SESSION`: each command runs in a window of its own of a tmux session, on the
//! window's terminal, so that a person can watch it (`tmux attach -t SESSION`) and an
//! interactive program finds a real terminal on its stdin and `/dev/tty`.
//!
//! The window runs a small `sh` script of ours. It starts the command with
//! worker-spawn's environment and the task's (`env -i …`: the tmux server's own
//! environment may be another's), its stdin the window's terminal (or a file with
//! `--stdin`), and its stdout and stderr into two FIFOs that worker-spawn reads as it
//! reads a child's pipes — so the result, the log, `--output-dir` and `--max-output`
//! are what they are without tmux. worker-spawn writes what it reads into a third FIFO,
//! which a `cat` in the window copies onto the terminal. The script writes the command's
//! exit status to a file, waits for that `cat`, and exits with the status.
//!
//! The window's shell leads the terminal's session and process group, and the command
//! and the `cat` are in that group: the supervisor signals it on timeout, cancel and
//! shutdown, the guardian kills it if worker-spawn dies, as for a child of ours. The
//! window stays after its shell ends (`remain-on-exit`), for reading; it is closed when
//! its task completes, and when the task runs again, before the new attempt's window
//! opens (a window says whose it is in the window option `@worker-spawn-task`).
//!
//! tmux is run as the user would run it, with the inherited environment: `$TMUX`
//! (inside tmux: that server) or else `$TMUX_TMPDIR` picks the server; every command
//! names the session, so none depends on a current one.

mod pane;
mod script;

pub use pane::{show, Pane};

use crate::error::{Error, Result};
use crate::model::Task;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The window option naming a window's task (`LIST/ID`).
const TASK_OPTION: &str = "@worker-spawn-task";

/// How much of a task's subject goes into its window's name.
const NAME_CHARS: usize = 40;

/// How long one tmux command may take. A worker waits for it before its command is
/// watched (timeout, cancel), so a tmux that never answers must not hold it for ever.
const TMUX_LIMIT: Duration = Duration::from_secs(10);

/// Run `tmux ARGS…`; its stdout, or its stderr as the error.
pub(super) fn tmux<I, S>(args: I) -> std::io::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let child = Command::new("tmux")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TMUX_LIMIT) {
        Ok(out) => out?,
        Err(_) => {
            // Not reaped yet (the thread still waits for it), so the pid is still its.
            let _ = kill(pid, Signal::SIGKILL);
            return Err(std::io::Error::other(format!(
                "tmux did not answer within {}s",
                TMUX_LIMIT.as_secs()
            )));
        }
    };
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(std::io::Error::other(match said.is_empty() {
            true => format!("tmux exited {}", out.status),
            false => said,
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `tmux` is an executable file on `PATH`.
fn on_path() -> bool {
    use nix::unistd::{access, AccessFlags};
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        let p = dir.join("tmux");
        p.is_file() && access(&p, AccessFlags::X_OK).is_ok()
    })
}

/// Make the session unless it exists (detached, in `cwd`). Two pools may make it at once.
fn ensure_session(session: &str, cwd: &Path) -> std::io::Result<()> {
    let exact = format!("={session}");
    if tmux(["has-session", "-t", &exact]).is_ok() {
        return Ok(());
    }
    let made = tmux([
        OsStr::new("new-session"),
        OsStr::new("-d"),
        OsStr::new("-s"),
        OsStr::new(session),
        OsStr::new("-c"),
        cwd.as_os_str(),
    ]);
    match made {
        Err(_) if tmux(["has-session", "-t", &exact]).is_ok() => Ok(()),
        r => r.map(drop),
    }
}

/// Before anything is claimed: tmux is there and the session exists. A usage error
/// (exit 2) otherwise.
pub fn check(session: &str) -> Result<()> {
    if !on_path() {
        return Err(Error::usage(
            "--tmux needs the tmux program, which is not on PATH (install tmux); \
             nothing was claimed",
        ));
    }
    let cwd = std::env::current_dir()?;
    ensure_session(session, &cwd).map_err(|e| {
        Error::usage(format!(
            "--tmux: cannot make tmux session '{session}': {e}; nothing was claimed"
        ))
    })
}

/// The pool's side of `--tmux`: the session, and a private folder for the workers' FIFOs,
/// scripts and status files (removed when the pool ends).
pub struct Tmux {
    session: String,
    dir: PathBuf,
    /// Where commands start without `--worktree`: worker-spawn's working directory.
    cwd: PathBuf,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command started in its window: the window, and what worker-spawn reads and writes.
pub struct Started {
    pub pane: Pane,
    pub out: File,
    pub err: File,
    /// Shown in the window.
    pub screen: File,
}

impl Tmux {
    pub fn new(session: &str) -> Result<Tmux> {
        let base = std::env::temp_dir();
        let mut n = 0;
        let dir = loop {
            let dir = base.join(format!("worker-spawn-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => {
                    return Err(Error::store(format!(
                        "--tmux: cannot create a folder in {}: {e}",
                        base.display()
                    )))
                }
            }
        };
        Ok(Tmux {
            session: session.to_string(),
            dir,
            cwd: std::env::current_dir()?,
        })
    }

    /// The private folder (for the guardian to remove should worker-spawn be killed).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start `argv` for task `t` in a new window (worker `worker`'s files), with `env`
    /// added to worker-spawn's environment, `stdin` as its input (else the terminal), in
    /// `dir` (else worker-spawn's working directory).
    pub fn start(
        &self,
        worker: usize,
        t: &Task,
        argv: &[String],
        env: &[(&str, OsString)],
        stdin: Option<&[u8]>,
        dir: Option<&Path>,
    ) -> std::io::Result<Started> {
        let file = |ext: &str| self.dir.join(format!("{worker}.{ext}"));
        let (out, err, show, input, status, script) = (
            file("out"),
            file("err"),
            file("show"),
            file("in"),
            file("status"),
            file("sh"),
        );
        // A worker's files of its last attempt: that window's shell has ended.
        for p in [&out, &err, &show, &input, &status, &script] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        for p in [&out, &err, &show] {
            nix::unistd::mkfifo(p, Mode::S_IRUSR | Mode::S_IWUSR)?;
        }
        if let Some(data) = stdin {
            private(&input)?.write_all(data)?;
        }
        let files = script::Files {
            out: &out,
            err: &err,
            show: &show,
            input: stdin.map(|_| input.as_path()),
            status: &status,
        };
        private(&script)?.write_all(&script::script_text(argv, env, &files))?;
        // Opened before the window, without waiting for a writer: the script's
        // redirections then open at once. The window's `cat` holds its shell until
        // `screen` is closed, so the window cannot end before it is set to remain.
        let out_r = read_end(&out)?;
        let err_r = read_end(&err)?;
        let screen = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&show)?;
        let key = format!("{}/{}", t.list, t.id.0);
        self.close_windows_of(&key);
        let cwd = dir.unwrap_or(&self.cwd);
        let name = window_name(t.id.0, &t.subject);
        let opened = self.new_window(&name, cwd, &script).or_else(|e| {
            // The session was closed under the pool: make it again. (Not when it is
            // there: a tmux that did not answer may have opened the window all the same.)
            if tmux(["has-session", "-t", &format!("={}", self.session)]).is_ok() {
                return Err(e);
            }
            ensure_session(&self.session, &self.cwd)?;
            self.new_window(&name, cwd, &script)
        })?;
        let (window, pid) = opened
            .trim()
            .split_once(' ')
            .and_then(|(w, p)| Some((w.to_string(), p.parse::<i32>().ok()?)))
            .ok_or_else(|| std::io::Error::other(format!("tmux new-window said {opened:?}")))?;
        let pane = Pane::new(window, pid, status, [out, err]);
        if let Err(e) = tmux([
            "set-option",
            "-w",
            "-t",
            pane.window(),
            "remain-on-exit",
            "on",
            ";",
            "set-option",
            "-w",
            "-t",
            pane.window(),
            TASK_OPTION,
            &key,
        ]) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            pane.close();
            return Err(e);
        }
        Ok(Started {
            pane,
            out: out_r,
            err: err_r,
            screen,
        })
    }

    /// `tmux new-window` running `sh SCRIPT`: its window id and its shell's pid.
    fn new_window(&self, name: &str, cwd: &Path, script: &Path) -> std::io::Result<String> {
        let target = format!("={}:", self.session);
        tmux([
            OsStr::new("new-window"),
            OsStr::new("-d"),
            OsStr::new("-P"),
            OsStr::new("-F"),
            OsStr::new("#{window_id} #{pane_pid}"),
            OsStr::new("-t"),
            OsStr::new(&target),
            OsStr::new("-n"),
            OsStr::new(name),
            OsStr::new("-c"),
            cwd.as_os_str(),
            // More than one argument: tmux runs it as it is, not through the user's shell.
            OsStr::new("sh"),
            script.as_os_str(),
        ])
    }

    /// Close the windows a task's earlier attempts left open (it runs again).
    fn close_windows_of(&self, key: &str) {
        let format = format!("#{{window_id}} #{{{TASK_OPTION}}}");
        let target = format!("={}", self.session);
        let Ok(windows) = tmux(["list-windows", "-t", &target, "-F", &format]) else {
            return;
        };
        for line in windows.lines() {
            if let Some((id, _)) = line.split_once(' ').filter(|(_, k)| *k == key) {
                let _ = tmux(["kill-window", "-t", id]);
            }
        }
    }
}

/// A file only we can read (the script holds worker-spawn's environment).
fn private(p: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
}

/// A FIFO's read end, opened without waiting for a writer, then blocking as a pipe.
fn read_end(p: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(p)?;
    fcntl(&f, FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(f)
}

/// `#ID subject`, the subject cut short and on one line; `#` doubled, since tmux reads
/// a window name as a format.
fn window_name(id: i64, subject: &str) -> String {
    let mut subject: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(NAME_CHARS + 1)
        .collect();
    if subject.chars().count() > NAME_CHARS {
        subject = subject.chars().take(NAME_CHARS - 1).collect::<String>() + "…";
    }
    format!("#{id} {subject}").replace('#', "##")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_names_are_short_one_line_and_literal() {
        assert_eq!(window_name(3, "Build #2"), "##3 Build ##2");
        assert_eq!(window_name(4, "two\nlines"), "##4 two lines");
        let long = window_name(5, &"x".repeat(60));
        assert_eq!(long, format!("##5 {}…", "x".repeat(39)));
        assert_eq!(
            window_name(6, &"y".repeat(40)),
            format!("##6 {}", "y".repeat(40))
        );
    }
}
