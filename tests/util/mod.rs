//! Shared helpers for the integration tests, in the style of ripgrep's `tests/util.rs`.
//!
//! Every test makes its own [`Store`]: a temporary folder holding one task database.
//! Commands built from it run the real binaries with `TASK_DB` pointing at that
//! database and with every other variable that selects a store or a list removed, so
//! the tests never touch the user's store and never see each other's tasks.
//!
//! With `TASK_TEST_DB=postgres://USER:PASSWORD@HOST:PORT` the same tests run against a
//! PostgreSQL server instead: each [`Store`] is then a fresh database there (created
//! with `psql`, dropped at the end). Tests of what only a SQLite file has (its folder,
//! its mode, `PRAGMA`s) ask [`sqlite_only`] and are skipped, saying so.
//!
//! Use it from a test file with `mod util;`. Not every test file uses every helper.
#![allow(dead_code)]

pub mod browser;
pub mod claude;
pub mod mcp;

use serde_json::Value;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long any polling helper waits before it calls a test failed. Generous: the
/// tests must pass on a slow, loaded machine; a correct program never gets near it.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Environment variables that would select another store, list or sync mode.
const SCRUBBED: &[&str] = &[
    "TASK_DB",
    "CLAUDE_CODE_TASK_LIST_ID",
    "TASK_SYNC",
    "XDG_DATA_HOME",
    "CLAUDE_CONFIG_DIR",
];

/// The path of one of the package's binaries (`task-create`, `task-list`, …).
///
/// Cargo builds every binary of the package before it runs an integration test, and
/// puts them all in one folder, so any binary is found next to `task-create`.
pub fn bin(name: &str) -> PathBuf {
    let create = Path::new(env!("CARGO_BIN_EXE_task-create"));
    if name == "task-create" {
        return create.to_path_buf();
    }
    create.with_file_name(name)
}

/// The folder holding the binaries (put first on `PATH` by [`Store::sh`]).
pub fn bin_dir() -> PathBuf {
    bin("task-create")
        .parent()
        .expect("the binary has a folder")
        .to_path_buf()
}

/// What a finished command showed the user.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (`-1` when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: &Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panic with everything the command printed unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Exit 0 and nothing on stderr; returns stdout.
    pub fn success(self) -> String {
        let r = self.expect_code(0);
        assert_eq!(r.stderr, "", "a successful command printed on stderr");
        r.stdout
    }

    /// The non-empty lines of stdout.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The PostgreSQL server the suite runs against, if any (`TASK_TEST_DB`).
pub fn postgres() -> Option<String> {
    std::env::var("TASK_TEST_DB")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_string())
}

/// True (and says so on stderr) when the suite runs on PostgreSQL, for a test of what
/// only a SQLite file has; such a test returns at once.
pub fn sqlite_only(what: &str) -> bool {
    if postgres().is_some() {
        eprintln!("SKIPPED on PostgreSQL: {what}");
        return true;
    }
    false
}

/// `python3 -c SCRIPT ARGS…` (another SQLite client, as a README user would use):
/// its stdout; a failure fails the test with its stderr.
#[track_caller]
pub fn python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from python3")
}

/// Run SQL on the test server's `postgres` database with `psql`.
pub fn psql(sql: &str) -> String {
    let base = postgres().expect("TASK_TEST_DB is set");
    psql_at(&format!("{base}/postgres"), sql)
}

