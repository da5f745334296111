//! The README's recipes run as tests, so what it tells a reader to type keeps working.
//!
//! A recipe is a fenced block of README.md with the line `<!-- recipe: NAME -->` just
//! before it (an HTML comment: GitHub shows nothing of it). Each runs with bash in a
//! fresh [`Store`] (the store's folder is its working folder), as the script
//!
//! ```text
//! set -euo pipefail     # the preamble: a recipe that goes wrong half-way fails
//! <setup>               # from RECIPES: the files and tasks the block assumes are there
//! <the block>
//! ```
//!
//! with `HOME` a fresh folder (`~/…` in a recipe lands in the test's folder) and `PATH`
//! the binaries, then the stand-ins below, then the usual `PATH`. A block that is not a
//! shell script (the Makefile) is written to the file its entry names instead, and its
//! setup runs it. A recipe that continues another (`after`) runs that one's setup and
//! block first, in the same script.
//!
//! Stand-ins for the agents and commands the recipes call (in `$HOME/bin`):
//! - `claude -p PROMPT …` prints `answered: PROMPT`. A prompt holding `[slow]` takes a
//!   minute first and then leaves `$HOME/finished-ID`, so a command stopped from
//!   outside is told from one that ran to its end. Run by `worker-spawn --worktree` it
//!   also writes `task-ID.md`, as an agent changes files.
//! - `run-tests ID` prints `tests of #ID passed`, or fails with `2 tests failed` when
//!   the task's subject says `Flaky`.
//! - `cargo` is the check of "Five agents" (`cargo test`): it passes when the agent left
//!   its `task-ID.md` in the worktree.
//!
//! Each entry of RECIPES checks what the block's comments promise: its exit code, what
//! it printed, the store afterwards. Every marked block needs an entry and every entry
//! a block; at least MARKED blocks must be marked (so none is unmarked silently), and
//! every other ```sh block is named in UNMARKED with the reason it does not run here.
//! After the checks, any pool still running on the store's lists is stopped.
//!
//! A failure names the block's README line and shows what the script printed.
//! `README_RECIPES=any-of,makefile cargo test --test readme` runs only those recipes.

mod util;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{Run, Store, BINARIES};

/// How many blocks are marked as recipes today; fewer fails the build.
const MARKED: usize = 17;

/// How long one recipe may run before it counts as hung (and is killed).
const LIMIT: Duration = Duration::from_secs(180);

/// Recipes run this many at a time.
const AT_ONCE: usize = 4;

/// The ```sh blocks that are not recipes, by the start of their first line, and why.
const UNMARKED: &[(&str, &str)] = &[
    (
        "claude mcp add --scope project tasks",
        "needs the real Claude Code CLI: tests/mcp.rs runs this block with it",
    ),
    (
        "cargo install --path .",
        "installs into ~/.cargo/bin and runs the whole suite; tests/examples.rs runs demo.sh",
    ),
    (
        "$ task-create --from plan.jsonl",
        "a terminal transcript (prompts and output), not a script; the task-create recipe \
         checks the same ids on a second run",
    ),
    (
        "task-list                                  #",
        "a synopsis: --watch needs a terminal (off one it streams until killed), \
         `| dot` needs Graphviz",
    ),
    (
        "task-list --watch --until-done --format jsonl | jq",
        "needs jq, which CI machines lack",
    ),
    (
        "worker-spawn -j 5 -- \"${CLAUDE_CODE:-claude}\"",
        "a synopsis: --follow serves until signalled, ./run-tests.sh ./agent.sh ./job.sh are \
         the reader's; the pool's behaviour is in the other recipes and tests/spawn.rs",
    ),
    (
        "task-sync                     #",
        "a synopsis: `task-sync --follow &` runs until signalled; tests/sync.rs runs task-sync",
    ),
    (
        "export CLAUDE_CODE_TASK_LIST_ID=release-42",
        "calls only the real Claude Code with its task tools; a stand-in would test itself",
    ),
    (
        "export TASK_DB=postgres://tasks@db.internal/tasks",
        "needs a PostgreSQL server at that address, and --follow runs until stopped",
    ),
    (
        "cargo test --workspace        #",
        "the development commands: the suite itself, a PostgreSQL cluster, the benchmarks",
    ),
];

/// One recipe's entry: how to run its block and what must hold afterwards.
struct Recipe {
    name: &'static str,
    /// Shell lines run before the block (after the preamble): fixtures, tasks.
    setup: &'static str,
    /// The recipe continues this one: its setup and block run first, in the same script.
    after: Option<&'static str>,
    /// A block that is not a shell script is written to this file; the setup runs it.
    file: Option<&'static str>,
    /// The exit code the whole script must end with.
    code: i32,
    /// What the block's comments promise (panics when it does not hold).
    check: fn(&Run, &Store),
}

