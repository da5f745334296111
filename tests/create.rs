//! task-create: single tasks from flags, output formats, id assignment, lists, batches.

mod util;

use serde_json::{json, Value};
use util::{assert_failure, id_list, sqlite_only, Store};

#[test]
fn single_task_with_every_flag() {
    let s = Store::new();
    let b1 = s.create("Build", &[]);
    let b2 = s.create("Lint", &[]);
    let out = s.ok(
        "task-create",
        [
            "Review PR #125",
            "-d",
            "Look at the diff\nand the tests",
            "--active-form",
            "Reviewing PR #125",
            "-b",
            &format!("{b1},#{b2}"),
            "-p",
            "7",
            "-m",
            "agent=code-reviewer",
            "-m",
            "n=5",
            "-m",
            "tags=[\"a\",\"b\"]",
            "-m",
            "note=two words",
            "--owner",
            "w3",
            "--max-attempts",
            "3",
        ],
    );
    assert_eq!(out, "3\n");
    let t = s.json("3");
    assert_eq!(t["id"], "3");
    assert_eq!(t["list"], "default");
    assert_eq!(t["subject"], "Review PR #125");
    assert_eq!(t["description"], "Look at the diff\nand the tests");
    assert_eq!(t["activeForm"], "Reviewing PR #125");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["owner"], "w3");
    assert_eq!(id_list(&t["blockedBy"]), ["1", "2"]);
    assert_eq!(id_list(&t["blocks"]), Vec::<String>::new());
    assert_eq!(t["priority"], 7);
    assert_eq!(
        t["metadata"],
        json!({"agent": "code-reviewer", "n": 5, "tags": ["a", "b"], "note": "two words"})
    );
    assert_eq!(t["attempts"], 0);
    assert_eq!(t["maxAttempts"], 3);
    assert_eq!(t["ready"], false);
    assert_eq!(t["result"], Value::Null);
    assert_eq!(t["startedAt"], Value::Null);
    assert_eq!(t["finishedAt"], Value::Null);
    // RFC 3339 UTC with milliseconds.
    let created = t["createdAt"].as_str().expect("createdAt is a string");
    assert_eq!(created.len(), "2026-11-21T20:00:00.123Z".len(), "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    assert_eq!(t["updatedAt"], t["createdAt"]);
    // The other direction of the edges.
    assert_eq!(id_list(&s.json("1")["blocks"]), ["3"]);
    assert_eq!(id_list(&s.json("2")["blocks"]), ["3"]);
}

#[test]
fn defaults_of_a_plain_task() {
    let s = Store::new();
    assert_eq!(s.create("Plain", &[]), "1");
    let t = s.json("1");
    assert_eq!(t["description"], "");
    assert_eq!(t["activeForm"], Value::Null);
    assert_eq!(t["owner"], Value::Null);
    assert_eq!(t["priority"], 0);
    assert_eq!(t["metadata"], json!({}));
    assert_eq!(t["maxAttempts"], 1);
    assert_eq!(t["ready"], true);
    assert_eq!(t["log"], Value::Null);
    assert_eq!(t["exitCode"], Value::Null);
}

#[test]
fn description_from_stdin_and_negative_priority() {
    let s = Store::new();
    let out = s
        .exec_stdin(
            "task-create",
            ["From stdin", "-d", "-", "-p", "-3"],
            "line one\nline two\n",
        )
        .success();
    assert_eq!(out, "1\n");
    let t = s.json("1");
    assert_eq!(t["description"], "line one\nline two\n");
    assert_eq!(t["priority"], -3);
    // The long form takes a negative number too.
    s.create("Low", &["--priority", "-10"]);
    assert_eq!(s.json("2")["priority"], -10);
}

