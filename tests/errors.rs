//! Every failure the user can cause: the exit code, a message on stderr that starts with
//! the binary's name and says what was wrong, nothing on stdout, and a store that the
//! failed command did not change.

mod util;

use std::os::unix::fs::PermissionsExt;
use util::{assert_failure, postgres, psql_at, sqlite_only, Run, Store};

/// A store with a little of everything: #1 blocks #2, #2 blocks #3, #4 stands alone.
fn fixture() -> Store {
    let s = Store::new();
    s.create("one", &[]);
    s.create("two", &["-b", "1"]);
    s.create("three", &["-b", "2"]);
    s.create("four", &["-m", "agent=x"]);
    s.create("other list", &["--list", "review"]);
    s
}

/// Run `bin args` (with `env` and `stdin`) on the store and check that it failed with
/// `code` without changing anything.
fn fails_with(
    s: &Store,
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
    code: i32,
    needles: &[&str],
) -> Run {
    let before = s.snapshot();
    let r = s.exec_with(bin, args, env, stdin);
    assert_failure(&r, bin, code, needles);
    assert_eq!(
        s.snapshot(),
        before,
        "`{bin} {}` failed but changed the store",
        args.join(" ")
    );
    r
}

fn fails(s: &Store, bin: &str, args: &[&str], code: i32, needles: &[&str]) -> Run {
    fails_with(s, bin, args, &[], None, code, needles)
}

#[test]
fn unknown_status() {
    let s = fixture();
    fails(
        &s,
        "task-update",
        &["1", "-s", "bogus"],
        2,
        &["bogus", "pending"],
    );
    fails(&s, "task-list", &["-s", "ready,bogus"], 2, &["bogus"]);
    fails(
        &s,
        "task-update",
        &["1", "-s", "completed", "--if-status", "done"],
        2,
        &["done"],
    );
}

#[test]
fn bad_task_ids() {
    let s = fixture();
    fails(&s, "task-update", &["abc", "-s", "completed"], 2, &["abc"]);
    fails(&s, "task-update", &["0", "-s", "completed"], 2, &["'0'"]);
    fails(&s, "task-update", &["-3", "-s", "completed"], 2, &["-3"]);
    fails(&s, "task-update", &["1.5", "-s", "completed"], 2, &["1.5"]);
    fails(&s, "task-list", &["abc"], 2, &["abc"]);
    // A reference that is not shaped like an id is a key; an unknown one is not found.
    fails(&s, "task-create", &["x", "-b", "abc"], 3, &["key 'abc'"]);
    fails(
        &s,
        "task-create",
        &["x", "-b", "#abc"],
        2,
        &["'#abc'", "task id"],
    );
    fails(
        &s,
        "task-update",
        &["1", "--add-blocked-by", "0"],
        2,
        &["'0'"],
    );
    // A bad id among good ones on stdin changes none of them.
    fails_with(
        &s,
        "task-update",
        &["-", "-s", "completed"],
        &[],
        Some(b"1\nx7\n4\n"),
        2,
        &["x7"],
    );
}

#[test]
fn missing_task() {
    let s = fixture();
    fails(
        &s,
        "task-update",
        &["9", "-s", "completed"],
        3,
        &["#9", "default"],
    );
    fails(&s, "task-list", &["1", "9"], 3, &["#9"]);
    fails(&s, "task-list", &["1", "9", "--count"], 3, &["#9"]);
    fails(&s, "task-list", &["9", "--waves"], 3, &["#9"]);
    // Ids are per list: #2 exists in default, not in review.
    fails(
        &s,
        "task-list",
        &["2", "--list", "review"],
        3,
        &["#2", "review"],
    );
    fails(&s, "task-update", &["9", "--delete"], 3, &["#9"]);
    // One missing id among several changes none of them.
    fails(&s, "task-update", &["1", "9", "-s", "failed"], 3, &["#9"]);
    fails(&s, "task-update", &["4", "9", "--delete"], 3, &["#9"]);
    fails(&s, "task-update", &["9", "--release"], 3, &["#9"]);
}

#[test]
fn missing_blocker() {
    let s = fixture();
    fails(&s, "task-create", &["x", "-b", "1,9"], 3, &["#9"]);
    fails(
        &s,
        "task-update",
        &["4", "--add-blocked-by", "9"],
        3,
        &["#9"],
    );
    fails(&s, "task-update", &["4", "--add-blocks", "1,9"], 3, &["#9"]);
}

