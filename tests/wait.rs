//! `task-wait`: the three conditions, failures and stalls, ids from stdin, timeouts,
//! signals and output formats — with the awaited tasks finished by other processes
//! while `task-wait` runs.

mod procs;
mod util;

use procs::Bg;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use util::{assert_failure, pairs, parse_json, statuses, Store};

/// Start `task-wait ARGS…` in the background (for runs that must end by themselves; a
/// hang fails the test at the deadline instead of blocking the suite).
fn start(s: &Store, args: &[&str]) -> Bg {
    Bg::start(s, "task-wait", args)
}

/// [`start`] with `input` on stdin (then closed).
fn start_stdin(s: &Store, args: &[&str], input: &str) -> Bg {
    let mut c = s.std_cmd("task-wait");
    c.args(args).stdin(Stdio::piped());
    let mut bg = Bg::spawn("task-wait", c);
    // A child that exits without reading is caught by its exit code, not here.
    let _ = bg.take_stdin().write_all(input.as_bytes());
    bg
}

/// [`start`], returning once it handles signals (so it is past argument parsing and
/// about to wait).
fn wait_bg(s: &Store, args: &[&str]) -> Bg {
    let mut bg = start(s, args);
    bg.wait_for_handlers();
    bg
}

/// `task-update ID -s STATUS`, which must succeed.
fn set_status(s: &Store, id: &str, status: &str) {
    s.ok("task-update", [id, "-s", status]);
}

/// Create `n` tasks named T1, T2, …; returns their ids.
fn tasks(s: &Store, n: usize) -> Vec<String> {
    (1..=n).map(|i| s.create(&format!("T{i}"), &[])).collect()
}

#[test]
fn all_returns_once_every_awaited_task_is_completed_by_another_process() {
    let s = Store::new();
    tasks(&s, 3);
    let mut w = wait_bg(&s, &["1", "2", "3", "--progress"]);
    w.wait_for_stderr("0/3");
    set_status(&s, "1", "completed");
    set_status(&s, "2", "completed");
    // It saw both completions and still waits for the third.
    w.wait_for_stderr("2/3");
    assert!(w.running(), "task-wait returned before #3 completed");
    set_status(&s, "3", "completed");
    let r = w.wait().expect_code(0);
    assert_eq!(
        r.lines(),
        [
            "#1 [completed] T1",
            "#2 [completed] T2",
            "#3 [completed] T3"
        ]
    );
}

#[test]
fn any_returns_on_the_first_completed_task() {
    let s = Store::new();
    tasks(&s, 3);
    let w = wait_bg(&s, &["--any", "--format", "json"]);
    set_status(&s, "2", "completed");
    let r = w.wait().expect_code(0);
    assert_eq!(
        statuses(&parse_json(&r.stdout)),
        pairs(&[("1", "pending"), ("2", "completed"), ("3", "pending")])
    );
}

#[test]
fn any_ends_with_1_when_the_first_terminal_task_failed() {
    let s = Store::new();
    tasks(&s, 2);
    let w = wait_bg(&s, &["1", "2", "--any"]);
    set_status(&s, "1", "failed");
    let r = w.wait().expect_code(1);
    assert!(r.stderr.contains("#1"), "stderr: {}", r.stderr);
}

#[test]
fn count_returns_when_n_tasks_have_completed() {
    let s = Store::new();
    tasks(&s, 4);
    let mut w = wait_bg(&s, &["--count", "2", "--progress", "--format", "json"]);
    w.wait_for_stderr("0/4");
    set_status(&s, "1", "completed");
    w.wait_for_stderr("1/4");
    assert!(w.running(), "task-wait --count 2 returned after one task");
    set_status(&s, "3", "completed");
    let r = w.wait().expect_code(0);
    assert_eq!(
        statuses(&parse_json(&r.stdout)),
        pairs(&[
            ("1", "completed"),
            ("2", "pending"),
            ("3", "completed"),
            ("4", "pending")
        ])
    );
}