const RECIPES: &[Recipe] = &[
    Recipe {
        name: "task-create",
        setup: r#"
cat > plan.jsonl <<'PLAN'
{"key":"fetch","subject":"Fetch the sources"}
{"key":"compile","subject":"Compile","blockedBy":["fetch"]}
PLAN
"#,
        after: None,
        file: None,
        code: 0,
        check: check_task_create,
    },
    Recipe {
        name: "task-update",
        setup: r#"
task-create Build --key build >/dev/null
for n in 2 3 4 5 6 7 8; do task-create "Task $n" >/dev/null; done
task-create 'Task 9' -b 8 >/dev/null
task-update 5 -m draft=true
task-update --claim 8 --owner w1 >/dev/null
task-update 8 -s failed --owner w1 --result 'it broke'
echo 'all green: 120 tests' > report.txt
"#,
        after: None,
        file: None,
        code: 0,
        check: check_task_update,
    },
    Recipe {
        name: "shell-worker",
        // #2 waits for a build another worker does a second later: a claim that gave up
        // on the briefly empty queue would end the loop with #2 never run.
        setup: r#"
task-create Build -m agent=builder >/dev/null
task-create 'Unit tests' -b 1 -m agent=test-runner >/dev/null
task-create 'Flaky tests' -m agent=test-runner >/dev/null
( sleep 1
  eval "$(task-update --claim --owner builder -m agent=builder --format env)"
  task-update "$TASK_ID" -s completed --token "$TASK_CLAIM_TOKEN" --result built ) &
"#,
        after: None,
        file: None,
        code: 0,
        check: check_shell_worker,
    },
    Recipe {
        name: "task-wait",
        setup: r#"
for n in 1 2 3 4 5; do task-create "Step $n" -d "0.$n" >/dev/null; done
worker-spawn -j 2 --no-progress -- sleep '{description}' 2>/dev/null &
"#,
        after: None,
        file: None,
        code: 0,
        check: check_task_wait,
    },
    Recipe {
        name: "fork-join",
        setup: r#"
for pr in 101 102 103 104 105; do
  echo "{\"key\":\"pr-$pr\",\"subject\":\"Review PR $pr\",\"description\":\"Review PR $pr\"}"
done > reviews.jsonl
"#,
        after: None,
        file: None,
        code: 0,
        check: check_fork_join,
    },
    Recipe {
        name: "queue",
        setup: "",
        after: None,
        file: None,
        code: 0,
        check: check_queue,
    },
    Recipe {
        name: "any-of",
        setup: r#"
task-create 'Ask A' -d '[slow] What does A say?' >/dev/null
task-create 'Ask B' -d 'What does B say?' >/dev/null
task-create 'Ask C' -d '[slow] What does C say?' >/dev/null
"#,
        after: None,
        file: None,
        code: 0,
        check: check_any_of,
    },
    Recipe {
        name: "n-of-m",
        setup: r#"
for n in 1 2 3 4 5; do task-create "Reviewer $n" >/dev/null; done
task-update 1 2 -s completed --result approve
task-update 3 -s failed --result reject
( sleep 0.3; task-update 4 -s completed --result approve ) &
"#,
        after: None,
        file: None,
        code: 0,
        check: check_n_of_m,
    },
    Recipe {
        name: "fail-fast",
        setup: r#"
task-create fetch >/dev/null
task-create compile -b 1 >/dev/null
task-create upload -b 2 >/dev/null
worker-spawn -j 1 --no-progress -- sh -c \
  'case $TASK_SUBJECT in compile) echo "compiler crashed" >&2; exit 1 ;; esac' 2>/dev/null &
"#,
        after: None,
        file: None,
        code: 1,
        check: check_fail_fast,
    },
    Recipe {
        name: "detached",
        setup: r#"
for q in A B C; do task-create "Ask $q" -d "[slow] question $q" >/dev/null; done
"#,
        after: None,
        file: None,
        code: 0,
        check: check_detached,
    },
    Recipe {
        name: "shell-completions",
        setup: "",
        after: None,
        file: None,
        code: 0,
        check: check_completions,
    },
    Recipe {
        name: "makefile",
        // A task fails: make must fail, and report.md must be this run's.
        setup: r#"
cat > lint-one.sh <<'SH'
#!/bin/sh
case $1 in *b.c) echo "$1: line 3: missing semicolon" >&2; exit 1 ;; esac
echo "$1: clean"
SH
chmod +x lint-one.sh
echo 'a stale report of an earlier run' > report.md
make -s report FILES='a.c b.c c.c'
"#,
        after: None,
        file: Some("Makefile"),
        code: 2,
        check: check_makefile,
    },
    Recipe {
        name: "bash-tool",
        setup: r#"
cat > plan.json <<'PLAN'
[{"key":"auth","subject":"Review auth","description":"Review the auth module"},
 {"key":"db","subject":"Review db","description":"Review the db module"},
 {"key":"summary","subject":"Summarise the reviews","description":"Summarise",
  "blockedBy":["auth","db"]}]
PLAN
"#,
        after: None,
        file: None,
        code: 0,
        check: check_bash_tool,
    },
    Recipe {
        name: "five-agents",
        setup: r#"
git init -q repo && cd repo
git config user.name 'A Developer' && git config user.email dev@example.com
echo '# auth' > README.md && git add README.md && git commit -qm 'the code base'
"#,
        after: None,
        file: None,
        code: 0,
        check: check_five_agents,
    },
    Recipe {
        name: "merge-branches",
        setup: "",
        after: Some("five-agents"),
        file: None,
        code: 0,
        check: check_merge_branches,
    },
    Recipe {
        name: "max-cost",
        // The example worker as in the repository, and a `claude` that answers with
        // Claude Code's result envelope at $0.50 a call.
        setup: concat!(
            "mkdir -p examples/claude\n",
            "cp '",
            env!("CARGO_MANIFEST_DIR"),
            "/examples/claude/worker.sh' examples/claude/\n",
            r#"cat > "$HOME/bin/claude" <<'SH'
#!/bin/sh
echo "$*" >> "$HOME/calls"
printf '{"type":"result","subtype":"success","is_error":false,"result":"done: %s","session_id":"s-%s","total_cost_usd":0.5,"num_turns":3,"duration_ms":1200}\n' "$TASK_SUBJECT" "$TASK_ID"
SH
for n in $(seq 1 20); do task-create "Step $n" -d "Do step $n" >/dev/null; done
"#
        ),
        after: None,
        file: None,
        code: 0,
        check: check_max_cost,
    },
    Recipe {
        name: "tmux",
        // A tmux server of the recipe's own (its socket in the test's folder), gone when
        // the script ends whatever happened; without tmux the recipe says so and passes.
        setup: r#"
command -v tmux >/dev/null || { echo 'SKIPPED: no tmux (install tmux)'; exit 0; }
unset TMUX
export TMUX_TMPDIR="$PWD/tmux" && mkdir -p "$TMUX_TMPDIR"
trap 'tmux kill-server 2>/dev/null || true' EXIT
task-create Build >/dev/null && task-create Test >/dev/null && task-create Lint >/dev/null
"#,
        after: None,
        file: None,
        code: 0,
        check: check_tmux,
    },
];

