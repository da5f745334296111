//! What a task looks like as a Claude Code task file, and back: the file written for a
//! task, the fields a file's task is created with, and the three-way merge of one
//! file's edits into its task.
//!
//! Fields are compared in the files' terms, in a canonical form ([`canon`]): the
//! form in which the last synced state is kept.

use crate::claude::File;
use crate::model::{BlockerRef, NewTask, Status, Task, TaskId};
use crate::store::{OwnerChange, SyncImport, Update};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The mark before the subject of a failed or cancelled task, which Claude Code can
/// only show as completed.
pub const MARK: &str = "✗ ";

/// Metadata keys that say how a failed or cancelled task ended.
const OUTCOME: [&str; 3] = ["outcome", "exitCode", "reason"];

/// The longest `reason` written.
const REASON_CHARS: usize = 200;

/// The fields compared between a file, its task and their last synced state.
const SCALARS: [&str; 5] = ["subject", "description", "activeForm", "status", "owner"];

fn ended_badly(t: &Task) -> bool {
    matches!(t.status, Status::Failed | Status::Cancelled)
}

/// A file's status as a task status: the three Claude Code knows share the store's
/// names (a file is checked to have one of them before it is used).
fn status_of(f: &Map<String, Value>) -> Status {
    f.get("status")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(Status::Pending)
}

/// A file's fields in the form they are compared and kept in: every compared key
/// present (null when absent or empty), metadata an object, ids sorted.
pub fn canon(f: &Map<String, Value>) -> Map<String, Value> {
    let mut c = Map::new();
    for key in SCALARS {
        let v = match f.get(key) {
            Some(Value::String(s)) if s.is_empty() && key != "description" => Value::Null,
            Some(v @ Value::String(_)) => v.clone(),
            _ if key == "description" => Value::String(String::new()),
            _ => Value::Null,
        };
        c.insert(key.into(), v);
    }
    let meta = match f.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    c.insert("metadata".into(), Value::Object(meta));
    for key in ["blocks", "blockedBy"] {
        let mut ids: Vec<&str> = f
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        ids.sort_by_key(|s| (s.len(), *s));
        ids.dedup();
        c.insert(key.into(), json!(ids));
    }
    c
}

/// The file that shows `t` as file `id`: Claude Code's fields in its order, then any
/// other fields `old` (the file there now) has. Edges name the files of `file_of`;
/// an edge to a task without a file is left out.
pub fn of_task(
    t: &Task,
    id: i64,
    file_of: &HashMap<TaskId, i64>,
    old: Option<&File>,
) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert("id".into(), json!(id.to_string()));
    let subject = if ended_badly(t) {
        format!("{MARK}{}", t.subject)
    } else {
        t.subject.clone()
    };
    f.insert("subject".into(), json!(subject));
    f.insert("description".into(), json!(t.description));
    if let Some(a) = t.active_form.as_deref().filter(|a| !a.is_empty()) {
        f.insert("activeForm".into(), json!(a));
    }
    let status = match ended_badly(t) {
        true => Status::Completed,
        false => t.status,
    };
    f.insert("status".into(), json!(status.as_str()));
    if let Some(o) = &t.owner {
        f.insert("owner".into(), json!(o));
    }
    let files = |ids: &[TaskId]| {
        let mut v: Vec<i64> = ids.iter().filter_map(|t| file_of.get(t).copied()).collect();
        v.sort_unstable();
        json!(v.iter().map(i64::to_string).collect::<Vec<_>>())
    };
    f.insert("blocks".into(), files(&t.blocks));
    f.insert("blockedBy".into(), files(&t.blocked_by));
    let mut meta = t.metadata.clone();
    if ended_badly(t) {
        meta.insert("outcome".into(), json!(t.status.as_str()));
        if let Some(code) = t.exit_code {
            meta.insert("exitCode".into(), json!(code));
        }
        if let Some(r) = reason(t) {
            meta.insert("reason".into(), json!(r));
        }
    }
    if !meta.is_empty() {
        f.insert("metadata".into(), Value::Object(meta));
    }
    if let Some(old) = old {
        for (k, v) in &old.fields {
            if !f.contains_key(k) && !known(k) {
                f.insert(k.clone(), v.clone());
            }
        }
    }
    f
}

fn known(key: &str) -> bool {
    key == "id"
        || key == "metadata"
        || key == "blocks"
        || key == "blockedBy"
        || SCALARS.contains(&key)
}

/// A short reason a task failed or was cancelled: the last line of its log.
fn reason(t: &Task) -> Option<String> {
    let last = t
        .log
        .as_deref()
        .and_then(|l| l.lines().rev().map(str::trim).find(|l| !l.is_empty()));
    match last {
        Some(l) if l.chars().count() > REASON_CHARS => Some(format!(
            "{}…",
            l.chars().take(REASON_CHARS).collect::<String>()
        )),
        Some(l) => Some(l.to_string()),
        None if t.status == Status::Cancelled => Some("cancelled".into()),
        None => t.exit_code.map(|c| format!("exit code {c}")),
    }
}

