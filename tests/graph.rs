//! Pictures of the plan: `task-list --format dot` (checked by Graphviz's `dot` when it is
//! installed), `--format mermaid` (checked against the grammar we emit), and the md
//! report's `--graph`.

mod util;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use util::{assert_failure, Store};

/// Build → (Test, Lint) → Ship, with awkward subjects and every status but cancelled.
fn plan(s: &Store) {
    s.create("Build \"fast\" \\ <b>now</b>", &["--key", "build"]);
    s.create("Test #1", &["--key", "test", "-b", "build"]);
    s.create("Lint\nall", &["--key", "lint", "-b", "build"]);
    s.create("Ship", &["-b", "test,lint"]);
    s.ok("task-update", ["1", "-s", "completed"]);
    s.ok("task-update", ["2", "-s", "failed"]);
    s.ok("task-update", ["3", "-s", "in_progress"]);
}

#[test]
fn dot_draws_every_task_and_edge_and_graphviz_accepts_it() {
    let s = Store::new();
    plan(&s);
    let dot = s.ok("task-list", ["--format", "dot"]);
    assert!(
        dot.starts_with("digraph tasks {\n") && dot.ends_with("}\n"),
        "{dot}"
    );
    let nodes: Vec<&str> = dot.lines().filter(|l| l.contains("[label=")).collect();
    assert_eq!(nodes.len(), 4, "{dot}");
    assert!(
        nodes[0].contains(r##"label="#1 Build \"fast\" \\ <b>now</b>""##),
        "{}",
        nodes[0]
    );
    assert!(
        nodes[0].contains("fillcolor=\"#c8e6c9\""),
        "completed is green"
    );
    assert!(nodes[1].contains("fillcolor=\"#ffcdd2\""), "failed is red");
    assert!(
        nodes[2].contains("label=\"#3 Lint all\""),
        "one line: {}",
        nodes[2]
    );
    let edges: BTreeSet<&str> = dot
        .lines()
        .filter(|l| l.contains("->"))
        .map(str::trim)
        .collect();
    let want: BTreeSet<&str> = [
        "\"1\" -> \"2\";",
        "\"1\" -> \"3\";",
        "\"2\" -> \"4\";",
        "\"3\" -> \"4\";",
    ]
    .into();
    assert_eq!(edges, want);

    // Filters choose the nodes; edges to tasks left out go too.
    let open = s.ok("task-list", ["-s", "open", "--format", "dot"]);
    assert_eq!(
        open.lines().filter(|l| l.contains("[label=")).count(),
        2,
        "{open}"
    );
    let edges: Vec<&str> = open
        .lines()
        .filter(|l| l.contains("->"))
        .map(str::trim)
        .collect();
    assert_eq!(edges, ["\"3\" -> \"4\";"]);

    match Command::new("dot").arg("-V").output() {
        Err(_) => eprintln!("skipped: no `dot` program (install graphviz) to render the output"),
        Ok(_) => {
            let mut c = Command::new("dot")
                .arg("-Tsvg")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && err.is_empty(),
                "dot refused it: {err}"
            );
            let svg = String::from_utf8_lossy(&out.stdout);
            assert!(
                svg.contains("#4 Ship") && svg.contains("&lt;b&gt;now"),
                "{svg}"
            );
        }
    }
}

/// A node (`t3`, label, class) and an edge (`t1`, `t3`) of a parsed flowchart.
type Node = (String, String, String);
type Edge = (String, String);

