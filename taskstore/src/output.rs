//! Rendering tasks: text (Claude Code's TaskList shape), JSON, JSON lines, CSV, ids,
//! shell assignments. The Markdown report lives in `report`.

use crate::error::{Error, Result};
use crate::model::{Event, Status, Task, TaskId};
use crate::store::Counts;
use crate::time::rfc3339;
use serde_json::{json, Map, Value};
use std::io::Write;

/// Field names of the JSON task, in output order (also the CSV columns).
pub const FIELDS: &[&str] = &[
    "id",
    "list",
    "key",
    "subject",
    "description",
    "activeForm",
    "status",
    "owner",
    "claimToken",
    "blockedBy",
    "blocks",
    "priority",
    "depth",
    "metadata",
    "scopes",
    "verify",
    "attempts",
    "maxAttempts",
    "ready",
    "result",
    "log",
    "logFile",
    "exitCode",
    "feedback",
    "createdAt",
    "updatedAt",
    "startedAt",
    "finishedAt",
];

fn ids_json(ids: &[TaskId]) -> Value {
    Value::Array(ids.iter().map(|i| Value::String(i.0.to_string())).collect())
}

fn time_json(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// The JSON object of a task: a superset of Claude Code's task file.
pub fn task_json(t: &Task) -> Value {
    let mut m = Map::new();
    for f in FIELDS {
        m.insert((*f).to_string(), field(t, f));
    }
    Value::Object(m)
}

fn field(t: &Task, name: &str) -> Value {
    match name {
        "id" => json!(t.id.0.to_string()),
        "list" => json!(t.list),
        "key" => json!(t.key),
        "subject" => json!(t.subject),
        "description" => json!(t.description),
        "activeForm" => json!(t.active_form),
        "status" => json!(t.status.as_str()),
        "owner" => json!(t.owner),
        // Only while a claim holds the task: `task-update ID --token T` checks it.
        "claimToken" => match (t.status, t.claim_token) {
            (Status::InProgress, Some(c)) => json!(c.to_string()),
            _ => Value::Null,
        },
        "blockedBy" => ids_json(&t.blocked_by),
        "blocks" => ids_json(&t.blocks),
        "priority" => json!(t.priority),
        "depth" => json!(t.depth),
        "metadata" => Value::Object(t.metadata.clone()),
        "scopes" => json!(t.scopes),
        "verify" => json!(t.verify),
        "feedback" => json!(t.feedback),
        "attempts" => json!(t.attempts),
        "maxAttempts" => json!(t.max_attempts),
        "ready" => json!(t.is_ready()),
        "result" => json!(t.result),
        "log" => json!(t.log),
        // Where the claiming worker-spawn writes the attempt's output, as it arrives.
        "logFile" => match t.log_files() {
            Some((out, err)) => json!({ "out": out, "err": err }),
            None => Value::Null,
        },
        "exitCode" => json!(t.exit_code),
        "createdAt" => time_json(Some(t.created_at)),
        "updatedAt" => time_json(Some(t.updated_at)),
        "startedAt" => time_json(t.started_at),
        "finishedAt" => time_json(t.finished_at),
        _ => Value::Null,
    }
}

/// `#3 [pending] Review PR #125 (owner) [blocked by #1, #2]`
pub fn text_line(t: &Task) -> String {
    let mut s = format!("{} [{}] {}", t.id, t.status, one_line(&t.subject));
    if let Some(o) = &t.owner {
        s += &format!(" ({})", one_line(o));
    }
    if !t.open_blockers.is_empty() {
        let b: Vec<String> = t.open_blockers.iter().map(|b| b.to_string()).collect();
        s += &format!(" [blocked by {}]", b.join(", "));
    }
    if !t.scopes.is_empty() {
        s += &format!(" [scopes: {}]", one_line(&t.scopes.join(", ")));
    }
    s
}

/// Newlines in a subject or owner would break one-task-a-line output.
pub fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Check `--fields` names before anything is read or printed.
pub fn check_fields(fields: &[String]) -> Result<()> {
    for f in fields {
        if !FIELDS.contains(&f.as_str()) {
            return Err(Error::usage(format!(
                "unknown field '{f}' (expected some of: {})",
                FIELDS.join(", ")
            )));
        }
    }
    Ok(())
}

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

pub fn write_csv(out: &mut dyn Write, tasks: &[Task], fields: &[String]) -> Result<()> {
    let fields: Vec<&str> = if fields.is_empty() {
        FIELDS.to_vec()
    } else {
        fields.iter().map(String::as_str).collect()
    };
    let mut w = csv::Writer::from_writer(out);
    let csv_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::from(io),
        other => Error::store(format!("{other:?}")),
    };
    w.write_record(&fields).map_err(csv_err)?;
    for t in tasks {
        // Scopes as a batch's `scopes` column takes them: `;` between them.
        w.write_record(fields.iter().map(|&f| match f {
            "scopes" => t.scopes.join(";"),
            f => csv_cell(&field(t, f)),
        }))
        .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

pub fn write_json(out: &mut dyn Write, tasks: &[Task]) -> Result<()> {
    let all: Vec<Value> = tasks.iter().map(task_json).collect();
    serde_json::to_writer_pretty(&mut *out, &all)
        .map_err(|e| Error::from(std::io::Error::from(e)))?;
    writeln!(out)?;
    Ok(())
}

pub fn write_jsonl(out: &mut dyn Write, tasks: &[Task]) -> Result<()> {
    for t in tasks {
        serde_json::to_writer(&mut *out, &task_json(t))
            .map_err(|e| Error::from(std::io::Error::from(e)))?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn write_ids(out: &mut dyn Write, ids: impl IntoIterator<Item = TaskId>) -> Result<()> {
    for id in ids {
        writeln!(out, "{}", id.0)?;
    }
    Ok(())
}

/// The variables worker-spawn gives a command, as shell assignments a shell worker can
/// `eval` after a claim (values in single quotes, so nothing in them is run).
pub fn write_env(out: &mut dyn Write, tasks: &[Task]) -> Result<()> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    for t in tasks {
        let token = match field(t, "claimToken") {
            Value::String(s) => s,
            _ => String::new(),
        };
        let meta = Value::Object(t.metadata.clone()).to_string();
        writeln!(out, "TASK_ID={}", t.id.0)?;
        writeln!(out, "TASK_LIST={}", quote(&t.list))?;
        writeln!(out, "TASK_CLAIM_TOKEN={token}")?;
        writeln!(out, "TASK_ATTEMPT={}", t.attempts)?;
        writeln!(out, "TASK_SUBJECT={}", quote(&t.subject))?;
        writeln!(out, "TASK_DESCRIPTION={}", quote(&t.description))?;
        writeln!(out, "TASK_METADATA={}", quote(&meta))?;
    }
    Ok(())
}

pub fn write_text(out: &mut dyn Write, tasks: &[Task]) -> Result<()> {
    for t in tasks {
        writeln!(out, "{}", text_line(t))?;
    }
    Ok(())
}

/// "3 completed, 1 failed" (statuses with a zero count left out).
pub fn counts_phrase(c: &Counts) -> String {
    let parts: Vec<String> = Status::ALL
        .iter()
        .filter(|s| c.get(**s) > 0)
        .map(|s| format!("{} {}", c.get(*s), s))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub fn write_counts_text(out: &mut dyn Write, c: &Counts) -> Result<()> {
    for s in Status::ALL {
        writeln!(out, "{} {}", s, c.get(s))?;
    }
    Ok(())
}

/// Dollars for people: `$0.84`, `$12.30`; below a cent, four places (`$0.0014`).
pub fn dollars(usd: f64) -> String {
    if usd >= 0.01 || usd == 0.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.4}")
    }
}

/// What the tasks have cost, as the store counts it (`worker-spawn --max-cost` reads the
/// same), None when none has a cost.
pub fn tasks_cost<'a>(tasks: impl IntoIterator<Item = &'a crate::model::Task>) -> Option<f64> {
    tasks
        .into_iter()
        .filter_map(|t| t.cost_usd)
        .fold(None, |sum, c| Some(sum.unwrap_or(0.0) + c))
}

pub fn counts_json(c: &Counts) -> Value {
    let mut m = Map::new();
    for s in Status::ALL {
        m.insert(s.as_str().to_string(), json!(c.get(s)));
    }
    m.insert("total".into(), json!(c.total()));
    Value::Object(m)
}

/// JSON objects as one pretty array, or (`lines`) one compact object a line.
pub fn write_objects(out: &mut dyn Write, all: &[Value], lines: bool) -> Result<()> {
    if lines {
        for v in all {
            writeln!(out, "{v}")?;
        }
    } else {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(all).expect("plain JSON")
        )?;
    }
    Ok(())
}

