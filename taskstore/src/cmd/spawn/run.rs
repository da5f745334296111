//! Running one claimed task: its worktree, its command and check under the supervisor's
//! watch, the result envelope, and recording the outcome (completed, retried, failed).

use super::{changed, child, envelope, tmux, worktree, Running, Shared, Stop};
use crate::cli::SpawnArgs;
use crate::error::Kind;
use crate::model::{Status, Task};
use crate::store::Outcome;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// How a command or a check ended.
struct Ran {
    stop: Option<Stop>,
    code: i64,
    cap: child::Captured,
    /// `--tmux`: the window the command ran in.
    window: Option<tmux::Pane>,
}

impl Ran {
    fn message(code: i64, msg: String) -> Ran {
        Ran {
            stop: None,
            code,
            cap: child::Captured::message(msg),
            window: None,
        }
    }
}

/// Run a started command or check to its end under the supervisor's watch (timeout,
/// lease renewal, signals).
fn execute(shared: &Shared, n: usize, task: &Task, token: i64, mut st: child::Started) -> Ran {
    let a = &shared.args;
    let pgid = st.proc.id();
    shared.guardian.watch(pgid);
    shared.running().insert(
        n,
        Running {
            task: task.clone(),
            token,
            seen: shared.claim_seen[n].load(SeqCst),
            pgid,
            deadline: a.timeout.map(|t| Instant::now() + t),
            stop: None,
            killed: false,
        },
    );
    // A signal that arrived between the claim and the registration.
    if shared.shutdown.load(SeqCst) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        if let Some(r) = shared.running().get_mut(&n) {
            r.stop = Some((Stop::Shutdown, Instant::now()));
        }
    }
    let mut cap = child::capture(&mut st);
    let status = st.proc.wait();
    // Nothing the command started outlives its task.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    shared.guardian.unwatch(pgid);
    let (stop, killed) = shared
        .running()
        .remove(&n)
        .map_or((None, false), |r| (r.stop.map(|(s, _)| s), r.killed));
    let code = match (stop, status) {
        (Some(Stop::Timeout), _) => 124,
        (_, Ok(st)) => child::exit_code(st),
        (_, Err(_)) => 1,
    };
    if stop == Some(Stop::Timeout) {
        cap.note(&timeout_note(a, killed));
    }
    Ran {
        stop,
        code,
        cap,
        window: st.proc.into_pane(),
    }
}

/// Run the task's check after its command succeeded; on failure, the attempt's log
/// gets a `verify:` line and the check's output, and the output is returned (the
/// feedback for the next attempt).
fn verify(
    shared: &Shared,
    n: usize,
    task: &Task,
    token: i64,
    cx: &child::Context,
    place: &child::Place,
    ran: &mut Ran,
) -> Option<String> {
    let check = task.verify.as_deref().or(shared.args.verify.as_deref())?;
    let input = ran.cap.stdout.clone();
    let checked = match child::spawn_check(check, task, cx, place, input) {
        Ok(st) => execute(shared, n, task, token, st),
        Err(e) => Ran::message(127, format!("worker-spawn: cannot run sh: {e}\n")),
    };
    match checked.stop {
        Some(s @ (Stop::Shutdown | Stop::Lost | Stop::Changed)) => {
            ran.stop = Some(s);
            None
        }
        _ if checked.code == 0 => None,
        _ => {
            let output = checked.cap.log().unwrap_or_default();
            ran.cap
                .note(&format!("verify: `{check}` exited {}", checked.code));
            if !output.trim().is_empty() {
                ran.cap.note(output.trim_end());
            }
            ran.code = checked.code;
            Some(output)
        }
    }
}