#[test]
fn json_and_jsonl_output() {
    let s = Store::new();
    let out = s.ok("task-create", ["One", "--format", "json", "-m", "k=v"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["id"], "1");
    assert_eq!(arr[0]["subject"], "One");
    assert_eq!(arr[0]["metadata"], json!({"k": "v"}));
    assert_eq!(arr[0], s.json("1"));

    let batch = "{\"subject\":\"A\"}\n{\"subject\":\"B\"}\n";
    let path = s.file("b.jsonl", batch);
    let out = s.ok(
        "task-create",
        ["--from", path.to_str().unwrap(), "--format", "jsonl"],
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "2");
    assert_eq!(lines[0]["subject"], "A");
    assert_eq!(lines[1]["id"], "3");
    assert_eq!(lines[1]["subject"], "B");
}

#[test]
fn ids_count_up_and_are_never_reused() {
    let s = Store::new();
    assert_eq!(s.create("a", &[]), "1");
    assert_eq!(s.create("b", &[]), "2");
    assert_eq!(s.create("c", &[]), "3");
    s.ok("task-update", ["3", "--delete"]);
    assert_eq!(
        s.create("d", &[]),
        "4",
        "the id of a deleted task is reused"
    );
    s.ok("task-update", ["1", "--delete"]);
    s.ok("task-update", ["4", "--delete"]);
    assert_eq!(s.create("e", &[]), "5");
    assert_eq!(s.ids(&[]), ["2", "5"]);
}

#[test]
fn every_list_counts_from_one() {
    let s = Store::new();
    assert_eq!(s.create("default 1", &[]), "1");
    assert_eq!(s.create("default 2", &[]), "2");
    assert_eq!(s.create("review 1", &["--list", "review"]), "1");
    let via_env = s
        .exec_with(
            "task-create",
            ["claude 1"],
            &[("CLAUDE_CODE_TASK_LIST_ID", "claude-session:42")],
            None,
        )
        .success();
    assert_eq!(via_env, "1\n");
    let via_env = s
        .exec_with(
            "task-create",
            ["claude 2"],
            &[("CLAUDE_CODE_TASK_LIST_ID", "claude-session:42")],
            None,
        )
        .success();
    assert_eq!(via_env, "2\n");
    // --list wins over the variable.
    let both = s
        .exec_with(
            "task-create",
            ["review 2", "--list", "review"],
            &[("CLAUDE_CODE_TASK_LIST_ID", "claude-session:42")],
            None,
        )
        .success();
    assert_eq!(both, "2\n");
    assert_eq!(s.create("default 3", &[]), "3");

    assert_eq!(s.json_in("1", &["--list", "review"])["subject"], "review 1");
    assert_eq!(
        s.json_in("2", &["--list", "claude-session:42"])["list"],
        "claude-session:42"
    );
    assert_eq!(
        s.ok("task-list", ["--list", "review"]),
        "#1 [pending] review 1\n#2 [pending] review 2\n"
    );
    // A blocker must be in the same list.
    let r = s.exec(
        "task-create",
        ["x", "--list", "claude-session:42", "-b", "3"],
    );
    assert_failure(&r, "task-create", 3, &["#3"]);
}

#[test]
fn json_lines_batch_with_forward_references() {
    let s = Store::new();
    let existing = s.create("Existing", &[]);
    assert_eq!(existing, "1");
    let batch = r##"
{"subject":"Test","blockedBy":["build","lint"],"key":"test"}

{"key":"build","subject":"Build","description":"cargo build","priority":5}
{"key":"lint","subject":"Lint","blockedBy":[1],"metadata":{"agent":"linter"},"owner":"w1"}
   
{"subject":"Ship","blockedBy":["test","#1"],"activeForm":"Shipping","maxAttempts":2}
"##;
    let ids = s.create_batch("plan.jsonl", batch, &[]);
    assert_eq!(ids, ["2", "3", "4", "5"], "ids in input order");
    let test = s.json("2");
    assert_eq!(test["subject"], "Test");
    assert_eq!(id_list(&test["blockedBy"]), ["3", "4"]);
    assert_eq!(id_list(&test["blocks"]), ["5"]);
    let build = s.json("3");
    assert_eq!(build["description"], "cargo build");
    assert_eq!(build["priority"], 5);
    assert_eq!(id_list(&build["blocks"]), ["2"]);
    let lint = s.json("4");
    assert_eq!(lint["metadata"], json!({"agent": "linter"}));
    assert_eq!(lint["owner"], "w1");
    assert_eq!(id_list(&lint["blockedBy"]), ["1"]);
    let ship = s.json("5");
    assert_eq!(id_list(&ship["blockedBy"]), ["1", "2"]);
    assert_eq!(ship["activeForm"], "Shipping");
    assert_eq!(ship["maxAttempts"], 2);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["4", "5"]);
    // The key is stored with the task: null for a record without one.
    assert_eq!(test["key"], "test");
    assert_eq!(build["key"], "build");
    assert_eq!(ship["key"], Value::Null);
}

