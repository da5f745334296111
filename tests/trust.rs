//! What a caller can trust: a task cancelled, deleted or released while worker-spawn runs
//! its command stops that command and keeps the decision; a command that finishes its own
//! task keeps its outcome; reopening gives a fresh budget; `task-wait --cancel-rest`;
//! an idle pool waits for a claim elsewhere only when it could gain from it;
//! `task-update --claim --wait [--timeout]`; a ghost owner cannot finish a task it no
//! longer holds; commands that cannot start and `--no-retry-on` fail at once.
//!
//! Commands run in the store's temporary folder, so the files they write (`$TASK_ID.pid`,
//! `runs`) are read from `s.dir()`. A command that writes `echo $$ > FILE` leads its own
//! process group, so its pid is also the group to check with `group_gone`.

mod procs;
mod util;

use procs::{group_gone, read_pid, Bg};
use serde_json::Value;
use util::{assert_failure, pairs, parse_json, statuses, wait_until, Run, Store, DEADLINE};

/// Start `worker-spawn ARGS…` in the background.
fn spawn_bg(s: &Store, args: &[&str]) -> Bg {
    Bg::start(s, "worker-spawn", args)
}

/// Run `worker-spawn ARGS…` to its end (a hang fails the test at the deadline).
fn spawn(s: &Store, args: &[&str]) -> Run {
    spawn_bg(s, args).wait()
}

/// [`spawn_bg`] with the tests' binaries first on `PATH`, for commands that call
/// `task-update` on their own task.
fn spawn_bg_with_path(s: &Store, args: &[&str]) -> Bg {
    let mut c = s.std_cmd("worker-spawn");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![util::bin_dir()];
    dirs.extend(std::env::split_paths(&path));
    c.env("PATH", std::env::join_paths(dirs).expect("a valid PATH"))
        .args(args);
    Bg::spawn("worker-spawn", c)
}

/// A file the commands wrote into the store's folder ("" when missing).
fn read(s: &Store, name: &str) -> String {
    std::fs::read_to_string(s.dir().join(name)).unwrap_or_default()
}

fn status(t: &Value) -> &str {
    t["status"].as_str().expect("a status")
}

