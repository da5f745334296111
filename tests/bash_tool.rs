//! Inside Claude Code's Bash tool, which kills a call after two minutes and keeps the
//! first 30 000 characters of its output: reports that fit a budget, waits that time out
//! with a report and resume, and a pool that outlives the call.

mod procs;
mod util;

use procs::Bg;
use util::{assert_failure, wait_until, Store, DEADLINE};

/// 2 000 tasks run by worker-spawn: every 66th fails (30 in all) with a log line; the
/// others complete with four lines of result.
fn two_thousand_with_thirty_failures() -> Store {
    let s = Store::new();
    let batch: String = (1..=2000)
        .map(|i| format!("{{\"subject\":\"step {i} of the migration\"}}\n"))
        .collect();
    s.create_batch("plan.jsonl", &batch, &[]);
    let script = r#"
        if [ $((TASK_ID % 66)) -eq 0 ]; then
            echo "compiling $TASK_ID"; echo "error: boom in step $TASK_ID" >&2; exit 3
        fi
        printf 'step %s went fine\nsecond line\nthird line\nfourth line\n' "$TASK_ID"
    "#;
    let r = s.exec(
        "worker-spawn",
        ["-j", "4", "--no-progress", "--", "sh", "-c", script],
    );
    assert_eq!(r.code, 1, "{r:?}");
    s
}

#[test]
fn a_report_of_2000_tasks_fits_its_budget_and_names_every_failure() {
    let s = two_thousand_with_thirty_failures();
    let failures: Vec<u32> = (1..=2000).filter(|i| i % 66 == 0).collect();
    assert_eq!(failures.len(), 30);
    for (bin, args) in [
        ("task-list", vec!["--format", "md"]),
        ("task-wait", vec!["--format", "md"]),
        ("task-list", vec!["--format", "md", "--max-chars", "9000"]),
    ] {
        let r = s.exec(bin, &args);
        let budget: usize = match args.iter().position(|a| *a == "--max-chars") {
            Some(i) => args[i + 1].parse().unwrap(),
            None => 20_000,
        };
        let md = r.stdout.clone();
        assert!(r.code == 0 || r.code == 1, "{bin}: {r:?}");
        assert!(
            md.chars().count() <= budget,
            "{bin} {args:?}: {} characters",
            md.chars().count()
        );
        assert!(
            md.starts_with("## 2000 tasks: 1970 completed, 30 failed\n"),
            "{md}"
        );
        for id in &failures {
            assert!(
                md.contains(&format!("- ✗ #{id} step {id} of the migration")),
                "#{id} missing"
            );
            assert!(
                md.contains(&format!("  > error: boom in step {id}\n")),
                "#{id}'s log tail missing"
            );
        }
        // Failures come first; what completed is folded; the last line says how to see all.
        let first_task_line = md.lines().find(|l| l.starts_with("- ")).unwrap();
        assert!(first_task_line.starts_with("- ✗ #66 "), "{first_task_line}");
        assert!(md.contains("completed, not listed"), "{md}");
        assert!(
            md.trim_end()
                .lines()
                .last()
                .unwrap()
                .contains("--max-chars 0"),
            "{md}"
        );
    }
    // No limit: every task in full.
    let md = s.ok("task-list", ["--format", "md", "--max-chars", "0"]);
    assert!(md.chars().count() > 20_000);
    assert_eq!(md.lines().filter(|l| l.starts_with("- ")).count(), 2000);
    assert!(
        md.contains("- ✓ #1 step 1 of the migration"),
        "the full report is in id order"
    );
    assert!(!md.contains("Shortened"));
    // A budget too small for every failure still names as many as fit, and how many more.
    let md = s.ok("task-list", ["--format", "md", "--max-chars", "600"]);
    assert!(md.chars().count() <= 600, "{md}");
    assert!(
        md.starts_with("## 2000 tasks: 1970 completed, 30 failed\n"),
        "{md}"
    );
    assert!(md.contains("- ✗ #66 "), "{md}");
    assert!(
        md.contains("more failed or cancelled tasks not listed"),
        "{md}"
    );
    // A report within its budget is whole and in id order, as before.
    let md = s.ok("task-list", ["1", "66", "--format", "md"]);
    let entries: Vec<&str> = md.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(entries.len(), 2, "{md}");
    assert!(
        entries[0].starts_with("- ✓ #1 step 1 of the migration ("),
        "{md}"
    );
    assert!(
        entries[1].starts_with("- ✗ #66 step 66 of the migration ("),
        "{md}"
    );
    assert!(
        md.contains("  > step 1 went fine\n  > second line\n  > third line\n"),
        "{md}"
    );
    assert!(
        !md.contains("fourth line") && !md.contains("Shortened"),
        "{md}"
    );
}

