//! Hostile input, table-driven: every bad flag, value, id, list id and batch file a
//! user (or an agent writing a plan file) can hand the binaries, and text that looks
//! like shell or SQL, which must come back byte for byte and never run.
//!
//! Every bad row checks the Unix contract of `util::assert_failure` (exit code, empty
//! stdout, `BIN: ` prefix, a message naming the problem — and the line, for batches)
//! and that the store is exactly as it was: the fixture holds tasks in two lists, one
//! of them claimed and one completed, so "unchanged" means something.

mod util;

use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use util::{assert_failure, id_list, Run, Store};

// ---------------------------------------------------------------------------------
// The table runner
// ---------------------------------------------------------------------------------

/// What a row feeds the command besides its arguments.
enum Input {
    None,
    Stdin(Vec<u8>),
    /// A file of this name and contents; `{file}` in the arguments stands for its path.
    File(&'static str, Vec<u8>),
    Env(&'static str, String),
}

/// One bad input: `bin args…` (with `input`) must fail with `code` and a message
/// containing every needle, and change nothing.
struct Row {
    bin: &'static str,
    args: Vec<String>,
    input: Input,
    code: i32,
    needles: Vec<String>,
}

fn bad<S: AsRef<str>>(bin: &'static str, args: &[S], code: i32, needles: &[&str]) -> Row {
    Row {
        bin,
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        input: Input::None,
        code,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

/// A bad batch file named `name` for `task-create --from`.
fn batch(name: &'static str, contents: impl AsRef<[u8]>, code: i32, needles: &[&str]) -> Row {
    Row {
        input: Input::File(name, contents.as_ref().to_vec()),
        ..bad("task-create", &["--from", "{file}"], code, needles)
    }
}

impl Row {
    fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Row {
        self.input = Input::Stdin(bytes.as_ref().to_vec());
        self
    }

    /// The same arguments with a file (`{file}` in them is its path).
    fn file(mut self, name: &'static str, contents: impl AsRef<[u8]>) -> Row {
        self.input = Input::File(name, contents.as_ref().to_vec());
        self
    }

    /// More arguments after the row's own.
    fn with_args(mut self, args: &[&str]) -> Row {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    fn env(mut self, var: &'static str, value: impl Into<String>) -> Row {
        self.input = Input::Env(var, value.into());
        self
    }

    fn label(&self) -> String {
        let input = match &self.input {
            Input::None => String::new(),
            Input::Stdin(b) => format!(" <<< {:?}", String::from_utf8_lossy(b)),
            Input::File(name, b) => {
                let text = String::from_utf8_lossy(b);
                let short: String = text.chars().take(160).collect();
                format!(" with {name} = {short:?}")
            }
            Input::Env(k, v) => format!(" with {k}={v:?}"),
        };
        format!("{} {:?}{input}", self.bin, self.args)
    }

    /// Run the row, killing the command if it is still running after
    /// [`util::DEADLINE`]: a wrongly accepted row (a worker-spawn waiting for the
    /// claimed task, a task-wait) must fail the row, not hang the suite.
    fn run(&self, s: &Store, n: usize) -> Run {
        let mut args = self.args.clone();
        let mut c = s.std_cmd(self.bin);
        match &self.input {
            Input::None | Input::Stdin(_) => {}
            Input::Env(k, v) => {
                c.env(k, v);
            }
            Input::File(name, b) => {
                let path = s.file(&format!("row{n}-{name}"), b);
                let path = path.to_str().expect("a UTF-8 temporary path");
                for a in &mut args {
                    *a = a.replace("{file}", path);
                }
            }
        }
        c.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Input::Stdin(_) = self.input {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().expect("spawn");
        let writer = match (&self.input, child.stdin.take()) {
            (Input::Stdin(b), Some(mut stdin)) => {
                let b = b.clone();
                Some(std::thread::spawn(move || {
                    let _ = stdin.write_all(&b);
                }))
            }
            _ => None,
        };
        let read = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = read(Box::new(child.stdout.take().expect("piped stdout")));
        let err = read(Box::new(child.stderr.take().expect("piped stderr")));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if start.elapsed() > util::DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(w) = writer {
            w.join().expect("stdin writer");
        }
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        let Some(status) = status else {
            panic!(
                "still running after {:?}; stderr: {stderr:?}",
                util::DEADLINE
            );
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// Run every row on `s`; report all rows that misbehaved at once. Returns the row count.
fn run_rows(s: &Store, rows: Vec<Row>) -> usize {
    let mut before = s.snapshot();
    let mut failures = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let r = row.run(s, n);
            let needles: Vec<&str> = row.needles.iter().map(String::as_str).collect();
            assert_failure(&r, row.bin, row.code, &needles);
        }));
        if let Err(p) = outcome {
            failures.push(format!("row {n}: {}\n    {}", row.label(), panic_text(p)));
        }
        let after = s.snapshot();
        if after != before {
            failures.push(format!("row {n}: {}\n    changed the store", row.label()));
            before = after;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!("{} rows", rows.len());
    rows.len()
}

/// #1 pending with metadata and key `first`, #2 blocked by #1, #3 claimed by w1, #4
/// completed; one task in list `other`. Commands that wrongly succeed would claim, complete or add
/// something, which the snapshot shows. task-wait rows wait for #4 (completed), so a
/// row that is wrongly accepted returns at once instead of hanging.
fn fixture() -> Store {
    let s = Store::new();
    s.create(
        "existing",
        &["-m", "agent=x", "-d", "keep me", "--key", "first"],
    );
    s.create("waits", &["-b", "1"]);
    let held = s.create("held", &[]);
    s.ok("task-update", ["--claim", &held, "--owner", "w1"]);
    let done = s.create("done", &[]);
    s.ok("task-update", [&done, "-s", "completed", "--result", "ok"]);
    s.create("elsewhere", &["--list", "other"]);
    s
}

// ---------------------------------------------------------------------------------
// 1. Bad input, per kind
// ---------------------------------------------------------------------------------

#[test]
fn bad_flags_and_flag_values() {
    let s = fixture();
    #[rustfmt::skip]
    let rows = vec![
        // Unknown flags (task-create/list/update --bogus are in errors.rs).
        bad("task-wait", &["4", "--bogus"], 2, &["'--bogus'"]),
        bad("worker-spawn", &["--bogus", "--", "true"], 2, &["'--bogus'"]),
        bad("shell-completions", &["bash", "--bogus"], 2, &["'--bogus'"]),
        bad("task-create", &["x", "-Z"], 2, &["'-Z'"]),
        bad("task-list", &["--Format", "json"], 2, &["'--Format'"]),
        bad("task-update", &["1", "--statu", "completed"], 2, &["'--statu'", "--status"]),
        bad("task-list", &["--lists=yes"], 2, &["'yes'", "--lists"]),
        bad("worker-spawn", &["true"], 2, &["'true'"]),
        bad("shell-completions", &["tcsh"], 2, &["'tcsh'", "bash"]),
        bad("shell-completions", &["bash", "zsh"], 2, &["'zsh'"]),
        // A flag given twice.
        bad("task-list", &["--format", "json", "--format", "csv"], 2, &["--format", "multiple times"]),
        bad("task-create", &["--from", "a", "--from", "b"], 2, &["--from", "multiple times"]),
        // Missing values.
        bad("task-create", &["x", "--list"], 2, &["--list"]),
        bad("task-list", &["--db"], 2, &["--db"]),
        bad("task-update", &["1", "-s"], 2, &["--status"]),
        bad("task-update", &["--claim", "--owner"], 2, &["--owner"]),
        bad("task-wait", &["4", "--timeout"], 2, &["--timeout"]),
        bad("worker-spawn", &["-j", "--", "true"], 2, &["--jobs"]),
        bad("worker-spawn", &["--max-output"], 2, &["--max-output"]),
        bad("task-create", &["--from"], 2, &["--from"]),
        bad("task-list", &["--format"], 2, &["--format"]),
        bad("task-create", &["x", "-m"], 2, &["--meta"]),
        bad("shell-completions", &["bash", "--dir"], 2, &["--dir"]),
        bad("shell-completions", &["man"], 2, &["--dir"]),
        bad("worker-spawn", &["-j", "2"], 2, &["COMMAND"]),
        // Flags that do not go together.
        bad("task-create", &["x", "--from", "plan.jsonl"], 2, &["--from", "SUBJECT"]),
        bad("task-create", &["x", "--csv"], 2, &["--csv", "--from"]),
        bad("task-create", &["--from", "p.jsonl", "-d", "x"], 2, &["--description", "--from"]),
        bad("task-create", &["--from", "p.jsonl", "-b", "1"], 2, &["--blocked-by", "--from"]),
        bad("task-create", &["--from", "p.jsonl", "-m", "a=1"], 2, &["--meta", "--from"]),
        bad("task-create", &["--from", "p.jsonl", "--owner", "w"], 2, &["--owner", "--from"]),
        bad("task-create", &["--from", "p.jsonl", "--active-form", "x"], 2, &["--active-form"]),
        bad("task-update", &["3", "--claim", "--release", "--owner", "w1"], 2, &["--claim", "--release"]),
        bad("task-update", &["1", "--delete", "--claim", "--owner", "w"], 2, &["--delete", "--claim"]),
        bad("task-update", &["1", "--delete", "-s", "completed"], 2, &["--delete", "--status"]),
        bad("task-update", &["3", "--delete", "--release"], 2, &["--delete", "--release"]),
        bad("task-update", &["1", "--delete", "--owner", "w"], 2, &["--delete", "--owner"]),
        bad("task-update", &["1", "--delete", "--subject", "x"], 2, &["--delete", "--subject"]),
        bad("task-update", &["1", "--delete", "-m", "a=1"], 2, &["--delete", "--meta"]),
        bad("task-update", &["3", "--delete", "--lease", "5m"], 2, &["--delete", "--lease"]),
        bad("task-update", &["3", "--release", "-s", "pending"], 2, &["--release", "--status"]),
        bad("task-update", &["3", "--release", "--result", "x"], 2, &["--release", "--result"]),
        bad("task-update", &["3", "--release", "-m", "a=1"], 2, &["--release", "--meta"]),
        bad("task-update", &["3", "--release", "--lease", "5m"], 2, &["--release", "--lease"]),
        // --if-status holds for a release too (compare-and-set): #3 is in_progress.
        bad("task-update", &["3", "--release", "--if-status", "completed"], 4, &["#3", "in_progress", "completed"]),
        bad("task-update", &["--claim", "--owner", "w", "--if-status", "pending"], 2, &["--claim", "--if-status"]),
        bad("task-update", &["--claim", "--owner", "w", "--subject", "x"], 2, &["--claim", "--subject"]),
        bad("task-update", &["--claim", "--owner", "w", "--result", "x"], 2, &["--claim", "--result"]),
        bad("task-update", &["--claim", "--owner", "w", "--no-owner"], 2, &["--no-owner"]),
        bad("task-update", &["1", "4", "--claim", "--owner", "w"], 2, &["at most one", "2"]),
        bad("task-update", &["1", "--limit", "a=1", "-s", "completed"], 2, &["--claim"]),
        bad("task-update", &["1", "-d", "-", "--result", "-"], 2, &["--description -", "--result -", "once"]).stdin("x"),
        bad("task-update", &["-", "--result", "-"], 2, &["'-' (ids)", "--result -", "once"]).stdin("1\n"),
        bad("task-list", &["-", "-"], 2, &["once"]).stdin("1\n"),
        bad("task-list", &["--lists", "--waves"], 2, &["--lists", "--waves"]),
        bad("task-list", &["--count", "--lists"], 2, &["--count", "--lists"]),
        bad("task-list", &["--fields", "id", "--format", "json"], 2, &["--fields", "csv"]),
        bad("task-list", &["--format", "csv", "--fields", "id,,subject"], 2, &["''"]),
        bad("task-wait", &["4", "--any", "--count", "2"], 2, &["--any", "--count"]),
        // Numbers.
        bad("task-create", &["x", "-p", "99999999999999999999"], 2, &["--priority", "99999999999999999999"]),
        bad("task-create", &["x", "-p", "1.5"], 2, &["--priority", "'1.5'"]),
        bad("task-update", &["1", "-p", "abc"], 2, &["--priority", "'abc'"]),
        bad("task-create", &["x", "--max-attempts=-1"], 2, &["--max-attempts", "'-1'"]),
        bad("task-create", &["x", "--max-attempts", "x"], 2, &["--max-attempts", "'x'"]),
        bad("task-update", &["1", "--max-attempts", "0"], 2, &["--max-attempts", "'0'"]),
        bad("task-list", &["--limit", "x"], 2, &["--limit", "'x'"]),
        bad("task-list", &["--limit", "1.5"], 2, &["--limit", "'1.5'"]),
        bad("task-list", &["--limit=-1"], 2, &["--limit", "'-1'"]),
        bad("task-list", &["--limit", "99999999999999999999"], 2, &["--limit"]),
        bad("task-wait", &["4", "--count", "0"], 2, &["--count", "'0'"]),
        bad("task-wait", &["4", "--count", "x"], 2, &["--count", "'x'"]),
        bad("task-wait", &["4", "--count=-1"], 2, &["--count", "'-1'"]),
        bad("worker-spawn", &["--max-tasks", "0", "--", "true"], 2, &["--max-tasks", "'0'"]),
        bad("worker-spawn", &["-j", "0", "--", "true"], 2, &["--jobs", "'0'"]),
        bad("worker-spawn", &["-j", "1025", "--", "true"], 2, &["--jobs", "'1025'"]),
        bad("worker-spawn", &["-j", "x", "--", "true"], 2, &["--jobs", "'x'"]),
        bad("worker-spawn", &["--jobs=-1", "--", "true"], 2, &["--jobs", "'-1'"]),
        bad("worker-spawn", &["-j", "", "--", "true"], 2, &["--jobs", "''"]),
        bad("worker-spawn", &["--max-output", "1Q", "--", "true"], 2, &["--max-output", "'1Q'", "size"]),
        bad("worker-spawn", &["--max-output", "", "--", "true"], 2, &["--max-output", "''"]),
        bad("worker-spawn", &["--max-output", "1.5M", "--", "true"], 2, &["'1.5M'"]),
        bad("worker-spawn", &["--max-output=-1", "--", "true"], 2, &["'-1'"]),
        bad("worker-spawn", &["--max-output", "99999999999G", "--", "true"], 2, &["'99999999999G'"]),
        bad("worker-spawn", &["--max-output", "K", "--", "true"], 2, &["'K'"]),
        bad("worker-spawn", &["--max-output", "1 M", "--", "true"], 2, &["'1 M'"]),
        bad("worker-spawn", &["--stdin", "file", "--", "true"], 2, &["'file'", "description"]),
        // Formats.
        bad("task-create", &["x", "--format", "csv"], 2, &["'csv'", "ids"]),
        bad("task-wait", &["4", "--format", "csv"], 2, &["'csv'", "md"]),
        bad("task-update", &["1", "-s", "completed", "--format", "md"], 2, &["'md'"]),
        // Metadata.
        bad("task-create", &["x", "-m", "=x"], 2, &["'=x'", "key is empty"]),
        bad("task-create", &["x", "-m", "k"], 2, &["'k'", "KEY=VALUE"]),
        bad("task-update", &["1", "-m", "=1"], 2, &["'=1'", "key is empty"]),
        bad("task-list", &["-m", "k="], 2, &["'k='", "no value"]),
        bad("task-list", &["-m", "=1"], 2, &["'=1'", "key is empty"]),
        bad("task-list", &["-m", "k"], 2, &["'k'", "KEY=VALUE"]),
        bad("task-update", &["--claim", "--owner", "w", "-m", "k="], 2, &["k=", "no value"]),
        bad("task-update", &["--claim", "--owner", "w", "-m", "=v"], 2, &["'=v'", "key is empty"]),
        bad("worker-spawn", &["-m", "k=", "--", "true"], 2, &["'k='", "no value"]),
        bad("worker-spawn", &["-m", "=v", "--", "true"], 2, &["'=v'", "key is empty"]),
        bad("worker-spawn", &["-m", "k", "--", "true"], 2, &["'k'", "KEY=VALUE"]),
        // --limit KEY=N.
        bad("task-update", &["--claim", "--owner", "w", "--limit", "a=0"], 2, &["'a=0'", "at least 1"]),
        bad("task-update", &["--claim", "--owner", "w", "--limit", "a=x"], 2, &["'a=x'", "at least 1"]),
        bad("task-update", &["--claim", "--owner", "w", "--limit", "=1"], 2, &["'=1'", "KEY=N"]),
        bad("task-update", &["--claim", "--owner", "w", "--limit=a=-1"], 2, &["'a=-1'"]),
        bad("worker-spawn", &["--limit", "a=0", "--", "true"], 2, &["'a=0'", "at least 1"]),
        bad("worker-spawn", &["--limit", "a=x", "--", "true"], 2, &["'a=x'"]),
        bad("worker-spawn", &["--limit", "=1", "--", "true"], 2, &["'=1'", "KEY=N"]),
        bad("worker-spawn", &["--limit", "a=", "--", "true"], 2, &["'a='"]),
        bad("worker-spawn", &["--limit", "a=1.5", "--", "true"], 2, &["'a=1.5'"]),
        bad("worker-spawn", &["--limit", "a=99999999999999999999", "--", "true"], 2, &["'a=99999999999999999999'"]),
        bad("worker-spawn", &["--limit", "a", "--", "true"], 2, &["'a'", "KEY=N"]),
        // Statuses.
        bad("task-list", &["-s", "COMPLETED"], 2, &["'COMPLETED'", "pending"]),
        bad("task-list", &["-s", ""], 2, &["''", "pending"]),
        bad("task-list", &["-s", "ready,"], 2, &["''"]),
        bad("task-list", &["-s", "pending "], 2, &["'pending '"]),
        bad("task-list", &["-s", "in-progress"], 2, &["'in-progress'", "in_progress"]),
        bad("task-update", &["1", "-s", "done"], 2, &["'done'", "cancelled"]),
        bad("task-update", &["1", "-s", "ready"], 2, &["'ready'"]),
        bad("task-update", &["1", "-s", "completed "], 2, &["'completed '"]),
        bad("task-update", &["1", "-s", "In_Progress"], 2, &["'In_Progress'"]),
        bad("task-update", &["1", "-s", "completed", "--if-status", "ready"], 2, &["'ready'"]),
        bad("task-update", &["1", "--delete", "--if-status", "open"], 2, &["'open'"]),
        // Durations, on every flag that takes one.
        bad("task-update", &["--claim", "--owner", "w", "--lease", "5x"], 2, &["'5x'", "duration"]),
        bad("task-update", &["--claim", "--owner", "w", "--lease=-1s"], 2, &["'-1s'", "duration"]),
        bad("task-update", &["--claim", "--owner", "w", "--lease", "nan"], 2, &["'nan'", "duration"]),
        bad("task-update", &["--claim", "--owner", "w", "--lease", "inf"], 2, &["'inf'", "too long"]),
        bad("task-update", &["3", "--lease", ""], 2, &["''", "duration"]),
        // Past 10^10 s, adding a duration to a clock could overflow (was a panic).
        bad("task-update", &["--claim", "--owner", "w", "--lease", "18446744073709551615s"], 2, &["too long"]),
        bad("task-update", &["3", "--lease", "18000000000000ms"], 2, &["too long"]),
        bad("task-wait", &["4", "--timeout", "5x"], 2, &["--timeout", "'5x'"]),
        bad("task-wait", &["4", "--timeout=-1s"], 2, &["--timeout", "'-1s'"]),
        bad("task-wait", &["4", "--timeout", "nan"], 2, &["--timeout", "'nan'"]),
        bad("task-wait", &["4", "--timeout", ""], 2, &["--timeout", "''"]),
        bad("task-wait", &["4", "--timeout", "1h-1m"], 2, &["'1h-1m'"]),
        bad("task-wait", &["4", "--timeout=-0.5"], 2, &["'-0.5'"]),
        bad("task-wait", &["4", "--timeout", "1e10"], 2, &["'1e10'", "too long"]),
        bad("task-wait", &["4", "--timeout", "18446744073709551615s"], 2, &["too long"]),
        bad("worker-spawn", &["--timeout", "5x", "--", "true"], 2, &["--timeout", "'5x'"]),
        bad("worker-spawn", &["--kill-after=-1s", "--", "true"], 2, &["--kill-after", "'-1s'"]),
        bad("worker-spawn", &["--retry-delay", "nan", "--", "true"], 2, &["--retry-delay", "'nan'"]),
        bad("worker-spawn", &["--lease", "", "--", "true"], 2, &["--lease", "''"]),
        bad("worker-spawn", &["--timeout", "18000000000000ms", "--", "true"], 2, &["--timeout", "too long"]),
        bad("worker-spawn", &["--lease", "600000000000000h", "--", "true"], 2, &["--lease", "too long"]),
        bad("worker-spawn", &["--retry-delay", "1000years", "--", "true"], 2, &["--retry-delay", "too long"]),
        // Empty names.
        bad("task-create", &["x", "--owner", ""], 2, &["--owner", "empty"]),
        bad("worker-spawn", &["--owner-prefix", "", "--", "true"], 2, &["--owner-prefix", "empty"]),
        bad("task-update", &["--claim", "--owner", "", "1"], 2, &["--owner", "empty"]),
    ];
    run_rows(&s, rows);
}

/// Of [`BAD_IDS`], those that are names, not shaped like ids (digits, or `#` first):
/// where a reference is taken (`-b`, `--add-blocks`, …) they are keys, and a key no task
/// has is not found (exit 3).
const KEY_SHAPED: &[&str] = &["abc", "-1", "1.5", "3#", "+1", "0x10", "1e3", "１", "٣"];

/// Ids that are not positive integers (with an optional `#`), wherever ids are taken.
const BAD_IDS: &[&str] = &[
    "abc",
    "0",
    "-1",
    "#",
    "1.5",
    "99999999999999999999",
    "9223372036854775808",
    "#0",
    "##1",
    "#-1",
    "3#",
    "+1",
    " 1",
    "1 ",
    "0x10",
    "1e3",
    "１",
    "٣",
    "",
];

#[test]
fn bad_task_ids() {
    let s = fixture();
    let mut rows = Vec::new();
    for &id in BAD_IDS {
        let quoted = format!("'{id}'");
        let q = quoted.as_str();
        // errors.rs has `task-update abc|0|-3|1.5 -s completed`, `task-list abc`,
        // `task-create x -b abc`; these are the other places and forms.
        // As a reference: an unknown key, or a bad id.
        let key = format!("key {q}");
        let (code, ref_needles) = if KEY_SHAPED.contains(&id) {
            (3, vec![key.as_str()])
        } else {
            (2, vec![q])
        };
        if id != "abc" {
            rows.push(bad("task-list", &["--", id], 2, &[q, "task id"]));
            rows.push(bad(
                "task-update",
                &["-s", "completed", "--", id],
                2,
                &[q, "task id"],
            ));
            let mut needles = ref_needles.clone();
            if code == 2 {
                needles.push("--blocked-by");
            }
            rows.push(bad(
                "task-create",
                &["x", &format!("--blocked-by={id}")],
                code,
                &needles,
            ));
        }
        rows.push(bad(
            "task-wait",
            &["--timeout", "1s", "--", id],
            2,
            &[q, "task id"],
        ));
        let mut needles = ref_needles.clone();
        if code == 2 {
            needles.push("--add-blocks");
        }
        rows.push(bad(
            "task-update",
            &["1", &format!("--add-blocks={id}")],
            code,
            &needles,
        ));
        rows.push(bad(
            "task-update",
            &["2", &format!("--remove-blocked-by={id}")],
            code,
            &ref_needles,
        ));
        rows.push(bad(
            "task-update",
            &["--claim", "--owner", "w", "--", id],
            2,
            &[q, "task id"],
        ));
        // On stdin, lines are trimmed and blank ones skipped: only ids bad after that.
        if !id.is_empty() && id == id.trim() {
            let input = format!("4\n{id}\n");
            rows.push(bad("task-update", &["-", "-s", "cancelled"], 2, &[q]).stdin(&input));
            rows.push(bad("task-wait", &["-", "--timeout", "1s"], 2, &[q]).stdin(&input));
            rows.push(bad("task-list", &["-"], 2, &[q]).stdin(&input));
        }
    }
    #[rustfmt::skip]
    rows.extend([
        // A bad id inside a comma-separated list changes nothing.
        bad("task-create", &["x", "-b", "1,,4"], 2, &["''"]),
        bad("task-update", &["2", "--add-blocked-by", "4,#abc"], 2, &["'#abc'"]),
        // So does an unknown key among good ids.
        bad("task-update", &["2", "--add-blocked-by", "4,abc"], 3, &["key 'abc'"]),
        // A leading '-' is a flag to clap unless after `--`.
        bad("task-list", &["-1"], 2, &["'-1'"]),
        bad("task-wait", &["-1"], 2, &["'-1'"]),
        // Ids that parse but do not exist: exit 3, nothing changed.
        bad("task-wait", &["4", "99", "--timeout", "1s"], 3, &["#99", "default"]),
        bad("task-wait", &["2", "--list", "other", "--timeout", "1s"], 3, &["#2", "'other'"]),
        bad("task-list", &["#99"], 3, &["#99"]),
        bad("task-list", &["9223372036854775807"], 3, &["#9223372036854775807"]),
        bad("task-update", &["--claim", "99", "--owner", "w"], 3, &["#99"]),
        bad("task-update", &["-", "-s", "completed"], 3, &["#99"]).stdin("1\n99\n"),
        bad("task-create", &["x", "-b", "#99"], 3, &["#99"]),
    ]);
    run_rows(&s, rows);
}

/// `--key`, `--on-conflict` and references by key. The fixture's #1 has key `first`.
#[test]
fn bad_keys_and_key_conflicts() {
    let s = fixture();
    let new_and_existing =
        "{\"key\":\"new\",\"subject\":\"new\"}\n{\"key\":\"first\",\"subject\":\"again\"}\n";
    #[rustfmt::skip]
    let rows = vec![
        // Bad keys: empty, shaped like an id, control characters, white space at an end.
        bad("task-create", &["x", "--key", ""], 2, &["--key", "key ''", "empty"]),
        bad("task-create", &["x", "--key", "7"], 2, &["--key", "key '7'", "task id"]),
        bad("task-create", &["x", "--key", "#7"], 2, &["--key", "key '#7'"]),
        bad("task-create", &["x", "--key", "#x"], 2, &["--key", "key '#x'"]),
        bad("task-create", &["x", "--key", "0"], 2, &["--key", "key '0'"]),
        bad("task-create", &["x", "--key", "a\nb"], 2, &["--key", "key 'a\\nb'", "control character"]),
        bad("task-create", &["x", "--key", "a\rb"], 2, &["--key", "control character"]),
        bad("task-create", &["x", "--key", "\u{1b}[31m"], 2, &["--key", "control character"]),
        bad("task-create", &["x", "--key", " first"], 2, &["--key", "white space"]),
        bad("task-create", &["x", "--key", "k", "--key", "j"], 2, &["--key", "multiple times"]),
        bad("task-create", &["x", "--key"], 2, &["--key"]),
        // --key is a field of one task; a batch has its own keys.
        bad("task-create", &["--from", "{file}", "--key", "k"], 2, &["--key", "--from"]).file("a.jsonl", "{\"subject\":\"a\"}\n"),
        bad("task-create", &["x", "--on-conflict", "skip"], 2, &["'skip'", "--on-conflict", "existing", "error"]),
        bad("task-create", &["x", "--on-conflict"], 2, &["--on-conflict"]),
        // A key that exists, with --on-conflict error: exit 4 naming the key and the
        // task that has it, nothing created (also the new record of a batch).
        bad("task-create", &["x", "--key", "first", "--on-conflict", "error"], 4, &["key 'first'", "#1", "exists"]),
        batch("a.jsonl", new_and_existing, 4, &["line 2", "key 'first'", "#1"])
            .with_args(&["--on-conflict=error"]),
        // Keys are per list: `first` is not a key of list `other`.
        bad("task-create", &["x", "-b", "first", "--list", "other"], 3, &["key 'first'", "'other'"]),
        bad("task-update", &["1", "--add-blocked-by", "first", "--list", "other"], 3, &["key 'first'", "'other'"]),
        // Unknown keys, wherever a reference is taken.
        bad("task-create", &["x", "-b", "nokey"], 3, &["key 'nokey'", "not found"]),
        bad("task-create", &["x", "-b", "first,nokey"], 3, &["key 'nokey'"]),
        bad("task-update", &["2", "--add-blocked-by", "nokey"], 3, &["key 'nokey'"]),
        bad("task-update", &["2", "--remove-blocked-by", "nokey"], 3, &["key 'nokey'"]),
        bad("task-update", &["2", "--add-blocks", "nokey"], 3, &["key 'nokey'"]),
        bad("task-update", &["2", "--remove-blocks", "nokey"], 3, &["key 'nokey'"]),
        bad("task-update", &["2", "--add-blocked-by", "First"], 3, &["key 'First'"]),
        // Bad keys as references.
        bad("task-update", &["2", "--add-blocked-by", "a\nb"], 2, &["--add-blocked-by", "key 'a\\nb'"]),
        bad("task-update", &["2", "--add-blocks", " first"], 2, &["--add-blocks", "white space"]),
        // A key names a task like its id: no self edge, no cycle (#2 waits for #1).
        bad("task-update", &["1", "--add-blocked-by", "first"], 2, &["#1", "itself"]),
        bad("task-update", &["1", "--add-blocked-by", "2"], 2, &["cycle"]),
    ];
    run_rows(&s, rows);
}

#[test]
fn bad_list_ids() {
    let s = fixture();
    // One character of every class outside [A-Za-z0-9._:@+=-] (errors.rs has '/', ' ',
    // 'ü' and the empty id): whitespace and control characters, shell and SQL
    // metacharacters, other ASCII punctuation, and Unicode letters, digits, symbols,
    // spaces and format characters.
    let forbidden = [
        '\t', '\n', '\r', '\u{1}', '\u{1b}', '\u{7f}', '\\', '"', '\'', '`', '$', ';', '|', '&',
        '*', '?', '!', '#', '%', ',', '~', '^', '(', ')', '[', ']', '{', '}', '<', '>', 'é', 'ß',
        'Ａ', '٣', '🚀', '\u{200b}', '\u{feff}', '\u{a0}',
    ];
    let binaries: [(&str, &[&str]); 5] = [
        ("task-create", &["x"]),
        ("task-list", &[]),
        ("task-update", &["1", "-s", "completed"]),
        ("task-wait", &["4", "--timeout", "1s"]),
        ("worker-spawn", &["-j", "1"]),
    ];
    let mut rows = Vec::new();
    for (n, c) in forbidden.into_iter().enumerate() {
        let named = format!("{c:?}");
        // Two binaries per character, in turn.
        for (bin, args) in [binaries[n % 5], binaries[(n + 2) % 5]] {
            let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            all.push(format!("--list=ok{c}ok"));
            if bin == "worker-spawn" {
                all.extend(["--".into(), "true".into()]);
            }
            rows.push(bad(bin, &all, 2, &[&named, "list id"]));
        }
    }
    // The environment variable is checked the same way.
    for (c, bin, args) in [
        ('\n', "task-wait", &["4", "--timeout", "1s"][..]),
        ('$', "worker-spawn", &["--", "true"]),
        ('🚀', "task-update", &["1", "-s", "completed"]),
    ] {
        let named = format!("{c:?}");
        rows.push(bad(bin, args, 2, &[&named]).env("CLAUDE_CODE_TASK_LIST_ID", format!("a{c}b")));
    }
    // Length: 128 characters at most (errors.rs has 129 'x' on task-list).
    let valid = "a.b:c@d+e=f-g_h";
    let long: String = valid.chars().cycle().take(129).collect();
    let longer: String = valid.chars().cycle().take(4096).collect();
    #[rustfmt::skip]
    rows.extend([
        bad("task-create", &["x", "--list", &long], 2, &["129", "128"]),
        bad("worker-spawn", &["--list", &long, "--", "true"], 2, &["129", "128"]),
        bad("task-wait", &["--list", &longer, "4"], 2, &["4096", "128"]),
        bad("task-update", &["1", "-s", "failed"], 2, &["129"]).env("CLAUDE_CODE_TASK_LIST_ID", long.clone()),
        // A leading '.' (hidden files; '.' and '..' as path parts).
        bad("task-create", &["x", "--list", "."], 2, &["'.'", "start with '.'"]),
        bad("task-update", &["1", "-s", "failed", "--list", ".."], 2, &["'..'", "start with '.'"]),
        bad("task-wait", &["4", "--list", ".hidden"], 2, &["'.hidden'", "start with '.'"]),
        bad("worker-spawn", &["--list", "..a", "--", "true"], 2, &["'..a'", "start with '.'"]),
        bad("task-list", &["--list", ".a.b"], 2, &["'.a.b'", "start with '.'"]),
        // '/' and '..' together: the shape of a path traversal.
        bad("task-create", &["x", "--list", "../../etc"], 2, &["'/'"]),
    ]);
    run_rows(&s, rows);
}

#[test]
fn bad_json_lines_batches() {
    let s = fixture();
    let ok = "{\"subject\":\"fine\"}\n";
    // A record whose `field` has a wrong-typed `value`, on line 2 after a good one.
    let typed =
        |field: &str, value: &str| format!("{ok}{{\"subject\":\"s\",\"{field}\":{value}}}\n");
    #[rustfmt::skip]
    let rows = vec![
        // Malformed and truncated.
        batch("a.jsonl", format!("{ok}{{subject:\"b\"}}\n"), 2, &["line 2", "key must be a string"]),
        batch("a.jsonl", format!("{ok}{ok}{{\"subject\":\"b\",\"descr"), 2, &["line 3", "EOF"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"b"), 2, &["line 2", "EOF"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"b\",\n\"priority\":1}}\n"), 2, &["line 2", "EOF"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\"}} x\n"), 2, &["line 2", "trailing characters"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\"}}{{\"subject\":\"b\"}}\n"), 2, &["line 2", "trailing characters"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\",}}\n"), 2, &["line 2", "trailing comma"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\\x\"}}\n"), 2, &["line 2", "escape"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"\\ud800\"}}\n"), 2, &["line 2", "escape"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\tb\"}}\n"), 2, &["line 2", "control character"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\",\"priority\":1e400}}\n"), 2, &["line 2", "out of range"]),
        // Not an object.
        batch("a.jsonl", format!("{ok}null\n"), 2, &["line 2", "task object"]),
        batch("a.jsonl", format!("{ok}\"Build\"\n"), 2, &["line 2", "task object"]),
        batch("a.jsonl", format!("{ok}5\n"), 2, &["line 2", "task object"]),
        batch("a.jsonl", format!("{ok}true\n"), 2, &["line 2", "task object"]),
        // Wrong types, for every field: the message names the field.
        batch("a.jsonl", typed("key", "7"), 2, &["line 2", "`key`", "invalid type"]),
        batch("a.jsonl", typed("key", "[\"k\"]"), 2, &["line 2", "`key`", "sequence"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":1}}\n"), 2, &["line 2", "`subject`", "integer"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":[\"a\"]}}\n"), 2, &["line 2", "`subject`", "sequence"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":{{\"a\":1}}}}\n"), 2, &["line 2", "`subject`", "map"]),
        batch("a.jsonl", typed("description", "1"), 2, &["line 2", "`description`", "integer"]),
        batch("a.jsonl", typed("description", "true"), 2, &["line 2", "`description`", "boolean"]),
        batch("a.jsonl", typed("activeForm", "[]"), 2, &["line 2", "`activeForm`", "sequence"]),
        batch("a.jsonl", typed("blockedBy", "\"1\""), 2, &["line 2", "`blockedBy`", "sequence"]),
        batch("a.jsonl", typed("blockedBy", "1"), 2, &["line 2", "`blockedBy`", "sequence"]),
        batch("a.jsonl", typed("blockedBy", "{}"), 2, &["line 2", "`blockedBy`", "map"]),
        batch("a.jsonl", typed("blockedBy", "[1.5]"), 2, &["line 2", "`blockedBy`", "task id"]),
        batch("a.jsonl", typed("blockedBy", "[true]"), 2, &["line 2", "`blockedBy`", "task id"]),
        batch("a.jsonl", typed("blockedBy", "[null]"), 2, &["line 2", "`blockedBy`", "task id"]),
        batch("a.jsonl", typed("blockedBy", "[[1]]"), 2, &["line 2", "`blockedBy`", "task id"]),
        batch("a.jsonl", typed("blockedBy", "[{\"id\":1}]"), 2, &["line 2", "`blockedBy`", "task id"]),
        batch("a.jsonl", typed("priority", "\"high\""), 2, &["line 2", "`priority`", "\"high\""]),
        batch("a.jsonl", typed("priority", "1.5"), 2, &["line 2", "`priority`", "1.5"]),
        batch("a.jsonl", typed("priority", "99999999999999999999"), 2, &["line 2", "`priority`"]),
        batch("a.jsonl", typed("priority", "true"), 2, &["line 2", "`priority`", "boolean"]),
        batch("a.jsonl", typed("metadata", "[1]"), 2, &["line 2", "`metadata`", "sequence"]),
        batch("a.jsonl", typed("metadata", "\"a=1\""), 2, &["line 2", "`metadata`", "string"]),
        batch("a.jsonl", typed("metadata", "5"), 2, &["line 2", "`metadata`", "integer"]),
        batch("a.jsonl", typed("owner", "5"), 2, &["line 2", "`owner`", "integer"]),
        batch("a.jsonl", typed("owner", "{}"), 2, &["line 2", "`owner`", "map"]),
        batch("a.jsonl", typed("maxAttempts", "\"2\""), 2, &["line 2", "`maxAttempts`", "string"]),
        batch("a.jsonl", typed("maxAttempts", "2.5"), 2, &["line 2", "`maxAttempts`", "2.5"]),
        batch("a.jsonl", typed("maxAttempts", "9223372036854775808"), 2, &["line 2", "`maxAttempts`"]),
        // Right type, wrong value.
        batch("a.jsonl", typed("maxAttempts", "0"), 2, &["line 2", "maxAttempts", "at least 1"]),
        batch("a.jsonl", typed("maxAttempts", "-1"), 2, &["line 2", "maxAttempts", "-1"]),
        batch("a.jsonl", typed("owner", "\"\""), 2, &["line 2", "owner is empty"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\" \\t\\n \"}}\n"), 2, &["line 2", "subject is empty"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":null}}\n"), 2, &["line 2", "missing field `subject`"]),
        batch("a.jsonl", format!("{ok}{{}}\n"), 2, &["line 2", "missing field `subject`"]),
        // Invalid UTF-8: a stray byte, an overlong '/', an encoded surrogate, a
        // multi-byte character cut off at the end of the file (errors.rs has Latin-1).
        batch("a.jsonl", b"{\"subject\":\"fine\"}\n\n{\"subject\":\"\xff\"}\n".as_slice(), 2, &["line 3", "UTF-8"]),
        batch("a.jsonl", b"{\"subject\":\"fine\"}\n{\"subject\":\"\xc0\xaf\"}\n".as_slice(), 2, &["line 2", "UTF-8"]),
        batch("a.jsonl", b"{\"subject\":\"fine\"}\n{\"subject\":\"\xed\xa0\x80\"}\n".as_slice(), 2, &["line 2", "UTF-8"]),
        batch("a.jsonl", b"{\"subject\":\"fine\"}\n{\"subject\":\"\xe2\x82".as_slice(), 2, &["line 2", "UTF-8"]),
        batch("a.json", b"[\n{\"subject\":\"fine\"},\n{\"subject\":\"\xfe\"}\n]".as_slice(), 2, &["line 3", "UTF-8"]),
        // The same field twice in one object.
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\",\"subject\":\"b\"}}\n"), 2, &["line 2", "duplicate field `subject`"]),
        batch("a.jsonl", format!("{ok}{{\"key\":\"k\",\"subject\":\"a\",\"key\":\"j\"}}\n"), 2, &["line 2", "duplicate field `key`"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\",\"blockedBy\":[],\"blockedBy\":[1]}}\n"), 2, &["line 2", "duplicate field `blockedBy`"]),
        batch("a.jsonl", format!("{ok}{{\"subject\":\"a\",\"metadata\":{{}},\"metadata\":{{}}}}\n"), 2, &["line 2", "duplicate field `metadata`"]),
        // Unknown fields (errors.rs has `bogus`): output-only fields, other spellings.
        batch("a.jsonl", typed("id", "\"9\""), 2, &["line 2", "unknown field `id`"]),
        batch("a.jsonl", typed("status", "\"completed\""), 2, &["line 2", "unknown field `status`"]),
        batch("a.jsonl", typed("result", "\"x\""), 2, &["line 2", "unknown field `result`"]),
        batch("a.jsonl", typed("blocked_by", "[1]"), 2, &["line 2", "unknown field `blocked_by`"]),
        batch("a.jsonl", format!("{ok}{{\"Subject\":\"a\"}}\n"), 2, &["line 2", "unknown field `Subject`"]),
        batch("a.jsonl", typed("", "1"), 2, &["line 2", "unknown field ``"]),
        // Keys: used twice (both uses are named), or shaped like a task id.
        batch("a.jsonl", format!("{ok}{{\"key\":\"k\",\"subject\":\"a\"}}\n{ok}{{\"key\":\"k\",\"subject\":\"b\"}}\n"), 2, &["line 4", "duplicate key 'k'", "line 2"]),
        batch("a.jsonl", typed("key", "\"7\""), 2, &["line 2", "key '7'"]),
        batch("a.jsonl", typed("key", "\"#7\""), 2, &["line 2", "key '#7'"]),
        batch("a.jsonl", typed("key", "\"\""), 2, &["line 2", "key ''"]),
        // Keys: control characters, white space at an end, a leading '#'.
        batch("a.jsonl", typed("key", "\"a\\nb\""), 2, &["line 2", "key 'a\\nb'", "control character"]),
        batch("a.jsonl", typed("key", "\"a\\tb\""), 2, &["line 2", "key 'a\\tb'", "control character"]),
        batch("a.jsonl", typed("key", "\"k \""), 2, &["line 2", "key 'k '", "white space"]),
        batch("a.jsonl", typed("key", "\"#k\""), 2, &["line 2", "key '#k'", "task id"]),
        batch("a.jsonl", typed("key", "\"0\""), 2, &["line 2", "key '0'", "task id"]),
        // blockedBy to a missing key (neither in the batch nor in the list; keys are
        // case-sensitive), a bad key, a missing id, a non-id.
        batch("a.jsonl", typed("blockedBy", "[\"nokey\"]"), 3, &["line 2", "key 'nokey'", "not found"]),
        batch("a.jsonl", "{\"key\":\"a\",\"subject\":\"a\"}\n{\"subject\":\"b\",\"blockedBy\":[\"A\"]}\n", 3, &["line 2", "'A'"]),
        batch("a.jsonl", typed("blockedBy", "[\"first\",\"x\\ny\"]"), 2, &["line 2", "blockedBy", "key 'x\\ny'"]),
        batch("a.jsonl", typed("blockedBy", "[\"\"]"), 2, &["line 2", "blockedBy", "key ''"]),
        batch("a.jsonl", typed("blockedBy", "[0]"), 2, &["line 2", "'0'"]),
        batch("a.jsonl", typed("blockedBy", "[-1]"), 2, &["line 2", "'-1'"]),
        batch("a.jsonl", typed("blockedBy", "[99]"), 3, &["line 2", "#99"]),
        batch("a.jsonl", typed("blockedBy", "[1,\"#99\"]"), 3, &["line 2", "#99"]),
        // A task of another list is no blocker here.
        bad("task-create", &["--from", "{file}", "--list", "other"], 3, &["line 1", "#4", "'other'"])
            .file("other.jsonl", "{\"subject\":\"a\",\"blockedBy\":[4]}\n"),
        // Cycles: two and three long, among good records, reached from a record that
        // is not on the cycle (the message names one that is, and the cycle).
        batch("a.jsonl", format!("{ok}{{\"key\":\"a\",\"subject\":\"A\",\"blockedBy\":[\"b\"]}}\n{{\"key\":\"b\",\"subject\":\"B\",\"blockedBy\":[\"a\"]}}\n"), 2, &["line 2", "cycle", "'a' waits for 'b' waits for 'a'"]),
        batch("a.jsonl", "{\"key\":\"d\",\"subject\":\"D\",\"blockedBy\":[\"a\"]}\n{\"key\":\"a\",\"subject\":\"A\",\"blockedBy\":[\"c\"]}\n{\"key\":\"b\",\"subject\":\"B\",\"blockedBy\":[\"a\"]}\n{\"key\":\"c\",\"subject\":\"C\",\"blockedBy\":[\"b\",1]}\n", 2, &["line 2", "cycle", "'a' waits for 'c' waits for 'b' waits for 'a'"]),
        batch("a.jsonl", "{\"key\":\"a\",\"subject\":\"A\",\"blockedBy\":[\"a\",\"a\"]}\n", 2, &["line 1", "cycle", "'a' waits for 'a'"]),
        // A JSON array: one bad element rejects all of it.
        batch("a.json", "[\n {\"subject\":\"a\"},\n 5\n]\n", 2, &["line 3", "task object"]),
        batch("a.json", "[\n {\"subject\":\"a\"},\n {\"subject\":\"b\"},\n {\"subject\":\"c\",\n  \"priority\":\"high\"}\n]\n", 2, &["line 5", "`priority`", "\"high\""]),
        batch("a.json", "[{\"subject\":\"a\"},]", 2, &["line 1", "trailing comma"]),
        batch("a.json", "[{\"subject\":\"a\"}", 2, &["line 1", "EOF"]),
        batch("a.json", "[{\"subject\":\"a\"}] [{\"subject\":\"b\"}]", 2, &["line 1", "trailing characters"]),
        batch("a.json", "[[{\"subject\":\"a\"}]]", 2, &["line 1", "sequence", "task object"]),
        // An array of the fields in order is no record (serde would take it as one).
        batch("a.json", "[[\"k\",\"Build\",null,null,null,null,null,null,null]]", 2, &["line 1", "sequence", "task object"]),
        batch("a.json", "[{\"subject\":\"a\"},{\"description\":\"b\"}]", 2, &["record 2", "missing field `subject`"]),
        batch("a.json", "[{\"subject\":\"a\"},{\"subject\":\"\"}]", 2, &["record 2", "subject is empty"]),
        batch("a.json", "[{\"key\":\"a\",\"subject\":\"a\"},\n{\"key\":\"a\",\"subject\":\"b\"}]", 2, &["record 2", "duplicate key 'a'"]),
        batch("a.json", "[{\"key\":\"a\",\"subject\":\"A\",\"blockedBy\":[\"b\"]},{\"key\":\"b\",\"subject\":\"B\",\"blockedBy\":[\"c\"]},{\"key\":\"c\",\"subject\":\"C\",\"blockedBy\":[\"a\"]}]", 2, &["record 1", "cycle"]),
        batch("a.json", "[{\"subject\":\"a\",\"blockedBy\":[\"b\"]}]", 3, &["record 1", "key 'b'"]),
        // The same on stdin.
        bad("task-create", &["--from", "-"], 2, &["line 2", "`priority`"]).stdin(typed("priority", "\"x\"")),
        bad("task-create", &["--from", "-"], 2, &["line 1", "UTF-8"]).stdin(b"{\"subject\":\"\x80\"}\n"),
        // JSON lines read as CSV (--csv): a header without a subject column.
        bad("task-create", &["--from", "{file}", "--csv"], 2, &["line 1"]).file("plan.jsonl", ok),
    ];
    run_rows(&s, rows);
}

#[test]
fn bad_csv_batches() {
    let s = fixture();
    #[rustfmt::skip]
    let rows = vec![
        // Wrong column count, either way.
        batch("a.csv", "subject,priority\na,1\nb,2,3\n", 2, &["line 3", "3 fields"]),
        batch("a.csv", "subject,priority\na,1\nb\n", 2, &["line 3", "1 fields"]),
        batch("a.csv", "subject\na\nb,c\n", 2, &["line 3", "2 fields"]),
        // Unknown, misspelt, padded, empty and duplicate columns; no subject column.
        batch("a.csv", "subject,id\na,1\n", 2, &["line 1", "unknown CSV column 'id'"]),
        batch("a.csv", "subject,status\na,completed\n", 2, &["line 1", "'status'"]),
        batch("a.csv", "Subject\na\n", 2, &["line 1", "'Subject'"]),
        batch("a.csv", "subject, priority\na,1\n", 2, &["line 1", "' priority'"]),
        batch("a.csv", "subject,\na,b\n", 2, &["line 1", "unknown CSV column ''"]),
        batch("a.csv", "subject,subject\na,b\n", 2, &["line 1", "duplicate CSV column 'subject'"]),
        batch("a.csv", "subject,metadata.k,metadata.k\na,1,2\n", 2, &["line 1", "duplicate CSV column 'metadata.k'"]),
        batch("a.csv", "subject,metadata.\na,1\n", 2, &["line 2", "key is empty"]),
        batch("a.csv", "description,priority\nx,1\n", 2, &["line 1", "no 'subject' column"]),
        batch("a.csv", "", 2, &["line 1", "no 'subject' column"]),
        // Empty subjects.
        batch("a.csv", "subject,priority\na,1\n   ,2\n", 2, &["line 3", "subject is empty"]),
        batch("a.csv", "subject,priority\na,1\n\"\",2\n", 2, &["line 3", "subject is empty"]),
        // Wrong types and values.
        batch("a.csv", "subject,priority\na,1.5\n", 2, &["line 2", "priority", "'1.5'"]),
        batch("a.csv", "subject,priority\na,99999999999999999999\n", 2, &["line 2", "priority"]),
        batch("a.csv", "subject,maxAttempts\na,x\n", 2, &["line 2", "maxAttempts", "'x'"]),
        batch("a.csv", "subject,maxAttempts\na,2\nb,-1\n", 2, &["line 3", "maxAttempts", "-1"]),
        batch("a.csv", "subject,metadata\na,\"\"\"x\"\"\"\n", 2, &["line 2", "metadata", "not a JSON object"]),
        batch("a.csv", "subject,metadata\na,{bad\n", 2, &["line 2", "metadata", "{bad"]),
        // A truncated file: the last quoted field is never closed (the csv crate
        // would take the rest of the file as its value).
        batch("a.csv", "subject,description\na,\"one\"\nb,\"two\nthree", 2, &["line 3", "not closed"]),
        batch("a.csv", "subject\n\"a", 2, &["line 2", "not closed"]),
        batch("a.csv", "subject,\"description", 2, &["line 1", "not closed"]),
        // Invalid UTF-8 (errors.rs has a Latin-1 'é' in a record).
        batch("a.csv", b"subject,\xffdescription\na,b\n".as_slice(), 2, &["line 1", "UTF-8"]),
        batch("a.csv", b"subject\na\nb\n\"c\xc3\"\n".as_slice(), 2, &["line 4", "UTF-8"]),
        // Keys and blockers.
        batch("a.csv", "key,subject\nk,a\nj,b\nk,c\n", 2, &["line 4", "duplicate key 'k'", "line 2"]),
        batch("a.csv", "key,subject\n7,a\n", 2, &["line 2", "key '7'"]),
        batch("a.csv", "key,subject\n\"a\nb\",a\n", 2, &["line 2", "key 'a\\nb'"]),
        batch("a.csv", "subject,blockedBy\na,nokey\n", 3, &["line 2", "key 'nokey'"]),
        batch("a.csv", "subject,blockedBy\na,first;nokey\n", 3, &["line 2", "key 'nokey'"]),
        batch("a.csv", "subject,blockedBy\na,\"1,0\"\n", 2, &["line 2", "'0'"]),
        batch("a.csv", "subject,blockedBy\na,1;99\n", 3, &["line 2", "#99"]),
        // Cycles.
        batch("a.csv", "key,subject,blockedBy\na,A,b\nb,B,a\n", 2, &["line 2", "cycle", "'a' waits for 'b' waits for 'a'"]),
        batch("a.csv", "key,subject,blockedBy\nx,X,\na,A,c\nb,B,a\nc,C,\"b 1\"\n", 2, &["line 3", "cycle", "'a' waits for 'c' waits for 'b' waits for 'a'"]),
        batch("a.csv", "key,subject,blockedBy\na,A,a\n", 2, &["line 2", "cycle"]),
        // On stdin with --csv.
        bad("task-create", &["--from", "-", "--csv"], 2, &["line 3", "2 fields"]).stdin("subject\na\nb,c\n"),
    ];
    run_rows(&s, rows);
}

// ---------------------------------------------------------------------------------
// A huge field is not hostile: it goes in and comes back exactly.
// ---------------------------------------------------------------------------------

/// About `len` bytes of text with every kind of character a batch file must carry.
fn big_text(len: usize) -> String {
    let unit = "line \"quoted\" and \\backslash\\, tab\t, comma, ünïcödé 🚀 {id} $(x) '; --\r\n";
    let mut t = String::with_capacity(len + unit.len());
    let mut n = 0u64;
    while t.len() < len {
        t.push_str(&n.to_string());
        t.push(' ');
        t.push_str(unit);
        n += 1;
    }
    t
}

fn csv_quote(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

#[test]
fn a_five_megabyte_description_round_trips() {
    let s = Store::new();
    let big = big_text(5 << 20);
    let line = serde_json::to_string(&json!({"subject": "big", "description": big})).unwrap();
    let ids = s.create_batch("big.jsonl", &(line + "\n"), &[]);
    assert_eq!(ids.len(), 1);
    assert_eq!(s.json(&ids[0])["description"].as_str(), Some(big.as_str()));

    let csv = format!("subject,description\nbig csv,{}\n", csv_quote(&big));
    let ids = s.create_batch("big.csv", &csv, &[]);
    assert_eq!(s.json(&ids[0])["description"].as_str(), Some(big.as_str()));

    // And as the result of a task, through stdin.
    let r = s.exec_stdin("task-update", [ids[0].as_str(), "--result", "-"], &big);
    assert_eq!(r.clone().success(), "");
    assert_eq!(s.json(&ids[0])["result"].as_str(), Some(big.as_str()));
}

// ---------------------------------------------------------------------------------
// 2. Text that looks like shell or SQL is data
// ---------------------------------------------------------------------------------

/// Text that would do damage if anything passed it to a shell or spliced it into SQL,
/// or that trips naive quoting. `dir` is the store's folder: the commands that would
/// create `PWNED` there (also via an absolute path, whatever the working directory).
/// NUL cannot be in an argument or an environment variable, so it is not here.
fn hostile_texts(dir: &Path) -> Vec<String> {
    let pwned = dir.join("PWNED");
    let p = pwned.display();
    vec![
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("x; touch {p} && echo | touch {p} > {p}"),
        "$(touch PWNED)".into(),
        "`touch PWNED`".into(),
        "'; DROP TABLE tasks; --".into(),
        "\"; DROP TABLE tasks; --".into(),
        "1); DELETE FROM tasks; --".into(),
        "' OR '1'='1".into(),
        "\"quotes\" and 'single' and `back`".into(),
        "\\ backslashes \\\\ \\n \\t \\\" \\u0000 \\x41".into(),
        "line one\nline two\r\nline three\n".into(),
        "\ttabs\tand  two  spaces  ".into(),
        "ünïcödé 🚀 中文 עברית \u{200b}zero\u{feff}width \u{202e}rtl".into(),
        "%s %n %d %% %(name)s".into(),
        "{id} {subject} {{description}} }{ {".into(),
        "${IFS}$HOME ~ * ? [a] !! $$".into(),
        "=cmd|' /C calc'!A0,\"a\",b".into(),
        "-rf --help".into(),
        "<script>alert(1)</script> &amp;".into(),
        "\u{1}\u{7f}\u{1b}[31mred\u{1b}[0m".into(),
    ]
}

/// How `-m KEY=VALUE` stores VALUE: JSON when it parses, else the string.
fn meta_value(v: &str) -> Value {
    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()))
}

/// A tiny RFC 4180 reader, to check `--format csv` without the csv crate.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut fresh = true; // at the start of a field
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if fresh => {
                quoted = true;
                fresh = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                fresh = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                fresh = true;
            }
            _ => {
                field.push(c);
                fresh = false;
            }
        }
    }
    assert!(!quoted, "the CSV output ends inside quotes");
    if !fresh || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The CSV output of a list as one map per row, by column name.
fn csv_maps(s: &Store, list: &str) -> Vec<Map<String, Value>> {
    let out = s.ok("task-list", ["--list", list, "--format", "csv"]);
    let rows = parse_csv(&out);
    let header = &rows[0];
    rows[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "a CSV row of the wrong width: {r:?}");
            header
                .iter()
                .cloned()
                .zip(r.iter().map(|c| Value::String(c.clone())))
                .collect()
        })
        .collect()
}

