//! The embedded SQLite backend: one file, WAL mode, every write `BEGIN IMMEDIATE`.

use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::{
    after_loss, carry_losses, loss, plan_create, resolve_all, Access, Blocker, Claim, Counts,
    Filter, Holder, ListSummary, Lookup, Outcome, OwnerChange, Pool, Release, Slot, Stalled, Store,
    Sync, Update,
};
use crate::bail;
use crate::error::{Cause, Error, Result};
use crate::graph;
use crate::model::{ListId, NewTask, OnConflict, Status, StatusFilter, Task, TaskId};
use crate::probe;
use crate::time::{duration_ms, now_ms};
use rusqlite::config::DbConfig;
use rusqlite::types::Value as Sql;
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension, Row,
};
use rusqlite::{Transaction, TransactionBehavior};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Columns read into a `Task`, in `task_from_row` order.
const COLS: &str = "id, subject, description, active_form, status, owner, priority, metadata, \
    attempts, max_attempts, result, log, exit_code, claim_token, lease_until, \
    created_at, updated_at, started_at, finished_at, holder_host, holder_pid, holder_start, key";

/// Pending tasks that (transitively) wait for a failed or cancelled task. Binds ?1 = list.
const DEAD_CTE: &str = "WITH RECURSIVE dead(id) AS ( \
    SELECT id FROM tasks WHERE list_id = ?1 AND status IN ('failed','cancelled') \
    UNION SELECT e.blocked FROM dead d JOIN edges e ON e.list_id = ?1 AND e.blocker = d.id \
    JOIN tasks b ON b.list_id = ?1 AND b.id = e.blocked AND b.status = 'pending') ";

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        let (cause, what) = match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => (Cause::NotADatabase, "the file is not a task database"),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (
                Cause::Locked,
                "the store stayed locked by another process for longer than the 5 s busy timeout",
            ),
            Some(ErrorCode::DiskFull) => (Cause::DiskFull, "the disk is full"),
            Some(ErrorCode::ReadOnly) => (Cause::Unwritable, "the store is read-only"),
            Some(ErrorCode::CannotOpen) => (Cause::Unwritable, "the store file cannot be opened"),
            Some(ErrorCode::PermissionDenied) => (Cause::NoPermission, "permission denied"),
            Some(ErrorCode::DatabaseCorrupt) => (Cause::Corrupt, "the store is corrupt"),
            Some(ErrorCode::SystemIoFailure) => {
                return Error::store(format!(
                    "reading or writing the store failed (is the disk full, a file-size limit reached, or the file gone?) ({e})"
                ))
            }
            _ => return Error::store(e.to_string()),
        };
        Error::store_cause(cause, format!("{what} ({e})"))
    }
}

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Keep the WAL small at close (see `Drop`): writers under `TASK_SYNC=normal`.
    bound_wal: bool,
}

/// Past this size a closing writer checkpoints the WAL into the database and truncates
/// it. Below it the WAL stays between processes: no checkpoint, no fsync, no new file
/// at every call, and the next process rebuilds its index from at most this much.
const WAL_LIMIT: u64 = 256 * 1024;

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if !self.bound_wal {
            return;
        }
        let size = std::fs::metadata(wal_path(&self.path)).map_or(0, |m| m.len());
        if size > WAL_LIMIT {
            // Never wait at close: if a reader holds the WAL, a later writer does this.
            let _ = self.conn.busy_timeout(Duration::ZERO);
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

impl SqliteStore {
    pub fn open(path: &Path, sync: Sync, access: Access) -> Result<SqliteStore> {
        let at = |e: Error| e.context(format!("store {}", path.display()));
        create_file(path).map_err(at)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| at(e.into()))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            bound_wal: access == Access::Write && sync == Sync::Normal,
        };
        store
            .prepare(sync, access)
            .map_err(|e| at(explain_unwritable(e, path)))?;
        probe::phase("open");
        Ok(store)
    }

    fn prepare(&mut self, sync: Sync, access: Access) -> Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // By default the last connection to close checkpoints the WAL into the database
        // and deletes it: two fsyncs, and the next process makes a new WAL (two more
        // fsyncs: its header, the folder). A commit survives a process crash without any
        // of that, so under TASK_SYNC=normal nobody checkpoints at close; a writer that
        // finds the WAL past WAL_LIMIT truncates it (`Drop`). Under TASK_SYNC=full writers
        // checkpoint at close as before; readers never do.
        self.conn.set_db_config(
            DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            access == Access::Read || sync == Sync::Normal,
        )?;
        // Plan each statement once: otherwise SQLite re-prepares cached statements
        // whenever a new parameter value might allow another plan, costing more than
        // the query itself in loops such as loading every task's edges.
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let level = match sync {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        };
        self.conn.pragma_update(None, "synchronous", level)?;
        let version = user_version(&self.conn)?;
        if version > SCHEMA_VERSION {
            return Err(newer_schema(version));
        }
        if version < SCHEMA_VERSION {
            self.migrate()?;
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        // WAL is a property of the file; it cannot be switched inside a transaction.
        // Switching needs the file to itself, and SQLite answers "locked" at once —
        // without its busy handler — while another process that opens a new store at the
        // same moment holds it: retry within the busy timeout.
        let start = std::time::Instant::now();
        let mode: String = loop {
            match self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            {
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) && start.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                other => break other?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                store,
                "cannot switch the store to WAL mode (journal_mode is {mode})"
            );
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(newer_schema(version));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Run reads in one snapshot: one lock round instead of one per statement.
    fn read<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction()?;
        let value = f(&tx)?;
        probe::phase("statement");
        tx.commit()?;
        probe::phase("commit");
        Ok(value)
    }

    fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            probe::phase("statement");
            tx.commit()?;
            probe::phase("commit");
            Ok(value)
        };
        run(&mut self.conn).map_err(|e: Error| match e.cause {
            Some(Cause::Unwritable) => {
                explain_unwritable(e, &self.path).context(format!("store {}", self.path.display()))
            }
            _ => e,
        })
    }
}