/// Run SQL on one database with `psql`; its output, unaligned.
pub fn psql_at(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql (is PostgreSQL's client installed?)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A temporary task store. Dropping it deletes the folder (and the test database).
pub struct Store {
    dir: TempDir,
    db: PathBuf,
    /// The database made for this store on the test server.
    pg_name: Option<String>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// A fresh folder; the database file `tasks.db` in it is created by the first command.
    pub fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("parallel-tasks-test-")
            .tempdir()
            .expect("create a temporary folder");
        if let Some(base) = postgres() {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "t{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            );
            psql(&format!("CREATE DATABASE {name}"));
            return Store {
                dir,
                db: PathBuf::from(format!("{base}/{name}")),
                pg_name: Some(name),
            };
        }
        let db = dir.path().join("tasks.db");
        Store {
            dir,
            db,
            pg_name: None,
        }
    }

    /// The temporary folder (for batch files and other fixtures).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database file (or the PostgreSQL URL).
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Where a detached worker-spawn writes its log: beside a SQLite store; for a
    /// PostgreSQL one under `$XDG_STATE_HOME`, which the tests point into the folder.
    pub fn log_dir(&self) -> PathBuf {
        match self.pg_name {
            Some(_) => self.dir().join("parallel-tasks"),
            None => self.dir().to_path_buf(),
        }
    }

    /// Point the store at another path (a directory, a garbage file, a nested path).
    pub fn with_db(mut self, db: impl Into<PathBuf>) -> Store {
        self.db = db.into();
        self
    }

    /// Write a file into the store's folder and return its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, contents).expect("write a fixture file");
        p
    }

    fn scrub(&self, c: &mut std::process::Command) {
        for v in SCRUBBED {
            c.env_remove(v);
        }
        c.env("TASK_DB", &self.db)
            .env("NO_COLOR", "1")
            .env("XDG_STATE_HOME", self.dir())
            .env("CLAUDE_CONFIG_DIR", self.dir().join("claude"));
    }

    /// A command for binary `bin` (e.g. `"task-list"`) on this store.
    pub fn cmd(&self, bin_name: &str) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd(bin_name))
    }

    /// The same as a `std::process::Command`, for processes a test spawns and waits for
    /// itself (concurrency, signals). Stdin is null unless the test sets it.
    pub fn std_cmd(&self, bin_name: &str) -> std::process::Command {
        let mut c = std::process::Command::new(bin(bin_name));
        self.scrub(&mut c);
        c.current_dir(self.dir()).stdin(Stdio::null());
        c
    }

    /// `sh -c SCRIPT` on this store, with the binaries first on `PATH`, so a test can
    /// use pipelines exactly as a user would (`task-list --format ids | task-update - …`).
    pub fn sh_cmd(&self, script: &str) -> std::process::Command {
        self.shell_cmd("sh", script)
    }

    /// Like [`Store::sh_cmd`] with `bash` (for `PIPESTATUS` and `set -o pipefail`).
    pub fn bash_cmd(&self, script: &str) -> std::process::Command {
        self.shell_cmd("bash", script)
    }

    fn shell_cmd(&self, shell: &str, script: &str) -> std::process::Command {
        let mut c = std::process::Command::new(shell);
        self.scrub(&mut c);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir()];
        dirs.extend(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(dirs).expect("a valid PATH"))
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .arg("-c")
            .arg(script);
        c
    }

    /// Run a shell script (see [`Store::sh_cmd`]) to completion.
    pub fn sh(&self, script: &str) -> Run {
        Run::from_output(&self.sh_cmd(script).output().expect("run sh"))
    }

    /// Run a bash script (see [`Store::bash_cmd`]) to completion.
    pub fn bash(&self, script: &str) -> Run {
        Run::from_output(&self.bash_cmd(script).output().expect("run bash"))
    }

    /// Run `bin args…` with empty stdin: `(exit code, stdout, stderr)`.
    pub fn run<I, S>(&self, bin_name: &str, args: I) -> (i32, String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let r = self.exec(bin_name, args);
        (r.code, r.stdout, r.stderr)
    }

    /// Run `bin args…` with empty stdin.
    pub fn exec<I, S>(&self, bin_name: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec_with(bin_name, args, &[], None)
    }

    /// Run `bin args…` with `input` on stdin.
    pub fn exec_stdin<I, S>(&self, bin_name: &str, args: I, input: impl AsRef<[u8]>) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec_with(bin_name, args, &[], Some(input.as_ref()))
    }

    /// Run `bin args…` with extra environment variables and optional stdin.
    pub fn exec_with<I, S>(
        &self,
        bin_name: &str,
        args: I,
        env: &[(&str, &str)],
        input: Option<&[u8]>,
    ) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.std_cmd(bin_name);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let output = match input {
            None => c.output(),
            Some(bytes) => {
                c.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = c.spawn().expect("spawn");
                let mut stdin = child.stdin.take().expect("piped stdin");
                let bytes = bytes.to_vec();
                // A writer thread, so a child that stops reading cannot deadlock the test.
                let writer = std::thread::spawn(move || {
                    let _ = stdin.write_all(&bytes);
                });
                let out = child.wait_with_output();
                writer.join().expect("stdin writer");
                out
            }
        }
        .unwrap_or_else(|e| panic!("cannot run {bin_name}: {e}"));
        Run::from_output(&output)
    }

    /// Run `bin args…`, assert exit 0 with nothing on stderr, and return stdout.
    pub fn ok<I, S>(&self, bin_name: &str, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec(bin_name, args).success()
    }

    /// `task-create SUBJECT ARGS…` that must succeed; returns the new id.
    pub fn create(&self, subject: &str, args: &[&str]) -> String {
        let mut all = vec![subject];
        all.extend_from_slice(args);
        let out = self.ok("task-create", all);
        let id = out.trim().to_string();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "task-create printed {out:?}, not one id"
        );
        id
    }

    /// `task-create --from FILE` with `contents` written to a file named `name`; returns
    /// the new ids.
    pub fn create_batch(&self, name: &str, contents: &str, args: &[&str]) -> Vec<String> {
        let path = self.file(name, contents);
        let mut all = vec!["--from".to_string(), path.display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        self.ok("task-create", all)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The full record of one task: `task-list ID --format json`.
    pub fn json(&self, id: &str) -> Value {
        self.json_in(id, &[])
    }

    /// [`Store::json`] with extra arguments (e.g. `--list NAME`).
    pub fn json_in(&self, id: &str, args: &[&str]) -> Value {
        let mut all = vec![id, "--format", "json"];
        all.extend_from_slice(args);
        let out = self.ok("task-list", all);
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("task-list --format json printed bad JSON ({e}): {out}"));
        let arr = v.as_array().expect("a JSON array");
        assert_eq!(arr.len(), 1, "task-list {id} showed {} tasks", arr.len());
        arr[0].clone()
    }

    /// Every task of the list (`task-list --format json`, plus `args`), parsed.
    /// Like [`Store::ok`], but a list that does not exist yet (nothing made it) may be
    /// said on stderr, as task-list does for it: stdout.
    pub fn ok_or_unknown_list<I, S>(&self, bin: &str, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let r = self.exec(bin, args).expect_code(0);
        assert!(
            r.stderr.is_empty()
                || (r.stderr.contains("does not exist (") && r.stderr.lines().count() == 1),
            "unexpected stderr: {}",
            r.stderr
        );
        r.stdout
    }

    pub fn tasks(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = self.ok_or_unknown_list("task-list", all);
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
            .as_array()
            .expect("a JSON array")
            .clone()
    }

    /// `task-list ARGS… --format ids` as a vector of ids.
    pub fn ids(&self, args: &[&str]) -> Vec<String> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--format", "ids"]);
        self.ok_or_unknown_list("task-list", all)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Everything the store holds, as the binaries show it: `task-list --lists --format
    /// json`, then `task-list --format jsonl` of every list. Equal snapshots before and
    /// after a failed command mean it changed nothing (every write bumps `updatedAt`).
    pub fn snapshot(&self) -> String {
        let lists = self.ok("task-list", ["--lists", "--format", "json"]);
        let mut snap = lists.clone();
        let parsed: Value = serde_json::from_str(&lists).expect("--lists JSON");
        for l in parsed.as_array().expect("an array of lists") {
            let name = l["list"].as_str().expect("a list name");
            snap += &format!("--- list {name}\n");
            snap += &self.ok("task-list", ["--list", name, "--format", "jsonl"]);
        }
        snap
    }
}

