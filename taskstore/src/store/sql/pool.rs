//! Worker pools: a pool registers itself, says it is still there, leaves; the pools
//! running.

use super::tx::json_object;
use super::{Db, SqlStore};
use crate::error::Result;
use crate::model::ListId;
use crate::store::{Holder, Pool};
use serde_json::Value;

pub(super) fn pool_add<D: Db>(store: &mut SqlStore<D>, p: &Pool) -> Result<()> {
    let h = &p.holder;
    let options = Value::Object(p.options.clone()).to_string();
    store.write(|tx| {
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

pub(super) fn pool_seen<D: Db>(store: &mut SqlStore<D>, h: &Holder) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn pool_remove<D: Db>(store: &mut SqlStore<D>, h: &Holder) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn pools<D: Db>(store: &mut SqlStore<D>, list: Option<&ListId>) -> Result<Vec<Pool>> {
    store.read(|tx| {
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
