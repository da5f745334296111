//! `task-sync`: the bridge to Claude Code's own task files. Claude Code's part is played
//! by `tests/claude_code.py`, which writes the files as its tools do (pretty JSON in
//! place, the proper-lockfile lock, `.highwatermark`, clear-on-completion).
//!
//! The tests use `CLAUDE_CONFIG_DIR` (set by `util` to `<store folder>/claude`), so the
//! list `default` lives in `<store folder>/claude/tasks/default`.

mod procs;
mod util;

use procs::Bg;
use serde_json::Value;
use std::path::PathBuf;
use util::{assert_failure, wait_until, Run, Store, DEADLINE};

fn folder(s: &Store) -> PathBuf {
    s.dir().join("claude").join("tasks").join("default")
}

/// Run tests/claude_code.py on the list's folder.
fn claude(s: &Store, args: &str) -> Run {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/claude_code.py");
    s.sh(&format!("python3 {script} {} {args}", folder(s).display()))
}

/// Claude Code creates a task; its file id.
fn claude_create(s: &Store, args: &str) -> String {
    claude(s, &format!("create {args}"))
        .success()
        .trim()
        .to_string()
}

/// The file `<id>.json` as Claude Code would read it.
fn file(s: &Store, id: &str) -> Value {
    let p = folder(s).join(format!("{id}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
}

fn file_ids(s: &Store) -> Vec<i64> {
    let mut ids: Vec<i64> = std::fs::read_dir(folder(s))
        .map(|d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".json")?;
                stem.parse().ok().filter(|_| !stem.starts_with('0'))
            })
            .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

fn sync(s: &Store) -> String {
    s.ok("task-sync", ["--once"])
}

/// The task whose subject is `subject` (exactly one).
fn task_named(s: &Store, subject: &str) -> Value {
    let all: Vec<Value> = s
        .tasks(&[])
        .into_iter()
        .filter(|t| t["subject"] == subject)
        .collect();
    assert_eq!(all.len(), 1, "tasks named {subject:?}: {all:?}");
    all.into_iter().next().unwrap()
}

/// The file whose subject is `subject` (exactly one), with its id.
fn file_named(s: &Store, subject: &str) -> (String, Value) {
    let all: Vec<(String, Value)> = file_ids(s)
        .into_iter()
        .map(|i| (i.to_string(), file(s, &i.to_string())))
        .filter(|(_, f)| f["subject"] == subject)
        .collect();
    assert_eq!(all.len(), 1, "files named {subject:?}: {all:?}");
    all.into_iter().next().unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn claude_planned_tasks_run_here_and_show_completed_there() {
    let s = Store::new();
    // Ids on the two sides differ: the store has a task of its own before the files
    // are read.
    s.create("local work", &[]);
    let plan = claude_create(&s, "'plan the release'");
    let ship = claude_create(&s, &format!("'ship it' --blocked-by {plan}"));
    assert_eq!((plan.as_str(), ship.as_str()), ("1", "2"));
    sync(&s);
    let plan_task = task_named(&s, "plan the release");
    let ship_task = task_named(&s, "ship it");
    assert_ne!(
        plan_task["id"], "1",
        "file 1 must not become task 1 (taken)"
    );
    assert_eq!(
        util::id_list(&ship_task["blockedBy"]),
        [plan_task["id"].as_str().unwrap()]
    );
    // The store's own task got a file with a new id, beside Claude Code's.
    let (local, _) = file_named(&s, "local work");
    assert_eq!(local, "3");

    s.exec("worker-spawn", ["-j", "2", "--", "sh", "-c", "echo done"])
        .expect_code(0);
    sync(&s);
    for id in ["1", "2", "3"] {
        assert_eq!(file(&s, id)["status"], "completed", "{id}.json");
    }
    assert_eq!(strs(&file(&s, "2")["blockedBy"]), ["1"]);
    assert_eq!(strs(&file(&s, "1")["blocks"]), ["2"]);
    assert_eq!(claude(&s, "check").success().trim(), "3");
}

#[test]
fn a_failure_reads_as_completed_with_its_outcome() {
    let s = Store::new();
    claude_create(&s, "'flaky step'");
    sync(&s);
    s.exec(
        "worker-spawn",
        ["--", "sh", "-c", "echo 'disk is full' >&2; exit 3"],
    )
    .expect_code(1);
    sync(&s);
    let f = file(&s, "1");
    assert_eq!(f["status"], "completed");
    assert_eq!(f["subject"], "✗ flaky step");
    assert_eq!(f["metadata"]["outcome"], "failed");
    assert_eq!(f["metadata"]["exitCode"], 3);
    assert_eq!(f["metadata"]["reason"], "disk is full");
    // The store still says failed, with its own subject.
    let t = task_named(&s, "flaky step");
    assert_eq!(t["status"], "failed");
    // Reopened on Claude Code's side: a retry here.
    claude(&s, "update 1 status=pending").success();
    sync(&s);
    assert_eq!(task_named(&s, "flaky step")["status"], "pending");
    let f = file(&s, "1");
    assert_eq!(
        (f["status"].as_str(), f["subject"].as_str()),
        (Some("pending"), Some("flaky step"))
    );
    assert!(f.get("metadata").is_none(), "{f}");
}

#[test]
fn edits_merge_field_by_field_and_the_store_wins_a_conflict() {
    let s = Store::new();
    let id = s.create("draft", &["-m", "team=core"]);
    sync(&s);
    // Both sides change the subject; each changes one field more.
    claude(
        &s,
        "update 1 subject='from claude' description='written there' activeForm='Drafting'",
    )
    .success();
    claude(&s, "update 1 'metadata={\"team\":\"core\",\"seen\":true}'").success();
    s.ok(
        "task-update",
        [id.as_str(), "--subject", "from here", "--priority", "5"],
    );
    let out = s.ok("task-sync", ["--once", "-v"]);
    assert!(out.contains("description"), "{out}");
    let t = s.json(&id);
    assert_eq!(
        t["subject"], "from here",
        "the store wins a field both changed"
    );
    assert_eq!(t["description"], "written there");
    assert_eq!(t["activeForm"], "Drafting");
    assert_eq!(t["metadata"]["seen"], true);
    assert_eq!(t["metadata"]["team"], "core");
    let f = file(&s, "1");
    assert_eq!(
        f["subject"], "from here",
        "the file is rewritten with the store's value"
    );
    assert_eq!(f["description"], "written there");
    // In step now: another pass changes nothing, in the store or the folder.
    let before = std::fs::read(folder(&s).join("1.json")).unwrap();
    assert_eq!(s.ok("task-sync", ["--once", "-v"]), "");
    assert_eq!(std::fs::read(folder(&s).join("1.json")).unwrap(), before);
}

#[test]
fn a_claim_made_in_a_file_holds_here() {
    let s = Store::new();
    let id = s.create("review", &[]);
    sync(&s);
    claude(&s, "claim 1 teammate-a").success();
    sync(&s);
    let t = s.json(&id);
    assert_eq!(
        (t["status"].as_str(), t["owner"].as_str()),
        (Some("in_progress"), Some("teammate-a"))
    );
    // No worker here runs it.
    s.exec("task-update", ["--claim", "--owner", "w1"])
        .expect_code(1);
    // The teammate finishes it there; it is completed here.
    claude(&s, "update 1 status=completed").success();
    sync(&s);
    assert_eq!(s.json(&id)["status"], "completed");
}

#[test]
fn a_claim_here_wins_over_a_later_one_there() {
    let s = Store::new();
    let id = s.create("contested", &[]);
    sync(&s);
    s.ok("task-update", ["--claim", "--owner", "w1"]);
    claude(&s, "claim 1 teammate-b").success();
    let r = s.exec("task-sync", ["--once"]).expect_code(0);
    assert!(
        r.stderr.is_empty(),
        "both changed status: the store wins quietly\n{}",
        r.stderr
    );
    let t = s.json(&id);
    assert_eq!(t["owner"], "w1");
    let f = file(&s, "1");
    assert_eq!(
        (f["status"].as_str(), f["owner"].as_str()),
        (Some("in_progress"), Some("w1"))
    );
}

#[test]
fn the_clear_on_completion_loses_nothing() {
    let s = Store::new();
    for n in 1..=3 {
        s.create(&format!("t{n}"), &[]);
    }
    sync(&s);
    s.exec("worker-spawn", ["--", "true"]).expect_code(0);
    sync(&s);
    claude(&s, "clear").success();
    assert_eq!(file_ids(&s), Vec::<i64>::new());
    sync(&s);
    // Nothing deleted or cancelled here, nothing written back there.
    let statuses: Vec<String> = s
        .tasks(&[])
        .iter()
        .map(|t| t["status"].to_string())
        .collect();
    assert_eq!(statuses, ["\"completed\""; 3]);
    assert_eq!(file_ids(&s), Vec::<i64>::new());
    // A new task gets an id above Claude Code's high-water mark.
    s.create("t4", &[]);
    sync(&s);
    assert_eq!(file_ids(&s), [4]);
    assert_eq!(file(&s, "4")["subject"], "t4");
}

#[test]
fn a_file_deleted_alone_cancels_its_open_task() {
    let s = Store::new();
    let a = s.create("keep", &[]);
    let b = s.create("drop", &[]);
    sync(&s);
    claude(&s, "delete 2").success();
    sync(&s);
    assert_eq!(s.json(&a)["status"], "pending");
    let t = s.json(&b);
    assert_eq!(t["status"], "cancelled");
    assert!(
        t["log"].as_str().unwrap().contains("2.json was deleted"),
        "{t}"
    );
    assert_eq!(
        file_ids(&s),
        [1],
        "a cancelled task's file is not written back"
    );
}

#[test]
fn a_task_deleted_here_loses_its_file() {
    let s = Store::new();
    let a = s.create("gone soon", &[]);
    s.create("stays", &[]);
    sync(&s);
    s.ok("task-update", [a.as_str(), "--delete"]);
    sync(&s);
    assert_eq!(file_ids(&s), [2]);
    sync(&s);
    assert_eq!(s.tasks(&[]).len(), 1, "the file was not imported back");
}

#[test]
fn a_half_written_file_waits_until_it_parses() {
    let s = Store::new();
    claude_create(
        &s,
        "'half there' --description 'a long description to cut in two'",
    );
    claude(&s, "half 1").success();
    let r = s.exec("task-sync", ["--once"]).expect_code(0);
    assert!(r.stderr.starts_with("task-sync: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("1.json") && r.stderr.contains("not JSON"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_eq!(s.tasks(&[]).len(), 0, "nothing imported half-read");
    // Claude Code finishes the write: the next pass takes it, once.
    let p = folder(&s).join("1.json");
    std::fs::write(
        &p,
        "{\n  \"id\": \"1\",\n  \"subject\": \"half there\",\n  \"description\": \"d\",\n  \
         \"status\": \"pending\",\n  \"blocks\": [],\n  \"blockedBy\": []\n}",
    )
    .unwrap();
    sync(&s);
    sync(&s);
    assert_eq!(task_named(&s, "half there")["description"], "d");
}

#[test]
fn foreign_files_are_left_alone() {
    let s = Store::new();
    std::fs::create_dir_all(folder(&s).join("sub.json")).unwrap();
    std::fs::write(folder(&s).join("notes.json"), "{}").unwrap();
    std::fs::write(folder(&s).join("007.json"), "{}").unwrap();
    s.create("one", &[]);
    assert_eq!(sync(&s), "");
    assert_eq!(s.tasks(&[]).len(), 1);
    assert_eq!(
        std::fs::read_to_string(folder(&s).join("notes.json")).unwrap(),
        "{}"
    );
    assert_eq!(file_ids(&s), [1]);
}

#[test]
fn a_held_lock_delays_writes_until_released() {
    let s = Store::new();
    s.create("waits for the lock", &[]);
    std::fs::create_dir_all(folder(&s)).unwrap();
    let lock = folder(&s).join(".lock.lock");
    std::fs::create_dir(&lock).unwrap();
    let mut bg = Bg::start(&s, "task-sync", &["--once"]);
    // Held by a live process (fresh mtime): nothing is written while it is held.
    let held = std::time::Instant::now();
    while held.elapsed() < std::time::Duration::from_millis(800) {
        assert!(bg.running(), "task-sync did not wait: {}", bg.stderr());
        assert_eq!(file_ids(&s), Vec::<i64>::new());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::remove_dir(&lock).unwrap();
    let r = bg.wait();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(file_ids(&s), [1]);
    assert!(!lock.exists(), "task-sync gave the lock back");
}

#[test]
fn a_stale_lock_is_broken() {
    let s = Store::new();
    s.create("after a crash", &[]);
    claude(&s, "stale-lock").success();
    sync(&s);
    assert_eq!(file_ids(&s), [1]);
    assert!(!folder(&s).join(".lock.lock").exists());
}

#[test]
fn follow_reacts_to_both_sides_and_stops_cleanly() {
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let s = Store::new();
        let mut bg = Bg::start(&s, "task-sync", &["--follow"]);
        bg.wait_for_handlers();
        // Claude Code's side → the store.
        claude_create(&s, "'planned there'");
        wait_until(DEADLINE, || {
            s.tasks(&[]).iter().any(|t| t["subject"] == "planned there")
        });
        // The store → Claude Code's side.
        let id = s.create("made here", &[]);
        wait_until(DEADLINE, || {
            file_ids(&s)
                .iter()
                .any(|i| file(&s, &i.to_string())["subject"] == "made here")
        });
        s.ok("task-update", [id.as_str(), "--status", "completed"]);
        wait_until(DEADLINE, || {
            file_named(&s, "made here").1["status"] == "completed"
        });
        bg.signal(sig);
        let r = bg.wait();
        assert_eq!(r.code, code, "SIG{sig}: {}", r.stderr);
        assert!(!folder(&s).join(".lock.lock").exists());
    }
}

#[test]
fn eight_processes_at_once_end_consistent() {
    let s = Store::new();
    std::fs::create_dir_all(folder(&s)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/claude_code.py");
    let dir = folder(&s);
    let mut procs = Vec::new();
    // Three Claude Code sessions planning (and claiming) at once, …
    for who in ["a", "b", "c"] {
        let mut c = s.sh_cmd(&format!(
            "python3 {script} {} creator 12 {who}",
            dir.display()
        ));
        c.stdin(std::process::Stdio::null());
        procs.push(Bg::spawn(who, c));
    }
    // … a script creating tasks here, …
    procs.push(Bg::spawn(
        "creator",
        s.sh_cmd("for i in $(seq 12); do task-create \"here-$i\" >/dev/null || exit 1; done"),
    ));
    // … two bridges following and two running pass after pass.
    let follows: Vec<Bg> = (0..2)
        .map(|_| Bg::start(&s, "task-sync", &["--follow"]))
        .collect();
    for _ in 0..2 {
        procs.push(Bg::spawn(
            "task-sync loop",
            s.sh_cmd("for i in $(seq 8); do task-sync --once || exit 1; done"),
        ));
    }
    for p in procs {
        let r = p.wait();
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    for mut f in follows {
        f.wait_for_handlers();
        f.signal("TERM");
        let r = f.wait();
        assert_eq!(r.code, 143, "{}", r.stderr);
    }
    sync(&s);
    // Every file parses as Claude Code reads it; one file a task, one task a subject.
    let files = claude(&s, "check")
        .success()
        .trim()
        .parse::<usize>()
        .unwrap();
    let tasks = s.tasks(&[]);
    assert_eq!(tasks.len(), 48, "no task lost or doubled");
    assert_eq!(files, 48);
    let mut subjects: Vec<String> = tasks.iter().map(|t| t["subject"].to_string()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 48);
    for who in ["a", "b", "c"] {
        for k in [3, 6, 9, 12] {
            let t = task_named(&s, &format!("{who}-{k}"));
            assert_eq!(t["status"], "in_progress", "{t}");
            assert_eq!(t["owner"], who);
        }
    }
}

#[test]
fn the_folder_follows_claude_code_naming() {
    let s = Store::new();
    s.ok("task-create", ["--list", "team.a:b", "x"]);
    s.ok("task-sync", ["--list", "team.a:b"]);
    let f = s.dir().join("claude/tasks/team-a-b/1.json");
    assert!(f.exists(), "{}", f.display());
    // Without CLAUDE_CONFIG_DIR: under $HOME/.claude.
    let home = s.dir().join("home");
    let r = Run::from_output(
        &s.std_cmd("task-sync")
            .env_remove("CLAUDE_CONFIG_DIR")
            .env("HOME", &home)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(home.join(".claude/tasks/default").is_dir());
}

#[test]
fn bad_usage_is_refused_and_changes_nothing() {
    let s = Store::new();
    s.create("one", &[]);
    let before = s.snapshot();
    let r = s.exec("task-sync", ["--import-only", "--export-only"]);
    assert_failure(&r, "task-sync", 2, &["--import-only", "--export-only"]);
    let r = s.exec("task-sync", ["--once", "--follow"]);
    assert_failure(&r, "task-sync", 2, &["--follow"]);
    s.file("plain", "x");
    let r = s.exec("task-sync", ["--dir", "plain"]);
    assert_failure(&r, "task-sync", 2, &["plain"]);
    assert_eq!(s.snapshot(), before);
}

#[test]
fn one_way_modes() {
    let s = Store::new();
    claude_create(&s, "'from there'");
    s.create("from here", &[]);
    s.ok("task-sync", ["--import-only"]);
    assert_eq!(s.tasks(&[]).len(), 2);
    assert_eq!(file_ids(&s), [1], "--import-only writes no file");
    s.ok("task-sync", ["--export-only"]);
    assert_eq!(file_ids(&s), [1, 2]);
    claude(&s, "update 2 subject=renamed").success();
    s.ok("task-sync", ["--export-only"]);
    assert_eq!(
        file(&s, "2")["subject"],
        "from here",
        "--export-only takes no edit"
    );
}
