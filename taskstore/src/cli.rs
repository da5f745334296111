//! The clap definitions of every binary, shared with `shell-completions`.
//! Values are parsed here with the library's own parsers, so a bad value is a usage
//! error (exit 2) that names the flag.

use crate::model::{
    check_key, parse_duration, parse_limit, parse_meta, ListId, OnConflict, Status, StatusFilter,
    TaskRef,
};
use crate::store::Sync;
use clap::{Args, Parser, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    a negative answer: nothing to claim; an awaited task failed, was cancelled or stalled;
       worker-spawn: a task failed, or --max-cost was reached
  2    usage error or invalid input (bad flag, id, value, batch line, dependency cycle)
  3    not found (task id, key, blocker; a store, or a list task-wait waits on, that
       does not exist)
  4    conflict: --if-status did not hold, the task is held by another worker, or a key
       exists (task-create --on-conflict error)
  5    store error (cannot open or create, not a database, newer schema, locked, disk full)
  124  timeout
  130  stopped by SIGINT, 143 stopped by SIGTERM";

pub const ENVIRONMENT: &str = "\
Environment:
  TASK_DB                    the store (same as --db)
  CLAUDE_CODE_TASK_LIST_ID   the list (same as --list; default 'default')
  TASK_SYNC                  full: commits survive power loss; normal (default): any crash";

/// `--db` and `--list`, on every binary.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The task store [default: $XDG_DATA_HOME/parallel-tasks/tasks.db]
    #[arg(
        long,
        env = "TASK_DB",
        value_name = "PATH",
        global = true,
        hide_env_values = true
    )]
    pub db: Option<PathBuf>,
    /// The task list to work in
    #[arg(
        long,
        env = "CLAUDE_CODE_TASK_LIST_ID",
        value_name = "ID",
        default_value = "default",
        value_parser = parse_list,
        global = true
    )]
    pub list: ListId,
}

/// An XDG base folder: `$VAR`, else `$HOME/UNDER_HOME`; None when neither is set.
pub fn xdg_home(var: &str, under_home: &str) -> Option<PathBuf> {
    let nonempty = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    nonempty(var).or_else(|| nonempty("HOME").map(|h| h.join(under_home)))
}

impl StoreArgs {
    /// `--db`, else `$XDG_DATA_HOME/parallel-tasks/tasks.db`, else under `$HOME/.local/share`.
    pub fn path(&self) -> crate::Result<PathBuf> {
        if let Some(p) = &self.db {
            return Ok(p.clone());
        }
        let data = xdg_home("XDG_DATA_HOME", ".local/share").ok_or_else(|| {
            crate::Error::usage("cannot find the store: set --db, TASK_DB or HOME")
        })?;
        Ok(data.join("parallel-tasks").join("tasks.db"))
    }

    /// `TASK_SYNC`.
    pub fn sync(&self) -> crate::Result<Sync> {
        std::env::var("TASK_SYNC").unwrap_or_default().parse()
    }

    pub fn open(
        &self,
        access: crate::store::Access,
    ) -> crate::Result<Box<dyn crate::store::Store>> {
        crate::store::open(&self.path()?, self.sync()?, access)
    }
}

