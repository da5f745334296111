//! `task-mcp` driven by clients nobody here wrote: the official MCP TypeScript SDK's
//! `Client` over `StdioClientTransport` (tests/mcp/client.mjs), which checks every
//! result against its tool's output schema, and the raw protocol on stdin. On both
//! backends; the store is checked with the shell tools.

mod util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use util::mcp::{answers, failed, ok, run, sdk_or_skip, spawn};
use util::{wait_until, Store, DEADLINE};

#[test]
fn the_tools_are_listed_with_input_and_output_schemas() {
    let Some(sdk) = sdk_or_skip() else { return };
    let s = Store::new();
    let a = run(&s, &sdk, &json!([{"tools": true}]));
    let tools = a[0]["tools"].as_array().expect("tools");
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pool_start",
            "pool_stop",
            "task_claim",
            "task_create",
            "task_get",
            "task_list",
            "task_update",
            "task_wait"
        ]
    );
    for t in tools {
        assert!(
            t["description"].as_str().is_some_and(|d| d.len() > 40),
            "{t}"
        );
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
    }
    let create = tools.iter().find(|t| t["name"] == "task_create").unwrap();
    assert_eq!(create["inputSchema"]["required"], json!(["tasks"]));
    let claim = tools.iter().find(|t| t["name"] == "task_claim").unwrap();
    assert_eq!(claim["inputSchema"]["required"], json!(["owner"]));
    // Listing made no store: only task_create does.
    if util::postgres().is_none() {
        assert!(!s.db().exists());
    }
}

