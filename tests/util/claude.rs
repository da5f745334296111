//! The real Claude Code CLI, talking to a scripted model server (`tests/claude/model.py`)
//! on 127.0.0.1, for the tests of `tests/real_claude.rs`.
//!
//! The CLI is `TASK_TEST_CLAUDE`, else `target/claude-code/node_modules/.bin/claude`
//! under the workspace (where `.ci/claude` installs the pinned version). Without it a
//! test prints one `SKIPPED:` line and returns — unless `TASK_TEST_CLAUDE_REQUIRED` is
//! set (CI sets it), when it fails.
//!
//! What the real CLI (2.1.328) needs to run here, found by trying it:
//! - `ANTHROPIC_BASE_URL` and any `ANTHROPIC_API_KEY`: it POSTs to
//!   `/v1/messages?beta=true` with `stream: true`. `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`
//!   and `DISABLE_TELEMETRY` keep it from calling anything else.
//! - Permissions in `-p` mode: a Bash call is refused ("requires approval") unless
//!   allowed. `--dangerously-skip-permissions` and `--permission-mode bypassPermissions`
//!   refuse to start as root ("cannot be used with root/sudo privileges") unless
//!   `IS_SANDBOX=1`; `--allowedTools Bash Write` works as root and as anyone, so that
//!   is what [`Claude::cmd`] passes. (`--permission-mode acceptEdits` still asks for Bash.)
//! - Retries: 429 and 529 are retried with back-off for minutes by default;
//!   `CLAUDE_CODE_MAX_RETRIES=1` makes a failing call end in about a second (exit 1, the
//!   envelope's `is_error` true, `api_error_status` the status). A 400 is not retried as
//!   such, but resent a few times with other request shapes (six requests, under 1 s).
//! - The Task tools (TaskCreate, TaskGet, TaskList, TaskUpdate) are not offered with the
//!   default model (claude-opus-5-5): neither `CLAUDE_CODE_ENABLE_TASKS=1` nor
//!   `CLAUDE_CODE_TASK_LIST_ID` changes that. `CLAUDE_CODE_ENABLE_TODO_TOOLS=1` does (so
//!   does an older model, e.g. `ANTHROPIC_MODEL=claude-sonnet-4-5`): they are then
//!   *deferred* tools, named in the system prompt, and the model must first call
//!   `ToolSearch` with `select:TaskCreate,…` to load them (`ENABLE_TOOL_SEARCH=false`
//!   would list them up front instead). Their files are `$CLAUDE_CONFIG_DIR/tasks/<list>/`.
//! - The Bash tool hands the whole environment to its commands (so workers that a
//!   coordinator's `worker-spawn` starts reach the same server), except under
//!   `GITHUB_ACTIONS`, where it scrubs secrets from it and wants bubblewrap for that:
//!   `CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=0` turns that off.
//!   So the README's `claude -p … --allowedTools 'Bash,TaskCreate,…'` coordinator gets
//!   no Task tools with the default model unless `CLAUDE_CODE_ENABLE_TODO_TOOLS=1`.
//! - A Bash call that outlives `BASH_DEFAULT_TIMEOUT_MS` (default two minutes) is not
//!   killed in this version: it is moved to the background and the model is told so
//!   (and notified again when it ends; `-p` waits for it). A result over about 30 000
//!   characters reaches the model as a 2 KB preview, the rest saved to a file.
//! - The request's first user message holds a system reminder, then the prompt; a
//!   `role: "system"` message follows it (model.py finds its marker in any of the texts).
//! - It writes under `$HOME`, `$CLAUDE_CONFIG_DIR` and `/tmp/claude-UID` (the Bash tool's
//!   output files; `CLAUDE_CODE_TMPDIR` moves them): each test gets its own of all three.
#![allow(dead_code)]

use super::{bin_dir, Store};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The line a test prints when it cannot run.
pub const SKIPPED: &str =
    "SKIPPED: the real Claude Code CLI is not installed (.ci/claude installs it)";

/// The model server's script (Python 3, standard library only).
pub const MODEL_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/claude/model.py");

/// The dummy key the CLI sends (the model server takes any).
pub const API_KEY: &str = "sk-ant-test-dummy";

/// The real CLI, if installed: `TASK_TEST_CLAUDE`, else the workspace's
/// `target/claude-code/node_modules/.bin/claude`.
pub fn cli() -> Option<PathBuf> {
    let path = match std::env::var_os("TASK_TEST_CLAUDE").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/claude-code/node_modules/.bin/claude"),
    };
    path.is_file().then_some(path)
}

