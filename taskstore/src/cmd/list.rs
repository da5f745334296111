//! `task-list`: tasks, one task in full, counts, lists, waves.

use super::Stdin;
use crate::cli::{ListArgs, ListFormat};
use crate::error::{Error, Result};
use crate::graph;
use crate::model::{StatusFilter, Task};
use crate::output;
use crate::report;
use crate::store::Filter;
use clap::ValueEnum;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};

pub fn run(a: ListArgs, out: &mut dyn Write) -> Result<u8> {
    output::check_fields(&a.fields)?;
    if !a.fields.is_empty() && a.format != ListFormat::Csv {
        return Err(Error::usage("--fields goes with --format csv"));
    }
    let listing = !(a.count || a.lists || a.waves || a.workers || a.history || a.watch);
    if a.max_chars.is_some() && (a.format != ListFormat::Md || !listing) {
        return Err(Error::usage(
            "--max-chars goes with --format md (a report of tasks)",
        ));
    }
    if a.graph && (a.format != ListFormat::Md || !listing) {
        return Err(Error::usage(
            "--graph goes with --format md (a report of tasks)",
        ));
    }
    if matches!(
        a.format,
        ListFormat::Dot | ListFormat::Mermaid | ListFormat::Html
    ) && !listing
    {
        return Err(Error::usage(
            "--format dot, mermaid and html draw tasks: not with --count, --lists, --waves, --workers or --history",
        ));
    }
    // Off a terminal `--watch` streams JSON lines whatever the (default) text format.
    let screen = a.watch && a.format == ListFormat::Text && std::io::stdout().is_terminal();
    if a.watch && !matches!(a.format, ListFormat::Text | ListFormat::Jsonl) {
        return Err(Error::usage(
            "--watch shows a live view on a terminal, or streams --format jsonl",
        ));
    }
    let ids = Stdin::default().ids(&a.ids)?;
    // `-` with no ids on stdin selects no task (not every task), like `xargs -r`.
    let none = ids.is_empty() && a.ids.iter().any(|i| i == "-");
    let mut store = a.store.open(crate::store::Access::Read)?;
    let list = &a.store.list;

    if a.lists {
        let lists = store.lists()?;
        match a.format {
            ListFormat::Json | ListFormat::Jsonl => {
                let rows: Vec<Value> = lists
                    .iter()
                    .map(|l| {
                        let mut v = output::counts_json(&l.counts);
                        v["list"] = json!(l.name);
                        v
                    })
                    .collect();
                if a.format == ListFormat::Json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&rows).expect("plain JSON")
                    )?;
                } else {
                    for r in rows {
                        writeln!(out, "{r}")?;
                    }
                }
            }
            ListFormat::Ids => {
                for l in &lists {
                    writeln!(out, "{}", l.name)?;
                }
            }
            _ => {
                for l in &lists {
                    let n = l.counts.total();
                    let noun = if n == 1 { "task" } else { "tasks" };
                    writeln!(
                        out,
                        "{} {n} {noun} ({})",
                        l.name,
                        output::counts_phrase(&l.counts)
                    )?;
                }
            }
        }
        return Ok(0);
    }

    if a.workers {
        return workers(out, store.as_mut(), list, a.format).map(|_| 0);
    }

    if a.history {
        return history(out, store.as_mut(), list, &ids, none, &a).map(|_| 0);
    }

    let filter = Filter {
        ids,
        statuses: a.status,
        owner: a.owner,
        metadata: a.metadata,
        limit: a.limit,
    };

    if a.watch {
        if none {
            return Err(Error::usage("--watch: no task ids on standard input"));
        }
        let w = super::live::Watch {
            store: store.as_mut(),
            list,
            filter,
            until_done: a.until_done,
        };
        return super::live::run(w, screen, out);
    }

    if a.count {
        if !filter.ids.is_empty() {
            // A missing id is "not found" when counting too, as when listing.
            let ids = Filter {
                ids: filter.ids.clone(),
                ..Filter::default()
            };
            store.tasks(list, &ids)?;
        }
        let counts = if none {
            Default::default()
        } else {
            store.counts(list, &filter)?
        };
        if counts.total() == 0 {
            say_if_unknown(store.as_mut(), list)?;
        }
        // What Claude Code workers cost the list: for the whole list only (a filter
        // chooses tasks to count, and a cost is the list's budget).
        let whole = filter.ids.is_empty()
            && filter.statuses.is_empty()
            && filter.owner.is_none()
            && filter.metadata.is_empty();
        let cost = match whole && !none {
            true => store.cost(list)?,
            false => None,
        };
        match a.format {
            ListFormat::Json | ListFormat::Jsonl => {
                let mut v = output::counts_json(&counts);
                if let Some(c) = cost {
                    v["costUsd"] = json!(c);
                }
                writeln!(out, "{v}")?
            }
            _ => {
                output::write_counts_text(out, &counts)?;
                if let Some(c) = cost {
                    writeln!(out, "cost_usd {c:.6}")?;
                }
            }
        }
        return Ok(0);
    }

    if a.waves {
        let open = Filter {
            statuses: vec![StatusFilter::Open],
            ..filter
        };
        let tasks = if none {
            Vec::new()
        } else {
            store.tasks(list, &open)?
        };
        if tasks.is_empty() {
            say_if_unknown(store.as_mut(), list)?;
        }
        let waves = graph::waves(&tasks);
        match a.format {
            // A line a task, wave by wave in claim order, with what orders the claim.
            ListFormat::Jsonl => {
                let by_id: std::collections::HashMap<_, _> =
                    tasks.iter().map(|t| (t.id, t)).collect();
                for (n, w) in waves.iter().enumerate() {
                    let mut wave: Vec<&Task> = w.iter().map(|i| by_id[i]).collect();
                    wave.sort_by_key(|t| t.claim_rank());
                    for t in wave {
                        let line = json!({
                            "wave": n + 1,
                            "id": t.id.0.to_string(),
                            "subject": t.subject,
                            "priority": t.priority,
                            "depth": t.depth,
                        });
                        writeln!(out, "{line}")?;
                    }
                }
            }
            ListFormat::Json => {
                let v: Vec<Vec<String>> = waves
                    .iter()
                    .map(|w| w.iter().map(|i| i.0.to_string()).collect())
                    .collect();
                writeln!(out, "{}", serde_json::to_string(&v).expect("plain JSON"))?;
            }
            ListFormat::Ids => {
                for w in &waves {
                    let ids: Vec<String> = w.iter().map(|i| i.0.to_string()).collect();
                    writeln!(out, "{}", ids.join(" "))?;
                }
            }
            _ => {
                for (n, w) in waves.iter().enumerate() {
                    let ids: Vec<String> = w.iter().map(|i| i.to_string()).collect();
                    writeln!(out, "wave {}: {}", n + 1, ids.join(", "))?;
                }
            }
        }
        return Ok(0);
    }

    let tasks = if none {
        Vec::new()
    } else {
        store.tasks(list, &filter)?
    };
    if tasks.is_empty() {
        say_if_unknown(store.as_mut(), list)?;
    }
    match a.format {
        ListFormat::Text => output::write_text(out, &tasks)?,
        ListFormat::Json => output::write_json(out, &tasks)?,
        ListFormat::Jsonl => output::write_jsonl(out, &tasks)?,
        ListFormat::Csv => output::write_csv(out, &tasks, &a.fields)?,
        ListFormat::Ids => output::write_ids(out, tasks.iter().map(|t| t.id))?,
        ListFormat::Dot => out.write_all(crate::diagram::dot(&tasks).as_bytes())?,
        ListFormat::Mermaid => out.write_all(crate::diagram::mermaid(&tasks).as_bytes())?,
        ListFormat::Html => {
            let stalled = crate::store::stalled_among(store.as_mut(), list, &tasks)?;
            crate::html::write(out, store.as_mut(), list, &tasks, &stalled)?
        }
        ListFormat::Md => {
            let stalled = if tasks.iter().any(|t| !t.open_blockers.is_empty()) {
                store.stalled(list)?
            } else {
                Default::default()
            };
            let everything =
                "`--max-chars 0` shows every task in full, `task-list ID --format json` one";
            let history = report::history(store.as_mut(), list, &tasks)?;
            report::write(
                out,
                &tasks,
                &stalled,
                &history,
                a.max_chars.unwrap_or(report::MAX_CHARS),
                everything,
                a.graph,
            )?
        }
    }
    Ok(0)
}