/// Create the store's folders (0700) and file (0600) if missing, so that results,
/// which can hold secrets, are never readable by others.
fn create_file(path: &Path) -> Result<()> {
    use std::fs::{DirBuilder, OpenOptions};
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if path.is_dir() {
        bail!(store, "it is a directory, not a task database");
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| {
                    Error::store(format!("cannot create folder {}: {e}", parent.display()))
                })?;
        }
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::store(format!("cannot create the store file: {e}"))),
    }
}

/// SQLite says only "unable to open database file" or "attempt to write a readonly
/// database" when it cannot write the store or create its `-wal` and `-shm` files: say
/// which file system object is to blame, when `access(2)` can tell (a read-only file
/// system, a file or folder that is not writable or is immutable).
fn explain_unwritable(e: Error, path: &Path) -> Error {
    use nix::errno::Errno;
    use nix::unistd::{access, AccessFlags};
    if e.cause != Some(Cause::Unwritable) {
        return e;
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let why = |p: &Path, what: String| match access(p, AccessFlags::W_OK) {
        Ok(()) => None,
        Err(Errno::EROFS) => Some((
            Cause::ReadOnlyFs,
            format!("{what} is on a read-only file system"),
        )),
        Err(errno @ (Errno::EACCES | Errno::EPERM)) => Some((
            Cause::NoPermission,
            format!("{what} is not writable ({})", errno.desc()),
        )),
        Err(_) => None,
    };
    let reason = why(path, "it".into()).or_else(|| {
        why(folder, format!("its folder {}", folder.display())).map(|(c, m)| {
            (
                c,
                format!("{m}, and SQLite must create {name}-wal and {name}-shm there"),
            )
        })
    });
    match reason {
        Some((cause, r)) => Error::store_cause(cause, format!("{}: {r}", e.message)),
        None => e,
    }
}

fn newer_schema(version: i64) -> Error {
    Error::store_cause(
        Cause::NewerSchema,
        format!("schema version {version} is newer than this binary knows ({SCHEMA_VERSION}); upgrade parallel-tasks"),
    )
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn list_pk(conn: &Connection, list: &ListId) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM lists WHERE name = ?1")?
        .query_row([list.as_str()], |r| r.get(0))
        .optional()?)
}

fn ensure_list(conn: &Connection, list: &ListId) -> Result<i64> {
    if let Some(pk) = list_pk(conn, list)? {
        return Ok(pk);
    }
    Ok(conn.query_row(
        "INSERT INTO lists (name, created_at) VALUES (?1, ?2) RETURNING id",
        params![list.as_str(), now_ms()],
        |r| r.get(0),
    )?)
}

fn not_found(id: TaskId, list: &ListId) -> Error {
    Error::not_found(format!("task {id} not found in list '{list}'"))
}

fn parse_status(s: &str) -> rusqlite::Result<Status> {
    s.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
    })
}

fn task_from_row(r: &Row, list: &ListId) -> rusqlite::Result<Task> {
    let meta: String = r.get(7)?;
    let metadata = match serde_json::from_str(&meta) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Ok(Task {
        id: TaskId(r.get(0)?),
        list: list.to_string(),
        key: r.get(22)?,
        subject: r.get(1)?,
        description: r.get(2)?,
        active_form: r.get(3)?,
        status: parse_status(&r.get::<_, String>(4)?)?,
        owner: r.get(5)?,
        priority: r.get(6)?,
        metadata,
        attempts: r.get(8)?,
        max_attempts: r.get(9)?,
        result: r.get(10)?,
        log: r.get(11)?,
        exit_code: r.get(12)?,
        claim_token: r.get(13)?,
        lease_until: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        started_at: r.get(17)?,
        finished_at: r.get(18)?,
        holder: match r.get::<_, Option<String>>(19)? {
            Some(host) => Some(Holder {
                host,
                pid: r.get::<_, i64>(20)? as u32,
                started: r.get::<_, i64>(21)? as u64,
            }),
            None => None,
        },
        blocked_by: Vec::new(),
        open_blockers: Vec::new(),
        blocks: Vec::new(),
    })
}

