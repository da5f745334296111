//! Following a run: `task-list --watch` as a stream of JSON lines (pipes, signals,
//! `--until-done`), as a full-screen view in a real terminal (tmux), and a running
//! task's output growing in the files its JSON names (`logFile`).

mod procs;
mod util;

use procs::Bg;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use util::{assert_failure, wait_until, Store, DEADLINE};

/// The stream's lines so far, parsed.
fn lines(w: &Bg) -> Vec<Value> {
    w.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Wait until the stream has printed `n` lines in all; then the `n`-th.
#[track_caller]
fn line(w: &Bg, n: usize) -> Value {
    wait_until(DEADLINE, || lines(w).len() >= n);
    lines(w)[n - 1].clone()
}

#[test]
fn the_stream_prints_the_tasks_then_each_change_once_in_order() {
    let s = Store::new();
    s.create("build", &[]);
    s.create("test", &["-b", "1"]);
    let mut w = Bg::start(&s, "task-list", &["--watch", "--format", "jsonl"]);
    assert_eq!(line(&w, 1)["id"], "1");
    assert_eq!(line(&w, 2)["id"], "2");
    assert_eq!(line(&w, 2)["ready"], false);

    // One change at a time; each shows up as exactly one line, the changed task.
    let mut n = 2;
    let step = |n: &mut usize, args: &[&str], check: &dyn Fn(&Value)| {
        s.ok("task-update", args);
        *n += 1;
        check(&line(&w, *n));
    };
    step(&mut n, &["1", "-s", "in_progress", "--owner", "w1"], &|l| {
        assert_eq!(
            (l["id"].as_str(), l["status"].as_str()),
            (Some("1"), Some("in_progress"))
        );
        assert_eq!(l["owner"], "w1");
    });
    s.create("docs", &[]);
    n += 1;
    assert_eq!(line(&w, n)["subject"], "docs");
    step(&mut n, &["3", "--subject", "write docs"], &|l| {
        assert_eq!(
            (l["id"].as_str(), l["subject"].as_str()),
            (Some("3"), Some("write docs"))
        );
    });
    // Completing 1 changes 1, and 2 (now ready, and nothing left waiting on 1): two lines,
    // in id order.
    s.ok("task-update", ["1", "-s", "completed"]);
    assert_eq!(line(&w, n + 1)["status"], "completed");
    let two = line(&w, n + 2);
    assert_eq!(
        (two["id"].as_str(), two["ready"].as_bool()),
        (Some("2"), Some(true))
    );
    n += 2;
    s.ok("task-update", ["3", "--delete"]);
    n += 1;
    assert_eq!(line(&w, n), serde_json::json!({"id": "3", "gone": true}));

    // Nothing else arrives: each change came once. (A write to another list does not
    // wake it into printing either.)
    s.exec_with(
        "task-create",
        ["elsewhere"],
        &[("CLAUDE_CODE_TASK_LIST_ID", "other")],
        None,
    )
    .expect_code(0);
    s.ok("task-update", ["2", "--note", "looked at it"]);
    n += 1;
    assert_eq!(
        line(&w, n)["id"],
        "2",
        "a note changes the task's updatedAt"
    );
    s.create("last", &[]);
    n += 1;
    assert_eq!(line(&w, n)["subject"], "last");
    assert_eq!(lines(&w).len(), n, "{}", w.stdout());

    w.wait_for_handlers();
    w.signal("TERM");
    let r = w.wait_timeout(DEADLINE);
    assert_eq!(r.code, 143);
    assert_eq!(r.stderr, "", "ends quietly");
}

#[test]
fn a_run_streamed_with_until_done_ends_settled_and_every_task_s_lines_go_forward() {
    let s = Store::new();
    for i in 0..12 {
        // Task k (from 4) waits for task k-3: three chains of four.
        let blockers = if i >= 3 {
            format!("{}", i - 2)
        } else {
            String::new()
        };
        let mut args = vec![];
        if !blockers.is_empty() {
            args = vec!["-b", &blockers];
        }
        s.create(&format!("t{i}"), &args);
    }
    let w = Bg::start(
        &s,
        "task-list",
        &["--watch", "--until-done", "--format", "jsonl"],
    );
    wait_until(DEADLINE, || lines(&w).len() >= 12);
    s.exec(
        "worker-spawn",
        ["-j", "3", "--", "sh", "-c", "test $TASK_ID != 9"],
    )
    .expect_code(1);
    let r = w.wait_timeout(DEADLINE);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rank = |s: &str| match s {
        "pending" => 0,
        "in_progress" => 1,
        _ => 2,
    };
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for l in r.stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        if let Some(before) = last.get(&id) {
            assert_ne!(before, &v, "a line repeats the one before it");
            let (a, b) = (
                before["status"].as_str().unwrap(),
                v["status"].as_str().unwrap(),
            );
            assert!(rank(a) <= rank(b), "task {id} went from {a} back to {b}");
        }
        last.insert(id, v);
    }
    // The last line of each task is the task as the store has it now.
    let now = s.tasks(&[]);
    assert_eq!(last.len(), now.len());
    for t in now {
        let id = t["id"].as_str().unwrap();
        assert_eq!(last[id]["status"], t["status"], "task {id}");
    }
    assert_eq!(last["9"]["status"], "failed");
    // 12 is blocked by 9 (failed): stalled counts as settled, as in task-wait.
    assert_eq!(last["12"]["status"], "pending");
}

