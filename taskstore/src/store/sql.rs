//! The one implementation of [`Store`] over any SQL engine. Everything a task store does
//! is here once — queries, edges, claims, updates — written against [`Db`], a handful
//! of primitives (begin, query, execute, commit) that each backend provides, plus a
//! [`Dialect`] for the few spots where SQLite and PostgreSQL spell things differently.
//!
//! SQL is written with numbered placeholders (`?1`, `?2`, …), which SQLite takes as
//! they are and the PostgreSQL backend rewrites to `$1`, `$2`, …; dynamic statements
//! number theirs with [`Args::p`].

use super::{
    after_loss, carry_losses, loss, plan_create, resolve_all, Blocker, Claim, Counts, Filter,
    Holder, ListSummary, Lookup, Outcome, OwnerChange, Pool, Release, Slot, Stalled, Store,
    SyncImport, SyncPair, Update,
};
use crate::bail;
use crate::error::{Cause, Error, Result};
use crate::graph;
use crate::model::{
    scope_keys, Event, ListId, NewTask, OnConflict, Status, StatusFilter, Task, TaskId,
};
use crate::probe;
use crate::time::duration_ms;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A bound parameter, or a value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(v.clone())
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Arg {
        v.map_or(Arg::Null, Into::into)
    }
}

/// Parameters of a statement built at run time: [`Args::p`] binds one and returns its
/// placeholder.
#[derive(Debug, Default)]
pub struct Args(pub Vec<Arg>);

impl Args {
    pub fn p(&mut self, a: impl Into<Arg>) -> String {
        self.0.push(a.into());
        format!("?{}", self.0.len())
    }
}

/// One row of a result, columns in `SELECT` order.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Arg>);

fn bad_column(i: usize, want: &str) -> Error {
    Error::store(format!(
        "the store returned an unexpected value in column {i} (expected {want})"
    ))
}

impl Row {
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.0.get(i) {
            Some(Arg::Int(v)) => Ok(Some(*v)),
            Some(Arg::Null) => Ok(None),
            _ => Err(bad_column(i, "an integer")),
        }
    }
    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| bad_column(i, "an integer"))
    }
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.0.get(i) {
            Some(Arg::Text(v)) => Ok(Some(v.clone())),
            Some(Arg::Null) => Ok(None),
            _ => Err(bad_column(i, "text")),
        }
    }
    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| bad_column(i, "text"))
    }
    fn status(&self, i: usize) -> Result<Status> {
        self.text(i)?.parse()
    }
}

/// Where the engines' SQL differs.
pub struct Dialect {
    /// An expression giving a new random claim token.
    pub random_token: &'static str,
    /// Appended to the claim's choice of candidate: PostgreSQL skips the rows other
    /// claimers have locked instead of queueing behind them.
    pub skip_locked: &'static str,
    /// A statement that serialises the writers of one list (`?1` = the list's key) —
    /// taken by writes that read before they write (keys, cycles, `--limit` counts).
    /// None where every write transaction already excludes the others (SQLite).
    pub lock_list: Option<&'static str>,
    /// How a metadata key is bound: SQLite wants a JSON path, PostgreSQL the key.
    pub meta_key: fn(&str) -> String,
    /// The value of a metadata key (`col`: the JSON column, `key`: the bound key's
    /// placeholder), comparable with another such value or with [`Dialect::json`].
    pub meta_get: fn(col: &str, key: &str) -> String,
    /// A bound JSON text (placeholder `p`), comparable with [`Dialect::meta_get`].
    pub json: fn(p: &str) -> String,
}

/// What a backend provides: a connection that runs statements inside explicit
/// transactions, and a signal that another connection committed a change.
pub trait Db: Send {
    fn dialect(&self) -> &'static Dialect;
    /// Begin a transaction (`write`: one that will write, so that it cannot fail later
    /// on a lock upgrade). Returns the time of the transaction, in ms since the Unix
    /// epoch, by the store's clock (PostgreSQL: the server's).
    fn begin(&mut self, write: bool) -> Result<i64>;
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self);
    fn query(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>>;
    /// Rows changed.
    fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64>;
    /// A batch of this many tasks is about to be written.
    fn expect_rows(&mut self, _n: usize) -> Result<()> {
        Ok(())
    }
    /// Turn a failure inside a write transaction into the message a person should see.
    fn explain(&self, e: Error) -> Error {
        e
    }
    /// A counter that changes whenever another connection commits a change of `list`.
    fn change_counter(&mut self, list: &ListId) -> Result<u64>;
    /// Sleep until another connection may have committed a change of `list`, or `max`
    /// passes (at most a short backstop interval). True when something may have changed.
    fn wait_change(&mut self, list: &ListId, max: Duration) -> Result<bool>;
    /// See [`Store::keep_trying`].
    fn keep_trying(&mut self, _patience: Duration) {}
    /// After a failure: true when the connection was lost and is back (see
    /// [`Store::keep_trying`]), so that a transaction it interrupted can run again.
    fn recovered(&mut self, _e: &Error) -> bool {
        false
    }
}

/// Rows a statement when a batch is written (13 parameters a row: well under SQLite's
/// limit of 32 766 parameters and PostgreSQL's of 65 535).
const CHUNK: usize = 256;

mod depth;

/// How often a write that meets a deadlock or a serialisation failure (PostgreSQL under
/// contention) is run again from the start before the error is reported.
const RETRIES: usize = 20;

/// Columns read into a `Task`, in [`task_from_row`] order.
const COLS: &str = "id, subject, description, active_form, status, owner, priority, metadata, \
    attempts, max_attempts, result, log, exit_code, claim_token, lease_until, \
    created_at, updated_at, started_at, finished_at, holder_host, holder_pid, holder_start, key, \
    verify, feedback, depth, output_dir";

/// Pending tasks that (transitively) wait for a failed or cancelled task. Binds ?1 = list.
const DEAD_CTE: &str = "WITH RECURSIVE dead(id) AS ( \
    SELECT id FROM tasks WHERE list_id = ?1 AND status IN ('failed','cancelled') \
    UNION SELECT e.blocked FROM dead d JOIN edges e ON e.list_id = ?1 AND e.blocker = d.id \
    JOIN tasks b ON b.list_id = ?1 AND b.id = e.blocked AND b.status = 'pending') ";

/// Columns reset when a task goes back to pending (set apart: each column may be
/// assigned once): nobody holds it any more.
const UNCLAIMED: &str = "claim_token = NULL, lease_until = NULL, \
    holder_host = NULL, holder_pid = NULL, holder_start = NULL, started_at = NULL, finished_at = NULL, \
    output_dir = NULL";

/// A [`Store`] over a backend's [`Db`].
pub struct SqlStore<D: Db> {
    pub db: D,
}

/// A transaction in progress: the connection and the transaction's time.
pub struct Tx<'a, D: Db> {
    db: &'a mut D,
    now: i64,
    /// A write transaction: it may have changed depths, which reads bring up to date.
    write: bool,
}

