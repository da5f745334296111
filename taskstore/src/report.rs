//! The Markdown report a coordinator hands back (`--format md` of task-list and
//! task-wait): a heading with the counts, then a line a task with the first lines of its
//! result (failed: exit code and the tail of its log).
//!
//! It is read by agents whose tools keep only so much of a command's output (Claude
//! Code's Bash tool keeps the first 30 000 characters), so it fits a budget
//! (`--max-chars`): over it, completed tasks fold into one line each and then into a
//! count, open tasks into counts, and failures — listed first — lose their log tail
//! last. The heading always carries every count; a last line says how to see it all.

use crate::error::Result;
use crate::model::{Event, ListId, Status, Task, TaskId};
use crate::output::{counts_phrase, event_phrase, one_line};
use crate::store::{Counts, Stalled, Store};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

/// The default budget of a report, in characters (`--max-chars`): well inside the 30 000
/// that Claude Code's Bash tool keeps of a command's output.
pub const MAX_CHARS: usize = 20_000;

/// How many lines of a result (or of a failed task's log tail) a full entry shows.
const LINES: usize = 3;

/// How many of its last events a failed or retried task shows in full.
const EVENTS: usize = 4;

/// The last events of some tasks.
pub type History = BTreeMap<TaskId, Vec<Event>>;

/// The last events of the tasks whose story a report tells: the failed and the retried.
pub fn history(store: &mut dyn Store, list: &ListId, tasks: &[Task]) -> Result<History> {
    let told: Vec<TaskId> = tasks
        .iter()
        .filter(|t| t.status == Status::Failed || t.attempts > 1)
        .map(|t| t.id)
        .collect();
    let mut h = History::new();
    if told.is_empty() {
        return Ok(h);
    }
    for e in store.history(list, &told, Some(EVENTS))? {
        h.entry(e.task).or_default().push(e);
    }
    Ok(h)
}

/// How much of one kind of task a rendering shows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Detail {
    /// A line with its first result lines (failed: log tail).
    Full,
    /// A failed task's line with the last line of its log only.
    Tail,
    /// One line.
    Line,
    /// Not listed: counted on one line.
    Folded,
}

/// One way to render: detail for completed, open and failed tasks, and how many failures
/// are listed at most.
#[derive(Clone, Copy)]
struct Shape {
    done: Detail,
    open: Detail,
    failed: Detail,
    max_failed: usize,
}

/// Write the report of `tasks` in at most `max_chars` characters (0: no limit), if
/// the heading and the failures' lines allow; `everything` says how to see it all.
pub fn write(
    out: &mut dyn Write,
    tasks: &[Task],
    stalled: &Stalled,
    history: &History,
    max_chars: usize,
    everything: &str,
    graph: bool,
) -> Result<()> {
    if !graph {
        return write_report(out, tasks, stalled, history, max_chars, everything);
    }
    // The picture goes last, when it leaves the report at least half the budget; else
    // a line says how to draw it.
    let picture = format!("\n```mermaid\n{}```\n", crate::diagram::mermaid(tasks));
    let size = picture.chars().count();
    if max_chars == 0 || size <= max_chars / 2 {
        let rest = if max_chars == 0 { 0 } else { max_chars - size };
        write_report(out, tasks, stalled, history, rest, everything)?;
        return Ok(out.write_all(picture.as_bytes())?);
    }
    let note = format!(
        "\n_The graph of {} tasks is left out to fit the budget: `task-list --format mermaid` draws it._\n",
        tasks.len()
    );
    write_report(
        out,
        tasks,
        stalled,
        history,
        max_chars.saturating_sub(note.chars().count()).max(1),
        everything,
    )?;
    Ok(out.write_all(note.as_bytes())?)
}

fn write_report(
    out: &mut dyn Write,
    tasks: &[Task],
    stalled: &Stalled,
    history: &History,
    max_chars: usize,
    everything: &str,
) -> Result<()> {
    use Detail::*;
    let shape = |done, open, failed| Shape {
        done,
        open,
        failed,
        max_failed: usize::MAX,
    };
    let shapes = [
        shape(Full, Full, Full),
        shape(Line, Full, Full),
        shape(Folded, Full, Full),
        shape(Folded, Folded, Full),
        shape(Folded, Folded, Tail),
        shape(Folded, Folded, Line),
    ];
    let fits = |text: &str| max_chars == 0 || text.chars().count() <= max_chars;
    let mut text = String::new();
    for (n, shape) in shapes.iter().enumerate() {
        text = render(tasks, stalled, history, *shape, n > 0, everything);
        if fits(&text) {
            return Ok(out.write_all(text.as_bytes())?);
        }
    }
    // Still too long: list as many failures as fit (at least one), then say how many more.
    let failed = tasks.iter().filter(|t| is_failure(t)).count();
    let (mut lo, mut hi) = (1, failed.max(1));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let shape = Shape {
            max_failed: mid,
            ..shapes[shapes.len() - 1]
        };
        if fits(&render(tasks, stalled, history, shape, true, everything)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if failed > 0 {
        let shape = Shape {
            max_failed: lo,
            ..shapes[shapes.len() - 1]
        };
        text = render(tasks, stalled, history, shape, true, everything);
    }
    Ok(out.write_all(text.as_bytes())?)
}

fn is_failure(t: &Task) -> bool {
    matches!(t.status, Status::Failed | Status::Cancelled)
}

fn render(
    tasks: &[Task],
    stalled: &Stalled,
    history: &History,
    shape: Shape,
    short: bool,
    everything: &str,
) -> String {
    let mut s = heading(tasks, stalled);
    if !short {
        for t in tasks {
            entry(&mut s, t, stalled, history, Detail::Full);
        }
        return s;
    }
    // Shortened: failures first, then open tasks, then completed ones.
    let failed: Vec<&Task> = tasks.iter().filter(|t| is_failure(t)).collect();
    for t in failed.iter().take(shape.max_failed) {
        entry(&mut s, t, stalled, history, shape.failed);
    }
    if failed.len() > shape.max_failed {
        let more = failed.len() - shape.max_failed;
        let _ = writeln!(
            s,
            "- ✗ … and {more} more failed or cancelled tasks not listed"
        );
    }
    let open: Vec<&Task> = tasks.iter().filter(|t| !t.status.is_terminal()).collect();
    fold(
        &mut s,
        &open,
        stalled,
        history,
        shape.open,
        "…",
        "not listed",
    );
    let done: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status == Status::Completed)
        .collect();
    fold(
        &mut s,
        &done,
        stalled,
        history,
        shape.done,
        "✓",
        "completed, not listed",
    );
    let _ = writeln!(s, "\n_Shortened to fit the budget: {everything}._");
    s
}

