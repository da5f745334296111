//! Writes: creating tasks, updating them (with their edges and scopes), giving a
//! claimed task back, deleting.

use super::tx::{dedup, json_object, not_found, Tx};
use super::{Arg, Args, Db, SqlStore, CHUNK, UNCLAIMED};
use crate::bail;
use crate::error::{Error, Result};
use crate::graph;
use crate::model::{scope_keys, ListId, NewTask, OnConflict, Status, Task, TaskId};
use crate::store::{plan_create, resolve_all, Blocker, Lookup, OwnerChange, Release, Slot, Update};
use crate::time::duration_ms;
use serde_json::{json, Value};

pub(super) fn create<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    tasks: &[NewTask],
    on_conflict: OnConflict,
) -> Result<Vec<TaskId>> {
    graph::validate_batch(tasks)?;
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    store.db.expect_rows(tasks.len())?;
    store.write(|tx| tx.insert_tasks(list, tasks, on_conflict))
}

pub(super) fn update<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    ids: &[TaskId],
    u: &Update,
) -> Result<Vec<Task>> {
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
    store.write(|tx| {
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
                // Only a claim in progress is held: nobody holds a task a takeover gave
                // back to pending, or failed for want of attempts, so a stale worker of
                // that name must not finish it then.
                match &cur.owner {
                    _ if !new.is_terminal() => {}
                    Some(holder) if holder != name => {
                        bail!(conflict, "task {id} is held by '{holder}', not '{name}'")
                    }
                    _ if cur.status != Status::InProgress => bail!(
                        conflict,
                        "task {id} is not held by '{name}': it is {} and nobody holds it",
                        cur.status
                    ),
                    _ => {}
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
                            if cur.status.is_terminal() {
                                // Reopened: a fresh budget (the history keeps the
                                // attempts it had), else a retry runs it once at most.
                                sets.push("attempts = 0".into());
                            }
                            if u.owner == OwnerChange::Keep {
                                sets.push("owner = NULL".into());
                            }
                        }
                        Status::InProgress => {
                            sets.push(format!("started_at = {}, finished_at = NULL", args.p(now)));
                        }
                        _ => {
                            sets.push(format!("finished_at = {}, lease_until = NULL", args.p(now)));
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
            // Without a name, the change is the holder's own (made under its claim token).
            let by = u.by.as_deref().or(cur.owner.as_deref());
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

pub(super) fn release<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    ids: &[TaskId],
    r: &Release,
) -> Result<Vec<Task>> {
    let ids = dedup(ids);
    store.write(|tx| {
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

pub(super) fn delete<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    ids: &[TaskId],
    if_status: &[Status],
) -> Result<()> {
    let ids = dedup(ids);
    store.write(|tx| {
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

impl<D: Db> Tx<'_, D> {
    /// Create a batch of tasks as [`plan_create`] decides (see
    /// [`Store::create`](crate::store::Store::create)).
    pub(super) fn insert_tasks(
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
