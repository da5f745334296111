//! task-update: edits, status transitions, edges, results, compare-and-set, delete,
//! claims (order, matching, reservations, leases, limits) and release.

mod util;

use serde_json::{json, Value};
use util::{assert_failure, id_list, wait_until, Store, DEADLINE};

#[test]
fn status_transitions_set_and_clear_times() {
    let s = Store::new();
    s.create("Task", &[]);
    s.ok("task-update", ["1", "-s", "in_progress", "--owner", "w1"]);
    let t = s.json("1");
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["owner"], "w1");
    assert!(t["startedAt"].is_string());
    assert_eq!(t["finishedAt"], Value::Null);
    assert_eq!(t["ready"], false);

    s.ok("task-update", ["#1", "--status", "completed"]);
    let t = s.json("1");
    assert_eq!(t["status"], "completed");
    assert!(
        t["finishedAt"].is_string(),
        "a terminal status sets finishedAt"
    );
    assert_eq!(t["owner"], "w1", "finishing keeps the owner");
    assert!(t["updatedAt"].as_str() >= t["createdAt"].as_str());

    // Back to pending: nobody holds it any more.
    s.ok("task-update", ["1", "-s", "pending"]);
    let t = s.json("1");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["owner"], Value::Null);
    assert_eq!(t["startedAt"], Value::Null);
    assert_eq!(t["finishedAt"], Value::Null);
    assert_eq!(t["ready"], true);

    for terminal in ["failed", "cancelled"] {
        s.ok("task-update", ["1", "-s", terminal]);
        let t = s.json("1");
        assert_eq!(t["status"], terminal);
        assert!(t["finishedAt"].is_string(), "{terminal} sets finishedAt");
        s.ok("task-update", ["1", "-s", "pending"]);
    }
}

