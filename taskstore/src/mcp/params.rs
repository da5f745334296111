//! What each tool takes and gives, with the JSON Schemas clients see. Field names are
//! those of the task JSON (camelCase); durations are seconds.

use super::schema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A task id (`3`, `"3"` or `"#3"`), or where a key is allowed, a key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ref {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateIn {
    /// The tasks, created in one transaction: all or none. `blockedBy` may name tasks of
    /// the list by id or key, and records of this batch by key.
    #[schemars(schema_with = "schema::new_tasks")]
    pub tasks: Vec<Value>,
    /// The list [default: the server's --list, or CLAUDE_CODE_TASK_LIST_ID, or 'default']
    pub list: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListIn {
    pub list: Option<String>,
    /// Only these tasks
    pub ids: Option<Vec<Ref>>,
    /// Any of: pending, in_progress, completed, failed, cancelled, ready, blocked,
    /// stalled, open, done
    pub status: Option<Vec<String>>,
    /// Only tasks ready to claim (same as status ["ready"])
    pub ready: Option<bool>,
    /// Only tasks of this owner
    pub owner: Option<String>,
    /// Only tasks whose metadata has every one of these key/value pairs
    pub metadata: Option<Map<String, Value>>,
    /// At most this many tasks [default: 200]; the counts are always of every match
    #[schemars(range(min = 1))]
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetIn {
    pub id: Ref,
    pub list: Option<String>,
    /// Also the task's history: every claim, release, change, retry and note
    pub history: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateIn {
    /// The tasks to change, all in one transaction
    pub ids: Vec<Ref>,
    pub list: Option<String>,
    /// pending, in_progress, completed, failed or cancelled
    pub status: Option<String>,
    pub subject: Option<String>,
    pub description: Option<String>,
    /// What the task produced
    pub result: Option<String>,
    pub priority: Option<i64>,
    /// Keys to set; a null value removes the key
    pub metadata: Option<Map<String, Value>>,
    /// Tasks (ids or keys) these now wait for
    pub add_blocked_by: Option<Vec<Ref>>,
    pub remove_blocked_by: Option<Vec<Ref>>,
    /// A line for the tasks' history (with `owner` as its author)
    pub note: Option<String>,
    /// Change only if every task's status is one of these (else conflict, nothing changed)
    pub if_status: Option<Vec<String>>,
    /// The new owner; with `note`, the note's author
    pub owner: Option<String>,
    /// The claimToken of your claim: the change is made only while your claim holds
    pub token: Option<Ref>,
    /// Give claimed tasks back to pending (their attempt is not counted)
    pub release: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimIn {
    /// Who claims: the task's owner while it runs
    pub owner: String,
    pub list: Option<String>,
    /// This task, if it is ready [default: the next ready task by priority, depth, id]
    pub id: Option<Ref>,
    /// Seconds the claim holds unless renewed; after that others may take the task over
    /// [default: no expiry]
    pub lease: Option<f64>,
    /// Only tasks whose metadata has every one of these key/value pairs
    pub metadata: Option<Map<String, Value>>,
    /// Seconds to wait for a task to become claimable [default: 0; at most 300]
    pub wait: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    All,
    Any,
    Count,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitIn {
    pub list: Option<String>,
    /// The tasks to wait for [default: every task of the list]
    pub ids: Option<Vec<Ref>>,
    /// all (default), any one, or `count` of them completed
    pub mode: Option<Mode>,
    /// With mode count: how many must complete
    #[schemars(range(min = 1))]
    pub count: Option<u64>,
    /// End as soon as one task fails
    pub fail_fast: Option<bool>,
    /// Seconds to wait before answering `timeout` [default: 30; at most 300]; call again
    /// to go on waiting
    pub timeout: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolStartIn {
    /// The command and its arguments, run without a shell for each task; `{id}`,
    /// `{subject}`, `{description}` are replaced, and TASK_ID etc. are in its environment
    pub command: Vec<String>,
    pub list: Option<String>,
    /// Workers [default: 5]
    #[schemars(range(min = 1, max = 1024))]
    pub jobs: Option<u32>,
    /// Kill a command running longer than this many seconds
    pub timeout: Option<f64>,
    /// At most N tasks in progress per value of a metadata key ({"agent": 1})
    pub limit: Option<Map<String, Value>>,
    /// Only tasks whose metadata has every one of these key/value pairs
    pub metadata: Option<Map<String, Value>>,
    /// A shell check run after the command succeeds; non-zero fails the attempt
    pub verify: Option<String>,
    /// Run each task in a git worktree of its own
    pub worktree: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolStopIn {
    pub list: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TasksOut {
    #[schemars(schema_with = "schema::tasks")]
    pub tasks: Vec<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOut {
    #[schemars(schema_with = "schema::tasks")]
    pub tasks: Vec<Value>,
    /// Of every task the filters match, limit or not
    #[schemars(schema_with = "schema::counts")]
    pub counts: Value,
    /// Why fewer tasks are shown than match, or that the list does not exist
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GetOut {
    #[schemars(schema_with = "schema::task")]
    pub task: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Map<String, Value>>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ClaimOut {
    #[schemars(schema_with = "schema::task_or_null")]
    pub task: Value,
    /// When no task was claimed: why
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The condition is met
    Completed,
    /// An awaited task failed, was cancelled or stalled, so it cannot be met
    Failed,
    /// Not decided yet: call again to go on waiting
    Timeout,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WaitOut {
    pub outcome: Outcome,
    /// Of the awaited tasks
    #[schemars(schema_with = "schema::counts")]
    pub counts: Value,
    /// The Markdown report of the awaited tasks (within 20 000 characters)
    pub report: String,
    /// What decided a failed outcome
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PoolStartOut {
    /// The pool's process id
    pub pid: u32,
    /// Where the pool writes what it has to say
    pub log: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StoppedPool {
    pub pid: u32,
    pub host: String,
    /// It did not end within 30 s of SIGTERM and was killed
    pub killed: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PoolStopOut {
    pub stopped: Vec<StoppedPool>,
}
