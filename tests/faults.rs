//! Faults, through real processes: racing claimers, every kind of writer at once,
//! kill -9 of `worker-spawn` and of a big batch create at random moments, signals while
//! busy, and store trouble (read-only, folder not writable, full disk, file-size limit).
//!
//! Randomness (kill moments) comes from a small seeded generator; the seed is printed,
//! and `FAULTS_SEED=N` replays a run. Figures a person may want to quote (duplicates
//! run, kills that landed mid-work) are printed with `eprintln!`: see them with
//! `cargo test --test faults -- --nocapture`.
//!
//! Some store faults need root powers (a bind mount, a tmpfs, `chattr +i`). Each such
//! test says on stderr which way it took, and falls back to a way that works anywhere
//! when the machine does not allow it. `FAULTS_NO_PRIVILEGES=1` forces the fallbacks.

mod procs;
mod util;

use procs::{group_gone, Bg};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{assert_failure, wait_until, Run, Store, DEADLINE};

// ---------------------------------------------------------------------------------------
// Helpers

/// A small seeded generator (xorshift64*), so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    /// Seeded from `FAULTS_SEED` when set, else from `default`; says which on stderr.
    fn new(test: &str, default: u64) -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        eprintln!("{test}: seed {seed} (replay with FAULTS_SEED={seed})");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Tasks whose stored count of open blockers disagrees with their edges (kept by
/// triggers; a lost update under concurrency would show here).
/// (`CROSS JOIN` keeps SQLite from scanning the blockers' whole list per task.)
const MISCOUNTED: &str = "SELECT count(*) FROM tasks t WHERE open_blockers <> (SELECT count(*) \
    FROM edges e CROSS JOIN tasks b WHERE e.list_id = t.list_id AND e.blocked = t.id \
    AND b.list_id = e.list_id AND b.id = e.blocker AND b.status <> 'completed')";

/// The store is consistent: on SQLite `PRAGMA integrity_check` (through Python's sqlite3
/// module), on both no task with a wrong count of open blockers.
#[track_caller]
fn assert_integrity(db: &Path) {
    if util::postgres().is_some() {
        let n = util::psql_at(&db.to_string_lossy(), MISCOUNTED);
        assert_eq!(n, "0", "tasks with a wrong open_blockers count");
        return;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             print('\\n'.join(r[0] for r in c.execute('pragma integrity_check')))\n\
             print(c.execute(sys.argv[2]).fetchone()[0])\n\
             c.close()\n",
        )
        .arg(db)
        .arg(MISCOUNTED)
        .output()
        .expect("run python3");
    let r = Run::from_output(&out);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "ok\n0\n"),
        "integrity_check of {}:\n{}{}",
        db.display(),
        r.stdout,
        r.stderr
    );
}

/// `task-list --count --format json` (with `args`), parsed.
fn counts(s: &Store, args: &[&str]) -> Value {
    let mut all = vec!["--count", "--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&s.ok_or_unknown_list("task-list", all)).expect("--count JSON")
}

/// Live processes (zombies excluded) whose environment holds `TASK_DB=<db>`: every
/// process a test started on that store, and everything they started in turn
/// (worker-spawn's guardian and commands included).
fn live_on_store(db: &Path) -> Vec<u32> {
    let mut needle = b"TASK_DB=".to_vec();
    needle.extend_from_slice(db.as_os_str().as_encoded_bytes());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_slice()))
        })
        .filter(|&pid| !procs::gone(pid))
        .collect()
}

