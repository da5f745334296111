//! `--format html`: one self-contained page of a run — no network, its styles and script
//! inline — with a heading, a timeline (a lane per worker, a bar per attempt), the tasks
//! (failures first, each expanding to its result, log and history) and the waves.
//!
//! The layout is computed here, so the page shows the same without its script: bars are
//! positioned in percent of the run's wall time. The script only adds the details shown
//! on hovering or focusing a bar, and opens a task's row when a bar or link is followed.

mod runs;

use crate::error::Result;
use crate::model::{Event, ListId, Status, Task, TaskId};
use crate::output::{dollars, one_line, tasks_cost};
use crate::store::{Stalled, Store};
use crate::time::{now_ms, rfc3339};
use runs::Bar;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The most of a completed task's result the page keeps (its details are folded), and of
/// any other's result and log.
const DONE_CHARS: usize = 300;
const OPEN_CHARS: usize = 4000;
/// Past this many tasks, completed tasks' rows are folded to their line.
const FOLD_OVER: usize = 500;
/// The most history events shown for a task.
const HISTORY: usize = 30;

/// `<`, `>`, `&`, `"` and `'` as entities.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The first `n` characters, and a mark when there was more.
fn head(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The last `n` characters, and a mark when there was more.
fn tail(s: &str, n: usize) -> String {
    let count = s.chars().count();
    match count > n {
        true => format!("…{}", s.chars().skip(count - n).collect::<String>()),
        false => s.to_string(),
    }
}

/// A duration as people read it: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 10 min`.
fn span(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        ms => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A status (or an attempt's outcome) as a word with an icon, so colour is never the
/// only carrier.
fn badge(what: &str) -> &'static str {
    match what {
        "completed" => "✓ completed",
        "failed" => "✗ failed",
        "cancelled" => "⊘ cancelled",
        "in_progress" | "running" => "▶ running",
        "pending" => "○ pending",
        "stalled" => "⊗ stalled",
        "retried" => "↻ retried",
        "released" => "↩ released",
        "lost" => "⚠ lost",
        _ => "?",
    }
}

/// The class of a status: short, as every row and chip carries one.
fn class(word: &str) -> &'static str {
    match word {
        "completed" => "ok",
        "failed" => "bad",
        "cancelled" => "off",
        "stalled" => "stuck",
        "in_progress" => "run",
        _ => "wait",
    }
}

fn status_word(t: &Task, stalled: &Stalled) -> &'static str {
    match t.status {
        Status::Pending if stalled.contains_key(&t.id) => "stalled",
        s => match s {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        },
    }
}

/// Write the page of `tasks` (of `list`), with their attempts read from the store's events.
pub fn write(
    out: &mut dyn Write,
    store: &mut dyn Store,
    list: &ListId,
    tasks: &[Task],
    stalled: &Stalled,
) -> Result<()> {
    let ids: HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
    let events: Vec<Event> = match tasks.is_empty() {
        true => Vec::new(),
        false => store
            .events_after(list, 0, i64::MAX as usize)?
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| ids.contains(&e.task))
            .collect(),
    };
    let page = render(list, tasks, stalled, &events, now_ms());
    out.write_all(page.as_bytes())?;
    Ok(())
}

/// The page, as text.
pub fn render(
    list: &ListId,
    tasks: &[Task],
    stalled: &Stalled,
    events: &[Event],
    now: i64,
) -> String {
    let bars = runs::bars(events, now);
    let spent = runs::spent(&bars);
    let chain = runs::critical(tasks, &spent);
    let on_chain: HashSet<TaskId> = chain.iter().copied().collect();
    let mut h = String::with_capacity(4096 + tasks.len() * 400);
    let title = format!("{list} — parallel-tasks");
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    heading(&mut h, list, tasks, stalled, &bars, now);
    if tasks.is_empty() {
        h.push_str(
            "<p class=\"empty\">No tasks: the list is empty, or no task matches the filters.</p>\n",
        );
    } else {
        timeline(&mut h, &bars, &on_chain);
        table(&mut h, tasks, stalled, events, &spent, &on_chain);
        waves(&mut h, tasks, stalled);
    }
    let _ = write!(h, "<script>\n{JS}</script>\n</body>\n</html>\n");
    h
}

