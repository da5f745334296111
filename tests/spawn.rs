//! `worker-spawn`: what a command gets, what is recorded, retries, timeouts, ordering,
//! matching and limits, stopping rules, signals, and recovery after kill -9.
//!
//! Commands run in the store's temporary folder (worker-spawn's working directory), so
//! files they write (`$TASK_ID.pid`, logs of what ran) are read from `s.dir()`.

mod procs;
mod util;

use procs::{group_gone, read_pid, Bg};
use serde_json::{json, Value};
use util::{wait_until, Run, Store, DEADLINE};

/// Start `worker-spawn ARGS…` in the background.
fn spawn_bg(s: &Store, args: &[&str]) -> Bg {
    Bg::start(s, "worker-spawn", args)
}

/// Run `worker-spawn ARGS…` to its end (a hang fails the test at the deadline).
fn spawn(s: &Store, args: &[&str]) -> Run {
    spawn_bg(s, args).wait()
}

/// A file the commands wrote into the store's folder ("" when missing).
fn read(s: &Store, name: &str) -> String {
    std::fs::read_to_string(s.dir().join(name)).unwrap_or_default()
}

fn status(t: &Value) -> &str {
    t["status"].as_str().expect("a status")
}

/// The statuses of every task of the list, in id order.
fn all_statuses(s: &Store) -> Vec<String> {
    s.tasks(&[]).iter().map(|t| status(t).to_string()).collect()
}

const HOSTILE: &str = "$(touch PWNED); echo \"x\" `id` ; drop table tasks; it's {id} \\\n\ttab";

#[test]
fn the_command_gets_the_task_in_its_environment_and_placeholders() {
    let s = Store::new();
    let id = s.create(
        "Fix it",
        &[
            "--list", "my.list", "-d", HOSTILE, "-m", "agent=x", "-m", "n=3",
        ],
    );
    assert_eq!(id, "1");
    let script = r#"
        printf '%s' "$#" > argc
        i=0
        for a; do i=$((i+1)); printf '%s' "$a" > "arg$i"; done
        for v in TASK_ID TASK_SUBJECT TASK_DESCRIPTION TASK_LIST CLAUDE_CODE_TASK_LIST_ID \
                 TASK_DB TASK_OWNER TASK_ATTEMPT TASK_METADATA TASK_CLAIM_TOKEN; do
            printenv "$v" > "env.$v"
        done
        exit 0
    "#;
    let r = spawn(
        &s,
        &[
            "--list",
            "my.list",
            "--owner-prefix",
            "bot",
            "-j",
            "1",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            "{id}",
            "{subject}",
            "{list}",
            "{attempt}",
            "{{id}} {{}}",
            "{description}",
            "pre-{description}-post",
            "{nope} {",
        ],
    );
    r.expect_code(0);

    // Each placeholder argument stays one argument, byte for byte, never run by a shell.
    assert_eq!(read(&s, "argc"), "8");
    let args: Vec<String> = (1..=8).map(|i| read(&s, &format!("arg{i}"))).collect();
    assert_eq!(
        args,
        [
            "1".to_string(),
            "Fix it".into(),
            "my.list".into(),
            "1".into(),
            "{id} {}".into(),
            HOSTILE.into(),
            format!("pre-{HOSTILE}-post"),
            "{nope} {".into(),
        ]
    );
    assert!(
        !s.dir().join("PWNED").exists(),
        "the description was run by a shell"
    );

    // printenv adds one newline.
    let env = |v: &str| {
        let e = read(&s, &format!("env.{v}"));
        e.strip_suffix('\n')
            .unwrap_or_else(|| panic!("{v} is not set"))
            .to_string()
    };
    assert_eq!(env("TASK_ID"), "1");
    assert_eq!(env("TASK_SUBJECT"), "Fix it");
    assert_eq!(env("TASK_DESCRIPTION"), HOSTILE);
    assert_eq!(env("TASK_LIST"), "my.list");
    assert_eq!(env("CLAUDE_CODE_TASK_LIST_ID"), "my.list");
    assert_eq!(env("TASK_DB"), s.db().display().to_string());
    assert_eq!(env("TASK_OWNER"), "bot-1");
    assert_eq!(env("TASK_ATTEMPT"), "1");
    let token = env("TASK_CLAIM_TOKEN");
    assert!(
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()),
        "TASK_CLAIM_TOKEN: {token:?}"
    );
    let meta: Value = serde_json::from_str(&env("TASK_METADATA")).expect("TASK_METADATA is JSON");
    assert_eq!(meta, json!({"agent": "x", "n": 3}));

    let t = s.json_in("1", &["--list", "my.list"]);
    assert_eq!(status(&t), "completed");
    assert_eq!(t["description"], HOSTILE, "the stored description changed");
    assert_eq!(t["owner"], "bot-1");
}

