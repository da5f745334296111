//! Task history: every change of a task is an event (`task-list ID --history`), notes
//! (`task-update ID --note`), takeovers after a lease ran out or a holder was killed,
//! and the md report's story of a failed or retried task.

mod procs;
mod util;

use procs::{read_pid, Bg};
use serde_json::Value;
use util::{assert_failure, wait_until, Store, DEADLINE};

/// The task's events as JSON objects, oldest first.
fn history(s: &Store, id: &str) -> Vec<Value> {
    s.ok("task-list", [id, "--history", "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

#[test]
fn every_change_is_an_event_in_order() {
    let s = Store::new();
    let id = s.create("Draft", &[]);
    s.ok(
        "task-update",
        [&id, "--subject", "Build", "-m", "area=core"],
    );
    s.exec_with(
        "task-update",
        [&id, "--note", "needs the staging DB"],
        &[("USER", "ann")],
        None,
    )
    .success();
    s.exec_stdin(
        "task-update",
        [&id, "--note", "-", "--owner", "coordinator"],
        "from stdin\n",
    )
    .success();
    s.ok("task-update", ["--claim", "--owner", "w1"]);
    s.ok("task-update", [&id, "-s", "completed", "--owner", "w1"]);

    let e = history(&s, &id);
    assert_eq!(
        kinds(&e),
        ["created", "edited", "note", "note", "claimed", "edited"],
        "{e:?}"
    );
    assert!(e.iter().all(|e| e["task"] == id.as_str()));
    assert_eq!(e[1]["fields"], serde_json::json!(["subject", "metadata"]));
    assert_eq!(
        (&e[2]["by"], &e[2]["text"]),
        (&"ann".into(), &"needs the staging DB".into())
    );
    // `--note -` reads stdin; --owner with --note names the author.
    assert_eq!(
        (&e[3]["by"], &e[3]["text"]),
        (&"coordinator".into(), &"from stdin\n".into())
    );
    // A note changes no owner: the claim below was not refused as reserved.
    assert_eq!((&e[4]["by"], &e[4]["attempt"]), (&"w1".into(), &1.into()));
    assert_eq!(e[5]["status"], "completed");
    // Times are RFC 3339 and never go backwards.
    let at: Vec<&str> = e.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");

    // Text: one line an event, task and time first.
    let text = s.ok("task-list", [&id, "--history"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with(&format!("#{id} 20")), "{text}");
    assert!(
        lines[2].ends_with("note by ann: needs the staging DB"),
        "{text}"
    );
    assert!(lines[4].contains("claimed by w1: attempt 1"), "{text}");
    // JSON: one array.
    let all: Value =
        serde_json::from_str(&s.ok("task-list", [&id, "--history", "--format", "json"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 6);
}

#[test]
fn history_and_note_refuse_bad_input_and_change_nothing() {
    let s = Store::new();
    let id = s.create("t", &[]);
    let before = s.snapshot();
    let r = s.exec("task-list", ["--history"]);
    assert_failure(&r, "task-list", 2, &["--history needs task ids"]);
    let r = s.exec("task-list", [&id, "--history", "--format", "csv"]);
    assert_failure(
        &r,
        "task-list",
        2,
        &["--history prints text, json or jsonl"],
    );
    let r = s.exec("task-list", [&id, "--history", "-s", "pending"]);
    assert_failure(&r, "task-list", 2, &["not filters"]);
    let r = s.exec("task-list", ["99", "--history"]);
    assert_failure(&r, "task-list", 3, &["99"]);
    let r = s.exec("task-update", [&id, "--note", "  "]);
    assert_failure(&r, "task-update", 2, &["the note is empty"]);
    let r = s.exec(
        "task-update",
        [&id, "--note", "x", "--claim", "--owner", "w"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(s.snapshot(), before);
    assert_eq!(kinds(&history(&s, &id)), ["created"]);
    // A deleted task's history goes with it.
    s.ok("task-update", [&id, "--delete"]);
    let r = s.exec("task-list", [&id, "--history"]);
    assert_failure(&r, "task-list", 3, &[]);
}

#[test]
fn a_lease_that_ran_out_is_taken_over_and_the_history_says_by_whom() {
    let s = Store::new();
    let id = s.create("t", &["--max-attempts", "3"]);
    s.ok(
        "task-update",
        ["--claim", "--owner", "slow", "--lease", "200ms"],
    );
    // The next claim takes it over once the lease has run out.
    wait_until(DEADLINE, || {
        s.exec("task-update", ["--claim", "--owner", "quick"]).code == 0
    });
    let e = history(&s, &id);
    assert_eq!(
        kinds(&e),
        ["created", "claimed", "taken_over", "claimed"],
        "{e:?}"
    );
    let t = &e[2];
    assert_eq!(
        (&t["by"], &t["from"], &t["status"]),
        (&"quick".into(), &"slow".into(), &"pending".into())
    );
    assert!(t["why"].as_str().unwrap().contains("lease"), "{t}");
    assert_eq!(
        (&e[3]["by"], &e[3]["attempt"]),
        (&"quick".into(), &2.into())
    );
}

#[test]
fn after_kill_9_the_history_shows_the_lost_attempt_and_the_takeover() {
    let s = Store::new();
    let id = s.create("t", &["--max-attempts", "2"]);
    let mut w = Bg::start(
        &s,
        "worker-spawn",
        &[
            "-j",
            "1",
            "--owner-prefix",
            "first",
            "--",
            "sh",
            "-c",
            "echo $$ > pid; sleep 300",
        ],
    );
    read_pid(&s.dir().join("pid"));
    let first_pid = w.pid();
    w.kill_hard();
    // At least once: the next pool recovers the task at once (its holder is gone) and
    // runs it again.
    let r = Bg::start(
        &s,
        "worker-spawn",
        &["-j", "1", "--owner-prefix", "second", "--", "true"],
    )
    .wait();
    assert_eq!(r.code, 0, "{r:?}");
    let e = history(&s, &id);
    assert_eq!(
        kinds(&e),
        ["created", "claimed", "taken_over", "claimed", "finished"],
        "{e:?}"
    );
    assert_eq!(e[1]["by"], "first-1");
    assert_eq!(e[1]["pid"], first_pid);
    assert!(e[1]["host"].is_string());
    let t = &e[2];
    assert_eq!(
        (&t["by"], &t["from"], &t["attempt"]),
        (&"second".into(), &"first-1".into(), &1.into())
    );
    assert!(t["why"].as_str().unwrap().contains("is gone"), "{t}");
    assert_eq!(t["status"], "pending");
    assert_eq!(
        (&e[3]["by"], &e[3]["attempt"]),
        (&"second-1".into(), &2.into())
    );
    assert_eq!(
        (&e[4]["status"], &e[4]["exitCode"]),
        (&"completed".into(), &0.into())
    );
    assert!(e[4]["durationMs"].as_i64().unwrap() >= 0);
}

#[test]
fn the_md_report_tells_a_failed_or_retried_tasks_attempts_and_last_events() {
    let s = Store::new();
    s.create("flaky", &["--max-attempts", "2"]);
    s.create("broken", &["--max-attempts", "2"]);
    s.create("fine", &[]);
    let r = Bg::start(
        &s,
        "worker-spawn",
        &[
            "-j",
            "1",
            "--owner-prefix",
            "w",
            "--",
            "sh",
            "-c",
            r#"case "$TASK_SUBJECT/$TASK_ATTEMPT" in flaky/1|broken/*) exit 3;; esac"#,
        ],
    )
    .wait();
    assert_eq!(r.code, 1, "{r:?}");
    let md = s.ok("task-list", ["--format", "md"]);
    let entry = |subject: &str| -> Vec<&str> {
        let start = md.lines().position(|l| l.contains(subject)).unwrap();
        md.lines()
            .skip(start)
            .take_while(|l| l.contains(subject) || l.starts_with("  "))
            .collect()
    };
    let broken = entry("broken");
    assert!(broken[0].contains("exit 3, attempt 2 of 2"), "{md}");
    assert!(
        broken
            .iter()
            .any(|l| l.contains("retried by w-1: attempt 1, exit 3")),
        "{md}"
    );
    assert!(
        broken
            .last()
            .unwrap()
            .contains("finished by w-1: failed, exit 3"),
        "{md}"
    );
    let flaky = entry("flaky");
    assert!(flaky[0].contains("attempt 2 of 2"), "{md}");
    assert!(
        flaky
            .iter()
            .any(|l| l.contains("finished by w-1: completed")),
        "{md}"
    );
    // A task that went through once tells no story.
    assert_eq!(entry("fine").len(), 1, "{md}");
}