#[test]
fn json_array_batch() {
    let s = Store::new();
    let plan = r#"

  [
    {"key": "a", "subject": "Analyse"},
    {"subject": "Report", "blockedBy": ["a"], "metadata": {"agent": "writer"}}
  ]
"#;
    let ids = s.create_batch("03-tasks.json", plan, &[]);
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(s.json("1")["subject"], "Analyse");
    assert_eq!(id_list(&s.json("2")["blockedBy"]), ["1"]);
    assert_eq!(s.json("2")["metadata"]["agent"], "writer");
}

#[test]
fn csv_batch_by_file_name_with_every_column() {
    let s = Store::new();
    s.create("Existing", &[]);
    let csv = "\
key,subject,description,activeForm,blockedBy,priority,owner,maxAttempts,metadata,metadata.agent,metadata.n
build,Build,\"compile, link\",Building,,3,,2,\"{\"\"x\"\":1}\",builder,5
test,Test,,Testing,\"build,1\",-1,w2,,,tester,
,\"Multi
line\",,,build;test,,,,,,
";
    let ids = s.create_batch("tasks.csv", csv, &[]);
    assert_eq!(ids, ["2", "3", "4"]);
    let build = s.json("2");
    assert_eq!(build["subject"], "Build");
    assert_eq!(build["description"], "compile, link");
    assert_eq!(build["activeForm"], "Building");
    assert_eq!(build["priority"], 3);
    assert_eq!(build["owner"], Value::Null);
    assert_eq!(build["maxAttempts"], 2);
    assert_eq!(
        build["metadata"],
        json!({"x": 1, "agent": "builder", "n": 5})
    );
    let test = s.json("3");
    assert_eq!(id_list(&test["blockedBy"]), ["1", "2"]);
    assert_eq!(test["priority"], -1);
    assert_eq!(test["owner"], "w2");
    assert_eq!(test["maxAttempts"], 1);
    assert_eq!(test["metadata"], json!({"agent": "tester"}));
    // A quoted cell may span lines; blockedBy may be separated by `;` too.
    let multi = s.json("4");
    assert_eq!(multi["subject"], "Multi\nline");
    assert_eq!(id_list(&multi["blockedBy"]), ["2", "3"]);
}

#[test]
fn csv_batch_with_flag_and_from_stdin() {
    let s = Store::new();
    // --csv on a file whose name does not end in .csv.
    let path = s.file("tasks.txt", "subject,priority\nFirst,1\nSecond,2\n");
    let out = s.ok("task-create", ["--from", path.to_str().unwrap(), "--csv"]);
    assert_eq!(out, "1\n2\n");
    assert_eq!(s.json("2")["priority"], 2);
    // --from - --csv reads CSV from stdin.
    let out = s
        .exec_stdin(
            "task-create",
            ["--from", "-", "--csv"],
            "subject,metadata.agent\nThird,x\n",
        )
        .success();
    assert_eq!(out, "3\n");
    assert_eq!(s.json("3")["metadata"], json!({"agent": "x"}));
    // Without --csv the same file is read as JSON lines, and is not valid JSON.
    let snap = s.snapshot();
    let r = s.exec("task-create", ["--from", path.to_str().unwrap()]);
    assert_failure(&r, "task-create", 2, &["line 1"]);
    assert_eq!(s.snapshot(), snap);
}

#[test]
fn json_lines_from_stdin() {
    let s = Store::new();
    let out = s
        .exec_stdin(
            "task-create",
            ["--from", "-"],
            "{\"key\":\"x\",\"subject\":\"X\"}\n{\"subject\":\"Y\",\"blockedBy\":[\"x\"]}\n",
        )
        .success();
    assert_eq!(out, "1\n2\n");
    assert_eq!(id_list(&s.json("2")["blockedBy"]), ["1"]);
    // An empty batch creates nothing and is not an error.
    let out = s
        .exec_stdin("task-create", ["--from", "-"], "\n\n")
        .success();
    assert_eq!(out, "");
    assert_eq!(s.create("Z", &[]), "3");
}

