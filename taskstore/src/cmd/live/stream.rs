//! `task-list --watch --format jsonl` (and `--watch` off a terminal): the matching
//! tasks, then a line for each task each time it is seen changed, like `kubectl get -w`.
//!
//! A line is the task's JSON object as `--format jsonl` prints it; a task that leaves
//! the watched set (deleted, or no longer matching the filter, like a deleted object in
//! a Kubernetes watch) gets `{"id":…,"gone":true}`.
//! Lines come in the order the changes were seen; changes closer together than one
//! read of the store (a few milliseconds) fold into the later one, so a task's last
//! line is always its current state and no line repeats the one before it.

use super::{Follower, Snapshot};
use crate::error::Result;
use crate::model::TaskId;
use crate::output;
use crate::signals::{self, Signals};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

pub fn run(f: &mut Follower, signals: &Signals, out: &mut dyn Write) -> Result<u8> {
    let mut last: BTreeMap<TaskId, String> = BTreeMap::new();
    loop {
        let snap = f.read()?;
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
