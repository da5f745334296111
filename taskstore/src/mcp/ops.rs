//! What each tool does with the store: the same rules as the command-line tools, over
//! the server's connection. Nothing here knows about MCP; the tools in `tools.rs` call
//! these on a blocking thread.

use super::params::*;
use crate::bail;
use crate::cmd::update::{changed_by, claim_waiting, Claimed};
use crate::cmd::wait::{Condition, Ending, Wait};
use crate::error::{Error, Result};
use crate::model::{ListId, Status, StatusFilter, Task, TaskId, TaskRef};
use crate::output::{counts_json, event_json, task_json};
use crate::store::{Claim, Counts, Filter, OwnerChange, Release, Store, Update};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// `task_list` shows at most this many tasks unless asked for more.
pub const LIST_LIMIT: u64 = 200;
/// The longest `task_wait` or waiting claim: well inside a client's request timeout.
pub const MAX_WAIT: f64 = 300.0;
/// `task_wait`'s default.
pub const WAIT: f64 = 30.0;
/// The report `task_wait` gives, in characters.
pub const REPORT_CHARS: usize = 20_000;

/// The list a call names, else the server's.
pub fn list(given: Option<&str>, default: &ListId) -> Result<ListId> {
    match given {
        Some(l) => l.parse(),
        None => Ok(default.clone()),
    }
}

fn id(r: &Ref) -> Result<TaskId> {
    match r {
        Ref::Number(n) => n.to_string().parse(),
        Ref::Text(s) => s.parse(),
    }
}

fn ids(refs: &[Ref]) -> Result<Vec<TaskId>> {
    refs.iter().map(id).collect()
}

/// An id, or a key (a text that is not shaped like an id).
fn task_ref(r: &Ref) -> Result<TaskRef> {
    match r {
        Ref::Number(_) => Ok(TaskRef::Id(id(r)?)),
        Ref::Text(s) => s.parse(),
    }
}

fn statuses(given: &[String]) -> Result<Vec<Status>> {
    given.iter().map(|s| s.parse()).collect()
}

/// Seconds as a duration, checked: `what` names the field in the message.
fn seconds(what: &str, s: f64, max: f64) -> Result<Duration> {
    if !(0.0..=max).contains(&s) {
        bail!(
            usage,
            "`{what}` must be between 0 and {max} seconds, got {s}"
        );
    }
    Ok(Duration::from_secs_f64(s))
}

fn pairs(m: Option<Map<String, Value>>) -> Vec<(String, Value)> {
    m.unwrap_or_default().into_iter().collect()
}

fn json_tasks(tasks: &[Task]) -> Vec<Value> {
    tasks.iter().map(task_json).collect()
}

/// The tasks with these ids, in this order.
fn in_order(store: &mut dyn Store, list: &ListId, ids: &[TaskId]) -> Result<Vec<Value>> {
    let mut by_id: std::collections::HashMap<TaskId, Task> = store
        .tasks(list, &Filter::ids(ids.iter().copied()))?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    Ok(ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|t| task_json(&t))
        .collect())
}

pub fn create(store: &mut dyn Store, default: &ListId, p: CreateIn) -> Result<TasksOut> {
    let list = list(p.list.as_deref(), default)?;
    if p.tasks.is_empty() {
        bail!(usage, "`tasks` is empty: give at least one task");
    }
    let tasks = crate::batch::from_values(p.tasks)?;
    let ids = store.create(&list, &tasks, Default::default())?;
    Ok(TasksOut {
        tasks: in_order(store, &list, &ids)?,
    })
}

