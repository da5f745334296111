//! The embedded SQLite backend: one file, WAL mode, every write `BEGIN IMMEDIATE`.

use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::sql::{Arg, Db, Dialect, Row};
use super::{newer_schema, no_store, Access, Sync};
use crate::bail;
use crate::error::{Cause, Error, Result};
use crate::model::ListId;
use crate::probe;
use crate::time::now_ms;
use crate::watch::Watcher;
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

pub struct SqliteDb {
    conn: Connection,
    path: PathBuf,
    /// Keep the WAL small at close (see `Drop`): writers under `TASK_SYNC=normal`.
    bound_wal: bool,
    /// Made on the first wait only: a call that need not wait should not pay for it.
    watcher: Option<Watcher>,
}

/// Past this size a closing writer checkpoints the WAL into the database and truncates
/// it. Below it the WAL stays between processes: no checkpoint, no fsync, no new file
/// at every call, and the next process rebuilds its index from at most this much.
const WAL_LIMIT: u64 = 256 * 1024;

impl Drop for SqliteDb {
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

impl SqliteDb {
    pub fn open(path: &Path, sync: Sync, access: Access) -> Result<SqliteDb> {
        let at = |e: Error| e.context(format!("store {}", path.display()));
        if path.is_dir() {
            return Err(at(Error::store("it is a directory, not a task database")));
        }
        if access == Access::Create {
            create_file(path).map_err(at)?;
        } else if !path.exists() {
            // Not even its folder is made: nothing is left behind by a typo.
            return Err(no_store(&path.display().to_string(), ""));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| at(e.into()))?;
        let mut store = SqliteDb {
            conn,
            path: path.to_path_buf(),
            bound_wal: access.writes() && sync == Sync::Normal,
            watcher: None,
        };
        store.prepare(sync, access).map_err(|e| match e.kind {
            crate::error::Kind::NotFound => e, // it names the store itself
            _ => at(explain_unwritable(e, path)),
        })?;
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
        if version == 0 && access != Access::Create {
            // An empty file (`touch`ed, or left by an interrupted first run): no store.
            return Err(no_store(
                &self.path.display().to_string(),
                " (the file holds none)",
            ));
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
}

/// Create the store's folders (0700) and file (0600) if missing, so that results,
/// which can hold secrets, are never readable by others.
fn create_file(path: &Path) -> Result<()> {
    use std::fs::{DirBuilder, OpenOptions};
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

const DIALECT: Dialect = Dialect {
    random_token: "abs(random())",
    skip_locked: "",
    // Every write transaction begins IMMEDIATE: writers already exclude each other.
    lock_list: None,
    meta_key: meta_path,
    meta_get: |col, key| format!("{col} -> {key}"),
    json: |p| p.to_string(),
};

/// The JSON path of a metadata key, for SQLite's `->` operator.
fn meta_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

fn to_sql(a: &Arg) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::ToSqlOutput::Borrowed;
    Borrowed(match a {
        Arg::Null => ValueRef::Null,
        Arg::Int(v) => ValueRef::Integer(*v),
        Arg::Text(s) => ValueRef::Text(s.as_bytes()),
    })
}

fn row(r: &rusqlite::Row, n: usize) -> rusqlite::Result<Row> {
    (0..n)
        .map(|i| {
            Ok(match r.get_ref(i)? {
                ValueRef::Null => Arg::Null,
                ValueRef::Integer(v) => Arg::Int(v),
                ValueRef::Real(v) => Arg::Int(v as i64),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Arg::Text(String::from_utf8_lossy(t).into_owned())
                }
            })
        })
        .collect::<rusqlite::Result<_>>()
        .map(Row)
}

impl Db for SqliteDb {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn begin(&mut self, write: bool) -> Result<i64> {
        let sql = if write { "BEGIN IMMEDIATE" } else { "BEGIN" };
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(now_ms())
    }

    fn commit(&mut self) -> Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn query(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        let mut st = self.conn.prepare_cached(sql)?;
        let n = st.column_count();
        let rows = st
            .query_map(params_from_iter(args.iter().map(to_sql)), |r| row(r, n))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let mut st = self.conn.prepare_cached(sql)?;
        Ok(st.execute(params_from_iter(args.iter().map(to_sql)))? as u64)
    }

    fn expect_rows(&mut self, n: usize) -> Result<()> {
        if n > 1000 {
            // Room for the indexes of a big batch, instead of re-reading evicted pages.
            self.conn.pragma_update(None, "cache_size", -64 * 1024)?;
        }
        Ok(())
    }

    fn explain(&self, e: Error) -> Error {
        match e.cause {
            Some(Cause::Unwritable) => {
                explain_unwritable(e, &self.path).context(format!("store {}", self.path.display()))
            }
            _ => e,
        }
    }

    fn change_counter(&mut self, _list: &ListId) -> Result<u64> {
        // Cached: waiting calls this hundreds of times a second.
        let mut st = self.conn.prepare_cached("PRAGMA data_version")?;
        Ok(st.query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    fn wait_change(&mut self, _list: &ListId, max: Duration) -> Result<bool> {
        // Every commit writes the store's WAL (or, after a checkpoint, the store).
        let paths = || vec![self.path.clone(), wal_path(&self.path)];
        Ok(self
            .watcher
            .get_or_insert_with(|| Watcher::new(paths()))
            .wait(max))
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