fn parse_list(s: &str) -> Result<ListId, String> {
    s.parse().map_err(|e: crate::Error| e.message)
}
fn parse_ref(s: &str) -> Result<TaskRef, String> {
    s.parse().map_err(|e: crate::Error| e.message)
}
fn parse_scope(s: &str) -> Result<String, String> {
    crate::model::normalize_scope(s).map_err(|e| e.message)
}
fn parse_key(s: &str) -> Result<String, String> {
    check_key(s).map_err(|e| e.message)?;
    Ok(s.to_string())
}
fn parse_status(s: &str) -> Result<Status, String> {
    s.parse().map_err(|e: crate::Error| e.message)
}
fn parse_status_filter(s: &str) -> Result<StatusFilter, String> {
    s.parse().map_err(|e: crate::Error| e.message)
}
fn parse_set(s: &str) -> Result<(String, Option<Value>), String> {
    parse_meta(s).map_err(|e| e.message)
}
fn parse_match(s: &str) -> Result<(String, Value), String> {
    match parse_meta(s).map_err(|e| e.message)? {
        (k, Some(v)) => Ok((k, v)),
        (k, None) => Err(format!("'{k}=' has no value to match")),
    }
}
fn parse_lim(s: &str) -> Result<(String, i64), String> {
    parse_limit(s).map_err(|e| e.message)
}
fn parse_dur(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.message)
}
fn parse_attempts(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}
fn parse_usd(s: &str) -> Result<f64, String> {
    match s.trim_start_matches('$').parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not an amount of dollars (e.g. 5 or 0.50)"
        )),
    }
}
fn parse_token(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("'{s}' is not a claim token (the claimToken a claim printed)"))
}
fn parse_nonempty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("it is empty".into())
    } else {
        Ok(s.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CreateFormat {
    Ids,
    Json,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
    Jsonl,
    Csv,
    Ids,
    Md,
    /// Graphviz: a node a task, coloured by status; edges blocker -> blocked
    Dot,
    /// A Mermaid flowchart (GitHub and chat interfaces draw it)
    Mermaid,
    /// One self-contained HTML page of the run: a timeline of every attempt, the tasks,
    /// the waves
    Html,
}

const CREATE_EXAMPLES: &str = "\
Examples:
  task-create 'Review PR #125' -m agent=code-reviewer
  build=$(task-create Build); task-create Test -b \"$build\"
  task-create Build --key build        # run it twice: one task, the same id printed
  task-create Test --key test -b build # blocked by the task whose key is build
  task-create --from plan.jsonl        # {\"key\":\"b\",\"subject\":\"Build\"} / {\"subject\":\"Test\",\"blockedBy\":[\"b\"]}
  task-create --from plan.jsonl --on-conflict error   # exit 4 if any key exists
  task-create --from tasks.csv --format json";

/// Add one task, or a batch of tasks atomically, and print their ids (for a key that exists, its task's).
#[derive(Debug, Parser)]
#[command(
    name = "task-create",
    version,
    after_help = format!("{CREATE_EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}")
)]
pub struct CreateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// What the task is (required unless --from)
    #[arg(value_name = "SUBJECT", conflicts_with = "from")]
    pub subject: Option<String>,
    /// Longer description; '-' reads it from stdin
    #[arg(short, long, value_name = "TEXT|-")]
    pub description: Option<String>,
    /// Present-continuous form shown while it runs ("Reviewing PR #125")
    #[arg(long, value_name = "TEXT")]
    pub active_form: Option<String>,
    /// Tasks that must complete first, by id (3, #3) or key
    #[arg(short = 'b', long, value_name = "ID|KEY,…", value_delimiter = ',', value_parser = parse_ref)]
    pub blocked_by: Vec<TaskRef>,
    /// Higher runs first
    #[arg(
        short,
        long,
        value_name = "N",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    pub priority: i64,
    /// Set metadata KEY to VALUE (JSON if it parses, else a string)
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub metadata: Vec<(String, Option<Value>)>,
    /// Reserve the task for this worker
    #[arg(long, value_name = "NAME", value_parser = parse_nonempty)]
    pub owner: Option<String>,
    /// How many runs worker-spawn may give it
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_attempts)]
    pub max_attempts: i64,
    /// A file, folder or resource the task changes (repeatable): a claim never runs two
    /// tasks whose scopes overlap at once
    #[arg(long, value_name = "PATH", value_parser = parse_scope)]
    pub scope: Vec<String>,
    /// The task's check: a shell command worker-spawn runs after the task's command
    /// succeeds; non-zero fails the attempt
    #[arg(long, value_name = "CMD", value_parser = parse_nonempty)]
    pub verify: Option<String>,
    /// A name for the task, unique in the list: if a task has it, create nothing and print that task
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: Option<String>,
    /// When a key exists: print the existing task (existing), or exit 4 creating nothing (error)
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OnConflict::Existing)]
    pub on_conflict: OnConflict,
    /// Read a batch: JSON lines, a JSON array, or CSV ('-' for stdin)
    #[arg(long, value_name = "FILE|-")]
    pub from: Option<String>,
    /// The batch is CSV with a header row (implied by a .csv file name)
    #[arg(long, requires = "from")]
    pub csv: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = CreateFormat::Ids)]
    pub format: CreateFormat,
}