// ---------------------------------------------------------------------------------------
// The checks, one per recipe.

fn check_task_create(r: &Run, s: &Store) {
    // The ids printed: Build's went into $build.
    assert_eq!(r.stdout, "1\n3\n4\n5\n6\n7\n");
    let review = s.json("1");
    assert_eq!(review["description"], "Look at the error handling");
    assert_eq!(review["metadata"]["agent"], "code-reviewer");
    assert_eq!(s.json("2")["priority"], 10);
    let test = s.json("3");
    assert_eq!(util::id_list(&test["blockedBy"]), ["2"], "Test after Build");
    assert_eq!(test["maxAttempts"], 3);
    assert_eq!(s.json("4")["key"], "lint");
    let mut ship = util::id_list(&s.json("5")["blockedBy"]);
    ship.sort();
    assert_eq!(ship, ["2", "4"], "Ship after lint and Build");
    assert_eq!(util::id_list(&s.json("7")["blockedBy"]), ["6"]);
    // Run again: the same ids, nothing new.
    assert_eq!(s.ok("task-create", ["Lint", "--key", "lint"]), "4\n");
    assert_eq!(s.ok("task-create", ["--from", "plan.jsonl"]), "6\n7\n");
    assert_eq!(s.tasks(&[]).len(), 7);
}

