//! Critical-path claims: after priority, the claim takes the task with the longest chain
//! of open tasks waiting on it (`depth`), then the lowest id; depth follows edges and
//! statuses as they change, under concurrent writers too.

mod util;

use serde_json::Value;
use std::collections::BTreeMap;
use util::Store;

fn depth(s: &Store, id: &str) -> i64 {
    s.json(id)["depth"].as_i64().expect("depth is a number")
}

fn claim(s: &Store) -> String {
    s.ok("task-update", ["--claim", "--owner", "w"])
        .trim()
        .to_string()
}

/// Four quick independent tasks, then a chain of three made tail first, so that its
/// head has the highest id: plain id order would start the chain last.
fn plan(s: &Store) {
    for n in 1..=4 {
        s.create(&format!("quick {n}"), &[]);
    }
    s.create("tail", &[]); // 5
    s.create("middle", &[]); // 6
    s.create("head", &[]); // 7
    s.ok("task-update", ["6", "--add-blocks", "5"]);
    s.ok("task-update", ["7", "--add-blocks", "6"]);
}

#[test]
fn the_head_of_the_longest_chain_is_claimed_first_and_priority_still_comes_first() {
    let s = Store::new();
    plan(&s);
    s.ok("task-update", ["2", "-p", "1"]);
    let depths: Vec<i64> = (1..=7).map(|i| depth(&s, &i.to_string())).collect();
    assert_eq!(depths, [0, 0, 0, 0, 0, 1, 2]);

    assert_eq!(claim(&s), "2", "priority before depth");
    assert_eq!(claim(&s), "7", "then the chain's head");
    assert_eq!(claim(&s), "1", "then id order among equals");
    // What the write prints already shows the depth it leads to.
    let done: Value =
        serde_json::from_str(&s.ok("task-update", ["7", "-s", "completed", "--format", "json"]))
            .unwrap();
    assert_eq!(done[0]["depth"], 0, "{done}");
    assert_eq!(depth(&s, "7"), 0, "a closed task has no chain");
    assert_eq!(depth(&s, "6"), 1);
    assert_eq!(claim(&s), "6", "the chain goes on before the quick ones");
    assert_eq!(claim(&s), "3");

    // The waves' JSON lines show what orders the claim.
    let s = Store::new();
    plan(&s);
    let lines = s.ok("task-list", ["--waves", "--format", "jsonl"]);
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            first["wave"].as_i64(),
            first["id"].as_str(),
            first["depth"].as_i64()
        ),
        (Some(1), Some("7"), Some(2)),
        "{lines}"
    );
    assert_eq!(lines.lines().count(), 7, "{lines}");
}