#[test]
fn owner_and_plain_fields() {
    let s = Store::new();
    s.create(
        "Old subject",
        &["-d", "old", "-m", "keep=1", "-m", "drop=x"],
    );
    s.ok("task-update", ["1", "--owner", "w1"]);
    assert_eq!(s.json("1")["owner"], "w1");
    s.ok("task-update", ["1", "--no-owner"]);
    assert_eq!(s.json("1")["owner"], Value::Null);

    s.ok(
        "task-update",
        [
            "1",
            "--subject",
            "New subject",
            "-d",
            "new description",
            "--active-form",
            "Doing it",
            "-p",
            "-4",
            "--max-attempts",
            "5",
            "-m",
            "agent=tester",
            "-m",
            "n=[1,2]",
            "-m",
            "drop=",
        ],
    );
    let t = s.json("1");
    assert_eq!(t["subject"], "New subject");
    assert_eq!(t["description"], "new description");
    assert_eq!(t["activeForm"], "Doing it");
    assert_eq!(t["priority"], -4);
    assert_eq!(t["maxAttempts"], 5);
    assert_eq!(
        t["metadata"],
        json!({"keep": 1, "agent": "tester", "n": [1, 2]}),
        "-m merges, -m K= removes"
    );
    assert_eq!(t["status"], "pending", "an edit leaves the status alone");

    // -d - reads stdin.
    s.exec_stdin("task-update", ["1", "-d", "-"], "from stdin\n")
        .success();
    assert_eq!(s.json("1")["description"], "from stdin\n");
    // --format json prints the changed tasks.
    let out = s.ok("task-update", ["1", "-p", "2", "--format", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["priority"], 2);
    assert_eq!(v[0], s.json("1"));
    // Without --format it prints nothing.
    assert_eq!(s.ok("task-update", ["1", "-p", "3"]), "");
}

#[test]
fn edges_stay_consistent_on_both_tasks() {
    let s = Store::new();
    for n in ["a", "b", "c", "d"] {
        s.create(n, &[]);
    }
    s.ok("task-update", ["3", "--add-blocked-by", "1,2"]);
    assert_eq!(id_list(&s.json("3")["blockedBy"]), ["1", "2"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["3"]);
    assert_eq!(id_list(&s.json("2")["blocks"]), ["3"]);
    assert_eq!(s.json("3")["ready"], false);

    s.ok("task-update", ["1", "--add-blocks", "4,#2"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["2", "3", "4"]);
    assert_eq!(id_list(&s.json("4")["blockedBy"]), ["1"]);
    assert_eq!(id_list(&s.json("2")["blockedBy"]), ["1"]);
    // Adding an edge twice is harmless.
    s.ok("task-update", ["4", "--add-blocked-by", "1"]);
    assert_eq!(id_list(&s.json("4")["blockedBy"]), ["1"]);

    s.ok("task-update", ["3", "--remove-blocked-by", "1"]);
    assert_eq!(id_list(&s.json("3")["blockedBy"]), ["2"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["2", "4"]);
    s.ok("task-update", ["1", "--remove-blocks", "2,4"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), Vec::<String>::new());
    assert_eq!(id_list(&s.json("2")["blockedBy"]), Vec::<String>::new());
    assert_eq!(id_list(&s.json("4")["blockedBy"]), Vec::<String>::new());
    assert_eq!(s.ids(&["-s", "ready"]), ["1", "2", "4"]);

    // Readiness follows the blocker's status both ways.
    s.ok("task-update", ["2", "-s", "completed"]);
    assert_eq!(s.json("3")["ready"], true);
    s.ok("task-update", ["2", "-s", "pending"]);
    assert_eq!(s.json("3")["ready"], false);
    // An edge added to an already completed blocker does not block.
    s.ok("task-update", ["1", "-s", "completed"]);
    s.ok("task-update", ["4", "--add-blocked-by", "1"]);
    assert_eq!(s.json("4")["ready"], true);
    assert_eq!(s.ok("task-list", ["4"]), "#4 [pending] d\n");
}

#[test]
fn edges_by_key() {
    let s = Store::new();
    s.create("Build", &["--key", "build"]); // 1
    s.create("Lint", &["--key", "lint"]); // 2
    s.create("Docs", &[]); // 3
    s.create("Notes", &[]); // 4
    s.create("Test", &["--key", "test"]); // 5
    s.ok("task-update", ["5", "--add-blocked-by", "build"]);
    assert_eq!(id_list(&s.json("5")["blockedBy"]), ["1"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["5"]);
    // Keys and ids mix in one list.
    s.ok("task-update", ["5", "--add-blocked-by", "lint,#3"]);
    assert_eq!(id_list(&s.json("5")["blockedBy"]), ["1", "2", "3"]);
    s.ok("task-update", ["5", "--remove-blocked-by", "build"]);
    assert_eq!(id_list(&s.json("5")["blockedBy"]), ["2", "3"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), Vec::<String>::new());
    // The other direction.
    s.ok("task-update", ["1", "--add-blocks", "test,4"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["4", "5"]);
    s.ok("task-update", ["1", "--remove-blocks", "test"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["4"]);

    // An unknown key, in any of the four flags: exit 3 naming it, nothing changed
    // (also not the edges named before it, nor the other edits).
    s.create("Elsewhere", &["--key", "far", "--list", "other"]);
    let snap = s.snapshot();
    for flag in [
        "--add-blocked-by",
        "--remove-blocked-by",
        "--add-blocks",
        "--remove-blocks",
    ] {
        let r = s.exec("task-update", ["4", flag, "lint,nope", "-p", "7"]);
        assert_failure(&r, "task-update", 3, &["key 'nope'", "'default'"]);
    }
    // A key of another list is unknown here.
    let r = s.exec("task-update", ["4", "--add-blocked-by", "far"]);
    assert_failure(&r, "task-update", 3, &["key 'far'"]);
    // A key shaped like nothing a key may be is a usage error.
    let r = s.exec("task-update", ["4", "--add-blocked-by", "a\nb"]);
    assert_failure(&r, "task-update", 2, &["--add-blocked-by", "key 'a\\nb'"]);
    // A cycle through keys is refused like one through ids (#1 blocks #4).
    let r = s.exec("task-update", ["1", "--add-blocked-by", "4"]);
    assert_failure(&r, "task-update", 2, &["cycle"]);
    assert_eq!(s.snapshot(), snap);
    s.create("Wait", &["--key", "wait", "-b", "4"]); // 6
    let r = s.exec("task-update", ["1", "--add-blocked-by", "wait"]);
    assert_failure(&r, "task-update", 2, &["cycle", "#6", "#1"]);
    // The tasks to change are ids; a key there is not taken.
    let r = s.exec("task-update", ["build", "-p", "1"]);
    assert_failure(&r, "task-update", 2, &["'build'", "task id"]);
}

#[test]
fn stores_the_result_from_text_and_stdin() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    s.ok(
        "task-update",
        ["1", "-s", "completed", "--result", "all green"],
    );
    assert_eq!(s.json("1")["result"], "all green");
    let out = s
        .exec_stdin("task-update", ["2", "--result", "-"], "line 1\nünïcode ✓\n")
        .success();
    assert_eq!(out, "");
    assert_eq!(s.json("2")["result"], "line 1\nünïcode ✓\n");
    assert_eq!(s.json("2")["status"], "pending");
}

#[test]
fn if_status_is_compare_and_set() {
    let s = Store::new();
    s.create("a", &[]);
    s.ok(
        "task-update",
        ["1", "-s", "cancelled", "--if-status", "pending,in_progress"],
    );
    assert_eq!(s.json("1")["status"], "cancelled");
    let snap = s.snapshot();
    let r = s.exec(
        "task-update",
        ["1", "-s", "completed", "--if-status", "pending"],
    );
    assert_failure(&r, "task-update", 4, &["#1", "cancelled", "pending"]);
    assert_eq!(s.snapshot(), snap);

    // With several ids, one failing precondition changes none of them.
    s.create("b", &[]);
    s.create("c", &[]);
    let snap = s.snapshot();
    let r = s.exec(
        "task-update",
        ["2", "3", "1", "-s", "failed", "--if-status", "pending"],
    );
    assert_failure(&r, "task-update", 4, &["#1"]);
    assert_eq!(s.snapshot(), snap);
}

#[test]
fn a_stale_owner_cannot_finish_a_task_held_by_another() {
    let s = Store::new();
    s.create("a", &[]);
    assert_eq!(s.ok("task-update", ["--claim", "--owner", "w2"]), "1\n");
    let snap = s.snapshot();
    let r = s.exec("task-update", ["1", "-s", "completed", "--owner", "w1"]);
    assert_failure(&r, "task-update", 4, &["#1", "w2"]);
    assert_eq!(s.snapshot(), snap);
    // The holder can.
    s.ok("task-update", ["1", "-s", "completed", "--owner", "w2"]);
    assert_eq!(s.json("1")["status"], "completed");
}

#[test]
fn delete_removes_edges_everywhere() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &["-b", "1"]);
    s.create("c", &["-b", "2"]);
    s.ok("task-update", ["2", "--delete"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), Vec::<String>::new());
    assert_eq!(id_list(&s.json("3")["blockedBy"]), Vec::<String>::new());
    assert_eq!(s.json("3")["ready"], true);
    assert_eq!(s.ids(&[]), ["1", "3"]);
    let r = s.exec("task-list", ["2"]);
    assert_failure(&r, "task-list", 3, &["#2"]);
    // Deleting several at once, ids from stdin.
    s.sh("printf '1\\n3\\n' | task-update - --delete").success();
    assert_eq!(s.ids(&[]), Vec::<String>::new());
    assert_eq!(s.create("d", &[]), "4");
}

#[test]
fn ids_from_a_pipeline() {
    let s = Store::new();
    for n in ["a", "b", "c", "d"] {
        s.create(n, &[]);
    }
    s.ok("task-update", ["1", "-s", "failed"]);
    s.ok("task-update", ["3", "-s", "failed"]);
    s.sh("task-list -s failed --format ids | task-update - -s pending")
        .success();
    assert_eq!(s.ids(&["-s", "failed"]), Vec::<String>::new());
    assert_eq!(s.ids(&["-s", "pending"]), ["1", "2", "3", "4"]);
    // Nothing on stdin: nothing to do, and not an error.
    s.sh("task-list -s failed --format ids | task-update - -s pending")
        .success();
    // Several ids on the command line, duplicates harmless.
    s.ok("task-update", ["2", "4", "2", "-s", "completed"]);
    assert_eq!(s.ids(&["-s", "completed"]), ["2", "4"]);
}

#[test]
fn claim_order_is_priority_then_lowest_id() {
    let s = Store::new();
    s.create("low", &["-p", "-1"]); // 1
    s.create("normal", &[]); // 2
    s.create("high", &["-p", "5"]); // 3
    s.create("normal too", &[]); // 4
    s.create("high but blocked", &["-p", "9", "-b", "2"]); // 5
    s.create("also high", &["-p", "5"]); // 6
    s.create("done already", &["-p", "10"]); // 7
    s.ok("task-update", ["7", "-s", "completed"]);
    let mut order = Vec::new();
    loop {
        let r = s.exec("task-update", ["--claim", "--owner", "w1"]);
        if r.code == 1 {
            assert_eq!(r.stdout, "", "nothing claimable prints nothing on stdout");
            assert_eq!(
                r.stderr, "",
                "nothing claimable is quiet, as grep finding nothing"
            );
            break;
        }
        let id = r.success().trim().to_string();
        // Finishing #2 unblocks #5, which then comes first.
        s.ok(
            "task-update",
            [id.as_str(), "-s", "completed", "--owner", "w1"],
        );
        order.push(id);
    }
    assert_eq!(order, ["3", "6", "2", "5", "4", "1"]);
    let t = s.json("3");
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["owner"], "w1");
}

#[test]
fn claim_sets_in_progress_and_counts_an_attempt() {
    let s = Store::new();
    s.create("a", &["-m", "agent=x"]);
    let out = s.ok(
        "task-update",
        ["--claim", "--owner", "w1", "--format", "json"],
    );
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let t = &v.as_array().expect("an array")[0];
    assert_eq!(t["id"], "1");
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["owner"], "w1");
    assert_eq!(t["attempts"], 1);
    assert!(t["startedAt"].is_string());
    assert_eq!(t["metadata"], json!({"agent": "x"}));
    assert_eq!(*t, s.json("1"));
    // Nothing left: exit 1, nothing on stdout.
    let r = s.exec(
        "task-update",
        ["--claim", "--owner", "w1", "--format", "json"],
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (1, "", ""));
    // Another list (none yet) has nothing to claim either.
    let r = s.exec(
        "task-update",
        ["--claim", "--owner", "w1", "--list", "other"],
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (1, "", ""));
}

#[test]
fn claim_matches_metadata_and_reservations() {
    let s = Store::new();
    s.create("build", &["-m", "agent=builder"]); // 1
    s.create("test", &["-m", "agent=tester", "-m", "os=linux"]); // 2
    s.create("reserved", &["--owner", "w9", "-p", "10"]); // 3
    s.create("test mac", &["-m", "agent=tester", "-m", "os=mac"]); // 4

    let claim = |owner: &str, extra: &[&str]| {
        let mut args = vec!["--claim", "--owner", owner];
        args.extend_from_slice(extra);
        s.exec("task-update", args)
    };
    assert_eq!(
        claim("w1", &["-m", "agent=tester", "-m", "os=mac"]).success(),
        "4\n"
    );
    assert_eq!(claim("w1", &["-m", "agent=tester"]).success(), "2\n");
    let r = claim("w1", &["-m", "agent=tester"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{}", r.stderr);
    // #3 has the highest priority but is reserved for w9.
    assert_eq!(claim("w2", &[]).success(), "1\n");
    let r = claim("w2", &[]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{}", r.stderr);
    assert_eq!(s.json("3")["status"], "pending");
    assert_eq!(claim("w9", &[]).success(), "3\n");
    assert_eq!(s.json("3")["owner"], "w9");
}

#[test]
fn claim_a_given_task() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    s.create("c", &["-b", "1"]);
    assert_eq!(
        s.ok("task-update", ["--claim", "2", "--owner", "w1"]),
        "2\n"
    );
    assert_eq!(s.json("2")["owner"], "w1");
    assert_eq!(s.json("1")["status"], "pending");
    // A given task that cannot be claimed is a conflict, and says why.
    let snap = s.snapshot();
    let r = s.exec("task-update", ["--claim", "3", "--owner", "w1"]);
    assert_failure(&r, "task-update", 4, &["#3", "blocked by #1"]);
    let r = s.exec("task-update", ["--claim", "2", "--owner", "w2"]);
    assert_failure(&r, "task-update", 4, &["#2", "w1"]);
    assert_eq!(s.snapshot(), snap);
    let r = s.exec("task-update", ["--claim", "9", "--owner", "w2"]);
    assert_failure(&r, "task-update", 3, &["#9"]);
    // The id from a pipeline; an empty pipeline claims nothing (not just any task).
    let r = s.sh("task-list -s ready --format ids | task-update - --claim --owner w3");
    assert_eq!(r.success(), "1\n");
    let snap = s.snapshot();
    let r = s.sh("task-list -s ready --format ids | task-update - --claim --owner w3");
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (1, "", ""),
        "{r:?}"
    );
    assert_eq!(s.snapshot(), snap);
    s.create("d", &[]);
    let r =
        s.sh("task-list -s ready -m agent=none --format ids | task-update - --claim --owner w3");
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert_eq!(s.json("4")["status"], "pending");
}

#[test]
fn an_expired_lease_can_be_taken_over() {
    let s = Store::new();
    s.create("a", &["--max-attempts", "2"]);
    assert_eq!(
        s.ok(
            "task-update",
            ["--claim", "--owner", "w1", "--lease", "200ms"]
        ),
        "1\n"
    );
    assert_eq!(s.json("1")["attempts"], 1);
    // Poll until the lease has run out and w2 gets the task.
    let mut claimed = String::new();
    wait_until(DEADLINE, || {
        let r = s.exec("task-update", ["--claim", "--owner", "w2"]);
        match r.code {
            0 => {
                claimed = r.stdout.clone();
                true
            }
            1 => {
                assert_eq!(r.stdout, "");
                false
            }
            _ => panic!("claim failed: {r:?}"),
        }
    });
    assert_eq!(claimed, "1\n");
    let t = s.json("1");
    assert_eq!(t["owner"], "w2");
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["attempts"], 2, "a takeover counts a new attempt");
    // The first worker comes back to finish: refused, nothing changes.
    let snap = s.snapshot();
    let r = s.exec("task-update", ["1", "-s", "completed", "--owner", "w1"]);
    assert_failure(&r, "task-update", 4, &["#1"]);
    assert_eq!(s.snapshot(), snap);
    // Without --lease the claim of w2 never expires.
    let r = s.exec("task-update", ["--claim", "--owner", "w3"]);
    assert_eq!(r.code, 1, "{r:?}");
    s.ok("task-update", ["1", "-s", "completed", "--owner", "w2"]);
}

#[test]
fn release_gives_the_task_and_the_attempt_back() {
    let s = Store::new();
    s.create("a", &[]);
    assert_eq!(s.ok("task-update", ["--claim", "--owner", "w1"]), "1\n");
    assert_eq!(s.json("1")["attempts"], 1);
    s.ok("task-update", ["1", "--release"]);
    let t = s.json("1");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["owner"], Value::Null);
    assert_eq!(t["attempts"], 0);
    assert_eq!(t["startedAt"], Value::Null);
    assert_eq!(t["ready"], true);
    // Claimable again, by anyone.
    assert_eq!(s.ok("task-update", ["--claim", "--owner", "w2"]), "1\n");
    assert_eq!(s.json("1")["attempts"], 1);
    // Releasing with --owner checks the holder.
    let snap = s.snapshot();
    let r = s.exec("task-update", ["1", "--release", "--owner", "w1"]);
    assert_failure(&r, "task-update", 4, &["#1", "w2"]);
    assert_eq!(s.snapshot(), snap);
    s.ok("task-update", ["1", "--release", "--owner", "w2"]);
    // Only an in_progress task can be released.
    let snap = s.snapshot();
    let r = s.exec("task-update", ["1", "--release"]);
    assert_failure(&r, "task-update", 4, &["#1", "pending"]);
    assert_eq!(s.snapshot(), snap);
}

#[test]
fn claim_limit_per_metadata_value() {
    let s = Store::new();
    s.create("x1", &["-m", "agent=x"]); // 1
    s.create("x2", &["-m", "agent=x"]); // 2
    s.create("plain 1", &[]); // 3
    s.create("plain 2", &[]); // 4
    s.create("y1", &["-m", "agent=y"]); // 5
    let claim = |owner: &str| {
        s.exec(
            "task-update",
            ["--claim", "--owner", owner, "--limit", "agent=1"],
        )
    };
    assert_eq!(claim("w1").success(), "1\n");
    // #2 shares agent=x with the running #1: skipped; tasks without the key are not limited.
    assert_eq!(claim("w2").success(), "3\n");
    assert_eq!(claim("w3").success(), "4\n");
    assert_eq!(claim("w4").success(), "5\n");
    let r = claim("w5");
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert_eq!(s.json("2")["status"], "pending");
    // Once #1 is done, #2 may run.
    s.ok("task-update", ["1", "-s", "completed", "--owner", "w1"]);
    assert_eq!(claim("w5").success(), "2\n");
    // A limit of 2 lets two run side by side.
    s.create("x3", &["-m", "agent=x"]); // 6
    let r = claim("w6");
    assert_eq!(r.code, 1, "{r:?}");
    let out = s.ok(
        "task-update",
        ["--claim", "--owner", "w6", "--limit", "agent=2"],
    );
    assert_eq!(out, "6\n");
}

/// `task-update --claim … --format json`, which must succeed: the claimed task.
fn claim_json(s: &Store, args: &[&str]) -> Option<Value> {
    let mut all = vec!["--claim", "--format", "json"];
    all.extend_from_slice(args);
    let r = s.exec("task-update", all);
    match r.code {
        0 => {
            let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
            Some(v[0].clone())
        }
        1 => None,
        _ => panic!("claim failed: {r:?}"),
    }
}

/// Takeovers count: a task whose holders keep losing it fails once its attempts are
/// used up instead of being claimed past maxAttempts; its log names the attempts that
/// lost their worker, and a waiter sees the failure without anyone else writing.
#[test]
fn lost_holders_use_up_the_attempts_then_the_task_fails() {
    let s = Store::new();
    s.create("on a flaky host", &["--max-attempts", "2"]);
    let first = claim_json(&s, &["--owner", "w1", "--lease", "200ms"]).expect("claimed");
    assert_eq!(first["attempts"], 1);
    // Once w1's lease ran out, w2 takes the task over: a second attempt.
    let mut second = None;
    wait_until(DEADLINE, || {
        second = claim_json(&s, &["--owner", "w2", "--lease", "200ms"]);
        second.is_some()
    });
    let second = second.unwrap();
    assert_eq!(
        (second["owner"].clone(), second["attempts"].clone()),
        (json!("w2"), json!(2))
    );
    let log = second["log"].as_str().unwrap_or_default().to_string();
    assert!(
        log.starts_with("attempt 1 (w1) lost its worker: its lease ran out at "),
        "{log}"
    );
    // w2 loses it too. Nobody else writes: the waiter itself finds the task failed.
    let r = s.exec("task-wait", ["1", "--format", "json", "--timeout", "20s"]);
    assert_eq!(r.code, 1, "{r:?}");
    let t = &serde_json::from_str::<Value>(&r.stdout).expect("JSON")[0];
    assert_eq!(
        (t["status"].clone(), t["attempts"].clone()),
        (json!("failed"), json!(2))
    );
    assert_eq!(t["claimToken"], Value::Null);
    let log = t["log"].as_str().unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("attempt 1 (w1) lost its worker: its lease ran out"),
        "{log}"
    );
    assert!(
        lines[1].starts_with("attempt 2 (w2) lost its worker: its lease ran out"),
        "{log}"
    );
    assert!(
        lines[1].ends_with("; no attempts left (2 of 2 used)"),
        "{log}"
    );
    // It is never handed out again.
    assert_eq!(claim_json(&s, &["--owner", "w3"]), None);
    assert_eq!(s.json("1")["attempts"], 2);
}