/// An event of a task's history as JSON: `{"task","at","event","by",…detail}`.
pub fn event_json(e: &Event) -> Value {
    let mut m = Map::new();
    m.insert("task".into(), json!(e.task.0.to_string()));
    m.insert("at".into(), json!(rfc3339(e.at)));
    m.insert("event".into(), json!(e.kind));
    m.insert("by".into(), json!(e.by));
    for (k, v) in &e.detail {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// What an event says, in a few words: `claimed by w-1 (attempt 2, host h, pid 7)`.
pub fn event_phrase(e: &Event) -> String {
    let d = &e.detail;
    let get = |k: &str| match d.get(k) {
        Some(Value::String(s)) => Some(one_line(s)),
        Some(Value::Null) | None => None,
        Some(v) => Some(v.to_string()),
    };
    let mut parts: Vec<String> = Vec::new();
    let add = |parts: &mut Vec<String>, label: &str, k: &str| {
        if let Some(v) = get(k) {
            parts.push(if label.is_empty() {
                v
            } else {
                format!("{label} {v}")
            });
        }
    };
    match e.kind.as_str() {
        "edited" => {
            let fields: Vec<String> = d
                .get("fields")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            parts.push(fields.join(", "));
            add(&mut parts, "status", "status");
        }
        "claimed" => {
            add(&mut parts, "attempt", "attempt");
            add(&mut parts, "host", "host");
            add(&mut parts, "pid", "pid");
        }
        "released" => add(&mut parts, "from", "from"),
        "taken_over" => {
            add(&mut parts, "from", "from");
            add(&mut parts, "attempt", "attempt");
            add(&mut parts, "", "why");
            add(&mut parts, "now", "status");
        }
        "check_failed" | "retried" => {
            add(&mut parts, "attempt", "attempt");
            add(&mut parts, "exit", "exitCode");
        }
        "finished" => {
            add(&mut parts, "", "status");
            add(&mut parts, "exit", "exitCode");
            if let Some(ms) = d.get("durationMs").and_then(Value::as_i64) {
                parts.push(format!("in {}", crate::time::short_duration(ms)));
            }
        }
        "note" => add(&mut parts, "", "text"),
        _ => {}
    }
    let by =
        e.by.as_deref()
            .map(|b| format!(" by {}", one_line(b)))
            .unwrap_or_default();
    let kind = e.kind.replace('_', " ");
    match parts.is_empty() {
        true => format!("{kind}{by}"),
        false => format!("{kind}{by}: {}", parts.join(", ")),
    }
}

/// A task's history, one line an event: `#3 2026-11-25T10:00:00.000Z claimed by w-1: …`.
pub fn write_history_text(out: &mut dyn Write, events: &[Event]) -> Result<()> {
    for e in events {
        writeln!(out, "{} {} {}", e.task, rfc3339(e.at), event_phrase(e))?;
    }
    Ok(())
}
