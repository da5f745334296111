//! Reads: tasks, their counts, the stalled ones, the lists, a task's history.

use super::tx::{dedup, json_object, not_found};
use super::{Args, Db, SqlStore, DEAD_CTE};
use crate::error::Result;
use crate::model::{Event, ListId, Task, TaskId};
use crate::store::{Counts, Filter, ListSummary, Stalled};

pub(super) fn tasks<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    filter: &Filter,
) -> Result<Vec<Task>> {
    store.read(|tx| match tx.list_pk(list)? {
        Some(lpk) => tx.select_tasks(lpk, list, filter),
        None => match filter.ids.first() {
            Some(&id) => Err(not_found(id, list)),
            None => Ok(Vec::new()),
        },
    })
}

pub(super) fn counts<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    filter: &Filter,
) -> Result<Counts> {
    store.read(|tx| {
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

pub(super) fn stalled<D: Db>(store: &mut SqlStore<D>, list: &ListId) -> Result<Stalled> {
    store.read(|tx| {
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

pub(super) fn lists<D: Db>(store: &mut SqlStore<D>) -> Result<Vec<ListSummary>> {
    store.read(|tx| {
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

pub(super) fn history<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    ids: &[TaskId],
    last: Option<usize>,
) -> Result<Vec<Event>> {
    let ids = dedup(ids);
    store.read(|tx| {
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

pub(super) fn events_after<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    after: i64,
    max: usize,
) -> Result<Vec<(i64, Event)>> {
    store.read(|tx| {
        let Some(lpk) = tx.list_pk(list)? else {
            return Ok(Vec::new());
        };
        let rows = tx.q(
            &format!(
                "SELECT id, task, at, kind, actor, detail FROM events WHERE list_id = ?1 AND id > ?2 \
                 ORDER BY id LIMIT {max}"
            ),
            &[lpk.into(), after.into()],
        )?;
        rows.iter()
            .map(|r| {
                let event = Event {
                    task: TaskId(r.int(1)?),
                    at: r.int(2)?,
                    kind: r.text(3)?,
                    by: r.opt_text(4)?,
                    detail: json_object(&r.text(5)?),
                };
                Ok((r.int(0)?, event))
            })
            .collect()
    })
}

pub(super) fn last_event<D: Db>(store: &mut SqlStore<D>, list: &ListId) -> Result<i64> {
    store.read(|tx| {
        let Some(lpk) = tx.list_pk(list)? else {
            return Ok(0);
        };
        let row = tx.one(
            "SELECT COALESCE(MAX(id), 0) FROM events WHERE list_id = ?1",
            &[lpk.into()],
        )?;
        row.map_or(Ok(0), |r| r.int(0))
    })
}

pub(super) fn cost<D: Db>(store: &mut SqlStore<D>, list: &ListId) -> Result<Option<f64>> {
    store.read(|tx| {
        let Some(lpk) = tx.list_pk(list)? else {
            return Ok(None);
        };
        // SUM of no rows is NULL: no task has a cost.
        let row = tx.one(
            "SELECT CAST(SUM(cost_micros) AS BIGINT) FROM tasks WHERE list_id = ?1 AND cost_micros IS NOT NULL",
            &[lpk.into()],
        )?;
        Ok(row
            .map(|r| r.opt_int(0))
            .transpose()?
            .flatten()
            .map(|m| m as f64 / 1e6))
    })
}
