//! One pass of task-sync: read both sides, bring Claude Code's edits into the store
//! (import), then write every task's file (export).
//!
//! The order matters for what survives a crash. New files are imported with their pairs
//! in one transaction. A task gets its file id recorded (with no synced state) before
//! its file is written, and its synced state after: a pair without a state whose file is
//! missing is just written again, never taken for a deletion; a file is never left
//! without a pair, which would import it twice.

use super::{fields, problem, say};
use crate::claude::lock::{Lock, NotTaken};
use crate::claude::{Dir, Listing};
use crate::error::{Kind, Result};
use crate::model::{ListId, Status, Task, TaskId, TaskRef};
use crate::store::{Filter, Store, SyncPair, Update};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::time::Duration;

/// How long a pass waits for Claude Code's lock before it leaves the files for the next.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);

/// How a pass ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    Done,
    /// Another process paired a file first: read everything again.
    Again,
    /// Told to stop while waiting for the lock.
    Stopped,
}

pub struct Bridge<'a> {
    pub store: &'a mut dyn Store,
    pub list: &'a ListId,
    pub dir: &'a Dir,
    pub import: bool,
    pub export: bool,
    /// Say on stdout what each pass did.
    pub verbose: bool,
    /// Unreadable files already reported, with what was said, so that `--follow` says it
    /// once.
    reported: HashMap<i64, String>,
    /// Whether this pass changed a task (then the export reads them again).
    changed_tasks: bool,
}

type Edges = BTreeSet<(TaskId, TaskId)>;

