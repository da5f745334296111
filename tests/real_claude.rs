//! The real Claude Code CLI — not our imitation — driven by a scripted model server
//! (tests/claude/model.py, see tests/util/claude.rs for what the CLI needs): its `-p`
//! sessions as worker-spawn's workers, a coordinator session that follows
//! examples/claude/SKILL.md through the real Bash tool, and task-sync against the real
//! Task tools' files. Black-box through our binaries; on PostgreSQL too when the suite
//! runs there. Without the CLI each test prints `SKIPPED: …` (CI installs it and sets
//! TASK_TEST_CLAUDE_REQUIRED, so there they never skip).

mod procs;
mod util;

use procs::Bg;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use util::claude::{skill_calls, Claude};
use util::{wait_until, Run, Store, DEADLINE};

fn run(mut c: Command) -> Run {
    Run::from_output(&c.output().expect("run a command"))
}

/// A scripted Bash call, as the model would make it.
fn bash(command: &str) -> Value {
    json!({"tool_use": {"name": "Bash", "input": {"command": command, "description": "run it"}}})
}

/// The ToolSearch call that loads the deferred Task tools (see tests/util/claude.rs).
fn load_task_tools() -> Value {
    json!({"tool_use": {"name": "ToolSearch",
        "input": {"query": "select:TaskCreate,TaskUpdate,TaskList,TaskGet", "max_results": 5}}})
}

/// What a worker's `claude -p … --output-format json` left as its task's result, as
/// the text the model said. A worker-spawn that stores the command's stdout stores the
/// whole result envelope (`{"type":"result","subtype":"success","result":"…",…}`); one
/// that reads the envelope (b5f15af, changed alongside these tests) keeps its `result`
/// text. Both are accepted, so these tests hold for either: an envelope must be a
/// successful one, and gives its `result`.
fn said(result: &str) -> String {
    match serde_json::from_str::<Value>(result.trim()) {
        Ok(v) if v["type"] == "result" => {
            assert_eq!(v["subtype"], "success", "{v}");
            assert_eq!(v["is_error"], false, "{v}");
            assert!(v["session_id"].is_string(), "{v}");
            v["result"]
                .as_str()
                .expect("the envelope's result")
                .to_string()
        }
        _ => result.trim_end().to_string(),
    }
}

/// The task with this subject, from `task-list --format json` (plus `args`).
fn by_subject(s: &Store, subject: &str, args: &[&str]) -> Value {
    let all = s.tasks(args);
    all.iter()
        .find(|t| t["subject"] == subject)
        .unwrap_or_else(|| panic!("no task {subject:?} among {all:?}"))
        .clone()
}

/// Real `claude -p` sessions as the workers, with text and with JSON output: each task
/// ends completed with what its scripted model said as its result.
#[test]
fn real_claude_workers_complete_their_tasks_with_what_the_model_said() {
    let s = Store::new();
    let texts = [
        ("t1", "the first answer"),
        (
            "t2",
            "a second answer,\nover two lines with \"quotes\" and {braces}",
        ),
        ("t3", "the third answer"),
        ("j1", "JSON one"),
        ("j2", "JSON two"),
    ];
    let scripts: serde_json::Map<String, Value> = texts
        .iter()
        .map(|(name, text)| (name.to_string(), json!([{"text": text}])))
        .collect();
    let Some(cc) = Claude::start(&s, &Value::Object(scripts)) else {
        return;
    };
    for (name, _) in &texts {
        let list = if name.starts_with('j') {
            "json"
        } else {
            "text"
        };
        let description = format!("[script:{name}] Answer as you were told, {{please}}.");
        s.create(name, &["--list", list, "-d", &description]);
    }

    // Text output: stdout is the model's last text.
    let mut c = cc.store_cmd(&s, "worker-spawn");
    c.args(["--list", "text", "-j", "2", "--no-progress", "--"])
        .arg(cc.cli())
        .args(["-p", "{description}"]);
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("3 completed, 0 failed"), "{r:?}");
    for (name, text) in &texts[..3] {
        let t = by_subject(&s, name, &["--list", "text"]);
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["exitCode"], 0, "{t}");
        assert_eq!(t["result"], format!("{text}\n"), "{t}");
        // One conversation each, whose prompt was the description, braces and all.
        let reqs = cc.model.requests_of(name);
        assert_eq!(reqs.len(), 1, "{name}: {reqs:?}");
        let first = reqs[0]["body"]["messages"][0].to_string();
        assert!(
            first.contains("Answer as you were told, {please}."),
            "{first}"
        );
    }

    // JSON output: the envelope's `result` text (or the envelope: see `said`).
    let mut c = cc.store_cmd(&s, "worker-spawn");
    c.args(["--list", "json", "-j", "2", "--no-progress", "--"])
        .arg(cc.cli())
        .args(["-p", "{description}", "--output-format", "json"]);
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    for (name, text) in &texts[3..] {
        let t = by_subject(&s, name, &["--list", "json"]);
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(said(t["result"].as_str().expect("a result")), *text, "{t}");
    }
}