pub(super) fn run_task(shared: &Shared, n: usize, task: Task, cx: &child::Context) {
    let a = &shared.args;
    let list = &a.store.list;
    let token = task.claim_token.unwrap_or_default();
    let mut place = child::Place::default();
    let mut tree = None;
    // Exit code recorded: none when the command never ran (its worktree failed).
    let mut recorded_code = true;
    // A failure that running again cannot mend (a merge conflict of its blockers).
    let mut for_good = false;
    let mut ran = None;
    if let Some(w) = &shared.worktrees {
        match w.prepare(&task) {
            worktree::Prepared::Ready(t, notes) => {
                place.dir = Some(t.path.clone());
                place.branch = Some(t.branch.clone());
                tree = Some((t, notes));
            }
            worktree::Prepared::Conflict(msg) => {
                for_good = true;
                recorded_code = false;
                ran = Some(Ran::message(1, msg));
            }
            worktree::Prepared::Failed(msg) => {
                recorded_code = false;
                ran = Some(Ran::message(1, msg));
            }
        }
    }
    let mut ran = ran.unwrap_or_else(|| match child::spawn(&a.command, &task, cx, &place) {
        Ok(st) => execute(shared, n, &task, token, st),
        // No window could be opened: the task is not to blame. It goes back, its attempt
        // given back, and the pool stops (exit 2), as it does when tmux is missing.
        Err(e) if cx.tmux.is_some() => {
            shared.fail(crate::error::Error::usage(format!(
                "--tmux: cannot open a window for task {}: {e}; it was handed back",
                task.id
            )));
            Ran {
                stop: Some(Stop::Shutdown),
                ..Ran::message(1, String::new())
            }
        }
        // As a shell says it: 126 found but not executable, 127 not found.
        Err(e) => Ran::message(
            match e.kind() {
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 127,
            },
            format!(
                "worker-spawn: cannot run '{}': {e}\n",
                child::expand(&a.command[0], &task)
            ),
        ),
    });
    // A Claude Code worker's result envelope: its answer is the result, its own verdict
    // counts as much as the exit code, and its session and cost are kept.
    let mut metadata = serde_json::Map::new();
    let agent = ran
        .stop
        .is_none()
        .then(|| envelope::parse(ran.cap.envelope_source()))
        .flatten();
    let agent_failed = agent.as_ref().is_some_and(|e| e.is_error);
    if let Some(e) = &agent {
        metadata.insert("claude".into(), e.metadata(&task.metadata));
        if e.is_error {
            ran.cap.note(&e.failure_line());
        }
    }
    let mut check_failed = None;
    if ran.stop.is_none() && ran.code == 0 && !agent_failed {
        check_failed = verify(shared, n, &task, token, cx, &place, &mut ran);
    }
    if let (Some(w), Some((t, notes))) = (&shared.worktrees, &tree) {
        for line in notes {
            ran.cap.note(line);
        }
        if ran.stop.is_none() && ran.code == 0 && !agent_failed {
            match w.commit(t, &task) {
                Ok(commit) => {
                    metadata.insert(
                        "git".into(),
                        serde_json::json!({ "branch": t.branch, "commit": commit }),
                    );
                }
                Err(msg) => {
                    ran.cap.note(&msg);
                    ran.code = 1;
                }
            }
        }
        if ran.stop.is_none() {
            let kept = w.done(t, ran.code == 0 && !agent_failed);
            if !kept.is_empty() {
                ran.cap.note(kept.trim_start());
            }
        }
    }
    let Ran {
        stop,
        code,
        cap,
        window,
    } = ran;
    // A command that cannot be started (126, 127) fails the same way every time; so do
    // the exit codes the user names as permanent (--no-retry-on).
    if stop.is_none() && (code == 126 || code == 127 || a.no_retry_on.contains(&code)) {
        for_good = true;
    }
    let ok = code == 0 && !agent_failed;
    let outcome = |status| Outcome {
        status,
        result: Some(match agent.as_ref() {
            Some(e) => e.result.clone().unwrap_or_default(),
            None => cap.result(a.max_output),
        }),
        cost_usd: agent.as_ref().and_then(|e| e.cost_usd),
        log: cap.log(),
        exit_code: recorded_code.then_some(code),
        check_failed: check_failed.clone(),
        metadata: metadata.clone(),
    };
    let result = match stop {
        Some(Stop::Shutdown) => shared.store().unclaim(list, task.id, token, true),
        Some(Stop::Lost) => Ok(()),
        Some(Stop::Changed) => changed::settle_changed(shared, &task, cx.owner),
        _ if ok => shared
            .store()
            .finish(list, task.id, token, &outcome(Status::Completed))
            .map(|_| {
                shared.completed.fetch_add(1, SeqCst);
                // A completed task's window has nothing left to read. Any other
                // outcome's stays, until the task runs again.
                if let Some(w) = &window {
                    w.close();
                }
            }),
        _ if !for_good && task.attempts < task.max_attempts && !shared.shutdown.load(SeqCst) => {
            hold_for(shared, &task, token, a.retry_delay);
            if shared.shutdown.load(SeqCst) {
                shared.store().unclaim(list, task.id, token, false)
            } else {
                shared
                    .store()
                    .finish(list, task.id, token, &outcome(Status::Pending))
                    .map(|_| {
                        shared.retried.fetch_add(1, SeqCst);
                    })
            }
        }
        _ => shared
            .store()
            .finish(list, task.id, token, &outcome(Status::Failed))
            .map(|_| {
                shared.failed.fetch_add(1, SeqCst);
                let why = match (check_failed.is_some(), recorded_code) {
                    _ if code == 0 && agent_failed => agent
                        .as_ref()
                        .map_or_else(String::new, |e| format!("claude: {}", e.subtype)),
                    (true, _) => format!("its check exited {code}"),
                    (_, true) if for_good && task.attempts < task.max_attempts => {
                        format!("exit code {code}, not retried")
                    }
                    (_, true) => format!("exit code {code}"),
                    (_, false) if for_good => "its blockers' branches do not merge".into(),
                    (_, false) => "its worktree could not be prepared".into(),
                };
                eprintln!("worker-spawn: task {} failed ({why})", task.id);
                if a.fail_fast {
                    shared.stop.store(true, SeqCst);
                }
            }),
    };
    shared.committed();
    let result = match result {
        // Refused: the claim is no longer ours. Taken over by another claim, or the task
        // changed from outside (or by its own command) before we saw it while it ran.
        Err(e) if e.kind == Kind::Conflict => changed::settle_changed(shared, &task, cx.owner),
        r => r,
    };
    if let Err(e) = result {
        shared.fail(e);
    }
}