fn heading(
    h: &mut String,
    list: &ListId,
    tasks: &[Task],
    stalled: &Stalled,
    bars: &[Bar],
    now: i64,
) {
    let _ = writeln!(
        h,
        "<header>\n<h1>{} <span class=\"sub\">parallel-tasks run</span></h1>",
        esc(list.as_str())
    );
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for t in tasks {
        let w = status_word(t, stalled);
        match counts.iter_mut().find(|(k, _)| *k == w) {
            Some((_, n)) => *n += 1,
            None => counts.push((w, 1)),
        }
    }
    let order = [
        "failed",
        "cancelled",
        "stalled",
        "in_progress",
        "pending",
        "completed",
    ];
    counts.sort_by_key(|(w, _)| order.iter().position(|o| o == w));
    h.push_str("<ul class=\"counts\">");
    let _ = write!(h, "<li><b>{}</b> tasks</li>", tasks.len());
    for (w, n) in counts {
        let _ = write!(
            h,
            "<li class=\"s-{}\"><b>{n}</b> {}</li>",
            class(w),
            badge(w)
        );
    }
    h.push_str("</ul>\n<dl class=\"facts\">");
    let first = bars.iter().map(|b| b.start).min();
    let last = bars.iter().map(|b| b.end).max();
    if let (Some(a), Some(b)) = (first, last) {
        let _ = write!(
            h,
            "<div><dt>wall time</dt><dd>{} <small>(first claim {} to last end)</small></dd></div>",
            span(b - a),
            esc(&rfc3339(a))
        );
    }
    if let Some(c) = tasks_cost(tasks) {
        let _ = write!(h, "<div><dt>cost</dt><dd>{}</dd></div>", esc(&dollars(c)));
    }
    let workers: HashSet<&str> = bars.iter().map(|b| b.worker.as_str()).collect();
    let hosts: HashSet<&str> = bars.iter().filter_map(|b| b.host.as_deref()).collect();
    let _ = write!(h, "<div><dt>workers</dt><dd>{}</dd></div>", workers.len());
    if !hosts.is_empty() {
        let _ = write!(h, "<div><dt>hosts</dt><dd>{}</dd></div>", hosts.len());
    }
    let _ = writeln!(
        h,
        "<div><dt>as of</dt><dd>{}</dd></div></dl>\n</header>",
        esc(&rfc3339(now))
    );
}

fn timeline(h: &mut String, bars: &[Bar], on_chain: &HashSet<TaskId>) {
    h.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    if bars.is_empty() {
        h.push_str("<p class=\"empty\">No task was claimed: nothing ran.</p>\n</section>\n");
        return;
    }
    let t0 = bars.iter().map(|b| b.start).min().unwrap_or(0);
    let t1 = bars.iter().map(|b| b.end).max().unwrap_or(t0).max(t0 + 1);
    let width = (t1 - t0) as f64;
    let lanes = runs::lanes(bars);
    let _ = writeln!(
        h,
        "<p class=\"legend\">{} attempts by {} workers over {}; <span class=\"crit-key\">◆</span> the run's longest chain. \
         Hover or focus a bar for its details; follow it to its task.</p>",
        bars.len(),
        lanes.len(),
        span(t1 - t0)
    );
    h.push_str("<div class=\"lanes\">\n");
    for (worker, lane) in lanes {
        let _ = write!(
            h,
            "<div class=\"lane\"><div class=\"who\" title=\"{0}\">{0}</div><div class=\"track\">",
            esc(&worker)
        );
        for b in lane {
            let left = (b.start - t0) as f64 / width * 100.0;
            let w = (b.end - b.start) as f64 / width * 100.0;
            let class = if on_chain.contains(&b.task) {
                "\"bar crit\""
            } else {
                "bar"
            };
            // Unquoted where the value is ours (a page of 10 000 bars stays small); the
            // position as custom properties the stylesheet turns into percents.
            let exit = match (b.exit_code, b.outcome) {
                (Some(0), "completed") | (None, _) => String::new(),
                (Some(c), _) => format!(" data-exit={c}"),
            };
            let _ = write!(
                h,
                "<a class={class} href=#t{id} style=\"--l:{left:.2};--w:{w:.2}\" data-task={id} \
                 data-attempt={a} data-worker=\"{worker}\" data-outcome={o} data-ms={ms}{exit} \
                 aria-label=\"#{id} attempt {a}: {o}\"></a>",
                o = b.outcome,
                id = b.task.0,
                a = b.attempt,
                worker = esc(&b.worker),
                ms = b.end - b.start,
            );
        }
        h.push_str("</div></div>\n");
    }
    // A time axis under the lanes.
    h.push_str("<div class=\"lane axis\" aria-hidden=\"true\"><div class=\"who\"></div><div class=\"track\">");
    for q in 0..=4 {
        let _ = write!(
            h,
            "<span style=\"left:{}%\">{}</span>",
            q * 25,
            if q == 0 {
                "0".to_string()
            } else {
                span((t1 - t0) * q / 4)
            }
        );
    }
    h.push_str("</div></div>\n");
    h.push_str("</div>\n<div id=\"tip\" role=\"tooltip\" hidden></div>\n</section>\n");
}