/// Why a failed worker's task failed, as the CLI said it: with the result envelope kept
/// whole as the result, its `subtype` and `result`; with a worker-spawn that reads the
/// envelope (see [`said`]), the result text it kept and its log line naming the subtype.
fn failure(t: &Value) -> String {
    let result = t["result"].as_str().unwrap_or_default();
    match serde_json::from_str::<Value>(result.trim()) {
        Ok(v) if v["type"] == "result" => {
            assert_eq!(v["is_error"], true, "{v}");
            format!("{} {}", v["subtype"], v["result"])
        }
        _ => format!("{result} {}", t["log"].as_str().unwrap_or_default()),
    }
}

/// A worker whose API calls fail (HTTP 400; 529 on every try) or that runs out of turns
/// exits non-zero: its task fails, after its attempts, saying why.
#[test]
fn real_claude_workers_that_fail_or_run_out_of_turns_fail_their_tasks() {
    let s = Store::new();
    let scripts = json!({
        "e400": [{"error": 400}],
        "e529": [{"error": 529}],
        "loop": [bash("echo ran >> endless.out")],
    });
    let Some(cc) = Claude::start(&s, &scripts) else {
        return;
    };
    s.create("bad request", &["-d", "[script:e400] go"]);
    s.create(
        "overloaded",
        &["-d", "[script:e529] go", "--max-attempts", "2"],
    );
    s.create("endless", &["-d", "[script:loop] go"]);
    let mut c = cc.store_cmd(&s, "worker-spawn");
    c.args(["-j", "2", "--no-progress", "--"])
        .arg(cc.cli())
        .args([
            "-p",
            "{description}",
            "--max-turns",
            "1",
            "--allowedTools",
            "Bash",
            "--output-format",
            "json",
        ]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("0 completed, 3 failed, 1 retried"),
        "{r:?}"
    );

    for (subject, attempts, says) in [
        ("bad request", 1, "API Error: 400"),
        ("overloaded", 2, "API Error: 529"),
        ("endless", 1, "error_max_turns"),
    ] {
        let t = by_subject(&s, subject, &[]);
        assert_eq!(t["status"], "failed", "{t}");
        assert_eq!(t["exitCode"], 1, "{t}");
        assert_eq!(t["attempts"], attempts, "{t}");
        assert!(failure(&t).contains(says), "{says:?}: {t}");
    }
    // CLAUDE_CODE_MAX_RETRIES=1: each of the two attempts asked twice.
    assert_eq!(cc.model.requests_of("e529").len(), 4);
    // The endless one's one turn ran the tool, whose result the model never saw: the CLI
    // stopped at --max-turns 1 instead of asking again.
    assert_eq!(
        std::fs::read_to_string(s.dir().join("endless.out")).unwrap(),
        "ran\n"
    );
    assert_eq!(cc.model.requests_of("loop").len(), 1);
    assert!(cc.model.seen("loop").is_empty());
}