const LIST_EXAMPLES: &str = "\
Examples:
  task-list                              # every task, one line each
  task-list -s ready --format ids        # what a worker can claim now
  task-list 3 --format json              # the full record of task #3
  task-list --count                      # pending 3 / in_progress 1 / ...
  task-list --waves                      # dependency-aware batches
  task-list --workers                    # the worker-spawn pools running on the list
  task-list -s done --format md          # a report for whoever delegated the work
  task-list --format dot | dot -Tsvg > plan.svg   # a picture (also --format mermaid)
  task-list 3 --history                  # every change of task #3
  task-list --watch                      # a live view of the run (q quits)
  task-list --watch --until-done --format jsonl   # a JSON line per change, until settled";

/// Show tasks: filtered, in several formats; one task in full; counts; lists; waves.
#[derive(Debug, Parser)]
#[command(
    name = "task-list",
    version,
    after_help = format!("{LIST_EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}")
)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Show exactly these tasks ('-' reads ids from stdin)
    #[arg(value_name = "ID|-")]
    pub ids: Vec<String>,
    /// pending, in_progress, completed, failed, cancelled, ready, blocked, stalled, open, done
    #[arg(short, long, value_name = "STATUS,…", value_delimiter = ',', value_parser = parse_status_filter)]
    pub status: Vec<StatusFilter>,
    /// Only tasks owned by NAME
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// Only tasks whose metadata KEY equals VALUE
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE", value_parser = parse_match)]
    pub metadata: Vec<(String, Value)>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
    /// CSV columns, in order (names as in the JSON output)
    #[arg(long, value_name = "FIELD,…", value_delimiter = ',')]
    pub fields: Vec<String>,
    /// At most N tasks
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print per-status counts instead of tasks
    #[arg(long, group = "mode")]
    pub count: bool,
    /// Print every list in the store with its counts
    #[arg(long, group = "mode")]
    pub lists: bool,
    /// Print the dependency waves of the open tasks
    #[arg(long, group = "mode")]
    pub waves: bool,
    /// Print the worker-spawn pools running on the list (host, pid, jobs, command, log)
    #[arg(long, group = "mode")]
    pub workers: bool,
    /// Print the history of the given tasks: every change, oldest first
    #[arg(long, group = "mode")]
    pub history: bool,
    /// With --format md: fit the report in N characters, folding what completed (0: no limit) [default: 20000]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_chars: Option<usize>,
    /// With --format md: add a Mermaid picture of the tasks and their dependencies
    #[arg(long)]
    pub graph: bool,
    /// Follow the list live: a full-screen view on a terminal, else a JSON line per change
    #[arg(long, group = "mode")]
    pub watch: bool,
    /// With --watch: end once no matching task is open
    #[arg(long, requires = "watch")]
    pub until_done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpdateFormat {
    Ids,
    Json,
    Jsonl,
    /// Shell assignments (TASK_ID=3, TASK_CLAIM_TOKEN=…) for `eval` in a shell worker
    Env,
}