#[test]
fn max_chars_goes_with_md_only() {
    let s = Store::new();
    s.create("a", &[]);
    let before = s.snapshot();
    for (bin, args) in [
        ("task-list", vec!["--max-chars", "100"]),
        ("task-list", vec!["--format", "json", "--max-chars", "100"]),
        (
            "task-list",
            vec!["--count", "--format", "md", "--max-chars", "100"],
        ),
        ("task-wait", vec!["--format", "json", "--max-chars", "100"]),
    ] {
        let r = s.exec(bin, &args);
        assert_failure(&r, bin, 2, &["--max-chars"]);
    }
    for bad in ["-1", "lots"] {
        let r = s.exec("task-list", ["--format", "md", "--max-chars", bad]);
        assert_failure(&r, "task-list", 2, &["--max-chars", bad]);
    }
    assert_eq!(s.snapshot(), before);
}

/// A wait that runs out prints the same report as one that succeeds, then exits 124: a
/// coordinator calls it again and sees progress each time.
#[test]
fn a_wait_that_times_out_reports_progress_and_the_next_call_resumes() {
    let s = Store::new();
    for i in 1..=4 {
        s.create(&format!("slow {i}"), &[]);
    }
    // Each task waits until the test lets it finish (removing `go` holds the rest).
    let mut c = s.std_cmd("worker-spawn");
    c.args([
        "-j",
        "1",
        "--no-progress",
        "--",
        "sh",
        "-c",
        "while [ ! -e go.$TASK_ID ]; do sleep 0.02; done; echo done $TASK_ID",
    ]);
    let pool = Bg::spawn("worker-spawn", c);
    s.file("go.1", "");
    wait_until(DEADLINE, || s.json("1")["status"] == "completed");
    let r = s.exec("task-wait", ["--timeout", "1s", "--format", "md"]);
    assert_eq!(r.code, 124, "{r:?}");
    assert!(
        r.stdout
            .starts_with("## 4 tasks: 2 pending, 1 in_progress, 1 completed\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("- ✓ #1 slow 1"), "{}", r.stdout);
    assert!(r.stderr.contains("timed out after 1s"), "{}", r.stderr);
    for id in 2..=4 {
        s.file(&format!("go.{id}"), "");
    }
    pool.wait().expect_code(0);
    let r = s.exec("task-wait", ["--timeout", "1s", "--format", "md"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("## 4 tasks: 4 completed\n"),
        "{}",
        r.stdout
    );
}

/// `worker-spawn --detach … -- CMD` started by `sh` in a process group of its own, as
/// the Bash tool runs a call; the commands wait for a file `gate` before they end.
/// Returns the shell (still running: it sleeps after the call) and the pool's pid.
fn detached_pool(s: &Store, tasks: usize, extra: &[&str]) -> (std::process::Child, u32) {
    use std::os::unix::process::CommandExt;
    for i in 1..=tasks {
        s.create(&format!("job {i}"), &["--max-attempts", "2"]);
    }
    let mut call = format!("worker-spawn --detach -j 4 {} -- sh -c ", extra.join(" "));
    call += "'echo $$ >> pids; while [ ! -e gate ]; do sleep 0.02; done; echo done $TASK_ID'";
    let mut c = s.sh_cmd(&format!(
        "{call} > detach.out 2> detach.err; echo $? > detach.code; sleep 300"
    ));
    c.process_group(0);
    let shell = c.spawn().expect("start the calling shell");
    let dir = s.dir().to_path_buf();
    wait_until(DEADLINE, || dir.join("detach.code").exists());
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(
        read("detach.code").trim(),
        "0",
        "stderr: {}",
        read("detach.err")
    );
    assert_eq!(read("detach.err"), "");
    let out = read("detach.out");
    // One line: pid and log file.
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        (words.len(), words[0], words[2]),
        (4, "pid", "log"),
        "{out:?}"
    );
    let pid: u32 = words[1].parse().expect("a pid");
    let log = std::path::Path::new(words[3]);
    assert_eq!(
        log.parent(),
        Some(s.log_dir().as_path()),
        "the log lies beside the store: {out}"
    );
    assert!(log.exists());
    (shell, pid)
}

/// The call returns while the pool's tasks still run (they wait for `gate`), the
/// caller's whole process group is killed as the Bash tool does at its timeout, and the
/// pool goes on, visible in `task-list --workers` while it runs and gone after.
#[test]
fn a_detached_pool_outlives_the_calling_process_group() {
    let s = Store::new();
    let (mut shell, pid) = detached_pool(&s, 20, &[]);
    // The call came back before any task could finish.
    assert_eq!(s.ids(&["-s", "completed"]).len(), 0);
    wait_until(DEADLINE, || s.ids(&["-s", "in_progress"]).len() == 4);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", shell.id())])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill the caller's process group");
    shell.wait().expect("reap the shell");
    let workers = s.ok("task-list", ["--workers", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&workers).expect("JSON");
    assert_eq!(v.as_array().unwrap().len(), 1, "{workers}");
    assert_eq!(v[0]["pid"], pid);
    assert_eq!(v[0]["jobs"], 4);
    assert_eq!(v[0]["detached"], true);
    assert!(s
        .ok("task-list", ["--workers"])
        .contains(&format!(":{pid} -j 4 ")));
    s.file("gate", "");
    wait_until(DEADLINE, || s.ids(&["-s", "completed"]).len() == 20);
    wait_until(DEADLINE, || procs::gone(pid));
    assert_eq!(s.ok("task-list", ["--workers"]), "");
    // Its talk went to its log, summary included.
    let log = std::fs::read_to_string(s.log_dir().join(format!("worker-spawn-default-{pid}.log")))
        .unwrap();
    assert!(
        log.contains("worker-spawn: 20 completed, 0 failed"),
        "{log}"
    );
}

/// `worker-spawn --stop` mid-run: the pool hands its running tasks back (attempts given
/// back) and ends; nothing of it is left.
#[test]
fn stop_hands_the_running_tasks_back_and_ends_the_pool() {
    let s = Store::new();
    let (mut shell, pid) = detached_pool(&s, 6, &[]);
    let pids = || -> Vec<u32> {
        std::fs::read_to_string(s.dir().join("pids"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    // Four commands running (each wrote its pid).
    wait_until(DEADLINE, || pids().len() == 4);
    let r = s.exec("worker-spawn", ["--stop"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!("pool {pid} stopped")),
        "{}",
        r.stderr
    );
    assert!(
        procs::gone(pid),
        "the pool is still there after --stop returned"
    );
    for t in s.tasks(&[]) {
        assert_eq!(t["status"], "pending", "{t}");
        assert_eq!(t["attempts"], 0, "{t}");
    }
    assert_eq!(pids().len(), 4, "no command started after --stop");
    for p in pids() {
        wait_until(DEADLINE, || procs::group_gone(p));
    }
    assert_eq!(s.ok("task-list", ["--workers"]), "");
    // Nothing left to stop: still 0, and it says so.
    let r = s.exec("worker-spawn", ["--stop"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("no pool is running"), "{}", r.stderr);
    let _ = shell.kill();
    let _ = shell.wait();
}

/// A pool that does not end within --stop's --timeout after SIGTERM is killed: exit 1.
#[test]
fn stop_kills_a_pool_that_does_not_end_in_time() {
    let s = Store::new();
    // --kill-after 60s: the pool waits that long for its stubborn commands after SIGTERM.
    for i in 1..=2 {
        s.create(&format!("stubborn {i}"), &["--max-attempts", "3"]);
    }
    let r = s.exec(
        "worker-spawn",
        [
            "--detach",
            "-j",
            "2",
            "--kill-after",
            "60s",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo $$ >> pids; while :; do sleep 0.05; done",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let pid: u32 = r.stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    wait_until(DEADLINE, || s.ids(&["-s", "in_progress"]).len() == 2);
    let r = s.exec("worker-spawn", ["--stop", "--timeout", "500ms"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("killed"), "{}", r.stderr);
    wait_until(DEADLINE, || procs::gone(pid));
    assert_eq!(s.ok("task-list", ["--workers"]), "");
}

/// Everything that can be checked is checked before the pool starts: a command that
/// cannot run is exit 2 in the foreground, and nothing is started or written.
#[test]
fn a_detach_that_cannot_run_its_command_starts_nothing() {
    let s = Store::new();
    s.create("a", &[]);
    let before = s.snapshot();
    let r = s.exec(
        "worker-spawn",
        ["--detach", "--", "no-such-program-parallel-tasks-test"],
    );
    assert_failure(
        &r,
        "worker-spawn",
        2,
        &["no-such-program-parallel-tasks-test", "nothing was claimed"],
    );
    assert_eq!(s.snapshot(), before);
    assert_eq!(s.ok("task-list", ["--workers"]), "");
    let logs = std::fs::read_dir(s.dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("worker-spawn-")
        })
        .count();
    assert_eq!(logs, 0, "a log file was made");
    // A store that cannot be opened is found in the foreground too.
    let bad = Store::new().with_db(s.dir());
    let r = bad.exec("worker-spawn", ["--detach", "--", "true"]);
    assert_failure(&r, "worker-spawn", 5, &["directory"]);
    // --format json gives the pid and log as fields.
    let r = s.exec(
        "worker-spawn",
        ["--detach", "--format", "json", "--", "true"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON object");
    let pid = v["pid"].as_u64().expect("pid") as u32;
    assert!(v["log"]
        .as_str()
        .expect("log")
        .ends_with(&format!("-{pid}.log")));
    wait_until(DEADLINE, || procs::gone(pid));
    assert_eq!(s.json("1")["status"], "completed");
}

/// The coordinator loop of `examples/claude/SKILL.md`, played as Claude Code's Bash tool
/// runs it: each call in a shell of its own under `timeout 120`, what it prints cut at
/// 30 000 characters. The wait's 100 s bound is cut to 1 s so that the loop goes round
/// (the work takes at least 2 s: 25 tasks of 0.4 s, five at a time).
#[test]
fn the_skill_loop_completes_inside_the_bash_tool() {
    let calls = util::claude::skill_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    let s = Store::new();
    let agent = s.file(
        "agent",
        "#!/bin/sh\nsleep 0.4\ncase \"$2\" in *IMPOSSIBLE*) echo \"cannot: $2\" >&2; exit 3;; esac\necho \"did: $2\"\n",
    );
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The planning step, as the coordinator writes it: 24 reviews, one of which cannot
    // succeed, and a summary after all of them.
    let mut plan: Vec<serde_json::Value> = (1..=24)
        .map(|i| {
            let what = if i == 7 {
                "IMPOSSIBLE review"
            } else {
                "review"
            };
            serde_json::json!({"key": format!("m{i}"), "subject": format!("Review module {i}"),
                               "description": format!("{what} of module {i}")})
        })
        .collect();
    let keys: Vec<String> = (1..=24).map(|i| format!("m{i}")).collect();
    plan.push(
        serde_json::json!({"key": "sum", "subject": "Summarise the reviews",
                                  "description": "summary", "blockedBy": keys}),
    );
    s.file("plan.json", serde_json::to_string_pretty(&plan).unwrap());

    let tool = |call: &str| -> (i32, String) {
        let mut c = s.sh_cmd("exec timeout 120 sh -c \"$CALL\"");
        c.env("CALL", call)
            .env("CLAUDE_CODE", &agent)
            .env("CLAUDE_CODE_TASK_LIST_ID", "review-job");
        let o = c.output().expect("run a call");
        let mut all = String::from_utf8_lossy(&o.stdout).into_owned();
        all += &String::from_utf8_lossy(&o.stderr);
        let shown: String = all.chars().take(30_000).collect();
        (o.status.code().unwrap_or(-1), shown)
    };
    let (code, out) = tool(&calls[0]);
    assert_eq!((code, out.lines().count()), (0, 25), "{out}");
    let (code, out) = tool(&calls[1]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("pid "), "{out}");
    let wait = calls[2].replace("--timeout 100s", "--timeout 1s");
    assert_ne!(wait, calls[2], "the wait call has a 100s bound");
    let mut rounds = 0;
    let (code, report) = loop {
        rounds += 1;
        let (code, out) = tool(&wait);
        if code != 124 || rounds == 100 {
            break (code, out);
        }
        assert!(
            out.starts_with("## 25 tasks: "),
            "each round shows the counts: {out}"
        );
    };
    assert!(rounds >= 2, "the wait went round {rounds} times");
    assert_eq!(code, 1, "one review failed: {report}");
    // The final report is whole: the heading, every task, the failure with its log.
    assert!(
        report.starts_with("## 25 tasks: 1 pending, 23 completed, 1 failed (1 of them stalled)\n"),
        "{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("- ")).count(),
        25,
        "{report}"
    );
    assert!(report.contains("- ✗ #7 Review module 7 ("), "{report}");
    assert!(
        report.contains("  > cannot: IMPOSSIBLE review of module 7"),
        "{report}"
    );
    assert!(
        report.contains("- ⊘ #25 Summarise the reviews (stalled: #7 failed)"),
        "{report}"
    );
    assert!(!report.contains("Shortened"), "{report}");
    let (code, out) = tool(&calls[3]);
    assert_eq!(code, 0, "{out}");
    let mut c = s.std_cmd("task-list");
    c.args(["--workers", "--list", "review-job"]);
    assert_eq!(util::Run::from_output(&c.output().unwrap()).success(), "");
}