/// An empty answer about a list that does not exist is still an answer (exit 0, as
/// `grep` finding nothing), but a typo'd list must not pass silently: say so on stderr.
fn say_if_unknown(store: &mut dyn crate::store::Store, list: &crate::model::ListId) -> Result<()> {
    if let Some(msg) = crate::store::unknown_list(store, list)? {
        eprintln!("task-list: {msg}");
    }
    Ok(())
}

/// `--history`: every event of the given tasks, oldest first.
fn history(
    out: &mut dyn Write,
    store: &mut dyn crate::store::Store,
    list: &crate::model::ListId,
    ids: &[crate::model::TaskId],
    none: bool,
    a: &ListArgs,
) -> Result<()> {
    if ids.is_empty() && !none {
        return Err(Error::usage(
            "--history needs task ids (task-list ID --history, or - to read them from stdin)",
        ));
    }
    if !a.status.is_empty() || a.owner.is_some() || !a.metadata.is_empty() || a.limit.is_some() {
        return Err(Error::usage(
            "--history takes task ids, not filters (-s, --owner, -m, --limit)",
        ));
    }
    if !matches!(
        a.format,
        ListFormat::Text | ListFormat::Json | ListFormat::Jsonl
    ) {
        let name = a
            .format
            .to_possible_value()
            .map(|v| v.get_name().to_string());
        return Err(Error::usage(format!(
            "--history prints text, json or jsonl, not {}",
            name.unwrap_or_default()
        )));
    }
    let events = store.history(list, ids, None)?;
    match a.format {
        ListFormat::Text => output::write_history_text(out, &events)?,
        f => {
            let all: Vec<Value> = events.iter().map(output::event_json).collect();
            output::write_objects(out, &all, f == ListFormat::Jsonl)?
        }
    }
    Ok(())
}

