//! The store interface every binary uses. It speaks tasks, filters, claims and a change
//! signal — never SQL or driver types. Rules that do not depend on the engine (what
//! becomes of a lost claim, what its log says, keys and references) live here, once;
//! the SQL of every operation lives once in `sql.rs` and its submodules, over a small
//! `Db` interface that each backend (`sqlite.rs`, `postgres.rs`) implements with its
//! connection, its few dialect differences and its change signal.

mod pg_schema;
#[cfg(feature = "tls")]
mod pg_tls;
mod postgres;
mod schema;
mod sql;
mod sqlite;

use crate::bail;
use crate::error::{Error, Result};
pub use crate::model::Holder;
use crate::model::{
    BlockerRef, Event, ListId, NewTask, OnConflict, Status, StatusFilter, Task, TaskId, TaskRef,
};
use serde_json::{Map, Value};
use std::path::Path;
use std::time::Duration;

/// `MIGRATIONS[N - 1]` is migration N, for tests that build a store of an older version.
pub use schema::{MIGRATIONS, SCHEMA_VERSION};

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

impl Filter {
    /// Exactly these tasks.
    pub fn ids(ids: impl IntoIterator<Item = TaskId>) -> Filter {
        Filter {
            ids: ids.into_iter().collect(),
            ..Filter::default()
        }
    }
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
    /// Where the claimer writes the attempt's output (`<dir>/<id>.out`, `.err`).
    pub output_dir: Option<String>,
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
    pub add_blocked_by: Vec<TaskRef>,
    pub remove_blocked_by: Vec<TaskRef>,
    pub add_blocks: Vec<TaskRef>,
    pub remove_blocks: Vec<TaskRef>,
    /// Normalised write scopes to add and to remove.
    pub add_scopes: Vec<String>,
    pub remove_scopes: Vec<String>,
    pub result: Option<String>,
    /// Replace the task's check (`Some("")`: remove it).
    pub verify: Option<String>,
    /// A line appended to the task's log (why something outside the task changed it).
    pub log_line: Option<String>,
    /// A note for the task's history (`task-update --note`).
    pub note: Option<String>,
    /// Who makes the change, as the history records it.
    pub by: Option<String>,
    /// Compare-and-set: the current status must be one of these.
    pub if_status: Vec<Status>,
    /// Only while the claim with this token still holds the task (`--token`).
    pub token: Option<i64>,
    /// Renew (or set) the claim's lease from now.
    pub lease: Option<Duration>,
}

impl Update {
    /// The fields this update changes, by their JSON names, for the task's history.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        let mut add = |changed: bool, name| {
            if changed {
                f.push(name)
            }
        };
        add(self.subject.is_some(), "subject");
        add(self.description.is_some(), "description");
        add(self.active_form.is_some(), "activeForm");
        add(self.status.is_some(), "status");
        add(self.owner != OwnerChange::Keep, "owner");
        add(self.priority.is_some(), "priority");
        add(self.max_attempts.is_some(), "maxAttempts");
        add(!self.metadata.is_empty(), "metadata");
        add(
            !self.add_blocked_by.is_empty() || !self.remove_blocked_by.is_empty(),
            "blockedBy",
        );
        add(
            !self.add_blocks.is_empty() || !self.remove_blocks.is_empty(),
            "blocks",
        );
        add(
            !self.add_scopes.is_empty() || !self.remove_scopes.is_empty(),
            "scopes",
        );
        add(self.result.is_some(), "result");
        add(self.verify.is_some(), "verify");
        add(self.log_line.is_some(), "log");
        f
    }
}

/// Conditions of a `release`: each task must be in progress and, with these, held by
/// that owner, under that claim token, with one of those statuses.
#[derive(Debug, Clone, Default)]
pub struct Release {
    pub owner: Option<String>,
    /// Who releases, as the history records it (else the holder).
    pub by: Option<String>,
    pub token: Option<i64>,
    pub if_status: Vec<Status>,
}

/// How a claimed task ended, recorded by the claim's holder (worker-spawn).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub result: Option<String>,
    pub log: Option<String>,
    pub exit_code: Option<i64>,
    /// The attempt failed its check (`--verify`): the output tail it printed, kept as
    /// the task's feedback for the next attempt.
    pub check_failed: Option<String>,
    /// Keys merged into the task's metadata (`git`: branch and commit of a worktree;
    /// `claude`: a Claude Code worker's session, cost and turns).
    pub metadata: Map<String, Value>,
    /// What the attempt cost (a Claude Code worker's `total_cost_usd`), added to the
    /// task's and so to the list's spending (`worker-spawn --max-cost`).
    pub cost_usd: Option<f64>,
}