fn check_task_update(r: &Run, s: &Store) {
    assert_eq!(r.stdout, "", "task-update prints nothing without --format");
    let three = s.json("3");
    assert_eq!(three["status"], "completed");
    assert_eq!(
        three["result"].as_str().unwrap().trim_end(),
        "all green: 120 tests"
    );
    let mut four = util::id_list(&s.json("4")["blockedBy"]);
    four.sort();
    assert_eq!(four, ["1", "2", "3"]);
    assert_eq!(
        s.json("5")["metadata"],
        serde_json::json!({"reviewer": "bob"})
    );
    let seven = s.json("7");
    assert_eq!(seven["status"], "cancelled");
    assert_eq!(seven["verify"], "cargo test -p auth");
    let history = s.ok("task-list", ["7", "--history"]);
    assert!(
        history.contains("by coordinator") && history.contains("needs the staging DB"),
        "{history}"
    );
    // Compare-and-set: #7 is no longer pending.
    s.exec(
        "task-update",
        ["7", "-s", "cancelled", "--if-status", "pending"],
    )
    .expect_code(4);
    // The failed #8 was retried: pending, a fresh budget of 5.
    let eight = s.json("8");
    assert_eq!(eight["status"], "pending");
    assert_eq!(eight["attempts"], 0, "reopening resets attempts");
    assert_eq!(eight["maxAttempts"], 5);
    assert_eq!(
        util::id_list(&eight["blocks"]),
        Vec::<String>::new(),
        "#9's edge went"
    );
    s.exec("task-list", ["9"]).expect_code(3);
    assert_eq!(s.create("Task 10", &[]), "10", "id 9 is never reused");
}

fn check_shell_worker(r: &Run, s: &Store) {
    assert_eq!(r.stdout, "");
    assert_eq!(s.json("1")["status"], "completed");
    let unit = s.json("2");
    assert_eq!(
        unit["status"], "completed",
        "the loop ended before #2 was unblocked"
    );
    assert_eq!(unit["owner"], "w1");
    assert_eq!(unit["result"], "tests of #2 passed");
    let flaky = s.json("3");
    assert_eq!(flaky["status"], "failed");
    assert_eq!(flaky["result"], "2 tests failed");
    assert_eq!(flaky["owner"], "w1");
}

fn check_task_wait(r: &Run, s: &Store) {
    assert!(r.stdout.contains("## 5 tasks: 5 completed"), "{}", r.stdout);
    for t in s.tasks(&[]) {
        assert_eq!(t["status"], "completed", "{t}");
    }
}

fn check_fork_join(_: &Run, s: &Store) {
    let report = read(&s.dir().join("report.md"));
    assert!(report.contains("## 5 tasks: 5 completed"), "{report}");
    for pr in 101..=105 {
        assert!(
            report.contains(&format!("answered: Review PR {pr}")),
            "{report}"
        );
    }
}

fn check_queue(r: &Run, s: &Store) {
    assert!(
        r.stdout.starts_with(
            "imported 001-pending-frontend.md as #1\nimported 002-pending-backend.md as #2\n"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .ends_with("001-completed-frontend.md\n002-completed-backend.md\n"),
        "{}",
        r.stdout
    );
    let backend = s.json("2");
    assert_eq!(backend["blockedBy"], serde_json::json!(["1"]), "{backend}");
    assert!(backend["startedAt"].as_str() >= s.json("1")["finishedAt"].as_str());
    for id in ["1", "2"] {
        assert_eq!(s.json(id)["status"], "completed");
    }
}

fn check_any_of(r: &Run, s: &Store) {
    assert_eq!(r.stdout, "#2 answered first\n");
    let b = s.json("2");
    assert_eq!(b["status"], "completed");
    assert_eq!(b["result"], "answered: What does B say?\n");
    for id in ["1", "3"] {
        let t = s.json(id);
        assert_eq!(t["status"], "cancelled", "the rest are cancelled: {t}");
        // A loser the pool had started was stopped, not run to its end.
        let finished = s.dir().join(format!("home/finished-{id}"));
        assert!(!finished.exists(), "#{id}'s command was not stopped");
    }
    let summary = r.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("worker-spawn: 1 completed, 0 failed, 0 retried"),
        "{}",
        r.stderr
    );
}