#[test]
fn a_bad_record_rejects_the_whole_batch() {
    let s = Store::new();
    s.create("Existing", &[]);
    let snap = s.snapshot();
    let batch = "{\"subject\":\"A\"}\n{\"subject\":\"B\"}\n{\"subject\":\"C\",\"priority\":\"high\"}\n{\"subject\":\"D\"}\n";
    let path = s.file("bad.jsonl", batch);
    let r = s.exec("task-create", ["--from", path.to_str().unwrap()]);
    assert_failure(&r, "task-create", 2, &["line 3"]);
    assert_eq!(s.snapshot(), snap, "a failed batch created tasks");

    // A record whose blocker does not exist fails in the store, after parsing: still
    // nothing is created, and no id is used up.
    let batch = "{\"subject\":\"A\"}\n\n{\"subject\":\"C\",\"blockedBy\":[9]}\n";
    let path = s.file("bad2.jsonl", batch);
    let r = s.exec("task-create", ["--from", path.to_str().unwrap()]);
    assert_failure(&r, "task-create", 3, &["line 3", "#9"]);
    assert_eq!(s.snapshot(), snap);
    assert_eq!(s.create("Next", &[]), "2", "a failed batch used up ids");
}

#[test]
fn a_large_batch() {
    let s = Store::new();
    let mut batch = String::new();
    for i in 0..2000 {
        if i % 100 == 0 && i > 0 {
            // Every hundredth task waits for the one before it.
            batch += &format!(
                "{{\"key\":\"k{i}\",\"subject\":\"Task {i}\",\"blockedBy\":[\"k{}\"]}}\n",
                i - 1
            );
        } else {
            batch += &format!("{{\"key\":\"k{i}\",\"subject\":\"Task {i}\"}}\n");
        }
    }
    let ids = s.create_batch("big.jsonl", &batch, &[]);
    assert_eq!(ids.len(), 2000);
    assert_eq!(ids.first().map(String::as_str), Some("1"));
    assert_eq!(ids.last().map(String::as_str), Some("2000"));
    assert_eq!(
        s.ok("task-list", ["--count"]),
        "pending 2000\nin_progress 0\ncompleted 0\nfailed 0\ncancelled 0\n"
    );
    assert_eq!(
        s.ok("task-list", ["-s", "blocked", "--count", "--format", "json"]),
        "{\"pending\":19,\"in_progress\":0,\"completed\":0,\"failed\":0,\"cancelled\":0,\"total\":19}\n"
    );
    assert_eq!(id_list(&s.json("101")["blockedBy"]), ["100"]);
}

#[test]
fn where_the_store_lives() {
    let s = Store::new();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = s.std_cmd("task-create");
        c.env_remove("TASK_DB").env_remove("HOME").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let r = util::Run::from_output(&c.output().expect("run task-create"));
        r.success()
    };
    let xdg = s.dir().join("xdg");
    let home = s.dir().join("home");
    let xdg_s = xdg.to_str().unwrap();
    let home_s = home.to_str().unwrap();
    // $XDG_DATA_HOME first, then $HOME/.local/share.
    assert_eq!(
        run(&[("XDG_DATA_HOME", xdg_s), ("HOME", home_s)], &["in xdg"]),
        "1\n"
    );
    assert!(xdg.join("parallel-tasks/tasks.db").is_file());
    assert!(!home.exists());
    assert_eq!(run(&[("HOME", home_s)], &["in home"]), "1\n");
    assert!(home.join(".local/share/parallel-tasks/tasks.db").is_file());
    assert_eq!(run(&[("HOME", home_s)], &["in home too"]), "2\n");
    // TASK_DB wins over both, and --db over TASK_DB.
    let env_db = s.dir().join("env.db");
    let flag_db = s.dir().join("flag.db");
    let env = [
        ("XDG_DATA_HOME", xdg_s),
        ("HOME", home_s),
        ("TASK_DB", env_db.to_str().unwrap()),
    ];
    assert_eq!(run(&env, &["env"]), "1\n");
    assert_eq!(
        run(&env, &["flag", "--db", flag_db.to_str().unwrap()]),
        "1\n"
    );
    assert_eq!(
        run(&env, &["flag 2", "--db", flag_db.to_str().unwrap()]),
        "2\n"
    );
    assert_eq!(run(&env, &["env 2"]), "2\n");
    assert!(env_db.is_file() && flag_db.is_file());
    // TASK_SYNC=full is accepted.
    assert_eq!(
        run(
            &[("TASK_SYNC", "full"), ("TASK_DB", env_db.to_str().unwrap())],
            &["durable"]
        ),
        "3\n"
    );
}