/// No `PWNED` file anywhere a command could have run, and the store's tables intact.
fn assert_never_interpreted(s: &Store, expected_tasks: usize) {
    let mut places = vec![
        s.dir().to_path_buf(),
        std::env::current_dir().unwrap(),
        std::env::temp_dir(),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        places.push(home.into());
    }
    for dir in places {
        for name in ["PWNED", "PWNED2"] {
            assert!(
                !dir.join(name).exists(),
                "{} exists",
                dir.join(name).display()
            );
        }
    }
    let listed = std::fs::read_dir(s.dir()).unwrap();
    for e in listed {
        let name = e.unwrap().file_name();
        assert!(
            !name.to_string_lossy().contains("PWNED"),
            "{name:?} was created"
        );
    }
    // The tables are there and hold every task (task-list reads `tasks` and `lists`).
    let lists: Value =
        serde_json::from_str(&s.ok("task-list", ["--lists", "--format", "json"])).unwrap();
    let total: u64 = lists
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            ["pending", "in_progress", "completed", "failed", "cancelled"]
                .iter()
                .map(|k| l[k].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum();
    assert_eq!(
        total as usize, expected_tasks,
        "tasks went missing: {lists}"
    );
    if let Ok(out) = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(sorted(r[0] for r in c.execute(\"select name from sqlite_master where type='table'\")))")
        .arg(s.db())
        .output()
    {
        if out.status.success() {
            let tables = String::from_utf8_lossy(&out.stdout);
            for t in ["'edges'", "'lists'", "'tasks'"] {
                assert!(tables.contains(t), "table {t} is gone: {tables}");
            }
        }
    }
}

#[test]
fn shell_and_sql_text_round_trips_through_flags_and_updates() {
    let s = Store::new();
    let texts = hostile_texts(s.dir());
    let mut ids = Vec::new();
    for t in &texts {
        // `--flag=VALUE` and `--` so that text starting with '-' is a value.
        let mut args = vec![
            format!("--description={t}"),
            format!("--active-form={t}"),
            format!("--meta=k={t}"),
            format!("--owner={t}"),
        ];
        if !t.contains('=') {
            args.push(format!("--meta={t}=v"));
        }
        args.extend(["--".to_string(), t.clone()]);
        let id = s.ok("task-create", &args).trim().to_string();
        let task = s.json(&id);
        assert_eq!(task["subject"], json!(t), "subject");
        assert_eq!(task["description"], json!(t), "description");
        assert_eq!(task["activeForm"], json!(t), "activeForm");
        assert_eq!(task["owner"], json!(t), "owner");
        assert_eq!(task["metadata"]["k"], meta_value(t), "metadata value");
        if !t.contains('=') {
            assert_eq!(task["metadata"][t.as_str()], json!("v"), "metadata key");
        }
        // Filters take the text as a value, never as a pattern or SQL.
        assert_eq!(
            s.ids(&[&format!("--owner={t}")]),
            vec![id.as_str()],
            "--owner {t:?}"
        );
        assert_eq!(
            s.ids(&[&format!("--meta=k={t}")]),
            vec![id.as_str()],
            "--meta k={t:?}"
        );
        if !t.contains('=') {
            assert_eq!(
                s.ids(&[&format!("--meta={t}=v")]),
                vec![id.as_str()],
                "--meta {t:?}=v"
            );
        }
        ids.push(id);
    }
    // SQL LIKE wildcards in an owner filter match only themselves.
    for o in ["%", "_", "a%", "a_c"] {
        s.create("wild", &[&format!("--owner={o}")]);
    }
    s.create("plain", &["--owner", "abc"]);
    for o in ["%", "_", "a%", "a_c"] {
        let shown = s.tasks(&[&format!("--owner={o}")]);
        assert_eq!(shown.len(), 1, "--owner {o:?} matched {shown:?}");
        assert_eq!(shown[0]["owner"], json!(o));
    }

    // Every output format gives the text back.
    let all = s.tasks(&[]);
    let jsonl: Vec<Value> = s
        .ok("task-list", ["--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jsonl, all, "--format jsonl and json disagree");
    let csv = csv_maps(&s, "default");
    let text = s.ok("task-list", ["--format", "text"]);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(all[i]["subject"], json!(t));
        for f in ["subject", "description", "activeForm", "owner"] {
            assert_eq!(csv[i][f], json!(t), "CSV column {f} of {t:?}");
        }
        let meta: Value = serde_json::from_str(csv[i]["metadata"].as_str().unwrap()).unwrap();
        assert_eq!(meta, all[i]["metadata"], "CSV metadata of {t:?}");
        // Text output is one line a task: newlines become spaces, the rest stays.
        let one_line = t.replace(['\n', '\r'], " ");
        assert!(
            text.contains(&format!("#{} [pending] {one_line} (", i + 1)),
            "text output lacks {one_line:?}:\n{text}"
        );
    }
    assert_eq!(
        text.lines().count(),
        all.len(),
        "text output is one line a task"
    );

    // task-update: every text field, by flag and from stdin.
    for (id, t) in ids.iter().zip(&texts) {
        s.ok(
            "task-update",
            [
                id.as_str(),
                &format!("--subject={t}"),
                &format!("--description={t}{t}"),
                &format!("--active-form={t}"),
                &format!("--result={t}"),
                &format!("--meta=r={t}"),
            ],
        );
        let task = s.json(id);
        assert_eq!(task["description"], json!(format!("{t}{t}")));
        assert_eq!(task["result"], json!(t));
        assert_eq!(task["metadata"]["r"], meta_value(t));
        // `--result -` and `-d -`: stdin exactly, trailing newline included.
        let input = format!("{t}\n{t}");
        s.exec_stdin("task-update", [id.as_str(), "--result", "-"], &input)
            .success();
        assert_eq!(s.json(id)["result"], json!(input));
        s.exec_stdin("task-update", [id.as_str(), "-d", "-"], t)
            .success();
        assert_eq!(s.json(id)["description"], json!(t));
        // And compare-and-set with a hostile owner holds the hostile owner (who must
        // hold the task: claim it first).
        s.ok(
            "task-update",
            [id.as_str(), "--claim", &format!("--owner={t}")],
        );
        s.ok(
            "task-update",
            [id.as_str(), "-s", "completed", &format!("--owner={t}")],
        );
        assert_eq!(s.json(id)["owner"], json!(t));
    }
    assert_never_interpreted(&s, texts.len() + 5);
}

#[test]
fn shell_and_sql_text_round_trips_through_batches() {
    let s = Store::new();
    let texts = hostile_texts(s.dir());
    let record = |t: &str| {
        json!({"subject": t, "description": t, "activeForm": t, "owner": t,
               "metadata": {"k": t, t: "v"}})
    };
    // JSON lines, a JSON array, CSV (quoted here by hand), each into its own list.
    let jsonl: String = texts.iter().map(|t| format!("{}\n", record(t))).collect();
    let array =
        serde_json::to_string_pretty(&texts.iter().map(|t| record(t)).collect::<Vec<_>>()).unwrap();
    let mut csv = String::from("subject,description,activeForm,owner,metadata.k\n");
    for t in &texts {
        let row: Vec<String> = (0..5).map(|_| csv_quote(t)).collect();
        csv += &row.join(",");
        csv += "\r\n";
    }
    s.create_batch("plan.jsonl", &jsonl, &["--list", "jsonl"]);
    s.create_batch("plan.json", &array, &["--list", "array"]);
    s.create_batch("plan.csv", &csv, &["--list", "csv"]);
    // The same CSV on stdin.
    s.exec_stdin(
        "task-create",
        ["--from", "-", "--csv", "--list", "stdin"],
        &csv,
    )
    .success();

    for list in ["jsonl", "array", "csv", "stdin"] {
        let json_out = s.tasks(&["--list", list]);
        let jsonl_out: Vec<Value> = s
            .ok("task-list", ["--list", list, "--format", "jsonl"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(jsonl_out, json_out, "{list}: jsonl and json disagree");
        let csv_out = csv_maps(&s, list);
        assert_eq!(json_out.len(), texts.len(), "{list}: a record went missing");
        for (i, t) in texts.iter().enumerate() {
            for f in ["subject", "description", "activeForm", "owner"] {
                assert_eq!(json_out[i][f], json!(t), "{list}: {f} of {t:?}");
                assert_eq!(csv_out[i][f], json!(t), "{list}: CSV {f} of {t:?}");
            }
            let meta = &json_out[i]["metadata"];
            if list == "jsonl" || list == "array" {
                // JSON metadata is taken as it is, keys included.
                assert_eq!(meta, &json!({"k": t, t.as_str(): "v"}), "{list}: metadata");
            } else {
                // A metadata.KEY cell is a -m value: JSON when it parses.
                assert_eq!(meta["k"], meta_value(t), "{list}: metadata.k of {t:?}");
            }
        }
    }
    assert_never_interpreted(&s, 4 * texts.len());
}

/// Hostile text as a key: kept byte for byte and found again (by `--key`, by `-b`, by a
/// batch's `blockedBy`), unless it holds a control character or white space at an end,
/// which no key may (exit 2, nothing created).
#[test]
fn shell_and_sql_text_as_keys() {
    let s = Store::new();
    let texts = hostile_texts(s.dir());
    let mut made = 0;
    for t in &texts {
        let bad = t.chars().any(char::is_control) || t.trim() != t;
        // `--key=VALUE`: text starting with '-' is a value.
        let key_flag = format!("--key={t}");
        let r = s.exec("task-create", [key_flag.as_str(), "--", "keyed"]);
        if bad {
            assert_failure(&r, "task-create", 2, &["--key", "invalid key"]);
            continue;
        }
        let id = r.success().trim().to_string();
        made += 1;
        assert_eq!(s.json(&id)["key"], json!(t), "key of {t:?}");
        // The same key again: the same task.
        let again = s.ok("task-create", [key_flag.as_str(), "--", "again"]);
        assert_eq!(again.trim(), id, "{t:?}");
        // Found as a blocker: from a batch (exactly), and from -b unless the text holds
        // a comma (-b takes a comma-separated list).
        let line = json!({"subject": "waits", "blockedBy": [t]}).to_string();
        let ids = s.create_batch("refs.jsonl", &format!("{line}\n"), &[]);
        made += 1;
        assert_eq!(
            id_list(&s.json(&ids[0])["blockedBy"]),
            [id.as_str()],
            "{t:?}"
        );
        if !t.contains(',') {
            let blocked = s.create("waits too", &[&format!("--blocked-by={t}")]);
            made += 1;
            assert_eq!(
                id_list(&s.json(&blocked)["blockedBy"]),
                [id.as_str()],
                "{t:?}"
            );
        }
    }
    assert!(made > texts.len(), "too few texts made a valid key");
    // The CSV output gives every key back.
    let keys: Vec<Value> = csv_maps(&s, "default")
        .into_iter()
        .filter_map(|m| m.get("key").cloned())
        .filter(|k| k != "")
        .collect();
    let want: Vec<Value> = texts
        .iter()
        .filter(|t| !t.chars().any(char::is_control) && t.trim() == t.as_str())
        .map(|t| json!(t))
        .collect();
    assert_eq!(keys, want);
    assert_never_interpreted(&s, made);
}

#[test]
fn shell_and_sql_text_reaches_commands_only_as_data() {
    let s = Store::new();
    let texts = hostile_texts(s.dir());
    // One list per way the task reaches the command; the command prints it back and
    // worker-spawn stores that as the result.
    let ways: [(&str, &[&str]); 5] = [
        (
            "env",
            &["--", "sh", "-c", "printf %s \"$TASK_DESCRIPTION\""],
        ),
        (
            "subject-env",
            &["--", "sh", "-c", "printf %s \"$TASK_SUBJECT\""],
        ),
        ("placeholder", &["--", "printf", "%s", "{description}"]),
        ("stdin", &["--stdin", "description", "--", "cat"]),
        ("meta", &["--", "sh", "-c", "printf %s \"$TASK_METADATA\""]),
    ];
    for (list, _) in ways {
        for t in &texts {
            s.ok(
                "task-create",
                [
                    "--list",
                    list,
                    &format!("--description={t}"),
                    &format!("--meta=k={t}"),
                    "--",
                    t,
                ],
            );
        }
    }
    for (list, args) in ways {
        let mut all = vec!["--list", list, "-j", "3", "--no-progress"];
        all.extend_from_slice(args);
        let r = s.exec("worker-spawn", &all).expect_code(0);
        assert_eq!(r.stdout, "", "worker-spawn printed on stdout");
        let tasks = s.tasks(&["--list", list]);
        for (task, t) in tasks.iter().zip(&texts) {
            assert_eq!(task["status"], "completed", "{list}: {task}");
            if list == "meta" {
                let meta: Value = serde_json::from_str(task["result"].as_str().unwrap()).unwrap();
                assert_eq!(meta, json!({"k": meta_value(t)}), "{list}: {t:?}");
            } else {
                assert_eq!(task["result"], json!(t), "{list}: {t:?}");
            }
        }
    }
    // Placeholders are expanded once: a subject holding `{id}` or `{{` stays as it is.
    let id = s.create("{id} {{list}} {subject}", &["--list", "once"]);
    s.exec(
        "worker-spawn",
        [
            "--list",
            "once",
            "--no-progress",
            "--",
            "printf",
            "%s|%s",
            "{subject}",
            "{{{id}}}",
        ],
    )
    .expect_code(0);
    assert_eq!(
        s.json_in(&id, &["--list", "once"])["result"],
        json!(format!("{{id}} {{{{list}}}} {{subject}}|{{{id}}}"))
    );
    assert_never_interpreted(&s, ways.len() * texts.len() + 1);
}