/// Fill in both directions of the task's edges.
fn load_edges(conn: &Connection, lpk: i64, t: &mut Task) -> Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT e.blocker, b.status FROM edges e JOIN tasks b ON b.list_id = e.list_id AND b.id = e.blocker \
         WHERE e.list_id = ?1 AND e.blocked = ?2 ORDER BY e.blocker",
    )?;
    let mut rows = st.query(params![lpk, t.id.0])?;
    while let Some(r) = rows.next()? {
        let id = TaskId(r.get(0)?);
        t.blocked_by.push(id);
        if r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)? != "completed" {
            t.open_blockers.push(id);
        }
    }
    let mut st = conn.prepare_cached(
        "SELECT blocked FROM edges WHERE list_id = ?1 AND blocker = ?2 ORDER BY blocked",
    )?;
    t.blocks = st
        .query_map(params![lpk, t.id.0], |r| Ok(TaskId(r.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

/// Fill in the edges of many tasks (in id order). Two range scans over the edge indexes
/// when the tasks are dense in their id range — a listing, not one query per task —
/// else task by task.
fn load_edges_of(conn: &Connection, lpk: i64, tasks: &mut [Task]) -> Result<()> {
    let (Some(first), Some(last)) = (tasks.first(), tasks.last()) else {
        return Ok(());
    };
    let (lo, hi) = (first.id.0, last.id.0);
    if tasks.len() < 4 || (hi - lo) as usize >= 4 * tasks.len() {
        for t in tasks.iter_mut() {
            load_edges(conn, lpk, t)?;
        }
        return Ok(());
    }
    let at: std::collections::HashMap<i64, usize> =
        tasks.iter().enumerate().map(|(i, t)| (t.id.0, i)).collect();
    let mut st = conn.prepare_cached(
        "SELECT e.blocked, e.blocker, b.status FROM edges e \
         JOIN tasks b ON b.list_id = e.list_id AND b.id = e.blocker \
         WHERE e.list_id = ?1 AND e.blocked BETWEEN ?2 AND ?3 ORDER BY e.blocked, e.blocker",
    )?;
    let mut rows = st.query(params![lpk, lo, hi])?;
    while let Some(r) = rows.next()? {
        let Some(&i) = at.get(&r.get::<_, i64>(0)?) else {
            continue;
        };
        let id = TaskId(r.get(1)?);
        tasks[i].blocked_by.push(id);
        if r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)? != "completed" {
            tasks[i].open_blockers.push(id);
        }
    }
    let mut st = conn.prepare_cached(
        "SELECT blocker, blocked FROM edges WHERE list_id = ?1 AND blocker BETWEEN ?2 AND ?3 \
         ORDER BY blocker, blocked",
    )?;
    let mut rows = st.query(params![lpk, lo, hi])?;
    while let Some(r) = rows.next()? {
        if let Some(&i) = at.get(&r.get::<_, i64>(0)?) {
            tasks[i].blocks.push(TaskId(r.get(1)?));
        }
    }
    Ok(())
}

/// The JSON path of a metadata key, for SQLite's `->` operator.
fn meta_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `WHERE` terms of a filter (after `list_id = ?1`), with their parameters appended.
/// The second value tells whether the stalled CTE must prefix the statement.
fn filter_sql(filter: &Filter, args: &mut Vec<Sql>) -> (String, bool) {
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
        sql += " AND owner = ?";
        args.push(Sql::Text(owner.clone()));
    }
    for (k, v) in &filter.metadata {
        sql += " AND metadata -> ? = ?";
        args.push(Sql::Text(meta_path(k)));
        args.push(Sql::Text(v.to_string()));
    }
    (sql, dead)
}

fn select_tasks(conn: &Connection, lpk: i64, list: &ListId, filter: &Filter) -> Result<Vec<Task>> {
    for &id in &filter.ids {
        let exists = conn
            .prepare_cached("SELECT 1 FROM tasks WHERE list_id = ?1 AND id = ?2")?
            .exists(params![lpk, id.0])?;
        if !exists {
            return Err(not_found(id, list));
        }
    }
    let mut args = vec![Sql::Integer(lpk)];
    let (terms, dead) = filter_sql(filter, &mut args);
    let mut sql = format!(
        "{}SELECT {COLS} FROM tasks WHERE list_id = ?1{terms} ORDER BY id",
        if dead { DEAD_CTE } else { "" }
    );
    if let Some(n) = filter.limit {
        sql += &format!(" LIMIT {n}");
    }
    let mut st = conn.prepare_cached(&sql)?;
    let mut tasks: Vec<Task> = st
        .query_map(params_from_iter(args), |r| task_from_row(r, list))?
        .collect::<rusqlite::Result<_>>()?;
    load_edges_of(conn, lpk, &mut tasks)?;
    Ok(tasks)
}

fn one_task(conn: &Connection, lpk: i64, list: &ListId, id: TaskId) -> Result<Task> {
    let filter = Filter {
        ids: vec![id],
        ..Filter::default()
    };
    select_tasks(conn, lpk, list, &filter)?
        .pop()
        .ok_or_else(|| not_found(id, list))
}

/// The look-ups of [`plan_create`] and [`resolve_all`], in the write transaction.
struct TxLookup<'a> {
    conn: &'a Connection,
    lpk: i64,
}

impl Lookup for TxLookup<'_> {
    fn key(&mut self, key: &str) -> Result<Option<TaskId>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM tasks WHERE list_id = ?1 AND key = ?2")?
            .query_row(params![self.lpk, key], |r| Ok(TaskId(r.get(0)?)))
            .optional()?)
    }

    fn exists(&mut self, id: TaskId) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM tasks WHERE list_id = ?1 AND id = ?2")?
            .exists(params![self.lpk, id.0])?)
    }
}