const UPDATE_EXAMPLES: &str = "\
Examples:
  task-update 3 -s completed --result 'all green'
  while c=$(task-update --claim --wait --lease 5m --owner w1 --format env); do eval \"$c\"; ...;
      task-update \"$TASK_ID\" -s completed --token \"$TASK_CLAIM_TOKEN\"; done
  task-update --claim --owner w1 -m agent=test-runner --lease 5m --format json
  task-list -s failed --format ids | task-update - -s pending     # retry the failed
  task-update 4 --add-blocked-by 2,3
  task-update 5 --add-blocked-by build                           # by key
  task-update 7 -s cancelled --if-status pending                 # compare-and-set
  task-update 7 --note 'flaky: needs the staging DB' --owner coordinator";

/// Change tasks; atomically claim the next ready task; release; delete.
#[derive(Debug, Parser)]
#[command(
    name = "task-update",
    version,
    after_help = format!("{UPDATE_EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}")
)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Tasks to change ('-' reads ids from stdin); with --claim, at most one
    #[arg(value_name = "ID|-")]
    pub ids: Vec<String>,
    /// New status: pending, in_progress, completed, failed, cancelled
    #[arg(short, long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<Status>,
    /// Owner to set; with a terminal --status, also checks NAME still holds the task
    #[arg(long, value_name = "NAME", value_parser = parse_nonempty)]
    pub owner: Option<String>,
    /// Clear the owner
    #[arg(long, conflicts_with = "owner")]
    pub no_owner: bool,
    /// New subject (not empty)
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// New description; '-' reads it from stdin
    #[arg(short, long, value_name = "TEXT|-")]
    pub description: Option<String>,
    /// New present-continuous form shown while it runs ("Reviewing PR #125")
    #[arg(long, value_name = "TEXT")]
    pub active_form: Option<String>,
    /// New priority (higher runs first)
    #[arg(short, long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// How many runs worker-spawn may give it in all
    #[arg(long, value_name = "N", value_parser = parse_attempts)]
    pub max_attempts: Option<i64>,
    /// Set metadata KEY (KEY= removes it); with --claim, match it
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub metadata: Vec<(String, Option<Value>)>,
    /// Make the tasks wait for these tasks too, by id or key (a cycle is refused)
    #[arg(long, value_name = "ID|KEY,…", value_delimiter = ',', value_parser = parse_ref)]
    pub add_blocked_by: Vec<TaskRef>,
    /// Stop waiting for these tasks (by id or key)
    #[arg(long, value_name = "ID|KEY,…", value_delimiter = ',', value_parser = parse_ref)]
    pub remove_blocked_by: Vec<TaskRef>,
    /// Make these tasks (by id or key) wait for the changed ones
    #[arg(long, value_name = "ID|KEY,…", value_delimiter = ',', value_parser = parse_ref)]
    pub add_blocks: Vec<TaskRef>,
    /// Stop these tasks (by id or key) waiting for the changed ones
    #[arg(long, value_name = "ID|KEY,…", value_delimiter = ',', value_parser = parse_ref)]
    pub remove_blocks: Vec<TaskRef>,
    /// Add a write scope: a file or folder the task changes (repeatable)
    #[arg(long, value_name = "PATH", value_parser = parse_scope)]
    pub scope: Vec<String>,
    /// Remove a write scope (repeatable)
    #[arg(long, value_name = "PATH", value_parser = parse_scope)]
    pub remove_scope: Vec<String>,
    /// Record the task's result; '-' reads it from stdin
    #[arg(long, value_name = "TEXT|-")]
    pub result: Option<String>,
    /// Replace the task's check (a shell command; '' removes it)
    #[arg(long, value_name = "CMD")]
    pub verify: Option<String>,
    /// Add a note to the task's history, by --owner or $USER ('-' reads it from stdin)
    #[arg(long, value_name = "TEXT|-")]
    pub note: Option<String>,
    /// Only if the current status is one of these (else exit 4)
    #[arg(long, value_name = "STATUS,…", value_delimiter = ',', value_parser = parse_status)]
    pub if_status: Vec<Status>,
    /// Delete the tasks and their edges (ids are never reused)
    #[arg(long, conflicts_with_all = ["claim", "release", "status"])]
    pub delete: bool,
    /// Atomically claim the next ready task (or the given one) for --owner
    #[arg(long, requires = "owner", conflicts_with = "release")]
    pub claim: bool,
    /// Put in_progress tasks back to pending, giving back their attempt
    #[arg(long)]
    pub release: bool,
    /// Change the tasks only while the claim with this token (claimToken, TASK_CLAIM_TOKEN) holds them
    #[arg(long, value_name = "TOKEN", value_parser = parse_token, conflicts_with = "claim")]
    pub token: Option<i64>,
    /// With --claim: when nothing is claimable, wait (woken by the store's change
    /// signal) until a task is (exit 0), or until nothing open is left (exit 1)
    #[arg(long, requires = "claim")]
    pub wait: bool,
    /// With --claim --wait: give up after DURATION (exit 124)
    #[arg(long, value_name = "DURATION", value_parser = parse_dur, requires = "wait")]
    pub timeout: Option<Duration>,
    /// With --claim: at most N in-progress tasks per value of metadata KEY
    #[arg(long, value_name = "KEY=N", value_parser = parse_lim, requires = "claim")]
    pub limit: Vec<(String, i64)>,
    /// The claim expires after DURATION unless renewed (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", value_parser = parse_dur)]
    pub lease: Option<Duration>,
    /// Print the changed tasks (default with --claim: ids; env: shell assignments)
    #[arg(long, value_enum)]
    pub format: Option<UpdateFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFormat {
    Text,
    Json,
    Jsonl,
    Ids,
    Md,
    /// One self-contained HTML page of the awaited tasks' run (as task-list --format html)
    Html,
}

