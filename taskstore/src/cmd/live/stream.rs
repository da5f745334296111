//! `task-list --watch --format jsonl` (and `--watch` off a terminal): the matching
//! tasks, then a line for each task each time it changes, like `kubectl get -w`.
//!
//! A line is the task's JSON object as `--format jsonl` prints it; a task that leaves
//! the watched set (deleted, or no longer matching the filter, like a deleted object in
//! a Kubernetes watch) gets `{"id":…,"gone":true}`.
//! The stream follows the task events the store keeps, so every transition of status
//! arrives once and in order, however close together (a task claimed and completed
//! within a millisecond is still seen `in_progress`): a transition that is not the task's
//! latest is printed as the task's line with that status (and owner, attempt); the
//! latest, and any other change, as the task is now. No line repeats the one before it.

use super::{Follower, Snapshot};
use crate::error::Result;
use crate::model::{Event, Status, TaskId};
use crate::output;
use crate::signals::{self, Signals};
use crate::store::Store;
use serde_json::json;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

pub fn run(f: &mut Follower, signals: &Signals, out: &mut dyn Write) -> Result<u8> {
    let mut last: BTreeMap<TaskId, String> = BTreeMap::new();
    let mut events = Events::start(f)?;
    loop {
        let fresh = events.read(f)?;
        let snap = f.read()?;
        print_transitions(&snap, &fresh, &mut last, out)?;
        print_changes(&snap, &mut last, out)?;
        out.flush()?;
        if f.until_done() && snap.settled() {
            return Ok(0);
        }
        loop {
            if let Some(sig) = signals.received() {
                return Ok(signals::exit_code(sig));
            }
            if reader_gone() {
                return Ok(0);
            }
            if f.changed(Duration::from_millis(250))? {
                break;
            }
        }
    }
}

/// The events read since the last call, each once. On PostgreSQL an event can commit
/// after one numbered above it was read, so the read starts below the newest number seen:
/// at the newest number that was seen more than `LAG` ago (transitions commit within
/// milliseconds of being numbered), and what was seen since is skipped.
struct Events {
    low: i64,
    seen: BTreeMap<i64, Instant>,
}

const LAG: Duration = Duration::from_secs(2);
const PAGE: usize = 10_000;

impl Events {
    fn start(f: &mut Follower) -> Result<Events> {
        let list = f.list().clone();
        Ok(Events {
            low: f.store().last_event(&list)?,
            seen: BTreeMap::new(),
        })
    }

    fn read(&mut self, f: &mut Follower) -> Result<Vec<Event>> {
        let list = f.list().clone();
        let store: &mut dyn Store = f.store();
        let now = Instant::now();
        let mut fresh = Vec::new();
        let mut after = self.low;
        loop {
            let page = store.events_after(&list, after, PAGE)?;
            let full = page.len() == PAGE;
            for (n, e) in page {
                after = n;
                if self.seen.insert(n, now).is_none() {
                    fresh.push(e);
                }
            }
            if !full {
                break;
            }
        }
        while let Some((&n, &at)) = self.seen.first_key_value() {
            if now.duration_since(at) < LAG {
                break;
            }
            self.low = self.low.max(n);
            self.seen.remove(&n);
        }
        Ok(fresh)
    }
}

/// The status (and owner, when it changes) a task event leaves its task in, if it moves
/// the task from one status to another.
fn transition(e: &Event) -> Option<(Status, Option<Value>)> {
    let detail_status = || e.detail.get("status")?.as_str()?.parse::<Status>().ok();
    match e.kind.as_str() {
        "claimed" => Some((Status::InProgress, Some(Value::from(e.by.clone())))),
        "released" | "retried" => Some((Status::Pending, Some(Value::Null))),
        "taken_over" => Some((detail_status()?, Some(Value::Null))),
        "finished" | "edited" => {
            let s = detail_status()?;
            // Back to pending, a task is nobody's (see `Store::update`).
            Some((s, (s == Status::Pending).then_some(Value::Null)))
        }
        _ => None,
    }
}

/// Every transition of a watched task but its latest (which the task as it is now
/// shows), as the task's line with that status; one whose status is the one last printed
/// for the task was printed already (by a read that came after its commit).
fn print_transitions(
    snap: &Snapshot,
    fresh: &[Event],
    last: &mut BTreeMap<TaskId, String>,
    out: &mut dyn Write,
) -> Result<()> {
    let now: BTreeMap<TaskId, &crate::model::Task> = snap.tasks.iter().map(|t| (t.id, t)).collect();
    let moves: Vec<(&Event, (Status, Option<Value>))> = fresh
        .iter()
        .filter(|e| now.contains_key(&e.task))
        .filter_map(|e| Some((e, transition(e)?)))
        .collect();
    let mut latest: BTreeMap<TaskId, usize> = BTreeMap::new();
    for (i, (e, _)) in moves.iter().enumerate() {
        latest.insert(e.task, i);
    }
    for (i, (e, (status, owner))) in moves.iter().enumerate() {
        // The latest is shown by the task as it is now, unless the task moved on again
        // between the two reads (then the next read's events bring the rest).
        if latest[&e.task] == i && now[&e.task].status == *status {
            continue;
        }
        let shown = last
            .get(&e.task)
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or_default();
        if shown["status"].as_str() == Some(status.as_str()) {
            continue;
        }
        let mut v = output::task_json(now[&e.task]);
        v["status"] = Value::from(status.as_str());
        // A status change that says no owner keeps the one it had then: as last shown.
        v["owner"] = match owner {
            Some(owner) => owner.clone(),
            None if !shown.is_null() => shown["owner"].clone(),
            None => v["owner"].clone(),
        };
        if let Some(a) = e.detail.get("attempt").filter(|_| e.kind == "claimed") {
            v["attempts"] = a.clone();
        }
        let line = v.to_string();
        writeln!(out, "{line}")?;
        last.insert(e.task, line);
    }
    Ok(())
}

fn print_changes(
    snap: &Snapshot,
    last: &mut BTreeMap<TaskId, String>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut now = BTreeMap::new();
    for t in &snap.tasks {
        let line = output::task_json(t).to_string();
        if last.get(&t.id) != Some(&line) {
            writeln!(out, "{line}")?;
        }
        now.insert(t.id, line);
    }
    for id in last.keys().filter(|id| !now.contains_key(id)) {
        writeln!(out, "{}", json!({ "id": id.0.to_string(), "gone": true }))?;
    }
    *last = now;
    Ok(())
}

/// The reading end of a pipe on stdout was closed (`… | head -3`): nothing will read
/// another line, so stop now rather than at the next change.
fn reader_gone() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
        _ => false,
    }
}
