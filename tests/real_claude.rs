//! The real Claude Code CLI — not our imitation — driven by a scripted model server
//! (tests/claude/model.py, see tests/util/claude.rs for what the CLI needs): its `-p`
//! sessions as worker-spawn's workers, a coordinator session that follows
//! examples/claude/SKILL.md through the real Bash tool, and task-sync against the real
//! Task tools' files. Black-box through our binaries; on PostgreSQL too when the suite
//! runs there. Without the CLI each test prints `SKIPPED: …` (CI installs it and sets
//! TASK_TEST_CLAUDE_REQUIRED, so there they never skip).

mod util;

use serde_json::{json, Value};
use std::process::Command;
use util::claude::{skill_calls, Claude};
use util::{Run, Store};

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
    // A list whose report is cut to its 20 000-character budget: 300 failures with a
    // log line each (the skill's promise is that it fits what the Bash tool shows whole,
    // about 30 000 characters).
    let big: String = (1..=300)
        .map(|i| format!("{{\"subject\":\"step {i} of a long migration, which failed\"}}\n"))
        .collect();
    s.create_batch("big.jsonl", &big, &["--list", "big"]);
    let failing =
        "echo \"error: step $TASK_ID broke, and here is a long line saying why\" >&2; exit 3";
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
