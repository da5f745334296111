//! `worker-spawn --tmux SESSION`: each task's command in a window of its own, on the
//! window's terminal, with the same result, log, exit code, timeout and cancel as
//! without; completed windows close, failed ones stay until their task runs again.
//!
//! Every test runs its own tmux server (`TMUX_TMPDIR` in its folder, `$TMUX` removed so
//! that a test run from inside tmux does not use that server), killed when the test
//! ends, passed or not. Without tmux each test says `SKIPPED:` and passes.

mod procs;
mod util;

use procs::{group_gone, read_pid, Bg};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use util::{assert_failure, wait_until, Run, Store, DEADLINE};

/// The session every test's pool works in.
const SESSION: &str = "work";

/// A tmux server of the test's own; killed on drop.
struct Server<'a> {
    s: &'a Store,
    tmpdir: PathBuf,
}

impl<'a> Server<'a> {
    /// None (and a `SKIPPED:` line) when there is no tmux to run.
    fn new(s: &'a Store) -> Option<Server<'a>> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: no `tmux` program for worker-spawn --tmux (install tmux)");
            return None;
        }
        let tmpdir = s.dir().join("tmux");
        std::fs::create_dir_all(&tmpdir).expect("create TMUX_TMPDIR");
        Some(Server { s, tmpdir })
    }

    /// Point `c` at this server, as worker-spawn and tmux are run here; a pool's
    /// private folder goes into the test's (`TMPDIR`).
    fn aim(&self, c: &mut Command) {
        c.env_remove("TMUX")
            .env("TMUX_TMPDIR", &self.tmpdir)
            .env("TMPDIR", self.s.dir());
    }

    /// `tmux ARGS…` on this server; its stdout (a failure fails the test).
    fn tmux(&self, args: &[&str]) -> String {
        let r = self.try_tmux(args);
        assert_eq!(r.code, 0, "tmux {args:?}: {}", r.stderr);
        r.stdout
    }

    fn try_tmux(&self, args: &[&str]) -> Run {
        let mut c = Command::new("tmux");
        self.aim(&mut c);
        Run::from_output(&c.args(args).output().expect("run tmux"))
    }

    /// `worker-spawn --tmux work ARGS…` in the background.
    fn pool(&self, args: &[&str]) -> Bg {
        let mut c = self.s.std_cmd("worker-spawn");
        self.aim(&mut c);
        c.args(["--tmux", SESSION, "--no-progress"]).args(args);
        Bg::spawn("worker-spawn", c)
    }

    /// The session's windows: `(id, name)` (none before the pool made the session).
    fn windows(&self) -> Vec<(String, String)> {
        let target = format!("={SESSION}");
        let r = self.try_tmux(&[
            "list-windows",
            "-t",
            &target,
            "-F",
            "#{window_id} #{window_name}",
        ]);
        r.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect()
    }

    /// The ids of the windows named `name`.
    fn named(&self, name: &str) -> Vec<String> {
        self.windows()
            .into_iter()
            .filter(|(_, n)| n == name)
            .map(|(id, _)| id)
            .collect()
    }

    /// Everything window `id` showed, its scrollback included ("" once it is gone).
    fn screen(&self, id: &str) -> String {
        self.try_tmux(&["capture-pane", "-p", "-S", "-", "-t", id])
            .stdout
    }

    /// Wait until one window is named `name` and shows `text`; its id.
    #[track_caller]
    fn wait_for(&self, name: &str, text: &str) -> String {
        let mut id = String::new();
        let mut seen = String::new();
        let start = std::time::Instant::now();
        while start.elapsed() < DEADLINE {
            if let [only] = self.named(name).as_slice() {
                id = only.clone();
                seen = self.screen(&id);
                if seen.contains(text) {
                    return id;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "no window {name:?} showing {text:?}; windows {:?}; window {id:?} showed:\n{seen}",
            self.windows()
        );
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        let _ = self.try_tmux(&["kill-server"]);
    }
}

fn task(s: &Store, id: &str) -> Value {
    s.json(id)
}

/// A command that prints a line, waits for `go-ID` in the store's folder, and prints
/// another.
const WAITS: &str = r#"echo "started $TASK_ID"; [ -t 0 ] && echo "on a terminal";
while [ ! -f "go-$TASK_ID" ]; do sleep 0.05; done; echo "finished $TASK_ID"; echo "note $TASK_ID" >&2"#;

#[test]
fn each_task_runs_in_a_window_of_its_own_which_closes_when_it_completes() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Build", &[]);
    let long = "Write the release notes for every package of the workspace";
    s.create(long, &[]);
    let pool = t.pool(&["-j", "2", "--output-dir", "logs", "--", "sh", "-c", WAITS]);

    // Both run at once, each in its window, named after its task (the subject cut
    // short), showing what it printed so far; its stdin is the window's terminal.
    let short: String = long.chars().take(39).collect::<String>() + "…";
    let build = t.wait_for("#1 Build", "started 1\non a terminal");
    let notes = t.wait_for(&format!("#2 {short}"), "started 2");
    assert_ne!(build, notes);

    std::fs::write(s.dir().join("go-1"), "").unwrap();
    wait_until(DEADLINE, || task(&s, "1")["status"] == "completed");
    let one = task(&s, "1");
    assert_eq!(one["result"], "started 1\non a terminal\nfinished 1\n");
    assert_eq!(one["log"], "note 1\n");
    assert_eq!(one["exitCode"], 0);
    // Its window closes; the other task's window is still at work.
    wait_until(DEADLINE, || t.named("#1 Build").is_empty());
    assert_eq!(t.named(&format!("#2 {short}")), [notes]);

    std::fs::write(s.dir().join("go-2"), "").unwrap();
    let r = pool.wait();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task(&s, "2")["result"],
        "started 2\non a terminal\nfinished 2\n"
    );
    // --output-dir gets the output as without --tmux.
    let logs = s.dir().join("logs/default");
    assert_eq!(
        std::fs::read_to_string(logs.join("2.out")).unwrap(),
        "started 2\non a terminal\nfinished 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("2.err")).unwrap(),
        "note 2\n"
    );
    // Only the window the session was made with is left.
    assert_eq!(t.windows().len(), 1, "{:?}", t.windows());
}