/// The CLI, or `None` after printing [`SKIPPED`]; with `TASK_TEST_CLAUDE_REQUIRED` set,
/// a missing CLI fails the test instead.
pub fn cli_or_skip() -> Option<PathBuf> {
    let found = cli();
    if found.is_none() {
        if std::env::var_os("TASK_TEST_CLAUDE_REQUIRED").is_some_and(|v| !v.is_empty()) {
            panic!(
                "TASK_TEST_CLAUDE_REQUIRED is set but the Claude Code CLI is missing \
                 (TASK_TEST_CLAUDE={:?}; .ci/claude installs it)",
                std::env::var_os("TASK_TEST_CLAUDE")
            );
        }
        eprintln!("{SKIPPED}");
    }
    found
}

/// One tool result the model received: what the tool call was and what came back.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The tool called (`Bash`, `TaskList`, …).
    pub name: String,
    /// The call's input (`{"command": …}` for Bash).
    pub input: Value,
    pub is_error: bool,
    /// The result's text (the Bash tool's is `Exit code N\n` then the output, on failure).
    pub content: String,
    /// The assistant turn of the script that the result was sent to answer.
    pub turn: u64,
}

/// The scripted model server, for one test: killed when dropped.
pub struct Model {
    child: Child,
    port: u16,
    scripts: PathBuf,
    log: PathBuf,
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Model {
    /// Start `model.py` with `scripts` (`{"NAME": [turn, …]}`, see tests/claude/model.py)
    /// written into `dir`, which also gets its request log.
    pub fn start(dir: &Path, scripts: &Value) -> Model {
        let path = dir.join("model-scripts.json");
        std::fs::write(&path, scripts.to_string()).expect("write the model's scripts");
        let log = dir.join("model-requests.jsonl");
        let mut child = Command::new("python3")
            .arg(MODEL_PY)
            .arg("serve")
            .arg(&path)
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 tests/claude/model.py");
        // It prints `port N` once it listens; anything else means it failed (its
        // traceback went to our stderr).
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
        let port = match line.trim().strip_prefix("port ").map(str::parse) {
            Some(Ok(p)) => p,
            _ => {
                let _ = child.kill();
                panic!("model.py did not start (it printed {line:?})");
            }
        };
        Model {
            child,
            port,
            scripts: path,
            log,
        }
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Add (or replace) scripts while the server runs: it reads them on every request.
    pub fn add_scripts(&self, more: &Value) {
        let mut all: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.scripts).expect("read"))
                .expect("scripts JSON");
        for (k, v) in more.as_object().expect("an object of scripts") {
            all[k] = v.clone();
        }
        let tmp = self.scripts.with_extension("tmp");
        std::fs::write(&tmp, all.to_string()).expect("write the scripts");
        std::fs::rename(&tmp, &self.scripts).expect("replace the scripts");
    }

    /// Every request received so far, as logged: `{"path", "script", "turn", "body",
    /// "tool_results"}`.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line in the model's log"))
            .collect()
    }

    /// The requests of the conversations that ran script `name`.
    pub fn requests_of(&self, name: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["script"] == name)
            .collect()
    }

    /// Every tool result the conversations of script `name` sent, in order, each once
    /// (a retried request carries the same results again).
    pub fn seen(&self, name: &str) -> Vec<Seen> {
        let mut ids = std::collections::HashSet::new();
        let mut out = Vec::new();
        for r in self.requests_of(name) {
            for t in r["tool_results"].as_array().expect("tool_results") {
                if !ids.insert(t["id"].to_string()) {
                    continue;
                }
                out.push(Seen {
                    name: t["name"].as_str().unwrap_or_default().to_string(),
                    input: t["input"].clone(),
                    is_error: t["is_error"].as_bool().unwrap_or(false),
                    content: t["content"].as_str().unwrap_or_default().to_string(),
                    turn: r["turn"].as_u64().expect("turn"),
                });
            }
        }
        out
    }
}

/// The real CLI, a model server and a home of its own, for one test on one [`Store`].
pub struct Claude {
    cli: PathBuf,
    pub model: Model,
    home: PathBuf,
    tmp: PathBuf,
    config: PathBuf,
}

