//! The official MCP TypeScript SDK's client (`tests/mcp/client.mjs`) driving the real
//! `task-mcp`, for tests/mcp.rs.
//!
//! The SDK is `TASK_TEST_MCP_SDK` (a `node_modules` folder), else
//! `target/mcp/node_modules` under the workspace, where `.ci/mcp` installs the pinned
//! version. Without it (or without `node`) a test prints one `SKIPPED:` line and returns,
//! unless `TASK_TEST_MCP_REQUIRED` is set (CI sets it), when it fails.
#![allow(dead_code)]

use super::{bin, Store};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.mjs");

/// The SDK's `node_modules`, or `None` after saying the test is skipped.
pub fn sdk_or_skip() -> Option<PathBuf> {
    let dir = match std::env::var_os("TASK_TEST_MCP_SDK").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp/node_modules"),
    };
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node && dir.join("@modelcontextprotocol/sdk/package.json").is_file() {
        return Some(dir);
    }
    if std::env::var_os("TASK_TEST_MCP_REQUIRED").is_some_and(|v| !v.is_empty()) {
        panic!("TASK_TEST_MCP_REQUIRED is set but node or the MCP SDK is missing at {dir:?} (.ci/mcp installs it)");
    }
    eprintln!("SKIPPED: node or the MCP TypeScript SDK is not installed (.ci/mcp installs it)");
    None
}

/// The client as a command on `store`, running `steps` (see tests/mcp/client.mjs);
/// `server_args` go to task-mcp.
pub fn client(store: &Store, sdk: &Path, steps: &Value, server_args: &[&str]) -> Command {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let file = store.file(
        &format!("steps-{}.json", N.fetch_add(1, Ordering::SeqCst)),
        steps.to_string(),
    );
    let mut c = store.sh_cmd(r#"exec node "$0" "$@""#);
    c.arg(CLIENT)
        .arg(file)
        .env("TASK_TEST_MCP_SDK", sdk)
        .env("TASK_MCP_BIN", bin("task-mcp"))
        .env(
            "TASK_MCP_ARGS",
            serde_json::to_string(server_args).expect("JSON"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Start the client; [`answers`] collects what it printed.
pub fn spawn(store: &Store, sdk: &Path, steps: &Value) -> Child {
    client(store, sdk, steps, &[]).spawn().expect("start node")
}

/// What a finished client printed: one answer per step, in order.
pub fn answers(child: Child) -> Vec<Value> {
    let out = child.wait_with_output().expect("wait for node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the MCP client failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Run `steps` in one session to the end.
pub fn run(store: &Store, sdk: &Path, steps: &Value) -> Vec<Value> {
    answers(spawn(store, sdk, steps))
}

/// A successful call's structured content, checked to be the same JSON as its text.
#[track_caller]
pub fn ok(answer: &Value) -> &Value {
    let r = &answer["result"];
    assert!(
        r.is_object() && r["isError"] != true,
        "expected a successful call, got {answer}"
    );
    let text: Value = serde_json::from_str(r["content"][0]["text"].as_str().expect("a text"))
        .expect("the text is JSON");
    assert_eq!(
        text, r["structuredContent"],
        "text and structuredContent differ"
    );
    &r["structuredContent"]
}

/// A failed call: its message, then the exit code and kind it names (one text block,
/// `{"error","code","kind"}`).
#[track_caller]
pub fn failed(answer: &Value) -> (String, i64, String) {
    let r = &answer["result"];
    assert_eq!(r["isError"], true, "expected a failed call, got {answer}");
    assert!(
        r.get("structuredContent").is_none(),
        "a failed call has no structured content: {answer}"
    );
    assert_eq!(r["content"].as_array().map(Vec::len), Some(1), "{answer}");
    let e: Value = serde_json::from_str(r["content"][0]["text"].as_str().expect("a text"))
        .expect("the error is JSON");
    (
        e["error"].as_str().expect("error").to_string(),
        e["code"].as_i64().expect("code"),
        e["kind"].as_str().expect("kind").to_string(),
    )
}
