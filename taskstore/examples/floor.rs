//! The floor of one call (`bench/bench.py profile`): the smallest program that opens the
//! store as the tools do (same flags, busy timeout, no checkpoint at close, synchronous
//! NORMAL) and inserts one task row the same way (`BEGIN IMMEDIATE`, the id from the
//! list's high-water mark) — or, with `read`, reads 100 tasks. What the tools cost
//! beyond it is theirs; what it costs is SQLite's and the process's.

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use std::time::Duration;

fn main() -> rusqlite::Result<()> {
    let db = std::env::var("TASK_DB").expect("TASK_DB names the store");
    let mut c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert!(version > 0, "run a tool on the store first");
    if std::env::args().nth(1).as_deref() == Some("read") {
        let mut st = c.prepare(
            "SELECT t.id, t.subject, t.status, t.owner FROM tasks t JOIN lists l ON l.id = t.list_id \
             WHERE l.name = 'bench' ORDER BY t.id LIMIT 100",
        )?;
        let n = st.query_map([], |r| r.get::<_, i64>(0))?.count();
        println!("{n}");
        return Ok(());
    }
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (list, id): (i64, i64) = tx.query_row(
        "UPDATE lists SET last_id = last_id + 1 WHERE name = 'bench' RETURNING id, last_id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    tx.execute(
        "INSERT INTO tasks (list_id, id, subject, created_at, updated_at) VALUES (?1, ?2, 'floor', 0, 0)",
        params![list, id],
    )?;
    tx.commit()?;
    println!("{id}");
    Ok(())
}
