//! Sync with a folder of task files: which file each task is paired with, importing
//! the files' tasks, saving the pairs.

use super::{Args, Db, SqlStore, CHUNK};
use crate::bail;
use crate::error::{Error, Result};
use crate::graph;
use crate::model::{ListId, NewTask, OnConflict, Status, TaskId};
use crate::store::{SyncImport, SyncPair};
use serde_json::Value;

pub(super) fn sync_pairs<D: Db>(store: &mut SqlStore<D>, list: &ListId) -> Result<Vec<SyncPair>> {
    store.read(|tx| {
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

pub(super) fn sync_import<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    imports: &[SyncImport],
) -> Result<Vec<TaskId>> {
    let tasks: Vec<NewTask> = imports.iter().map(|i| i.task.clone()).collect();
    graph::validate_batch(&tasks)?;
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    store.write(|tx| {
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
                    &format!(
                        "UPDATE tasks SET status = ?3, {col} = ?4 WHERE list_id = ?1 AND id = ?2"
                    ),
                    &[
                        lpk.into(),
                        id.0.into(),
                        imp.status.as_str().into(),
                        now.into(),
                    ],
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

pub(super) fn sync_save<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    pairs: &[SyncPair],
    forget: &[TaskId],
) -> Result<()> {
    if pairs.is_empty() && forget.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
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