/// The task a new file becomes, and the state its pair starts from: the file's fields
/// without edges, which the merge then adds like any edit.
pub fn import(id: i64, f: &Map<String, Value>) -> SyncImport {
    let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or_default();
    let nonempty = |k: &str| Some(text(k).to_string()).filter(|s| !s.is_empty());
    let subject = match text("subject").trim() {
        "" => format!("(task {id} of Claude Code, without a subject)"),
        _ => text("subject").to_string(),
    };
    let status = status_of(f);
    let mut state = canon(f);
    state.insert("blocks".into(), json!([]));
    state.insert("blockedBy".into(), json!([]));
    SyncImport {
        task: NewTask {
            key: None,
            subject,
            description: text("description").to_string(),
            active_form: nonempty("activeForm"),
            blocked_by: Vec::<BlockerRef>::new(),
            priority: 0,
            metadata: f
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            owner: nonempty("owner"),
            max_attempts: 1,
            scopes: Vec::new(),
            verify: None,
            origin: format!("{id}.json"),
        },
        status,
        file: id,
        state: Value::Object(state),
    }
}

/// The edits Claude Code's side made to `t` since the last sync: each field whose file
/// value (`theirs`) differs from the synced `base` while the task's (`ours`) does not.
/// Where both changed, the task keeps its value (the file is rewritten). None: nothing
/// to apply. The names of the fields taken are returned with the update.
pub fn merge(
    t: &Task,
    base: &Map<String, Value>,
    theirs: &Map<String, Value>,
    ours: &Map<String, Value>,
) -> Option<(Update, Vec<String>)> {
    let taken = |k: &str| theirs.get(k) != base.get(k) && ours.get(k) == base.get(k);
    let text = |k: &str| theirs.get(k).and_then(Value::as_str).map(str::to_string);
    let mut u = Update::default();
    let mut names = Vec::new();
    if taken("subject") {
        let s = text("subject").unwrap_or_default();
        let s = match ended_badly(t) {
            true => s.strip_prefix(MARK).unwrap_or(&s).to_string(),
            false => s,
        };
        if s != t.subject && !s.trim().is_empty() {
            u.subject = Some(s);
            names.push("subject".into());
        }
    }
    if taken("description") {
        u.description = Some(text("description").unwrap_or_default());
        names.push("description".into());
    }
    if taken("activeForm") {
        u.active_form = Some(text("activeForm").unwrap_or_default());
        names.push("activeForm".into());
    }
    let owner = text("owner");
    // A task a worker-spawn pool runs is finished by the pool, which records what its
    // command did (result, exit code): a worker that marks its own file completed (a
    // `claude -p` worker with the Task tools) is not taken for someone else finishing it
    // (which would stop that worker). Once the pool records the outcome, the file is
    // written to match it.
    let pool_runs_it = t.status == Status::InProgress && t.holder.is_some();
    if taken("status") && !(pool_runs_it && status_of(theirs).is_terminal()) {
        let s = status_of(theirs);
        if s != t.status {
            u.status = Some(s);
            names.push("status".into());
            // Going back to pending clears the owner unless one is named: a claim
            // (in_progress + owner) and an assignment keep the file's owner.
            if !s.is_terminal() {
                if let Some(o) = &owner {
                    u.owner = OwnerChange::Set(o.clone());
                }
            }
        }
    }
    if taken("owner") {
        // A finished task's owner is not changed along with its status: that would be a
        // claim check (completing a task someone else holds).
        if !u.status.is_some_and(Status::is_terminal) {
            u.owner = match owner {
                Some(o) => OwnerChange::Set(o),
                None => OwnerChange::Clear,
            };
            names.push("owner".into());
        }
    }
    let empty = Map::new();
    let meta = |m: &Map<String, Value>| m.get("metadata").and_then(Value::as_object).cloned();
    let (b, th, o) = (
        meta(base).unwrap_or_else(|| empty.clone()),
        meta(theirs).unwrap_or_else(|| empty.clone()),
        meta(ours).unwrap_or_default(),
    );
    let mut keys: Vec<&String> = b.keys().chain(th.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if ended_badly(t) && OUTCOME.contains(&k.as_str()) {
            continue;
        }
        if th.get(k) != b.get(k) && o.get(k) == b.get(k) {
            u.metadata.push((k.clone(), th.get(k).cloned()));
            names.push(format!("metadata.{k}"));
        }
    }
    if names.is_empty() {
        return None;
    }
    u.if_status = vec![t.status];
    Some((u, names))
}

/// The dependency edges (blocker, blocked) a file's fields name, through `task_of`.
pub fn edges(
    t: TaskId,
    f: &Map<String, Value>,
    task_of: &dyn Fn(&str) -> Option<TaskId>,
) -> Vec<(TaskId, TaskId)> {
    let ids = |k: &str| -> Vec<TaskId> {
        f.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(task_of)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut e: Vec<(TaskId, TaskId)> = ids("blockedBy").into_iter().map(|b| (b, t)).collect();
    e.extend(ids("blocks").into_iter().map(|x| (t, x)));
    e
}