/// Poll `cond` until it holds; panic after `timeout` (use [`DEADLINE`]). Never a fixed
/// sleep: it returns as soon as the condition holds, pausing briefly between polls.
#[track_caller]
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for a condition");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Assert that a failed command reported itself the Unix way: exit `code`, nothing on
/// stdout, and stderr starting with `BIN: ` and containing every one of `needles`.
pub fn assert_failure(r: &Run, bin_name: &str, code: i32, needles: &[&str]) {
    assert_eq!(
        r.code, code,
        "expected exit {code}\n--- stdout\n{}--- stderr\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(r.stdout, "", "stdout must stay empty on error");
    let prefix = format!("{bin_name}: ");
    assert!(
        r.stderr.starts_with(&prefix),
        "stderr must start with {prefix:?}: {:?}",
        r.stderr
    );
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "stderr should mention {n:?}: {:?}",
            r.stderr
        );
    }
}

/// A JSON array of id strings as a vector (`blockedBy`, `blocks`).
pub fn id_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("ids are strings").to_string())
        .collect()
}

/// Every binary of the package.
pub const BINARIES: &[&str] = &[
    "task-create",
    "task-list",
    "task-update",
    "task-wait",
    "worker-spawn",
    "task-sync",
    "shell-completions",
    "task-mcp",
];

/// A JSON array printed by a command (`--format json`), its elements.
pub fn parse_json(out: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(out)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
        .as_array()
        .expect("a JSON array")
        .clone()
}

/// `(id, status)` of each task of a JSON array of tasks.
pub fn statuses(v: &[Value]) -> Vec<(String, String)> {
    v.iter()
        .map(|t| {
            (
                t["id"].as_str().expect("id").to_string(),
                t["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// Owned `(id, status)` pairs, to compare with [`statuses`].
pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