#[test]
fn a_closed_pipe_or_sigint_ends_the_stream_quietly() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    // `head -1` leaves after the first line; the watcher notices without a change.
    let started = Instant::now();
    let r = s.bash("set -o pipefail; task-list --watch | head -n 1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(started.elapsed() < DEADLINE);

    let mut w = Bg::start(&s, "task-list", &["--watch", "-s", "pending"]);
    wait_until(DEADLINE, || lines(&w).len() == 2);
    w.wait_for_handlers();
    w.signal("INT");
    let r = w.wait_timeout(DEADLINE);
    assert_eq!((r.code, r.stderr.as_str()), (130, ""));
}

#[test]
fn a_filtered_stream_says_when_a_task_leaves_it() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    let w = Bg::start(
        &s,
        "task-list",
        &[
            "--watch",
            "-s",
            "pending",
            "--until-done",
            "--format",
            "jsonl",
        ],
    );
    wait_until(DEADLINE, || lines(&w).len() == 2);
    s.ok("task-update", ["2", "-s", "completed"]);
    assert_eq!(line(&w, 3), serde_json::json!({"id": "2", "gone": true}));
    s.ok("task-update", ["1", "-s", "cancelled"]);
    let r = w.wait_timeout(DEADLINE);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
}

#[test]
fn watch_refuses_formats_it_cannot_stream() {
    let s = Store::new();
    s.create("a", &[]);
    let before = s.snapshot();
    for (args, needle) in [
        (vec!["--watch", "--format", "csv"], "--watch"),
        (vec!["--watch", "--count"], "--count"),
        (vec!["--until-done"], "--watch"),
        (vec!["9", "--watch"], "#9"),
    ] {
        let r = s.exec("task-list", &args);
        let code = if needle == "#9" { 3 } else { 2 };
        assert_failure(&r, "task-list", code, &[needle]);
    }
    assert_eq!(s.snapshot(), before);
}

/// A tmux server of its own (its socket in the test's folder), so that tests do not
/// meet each other's sessions.
struct Tmux<'a> {
    s: &'a Store,
}

impl Tmux<'_> {
    fn cmd(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(self.s.dir().join("tmux.sock"))
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "w"])
    }

    #[track_caller]
    fn wait_for(&self, what: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            last = self.screen();
            if what(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the screen never showed what was expected:\n{last}");
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.s.dir().join("tmux.sock"))
            .arg("kill-server")
            .output();
    }
}

