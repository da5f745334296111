//! `task-list --watch`: follow a list as it changes, woken by the store's change signal
//! like `task-wait` (no polling loop). On a terminal a full-screen view ([`screen`]);
//! anywhere else a stream of JSON lines ([`stream`]).

mod screen;
mod stream;

use super::waker::Waker;
use crate::error::{Kind, Result};
use crate::model::{ListId, Task, TaskId};
use crate::signals::Signals;
use crate::store::{stalled_among, Filter, Stalled, Store};
use std::collections::BTreeSet;
use std::io::Write;

/// What `--watch` was asked to show.
pub struct Watch<'a> {
    pub store: &'a mut dyn Store,
    pub list: &'a ListId,
    pub filter: Filter,
    /// End once no matching task is open (stalled ones count as settled, as in task-wait).
    pub until_done: bool,
}

/// Follow the list: a full-screen view when `screen`, else JSON lines.
pub fn run(w: Watch, screen: bool, out: &mut dyn Write) -> Result<u8> {
    let signals = Signals::install()?;
    let mut f = Follower::new(w)?;
    if screen {
        screen::run(&mut f, &signals, out)
    } else {
        stream::run(&mut f, &signals, out)
    }
}

/// The matching tasks as last read.
pub struct Snapshot {
    pub tasks: Vec<Task>,
    pub stalled: Stalled,
}

impl Snapshot {
    /// No matching task can move any more without someone reopening it.
    pub fn settled(&self) -> bool {
        self.tasks
            .iter()
            .all(|t| t.status.is_terminal() || self.stalled.contains_key(&t.id))
    }
}

/// Reads the matching tasks again each time the list changes.
pub struct Follower<'a> {
    w: Watch<'a>,
    waker: Waker,
    /// Named tasks (`task-list 3 4 --watch`) are checked to exist once; after that
    /// one deleted is shown as gone rather than ending the watch with "not found".
    named: Option<BTreeSet<TaskId>>,
}

impl<'a> Follower<'a> {
    fn new(w: Watch<'a>) -> Result<Follower<'a>> {
        let waker = Waker::new(w.store, w.list)?;
        Ok(Follower {
            w,
            waker,
            named: None,
        })
    }

    pub fn list(&self) -> &ListId {
        self.w.list
    }

    pub fn store(&mut self) -> &mut dyn Store {
        self.w.store
    }

    pub fn until_done(&self) -> bool {
        self.w.until_done
    }

    pub fn read(&mut self) -> Result<Snapshot> {
        let mut tasks = match &self.named {
            None => self.w.store.tasks(self.w.list, &self.w.filter)?,
            Some(ids) => {
                let named = Filter {
                    ids: ids.iter().copied().collect(),
                    ..self.w.filter.clone()
                };
                match self.w.store.tasks(self.w.list, &named) {
                    Ok(tasks) => tasks,
                    // One was deleted: the others, from the whole (filtered) list; a
                    // --limit counts among the named tasks, as it did.
                    Err(e) if e.kind == Kind::NotFound => {
                        let any = Filter {
                            ids: Vec::new(),
                            limit: None,
                            ..named
                        };
                        let mut all = self.w.store.tasks(self.w.list, &any)?;
                        all.retain(|t| ids.contains(&t.id));
                        all.truncate(named.limit.map_or(usize::MAX, |n| n as usize));
                        all
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if self.named.is_none() && !self.w.filter.ids.is_empty() {
            self.named = Some(self.w.filter.ids.iter().copied().collect());
        }
        tasks.sort_by_key(|t| t.id);
        let stalled = stalled_among(self.w.store, self.w.list, &tasks)?;
        Ok(Snapshot { tasks, stalled })
    }

    /// Sleep at most `max`: true when the list changed (read it again).
    pub fn changed(&mut self, max: std::time::Duration) -> Result<bool> {
        self.waker.sleep(self.w.store, self.w.list, max)
    }
}
