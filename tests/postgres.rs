//! What only a PostgreSQL store has: many hosts on one list, a server that restarts or
//! drops a connection, authentication. These tests run when the suite runs against a
//! server (`TASK_TEST_DB`, see `tests/util`); without one each says it was skipped.
//!
//! Hosts: each "host" is a separate UTS namespace (`unshare -u` + `hostname`), so its
//! processes see their own host name, as on another machine, while sharing the server.
//! That needs root (or user namespaces); without it those tests say so and skip.
//!
//! The tests here run one at a time (a lock), because two of them restart the server or
//! kill its connections.

mod procs;
mod util;

use procs::Bg;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use util::{assert_failure, psql_at, wait_until, Store, DEADLINE};

/// One test at a time: see the header.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The test server's URL, or None (and a note on stderr) when the suite runs on SQLite.
fn server(test: &str) -> Option<String> {
    let url = util::postgres();
    if url.is_none() {
        eprintln!("{test}: SKIPPED, needs a PostgreSQL server (TASK_TEST_DB)");
    }
    url
}

/// Whether this machine lets a test give a process a host name of its own.
fn hosts_possible(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["-u", "sh", "-c", "hostname pt-probe"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("{test}: SKIPPED, `unshare -u` is not allowed here (needs root)");
    }
    ok
}

