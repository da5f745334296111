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
    // An empty store (no list yet) has nothing to claim either.
    let empty = Store::new();
    let r = empty.exec("task-update", ["--claim", "--owner", "w1"]);
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
    s.create("a", &[]);
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