pub fn list_tasks(store: &mut dyn Store, default: &ListId, p: ListIn) -> Result<ListOut> {
    let list = list(p.list.as_deref(), default)?;
    let mut statuses = p
        .status
        .unwrap_or_default()
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<StatusFilter>>>()?;
    if p.ready == Some(true) {
        statuses.push(StatusFilter::Ready);
    }
    let limit = p.limit.unwrap_or(LIST_LIMIT);
    if limit == 0 {
        bail!(usage, "`limit` must be at least 1");
    }
    let mut filter = Filter {
        ids: ids(&p.ids.unwrap_or_default())?,
        statuses,
        owner: p.owner,
        metadata: pairs(p.metadata),
        limit: None,
    };
    let counts = store.counts(&list, &filter)?;
    filter.limit = Some(limit);
    let tasks = store.tasks(&list, &filter)?;
    let note = if tasks.is_empty() {
        crate::store::unknown_list(store, &list)?
    } else if counts.total() > tasks.len() as u64 {
        Some(format!(
            "{} of {} matching tasks shown (the lowest ids); pass `limit`, `ids` or `status` to see others",
            tasks.len(),
            counts.total()
        ))
    } else {
        None
    };
    Ok(ListOut {
        tasks: json_tasks(&tasks),
        counts: counts_json(&counts),
        note,
    })
}

pub fn get(store: &mut dyn Store, default: &ListId, p: GetIn) -> Result<GetOut> {
    let list = list(p.list.as_deref(), default)?;
    let id = id(&p.id)?;
    let task = store.tasks(&list, &Filter::ids([id]))?.remove(0);
    let history = match p.history {
        Some(true) => Some(
            store
                .history(&list, &[id], None)?
                .iter()
                .map(|e| match event_json(e) {
                    Value::Object(m) => m,
                    _ => unreachable!("an event is an object"),
                })
                .collect(),
        ),
        _ => None,
    };
    Ok(GetOut {
        task: task_json(&task),
        history,
    })
}

pub fn update(store: &mut dyn Store, default: &ListId, p: UpdateIn) -> Result<TasksOut> {
    let list = list(p.list.as_deref(), default)?;
    let ids = ids(&p.ids)?;
    if ids.is_empty() {
        bail!(usage, "`ids` is empty: name the tasks to change");
    }
    let token = match &p.token {
        Some(Ref::Number(n)) => Some(*n),
        Some(Ref::Text(s)) => Some(s.parse::<i64>().map_err(|_| {
            Error::usage(format!(
                "invalid token '{s}' (expected the claimToken of a claim)"
            ))
        })?),
        None => None,
    };
    let if_status = statuses(&p.if_status.unwrap_or_default())?;
    let status: Option<Status> = p.status.as_deref().map(str::parse).transpose()?;
    let edits = [
        ("status", status.is_some()),
        ("subject", p.subject.is_some()),
        ("description", p.description.is_some()),
        ("result", p.result.is_some()),
        ("priority", p.priority.is_some()),
        ("metadata", p.metadata.is_some()),
        ("addBlockedBy", p.add_blocked_by.is_some()),
        ("removeBlockedBy", p.remove_blocked_by.is_some()),
        ("note", p.note.is_some()),
    ];
    let first_edit = edits.iter().find(|(_, given)| *given).map(|(f, _)| *f);
    if p.release == Some(true) {
        if let Some(field) = first_edit {
            bail!(usage, "`release` cannot be combined with `{field}`");
        }
        let release = Release {
            by: Some(p.owner.clone().unwrap_or_else(crate::host::user)),
            owner: p.owner,
            token,
            if_status,
        };
        let tasks = store.release(&list, &ids, &release)?;
        return Ok(TasksOut {
            tasks: json_tasks(&tasks),
        });
    }
    // With a note, `owner` names its author: a note changes no owner.
    let (author, owner) = match p.note {
        Some(_) => (p.owner, None),
        None => (None, p.owner),
    };
    let refs = |r: Option<Vec<Ref>>| -> Result<Vec<TaskRef>> {
        r.unwrap_or_default().iter().map(task_ref).collect()
    };
    let update = Update {
        by: changed_by(author, token, owner.as_deref(), status),
        status,
        owner: owner.map_or(OwnerChange::Keep, OwnerChange::Set),
        subject: p.subject,
        description: p.description,
        priority: p.priority,
        metadata: p
            .metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Some(v).filter(|v| !v.is_null())))
            .collect(),
        add_blocked_by: refs(p.add_blocked_by)?,
        remove_blocked_by: refs(p.remove_blocked_by)?,
        result: p.result,
        note: match p.note {
            Some(n) if n.trim().is_empty() => bail!(usage, "the note is empty"),
            n => n,
        },
        if_status,
        token,
        ..Update::default()
    };
    if first_edit.is_none() && update.owner == OwnerChange::Keep {
        bail!(
            usage,
            "nothing to change: give status, owner, metadata, result or another field"
        );
    }
    let tasks = store.update(&list, &ids, &update)?;
    Ok(TasksOut {
        tasks: json_tasks(&tasks),
    })
}