/// `sh -c SCRIPT` on the store, as if on the machine named `host`. The script's pid is
/// the command's pid (every step `exec`s), so `kill -9` hits what the script `exec`s.
fn on_host(s: &Store, host: &str, script: &str) -> Command {
    let mut c =
        s.sh_cmd(r#"exec unshare -u sh -c 'hostname "$PT_HOST" && exec sh -c "$PT_SCRIPT"'"#);
    c.env("PT_HOST", host).env("PT_SCRIPT", script);
    c
}

/// SQL on the store's own database.
fn sql(s: &Store, q: &str) -> String {
    psql_at(&s.db().to_string_lossy(), q)
}

/// The server's clock, in ms since the epoch (the unit the store keeps times in).
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Workers on two hosts race over one list: every task runs exactly once, and both
/// hosts did some of the work.
#[test]
fn workers_on_two_hosts_run_every_task_once() {
    let _one = serial();
    let test = "workers_on_two_hosts_run_every_task_once";
    if server(test).is_none() || !hosts_possible(test) {
        return;
    }
    let s = Store::new();
    let batch: String = (1..=300)
        .map(|i| format!("{{\"subject\":\"job {i}\"}}\n"))
        .collect();
    s.create_batch("jobs.jsonl", &batch, &[]);
    let run =
        r#"exec worker-spawn -j 4 -- sh -c 'echo "$TASK_ID $(hostname)" >> runs; sleep 0.01'"#;
    let pools: Vec<Bg> = ["host-a", "host-b"]
        .iter()
        .map(|h| Bg::spawn("worker-spawn", on_host(&s, h, run)))
        .collect();
    for p in pools {
        p.wait_timeout(DEADLINE * 3).expect_code(0);
    }
    let runs = std::fs::read_to_string(s.dir().join("runs")).expect("the runs file");
    let mut by_id: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for line in runs.lines() {
        let (id, host) = line.split_once(' ').expect("ID HOST");
        by_id
            .entry(id.parse().expect("an id"))
            .or_default()
            .push(host);
    }
    let twice: Vec<_> = by_id.iter().filter(|(_, h)| h.len() != 1).collect();
    assert!(twice.is_empty(), "tasks not run exactly once: {twice:?}");
    assert_eq!(by_id.len(), 300, "every task ran");
    for host in ["host-a", "host-b"] {
        assert!(
            by_id.values().any(|h| h[0] == host),
            "{host} ran none of the 300 tasks"
        );
    }
    let owners: Vec<String> = s
        .tasks(&["-s", "completed"])
        .iter()
        .map(|t| t["owner"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owners.len(), 300);
    assert!(owners
        .iter()
        .all(|o| o.starts_with("host-a-") || o.starts_with("host-b-")));
}

/// A worker on another host killed with `kill -9`: its task is taken over once its lease
/// runs out, not before (this host cannot see whether that process lives).
#[test]
fn a_dead_worker_on_another_host_is_taken_over_after_its_lease_not_before() {
    let _one = serial();
    let test = "a_dead_worker_on_another_host_…";
    if server(test).is_none() || !hosts_possible(test) {
        return;
    }
    let s = Store::new();
    s.create("long job", &["--max-attempts", "2"]);
    let mut pool = Bg::spawn(
        "worker-spawn",
        on_host(
            &s,
            "host-a",
            "exec worker-spawn -j 1 --lease 3s -- sleep 60",
        ),
    );
    wait_until(DEADLINE, || s.json("1")["status"] == "in_progress");
    assert_eq!(sql(&s, "SELECT holder_host FROM tasks"), "host-a");
    pool.kill_hard();

    // At once, from host-b: nothing to claim; the lease was still running after that.
    let claim = "exec task-update --claim --owner b --format json";
    let first = Bg::spawn("task-update", on_host(&s, "host-b", claim)).wait();
    assert_eq!(
        first.code, 1,
        "claimed too early: {}{}",
        first.stdout, first.stderr
    );
    let lease_until: i64 = sql(&s, "SELECT lease_until FROM tasks").parse().unwrap();
    let now: i64 = sql(&s, &format!("SELECT {NOW_MS}")).parse().unwrap();
    assert!(
        now < lease_until,
        "the lease ran out before the first claim"
    );

    // Then it is taken over, once the lease has run out.
    let mut got = None;
    wait_until(DEADLINE, || {
        let r = Bg::spawn("task-update", on_host(&s, "host-b", claim)).wait();
        match r.code {
            0 => {
                got = Some(r.stdout);
                true
            }
            1 => false,
            _ => panic!("claim failed: {}", r.stderr),
        }
    });
    let t: Value = serde_json::from_str(&got.unwrap()).expect("the claimed task as JSON");
    let t = &t[0];
    assert_eq!(
        (t["id"].as_str(), t["owner"].as_str()),
        (Some("1"), Some("b"))
    );
    assert_eq!(t["attempts"], 2, "the lost run counted");
    let started: i64 = sql(&s, "SELECT started_at FROM tasks").parse().unwrap();
    assert!(
        started >= lease_until,
        "taken over at {started}, lease until {lease_until}"
    );
    assert!(
        t["log"].as_str().unwrap_or("").contains("lease"),
        "the log says why: {t}"
    );
}

/// `--limit agent=1` holds across hosts: 8 shell claimers, 4 on each of two hosts, never
/// have two tasks of one agent in progress at once.
#[test]
fn a_limit_holds_across_hosts() {
    let _one = serial();
    let test = "a_limit_holds_across_hosts";
    if server(test).is_none() || !hosts_possible(test) {
        return;
    }
    let s = Store::new();
    let batch: String = (1..=24)
        .map(|i| {
            let agent = ["a", "b", "c"][i % 3];
            format!("{{\"subject\":\"job {i}\",\"metadata\":{{\"agent\":\"{agent}\"}}}}\n")
        })
        .collect();
    s.create_batch("jobs.jsonl", &batch, &[]);
    // Each claim is logged with the time it was held (after the claim, before the
    // completion), so two holds of one agent that overlap show in the log.
    let worker = r#"
        while :; do
            if c=$(task-update --claim --owner "$(hostname)-$W" --limit agent=1 --format env); then
                eval "$c"
                echo "$TASK_ID start $(date +%s%N)" >> "held.$(hostname).$W"
                sleep 0.05
                echo "$TASK_ID end $(date +%s%N)" >> "held.$(hostname).$W"
                task-update "$TASK_ID" -s completed --token "$TASK_CLAIM_TOKEN" || exit 9
            else
                rc=$?
                [ $rc = 1 ] || exit $rc
                [ -z "$(task-list -s pending,in_progress --format ids)" ] && exit 0
                sleep 0.01
            fi
        done
    "#;
    let workers: Vec<Bg> = (0..8)
        .map(|w| {
            let mut c = on_host(&s, ["host-a", "host-b"][w % 2], worker);
            c.env("W", w.to_string());
            Bg::spawn("sh", c)
        })
        .collect();
    for w in workers {
        w.wait_timeout(DEADLINE * 3).expect_code(0);
    }
    let agent_of: BTreeMap<String, String> = s
        .tasks(&[])
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "completed");
            (
                t["id"].as_str().unwrap().to_string(),
                t["metadata"]["agent"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut holds: BTreeMap<String, Vec<(u128, u128)>> = BTreeMap::new();
    let mut hosts = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(s.dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("held.") else {
            continue;
        };
        hosts.insert(rest.split('.').next().unwrap().to_string());
        let text = std::fs::read_to_string(s.dir().join(&name)).unwrap();
        let mut start = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            let t: u128 = f[2].parse().unwrap();
            if f[1] == "start" {
                start.insert(f[0].to_string(), t);
            } else {
                let agent = agent_of[f[0]].clone();
                holds.entry(agent).or_default().push((start[f[0]], t));
            }
        }
    }
    assert_eq!(hosts.len(), 2, "both hosts claimed: {hosts:?}");
    assert_eq!(holds.values().map(Vec::len).sum::<usize>(), 24);
    for (agent, mut h) in holds {
        h.sort();
        for w in h.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "two tasks of agent {agent} were in progress at once: {w:?}"
            );
        }
    }
}