impl<'a> Bridge<'a> {
    pub fn new(store: &'a mut dyn Store, list: &'a ListId, dir: &'a Dir) -> Bridge<'a> {
        Bridge {
            store,
            list,
            dir,
            import: true,
            export: true,
            verbose: false,
            reported: HashMap::new(),
            changed_tasks: false,
        }
    }

    fn read(&mut self) -> Option<Listing> {
        let listing = match self.dir.read() {
            Ok(l) => l,
            Err(e) => {
                problem(format_args!("cannot read {}: {e}", self.dir.path.display()));
                return None;
            }
        };
        self.reported
            .retain(|id, _| listing.unreadable.contains_key(id));
        for (id, why) in &listing.unreadable {
            if self.reported.get(id) != Some(why) {
                problem(format_args!(
                    "{}: {why}; left alone until it parses",
                    self.dir.path.join(format!("{id}.json")).display()
                ));
                self.reported.insert(*id, why.clone());
            }
        }
        Some(listing)
    }

    /// Run one pass; `stop` is asked while waiting for Claude Code's lock.
    pub fn pass(&mut self, out: &mut dyn Write, stop: &dyn Fn() -> bool) -> Result<Pass> {
        let Some(listing) = self.read() else {
            return Ok(Pass::Done);
        };
        self.changed_tasks = false;
        let tasks: BTreeMap<TaskId, Task> = self
            .store
            .tasks(self.list, &Filter::default())?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let mut original: BTreeMap<TaskId, SyncPair> = self
            .store
            .sync_pairs(self.list)?
            .into_iter()
            .map(|p| (p.task, p))
            .collect();
        let mut pairs = original.clone();
        let mut forget = Vec::new();
        let mut doomed = Vec::new();

        // Files that went away.
        let any_left = !listing.files.is_empty() || !listing.unreadable.is_empty();
        for p in original.values() {
            match (p.file, tasks.get(&p.task)) {
                // Deleted here: its file goes too.
                (Some(f), None) if listing.has(f) && self.export => doomed.push((p.task, f)),
                (Some(f), None) if listing.has(f) => {}
                (_, None) if self.export => forget.push(p.task),
                (_, None) => {}
                (Some(f), Some(t)) if !listing.has(f) => {
                    let synced_status = p
                        .state
                        .as_ref()
                        .and_then(|s| s.get("status"))
                        .and_then(Value::as_str);
                    // Claude Code clears a list whose tasks are all completed: nothing to
                    // do here then. A file deleted alone, of a task open on both sides,
                    // cancels it.
                    if self.import
                        && any_left
                        && !t.status.is_terminal()
                        && synced_status.is_some_and(|s| s != "completed")
                    {
                        self.cancel(out, t, f)?;
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

        if self.import {
            match self.import_new(out, &listing, &mut pairs)? {
                Pass::Done => {}
                other => return Ok(other),
            }
            // Their pairs are recorded already.
            for (id, p) in &pairs {
                original.entry(*id).or_insert_with(|| p.clone());
            }
            self.merge_fields(out, &listing, &pairs, &tasks)?;
            self.merge_edges(out, &listing, &pairs, &tasks)?;
        }

        if !self.export {
            // Import only: what the files say now is the synced state.
            for p in pairs.values_mut() {
                if let Some(f) = p.file.and_then(|f| listing.files.get(&f)) {
                    p.state = Some(Value::Object(fields::canon(&f.fields)));
                }
            }
        } else {
            let tasks = match self.changed_tasks {
                true => self.store.tasks(self.list, &Filter::default())?,
                false => tasks.into_values().collect(),
            };
            match self.export(
                out,
                &listing,
                &tasks,
                &mut pairs,
                &mut forget,
                &doomed,
                stop,
            )? {
                Pass::Done => {}
                other => {
                    self.save(&original, &pairs, &forget)?;
                    return Ok(other);
                }
            }
        }
        self.save(&original, &pairs, &forget)?;
        Ok(Pass::Done)
    }

    fn save(
        &mut self,
        original: &BTreeMap<TaskId, SyncPair>,
        pairs: &BTreeMap<TaskId, SyncPair>,
        forget: &[TaskId],
    ) -> Result<()> {
        let changed: Vec<SyncPair> = pairs
            .values()
            .filter(|p| original.get(&p.task) != Some(*p))
            .cloned()
            .collect();
        self.store.sync_save(self.list, &changed, forget)
    }

    /// Apply an edit from Claude Code's side. Refused (the task changed here meanwhile,
    /// or the edit is not allowed, a cycle say): this store's version stands, the file is
    /// rewritten with it, and one line on stderr says so.
    fn apply(
        &mut self,
        out: &mut dyn Write,
        id: TaskId,
        u: &Update,
        done: String,
        refused: String,
    ) -> Result<()> {
        if super::apply(self.store, self.list, id, u, refused)? {
            self.changed_tasks = true;
            say(out, self.verbose, done)?;
        }
        Ok(())
    }

    /// Cancel a task whose file alone was deleted on Claude Code's side.
    fn cancel(&mut self, out: &mut dyn Write, t: &Task, file: i64) -> Result<()> {
        let u = Update {
            status: Some(Status::Cancelled),
            log_line: Some(format!(
                "cancelled by task-sync: its file {file}.json was deleted in Claude Code"
            )),
            if_status: vec![t.status],
            ..Update::default()
        };
        self.apply(
            out,
            t.id,
            &u,
            format!("cancelled {} ({file}.json was deleted)", t.id),
            format!("{}: not cancelled", t.id),
        )
    }

    /// Files without a pair become tasks.
    fn import_new(
        &mut self,
        out: &mut dyn Write,
        listing: &Listing,
        pairs: &mut BTreeMap<TaskId, SyncPair>,
    ) -> Result<Pass> {
        let paired: BTreeSet<i64> = pairs.values().filter_map(|p| p.file).collect();
        let imports: Vec<_> = listing
            .files
            .iter()
            .filter(|(f, _)| !paired.contains(f))
            .map(|(&f, file)| fields::import(f, &file.fields))
            .collect();
        if imports.is_empty() {
            return Ok(Pass::Done);
        }
        let ids = match self.store.sync_import(self.list, &imports) {
            Ok(ids) => {
                self.changed_tasks = true;
                ids
            }
            Err(e) if e.kind == Kind::Conflict => return Ok(Pass::Again),
            Err(e) if e.kind != Kind::Store => {
                problem(format_args!("new files not imported: {e}"));
                return Ok(Pass::Done);
            }
            Err(e) => return Err(e),
        };
        for (imp, id) in imports.into_iter().zip(ids) {
            say(
                out,
                self.verbose,
                format_args!("imported {}.json as {id}", imp.file),
            )?;
            pairs.insert(
                id,
                SyncPair {
                    task: id,
                    file: Some(imp.file),
                    state: Some(imp.state),
                },
            );
        }
        Ok(Pass::Done)
    }

    /// Each file's edits since the last sync, field by field, where the task did not
    /// change the same field.
    fn merge_fields(
        &mut self,
        out: &mut dyn Write,
        listing: &Listing,
        pairs: &BTreeMap<TaskId, SyncPair>,
        tasks: &BTreeMap<TaskId, Task>,
    ) -> Result<()> {
        let none = HashMap::new();
        for p in pairs.values() {
            let (Some(f), Some(Value::Object(base))) = (p.file, &p.state) else {
                continue;
            };
            let (Some(file), Some(t)) = (listing.files.get(&f), tasks.get(&p.task)) else {
                continue;
            };
            let theirs = fields::canon(&file.fields);
            let ours = fields::canon(&fields::of_task(t, f, &none, None));
            let Some((u, names)) = fields::merge(t, base, &theirs, &ours) else {
                continue;
            };
            self.apply(
                out,
                t.id,
                &u,
                format!("{} ← {f}.json: {}", t.id, names.join(", ")),
                format!("{f}.json: {} not taken into {}", names.join(", "), t.id),
            )?;
        }
        Ok(())
    }

    /// Dependencies added or removed on Claude Code's side since the last sync (a set
    /// merge: added where the files gained an edge, removed where they lost one).
    fn merge_edges(
        &mut self,
        out: &mut dyn Write,
        listing: &Listing,
        pairs: &BTreeMap<TaskId, SyncPair>,
        tasks: &BTreeMap<TaskId, Task>,
    ) -> Result<()> {
        let by_file: HashMap<i64, TaskId> = pairs
            .values()
            .filter_map(|p| p.file.map(|f| (f, p.task)))
            .collect();
        let task_of = |s: &str| s.parse::<i64>().ok().and_then(|f| by_file.get(&f).copied());
        let (mut theirs, mut base) = (Edges::new(), Edges::new());
        for p in pairs.values() {
            let (Some(f), Some(Value::Object(b))) = (p.file, &p.state) else {
                continue;
            };
            let Some(file) = listing.files.get(&f) else {
                continue;
            };
            theirs.extend(fields::edges(p.task, &file.fields, &task_of));
            base.extend(fields::edges(p.task, b, &task_of));
        }
        let ours: Edges = tasks
            .values()
            .flat_map(|t| t.blocked_by.iter().map(move |&b| (b, t.id)))
            .collect();
        let mut per_task: BTreeMap<TaskId, Update> = BTreeMap::new();
        for &(blocker, blocked) in theirs.difference(&base) {
            if !ours.contains(&(blocker, blocked)) {
                let u = per_task.entry(blocked).or_default();
                u.add_blocked_by.push(TaskRef::Id(blocker));
            }
        }
        for &(blocker, blocked) in base.difference(&theirs) {
            if ours.contains(&(blocker, blocked)) {
                let u = per_task.entry(blocked).or_default();
                u.remove_blocked_by.push(TaskRef::Id(blocker));
            }
        }
        for (id, u) in per_task {
            self.apply(
                out,
                id,
                &u,
                format!("{id} ← blockers from the files"),
                format!("blockers of {id} not changed"),
            )?;
        }
        Ok(())
    }

    /// Write the file of every task that needs one, under Claude Code's lock.
    #[allow(clippy::too_many_arguments)]
    fn export(
        &mut self,
        out: &mut dyn Write,
        before: &Listing,
        tasks: &[Task],
        pairs: &mut BTreeMap<TaskId, SyncPair>,
        forget: &mut Vec<TaskId>,
        doomed: &[(TaskId, i64)],
        stop: &dyn Fn() -> bool,
    ) -> Result<Pass> {
        let lock = match Lock::take(&self.dir.path, LOCK_PATIENCE, stop) {
            Ok(lock) => lock,
            Err(NotTaken::Stopped) => return Ok(Pass::Stopped),
            Err(NotTaken::Busy) => {
                problem(format_args!(
                    "Claude Code's lock {} was held for {}s: files not written this time",
                    self.dir.path.join(".lock.lock").display(),
                    LOCK_PATIENCE.as_secs()
                ));
                return Ok(Pass::Done);
            }
            Err(NotTaken::Io(e)) => {
                problem(format_args!(
                    "cannot take Claude Code's lock in {}: {e}",
                    self.dir.path.display()
                ));
                return Ok(Pass::Done);
            }
        };
        // Ids in use now, under the lock: Claude Code may have made files since the read.
        let last = match self.dir.last_id() {
            Ok(last) => last,
            Err(e) => {
                problem(format_args!("cannot read {}: {e}", self.dir.path.display()));
                return Ok(Pass::Done);
            }
        };
        let mut next = last
            .max(before.last_id())
            .max(pairs.values().filter_map(|p| p.file).max().unwrap_or(0))
            + 1;
        let mut assigned = Vec::new();
        for t in tasks {
            let wanted = match pairs.get(&t.id) {
                None => true,
                // Its file is gone: written again only while the task is open (a
                // cleared list stays cleared), or if its first write never happened.
                Some(p) => p.file.is_none() && (!t.status.is_terminal() || p.state.is_none()),
            };
            if wanted {
                let p = SyncPair {
                    task: t.id,
                    file: Some(next),
                    state: None,
                };
                pairs.insert(t.id, p.clone());
                assigned.push(p);
                next += 1;
            }
        }
        self.store.sync_save(self.list, &assigned, &[])?;

        let file_of: HashMap<TaskId, i64> = pairs
            .values()
            .filter_map(|p| p.file.map(|f| (p.task, f)))
            .collect();
        for t in tasks {
            let Some(&f) = file_of.get(&t.id) else {
                continue;
            };
            if before.unreadable.contains_key(&f) {
                continue; // being written: next pass
            }
            let current = before.files.get(&f);
            let want = fields::of_task(t, f, &file_of, current);
            let state = fields::canon(&want);
            if current.is_none_or(|c| fields::canon(&c.fields) != state) {
                // A file Claude Code wrote since the pass read it is merged first, next
                // pass: it is not overwritten now.
                let there = self.dir.bytes(f).ok().flatten();
                if there.as_ref() != current.map(|c| &c.bytes) {
                    continue;
                }
                if let Err(e) = self.dir.write(f, &want) {
                    problem(format_args!("cannot write {f}.json: {e}"));
                    continue;
                }
                say(
                    out,
                    self.verbose,
                    format_args!("wrote {f}.json from {}", t.id),
                )?;
            }
            if let Some(p) = pairs.get_mut(&t.id) {
                p.state = Some(Value::Object(state));
            }
        }
        for &(id, f) in doomed {
            let there = self.dir.bytes(f).ok().flatten();
            if there.as_ref() == before.files.get(&f).map(|c| &c.bytes) {
                if let Err(e) = self.dir.remove(f) {
                    problem(format_args!("cannot delete {f}.json: {e}"));
                    continue;
                }
                say(
                    out,
                    self.verbose,
                    format_args!("deleted {f}.json ({id} was deleted)"),
                )?;
                pairs.remove(&id);
                forget.push(id);
            }
        }
        drop(lock);
        Ok(Pass::Done)
    }
}
