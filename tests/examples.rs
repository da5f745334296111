//! The scripts in examples/ run as the README says, so they never rot.

mod util;

use util::Store;

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn demo_plans_runs_waits_and_reports() {
    let s = Store::new();
    let out = s.bash(&example("demo.sh")).expect_code(0).stdout;
    assert!(out.contains("#3 [pending] Build [blocked by #1, #2]"), "{out}");
    assert!(out.contains("wave 3: #4"), "{out}");
    assert!(out.contains("## 4 tasks: 4 completed"), "{out}");
    assert!(out.contains("✓ #4 Release notes"), "{out}");
    // The demo makes its own list in the store it was given; every task completed.
    let lists = s.ok("task-list", ["--lists", "--format", "json"]);
    let lists: serde_json::Value = serde_json::from_str(&lists).unwrap();
    assert_eq!(lists[0]["completed"], 4, "{lists}");
    assert!(lists[0]["list"].as_str().unwrap().starts_with("demo-"), "{lists}");
}