/// A server restart under a running `task-wait` and `worker-spawn`: both reconnect and
/// finish; the commands running across the restart are not killed; each task ran once.
#[test]
fn task_wait_and_worker_spawn_survive_a_server_restart() {
    let _one = serial();
    let test = "task_wait_and_worker_spawn_survive_a_server_restart";
    if server(test).is_none() {
        return;
    }
    let Some(pgdir) = std::env::var_os("TASK_TEST_PGDIR") else {
        eprintln!("{test}: SKIPPED, needs TASK_TEST_PGDIR (the cluster .ci/pg started)");
        return;
    };
    let s = Store::new();
    for i in 1..=6 {
        s.create(&format!("job {i}"), &[]);
    }
    let mut pool = Bg::start(
        &s,
        "worker-spawn",
        &[
            "-j",
            "3",
            "--",
            "sh",
            "-c",
            "sleep 1; echo $TASK_ID >> runs",
        ],
    );
    let waiter = Bg::start(&s, "task-wait", &["--timeout", "2m"]);
    wait_until(DEADLINE, || s.ids(&["-s", "in_progress"]).len() == 3);

    let data = std::path::Path::new(&pgdir).join("data");
    let log = std::path::Path::new(&pgdir).join("log");
    let restart = Command::new("su")
        .args(["postgres", "-s", "/bin/sh", "-c"])
        .arg(format!(
            "\"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl\" -D '{}' -l '{}' -w -m fast restart",
            data.display(),
            log.display()
        ))
        .output()
        .expect("run pg_ctl");
    assert!(
        restart.status.success(),
        "pg_ctl restart: {}",
        String::from_utf8_lossy(&restart.stderr)
    );
    assert!(
        pool.running(),
        "worker-spawn ended with the server: {}",
        pool.stderr()
    );

    pool.wait_timeout(DEADLINE * 3).expect_code(0);
    let w = waiter.wait_timeout(DEADLINE * 3).expect_code(0);
    assert_eq!(
        w.stdout.matches("[completed]").count(),
        6,
        "task-wait shows the six done: {}",
        w.stdout
    );
    let runs = std::fs::read_to_string(s.dir().join("runs")).unwrap();
    let mut ran: Vec<u32> = runs.lines().map(|l| l.parse().unwrap()).collect();
    ran.sort();
    assert_eq!(ran, (1..=6).collect::<Vec<_>>(), "each task ran once");
    for t in s.tasks(&[]) {
        assert_eq!(
            (t["status"].as_str(), t["attempts"].as_i64()),
            (Some("completed"), Some(1))
        );
    }
}