/// Each claim has its own token: a restarted shell worker that reuses its name cannot
/// finish (or release) the claim that replaced its own.
#[test]
fn a_stale_token_cannot_change_the_claim_that_replaced_it() {
    let s = Store::new();
    s.create("job", &["--max-attempts", "3"]);
    let old = claim_json(&s, &["--owner", "w1", "--lease", "200ms"]).expect("claimed");
    let old_token = old["claimToken"]
        .as_str()
        .expect("a claimToken while in progress")
        .to_string();
    let mut new = None;
    wait_until(DEADLINE, || {
        new = claim_json(&s, &["--owner", "w1"]);
        new.is_some()
    });
    let new_token = new.unwrap()["claimToken"].as_str().unwrap().to_string();
    assert_ne!(old_token, new_token);
    let snap = s.snapshot();
    for args in [
        vec!["1", "-s", "completed", "--owner", "w1", "--result", "stale"],
        vec!["1", "-m", "progress=90"],
        vec!["1", "--release"],
    ] {
        let mut args = args;
        args.extend(["--token", &old_token]);
        let r = s.exec("task-update", &args);
        assert_failure(
            &r,
            "task-update",
            4,
            &["#1", "no longer held by that claim"],
        );
        assert_eq!(s.snapshot(), snap, "{args:?} changed the store");
    }
    // The current claim's token works; once the task is finished it holds nothing.
    s.ok(
        "task-update",
        [
            "1",
            "-s",
            "completed",
            "--token",
            &new_token,
            "--result",
            "ok",
        ],
    );
    assert_eq!(s.json("1")["claimToken"], Value::Null);
    let r = s.exec("task-update", ["1", "-m", "x=1", "--token", &new_token]);
    assert_failure(&r, "task-update", 4, &["#1", "completed"]);
    let r = s.exec("task-update", ["1", "-m", "x=1", "--token", "not-a-token"]);
    assert_failure(&r, "task-update", 2, &["not-a-token", "claim token"]);
    let r = s.exec("task-update", ["1", "--delete", "--token", &new_token]);
    assert_failure(&r, "task-update", 2, &["--delete", "--token"]);
}