#[test]
fn a_failed_task_decides_the_wait_once_everything_else_is_done() {
    let s = Store::new();
    tasks(&s, 2);
    let mut w = wait_bg(&s, &["1", "2", "--progress"]);
    set_status(&s, "1", "failed");
    // Without --fail-fast it keeps waiting for #2 after seeing the failure.
    w.wait_for_stderr("1/2 done, 0 running, 1 failed");
    assert!(w.running(), "task-wait returned before #2 finished");
    set_status(&s, "2", "completed");
    let r = w.wait().expect_code(1);
    assert!(r.stderr.contains("#1"), "stderr must name #1: {}", r.stderr);
    assert_eq!(r.lines(), ["#1 [failed] T1", "#2 [completed] T2"]);
}

#[test]
fn fail_fast_returns_at_the_first_failure() {
    let s = Store::new();
    tasks(&s, 3);
    let w = wait_bg(&s, &["--fail-fast"]);
    set_status(&s, "2", "failed");
    let r = w.wait().expect_code(1);
    assert!(r.stderr.contains("#2"), "stderr must name #2: {}", r.stderr);
    assert_eq!(
        r.lines(),
        ["#1 [pending] T1", "#2 [failed] T2", "#3 [pending] T3"]
    );
}

#[test]
fn cancelled_counts_as_a_failure() {
    let s = Store::new();
    tasks(&s, 1);
    let w = wait_bg(&s, &["1"]);
    set_status(&s, "1", "cancelled");
    let r = w.wait().expect_code(1);
    assert!(r.stderr.contains("#1"), "stderr: {}", r.stderr);
}

#[test]
fn tasks_stalled_behind_a_failure_end_the_wait_instead_of_hanging() {
    let s = Store::new();
    s.create("A", &[]);
    s.create("B", &["-b", "1"]);
    s.create("C", &["-b", "2"]);
    // Awaiting only the blocked tasks: A's failure makes both stalled.
    let w = wait_bg(&s, &["2", "3"]);
    set_status(&s, "1", "failed");
    let r = w.wait().expect_code(1);
    assert!(
        r.stderr.contains("stalled: #2, #3"),
        "stderr must name the stalled tasks: {}",
        r.stderr
    );
    assert_eq!(
        r.lines(),
        [
            "#2 [pending] B [blocked by #1]",
            "#3 [pending] C [blocked by #2]"
        ]
    );

    // The whole list: the failed task and the stalled ones are named.
    let r = start(&s, &[]).wait().expect_code(1);
    assert!(r.stderr.contains("#1"), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("#2, #3"), "stderr: {}", r.stderr);
    assert_eq!(r.lines().len(), 3);
}

#[test]
fn count_that_can_no_longer_be_reached_ends_with_1() {
    let s = Store::new();
    tasks(&s, 3);
    set_status(&s, "1", "failed");
    // Unreachable from the start: returns at once instead of waiting forever.
    let r = start(&s, &["--count", "3"]).wait().expect_code(1);
    assert!(r.stderr.contains("#1"), "stderr: {}", r.stderr);
    assert_eq!(r.lines().len(), 3);

    // Made unreachable while waiting.
    let w = wait_bg(&s, &["--count", "2"]);
    set_status(&s, "2", "cancelled");
    let r = w.wait().expect_code(1);
    assert!(r.stderr.contains("#2"), "stderr: {}", r.stderr);
}

#[test]
fn a_whole_list_wait_awaits_tasks_created_while_it_waits() {
    let s = Store::new();
    s.create("first", &[]);
    let mut w = wait_bg(&s, &["--progress", "--format", "ids"]);
    w.wait_for_stderr("0/1");
    s.create("second", &[]);
    w.wait_for_stderr("0/2");
    set_status(&s, "1", "completed");
    w.wait_for_stderr("1/2");
    assert!(w.running(), "task-wait returned with #2 still pending");
    set_status(&s, "2", "completed");
    let r = w.wait().expect_code(0);
    assert_eq!(r.lines(), ["1", "2"]);
}