#[test]
fn stdin_gives_the_command_the_description_or_the_task_as_json() {
    let s = Store::new();
    s.create("one", &["-d", HOSTILE]);
    spawn(&s, &["--stdin", "description", "--", "cat"]).expect_code(0);
    assert_eq!(s.json("1")["result"], HOSTILE);

    s.create("two", &["-d", "desc two", "-m", "agent=x"]);
    spawn(&s, &["--stdin", "json", "--", "cat"]).expect_code(0);
    let result = s.json("2")["result"]
        .as_str()
        .expect("a result")
        .to_string();
    let t: Value = serde_json::from_str(&result).expect("stdin was one JSON object");
    assert_eq!(t["id"], "2");
    assert_eq!(t["subject"], "two");
    assert_eq!(t["description"], "desc two");
    assert_eq!(t["metadata"], json!({"agent": "x"}));
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["attempts"], 1);

    // Default: nothing on stdin (cat does not wait for input).
    s.create("three", &["-d", "not sent"]);
    spawn(&s, &["--", "cat"]).expect_code(0);
    assert_eq!(s.json("3")["result"], "");
}

#[test]
fn stdout_is_the_result_stderr_the_log_and_output_dir_keeps_both_in_full() {
    let s = Store::new();
    s.create("big", &[]);
    s.create("small", &[]);
    let out_dir = s.dir().join("outputs");
    let out_dir_arg = out_dir.display().to_string();
    let script = r#"
        if [ "$TASK_ID" = 1 ]; then printf '%0100d' 0; else printf 'small'; fi
        echo "err of $TASK_ID" >&2
    "#;
    spawn(
        &s,
        &[
            "--max-output",
            "10",
            "--output-dir",
            &out_dir_arg,
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .expect_code(0);

    let big = s.json("1");
    assert_eq!(status(&big), "completed");
    assert_eq!(big["exitCode"], 0);
    let result = big["result"].as_str().expect("a result");
    assert!(
        result.starts_with("0000000000") && !result.contains("00000000000"),
        "the first 10 bytes kept: {result:?}"
    );
    assert!(
        result.contains("output truncated"),
        "no truncation marker: {result:?}"
    );
    assert_eq!(big["log"], "err of 1\n");

    let small = s.json("2");
    assert_eq!(small["result"], "small");
    assert_eq!(small["log"], "err of 2\n");

    let file = |name: &str| {
        std::fs::read_to_string(out_dir.join("default").join(name))
            .unwrap_or_else(|e| panic!("outputs/default/{name}: {e}"))
    };
    assert_eq!(file("1.out"), "0".repeat(100));
    assert_eq!(file("1.err"), "err of 1\n");
    assert_eq!(file("2.out"), "small");
    assert_eq!(file("2.err"), "err of 2\n");
}

#[test]
fn a_failing_command_is_retried_until_it_succeeds() {
    let s = Store::new();
    s.create("flaky", &["--max-attempts", "3"]);
    let r = spawn(
        &s,
        &[
            "-j",
            "2",
            "--",
            "sh",
            "-c",
            r#"echo "attempt {attempt}"; [ "$TASK_ATTEMPT" -ge 3 ] || exit 1"#,
        ],
    )
    .expect_code(0);
    assert!(r.stderr.contains("2 retried"), "summary: {}", r.stderr);
    let t = s.json("1");
    assert_eq!(status(&t), "completed");
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["exitCode"], 0);
    assert_eq!(t["result"], "attempt 3\n");
}

#[test]
fn a_command_that_keeps_failing_marks_the_task_failed_with_its_stderr_tail() {
    let s = Store::new();
    s.create("doomed", &["--max-attempts", "2"]);
    let r = spawn(
        &s,
        &[
            "--",
            "sh",
            "-c",
            r#"seq 1 20000 >&2; echo "boom on attempt $TASK_ATTEMPT" >&2; exit 7"#,
        ],
    )
    .expect_code(1);
    assert!(r.stderr.contains("1 failed"), "summary: {}", r.stderr);
    let t = s.json("1");
    assert_eq!(status(&t), "failed");
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["exitCode"], 7);
    let log = t["log"].as_str().expect("a log");
    assert!(
        log.ends_with("19999\n20000\nboom on attempt 2\n"),
        "the log must be the end of stderr: …{:?}",
        &log[log.len().saturating_sub(60)..]
    );
    assert!(
        log.len() <= 16 * 1024,
        "the log is a tail, not {} bytes",
        log.len()
    );
    assert!(!log.starts_with("1\n2\n"), "the log must be a tail");

    // The coordinator's report shows the failure with its exit code and log tail.
    let md = s.exec("task-wait", ["--format", "md"]).expect_code(1);
    assert!(md.stdout.contains("✗ #1 doomed"), "{}", md.stdout);
    assert!(md.stdout.contains("exit 7"), "{}", md.stdout);
    assert!(md.stdout.contains("boom on attempt 2"), "{}", md.stdout);
}