fn table(
    h: &mut String,
    tasks: &[Task],
    stalled: &Stalled,
    events: &[Event],
    spent: &HashMap<TaskId, i64>,
    on_chain: &HashSet<TaskId>,
) {
    let mut history: HashMap<TaskId, Vec<&Event>> = HashMap::new();
    for e in events {
        history.entry(e.task).or_default().push(e);
    }
    let rank = |t: &Task| match status_word(t, stalled) {
        "failed" => 0,
        "cancelled" => 1,
        "stalled" => 2,
        "in_progress" => 3,
        "pending" => 4,
        _ => 5,
    };
    let mut sorted: Vec<&Task> = tasks.iter().collect();
    sorted.sort_by_key(|t| (rank(t), t.id));
    let fold = tasks.len() > FOLD_OVER;
    h.push_str("<section id=\"tasks\">\n<h2>Tasks</h2>\n<div class=\"table\" role=\"table\">\n\
        <div class=\"row head\"><span>id</span><span>subject</span><span>status</span><span>owner</span>\
        <span>attempts</span><span>time</span><span>exit</span></div>\n");
    for t in sorted {
        let w = status_word(t, stalled);
        let crit = if on_chain.contains(&t.id) {
            "<span class=\"crit-key\" title=\"on the longest chain\">◆</span> "
        } else {
            ""
        };
        let first_log = t
            .log
            .as_deref()
            .and_then(|l| l.lines().rev().map(str::trim).find(|l| !l.is_empty()))
            .map(|l| format!(" data-log=\"{}\"", esc(&head(l, 160))))
            .unwrap_or_default();
        // In a big run a completed task's details are folded: its row holds its
        // blockers as data, which the script makes links of when the row opens.
        let folded = fold && t.status == Status::Completed && t.attempts <= 1;
        let _ = write!(
            h,
            "<details class=\"row s-{}\" id=t{}{first_log}",
            class(w),
            t.id.0
        );
        if folded && !t.blocked_by.is_empty() {
            let b: Vec<String> = t.blocked_by.iter().map(|b| b.0.to_string()).collect();
            let _ = write!(h, " data-b=\"{}\"", b.join(" "));
        }
        let _ = write!(
            h,
            "><summary><span>#{id}</span><span class=subj>{crit}{subj}</span><span class=st>{badge}</span>\
             <span>{owner}</span><span>{att}/{max}</span><span>{time}</span><span>{exit}</span></summary>",
            id = t.id.0,
            subj = esc(&one_line(&t.subject)),
            badge = badge(w),
            owner = esc(t.owner.as_deref().unwrap_or("")),
            att = t.attempts,
            max = t.max_attempts,
            time = spent.get(&t.id).map(|&ms| span(ms)).unwrap_or_default(),
            exit = t.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        );
        if folded {
            h.push_str("</details>\n");
            continue;
        }
        h.push_str("<div class=\"more\">");
        let done = t.status == Status::Completed;
        if !t.blocked_by.is_empty() {
            h.push_str("<p>waits for ");
            for b in &t.blocked_by {
                let _ = write!(h, "<a href=\"#t{0}\">#{0}</a> ", b.0);
            }
            h.push_str("</p>");
        }
        if let Some((b, bs)) = stalled.get(&t.id) {
            let _ = write!(h, "<p>stalled behind <a href=\"#t{0}\">#{0}</a> ({1}): it cannot run until that is reopened</p>", b.0, bs.as_str());
        }
        let keep = if done { DONE_CHARS } else { OPEN_CHARS };
        if !t.description.trim().is_empty() && !done {
            let _ = write!(
                h,
                "<h4>description</h4><pre>{}</pre>",
                esc(&head(&t.description, keep))
            );
        }
        if let Some(r) = t.result.as_deref().filter(|r| !r.is_empty()) {
            let _ = write!(h, "<h4>result</h4><pre>{}</pre>", esc(&head(r, keep)));
        }
        if let Some(l) = t.log.as_deref().filter(|l| !l.is_empty()) {
            let _ = write!(
                h,
                "<h4>log (its end)</h4><pre>{}</pre>",
                esc(&tail(l, keep))
            );
        }
        if !done || t.attempts > 1 {
            if let Some(evs) = history.get(&t.id) {
                h.push_str("<h4>history</h4><ol class=\"history\">");
                for e in evs.iter().skip(evs.len().saturating_sub(HISTORY)) {
                    let _ = write!(
                        h,
                        "<li><time>{}</time> {}</li>",
                        esc(&rfc3339(e.at)),
                        esc(&crate::output::event_phrase(e))
                    );
                }
                h.push_str("</ol>");
            }
        }
        h.push_str("</div></details>\n");
    }
    h.push_str("</div>\n</section>\n");
}

fn waves(h: &mut String, tasks: &[Task], stalled: &Stalled) {
    h.push_str("<section id=\"waves\">\n<h2>Dependencies</h2>\n<p class=\"legend\">Wave 1 waits for nothing; each later wave waits for the one before.</p>\n<ol class=\"waves\">\n");
    for (n, wave) in runs::waves(tasks).iter().enumerate() {
        let _ = write!(h, "<li><h3>wave {}</h3>", n + 1);
        for t in wave {
            let w = status_word(t, stalled);
            let _ = write!(
                h,
                "<a class=\"chip s-{c}\" href=#t{id}>{icon} {id}</a>",
                c = class(w),
                id = t.id.0,
                icon = badge(w).split(' ').next().unwrap_or(""),
            );
        }
        h.push_str("</li>\n");
    }
    h.push_str("</ol>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_spans() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(span(850), "850 ms");
        assert_eq!(span(12_340), "12.3 s");
        assert_eq!(span(245_000), "4 min 05 s");
        assert_eq!(head("abcdef", 3), "abc…");
        assert_eq!(tail("abcdef", 3), "…def");
    }
}