/// The entries of `tasks`, or one line counting them when folded.
fn fold(
    s: &mut String,
    tasks: &[&Task],
    stalled: &Stalled,
    history: &History,
    detail: Detail,
    mark: &str,
    what: &str,
) {
    if detail != Detail::Folded {
        for t in tasks {
            entry(s, t, stalled, history, detail);
        }
        return;
    }
    if tasks.is_empty() {
        return;
    }
    let (c, of_them) = counts(tasks.iter().copied(), stalled);
    let (first, last) = (tasks[0].id, tasks[tasks.len() - 1].id);
    let range = if first == last {
        format!("{first}")
    } else {
        format!("{first}…{last}")
    };
    let phrase = if what.starts_with("completed") {
        format!("{} tasks {what}", tasks.len())
    } else {
        format!("{}{of_them} {what}", counts_phrase(&c))
    };
    let _ = writeln!(s, "- {mark} {phrase} ({range})");
}

/// Per-status counts of `tasks`, and " (N of them stalled)" when some are.
fn counts<'a>(tasks: impl Iterator<Item = &'a Task>, stalled: &Stalled) -> (Counts, String) {
    let mut c = Counts::default();
    let mut n_stalled = 0;
    for t in tasks {
        c.add(t.status, 1);
        n_stalled += stalled.contains_key(&t.id) as usize;
    }
    let of_them = match n_stalled {
        0 => String::new(),
        n => format!(" ({n} of them stalled)"),
    };
    (c, of_them)
}

fn heading(tasks: &[Task], stalled: &Stalled) -> String {
    let (c, of_them) = counts(tasks.iter(), stalled);
    let noun = if tasks.len() == 1 { "task" } else { "tasks" };
    let cost = crate::output::tasks_cost(tasks)
        .map(|c| format!(" · {}", crate::output::dollars(c)))
        .unwrap_or_default();
    format!(
        "## {} {noun}: {}{of_them}{cost}\n\n",
        tasks.len(),
        counts_phrase(&c)
    )
}

/// One task: `- ✓ #3 Subject (owner, 1.2s)` and, in full, its first result lines.
fn entry(s: &mut String, t: &Task, stalled: &Stalled, history: &History, detail: Detail) {
    let stalled_by = stalled.get(&t.id);
    let mark = match t.status {
        Status::Completed => "✓",
        Status::Failed | Status::Cancelled => "✗",
        _ if stalled_by.is_some() => "⊘",
        _ => "…",
    };
    let mut details: Vec<String> = Vec::new();
    if let Some(o) = &t.owner {
        details.push(one_line(o));
    }
    if let Some(d) = duration_text(t) {
        details.push(d);
    }
    match stalled_by {
        Some((root, status)) => details.push(format!("stalled: {root} {status}")),
        None if t.status != Status::Completed => details.push(t.status.to_string()),
        None => {}
    }
    if let (Status::Failed, Some(code)) = (t.status, t.exit_code) {
        details.push(format!("exit {code}"));
    }
    if t.max_attempts > 1 && (t.status == Status::Failed || t.attempts > 1) {
        details.push(format!("attempt {} of {}", t.attempts, t.max_attempts));
    }
    let details = if details.is_empty() {
        String::new()
    } else {
        format!(" ({})", details.join(", "))
    };
    let _ = writeln!(s, "- {mark} {} {}{details}", t.id, one_line(&t.subject));
    let lines = match detail {
        Detail::Full => LINES,
        Detail::Tail => 1,
        _ => return,
    };
    let body: Vec<&str> = match t.status {
        Status::Failed => {
            let log: Vec<&str> = t
                .log
                .as_deref()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            log[log.len().saturating_sub(lines)..].to_vec()
        }
        _ => t
            .result
            .as_deref()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(lines)
            .collect(),
    };
    for line in body {
        let _ = writeln!(s, "  > {line}");
    }
    if detail == Detail::Full {
        // How it got here: its last events (when, what, who).
        for e in history.get(&t.id).into_iter().flatten() {
            let at = crate::time::rfc3339(e.at);
            let _ = writeln!(s, "  - {} {}", &at[11..19], event_phrase(e));
        }
    }
}

fn duration_text(t: &Task) -> Option<String> {
    Some(crate::time::short_duration(t.finished_at? - t.started_at?))
}