const WAIT_EXAMPLES: &str = "\
Examples:
  ids=$(task-create --from plan.jsonl); worker-spawn -j 4 -- ./run-one &
  echo \"$ids\" | task-wait - --timeout 1h --format md     # fork-join
  task-wait 3 4 5 --any --cancel-rest                     # the first to finish; cancel the rest
  task-wait --count 3 --format ids                        # 3 of the list completed
  task-wait --fail-fast || echo 'a task failed'";

/// Block until all / any / N of the awaited tasks finish, cheaply, with a timeout.
#[derive(Debug, Parser)]
#[command(
    name = "task-wait",
    version,
    after_help = format!("{WAIT_EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}")
)]
pub struct WaitArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Tasks to wait for ('-' reads ids from stdin); none: every task of the list,
    /// including tasks created while waiting
    #[arg(value_name = "ID|-")]
    pub ids: Vec<String>,
    /// Return when one awaited task is terminal
    #[arg(long, conflicts_with = "count")]
    pub any: bool,
    /// Return when N awaited tasks have completed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Return as soon as one awaited task fails or is cancelled
    #[arg(long)]
    pub fail_fast: bool,
    /// Once the wait is satisfied, cancel the awaited tasks still open, in one
    /// transaction (a worker-spawn running one stops its command)
    #[arg(long)]
    pub cancel_rest: bool,
    /// Give up after DURATION (500ms, 30s, 5m, 1h, or seconds) with exit 124
    #[arg(long, value_name = "DURATION", value_parser = parse_dur)]
    pub timeout: Option<Duration>,
    /// How to print the awaited tasks' state (also on timeout)
    #[arg(long, value_enum, default_value_t = WaitFormat::Text)]
    pub format: WaitFormat,
    /// With --format md: fit the report in N characters, folding what completed (0: no limit) [default: 20000]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_chars: Option<usize>,
    /// With --format md: add a Mermaid picture of the tasks and their dependencies
    #[arg(long)]
    pub graph: bool,
    /// Show a live progress line on stderr even when it is not a terminal
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show the progress line
    #[arg(long)]
    pub no_progress: bool,
}

