//! task-list: formats, filters, given ids, counts, lists, waves, closed pipes.

mod util;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use util::{assert_failure, id_list, Store};

/// A list where every status and derived status occurs:
///
/// | id | status      | blocked by | derived                    |
/// |----|-------------|------------|----------------------------|
/// | 1  | pending     |            | ready (agent=a, n=5)       |
/// | 2  | in_progress |            | owner w1 (agent=a)         |
/// | 3  | completed   |            |                            |
/// | 4  | failed      |            |                            |
/// | 5  | cancelled   |            |                            |
/// | 6  | pending     | 2          | blocked                    |
/// | 7  | pending     | 4          | blocked, stalled           |
/// | 8  | pending     | 7          | blocked, stalled (level 2) |
/// | 9  | pending     | 8          | blocked, stalled (level 3) |
/// | 10 | pending     | 3          | ready (agent=b)            |
/// | 11 | pending     | 5          | blocked, stalled           |
fn fixture() -> Store {
    let s = Store::new();
    let batch = r#"{"key":"t1","subject":"one","metadata":{"agent":"a","n":5}}
{"key":"t2","subject":"two","metadata":{"agent":"a"}}
{"key":"t3","subject":"three"}
{"key":"t4","subject":"four"}
{"key":"t5","subject":"five"}
{"key":"t6","subject":"six","blockedBy":["t2"]}
{"key":"t7","subject":"seven","blockedBy":["t4"]}
{"key":"t8","subject":"eight","blockedBy":["t7"]}
{"key":"t9","subject":"nine","blockedBy":["t8"]}
{"key":"t10","subject":"ten","blockedBy":["t3"],"metadata":{"agent":"b"}}
{"key":"t11","subject":"eleven","blockedBy":["t5"]}
"#;
    let ids = s.create_batch("fixture.jsonl", batch, &[]);
    assert_eq!(ids.len(), 11);
    s.ok("task-update", ["2", "-s", "in_progress", "--owner", "w1"]);
    s.ok("task-update", ["3", "-s", "completed"]);
    s.ok("task-update", ["4", "-s", "failed"]);
    s.ok("task-update", ["5", "-s", "cancelled"]);
    s
}

fn ids_of(s: &Store, args: &[&str]) -> Vec<String> {
    s.ids(args)
}

#[test]
fn text_lines_like_claude_code_tasklist() {
    let s = Store::new();
    s.create("Build", &[]);
    s.create("Lint", &[]);
    s.create("Review PR #125", &["-b", "1,2", "--owner", "owner"]);
    s.create("Two\nlines", &[]);
    assert_eq!(
        s.ok("task-list", [] as [&str; 0]),
        "#1 [pending] Build\n\
         #2 [pending] Lint\n\
         #3 [pending] Review PR #125 (owner) [blocked by #1, #2]\n\
         #4 [pending] Two lines\n"
    );
    // Completed blockers are left out; a failed one still blocks.
    s.ok("task-update", ["1", "-s", "completed"]);
    s.ok("task-update", ["2", "-s", "failed"]);
    assert_eq!(
        s.ok("task-list", ["3"]),
        "#3 [pending] Review PR #125 (owner) [blocked by #2]\n"
    );
    s.ok("task-update", ["2", "-s", "completed"]);
    assert_eq!(
        s.ok("task-list", ["--format", "text"]),
        "#1 [completed] Build\n\
         #2 [completed] Lint\n\
         #3 [pending] Review PR #125 (owner)\n\
         #4 [pending] Two lines\n"
    );
}

#[test]
fn json_has_consistent_edges_and_ready() {
    let s = fixture();
    let tasks = s.tasks(&[]);
    assert_eq!(tasks.len(), 11);
    let by_id: BTreeMap<String, &Value> = tasks
        .iter()
        .map(|t| (t["id"].as_str().expect("id is a string").to_string(), t))
        .collect();
    let order: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]
    );
    for t in &tasks {
        let id = t["id"].as_str().unwrap().to_string();
        for b in id_list(&t["blockedBy"]) {
            assert!(
                id_list(&by_id[&b]["blocks"]).contains(&id),
                "#{id} is blocked by #{b}, but #{b} does not block #{id}"
            );
        }
        for b in id_list(&t["blocks"]) {
            assert!(id_list(&by_id[&b]["blockedBy"]).contains(&id));
        }
        for field in [
            "id",
            "list",
            "subject",
            "description",
            "activeForm",
            "status",
            "owner",
            "blockedBy",
            "blocks",
            "priority",
            "metadata",
            "attempts",
            "maxAttempts",
            "ready",
            "result",
            "log",
            "exitCode",
            "createdAt",
            "updatedAt",
            "startedAt",
            "finishedAt",
        ] {
            assert!(t.get(field).is_some(), "#{id} has no {field}");
        }
    }
    let ready: Vec<&str> = tasks
        .iter()
        .filter(|t| t["ready"] == true)
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ready, ["1", "10"]);
    assert_eq!(id_list(&by_id["7"]["blocks"]), ["8"]);
    assert_eq!(id_list(&by_id["2"]["blocks"]), ["6"]);
    assert_eq!(by_id["2"]["owner"], "w1");

    // jsonl: the same objects, one a line.
    let jsonl = s.ok("task-list", ["--format", "jsonl"]);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object a line"))
        .collect();
    assert_eq!(lines, tasks);
}

