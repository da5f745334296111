//! One pass of `task-sync --queue`: read the folder and the list, take the folder's
//! changes into the store (new items, renames, deleted items), then show the store's in
//! the folder (renames, new items for tasks made elsewhere). As with Claude Code's files,
//! the store wins a conflict: when both sides moved an item since the last pass, the file
//! is renamed to the task's status.
//!
//! Each pair (task ↔ item number) keeps the item's status and name as last synced, in the
//! store's sync table, so a rename is told from a change of the task.

use super::pass::Pass;
use super::queue::{self, Folder, Item, Mark};
use super::{problem, say};
use crate::error::{Kind, Result};
use crate::model::{BlockerRef, ListId, NewTask, Status, Task, TaskId};
use crate::store::{Filter, OwnerChange, Store, SyncImport, SyncPair, Update};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

/// The owner of a task an agent took by renaming its item to in_progress: a claim that
/// pools leave alone.
pub const OWNER: &str = "queue";

/// The folder's record of the names already said to be left alone (hidden, so it is no
/// stranger itself).
const SAID: &str = ".task-sync.skipped";

pub struct Queue<'a> {
    pub store: &'a mut dyn Store,
    pub list: &'a ListId,
    pub folder: &'a Folder,
    pub import: bool,
    pub export: bool,
    pub verbose: bool,
    /// Names already said to be left alone, so that each is said once.
    reported: HashSet<String>,
}

/// What a pair keeps of its item as last synced.
fn state(mark: Mark, name: &str) -> Value {
    json!({ "status": mark.as_str(), "name": name })
}

fn synced(p: &SyncPair) -> Option<&str> {
    p.state.as_ref()?.get("status")?.as_str()
}

impl<'a> Queue<'a> {
    pub fn new(store: &'a mut dyn Store, list: &'a ListId, folder: &'a Folder) -> Queue<'a> {
        Queue {
            store,
            list,
            folder,
            import: true,
            export: true,
            verbose: false,
            reported: HashSet::new(),
        }
    }

    /// The folder, saying once of each name left alone why.
    fn read(&mut self) -> Option<queue::Listing> {
        let listing = match self.folder.list() {
            Ok(l) => l,
            Err(e) => {
                problem(format_args!(
                    "cannot read {}: {e}",
                    self.folder.path.display()
                ));
                return None;
            }
        };
        // Said once, not once a run: the names said are kept in the folder.
        let said = self.folder.path.join(SAID);
        if self.reported.is_empty() {
            let before = std::fs::read_to_string(&said).unwrap_or_default();
            self.reported.extend(before.lines().map(str::to_string));
        }
        let mut new = String::new();
        for (name, why) in &listing.strangers {
            if self.reported.insert(name.clone()) {
                problem(format_args!(
                    "{}: {why}; left alone",
                    self.folder.path.join(name).display()
                ));
                new += &format!("{name}\n");
            }
        }
        if !new.is_empty() {
            use std::io::Write as _;
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&said)
                .and_then(|mut f| f.write_all(new.as_bytes()));
            if let Err(e) = appended {
                problem(format_args!("cannot write {}: {e}", said.display()));
            }
        }
        Some(listing)
    }

    /// A change from the folder (see [`super::apply`]); true when it was made.
    fn apply(&mut self, out: &mut dyn Write, id: TaskId, u: Update, done: String) -> Result<bool> {
        let made = super::apply(
            self.store,
            self.list,
            id,
            &u,
            format_args!("{done}: not taken"),
        )?;
        if made {
            say(out, self.verbose, done)?;
        }
        Ok(made)
    }