/// A coordinator session of the real CLI runs examples/claude/SKILL.md's calls through
/// the real Bash tool: it writes the plan, creates it, starts a detached pool of real
/// `claude -p` workers, waits (exit 124 while the slow worker runs, then 0), reads the
/// Markdown report — which reaches the model whole, a big one too — and stops the pool.
#[test]
fn a_real_coordinator_session_runs_the_skill_through_the_bash_tool() {
    let calls = skill_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(calls[1].starts_with("worker-spawn --detach "), "{calls:?}");
    // The Bash tool's limit is cut from two minutes to 10 s (BASH_DEFAULT_TIMEOUT_MS
    // below), so, as the skill says, the wait's 100 s bound is lowered under it: to 2 s
    // (the slow worker takes longer: 124) and then to 8 s (0).
    let wait = |bound: &str| calls[2].replace("--timeout 100s", &format!("--timeout {bound}"));
    assert_ne!(wait("2s"), calls[2], "the wait call has a 100s bound");

    let s = Store::new();
    let list = "release-42";
    // Every call exports the list, as the skill says.
    let call = |cmd: &str| bash(&format!("export CLAUDE_CODE_TASK_LIST_ID={list}; {cmd}"));
    let plan = json!([
        {"key": "slow", "subject": "Review src/auth", "description": "[script:slow] Review src/auth"},
        {"key": "quick", "subject": "Review src/db", "description": "[script:quick] Review src/db"},
        {"key": "summary", "subject": "Summarise the reviews", "blockedBy": ["slow", "quick"],
         "description": "[script:summary] Summarise the reviews"}
    ]);
    let scripts = json!({
        "coordinator": [
            {"tool_use": {"name": "Write", "input": {
                "file_path": s.dir().join("plan.json"),
                "content": serde_json::to_string_pretty(&plan).unwrap()}}},
            call(&calls[0]),
            call(&calls[1]),
            call(&wait("2s")),
            call(&wait("8s")),
            call("task-list --format md"),
            call("task-list --list big --format md"),
            call("task-list --list big --format md --max-chars 0"),
            call(&calls[3]),
            {"text": "Report: three reviews done."}
        ],
        // The slow worker answers after 3 s: longer than the first wait.
        "slow": [{"delay": 3, "text": "auth: two findings"}],
        "quick": [{"text": "db: clean"}],
        "summary": [{"text": "summary: two findings in auth"}],
    });
    let Some(cc) = Claude::start(&s, &scripts) else {
        return;
    };
    // A list whose report is cut to its 20 000-character budget: 2 000 tasks, every
    // seventh failed with a log line (the skill's promise is that the report fits what
    // the Bash tool shows whole, about 30 000 characters).
    let big: String = (1..=2000)
        .map(|i| format!("{{\"subject\":\"step {i} of a long migration\"}}\n"))
        .collect();
    s.create_batch("big.jsonl", &big, &["--list", "big"]);
    let failing = "if [ $((TASK_ID % 7)) = 0 ]; then \
         echo \"error: step $TASK_ID broke, and here is a long line saying why\" >&2; exit 3; \
         fi; echo \"step $TASK_ID done\"";
    let r = s.exec(
        "worker-spawn",
        [
            "--list",
            "big",
            "-j",
            "4",
            "--no-progress",
            "--",
            "sh",
            "-c",
            failing,
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");

    let mut c = cc.cmd(
        &s,
        "[script:coordinator] Run the release review with the parallel-tasks skill.",
    );
    c.env("BASH_DEFAULT_TIMEOUT_MS", "10000");
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "Report: three reviews done.\n", "{r:?}");

    let seen = cc.model.seen("coordinator");
    let names: Vec<&str> = seen.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["Write", "Bash", "Bash", "Bash", "Bash", "Bash", "Bash", "Bash", "Bash"],
        "{seen:#?}"
    );
    assert!(!seen[0].is_error, "{:?}", seen[0]);
    let (create, pool, wait1, wait2, report, big_report, unbudgeted, stop) = (
        &seen[1], &seen[2], &seen[3], &seen[4], &seen[5], &seen[6], &seen[7], &seen[8],
    );
    assert!(
        !create.is_error && create.content.trim() == "1\n2\n3",
        "{create:?}"
    );
    assert!(
        !pool.is_error && pool.content.starts_with("pid "),
        "{pool:?}"
    );
    // The model saw 124 first (with the report so far), then 0.
    assert!(wait1.is_error, "{wait1:?}");
    assert!(wait1.content.starts_with("Exit code 124\n"), "{wait1:?}");
    assert!(wait1.content.contains("timed out after 2s"), "{wait1:?}");
    assert!(wait1.content.contains("## 3 tasks: "), "{wait1:?}");
    assert!(!wait1.content.contains("3 completed"), "{wait1:?}");
    assert!(!wait2.is_error, "{wait2:?}");
    assert!(
        wait2.content.starts_with("## 3 tasks: 3 completed"),
        "{wait2:?}"
    );
    // The reports reached the model whole: what task-list prints now.
    let ours = s.ok("task-list", ["--list", list, "--format", "md"]);
    assert_eq!(report.content.trim_end(), ours.trim_end(), "{report:?}");
    assert!(
        report.content.contains("  > summary: two findings in auth"),
        "{report:?}"
    );
    let ours = s.ok_or_unknown_list("task-list", ["--list", "big", "--format", "md"]);
    assert!(
        ours.chars().count() > 15_000,
        "{} characters:\n{ours}",
        ours.chars().count()
    );
    assert!(
        ours.starts_with("## 2000 tasks: 1715 completed, 285 failed\n"),
        "{ours}"
    );
    assert_eq!(big_report.content.trim_end(), ours.trim_end());
    // Without the budget (89 KB here) the model would have seen a 2 KB preview only, the
    // rest saved to a file, as the skill warns.
    assert!(
        unbudgeted.content.starts_with("<persisted-output>")
            && unbudgeted.content.contains("Preview (first 2KB)")
            && unbudgeted.content.chars().count() < 5_000,
        "{unbudgeted:?}"
    );
    assert!(!stop.is_error, "{stop:?}");

    for (subject, text) in [
        ("Review src/auth", "auth: two findings"),
        ("Review src/db", "db: clean"),
        ("Summarise the reviews", "summary: two findings in auth"),
    ] {
        let t = by_subject(&s, subject, &["--list", list]);
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(said(t["result"].as_str().expect("a result")), text, "{t}");
    }
}