#[test]
fn the_store_is_a_plain_sqlite_file_in_wal_mode() {
    if sqlite_only("the store is a SQLite file") {
        return;
    }
    let s = Store::new();
    s.create("a", &[]);
    // Another SQLite client (python3's sqlite3 module) reads it, as README users would.
    let out = util::python(
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         print(c.execute('pragma journal_mode').fetchone()[0])\n\
         print(c.execute('pragma user_version').fetchone()[0])\n\
         print(c.execute('select subject from tasks').fetchone()[0])\n",
        &[s.db().to_str().unwrap()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "wal");
    assert!(
        lines[1].parse::<i64>().unwrap() >= 1,
        "user_version {}",
        lines[1]
    );
    assert_eq!(lines[2], "a");
}

// ---------------------------------------------------------------------------------------
// Keys: plans you can run twice

/// `task-list --count --format json`'s total.
fn total(s: &Store, args: &[&str]) -> u64 {
    let mut all = vec!["--count", "--format", "json"];
    all.extend_from_slice(args);
    let v: Value = serde_json::from_str(&s.ok("task-list", all)).unwrap();
    v["total"].as_u64().unwrap()
}

const PLAN: &str = r#"{"key":"build","subject":"Build","description":"cargo build"}
{"key":"unit","subject":"Unit tests","blockedBy":["build"]}
{"key":"e2e","subject":"End-to-end tests","blockedBy":["build"],"maxAttempts":2}
{"key":"deploy","subject":"Deploy","blockedBy":["unit","e2e"]}
"#;

#[test]
fn a_batch_run_twice_creates_its_tasks_once() {
    let s = Store::new();
    s.create("Unrelated", &[]);
    let first = s.create_batch("plan.jsonl", PLAN, &[]);
    assert_eq!(first, ["2", "3", "4", "5"]);
    assert_eq!(total(&s, &[]), 5);
    let snap = s.snapshot();
    // The same file again: the same ids, in the same places, and nothing new.
    let again = s.create_batch("plan.jsonl", PLAN, &[]);
    assert_eq!(again, first);
    assert_eq!(total(&s, &[]), 5);
    assert_eq!(s.snapshot(), snap, "a re-run changed the store");
    // As a JSON array and as CSV too; JSON output shows the existing tasks.
    let array: Vec<Value> = PLAN
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let out = s.ok(
        "task-create",
        [
            "--from",
            s.file("plan.json", serde_json::to_string(&array).unwrap())
                .to_str()
                .unwrap(),
            "--format",
            "json",
        ],
    );
    let shown: Vec<Value> = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = shown.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, first);
    assert_eq!(shown[3]["key"], "deploy");
    assert_eq!(id_list(&shown[3]["blockedBy"]), ["3", "4"]);
    let csv = "key,subject,blockedBy\nbuild,Build,\nunit,Unit tests,build\n";
    assert_eq!(s.create_batch("plan.csv", csv, &[]), ["2", "3"]);
    assert_eq!(s.snapshot(), snap);
}