#[test]
fn the_terminal_view_follows_the_run_and_q_gives_the_terminal_back() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: no `tmux` program to run the view in a terminal (install tmux)");
        return;
    }
    let s = Store::new();
    s.create("build the thing", &[]);
    s.create("test the thing", &["-b", "1"]);
    s.create("lint", &["-p", "3"]);
    s.create("flaky", &[]);
    // The shell in the pane: the view runs between two snapshots of the terminal's
    // settings, which must match (raw mode undone). Its stdin is a pipe, as in
    // `echo 3 | task-list - --watch`: keys come from the terminal all the same.
    let script = s.file(
        "view.sh",
        "echo BEFORE; a=$(stty -g); : | task-list --watch; echo \"exited=$?\"; \
         [ \"$(stty -g)\" = \"$a\" ] && echo restored; sleep 600\n",
    );
    let t = Tmux { s: &s };
    let mut env = vec!["env".to_string()];
    for (k, v) in s.std_cmd("task-list").get_envs() {
        if let (k, Some(v)) = (k.to_string_lossy(), v) {
            env.push(format!("{k}={}", v.to_string_lossy()));
        }
    }
    env.push(format!("PATH={}:/usr/bin:/bin", util::bin_dir().display()));
    env.push("NO_COLOR=1".into());
    env.extend(["sh".into(), script.display().to_string()]);
    let quoted: Vec<String> = env.iter().map(|a| format!("'{a}'")).collect();
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "w",
        "-x",
        "100",
        "-y",
        "30",
        "-c",
        &s.dir().display().to_string(),
        &quoted.join(" "),
    ]);
    let screen = t.wait_for(|sc| sc.contains("task-list --watch"));
    assert!(screen.contains("4 tasks"), "{screen}");
    assert!(screen.contains("0 completed"), "{screen}");
    assert!(screen.contains("Ready (3)"), "{screen}");
    // The ready queue in claim order: priority first.
    let lint = screen.find("lint").unwrap();
    let build = screen.find("build the thing").unwrap();
    assert!(lint < build, "{screen}");

    // Changes from another shell show up.
    s.ok(
        "task-update",
        ["1", "-s", "in_progress", "--owner", "alice"],
    );
    let screen = t.wait_for(|sc| sc.contains("In progress (1)"));
    assert!(screen.contains("alice"), "{screen}");
    s.ok("task-update", ["1", "-s", "completed"]);
    s.ok("task-update", ["4", "-s", "failed"]);
    let screen = t.wait_for(|sc| sc.contains("Recent failures (1)"));
    assert!(screen.contains("1 completed"), "{screen}");
    assert!(screen.contains("1 failed"), "{screen}");
    assert!(screen.contains("2/4 closed"), "{screen}");
    assert!(screen.contains("flaky"), "{screen}");
    assert!(
        !screen.contains('\u{1b}'),
        "NO_COLOR: no escapes in {screen:?}"
    );

    // A smaller window: redrawn to fit.
    t.cmd(&["resize-window", "-t", "w", "-x", "60", "-y", "12"]);
    // (The progress bar is the width less 40, at least 10: 60 of 100 columns before.)
    let screen = t.wait_for(|sc| {
        sc.lines()
            .any(|l| l.starts_with('[') && l.find(']') == Some(21))
    });
    assert!(screen.contains("task-list --watch"), "{screen}");

    t.cmd(&["send-keys", "-t", "w", "q"]);
    let screen = t.wait_for(|sc| sc.contains("restored"));
    assert!(screen.contains("exited=0"), "{screen}");
    assert!(
        screen.contains("BEFORE"),
        "the shell's screen is back: {screen}"
    );
    assert!(!screen.contains("task-list --watch:"), "{screen}");
}