    pub fn pass(&mut self, out: &mut dyn Write) -> Result<Pass> {
        let Some(listing) = self.read() else {
            return Ok(Pass::Done);
        };
        let mut tasks: BTreeMap<TaskId, Task> = self
            .store
            .tasks(self.list, &Filter::default())?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let original: BTreeMap<TaskId, SyncPair> = self
            .store
            .sync_pairs(self.list)?
            .into_iter()
            .map(|p| (p.task, p))
            .collect();
        let mut pairs = original.clone();
        let mut forget = Vec::new();
        let mut changed = false;

        // Deleted on one side.
        for p in original.values() {
            let item = p.file.and_then(|n| listing.items.get(&n));
            match (item, tasks.get(&p.task)) {
                (Some(i), None) if self.export => {
                    if let Err(e) = self.folder.remove(i) {
                        problem(format_args!("cannot delete {}: {e}", i.name));
                        continue;
                    }
                    say(
                        out,
                        self.verbose,
                        format_args!("deleted {} ({} was deleted)", i.name, p.task),
                    )?;
                    pairs.remove(&p.task);
                    forget.push(p.task);
                }
                (None, None) if self.export => {
                    pairs.remove(&p.task);
                    forget.push(p.task);
                }
                (None, Some(t)) if p.file.is_some() => {
                    if self.import && !t.status.is_terminal() {
                        let name = p
                            .state
                            .as_ref()
                            .and_then(|s| s["name"].as_str())
                            .unwrap_or("its file");
                        let u = Update {
                            status: Some(Status::Cancelled),
                            log_line: Some(format!(
                                "cancelled by task-sync: {name} was deleted from the queue folder"
                            )),
                            if_status: vec![t.status],
                            ..Update::default()
                        };
                        changed |= self.apply(
                            out,
                            t.id,
                            u,
                            format!("cancelled {} ({name} was deleted)", t.id),
                        )?;
                    }
                    pairs.insert(
                        p.task,
                        SyncPair {
                            file: None,
                            ..p.clone()
                        },
                    );
                }
                _ => {}
            }
        }

        let by_num: HashMap<i64, TaskId> = pairs
            .values()
            .filter_map(|p| p.file.map(|n| (n, p.task)))
            .collect();

        if self.import {
            match self.import_new(out, &listing, &by_num, &mut pairs)? {
                Pass::Done => {}
                other => return Ok(other),
            }
            // Renames by agents: the file moved since the last pass and the task did not.
            for p in pairs.values() {
                let (Some(i), Some(t), Some(base)) = (
                    p.file.and_then(|n| listing.items.get(&n)),
                    tasks.get(&p.task),
                    synced(p),
                ) else {
                    continue;
                };
                let ours = Mark::of(t);
                // A task a pool runs is finished by the pool, which records what its
                // command did: an agent marking its item done is not someone else
                // finishing it.
                let pool_runs_it = t.status == Status::InProgress && t.holder.is_some();
                if i.mark.as_str() == base || ours.as_str() != base || i.mark == ours {
                    continue;
                }
                if pool_runs_it && i.mark != Mark::Pending {
                    continue;
                }
                let to = i.mark.status();
                let u = Update {
                    status: Some(to),
                    owner: match i.mark {
                        Mark::InProgress => OwnerChange::Set(OWNER.into()),
                        Mark::Pending => OwnerChange::Clear,
                        _ => OwnerChange::Keep,
                    },
                    log_line: (i.mark == Mark::Blocked)
                        .then(|| format!("marked blocked in the queue folder ({})", i.name)),
                    if_status: vec![t.status],
                    ..Update::default()
                };
                changed |= self.apply(out, t.id, u, format!("{} ← {}", t.id, i.name))?;
            }
        }
        if changed {
            tasks = self
                .store
                .tasks(self.list, &Filter::default())?
                .into_iter()
                .map(|t| (t.id, t))
                .collect();
        }

        // The store's side: renames where the task moved, and new items.
        let digits = listing.digits();
        let mut next = listing
            .items
            .keys()
            .chain(pairs.values().filter_map(|p| p.file.as_ref()))
            .max()
            .copied()
            .unwrap_or(0)
            + 1;
        let mut num_of: HashMap<TaskId, (i64, usize)> = HashMap::new();
        for p in pairs.values() {
            if let Some(n) = p.file {
                let d = listing.items.get(&n).map_or(digits, |i| i.digits);
                num_of.insert(p.task, (n, d));
            }
        }
        for t in tasks.values() {
            let Some(p) = pairs.get(&t.id).cloned() else {
                if !self.export {
                    continue;
                }
                // Made elsewhere: a new item with the next number.
                let mut blockers: Vec<(i64, usize)> = t
                    .blocked_by
                    .iter()
                    .filter_map(|b| num_of.get(b).copied())
                    .collect();
                blockers.sort_unstable();
                let mark = Mark::of(t);
                let name = queue::name(next, digits, mark, &queue::slug(&t.subject));
                if let Err(e) = self.folder.create(&name, &queue::text(t, &blockers)) {
                    problem(format_args!("cannot write {name}: {e}"));
                    continue;
                }
                say(
                    out,
                    self.verbose,
                    format_args!("wrote {name} from {}", t.id),
                )?;
                pairs.insert(
                    t.id,
                    SyncPair {
                        task: t.id,
                        file: Some(next),
                        state: Some(state(mark, &name)),
                    },
                );
                num_of.insert(t.id, (next, digits));
                next += 1;
                continue;
            };
            let Some(i) = p.file.and_then(|n| listing.items.get(&n)) else {
                continue;
            };
            let ours = Mark::of(t);
            let shown = match (self.export, ours != i.mark) {
                (true, true) => match self.folder.rename(i, ours) {
                    Ok(Some(new)) => {
                        say(
                            out,
                            self.verbose,
                            format_args!("renamed {} to {new} ({})", i.name, t.id),
                        )?;
                        Some((ours, new))
                    }
                    Ok(None) => None, // renamed by someone else meanwhile: next pass
                    Err(e) => {
                        problem(format_args!("cannot rename {}: {e}", i.name));
                        None
                    }
                },
                _ => Some((i.mark, i.name.clone())),
            };
            if let (Some((mark, name)), Some(pair)) = (shown, pairs.get_mut(&t.id)) {
                pair.state = Some(state(mark, &name));
            }
        }

        let saved: Vec<SyncPair> = pairs
            .values()
            .filter(|p| original.get(&p.task) != Some(*p))
            .cloned()
            .collect();
        self.store.sync_save(self.list, &saved, &forget)?;
        Ok(Pass::Done)
    }

