//! Running one task's command: arguments with placeholders, the task in the
//! environment, its own process group, stdout and stderr captured (with `--tmux` the
//! command runs in a tmux window, `tmux.rs`, and is captured the same way).

use crate::cli::StdinMode;
use crate::model::Task;
use crate::output::task_json;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// How much of stderr's end is kept as the task's `log`.
pub const LOG_TAIL: usize = 16 * 1024;

/// How much of a failed check's output (stdout and stderr together) is kept: in the log
/// and as the feedback handed to the next attempt, often inside an agent's prompt.
pub const CHECK_TAIL: usize = 8 * 1024;

/// The `{feedback}` placeholder: empty until a check failed, else a paragraph that can
/// follow a prompt (`'{description}{feedback}'`).
pub fn feedback_paragraph(t: &Task) -> String {
    match t.feedback.as_deref().map(str::trim_end) {
        Some(f) if !f.is_empty() => format!(
            "\n\nA previous attempt at this task did not pass its check. The check said:\n{f}\n"
        ),
        _ => String::new(),
    }
}

/// Replace `{id} {subject} {description} {list} {attempt} {feedback} {session}` in `arg`; `{{` and
/// `}}` are literal braces; any other `{…}` is left as it is (so `awk '{print $1}'` works).
pub fn expand(arg: &str, t: &Task) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("{{") {
            out.push('{');
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("}}") {
            out.push('}');
            rest = r;
            continue;
        }
        if rest.starts_with('{') {
            if let Some(end) = rest.find('}') {
                let value = match &rest[1..end] {
                    "id" => Some(t.id.0.to_string()),
                    "subject" => Some(t.subject.clone()),
                    "description" => Some(t.description.clone()),
                    "list" => Some(t.list.clone()),
                    "attempt" => Some(t.attempts.to_string()),
                    "feedback" => Some(feedback_paragraph(t)),
                    "session" => Some(
                        crate::model::claude_session(&t.metadata)
                            .unwrap_or("")
                            .to_string(),
                    ),
                    _ => None,
                };
                if let Some(v) = value {
                    out.push_str(&v);
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        out.push_str(&rest[..1]);
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// Check before anything is claimed that the command can be run: a program that does not
/// exist or is not executable would otherwise fail every task it is given (exit 127),
/// using up their attempts. A program name with a placeholder is known only per task.
pub fn check_runnable(program: &str) -> crate::Result<()> {
    use nix::unistd::{access, AccessFlags};
    if program.contains('{') {
        return Ok(());
    }
    let runnable = |p: &Path| -> Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            return Err("it is a directory".into());
        }
        access(p, AccessFlags::X_OK).map_err(|e| format!("it is not executable ({})", e.desc()))
    };
    let why = if program.contains('/') {
        match runnable(Path::new(program)) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut why = "command not found in PATH".to_string();
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(program);
            if !candidate.exists() {
                continue;
            }
            match runnable(&candidate) {
                Ok(()) => return Ok(()),
                Err(w) => why = format!("{}: {w}", candidate.display()),
            }
        }
        why
    };
    Err(crate::Error::usage(format!(
        "cannot run '{program}': {why}; nothing was claimed"
    )))
}

/// What the command gets besides its arguments.
pub struct Context<'a> {
    /// Value of `guardian::MARK`, so the guardian can find the command if we die.
    pub mark: &'a str,
    pub db: &'a str,
    pub owner: &'a str,
    pub stdin: StdinMode,
    pub max_output: u64,
    /// `--tmux`: the session the command runs in, and this worker's number there.
    pub tmux: Option<(&'a super::tmux::Tmux, usize)>,
}

/// Where one attempt runs: its working directory and, with `--worktree`, its branch.
#[derive(Default)]
pub struct Place {
    pub dir: Option<PathBuf>,
    pub branch: Option<String>,
}

/// What the command and its check find in their environment besides worker-spawn's own.
fn task_env(t: &Task, cx: &Context, place: &Place) -> Vec<(&'static str, OsString)> {
    let mut env: Vec<(&'static str, OsString)> = vec![
        ("TASK_ID", t.id.0.to_string().into()),
        ("TASK_SUBJECT", t.subject.clone().into()),
        ("TASK_DESCRIPTION", t.description.clone().into()),
        ("TASK_LIST", t.list.clone().into()),
        ("CLAUDE_CODE_TASK_LIST_ID", t.list.clone().into()),
        ("TASK_DB", cx.db.into()),
        ("TASK_OWNER", cx.owner.into()),
        (super::guardian::MARK, cx.mark.into()),
        ("TASK_ATTEMPT", t.attempts.to_string().into()),
        (
            "TASK_CLAIM_TOKEN",
            t.claim_token
                .map(|c| c.to_string())
                .unwrap_or_default()
                .into(),
        ),
        (
            "TASK_METADATA",
            serde_json::Value::Object(t.metadata.clone())
                .to_string()
                .into(),
        ),
        ("TASK_FEEDBACK", t.feedback.as_deref().unwrap_or("").into()),
        (
            "TASK_SESSION",
            crate::model::claude_session(&t.metadata)
                .unwrap_or("")
                .into(),
        ),
    ];
    if let Some(dir) = &place.dir {
        env.push(("TASK_WORKTREE", dir.into()));
    }
    if let Some(branch) = &place.branch {
        env.push(("TASK_BRANCH", branch.into()));
    }
    env
}

/// `program args…` with the task in its environment, in its own process group, in the
/// attempt's directory. Shared by the command and its check.
fn command(argv: &[String], t: &Task, cx: &Context, place: &Place) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .envs(task_env(t, cx, place))
        .process_group(0);
    if let Some(dir) = &place.dir {
        c.current_dir(dir);
    }
    // No pre_exec hook (such as a parent-death signal): it would force fork() instead
    // of posix_spawn(), and fork() of this multi-threaded process costs more than
    // running `true`. The guardian kills the group if worker-spawn dies.
    c
}

