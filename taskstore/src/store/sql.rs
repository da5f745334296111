//! The one implementation of [`Store`] over any SQL engine. Everything a task store does
//! is here once — queries, edges, claims, updates — written against [`Db`], a handful
//! of primitives (begin, query, execute, commit) that each backend provides, plus a
//! [`Dialect`] for the few spots where SQLite and PostgreSQL spell things differently.
//!
//! SQL is written with numbered placeholders (`?1`, `?2`, …), which SQLite takes as
//! they are and the PostgreSQL backend rewrites to `$1`, `$2`, …; dynamic statements
//! number theirs with [`Args::p`].
//!
//! This file holds what all of them share: the values bound and read ([`Arg`], [`Row`]),
//! the backend's interface, the transaction runners of [`SqlStore`], and its [`Store`]
//! methods, each handed to the module that does it: [`tx`] (the transaction and its
//! shared helpers), [`read`], [`write`](mod@write), [`claim`] (claims and leases),
//! [`pool`], [`sync`], and [`depth`].

use super::{
    Claim, Counts, Filter, Holder, ListSummary, Outcome, Pool, Release, Stalled, Store, SyncImport,
    SyncPair, Update,
};
use crate::error::{Cause, Error, Result};
use crate::model::{Event, ListId, NewTask, OnConflict, Status, Task, TaskId};
use crate::probe;
use std::time::Duration;
use tx::Tx;

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

mod claim;
mod depth;
mod pool;
mod read;
mod sync;
mod tx;
mod write;

/// How often a write that meets a deadlock or a serialisation failure (PostgreSQL under
/// contention) is run again from the start before the error is reported.
const RETRIES: usize = 20;

/// Columns read into a `Task`, in [`task_from_row`](tx::task_from_row) order.
const COLS: &str = "id, subject, description, active_form, status, owner, priority, metadata, \
    attempts, max_attempts, result, log, exit_code, claim_token, lease_until, \
    created_at, updated_at, started_at, finished_at, holder_host, holder_pid, holder_start, key, \
    verify, feedback, depth, output_dir, cost_micros";

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
        write::create(self, list, tasks, on_conflict)
    }

    fn tasks(&mut self, list: &ListId, filter: &Filter) -> Result<Vec<Task>> {
        read::tasks(self, list, filter)
    }

    fn counts(&mut self, list: &ListId, filter: &Filter) -> Result<Counts> {
        read::counts(self, list, filter)
    }

    fn stalled(&mut self, list: &ListId) -> Result<Stalled> {
        read::stalled(self, list)
    }

    fn lists(&mut self) -> Result<Vec<ListSummary>> {
        read::lists(self)
    }

    fn update(&mut self, list: &ListId, ids: &[TaskId], u: &Update) -> Result<Vec<Task>> {
        write::update(self, list, ids, u)
    }

    fn release(&mut self, list: &ListId, ids: &[TaskId], r: &Release) -> Result<Vec<Task>> {
        write::release(self, list, ids, r)
    }

    fn delete(&mut self, list: &ListId, ids: &[TaskId], if_status: &[Status]) -> Result<()> {
        write::delete(self, list, ids, if_status)
    }

    fn claim(&mut self, list: &ListId, c: &Claim) -> Result<Option<Task>> {
        claim::claim(self, list, c)
    }

    fn renew(&mut self, list: &ListId, id: TaskId, token: i64, lease: Duration) -> Result<()> {
        claim::renew(self, list, id, token, lease)
    }

    fn finish(&mut self, list: &ListId, id: TaskId, token: i64, o: &Outcome) -> Result<Task> {
        claim::finish(self, list, id, token, o)
    }

    fn unclaim(&mut self, list: &ListId, id: TaskId, token: i64, refund: bool) -> Result<()> {
        claim::unclaim(self, list, id, token, refund)
    }

    fn reap(
        &mut self,
        list: &ListId,
        by: &str,
        host: &str,
        alive: &dyn Fn(&Holder) -> bool,
    ) -> Result<Vec<Task>> {
        claim::reap(self, list, by, host, alive)
    }

    fn pool_add(&mut self, p: &Pool) -> Result<()> {
        pool::pool_add(self, p)
    }

    fn pool_seen(&mut self, h: &Holder) -> Result<()> {
        pool::pool_seen(self, h)
    }

    fn pool_remove(&mut self, h: &Holder) -> Result<()> {
        pool::pool_remove(self, h)
    }

    fn history(
        &mut self,
        list: &ListId,
        ids: &[TaskId],
        last: Option<usize>,
    ) -> Result<Vec<Event>> {
        read::history(self, list, ids, last)
    }

    fn cost(&mut self, list: &ListId) -> Result<Option<f64>> {
        read::cost(self, list)
    }

    fn last_event(&mut self, list: &ListId) -> Result<i64> {
        read::last_event(self, list)
    }

    fn events_after(&mut self, list: &ListId, after: i64, max: usize) -> Result<Vec<(i64, Event)>> {
        read::events_after(self, list, after, max)
    }

    fn pools(&mut self, list: Option<&ListId>) -> Result<Vec<Pool>> {
        pool::pools(self, list)
    }

    fn sync_pairs(&mut self, list: &ListId) -> Result<Vec<SyncPair>> {
        sync::sync_pairs(self, list)
    }

    fn sync_import(&mut self, list: &ListId, imports: &[SyncImport]) -> Result<Vec<TaskId>> {
        sync::sync_import(self, list, imports)
    }

    fn sync_save(&mut self, list: &ListId, pairs: &[SyncPair], forget: &[TaskId]) -> Result<()> {
        sync::sync_save(self, list, pairs, forget)
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
