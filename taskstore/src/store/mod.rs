//! The store interface every binary uses. It speaks tasks, filters, claims and change
//! counters — never SQL or driver types — so that a second backend (PostgreSQL, see
//! DESIGN.md "Planned next") fits behind it without touching the commands.

mod schema;
mod sqlite;

use crate::bail;
use crate::error::Result;
use crate::model::{ListId, NewTask, Status, StatusFilter, Task, TaskId};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use schema::SCHEMA_VERSION;

/// Which tasks to return. Empty vectors mean "no restriction".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exactly these tasks; a missing one is an error (exit 3).
    pub ids: Vec<TaskId>,
    /// Any of these (OR).
    pub statuses: Vec<StatusFilter>,
    pub owner: Option<String>,
    /// Every one of these metadata key/value pairs (AND).
    pub metadata: Vec<(String, Value)>,
    pub limit: Option<u64>,
}

/// Per-status counts, indexed like `Status::ALL`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; 5]);

impl Counts {
    pub fn get(&self, s: Status) -> u64 {
        self.0[s as usize]
    }
    pub fn add(&mut self, s: Status, n: u64) {
        self.0[s as usize] += n;
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// The process that holds a claim, so that a claim of a dead process on this host can be
/// recovered at once instead of after its lease (worker-spawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Process start time (clock ticks since boot), to tell a reused pid apart.
    pub started: u64,
}

/// An atomic claim of the next ready task (or of one given task).
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub owner: String,
    pub id: Option<TaskId>,
    /// Only tasks whose metadata has every one of these pairs.
    pub matching: Vec<(String, Value)>,
    /// At most N tasks sharing one value of metadata KEY in progress in the list.
    pub limits: Vec<(String, i64)>,
    /// None: the claim never expires.
    pub lease: Option<Duration>,
    pub holder: Option<Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OwnerChange {
    #[default]
    Keep,
    Set(String),
    Clear,
}

/// Edits applied to every task named in one `update` call, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub status: Option<Status>,
    pub owner: OwnerChange,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub active_form: Option<String>,
    pub priority: Option<i64>,
    pub max_attempts: Option<i64>,
    /// `None` value: remove the key.
    pub metadata: Vec<(String, Option<Value>)>,
    pub add_blocked_by: Vec<TaskId>,
    pub remove_blocked_by: Vec<TaskId>,
    pub add_blocks: Vec<TaskId>,
    pub remove_blocks: Vec<TaskId>,
    pub result: Option<String>,
    /// Compare-and-set: the current status must be one of these.
    pub if_status: Vec<Status>,
    /// Renew (or set) the claim's lease from now.
    pub lease: Option<Duration>,
}

/// How a claimed task ended, recorded by the claim's holder (worker-spawn).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub result: Option<String>,
    pub log: Option<String>,
    pub exit_code: Option<i64>,
}

/// Summary of one list for `task-list --lists`.
#[derive(Debug, Clone)]
pub struct ListSummary {
    pub name: String,
    pub counts: Counts,
}

pub trait Store: Send {
    /// Create a batch of tasks atomically; returns their ids in input order.
    fn create(&mut self, list: &ListId, tasks: &[NewTask]) -> Result<Vec<TaskId>>;
    /// Tasks matching the filter, in id order.
    fn tasks(&mut self, list: &ListId, filter: &Filter) -> Result<Vec<Task>>;
    /// Per-status counts of the tasks matching the filter.
    fn counts(&mut self, list: &ListId, filter: &Filter) -> Result<Counts>;
    /// Every list in the store.
    fn lists(&mut self) -> Result<Vec<ListSummary>>;
    /// Apply one update to each id, all or nothing; returns the updated tasks.
    fn update(&mut self, list: &ListId, ids: &[TaskId], update: &Update) -> Result<Vec<Task>>;
    /// Put in_progress tasks back to pending, giving back the attempt their claim counted.
    /// With `owner`, each must be held by that owner (else conflict); with `if_status`,
    /// each must also have one of those statuses (else conflict).
    fn release(
        &mut self,
        list: &ListId,
        ids: &[TaskId],
        owner: Option<&str>,
        if_status: &[Status],
    ) -> Result<Vec<Task>>;
    /// Delete tasks and their edges; their ids are never reused.
    fn delete(&mut self, list: &ListId, ids: &[TaskId], if_status: &[Status]) -> Result<()>;
    /// Atomically claim a task; `None` when nothing is claimable.
    fn claim(&mut self, list: &ListId, claim: &Claim) -> Result<Option<Task>>;
    /// Extend the lease of a claim still held under `token` (conflict if lost).
    fn renew(&mut self, list: &ListId, id: TaskId, token: i64, lease: Duration) -> Result<()>;
    /// Record the outcome of a claim still held under `token` (conflict if lost).
    fn finish(&mut self, list: &ListId, id: TaskId, token: i64, outcome: &Outcome) -> Result<Task>;
    /// Give a claim held under `token` back to pending; `refund` returns its attempt.
    fn unclaim(&mut self, list: &ListId, id: TaskId, token: i64, refund: bool) -> Result<()>;
    /// Claims held by processes of `host`, for recovery of dead holders.
    fn held_on(&mut self, host: &str) -> Result<Vec<(ListId, TaskId, i64, Holder)>>;
    /// A counter that changes whenever any other connection commits (for waiting).
    fn change_counter(&mut self) -> Result<u64>;
    /// Files whose modification signals a commit (for file-notification wake-ups).
    fn watch_paths(&self) -> Vec<PathBuf>;
}

/// Durability of a commit (`TASK_SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// Survives any process crash (SQLite `synchronous=NORMAL` in WAL mode).
    #[default]
    Normal,
    /// Also survives power loss (`synchronous=FULL`).
    Full,
}

impl std::str::FromStr for Sync {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Sync> {
        match s {
            "normal" | "" => Ok(Sync::Normal),
            "full" => Ok(Sync::Full),
            _ => bail!(usage, "invalid TASK_SYNC '{s}' (expected full or normal)"),
        }
    }
}

/// What a command will do with the store, so a backend can tune the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mostly reads (task-list, task-wait).
    Read,
    Write,
}

/// Open (creating if needed) the store at `location`: a file path, or later `postgres://…`.
pub fn open(location: &Path, sync: Sync, access: Access) -> Result<Box<dyn Store>> {
    let s = location.to_string_lossy();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        bail!(
            store,
            "PostgreSQL stores are not supported yet (TASK_DB={s})"
        );
    }
    Ok(Box::new(sqlite::SqliteStore::open(location, sync, access)?))
}
