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