#[test]
fn a_coordinator_and_its_workers_over_mcp_share_the_store_with_the_shell_tools() {
    let Some(sdk) = sdk_or_skip() else { return };
    let s = Store::new();
    let steps = json!([
        // 0
        {"call": "task_create", "args": {"tasks": [
            {"key": "build", "subject": "Build", "priority": 1},
            {"key": "test", "subject": "Test", "blockedBy": ["build"]},
            {"subject": "Ship", "blockedBy": ["test"], "metadata": {"agent": "shipper"}}
        ]}},
        // 1: the same key again is the same task (a retried call is safe)
        {"call": "task_create", "args": {"tasks": [{"key": "build", "subject": "Build again"}]}},
        // 2: the shell tools see the session's work at once
        {"sh": "task-list --format json"},
        // 3, 4
        {"call": "task_claim", "args": {"owner": "w1", "lease": 60}},
        {"call": "task_claim", "args": {"owner": "w2"}},
        // 5: the holder completes its task under its claim's token
        {"call": "task_update", "args": {"ids": [1], "status": "completed", "result": "built",
                                          "token": "${3.task.claimToken}"}},
        // 6: the same token again is stale: a conflict, nothing changes
        {"call": "task_update", "args": {"ids": [1], "status": "failed", "token": "${3.task.claimToken}"}},
        // 7, 8
        {"call": "task_list", "args": {"ready": true}},
        {"call": "task_claim", "args": {"owner": "w2", "wait": 5}},
        // 9: a worker in a shell finishes it
        {"sh": "task-update 2 --status completed --owner w2 --result tested"},
        // 10, 11
        {"call": "task_wait", "args": {"ids": ["1", "#2"]}},
        {"call": "task_wait", "args": {"timeout": 0.2}},
        // 12, 13
        {"call": "task_get", "args": {"id": 1, "history": true}},
        {"call": "task_list", "args": {"limit": 1}},
        // 14: a note by its author
        {"call": "task_update", "args": {"ids": [3], "note": "waiting for the release window", "owner": "lead"}},
        // 15
        {"call": "task_list", "args": {"metadata": {"agent": "shipper"}, "status": ["pending"]}}
    ]);
    let a = run(&s, &sdk, &steps);
    let created = ok(&a[0])["tasks"].as_array().unwrap().clone();
    assert_eq!(created.len(), 3);
    assert_eq!(created[1]["blockedBy"], json!(["1"]));
    assert_eq!(created[2]["metadata"], json!({"agent": "shipper"}));
    assert_eq!(ok(&a[1])["tasks"][0]["id"], "1");
    assert_eq!(ok(&a[1])["tasks"][0]["subject"], "Build");
    let shell = util::parse_json(a[2]["sh"]["stdout"].as_str().unwrap());
    assert_eq!(shell.len(), 3, "{shell:?}");
    assert_eq!(
        shell, created,
        "the shell sees the tasks MCP created, field for field"
    );

    let claimed = &ok(&a[3])["task"];
    assert_eq!(
        (claimed["id"].as_str(), claimed["owner"].as_str()),
        (Some("1"), Some("w1"))
    );
    assert!(claimed["claimToken"].is_string());
    assert_eq!(ok(&a[4])["task"], Value::Null, "nothing else is ready");
    assert!(ok(&a[4])["why"]
        .as_str()
        .unwrap()
        .contains("no task is ready"));
    assert_eq!(ok(&a[5])["tasks"][0]["status"], "completed");
    let (msg, code, kind) = failed(&a[6]);
    assert_eq!((code, kind.as_str()), (4, "conflict"), "{msg}");
    assert_eq!(
        util::id_list(&Value::Array(
            ok(&a[7])["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].clone())
                .collect()
        )),
        ["2"]
    );
    assert_eq!(ok(&a[8])["task"]["id"], "2");

    let waited = ok(&a[10]);
    assert_eq!(waited["outcome"], "completed");
    assert_eq!(waited["counts"]["completed"], 2);
    let report = waited["report"].as_str().unwrap();
    assert!(report.starts_with("## 2 tasks"), "{report}");
    assert!(
        report.contains("built") && report.contains("tested"),
        "{report}"
    );
    let later = ok(&a[11]);
    assert_eq!(later["outcome"], "timeout", "task 3 is still pending");
    assert_eq!(later["counts"]["total"], 3);

    let got = ok(&a[12]);
    assert_eq!(got["task"]["result"], "built");
    let events: Vec<&str> = got["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.starts_with(&["created", "claimed"]), "{events:?}");
    let page = ok(&a[13]);
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(page["counts"]["total"], 3, "the counts are whole");
    assert!(page["note"].as_str().unwrap().contains("1 of 3"));
    assert_eq!(ok(&a[15])["tasks"][0]["id"], "3");

    // The store as the shell tools see it afterwards.
    let all = s.tasks(&[]);
    assert_eq!(
        util::statuses(&all),
        util::pairs(&[("1", "completed"), ("2", "completed"), ("3", "pending")])
    );
    let history = s.ok("task-list", ["3", "--history"]);
    assert!(
        history.contains("waiting for the release window") && history.contains("lead"),
        "{history}"
    );
}

#[test]
fn bad_calls_are_errors_with_the_cli_message_and_change_nothing() {
    let Some(sdk) = sdk_or_skip() else { return };
    let s = Store::new();
    s.create("first", &[]);
    s.create("second", &["--blocked-by", "1"]);
    let before = s.snapshot();
    let steps = json!([
        {"call": "task_update", "args": {"ids": [1], "status": "bogus"}},
        {"call": "task_update", "args": {"ids": [99], "status": "completed"}},
        {"call": "task_update", "args": {"ids": [1], "status": "completed", "ifStatus": ["in_progress"]}},
        {"call": "task_update", "args": {"ids": [1], "addBlockedBy": [2]}},
        {"call": "task_create", "args": {"tasks": [{"subject": "fine"}, {"description": "no subject"}]}},
        {"call": "task_create", "args": {"tasks": [{"subject": "x", "blockedBy": ["nokey"]}]}},
        {"call": "task_create", "args": {"tasks": []}},
        {"call": "task_get", "args": {"id": "abc"}},
        {"call": "task_list", "args": {"list": "bad list!"}},
        {"call": "task_wait", "args": {"mode": "count"}},
        {"call": "task_wait", "args": {"timeout": 301}},
        {"call": "task_claim", "args": {"owner": " "}},
        {"call": "task_update", "args": {"ids": "1", "status": "completed"}},
        {"call": "task_list", "args": {"colour": "red"}},
        {"call": "task_update", "args": {"ids": [1]}},
        {"call": "pool_start", "args": {"command": ["true"], "jobs": 0}},
        {"call": "pool_start", "args": {"command": []}},
        {"call": "no_such_tool", "args": {}},
        {"call": "task_wait", "args": {"list": "typo"}},
        {"call": "task_list", "args": {}}
    ]);
    let a = run(&s, &sdk, &steps);
    let expect = [
        (2, "usage", "unknown status 'bogus'"),
        (3, "not_found", "99"),
        (4, "conflict", "in_progress"),
        (2, "usage", "cycle"),
        (2, "usage", "tasks[1]: missing field `subject`"),
        (3, "not_found", "nokey"),
        (2, "usage", "`tasks` is empty"),
        (2, "usage", "invalid task id 'abc'"),
        (2, "usage", "character ' '"),
        (2, "usage", "mode count needs `count`"),
        (2, "usage", "`timeout` must be between 0 and 300"),
        (2, "usage", "`owner` is empty"),
        (2, "usage", "invalid arguments"),
        (2, "usage", "unknown field `colour`"),
        (2, "usage", "nothing to change"),
        (2, "usage", "worker-spawn: "),
        (2, "usage", "`command` is empty"),
    ];
    for (i, (code, kind, needle)) in expect.iter().enumerate() {
        let (msg, c, k) = failed(&a[i]);
        assert_eq!((c, k.as_str()), (*code, *kind), "step {i}: {msg}");
        assert!(
            msg.contains(needle),
            "step {i}: {msg:?} should mention {needle:?}"
        );
    }
    assert_eq!(
        a[17]["rpcError"]["code"], -32602,
        "an unknown tool: {}",
        a[17]
    );
    let (msg, code, _) = failed(&a[18]);
    assert_eq!(code, 3, "{msg}");
    assert!(msg.contains("list 'typo' does not exist"), "{msg}");
    // Still serving after all of that.
    assert_eq!(ok(&a[19])["counts"]["total"], 2);
    assert_eq!(s.snapshot(), before, "bad calls changed the store");
}

#[test]
fn only_task_create_makes_a_store() {
    let Some(sdk) = sdk_or_skip() else { return };
    if util::sqlite_only("a store file that does not exist yet") {
        return;
    }
    let s = Store::new();
    let a = run(
        &s,
        &sdk,
        &json!([
            {"call": "task_list", "args": {}},
            {"call": "task_claim", "args": {"owner": "w"}},
            {"sh": "test -e tasks.db && echo exists || echo none"},
            {"call": "task_create", "args": {"tasks": [{"subject": "first"}]}},
            {"call": "task_list", "args": {}}
        ]),
    );
    for i in [0, 1] {
        let (msg, code, kind) = failed(&a[i]);
        assert_eq!((code, kind.as_str()), (3, "not_found"));
        assert!(msg.contains("no task store at"), "{msg}");
    }
    assert_eq!(a[2]["sh"]["stdout"], "none\n");
    ok(&a[3]);
    assert_eq!(ok(&a[4])["counts"]["total"], 1);
}

#[test]
fn task_wait_wakes_when_the_shell_finishes_the_tasks() {
    let Some(sdk) = sdk_or_skip() else { return };
    let s = Store::new();
    let child = spawn(
        &s,
        &sdk,
        &json!([
            {"call": "task_create", "args": {"tasks": [{"subject": "a"}, {"subject": "b"}, {"subject": "c"}]}},
            {"call": "task_wait", "args": {"ids": [1, 2], "timeout": 120}},
            {"call": "task_wait", "args": {"ids": [3], "failFast": true, "timeout": 120}}
        ]),
    );
    wait_until(DEADLINE, || {
        s.sh("task-list --format ids 2>/dev/null")
            .stdout
            .lines()
            .count()
            == 3
    });
    s.ok(
        "task-update",
        ["1", "2", "--status", "completed", "--result", "done"],
    );
    s.ok(
        "task-update",
        ["3", "--status", "failed", "--result", "broke"],
    );
    let a = answers(child);
    let first = ok(&a[1]);
    assert_eq!(first["outcome"], "completed");
    assert_eq!(first["counts"]["completed"], 2);
    let second = ok(&a[2]);
    assert_eq!(second["outcome"], "failed");
    assert!(second["why"].as_str().unwrap().contains("3"), "{second}");
    assert!(
        second["report"].as_str().unwrap().contains("✗ #3 c"),
        "{second}"
    );
}

#[test]
fn pool_start_runs_the_tasks_and_pool_stop_hands_them_back() {
    let Some(sdk) = sdk_or_skip() else { return };
    let s = Store::new();
    let a = run(
        &s,
        &sdk,
        &json!([
            {"call": "task_create", "args": {"tasks": [{"subject": "a"}, {"subject": "b"}, {"subject": "c"}]}},
            {"call": "pool_start", "args": {"command": ["sh", "-c", "echo done $TASK_ID"], "jobs": 2}},
            {"call": "task_wait", "args": {"timeout": 120}},
            // A pool whose command runs until it is stopped.
            {"call": "task_create", "args": {"list": "long", "tasks": [{"subject": "forever"}]}},
            {"call": "pool_start", "args": {"list": "long", "command": ["sleep", "600"], "timeout": 900}},
            {"sh": "timeout 20 sh -c 'until task-list --list long -s in_progress --format ids | grep -q .; do sleep 0.02; done'"},
            {"call": "pool_stop", "args": {"list": "long"}},
            {"sh": "task-list --list long --format json"}
        ]),
    );
    let started = ok(&a[1]);
    assert!(started["pid"].as_u64().unwrap() > 1);
    assert!(
        started["log"].as_str().unwrap().ends_with(".log"),
        "{started}"
    );
    let waited = ok(&a[2]);
    assert_eq!(waited["outcome"], "completed", "{waited}");
    let results: Vec<String> = s
        .tasks(&[])
        .iter()
        .map(|t| t["result"].as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(results, ["done 1", "done 2", "done 3"]);

    assert_eq!(
        a[5]["sh"]["code"], 0,
        "the long task never started: {}",
        a[5]
    );
    let long_pid = ok(&a[4])["pid"].clone();
    let stopped = ok(&a[6])["stopped"].as_array().unwrap().clone();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0]["pid"], long_pid);
    assert_eq!(stopped[0]["killed"], false);
    let after = util::parse_json(a[7]["sh"]["stdout"].as_str().unwrap());
    assert_eq!(
        after[0]["status"], "pending",
        "the stopped pool handed its task back"
    );
}

/// Below the SDK: lines that are not JSON-RPC are answered or skipped, the server keeps
/// serving, stdout carries only protocol, and the server ends when its client closes.
#[test]
fn the_raw_protocol_survives_garbage_and_ends_with_its_client() {
    let s = Store::new();
    s.create("one", &[]);
    let mut server = s
        .std_cmd("task-mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start task-mcp");
    let mut stdin = server.stdin.take().unwrap();
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        "this is not JSON",
        r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"task_list","arguments":{}}}"#,
    ];
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut by_id = std::collections::HashMap::new();
    while by_id.len() < 3 {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the server ended early"
        );
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout is protocol only ({e}): {line}"));
        by_id.insert(v["id"].as_i64().unwrap(), v);
    }
    assert_eq!(by_id[&1]["result"]["serverInfo"]["name"], "task-mcp");
    assert_eq!(by_id[&2]["error"]["code"], -32601);
    assert_eq!(
        by_id[&3]["result"]["structuredContent"]["counts"]["total"],
        1
    );
    drop(stdin);
    let status = {
        let start = std::time::Instant::now();
        loop {
            if let Some(st) = server.try_wait().unwrap() {
                break st;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "task-mcp did not end when its stdin closed"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    assert!(status.success(), "{status}");
}

#[test]
fn a_bad_flag_is_a_usage_error_before_serving() {
    let s = Store::new();
    let r = s.exec("task-mcp", ["--list", "no spaces"]);
    util::assert_failure(&r, "task-mcp", 2, &["' '"]);
    let help = s.ok("task-mcp", ["--help"]);
    assert!(help.contains("claude mcp add tasks -- task-mcp"), "{help}");
}

/// The real Claude Code CLI as the MCP client: its scripted model calls the server's
/// tools by the names Claude Code gives them (`mcp__tasks__…`), configured by
/// examples/claude/mcp.json, and the shell tools see the outcome.
#[test]
fn the_real_claude_code_calls_the_tools() {
    use util::claude::Claude;
    let s = Store::new();
    let call = |name: &str, input: Value| json!({"tool_use": {"name": format!("mcp__tasks__{name}"), "input": input}});
    let load = json!({"tool_use": {"name": "ToolSearch", "input": {
        "query": "select:mcp__tasks__task_create,mcp__tasks__task_claim,mcp__tasks__task_update,mcp__tasks__task_list",
        "max_results": 8}}});
    let scripts = json!({
        "agent": [
            load,
            call("task_create", json!({"tasks": [
                {"key": "docs", "subject": "Write the docs"},
                {"subject": "Publish the docs", "blockedBy": ["docs"]}
            ]})),
            call("task_claim", json!({"owner": "claude"})),
            call("task_update", json!({"ids": [1], "status": "completed", "owner": "claude", "result": "docs written"})),
            call("task_update", json!({"ids": [2], "status": "bogus"})),
            call("task_list", json!({"ready": true})),
            {"text": "done"}
        ]
    });
    let Some(cc) = Claude::start(&s, &scripts) else {
        return;
    };
    // examples/claude/mcp.json as a user's `.mcp.json`: `task-mcp` from PATH, the store
    // and the list from the environment Claude Code was started with.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/claude/mcp.json");
    let mut c = cc.cmd(&s, "[script:agent] Plan and write the docs.");
    c.env("CLAUDE_CODE_TASK_LIST_ID", "docs")
        .arg("--mcp-config")
        .arg(config)
        .args(["--strict-mcp-config", "--allowedTools", "mcp__tasks"]);
    let out = c.output().expect("run claude");
    let r = util::Run::from_output(&out);
    assert_eq!((r.code, r.stdout.as_str()), (0, "done\n"), "{r:?}");

    // Claude Code defers MCP tools: the first request names them, and the model loads
    // their definitions with ToolSearch before it calls them, as a real model does.
    let first = cc.model.requests_of("agent")[0]["body"].to_string();
    assert!(
        first.contains("mcp__tasks__task_claim"),
        "the deferred tools are not named"
    );
    let seen = cc.model.seen("agent");
    let names: Vec<&str> = seen.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ToolSearch",
            "mcp__tasks__task_create",
            "mcp__tasks__task_claim",
            "mcp__tasks__task_update",
            "mcp__tasks__task_update",
            "mcp__tasks__task_list"
        ],
        "{seen:#?}"
    );
    assert!(
        seen[0].content.contains("mcp__tasks__task_claim"),
        "{:?}",
        seen[0]
    );
    assert!(
        !seen[1].is_error && seen[1].content.contains("\"Write the docs\""),
        "{seen:#?}"
    );
    assert!(seen[2].content.contains("\"claimToken\""), "{:?}", seen[2]);
    assert!(
        seen[4].is_error && seen[4].content.contains("unknown status 'bogus'"),
        "{:?}",
        seen[4]
    );
    assert!(
        seen[4].content.contains("\"kind\":\"usage\""),
        "{:?}",
        seen[4]
    );
    assert!(
        seen[5].content.contains("\"Publish the docs\""),
        "{:?}",
        seen[5]
    );

    let tasks = s.tasks(&["--list", "docs"]);
    assert_eq!(
        util::statuses(&tasks),
        util::pairs(&[("1", "completed"), ("2", "pending")])
    );
    assert_eq!(tasks[0]["owner"], "claude");
    assert_eq!(tasks[0]["result"], "docs written");
}