#[test]
fn csv_with_header_and_fields() {
    let s = Store::new();
    s.create("Build", &[]);
    s.create("Review, then merge", &["-b", "1", "-m", "agent=rev"]);
    s.create("Quote \"this\"", &["-b", "1,2"]);
    let out = s.ok("task-list", ["--format", "csv"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            "id,list,key,subject,description,activeForm,status,owner,claimToken,blockedBy,blocks,priority,\
             depth,metadata,scopes,verify,attempts,maxAttempts,ready,result,log,logFile,exitCode,feedback,\
             createdAt,updatedAt,startedAt,finishedAt"
        )
    );
    assert_eq!(lines.count(), 3);
    let out = s.ok(
        "task-list",
        [
            "--format",
            "csv",
            "--fields",
            "status,id,subject,blockedBy,metadata",
        ],
    );
    assert_eq!(
        out,
        "status,id,subject,blockedBy,metadata\n\
         pending,1,Build,,{}\n\
         pending,2,\"Review, then merge\",1,\"{\"\"agent\"\":\"\"rev\"\"}\"\n\
         pending,3,\"Quote \"\"this\"\"\",\"1,2\",{}\n"
    );
}

#[test]
fn ids_format() {
    let s = fixture();
    assert_eq!(
        s.ok("task-list", ["--format", "ids"]),
        "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n"
    );
}

#[test]
fn markdown_report() {
    let s = Store::new();
    s.create("Build", &[]);
    s.create("Test", &[]);
    s.create("Deploy", &["-b", "2"]);
    s.create("Docs", &[]);
    let id = s.ok("task-update", ["--claim", "1", "--owner", "w1"]);
    assert_eq!(id, "1\n");
    s.ok(
        "task-update",
        [
            "1",
            "-s",
            "completed",
            "--owner",
            "w1",
            "--result",
            "built ok\nsecond line\n\nthird\nfourth\nfifth",
        ],
    );
    s.ok("task-update", ["2", "-s", "failed"]);
    s.ok("task-update", ["4", "-s", "cancelled"]);
    let md = s.ok("task-list", ["--format", "md"]);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[0],
        "## 4 tasks: 1 pending, 1 completed, 1 failed, 1 cancelled (1 of them stalled)"
    );
    assert!(
        lines[2].starts_with("- ✓ #1 Build (w1"),
        "completed task line: {md}"
    );
    // The first lines of the result (blank lines skipped), not all of it.
    assert!(md.contains("  > built ok\n  > second line\n"), "{md}");
    assert!(!md.contains("fifth"), "{md}");
    assert!(md.contains("- ✗ #2 Test (failed)\n"), "{md}");
    // Pending behind a failed task: stalled, never to run, naming what stalls it.
    assert!(md.contains("- ⊘ #3 Deploy (stalled: #2 failed)\n"), "{md}");
    assert!(md.contains("- ✗ #4 Docs (cancelled)\n"), "{md}");
    // Filters apply to the report, and its heading counts what it shows.
    let md = s.ok("task-list", ["-s", "done", "--format", "md"]);
    assert!(
        md.starts_with("## 3 tasks: 1 completed, 1 failed, 1 cancelled\n"),
        "{md}"
    );
    assert!(!md.contains("Deploy"), "{md}");
    // Stalled transitively: behind a stalled task, it names the failed task at the root.
    s.create("Announce", &["-b", "3"]);
    let md = s.ok("task-list", ["5", "--format", "md"]);
    assert_eq!(
        md,
        "## 1 task: 1 pending (1 of them stalled)\n\n- ⊘ #5 Announce (stalled: #2 failed)\n"
    );
}