/// Stalled task → the failed or cancelled task that stalls it, and that one's status.
pub type Stalled = std::collections::BTreeMap<TaskId, (TaskId, Status)>;

/// A running worker-spawn as the store records it (`task-list --workers`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub holder: Holder,
    pub list: String,
    /// How it was started: jobs, command, log file, … (a JSON object).
    pub options: serde_json::Map<String, Value>,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub seen_at: i64,
}

/// One task's pairing with a Claude Code task file (task-sync).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPair {
    pub task: TaskId,
    /// The file's id (`<file>.json`); None once the file is gone for good.
    pub file: Option<i64>,
    /// The file's fields as last synced; None until the first write of the file is
    /// known to have happened.
    pub state: Option<Value>,
}

/// A Claude Code task file to become a task: the task, the status it starts in, and its
/// pair.
#[derive(Debug, Clone)]
pub struct SyncImport {
    pub task: NewTask,
    pub status: Status,
    pub file: i64,
    pub state: Value,
}

/// Summary of one list for `task-list --lists`.
#[derive(Debug, Clone)]
pub struct ListSummary {
    pub name: String,
    pub counts: Counts,
}

pub trait Store: Send {
    /// Create a batch of tasks atomically, as [`plan_create`] decides: a record whose
    /// key a task of the list already has creates nothing (or, with
    /// [`OnConflict::Error`], fails the whole batch). Returns one id per record, in input
    /// order: the new task's, or the existing one's.
    fn create(
        &mut self,
        list: &ListId,
        tasks: &[NewTask],
        on_conflict: OnConflict,
    ) -> Result<Vec<TaskId>>;
    /// Tasks matching the filter, in id order.
    fn tasks(&mut self, list: &ListId, filter: &Filter) -> Result<Vec<Task>>;
    /// Per-status counts of the tasks matching the filter.
    fn counts(&mut self, list: &ListId, filter: &Filter) -> Result<Counts>;
    /// Every list in the store.
    fn lists(&mut self) -> Result<Vec<ListSummary>>;
    /// The list's stalled tasks, each with the failed or cancelled task (the lowest id,
    /// if several) that stalls it.
    fn stalled(&mut self, list: &ListId) -> Result<Stalled>;
    /// Apply one update to each id, all or nothing; returns the updated tasks.
    fn update(&mut self, list: &ListId, ids: &[TaskId], update: &Update) -> Result<Vec<Task>>;
    /// Put in_progress tasks back to pending, giving back the attempt their claim counted;
    /// each must meet the conditions of `release` (else conflict).
    fn release(&mut self, list: &ListId, ids: &[TaskId], release: &Release) -> Result<Vec<Task>>;
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
    /// Recover the lost claims of the list: tasks in progress whose lease ran out, or
    /// whose holder is a process of `host` that `alive` says is gone. Each goes back to
    /// pending, or to failed when it has no attempt left (see [`after_loss`]). Returns
    /// the recovered tasks as they are now; `by` names the recoverer in their history.
    fn reap(
        &mut self,
        list: &ListId,
        by: &str,
        host: &str,
        alive: &dyn Fn(&Holder) -> bool,
    ) -> Result<Vec<Task>>;
    /// Record a running worker-spawn (replacing a row of the same process).
    fn pool_add(&mut self, pool: &Pool) -> Result<()>;
    /// Note that the pool of `holder` is alive now.
    fn pool_seen(&mut self, holder: &Holder) -> Result<()>;
    /// Forget the pool of `holder` (it ended, or it is known to be dead).
    fn pool_remove(&mut self, holder: &Holder) -> Result<()>;
    /// The history of the given tasks (each must exist), oldest event first; with
    /// `last`, only each task's last so many.
    fn history(&mut self, list: &ListId, ids: &[TaskId], last: Option<usize>)
        -> Result<Vec<Event>>;
    /// What the list's tasks have cost, in dollars, as worker-spawn recorded it from
    /// Claude Code workers' result envelopes; None when no task has a cost.
    fn cost(&mut self, list: &ListId) -> Result<Option<f64>>;
    /// The sequence number of the list's last event (0 without any).
    fn last_event(&mut self, list: &ListId) -> Result<i64>;
    /// The list's events (of tasks that still exist) whose sequence number is above
    /// `after`, at most `max`, in sequence order, each with its number. Numbers grow with
    /// each event, but on PostgreSQL a transaction may commit an event numbered below one
    /// already seen: a follower reads again from a little before what it saw.
    fn events_after(&mut self, list: &ListId, after: i64, max: usize) -> Result<Vec<(i64, Event)>>;
    /// The recorded pools, of one list or of all.
    fn pools(&mut self, list: Option<&ListId>) -> Result<Vec<Pool>>;
    /// task-sync's pairs of the list, by task id.
    fn sync_pairs(&mut self, list: &ListId) -> Result<Vec<SyncPair>>;
    /// Create a task for each file and record the pairs, all or nothing; conflict when
    /// another process paired one of the files first. Returns the new tasks' ids.
    fn sync_import(&mut self, list: &ListId, imports: &[SyncImport]) -> Result<Vec<TaskId>>;
    /// Record these pairs (replacing a task's earlier one) and forget those of `forget`.
    fn sync_save(&mut self, list: &ListId, pairs: &[SyncPair], forget: &[TaskId]) -> Result<()>;
    /// A counter that changes whenever another connection commits a change of the list
    /// (and maybe at other times: a change is a reason to look, not a promise).
    fn change_counter(&mut self, list: &ListId) -> Result<u64>;
    /// Sleep until another connection may have committed a change of the list, or `max`
    /// passes; the sleep may end early without a change (true: maybe changed). Callers
    /// confirm with [`Store::change_counter`].
    fn wait_change(&mut self, list: &ListId, max: Duration) -> Result<bool>;
    /// For long-running commands: when the server goes away, reconnect (with backoff)
    /// for up to `patience` instead of failing. A transaction the loss interrupted before
    /// its commit is run again. Nothing to do for a file.
    fn keep_trying(&mut self, patience: Duration);
}

