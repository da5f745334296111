//! Pictures of the dependency graph: Graphviz `dot` and Mermaid `flowchart` (which
//! GitHub and most chat interfaces draw). One node a task (id and subject, coloured by
//! status), one edge blocker → blocked; an edge to a task outside the selection is left
//! out, so filters choose what is drawn.

use crate::model::{Status, Task, TaskId};
use crate::output::one_line;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Fill colours by status, shared by both formats (light, so black text stays legible).
fn colour(s: Status) -> &'static str {
    match s {
        Status::Pending => "#eeeeee",
        Status::InProgress => "#bbdefb",
        Status::Completed => "#c8e6c9",
        Status::Failed => "#ffcdd2",
        Status::Cancelled => "#e0e0e0",
    }
}

/// The edges among `tasks`: (blocker, blocked), each once, in order.
fn edges(tasks: &[Task]) -> Vec<(TaskId, TaskId)> {
    let shown: BTreeSet<TaskId> = tasks.iter().map(|t| t.id).collect();
    let mut out = BTreeSet::new();
    for t in tasks {
        for &b in &t.blocked_by {
            if shown.contains(&b) {
                out.insert((b, t.id));
            }
        }
    }
    out.into_iter().collect()
}

/// A Graphviz digraph.
pub fn dot(tasks: &[Task]) -> String {
    let quote = |s: &str| one_line(s).replace('\\', "\\\\").replace('"', "\\\"");
    let mut s = String::from(
        "digraph tasks {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
    );
    for t in tasks {
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{} {}\", fillcolor=\"{}\", tooltip=\"{}\"];",
            t.id.0,
            t.id,
            quote(&t.subject),
            colour(t.status),
            t.status
        );
    }
    for (a, b) in edges(tasks) {
        let _ = writeln!(s, "  \"{}\" -> \"{}\";", a.0, b.0);
    }
    s.push_str("}\n");
    s
}

/// A Mermaid flowchart, statuses as classes.
pub fn mermaid(tasks: &[Task]) -> String {
    // Inside a quoted label Mermaid reads `#name;` as a character: escape what would end
    // the label or be taken for markup.
    let quote = |s: &str| {
        one_line(s)
            .replace('#', "#35;")
            .replace('"', "#quot;")
            .replace('<', "#lt;")
            .replace('>', "#gt;")
    };
    let mut s = String::from("flowchart TD\n");
    for t in tasks {
        let _ = writeln!(
            s,
            "  t{}[\"#35;{} {}\"]:::{}",
            t.id.0,
            t.id.0,
            quote(&t.subject),
            t.status
        );
    }
    for (a, b) in edges(tasks) {
        let _ = writeln!(s, "  t{} --> t{}", a.0, b.0);
    }
    let used: BTreeSet<Status> = tasks.iter().map(|t| t.status).collect();
    for st in used {
        let _ = writeln!(s, "  classDef {st} fill:{},stroke:#555", colour(st));
    }
    s
}
