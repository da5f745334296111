//! The transaction every operation runs in ([`Tx`]) and what more than one of them
//! needs: the list's key and lock, history events, reading tasks with their edges and
//! scopes, and the errors they share.

use super::{Arg, Args, Db, Dialect, Row, COLS, DEAD_CTE};
use crate::error::{Error, Result};
use crate::model::{ListId, Status, StatusFilter, Task, TaskId};
use crate::store::{Filter, Holder};
use serde_json::{Map, Value};

/// A transaction in progress: the connection and the transaction's time.
pub(super) struct Tx<'a, D: Db> {
    pub(super) db: &'a mut D,
    pub(super) now: i64,
    /// A write transaction: it may have changed depths, which reads bring up to date.
    pub(super) write: bool,
}

impl<D: Db> Tx<'_, D> {
    pub(super) fn q(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        self.db.query(sql, args)
    }

    pub(super) fn one(&mut self, sql: &str, args: &[Arg]) -> Result<Option<Row>> {
        Ok(self.db.query(sql, args)?.into_iter().next())
    }

    pub(super) fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        self.db.execute(sql, args)
    }

    pub(super) fn d(&self) -> &'static Dialect {
        self.db.dialect()
    }

    pub(super) fn list_pk(&mut self, list: &ListId) -> Result<Option<i64>> {
        self.one(
            "SELECT id FROM lists WHERE name = ?1",
            &[list.as_str().into()],
        )?
        .map(|r| r.int(0))
        .transpose()
    }

    /// The list's key, the list created if missing.
    pub(super) fn ensure_list(&mut self, list: &ListId) -> Result<i64> {
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
    pub(super) fn lock_list(&mut self, lpk: i64) -> Result<()> {
        if let Some(sql) = self.d().lock_list {
            self.q(sql, &[lpk.into()])?;
        }
        Ok(())
    }

    pub(super) fn exists(&mut self, lpk: i64, id: TaskId) -> Result<bool> {
        Ok(self
            .one(
                "SELECT 1 FROM tasks WHERE list_id = ?1 AND id = ?2",
                &[lpk.into(), id.0.into()],
            )?
            .is_some())
    }

    /// Record a change of a task in its history.
    pub(super) fn event(
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
    pub(super) fn load_edges(&mut self, lpk: i64, t: &mut Task) -> Result<()> {
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
    pub(super) fn load_edges_of(&mut self, lpk: i64, tasks: &mut [Task]) -> Result<()> {
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
    pub(super) fn filter_sql(&self, filter: &Filter, args: &mut Args) -> (String, bool) {
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

    pub(super) fn select_tasks(
        &mut self,
        lpk: i64,
        list: &ListId,
        filter: &Filter,
    ) -> Result<Vec<Task>> {
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

    pub(super) fn one_task(&mut self, lpk: i64, list: &ListId, id: TaskId) -> Result<Task> {
        let filter = Filter {
            ids: vec![id],
            ..Filter::default()
        };
        self.select_tasks(lpk, list, &filter)?
            .pop()
            .ok_or_else(|| not_found(id, list))
    }

    /// Fill in the tasks' scopes (exact keys), for tasks in id order between the first's
    /// and the last's.
    pub(super) fn load_scopes(&mut self, lpk: i64, tasks: &mut [Task]) -> Result<()> {
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
}

pub(super) fn not_found(id: TaskId, list: &ListId) -> Error {
    Error::not_found(format!("task {id} not found in list '{list}'"))
}

pub(super) fn json_object(s: &str) -> Map<String, Value> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

pub(super) fn task_from_row(r: &Row, list: &ListId) -> Result<Task> {
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
        cost_usd: r.opt_int(27)?.map(|m| m as f64 / 1e6),
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

pub(super) fn dedup(ids: &[TaskId]) -> Vec<TaskId> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|i| seen.insert(*i)).collect()
}