/// task-sync against the real Task tools: a session plans with TaskCreate and
/// TaskUpdate(addBlockedBy); task-sync imports the plan, worker-spawn runs it with real
/// `claude -p` workers, task-sync exports the outcome, and a second session's TaskList
/// and TaskGet see it (a failure as completed with `✗`, as the README says).
#[test]
fn task_sync_meets_the_real_task_tools_both_ways() {
    let s = Store::new();
    let list = "sync-job";
    let create = |subject: &str, description: &str| {
        json!({"tool_use": {"name": "TaskCreate",
            "input": {"subject": subject, "description": description}}})
    };
    let get = |id: &str| json!({"tool_use": {"name": "TaskGet", "input": {"taskId": id}}});
    let scripts = json!({
        "plan": [
            load_task_tools(),
            create("Build it", "[script:build] Build it"),
            create("Ship it", "[script:ship] Ship it"),
            create("Break it", "[script:e400] Break it"),
            {"tool_use": {"name": "TaskUpdate", "input": {"taskId": "2", "addBlockedBy": ["1"]}}},
            {"text": "planned"}
        ],
        "check": [
            load_task_tools(),
            {"tool_use": {"name": "TaskList", "input": {}}},
            get("2"),
            get("3"),
            {"text": "checked"}
        ],
        "build": [{"text": "built"}],
        "ship": [{"text": "shipped"}],
        "e400": [{"error": 400}],
    });
    let Some(cc) = Claude::start(&s, &scripts) else {
        return;
    };
    let session = |prompt: &str| {
        let mut c = cc.cmd(&s, prompt);
        c.env("CLAUDE_CODE_TASK_LIST_ID", list);
        let r = run(c);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    let in_list = [("CLAUDE_CODE_TASK_LIST_ID", list)];
    let sync = || {
        let r = s.exec_with("task-sync", ["--once"], &in_list, None);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:?}");
    };

    assert_eq!(session("[script:plan] Plan the release."), "planned\n");
    let plan = cc.model.seen("plan");
    let results: Vec<&str> = plan.iter().map(|t| t.content.as_str()).collect();
    assert_eq!(
        results[1..],
        [
            "Task #1 created successfully: Build it",
            "Task #2 created successfully: Ship it",
            "Task #3 created successfully: Break it",
            "Updated task #2 blockedBy",
        ],
        "{plan:#?}"
    );
    let dir = cc.tasks_dir(list);
    for id in 1..=3 {
        assert!(
            dir.join(format!("{id}.json")).is_file(),
            "{id}.json missing"
        );
    }

    // Import: the plan is a list of the store, dependency included.
    sync();
    let listed = s.ok("task-list", ["--list", list]);
    assert_eq!(
        listed,
        "#1 [pending] Build it\n#2 [pending] Ship it [blocked by #1]\n#3 [pending] Break it\n"
    );

    // Run it with real workers; one fails (its API call gets HTTP 400).
    let mut c = cc.store_cmd(&s, "worker-spawn");
    c.env("CLAUDE_CODE_TASK_LIST_ID", list)
        .args(["-j", "2", "--no-progress", "--"])
        .arg(cc.cli())
        .args(["-p", "{description}"]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        by_subject(&s, "Build it", &["--list", list])["result"],
        "built\n"
    );
    assert_eq!(
        by_subject(&s, "Ship it", &["--list", list])["result"],
        "shipped\n"
    );
    assert_eq!(
        by_subject(&s, "Break it", &["--list", list])["status"],
        "failed"
    );

    // Export, then the real tools read it.
    sync();
    assert_eq!(
        session("[script:check] How is the release going?"),
        "checked\n"
    );
    let check = cc.model.seen("check");
    let names: Vec<&str> = check.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["ToolSearch", "TaskList", "TaskGet", "TaskGet"],
        "{check:#?}"
    );
    assert!(check.iter().all(|t| !t.is_error), "{check:#?}");
    let task_list = &check[1].content;
    for line in [
        "#1 [completed] Build it",
        "#2 [completed] Ship it",
        "#3 [completed] ✗ Break it",
    ] {
        assert!(task_list.contains(line), "{line:?} not in {task_list:?}");
    }
    assert!(
        check[2].content.contains("Status: completed"),
        "{:?}",
        check[2]
    );
    assert!(
        check[2].content.contains("Blocked by: #1"),
        "{:?}",
        check[2]
    );
    assert!(
        check[3]
            .content
            .starts_with("Task #3: ✗ Break it\nStatus: completed"),
        "{:?}",
        check[3]
    );
}