#[test]
fn ids_come_from_stdin_with_dash() {
    let s = Store::new();
    tasks(&s, 3);
    set_status(&s, "1", "completed");
    set_status(&s, "2", "completed");
    // #3 stays pending: waiting for it would hang, so only 1 and 2 are awaited.
    let r = start_stdin(&s, &["-", "--format", "ids"], "1\n#2\n").wait();
    assert_eq!(r.expect_code(0).lines(), ["1", "2"]);

    // A pipeline, as users write it.
    let mut sh = s.sh_cmd("task-list -s completed --format ids | task-wait - --format ids");
    sh.stdin(Stdio::null());
    let r = Bg::spawn("sh", sh).wait();
    assert_eq!(r.expect_code(0).lines(), ["1", "2"]);

    // Ids from arguments and from stdin together.
    let r = start_stdin(&s, &["1", "-", "--format", "ids"], "2\n").wait();
    assert_eq!(r.expect_code(0).lines(), ["1", "2"]);

    // `-` with nothing on stdin awaits no task, not the whole list (which would hang on
    // #3), as `task-list -` shows no task.
    let r = start_stdin(&s, &["-", "--format", "ids"], "").wait();
    assert_eq!(r.expect_code(0).stdout, "");
    start_stdin(&s, &["-", "--any"], "").wait().expect_code(1);
}

#[test]
fn ids_from_stdin_are_awaited_while_other_processes_finish_them() {
    let s = Store::new();
    tasks(&s, 3);
    let mut w = start_stdin(&s, &["-", "--format", "ids"], "2\n3\n");
    w.wait_for_handlers();
    set_status(&s, "3", "completed");
    set_status(&s, "2", "completed");
    let r = w.wait().expect_code(0);
    assert_eq!(r.lines(), ["2", "3"]);
}

#[test]
fn an_unknown_id_exits_3_with_nothing_on_stdout() {
    let s = Store::new();
    tasks(&s, 1);
    let r = s.exec("task-wait", ["9"]);
    assert_failure(&r, "task-wait", 3, &["#9", "not found"]);
    let r = s.exec("task-wait", ["1", "#9", "--format", "json"]);
    assert_failure(&r, "task-wait", 3, &["#9"]);
    let r = s.exec("task-wait", ["--list", "nowhere", "1"]);
    assert_failure(&r, "task-wait", 3, &["nowhere"]);
}

#[test]
fn timeout_exits_124_and_still_prints_the_state() {
    let s = Store::new();
    tasks(&s, 2);
    set_status(&s, "1", "completed");
    let r = start(&s, &["--timeout", "300ms"]).wait().expect_code(124);
    assert!(r.stderr.contains("timed out"), "stderr: {}", r.stderr);
    assert_eq!(r.lines(), ["#1 [completed] T1", "#2 [pending] T2"]);
}

fn stopped_by(sig: &str, code: i32) {
    let s = Store::new();
    tasks(&s, 1);
    let w = wait_bg(&s, &["1"]);
    w.signal(sig);
    w.wait().expect_code(code);
    // The task was not touched.
    assert_eq!(s.json("1")["status"], "pending");
}

#[test]
fn sigint_exits_130() {
    stopped_by("INT", 130);
}

#[test]
fn sigterm_exits_143() {
    stopped_by("TERM", 143);
}