#[test]
fn a_failed_task_keeps_its_window_until_it_runs_again() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    // #1 fails its first attempt, and its second waits for `go-1`; #2 fails for good
    // until `fixed` exists.
    s.create("Flaky", &["--max-attempts", "2"]);
    s.create("Broken", &[]);
    let script = r#"
        if [ "$TASK_ID" = 1 ] && [ "$TASK_ATTEMPT" = 1 ]; then echo "it broke" >&2; exit 3; fi
        if [ "$TASK_ID" = 1 ]; then echo "attempt 2"; while [ ! -f go-1 ]; do sleep 0.05; done; exit 0; fi
        if [ -f fixed ]; then echo mended; exit 0; fi
        echo "partial output"; echo "cannot build #2" >&2; exit 3"#;
    let pool = t.pool(&["-j", "1", "--", "sh", "-c", script]);

    // The retry's window replaces the failed attempt's: one window for #1.
    let second = t.wait_for("#1 Flaky", "attempt 2");
    assert!(
        !t.screen(&second).contains("it broke"),
        "the old window was reused"
    );
    std::fs::write(s.dir().join("go-1"), "").unwrap();
    let r = pool.wait();
    assert_eq!(r.code, 1, "#2 failed: {}", r.stderr);
    assert!(t.named("#1 Flaky").is_empty(), "{:?}", t.windows());

    // #2 failed as without tmux, and its window stays open for reading.
    let two = task(&s, "2");
    assert_eq!(two["status"], "failed");
    assert_eq!(two["exitCode"], 3);
    assert_eq!(two["result"], "partial output\n");
    assert_eq!(two["log"], "cannot build #2\n");
    let windows = t.named("#2 Broken");
    let [failed] = windows.as_slice() else {
        panic!("one window for #2: {:?}", t.windows())
    };
    let shown = t.screen(failed);
    assert!(
        shown.contains("partial output") && shown.contains("cannot build #2"),
        "{shown}"
    );

    // Run again, it closes that window first; completed, its own window closes too.
    s.ok("task-update", ["2", "-s", "pending"]);
    std::fs::write(s.dir().join("fixed"), "").unwrap();
    let r = t.pool(&["-j", "1", "--", "sh", "-c", script]).wait();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&s, "2")["result"], "mended\n");
    assert!(t.named("#2 Broken").is_empty(), "{:?}", t.windows());
    assert_eq!(t.windows().len(), 1, "{:?}", t.windows());
}

#[test]
fn a_timeout_kills_the_command_in_its_window() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Hangs", &[]);
    let started = std::time::Instant::now();
    let pool = t.pool(&[
        "--timeout",
        "1s",
        "--kill-after",
        "1s",
        "--",
        "sh",
        "-c",
        "echo $$ > cmd.pid; echo waiting; trap '' TERM; while :; do sleep 0.1; done",
    ]);
    let pid = read_pid(&s.dir().join("cmd.pid"));
    let r = pool.wait();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(started.elapsed() < DEADLINE);
    let one = task(&s, "1");
    assert_eq!(one["status"], "failed");
    assert_eq!(one["exitCode"], 124);
    assert_eq!(one["result"], "waiting\n");
    let log = one["log"].as_str().unwrap();
    assert!(
        log.contains("timed out after 1s (--timeout)") && log.contains("SIGKILL"),
        "{log}"
    );
    // Nothing of it runs on, and its window stays, as a failed task's does.
    assert!(procs::gone(pid));
    assert_eq!(t.named("#1 Hangs").len(), 1, "{:?}", t.windows());
}