    /// Items without a pair become tasks, in one transaction, with the items they wait for
    /// (imported before, or in the same batch) as blockers.
    fn import_new(
        &mut self,
        out: &mut dyn Write,
        listing: &queue::Listing,
        by_num: &HashMap<i64, TaskId>,
        pairs: &mut BTreeMap<TaskId, SyncPair>,
    ) -> Result<Pass> {
        let mut new: Vec<(&Item, String)> = Vec::new();
        for i in listing
            .items
            .values()
            .filter(|i| !by_num.contains_key(&i.num))
        {
            // A file still being written waits for a later pass (the folder's
            // notification of its last write brings one).
            let mut text = self.folder.read(i);
            if matches!(text, Ok(None)) {
                std::thread::sleep(queue::SETTLE);
                text = self.folder.read(i);
            }
            match text {
                Ok(Some(t)) => new.push((i, t)),
                Ok(None) => {}
                Err(e) => problem(format_args!("cannot read {}: {e}", i.name)),
            }
        }
        if new.is_empty() {
            return Ok(Pass::Done);
        }
        let record: HashMap<i64, usize> = new
            .iter()
            .enumerate()
            .map(|(j, (i, _))| (i.num, j))
            .collect();
        let mut imports = Vec::new();
        for (i, text) in &new {
            let mut blocked_by = Vec::new();
            for n in queue::blocked_by(text) {
                match (by_num.get(&n), record.get(&n)) {
                    (Some(&id), _) => blocked_by.push(BlockerRef::Id(id)),
                    (None, Some(&j)) if n != i.num => blocked_by.push(BlockerRef::Record(j)),
                    _ => problem(format_args!(
                        "{}: BlockedBy {n}: no item has that number; left out",
                        i.name
                    )),
                }
            }
            let status = i.mark.status();
            imports.push(SyncImport {
                task: NewTask {
                    key: Some(format!("queue:{}", i.num)),
                    subject: queue::subject(text, &i.slug),
                    description: text.clone(),
                    active_form: None,
                    blocked_by,
                    priority: 0,
                    metadata: Default::default(),
                    owner: (i.mark == Mark::InProgress).then(|| OWNER.to_string()),
                    max_attempts: 1,
                    scopes: Vec::new(),
                    verify: None,
                    origin: i.name.clone(),
                },
                status,
                file: i.num,
                state: state(i.mark, &i.name),
            });
        }
        let ids = match self.store.sync_import(self.list, &imports) {
            Ok(ids) => ids,
            Err(e) if e.kind == Kind::Conflict => return Ok(Pass::Again),
            Err(e) if e.kind != Kind::Store => {
                problem(format_args!("new items not imported: {e}"));
                return Ok(Pass::Done);
            }
            Err(e) => return Err(e),
        };
        for ((i, _), id) in new.iter().zip(ids) {
            say(
                out,
                self.verbose,
                format_args!("imported {} as {id}", i.name),
            )?;
            if i.mark == Mark::Blocked {
                let u = Update {
                    log_line: Some(format!("blocked in the queue folder ({})", i.name)),
                    ..Update::default()
                };
                self.apply(out, id, u, format!("{id}: noted blocked"))?;
            }
            pairs.insert(
                id,
                SyncPair {
                    task: id,
                    file: Some(i.num),
                    state: Some(state(i.mark, &i.name)),
                },
            );
        }
        Ok(Pass::Done)
    }
}