/// Check a flowchart by the grammar we emit: a header, node lines, edge lines between
/// declared nodes, a class definition for every class used. Returns nodes and edges.
fn parse_mermaid(text: &str) -> (Vec<Node>, Vec<Edge>) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("flowchart TD"), "{text}");
    let (mut nodes, mut edges, mut classes) = (Vec::new(), Vec::new(), BTreeSet::new());
    for l in lines {
        let l = l
            .strip_prefix("  ")
            .unwrap_or_else(|| panic!("not indented: {l:?}"));
        if let Some(rest) = l.strip_prefix("classDef ") {
            let (name, style) = rest.split_once(' ').unwrap();
            assert!(style.starts_with("fill:#"), "{l}");
            classes.insert(name.to_string());
        } else if let Some((a, b)) = l.split_once(" --> ") {
            edges.push((a.to_string(), b.to_string()));
        } else {
            let (id, rest) = l
                .split_once("[\"")
                .unwrap_or_else(|| panic!("bad node: {l:?}"));
            let (label, class) = rest
                .split_once("\"]:::")
                .unwrap_or_else(|| panic!("bad node: {l:?}"));
            assert!(
                id.starts_with('t') && id[1..].chars().all(|c| c.is_ascii_digit()),
                "{l}"
            );
            // Nothing in a label may end it or read as markup.
            assert!(!label.contains(['"', '<', '>', '\n']), "{label}");
            assert!(
                class.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{l}"
            );
            nodes.push((id.to_string(), label.to_string(), class.to_string()));
        }
    }
    let ids: BTreeSet<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
    for (a, b) in &edges {
        assert!(
            ids.contains(a.as_str()) && ids.contains(b.as_str()),
            "edge {a} --> {b} to an undeclared node"
        );
    }
    for n in &nodes {
        assert!(classes.contains(&n.2), "class {} has no classDef", n.2);
    }
    (nodes, edges)
}

#[test]
fn mermaid_is_a_flowchart_with_statuses_as_classes() {
    let s = Store::new();
    plan(&s);
    let (nodes, edges) = parse_mermaid(&s.ok("task-list", ["--format", "mermaid"]));
    assert_eq!(
        nodes,
        [
            (
                "t1".into(),
                "#35;1 Build #quot;fast#quot; \\ #lt;b#gt;now#lt;/b#gt;".into(),
                "completed".into()
            ),
            ("t2".into(), "#35;2 Test #35;1".into(), "failed".into()),
            ("t3".into(), "#35;3 Lint all".into(), "in_progress".into()),
            ("t4".into(), "#35;4 Ship".into(), "pending".into()),
        ]
    );
    let want: Vec<(String, String)> = [("t1", "t2"), ("t1", "t3"), ("t2", "t4"), ("t3", "t4")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(edges, want);
    let (nodes, edges) = parse_mermaid(&s.ok("task-list", ["2", "4", "--format", "mermaid"]));
    assert_eq!(nodes.len(), 2);
    assert_eq!(edges, [("t2".to_string(), "t4".to_string())]);
}

#[test]
fn the_md_report_adds_the_picture_with_graph() {
    let s = Store::new();
    plan(&s);
    let md = s.ok("task-list", ["--format", "md", "--graph"]);
    let (report, picture) = md.split_once("\n```mermaid\n").expect("a mermaid block");
    assert!(report.starts_with("## 4 tasks:"), "{md}");
    let picture = picture.strip_suffix("```\n").expect("the block is closed");
    assert_eq!(parse_mermaid(picture).0.len(), 4);
    let waited = s.ok("task-wait", ["1", "--format", "md", "--graph"]);
    assert!(
        waited.contains("```mermaid\nflowchart TD\n  t1["),
        "{waited}"
    );
    // A budget too small for the picture keeps the report and says how to draw it.
    let small = s.ok(
        "task-list",
        ["--format", "md", "--graph", "--max-chars", "400"],
    );
    assert!(!small.contains("```mermaid"), "{small}");
    assert!(
        small.contains("`task-list --format mermaid` draws it"),
        "{small}"
    );
    assert!(small.chars().count() <= 400, "{}", small.chars().count());

    let r = s.exec("task-list", ["--graph"]);
    assert_failure(&r, "task-list", 2, &["--graph goes with --format md"]);
    let r = s.exec("task-wait", ["1", "--graph"]);
    assert_failure(&r, "task-wait", 2, &["--graph goes with --format md"]);
    let r = s.exec("task-list", ["--count", "--format", "dot"]);
    assert_failure(
        &r,
        "task-list",
        2,
        &["--format dot, mermaid and html draw tasks"],
    );
}
