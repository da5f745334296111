//! Verified results: a task's check (`task-create --verify`, or `worker-spawn --verify`
//! for tasks without one) runs after its command succeeds; a failing check fails the
//! attempt and its output is the next attempt's feedback (`TASK_FEEDBACK`, `{feedback}`).

mod procs;
mod util;

use procs::Bg;
use util::{assert_failure, Store};

fn spawn(s: &Store, args: &[&str]) -> util::Run {
    Bg::start(s, "worker-spawn", args).wait()
}

fn read(s: &Store, name: &str) -> String {
    std::fs::read_to_string(s.dir().join(name)).unwrap_or_default()
}

#[test]
fn a_check_that_passes_on_the_third_attempt_feeds_back_what_it_said() {
    let s = Store::new();
    // The check counts its runs, reads the command's stdout, and passes the third time.
    let check = r#"n=$(($(cat checks 2>/dev/null || echo 0) + 1)); echo $n > checks; pwd > check.pwd;
        read -r line; echo "saw: $line"; [ $n -ge 3 ] || { echo "check $n: 2 tests failed" >&2; exit 1; }"#;
    let id = s.create("fix the tests", &["--max-attempts", "3", "--verify", check]);
    // The command keeps what each attempt was told, by variable and by placeholder.
    let r = spawn(
        &s,
        &[
            "-j",
            "1",
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$TASK_FEEDBACK" > "env.$TASK_ATTEMPT"; printf '%s' "$1" > "arg.$TASK_ATTEMPT"; echo "attempt $TASK_ATTEMPT""#,
            "sh",
            "Fix the tests.{feedback}",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let t = s.json(&id);
    assert_eq!(
        (&t["status"], &t["attempts"], &t["exitCode"]),
        (&"completed".into(), &3.into(), &0.into())
    );
    assert_eq!(t["result"], "attempt 3\n");
    // A first attempt is told nothing; the next ones what the last check printed
    // (stdout and stderr together, in order).
    assert_eq!(read(&s, "env.1"), "");
    assert_eq!(read(&s, "arg.1"), "Fix the tests.");
    assert_eq!(
        read(&s, "env.2"),
        "saw: attempt 1\ncheck 1: 2 tests failed\n"
    );
    assert_eq!(
        read(&s, "env.3"),
        "saw: attempt 2\ncheck 2: 2 tests failed\n"
    );
    assert_eq!(
        read(&s, "arg.3"),
        "Fix the tests.\n\nA previous attempt at this task did not pass its check. The check said:\n\
         saw: attempt 2\ncheck 2: 2 tests failed\n"
    );
    // The check ran where the command runs.
    assert_eq!(
        read(&s, "check.pwd").trim(),
        s.dir().canonicalize().unwrap().to_str().unwrap()
    );
    // The history has both failed checks and their retries.
    let h = s.ok("task-list", [id.as_str(), "--history"]);
    assert_eq!(h.matches("check failed").count(), 2, "{h}");
    assert_eq!(h.matches("retried").count(), 2, "{h}");
}

#[test]
fn a_check_that_fails_for_good_leaves_its_output_in_the_log() {
    let s = Store::new();
    let id = s.create("t", &["--verify", "echo 'expected 4, got 5'; exit 7"]);
    let r = spawn(&s, &["--", "sh", "-c", "echo built >&2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("its check exited 7"), "{}", r.stderr);
    let t = s.json(&id);
    assert_eq!(
        (&t["status"], &t["exitCode"]),
        (&"failed".into(), &7.into())
    );
    assert_eq!(
        t["log"],
        "built\nverify: `echo 'expected 4, got 5'; exit 7` exited 7\nexpected 4, got 5\n"
    );
    assert_eq!(t["feedback"], "expected 4, got 5\n");
    let md = s.ok("task-list", ["--format", "md"]);
    assert!(md.contains("> expected 4, got 5"), "{md}");
}

#[test]
fn the_workers_check_applies_to_tasks_without_their_own() {
    let s = Store::new();
    let own = s.create("own check", &["--verify", "true"]);
    let plain = s.create("no check", &[]);
    let r = spawn(
        &s,
        &["--verify", "echo default check; exit 1", "--", "true"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(s.json(&own)["status"], "completed");
    let t = s.json(&plain);
    assert_eq!(t["status"], "failed");
    assert!(t["log"]
        .as_str()
        .unwrap()
        .contains("verify: `echo default check; exit 1` exited 1"));
}

#[test]
fn a_check_on_a_failed_command_never_runs() {
    let s = Store::new();
    let id = s.create("t", &["--verify", "touch check-ran"]);
    let r = spawn(&s, &["--", "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 1, "{r:?}");
    let t = s.json(&id);
    assert_eq!(
        (&t["status"], &t["exitCode"], &t["feedback"]),
        (&"failed".into(), &3.into(), &serde_json::Value::Null)
    );
    assert!(!s.dir().join("check-ran").exists());
    assert!(!t["log"].to_string().contains("verify:"));
}

#[test]
fn a_check_that_runs_too_long_is_killed_by_the_timeout() {
    let s = Store::new();
    let id = s.create("t", &["--verify", "echo checking; sleep 60"]);
    let r = spawn(&s, &["--timeout", "1s", "--kill-after", "1s", "--", "true"]);
    assert_eq!(r.code, 1, "{r:?}");
    let t = s.json(&id);
    assert_eq!(
        (&t["status"], &t["exitCode"]),
        (&"failed".into(), &124.into())
    );
    let log = t["log"].as_str().unwrap();
    assert!(
        log.contains("verify: `echo checking; sleep 60` exited 124"),
        "{log}"
    );
    assert!(
        log.contains("checking\nworker-spawn: timed out after 1s (--timeout)"),
        "{log}"
    );
}

#[test]
fn checks_are_given_and_changed_like_other_fields() {
    let s = Store::new();
    let id = s.create("t", &["--verify", "make test"]);
    assert_eq!(s.json(&id)["verify"], "make test");
    s.ok("task-update", [id.as_str(), "--verify", "cargo test"]);
    assert_eq!(s.json(&id)["verify"], "cargo test");
    s.ok("task-update", [id.as_str(), "--verify", ""]);
    assert_eq!(s.json(&id)["verify"], serde_json::Value::Null);
    let ids = s.create_batch(
        "b.jsonl",
        "{\"subject\":\"a\",\"verify\":\"test -f a\"}\n{\"subject\":\"b\"}\n",
        &[],
    );
    assert_eq!(s.json(&ids[0])["verify"], "test -f a");
    let ids = s.create_batch("c.csv", "subject,verify\nc,test -f c\n", &["--csv"]);
    assert_eq!(s.json(&ids[0])["verify"], "test -f c");
    let h = s.ok("task-list", [id.as_str(), "--history", "--format", "jsonl"]);
    assert!(h.contains(r#""fields":["verify"]"#), "{h}");

    // Refused, and the store unchanged.
    let before = s.snapshot();
    let r = s.exec("task-create", ["t", "--verify", ""]);
    assert_eq!(r.code, 2, "{r:?}");
    let bad = s.file("bad.jsonl", "{\"subject\":\"a\",\"verify\":5}\n");
    let r = s.exec("task-create", ["--from", bad.to_str().unwrap()]);
    assert_failure(&r, "task-create", 2, &["verify"]);
    let bad = s.file("empty.jsonl", "{\"subject\":\"a\",\"verify\":\" \"}\n");
    let r = s.exec("task-create", ["--from", bad.to_str().unwrap()]);
    assert_failure(&r, "task-create", 2, &["`verify` is empty"]);
    let r = s.exec("worker-spawn", ["--verify", "", "--", "true"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(s.snapshot(), before);
}