/// What a backend looks up inside its write transaction, so that the rules for keys and
/// references (and their messages) live here once, above any SQL.
pub trait Lookup {
    /// The task of the list that has this key.
    fn key(&mut self, key: &str) -> Result<Option<TaskId>>;
    /// Whether the list has a task with this id.
    fn exists(&mut self, id: TaskId) -> Result<bool>;
}

/// The task a reference names: an id as given (whether it exists is the caller's
/// check, as for any id), a key as looked up (an unknown key is not found).
pub fn resolve(look: &mut dyn Lookup, list: &ListId, r: &TaskRef) -> Result<TaskId> {
    match r {
        TaskRef::Id(id) => Ok(*id),
        TaskRef::Key(k) => look
            .key(k)?
            .ok_or_else(|| Error::not_found(format!("no task with key '{k}' in list '{list}'"))),
    }
}

/// [`resolve`] for each reference, in order.
pub fn resolve_all(look: &mut dyn Lookup, list: &ListId, refs: &[TaskRef]) -> Result<Vec<TaskId>> {
    refs.iter().map(|r| resolve(look, list, r)).collect()
}

/// One record of a batch as [`plan_create`] decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A task of the list already has the record's key: nothing is created for it, and
    /// that task stands in its place (its fields and edges are left as they are).
    Existing(TaskId),
    /// The record becomes the N-th (0-based) new task of the batch.
    New(usize),
}

/// A blocker of a new task: a task of the list, or another new task of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    Task(TaskId),
    New(usize),
}

/// What a `create` writes, decided inside its write transaction.
#[derive(Debug, Clone, Default)]
pub struct CreatePlan {
    /// Per record, in input order.
    pub slots: Vec<Slot>,
    /// The records to create (indexes into the batch), in input order.
    pub new: Vec<usize>,
    /// The blockers of each new task, parallel to `new`.
    pub blockers: Vec<Vec<Blocker>>,
}