/// A tmux session name as tmux keeps it: tmux would turn ':' and '.' (which separate a
/// target's session, window and pane) into '_', and then `-t SESSION` would miss it.
fn parse_session(s: &str) -> Result<String, String> {
    match s {
        "" => Err("it is empty".into()),
        _ if s.contains([':', '.']) => Err("a tmux session name cannot hold ':' or '.'".into()),
        _ => Ok(s.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StdinMode {
    /// Nothing (stdin is /dev/null)
    None,
    /// The task as one JSON object
    Json,
    /// The task's description
    Description,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}' is not a size (e.g. 65536, 64K, 1M)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 65536, 64K, 1M)"))
}

const SPAWN_EXAMPLES: &str = "\
Examples:
  worker-spawn -j 5 -- \"${CLAUDE_CODE:-claude}\" -p '{description}'
  worker-spawn -j 4 -m agent=test-runner --timeout 10m -- ./run-tests.sh '{id}'
  worker-spawn -j 5 --limit agent=1 -- ./agent.sh       # at most one of each agent type
  worker-spawn --max-tasks 10 -- ./job.sh                # one cron tick's share
  worker-spawn --follow --output-dir logs -- ./job.sh    # serve new tasks until stopped
  worker-spawn --detach -j 5 -- ./agent.sh '{id}'       # returns at once: pid and log file
  worker-spawn -j 3 --tmux work -- ./agent.sh '{id}'     # a tmux window each: tmux attach -t work
  worker-spawn --stop                                    # this host's pools on the list hand back and end
  worker-spawn -j 5 --worktree --verify 'cargo test' -- claude -p '{description}{feedback}'

The command runs without a shell. It gets TASK_ID, TASK_SUBJECT, TASK_DESCRIPTION,
TASK_LIST, CLAUDE_CODE_TASK_LIST_ID, TASK_DB, TASK_OWNER, TASK_ATTEMPT, TASK_METADATA,
TASK_FEEDBACK, TASK_SESSION (with --worktree also TASK_WORKTREE, TASK_BRANCH), and {id}
{subject} {description} {list} {attempt} {feedback} {session} in its arguments ({{ and }}
for braces).
Exit 0 (and a passing check, with --verify or the task's own) completes the task with
stdout as its result; anything else retries it while attempts remain (maxAttempts),
then fails it. Execution is at-least-once.";

/// Run a pool of workers that claim ready tasks and run a command for each.
#[derive(Debug, Parser)]
#[command(
    name = "worker-spawn",
    version,
    after_help = format!("{SPAWN_EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}")
)]
pub struct SpawnArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Number of workers
    #[arg(short = 'j', long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,
    /// Worker names are PREFIX-1, PREFIX-2, … [default: HOST-PID]
    #[arg(long, value_name = "NAME", value_parser = parse_nonempty)]
    pub owner_prefix: Option<String>,
    /// Only claim tasks whose metadata KEY equals VALUE
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE", value_parser = parse_match)]
    pub metadata: Vec<(String, Value)>,
    /// At most N in-progress tasks per value of metadata KEY (across all processes)
    #[arg(long, value_name = "KEY=N", value_parser = parse_lim)]
    pub limit: Vec<(String, i64)>,
    /// Keep serving new tasks until signalled
    #[arg(long)]
    pub follow: bool,
    /// Stop after claiming N tasks
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tasks: Option<u64>,
    /// Kill a command running longer than DURATION (its exitCode becomes 124)
    #[arg(long, value_name = "DURATION", value_parser = parse_dur)]
    pub timeout: Option<Duration>,
    /// After SIGTERM, wait this long before SIGKILL
    #[arg(long, value_name = "DURATION", value_parser = parse_dur, default_value = "5s")]
    pub kill_after: Duration,
    /// Wait this long before a failed task is offered again
    #[arg(long, value_name = "DURATION", value_parser = parse_dur, default_value = "0s")]
    pub retry_delay: Duration,
    /// A claim expires after DURATION unless renewed (it is renewed while the command runs)
    #[arg(long, value_name = "DURATION", value_parser = parse_dur, default_value = "30s")]
    pub lease: Duration,
    /// Stop claiming after the first task that fails for good
    #[arg(long)]
    pub fail_fast: bool,
    /// Stop claiming once the list's recorded cost (Claude Code workers' total_cost_usd,
    /// summed over every pool and host) reaches USD; running tasks finish; exit 1
    #[arg(long, value_name = "USD", value_parser = parse_usd)]
    pub max_cost: Option<f64>,
    /// Exit codes that fail a task at once, without retries (126 and 127, a command that
    /// cannot be started, always do)
    #[arg(long, value_name = "CODE,…", value_delimiter = ',')]
    pub no_retry_on: Vec<i64>,
    /// What the command reads on stdin
    #[arg(long, value_enum, default_value_t = StdinMode::None)]
    pub stdin: StdinMode,
    /// Also write full stdout and stderr to DIR/<list>/<id>.out and .err
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Keep at most BYTES of stdout as the result (64K, 1M, …)
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "1M")]
    pub max_output: u64,
    /// Show a live progress line on stderr even when it is not a terminal
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show the progress line
    #[arg(long)]
    pub no_progress: bool,
    /// Run the pool in a session of its own, its talk to a log file beside the store;
    /// print its pid and log file and return at once
    #[arg(long)]
    pub detach: bool,
    /// Stop this host's pools on the list (SIGTERM; they hand their tasks back), waiting
    /// at most --timeout (default 30s) before killing one
    #[arg(long, conflicts_with_all = ["detach", "command"])]
    pub stop: bool,
    /// Run each command in a window of its own of tmux session SESSION (created, detached,
    /// if missing), on the window's terminal; a completed task's window closes, a failed
    /// one stays until the task runs again
    #[arg(long, value_name = "SESSION", value_parser = parse_session, conflicts_with = "stop")]
    pub tmux: Option<String>,
    /// How --detach reports the pool it started
    #[arg(long, value_enum, default_value_t = SpawnFormat::Text)]
    pub format: SpawnFormat,
    /// The check of tasks that have none of their own: a shell command run after the
    /// command exits 0, in the same directory, its stdout on stdin; non-zero fails the attempt
    #[arg(long, value_name = "CMD", value_parser = parse_nonempty)]
    pub verify: Option<String>,
    /// Run each task in a git worktree of its own on branch tasks/<list>/<id>, its
    /// blockers' branches merged in; commit what it leaves
    #[arg(long)]
    pub worktree: bool,
    /// Where the worktrees go [default: .worktrees at the repository's root]
    #[arg(long, value_name = "DIR", requires = "worktree")]
    pub worktree_dir: Option<PathBuf>,
    /// Remove a failed attempt's worktree too (always), or keep it for inspection
    /// until the task runs again (on-success)
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = WorktreeClean::OnSuccess, requires = "worktree")]
    pub worktree_clean: WorktreeClean,
    /// The command and its arguments
    #[arg(last = true, required_unless_present = "stop", value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorktreeClean {
    /// Remove a worktree once its task completed; keep a failed attempt's
    OnSuccess,
    /// Remove every worktree when its attempt ends
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpawnFormat {
    /// pid 1234 log /path/to/worker-spawn-LIST-1234.log
    Text,
    /// {"pid":1234,"log":"/path/to/…"}
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
    /// Man pages (needs --dir)
    Man,
}