fn check_n_of_m(r: &Run, _: &Store) {
    // task-wait prints the awaited tasks, then the recipe says so.
    assert!(
        r.stdout.contains("#4 [completed] Reviewer 4\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("\napproved\n"), "{}", r.stdout);
}

fn check_fail_fast(r: &Run, _: &Store) {
    assert!(r.stdout.contains("✗ #2 compile"), "{}", r.stdout);
    assert!(r.stdout.contains("compiler crashed"), "{}", r.stdout);
    assert!(
        r.stderr.contains("#2"),
        "task-wait names the failure: {}",
        r.stderr
    );
}

fn check_detached(r: &Run, s: &Store) {
    let lines: Vec<&str> = r.stdout.lines().collect();
    let (pid, log) = lines
        .first()
        .and_then(|l| l.strip_prefix("pid "))
        .and_then(|rest| rest.split_once(" log "))
        .filter(|(pid, _)| pid.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("not `pid PID log FILE`: {}", r.stdout));
    // A known race (worker-spawn --detach returns before the pool has recorded itself in
    // the store): `task-list --workers` and `worker-spawn --stop` run at once after it
    // can miss the pool. Stop it again then, so that no test leaves a pool running, and
    // say so; the rest of the recipe is still checked.
    let seen = lines.len() == 2;
    if !seen {
        eprintln!(
            "README recipe `detached`: task-list --workers right after --detach did not \
             show the pool yet (a known race of --detach); stopping it again"
        );
        util::wait_until(util::DEADLINE, || {
            !s.ok("task-list", ["--workers"]).is_empty() || !alive(pid)
        });
        s.exec("worker-spawn", ["--stop"]).expect_code(0);
    }
    util::wait_until(util::DEADLINE, || !alive(pid));
    assert!(Path::new(log).is_file(), "{log}");
    if seen {
        assert!(lines[1].contains(" -j 5 since "), "the pool: {}", lines[1]);
        assert!(
            lines[1].ends_with("claude -p {description}"),
            "{}",
            lines[1]
        );
    } else {
        assert_eq!(lines.len(), 1, "{}", r.stdout);
    }
    // --stop handed the tasks back, attempts given back, and the pool is gone.
    for t in s.tasks(&[]) {
        assert_eq!(t["status"], "pending", "{t}");
        assert_eq!(t["attempts"], 0, "{t}");
    }
    assert_eq!(s.ok("task-list", ["--workers"]), "");
}

/// Whether process `pid` still runs (`kill -0`).
fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn check_completions(_: &Run, s: &Store) {
    let home = s.dir().join("home");
    let bash = home.join(".local/share/bash-completion/completions");
    for b in BINARIES {
        // bash-completion loads `B`, `B.bash` or `_B` when B is first completed.
        let file = [b.to_string(), format!("{b}.bash"), format!("_{b}")]
            .into_iter()
            .find(|n| bash.join(n).is_file())
            .unwrap_or_else(|| panic!("no bash completion file for {b}"));
        let r = s.bash(&format!(
            "source '{}' && complete -p {b}",
            bash.join(file).display()
        ));
        r.expect_code(0);
        assert!(home.join(format!(".zfunc/_{b}")).is_file(), "zsh: {b}");
        assert!(
            home.join(format!(".config/fish/completions/{b}.fish"))
                .is_file(),
            "fish: {b}"
        );
        let man = read(&home.join(format!(".local/share/man/man1/{b}.1")));
        assert!(man.contains("EXIT STATUS"), "man: {b}");
    }
    // Where bash-completion itself is installed, its lazy loader finds them.
    let loader = Path::new("/usr/share/bash-completion/bash_completion");
    if loader.is_file() {
        let mut c = s.bash_cmd(&format!(
            "source {}; if declare -F _comp_load >/dev/null; then _comp_load task-wait; \
             else __load_completion task-wait; fi; complete -p task-wait",
            loader.display()
        ));
        c.env("HOME", &home);
        let r = Run::from_output(&c.output().unwrap());
        assert!(r.stdout.contains("task-wait"), "{r:?}");
    }
}

fn check_makefile(r: &Run, s: &Store) {
    let report = read(&s.dir().join("report.md"));
    assert!(
        !report.contains("stale"),
        "report.md is the old one: {report}"
    );
    assert!(
        report.contains("## 3 tasks: 2 completed, 1 failed"),
        "{report}"
    );
    assert!(report.contains("✗ #2 lint b.c"), "{report}");
    assert!(report.contains("missing semicolon"), "{report}");
    assert_eq!(r.stdout, "1\n2\n3\n", "the plan's ids");
}

fn check_bash_tool(r: &Run, s: &Store) {
    assert!(r.stdout.starts_with("1\n2\n3\npid "), "{}", r.stdout);
    assert!(r.stdout.contains("## 3 tasks: 3 completed"), "{}", r.stdout);
    assert!(r.stdout.contains("answered: Summarise"), "{}", r.stdout);
    assert_eq!(s.ok("task-list", ["--workers"]), "", "the pool is gone");
}

fn check_five_agents(r: &Run, s: &Store) {
    assert!(r.stdout.contains("## 5 tasks: 5 completed"), "{}", r.stdout);
    assert!(r.stdout.contains("#4 "), "#4's history: {}", r.stdout);
    let repo = s.dir().join("repo");
    let git = |args: &str| {
        let r = s.bash(&format!("cd '{}' && git {args}", repo.display()));
        r.expect_code(0).stdout
    };
    let branches = git("branch --list 'tasks/auth-rework/*'");
    assert_eq!(branches.lines().count(), 5, "{branches}");
    // A task's branch holds its blockers' work: docs has api's, e2e has login's and tokens'.
    for (branch, file) in [(4, 1), (4, 4), (5, 2), (5, 3), (5, 5)] {
        git(&format!(
            "cat-file -e tasks/auth-rework/{branch}:task-{file}.md"
        ));
    }
    assert_eq!(
        git("status --porcelain"),
        "",
        "the main work tree is untouched"
    );
}

fn check_merge_branches(_: &Run, s: &Store) {
    let repo = s.dir().join("repo");
    for id in 1..=5 {
        assert!(repo.join(format!("task-{id}.md")).is_file(), "task-{id}.md");
    }
    let r = s.bash(&format!(
        "cd '{}' && git branch --list 'tasks/*'",
        repo.display()
    ));
    assert_eq!(
        r.expect_code(0).stdout,
        "",
        "the merged branches are deleted"
    );
}

fn check_max_cost(r: &Run, s: &Store) {
    assert!(
        r.stderr.contains("claiming no more tasks"),
        "the pool stopped at its budget: {}",
        r.stderr
    );
    // Four workers stop claiming at $5 (ten tasks); those already running finish.
    let done = s.ids(&["-s", "completed"]).len();
    assert!((10..=13).contains(&done), "{done} tasks ran");
    assert_eq!(s.ids(&["-s", "pending"]).len(), 20 - done);
    let spent = format!("{:.6}", done as f64 * 0.5);
    assert!(
        r.stdout.contains(&format!("\ncost_usd {spent}\n")),
        "{}",
        r.stdout
    );
    let heading = format!(
        "## 20 tasks: {} pending, {done} completed · ${:.2}\n",
        20 - done,
        done as f64 * 0.5
    );
    assert!(r.stdout.ends_with(&heading), "{}", r.stdout);
    // The example worker called Claude Code as it says, and the answer is the result.
    let calls = read(&s.dir().join("home/calls"));
    assert!(
        calls.starts_with("-p Do step ")
            && calls
                .lines()
                .all(|l| l.ends_with(" --output-format json --permission-mode acceptEdits")),
        "{calls}"
    );
    let t = s.json("1");
    assert_eq!(t["result"], "done: Step 1");
    assert_eq!(t["metadata"]["claude"]["sessionId"], "s-1");
}

fn check_tmux(r: &Run, s: &Store) {
    if r.stdout.starts_with("SKIPPED") {
        eprintln!("README recipe `tmux`: {}", r.stdout.trim_end());
        return;
    }
    let lines: Vec<&str> = r.stdout.lines().collect();
    // The session's first window (a shell, named after it), then the failed task's,
    // which shows the command's output, and then tmux's `Pane is dead (status 1, …)`
    // (unless tmux has not taken note of the end yet).
    assert!(
        lines.len() >= 3 && !lines[0].starts_with('#'),
        "{}",
        r.stdout
    );
    assert_eq!(lines[1..3], ["#3 Lint", "building Lint"], "{}", r.stdout);
    assert!(
        lines[3..].iter().all(|l| l.starts_with("Pane is dead")),
        "{}",
        r.stdout
    );
    let statuses: Vec<String> = s
        .tasks(&[])
        .iter()
        .map(|t| t["status"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(statuses, ["completed", "completed", "failed"]);
    assert_eq!(s.json("1")["result"], "building Build\n");
    // Whatever happened, no tmux server of the recipe's is left.
    let gone = Command::new("tmux")
        .env("TMUX_TMPDIR", s.dir().join("tmux"))
        .env_remove("TMUX")
        .arg("kill-server")
        .output();
    assert!(
        gone.is_ok_and(|o| !o.status.success()),
        "its tmux server still ran"
    );
}

// ---------------------------------------------------------------------------------------
// The harness.

/// A fenced block of the README.
#[derive(Debug)]
struct Block {
    /// From the `<!-- recipe: NAME -->` line before it; None for a block that is no recipe.
    name: Option<String>,
    /// The info string (`sh`, `make`, …).
    lang: String,
    /// The README's line number of the opening fence (1-based).
    line: usize,
    body: String,
}

fn readme() -> String {
    read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `Some(NAME)` for a `<!-- recipe: NAME -->` line, `Some(Err)` for a malformed one.
fn marker(line: &str) -> Option<Result<String, String>> {
    let l = line.trim();
    if !l.starts_with("<!-- recipe") {
        return None;
    }
    let name = l
        .strip_prefix("<!-- recipe:")
        .and_then(|r| r.strip_suffix("-->"))
        .map(str::trim)
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    Some(
        name.map(str::to_string)
            .ok_or_else(|| format!("`{l}` is not `<!-- recipe: NAME -->` (NAME: a-z, 0-9, -)")),
    )
}

/// Every fenced block of the README, in order.
fn blocks(readme: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(m) = marker(lines[i]) {
            m.map_err(|e| format!("README.md:{}: {e}", i + 1))?;
            if !lines.get(i + 1).is_some_and(|l| l.starts_with("```")) {
                return Err(format!(
                    "README.md:{}: a recipe marker must be the line just before its ```",
                    i + 1
                ));
            }
        }
        if let Some(info) = lines[i].strip_prefix("```") {
            let name = match i.checked_sub(1).and_then(|p| marker(lines[p])) {
                Some(m) => Some(m?),
                None => None,
            };
            let start = i;
            let mut body = String::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            if i == lines.len() {
                return Err(format!(
                    "README.md:{}: the block is never closed",
                    start + 1
                ));
            }
            out.push(Block {
                name,
                lang: info.trim().to_string(),
                line: start + 1,
                body,
            });
        }
        i += 1;
    }
    Ok(out)
}

fn recipe(name: &str) -> &'static Recipe {
    RECIPES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no entry for recipe `{name}` in RECIPES (tests/readme.rs)"))
}

const CLAUDE: &str = r#"#!/bin/sh
# Stand-in for Claude Code (tests/readme.rs): answers with its prompt.
[ "$1" = -p ] && shift
case $1 in *'[slow]'*) sleep 60 && touch "$HOME/finished-$TASK_ID" ;; esac
if [ -n "${TASK_WORKTREE:-}" ]; then echo "$1" > "$TASK_WORKTREE/task-$TASK_ID.md"; fi
echo "answered: $1"
"#;

const RUN_TESTS: &str = r#"#!/bin/sh
# Stand-in for a test runner (tests/readme.rs).
case $(task-list "$1") in *Flaky*) echo '2 tests failed'; exit 1 ;; esac
echo "tests of #$1 passed"
"#;

const CARGO: &str = r#"#!/bin/sh
# Stand-in for `cargo test` as a check (tests/readme.rs): the agent left its file.
[ -f "task-$TASK_ID.md" ] || { echo "task-$TASK_ID.md is missing"; exit 1; }
"#;

/// Make `$HOME` with the stand-ins in `$HOME/bin`; the `PATH` a recipe runs with.
fn home_with_stand_ins(s: &Store) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let bin = s.dir().join("home/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, text) in [
        ("claude", CLAUDE),
        ("run-tests", RUN_TESTS),
        ("cargo", CARGO),
    ] {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut dirs = vec![util::bin_dir(), bin];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// Run one recipe: `Err` with the README line, what went wrong and the output.
fn run_recipe(block: &Block, all: &[Block]) -> Result<(), String> {
    let name = block.name.as_deref().unwrap_or_default();
    let r = recipe(name);
    let context = format!("README.md:{}: recipe `{name}`", block.line);
    let s = Store::new();
    let path = home_with_stand_ins(&s);
    let mut script = String::from("set -euo pipefail\n");
    if let Some(first) = r.after {
        let before = all
            .iter()
            .find(|b| b.name.as_deref() == Some(first))
            .ok_or_else(|| format!("{context}: it continues `{first}`, which is not marked"))?;
        script += recipe(first).setup;
        script += &before.body;
    }
    script += r.setup;
    match r.file {
        Some(f) => std::fs::write(s.dir().join(f), &block.body).unwrap(),
        None if block.lang == "sh" => script += &block.body,
        None => return Err(format!("{context}: a ```{} block needs a file", block.lang)),
    }
    let mut cmd = s.bash_cmd(&script);
    cmd.env("HOME", s.dir().join("home")).env("PATH", path);
    let (run, hung) = run_bounded(cmd, LIMIT);
    let shown = format!(
        "--- exit code {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    if hung {
        return Err(format!("{context}: still running after {LIMIT:?}\n{shown}"));
    }
    if run.code != r.code {
        return Err(format!(
            "{context}: exited {} (expected {})\n{shown}",
            run.code, r.code
        ));
    }
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (r.check)(&run, &s)));
    // No recipe leaves a pool running (a detached one outlives its script).
    let lists = s.exec("task-list", ["--lists", "--format", "ids"]).stdout;
    for list in lists.lines() {
        s.exec("worker-spawn", ["--stop", "--list", list]);
    }
    checked.map_err(|e| {
        let why = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{context}: it does not do what it says: {why}\n{shown}")
    })
}