/// The connection of a 200 000-record batch killed on the server, mid-transaction: the
/// batch is all there or not at all.
#[test]
fn a_batch_whose_connection_is_killed_is_all_or_nothing() {
    let _one = serial();
    let test = "a_batch_whose_connection_is_killed_is_all_or_nothing";
    if server(test).is_none() {
        return;
    }
    const LINES: usize = 200_000;
    let s = Store::new();
    s.create("before", &[]);
    let batch: String = (1..=LINES)
        .map(|i| format!("{{\"subject\":\"bulk {i}\"}}\n"))
        .collect();
    let file = s.file("bulk.jsonl", batch);
    let mut c = s.std_cmd("task-create");
    c.arg("--from").arg(&file).args(["--list", "bulk"]);
    let bg = Bg::spawn("task-create", c);
    // Its transaction has written something: kill that backend.
    let db = s.db().file_name().unwrap().to_string_lossy().to_string();
    let mut killed = String::new();
    wait_until(DEADLINE, || {
        killed = util::psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' \
             AND application_name = 'parallel-tasks' AND backend_xid IS NOT NULL"
        ));
        !killed.is_empty()
    });
    let r = bg.wait_timeout(DEADLINE * 3);
    let stored = s.ids(&["--list", "bulk"]).len();
    eprintln!("killed mid-batch: exit {}, {stored} tasks stored", r.code);
    match r.code {
        // Retried on a new connection from the start: all of it, once.
        0 => assert_eq!(stored, LINES, "exit 0 with {stored} tasks"),
        5 => {
            assert_eq!(stored, 0, "a killed batch left {stored} tasks");
            // "connection closed", or the OS's "Connection reset by peer", by when the
            // kill lands.
            assert_failure(&r, "task-create", 5, &["onnection"]);
        }
        c => panic!("task-create exited {c}: {}", r.stderr),
    }
    assert_eq!(s.ids(&[]).len(), 1, "the other list is untouched");
}

/// A wrong password, a missing database, a server that is not there: exit 5 with a
/// message naming host and database, and never the password, in any output.
#[test]
fn connection_failures_are_exit_5_and_never_show_the_password() {
    let _one = serial();
    let Some(base) = server("connection_failures_…") else {
        return;
    };
    let s = Store::new();
    let rest = base.split_once("://").unwrap().1;
    let (userinfo, hostport) = rest.rsplit_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    let real_pw = userinfo.split_once(':').map(|x| x.1).unwrap_or("");
    let db = s.db().file_name().unwrap().to_string_lossy().to_string();
    let wrong = "Wr0ng-S3cret";
    let cases = [
        (
            format!("postgres://{user}:{wrong}@{hostport}/{db}"),
            "authentication failed",
        ),
        (
            format!("postgres://{user}:{real_pw}@{hostport}/no_such_db"),
            "does not exist",
        ),
        (
            format!("postgres://{user}:{wrong}@127.0.0.1:1/{db}"),
            "cannot connect",
        ),
    ];
    for (url, says) in &cases {
        for (bin, args) in [
            ("task-list", vec![]),
            ("task-create", vec!["x"]),
            ("task-update", vec!["--claim", "--owner", "w"]),
            ("task-wait", vec!["--timeout", "1s"]),
            ("worker-spawn", vec!["--", "true"]),
        ] {
            let mut c = s.std_cmd(bin);
            c.env("TASK_DB", url).args(&args);
            let r = util::Run::from_output(&c.output().unwrap());
            let host = hostport.split(':').next().unwrap();
            assert_failure(&r, bin, 5, &[says]);
            assert!(
                r.stderr.contains(host) || url.contains("127.0.0.1:1"),
                "{}",
                r.stderr
            );
            for pw in [wrong, real_pw] {
                assert!(
                    !r.stderr.contains(pw),
                    "{bin} showed a password: {}",
                    r.stderr
                );
            }
        }
    }
    // The password given by PGPASSWORD is not shown either, nor in --help.
    let mut c = s.std_cmd("task-list");
    c.env("TASK_DB", format!("postgres://{user}@{hostport}/{db}"))
        .env("PGPASSWORD", wrong);
    let r = util::Run::from_output(&c.output().unwrap());
    assert_failure(&r, "task-list", 5, &["authentication failed"]);
    assert!(!r.stderr.contains(wrong));
    let mut c = s.std_cmd("task-list");
    c.env("TASK_DB", &cases[0].0).arg("--help");
    let r = util::Run::from_output(&c.output().unwrap()).expect_code(0);
    assert!(!r.stdout.contains(wrong), "--help shows the password");
    // Nothing was written with the good credentials' store: not even the schema.
    let r = s.exec("task-list", ["--format", "ids"]);
    assert_failure(
        &r,
        "task-list",
        3,
        &["no task store at", "no parallel-tasks schema"],
    );
}