#[test]
fn status_filters() {
    let s = fixture();
    let cases: &[(&str, &[&str])] = &[
        ("pending", &["1", "6", "7", "8", "9", "10", "11"]),
        ("in_progress", &["2"]),
        ("completed", &["3"]),
        ("failed", &["4"]),
        ("cancelled", &["5"]),
        ("ready", &["1", "10"]),
        ("blocked", &["6", "7", "8", "9", "11"]),
        ("stalled", &["7", "8", "9", "11"]),
        ("open", &["1", "2", "6", "7", "8", "9", "10", "11"]),
        ("done", &["3", "4", "5"]),
        ("failed,cancelled", &["4", "5"]),
        ("ready,in_progress", &["1", "2", "10"]),
        ("stalled,completed", &["3", "7", "8", "9", "11"]),
    ];
    for (filter, want) in cases {
        assert_eq!(ids_of(&s, &["-s", filter]), *want, "-s {filter}");
        assert_eq!(
            ids_of(&s, &["--status", filter]),
            *want,
            "--status {filter}"
        );
    }
    // Repeating the flag is the same as a comma list.
    assert_eq!(ids_of(&s, &["-s", "failed", "-s", "cancelled"]), ["4", "5"]);

    // Reopening the failed task un-stalls its chain: 7 now waits for a pending task.
    s.ok("task-update", ["4", "-s", "pending"]);
    assert_eq!(ids_of(&s, &["-s", "stalled"]), ["11"]);
    assert_eq!(ids_of(&s, &["-s", "ready"]), ["1", "4", "10"]);
    // Cancelling the middle of the chain stalls only what lies behind it.
    s.ok("task-update", ["8", "-s", "cancelled"]);
    assert_eq!(ids_of(&s, &["-s", "stalled"]), ["9", "11"]);
}

#[test]
fn owner_metadata_and_limit_filters() {
    let s = fixture();
    assert_eq!(ids_of(&s, &["--owner", "w1"]), ["2"]);
    assert_eq!(ids_of(&s, &["--owner", "nobody"]), Vec::<String>::new());
    assert_eq!(ids_of(&s, &["-m", "agent=a"]), ["1", "2"]);
    assert_eq!(ids_of(&s, &["-m", "agent=b"]), ["10"]);
    assert_eq!(ids_of(&s, &["-m", "agent=a", "-m", "n=5"]), ["1"]);
    // 5 is the JSON number 5, not the string "5".
    assert_eq!(ids_of(&s, &["-m", "n=\"5\""]), Vec::<String>::new());
    assert_eq!(ids_of(&s, &["-m", "agent=a", "-s", "ready"]), ["1"]);
    assert_eq!(ids_of(&s, &["--limit", "2"]), ["1", "2"]);
    assert_eq!(
        ids_of(&s, &["-s", "pending", "--limit", "3"]),
        ["1", "6", "7"]
    );
    assert_eq!(
        s.ok("task-list", ["-s", "blocked", "--limit", "1"]),
        "#6 [pending] six [blocked by #2]\n"
    );
}

#[test]
fn given_ids_show_exactly_those() {
    let s = fixture();
    assert_eq!(ids_of(&s, &["9", "#3", "1"]), ["1", "3", "9"]);
    assert_eq!(
        s.ok("task-list", ["7"]),
        "#7 [pending] seven [blocked by #4]\n"
    );
    let out = s
        .exec_stdin("task-list", ["-", "--format", "ids"], "10\n\n#2\n")
        .success();
    assert_eq!(out, "2\n10\n");
    // A pipeline, as users write it.
    let r = s.sh("task-list -s stalled --format ids | task-list - --format ids");
    assert_eq!(r.clone().success(), "7\n8\n9\n11\n");
    // Nothing on stdin selects nothing (not everything).
    let r = s.sh("task-list -s ready -m agent=zzz --format ids | task-list -");
    assert_eq!(r.success(), "");
    let r =
        s.sh("task-list -s ready -m agent=zzz --format ids | task-list - --count --format json");
    assert_eq!(
        r.success().trim(),
        json!({"pending":0,"in_progress":0,"completed":0,"failed":0,"cancelled":0,"total":0})
            .to_string()
    );
}

#[test]
fn counts() {
    let s = fixture();
    assert_eq!(
        s.ok("task-list", ["--count"]),
        "pending 7\nin_progress 1\ncompleted 1\nfailed 1\ncancelled 1\n"
    );
    let v: Value =
        serde_json::from_str(&s.ok("task-list", ["--count", "--format", "json"])).unwrap();
    assert_eq!(
        v,
        json!({"pending":7,"in_progress":1,"completed":1,"failed":1,"cancelled":1,"total":11})
    );
    assert_eq!(
        s.ok("task-list", ["--count", "-s", "stalled"]),
        "pending 4\nin_progress 0\ncompleted 0\nfailed 0\ncancelled 0\n"
    );
    assert_eq!(
        s.ok("task-list", ["--count", "-m", "agent=a"]),
        "pending 1\nin_progress 1\ncompleted 0\nfailed 0\ncancelled 0\n"
    );
    // An unknown list counts zeros, and says on stderr that it does not exist (a typo
    // must not pass silently); a store that does not exist is not found (exit 3).
    let r = s
        .exec("task-list", ["--count", "--list", "nothing-here"])
        .expect_code(0);
    assert_eq!(
        r.stdout,
        "pending 0\nin_progress 0\ncompleted 0\nfailed 0\ncancelled 0\n"
    );
    assert_eq!(
        r.stderr,
        "task-list: list 'nothing-here' does not exist (the store's lists: default)\n"
    );
    let empty = Store::new();
    let r = empty.exec("task-list", ["--count"]);
    assert_failure(
        &r,
        "task-list",
        3,
        &["no task store at", "task-create makes one"],
    );
}