/// Run `cmd` in a process group of its own; after `limit`, kill the group. The output,
/// and whether it had to be killed.
fn run_bounded(mut cmd: Command, limit: Duration) -> (Run, bool) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run bash");
    let group = format!("-{}", child.id());
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let mut status = None;
    let mut hung = false;
    // Done when bash ended and so did everything it left holding its output (a pool
    // in the background).
    while status.is_none() || !out.is_finished() || !err.is_finished() {
        if status.is_none() {
            status = child.try_wait().expect("wait for bash");
        }
        if start.elapsed() > limit {
            hung = true;
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = match status {
        Some(s) => s,
        None => child.wait().expect("wait for bash"),
    };
    // A process outside the group may still hold a pipe: do not wait for it for ever.
    let grace = Instant::now();
    while hung && (!out.is_finished() || !err.is_finished()) && grace.elapsed().as_secs() < 5 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = |t: std::thread::JoinHandle<String>| match t.is_finished() {
        true => t.join().unwrap_or_default(),
        false => "(still held open by a process that was not killed)\n".into(),
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: text(out),
        stderr: text(err),
    };
    (run, hung)
}

/// Every marked block runs and does what it says.
#[test]
fn readme_recipes_run() {
    let all = blocks(&readme()).unwrap_or_else(|e| panic!("{e}"));
    // `README_RECIPES=any-of,makefile cargo test --test readme` runs only those.
    let only = std::env::var("README_RECIPES").unwrap_or_default();
    let wanted = |n: &str| only.is_empty() || only.split(',').any(|o| o == n);
    let marked: Vec<&Block> = all
        .iter()
        .filter(|b| b.name.as_deref().is_some_and(wanted))
        .collect();
    assert!(!marked.is_empty(), "no README recipe is named {only:?}");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(block) = marked.get(i) else { break };
                let outcome =
                    std::panic::catch_unwind(|| run_recipe(block, &all)).unwrap_or_else(|_| {
                        Err(format!("README.md:{}: the harness panicked", block.line))
                    });
                if let Err(e) = outcome {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} README recipes failed:\n\n{}",
        failures.len(),
        marked.len(),
        failures.join("\n\n")
    );
}

