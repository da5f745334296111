//! The scripts in examples/ run as the README says, so they never rot.

mod util;

use util::Store;

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn demo_plans_runs_waits_and_reports() {
    let s = Store::new();
    let out = s.bash(&example("demo.sh")).expect_code(0).stdout;
    assert!(
        out.contains("#3 [pending] Build [blocked by #1, #2]"),
        "{out}"
    );
    assert!(out.contains("wave 3: #4"), "{out}");
    assert!(out.contains("## 4 tasks: 4 completed"), "{out}");
    assert!(out.contains("✓ #4 Release notes"), "{out}");
    // The demo makes its own list in the store it was given; every task completed.
    let lists = s.ok("task-list", ["--lists", "--format", "json"]);
    let lists: serde_json::Value = serde_json::from_str(&lists).unwrap();
    assert_eq!(lists[0]["completed"], 4, "{lists}");
    assert!(
        lists[0]["list"].as_str().unwrap().starts_with("demo-"),
        "{lists}"
    );
}

/// Run one example with bash on a fresh store; its stdout.
fn run_example(s: &Store, name: &str) -> String {
    s.bash(&example(name)).expect_code(0).stdout
}

#[test]
fn fork_join_reviews_five_items() {
    let s = Store::new();
    let out = run_example(&s, "fork-join.sh");
    assert!(out.contains("## 5 tasks: 5 completed"), "{out}");
    for pr in 101..=105 {
        assert!(out.contains(&format!("> PR {pr}: looks good")), "{out}");
    }
}

#[test]
fn waves_run_in_dependency_order() {
    let s = Store::new();
    let out = run_example(&s, "waves.sh");
    assert!(
        out.contains("wave 1: #1, #4\nwave 2: #2, #3\nwave 3: #5"),
        "{out}"
    );
    let order: Vec<&str> = out.split("order:\n").nth(1).unwrap().lines().collect();
    let pos = |name: &str| order.iter().position(|l| *l == name).unwrap();
    assert!(
        pos("Build") < pos("Unit tests") && pos("Build") < pos("End-to-end tests"),
        "{order:?}"
    );
    assert_eq!(pos("Deploy"), 4, "{order:?}");
}

#[test]
fn threshold_goes_ahead_at_three_of_five() {
    let s = Store::new();
    let out = run_example(&s, "threshold.sh");
    assert!(out.contains("3 of 5 approved: going ahead"), "{out}");
    // The slow reviewers were stopped and their tasks given back, not lost.
    let open = s.ok("task-list", ["--lists", "--format", "json"]);
    let lists: serde_json::Value = serde_json::from_str(&open).unwrap();
    assert_eq!(lists[0]["in_progress"], 0, "{lists}");
    assert_eq!(lists[0]["total"], 5, "{lists}");
}