/// CPU time (user + system) a process has used, in ms; None once it is gone or a zombie.
/// /proc reports clock ticks of USER_HZ, which Linux fixes at 100 a second.
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(f.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    let utime: u64 = f.nth(10)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// Spawn one `sh -c SCRIPT` per environment (all at once) and wait for every one.
fn run_all(s: &Store, script: &str, envs: &[Vec<(&str, String)>]) -> Vec<Run> {
    let children: Vec<_> = envs
        .iter()
        .map(|env| {
            let mut c = s.sh_cmd(script);
            c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            Bg::spawn("sh", c)
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_timeout(DEADLINE * 3))
        .collect()
}

/// Run `cmd` quietly; whether it succeeded, else why not (for the skip messages).
fn try_run(program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn privileges_forbidden() -> Result<(), String> {
    match std::env::var_os("FAULTS_NO_PRIVILEGES") {
        Some(_) => Err("FAULTS_NO_PRIVILEGES is set".into()),
        None => Ok(()),
    }
}

/// A mount that is undone when dropped, even when the test panics (declare it after
/// the `Store` whose folder it lives in, so that it is dropped first).
struct Mount(PathBuf);

impl Mount {
    /// `mount --bind SRC DST` then remount it read-only.
    fn read_only_bind(src: &Path, dst: &Path) -> Result<Mount, String> {
        privileges_forbidden()?;
        std::fs::create_dir_all(dst).map_err(|e| e.to_string())?;
        try_run("mount", &[&"--bind", &src, &dst])?;
        let m = Mount(dst.to_path_buf());
        try_run("mount", &[&"-o", &"remount,ro,bind", &dst])?;
        // Make sure it really is read-only (some sandboxes ignore the remount).
        match std::fs::write(dst.join(".probe"), b"") {
            Err(e) if e.raw_os_error() == Some(30) => Ok(m),
            Err(e) => Err(format!("the read-only bind mount gave {e}, not EROFS")),
            Ok(()) => Err("the read-only bind mount is writable".into()),
        }
    }

    /// A tmpfs of `size` (e.g. "512k") at `dst`.
    fn tmpfs(dst: &Path, size: &str) -> Result<Mount, String> {
        privileges_forbidden()?;
        std::fs::create_dir_all(dst).map_err(|e| e.to_string())?;
        try_run(
            "mount",
            &[
                &"-t",
                &"tmpfs",
                &"-o",
                &format!("size={size},mode=0700"),
                &"tmpfs",
                &dst,
            ],
        )?;
        Ok(Mount(dst.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if try_run("umount", &[&self.0]).is_err() {
            let _ = try_run("umount", &[&"-l", &self.0]);
        }
    }
}

/// `chattr +i PATH`, undone when dropped (declare it after the `Store`).
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Result<Immutable, String> {
        privileges_forbidden()?;
        try_run("chattr", &[&"+i", &path])?;
        let guard = Immutable(path.to_path_buf());
        // Root ignores permission bits, not the immutable flag: check it holds.
        let probe = if path.is_dir() {
            std::fs::write(path.join(".probe"), b"")
        } else {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map(|_| ())
        };
        match probe {
            Err(_) => Ok(guard),
            Ok(()) => Err("chattr +i did not stop writes".into()),
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = try_run("chattr", &[&"-i", &self.0]);
    }
}

/// The store's files besides the database itself (`-wal`, `-shm`), for checks of the
/// state a store is left in.
fn side_files(db: &Path) -> Vec<String> {
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name) && *n != name)
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// 1. Racing claimers

#[test]
fn sixteen_racing_shell_workers_claim_a_thousand_tasks_exactly_once() {
    const TASKS: usize = 1000;
    const RACERS: usize = 16;
    let s = Store::new();
    let batch: String = (1..=TASKS)
        .map(|i| format!("{{\"subject\":\"task {i}\"}}\n"))
        .collect();
    assert_eq!(s.create_batch("tasks.jsonl", &batch, &[]).len(), TASKS);

    // The README's shell worker; the claim's own exit code ends the loop, so a store
    // error (5) is told apart from "nothing left" (1).
    let worker = r#"
        while :; do
            id=$(task-update --claim --owner "w$W")
            rc=$?
            [ "$rc" -eq 0 ] || exit "$rc"
            echo "$id"
            task-update "$id" -s completed --owner "w$W" || exit 9
        done
    "#;
    let start = Instant::now();
    let envs: Vec<_> = (0..RACERS).map(|w| vec![("W", w.to_string())]).collect();
    let runs = run_all(&s, worker, &envs);
    let took = start.elapsed();

    let mut claimed_by: BTreeMap<u32, usize> = BTreeMap::new();
    for (w, r) in runs.iter().enumerate() {
        assert_eq!(
            r.code, 1,
            "worker {w} should end with the 1 of 'nothing to claim'\n--- stderr\n{}",
            r.stderr
        );
        assert_eq!(
            r.stderr, "",
            "worker {w}: a shell worker loop ends quietly (nothing to claim prints nothing)"
        );
        for line in r.stdout.lines() {
            let id: u32 = line
                .parse()
                .unwrap_or_else(|_| panic!("worker {w} printed {line:?}"));
            if let Some(other) = claimed_by.insert(id, w) {
                panic!("task {id} was claimed by worker {other} and worker {w}");
            }
        }
    }
    let all: BTreeSet<u32> = (1..=TASKS as u32).collect();
    assert_eq!(
        claimed_by.keys().copied().collect::<BTreeSet<_>>(),
        all,
        "the union of the claims is every task"
    );
    let c = counts(&s, &[]);
    assert_eq!(c["completed"], TASKS, "{c}");
    assert_eq!(c["total"], TASKS, "{c}");
    for t in s.tasks(&[]) {
        let id: u32 = t["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(t["attempts"], 1, "task {id} was claimed more than once");
        assert_eq!(t["owner"], format!("w{}", claimed_by[&id]), "task {id}");
    }
    let per: Vec<usize> = (0..RACERS)
        .map(|w| claimed_by.values().filter(|&&x| x == w).count())
        .collect();
    eprintln!(
        "racing claimers: {RACERS} shell workers, {TASKS} tasks, each claimed once, \
         0 busy/locked errors, in {:.1}s; claims per worker {per:?}",
        took.as_secs_f64()
    );
    assert_integrity(s.db());
}

/// Concurrent creators get distinct ids, 1..=N with no gap, each creator's increasing.
/// Many processes making the same new store at once: the first one's switch to WAL mode
/// must not fail the others ("database is locked" at once: SQLite answers it without its
/// busy handler while another connection holds the new file). The race window is
/// narrow (a release build hit it in 2 of 320 calls); a debug build rarely meets it.
#[test]
fn many_processes_creating_one_new_store_all_succeed() {
    for round in 0..20 {
        let s = Store::new();
        let r = s.sh(
            "for c in 1 2 3 4 5 6 7 8; do task-create \"creator $c\" > out.$c 2>&1 & done; wait; cat out.*",
        );
        let ids: BTreeSet<u32> = r
            .success()
            .lines()
            .map(|l| l.parse().unwrap_or_else(|_| panic!("round {round}: {l}")))
            .collect();
        assert_eq!(ids, (1..=8).collect::<BTreeSet<_>>(), "round {round}");
        assert_integrity(s.db());
    }
}

#[test]
fn concurrent_creators_get_distinct_ids() {
    const CREATORS: usize = 8;
    const EACH: usize = 50;
    let s = Store::new();
    let creator = r#"
        i=0
        while [ "$i" -lt "$N" ]; do
            task-create "creator $C task $i" -m "creator=$C" || exit 9
            i=$((i + 1))
        done
    "#;
    let envs: Vec<_> = (0..CREATORS)
        .map(|c| vec![("C", c.to_string()), ("N", EACH.to_string())])
        .collect();
    let runs = run_all(&s, creator, &envs);
    let mut ids = BTreeSet::new();
    for (c, r) in runs.into_iter().enumerate() {
        let out = r.success();
        let mine: Vec<u32> = out.lines().map(|l| l.parse().expect("an id")).collect();
        assert_eq!(mine.len(), EACH, "creator {c}");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "creator {c} got ids out of order: {mine:?}"
        );
        for id in mine {
            assert!(ids.insert(id), "id {id} was given twice");
        }
    }
    let want: BTreeSet<u32> = (1..=(CREATORS * EACH) as u32).collect();
    assert_eq!(ids, want);
    assert_eq!(
        s.ok("task-list", ["--count", "--format", "json"]).trim(),
        format!(
            "{{\"pending\":{n},\"in_progress\":0,\"completed\":0,\"failed\":0,\"cancelled\":0,\"total\":{n}}}",
            n = CREATORS * EACH
        )
    );
    for c in 0..CREATORS {
        assert_eq!(
            s.ids(&["-m", &format!("creator={c}")]).len(),
            EACH,
            "creator {c}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Every kind of writer at once

#[test]
fn every_kind_of_writer_at_once_leaves_a_consistent_store() {
    const INITIAL: u32 = 50;
    let s = Store::new();
    let batch: String = (1..=INITIAL)
        .map(|i| format!("{{\"subject\":\"initial {i}\"}}\n"))
        .collect();
    s.create_batch("initial.jsonl", &batch, &[]);

    // Every script runs until the file `stop` appears; an unexpected failure prints
    // what happened and exits 9. No edge can close a cycle, so none may be refused: the
    // updaters only make a task of the first 50 wait for a lower id, and new tasks wait
    // only for older ones or for records of their own batch (named before or after
    // them, without a loop).
    let creator = r#"
        i=0
        while [ ! -e stop ]; do
            i=$((i + 1))
            old=$((i % 50 + 1))
            if [ $((i % 3)) -eq 0 ]; then
                # Keys name tasks in the list, so each batch has its own.
                printf '%s\n' \
                    "{\"key\":\"a$C.$i\",\"subject\":\"c$C batch $i a\"}" \
                    "{\"subject\":\"c$C batch $i c\",\"blockedBy\":[\"b$C.$i\",\"a$C.$i\",$old]}" \
                    "{\"key\":\"b$C.$i\",\"subject\":\"c$C batch $i b\",\"blockedBy\":[\"a$C.$i\"],\"metadata\":{\"creator\":$C}}" \
                    > "batch.$C"
                task-create --from "batch.$C" || exit 9
            else
                task-create "c$C single $i" -m "creator=$C" -b "$old" || exit 9
            fi
        done
    "#;
    let updater = r#"
        i=0
        while [ ! -e stop ]; do
            i=$((i + 1))
            hi=$(( (i * 7 + U * 13) % 49 + 2 ))
            lo=$(( (i * 5 + U) % (hi - 1) + 1 ))
            task-update "$hi" -m "u$U=$i" -p $((i % 5)) -d "edited by $U" || exit 9
            if [ $((i % 4)) -eq 0 ]; then
                task-update "$hi" --remove-blocked-by "$lo" || exit 9
            else
                task-update "$hi" --add-blocked-by "$lo" || exit 9
            fi
        done
    "#;
    let claimer = r#"
        while [ ! -e stop ]; do
            id=$(task-update --claim --owner "w$W" 2> "claim.err.$W")
            case $? in
                0) echo "$id"
                   task-update "$id" -s completed --owner "w$W" --result "by w$W" || exit 9 ;;
                1) [ ! -s "claim.err.$W" ] || { cat "claim.err.$W" >&2; exit 9; } ;;
                *) cat "claim.err.$W" >&2; exit 9 ;;
            esac
        done
    "#;
    let lister = r#"
        while [ ! -e stop ]; do
            task-list > /dev/null || exit 9
            task-list --count --format json > /dev/null || exit 9
            task-list -s ready,blocked --format ids > /dev/null || exit 9
            task-list --waves > /dev/null || exit 9
        done
    "#;
    let start = Instant::now();
    let mut waiter = s.std_cmd("task-wait");
    waiter.args(["--timeout", "3s", "--format", "ids", "--no-progress"]);
    let waiter = Bg::spawn("task-wait", waiter);
    let mut scripts: Vec<(String, Bg)> = Vec::new();
    let mut add = |name: String, script: &str, var: &str, n: u32| {
        let mut c = s.sh_cmd(script);
        c.env(var, n.to_string());
        scripts.push((name.clone(), Bg::spawn(&name, c)));
    };
    for n in 0..2 {
        add(format!("creator {n}"), creator, "C", n);
        add(format!("updater {n}"), updater, "U", n);
    }
    for n in 0..3 {
        add(format!("claimer {n}"), claimer, "W", n);
    }
    add("lister".into(), lister, "L", 0);

    // task-wait's own timeout is the clock of the whole test: it waits for every task
    // of a list that keeps growing, so it ends with 124 (or 0 if the claimers ever
    // catch up with the creators).
    let w = waiter.wait();
    std::fs::write(s.dir().join("stop"), b"").unwrap();
    assert!(
        w.code == 124 || w.code == 0,
        "task-wait: exit {}\n{}",
        w.code,
        w.stderr
    );
    if w.code == 124 {
        assert_eq!(w.stderr, "task-wait: timed out after 3s\n");
    } else {
        assert_eq!(w.stderr, "");
    }

    let mut ids: BTreeSet<u32> = (1..=INITIAL).collect();
    let mut claimed: BTreeMap<u32, String> = BTreeMap::new();
    let mut figures = Vec::new();
    for (name, bg) in scripts {
        let r = bg.wait();
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (0, ""),
            "{name} reported a failure\n--- stdout (tail)\n{}",
            &r.stdout[r.stdout.len().saturating_sub(500)..]
        );
        let lines = r.lines();
        figures.push(format!("{name}: {}", lines.len()));
        for l in lines {
            let id: u32 = l.parse().unwrap_or_else(|_| panic!("{name} printed {l:?}"));
            if name.starts_with("creator") {
                assert!(ids.insert(id), "id {id} was given twice");
            } else if name.starts_with("claimer") {
                if let Some(other) = claimed.insert(id, name.clone()) {
                    panic!("task {id} was claimed by {other} and {name}");
                }
            }
        }
    }
    let took = start.elapsed();

    let max = *ids.last().unwrap();
    assert_eq!(ids, (1..=max).collect(), "ids are contiguous");
    let listed: BTreeSet<u32> = s.ids(&[]).iter().map(|i| i.parse().unwrap()).collect();
    assert_eq!(listed, ids, "task-list shows exactly the created tasks");

    let tasks = s.tasks(&[]);
    let by_id: BTreeMap<u32, &Value> = tasks
        .iter()
        .map(|t| (t["id"].as_str().unwrap().parse().unwrap(), t))
        .collect();
    let mut edges = 0;
    for (&id, t) in &by_id {
        match claimed.get(&id) {
            Some(w) => {
                assert_eq!(t["status"], "completed", "{t}");
                assert_eq!(t["result"], format!("by w{}", &w["claimer ".len()..]));
                assert_eq!(t["attempts"], 1, "{t}");
            }
            None => assert_eq!(t["status"], "pending", "{t}"),
        }
        for b in util::id_list(&t["blockedBy"]) {
            let b: u32 = b.parse().unwrap();
            assert!(
                util::id_list(&by_id[&b]["blocks"]).contains(&id.to_string()),
                "#{id} is blocked by #{b}, but #{b} does not list it in blocks"
            );
            edges += 1;
        }
        for b in util::id_list(&t["blocks"]) {
            let b: u32 = b.parse().unwrap();
            assert!(
                util::id_list(&by_id[&b]["blockedBy"]).contains(&id.to_string()),
                "#{id} blocks #{b}, but #{b} does not list it in blockedBy"
            );
        }
    }
    assert_acyclic(&by_id);
    assert_eq!(counts(&s, &[])["in_progress"], 0);
    eprintln!(
        "concurrent writers: {max} tasks ({} created while running), {} claimed and completed, \
         {edges} edges, in {:.1}s; lines per process: {}",
        max - INITIAL,
        claimed.len(),
        took.as_secs_f64(),
        figures.join(", ")
    );
    assert_integrity(s.db());
}

/// The dependency graph of the tasks (id → task JSON) has no cycle (Kahn's algorithm).
fn assert_acyclic(by_id: &BTreeMap<u32, &Value>) {
    let mut open: BTreeMap<u32, usize> = by_id
        .iter()
        .map(|(&id, t)| (id, util::id_list(&t["blockedBy"]).len()))
        .collect();
    let mut ready: Vec<u32> = open
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(&id, _)| id)
        .collect();
    let mut seen = 0;
    while let Some(id) = ready.pop() {
        seen += 1;
        for b in util::id_list(&by_id[&id]["blocks"]) {
            let n = open.get_mut(&b.parse().unwrap()).unwrap();
            *n -= 1;
            if *n == 0 {
                ready.push(b.parse().unwrap());
            }
        }
    }
    assert_eq!(seen, by_id.len(), "the dependency graph has a cycle");
}

// ---------------------------------------------------------------------------------------
// 3. kill -9 of worker-spawn at random moments

#[test]
fn worker_spawn_killed_at_random_moments_loses_nothing_and_leaves_no_process() {
    const TASKS: u32 = 60;
    const ROUNDS: usize = 8;
    let mut rng = Rng::new("kill -9 worker-spawn", 0x5eed_0003);
    let s = Store::new();
    let batch: String = (1..=TASKS)
        .map(|i| format!("{{\"subject\":\"job {i}\",\"maxAttempts\":20}}\n"))
        .collect();
    s.create_batch("jobs.jsonl", &batch, &[]);

    // Each run notes its pid (it leads its own process group) and its start and end;
    // one task in seven fails its first attempt; odd tasks sleep 10–90 ms, even ones
    // 200–500 ms, so that every round is killed with work left to do.
    let command = r#"
        echo $$ >> pids
        echo "start $TASK_ID $TASK_ATTEMPT" >> runs.log
        if [ $((TASK_ID % 2)) -eq 1 ]; then
            sleep 0.0$((TASK_ID % 9 + 1))
        else
            sleep 0.$((TASK_ID % 4 + 2))
        fi
        if [ "$TASK_ATTEMPT" = 1 ] && [ $((TASK_ID % 7)) -eq 0 ]; then
            echo "end $TASK_ID $TASK_ATTEMPT fail" >> runs.log
            exit 3
        fi
        echo "end $TASK_ID $TASK_ATTEMPT ok" >> runs.log
    "#;
    let pids = || -> Vec<u32> {
        std::fs::read_to_string(s.dir().join("pids"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().expect("a pid"))
            .collect()
    };
    let mut mid_work = 0;
    let mut held_at_kill = 0;
    let mut finished_first = 0;
    for round in 1..=ROUNDS {
        let mut c = s.std_cmd("worker-spawn");
        c.args(["-j", "3", "--no-progress", "--", "sh", "-c", command]);
        let mut w = Bg::spawn("worker-spawn", c);
        std::thread::sleep(Duration::from_millis(rng.range(50, 400)));
        if w.running() {
            w.kill_hard();
            let held = counts(&s, &[])["in_progress"].as_u64().unwrap();
            held_at_kill += held;
            if held > 0 {
                mid_work += 1;
            }
        } else {
            finished_first += 1;
            let r = w.wait();
            assert!(r.code == 0 || r.code == 1, "round {round}: {r:?}");
        }
        // Its guardian kills every command; then the guardian itself ends.
        wait_until(DEADLINE, || live_on_store(s.db()).is_empty());
        for pid in pids() {
            assert!(
                group_gone(pid),
                "round {round}: the group of {pid} survived"
            );
        }
    }

    // One more run, with a command that always succeeds (and logs), finishes everything.
    let r = s
        .exec(
            "worker-spawn",
            [
                "-j",
                "3",
                "--no-progress",
                "--",
                "sh",
                "-c",
                r#"echo $$ >> pids; echo "start $TASK_ID $TASK_ATTEMPT" >> runs.log
                   echo "end $TASK_ID $TASK_ATTEMPT ok" >> runs.log"#,
            ],
        )
        .expect_code(0);
    for line in r.stderr.lines() {
        assert!(
            (line.contains(" lost its worker: its process ")
                && line.ends_with("is gone; it is claimable again"))
                || line.contains(" completed, "),
            "unexpected on stderr: {line}"
        );
    }
    let c = counts(&s, &[]);
    assert_eq!(c["completed"], TASKS, "{c}");
    assert_eq!(c["in_progress"], 0, "{c}");
    wait_until(DEADLINE, || live_on_store(s.db()).is_empty());
    let all_pids = pids();
    for &pid in &all_pids {
        assert!(group_gone(pid), "the group of {pid} survived");
    }

    // What ran, from the commands' own log.
    let log = std::fs::read_to_string(s.dir().join("runs.log")).unwrap_or_default();
    let mut starts: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut ends: BTreeSet<(u32, u32)> = BTreeSet::new();
    for l in log.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let (id, attempt): (u32, u32) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        match f[0] {
            "start" => starts.entry(id).or_default().push(attempt),
            _ => {
                ends.insert((id, attempt));
            }
        }
    }
    let interrupted = starts
        .iter()
        .flat_map(|(&id, a)| a.iter().map(move |&at| (id, at)))
        .filter(|k| !ends.contains(k))
        .count();
    let twice: Vec<u32> = starts
        .iter()
        .filter(|(_, a)| a.len() > 1)
        .map(|(&id, _)| id)
        .collect();
    let twice_by_design = twice.iter().filter(|&&id| id % 7 == 0).count();
    let tasks = s.tasks(&[]);
    // A claim taken back from a dead worker-spawn keeps its attempt (8 kills and one
    // deliberate failure cannot use up 20).
    let most_attempts = tasks.iter().filter_map(|t| t["attempts"].as_u64()).max();
    for t in tasks {
        let id: u32 = t["id"].as_str().unwrap().parse().unwrap();
        // At least once: some run of its command got to the end and succeeded.
        assert!(
            starts[&id]
                .iter()
                .any(|&a| ends.contains(&(id, a)) && log.contains(&format!("end {id} {a} ok"))),
            "task {id} is completed, but no run of it ended well"
        );
        let runs = starts.get(&id).map_or(0, Vec::len) as u64;
        // Every run was a claim, and a claim taken back from a killed worker-spawn keeps
        // its attempt.
        assert!(
            t["attempts"].as_u64().unwrap() >= runs,
            "task {id} ran {runs} times with fewer attempts: {t}"
        );
        assert_eq!(t["exitCode"], 0, "{t}");
    }
    eprintln!(
        "kill -9 worker-spawn: {TASKS} tasks, {ROUNDS} rounds: {} kills ({mid_work} while tasks \
         ran, {held_at_kill} claims held at those moments), {finished_first} runs finished before \
         their kill; {} command runs, {interrupted} cut short by a kill; {} tasks ran more than \
         once ({twice_by_design} of them by the deliberate first-attempt failure); {} command \
         processes checked gone; 0 tasks lost, 0 left in_progress; most attempts of one task: \
         {} (maxAttempts 20)",
        ROUNDS - finished_first,
        starts.values().map(Vec::len).sum::<usize>(),
        twice.len(),
        all_pids.len(),
        most_attempts.unwrap_or(0),
    );
    assert_integrity(s.db());
}

// ---------------------------------------------------------------------------------------
// 4. kill -9 in the middle of a big batch create

#[test]
fn a_batch_create_killed_midway_is_all_or_nothing() {
    const LINES: u64 = 200_000;
    const KILLS: u64 = 4;
    let mut rng = Rng::new("kill -9 task-create", 0x5eed_0004);
    let s = Store::new();
    s.create("before", &[]);
    let batch: String = (1..=LINES)
        .map(|i| format!("{{\"subject\":\"bulk {i}\"}}\n"))
        .collect();
    let file = s.file("bulk.jsonl", batch);

    // Round 0 runs to its end and tells how much CPU a whole run takes on this machine
    // and build; each later round is killed once it has used a random share of that.
    let mut whole_ms = 0;
    let mut outcomes = Vec::new();
    for round in 0..=KILLS {
        let list = format!("bulk{round}");
        let target = match round {
            0 => u64::MAX,
            // Round k kills in [30 (k - 1) %, 30 k %] of a whole run; the last one in
            // [90 %, 110 %], where the commit and the checkpoint on close happen.
            k => {
                let (lo, hi) = if k == KILLS {
                    (90, 110)
                } else {
                    (30 * (k - 1), 30 * k)
                };
                rng.range(whole_ms * lo / 100, whole_ms * hi / 100)
            }
        };
        let mut c = s.std_cmd("task-create");
        c.arg("--from").arg(&file).args(["--list", &list]);
        let mut bg = Bg::spawn("task-create", c);
        let pid = bg.pid();
        // Poll until it has used `target` ms of CPU (or ended by itself).
        let deadline = Instant::now() + DEADLINE * 2;
        let mut used = 0;
        let killed = loop {
            match cpu_ms(pid) {
                Some(ms) if ms >= target => {
                    bg.kill_hard();
                    break true;
                }
                Some(ms) => used = ms,
                None => break false,
            }
            assert!(Instant::now() < deadline, "task-create ran too long");
            std::thread::sleep(Duration::from_millis(1));
        };
        if !killed {
            let r = bg.wait().expect_code(0);
            assert_eq!(r.lines().len() as u64, LINES);
        }
        if round == 0 {
            whole_ms = used.max(10);
        }
        let stored = counts(&s, &["--list", &list])["total"].as_u64().unwrap();
        assert!(
            stored == 0 || stored == LINES,
            "round {round}: {stored} of {LINES} tasks were committed (killed: {killed})"
        );
        if stored == LINES {
            assert_eq!(
                s.ids(&["--list", &list, "-s", "ready", "--limit", "1"]),
                ["1"]
            );
        }
        // The id counter moved with the tasks, or not at all.
        let next = s.create("after", &["--list", &list]);
        assert_eq!(next, (stored + 1).to_string(), "round {round}");
        outcomes.push(match (round, killed) {
            (0, _) => format!("whole run {whole_ms} ms CPU -> {stored}"),
            (_, true) => format!("killed at {target} ms -> {stored}"),
            (_, false) => format!("finished before {target} ms -> {stored}"),
        });
    }
    assert_eq!(s.ids(&[]), ["1"], "other lists are untouched");
    eprintln!(
        "kill -9 task-create --from ({LINES} lines), {KILLS} kills: {}",
        outcomes.join("; ")
    );
    assert_integrity(s.db());
}

// ---------------------------------------------------------------------------------------
// 5. Signals while busy (what tests/spawn.rs and tests/wait.rs do not cover yet)

/// Start `worker-spawn ARGS…` in the background.
fn spawn_bg(s: &Store, args: &[&str]) -> Bg {
    Bg::start(s, "worker-spawn", args)
}

fn read_pids(s: &Store, ids: &[u32], ext: &str) -> Vec<u32> {
    ids.iter()
        .map(|id| procs::read_pid(&s.dir().join(format!("{id}.{ext}"))))
        .collect()
}

/// SIGTERM while three commands ignore SIGTERM (and so do their background children)
/// and three more tasks wait: SIGKILL after --kill-after, exit 143, the running tasks
/// back to pending without using an attempt, the others untouched.
#[test]
fn sigterm_to_worker_spawn_kills_commands_that_ignore_it_after_kill_after() {
    let s = Store::new();
    for i in 1..=6 {
        s.create(&format!("stubborn {i}"), &["--max-attempts", "2"]);
    }
    let w = spawn_bg(
        &s,
        &[
            "-j",
            "3",
            "--kill-after",
            "300ms",
            "--no-progress",
            "--",
            "sh",
            "-c",
            "trap '' TERM; sleep 300 & echo $! > $TASK_ID.bg; echo $$ > $TASK_ID.pid; wait",
        ],
    );
    let leaders = read_pids(&s, &[1, 2, 3], "pid");
    let background = read_pids(&s, &[1, 2, 3], "bg");
    let start = Instant::now();
    w.signal("TERM");
    let r = w.wait().expect_code(143);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "it did not wait --kill-after before SIGKILL"
    );
    for pid in leaders {
        wait_until(DEADLINE, || group_gone(pid));
    }
    for pid in background {
        wait_until(DEADLINE, || procs::gone(pid));
    }
    assert!(
        r.stderr
            .starts_with("worker-spawn: 0 completed, 0 failed, 0 retried in "),
        "only the summary on stderr: {}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    for t in s.tasks(&[]) {
        assert_eq!(t["status"], "pending", "{t}");
        assert_eq!(t["attempts"], 0, "{t}");
        assert_eq!(t["owner"], Value::Null, "{t}");
    }
}

/// A second SIGINT ends worker-spawn at once, even while its commands ignore the first
/// one's SIGTERM and --kill-after is long; its guardian kills the commands, and the
/// next run takes their tasks back at once.
#[test]
fn a_second_sigint_ends_worker_spawn_at_once_and_nothing_is_lost() {
    let s = Store::new();
    // Two attempts each: the run killed at once uses up the first of the two it holds.
    for i in 1..=3 {
        s.create(&format!("t{i}"), &["--max-attempts", "2"]);
    }
    let mut w = spawn_bg(
        &s,
        &[
            "-j",
            "2",
            "--kill-after",
            "60s",
            "--no-progress",
            "--",
            "sh",
            "-c",
            "trap 'echo $TASK_ID >> got_term' TERM; echo $$ > $TASK_ID.pid; \
             while :; do sleep 300 & wait; done",
        ],
    );
    w.wait_for_handlers();
    let pids = read_pids(&s, &[1, 2], "pid");
    w.signal("INT");
    // Both commands got the first SIGINT's SIGTERM (and shrugged it off).
    wait_until(DEADLINE, || {
        std::fs::read_to_string(s.dir().join("got_term"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    });
    w.signal("INT");
    w.wait_timeout(Duration::from_secs(10)).expect_code(130);
    for pid in pids {
        wait_until(DEADLINE, || group_gone(pid));
    }
    wait_until(DEADLINE, || live_on_store(s.db()).is_empty());
    let r = s
        .exec("worker-spawn", ["--no-progress", "--", "true"])
        .expect_code(0);
    assert_eq!(
        r.stderr.matches("is gone; it is claimable again").count(),
        2,
        "{}",
        r.stderr
    );
    assert_eq!(counts(&s, &[])["completed"], 3);
}

/// task-wait stopped by SIGINT or SIGTERM while other processes keep writing to the
/// store: 130 / 143, promptly, and the writers never see an error.
#[test]
fn task_wait_stops_on_signals_while_the_store_is_busy() {
    let s = Store::new();
    s.create("never finishes", &[]);
    s.create("edited all the time", &[]);
    let writer = s.sh_cmd(
        r#"i=0; while [ ! -e stop ]; do i=$((i+1)); task-update 2 -m "n=$i" || exit 9; done"#,
    );
    let writer = Bg::spawn("writer", writer);
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let mut c = s.std_cmd("task-wait");
        c.args(["1", "--no-progress"]);
        let mut w = Bg::spawn("task-wait", c);
        w.wait_for_handlers();
        w.signal(sig);
        w.wait().expect_code(code);
    }
    std::fs::write(s.dir().join("stop"), b"").unwrap();
    let r = writer.wait();
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(s.json("1")["status"], "pending");
}

// ---------------------------------------------------------------------------------------
// 6. Lease expiry (tests/update.rs covers the old holder's late completion while the new
//    holder still has the task; not a new holder that gave it back)

/// A shell worker claims with a 300 ms lease and vanishes. worker-spawn takes the task
/// over once the lease has run out (attempt 2); its command fails with attempts left,
/// so the task goes back to pending, unowned. The old holder's late completion must
/// still be refused (exit 4, nothing changed): else a stale result would stand and the
/// task would never run again. (worker-spawn runs with its default 5 workers and
/// `--max-tasks 1`: it must wait for the lease to run out, not stop at once.)
#[test]
fn a_stale_holder_cannot_finish_a_task_taken_over_and_given_back() {
    let s = Store::new();
    s.create("contested", &["--max-attempts", "3"]);
    let r = s.sh("task-update --claim --owner old --lease 300ms");
    assert_eq!((r.code, r.stdout.as_str()), (0, "1\n"), "{r:?}");
    let r = s
        .exec(
            "worker-spawn",
            [
                "--no-progress",
                "--max-tasks",
                "1",
                "--",
                "sh",
                "-c",
                "exit 1",
            ],
        )
        .expect_code(0);
    assert!(r.stderr.contains("1 retried"), "{}", r.stderr);
    let t = s.json("1");
    assert_eq!(
        (&t["status"], &t["owner"], &t["attempts"]),
        (&"pending".into(), &Value::Null, &2.into()),
        "{t}"
    );
    let before = s.snapshot();
    for status in ["completed", "failed"] {
        let r = s.exec(
            "task-update",
            ["1", "-s", status, "--owner", "old", "--result", "stale"],
        );
        assert_failure(&r, "task-update", 4, &["#1", "old"]);
        assert_eq!(s.snapshot(), before, "the stale holder changed the task");
    }
    // The task runs again.
    assert_eq!(s.ok("task-update", ["--claim", "--owner", "new"]), "1\n");
    assert_eq!(s.json("1")["attempts"], 3);
}

// ---------------------------------------------------------------------------------------
// 7. Store trouble: read-only, folder not writable, full disk, file-size limit

/// The commands that write, each of which must refuse a store it cannot write.
const WRITERS: &[(&str, &[&str])] = &[
    ("task-create", &["new task"]),
    ("task-update", &["1", "-s", "completed"]),
    ("task-update", &["--claim", "--owner", "w1"]),
    ("worker-spawn", &["--no-progress", "--", "true"]),
];

/// The commands that only read.
const READERS: &[(&str, &[&str])] = &[("task-list", &[]), ("task-wait", &["--timeout", "1s"])];

/// `bin args` fails with exit 5, a message naming what is wrong (`needles`), stated
/// once, and nothing on stdout.
#[track_caller]
fn refused(s: &Store, bin: &str, args: &[&str], needles: &[&str]) {
    let r = s.exec(bin, args);
    assert_failure(&r, bin, 5, needles);
    let diagnostics: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !(bin == "worker-spawn" && l.contains(" completed, ")))
        .collect();
    assert_eq!(
        diagnostics.len(),
        1,
        "`{bin} {}` should say it once:\n{}",
        args.join(" "),
        r.stderr
    );
}

/// A store with a little in it, in its own folder `src` (so that the folder can be made
/// read-only on its own), left in the clean resting state.
fn small_store() -> Store {
    let s = Store::new();
    let src = s.dir().join("src");
    let s = s.with_db(src.join("tasks.db"));
    s.create("one", &[]);
    s.create("two", &["-b", "1"]);
    s.create("three", &["-m", "agent=x"]);
    s.ok("task-update", ["--claim", "--owner", "w0"]);
    settle(&s);
    s
}

/// Bring the store to its clean resting state without changing what it holds: a
/// writer under TASK_SYNC=full (a claim in a list that does not exist: nothing to claim,
/// nothing written) checkpoints on close and removes `-wal` and `-shm`; readers, and
/// writers under the default TASK_SYNC=normal, leave them.
fn settle(s: &Store) {
    let r = s.exec_with(
        "task-update",
        ["--claim", "--owner", "settle", "--list", "zz-none"],
        &[("TASK_SYNC", "full")],
        None,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        side_files(s.db()),
        Vec::<String>::new(),
        "a writer left side files"
    );
}

/// How the read-only store of [`a_read_only_store_is_refused_and_left_as_it_was`] was
/// made.
enum ReadOnly {
    /// A read-only bind mount of its folder: the whole store on a read-only file system.
    Mount(#[allow(dead_code)] Mount),
    /// `chattr +i` on the database file.
    Immutable(#[allow(dead_code)] Immutable),
    /// Byte 18 of the header (the file format's write version) above 2: SQLite itself
    /// opens such a file read-only. Works anywhere, without privileges.
    Header,
}

#[test]
fn a_read_only_store_is_refused_and_left_as_it_was() {
    if util::sqlite_only("a read-only store file") {
        return;
    }
    let s = small_store();
    let src = s.db().parent().unwrap().to_path_buf();
    let view = s.dir().join("view");
    let before = s.snapshot();
    let listed = s.ok("task-list", Vec::<&str>::new());
    settle(&s);
    let (ro, how) = match Mount::read_only_bind(&src, &view) {
        Ok(m) => (
            Store::new().with_db(view.join("tasks.db")),
            ReadOnly::Mount(m),
        ),
        Err(why) => {
            eprintln!("read-only store: no read-only bind mount here ({why}); trying chattr +i");
            match Immutable::set(s.db()) {
                Ok(g) => (Store::new().with_db(s.db()), ReadOnly::Immutable(g)),
                Err(why) => {
                    eprintln!(
                        "read-only store: no chattr +i here either ({why}); marking the \
                         store read-only in its SQLite header instead"
                    );
                    set_write_version(s.db(), 3);
                    (Store::new().with_db(s.db()), ReadOnly::Header)
                }
            }
        }
    };
    match &how {
        ReadOnly::Mount(_) => {
            eprintln!("read-only store: a read-only bind mount of its folder");
            // Clean, with no -wal or -shm: SQLite cannot even read a WAL store then.
            for (bin, args) in WRITERS.iter().chain(READERS) {
                refused(&ro, bin, args, &["read-only", "tasks.db"]);
            }
            // With -wal and -shm left by a reader, reading works; writing does not.
            drop(how);
            s.ok("task-list", Vec::<&str>::new());
            assert_eq!(side_files(s.db()), ["tasks.db-shm", "tasks.db-wal"]);
            let _m = Mount::read_only_bind(&src, &view).expect("mounted before");
            assert_eq!(ro.ok("task-list", Vec::<&str>::new()), listed);
            for (bin, args) in WRITERS {
                refused(&ro, bin, args, &["read-only"]);
            }
        }
        ReadOnly::Immutable(_) | ReadOnly::Header => {
            eprintln!(
                "read-only store: {}",
                match how {
                    ReadOnly::Header => "write version 3 in its header",
                    _ => "chattr +i on the database file",
                }
            );
            assert_eq!(ro.ok("task-list", Vec::<&str>::new()), listed);
            for (bin, args) in WRITERS {
                refused(&ro, bin, args, &["read-only"]);
            }
            if matches!(how, ReadOnly::Header) {
                set_write_version(s.db(), 2);
            }
            drop(how);
        }
    }
    assert_eq!(s.snapshot(), before, "the read-only store changed");
    assert_integrity(s.db());
}

/// Set the file format write version (byte 18 of the header) of a store at rest.
fn set_write_version(db: &Path, v: u8) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    f.seek(SeekFrom::Start(18)).unwrap();
    f.write_all(&[v]).unwrap();
}

#[test]
fn a_store_whose_folder_is_not_writable_is_refused_and_left_as_it_was() {
    if util::sqlite_only("the store file's folder") {
        return;
    }
    let s = small_store();
    let src = s.db().parent().unwrap().to_path_buf();
    let before = s.snapshot();
    settle(&s);
    match Immutable::set(&src) {
        Ok(guard) => {
            eprintln!("folder not writable: chattr +i on the folder");
            // SQLite must create tasks.db-wal and tasks.db-shm next to the store.
            for (bin, args) in WRITERS.iter().chain(READERS) {
                refused(&s, bin, args, &["src", "not writable", "-wal"]);
            }
            drop(guard);
        }
        Err(why) => match as_nobody(&s, &src) {
            Ok(()) => eprintln!(
                "folder not writable: no chattr +i here ({why}); ran the commands as \
                 user nobody on a folder of mode 0555 instead"
            ),
            Err(why2) => {
                eprintln!(
                    "folder not writable: SKIPPED, neither chattr +i ({why}) nor running as \
                     user nobody ({why2}) works here; checking only that the store is intact"
                );
                assert_eq!(s.ok("task-list", Vec::<&str>::new()).lines().count(), 3);
            }
        },
    }
    assert_eq!(s.snapshot(), before, "the store changed");
    assert_integrity(s.db());
}

/// The fallback of the test above: the commands run as user nobody (uid 65534), for
/// whom a folder of mode 0555 is not writable. Err when this machine cannot do it.
fn as_nobody(s: &Store, src: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    privileges_forbidden()?;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(s.dir(), 0o755).map_err(|e| e.to_string())?;
    try_run("chown", &[&"65534:65534", &s.db()])?;
    mode(src, 0o555).map_err(|e| e.to_string())?;
    let run = |bin: &str, args: &[&str]| -> Run {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(util::bin(bin))
            .args(args)
            .env_remove("CLAUDE_CODE_TASK_LIST_ID")
            .env_remove("TASK_SYNC")
            .env_remove("XDG_DATA_HOME")
            .env("TASK_DB", s.db())
            .env("NO_COLOR", "1")
            .current_dir(s.dir())
            .stdin(Stdio::null());
        Run::from_output(&c.output().expect("run setpriv"))
    };
    let outcome = (|| {
        // Can nobody run the binaries at all (the build folder may be private)?
        let probe = run("task-list", &["--help"]);
        if probe.code != 0 {
            return Err(format!("setpriv: {}", probe.stderr.trim()));
        }
        for (bin, args) in WRITERS.iter().chain(READERS) {
            let r = run(bin, args);
            assert_failure(&r, bin, 5, &["src", "not writable", "-wal"]);
        }
        Ok(())
    })();
    let _ = mode(src, 0o700);
    let _ = try_run("chown", &[&"0:0", &s.db()]);
    outcome
}

/// A batch of `n` tasks with some text, more than a tiny disk or file-size limit holds.
fn big_batch(s: &Store, n: usize) -> PathBuf {
    let batch: String = (1..=n)
        .map(|i| {
            format!(
                "{{\"subject\":\"filler {i}\",\"description\":\"{}\"}}\n",
                "x".repeat(80)
            )
        })
        .collect();
    s.file("big.jsonl", batch)
}

#[test]
fn a_full_disk_fails_the_batch_with_exit_5_and_nothing_half_written() {
    if util::sqlite_only("a full disk under the store file") {
        return;
    }
    let outer = Store::new();
    let point = outer.dir().join("tiny");
    let _mount = match Mount::tmpfs(&point, "512k") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "full disk: SKIPPED, cannot mount a tmpfs here ({why}); \
                 a_file_size_limit_… makes a write fail the same way"
            );
            return;
        }
    };
    let s = Store::new().with_db(point.join("tasks.db"));
    s.create("one", &["--max-attempts", "2"]);
    s.create("two", &["-b", "1", "--max-attempts", "2"]);
    let before = s.snapshot();
    let file = big_batch(&s, 30_000);
    let r = s.exec("task-create", [Path::new("--from"), &file]);
    assert_failure(&r, "task-create", 5, &["disk is full"]);
    assert_eq!(s.snapshot(), before, "a failed batch left tasks behind");
    assert_integrity(s.db());
    // The store still works, and the id counter did not move.
    assert_eq!(s.create("after", &["--max-attempts", "2"]), "3");
    // A worker-spawn whose results (1 MiB each, the default --max-output) do not fit
    // fails with exit 5; no task is recorded half-way: each stays claimed by a process
    // that is gone, and the next run takes it back.
    let r = s.exec(
        "worker-spawn",
        [
            "--no-progress",
            "--",
            "sh",
            "-c",
            "head -c 3000000 /dev/zero | tr '\\0' x",
        ],
    );
    assert_failure(&r, "worker-spawn", 5, &["disk is full"]);
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains("disk is full"))
            .count(),
        1,
        "said once: {}",
        r.stderr
    );
    assert_integrity(s.db());
    let c = counts(&s, &[]);
    let held = c["in_progress"].as_u64().unwrap();
    assert!(held >= 1 && c["completed"] == 0, "{c}");
    for t in s.tasks(&["-s", "in_progress"]) {
        assert_eq!(t["result"], Value::Null, "half a result was recorded: {t}");
    }
    let r = s
        .exec("worker-spawn", ["--no-progress", "--", "echo", "small"])
        .expect_code(0);
    assert_eq!(
        r.stderr.matches("is gone; it is claimable again").count() as u64,
        held,
        "{}",
        r.stderr
    );
    let c = counts(&s, &[]);
    assert_eq!(c["completed"], 3, "{c}\n{}", r.stderr);
}