impl<D: Db> Tx<'_, D> {
    fn q(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        self.db.query(sql, args)
    }
    fn one(&mut self, sql: &str, args: &[Arg]) -> Result<Option<Row>> {
        Ok(self.db.query(sql, args)?.into_iter().next())
    }
    fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        self.db.execute(sql, args)
    }
    fn d(&self) -> &'static Dialect {
        self.db.dialect()
    }

    fn list_pk(&mut self, list: &ListId) -> Result<Option<i64>> {
        self.one(
            "SELECT id FROM lists WHERE name = ?1",
            &[list.as_str().into()],
        )?
        .map(|r| r.int(0))
        .transpose()
    }

    /// The list's key, the list created if missing.
    fn ensure_list(&mut self, list: &ListId) -> Result<i64> {
        if let Some(pk) = self.list_pk(list)? {
            return Ok(pk);
        }
        let now = self.now;
        let made = self.one(
            "INSERT INTO lists (name, created_at) VALUES (?1, ?2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[list.as_str().into(), now.into()],
        )?;
        match made {
            Some(r) => r.int(0),
            // Another writer created it in the meantime.
            None => self
                .list_pk(list)?
                .ok_or_else(|| Error::store(format!("list '{list}' vanished while being created"))),
        }
    }

    /// Serialise with the list's other writers, where the engine does not already.
    fn lock_list(&mut self, lpk: i64) -> Result<()> {
        if let Some(sql) = self.d().lock_list {
            self.q(sql, &[lpk.into()])?;
        }
        Ok(())
    }

    fn exists(&mut self, lpk: i64, id: TaskId) -> Result<bool> {
        Ok(self
            .one(
                "SELECT 1 FROM tasks WHERE list_id = ?1 AND id = ?2",
                &[lpk.into(), id.0.into()],
            )?
            .is_some())
    }

    /// Record a change of a task in its history.
    fn event(
        &mut self,
        lpk: i64,
        id: TaskId,
        kind: &str,
        by: Option<&str>,
        detail: Value,
    ) -> Result<()> {
        let now = self.now;
        self.exec(
            "INSERT INTO events (list_id, task, at, kind, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            &[lpk.into(), id.0.into(), now.into(), kind.into(), by.into(), detail.to_string().into()],
        )?;
        Ok(())
    }

    /// Fill in both directions of the task's edges.
    fn load_edges(&mut self, lpk: i64, t: &mut Task) -> Result<()> {
        let rows = self.q(
            "SELECT e.blocker, b.status FROM edges e JOIN tasks b ON b.list_id = e.list_id AND b.id = e.blocker \
             WHERE e.list_id = ?1 AND e.blocked = ?2 ORDER BY e.blocker",
            &[lpk.into(), t.id.0.into()],
        )?;
        for r in rows {
            let id = TaskId(r.int(0)?);
            t.blocked_by.push(id);
            if r.status(1)? != Status::Completed {
                t.open_blockers.push(id);
            }
        }
        let rows = self.q(
            "SELECT blocked FROM edges WHERE list_id = ?1 AND blocker = ?2 ORDER BY blocked",
            &[lpk.into(), t.id.0.into()],
        )?;
        t.blocks = rows
            .iter()
            .map(|r| r.int(0).map(TaskId))
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// Fill in the edges of many tasks (in id order). Two range scans over the edge
    /// indexes when the tasks are dense in their id range — a listing, not one query per
    /// task — else task by task.
    fn load_edges_of(&mut self, lpk: i64, tasks: &mut [Task]) -> Result<()> {
        let (Some(first), Some(last)) = (tasks.first(), tasks.last()) else {
            return Ok(());
        };
        let (lo, hi) = (first.id.0, last.id.0);
        if tasks.len() < 4 || (hi - lo) as usize >= 4 * tasks.len() {
            for t in tasks.iter_mut() {
                self.load_edges(lpk, t)?;
            }
            return Ok(());
        }
        let at: std::collections::HashMap<i64, usize> =
            tasks.iter().enumerate().map(|(i, t)| (t.id.0, i)).collect();
        let range = [lpk.into(), lo.into(), hi.into()];
        let rows = self.q(
            "SELECT e.blocked, e.blocker, b.status FROM edges e \
             JOIN tasks b ON b.list_id = e.list_id AND b.id = e.blocker \
             WHERE e.list_id = ?1 AND e.blocked BETWEEN ?2 AND ?3 ORDER BY e.blocked, e.blocker",
            &range,
        )?;
        for r in rows {
            let Some(&i) = at.get(&r.int(0)?) else {
                continue;
            };
            let id = TaskId(r.int(1)?);
            tasks[i].blocked_by.push(id);
            if r.status(2)? != Status::Completed {
                tasks[i].open_blockers.push(id);
            }
        }
        let rows = self.q(
            "SELECT blocker, blocked FROM edges WHERE list_id = ?1 AND blocker BETWEEN ?2 AND ?3 \
             ORDER BY blocker, blocked",
            &range,
        )?;
        for r in rows {
            if let Some(&i) = at.get(&r.int(0)?) {
                tasks[i].blocks.push(TaskId(r.int(1)?));
            }
        }
        Ok(())
    }

    /// `WHERE` terms of a filter (after `list_id = ?1`), with their parameters appended.
    /// The second value tells whether the stalled CTE must prefix the statement.
    fn filter_sql(&self, filter: &Filter, args: &mut Args) -> (String, bool) {
        let d = self.d();
        let mut sql = String::new();
        let mut dead = false;
        if !filter.ids.is_empty() {
            let ids: Vec<String> = filter.ids.iter().map(|i| i.0.to_string()).collect();
            sql += &format!(" AND id IN ({})", ids.join(","));
        }
        if !filter.statuses.is_empty() {
            let terms: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| match s {
                    StatusFilter::Is(st) => format!("status = '{}'", st.as_str()),
                    StatusFilter::Ready => "(status = 'pending' AND open_blockers = 0)".into(),
                    StatusFilter::Blocked => "(status = 'pending' AND open_blockers > 0)".into(),
                    StatusFilter::Open => "status IN ('pending','in_progress')".into(),
                    StatusFilter::Done => "status IN ('completed','failed','cancelled')".into(),
                    StatusFilter::Stalled => {
                        dead = true;
                        "(status = 'pending' AND id IN (SELECT id FROM dead))".into()
                    }
                })
                .collect();
            sql += &format!(" AND ({})", terms.join(" OR "));
        }
        if let Some(owner) = &filter.owner {
            sql += &format!(" AND owner = {}", args.p(owner));
        }
        for (k, v) in &filter.metadata {
            let key = args.p((d.meta_key)(k));
            let value = args.p(v.to_string());
            sql += &format!(
                " AND {} = {}",
                (d.meta_get)("metadata", &key),
                (d.json)(&value)
            );
        }
        (sql, dead)
    }

    fn select_tasks(&mut self, lpk: i64, list: &ListId, filter: &Filter) -> Result<Vec<Task>> {
        if self.write {
            // What a write prints shows the depths it leads to.
            self.refresh_depths()?;
        }
        for &id in &filter.ids {
            if !self.exists(lpk, id)? {
                return Err(not_found(id, list));
            }
        }
        let mut args = Args(vec![lpk.into()]);
        let (terms, dead) = self.filter_sql(filter, &mut args);
        let mut sql = format!(
            "{}SELECT {COLS} FROM tasks WHERE list_id = ?1{terms} ORDER BY id",
            if dead { DEAD_CTE } else { "" }
        );
        if let Some(n) = filter.limit {
            sql += &format!(" LIMIT {n}");
        }
        let mut tasks: Vec<Task> = self
            .q(&sql, &args.0)?
            .iter()
            .map(|r| task_from_row(r, list))
            .collect::<Result<_>>()?;
        self.load_edges_of(lpk, &mut tasks)?;
        self.load_scopes(lpk, &mut tasks)?;
        Ok(tasks)
    }

    fn one_task(&mut self, lpk: i64, list: &ListId, id: TaskId) -> Result<Task> {
        let filter = Filter {
            ids: vec![id],
            ..Filter::default()
        };
        self.select_tasks(lpk, list, &filter)?
            .pop()
            .ok_or_else(|| not_found(id, list))
    }

    /// Add the edge "`blocked` waits for `blocker`", refusing self edges and cycles.
    fn add_edge(
        &mut self,
        lpk: i64,
        list: &ListId,
        blocker: TaskId,
        blocked: TaskId,
    ) -> Result<()> {
        if blocker == blocked {
            bail!(usage, "task {blocker} cannot block itself");
        }
        for id in [blocker, blocked] {
            if !self.exists(lpk, id)? {
                return Err(not_found(id, list));
            }
        }
        // A cycle closes when `blocker` already (transitively) waits for `blocked`.
        let cycle = self.one(
            "WITH RECURSIVE down(id) AS (SELECT CAST(?2 AS BIGINT) UNION \
             SELECT e.blocked FROM edges e JOIN down d ON e.list_id = ?1 AND e.blocker = d.id) \
             SELECT 1 FROM down WHERE id = ?3",
            &[lpk.into(), blocked.0.into(), blocker.0.into()],
        )?;
        if cycle.is_some() {
            bail!(
                usage,
                "dependency cycle: {blocked} blocked by {blocker}, but {blocker} already waits for {blocked}"
            );
        }
        self.insert_edge(lpk, blocker.0, blocked.0)
    }

    fn insert_edge(&mut self, lpk: i64, blocker: i64, blocked: i64) -> Result<()> {
        self.exec(
            "INSERT INTO edges (list_id, blocker, blocked) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            &[lpk.into(), blocker.into(), blocked.into()],
        )?;
        Ok(())
    }

    fn remove_edge(&mut self, lpk: i64, blocker: TaskId, blocked: TaskId) -> Result<()> {
        self.exec(
            "DELETE FROM edges WHERE list_id = ?1 AND blocker = ?2 AND blocked = ?3",
            &[lpk.into(), blocker.0.into(), blocked.0.into()],
        )?;
        Ok(())
    }

    /// Current status, owner, metadata and claim token of a task, or not found.
    fn current(&mut self, lpk: i64, list: &ListId, id: TaskId) -> Result<Current> {
        let r = self
            .one(
                "SELECT status, owner, metadata, claim_token FROM tasks WHERE list_id = ?1 AND id = ?2",
                &[lpk.into(), id.0.into()],
            )?
            .ok_or_else(|| not_found(id, list))?;
        Ok(Current {
            status: r.status(0)?,
            owner: r.opt_text(1)?,
            metadata: r.text(2)?,
            token: r.opt_int(3)?,
        })
    }

    /// Recover the lost claims of one list (see `Store::reap`); `host` empty: lease
    /// expiry only. Returns the ids of the tasks recovered.
    /// Make `scopes` the task's write scopes: its keys rewritten, and the held ones too
    /// while it is in progress (the triggers only act on a change of status).
    fn set_scopes(&mut self, lpk: i64, id: TaskId, scopes: &[String]) -> Result<()> {
        let args = [lpk.into(), id.0.into()];
        self.exec(
            "DELETE FROM scope_keys WHERE list_id = ?1 AND task = ?2",
            &args,
        )?;
        self.exec(
            "DELETE FROM held_scopes WHERE list_id = ?1 AND task = ?2",
            &args,
        )?;
        let mut keys: Vec<(String, bool)> = scopes.iter().flat_map(|s| scope_keys(s)).collect();
        keys.sort();
        keys.dedup();
        for chunk in keys.chunks(CHUNK) {
            let mut a = Args::default();
            let rows: Vec<String> = chunk
                .iter()
                .map(|(k, exact)| {
                    format!(
                        "({}, {}, {}, {})",
                        a.p(lpk),
                        a.p(id.0),
                        a.p(k.as_str()),
                        a.p(*exact as i64)
                    )
                })
                .collect();
            self.exec(
                &format!(
                    "INSERT INTO scope_keys (list_id, task, key, exact) VALUES {} ON CONFLICT DO NOTHING",
                    rows.join(", ")
                ),
                &a.0,
            )?;
        }
        self.exec(
            "INSERT INTO held_scopes (list_id, task, key, exact) \
             SELECT k.list_id, k.task, k.key, k.exact FROM scope_keys k \
             JOIN tasks t ON t.list_id = k.list_id AND t.id = k.task AND t.status = 'in_progress' \
             WHERE k.list_id = ?1 AND k.task = ?2",
            &args,
        )?;
        Ok(())
    }

    /// Fill in the tasks' scopes (exact keys), for tasks in id order between the first's
    /// and the last's.
    fn load_scopes(&mut self, lpk: i64, tasks: &mut [Task]) -> Result<()> {
        let (Some(first), Some(last)) = (tasks.first(), tasks.last()) else {
            return Ok(());
        };
        let at: std::collections::HashMap<i64, usize> =
            tasks.iter().enumerate().map(|(i, t)| (t.id.0, i)).collect();
        let rows = self.q(
            "SELECT task, key FROM scope_keys WHERE list_id = ?1 AND task BETWEEN ?2 AND ?3 \
             AND exact = 1 ORDER BY task, key",
            &[lpk.into(), first.id.0.into(), last.id.0.into()],
        )?;
        for r in rows {
            if let Some(&i) = at.get(&r.int(0)?) {
                tasks[i].scopes.push(r.text(1)?);
            }
        }
        Ok(())
    }

    /// Create a batch of tasks as [`plan_create`] decides (see [`Store::create`]).
    fn insert_tasks(
        &mut self,
        list: &ListId,
        tasks: &[NewTask],
        on_conflict: OnConflict,
    ) -> Result<Vec<TaskId>> {
        let lpk = self.ensure_list(list)?;
        // Checking a key and inserting it with the list's writers excluded: no other
        // writer can insert the same key in between.
        self.lock_list(lpk)?;
        let plan = plan_create(&mut LookupIn { tx: self, lpk }, list, tasks, on_conflict)?;
        let n = plan.new.len() as i64;
        let first = if n == 0 {
            0
        } else {
            let last = self
                .one(
                    "UPDATE lists SET last_id = last_id + ?2 WHERE id = ?1 RETURNING last_id",
                    &[lpk.into(), n.into()],
                )?
                .ok_or_else(|| Error::store(format!("list '{list}' vanished")))?
                .int(0)?;
            last - n + 1
        };
        let now = self.now;
        // Many rows a statement: one round trip per chunk on a server.
        for (c, chunk) in plan.new.chunks(CHUNK).enumerate() {
            let mut a = Args::default();
            let mut rows = Vec::with_capacity(chunk.len());
            for (k, &i) in chunk.iter().enumerate() {
                let t = &tasks[i];
                let id = first + (c * CHUNK + k) as i64;
                let meta = serde_json::to_string(&t.metadata).expect("a JSON object serialises");
                let now = a.p(now);
                rows.push(format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {now}, {now})",
                    a.p(lpk),
                    a.p(id),
                    a.p(t.key.as_deref()),
                    a.p(t.subject.as_str()),
                    a.p(t.description.as_str()),
                    a.p(t.active_form.as_deref()),
                    a.p(t.owner.as_deref()),
                    a.p(t.priority),
                    a.p(meta),
                    a.p(t.max_attempts),
                    a.p(t.verify.as_deref()),
                ));
            }
            self.exec(
                &format!(
                    "INSERT INTO tasks (list_id, id, key, subject, description, active_form, owner, \
                     priority, metadata, max_attempts, verify, created_at, updated_at) VALUES {}",
                    rows.join(", ")
                ),
                &a.0,
            )?;
        }
        if n > 0 {
            // The new tasks are the list's ids from `first` up: one statement for all.
            self.exec(
                "INSERT INTO events (list_id, task, at, kind, actor) \
                 SELECT list_id, id, ?3, 'created', ?4 FROM tasks WHERE list_id = ?1 AND id >= ?2",
                &[
                    lpk.into(),
                    first.into(),
                    now.into(),
                    crate::host::user().into(),
                ],
            )?;
        }
        let mut scoped = Vec::new();
        for (n, &i) in plan.new.iter().enumerate() {
            if !tasks[i].scopes.is_empty() {
                scoped.push((TaskId(first + n as i64), tasks[i].scopes.clone()));
            }
        }
        for (id, scopes) in scoped {
            self.set_scopes(lpk, id, &scopes)?;
        }
        let mut edges = Vec::new();
        for (n, blockers) in plan.blockers.iter().enumerate() {
            for b in blockers {
                let blocker = match *b {
                    Blocker::Task(id) => id.0,
                    Blocker::New(j) => first + j as i64,
                };
                edges.push((blocker, first + n as i64));
            }
        }
        for chunk in edges.chunks(CHUNK) {
            let mut a = Args::default();
            let rows: Vec<String> = chunk
                .iter()
                .map(|&(blocker, blocked)| {
                    format!("({}, {}, {})", a.p(lpk), a.p(blocker), a.p(blocked))
                })
                .collect();
            self.exec(
                &format!(
                    "INSERT INTO edges (list_id, blocker, blocked) VALUES {} ON CONFLICT DO NOTHING",
                    rows.join(", ")
                ),
                &a.0,
            )?;
        }
        Ok(plan
            .slots
            .iter()
            .map(|slot| match *slot {
                Slot::Existing(id) => id,
                Slot::New(n) => TaskId(first + n as i64),
            })
            .collect())
    }

    fn reap_in(
        &mut self,
        lpk: i64,
        list: &ListId,
        by: &str,
        host: &str,
        alive: &dyn Fn(&Holder) -> bool,
    ) -> Result<Vec<TaskId>> {
        let now = self.now;
        // Without a host to check (a claim), only leases that ran out: a range of the
        // partial index on leases, however many tasks are in progress.
        let mut args = vec![lpk.into(), now.into()];
        let which = match host {
            "" => "lease_until < ?2",
            _ => {
                args.push(host.into());
                "(lease_until < ?2 OR holder_host = ?3)"
            }
        };
        let held: Vec<Task> = self
            .q(
                &format!(
                    "SELECT {COLS} FROM tasks WHERE list_id = ?1 AND status = 'in_progress' AND {which}"
                ),
                &args,
            )?
            .iter()
            .map(|r| task_from_row(r, list))
            .collect::<Result<_>>()?;
        let mut recovered = Vec::new();
        let mut locked = false;
        for t in held {
            let Some(why) = loss(&t, now, host, alive) else {
                continue;
            };
            if !locked {
                // A task that fails here changes depths, which takes the list: take it
                // before the task, the order of every other writer (see finish).
                self.lock_list(lpk)?;
                locked = true;
            }
            let (status, log) = after_loss(&t, &why);
            let reset = match status {
                Status::Pending => format!("status = 'pending', {UNCLAIMED}, owner = NULL"),
                _ => "status = 'failed', lease_until = NULL, finished_at = ?5".into(),
            };
            // Only while the claim is still the one read: another reaper may be quicker.
            let n = self.exec(
                &format!(
                    "UPDATE tasks SET {reset}, log = ?4, updated_at = ?5 WHERE list_id = ?1 AND id = ?2 \
                     AND claim_token IS NOT DISTINCT FROM ?3 AND status = 'in_progress'"
                ),
                &[lpk.into(), t.id.0.into(), t.claim_token.into(), log.into(), now.into()],
            )?;
            if n > 0 {
                let detail = json!({
                    "from": t.owner,
                    "attempt": t.attempts,
                    "why": why,
                    "status": status.as_str(),
                });
                self.event(lpk, t.id, "taken_over", Some(by), detail)?;
                recovered.push(t.id);
            }
        }
        Ok(recovered)
    }
}