/// `sslmode=require` encrypts (the server shows the connection under `pg_stat_ssl`), a
/// root certificate (`PGSSLROOTCERT`) is checked, and a wrong one refuses the server.
/// Needs a build with the `tls` feature and a server with TLS on (CI has both and sets
/// `TASK_TEST_TLS=1`, which turns a missing piece into a failure).
#[test]
fn sslmode_require_encrypts_and_checks_a_given_root_certificate() {
    let _one = serial();
    let test = "sslmode_require_…";
    if server(test).is_none() {
        return;
    }
    let required = std::env::var_os("TASK_TEST_TLS").is_some();
    let s = Store::new();
    s.create("waited for", &[]);
    let url = format!("{}?sslmode=require", s.db().display());
    let probe = s.exec("task-list", ["--db", url.as_str()]);
    if probe.stderr.contains("no TLS support") || util::psql("SHOW ssl") != "on" {
        assert!(!required, "TASK_TEST_TLS=1 but: {}", probe.stderr);
        eprintln!("{test}: SKIPPED, a build without the tls feature or a server without TLS");
        return;
    }
    assert_eq!(probe.code, 0, "{}", probe.stderr);

    let mut c = s.std_cmd("task-wait");
    c.env("TASK_DB", &url).args(["1", "--timeout", "30s"]);
    let waiter = Bg::spawn("task-wait", c);
    let db = s.db().file_name().unwrap().to_string_lossy().to_string();
    wait_until(DEADLINE, || {
        util::psql(&format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{db}' AND a.application_name = 'parallel-tasks'"
        )) == "t"
    });
    s.ok("task-update", ["1", "-s", "completed"]);
    waiter.wait().expect_code(0);

    let pgdir =
        std::path::PathBuf::from(std::env::var_os("TASK_TEST_PGDIR").expect("TASK_TEST_PGDIR"));
    let mut c = s.std_cmd("task-list");
    c.env("TASK_DB", &url)
        .env("PGSSLROOTCERT", pgdir.join("server.crt"));
    let r = util::Run::from_output(&c.output().unwrap()).expect_code(0);
    assert!(r.stdout.contains("[completed] waited for"), "{}", r.stdout);

    let other = s.dir().join("other");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(other.with_extension("key"))
        .arg("-out")
        .arg(other.with_extension("crt"))
        .output()
        .expect("run openssl");
    assert!(made.status.success());
    let mut c = s.std_cmd("task-list");
    c.env("TASK_DB", &url)
        .env("PGSSLROOTCERT", other.with_extension("crt"));
    let r = util::Run::from_output(&c.output().unwrap());
    assert_failure(&r, "task-list", 5, &["certificate"]);
}
