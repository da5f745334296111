//! A running task changed under its command: cancelled, deleted, released, completed or
//! failed from outside (or finished by the command itself, with its token). The
//! supervisor stops such a command; its worker then settles what the task became.

use super::{Shared, Stop};
use crate::error::{Kind, Result};
use crate::model::{Status, Task, TaskId};
use crate::store::Filter;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

/// Stop the command of every running task that is no longer ours: cancelled, deleted,
/// completed, failed or released by someone else (or by the command itself, with its
/// token), or taken over under another claim. What became of it is settled by its worker
/// once the command is gone (`settle_changed`).
pub(super) fn stop_taken_back(shared: &Shared, counter: u64) {
    let held: Vec<(usize, TaskId, i64)> = shared
        .running()
        .iter_mut()
        .filter(|(_, r)| r.stop.is_none() && r.seen != counter)
        .map(|(&n, r)| {
            r.seen = counter;
            (n, r.task.id, r.token)
        })
        .collect();
    for (n, id, token) in held {
        let now = shared
            .store()
            .tasks(&shared.args.store.list, &Filter::ids([id]));
        let why = match now {
            Err(e) if e.kind == Kind::NotFound => Stop::Changed,
            Ok(t) if t[0].status != Status::InProgress => Stop::Changed,
            Ok(t) if t[0].claim_token != Some(token) => Stop::Lost,
            _ => continue,
        };
        // The worker may have finished that task and started another since the read: stop
        // the command only if it still runs this claim.
        let mut running = shared.running();
        let Some(r) = running
            .get_mut(&n)
            .filter(|r| r.task.id == id && r.token == token && r.stop.is_none())
        else {
            continue;
        };
        if why == Stop::Lost {
            eprintln!(
                "worker-spawn: task {id} was taken over by another worker; stopping its command"
            );
        }
        r.stop = Some((why, Instant::now()));
        let _ = killpg(Pid::from_raw(r.pgid), Signal::SIGTERM);
    }
}

/// After a command was stopped because its task changed under it, or its outcome was
/// refused (the claim no longer held): keep the new state and say what happened. A task
/// the command finished itself (its history names our worker) counts as completed or
/// failed; a claim taken over says so; anything else counts as stopped, with a history
/// note.
pub(super) fn settle_changed(shared: &Shared, task: &Task, owner: &str) -> Result<()> {
    let list = &shared.args.store.list;
    let mut store = shared.store();
    let now = match store.tasks(list, &Filter::ids([task.id])) {
        Err(e) if e.kind == Kind::NotFound => {
            shared.stopped.fetch_add(1, SeqCst);
            eprintln!(
                "worker-spawn: task {} was deleted while running; its command was stopped",
                task.id
            );
            return Ok(());
        }
        r => r?.remove(0),
    };
    let last = store.history(list, &[task.id], Some(1))?.pop();
    if now.status == Status::InProgress || last.as_ref().is_some_and(|e| e.kind == "taken_over") {
        // Its claim was lost (lease run out, or thought dead) and maybe claimed anew, not
        // taken back by a person.
        eprintln!(
            "worker-spawn: task {} was taken over by another worker; its outcome was not recorded",
            task.id
        );
        return Ok(());
    }
    let by = last.and_then(|e| e.by).unwrap_or_else(|| "someone".into());
    if by == owner && now.status.is_terminal() {
        let counter = match now.status {
            Status::Completed => &shared.completed,
            _ => &shared.failed,
        };
        counter.fetch_add(1, SeqCst);
        return Ok(());
    }
    shared.stopped.fetch_add(1, SeqCst);
    let what = match now.status {
        Status::Pending => "released".to_string(),
        s => s.to_string(),
    };
    eprintln!(
        "worker-spawn: task {} was {what} by {by} while running; its command was stopped",
        task.id
    );
    let note = crate::store::Update {
        note: Some(format!("stopped: {what} by {by} while running")),
        by: Some(owner.to_string()),
        ..Default::default()
    };
    store.update(list, &[task.id], &note)?;
    shared.committed();
    Ok(())
}