#[test]
fn every_list_with_its_counts() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    s.ok("task-update", ["2", "-s", "completed"]);
    s.create("r", &["--list", "review"]);
    s.exec_with(
        "task-create",
        ["c"],
        &[("CLAUDE_CODE_TASK_LIST_ID", "claude:1")],
        None,
    )
    .success();
    assert_eq!(
        s.ok("task-list", ["--lists"]),
        "claude:1 1 task (1 pending)\n\
         default 2 tasks (1 pending, 1 completed)\n\
         review 1 task (1 pending)\n"
    );
    let v: Value =
        serde_json::from_str(&s.ok("task-list", ["--lists", "--format", "json"])).unwrap();
    let by_name: BTreeMap<&str, &Value> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|l| (l["list"].as_str().unwrap(), l))
        .collect();
    assert_eq!(by_name.len(), 3);
    assert_eq!(by_name["default"]["total"], 2);
    assert_eq!(by_name["default"]["completed"], 1);
    assert_eq!(by_name["default"]["pending"], 1);
    assert_eq!(by_name["review"]["pending"], 1);
    assert_eq!(by_name["claude:1"]["total"], 1);
    // --lists shows every list whatever --list says.
    assert_eq!(
        s.ok(
            "task-list",
            ["--lists", "--list", "review", "--format", "ids"]
        ),
        "claude:1\ndefault\nreview\n"
    );
}

#[test]
fn dependency_waves() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    s.create("c", &["-b", "1,2"]);
    s.create("d", &["-b", "3"]);
    s.create("e", &["-b", "1"]);
    assert_eq!(
        s.ok("task-list", ["--waves"]),
        "wave 1: #1, #2\nwave 2: #3, #5\nwave 3: #4\n"
    );
    assert_eq!(
        s.ok("task-list", ["--waves", "--format", "json"]),
        "[[\"1\",\"2\"],[\"3\",\"5\"],[\"4\"]]\n"
    );
    // Finished tasks are in no wave; what they unblocked moves up.
    s.ok("task-update", ["1", "-s", "completed"]);
    s.ok("task-update", ["2", "-s", "completed"]);
    assert_eq!(
        s.ok("task-list", ["--waves", "--format", "json"]),
        "[[\"3\",\"5\"],[\"4\"]]\n"
    );
    // A task behind a failed one can never run: it is in no wave.
    s.ok("task-update", ["3", "-s", "failed"]);
    assert_eq!(s.ok("task-list", ["--waves"]), "wave 1: #5\n");
}

#[test]
fn three_waves_json_shape() {
    let s = Store::new();
    s.create("a", &[]);
    s.create("b", &[]);
    s.create("c", &["-b", "1,2"]);
    assert_eq!(
        s.ok("task-list", ["--waves", "--format", "json"]),
        "[[\"1\",\"2\"],[\"3\"]]\n"
    );
    assert_eq!(
        s.ok("task-list", ["--waves"]),
        "wave 1: #1, #2\nwave 2: #3\n"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let s = Store::new();
    let long = "x".repeat(500);
    let batch: String = (0..2000)
        .map(|i| format!("{{\"subject\":\"task {i} {long}\",\"metadata\":{{\"i\":{i}}}}}\n"))
        .collect();
    s.create_batch("many.jsonl", &batch, &[]);
    for format in ["text", "json", "jsonl", "csv", "ids", "md"] {
        let r = s.bash(&format!(
            "set -o pipefail; task-list --format {format} | head -1"
        ));
        assert_eq!(
            r.code, 0,
            "task-list --format {format} | head -1 exited {}: {}",
            r.code, r.stderr
        );
        assert_eq!(r.stderr, "", "--format {format}: stderr must stay empty");
        assert_eq!(r.stdout.lines().count(), 1, "--format {format}");
    }
    let r = s.bash("task-list | head -1; echo \"status ${PIPESTATUS[0]}\"");
    assert_eq!(
        r.success(),
        format!("#1 [pending] task 0 {long}\nstatus 0\n")
    );
}