/// Hand `data` to the child's stdin from a thread, so that a command that does not
/// read its input cannot block us.
fn feed(child: &mut Child, data: Vec<u8>) {
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
}

/// What runs a command: a child of ours, or with `--tmux` the shell of a tmux window.
pub enum Proc {
    Child(Child),
    Pane(super::tmux::Pane),
}

impl Proc {
    /// Its process group (the supervisor signals the whole group).
    pub fn id(&self) -> i32 {
        match self {
            Proc::Child(c) => c.id() as i32,
            Proc::Pane(p) => p.pgid(),
        }
    }

    /// The command itself has ended (what it started may still run).
    fn exited(&mut self) -> bool {
        match self {
            Proc::Child(c) => matches!(c.try_wait(), Ok(Some(_))),
            Proc::Pane(p) => p.exited(),
        }
    }

    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Proc::Child(c) => c.wait(),
            Proc::Pane(p) => Ok(p.wait()),
        }
    }

    /// The tmux window it ran in, if it ran in one.
    pub fn into_pane(self) -> Option<super::tmux::Pane> {
        match self {
            Proc::Child(_) => None,
            Proc::Pane(p) => Some(p),
        }
    }
}

/// A started command or check and the streams to read from it.
pub struct Started {
    pub proc: Proc,
    out: Option<File>,
    err: Option<File>,
    /// Copies of stdout and stderr (`--output-dir`).
    files: (Option<File>, Option<File>),
    /// With `--tmux`: what the window shows, stdout and stderr as they come.
    screen: Option<File>,
    max_output: u64,
    tail: usize,
}