#[test]
fn a_running_task_names_its_output_files_and_they_grow_while_it_runs() {
    let s = Store::new();
    s.create("talk", &[]);
    let gate = s.dir().join("go");
    let out_dir = s.dir().join("out");
    let script = format!(
        "echo first; echo oops >&2; while [ ! -e {} ]; do sleep 0.02; done; echo second",
        gate.display()
    );
    let pool = Bg::start(
        &s,
        "worker-spawn",
        &[
            "--output-dir",
            out_dir.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    wait_until(DEADLINE, || s.json("1")["status"] == "in_progress");
    let t = s.json("1");
    let files = &t["logFile"];
    let out = files["out"].as_str().expect("logFile.out");
    let err = files["err"].as_str().expect("logFile.err");
    assert!(out.starts_with('/'), "absolute: {out}");
    let list = t["list"].as_str().unwrap();
    assert_eq!(out, out_dir.join(list).join("1.out").to_str().unwrap());
    // The first line is there while the command still runs (it waits for the gate).
    wait_until(DEADLINE, || {
        std::fs::read_to_string(out).unwrap_or_default() == "first\n"
    });
    wait_until(DEADLINE, || {
        std::fs::read_to_string(err).unwrap_or_default() == "oops\n"
    });
    assert_eq!(s.json("1")["status"], "in_progress");
    std::fs::write(&gate, "").unwrap();
    let r = pool.wait_timeout(DEADLINE);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "first\nsecond\n");
    // Without --output-dir there is nothing to name.
    s.create("quiet", &[]);
    s.exec("worker-spawn", ["--", "true"]).expect_code(0);
    assert_eq!(s.json("2")["logFile"], Value::Null);
}

#[test]
fn watching_named_tasks_follows_them_through_a_deletion() {
    let s = Store::new();
    for n in ["a", "b", "c"] {
        s.create(n, &[]);
    }
    let w = Bg::start(
        &s,
        "task-list",
        &["1", "3", "--watch", "--until-done", "--limit", "2"],
    );
    assert_eq!(line(&w, 1)["id"], "1");
    assert_eq!(
        line(&w, 2)["id"],
        "3",
        "--limit counts among the named tasks"
    );
    s.ok("task-update", ["2", "-s", "completed"]); // not watched: no line
    s.ok("task-update", ["1", "--delete"]);
    assert_eq!(line(&w, 3), serde_json::json!({"id": "1", "gone": true}));
    s.ok("task-update", ["3", "-s", "completed"]);
    let r = w.wait_timeout(DEADLINE);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let last: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["id"].as_str(), last["status"].as_str()),
        (Some("3"), Some("completed"))
    );
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
}

/// Every transition arrives, in order, once — however close together: a claim and a
/// completion in one shell line (well within one read of the store) still show the task
/// `in_progress` before `completed`; a retry's way back to pending and a second claim
/// too. (Before the stream followed the store's events, the first two folded into one.)
#[test]
fn a_claim_completed_at_once_is_still_seen_in_progress() {
    let s = Store::new();
    s.create("quick", &[]);
    s.create("twice", &["--max-attempts", "2"]);
    let w = Bg::start(&s, "task-list", &["--watch", "--format", "jsonl"]);
    line(&w, 2);
    s.sh("task-update --claim 1 --owner w1 >/dev/null && task-update 1 -s completed")
        .expect_code(0);
    s.sh(
        "task-update --claim 2 --owner w2 >/dev/null && task-update 2 -s failed && \
         task-update 2 -s pending && task-update --claim 2 --owner w3 >/dev/null && \
         task-update 2 -s completed --owner w3",
    )
    .expect_code(0);
    wait_until(DEADLINE, || {
        lines(&w)
            .iter()
            .filter(|l| l["id"] == "2" && l["status"] == "completed")
            .count()
            == 1
    });
    let seen = |id: &str| -> Vec<String> {
        lines(&w)
            .iter()
            .filter(|l| l["id"] == id)
            .map(|l| format!("{} {}", l["status"].as_str().unwrap(), l["owner"]))
            .collect()
    };
    assert_eq!(
        seen("1"),
        ["pending null", "in_progress \"w1\"", "completed \"w1\""]
    );
    assert_eq!(
        seen("2"),
        [
            "pending null",
            "in_progress \"w2\"",
            "failed \"w2\"",
            "pending null",
            "in_progress \"w3\"",
            "completed \"w3\""
        ]
    );
}
