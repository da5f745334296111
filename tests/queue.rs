//! `task-sync --queue DIR`: a folder of markdown items (`NNN-STATUS-slug.md`) and a list
//! in step, both ways — imported with their blockers, run by a real pool, renamed as the
//! tasks move, agents' renames taken in, strangers left alone. On both backends.

mod util;

use std::path::{Path, PathBuf};
use util::{wait_until, Store, DEADLINE};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("the queue folder")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn queue(s: &Store) -> PathBuf {
    let q = s.dir().join(".agent/queue");
    std::fs::create_dir_all(&q).unwrap();
    q
}

fn sync(s: &Store) -> util::Run {
    s.exec("task-sync", ["--queue", ".agent/queue"])
}

#[test]
fn a_queue_with_blockers_is_imported_run_by_a_pool_and_renamed_as_it_goes() {
    let s = Store::new();
    let q = queue(&s);
    let front = "# Build the frontend\n\nUse the design in docs/ui.md.\n";
    std::fs::write(q.join("001-pending-frontend.md"), front).unwrap();
    std::fs::write(
        q.join("002-pending-backend.md"),
        "BlockedBy: 001\n\nThe API.\n",
    )
    .unwrap();
    std::fs::write(
        q.join("003-pending-docs.md"),
        "# Docs\nBlockedBy: 001-pending-frontend.md, 002\n",
    )
    .unwrap();
    std::fs::write(q.join("notes.txt"), "not an item").unwrap();
    std::fs::write(q.join("abc-pending-x.md"), "no number").unwrap();

    let r = sync(&s);
    assert_eq!(r.code, 0, "{r:?}");
    let said: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(said.len(), 2, "one line per stranger: {said:?}");
    assert!(said[0].starts_with("task-sync: ") && said[0].contains("abc-pending-x.md"));
    assert!(said[1].contains("notes.txt") && said[1].contains("left alone"));
    assert_eq!(
        s.ok("task-list", [] as [&str; 0]),
        "#1 [pending] Build the frontend\n#2 [pending] backend [blocked by #1]\n\
         #3 [pending] Docs [blocked by #1, #2]\n"
    );
    let first = s.json("1");
    assert_eq!(first["key"], "queue:1");
    assert_eq!(
        first["description"], front,
        "the description is the file's text"
    );

    // A pool runs them in dependency order; the next pass renames every item.
    let r = s.exec(
        "worker-spawn",
        [
            "-j",
            "2",
            "--no-progress",
            "--",
            "sh",
            "-c",
            "echo done {id}",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = sync(&s);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, ""),
        "strangers are said once: {r:?}"
    );
    assert_eq!(
        names(&q),
        [
            "001-completed-frontend.md",
            "002-completed-backend.md",
            "003-completed-docs.md",
            "abc-pending-x.md",
            "notes.txt"
        ]
    );
    let after = std::fs::read_to_string(q.join("001-completed-frontend.md")).unwrap();
    assert_eq!(after, front, "a rename leaves the text alone");
    // Nothing left to do: a pass changes nothing.
    let before = s.snapshot();
    let r = s.exec("task-sync", ["--queue", ".agent/queue", "-v"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn agents_move_items_by_renaming_them_and_the_store_wins_a_conflict() {
    let s = Store::new();
    let q = queue(&s);
    for (n, slug) in [(1, "parser"), (2, "lexer"), (3, "docs"), (4, "extra")] {
        std::fs::write(
            q.join(format!("00{n}-pending-{slug}.md")),
            format!("# {slug}\n"),
        )
        .unwrap();
    }
    assert_eq!(sync(&s).code, 0);

    // An agent takes item 1: a claim by `queue`, which pools leave alone.
    std::fs::rename(
        q.join("001-pending-parser.md"),
        q.join("001-in_progress-parser.md"),
    )
    .unwrap();
    assert_eq!(sync(&s).code, 0);
    let one = s.json("1");
    assert_eq!(
        (one["status"].as_str(), one["owner"].as_str()),
        (Some("in_progress"), Some("queue"))
    );
    let r = s.exec(
        "worker-spawn",
        ["-j", "2", "--no-progress", "--", "echo", "ran {id}"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        s.json("1")["status"],
        "in_progress",
        "the pool left the agent's item alone"
    );
    assert_eq!(s.json("2")["result"], "ran 2\n");

    // The agent finishes it; another marks item 3 blocked; item 4 is deleted.
    std::fs::rename(
        q.join("001-in_progress-parser.md"),
        q.join("001-completed-parser.md"),
    )
    .unwrap();
    // (The pool completed 3 too; no pass has renamed its item since.)
    std::fs::rename(q.join("003-pending-docs.md"), q.join("003-blocked-docs.md")).unwrap();
    let r = sync(&s);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.json("1")["status"], "completed");
    // Item 3: the pool had completed it and the agent marked it blocked — both moved, so
    // the store's status stands and the file is renamed back.
    assert_eq!(s.json("3")["status"], "completed");
    assert!(q.join("003-completed-docs.md").exists(), "{:?}", names(&q));

    // Both sides moved item 2 since the last pass: the store wins.
    s.ok("task-update", ["2", "--status", "pending"]);
    std::fs::rename(
        q.join("002-completed-lexer.md"),
        q.join("002-blocked-lexer.md"),
    )
    .unwrap();
    assert_eq!(sync(&s).code, 0);
    assert_eq!(s.json("2")["status"], "pending");
    assert!(q.join("002-pending-lexer.md").exists(), "{:?}", names(&q));

    // Only the folder moved: blocked is failed, with a log line saying so.
    std::fs::rename(
        q.join("002-pending-lexer.md"),
        q.join("002-blocked-lexer.md"),
    )
    .unwrap();
    assert_eq!(sync(&s).code, 0);
    let two = s.json("2");
    assert_eq!(two["status"], "failed");
    assert!(
        two["log"]
            .as_str()
            .unwrap()
            .contains("marked blocked in the queue folder"),
        "{two}"
    );
    // Reopened here: the item goes back to pending.
    s.ok("task-update", ["2", "--status", "pending"]);
    assert_eq!(sync(&s).code, 0);
    assert!(q.join("002-pending-lexer.md").exists(), "{:?}", names(&q));

    // An item deleted while its task is open cancels it; a task deleted removes its item.
    std::fs::remove_file(q.join("002-pending-lexer.md")).unwrap();
    s.ok("task-update", ["4", "--delete"]);
    assert_eq!(sync(&s).code, 0);
    let two = s.json("2");
    assert_eq!(two["status"], "cancelled");
    assert!(
        two["log"]
            .as_str()
            .unwrap()
            .contains("002-pending-lexer.md was deleted"),
        "{two}"
    );
    assert_eq!(
        names(&q),
        ["001-completed-parser.md", "003-completed-docs.md"]
    );
}

#[test]
fn a_task_made_elsewhere_becomes_the_next_item() {
    let s = Store::new();
    let q = queue(&s);
    std::fs::write(q.join("0007-pending-base.md"), "# Base\n").unwrap();
    assert_eq!(sync(&s).code, 0);
    s.create(
        "Wire up the CLI: flags & help",
        &["--blocked-by", "1", "-d", "Every flag has help."],
    );
    s.create("Cancelled one", &[]);
    s.ok("task-update", ["3", "--status", "cancelled"]);
    let r = s.exec("task-sync", ["--queue", ".agent/queue", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("wrote 0008-pending-wire-up-the-cli-flags-help.md from #2"),
        "{r:?}"
    );
    assert_eq!(
        names(&q),
        [
            "0007-pending-base.md",
            "0008-pending-wire-up-the-cli-flags-help.md",
            "0009-blocked-cancelled-one.md"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(q.join("0008-pending-wire-up-the-cli-flags-help.md")).unwrap(),
        "# Wire up the CLI: flags & help\n\nEvery flag has help.\n\nBlockedBy: 0007\n"
    );
    // Its item is its pair now: a rename there moves it.
    std::fs::rename(
        q.join("0008-pending-wire-up-the-cli-flags-help.md"),
        q.join("0008-in_progress-wire-up-the-cli-flags-help.md"),
    )
    .unwrap();
    assert_eq!(sync(&s).code, 0);
    assert_eq!(s.json("2")["owner"], "queue");
    assert_eq!(
        s.ok("task-list", ["--format", "ids"]).lines().count(),
        3,
        "nothing imported twice"
    );
}

#[test]
fn follow_keeps_the_folder_and_the_list_in_step() {
    let s = Store::new();
    let q = queue(&s);
    let mut follow = s
        .std_cmd("task-sync")
        .args(["--queue", ".agent/queue", "--follow"])
        .spawn()
        .expect("start task-sync --follow");
    std::fs::write(q.join("001-pending-one.md"), "# One\n").unwrap();
    wait_until(DEADLINE, || s.sh("task-list --format ids").stdout == "1\n");
    s.ok("task-update", ["1", "--status", "completed"]);
    wait_until(DEADLINE, || q.join("001-completed-one.md").exists());
    std::fs::rename(q.join("001-completed-one.md"), q.join("001-pending-one.md")).unwrap();
    wait_until(DEADLINE, || s.json("1")["status"] == "pending");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &follow.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(follow.wait().unwrap().code(), Some(143));
}

#[test]
fn queue_and_dir_are_one_or_the_other() {
    let s = Store::new();
    let r = s.exec("task-sync", ["--queue", "q", "--dir", "d"]);
    util::assert_failure(&r, "task-sync", 2, &["--queue", "--dir"]);
    assert!(!s.dir().join("q").exists() && !s.dir().join("d").exists());
}