/// The README's `claude mcp add` block, run with the real CLI in a project folder: it
/// writes the `.mcp.json` of examples/claude/mcp.json, and `claude mcp list` starts
/// task-mcp and finds it healthy.
#[test]
fn the_readme_adds_the_server_to_the_real_claude_code() {
    use util::claude::Claude;
    let s = Store::new();
    let Some(cc) = Claude::start(&s, &json!({})) else {
        return;
    };
    let readme = include_str!("../README.md");
    let from = readme
        .find("```sh\nclaude mcp add --scope project tasks")
        .expect("the README's claude mcp add block");
    let block = &readme[from + 6..];
    let block = &block[..block.find("```").expect("its end")];
    let mut c = s.bash_cmd(&format!("set -euo pipefail\n{block}"));
    cc.env(&mut c);
    let r = util::Run::from_output(&c.output().expect("run bash"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("tasks: task-mcp --list review - ✔ Connected"),
        "{r:?}"
    );
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(s.dir().join(".mcp.json")).expect(".mcp.json"),
    )
    .expect("JSON");
    let example: Value =
        serde_json::from_str(include_str!("../examples/claude/mcp.json")).expect("JSON");
    let server = &written["mcpServers"]["tasks"];
    assert_eq!(
        server["command"], example["mcpServers"]["tasks"]["command"],
        "{written}"
    );
    assert_eq!(server["type"], "stdio");
    assert_eq!(server["args"], json!([]));
}