#[test]
fn a_grown_plan_adds_only_its_new_records() {
    let s = Store::new();
    let first = s.create_batch("plan.jsonl", PLAN, &[]);
    // The plan grew (docs, waiting for build) and a record changed: existing keys are
    // kept as they are (their fields and blockers are not applied), new ones created,
    // and a reference to an existing record's key is to the existing task.
    let grown =
        format!("{PLAN}{{\"key\":\"docs\",\"subject\":\"Docs\",\"blockedBy\":[\"build\"]}}\n")
            .replace(
                "\"subject\":\"Deploy\"",
                "\"subject\":\"Deploy NOW\",\"priority\":9",
            );
    let out = s.create_batch("grown.jsonl", &grown, &["--format", "jsonl"]);
    let shown: Vec<Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = shown.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..4], first[..]);
    assert_eq!(ids[4], "5");
    assert_eq!(shown[3]["subject"], "Deploy");
    assert_eq!(shown[3]["priority"], 0);
    assert_eq!(shown[4]["key"], "docs");
    assert_eq!(id_list(&shown[4]["blockedBy"]), ["1"]);
    assert_eq!(id_list(&s.json("1")["blocks"]), ["2", "3", "5"]);
    // A skipped record's blockers are not looked at: here one names a key no task has.
    let skipped = "{\"key\":\"build\",\"subject\":\"Build\",\"blockedBy\":[\"gone\"]}\n";
    assert_eq!(s.create_batch("skip.jsonl", skipped, &[]), ["1"]);
    assert_eq!(total(&s, &[]), 5);
}

#[test]
fn a_single_task_with_a_key() {
    let s = Store::new();
    assert_eq!(s.create("Build", &["--key", "build"]), "1");
    assert_eq!(s.json("1")["key"], "build");
    // Again, even with other fields: the existing id, nothing changed.
    let snap = s.snapshot();
    assert_eq!(s.create("Build it", &["--key", "build", "-p", "5"]), "1");
    assert_eq!(s.snapshot(), snap);
    // JSON output shows the existing task.
    let out = s.ok(
        "task-create",
        ["Other", "--key", "build", "--format", "json"],
    );
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown[0]["id"], "1");
    assert_eq!(shown[0]["subject"], "Build");
    // Blocked by a key, by an id, or both; a task without a key has key null.
    assert_eq!(s.create("Lint", &[]), "2");
    assert_eq!(s.json("2")["key"], Value::Null);
    assert_eq!(s.create("Test", &["-b", "build"]), "3");
    assert_eq!(id_list(&s.json("3")["blockedBy"]), ["1"]);
    assert_eq!(s.create("Ship", &["-b", "build,#2", "--key", "ship"]), "4");
    assert_eq!(id_list(&s.json("4")["blockedBy"]), ["1", "2"]);
    // Keys are per list: the same key in another list is another task.
    assert_eq!(s.create("Build", &["--key", "build", "--list", "b"]), "1");
    assert_eq!(total(&s, &["--list", "b"]), 1);
    assert_eq!(total(&s, &[]), 4);
    // A deleted task's key is free again (its id is not).
    s.ok("task-update", ["4", "--delete"]);
    assert_eq!(s.create("Ship again", &["--key", "ship"]), "5");
}

#[test]
fn key_conflicts_with_on_conflict_error() {
    let s = Store::new();
    s.create_batch("plan.jsonl", PLAN, &[]);
    let snap = s.snapshot();
    let r = s.exec(
        "task-create",
        ["Build", "--key", "build", "--on-conflict", "error"],
    );
    assert_failure(&r, "task-create", 4, &["key 'build'", "#1", "exists"]);
    assert_eq!(s.snapshot(), snap);
    // In a batch where the other records are new: all or nothing.
    let batch = "{\"key\":\"new\",\"subject\":\"New\"}\n{\"key\":\"unit\",\"subject\":\"Unit\"}\n{\"subject\":\"Z\"}\n";
    let path = s.file("conflict.jsonl", batch);
    let r = s.exec(
        "task-create",
        ["--from", path.to_str().unwrap(), "--on-conflict=error"],
    );
    assert_failure(&r, "task-create", 4, &["line 2", "key 'unit'", "#2"]);
    assert_eq!(s.snapshot(), snap);
    // A batch of new keys is fine with --on-conflict error; the default prints the
    // existing id; `existing` can be given.
    let fresh = "{\"key\":\"x\",\"subject\":\"X\"}\n{\"key\":\"y\",\"subject\":\"Y\",\"blockedBy\":[\"x\",\"deploy\"]}\n";
    assert_eq!(
        s.create_batch("fresh.jsonl", fresh, &["--on-conflict", "error"]),
        ["5", "6"]
    );
    assert_eq!(id_list(&s.json("6")["blockedBy"]), ["4", "5"]);
    assert_eq!(
        s.create_batch("fresh.jsonl", fresh, &["--on-conflict", "existing"]),
        ["5", "6"]
    );
    // Two records with one key in one batch stay a usage error.
    let dup = "{\"key\":\"q\",\"subject\":\"Q\"}\n{\"key\":\"q\",\"subject\":\"Q\"}\n";
    let path = s.file("dup.jsonl", dup);
    let r = s.exec("task-create", ["--from", path.to_str().unwrap()]);
    assert_failure(&r, "task-create", 2, &["line 2", "duplicate key 'q'"]);
}