const SYNC_EXAMPLES: &str = "\
Examples:
  task-sync --list review               # one pass both ways, then exit
  task-sync --follow &                  # keep them in step while a session runs
  task-sync --import-only -v            # take in what Claude Code planned, say what
  task-sync --dir ~/.claude/tasks/review --export-only
  task-sync --queue .agent/queue --follow &   # a folder of 001-pending-slug.md items";

const SYNC_ENVIRONMENT: &str = "\
  CLAUDE_CONFIG_DIR          Claude Code's folder (default ~/.claude): lists are under tasks/";

/// Keep a list and Claude Code's own task files for it (or a queue folder) in step, both ways.
#[derive(Debug, Parser)]
#[command(
    name = "task-sync",
    version,
    after_help = format!("{SYNC_EXAMPLES}\n\n{ENVIRONMENT}\n{SYNC_ENVIRONMENT}\n\n{EXIT_CODES}")
)]
pub struct SyncArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Claude Code's folder of the list [default: $CLAUDE_CONFIG_DIR/tasks/<list>, else
    /// ~/.claude/tasks/<list>, with characters other than A-Z a-z 0-9 _ - as '-']
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep a queue folder of markdown items (NNN-STATUS-slug.md) in step instead of
    /// Claude Code's files
    #[arg(long, value_name = "DIR", conflicts_with = "dir")]
    pub queue: Option<PathBuf>,
    /// One pass both ways, then exit (the default)
    #[arg(long, conflicts_with = "follow")]
    pub once: bool,
    /// Keep running: a pass at every change of either side, until SIGINT or SIGTERM
    #[arg(long)]
    pub follow: bool,
    /// Only bring Claude Code's edits into the store; write no file
    #[arg(long, conflicts_with = "export_only")]
    pub import_only: bool,
    /// Only write the store's tasks as files; take no edit from them
    #[arg(long)]
    pub export_only: bool,
    /// Say on stdout what each pass changed, one line a change
    #[arg(short, long)]
    pub verbose: bool,
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  shell-completions bash --dir ~/.local/share/bash-completion/completions   # one file per binary
  shell-completions zsh --dir ~/.zfunc          # one _task-create … file per binary
  shell-completions fish --dir ~/.config/fish/completions
  shell-completions man --dir ~/.local/share/man/man1";