pub fn claim(
    store: &mut dyn Store,
    default: &ListId,
    p: ClaimIn,
    cancelled: &dyn Fn() -> bool,
) -> Result<ClaimOut> {
    let list = list(p.list.as_deref(), default)?;
    if p.owner.trim().is_empty() {
        bail!(usage, "`owner` is empty: name who claims");
    }
    let claim = Claim {
        owner: p.owner,
        id: p.id.as_ref().map(id).transpose()?,
        matching: pairs(p.metadata),
        lease: p.lease.map(|s| seconds("lease", s, 1e9)).transpose()?,
        ..Claim::default()
    };
    let wait = seconds("wait", p.wait.unwrap_or(0.0), MAX_WAIT)?;
    let (task, why) = if wait.is_zero() {
        match store.claim(&list, &claim)? {
            Some(t) => (Some(t), None),
            None => (None, "no task is ready to claim".to_string().into()),
        }
    } else {
        match claim_waiting(store, &claim, &list, Some(Instant::now() + wait), cancelled)? {
            Claimed::Task(t) => (Some(*t), None),
            Claimed::Nothing => (
                None,
                Some("no open task is left that could become claimable".into()),
            ),
            Claimed::Timeout => (
                None,
                Some(format!(
                    "no task became claimable within {} s",
                    wait.as_secs_f64()
                )),
            ),
        }
    };
    if task.is_none() && claim.id.is_none() {
        if let Some(msg) = crate::store::unknown_list(store, &list)? {
            return Err(Error::not_found(msg));
        }
    }
    Ok(ClaimOut {
        task: task.as_ref().map_or(Value::Null, task_json),
        why,
    })
}

pub fn wait(
    store: &mut dyn Store,
    default: &ListId,
    p: WaitIn,
    cancelled: &dyn Fn() -> bool,
) -> Result<WaitOut> {
    let list = list(p.list.as_deref(), default)?;
    let ids = ids(&p.ids.unwrap_or_default())?;
    let cond = match (p.mode, p.count) {
        (Some(Mode::Count), Some(n)) if n >= 1 => Condition::Count(n),
        (Some(Mode::Count), _) => bail!(usage, "mode count needs `count` (at least 1)"),
        (_, Some(_)) => bail!(usage, "`count` goes with mode count"),
        (Some(Mode::Any), None) => Condition::Any,
        (Some(Mode::All) | None, None) => Condition::All,
    };
    let timeout = seconds("timeout", p.timeout.unwrap_or(WAIT), MAX_WAIT)?;
    let w = Wait {
        list: &list,
        ids: &ids,
        cond,
        fail_fast: p.fail_fast.unwrap_or(false),
        deadline: Some(Instant::now() + timeout),
        // A cancelled request is noticed within this.
        slice: Duration::from_millis(250),
    };
    let (ending, state) = w.run(store, |_| cancelled().then_some(0))?;
    let (outcome, why) = match ending {
        Ending::Met => (Outcome::Completed, None),
        Ending::Failed(why) => (Outcome::Failed, Some(why)),
        Ending::Timeout | Ending::Stopped(_) => (Outcome::Timeout, None),
    };
    let mut counts = Counts::default();
    for t in &state.tasks {
        counts.add(t.status, 1);
    }
    let history = crate::report::history(store, &list, &state.tasks)?;
    let mut report = Vec::new();
    crate::report::write(
        &mut report,
        &state.tasks,
        &state.stalled,
        &history,
        REPORT_CHARS,
        "task_list with `ids` shows tasks in full",
        false,
    )?;
    Ok(WaitOut {
        outcome,
        counts: counts_json(&counts),
        report: String::from_utf8_lossy(&report).into_owned(),
        why,
    })
}