#[test]
fn a_task_cancelled_from_outside_has_its_command_stopped() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Long job", &[]);
    let pool = t.pool(&[
        "--",
        "sh",
        "-c",
        "echo $$ > cmd.pid; echo working; exec sleep 60",
    ]);
    let pid = read_pid(&s.dir().join("cmd.pid"));
    t.wait_for("#1 Long job", "working");
    s.ok("task-update", ["1", "-s", "cancelled"]);
    let r = pool.wait();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("its command was stopped"), "{}", r.stderr);
    wait_until(DEADLINE, || procs::gone(pid));
    let one = task(&s, "1");
    assert_eq!(one["status"], "cancelled");
    assert!(one["exitCode"].is_null(), "{one}");
}

#[test]
fn the_command_reads_what_is_typed_in_its_window() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Ask", &[]);
    let pool = t.pool(&[
        "--",
        "sh",
        "-c",
        "printf 'name? '; read name; echo \"hello $name\"",
    ]);
    let id = t.wait_for("#1 Ask", "name?");
    t.tmux(&["send-keys", "-t", &id, "Ada", "Enter"]);
    let r = pool.wait();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&s, "1")["result"], "name? hello Ada\n");
}

#[test]
fn closing_a_window_ends_its_command_as_a_hangup() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Closed", &[]);
    let pool = t.pool(&[
        "--",
        "sh",
        "-c",
        "echo $$ > cmd.pid; echo started; sleep 60",
    ]);
    let pid = read_pid(&s.dir().join("cmd.pid"));
    let id = t.wait_for("#1 Closed", "started");
    t.tmux(&["kill-window", "-t", &id]);
    let r = pool.wait();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let one = task(&s, "1");
    assert_eq!(one["status"], "failed");
    assert_eq!(one["exitCode"], 129, "SIGHUP: {one}");
    wait_until(DEADLINE, || procs::gone(pid));
}

#[test]
fn a_signal_hands_the_tasks_back_and_leaves_nothing_running() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Sleeps", &[]);
    let mut pool = t.pool(&["--", "sh", "-c", "echo $$ > cmd.pid; sleep 60"]);
    let pid = read_pid(&s.dir().join("cmd.pid"));
    pool.wait_for_handlers();
    pool.signal("TERM");
    let r = pool.wait();
    assert_eq!(r.code, 143, "{}", r.stderr);
    wait_until(DEADLINE, || group_gone(pid) || procs::gone(pid));
    let one = task(&s, "1");
    assert_eq!(one["status"], "pending");
    assert_eq!(one["attempts"], 0, "the attempt is given back");
}

#[test]
fn a_pool_killed_with_sigkill_leaves_no_command_and_no_folder_behind() {
    let s = Store::new();
    let Some(t) = Server::new(&s) else { return };
    s.create("Sleeps", &[]);
    let mut pool = t.pool(&[
        "-j",
        "1",
        "--",
        "sh",
        "-c",
        "echo $$ > cmd.pid; echo started; sleep 60",
    ]);
    let pid = read_pid(&s.dir().join("cmd.pid"));
    t.wait_for("#1 Sleeps", "started");
    let folder = s.dir().join(format!("worker-spawn-{}-0", pool.pid()));
    assert!(folder.join("1.sh").is_file(), "{}", folder.display());
    pool.kill_hard();
    // The guardian kills the window's process group and removes the folder.
    wait_until(DEADLINE, || procs::gone(pid));
    wait_until(DEADLINE, || !folder.exists());
}

#[test]
fn without_tmux_nothing_is_claimed() {
    let s = Store::new();
    s.create("Build", &[]);
    // A PATH with sh but no tmux.
    let bin = s.dir().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let mut c = s.std_cmd("worker-spawn");
    c.env("PATH", &bin)
        .env_remove("TMUX")
        .args(["--tmux", SESSION, "--", "sh", "-c", "echo ran"]);
    let r = Run::from_output(&c.output().unwrap());
    assert_failure(&r, "worker-spawn", 2, &["tmux", "nothing was claimed"]);
    let one = task(&s, "1");
    assert_eq!(one["status"], "pending");
    assert_eq!(one["attempts"], 0);

    // A name tmux would change is refused too.
    let r = s.exec("worker-spawn", ["--tmux", "a.b", "--", "true"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("':' or '.'"), "{}", r.stderr);
}
