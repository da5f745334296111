//! Keeping `depth` exact: the number of open tasks on the longest chain of open tasks
//! that waits on a task (0 for a closed one), what the claim orders by after priority.
//!
//! The schema's triggers (SQLite migration 7, PostgreSQL 5) only note in `depth_dirty`
//! which tasks a write may have changed the depth of: an edge's blocker when the edge
//! comes or goes, a task opened or closed and its blockers. Before the transaction
//! commits, and before a write prints its tasks, [`Tx::refresh_depths`] computes them.

use super::{Db, Tx};
use crate::error::Result;
use std::collections::{BTreeSet, HashMap};

/// How many tasks a write computes the depth of one by one before it walks the region
/// it changes instead (see `Tx::refresh_depths`).
const DEPTH_STEPS: usize = 32;

/// A task's depth from its waiters' (see schema migration 7): the longest chain of open
/// tasks that waits on it, 0 when it is closed itself. Binds ?1 = list, ?2 = task.
const DEPTH: &str = "SELECT t.depth, CASE WHEN t.status IN ('pending','in_progress') THEN \
    COALESCE((SELECT MAX(w.depth) + 1 FROM edges e \
      JOIN tasks w ON w.list_id = e.list_id AND w.id = e.blocked AND w.status IN ('pending','in_progress') \
     WHERE e.list_id = t.list_id AND e.blocker = t.id), 0) ELSE 0 END \
    FROM tasks t WHERE t.list_id = ?1 AND t.id = ?2";