#[test]
fn self_edge() {
    let s = fixture();
    fails(
        &s,
        "task-update",
        &["4", "--add-blocked-by", "4"],
        2,
        &["#4", "itself"],
    );
    fails(
        &s,
        "task-update",
        &["4", "--add-blocks", "#4"],
        2,
        &["#4", "itself"],
    );
}

#[test]
fn cycle_via_add_blocked_by() {
    let s = fixture();
    // 1 -> 2 -> 3: making 1 wait for 3 closes a cycle.
    fails(
        &s,
        "task-update",
        &["1", "--add-blocked-by", "3"],
        2,
        &["cycle", "#1", "#3"],
    );
    fails(
        &s,
        "task-update",
        &["1", "--add-blocked-by", "2"],
        2,
        &["cycle"],
    );
    // Together with edges that would be fine: none is written.
    fails(
        &s,
        "task-update",
        &["1", "--add-blocked-by", "4,3"],
        2,
        &["cycle"],
    );
}

#[test]
fn cycle_via_add_blocks() {
    let s = fixture();
    fails(
        &s,
        "task-update",
        &["3", "--add-blocks", "1"],
        2,
        &["cycle", "#1", "#3"],
    );
    fails(
        &s,
        "task-update",
        &["2", "--add-blocks", "4,1"],
        2,
        &["cycle"],
    );
}

#[test]
fn cycle_inside_a_batch() {
    let s = fixture();
    let p = s.file(
        "cycle.jsonl",
        "{\"subject\":\"fine\"}\n{\"key\":\"a\",\"subject\":\"A\",\"blockedBy\":[\"c\"]}\n\
         {\"key\":\"b\",\"subject\":\"B\",\"blockedBy\":[\"a\"]}\n\
         {\"key\":\"c\",\"subject\":\"C\",\"blockedBy\":[\"b\",1]}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["cycle"],
    );
    let p = s.file(
        "self.jsonl",
        "{\"key\":\"a\",\"subject\":\"A\",\"blockedBy\":[\"a\"]}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["cycle", "line 1"],
    );
}

#[test]
fn malformed_json_line() {
    let s = fixture();
    let p = s.file(
        "bad.jsonl",
        "{\"subject\":\"a\"}\n\n{\"subject\":\"b\"\n{\"subject\":\"c\"}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 3"],
    );
    // A record that is not an object, and one without a subject.
    let p = s.file("bad2.jsonl", "{\"subject\":\"a\"}\n[1,2]\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2"],
    );
    let p = s.file(
        "bad3.jsonl",
        "{\"subject\":\"a\"}\n{\"description\":\"no subject\"}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2", "subject"],
    );
    // A malformed JSON array names its line too.
    let p = s.file("bad.json", "[\n {\"subject\":\"a\"},\n {\"subject\":}\n]\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 3"],
    );
    // A key used twice.
    let p = s.file(
        "dup.jsonl",
        "{\"key\":\"a\",\"subject\":\"a\"}\n{\"key\":\"a\",\"subject\":\"b\"}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2", "duplicate"],
    );
    // An unknown key reference: neither in the batch nor in the list.
    let p = s.file(
        "bad4.jsonl",
        "{\"subject\":\"a\",\"blockedBy\":[\"nope\"]}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        3,
        &["line 1", "key 'nope'"],
    );
}

#[test]
fn unknown_field_in_a_batch_record() {
    let s = fixture();
    let p = s.file(
        "unknown.jsonl",
        "{\"subject\":\"a\"}\n{\"subject\":\"b\",\"bogus\":1}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2", "bogus"],
    );
    // An unknown CSV column.
    let p = s.file("unknown.csv", "subject,bogus\na,1\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["bogus"],
    );
}

#[test]
fn bad_csv_value() {
    let s = fixture();
    let p = s.file("bad.csv", "subject,priority\nfine,1\nwrong,high\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 3", "priority", "high"],
    );
    let p = s.file("bad2.csv", "subject,maxAttempts\nfine,0\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2"],
    );
    let p = s.file("bad3.csv", "subject,metadata\nfine,[1]\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2", "metadata"],
    );
}