/// Add the edge "`blocked` waits for `blocker`", refusing self edges and cycles.
fn add_edge(
    conn: &Connection,
    lpk: i64,
    list: &ListId,
    blocker: TaskId,
    blocked: TaskId,
) -> Result<()> {
    if blocker == blocked {
        bail!(usage, "task {blocker} cannot block itself");
    }
    for id in [blocker, blocked] {
        let exists = conn
            .prepare_cached("SELECT 1 FROM tasks WHERE list_id = ?1 AND id = ?2")?
            .exists(params![lpk, id.0])?;
        if !exists {
            return Err(not_found(id, list));
        }
    }
    // A cycle closes when `blocker` already (transitively) waits for `blocked`.
    let cycle = conn
        .prepare_cached(
            "WITH RECURSIVE down(id) AS (SELECT ?2 UNION \
             SELECT e.blocked FROM edges e JOIN down d ON e.list_id = ?1 AND e.blocker = d.id) \
             SELECT 1 FROM down WHERE id = ?3",
        )?
        .exists(params![lpk, blocked.0, blocker.0])?;
    if cycle {
        bail!(
            usage,
            "dependency cycle: {blocked} blocked by {blocker}, but {blocker} already waits for {blocked}"
        );
    }
    conn.prepare_cached(
        "INSERT OR IGNORE INTO edges (list_id, blocker, blocked) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![lpk, blocker.0, blocked.0])?;
    Ok(())
}

fn remove_edge(conn: &Connection, lpk: i64, blocker: TaskId, blocked: TaskId) -> Result<()> {
    conn.prepare_cached("DELETE FROM edges WHERE list_id = ?1 AND blocker = ?2 AND blocked = ?3")?
        .execute(params![lpk, blocker.0, blocked.0])?;
    Ok(())
}

/// Current status and owner of a task, or not found.
fn status_owner(
    conn: &Connection,
    lpk: i64,
    list: &ListId,
    id: TaskId,
) -> Result<(Status, Option<String>, String)> {
    conn.prepare_cached("SELECT status, owner, metadata FROM tasks WHERE list_id = ?1 AND id = ?2")?
        .query_row(params![lpk, id.0], |r| {
            Ok((parse_status(&r.get::<_, String>(0)?)?, r.get(1)?, r.get(2)?))
        })
        .optional()?
        .ok_or_else(|| not_found(id, list))
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

fn dedup(ids: &[TaskId]) -> Vec<TaskId> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|i| seen.insert(*i)).collect()
}

/// The task must still be held by the claim with `token` (`--token`).
fn check_token(conn: &Connection, lpk: i64, id: TaskId, current: Status, token: i64) -> Result<()> {
    let held: Option<i64> = conn
        .prepare_cached("SELECT claim_token FROM tasks WHERE list_id = ?1 AND id = ?2")?
        .query_row(params![lpk, id.0], |r| r.get(0))?;
    if current != Status::InProgress {
        bail!(
            conflict,
            "task {id} is no longer held by that claim: it is {current}"
        );
    }
    if held != Some(token) {
        bail!(
            conflict,
            "task {id} is no longer held by that claim: it was claimed again"
        );
    }
    Ok(())
}

/// Recover the lost claims of one list (see `Store::reap`); `host` empty: lease expiry
/// only. Returns the ids of the tasks recovered.
fn reap_in(
    conn: &Connection,
    lpk: i64,
    list: &ListId,
    now: i64,
    host: &str,
    alive: &dyn Fn(&Holder) -> bool,
) -> Result<Vec<TaskId>> {
    let held: Vec<Task> = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM tasks WHERE list_id = ?1 AND status = 'in_progress' \
             AND (lease_until < ?2 OR holder_host = ?3)"
        ))?
        .query_map(params![lpk, now, host], |r| task_from_row(r, list))?
        .collect::<rusqlite::Result<_>>()?;
    let mut recovered = Vec::new();
    for t in held {
        let Some(why) = loss(&t, now, host, alive) else {
            continue;
        };
        let (status, log) = after_loss(&t, &why);
        let reset = match status {
            Status::Pending => format!("{UNCLAIMED}, owner = NULL"),
            _ => "status = 'failed', lease_until = NULL, finished_at = ?5".into(),
        };
        conn.execute(
            &format!(
                "UPDATE tasks SET {reset}, log = ?4, updated_at = ?5 \
                 WHERE list_id = ?1 AND id = ?2 AND claim_token IS ?3 AND status = 'in_progress'"
            ),
            params![lpk, t.id.0, t.claim_token, log, now],
        )?;
        recovered.push(t.id);
    }
    Ok(recovered)
}

/// Columns reset when a task goes back to pending: nobody holds it any more.
const UNCLAIMED: &str = "status = 'pending', claim_token = NULL, lease_until = NULL, \
    holder_host = NULL, holder_pid = NULL, holder_start = NULL, started_at = NULL, finished_at = NULL";