pub fn spawn(
    command_line: &[String],
    t: &Task,
    cx: &Context,
    place: &Place,
) -> std::io::Result<Started> {
    let argv: Vec<String> = command_line.iter().map(|a| expand(a, t)).collect();
    let data = match cx.stdin {
        StdinMode::None => Vec::new(),
        StdinMode::Json => task_json(t).to_string().into_bytes(),
        _ => t.description.clone().into_bytes(),
    };
    if let Some((tmux, worker)) = cx.tmux {
        let stdin = (cx.stdin != StdinMode::None).then_some(data.as_slice());
        let env = task_env(t, cx, place);
        let w = tmux.start(worker, t, &argv, &env, stdin, place.dir.as_deref())?;
        return Ok(Started {
            proc: Proc::Pane(w.pane),
            out: Some(w.out),
            err: Some(w.err),
            files: output_files(t),
            screen: Some(w.screen),
            max_output: cx.max_output,
            tail: LOG_TAIL,
        });
    }
    let mut c = command(&argv, t, cx, place);
    c.stdin(if cx.stdin == StdinMode::None {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn()?;
    feed(&mut child, data);
    let (out, err) = (child.stdout.take(), child.stderr.take());
    Ok(Started {
        proc: Proc::Child(child),
        out: out.map(|o| File::from(OwnedFd::from(o))),
        err: err.map(|e| File::from(OwnedFd::from(e))),
        files: output_files(t),
        screen: None,
        max_output: cx.max_output,
        tail: LOG_TAIL,
    })
}

/// Start a check: `sh -c CHECK` with the task's environment, the command's stdout on its
/// stdin, its stdout and stderr read together (as a terminal would show them).
pub fn spawn_check(
    check: &str,
    t: &Task,
    cx: &Context,
    place: &Place,
    input: Vec<u8>,
) -> std::io::Result<Started> {
    let argv = ["sh".to_string(), "-c".to_string(), check.to_string()];
    let (reader, writer) = std::io::pipe()?;
    let mut c = command(&argv, t, cx, place);
    c.stdin(Stdio::piped())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let mut child = c.spawn()?;
    // Our copies of the write end go with the Command: then the read end sees EOF
    // when the check and what it started are done.
    drop(c);
    feed(&mut child, input);
    Ok(Started {
        proc: Proc::Child(child),
        out: None,
        err: Some(File::from(OwnedFd::from(reader))),
        files: (None, None),
        screen: None,
        max_output: 0,
        tail: CHECK_TAIL,
    })
}

/// What a finished command left behind.
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stdout_total: u64,
    /// The end of stdout, once it outgrew `--max-output` (what `stdout` lost): a Claude
    /// Code worker's result envelope is its last line.
    pub stdout_end: Vec<u8>,
    /// The end of stderr (of a check: of its whole output).
    pub stderr_tail: Vec<u8>,
}

impl Captured {
    /// Nothing captured but a message of our own.
    pub fn message(msg: String) -> Captured {
        Captured {
            stdout: Vec::new(),
            stdout_total: 0,
            stdout_end: Vec::new(),
            stderr_tail: msg.into_bytes(),
        }
    }

    /// The output a result envelope is looked for in: all of stdout when it was kept
    /// whole, else the end that `--max-output` cut off (its last line is the envelope).
    pub fn envelope_source(&self) -> &[u8] {
        if self.stdout_end.is_empty() {
            &self.stdout
        } else {
            &self.stdout_end
        }
    }

    pub fn result(&self, max: u64) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).into_owned();
        if self.stdout_total > max {
            s += &format!(
                "\n[worker-spawn: output truncated: first {max} of {} bytes kept]",
                self.stdout_total
            );
        }
        s
    }

    /// Add a line of our own at the end of the stderr tail.
    pub fn note(&mut self, line: &str) {
        if !self.stderr_tail.is_empty() && !self.stderr_tail.ends_with(b"\n") {
            self.stderr_tail.push(b'\n');
        }
        self.stderr_tail.extend_from_slice(line.as_bytes());
        self.stderr_tail.push(b'\n');
    }

    pub fn log(&self) -> Option<String> {
        (!self.stderr_tail.is_empty())
            .then(|| String::from_utf8_lossy(&self.stderr_tail).into_owned())
    }
}

/// The attempt's output files, where the claim said they are (the task's `logFile`).
fn output_files(t: &Task) -> (Option<File>, Option<File>) {
    let Some((out, err)) = t.log_files() else {
        return (None, None);
    };
    if let Some(dir) = out.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("worker-spawn: cannot create {}: {e}", dir.display());
            return (None, None);
        }
    }
    let open = |p: &Path| {
        File::create(p)
            .map_err(|e| eprintln!("worker-spawn: cannot write {}: {e}", p.display()))
            .ok()
    };
    (open(&out), open(&err))
}