#[test]
fn timeout_kills_the_whole_process_group_and_records_124() {
    let s = Store::new();
    s.create("background grandchild", &[]);
    s.create("ignores SIGTERM", &[]);
    let script = r#"
        if [ "$TASK_ID" = 1 ]; then
            sleep 300 & echo $! > grandchild.pid; sleep 300
        else
            trap '' TERM; sleep 300 & echo $! > stubborn.pid; sleep 300
        fi
    "#;
    let r = spawn(
        &s,
        &[
            "-j",
            "2",
            "--timeout",
            "300ms",
            "--kill-after",
            "500ms",
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .expect_code(1);
    assert!(r.stderr.contains("2 failed"), "summary: {}", r.stderr);
    for id in ["1", "2"] {
        let t = s.json(id);
        assert_eq!(status(&t), "failed", "task {id}");
        assert_eq!(t["exitCode"], 124, "task {id}");
    }
    // The log says it timed out, after how long, and whether SIGKILL was needed.
    let log = |id: &str| s.json(id)["log"].as_str().unwrap_or_default().to_string();
    assert!(
        log("1")
            .ends_with("worker-spawn: timed out after 300ms (--timeout): it ended after SIGTERM\n"),
        "{}",
        log("1")
    );
    assert!(
        log("2").ends_with(
            "worker-spawn: timed out after 300ms (--timeout): it did not end within 500ms \
             (--kill-after) of SIGTERM, so it got SIGKILL\n"
        ),
        "{}",
        log("2")
    );
    // What the commands started in the background is gone too (SIGTERM, or SIGKILL
    // after --kill-after for the one that ignores SIGTERM).
    for f in ["grandchild.pid", "stubborn.pid"] {
        let pid = read_pid(&s.dir().join(f));
        wait_until(DEADLINE, || procs::gone(pid));
    }
}

#[test]
fn dependencies_are_respected_across_workers() {
    let s = Store::new();
    s.create("t1", &[]);
    for i in 2..=5 {
        s.create(&format!("t{i}"), &["-b", &(i - 1).to_string()]);
    }
    spawn(
        &s,
        &[
            "-j",
            "4",
            "--",
            "sh",
            "-c",
            r#"echo "start $TASK_ID" >> order.log; sleep 0.02; echo "end $TASK_ID" >> order.log"#,
        ],
    )
    .expect_code(0);
    let expected: Vec<String> = (1..=5)
        .flat_map(|i| [format!("start {i}"), format!("end {i}")])
        .collect();
    let got: Vec<String> = read(&s, "order.log").lines().map(str::to_string).collect();
    assert_eq!(got, expected);

    let tasks = s.tasks(&[]);
    assert!(tasks.iter().all(|t| status(t) == "completed"));
    for pair in tasks.windows(2) {
        // RFC 3339 UTC with milliseconds: string order is time order.
        let finished = pair[0]["finishedAt"].as_str().expect("finishedAt");
        let started = pair[1]["startedAt"].as_str().expect("startedAt");
        assert!(
            started >= finished,
            "#{} started at {started}, before its blocker finished at {finished}",
            pair[1]["id"]
        );
    }
}

#[test]
fn metadata_selects_the_tasks_a_pool_runs() {
    let s = Store::new();
    s.create("x1", &["-m", "agent=x"]);
    s.create("y", &["-m", "agent=y"]);
    s.create("x2", &["-m", "agent=x"]);
    s.create("none", &[]);
    spawn(
        &s,
        &["-m", "agent=x", "--", "sh", "-c", "echo $TASK_ID >> ran"],
    )
    .expect_code(0);
    assert_eq!(
        all_statuses(&s),
        ["completed", "pending", "completed", "pending"]
    );
    let mut ran: Vec<&str> = Vec::new();
    let log = read(&s, "ran");
    ran.extend(log.lines());
    ran.sort();
    assert_eq!(ran, ["1", "3"]);
    assert_eq!(s.json("2")["attempts"], 0);
    assert_eq!(s.json("4")["attempts"], 0);
}

#[test]
fn limit_runs_at_most_one_task_per_metadata_value_at_a_time() {
    let s = Store::new();
    for agent in ["a", "b", "a", "b", "a", "b"] {
        s.create(agent, &["-m", &format!("agent={agent}")]);
    }
    // Each command holds a lock folder named after its agent: failing to make it means
    // another task of the same agent runs right now. While it holds the lock it looks
    // for the other agent's lock, to show that the limit is per value, not global.
    let script = r#"
        mkdir "lock.$1" 2>/dev/null || echo "$1 #$TASK_ID" >> overlap
        i=0
        while [ ! -e both ] && [ "$i" -lt 100 ]; do
            for d in lock.*; do
                if [ "$d" != "lock.$1" ] && [ -d "$d" ]; then touch both; fi
            done
            sleep 0.02; i=$((i+1))
        done
        sleep 0.02
        rmdir "lock.$1"
    "#;
    spawn(
        &s,
        &[
            "-j",
            "4",
            "--limit",
            "agent=1",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            "{subject}",
        ],
    )
    .expect_code(0);
    assert_eq!(
        read(&s, "overlap"),
        "",
        "two tasks of one agent ran at once"
    );
    assert!(
        s.dir().join("both").exists(),
        "tasks of different agents never ran at the same time"
    );
    assert!(all_statuses(&s).iter().all(|st| st == "completed"));
}

#[test]
fn max_tasks_runs_exactly_that_many() {
    let s = Store::new();
    for i in 1..=5 {
        s.create(&format!("t{i}"), &[]);
    }
    spawn(
        &s,
        &[
            "-j",
            "3",
            "--max-tasks",
            "2",
            "--",
            "sh",
            "-c",
            "echo $TASK_ID >> ran",
        ],
    )
    .expect_code(0);
    assert_eq!(read(&s, "ran").lines().count(), 2);
    let st = all_statuses(&s);
    assert_eq!(st.iter().filter(|x| *x == "completed").count(), 2, "{st:?}");
    assert_eq!(st.iter().filter(|x| *x == "pending").count(), 3, "{st:?}");
}

#[test]
fn fail_fast_stops_claiming_after_the_first_failure() {
    let s = Store::new();
    for i in 1..=5 {
        s.create(&format!("t{i}"), &[]);
    }
    spawn(
        &s,
        &[
            "-j",
            "1",
            "--fail-fast",
            "--",
            "sh",
            "-c",
            "echo $TASK_ID >> ran; exit 1",
        ],
    )
    .expect_code(1);
    assert_eq!(read(&s, "ran"), "1\n");
    assert_eq!(
        all_statuses(&s),
        ["failed", "pending", "pending", "pending", "pending"]
    );
}

#[test]
fn follow_serves_tasks_created_after_it_started_until_signalled() {
    let s = Store::new();
    let mut w = spawn_bg(
        &s,
        &["--follow", "-j", "2", "--", "sh", "-c", "echo served {id}"],
    );
    w.wait_for_handlers();
    for id in ["1", "2"] {
        assert_eq!(s.create(&format!("late {id}"), &[]), id);
        wait_until(DEADLINE, || status(&s.json(id)) == "completed");
        assert_eq!(s.json(id)["result"], format!("served {id}\n"));
        assert!(w.running(), "--follow stopped with nothing left to do");
    }
    w.signal("TERM");
    w.wait().expect_code(143);
}

#[test]
fn it_waits_while_another_process_runs_a_task_that_unblocks_work() {
    let s = Store::new();
    s.create("held elsewhere", &[]);
    s.create("after it", &["-b", "1"]);
    assert_eq!(
        s.ok("task-update", ["--claim", "--owner", "other"]).trim(),
        "1"
    );
    let mut w = spawn_bg(
        &s,
        &["--progress", "--", "sh", "-c", "echo $TASK_ID >> ran"],
    );
    // Two progress lines: its workers have looked for work and found none.
    w.wait_for_stderr("\r");
    wait_until(DEADLINE, || w.stderr().matches('\r').count() >= 2);
    assert!(w.running(), "it stopped while #1 was still in progress");
    s.ok("task-update", ["1", "-s", "completed", "--owner", "other"]);
    w.wait().expect_code(0);
    assert_eq!(read(&s, "ran"), "2\n");
    assert_eq!(all_statuses(&s), ["completed", "completed"]);
}

/// A typo in the command would fail every task it is given and use up their attempts:
/// it is a usage error, found before anything is claimed.
#[test]
fn a_command_that_cannot_run_is_a_usage_error_and_claims_nothing() {
    let s = Store::new();
    s.create("a", &["--max-attempts", "3"]);
    s.create("b", &[]);
    s.file("not-executable.sh", "#!/bin/sh\necho hi\n");
    std::fs::create_dir(s.dir().join("a-dir")).unwrap();
    let before = s.snapshot();
    for (cmd, needle) in [
        ("no-such-program-parallel-tasks-test", "not found in PATH"),
        ("/nonexistent/program", "No such file"),
        ("./not-executable.sh", "not executable"),
        ("./a-dir", "directory"),
    ] {
        let r = spawn(&s, &["--", cmd, "{id}"]);
        util::assert_failure(&r, "worker-spawn", 2, &[cmd, needle, "nothing was claimed"]);
        assert_eq!(s.snapshot(), before, "{cmd}: the store changed");
    }
    // A program named by a placeholder is known only per task: it fails that task
    // with 127, as a shell would.
    let p = Store::new();
    p.create("no-such-program-parallel-tasks-test", &[]);
    spawn(&p, &["--", "{subject}"]).expect_code(1);
    let t = p.json("1");
    assert_eq!(status(&t), "failed");
    assert_eq!(t["exitCode"], 127);
    let log = t["log"].as_str().unwrap_or_default();
    assert!(log.contains("cannot run"), "log: {log:?}");
}

#[test]
fn a_worker_whose_lease_was_taken_over_cannot_overwrite_the_new_owner() {
    let s = Store::new();
    s.create("contested", &["--max-attempts", "2"]);
    let w = spawn_bg(
        &s,
        &[
            "-j",
            "1",
            "--lease",
            "400ms",
            "--",
            "sh",
            "-c",
            "echo $$ > cmd.pid; sleep 300; echo stale",
        ],
    );
    let pgid = read_pid(&s.dir().join("cmd.pid"));
    // Frozen, it cannot renew its lease; once the lease runs out another worker takes over.
    w.signal("STOP");
    wait_until(DEADLINE, || {
        s.exec("task-update", ["--claim", "--owner", "thief"]).code == 0
    });
    w.signal("CONT");
    // Back, it finds its claim lost and stops its command.
    wait_until(DEADLINE, || group_gone(pgid));
    wait_until(DEADLINE, || w.stderr().contains("taken over"));
    s.ok(
        "task-update",
        [
            "1",
            "-s",
            "completed",
            "--owner",
            "thief",
            "--result",
            "mine",
        ],
    );
    w.wait().expect_code(0);
    let t = s.json("1");
    assert_eq!(status(&t), "completed");
    assert_eq!(t["owner"], "thief");
    assert_eq!(t["result"], "mine");
    assert_eq!(t["attempts"], 2);
}

/// `worker-spawn -j 2` running `sleep 300` for tasks 1 and 2, once both commands have
/// started; with their pids (each leads its own process group).
fn two_sleepers(s: &Store) -> (Bg, Vec<u32>) {
    let w = spawn_bg(
        s,
        &[
            "-j",
            "2",
            "--",
            "sh",
            "-c",
            "echo $TASK_ID >> runs; echo $$ > $TASK_ID.pid; sleep 300",
        ],
    );
    let pids = ["1.pid", "2.pid"]
        .iter()
        .map(|f| read_pid(&s.dir().join(f)))
        .collect();
    (w, pids)
}

/// Two tasks running `sleep 300` in their own groups; `sig` to worker-spawn puts them
/// back to pending without using an attempt, kills them, and exits with `code`.
fn stopped_by(sig: &str, code: i32) {
    let s = Store::new();
    s.create("one", &[]);
    s.create("two", &[]);
    let (w, pids) = two_sleepers(&s);
    assert_eq!(all_statuses(&s), ["in_progress", "in_progress"]);
    w.signal(sig);
    let r = w.wait().expect_code(code);
    for t in s.tasks(&[]) {
        assert_eq!(status(&t), "pending", "{t}\n--- stderr\n{}", r.stderr);
        assert_eq!(t["attempts"], 0, "the attempt was used up: {t}");
        assert_eq!(t["owner"], Value::Null, "{t}");
    }
    // Each command led its own process group; nothing of either is left.
    for pid in pids {
        wait_until(DEADLINE, || group_gone(pid));
    }
}

#[test]
fn sigterm_puts_running_tasks_back_and_exits_143() {
    stopped_by("TERM", 143);
}

#[test]
fn sigint_puts_running_tasks_back_and_exits_130() {
    stopped_by("INT", 130);
}

/// kill -9 of worker-spawn while two tasks run; `reap`: whether its parent collects it
/// before the next run (unreaped, it stays a zombie, which holds nothing either).
fn killed_hard(reap: bool) {
    let s = Store::new();
    // #1 may run once, #2 twice; #3 waits for a free worker.
    s.create("t1", &[]);
    s.create("t2", &["--max-attempts", "2"]);
    s.create("t3", &[]);
    // Killed as soon as the commands have started: even a command worker-spawn had not
    // yet announced to its guardian carries its mark and is killed. The default lease
    // (30 s) is far beyond the deadline, so the next run's recovery cannot be the lease
    // running out.
    let (mut w, pids) = two_sleepers(&s);
    if reap {
        w.kill_hard();
    } else {
        w.kill_unreaped();
    }
    // Its guardian kills the commands' groups (sleep included, not only sh).
    for pid in pids {
        wait_until(DEADLINE, || group_gone(pid));
    }
    assert_eq!(
        all_statuses(&s),
        ["in_progress", "in_progress", "pending"],
        "the claims of the killed worker-spawn are still recorded"
    );

    // Recovered at once because the holder is gone, and reported. The lost run counts
    // as an attempt: #1 has none left and fails instead of running a second time.
    let r = spawn(&s, &["--", "sh", "-c", "echo $TASK_ID >> runs"]).expect_code(0);
    let line = |id: &str| {
        let l = r
            .stderr
            .lines()
            .find(|l| l.contains(&format!("task #{id} of list 'default': attempt 1 (")));
        l.unwrap_or_else(|| panic!("no recovery of #{id} reported: {}", r.stderr))
            .to_string()
    };
    assert!(
        line("1").contains("lost its worker: its process "),
        "{}",
        line("1")
    );
    assert!(
        line("1").ends_with("is gone; no attempts left (1 of 1 used): it failed"),
        "{}",
        line("1")
    );
    assert!(
        line("2").ends_with("is gone; it is claimable again"),
        "{}",
        line("2")
    );
    assert_eq!(all_statuses(&s), ["failed", "completed", "completed"]);
    assert!(s.ids(&["-s", "in_progress"]).is_empty());
    let t1 = s.json("1");
    assert_eq!(t1["attempts"], 1);
    let log = t1["log"].as_str().unwrap_or_default();
    assert!(
        log.starts_with("attempt 1 (") && log.contains("no attempts left"),
        "{log}"
    );
    assert_eq!(s.json("2")["attempts"], 2);
    // #1 ran once; #2 twice (at least once); #3 once.
    let runs = read(&s, "runs");
    let count = |id: &str| runs.lines().filter(|l| *l == id).count();
    assert_eq!((count("1"), count("2"), count("3")), (1, 2, 1), "{runs}");
    drop(w);
}

#[test]
fn after_kill_9_children_die_and_the_next_run_recovers_at_once() {
    killed_hard(true);
}

#[test]
fn a_dead_holder_not_yet_reaped_is_recovered_at_once() {
    killed_hard(false);
}

/// A waiter sees the task of a killed worker-spawn fail when it has no attempt left, by
/// itself: nobody else writes to the store after the kill.
#[test]
fn a_waiter_sees_a_killed_workers_task_fail_without_anyone_else_writing() {
    let s = Store::new();
    s.create("once only", &[]);
    let mut w = spawn_bg(&s, &["--", "sh", "-c", "echo $$ > 1.pid; sleep 300"]);
    let pid = read_pid(&s.dir().join("1.pid"));
    let mut waiter = Bg::start(&s, "task-wait", &["1", "--format", "json"]);
    waiter.wait_for_handlers();
    w.kill_hard();
    let r = waiter.wait();
    assert_eq!(r.code, 1, "{r:?}");
    let t: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let t = &t[0];
    assert_eq!(status(t), "failed");
    let log = t["log"].as_str().unwrap_or_default();
    assert!(
        log.contains("lost its worker: its process ") && log.contains("no attempts left"),
        "{log}"
    );
    wait_until(DEADLINE, || group_gone(pid));
}