/// `task-sync --follow` on list `list`, started and ready (its signal handlers are in).
fn follow(s: &Store, list: &str) -> Bg {
    let mut c = s.std_cmd("task-sync");
    c.env("CLAUDE_CODE_TASK_LIST_ID", list).arg("--follow");
    let mut bg = Bg::spawn("task-sync --follow", c);
    bg.wait_for_handlers();
    bg
}

/// Stop a `task-sync --follow` with SIGTERM: exit 143, and what it said on stderr.
fn stop_follow(bg: Bg) -> String {
    bg.signal("TERM");
    let r = bg.wait();
    assert_eq!(r.code, 143, "{r:?}");
    r.stderr
}

/// The task files of a Claude Code folder (`<n>.json`), as `(n, parsed)`, by id; a
/// file that does not parse (one being written) is left out.
fn task_files(dir: &Path) -> Vec<(u64, Value)> {
    let mut out: Vec<(u64, Value)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?.parse().ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((id, serde_json::from_str(&text).ok()?))
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|(id, _)| *id);
    out
}

/// The file id of the task file whose subject is `subject`, once task-sync wrote it.
fn file_id(dir: &Path, subject: &str) -> String {
    let mut id = None;
    wait_until(DEADLINE, || {
        id = task_files(dir)
            .into_iter()
            .find(|(_, f)| f["subject"] == subject)
            .map(|(i, _)| i.to_string());
        id.is_some()
    });
    id.unwrap()
}