#[test]
fn a_file_size_limit_fails_the_batch_with_exit_5_and_nothing_half_written() {
    if util::sqlite_only("a file-size limit on the store file") {
        return;
    }
    let s = Store::new();
    s.create("one", &[]);
    s.create("two", &["-b", "1"]);
    let before = s.snapshot();
    let file = big_batch(&s, 30_000);
    // 1024 blocks: 512 KiB (dash) or 1 MiB (bash as sh); the batch needs several MB.
    let r = s.sh(&format!(
        "ulimit -f 1024 && exec task-create --from '{}'",
        file.display()
    ));
    assert_failure(&r, "task-create", 5, &["file-size limit"]);
    assert_eq!(s.snapshot(), before, "a failed batch left tasks behind");
    assert_integrity(s.db());
    assert_eq!(s.create("after", &[]), "3");
}

/// errors.rs checks a folder, a file that is not a database and a newer schema with
/// task-list, task-create and task-update; here the two long-running binaries.
#[test]
fn task_wait_and_worker_spawn_refuse_a_broken_store_too() {
    if util::sqlite_only("a damaged store file") {
        return;
    }
    let s = Store::new();
    let dir = s.dir().join("store.d");
    std::fs::create_dir(&dir).unwrap();
    let garbage = s.file("garbage.db", vec![0x5a; 8192]);
    let newer = Store::new();
    newer.create("a", &[]);
    let status = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('pragma user_version=99'); c.commit(); c.close()"])
        .arg(newer.db())
        .status()
        .expect("python3");
    assert!(status.success());
    let newer_bytes = std::fs::read(newer.db()).unwrap();
    let cases = [
        (Store::new().with_db(&dir), vec!["store.d", "directory"]),
        (Store::new().with_db(&garbage), vec!["garbage.db", "not a"]),
        (Store::new().with_db(newer.db()), vec!["99", "newer"]),
    ];
    for (store, needles) in &cases {
        for (bin, args) in [
            ("task-wait", &["--timeout", "1s"][..]),
            ("worker-spawn", &["--no-progress", "--", "true"][..]),
        ] {
            let r = store.exec(bin, args);
            assert_failure(&r, bin, 5, needles);
        }
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);
    assert_eq!(std::fs::read(newer.db()).unwrap(), newer_bytes);
}