/// Decide a `create`: which records exist already by key (then `on_conflict` says
/// whether that is fine), and what each new record's blockers are. A reference to a
/// record whose key exists is a reference to that existing task. The records that are
/// skipped are not looked into further: their blockers need not resolve. Nothing here
/// writes, so an error leaves the store as it was once the transaction rolls back.
pub fn plan_create(
    look: &mut dyn Lookup,
    list: &ListId,
    tasks: &[NewTask],
    on_conflict: OnConflict,
) -> Result<CreatePlan> {
    let mut plan = CreatePlan::default();
    for (i, t) in tasks.iter().enumerate() {
        let existing = match &t.key {
            Some(k) => look.key(k)?,
            None => None,
        };
        match existing {
            Some(id) if on_conflict == OnConflict::Error => bail!(
                conflict,
                "{}key '{}' already exists: task {id} in list '{list}' has it (--on-conflict error: nothing was created)",
                t.origin_prefix(),
                t.key.as_deref().unwrap_or_default()
            ),
            Some(id) => plan.slots.push(Slot::Existing(id)),
            None => {
                plan.slots.push(Slot::New(plan.new.len()));
                plan.new.push(i);
            }
        }
    }
    for &i in &plan.new {
        let t = &tasks[i];
        let mut blockers = Vec::with_capacity(t.blocked_by.len());
        for b in &t.blocked_by {
            blockers.push(match b {
                BlockerRef::Id(id) => {
                    if !look.exists(*id)? {
                        bail!(
                            not_found,
                            "{}blocker {id} not found in list '{list}'",
                            t.origin_prefix()
                        );
                    }
                    Blocker::Task(*id)
                }
                BlockerRef::Key(k) => match look.key(k)? {
                    Some(id) => Blocker::Task(id),
                    None if t.origin.is_empty() => {
                        bail!(not_found, "blocker key '{k}' not found: no task in list '{list}' has it")
                    }
                    None => bail!(
                        not_found,
                        "{}blocker key '{k}' not found: no record of this batch and no task in list '{list}' has it",
                        t.origin_prefix()
                    ),
                },
                BlockerRef::Record(j) => match plan.slots[*j] {
                    Slot::Existing(id) => Blocker::Task(id),
                    Slot::New(n) => Blocker::New(n),
                },
            });
        }
        plan.blockers.push(blockers);
    }
    Ok(plan)
}

/// The stalled tasks among `tasks` (pending, waiting transitively on a failed or
/// cancelled task). The list is asked only when one of them waits on a blocker at all.
pub fn stalled_among(store: &mut dyn Store, list: &ListId, tasks: &[Task]) -> Result<Stalled> {
    if !tasks
        .iter()
        .any(|t| t.status == Status::Pending && !t.open_blockers.is_empty())
    {
        return Ok(Stalled::new());
    }
    let mut stalled = store.stalled(list)?;
    let among: std::collections::HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
    stalled.retain(|id, _| among.contains(id));
    Ok(stalled)
}

/// When `list` never had a task (a typo in `--list` or `CLAUDE_CODE_TASK_LIST_ID`): a
/// message naming it and the lists the store has. A list whose tasks were all deleted
/// still exists. Callers ask only once they found no task, so a busy list costs nothing.
pub fn unknown_list(store: &mut dyn Store, list: &ListId) -> Result<Option<String>> {
    let lists = store.lists()?;
    if lists.iter().any(|l| l.name == list.as_str()) {
        return Ok(None);
    }
    let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
    let have = match names.len() {
        0 => "the store has no lists yet".to_string(),
        _ => format!("the store's lists: {}", names.join(", ")),
    };
    Ok(Some(format!("list '{list}' does not exist ({have})")))
}

/// Why the claim on an in-progress task is lost, if it is: its lease ran out (`now` in
/// ms), or its holder is a process of `host` that is gone.
pub fn loss(t: &Task, now: i64, host: &str, alive: &dyn Fn(&Holder) -> bool) -> Option<String> {
    if t.status != Status::InProgress {
        return None;
    }
    if let Some(until) = t.lease_until.filter(|&u| u < now) {
        return Some(format!(
            "its lease ran out at {}",
            crate::time::rfc3339(until)
        ));
    }
    match &t.holder {
        Some(h) if h.host == host && !alive(h) => {
            Some(format!("its process {} on {} is gone", h.pid, h.host))
        }
        _ => None,
    }
}