/// Read stdout and stderr until both close, keeping the first `max_output` bytes of
/// stdout and the last bytes of stderr. If the command exits while something it
/// started still holds the pipes open, its process group is killed, so that nothing
/// outlives the task.
pub fn capture(s: &mut Started) -> Captured {
    let (mut out_file, mut err_file) = (s.files.0.take(), s.files.1.take());
    let mut stdout = s.out.take();
    let mut stderr = s.err.take();
    // Dropped at the end: then the window's shell can end.
    let mut screen = s.screen.take();
    let proc = &mut s.proc;
    let mut cap = Captured {
        stdout: Vec::new(),
        stdout_total: 0,
        stdout_end: Vec::new(),
        stderr_tail: Vec::new(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let pgid = Pid::from_raw(proc.id());
    while stdout.is_some() || stderr.is_some() {
        let ready = {
            let mut fds: Vec<PollFd> = Vec::with_capacity(2);
            if let Some(o) = &stdout {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            if let Some(e) = &stderr {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(200u8)) {
                Ok(0) => None,
                Ok(_) => Some(
                    fds.iter()
                        .map(|f| f.any().unwrap_or(true))
                        .collect::<Vec<bool>>(),
                ),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => Some(vec![true; fds.len()]),
            }
        };
        let Some(ready) = ready else {
            // Quiet for a while: if the command itself has exited, whatever still holds
            // the pipes is a straggler of its process group.
            if proc.exited() {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            continue;
        };
        let mut i = 0;
        if stdout.is_some() {
            if ready[i] {
                let o = stdout.as_mut().expect("checked");
                match o.read(&mut buf) {
                    Ok(0) | Err(_) => stdout = None,
                    Ok(n) => {
                        let keep = (s.max_output.saturating_sub(cap.stdout_total) as usize).min(n);
                        cap.stdout.extend_from_slice(&buf[..keep]);
                        cap.stdout_total += n as u64;
                        if keep < n {
                            keep_end(&mut cap.stdout_end, &buf[keep..n], STDOUT_END);
                        }
                        if let Some(f) = &mut out_file {
                            let _ = f.write_all(&buf[..n]);
                        }
                        super::tmux::show(&mut screen, &buf[..n]);
                    }
                }
            }
            i += 1;
        }
        if stderr.is_some() && ready[i] {
            let e = stderr.as_mut().expect("checked");
            match e.read(&mut buf) {
                Ok(0) | Err(_) => stderr = None,
                Ok(n) => {
                    cap.stderr_tail.extend_from_slice(&buf[..n]);
                    if cap.stderr_tail.len() > 2 * s.tail {
                        cap.stderr_tail.drain(..cap.stderr_tail.len() - s.tail);
                    }
                    if let Some(f) = &mut err_file {
                        let _ = f.write_all(&buf[..n]);
                    }
                    super::tmux::show(&mut screen, &buf[..n]);
                }
            }
        }
    }
    if cap.stderr_tail.len() > s.tail {
        cap.stderr_tail.drain(..cap.stderr_tail.len() - s.tail);
    }
    cap
}

/// How much of stdout's end is kept past `--max-output`: room for a result envelope.
const STDOUT_END: usize = 1024 * 1024;

/// Append `bytes` to `end`, keeping at most its last `max` bytes (trimmed in batches).
fn keep_end(end: &mut Vec<u8>, bytes: &[u8], max: usize) {
    end.extend_from_slice(bytes);
    if end.len() > 2 * max {
        end.drain(..end.len() - max);
    }
}

/// The exitCode recorded for a finished command: its code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as i64,
        (None, Some(s)) => 128 + s as i64,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, TaskId};

    fn task() -> Task {
        Task {
            id: TaskId(7),
            list: "l".into(),
            key: None,
            subject: "S {id}".into(),
            description: "$(rm -rf /)".into(),
            active_form: None,
            status: Status::InProgress,
            owner: None,
            blocked_by: vec![],
            open_blockers: vec![],
            blocks: vec![],
            priority: 0,
            depth: 0,
            metadata: Default::default(),
            scopes: Vec::new(),
            verify: None,
            feedback: Some("2 tests failed\n".into()),
            attempts: 2,
            max_attempts: 3,
            result: None,
            log: None,
            exit_code: None,
            claim_token: None,
            lease_until: None,
            holder: None,
            output_dir: None,
            cost_usd: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn placeholders() {
        let t = task();
        assert_eq!(expand("{id}-{attempt}@{list}", &t), "7-2@l");
        assert_eq!(expand("{{id}} {subject}", &t), "{id} S {id}");
        assert_eq!(expand("{description}", &t), "$(rm -rf /)");
        assert_eq!(expand("awk '{print $1}' }", &t), "awk '{print $1}' }");
        assert_eq!(expand("{", &t), "{");
        assert_eq!(
            expand("Fix it.{feedback}", &t),
            "Fix it.\n\nA previous attempt at this task did not pass its check. The check said:\n2 tests failed\n"
        );
        let first = Task {
            feedback: None,
            ..task()
        };
        assert_eq!(expand("Fix it.{feedback}", &first), "Fix it.");
    }
}