/// The events of task `id` (`task-list ID --history --format json`).
fn history(s: &Store, id: &str, list: &str) -> Vec<Value> {
    let out = s.ok(
        "task-list",
        [id, "--history", "--format", "json", "--list", list],
    );
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
        .as_array()
        .expect("an array of events")
        .clone()
}

/// A session that takes a task the Claude Code way — TaskUpdate with its name as owner
/// and status in_progress — while task-sync follows and a pool runs the list: the bridge
/// makes that a claim, so the pool never runs the task, and runs the others. The task
/// is blocked by one the pool is busy with until the claim is in the store, so the pool
/// cannot have claimed it first.
#[test]
fn a_real_session_claims_a_task_and_the_pool_leaves_it_alone() {
    let s = Store::new();
    let list = "claims";
    let Some(cc) = Claude::start(&s, &json!({})) else {
        return;
    };
    let gate = s.create("gate", &["--list", list]);
    let taken = s.create("taken by alice", &["--list", list, "--blocked-by", &gate]);
    let left = s.create("left to the pool", &["--list", list, "--blocked-by", &gate]);
    let dir = cc.tasks_dir(list);
    let sync = follow(&s, list);
    let file = file_id(&dir, "taken by alice");
    file_id(&dir, "left to the pool");

    // The pool runs the gate until the file `open` exists; every task it runs is a line
    // in ran.log.
    let mut c = s.std_cmd("worker-spawn");
    c.args(["--list", list, "-j", "2", "--no-progress", "--", "sh", "-c"])
        .arg(
            "echo \"$TASK_SUBJECT\" >> ran.log; \
             if [ \"$TASK_SUBJECT\" = gate ]; then until [ -e open ]; do sleep 0.02; done; fi",
        );
    let pool = Bg::spawn("worker-spawn", c);
    wait_until(DEADLINE, || {
        s.json_in(&gate, &["--list", list])["status"] == "in_progress"
    });

    cc.model.add_scripts(&json!({"alice": [
        load_task_tools(),
        {"tool_use": {"name": "TaskUpdate",
            "input": {"taskId": file, "owner": "alice", "status": "in_progress"}}},
        {"text": "mine"}
    ]}));
    let mut c = cc.cmd(&s, "[script:alice] Take the task that is yours.");
    c.env("CLAUDE_CODE_TASK_LIST_ID", list);
    let r = run(c);
    assert_eq!((r.code, r.stdout.as_str()), (0, "mine\n"), "{r:?}");
    let seen = cc.model.seen("alice");
    assert!(
        seen.len() == 2
            && !seen[1].is_error
            && seen[1].content == format!("Updated task #{file} owner, status"),
        "{seen:#?}"
    );

    // The bridge made it alice's claim; only then does the gate open.
    wait_until(DEADLINE, || {
        let t = s.json_in(&taken, &["--list", list]);
        t["status"] == "in_progress" && t["owner"] == "alice"
    });
    s.file("open", "");
    wait_until(DEADLINE, || {
        s.json_in(&left, &["--list", list])["status"] == "completed"
    });
    assert_eq!(s.json_in(&gate, &["--list", list])["status"], "completed");
    // Nothing is left for the pool: stop it, then look at what it ran.
    // It exits with nothing left that it could claim: alice holds the third.
    let r = pool.wait();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("2 completed, 0 failed"), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(s.dir().join("ran.log")).unwrap(),
        "gate\nleft to the pool\n"
    );
    let t = s.json_in(&taken, &["--list", list]);
    assert_eq!(
        (&t["status"], &t["owner"]),
        (&json!("in_progress"), &json!("alice")),
        "{t}"
    );
    let claims: Vec<Value> = history(&s, &taken, list)
        .into_iter()
        .filter(|e| e["event"] == "claimed")
        .collect();
    assert!(claims.is_empty(), "{claims:?}");
    stop_follow(sync);
}

