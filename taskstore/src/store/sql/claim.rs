//! Claims and leases: claiming a task, renewing its lease, finishing it, giving it
//! back unfinished, recovering the claims of workers that are gone.

use super::tx::{json_object, not_found, task_from_row, Tx};
use super::{Args, Db, SqlStore, COLS, UNCLAIMED};
use crate::bail;
use crate::error::{Error, Result};
use crate::model::{ListId, Status, Task, TaskId};
use crate::store::{after_loss, carry_losses, loss, Claim, Holder, Outcome};
use crate::time::duration_ms;
use serde_json::{json, Value};
use std::time::Duration;

pub(super) fn claim<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    c: &Claim,
) -> Result<Option<Task>> {
    if c.owner.is_empty() {
        bail!(usage, "the owner name is empty");
    }
    store.write(|tx| {
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

pub(super) fn renew<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    id: TaskId,
    token: i64,
    lease: Duration,
) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn finish<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    id: TaskId,
    token: i64,
    o: &Outcome,
) -> Result<Task> {
    store.write(|tx| {
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
        // What the attempt cost adds to what the task cost before.
        let cost = match o.cost_usd {
            Some(c) => {
                args.push(((c * 1e6).round() as i64).into());
                "cost_micros = COALESCE(cost_micros, 0) + ?11, "
            }
            None => "",
        };
        let n = tx.exec(
            &format!(
                "UPDATE tasks SET status = ?4, result = ?5, log = ?6, exit_code = ?7, updated_at = ?8, \
                 metadata = ?9, feedback = ?10, {cost}{reset} \
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

pub(super) fn unclaim<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    id: TaskId,
    token: i64,
    refund: bool,
) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn reap<D: Db>(
    store: &mut SqlStore<D>,
    list: &ListId,
    by: &str,
    host: &str,
    alive: &dyn Fn(&Holder) -> bool,
) -> Result<Vec<Task>> {
    store.write(|tx| {
        let Some(lpk) = tx.list_pk(list)? else {
            return Ok(Vec::new());
        };
        let ids = tx.reap_in(lpk, list, by, host, alive)?;
        ids.iter().map(|&id| tx.one_task(lpk, list, id)).collect()
    })
}

impl<D: Db> Tx<'_, D> {
    /// Recover the lost claims of one list (see `Store::reap`); `host` empty: lease
    /// expiry only. Returns the ids of the tasks recovered.
    pub(super) fn reap_in(
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

fn taken_over(id: TaskId) -> Error {
    Error::conflict(format!(
        "task {id} was taken over by another worker; its outcome was not recorded"
    ))
}