#[test]
fn fail_fast_stops_then_retry_finishes() {
    let s = Store::new();
    let out = run_example(&s, "fail-fast.sh");
    assert!(out.contains("a step failed:"), "{out}");
    assert!(out.contains("✗ #2 compile"), "{out}");
    assert!(out.contains("> compiler crashed"), "{out}");
    assert!(out.contains("task-wait --fail-fast: exit 1"), "{out}");
    for line in [
        "#1 [completed] fetch",
        "#2 [completed] compile",
        "#4 [completed] upload",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
}

#[test]
fn specialised_pools_take_only_their_tasks() {
    let s = Store::new();
    let out = run_example(&s, "specialised.sh");
    for line in out.lines().skip(1).filter(|l| l.contains(',')) {
        if line.contains("Review module") {
            assert!(line.contains(",reviewer-"), "{line}");
        } else if line.contains("Test module") {
            assert!(line.contains(",tester-"), "{line}");
        }
    }
    assert_eq!(out.matches("reviewed by reviewer-").count(), 3, "{out}");
    assert_eq!(out.matches("tested by tester-").count(), 3, "{out}");
}

#[test]
fn cron_ticks_take_ten_tasks_each() {
    let s = Store::new();
    let out = run_example(&s, "cron-tick.sh");
    // Every tick planned again: still 25 tasks, each run once.
    assert_eq!(
        out,
        "tick 1: 10 of 25 completed\ntick 2: 20 of 25 completed\ntick 3: 25 of 25 completed\n"
    );
}

#[test]
fn makefile_fans_out_and_in() {
    let s = Store::new();
    let make = format!("make -s -f {} report", example("Makefile"));
    let out = s.sh(&make).expect_code(0).stdout;
    assert!(out.contains("pending 3"), "{out}");
    assert!(out.contains("## 3 tasks: 3 completed"), "{out}");
    assert!(out.contains("> checked lint b.c"), "{out}");
    let report = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(report.contains("## 3 tasks: 3 completed"), "{report}");
    // Again: the plan finds its three tasks (all completed), so nothing runs twice.
    let out = s.sh(&make).expect_code(0).stdout;
    assert!(out.contains("pending 0"), "{out}");
    assert!(out.contains("## 3 tasks: 3 completed"), "{out}");
    let lists: serde_json::Value =
        serde_json::from_str(&s.ok("task-list", ["--lists", "--format", "json"])).unwrap();
    assert_eq!(lists[0]["total"], 3, "{lists}");
    assert_eq!(lists[0]["completed"], 3, "{lists}");
}

#[test]
fn makefile_report_is_written_when_a_task_fails() {
    let s = Store::new();
    s.file("report.md", "a stale report of an earlier run\n");
    let lint = s.file(
        "lint.sh",
        "#!/bin/sh\n\
         case \"$TASK_SUBJECT\" in *b.c) echo 'b.c:3: missing semicolon' >&2; exit 1 ;; esac\n\
         echo \"checked $TASK_SUBJECT\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&lint, std::fs::Permissions::from_mode(0o755)).unwrap();
    let make = format!("make -s -f {} report WORKER=./lint.sh", example("Makefile"));
    let r = s.sh(&make);
    assert_ne!(r.code, 0, "make must fail: {r:?}");
    let report = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(!report.contains("stale"), "{report}");
    assert!(
        report.contains("## 3 tasks: 2 completed, 1 failed"),
        "{report}"
    );
    assert!(report.contains("✗ #2 lint b.c"), "{report}");
    assert!(report.contains("missing semicolon"), "{report}");
    // What make printed is that report.
    assert!(
        r.stdout.contains("## 3 tasks: 2 completed, 1 failed"),
        "{r:?}"
    );
}

#[test]
fn crontab_line_names_real_flags() {
    // The crontab lines are not run (they need cron); check their flags parse.
    let line = std::fs::read_to_string(example("crontab.txt")).unwrap();
    let cmd = line
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("worker-spawn"))
        .unwrap();
    let args = cmd.split("worker-spawn ").nth(1).unwrap();
    let flags: Vec<&str> = args
        .split(" -- ")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let s = Store::new();
    s.create("made the store", &["--list", "elsewhere"]);
    // Parse only: a command that exists, on an empty list, finishes at once with 0.
    let mut all = flags.clone();
    all.extend(["--", "true"]);
    s.exec("worker-spawn", all).expect_code(0);
    // The planning line: its task-create, fed a night's plan twice, creates it once.
    let plan = line
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("task-create"))
        .unwrap();
    let args: Vec<&str> = plan
        .split("task-create ")
        .nth(1)
        .unwrap()
        .split(" >")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let night = "{\"key\":\"2026-11-25 backup\",\"subject\":\"backup\"}\n\
                 {\"key\":\"2026-11-25 reindex\",\"subject\":\"reindex\"}\n";
    let first = s.exec_stdin("task-create", &args, night).success();
    assert_eq!(first, "1\n2\n");
    assert_eq!(s.exec_stdin("task-create", &args, night).success(), first);
}