/// The log line of a command killed by `--timeout`: after how long, and whether SIGTERM
/// ended it or SIGKILL was needed.
fn timeout_note(a: &SpawnArgs, killed: bool) -> String {
    let t = humantime::format_duration(a.timeout.unwrap_or_default());
    let k = humantime::format_duration(a.kill_after);
    let how = if killed {
        format!("it did not end within {k} (--kill-after) of SIGTERM, so it got SIGKILL")
    } else {
        "it ended after SIGTERM".into()
    };
    format!("worker-spawn: timed out after {t} (--timeout): {how}")
}

/// The retry delay holds the claim (so nobody takes the task early), renewing its
/// lease as the supervisor would; a signal cuts it short.
fn hold_for(shared: &Shared, task: &Task, token: i64, d: Duration) {
    let lease = shared.args.lease;
    let renew_every = (lease / 3).max(Duration::from_millis(100));
    let end = Instant::now() + d;
    let mut renewed = Instant::now();
    while Instant::now() < end && !shared.shutdown.load(SeqCst) {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
        if renewed.elapsed() >= renew_every {
            renewed = Instant::now();
            let result = shared
                .store()
                .renew(&shared.args.store.list, task.id, token, lease);
            if result.is_ok() {
                shared.committed();
            }
        }
    }
}