#[test]
fn invalid_utf8_in_a_batch_file() {
    let s = fixture();
    let p = s.file(
        "latin1.jsonl",
        b"{\"subject\":\"a\"}\n{\"subject\":\"caf\xe9\"}\n",
    );
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2", "UTF-8"],
    );
    let p = s.file("latin1.csv", b"subject\nok\ncaf\xe9\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["UTF-8"],
    );
}

#[test]
fn invalid_utf8_on_stdin() {
    let s = fixture();
    fails_with(
        &s,
        "task-update",
        &["1", "--result", "-"],
        &[],
        Some(b"caf\xe9\n"),
        2,
        &["UTF-8"],
    );
    fails_with(
        &s,
        "task-create",
        &["x", "-d", "-"],
        &[],
        Some(b"\xff"),
        2,
        &["UTF-8"],
    );
}

#[test]
fn bad_list_id() {
    let s = fixture();
    fails(&s, "task-list", &["--list", "a/b"], 2, &["a/b", "'/'"]);
    fails(&s, "task-create", &["x", "--list", "a/b"], 2, &["'/'"]);
    fails(
        &s,
        "task-update",
        &["1", "-s", "failed", "--list", "a b"],
        2,
        &["' '"],
    );
    fails(&s, "task-list", &["--list", ".x"], 2, &[".x", "'.'"]);
    fails(&s, "task-list", &["--list", ""], 2, &["empty"]);
    let long = "x".repeat(129);
    fails(&s, "task-list", &["--list", &long], 2, &["128"]);
    for (bad, named) in [("a/b", "'/'"), (".x", "'.'"), ("ü", "'ü'")] {
        fails_with(
            &s,
            "task-create",
            &["x"],
            &[("CLAUDE_CODE_TASK_LIST_ID", bad)],
            None,
            2,
            &[named],
        );
        fails_with(
            &s,
            "task-list",
            &[],
            &[("CLAUDE_CODE_TASK_LIST_ID", bad)],
            None,
            2,
            &[named],
        );
    }
}

#[test]
fn empty_subject() {
    let s = fixture();
    fails(&s, "task-create", &[""], 2, &["subject"]);
    fails(&s, "task-create", &["   "], 2, &["subject"]);
    fails(&s, "task-create", &[], 2, &["subject"]);
    fails(&s, "task-update", &["1", "--subject", ""], 2, &["subject"]);
    let p = s.file("empty.jsonl", "{\"subject\":\"a\"}\n{\"subject\":\"\"}\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 2", "subject"],
    );
    let p = s.file("empty.csv", "subject,priority\na,1\n,2\n");
    fails(
        &s,
        "task-create",
        &["--from", p.to_str().unwrap()],
        2,
        &["line 3", "subject"],
    );
}

#[test]
fn unreadable_from_file() {
    let s = fixture();
    let missing = s.dir().join("no-such-plan.jsonl");
    fails(
        &s,
        "task-create",
        &["--from", missing.to_str().unwrap()],
        2,
        &["no-such-plan.jsonl"],
    );
    let dir = s.dir().join("a-folder");
    std::fs::create_dir(&dir).unwrap();
    fails(
        &s,
        "task-create",
        &["--from", dir.to_str().unwrap()],
        2,
        &["a-folder"],
    );
}

#[test]
fn bad_task_sync() {
    let s = fixture();
    fails_with(
        &s,
        "task-list",
        &[],
        &[("TASK_SYNC", "sometimes")],
        None,
        2,
        &["TASK_SYNC", "sometimes"],
    );
    fails_with(
        &s,
        "task-create",
        &["x"],
        &[("TASK_SYNC", "off")],
        None,
        2,
        &["off"],
    );
}