// ---------------------------------------------------------------------------------------
// Durability without a checkpoint at every call

fn wal_size(s: &Store) -> Option<u64> {
    let mut wal = s.db().as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(std::path::PathBuf::from(wal))
        .ok()
        .map(|m| m.len())
}

/// Under TASK_SYNC=normal no call checkpoints the WAL into the database at close (that
/// costs fsyncs); a writer that finds the WAL past 256 KiB truncates it. So the WAL
/// stays between calls and stays bounded. Under TASK_SYNC=full a writer still
/// checkpoints at close, as before.
#[test]
fn the_wal_stays_between_calls_and_bounded() {
    if util::sqlite_only("the SQLite WAL") {
        return;
    }
    let s = Store::new();
    s.create("first", &[]);
    let r = s.sh("pad=$(printf '%0600d' 0); i=0; while [ $i -lt 400 ]; do \
         task-create \"t $i\" -d \"$pad\" > /dev/null || exit 9; i=$((i+1)); done");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:?}");
    let wal = wal_size(&s).expect("the WAL stays after the last call");
    assert!(wal > 0, "the last writer checkpointed and emptied the WAL");
    // One call adds a few pages; the bound plus one call's worth is the most it can be.
    assert!(wal <= 256 * 1024 + 64 * 1024, "the WAL grew to {wal} bytes");
    assert_eq!(s.ids(&[]).len(), 401);
    assert_integrity(s.db());

    let f = Store::new();
    let r = f.exec_with("task-create", ["x"], &[("TASK_SYNC", "full")], None);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        wal_size(&f).unwrap_or(0),
        0,
        "TASK_SYNC=full checkpoints at close"
    );
}

/// A commit made by a process that is killed right after it — here a worker-spawn that
/// keeps its connection open (`--follow`) and gets kill -9 once its tasks completed, so
/// nothing ever checkpointed or closed — is there for the next reader, whole.
#[test]
fn a_commit_survives_kill_9_of_its_process_right_after_it() {
    let s = Store::new();
    for i in 1..=5 {
        s.create(&format!("job {i}"), &[]);
    }
    let mut c = s.std_cmd("worker-spawn");
    c.args([
        "--follow",
        "-j",
        "2",
        "--no-progress",
        "--",
        "sh",
        "-c",
        "echo result of $TASK_ID",
    ]);
    let mut w = Bg::spawn("worker-spawn", c);
    wait_until(DEADLINE, || s.ids(&["-s", "completed"]).len() == 5);
    w.kill_hard();
    wait_until(DEADLINE, || live_on_store(s.db()).is_empty());
    for t in s.tasks(&[]) {
        assert_eq!(t["status"], "completed", "{t}");
        let id = t["id"].as_str().unwrap();
        assert_eq!(t["result"], format!("result of {id}\n"), "{t}");
    }
    assert_integrity(s.db());
}