/// The README's shell worker loop: `--format env` gives what worker-spawn gives its
/// commands, `--token` finishes the claim; twelve workers over 200 tasks run each once,
/// and end quietly.
#[test]
fn a_shell_worker_loop_with_tokens_runs_each_task_once_and_ends_quietly() {
    let s = Store::new();
    let batch: String = (1..=200)
        .map(|i| format!("{{\"subject\":\"it's job {i}\"}}\n"))
        .collect();
    s.create_batch("jobs.jsonl", &batch, &[]);
    let worker = r#"
        while c=$(task-update --claim --owner "w$W" --lease 1m --format env); do
            eval "$c"
            echo "$TASK_ID" >> "ran.$W"
            task-update "$TASK_ID" -s completed --token "$TASK_CLAIM_TOKEN" \
                --result "$TASK_SUBJECT by w$W (attempt $TASK_ATTEMPT)" || exit 9
        done
    "#;
    let workers: Vec<_> = (0..12)
        .map(|w| {
            let mut c = s.sh_cmd(worker);
            c.env("W", w.to_string());
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().expect("spawn a worker")
        })
        .collect();
    for w in workers {
        let out = w.wait_with_output().expect("worker");
        assert_eq!(
            out.status.code(),
            Some(0),
            "the loop ends on nothing to claim"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "a worker loop ends quietly"
        );
    }
    let mut ran: Vec<u32> = (0..12)
        .flat_map(|w| {
            std::fs::read_to_string(s.dir().join(format!("ran.{w}")))
                .unwrap_or_default()
                .lines()
                .map(|l| l.parse().expect("an id"))
                .collect::<Vec<u32>>()
        })
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        (1..=200).collect::<Vec<u32>>(),
        "each task ran exactly once"
    );
    let t = s.json("7");
    assert_eq!(t["status"], "completed");
    assert!(
        t["result"].as_str().unwrap().starts_with("it's job 7 by w"),
        "{t}"
    );
}