/// Print shell completions for every parallel-tasks binary, or write man pages.
#[derive(Debug, Parser)]
#[command(
    name = "shell-completions",
    version,
    after_help = format!("{COMPLETIONS_EXAMPLES}\n\n{EXIT_CODES}")
)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish, powershell, or man
    #[arg(value_enum, value_name = "SHELL")]
    pub target: Target,
    /// Write one file per binary into DIR instead of printing
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Every binary's clap command, for completions and man pages.
const MCP_EXAMPLES: &str = "\
Examples:
  claude mcp add tasks -- task-mcp                     # Claude Code: the default store and list
  claude mcp add tasks -e TASK_DB=/srv/tasks.db -- task-mcp --list review

Tools: task_create, task_list, task_get, task_update, task_claim, task_wait, pool_start,
pool_stop; each with an input and an output schema. A call that fails answers isError
with the message the command-line tool would print and {code, kind} (its exit code and
name: usage 2, not_found 3, conflict 4, store 5). Logs go to stderr; stdout carries only
the protocol.";

/// Serve the task store as an MCP server over stdio, for agents without a shell.
#[derive(Debug, Parser)]
#[command(
    name = "task-mcp",
    version,
    after_help = format!("{MCP_EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}\n\nA failed call names the same codes. The server exits 0 when its client closes the\nconnection, 2 on a bad flag.")
)]
pub struct McpArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn commands() -> Vec<clap::Command> {
    use clap::CommandFactory;
    vec![
        CreateArgs::command(),
        ListArgs::command(),
        UpdateArgs::command(),
        WaitArgs::command(),
        SpawnArgs::command(),
        SyncArgs::command(),
        CompletionsArgs::command(),
        McpArgs::command(),
    ]
}

#[cfg(test)]
mod tests {
    /// Every flag and argument of every binary has a help line (the man pages and
    /// completions inherit them).
    #[test]
    fn every_argument_has_help() {
        for cmd in super::commands() {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                    "{} {id} has no help line",
                    cmd.get_name()
                );
            }
        }
    }
}
