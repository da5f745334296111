//! A worker with nothing to claim, or not allowed to claim more: whether to wait for
//! tasks in progress (and what it waits for), and `--max-cost`'s budget.

use super::Shared;
use crate::error::Result;
use crate::model::{Status, StatusFilter, Task};
use crate::store::Filter;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// `--max-cost`: whether the list's recorded cost (every pool's, every host's) is still
/// below the budget. Once it is not, the pool claims nothing more (running tasks finish),
/// says so once, and ends with exit 1.
pub(super) fn within_budget(shared: &Shared) -> Result<bool> {
    let Some(max) = shared.args.max_cost else {
        return Ok(true);
    };
    let spent = shared.store().cost(&shared.args.store.list)?.unwrap_or(0.0);
    if spent < max {
        return Ok(true);
    }
    shared.stop.store(true, SeqCst);
    if !shared.over_budget.swap(true, SeqCst) {
        eprintln!(
            "worker-spawn: the list has spent {} of --max-cost {}: claiming no more tasks",
            crate::output::dollars(spent),
            crate::output::dollars(max)
        );
    }
    Ok(false)
}

/// Nothing was claimable. Wait for the store to change; false: time to stop, because
/// nothing is in progress anywhere in the list that could unblock work (unless --follow).
pub(super) fn idle(shared: &Shared, before: u64) -> Result<bool> {
    shared.recover_dead()?;
    if !shared.args.follow && !worth_waiting(shared)? && shared.version()? == before {
        return Ok(false);
    }
    // Poll the change counter, 1 ms after activity growing to 20 ms; look again at
    // least every second anyway, for leases that run out without any commit.
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    while start.elapsed() < Duration::from_secs(1) {
        if shared.stop.load(SeqCst) {
            return Ok(false);
        }
        if shared.version()? != before {
            return Ok(true);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    Ok(true)
}

/// Whether an idle worker should wait for tasks in progress: while the pool itself runs
/// one (it may unblock work, and the pool ends with it anyway); while a pending task this
/// pool could run waits, through its blockers, on a task in progress elsewhere, or is
/// ready but held back (a `--limit` or a scope held by a task in progress); or while a
/// task it could run is held elsewhere under a lease (should its holder die, the lease
/// runs out and this pool takes it over). A lease-less claim that nothing waits on — a
/// shell worker that died holding it — keeps no pool alive. The lease-less claims it
/// waits for are said on stderr once, and again each minute (a person must free them).
fn worth_waiting(shared: &Shared) -> Result<bool> {
    let list = &shared.args.store.list;
    let in_progress = shared
        .store()
        .counts(list, &Shared::filter_in_progress())?
        .get(Status::InProgress);
    if in_progress == 0 {
        return Ok(false);
    }
    if !shared.running().is_empty() {
        return Ok(true);
    }
    let open = Filter {
        statuses: vec![StatusFilter::Open],
        ..Filter::default()
    };
    let tasks = shared.store().tasks(list, &open)?;
    let ours = |t: &Task| {
        shared
            .args
            .metadata
            .iter()
            .all(|(k, v)| t.metadata.get(k) == Some(v))
    };
    let mut awaited = crate::graph::awaited_in_progress(&tasks, |t| t.owner.is_none() && ours(t));
    let leased = tasks
        .iter()
        .filter(|t| t.status == Status::InProgress && t.lease_until.is_some() && ours(t));
    awaited.extend(leased);
    let mut waiting = shared.waiting.lock().unwrap_or_else(|e| e.into_inner());
    if awaited.is_empty() {
        *waiting = None;
        return Ok(false);
    }
    awaited.sort_by_key(|t| t.id);
    awaited.dedup_by_key(|t| t.id);
    let what = awaited
        .iter()
        .map(|t| held_phrase(t))
        .collect::<Vec<_>>()
        .join("; ");
    let unleased = awaited.iter().any(|t| t.lease_until.is_none());
    let say = match &*waiting {
        Some((said, at)) => *said != what || at.elapsed() >= Duration::from_secs(60),
        None => true,
    };
    if say && unleased {
        eprintln!("worker-spawn: waiting for {what}");
    }
    if say {
        *waiting = Some((what, Instant::now()));
    }
    Ok(true)
}

/// `#1 (in progress by shellw since 13:40 UTC, no lease — task-update 1 --release gives
/// it back)`: who holds a task the pool waits for, and how a person frees it.
fn held_phrase(t: &Task) -> String {
    let hhmm = |ms: i64| {
        let s = crate::time::rfc3339(ms);
        format!("{} UTC", s.get(11..16).unwrap_or(&s))
    };
    let owner = t.owner.as_deref().unwrap_or("nobody");
    let since = t
        .started_at
        .map(|s| format!(" since {}", hhmm(s)))
        .unwrap_or_default();
    let lease = match t.lease_until {
        Some(u) => format!("lease until {}", hhmm(u)),
        None => format!("no lease — task-update {} --release gives it back", t.id.0),
    };
    format!("{} (in progress by {owner}{since}, {lease})", t.id)
}