/// Real `claude -p` workers that mark their own task completed with the real TaskUpdate
/// (in the folder task-sync keeps: worker-spawn hands them the list as
/// CLAUDE_CODE_TASK_LIST_ID) while worker-spawn finishes the same task and task-sync
/// follows: each task ends completed once, with the worker's answer as its result.
/// Each worker waits (Bash) until its file shows its claim, so its TaskUpdate is a
/// change of the file after the bridge wrote the claim into it, and then runs a pass of
/// task-sync itself, so the bridge reads that change before the worker exits. (The
/// bridge took that for a completion from outside, and the pool stopped its worker: the
/// result and exit code were lost.)
#[test]
fn real_workers_that_complete_their_own_task_file_complete_it_once() {
    let s = Store::new();
    let list = "selfdone";
    let Some(cc) = Claude::start(&s, &json!({})) else {
        return;
    };
    let names = ["w1", "w2"];
    let ids: Vec<String> = names
        .iter()
        .map(|n| {
            let d = format!("[script:{n}] Do {n}, then mark your task completed.");
            s.create(n, &["--list", list, "-d", &d])
        })
        .collect();
    let dir = cc.tasks_dir(list);
    let sync = follow(&s, list);
    let mut files = Vec::new();
    for n in names {
        let file = file_id(&dir, n);
        files.push(file.clone());
        let path = dir.join(format!("{file}.json"));
        let claimed = format!(
            "until grep -q in_progress '{}'; do sleep 0.02; done",
            path.display()
        );
        cc.model.add_scripts(&json!({n: [
            load_task_tools(),
            bash(&claimed),
            {"tool_use": {"name": "TaskUpdate",
                "input": {"taskId": file, "status": "completed"}}},
            // A pass of the bridge surely reads the edit before the worker ends (one
            // by hand takes turns with the follower): what it does with it is what the
            // test sees, whichever process would have been first.
            bash("task-sync --once"),
            {"text": format!("{n} done")}
        ]}));
    }

    let mut c = cc.store_cmd(&s, "worker-spawn");
    c.env("CLAUDE_CODE_TASK_LIST_ID", list)
        .args(["-j", "2", "--no-progress", "--"])
        .arg(cc.cli())
        .args(["-p", "{description}", "--allowedTools", "Bash"]);
    let r = run(c);
    for (n, file) in names.iter().zip(&files) {
        let seen = cc.model.seen(n);
        let names: Vec<&str> = seen.iter().map(|t| t.name.as_str()).collect();
        // Each worker got as far as its edit of the file, which the tool made.
        assert!(
            names.starts_with(&["ToolSearch", "Bash", "TaskUpdate"]),
            "{seen:#?}"
        );
        assert!(seen.iter().all(|t| !t.is_error), "{seen:#?}");
        assert_eq!(seen[2].content, format!("Updated task #{file} status"));
    }
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("2 completed, 0 failed"), "{r:?}");
    for (n, id) in names.iter().zip(&ids) {
        let t = s.json_in(id, &["--list", list]);
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["result"], format!("{n} done\n"), "{t}");
        let events = history(&s, id, list);
        let finished = events.iter().filter(|e| e["event"] == "finished").count();
        assert_eq!(finished, 1, "{events:#?}");
        // The worker ran to its end: its pass of task-sync too.
        assert_eq!(cc.model.seen(n).len(), 4, "{n}");
    }
    let count = s.ok("task-list", ["--count", "--list", list]);
    assert!(
        count.starts_with("pending 0\nin_progress 0\ncompleted 2\nfailed 0\n"),
        "{count}"
    );
    // The bridge writes the outcome back: both files completed.
    wait_until(DEADLINE, || {
        task_files(&dir)
            .iter()
            .all(|(_, f)| f["status"] == "completed")
    });
    assert_eq!(task_files(&dir).len(), 2);
    stop_follow(sync);
}