impl Store for SqliteStore {
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
        if tasks.len() > 1000 {
            // Room for the indexes of a big batch, instead of re-reading evicted pages.
            self.conn.pragma_update(None, "cache_size", -64 * 1024)?;
        }
        self.write(|tx| {
            let lpk = ensure_list(tx, list)?;
            // Checking a key and inserting it in one IMMEDIATE transaction: no other
            // writer can insert the same key in between.
            let plan = plan_create(&mut TxLookup { conn: tx, lpk }, list, tasks, on_conflict)?;
            let n = plan.new.len() as i64;
            let first = if n == 0 {
                0
            } else {
                let last: i64 = tx.query_row(
                    "UPDATE lists SET last_id = last_id + ?2 WHERE id = ?1 RETURNING last_id",
                    params![lpk, n],
                    |r| r.get(0),
                )?;
                last - n + 1
            };
            let now = now_ms();
            let mut insert = tx.prepare_cached(
                "INSERT INTO tasks (list_id, id, key, subject, description, active_form, owner, priority, \
                 metadata, max_attempts, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?11)",
            )?;
            let mut edge = tx.prepare_cached(
                "INSERT OR IGNORE INTO edges (list_id, blocker, blocked) VALUES (?1, ?2, ?3)",
            )?;
            for (n, &i) in plan.new.iter().enumerate() {
                let t = &tasks[i];
                insert.execute(params![
                    lpk,
                    first + n as i64,
                    t.key,
                    t.subject,
                    t.description,
                    t.active_form,
                    t.owner,
                    t.priority,
                    serde_json::to_string(&t.metadata).expect("a JSON object serialises"),
                    t.max_attempts,
                    now
                ])?;
            }
            for (n, blockers) in plan.blockers.iter().enumerate() {
                for b in blockers {
                    let blocker = match *b {
                        Blocker::Task(id) => id.0,
                        Blocker::New(j) => first + j as i64,
                    };
                    edge.execute(params![lpk, blocker, first + n as i64])?;
                }
            }
            Ok(plan
                .slots
                .iter()
                .map(|slot| match *slot {
                    Slot::Existing(id) => id,
                    Slot::New(n) => TaskId(first + n as i64),
                })
                .collect())
        })
    }

    fn tasks(&mut self, list: &ListId, filter: &Filter) -> Result<Vec<Task>> {
        self.read(|tx| match list_pk(tx, list)? {
            Some(lpk) => select_tasks(tx, lpk, list, filter),
            None => match filter.ids.first() {
                Some(&id) => Err(not_found(id, list)),
                None => Ok(Vec::new()),
            },
        })
    }

    fn counts(&mut self, list: &ListId, filter: &Filter) -> Result<Counts> {
        let mut counts = Counts::default();
        let Some(lpk) = list_pk(&self.conn, list)? else {
            return Ok(counts);
        };
        let mut args = vec![Sql::Integer(lpk)];
        let (terms, dead) = filter_sql(filter, &mut args);
        let sql = format!(
            "{}SELECT status, count(*) FROM tasks WHERE list_id = ?1{terms} GROUP BY status",
            if dead { DEAD_CTE } else { "" }
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            counts.add(
                parse_status(&r.get::<_, String>(0)?)?,
                r.get::<_, i64>(1)? as u64,
            );
        }
        Ok(counts)
    }

    fn stalled(&mut self, list: &ListId) -> Result<Stalled> {
        let Some(lpk) = list_pk(&self.conn, list)? else {
            return Ok(Stalled::new());
        };
        let mut st = self.conn.prepare_cached(
            "WITH RECURSIVE dead(id, root) AS ( \
               SELECT id, id FROM tasks WHERE list_id = ?1 AND status IN ('failed','cancelled') \
               UNION SELECT e.blocked, d.root FROM dead d \
               JOIN edges e ON e.list_id = ?1 AND e.blocker = d.id \
               JOIN tasks b ON b.list_id = ?1 AND b.id = e.blocked AND b.status = 'pending') \
             SELECT s.id, s.root, r.status FROM ( \
               SELECT d.id, min(d.root) AS root FROM dead d \
               JOIN tasks t ON t.list_id = ?1 AND t.id = d.id AND t.status = 'pending' GROUP BY d.id \
             ) s JOIN tasks r ON r.list_id = ?1 AND r.id = s.root",
        )?;
        let rows = st.query_map([lpk], |r| {
            let root = (TaskId(r.get(1)?), parse_status(&r.get::<_, String>(2)?)?);
            Ok((TaskId(r.get(0)?), root))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn lists(&mut self) -> Result<Vec<ListSummary>> {
        let mut st = self.conn.prepare_cached(
            "SELECT l.name, t.status, count(t.id) FROM lists l LEFT JOIN tasks t ON t.list_id = l.id \
             GROUP BY l.id, t.status ORDER BY l.name",
        )?;
        let mut rows = st.query([])?;
        let mut out: Vec<ListSummary> = Vec::new();
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            if out.last().map(|l| &l.name) != Some(&name) {
                out.push(ListSummary {
                    name,
                    counts: Counts::default(),
                });
            }
            if let Some(status) = r.get::<_, Option<String>>(1)? {
                let n: i64 = r.get(2)?;
                out.last_mut()
                    .expect("pushed above")
                    .counts
                    .add(parse_status(&status)?, n as u64);
            }
        }
        Ok(out)
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
            let lpk = list_pk(tx, list)?.ok_or_else(|| not_found(ids[0], list))?;
            let now = now_ms();
            let mut look = TxLookup { conn: tx, lpk };
            let add_blocked_by = resolve_all(&mut look, list, &u.add_blocked_by)?;
            let add_blocks = resolve_all(&mut look, list, &u.add_blocks)?;
            let remove_blocked_by = resolve_all(&mut look, list, &u.remove_blocked_by)?;
            let remove_blocks = resolve_all(&mut look, list, &u.remove_blocks)?;
            for &id in &ids {
                let (current, owner, meta) = status_owner(tx, lpk, list, id)?;
                check_if_status(id, current, &u.if_status)?;
                if let Some(token) = u.token {
                    check_token(tx, lpk, id, current, token)?;
                }
                if let (Some(new), OwnerChange::Set(name)) = (u.status, &u.owner) {
                    // Nobody holds it either when a takeover gave it back to pending: a
                    // stale worker must not finish it then.
                    match &owner {
                        _ if !new.is_terminal() => {}
                        Some(holder) if holder != name => {
                            bail!(conflict, "task {id} is held by '{holder}', not '{name}'")
                        }
                        None => bail!(
                            conflict,
                            "task {id} is not held by '{name}': it is {current} and nobody holds it"
                        ),
                        Some(_) => {}
                    }
                }
                let mut sets: Vec<String> = vec!["updated_at = ?".into()];
                let mut args: Vec<Sql> = vec![Sql::Integer(now)];
                let mut set = |col: &str, v: Sql| {
                    sets.push(format!("{col} = ?"));
                    args.push(v);
                };
                if let Some(v) = &u.subject {
                    set("subject", Sql::Text(v.clone()));
                }
                if let Some(v) = &u.description {
                    set("description", Sql::Text(v.clone()));
                }
                if let Some(v) = &u.active_form {
                    set("active_form", Sql::Text(v.clone()));
                }
                if let Some(v) = u.priority {
                    set("priority", Sql::Integer(v));
                }
                if let Some(v) = u.max_attempts {
                    set("max_attempts", Sql::Integer(v));
                }
                if let Some(v) = &u.result {
                    set("result", Sql::Text(v.clone()));
                }
                if let Some(d) = u.lease {
                    if u.status.unwrap_or(current) != Status::InProgress {
                        bail!(
                            conflict,
                            "task {id} is {current}: only a claimed (in_progress) task has a lease"
                        );
                    }
                    set("lease_until", Sql::Integer(now + duration_ms(d)));
                }
                if !u.metadata.is_empty() {
                    let mut m = match serde_json::from_str(&meta) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    for (k, v) in &u.metadata {
                        match v {
                            Some(v) => m.insert(k.clone(), v.clone()),
                            None => m.remove(k),
                        };
                    }
                    set("metadata", Sql::Text(Value::Object(m).to_string()));
                }
                match &u.owner {
                    OwnerChange::Keep => {}
                    OwnerChange::Set(name) => set("owner", Sql::Text(name.clone())),
                    OwnerChange::Clear => set("owner", Sql::Null),
                }
                match u.status {
                    Some(s) if s != current => {
                        set("status", Sql::Text(s.as_str().into()));
                        match s {
                            // Back to pending: nobody holds it, so any worker may claim it.
                            Status::Pending => {
                                sets.push(UNCLAIMED.into());
                                if u.owner == OwnerChange::Keep {
                                    sets.push("owner = NULL".into());
                                }
                            }
                            Status::InProgress => {
                                sets.push("started_at = ?, finished_at = NULL".into());
                                args.push(Sql::Integer(now));
                            }
                            _ => {
                                sets.push("finished_at = ?, lease_until = NULL".into());
                                args.push(Sql::Integer(now));
                            }
                        }
                    }
                    _ => {}
                }
                args.push(Sql::Integer(lpk));
                args.push(Sql::Integer(id.0));
                let sql = format!(
                    "UPDATE tasks SET {} WHERE list_id = ? AND id = ?",
                    sets.join(", ")
                );
                tx.execute(&sql, params_from_iter(args))?;
                for &b in &add_blocked_by {
                    add_edge(tx, lpk, list, b, id)?;
                }
                for &b in &add_blocks {
                    add_edge(tx, lpk, list, id, b)?;
                }
                for &b in &remove_blocked_by {
                    remove_edge(tx, lpk, b, id)?;
                }
                for &b in &remove_blocks {
                    remove_edge(tx, lpk, id, b)?;
                }
            }
            ids.iter().map(|&id| one_task(tx, lpk, list, id)).collect()
        })
    }

    fn release(&mut self, list: &ListId, ids: &[TaskId], r: &Release) -> Result<Vec<Task>> {
        let ids = dedup(ids);
        self.write(|tx| {
            let lpk = list_pk(tx, list)?.ok_or_else(|| not_found(ids[0], list))?;
            for &id in &ids {
                let (current, holder, _) = status_owner(tx, lpk, list, id)?;
                check_if_status(id, current, &r.if_status)?;
                if let Some(token) = r.token {
                    check_token(tx, lpk, id, current, token)?;
                }
                check_if_status(id, current, &[Status::InProgress])?;
                if let (Some(want), Some(holder)) = (&r.owner, &holder) {
                    if want != holder {
                        bail!(conflict, "task {id} is held by '{holder}', not '{want}'");
                    }
                }
                tx.execute(
                    &format!(
                        "UPDATE tasks SET {UNCLAIMED}, owner = NULL, attempts = max(attempts - 1, 0), \
                         updated_at = ?3 WHERE list_id = ?1 AND id = ?2"
                    ),
                    params![lpk, id.0, now_ms()],
                )?;
            }
            ids.iter().map(|&id| one_task(tx, lpk, list, id)).collect()
        })
    }

    fn delete(&mut self, list: &ListId, ids: &[TaskId], if_status: &[Status]) -> Result<()> {
        let ids = dedup(ids);
        self.write(|tx| {
            let lpk = list_pk(tx, list)?.ok_or_else(|| not_found(ids[0], list))?;
            for &id in &ids {
                let (current, _, _) = status_owner(tx, lpk, list, id)?;
                check_if_status(id, current, if_status)?;
                tx.execute(
                    "DELETE FROM tasks WHERE list_id = ?1 AND id = ?2",
                    params![lpk, id.0],
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
            let Some(lpk) = list_pk(tx, list)? else {
                return match c.id {
                    Some(id) => Err(not_found(id, list)),
                    None => Ok(None),
                };
            };
            let now = now_ms();
            // What the candidate must also meet: the given id, `-m` matching, `--limit`.
            let mut cond = String::new();
            let mut cond_args: Vec<Sql> = Vec::new();
            if let Some(id) = c.id {
                cond += " AND t.id = ?";
                cond_args.push(Sql::Integer(id.0));
            }
            for (k, v) in &c.matching {
                cond += " AND t.metadata -> ? = ?";
                cond_args.push(Sql::Text(meta_path(k)));
                cond_args.push(Sql::Text(v.to_string()));
            }
            for (k, n) in &c.limits {
                cond += " AND (t.metadata -> ? IS NULL OR (SELECT count(*) FROM tasks u \
                    WHERE u.list_id = t.list_id AND u.status = 'in_progress' \
                    AND (u.lease_until IS NULL OR u.lease_until >= ?) \
                    AND u.metadata -> ? = t.metadata -> ?) < ?)";
                let path = Sql::Text(meta_path(k));
                cond_args.extend([path.clone(), Sql::Integer(now), path.clone(), path, Sql::Integer(*n)]);
            }
            // Claims whose lease ran out go back to pending (or fail, with no attempt
            // left) first, so that they compete like any ready task.
            reap_in(tx, lpk, list, now, "", &|_| true)?;
            let lease = c.lease.map(|d| now + duration_ms(d));
            let (host, pid, start) = match &c.holder {
                Some(h) => (Some(h.host.clone()), Some(h.pid as i64), Some(h.started as i64)),
                None => (None, None, None),
            };
            let sql = format!(
                "UPDATE tasks SET status = 'in_progress', owner = ?, attempts = attempts + 1, \
                 claim_token = abs(random()), lease_until = ?, holder_host = ?, holder_pid = ?, \
                 holder_start = ?, started_at = ?, updated_at = ?, finished_at = NULL \
                 WHERE list_id = ? AND id = (SELECT t.id FROM tasks t WHERE t.list_id = ? \
                   AND t.status = 'pending' AND t.open_blockers = 0 AND (t.owner IS NULL OR t.owner = ?){cond} \
                   ORDER BY t.priority DESC, t.id LIMIT 1) \
                 RETURNING {COLS}"
            );
            let mut args: Vec<Sql> = vec![
                Sql::Text(c.owner.clone()),
                lease.map_or(Sql::Null, Sql::Integer),
                host.map_or(Sql::Null, Sql::Text),
                pid.map_or(Sql::Null, Sql::Integer),
                start.map_or(Sql::Null, Sql::Integer),
                Sql::Integer(now),
                Sql::Integer(now),
                Sql::Integer(lpk),
                Sql::Integer(lpk),
                Sql::Text(c.owner.clone()),
            ];
            args.extend(cond_args);
            let claimed = tx
                .prepare_cached(&sql)?
                .query_row(params_from_iter(args), |r| task_from_row(r, list))
                .optional()?;
            match (claimed, c.id) {
                (Some(mut t), _) => {
                    load_edges(tx, lpk, &mut t)?;
                    Ok(Some(t))
                }
                (None, None) => Ok(None),
                (None, Some(id)) => {
                    let t = one_task(tx, lpk, list, id)?;
                    let why = match (t.status, &t.owner) {
                        (Status::Pending, _) if !t.open_blockers.is_empty() => {
                            let b: Vec<String> = t.open_blockers.iter().map(|b| b.to_string()).collect();
                            format!("is blocked by {}", b.join(", "))
                        }
                        (Status::Pending, Some(o)) if *o != c.owner => format!("is reserved for '{o}'"),
                        (Status::InProgress, Some(o)) => format!("is in_progress, held by '{o}'"),
                        (Status::Pending, _) => "does not match the claim's metadata or limits".into(),
                        (s, _) => format!("is {s}"),
                    };
                    bail!(conflict, "task {id} cannot be claimed: it {why}")
                }
            }
        })
    }

    fn renew(&mut self, list: &ListId, id: TaskId, token: i64, lease: Duration) -> Result<()> {
        self.write(|tx| {
            let lpk = list_pk(tx, list)?.ok_or_else(|| not_found(id, list))?;
            let now = now_ms();
            let n = tx.execute(
                "UPDATE tasks SET lease_until = ?4, updated_at = ?5 \
                 WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'",
                params![lpk, id.0, token, now + duration_ms(lease), now],
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
            let lpk = list_pk(tx, list)?.ok_or_else(|| not_found(id, list))?;
            let now = now_ms();
            let old: Option<Option<String>> = tx
                .prepare_cached(
                    "SELECT log FROM tasks WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 \
                     AND status = 'in_progress'",
                )?
                .query_row(params![lpk, id.0, token], |r| r.get(0))
                .optional()?;
            let Some(old) = old else {
                bail!(conflict, "task {id} was taken over by another worker; its outcome was not recorded");
            };
            let log = carry_losses(old.as_deref(), o.log.clone());
            let reset = if o.status == Status::Pending {
                format!("{UNCLAIMED}, owner = NULL")
            } else {
                "lease_until = NULL, finished_at = ?8".into()
            };
            let n = tx.execute(
                &format!(
                    "UPDATE tasks SET status = ?4, result = ?5, log = ?6, exit_code = ?7, updated_at = ?8, {reset} \
                     WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'"
                ),
                params![lpk, id.0, token, o.status.as_str(), o.result, log, o.exit_code, now],
            )?;
            if n == 0 {
                bail!(conflict, "task {id} was taken over by another worker; its outcome was not recorded");
            }
            one_task(tx, lpk, list, id)
        })
    }

    fn unclaim(&mut self, list: &ListId, id: TaskId, token: i64, refund: bool) -> Result<()> {
        self.write(|tx| {
            let lpk = list_pk(tx, list)?.ok_or_else(|| not_found(id, list))?;
            tx.execute(
                &format!(
                    "UPDATE tasks SET {UNCLAIMED}, owner = NULL, attempts = max(attempts - ?4, 0), updated_at = ?5 \
                     WHERE list_id = ?1 AND id = ?2 AND claim_token = ?3 AND status = 'in_progress'"
                ),
                params![lpk, id.0, token, refund as i64, now_ms()],
            )?;
            Ok(())
        })
    }

    fn reap(
        &mut self,
        list: &ListId,
        host: &str,
        alive: &dyn Fn(&Holder) -> bool,
    ) -> Result<Vec<Task>> {
        self.write(|tx| {
            let Some(lpk) = list_pk(tx, list)? else {
                return Ok(Vec::new());
            };
            let ids = reap_in(tx, lpk, list, now_ms(), host, alive)?;
            ids.iter().map(|&id| one_task(tx, lpk, list, id)).collect()
        })
    }

    fn pool_add(&mut self, p: &Pool) -> Result<()> {
        let h = &p.holder;
        let options = Value::Object(p.options.clone()).to_string();
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO pools (host, pid, started, list, options, started_at, seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![h.host, h.pid, h.started as i64, p.list, options, p.started_at, p.seen_at],
            )?;
            Ok(())
        })
    }

    fn pool_seen(&mut self, h: &Holder) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE pools SET seen_at = ?4 WHERE host = ?1 AND pid = ?2 AND started = ?3",
            )?
            .execute(params![h.host, h.pid, h.started as i64, now_ms()])?;
            Ok(())
        })
    }

    fn pool_remove(&mut self, h: &Holder) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM pools WHERE host = ?1 AND pid = ?2 AND started = ?3",
                params![h.host, h.pid, h.started as i64],
            )?;
            Ok(())
        })
    }

    fn pools(&mut self, list: Option<&ListId>) -> Result<Vec<Pool>> {
        let mut st = self.conn.prepare_cached(
            "SELECT host, pid, started, list, options, started_at, seen_at FROM pools \
             WHERE ?1 IS NULL OR list = ?1 ORDER BY started_at, host, pid",
        )?;
        let rows = st.query_map([list.map(|l| l.as_str())], |r| {
            let options = match serde_json::from_str(&r.get::<_, String>(4)?) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            Ok(Pool {
                holder: Holder {
                    host: r.get(0)?,
                    pid: r.get::<_, i64>(1)? as u32,
                    started: r.get::<_, i64>(2)? as u64,
                },
                list: r.get(3)?,
                options,
                started_at: r.get(5)?,
                seen_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn change_counter(&mut self) -> Result<u64> {
        // Cached: waiting calls this hundreds of times a second.
        let mut st = self.conn.prepare_cached("PRAGMA data_version")?;
        Ok(st.query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.path.clone(), wal_path(&self.path)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause comes from SQLite's error code, whatever its message says.
    #[test]
    fn causes_come_from_codes_not_messages() {
        use rusqlite::ffi;
        let err = |code: i32| {
            Error::from(rusqlite::Error::SqliteFailure(
                ffi::Error::new(code),
                Some("a message worded in some new way".into()),
            ))
        };
        assert_eq!(err(ffi::SQLITE_READONLY).cause, Some(Cause::Unwritable));
        assert_eq!(err(ffi::SQLITE_CANTOPEN).cause, Some(Cause::Unwritable));
        assert_eq!(err(ffi::SQLITE_FULL).cause, Some(Cause::DiskFull));
        assert_eq!(err(ffi::SQLITE_NOTADB).cause, Some(Cause::NotADatabase));
        assert_eq!(err(ffi::SQLITE_BUSY).cause, Some(Cause::Locked));
        assert_eq!(err(ffi::SQLITE_CORRUPT).cause, Some(Cause::Corrupt));
        assert_eq!(err(ffi::SQLITE_READONLY).kind, crate::Kind::Store);
        assert_eq!(newer_schema(99).cause, Some(Cause::NewerSchema));
    }
}