impl<D: Db> Tx<'_, D> {
    /// Bring `depth` up to date for the tasks whose chains this transaction changed (the
    /// triggers noted them in `depth_dirty`) and for what they wait on.
    ///
    /// Most writes settle in a few steps: each noted task is computed from its waiters,
    /// and its blockers are computed next only when its value changed
    /// ([`Tx::depths_step_by_step`]). A write that changes many chains (a plan of a
    /// long chain in one batch, written goal first or not) would compute some tasks
    /// over and over that way; past a few dozen steps the region it can change is
    /// walked once instead ([`Tx::depths_by_region`]).
    pub(super) fn refresh_depths(&mut self) -> Result<()> {
        let noted = self.q("SELECT list_id, task FROM depth_dirty", &[])?;
        if noted.is_empty() {
            return Ok(());
        }
        let mut todo = BTreeSet::new();
        for r in &noted {
            todo.insert((r.int(0)?, r.int(1)?));
        }
        // Writers of a list that change depths do it one after the other (PostgreSQL),
        // each reading what the one before committed: the last one's values are right.
        let lists: BTreeSet<i64> = todo.iter().map(|t| t.0).collect();
        for l in lists {
            self.lock_list(l)?;
        }
        if let Some(touched) = self.depths_step_by_step(todo)? {
            // Whatever the steps changed or were about to look at must be looked at.
            for (l, id) in touched {
                self.exec(
                    "INSERT INTO depth_dirty (list_id, task) VALUES (?1, ?2)",
                    &[l.into(), id.into()],
                )?;
            }
            self.depths_by_region()?;
        }
        self.exec("DELETE FROM depth_dirty", &[])?;
        Ok(())
    }

    /// Compute the noted tasks, and the blockers of each whose value changed, highest
    /// id first (blockers usually have lower ids than what waits on them). None when
    /// done; past [`DEPTH_STEPS`] steps, every task changed or still to compute.
    fn depths_step_by_step(
        &mut self,
        mut todo: BTreeSet<(i64, i64)>,
    ) -> Result<Option<BTreeSet<(i64, i64)>>> {
        let mut changed = BTreeSet::new();
        let mut steps = 0;
        while let Some((l, id)) = todo.pop_last() {
            steps += 1;
            if steps > DEPTH_STEPS {
                todo.insert((l, id));
                todo.extend(changed);
                return Ok(Some(todo));
            }
            let key = [l.into(), id.into()];
            let Some(r) = self.one(DEPTH, &key)? else {
                continue; // deleted in this transaction
            };
            let (old, new) = (r.int(0)?, r.int(1)?);
            if old == new {
                continue;
            }
            self.exec(
                "UPDATE tasks SET depth = ?3 WHERE list_id = ?1 AND id = ?2",
                &[l.into(), id.into(), new.into()],
            )?;
            changed.insert((l, id));
            for b in self.q(
                "SELECT blocker FROM edges WHERE list_id = ?1 AND blocked = ?2",
                &key,
            )? {
                todo.insert((l, b.int(0)?));
            }
        }
        Ok(None)
    }

    /// One query finds the region the noted tasks can change — they and, through open
    /// tasks, everything they wait on — with each task's status and depth and those of
    /// what waits on it. The new depths are computed in memory, waiters first, and only
    /// the ones that changed are written.
    fn depths_by_region(&mut self) -> Result<()> {
        type Node = (i64, i64);
        let rows = self.q(
            "WITH RECURSIVE up(list_id, id) AS ( \
               SELECT list_id, task FROM depth_dirty \
               UNION \
               SELECT e.list_id, e.blocker FROM up \
                 JOIN tasks t ON t.list_id = up.list_id AND t.id = up.id \
                  AND t.status IN ('pending','in_progress') \
                 JOIN edges e ON e.list_id = up.list_id AND e.blocked = up.id) \
             SELECT t.list_id, t.id, t.depth, \
                    CASE WHEN t.status IN ('pending','in_progress') THEN 1 ELSE 0 END, \
                    w.id, w.depth, CASE WHEN w.status IN ('pending','in_progress') THEN 1 END \
             FROM up JOIN tasks t ON t.list_id = up.list_id AND t.id = up.id \
             LEFT JOIN edges e ON e.list_id = t.list_id AND e.blocker = t.id \
             LEFT JOIN tasks w ON w.list_id = e.list_id AND w.id = e.blocked",
            &[],
        )?;
        struct Region {
            old: i64,
            open: bool,
            /// Open waiters: in the region (their new depth counts) or not (stored).
            waiters: Vec<(i64, i64)>,
        }
        let mut region: HashMap<Node, Region> = HashMap::new();
        for r in &rows {
            let node = (r.int(0)?, r.int(1)?);
            let entry = region.entry(node).or_insert(Region {
                old: r.int(2)?,
                open: r.int(3)? != 0,
                waiters: Vec::new(),
            });
            if let (Some(w), Some(depth), Some(1)) = (r.opt_int(4)?, r.opt_int(5)?, r.opt_int(6)?) {
                entry.waiters.push((w, depth));
            }
        }
        // Waiters first: a task is computed once every waiter of it in the region is.
        let mut pending: HashMap<Node, usize> = region.keys().map(|&k| (k, 0)).collect();
        let mut blockers: HashMap<Node, Vec<Node>> = HashMap::new();
        for (&(l, id), t) in &region {
            for &(w, _) in &t.waiters {
                if region.contains_key(&(l, w)) {
                    *pending.get_mut(&(l, id)).expect("a node") += 1;
                    blockers.entry((l, w)).or_default().push((l, id));
                }
            }
        }
        let mut ready: Vec<Node> = pending
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(&k, _)| k)
            .collect();
        let mut depth: HashMap<Node, i64> = HashMap::new();
        while let Some(node) = ready.pop() {
            let t = &region[&node];
            let new = if t.open {
                t.waiters
                    .iter()
                    .map(|&(w, stored)| 1 + depth.get(&(node.0, w)).copied().unwrap_or(stored))
                    .max()
                    .unwrap_or(0)
            } else {
                0
            };
            depth.insert(node, new);
            for b in blockers.remove(&node).unwrap_or_default() {
                let n = pending.get_mut(&b).expect("a node");
                *n -= 1;
                if *n == 0 {
                    ready.push(b);
                }
            }
        }
        for (&(l, id), &new) in &depth {
            if new != region[&(l, id)].old {
                self.exec(
                    "UPDATE tasks SET depth = ?3 WHERE list_id = ?1 AND id = ?2",
                    &[l.into(), id.into(), new.into()],
                )?;
            }
        }
        Ok(())
    }
}