#[test]
fn a_later_batch_refers_to_an_earlier_batchs_keys() {
    let s = Store::new();
    s.create_batch("plan.jsonl", PLAN, &[]);
    let later = "{\"subject\":\"Bench\",\"blockedBy\":[\"build\"]}\n{\"subject\":\"Notes\",\"blockedBy\":[\"deploy\",1]}\n";
    assert_eq!(s.create_batch("later.jsonl", later, &[]), ["5", "6"]);
    assert_eq!(id_list(&s.json("5")["blockedBy"]), ["1"]);
    assert_eq!(id_list(&s.json("6")["blockedBy"]), ["1", "4"]);
    // CSV blockedBy takes keys of the list too.
    let csv = "subject,blockedBy\nPackage,build;e2e\n";
    assert_eq!(s.create_batch("later.csv", csv, &[]), ["7"]);
    assert_eq!(id_list(&s.json("7")["blockedBy"]), ["1", "3"]);
    // An unknown key: not found, naming the key and the line; nothing is created.
    let snap = s.snapshot();
    let bad = "{\"subject\":\"ok\"}\n{\"subject\":\"Bad\",\"blockedBy\":[\"build\",\"biuld\"]}\n";
    let path = s.file("bad.jsonl", bad);
    let r = s.exec("task-create", ["--from", path.to_str().unwrap()]);
    assert_failure(
        &r,
        "task-create",
        3,
        &["line 2", "key 'biuld'", "not found"],
    );
    let r = s.exec("task-create", ["X", "-b", "biuld"]);
    assert_failure(&r, "task-create", 3, &["key 'biuld'", "not found"]);
    assert_eq!(s.snapshot(), snap);
    assert_eq!(s.create("Next", &[]), "8", "a failed create used up ids");
}

#[test]
fn keys_in_csv_and_json_output() {
    let s = Store::new();
    s.create_batch(
        "plan.csv",
        "key,subject\nbuild,Build\n,No key\n\"a, b\",Comma\n",
        &[],
    );
    let out = s.ok("task-list", ["--format", "csv", "--fields", "id,key"]);
    assert_eq!(out, "id,key\n1,build\n2,\n3,\"a, b\"\n");
    let tasks = s.tasks(&[]);
    assert_eq!(tasks[0]["key"], "build");
    assert_eq!(tasks[1]["key"], Value::Null);
    // `key` comes right after `list` in the JSON object.
    let fields: Vec<&String> = tasks[0].as_object().unwrap().keys().take(3).collect();
    assert_eq!(fields, ["id", "list", "key"]);
    // Text output is unchanged: no key in it.
    assert_eq!(s.ok("task-list", ["1"]), "#1 [pending] Build\n");
}

#[test]
fn bad_keys_are_usage_errors() {
    let s = Store::new();
    s.create("Existing", &[]);
    let snap = s.snapshot();
    for (key, why) in [
        ("", "empty"),
        ("3", "task id"),
        ("#3", "task id"),
        ("line\nbreak", "control character"),
        ("tab\there", "control character"),
        (" padded", "white space"),
    ] {
        let quoted = format!("key '{}'", key.escape_debug());
        let r = s.exec("task-create", ["X", "--key", key]);
        assert_failure(&r, "task-create", 2, &["--key", &quoted, why]);
        let line = serde_json::json!({"subject": "X", "key": key}).to_string();
        let path = s.file("bad.jsonl", format!("{{\"subject\":\"ok\"}}\n{line}\n"));
        let r = s.exec("task-create", ["--from", path.to_str().unwrap()]);
        assert_failure(&r, "task-create", 2, &["line 2", &quoted, why]);
    }
    assert_eq!(s.snapshot(), snap);
}