pub fn pool_stop(store: &mut dyn Store, default: &ListId, p: PoolStopIn) -> Result<PoolStopOut> {
    let list = list(p.list.as_deref(), default)?;
    let ended = crate::cmd::spawn::stop_pools(store, &list, Duration::from_secs(30))?;
    Ok(PoolStopOut {
        stopped: ended
            .into_iter()
            .map(|(p, killed)| StoppedPool {
                pid: p.holder.pid,
                host: p.holder.host,
                killed,
            })
            .collect(),
    })
}

/// `pool_start`: a detached `worker-spawn` (the one beside this binary, else the one on
/// PATH), the store and list in its environment (a URL's password stays out of `ps`).
/// Its own checks apply: a bad option is its usage error, with its message.
pub fn pool_start(db: &std::path::Path, default: &ListId, p: PoolStartIn) -> Result<PoolStartOut> {
    use std::process::{Command, Stdio};
    let list = list(p.list.as_deref(), default)?;
    if p.command.is_empty() || p.command[0].is_empty() {
        bail!(
            usage,
            "`command` is empty: give the program to run for each task, and its arguments"
        );
    }
    let beside = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("worker-spawn"))
        .filter(|p| p.is_file());
    let mut cmd = Command::new(beside.as_deref().unwrap_or("worker-spawn".as_ref()));
    cmd.args(["--detach", "--format", "json"])
        .env("TASK_DB", db)
        .env("CLAUDE_CODE_TASK_LIST_ID", list.as_str())
        .stdin(Stdio::null());
    if let Some(j) = p.jobs {
        cmd.arg("-j").arg(j.to_string());
    }
    if let Some(t) = p.timeout {
        cmd.arg("--timeout")
            .arg(format!("{}ms", seconds("timeout", t, 1e9)?.as_millis()));
    }
    for (k, v) in p.limit.unwrap_or_default() {
        match v.as_u64() {
            Some(n) if n >= 1 => cmd.arg("--limit").arg(format!("{k}={n}")),
            _ => bail!(
                usage,
                "`limit.{k}` must be a whole number of at least 1, got {v}"
            ),
        };
    }
    for (k, v) in p.metadata.unwrap_or_default() {
        cmd.arg("-m").arg(format!("{k}={v}"));
    }
    if let Some(v) = p.verify {
        cmd.arg("--verify").arg(v);
    }
    if p.worktree == Some(true) {
        cmd.arg("--worktree");
    }
    cmd.arg("--").args(&p.command);
    let out = cmd
        .output()
        .map_err(|e| Error::store(format!("cannot run worker-spawn: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim().trim_start_matches("worker-spawn: ");
        let kind = match out.status.code() {
            Some(2) => crate::Kind::Usage,
            Some(3) => crate::Kind::NotFound,
            Some(4) => crate::Kind::Conflict,
            _ => crate::Kind::Store,
        };
        return Err(Error::new(kind, format!("worker-spawn: {said}")));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::store(format!("worker-spawn --detach printed no pid: {e}")))?;
    match (v["pid"].as_u64(), v["log"].as_str()) {
        (Some(pid), Some(log)) => Ok(PoolStartOut {
            pid: pid as u32,
            log: log.to_string(),
        }),
        _ => Err(Error::store(format!(
            "worker-spawn --detach printed {v}, not a pid and a log"
        ))),
    }
}