/// What an update checks a task against.
struct Current {
    status: Status,
    owner: Option<String>,
    metadata: String,
    token: Option<i64>,
}

/// The look-ups of [`plan_create`] and [`resolve_all`], inside the write transaction.
struct LookupIn<'t, 'a, D: Db> {
    tx: &'t mut Tx<'a, D>,
    lpk: i64,
}

impl<D: Db> Lookup for LookupIn<'_, '_, D> {
    fn key(&mut self, key: &str) -> Result<Option<TaskId>> {
        self.tx
            .one(
                "SELECT id FROM tasks WHERE list_id = ?1 AND key = ?2",
                &[self.lpk.into(), key.into()],
            )?
            .map(|r| r.int(0).map(TaskId))
            .transpose()
    }

    fn exists(&mut self, id: TaskId) -> Result<bool> {
        self.tx.exists(self.lpk, id)
    }
}

fn not_found(id: TaskId, list: &ListId) -> Error {
    Error::not_found(format!("task {id} not found in list '{list}'"))
}

fn json_object(s: &str) -> Map<String, Value> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn task_from_row(r: &Row, list: &ListId) -> Result<Task> {
    Ok(Task {
        id: TaskId(r.int(0)?),
        list: list.to_string(),
        key: r.opt_text(22)?,
        subject: r.text(1)?,
        description: r.text(2)?,
        active_form: r.opt_text(3)?,
        status: r.status(4)?,
        owner: r.opt_text(5)?,
        priority: r.int(6)?,
        metadata: json_object(&r.text(7)?),
        scopes: Vec::new(),
        verify: r.opt_text(23)?,
        feedback: r.opt_text(24)?,
        depth: r.int(25)?,
        output_dir: r.opt_text(26)?,
        attempts: r.int(8)?,
        max_attempts: r.int(9)?,
        result: r.opt_text(10)?,
        log: r.opt_text(11)?,
        exit_code: r.opt_int(12)?,
        claim_token: r.opt_int(13)?,
        lease_until: r.opt_int(14)?,
        created_at: r.int(15)?,
        updated_at: r.int(16)?,
        started_at: r.opt_int(17)?,
        finished_at: r.opt_int(18)?,
        holder: match r.opt_text(19)? {
            Some(host) => Some(Holder {
                host,
                pid: r.int(20)? as u32,
                started: r.int(21)? as u64,
            }),
            None => None,
        },
        blocked_by: Vec::new(),
        open_blockers: Vec::new(),
        blocks: Vec::new(),
    })
}