/// Processes started together: each `sh -c SCRIPT` (with the binaries on PATH and `C` set
/// to its number) waits for the file `go`, so they all start at once; their results.
fn at_once(s: &Store, n: usize, script: &str) -> Vec<util::Run> {
    let go = s.dir().join("go");
    let _ = std::fs::remove_file(&go);
    let gated = format!("while [ ! -e go ]; do :; done; {script}");
    let children: Vec<_> = (0..n)
        .map(|c| {
            s.sh_cmd(&gated)
                .env("C", c.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn sh")
        })
        .collect();
    std::fs::write(&go, "").unwrap();
    children
        .into_iter()
        .map(|c| util::Run::from_output(&c.wait_with_output().expect("wait")))
        .collect()
}

#[test]
fn concurrent_creators_of_one_key_make_one_task() {
    let s = Store::new();
    // The store exists first: this is about keys, not about creating a new store
    // (processes that create one store at the same moment can meet a busy error while
    // switching it to WAL, which is outside what keys do). The first key makes it.
    s.create("seed", &["--key", "seed"]);
    s.ok("task-update", ["1", "--delete"]);
    assert_eq!(total(&s, &[]), 0);
    for round in 0..5 {
        let key = format!("same-{round}");
        let runs = at_once(&s, 8, &format!("exec task-create --key {key} \"X by $C\""));
        let ids: Vec<String> = runs.into_iter().map(|r| r.success()).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{key}: {ids:?}");
        assert_eq!(ids[0].trim(), (round + 2).to_string());
        assert_eq!(total(&s, &[]), round as u64 + 1, "{key}");
    }
    // A whole plan, eight times at once: each task once, every run printed its ids.
    let plan = s.file("plan.jsonl", PLAN);
    let runs = at_once(
        &s,
        8,
        &format!("exec task-create --from {}", plan.display()),
    );
    let outs: Vec<String> = runs.into_iter().map(|r| r.success()).collect();
    assert!(outs.iter().all(|o| *o == outs[0]), "{outs:?}");
    assert_eq!(outs[0], "7\n8\n9\n10\n");
    assert_eq!(total(&s, &[]), 9);
    assert_eq!(id_list(&s.json("10")["blockedBy"]), ["8", "9"]);
}

#[test]
fn a_version_1_store_is_upgraded_and_keeps_its_tasks() {
    if sqlite_only("an old SQLite schema is upgraded") {
        return;
    }
    let s = Store::new();
    // A store as a binary of schema version 1 left it: migration 1, two tasks, an edge.
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        c.execute('pragma journal_mode = wal')\n\
        c.executescript(sys.argv[2])\n\
        c.executescript('''\n\
          INSERT INTO lists (id, name, last_id, created_at) VALUES (1, 'default', 2, 0);\n\
          INSERT INTO tasks (list_id, id, subject, created_at, updated_at)\n\
            VALUES (1, 1, 'old build', 0, 0), (1, 2, 'old test', 0, 0);\n\
          INSERT INTO edges (list_id, blocker, blocked) VALUES (1, 1, 2);\n\
          PRAGMA user_version = 1;''')\n\
        c.close()\n";
    util::python(
        script,
        &[s.db().to_str().unwrap(), taskstore::store::MIGRATIONS[0]],
    );
    // Read first (a reader upgrades it too), then use keys on it.
    let old = s.json("2");
    assert_eq!(old["subject"], "old test");
    assert_eq!(old["key"], Value::Null);
    assert_eq!(id_list(&old["blockedBy"]), ["1"]);
    assert_eq!(s.create("Deploy", &["--key", "deploy", "-b", "2"]), "3");
    assert_eq!(s.create("Deploy", &["--key", "deploy"]), "3");
    s.ok("task-update", ["1", "--add-blocks", "deploy"]);
    assert_eq!(id_list(&s.json("3")["blockedBy"]), ["1", "2"]);
    assert_eq!(total(&s, &[]), 3);
    let version = util::python(
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         print(c.execute('pragma user_version').fetchone()[0])\n\
         print(c.execute('select key from tasks where id = 3').fetchone()[0])\n",
        &[s.db().to_str().unwrap()],
    );
    assert_eq!(
        version,
        format!("{}\ndeploy\n", taskstore::store::SCHEMA_VERSION)
    );
}