/// Four real sessions plan at once in one Claude Code folder (three TaskCreate each)
/// while task-sync follows: Claude Code's lock gives every task a file id of its own
/// (no session overwrote another's file), and the bridge imports each task once.
#[test]
fn four_real_sessions_creating_tasks_at_once_are_each_imported_once() {
    let s = Store::new();
    let list = "crowd";
    let who = ["a", "b", "c", "d"];
    let subject = |w: &str, k: usize| format!("{w}: step {k}");
    let scripts: serde_json::Map<String, Value> = who
        .iter()
        .map(|w| {
            let mut turns = vec![load_task_tools()];
            for k in 1..=3 {
                turns.push(json!({"tool_use": {"name": "TaskCreate", "input": {
                    "subject": subject(w, k), "description": format!("{w} plans step {k}")}}}));
            }
            turns.push(json!({"text": format!("{w} planned")}));
            (format!("plan-{w}"), Value::Array(turns))
        })
        .collect();
    let Some(cc) = Claude::start(&s, &Value::Object(scripts)) else {
        return;
    };
    let dir = cc.tasks_dir(list);
    std::fs::create_dir_all(&dir).expect("the list's folder");
    let sync = follow(&s, list);
    let sessions: Vec<Bg> = who
        .iter()
        .map(|w| {
            let mut c = cc.cmd(&s, &format!("[script:plan-{w}] Plan your part."));
            c.env("CLAUDE_CODE_TASK_LIST_ID", list);
            Bg::spawn(w, c)
        })
        .collect();
    for (w, p) in who.iter().zip(sessions) {
        let r = p.wait();
        assert_eq!(
            (r.code, r.stdout.clone()),
            (0, format!("{w} planned\n")),
            "{r:?}"
        );
    }

    // Each session was told a file id of its own for each task.
    let mut told = Vec::new();
    for w in who {
        let seen = cc.model.seen(&format!("plan-{w}"));
        assert_eq!(seen.len(), 4, "{seen:#?}");
        for (k, t) in (1..=3).zip(&seen[1..]) {
            let id = t
                .content
                .strip_prefix("Task #")
                .and_then(|r| r.strip_suffix(&format!(" created successfully: {}", subject(w, k))))
                .unwrap_or_else(|| panic!("{t:?}"));
            told.push(id.parse::<u64>().expect("a file id"));
        }
    }
    told.sort_unstable();
    assert_eq!(told, (1..=12).collect::<Vec<u64>>());

    // Twelve files, ids 1 to 12, one a subject.
    let mut want: Vec<String> = who
        .iter()
        .flat_map(|w| (1..=3).map(move |k| subject(w, k)))
        .collect();
    want.sort();
    let files = task_files(&dir);
    let ids: Vec<u64> = files.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, (1..=12).collect::<Vec<u64>>(), "{files:#?}");
    let mut subjects: Vec<String> = files
        .iter()
        .map(|(_, f)| f["subject"].as_str().expect("a subject").to_string())
        .collect();
    subjects.sort();
    assert_eq!(subjects, want);

    // The bridge took each in once: twelve tasks, the twelve subjects.
    let in_store = || {
        let mut v: Vec<String> = s
            .tasks(&["--list", list])
            .iter()
            .map(|t| t["subject"].as_str().expect("a subject").to_string())
            .collect();
        v.sort();
        v
    };
    wait_until(DEADLINE, || in_store().len() >= 12);
    stop_follow(sync);
    assert_eq!(in_store(), want);
    // One more pass finds every pair in place: no file written, no task made.
    let r = s.exec_with(
        "task-sync",
        ["--once", "-v"],
        &[("CLAUDE_CODE_TASK_LIST_ID", list)],
        None,
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "", ""),
        "{r:?}"
    );
    assert_eq!(task_files(&dir).len(), 12);
    assert_eq!(in_store(), want);
}