impl Claude {
    /// The CLI with a model server playing `scripts`, or `None` when the test is to be
    /// skipped (see [`cli_or_skip`]).
    pub fn start(store: &Store, scripts: &Value) -> Option<Claude> {
        let cli = cli_or_skip()?;
        let home = store.dir().join("home");
        let tmp = store.dir().join("tmp");
        for d in [&home, &tmp] {
            std::fs::create_dir_all(d).expect("make a folder for the CLI");
        }
        Some(Claude {
            cli,
            model: Model::start(store.dir(), scripts),
            home,
            tmp,
            // The same folder the Store gives the binaries, so task-sync sees the
            // session's task files.
            config: store.dir().join("claude"),
        })
    }

    /// The CLI's path (for `worker-spawn -- CLI -p …`).
    pub fn cli(&self) -> &Path {
        &self.cli
    }

    /// The CLI's path as a string.
    pub fn cli_str(&self) -> String {
        self.cli.display().to_string()
    }

    /// `$CLAUDE_CONFIG_DIR/tasks/<list>`: where the session keeps list `list`'s tasks.
    pub fn tasks_dir(&self, list: &str) -> PathBuf {
        self.config.join("tasks").join(list)
    }

    /// Give `c` the environment the CLI needs to talk to the model server, and nothing
    /// from the environment the tests run in that would change what it does (a test run
    /// from inside a Claude Code session has `CLAUDECODE`, `CLAUDE_CODE_*`, …): used for
    /// the CLI itself and for a worker-spawn whose workers are the CLI. `c` keeps the
    /// Store's variables (`TASK_DB`, …) if the Store made it; set a list
    /// (`CLAUDE_CODE_TASK_LIST_ID`) after this call.
    pub fn env(&self, c: &mut Command) {
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let ours = k.starts_with("ANTHROPIC_")
                || k.starts_with("CLAUDE")
                || k.starts_with("BASH_")
                || k.to_ascii_lowercase().ends_with("_proxy")
                || k == "GITHUB_ACTIONS"
                || k == "DISABLE_AUTOUPDATER"
                || k == "ENABLE_TOOL_SEARCH";
            if ours {
                c.env_remove(&*k);
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![
            bin_dir(),
            self.cli.parent().expect("a folder").to_path_buf(),
        ];
        dirs.extend(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(dirs).expect("a valid PATH"))
            .env("HOME", &self.home)
            .env("CLAUDE_CONFIG_DIR", &self.config)
            .env("CLAUDE_CODE_TMPDIR", &self.tmp)
            .env("TMPDIR", &self.tmp)
            .env("ANTHROPIC_BASE_URL", self.model.url())
            .env("ANTHROPIC_API_KEY", API_KEY)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_MAX_RETRIES", "1")
            .env("CLAUDE_CODE_SUBPROCESS_ENV_SCRUB", "0")
            .env("CLAUDE_CODE_ENABLE_TODO_TOOLS", "1")
            // The skill's `"${CLAUDE_CODE:-claude}"`.
            .env("CLAUDE_CODE", &self.cli);
    }

    /// `claude -p PROMPT --allowedTools Bash Write` on the store (its `TASK_DB`, …, its
    /// folder as the working directory), stdin empty; add more arguments as needed.
    pub fn cmd(&self, store: &Store, prompt: &str) -> Command {
        let mut c = store.bash_cmd(r#"exec "$0" "$@""#);
        c.arg(&self.cli).arg("-p").arg(prompt);
        c.args(["--allowedTools", "Bash", "Write"]);
        self.env(&mut c);
        c
    }

    /// A store command (`worker-spawn`, …) with the CLI's environment, so the CLI runs
    /// as its workers.
    pub fn store_cmd(&self, store: &Store, bin_name: &str) -> Command {
        let mut c = store.std_cmd(bin_name);
        self.env(&mut c);
        c
    }
}

/// The calls of `examples/claude/SKILL.md`'s loop, from its marked code block (as
/// tests/bash_tool.rs reads them), so the sessions run the skill's own commands.
pub fn skill_calls() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/claude/SKILL.md");
    let skill = std::fs::read_to_string(path).expect("read SKILL.md");
    let from = skill.find("<!-- the calls").expect("the marked block");
    let block = &skill[from..];
    let start = block.find("```sh\n").expect("a sh block") + 6;
    let end = block[start..].find("```").expect("its end") + start;
    block[start..end].lines().map(str::to_string).collect()
}