#[test]
fn depth_follows_edges_and_statuses() {
    let s = Store::new();
    // 1 <- 2 <- 3 <- 4, and 1 <- 5
    s.create("a", &[]);
    s.create("b", &["-b", "1"]);
    s.create("c", &["-b", "2"]);
    s.create("d", &["-b", "3"]);
    s.create("e", &["-b", "1"]);
    assert_eq!(depth(&s, "1"), 3);
    // A failed task leaves the chains it was on.
    s.ok("task-update", ["3", "-s", "failed"]);
    assert_eq!((depth(&s, "1"), depth(&s, "2"), depth(&s, "3")), (1, 0, 0));
    // Reopened, it is back, with what waits on it.
    s.ok("task-update", ["3", "-s", "pending"]);
    assert_eq!((depth(&s, "1"), depth(&s, "3")), (3, 1));
    // Edges removed and added.
    s.ok("task-update", ["2", "--remove-blocked-by", "1"]);
    assert_eq!((depth(&s, "1"), depth(&s, "2")), (1, 2));
    s.ok("task-update", ["5", "--add-blocked-by", "4"]);
    assert_eq!((depth(&s, "1"), depth(&s, "2"), depth(&s, "4")), (1, 3, 1));
    let printed: Value = serde_json::from_str(&s.ok(
        "task-update",
        ["1", "--add-blocks", "2", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(printed[0]["depth"], 4, "{printed}");
    s.ok("task-update", ["2", "--remove-blocked-by", "1"]);
    // A deleted task takes its place in the chains along.
    s.ok("task-update", ["4", "--delete"]);
    assert_eq!((depth(&s, "2"), depth(&s, "3")), (1, 0));
    // Every task's JSON has it.
    for t in s.tasks(&[]) {
        assert!(t["depth"].is_i64(), "{t}");
    }
}

#[test]
fn a_pool_with_one_worker_runs_the_critical_path_first() {
    let s = Store::new();
    plan(&s);
    let order = s.dir().join("order");
    let script = format!("echo $TASK_ID >> {}", order.display());
    s.exec("worker-spawn", ["-j", "1", "--", "sh", "-c", &script])
        .expect_code(0);
    let ran = std::fs::read_to_string(&order).unwrap();
    let ran: Vec<&str> = ran.lines().collect();
    // The head first; once it is done its successor is the deepest ready task; then
    // id order among the rest (the tail has nothing waiting on it).
    assert_eq!(ran, ["7", "6", "1", "2", "3", "4", "5"]);
}

/// Every task's depth, checked against what the listing implies.
fn depths_match_listing(s: &Store) -> BTreeMap<String, i64> {
    let tasks = s.tasks(&[]);
    let got: BTreeMap<String, i64> = tasks
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["depth"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected_depths(&tasks));
    got
}

/// The depth each task should have, computed from the listing.
fn expected_depths(tasks: &[Value]) -> BTreeMap<String, i64> {
    let open = |t: &Value| matches!(t["status"].as_str(), Some("pending" | "in_progress"));
    let by_id: BTreeMap<String, &Value> = tasks
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t))
        .collect();
    fn walk(
        id: &str,
        by_id: &BTreeMap<String, &Value>,
        open: &dyn Fn(&Value) -> bool,
        memo: &mut BTreeMap<String, i64>,
    ) -> i64 {
        if let Some(&d) = memo.get(id) {
            return d;
        }
        let t = by_id[id];
        let mut d = 0;
        if open(t) {
            for w in t["blocks"].as_array().unwrap() {
                let w = w.as_str().unwrap();
                if open(by_id[w]) {
                    d = d.max(1 + walk(w, by_id, open, memo));
                }
            }
        }
        memo.insert(id.to_string(), d);
        d
    }
    let mut memo = BTreeMap::new();
    for id in by_id.keys() {
        walk(id, &by_id, &open, &mut memo);
    }
    memo
}

#[test]
fn concurrent_writers_leave_every_depth_right() {
    let s = Store::new();
    for n in 0..6 {
        s.create(&format!("root {n}"), &[]);
    }
    // Four writers at once: each adds tasks blocked by earlier ones, completes,
    // fails and reopens some, while a pool finishes what becomes ready.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            s.bash_cmd(&format!(
                r#"for i in $(seq 1 12); do
                     b=$(( (RANDOM % 6) + 1 ))
                     id=$(task-create "w{w} $i" -b $b) || exit 1
                     c=$(( (RANDOM % 6) + 1 ))
                     task-update $id --add-blocks $c 2>/dev/null
                     case $(( RANDOM % 3 )) in
                       0) task-update $b -s failed ;;
                       1) task-update $b -s pending ;;
                     esac
                   done"#
            ))
            .spawn()
            .unwrap()
        })
        .collect();
    let pool = s
        .std_cmd("worker-spawn")
        .args(["-j", "2", "--max-tasks", "20", "--", "true"])
        .spawn()
        .unwrap();
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    let mut pool = pool;
    pool.wait().unwrap();
    depths_match_listing(&s);
}

