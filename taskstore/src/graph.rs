//! Backend-neutral checks and computations on the dependency graph.

use crate::bail;
use crate::error::Result;
use crate::model::{check_key, BlockerRef, NewTask, Task, TaskId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Check a batch before any backend writes it: subjects present, attempts sane, keys
/// valid and distinct, and no cycle among in-batch references (existing tasks cannot
/// point at new ones, so a cycle can only lie inside the batch).
pub fn validate_batch(tasks: &[NewTask]) -> Result<()> {
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for t in tasks {
        if let Some(k) = &t.key {
            check_key(k).map_err(|e| match t.origin.as_str() {
                "" => e,
                origin => e.context(origin),
            })?;
            if let Some(first) = keys.insert(k, &t.origin) {
                bail!(
                    usage,
                    "{}duplicate key '{k}' (first used on {first})",
                    t.origin_prefix()
                );
            }
        }
        if t.subject.trim().is_empty() {
            bail!(usage, "{}the subject is empty", t.origin_prefix());
        }
        if t.owner.as_deref() == Some("") {
            // An empty owner would reserve the task for a worker that cannot exist.
            bail!(
                usage,
                "{}the owner is empty (leave it out for an unowned task)",
                t.origin_prefix()
            );
        }
        if t.max_attempts < 1 {
            bail!(
                usage,
                "{}maxAttempts must be at least 1, got {}",
                t.origin_prefix(),
                t.max_attempts
            );
        }
    }
    // Kahn's algorithm over record references; what is left over lies on a cycle.
    let n = tasks.len();
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in tasks.iter().enumerate() {
        for b in &t.blocked_by {
            if let BlockerRef::Record(j) = *b {
                indegree[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push(d);
            }
        }
    }
    if seen < n {
        // Every record left over waits for another one left over; following those
        // blockers from any of them must come back to a record on the cycle.
        let left = |i: usize| {
            tasks[i].blocked_by.iter().find_map(|b| match *b {
                BlockerRef::Record(j) if indegree[j] > 0 => Some(j),
                _ => None,
            })
        };
        let mut path: Vec<usize> = Vec::new();
        let mut at = (0..n).find(|&i| indegree[i] > 0);
        while let Some(i) = at {
            if let Some(start) = path.iter().position(|&p| p == i) {
                path.drain(..start);
                break;
            }
            path.push(i);
            at = left(i);
        }
        let name = |i: usize| {
            let t = &tasks[i];
            format!("'{}'", t.key.as_deref().unwrap_or(&t.subject))
        };
        let first = path.first().copied().unwrap_or(0);
        let chain: Vec<String> = path.iter().chain([&first]).map(|&i| name(i)).collect();
        bail!(
            usage,
            "{}dependency cycle: {} depends, through blockedBy, on itself ({})",
            tasks[first].origin_prefix(),
            name(first),
            chain.join(" waits for ")
        );
    }
    Ok(())
}

/// Dependency waves of the open tasks: wave 1 has no open blocker, wave k+1 becomes ready
/// when waves 1..=k are done. Tasks that can never run (stalled behind a failed or
/// cancelled task) are in no wave.
pub fn waves(tasks: &[Task]) -> Vec<Vec<TaskId>> {
    let open: BTreeMap<TaskId, &Task> = tasks
        .iter()
        .filter(|t| !t.status.is_terminal())
        .map(|t| (t.id, t))
        .collect();
    let mut remaining: BTreeMap<TaskId, BTreeSet<TaskId>> = BTreeMap::new();
    for (&id, t) in &open {
        // Only open blockers matter; a blocker that failed or was cancelled never finishes.
        let mut deps = BTreeSet::new();
        let mut dead = false;
        for b in &t.open_blockers {
            if open.contains_key(b) {
                deps.insert(*b);
            } else {
                dead = true;
            }
        }
        if !dead {
            remaining.insert(id, deps);
        }
    }
    let mut out = Vec::new();
    loop {
        let wave: Vec<TaskId> = remaining
            .iter()
            .filter(|(_, d)| d.is_empty())
            .map(|(&id, _)| id)
            .collect();
        if wave.is_empty() {
            break;
        }
        for id in &wave {
            remaining.remove(id);
        }
        for deps in remaining.values_mut() {
            for id in &wave {
                deps.remove(id);
            }
        }
        out.push(wave);
    }
    out
}

/// The tasks in progress that a pending task accepted by `could_run` waits on, through
/// its open blockers, transitively; when such a task is ready already (so something in
/// progress holds it back: a `--limit`, a scope), every task in progress. In id order.
/// `tasks` are the list's open tasks.
pub fn awaited_in_progress(tasks: &[Task], could_run: impl Fn(&Task) -> bool) -> Vec<&Task> {
    use crate::model::Status;
    let by_id: HashMap<TaskId, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    let in_progress = || tasks.iter().filter(|t| t.status == Status::InProgress);
    let mut found: BTreeMap<TaskId, &Task> = BTreeMap::new();
    let mut seen: BTreeSet<TaskId> = BTreeSet::new();
    for t in tasks
        .iter()
        .filter(|t| t.status == Status::Pending && could_run(t))
    {
        if t.open_blockers.is_empty() {
            return in_progress().collect();
        }
        let mut stack: Vec<TaskId> = t.open_blockers.clone();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            match by_id.get(&id) {
                Some(b) if b.status == Status::InProgress => {
                    found.insert(id, b);
                }
                Some(b) => stack.extend(b.open_blockers.iter().copied()),
                None => {} // closed (failed, cancelled): it unblocks nothing
            }
        }
    }
    found.into_values().collect()
}