#[test]
fn output_formats() {
    let s = Store::new();
    s.create("Build", &[]);
    s.create("Test", &[]);
    s.ok(
        "task-update",
        ["1", "-s", "completed", "--result", "built ok\nsecond line"],
    );
    set_status(&s, "2", "failed");

    // Every format prints both tasks; the failure makes the exit code 1.
    let json = s.exec("task-wait", ["--format", "json"]).expect_code(1);
    let v = parse_json(&json.stdout);
    assert_eq!(statuses(&v), pairs(&[("1", "completed"), ("2", "failed")]));
    assert_eq!(v[0]["result"], "built ok\nsecond line");
    assert_eq!(v[0]["subject"], "Build");

    let jsonl = s.exec("task-wait", ["--format", "jsonl"]).expect_code(1);
    let objs: Vec<Value> = jsonl
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(objs, v);

    let ids = s.exec("task-wait", ["--format", "ids"]).expect_code(1);
    assert_eq!(ids.stdout, "1\n2\n");

    let text = s.exec("task-wait", ["--format", "text"]).expect_code(1);
    assert_eq!(text.stdout, "#1 [completed] Build\n#2 [failed] Test\n");

    let md = s.exec("task-wait", ["--format", "md"]).expect_code(1);
    let lines: Vec<&str> = md.stdout.lines().collect();
    assert_eq!(
        lines[0], "## 2 tasks: 1 completed, 1 failed",
        "{}",
        md.stdout
    );
    let build = lines
        .iter()
        .position(|l| l.starts_with("- ✓ #1 Build"))
        .unwrap_or_else(|| panic!("no ✓ line for #1:\n{}", md.stdout));
    assert_eq!(lines[build + 1], "  > built ok");
    assert_eq!(lines[build + 2], "  > second line");
    assert!(
        lines.iter().any(|l| l.starts_with("- ✗ #2 Test")),
        "no ✗ line for #2:\n{}",
        md.stdout
    );

    // An all-completed wait exits 0 in every format.
    let ok = s.exec("task-wait", ["1", "--format", "md"]).expect_code(0);
    assert!(
        ok.stdout.starts_with("## 1 task: 1 completed"),
        "{}",
        ok.stdout
    );
}

/// One rule for empty waits, decided from the tasks that exist: nothing to wait for is
/// done for the default condition, and can never be met for --any or --count N — at
/// once, not after waiting for tasks that may never come. The list must exist, though:
/// a list whose tasks were all deleted is empty; a list that never had one is a typo.
#[test]
fn an_empty_list_is_decided_at_once() {
    let s = Store::new();
    let id = s.create("gone", &[]);
    s.ok("task-update", [id.as_str(), "--delete"]);
    let r = start(&s, &["--format", "ids"]).wait();
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    // (A wait that hung would be killed at the test deadline and fail.)
    let r = start(&s, &["--any"]).wait();
    assert_failure(&r, "task-wait", 1, &["--any cannot be met"]);
    let r = start(&s, &["--count", "2"]).wait();
    assert_failure(
        &r,
        "task-wait",
        1,
        &["2 completed tasks can no longer be reached"],
    );
}

/// `TASK_DB=/tmp/tyop.db task-wait && deploy` must not deploy: a store that does not
/// exist is not found (3), and nothing is created, not even its folder; a list that
/// never had a task is not found either, naming the lists the store has.
#[test]
fn a_typo_in_the_store_or_the_list_is_not_found() {
    let s = Store::new();
    let r = start(&s, &[]).wait();
    assert_failure(
        &r,
        "task-wait",
        3,
        &["no task store at", "task-create makes one"],
    );
    if util::postgres().is_none() {
        let typo = s.dir().join("no/such/folder/tyop.db");
        for args in [
            vec!["task-wait"],
            vec!["task-list"],
            vec!["task-list", "--count"],
            vec!["task-update", "--claim", "--owner", "w"],
            vec!["task-update", "1", "-s", "completed"],
            vec!["worker-spawn", "--", "true"],
        ] {
            let r = s.sh(&format!("TASK_DB={} {}", typo.display(), args.join(" ")));
            assert_failure(&r, args[0], 3, &["no task store at", "tyop.db"]);
        }
        assert!(!s.dir().join("no").exists(), "a folder was made");
        // An empty file is no store either.
        std::fs::write(s.dir().join("empty.db"), b"").unwrap();
        let r = s.sh(&format!(
            "TASK_DB={} task-list",
            s.dir().join("empty.db").display()
        ));
        assert_failure(&r, "task-list", 3, &["no task store at"]);
    }
    s.create("a", &["--list", "real"]);
    let before = s.snapshot();
    let r = s.exec("task-wait", ["--list", "typo"]);
    assert_failure(&r, "task-wait", 3, &["list 'typo' does not exist", "real"]);
    // task-list of an unknown list prints nothing, exit 0, one line on stderr.
    let r = s.exec("task-list", ["--list", "typo"]).expect_code(0);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "task-list: list 'typo' does not exist (the store's lists: real)\n"
    );
    assert_eq!(s.snapshot(), before, "a read changed the store");
}
