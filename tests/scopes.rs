//! Write scopes: two tasks whose scopes overlap (equal, or one a folder of the other) are
//! never in progress at once, whoever claims them; how scopes are given, normalised,
//! shown and changed.

mod util;

use std::collections::HashMap;
use util::{assert_failure, Store};

/// The four overlapping scopes of the concurrency test, and which pairs conflict.
const SCOPES: [&str; 4] = ["src", "src/auth", "src/auth/login.rs", "docs"];

fn conflict(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

#[test]
fn overlapping_scopes_never_run_at_once() {
    let s = Store::new();
    let mut scope_of = HashMap::new();
    for n in 0..12 {
        let scope = SCOPES[n % 4];
        let id = s.create(&format!("t{n}"), &["--scope", scope]);
        scope_of.insert(id, scope);
    }
    // Each run writes when it starts and ends (ns), from worker-spawn and from two shell
    // loops claiming at the same time.
    let job = r#"echo "$TASK_ID start $(date +%s%N)" >> runs; sleep 0.05; echo "$TASK_ID end $(date +%s%N)" >> runs"#;
    let script = format!(
        r#"
        worker-spawn -j 8 -- sh -c '{job}' &
        for w in sh1 sh2; do
          ( while out=$(task-update --claim --owner $w --format env); do
              eval "$out"
              {job}
              task-update "$TASK_ID" --status completed --owner $w || exit 1
            done ) &
        done
        wait
        "#
    );
    let r = s.bash(&script);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert_eq!(
        s.ids(&["-s", "completed"]).len(),
        12,
        "{}",
        s.ok("task-list", ["--format", "json"])
    );
    let runs = std::fs::read_to_string(s.dir().join("runs")).unwrap();
    let mut span: HashMap<String, (u128, u128)> = HashMap::new();
    for line in runs.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let t: u128 = f[2].parse().unwrap();
        let e = span.entry(f[0].to_string()).or_insert((0, 0));
        match f[1] {
            "start" => e.0 = t,
            _ => e.1 = t,
        }
    }
    assert_eq!(span.len(), 12, "{runs}");
    for (a, (a0, a1)) in &span {
        for (b, (b0, b1)) in &span {
            if a < b && conflict(scope_of[a], scope_of[b]) {
                assert!(
                    a1 <= b0 || b1 <= a0,
                    "#{a} ({}) and #{b} ({}) ran at once\n{runs}",
                    scope_of[a],
                    scope_of[b]
                );
            }
        }
    }
}

#[test]
fn a_conflicting_task_waits_and_others_go_ahead() {
    let s = Store::new();
    let a = s.create("auth", &["--scope", "src/auth"]);
    let b = s.create("login", &["--scope", "src/auth/login.rs", "-p", "5"]);
    let c = s.create("near miss", &["--scope", "src/authz.rs"]);
    let d = s.create("unscoped", &[]);
    // The highest priority first; then `auth` is skipped (src/auth holds login.rs).
    assert_eq!(
        s.ok(
            "task-update",
            ["--claim", "--owner", "w1", "--format", "ids"]
        )
        .trim(),
        b
    );
    assert_eq!(
        s.ok(
            "task-update",
            ["--claim", "--owner", "w2", "--format", "ids"]
        )
        .trim(),
        c
    );
    assert_eq!(
        s.ok(
            "task-update",
            ["--claim", "--owner", "w3", "--format", "ids"]
        )
        .trim(),
        d
    );
    s.exec("task-update", ["--claim", "--owner", "w4"])
        .expect_code(1);
    let r = s.exec("task-update", [a.as_str(), "--claim", "--owner", "w4"]);
    assert_failure(&r, "task-update", 4, &["scopes"]);
    // Done with login.rs: auth may run.
    s.ok(
        "task-update",
        [b.as_str(), "--status", "completed", "--owner", "w1"],
    );
    assert_eq!(
        s.ok(
            "task-update",
            ["--claim", "--owner", "w4", "--format", "ids"]
        )
        .trim(),
        a
    );
}

#[test]
fn scopes_are_normalised_shown_and_changed() {
    let s = Store::new();
    let id = s.create("x", &["--scope", "./src//lib/", "--scope", "docs/"]);
    assert_eq!(
        s.json(&id)["scopes"],
        serde_json::json!(["docs", "src/lib"])
    );
    let text = s.ok("task-list", ["--limit", "10"]);
    assert!(text.contains("[scopes: docs, src/lib]"), "{text}");
    s.ok(
        "task-update",
        [
            id.as_str(),
            "--scope",
            "README.md",
            "--remove-scope",
            "docs",
        ],
    );
    assert_eq!(
        s.json(&id)["scopes"],
        serde_json::json!(["README.md", "src/lib"])
    );
    let csv = s.ok("task-list", ["--format", "csv", "--fields", "id,scopes"]);
    assert_eq!(csv, format!("id,scopes\n{id},README.md;src/lib\n"));
    // Batches: a JSON field and a CSV column.
    let ids = s.create_batch(
        "b.jsonl",
        "{\"subject\":\"j\",\"scopes\":[\"a/b/\",\"c\"]}\n",
        &[],
    );
    assert_eq!(s.json(&ids[0])["scopes"], serde_json::json!(["a/b", "c"]));
    let ids = s.create_batch("b.csv", "subject,scopes\nk,\"x; y/z\"\n", &[]);
    assert_eq!(s.json(&ids[0])["scopes"], serde_json::json!(["x", "y/z"]));
}

#[test]
fn a_scope_outside_the_repository_is_refused() {
    let s = Store::new();
    let id = s.create("x", &[]);
    let before = s.snapshot();
    for bad in ["../up", "src/../../x", "/etc/passwd"] {
        let r = s.exec("task-create", ["y", "--scope", bad]);
        assert_failure(&r, "task-create", 2, &["scope", bad]);
        let r = s.exec("task-update", [id.as_str(), "--scope", bad]);
        assert_failure(&r, "task-update", 2, &["scope", bad]);
    }
    let r = s.exec_stdin(
        "task-create",
        ["--from", "-"],
        "{\"subject\":\"a\"}\n{\"subject\":\"b\",\"scopes\":[\"..\"]}\n",
    );
    assert_failure(&r, "task-create", 2, &["line 2", "scope"]);
    assert_eq!(s.snapshot(), before);
}