#[test]
fn a_store_from_before_depth_gets_every_depth_on_upgrade() {
    if util::sqlite_only("an old SQLite schema is upgraded") {
        return;
    }
    let s = Store::new();
    // A store as schema version 6 left it: a chain 1 <- 2 <- 3 <- 4 with a side branch
    // 1 <- 5 <- 8 <- 9 and a diamond 8 <- {10, 11} <- 12 below it; 6 completed (closed:
    // depth 0) with 7 waiting on it.
    let script = "import sqlite3, sys, json\n\
        c = sqlite3.connect(sys.argv[1])\n\
        c.execute('pragma journal_mode = wal')\n\
        for m in json.loads(sys.argv[2]):\n\
        \x20   c.executescript(m)\n\
        c.execute(\"INSERT INTO lists (id, name, last_id, created_at) VALUES (1, 'default', 12, 0)\")\n\
        for i in range(1, 13):\n\
        \x20   st = 'completed' if i == 6 else 'pending'\n\
        \x20   c.execute('INSERT INTO tasks (list_id, id, subject, status, created_at, updated_at) VALUES (1, ?, ?, ?, 0, 0)', (i, 't%d' % i, st))\n\
        for a, b in [(1,2),(2,3),(3,4),(1,5),(5,8),(8,9),(8,10),(8,11),(10,12),(11,12),(6,7)]:\n\
        \x20   c.execute('INSERT INTO edges (list_id, blocker, blocked) VALUES (1, ?, ?)', (a, b))\n\
        c.execute('pragma user_version = 6')\n\
        c.commit()\n\
        c.close()\n";
    let old: Vec<&str> = taskstore::store::MIGRATIONS[..6].to_vec();
    util::python(
        script,
        &[
            s.db().to_str().unwrap(),
            &serde_json::to_string(&old).unwrap(),
        ],
    );
    let got = depths_match_listing(&s);
    assert_eq!((got["1"], got["5"], got["8"], got["6"]), (4, 3, 2, 0));
    // And the claim uses them: 1 (depth 4) before 6's waiter 7 (depth 0).
    assert_eq!(claim(&s), "1");
}

#[test]
fn a_plan_written_goal_first_gets_its_depths_in_one_pass() {
    // A chain of 400 in one batch, each record waiting on the next: the blockers have
    // the higher ids, the reverse of the usual order.
    let s = Store::new();
    let batch: String = (0..400)
        .map(|i| {
            let after = if i < 399 {
                format!("[\"k{}\"]", i + 1)
            } else {
                "[]".into()
            };
            format!("{{\"key\":\"k{i}\",\"subject\":\"s{i}\",\"blockedBy\":{after}}}\n")
        })
        .collect();
    let ids = s.create_batch("plan.jsonl", &batch, &[]);
    assert_eq!(ids.len(), 400);
    assert_eq!(depth(&s, "400"), 399);
    assert_eq!(depth(&s, "1"), 0);
    depths_match_listing(&s);
    assert_eq!(claim(&s), "400");

    // A second batch hangs a lattice under the chain (each task waits on two earlier
    // ones), enough for the write to walk the whole region at once; then some tasks
    // close and some go, and every depth is still what the listing implies.
    let lattice: String = (0..120)
        .map(|i| {
            let a = if i < 2 {
                format!("k{}", 300 + i)
            } else {
                format!("m{}", i - 1)
            };
            let b = if i < 3 {
                format!("k{}", 200 + i)
            } else {
                format!("m{}", i - 3)
            };
            format!("{{\"key\":\"m{i}\",\"subject\":\"m{i}\",\"blockedBy\":[\"{a}\",\"{b}\"]}}\n")
        })
        .collect();
    s.create_batch("lattice.jsonl", &lattice, &[]);
    s.ok("task-update", ["250", "-s", "failed"]);
    s.ok("task-update", ["450", "--delete"]);
    s.ok("task-update", ["460", "-s", "cancelled"]);
    let got = depths_match_listing(&s);
    assert!(got["301"] > 100, "k300 heads the lattice: {}", got["301"]);
}