#[test]
fn unknown_flag() {
    let s = fixture();
    fails(&s, "task-create", &["x", "--bogus"], 2, &["--bogus"]);
    fails(&s, "task-list", &["--bogus"], 2, &["--bogus"]);
    fails(&s, "task-update", &["1", "--bogus"], 2, &["--bogus"]);
    // Flags that do not go together.
    fails(
        &s,
        "task-update",
        &["1", "--owner", "a", "--no-owner"],
        2,
        &[],
    );
    fails(&s, "task-update", &["--claim"], 2, &["--owner"]);
    fails(&s, "task-list", &["--count", "--waves"], 2, &[]);
    fails(&s, "task-list", &["--format", "yaml"], 2, &["yaml"]);
    fails(
        &s,
        "task-list",
        &["--format", "csv", "--fields", "id,bogus"],
        2,
        &["bogus"],
    );
    fails(&s, "task-update", &["1"], 2, &["nothing to change"]);
    fails(&s, "task-update", &["-s", "completed"], 2, &["id"]);
    fails(
        &s,
        "task-update",
        &["--claim", "--owner", "w1", "-s", "completed"],
        2,
        &["--claim"],
    );
    fails(&s, "task-create", &["x", "--max-attempts", "0"], 2, &["0"]);
    fails(&s, "task-update", &["1", "-m", "novalue"], 2, &["novalue"]);
    fails(
        &s,
        "task-update",
        &["--claim", "--owner", "w1", "--lease", "soon"],
        2,
        &["soon"],
    );
    fails(
        &s,
        "task-update",
        &["--claim", "--owner", "w1", "--limit", "agent"],
        2,
        &["agent"],
    );
}

#[test]
fn store_that_is_not_a_database() {
    let s = Store::new();
    // Deterministic "random" bytes: no SQLite header anywhere.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let path = s.file("garbage.db", &garbage);
    let s = s.with_db(&path);
    for (bin, args) in [
        ("task-list", vec![]),
        ("task-create", vec!["x"]),
        ("task-update", vec!["1", "-s", "completed"]),
        ("task-update", vec!["--claim", "--owner", "w1"]),
        ("task-sync", vec![]),
    ] {
        let r = s.exec(bin, &args);
        assert_failure(&r, bin, 5, &["not a", "garbage.db"]);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            garbage,
            "{bin} wrote into the file"
        );
    }
}

/// Readers and writers alike refuse a store from a newer version (schema 99).
fn refused_by_all(s: &Store) {
    for (bin, args) in [
        ("task-list", vec![]),
        ("task-create", vec!["x"]),
        ("task-update", vec!["1", "-s", "completed"]),
        ("task-sync", vec![]),
    ] {
        let r = s.exec(bin, &args);
        assert_failure(&r, bin, 5, &["99", "newer"]);
    }
}

#[test]
fn store_with_a_newer_schema() {
    let s = Store::new();
    s.create("a", &[]);
    if postgres().is_some() {
        psql_at(
            &s.db().to_string_lossy(),
            "UPDATE schema_version SET version = 99",
        );
        refused_by_all(&s);
        let rows = psql_at(
            &s.db().to_string_lossy(),
            "SELECT count(*), min(status) FROM tasks",
        );
        assert_eq!(rows, "1|pending", "the newer store was written to");
        return;
    }
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute('pragma user_version = 99')\n\
             c.commit()\n\
             c.close()\n",
        )
        .arg(s.db())
        .status()
        .expect("run python3");
    assert!(status.success(), "python3 could not set user_version");
    let before = std::fs::read(s.db()).unwrap();
    refused_by_all(&s);
    assert_eq!(
        std::fs::read(s.db()).unwrap(),
        before,
        "the newer store was written to"
    );
}

#[test]
fn store_that_is_a_directory() {
    let s = Store::new();
    let dir = s.dir().join("store.d");
    std::fs::create_dir(&dir).unwrap();
    let s = s.with_db(&dir);
    for (bin, args) in [("task-list", vec![]), ("task-create", vec!["x"])] {
        let r = s.exec(bin, &args);
        assert_failure(&r, bin, 5, &["store.d", "directory"]);
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "files were made in it"
    );
}

#[test]
fn a_new_store_is_private() {
    if sqlite_only("file and folder modes") {
        return;
    }
    let s = Store::new();
    let db = s.dir().join("deep/er/tasks.db");
    let s = s.with_db(&db);
    s.create("secret", &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "the database file");
    assert_eq!(mode(&s.dir().join("deep")), 0o700, "a created folder");
    assert_eq!(mode(&s.dir().join("deep/er")), 0o700, "a created folder");
    for side in ["tasks.db-wal", "tasks.db-shm"] {
        let p = s.dir().join("deep/er").join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    // An existing folder keeps its mode.
    let s2 = Store::new();
    std::fs::set_permissions(s2.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    s2.create("x", &[]);
    assert_eq!(mode(s2.dir()), 0o755);
    assert_eq!(mode(s2.db()), 0o600);
}