/// `--workers`: the pools running on the list (dead ones are not shown).
fn workers(
    out: &mut dyn Write,
    store: &mut dyn crate::store::Store,
    list: &crate::model::ListId,
    format: ListFormat,
) -> Result<()> {
    let me = crate::host::hostname();
    let now = crate::time::now_ms();
    let pools: Vec<_> = store
        .pools(Some(list))?
        .into_iter()
        .filter(|p| crate::cmd::spawn::pool_alive(p, &me, now))
        .collect();
    let as_json = |p: &crate::store::Pool| {
        let mut v = json!({
            "host": p.holder.host,
            "pid": p.holder.pid,
            "list": p.list,
            "startedAt": crate::time::rfc3339(p.started_at),
            "lastSeenAt": crate::time::rfc3339(p.seen_at),
        });
        for (k, o) in &p.options {
            v[k] = o.clone();
        }
        v
    };
    match format {
        ListFormat::Json | ListFormat::Jsonl => {
            let all: Vec<Value> = pools.iter().map(as_json).collect();
            output::write_objects(out, &all, format == ListFormat::Jsonl)?
        }
        ListFormat::Ids => {
            for p in &pools {
                writeln!(out, "{}", p.holder.pid)?;
            }
        }
        _ => {
            for p in &pools {
                let o = &p.options;
                let command: Vec<String> = o
                    .get("command")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .map(|a| a.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let ago = (now - p.seen_at).max(0) / 1000;
                let log = o
                    .get("log")
                    .and_then(Value::as_str)
                    .map(|l| format!(", log {l}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}:{} -j {} since {} (seen {ago}s ago){log}: {}",
                    p.holder.host,
                    p.holder.pid,
                    o.get("jobs").and_then(Value::as_u64).unwrap_or(0),
                    crate::time::rfc3339(p.started_at),
                    output::one_line(&command.join(" ")),
                )?;
            }
        }
    }
    Ok(())
}