/// What becomes of a task whose claim was lost (`why`): back to pending while attempts
/// remain — the next claim counts a new one — else failed, instead of running past
/// `maxAttempts`. Its log gains a line naming the attempt that lost its worker.
pub fn after_loss(t: &Task, why: &str) -> (Status, String) {
    let owner = t
        .owner
        .as_deref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default();
    let mut line = format!("attempt {}{owner}{LOST}{why}", t.attempts);
    let status = if t.attempts >= t.max_attempts {
        line += &format!(
            "; no attempts left ({} of {} used)",
            t.attempts, t.max_attempts
        );
        Status::Failed
    } else {
        Status::Pending
    };
    let log = match t.log.as_deref() {
        Some(old) if !old.is_empty() => format!("{}\n{line}", old.trim_end_matches('\n')),
        _ => line,
    };
    (status, log)
}

/// What marks a loss line in a log ("attempt 2 (w1) lost its worker: …").
const LOST: &str = " lost its worker: ";

/// The log recorded when a worker finishes: the loss lines of earlier attempts, kept, then
/// what this attempt left (its stderr tail), so the log still says which attempts lost
/// their worker.
pub fn carry_losses(old: Option<&str>, new: Option<String>) -> Option<String> {
    let kept: Vec<&str> = old
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("attempt ") && l.contains(LOST))
        .collect();
    if kept.is_empty() {
        return new;
    }
    let mut log = kept.join("\n");
    if let Some(n) = new.filter(|n| !n.is_empty()) {
        log.push('\n');
        log += &n;
    }
    Some(log)
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
    /// Writes, and makes the store when there is none (task-create, task-sync,
    /// `worker-spawn --follow`). The others refuse a store that does not exist: a typo
    /// in `TASK_DB` must not pass for an empty store (`task-wait && deploy`).
    Create,
}

impl Access {
    pub fn writes(self) -> bool {
        self != Access::Read
    }
}

/// The error of a command that may not create the store and finds none at `name`.
fn no_store(name: &str, what: &str) -> Error {
    Error::not_found(format!(
        "no task store at {name}{what} — task-create makes one; check --db/TASK_DB"
    ))
}

/// How long a long-running command (worker-spawn, task-wait without --timeout) keeps
/// reconnecting to a PostgreSQL server that went away.
pub const PATIENCE: Duration = Duration::from_secs(600);

/// Whether `location` names a PostgreSQL store rather than a SQLite file.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The store as it may be shown anywhere: a URL with its password elided
/// (`postgres://ann:***@db/tasks`, also a `password=` parameter); a path as it is.
pub fn display_name(location: &str) -> String {
    if !is_url(location) {
        return location.to_string();
    }
    let (scheme, rest) = location.split_once("://").unwrap_or(("", location));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail: Vec<String> = tail
        .split('&')
        .map(|part| match part.find("password=") {
            Some(i) if i == 0 || part[..i].ends_with('?') => format!("{}password=***", &part[..i]),
            _ => part.to_string(),
        })
        .collect();
    format!("{scheme}://{authority}{}", tail.join("&"))
}

fn newer_schema(version: i64) -> Error {
    Error::store_cause(
        crate::error::Cause::NewerSchema,
        format!("schema version {version} is newer than this binary knows ({SCHEMA_VERSION}); upgrade parallel-tasks"),
    )
}

/// Open (creating if needed) the store at `location`: a file path, or a
/// `postgres://` / `postgresql://` URL.
pub fn open(location: &Path, sync: Sync, access: Access) -> Result<Box<dyn Store>> {
    let s = location.to_string_lossy();
    if is_url(&s) {
        return Ok(Box::new(sql::SqlStore::new(postgres::PgDb::open(
            &s, access,
        )?)));
    }
    Ok(Box::new(sql::SqlStore::new(sqlite::SqliteDb::open(
        location, sync, access,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn a_password_is_never_shown() {
        for (url, shown) in [
            (
                "postgres://ann:s3cr:t@db.example/tasks",
                "postgres://ann:***@db.example/tasks",
            ),
            (
                "postgresql://ann:pw@h:5433/t?sslmode=disable",
                "postgresql://ann:***@h:5433/t?sslmode=disable",
            ),
            ("postgres://ann@h/t", "postgres://ann@h/t"),
            (
                "postgres://h/t?password=pw&user=ann",
                "postgres://h/t?password=***&user=ann",
            ),
            (
                "postgres://h/t?user=ann&password=pw",
                "postgres://h/t?user=ann&password=***",
            ),
            ("/tmp/tasks.db", "/tmp/tasks.db"),
        ] {
            assert_eq!(display_name(url), shown, "{url}");
        }
    }
}