/// No recipe is unmarked silently, every entry has its block, and every other shell
/// block is accounted for.
#[test]
fn readme_recipes_are_all_marked() {
    let all = blocks(&readme()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = all.iter().filter_map(|b| b.name.as_deref()).collect();
    assert!(
        names.len() >= MARKED,
        "only {} README blocks are marked as recipes, not {MARKED}: {names:?} \
         (a block that stops being a recipe needs a reason in UNMARKED, and MARKED lowered)",
        names.len()
    );
    for (i, n) in names.iter().enumerate() {
        assert!(!names[..i].contains(n), "recipe `{n}` is marked twice");
        recipe(n);
    }
    for r in RECIPES {
        assert!(
            names.contains(&r.name),
            "RECIPES has `{}`, but no README block is marked `<!-- recipe: {} -->`",
            r.name,
            r.name
        );
    }
    for b in all.iter().filter(|b| b.name.is_none() && b.lang == "sh") {
        let first = b.body.lines().next().unwrap_or_default();
        assert!(
            UNMARKED.iter().any(|(start, _)| first.starts_with(start)),
            "README.md:{}: a ```sh block that is not a recipe: mark it `<!-- recipe: NAME -->` \
             (with an entry in RECIPES), or say in UNMARKED why it cannot run here\n{first}",
            b.line
        );
    }
    for (start, _) in UNMARKED {
        assert!(
            all.iter()
                .any(|b| b.name.is_none() && b.body.starts_with(start)),
            "UNMARKED names a block that is gone or marked now: {start}"
        );
    }
}

/// The parser finds markers, rejects misplaced or malformed ones, and keeps line numbers.
#[test]
fn markers_are_parsed_strictly() {
    let text = "intro\n<!-- recipe: one -->\n```sh\necho 1\n```\n\n```sh\necho 2\n```\n";
    let b = blocks(text).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].name.as_deref(), Some("one"));
    assert_eq!((b[0].line, b[0].body.as_str()), (3, "echo 1\n"));
    assert_eq!((b[1].name.as_deref(), b[1].line), (None, 7));
    let misplaced = blocks("<!-- recipe: x -->\n\n```sh\ntrue\n```\n").unwrap_err();
    assert!(misplaced.contains("README.md:1"), "{misplaced}");
    assert!(blocks("<!-- recipe -->\n```sh\ntrue\n```\n").is_err());
    assert!(blocks("```sh\ntrue\n").is_err());
}