/// The task's history: `task-list ID --history --format json`, oldest event first.
fn history(s: &Store, id: &str) -> Vec<Value> {
    let out = s.ok("task-list", [id, "--history", "--format", "json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
        .as_array()
        .expect("a JSON array")
        .clone()
}

/// The texts of the task's `note` events.
fn notes(s: &Store, id: &str) -> Vec<String> {
    history(s, id)
        .iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["text"].as_str().expect("a note has text").to_string())
        .collect()
}

/// `task-update ARGS…` run as user `user` (the name the history records), which must
/// succeed.
fn update_as(s: &Store, user: &str, args: &[&str]) {
    s.exec_with(
        "task-update",
        args,
        &[("USER", user), ("LOGNAME", user)],
        None,
    )
    .success();
}

// ---------------------------------------------------------------------------------------
// 1. Cancel means stop

/// The command ignores SIGTERM (so does the `sleep` it waits for, which inherits that):
/// only the SIGKILL that follows `--kill-after` ends its group. The old pool noticed only
/// at its next lease renewal (10 s later), called it a takeover, wrote no note and counted
/// nothing.
#[test]
fn cancelling_a_running_task_stops_its_command_and_keeps_it_cancelled() {
    let s = Store::new();
    s.create("long", &[]);
    let w = spawn_bg(
        &s,
        &[
            "--owner-prefix",
            "pool",
            "--kill-after",
            "300ms",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo $$ > $TASK_ID.pid; sleep 300; echo finished",
        ],
    );
    let pgid = read_pid(&s.dir().join("1.pid"));
    assert_eq!(status(&s.json("1")), "in_progress");
    update_as(&s, "boss", &["1", "-s", "cancelled"]);
    wait_until(DEADLINE, || group_gone(pgid));
    let r = w.wait().expect_code(0);
    assert!(
        r.stderr.contains(
            "worker-spawn: task #1 was cancelled by boss while running; its command was stopped"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("worker-spawn: 0 completed, 0 failed, 0 retried, 1 stopped in "),
        "summary: {}",
        r.stderr
    );

    // The cancellation stands: no outcome of the command was recorded over it.
    let t = s.json("1");
    assert_eq!(status(&t), "cancelled", "{t}");
    assert_eq!(t["result"], Value::Null, "{t}");
    assert_eq!(t["exitCode"], Value::Null, "{t}");
    assert_eq!(t["attempts"], 1, "{t}");

    // The history says who cancelled it, in a note by the worker that ran it.
    let h = history(&s, "1");
    let last = h.last().expect("events");
    assert_eq!(last["event"], "note", "{h:?}");
    let worker = t["owner"].as_str().expect("the worker that ran it");
    assert!(worker.starts_with("pool-"), "{t}");
    assert_eq!(last["by"], worker, "{h:?}");
    let text = last["text"].as_str().expect("a note text");
    assert!(
        text.starts_with("stopped: cancelled by ") && text.ends_with(" while running"),
        "{text}"
    );
    assert_eq!(text, "stopped: cancelled by boss while running");
}

/// Deleted: nothing is left to record anything on; the command is stopped (SIGTERM is
/// enough here) and the pool says so.
#[test]
fn deleting_a_running_task_stops_its_command() {
    let s = Store::new();
    s.create("long", &[]);
    let w = spawn_bg(
        &s,
        &["--", "sh", "-c", "echo $$ > $TASK_ID.pid; exec sleep 300"],
    );
    let pgid = read_pid(&s.dir().join("1.pid"));
    s.ok("task-update", ["1", "--delete"]);
    wait_until(DEADLINE, || group_gone(pgid));
    let r = w.wait().expect_code(0);
    assert!(
        r.stderr
            .contains("worker-spawn: task #1 was deleted while running; its command was stopped"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("worker-spawn: 0 completed, 0 failed, 0 retried, 1 stopped in "),
        "summary: {}",
        r.stderr
    );
    // It did not come back.
    let r = s.exec("task-list", ["1"]);
    assert_failure(&r, "task-list", 3, &["#1"]);
    assert!(s.tasks(&[]).is_empty());
}

/// A pool with one worker (`-j 1`, or the others retired by `--max-tasks`), running the
/// tasks in id order: #1 is cancelled while its command runs; #2's command completes its
/// own task and goes on; #3 is released (back to pending, its attempt given back;
/// `--max-tasks 3` keeps the pool from running it again). Each is settled as with more
/// workers.
fn a_single_worker_pool_sees_its_tasks_changed() {
    let s = Store::new();
    for i in 1..=3 {
        s.create(&format!("t{i}"), &[]);
    }
    let w = spawn_bg_with_path(
        &s,
        &[
            "-j",
            "1",
            "--max-tasks",
            "3",
            "--",
            "sh",
            "-c",
            r#"if [ "$TASK_ID" = 2 ]; then
                   task-update 2 -s completed --token "$TASK_CLAIM_TOKEN" --result mine
               fi
               echo $$ > $TASK_ID.pid; exec sleep 300"#,
        ],
    );
    for (id, args, what) in [
        ("1", ["1", "-s", "cancelled"].as_slice(), "cancelled"),
        ("3", ["3", "--release"].as_slice(), "released"),
    ] {
        let pgid = read_pid(&s.dir().join(format!("{id}.pid")));
        update_as(&s, "boss", args);
        wait_until(DEADLINE, || group_gone(pgid));
        wait_until(DEADLINE, || !notes(&s, id).is_empty());
        assert_eq!(
            notes(&s, id),
            [format!("stopped: {what} by boss while running")],
            "{:?}",
            history(&s, id)
        );
    }
    let r = w.wait().expect_code(0);
    assert!(!r.stderr.contains("taken over"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("worker-spawn: 1 completed, 0 failed, 0 retried, 2 stopped in "),
        "summary: {}",
        r.stderr
    );
    assert_eq!(status(&s.json("1")), "cancelled");
    let t = s.json("2");
    assert_eq!((status(&t), &t["result"]), ("completed", &"mine".into()));
    assert!(notes(&s, "2").is_empty(), "{:?}", history(&s, "2"));
    let t = s.json("3");
    assert_eq!(
        (status(&t), &t["owner"], &t["attempts"]),
        ("pending", &Value::Null, &0.into()),
        "{t}"
    );
}

/// A pool whose only worker is busy running its command still sees its task changed.
/// (On PostgreSQL its change counter counted only the notifications a query or a wait
/// had read off the connection, and a busy `-j 1` pool makes neither: it found out at its
/// next lease renewal, 10 s later, and called it a takeover.)
#[test]
fn a_single_worker_pool_stops_commands_whose_tasks_changed() {
    a_single_worker_pool_sees_its_tasks_changed();
}

// ---------------------------------------------------------------------------------------
// 2. A command that finishes its own task

/// The command completes its own task with its token, then goes on (`sleep 300`): the
/// pool ends it, and the completion is the task's outcome, not a stop. (The old pool
/// ended it only at its next lease renewal, 10 s later, calling it a takeover and
/// counting nothing.)
#[test]
fn a_command_that_completes_its_own_task_keeps_its_result_and_is_ended() {
    let s = Store::new();
    s.create("self-reporting", &[]);
    let script = r#"
        task-update "$TASK_ID" -s completed --token "$TASK_CLAIM_TOKEN" --result mine || exit 9
        echo $$ > $TASK_ID.pid
        exec sleep 300
    "#;
    let r = spawn_bg_with_path(&s, &["--", "sh", "-c", script])
        .wait()
        .expect_code(0);
    // The pid file may or may not have been written before the pool ended the command;
    // if it was, that process is gone.
    if let Ok(p) = std::fs::read_to_string(s.dir().join("1.pid")) {
        let pid: u32 = p.trim().parse().expect("a pid");
        wait_until(DEADLINE, || group_gone(pid));
    }
    assert!(
        r.stderr
            .contains("worker-spawn: 1 completed, 0 failed, 0 retried in "),
        "summary: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("stopped"), "{}", r.stderr);
    let t = s.json("1");
    assert_eq!(status(&t), "completed", "{t}");
    assert_eq!(t["result"], "mine", "{t}");
    assert!(
        notes(&s, "1").iter().all(|n| !n.starts_with("stopped:")),
        "{:?}",
        history(&s, "1")
    );
}

/// A command that completes or fails its own task with its token and then simply exits —
/// the common case — counts as its own outcome, also when it exits before the pool saw
/// the change. (The pool then tried to record the exit code with the old token, was
/// refused, said `task #N was taken over by another worker` and counted nothing: a pool
/// whose commands all failed their own tasks could exit 0.)
#[test]
fn a_command_that_finishes_its_own_task_and_exits_is_counted_as_its_outcome() {
    const N: usize = 5;
    for (st, code) in [("completed", 0), ("failed", 1)] {
        let s = Store::new();
        for i in 1..=N {
            s.create(&format!("t{i}"), &[]);
        }
        let script =
            format!(r#"task-update "$TASK_ID" -s {st} --token "$TASK_CLAIM_TOKEN" --result mine"#);
        let r = spawn_bg_with_path(&s, &["-j", "1", "--", "sh", "-c", &script]).wait();
        for t in s.tasks(&[]) {
            assert_eq!((status(&t), &t["result"]), (st, &"mine".into()), "{t}");
        }
        assert!(!r.stderr.contains("taken over"), "{st}: {}", r.stderr);
        let (c, f) = if st == "completed" { (N, 0) } else { (0, N) };
        assert!(
            r.stderr.contains(&format!(
                "worker-spawn: {c} completed, {f} failed, 0 retried in "
            )),
            "{st}: summary: {}",
            r.stderr
        );
        assert_eq!(r.code, code, "{st}: {}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// 3. Reopening gives a fresh budget

/// Each run of the command appends a line to `runs`. Before, reopening kept the attempts
/// used (2 of 2): the next pool could not run the task twice again.
#[test]
fn reopening_a_failed_task_gives_it_a_fresh_budget() {
    let s = Store::new();
    s.create("flaky", &["--max-attempts", "2"]);
    let cmd = ["--", "sh", "-c", "echo $TASK_ATTEMPT >> runs; exit 3"];
    let r = spawn(&s, &cmd).expect_code(1);
    assert!(r.stderr.contains("1 failed, 1 retried"), "{}", r.stderr);
    let t = s.json("1");
    assert_eq!((status(&t), &t["attempts"]), ("failed", &2.into()), "{t}");
    assert_eq!(read(&s, "runs"), "1\n2\n");

    // Retry the failed, as the README says.
    let r = s.sh("task-list -s failed --format ids | task-update - -s pending");
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let t = s.json("1");
    assert_eq!((status(&t), &t["attempts"]), ("pending", &0.into()), "{t}");
    spawn(&s, &cmd).expect_code(1);
    assert_eq!(read(&s, "runs"), "1\n2\n1\n2\n", "two more runs");
    assert_eq!(s.json("1")["attempts"], 2);

    // A bigger budget, set by hand: three runs.
    s.ok("task-update", ["1", "--max-attempts", "3"]);
    s.ok("task-update", ["1", "-s", "pending"]);
    let t = s.json("1");
    assert_eq!((&t["attempts"], &t["maxAttempts"]), (&0.into(), &3.into()));
    spawn(&s, &cmd).expect_code(1);
    assert_eq!(read(&s, "runs"), "1\n2\n1\n2\n1\n2\n3\n");
    let t = s.json("1");
    assert_eq!((status(&t), &t["attempts"]), ("failed", &3.into()), "{t}");
}

// ---------------------------------------------------------------------------------------
// 4. task-wait --any --cancel-rest

/// Three tasks run at once by one pool: #1 finishes once `go` exists (after the others'
/// commands have started), #2 and #3 sleep. `task-wait 1 2 3 --any [--cancel-rest]` is
/// waiting before #1 finishes. Returns the pool, the wait's result and the losers' pids.
fn race(s: &Store, cancel_rest: bool) -> (Bg, Run, Vec<u32>) {
    for i in 1..=3 {
        s.create(&format!("t{i}"), &[]);
    }
    let pool = spawn_bg(
        s,
        &[
            "-j",
            "3",
            "--",
            "sh",
            "-c",
            r#"if [ "$TASK_ID" = 1 ]; then
                   while [ ! -e go ]; do sleep 0.01; done; echo win
               else
                   echo $$ > $TASK_ID.pid; exec sleep 300
               fi"#,
        ],
    );
    let pids: Vec<u32> = ["2.pid", "3.pid"]
        .iter()
        .map(|f| read_pid(&s.dir().join(f)))
        .collect();
    let mut args = vec!["1", "2", "3", "--any", "--format", "json"];
    if cancel_rest {
        args.push("--cancel-rest");
    }
    let mut waiter = Bg::start(s, "task-wait", &args);
    waiter.wait_for_handlers();
    s.file("go", "");
    let r = waiter.wait().expect_code(0);
    (pool, r, pids)
}

#[test]
fn cancel_rest_cancels_the_losers_and_the_pool_stops_their_commands() {
    let s = Store::new();
    let (pool, r, pids) = race(&s, true);
    assert_eq!(
        statuses(&parse_json(&r.stdout)),
        pairs(&[("1", "completed"), ("2", "cancelled"), ("3", "cancelled")]),
        "{}",
        r.stdout
    );
    for pid in pids {
        wait_until(DEADLINE, || group_gone(pid));
    }
    let r = pool.wait().expect_code(0);
    assert!(
        r.stderr
            .contains("worker-spawn: 1 completed, 0 failed, 0 retried, 2 stopped in "),
        "summary: {}",
        r.stderr
    );
    let t = s.json("1");
    assert_eq!((status(&t), &t["result"]), ("completed", &"win\n".into()));
    for id in ["2", "3"] {
        let t = s.json(id);
        assert_eq!(
            (status(&t), &t["result"]),
            ("cancelled", &Value::Null),
            "{t}"
        );
        assert_eq!(
            notes(&s, id),
            ["stopped: cancelled by task-wait while running"],
            "{:?}",
            history(&s, id)
        );
    }
}

#[test]
fn without_cancel_rest_the_losers_keep_running() {
    let s = Store::new();
    let (pool, r, pids) = race(&s, false);
    assert_eq!(
        statuses(&parse_json(&r.stdout)),
        pairs(&[
            ("1", "completed"),
            ("2", "in_progress"),
            ("3", "in_progress")
        ]),
        "{}",
        r.stdout
    );
    assert_eq!(s.json("2")["status"], "in_progress");
    assert_eq!(s.json("3")["status"], "in_progress");
    for pid in &pids {
        assert!(!procs::gone(*pid), "a loser's command was stopped");
    }
    // Stopped by hand: SIGTERM gives them back.
    pool.signal("TERM");
    let r = pool.wait().expect_code(143);
    assert!(!r.stderr.contains("stopped in"), "{}", r.stderr);
    for pid in pids {
        wait_until(DEADLINE, || group_gone(pid));
    }
    assert_eq!(s.json("2")["status"], "pending");
    assert_eq!(s.json("3")["status"], "pending");
}

// ---------------------------------------------------------------------------------------
// 5. The idle rule

/// A shell worker claimed #1 without a lease and (say) died; nothing waits on #1. The
/// pool runs #2 and ends, instead of waiting for ever for #1 (as the old pool did: it
/// waited while anything at all was in progress).
#[test]
fn an_idle_pool_does_not_wait_for_a_lease_less_claim_nothing_needs() {
    let s = Store::new();
    s.create("held by a dead shell", &[]);
    s.create("other work", &[]);
    assert_eq!(
        s.ok("task-update", ["--claim", "1", "--owner", "shellw"]),
        "1\n"
    );
    let r = spawn(&s, &["--", "sh", "-c", "echo $TASK_ID >> ran"]).expect_code(0);
    assert!(!r.stderr.contains("waiting for"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("worker-spawn: 1 completed, 0 failed, 0 retried in "),
        "{}",
        r.stderr
    );
    assert_eq!(read(&s, "ran"), "2\n");
    let t = s.json("1");
    assert_eq!((status(&t), &t["owner"]), ("in_progress", &"shellw".into()));
    assert_eq!(s.json("2")["status"], "completed");
}

/// The same claim, but #2 is blocked by it: the pool waits, naming the claim and how to
/// free it, and runs #2 once #1 is completed.
#[test]
fn an_idle_pool_waits_for_a_lease_less_claim_that_blocks_its_work_and_says_so() {
    let s = Store::new();
    s.create("held by a shell", &[]);
    s.create("after it", &["-b", "1"]);
    assert_eq!(
        s.ok("task-update", ["--claim", "1", "--owner", "shellw"]),
        "1\n"
    );
    let mut w = spawn_bg(&s, &["--", "sh", "-c", "echo $TASK_ID >> ran"]);
    let head = "worker-spawn: waiting for #1 (in progress by shellw since ";
    w.wait_for_stderr(head);
    let tail = " UTC, no lease — task-update 1 --release gives it back)\n";
    wait_until(DEADLINE, || w.stderr().contains(tail));
    let err = w.stderr();
    let line = err
        .lines()
        .find(|l| l.starts_with(head))
        .expect("the waiting line");
    let hhmm = &line[head.len()..line.len() - tail.len() + 1];
    // The time it was claimed, as HH:MM UTC.
    let started = s.json("1")["startedAt"]
        .as_str()
        .expect("startedAt")
        .to_string();
    assert_eq!(hhmm, &started[11..16], "{line}");
    assert!(w.running(), "it ended while #2 waited on #1");
    assert_eq!(read(&s, "ran"), "");

    s.ok("task-update", ["1", "-s", "completed"]);
    let r = w.wait().expect_code(0);
    assert!(
        r.stderr
            .contains("worker-spawn: 1 completed, 0 failed, 0 retried in "),
        "{}",
        r.stderr
    );
    assert_eq!(read(&s, "ran"), "2\n");
    assert_eq!(s.json("2")["status"], "completed");
}

// ---------------------------------------------------------------------------------------
// 6. task-update --claim --wait [--timeout]

/// #1 in progress elsewhere blocks #2, the only pending task.
fn blocked_behind_other(s: &Store) {
    s.create("held elsewhere", &[]);
    s.create("after it", &["-b", "1"]);
    assert_eq!(s.ok("task-update", ["--claim", "--owner", "other"]), "1\n");
}

#[test]
fn claim_wait_waits_until_a_task_is_claimable() {
    let s = Store::new();
    blocked_behind_other(&s);
    let mut w = Bg::start(
        &s,
        "task-update",
        &["--claim", "--wait", "--owner", "w", "--format", "ids"],
    );
    // While it waits, another claim bounded by --timeout gives up (and lets time pass
    // without a fixed sleep); the first is still waiting, having printed nothing.
    let r = s.exec(
        "task-update",
        ["--claim", "--wait", "--owner", "w2", "--timeout", "300ms"],
    );
    assert_eq!(r.code, 124, "{r:?}");
    assert!(
        w.running(),
        "--claim --wait returned while #1 was in progress"
    );
    assert_eq!((w.stdout(), w.stderr()), (String::new(), String::new()));
    assert_eq!(s.json("2")["status"], "pending");

    s.ok("task-update", ["1", "-s", "completed", "--owner", "other"]);
    let r = w.wait().expect_code(0);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("2\n", ""));
    let t = s.json("2");
    assert_eq!((status(&t), &t["owner"]), ("in_progress", &"w".into()));
}

/// Nothing open that could become claimable: exit 1 at once, silently, as a plain
/// `--claim` with nothing to claim — the end of a shell worker's loop. (A hang would be
/// killed at the deadline and fail.)
#[test]
fn claim_wait_ends_with_1_when_nothing_could_become_claimable() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    s.ok("task-update", ["1", "-s", "completed"]);
    s.ok("task-update", ["2", "-s", "completed"]);
    let claim = |s: &Store, extra: &[&str]| {
        let mut args = vec!["--claim", "--wait", "--owner", "w"];
        args.extend_from_slice(extra);
        let before = s.snapshot();
        let r = Bg::start(s, "task-update", &args).wait();
        assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (1, "", ""));
        assert_eq!(s.snapshot(), before);
    };
    // All completed.
    claim(&s, &[]);
    // The only pending task is stalled behind a failure.
    s.create("doomed", &[]);
    s.create("behind it", &["-b", "3"]);
    s.ok("task-update", ["3", "-s", "failed"]);
    claim(&s, &[]);
    // The only ready task is not one it would take (-m).
    s.create("for x", &["-m", "agent=x"]);
    claim(&s, &["-m", "agent=y"]);
}

#[test]
fn claim_wait_timeout_exits_124_and_changes_nothing() {
    let s = Store::new();
    blocked_behind_other(&s);
    let before = s.snapshot();
    let r = Bg::start(
        &s,
        "task-update",
        &["--claim", "--wait", "--owner", "w", "--timeout", "300ms"],
    )
    .wait();
    assert_eq!(r.code, 124, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("task-update: ") && r.stderr.contains("300ms"),
        "{}",
        r.stderr
    );
    assert_eq!(s.snapshot(), before, "the store changed");
}

// ---------------------------------------------------------------------------------------
// 7. Ghosts

/// `--owner NAME` with a final status needs NAME to hold the task in progress. Before,
/// being its last owner was enough: a ghost could complete a task that had failed when
/// its lease ran out, or one a person had cancelled.
#[test]
fn a_ghost_cannot_finish_a_task_it_no_longer_holds() {
    let s = Store::new();
    s.create("lost lease", &[]); // max-attempts 1
    s.create("held by other", &[]);
    s.create("cancelled under the ghost", &[]);
    s.create("still held", &[]);
    assert_eq!(
        s.ok(
            "task-update",
            ["--claim", "1", "--owner", "ghost", "--lease", "200ms"]
        ),
        "1\n"
    );
    // task-wait reaps the claim once its lease has run out: no attempt left, so failed.
    let r = Bg::start(&s, "task-wait", &["1"]).wait();
    assert_eq!(r.code, 1, "{r:?}");
    let t = s.json("1");
    assert_eq!(
        (status(&t), &t["owner"], &t["attempts"]),
        ("failed", &"ghost".into(), &1.into()),
        "{t}"
    );

    s.ok("task-update", ["--claim", "2", "--owner", "other"]);
    s.ok("task-update", ["--claim", "3", "--owner", "ghost"]);
    s.ok("task-update", ["3", "-s", "cancelled"]);
    s.ok("task-update", ["--claim", "4", "--owner", "ghost"]);

    let before = s.snapshot();
    for id in ["1", "3"] {
        for st in ["completed", "failed"] {
            let r = s.exec(
                "task-update",
                [id, "-s", st, "--owner", "ghost", "--result", "late"],
            );
            assert_failure(&r, "task-update", 4, &[&format!("#{id}"), "ghost"]);
            assert_eq!(s.snapshot(), before, "the ghost changed #{id}");
        }
    }
    let r = s.exec("task-update", ["2", "-s", "completed", "--owner", "ghost"]);
    assert_failure(&r, "task-update", 4, &["#2", "other", "ghost"]);
    assert_eq!(s.snapshot(), before, "the ghost changed #2");

    // The one it does hold, it finishes.
    s.ok(
        "task-update",
        ["4", "-s", "completed", "--owner", "ghost", "--result", "ok"],
    );
    let t = s.json("4");
    assert_eq!((status(&t), &t["result"]), ("completed", &"ok".into()));
}

// ---------------------------------------------------------------------------------------
// 8. Commands that cannot start; --no-retry-on

/// A program named by a placeholder is known only per task; one that cannot be started
/// fails its task at once (the old pool retried it until its attempts were used up).
#[test]
fn a_command_that_cannot_start_fails_its_task_at_once() {
    let s = Store::new();
    s.create(
        "no-such-program-parallel-tasks-test",
        &["--max-attempts", "3"],
    );
    s.file("not-executable.sh", "#!/bin/sh\nexit 0\n");
    s.create("./not-executable.sh", &["--max-attempts", "3"]);
    let r = spawn(&s, &["-j", "1", "--", "{subject}"]).expect_code(1);
    assert!(
        r.stderr
            .contains("worker-spawn: task #1 failed (exit code 127, not retried)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("worker-spawn: 0 completed, 2 failed, 0 retried in "),
        "{}",
        r.stderr
    );
    let t = s.json("1");
    assert_eq!(
        (status(&t), &t["attempts"], &t["exitCode"]),
        ("failed", &1.into(), &127.into()),
        "{t}"
    );
    let t = s.json("2");
    assert_eq!((status(&t), &t["attempts"]), ("failed", &1.into()), "{t}");
    // As a shell says it: found but not executable is 126; the log names the program.
    assert_eq!(t["exitCode"], 126, "{t}");
    assert!(
        r.stderr
            .contains("task #2 failed (exit code 126, not retried)"),
        "{}",
        r.stderr
    );
    let log = t["log"].as_str().unwrap_or_default();
    assert!(log.contains("cannot run './not-executable.sh'"), "{log}");

    // A command that itself exits 126 or 127 is not retried either.
    for (id, code) in [("3", "126"), ("4", "127")] {
        s.create(&format!("exits {code}"), &["--max-attempts", "3"]);
        let script = format!("echo $TASK_ID >> runs; exit {code}");
        spawn(&s, &["--", "sh", "-c", &script]).expect_code(1);
        let t = s.json(id);
        assert_eq!(
            (status(&t), &t["attempts"], &t["exitCode"]),
            ("failed", &1.into(), &code.parse::<i64>().unwrap().into()),
            "{t}"
        );
    }
    assert_eq!(read(&s, "runs"), "3\n4\n");
}

#[test]
fn no_retry_on_fails_at_once_only_for_the_codes_it_names() {
    let s = Store::new();
    s.create("permanent", &["--max-attempts", "3"]);
    let r = spawn(
        &s,
        &[
            "--no-retry-on",
            "2,3",
            "--",
            "sh",
            "-c",
            "echo $TASK_ID >> runs; exit 3",
        ],
    )
    .expect_code(1);
    assert!(
        r.stderr
            .contains("worker-spawn: task #1 failed (exit code 3, not retried)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("0 retried"), "{}", r.stderr);
    let t = s.json("1");
    assert_eq!(
        (status(&t), &t["attempts"], &t["exitCode"]),
        ("failed", &1.into(), &3.into()),
        "{t}"
    );

    s.create("transient", &["--max-attempts", "3"]);
    let r = spawn(
        &s,
        &[
            "--no-retry-on",
            "2,3",
            "--",
            "sh",
            "-c",
            "echo $TASK_ID >> runs; exit 4",
        ],
    )
    .expect_code(1);
    assert!(
        r.stderr
            .contains("worker-spawn: task #2 failed (exit code 4)\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 retried"), "{}", r.stderr);
    let t = s.json("2");
    assert_eq!(
        (status(&t), &t["attempts"], &t["exitCode"]),
        ("failed", &3.into(), &4.into()),
        "{t}"
    );
    assert_eq!(read(&s, "runs"), "1\n2\n2\n2\n");
}

/// worker-spawn on a list that was never made runs nothing, exits 0 (nothing failed),
/// and says the list does not exist instead of passing for a finished run.
#[test]
fn a_pool_on_a_list_that_does_not_exist_says_so() {
    let s = Store::new();
    s.create("elsewhere", &["--list", "real"]);
    let r = s
        .exec("worker-spawn", ["--list", "typo", "--", "true"])
        .expect_code(0);
    assert!(
        r.stderr
            .contains("worker-spawn: list 'typo' does not exist (the store's lists: real)\n"),
        "{}",
        r.stderr
    );
    // A list that exists, with nothing to do, is quiet about it.
    let r = s
        .exec(
            "worker-spawn",
            ["--list", "real", "-m", "agent=none", "--", "true"],
        )
        .expect_code(0);
    assert!(!r.stderr.contains("does not exist"), "{}", r.stderr);
}