fn check_if_status(id: TaskId, current: Status, wanted: &[Status]) -> Result<()> {
    if wanted.is_empty() || wanted.contains(&current) {
        return Ok(());
    }
    let names: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
    bail!(
        conflict,
        "task {id} is {current}, not {}",
        names.join(" or ")
    )
}

/// The task must still be held by the claim with `token` (`--token`).
fn check_token(id: TaskId, c: &Current, token: i64) -> Result<()> {
    if c.status != Status::InProgress {
        bail!(
            conflict,
            "task {id} is no longer held by that claim: it is {}",
            c.status
        );
    }
    if c.token != Some(token) {
        bail!(
            conflict,
            "task {id} is no longer held by that claim: it was claimed again"
        );
    }
    Ok(())
}

fn dedup(ids: &[TaskId]) -> Vec<TaskId> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|i| seen.insert(*i)).collect()
}

fn taken_over(id: TaskId) -> Error {
    Error::conflict(format!(
        "task {id} was taken over by another worker; its outcome was not recorded"
    ))
}

impl<D: Db> SqlStore<D> {
    pub fn new(db: D) -> SqlStore<D> {
        SqlStore { db }
    }

    /// Run reads in one transaction: one snapshot, one lock round.
    fn read<T>(&mut self, mut f: impl FnMut(&mut Tx<D>) -> Result<T>) -> Result<T> {
        loop {
            let result = self.db.begin(false).and_then(|now| {
                let mut tx = Tx {
                    db: &mut self.db,
                    now,
                    write: false,
                };
                let v = f(&mut tx)?;
                probe::phase("statement");
                self.db.commit()?;
                probe::phase("commit");
                Ok(v)
            });
            match result {
                Err(e) if self.db.recovered(&e) => continue,
                Err(e) => {
                    self.db.rollback();
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// Run a write transaction, all or nothing; run again from the start when the engine
    /// gave up on it for a deadlock or a serialisation failure.
    fn write<T>(&mut self, mut f: impl FnMut(&mut Tx<D>) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut committing = false;
            let result = self.db.begin(true).and_then(|now| {
                let mut tx = Tx {
                    db: &mut self.db,
                    now,
                    write: true,
                };
                let v = f(&mut tx)?;
                tx.refresh_depths()?;
                probe::phase("statement");
                committing = true;
                self.db.commit()?;
                probe::phase("commit");
                Ok(v)
            });
            match result {
                Ok(v) => return Ok(v),
                // Lost before the commit was sent: the server rolled it back; run it
                // again. A loss during the commit is reported: it may have committed.
                Err(e) if !committing && self.db.recovered(&e) => continue,
                Err(e) => {
                    self.db.rollback();
                    if e.cause == Some(Cause::Retry) && attempt < RETRIES {
                        continue;
                    }
                    return Err(self.db.explain(e));
                }
            }
        }
    }
}

impl<D: Db> Store for SqlStore<D> {
    fn create(
        &mut self,
        list: &ListId,
        tasks: &[NewTask],
        on_conflict: OnConflict,
    ) -> Result<Vec<TaskId>> {
        graph::validate_batch(tasks)?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        self.db.expect_rows(tasks.len())?;
        self.write(|tx| tx.insert_tasks(list, tasks, on_conflict))
    }

    fn tasks(&mut self, list: &ListId, filter: &Filter) -> Result<Vec<Task>> {
        self.read(|tx| match tx.list_pk(list)? {
            Some(lpk) => tx.select_tasks(lpk, list, filter),
            None => match filter.ids.first() {
                Some(&id) => Err(not_found(id, list)),
                None => Ok(Vec::new()),
            },
        })
    }

    fn counts(&mut self, list: &ListId, filter: &Filter) -> Result<Counts> {
        self.read(|tx| {
            let mut counts = Counts::default();
            let Some(lpk) = tx.list_pk(list)? else {
                return Ok(counts);
            };
            let mut args = Args(vec![lpk.into()]);
            let (terms, dead) = tx.filter_sql(filter, &mut args);
            let sql = format!(
                "{}SELECT status, count(*) FROM tasks WHERE list_id = ?1{terms} GROUP BY status",
                if dead { DEAD_CTE } else { "" }
            );
            for r in tx.q(&sql, &args.0)? {
                counts.add(r.status(0)?, r.int(1)? as u64);
            }
            Ok(counts)
        })
    }

    fn stalled(&mut self, list: &ListId) -> Result<Stalled> {
        self.read(|tx| {
            let Some(lpk) = tx.list_pk(list)? else {
                return Ok(Stalled::new());
            };
            tx.q(
                "WITH RECURSIVE dead(id, root) AS ( \
                   SELECT id, id FROM tasks WHERE list_id = ?1 AND status IN ('failed','cancelled') \
                   UNION SELECT e.blocked, d.root FROM dead d \
                   JOIN edges e ON e.list_id = ?1 AND e.blocker = d.id \
                   JOIN tasks b ON b.list_id = ?1 AND b.id = e.blocked AND b.status = 'pending') \
                 SELECT s.id, s.root, r.status FROM ( \
                   SELECT d.id, min(d.root) AS root FROM dead d \
                   JOIN tasks t ON t.list_id = ?1 AND t.id = d.id AND t.status = 'pending' GROUP BY d.id \
                 ) s JOIN tasks r ON r.list_id = ?1 AND r.id = s.root",
                &[lpk.into()],
            )?
            .iter()
            .map(|r| Ok((TaskId(r.int(0)?), (TaskId(r.int(1)?), r.status(2)?))))
            .collect()
        })
    }

    fn lists(&mut self) -> Result<Vec<ListSummary>> {
        self.read(|tx| {
            let rows = tx.q(
                "SELECT l.name, t.status, count(t.id) FROM lists l LEFT JOIN tasks t ON t.list_id = l.id \
                 GROUP BY l.id, l.name, t.status ORDER BY l.name",
                &[],
            )?;
            let mut out: Vec<ListSummary> = Vec::new();
            for r in rows {
                let name = r.text(0)?;
                if out.last().map(|l| &l.name) != Some(&name) {
                    out.push(ListSummary {
                        name,
                        counts: Counts::default(),
                    });
                }
                if r.opt_text(1)?.is_some() {
                    out.last_mut()
                        .expect("pushed above")
                        .counts
                        .add(r.status(1)?, r.int(2)? as u64);
                }
            }
            Ok(out)
        })
    }

    fn update(&mut self, list: &ListId, ids: &[TaskId], u: &Update) -> Result<Vec<Task>> {
        if let Some(s) = &u.subject {
            if s.trim().is_empty() {
                bail!(usage, "the subject is empty");
            }
        }
        if let Some(n) = u.max_attempts {
            if n < 1 {
                bail!(usage, "--max-attempts must be at least 1, got {n}");
            }
        }
        let ids = dedup(ids);
        self.write(|tx| {
            let lpk = tx.list_pk(list)?.ok_or_else(|| not_found(ids[0], list))?;
            // Edges are checked for cycles before they are added: no other writer of the
            // list may add one in between.
            tx.lock_list(lpk)?;
            let now = tx.now;
            let mut look = LookupIn { tx, lpk };
            let add_blocked_by = resolve_all(&mut look, list, &u.add_blocked_by)?;
            let add_blocks = resolve_all(&mut look, list, &u.add_blocks)?;
            let remove_blocked_by = resolve_all(&mut look, list, &u.remove_blocked_by)?;
            let remove_blocks = resolve_all(&mut look, list, &u.remove_blocks)?;
            for &id in &ids {
                let cur = tx.current(lpk, list, id)?;
                check_if_status(id, cur.status, &u.if_status)?;
                if let Some(token) = u.token {
                    check_token(id, &cur, token)?;
                }
                if let (Some(new), OwnerChange::Set(name)) = (u.status, &u.owner) {
                    // Nobody holds it either when a takeover gave it back to pending: a
                    // stale worker must not finish it then.
                    match &cur.owner {
                        _ if !new.is_terminal() => {}
                        Some(holder) if holder != name => {
                            bail!(conflict, "task {id} is held by '{holder}', not '{name}'")
                        }
                        None => bail!(
                            conflict,
                            "task {id} is not held by '{name}': it is {} and nobody holds it",
                            cur.status
                        ),
                        Some(_) => {}
                    }
                }
                let mut args = Args::default();
                let mut sets: Vec<String> = vec![format!("updated_at = {}", args.p(now))];
                let mut set = |col: &str, v: Arg, args: &mut Args| {
                    sets.push(format!("{col} = {}", args.p(v)));
                };
                if let Some(v) = &u.subject {
                    set("subject", v.into(), &mut args);
                }
                if let Some(v) = &u.description {
                    set("description", v.into(), &mut args);
                }
                if let Some(v) = &u.active_form {
                    set("active_form", v.into(), &mut args);
                }
                if let Some(v) = u.priority {
                    set("priority", v.into(), &mut args);
                }
                if let Some(v) = u.max_attempts {
                    set("max_attempts", v.into(), &mut args);
                }
                if let Some(v) = &u.result {
                    set("result", v.into(), &mut args);
                }
                if let Some(v) = &u.verify {
                    let v = Some(v.as_str()).filter(|v| !v.is_empty());
                    set("verify", v.into(), &mut args);
                }
                if let Some(d) = u.lease {
                    if u.status.unwrap_or(cur.status) != Status::InProgress {
                        bail!(
                            conflict,
                            "task {id} is {}: only a claimed (in_progress) task has a lease",
                            cur.status
                        );
                    }
                    set("lease_until", (now + duration_ms(d)).into(), &mut args);
                }
                if !u.metadata.is_empty() {
                    let mut m = json_object(&cur.metadata);
                    for (k, v) in &u.metadata {
                        match v {
                            Some(v) => m.insert(k.clone(), v.clone()),
                            None => m.remove(k),
                        };
                    }
                    set("metadata", Value::Object(m).to_string().into(), &mut args);
                }
                match &u.owner {
                    OwnerChange::Keep => {}
                    OwnerChange::Set(name) => set("owner", name.into(), &mut args),
                    OwnerChange::Clear => set("owner", Arg::Null, &mut args),
                }
                match u.status {
                    Some(s) if s != cur.status => {
                        set("status", s.as_str().into(), &mut args);
                        match s {
                            // Back to pending: nobody holds it, so any worker may claim it.
                            Status::Pending => {
                                sets.push(UNCLAIMED.into());
                                if u.owner == OwnerChange::Keep {
                                    sets.push("owner = NULL".into());
                                }
                            }
                            Status::InProgress => {
                                sets.push(format!(
                                    "started_at = {}, finished_at = NULL",
                                    args.p(now)
                                ));
                            }
                            _ => {
                                sets.push(format!(
                                    "finished_at = {}, lease_until = NULL",
                                    args.p(now)
                                ));
                            }
                        }
                    }
                    _ => {}
                }
                if let Some(line) = &u.log_line {
                    // `||` with NULL is NULL in both engines: a first line has no break.
                    let appended = format!("\n{line}");
                    sets.push(format!(
                        "log = COALESCE(log || {}, {})",
                        args.p(appended),
                        args.p(line)
                    ));
                }
                let sql = format!(
                    "UPDATE tasks SET {} WHERE list_id = {} AND id = {}",
                    sets.join(", "),
                    args.p(lpk),
                    args.p(id.0)
                );
                tx.exec(&sql, &args.0)?;
                if !u.add_scopes.is_empty() || !u.remove_scopes.is_empty() {
                    let mut scopes: Vec<String> = tx
                        .q(
                            "SELECT key FROM scope_keys WHERE list_id = ?1 AND task = ?2 AND exact = 1",
                            &[lpk.into(), id.0.into()],
                        )?
                        .iter()
                        .map(|r| r.text(0))
                        .collect::<Result<_>>()?;
                    scopes.retain(|s| !u.remove_scopes.contains(s));
                    scopes.extend(u.add_scopes.iter().cloned());
                    tx.set_scopes(lpk, id, &scopes)?;
                }
                for &b in &add_blocked_by {
                    tx.add_edge(lpk, list, b, id)?;
                }
                for &b in &add_blocks {
                    tx.add_edge(lpk, list, id, b)?;
                }
                for &b in &remove_blocked_by {
                    tx.remove_edge(lpk, b, id)?;
                }
                for &b in &remove_blocks {
                    tx.remove_edge(lpk, id, b)?;
                }
                let by = u.by.as_deref();
                let fields = u.fields();
                if !fields.is_empty() {
                    let mut detail = json!({ "fields": fields });
                    if let Some(s) = u.status.filter(|&s| s != cur.status) {
                        detail["status"] = json!(s.as_str());
                    }
                    tx.event(lpk, id, "edited", by, detail)?;
                }
                if let Some(text) = &u.note {
                    tx.event(lpk, id, "note", by, json!({ "text": text }))?;
                }
            }
            ids.iter().map(|&id| tx.one_task(lpk, list, id)).collect()
        })
    }

    fn release(&mut self, list: &ListId, ids: &[TaskId], r: &Release) -> Result<Vec<Task>> {
        let ids = dedup(ids);
        self.write(|tx| {
            let lpk = tx.list_pk(list)?.ok_or_else(|| not_found(ids[0], list))?;
            tx.lock_list(lpk)?;
            for &id in &ids {
                let cur = tx.current(lpk, list, id)?;
                check_if_status(id, cur.status, &r.if_status)?;
                if let Some(token) = r.token {
                    check_token(id, &cur, token)?;
                }
                check_if_status(id, cur.status, &[Status::InProgress])?;
                if let (Some(want), Some(holder)) = (&r.owner, &cur.owner) {
                    if want != holder {
                        bail!(conflict, "task {id} is held by '{holder}', not '{want}'");
                    }
                }
                let now = tx.now;
                tx.exec(
                    &format!(
                        "UPDATE tasks SET status = 'pending', {UNCLAIMED}, owner = NULL, \
                         attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                         updated_at = ?3 WHERE list_id = ?1 AND id = ?2"
                    ),
                    &[lpk.into(), id.0.into(), now.into()],
                )?;
                let by = r.by.as_deref().or(cur.owner.as_deref());
                tx.event(lpk, id, "released", by, json!({ "from": cur.owner }))?;
            }
            ids.iter().map(|&id| tx.one_task(lpk, list, id)).collect()
        })
    }

    fn delete(&mut self, list: &ListId, ids: &[TaskId], if_status: &[Status]) -> Result<()> {
        let ids = dedup(ids);
        self.write(|tx| {
            let lpk = tx.list_pk(list)?.ok_or_else(|| not_found(ids[0], list))?;
            tx.lock_list(lpk)?;
            for &id in &ids {
                let cur = tx.current(lpk, list, id)?;
                check_if_status(id, cur.status, if_status)?;
                // Its edges first, while its status still counts for the tasks it blocks.
                tx.exec(
                    "DELETE FROM edges WHERE list_id = ?1 AND (blocker = ?2 OR blocked = ?2)",
                    &[lpk.into(), id.0.into()],
                )?;
                tx.exec(
                    "DELETE FROM tasks WHERE list_id = ?1 AND id = ?2",
                    &[lpk.into(), id.0.into()],
                )?;
            }
            Ok(())
        })
    }

    fn claim(&mut self, list: &ListId, c: &Claim) -> Result<Option<Task>> {
        if c.owner.is_empty() {
            bail!(usage, "the owner name is empty");
        }
        self.write(|tx| {
            let Some(lpk) = tx.list_pk(list)? else {
                return match c.id {
                    Some(id) => Err(not_found(id, list)),
                    None => Ok(None),
                };
            };
            let d = tx.d();
            let now = tx.now;
            // A `--limit` counts the tasks in progress: no other claimer of the list may
            // claim between that count and this claim.
            // So does a scope check, when the list has scoped tasks: two claimers must not
            // both take tasks whose scopes overlap.
            let scoped = tx
                .one("SELECT 1 FROM scope_keys WHERE list_id = ?1 LIMIT 1", &[lpk.into()])?
                .is_some();
            if !c.limits.is_empty() || scoped {
                tx.lock_list(lpk)?;
            }
            // Claims whose lease ran out go back to pending (or fail, with no attempt
            // left) first, so that they compete like any ready task.
            if !tx.reap_in(lpk, list, &c.owner, "", &|_| true)?.is_empty() {
                // A task failed for good changes the depths the claim orders by.
                tx.refresh_depths()?;
            }
            let lease = c.lease.map(|dur| now + duration_ms(dur));
            let (host, pid, start) = match &c.holder {
                Some(h) => (Some(h.host.clone()), Some(h.pid as i64), Some(h.started as i64)),
                None => (None, None, None),
            };
            let mut a = Args::default();
            let mut sql = format!(
                "UPDATE tasks SET status = 'in_progress', owner = {owner}, attempts = attempts + 1, \
                 claim_token = {token}, lease_until = {lease}, holder_host = {host}, holder_pid = {pid}, \
                 holder_start = {start}, started_at = {now}, updated_at = {now}, finished_at = NULL, \
                 output_dir = {output_dir} \
                 WHERE list_id = {lpk} AND id = (SELECT t.id FROM tasks t WHERE t.list_id = {lpk} \
                   AND t.status = 'pending' AND t.open_blockers = 0 AND (t.owner IS NULL OR t.owner = {owner})",
                owner = a.p(&c.owner),
                token = d.random_token,
                lease = a.p(lease),
                host = a.p(host),
                pid = a.p(pid),
                start = a.p(start),
                output_dir = a.p(c.output_dir.as_deref()),
                now = a.p(now),
                lpk = a.p(lpk),
            );
            // What the candidate must also meet: the given id, `-m` matching, `--limit`.
            if let Some(id) = c.id {
                sql += &format!(" AND t.id = {}", a.p(id.0));
            }
            for (k, v) in &c.matching {
                let key = a.p((d.meta_key)(k));
                let value = a.p(v.to_string());
                sql += &format!(" AND {} = {}", (d.meta_get)("t.metadata", &key), (d.json)(&value));
            }
            for (k, n) in &c.limits {
                let key = a.p((d.meta_key)(k));
                sql += &format!(
                    " AND ({mine} IS NULL OR (SELECT count(*) FROM tasks u \
                     WHERE u.list_id = t.list_id AND u.status = 'in_progress' \
                     AND (u.lease_until IS NULL OR u.lease_until >= {now}) \
                     AND {theirs} = {mine}) < {n})",
                    mine = (d.meta_get)("t.metadata", &key),
                    theirs = (d.meta_get)("u.metadata", &key),
                    now = a.p(now),
                    n = a.p(*n),
                );
            }
            if scoped {
                // A key of the candidate conflicts when a held task has it exactly, or when
                // the candidate has it exactly and a held task has it at all. Two look-ups
                // of the held keys' index each, never a scan of the tasks under a folder
                // (every held scope shares the key `.`).
                sql += " AND NOT EXISTS (SELECT 1 FROM scope_keys s WHERE s.list_id = t.list_id AND s.task = t.id \
                         AND (EXISTS (SELECT 1 FROM held_scopes h WHERE h.list_id = s.list_id AND h.key = s.key AND h.exact = 1) \
                         OR (s.exact = 1 AND EXISTS (SELECT 1 FROM held_scopes h WHERE h.list_id = s.list_id AND h.key = s.key))))";
            }
            sql += &format!(
                " ORDER BY t.priority DESC, t.depth DESC, t.id LIMIT 1{}) RETURNING {COLS}",
                d.skip_locked
            );
            let claimed = tx.one(&sql, &a.0)?;
            match (claimed, c.id) {
                (Some(r), _) => {
                    let mut t = task_from_row(&r, list)?;
                    let mut detail = json!({ "attempt": t.attempts });
                    if let Some(h) = &c.holder {
                        detail["host"] = json!(h.host);
                        detail["pid"] = json!(h.pid);
                    }
                    tx.event(lpk, t.id, "claimed", Some(&c.owner), detail)?;
                    tx.load_edges(lpk, &mut t)?;
                    tx.load_scopes(lpk, std::slice::from_mut(&mut t))?;
                    Ok(Some(t))
                }
                (None, None) => Ok(None),
                (None, Some(id)) => {
                    let t = tx.one_task(lpk, list, id)?;
                    let why = match (t.status, &t.owner) {
                        (Status::Pending, _) if !t.open_blockers.is_empty() => {
                            let b: Vec<String> =
                                t.open_blockers.iter().map(|b| b.to_string()).collect();
                            format!("is blocked by {}", b.join(", "))
                        }
                        (Status::Pending, Some(o)) if *o != c.owner => {
                            format!("is reserved for '{o}'")
                        }
                        (Status::InProgress, Some(o)) => format!("is in_progress, held by '{o}'"),
                        (Status::Pending, _) => {
                            "does not match the claim's metadata or limits, or its scopes \
                             overlap those of a task in progress"
                                .into()
                        }
                        (s, _) => format!("is {s}"),
                    };
                    bail!(conflict, "task {id} cannot be claimed: it {why}")
                }
            }
        })
    }

    fn renew(&mut self, list: &ListId, id: TaskId, token: i64, lease: Duration) -> Result<()> {
        self.write(|tx| {
            let lpk = tx.list_pk(list)?.ok_or_else(|| not_found(id, list))?;
            let now = tx.now;
            let n = tx.exec(
                "UPDATE tasks SET lease_until = ?4, updated_at = ?5 \
                 WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'",
                &[
                    lpk.into(),
                    id.0.into(),
                    token.into(),
                    (now + duration_ms(lease)).into(),
                    now.into(),
                ],
            )?;
            if n == 0 {
                bail!(
                    conflict,
                    "the claim on task {id} was taken over by another worker"
                );
            }
            Ok(())
        })
    }

    fn finish(&mut self, list: &ListId, id: TaskId, token: i64, o: &Outcome) -> Result<Task> {
        self.write(|tx| {
            let lpk = tx.list_pk(list)?.ok_or_else(|| not_found(id, list))?;
            if o.status != Status::Pending {
                // Closing a task changes depths, which takes the list (refresh_depths):
                // take it first, in the order every other writer takes list then task.
                tx.lock_list(lpk)?;
            }
            let now = tx.now;
            let held = [lpk.into(), id.0.into(), token.into()];
            let row = tx
                .one(
                    "SELECT log, owner, attempts, started_at, metadata, feedback FROM tasks \
                     WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'",
                    &held,
                )?
                .ok_or_else(|| taken_over(id))?;
            let (old, owner, attempt) = (row.opt_text(0)?, row.opt_text(1)?, row.int(2)?);
            let log = carry_losses(old.as_deref(), o.log.clone());
            let reset = if o.status == Status::Pending {
                format!("{UNCLAIMED}, owner = NULL")
            } else {
                "lease_until = NULL, finished_at = ?8".into()
            };
            let mut metadata = json_object(&row.text(4)?);
            metadata.extend(o.metadata.clone());
            let feedback = o.check_failed.clone().or(row.opt_text(5)?);
            let mut args = held.to_vec();
            args.extend([
                o.status.as_str().into(),
                o.result.as_deref().into(),
                log.into(),
                o.exit_code.into(),
                now.into(),
                Value::Object(metadata).to_string().into(),
                feedback.into(),
            ]);
            let n = tx.exec(
                &format!(
                    "UPDATE tasks SET status = ?4, result = ?5, log = ?6, exit_code = ?7, updated_at = ?8, \
                     metadata = ?9, feedback = ?10, {reset} \
                     WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'"
                ),
                &args,
            )?;
            if n == 0 {
                return Err(taken_over(id));
            }
            let by = owner.as_deref();
            if o.check_failed.is_some() {
                let detail = json!({ "attempt": attempt, "exitCode": o.exit_code });
                tx.event(lpk, id, "check_failed", by, detail)?;
            }
            let mut detail = json!({ "attempt": attempt, "exitCode": o.exit_code });
            if o.status == Status::Pending {
                tx.event(lpk, id, "retried", by, detail)?;
            } else {
                detail["status"] = json!(o.status.as_str());
                if let Some(start) = row.opt_int(3)? {
                    detail["durationMs"] = json!(now - start);
                }
                tx.event(lpk, id, "finished", by, detail)?;
            }
            tx.one_task(lpk, list, id)
        })
    }

    fn unclaim(&mut self, list: &ListId, id: TaskId, token: i64, refund: bool) -> Result<()> {
        self.write(|tx| {
            let lpk = tx.list_pk(list)?.ok_or_else(|| not_found(id, list))?;
            let now = tx.now;
            let owner = tx
                .one(
                    "SELECT owner FROM tasks WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 \
                     AND status = 'in_progress'",
                    &[lpk.into(), id.0.into(), token.into()],
                )?
                .map(|r| r.opt_text(0))
                .transpose()?;
            let Some(owner) = owner else {
                return Ok(());
            };
            let detail = json!({ "from": owner, "attemptGivenBack": refund });
            tx.event(lpk, id, "released", owner.as_deref(), detail)?;
            tx.exec(
                &format!(
                    "UPDATE tasks SET status = 'pending', {UNCLAIMED}, owner = NULL, \
                     attempts = CASE WHEN attempts > ?4 THEN attempts - ?4 ELSE 0 END, updated_at = ?5 \
                     WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'"
                ),
                &[
                    lpk.into(),
                    id.0.into(),
                    token.into(),
                    (refund as i64).into(),
                    now.into(),
                ],
            )?;
            Ok(())
        })
    }

    fn reap(
        &mut self,
        list: &ListId,
        by: &str,
        host: &str,
        alive: &dyn Fn(&Holder) -> bool,
    ) -> Result<Vec<Task>> {
        self.write(|tx| {
            let Some(lpk) = tx.list_pk(list)? else {
                return Ok(Vec::new());
            };
            let ids = tx.reap_in(lpk, list, by, host, alive)?;
            ids.iter().map(|&id| tx.one_task(lpk, list, id)).collect()
        })
    }

    fn pool_add(&mut self, p: &Pool) -> Result<()> {
        let h = &p.holder;
        let options = Value::Object(p.options.clone()).to_string();
        self.write(|tx| {
            tx.exec(
                "INSERT INTO pools (host, pid, started, list, options, started_at, seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (host, pid, started) DO UPDATE \
                 SET list = excluded.list, options = excluded.options, \
                 started_at = excluded.started_at, seen_at = excluded.seen_at",
                &[
                    h.host.as_str().into(),
                    (h.pid as i64).into(),
                    (h.started as i64).into(),
                    p.list.as_str().into(),
                    options.as_str().into(),
                    p.started_at.into(),
                    p.seen_at.into(),
                ],
            )?;
            Ok(())
        })
    }

    fn pool_seen(&mut self, h: &Holder) -> Result<()> {
        self.write(|tx| {
            let now = tx.now;
            tx.exec(
                "UPDATE pools SET seen_at = ?4 WHERE host = ?1 AND pid = ?2 AND started = ?3",
                &[
                    h.host.as_str().into(),
                    (h.pid as i64).into(),
                    (h.started as i64).into(),
                    now.into(),
                ],
            )?;
            Ok(())
        })
    }

    fn pool_remove(&mut self, h: &Holder) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM pools WHERE host = ?1 AND pid = ?2 AND started = ?3",
                &[
                    h.host.as_str().into(),
                    (h.pid as i64).into(),
                    (h.started as i64).into(),
                ],
            )?;
            Ok(())
        })
    }

    fn history(
        &mut self,
        list: &ListId,
        ids: &[TaskId],
        last: Option<usize>,
    ) -> Result<Vec<Event>> {
        let ids = dedup(ids);
        self.read(|tx| {
            let Some(lpk) = tx.list_pk(list)? else {
                return match ids.first() {
                    Some(&id) => Err(not_found(id, list)),
                    None => Ok(Vec::new()),
                };
            };
            let mut out = Vec::new();
            for &id in &ids {
                if !tx.exists(lpk, id)? {
                    return Err(not_found(id, list));
                }
                // The newest first, so that `last` is a LIMIT; put back in order below.
                let limit = last.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
                let rows = tx.q(
                    &format!(
                        "SELECT at, kind, actor, detail FROM events WHERE list_id = ?1 AND task = ?2 \
                         ORDER BY id DESC{limit}"
                    ),
                    &[lpk.into(), id.0.into()],
                )?;
                let start = out.len();
                for r in &rows {
                    out.push(Event {
                        task: id,
                        at: r.int(0)?,
                        kind: r.text(1)?,
                        by: r.opt_text(2)?,
                        detail: json_object(&r.text(3)?),
                    });
                }
                out[start..].reverse();
            }
            Ok(out)
        })
    }

    fn pools(&mut self, list: Option<&ListId>) -> Result<Vec<Pool>> {
        self.read(|tx| {
            tx.q(
                "SELECT host, pid, started, list, options, started_at, seen_at FROM pools \
                 WHERE list = COALESCE(?1, list) ORDER BY started_at, host, pid",
                &[list.map(|l| l.as_str()).into()],
            )?
            .iter()
            .map(|r| {
                Ok(Pool {
                    holder: Holder {
                        host: r.text(0)?,
                        pid: r.int(1)? as u32,
                        started: r.int(2)? as u64,
                    },
                    list: r.text(3)?,
                    options: json_object(&r.text(4)?),
                    started_at: r.int(5)?,
                    seen_at: r.int(6)?,
                })
            })
            .collect()
        })
    }

    fn sync_pairs(&mut self, list: &ListId) -> Result<Vec<SyncPair>> {
        self.read(|tx| {
            let Some(lpk) = tx.list_pk(list)? else {
                return Ok(Vec::new());
            };
            tx.q(
                "SELECT task, file, state FROM sync_files WHERE list_id = ?1 ORDER BY task",
                &[lpk.into()],
            )?
            .iter()
            .map(|r| {
                Ok(SyncPair {
                    task: TaskId(r.int(0)?),
                    file: r.opt_int(1)?,
                    // A state that does not parse is as good as none: the file is
                    // written again.
                    state: r.opt_text(2)?.and_then(|s| serde_json::from_str(&s).ok()),
                })
            })
            .collect()
        })
    }

    fn sync_import(&mut self, list: &ListId, imports: &[SyncImport]) -> Result<Vec<TaskId>> {
        let tasks: Vec<NewTask> = imports.iter().map(|i| i.task.clone()).collect();
        graph::validate_batch(&tasks)?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let ids = tx.insert_tasks(list, &tasks, OnConflict::Error)?;
            let lpk = tx
                .list_pk(list)?
                .ok_or_else(|| Error::store(format!("list '{list}' vanished")))?;
            let now = tx.now;
            for (imp, id) in imports.iter().zip(&ids) {
                let started = match imp.status {
                    Status::Pending => None,
                    Status::InProgress => Some("started_at"),
                    _ => Some("finished_at"),
                };
                if let Some(col) = started {
                    tx.exec(
                        &format!("UPDATE tasks SET status = ?3, {col} = ?4 WHERE list_id = ?1 AND id = ?2"),
                        &[lpk.into(), id.0.into(), imp.status.as_str().into(), now.into()],
                    )?;
                }
                let paired = tx.exec(
                    "INSERT INTO sync_files (list_id, task, file, state) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                    &[
                        lpk.into(),
                        id.0.into(),
                        imp.file.into(),
                        imp.state.to_string().into(),
                    ],
                )?;
                if paired == 0 {
                    bail!(
                        conflict,
                        "file {}.json of list '{list}' was paired with a task by another process",
                        imp.file
                    );
                }
            }
            Ok(ids)
        })
    }

    fn sync_save(&mut self, list: &ListId, pairs: &[SyncPair], forget: &[TaskId]) -> Result<()> {
        if pairs.is_empty() && forget.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let lpk = tx.ensure_list(list)?;
            for chunk in pairs.chunks(CHUNK) {
                let mut a = Args::default();
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|p| {
                        let state = p.state.as_ref().map(Value::to_string);
                        format!(
                            "({}, {}, {}, {})",
                            a.p(lpk),
                            a.p(p.task.0),
                            a.p(p.file),
                            a.p(state)
                        )
                    })
                    .collect();
                tx.exec(
                    &format!(
                        "INSERT INTO sync_files (list_id, task, file, state) VALUES {} \
                         ON CONFLICT (list_id, task) DO UPDATE SET file = excluded.file, state = excluded.state",
                        rows.join(", ")
                    ),
                    &a.0,
                )?;
            }
            for t in forget {
                tx.exec(
                    "DELETE FROM sync_files WHERE list_id = ?1 AND task = ?2",
                    &[lpk.into(), t.0.into()],
                )?;
            }
            Ok(())
        })
    }

    fn change_counter(&mut self, list: &ListId) -> Result<u64> {
        self.db.change_counter(list)
    }

    fn wait_change(&mut self, list: &ListId, max: Duration) -> Result<bool> {
        self.db.wait_change(list, max)
    }

    fn keep_trying(&mut self, patience: Duration) {
        self.db.keep_trying(patience)
    }
}
