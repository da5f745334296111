//! Many processes on one store at once: claims never collide, ids never collide.

mod util;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use util::{Run, Store};

/// Spawn one `sh -c SCRIPT` per entry of `envs` (all at once), wait for all of them.
fn run_all(s: &Store, script: &str, envs: Vec<Vec<(String, String)>>) -> Vec<Run> {
    let children: Vec<_> = envs
        .into_iter()
        .map(|env| {
            let mut c = s.sh_cmd(script);
            c.envs(env).stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().expect("spawn sh")
        })
        .collect();
    children
        .into_iter()
        .map(|c| Run::from_output(&c.wait_with_output().expect("wait for sh")))
        .collect()
}

#[test]
fn ten_workers_claim_every_task_exactly_once() {
    const TASKS: usize = 300;
    const WORKERS: usize = 10;
    let s = Store::new();
    let batch: String = (1..=TASKS)
        .map(|i| format!("{{\"subject\":\"task {i}\"}}\n"))
        .collect();
    assert_eq!(s.create_batch("tasks.jsonl", &batch, &[]).len(), TASKS);

    // A worker as the README shows it; the exit code of the last claim ends the loop.
    let worker = r#"
        while :; do
            id=$(task-update --claim --owner "w$W")
            rc=$?
            [ "$rc" -eq 0 ] || exit "$rc"
            echo "$id"
            task-update "$id" -s completed --owner "w$W" || exit 9
        done
    "#;
    let runs = run_all(
        &s,
        worker,
        (0..WORKERS)
            .map(|w| vec![("W".to_string(), w.to_string())])
            .collect(),
    );

    let mut claimed_by: BTreeMap<u32, usize> = BTreeMap::new();
    for (w, r) in runs.iter().enumerate() {
        assert_eq!(
            r.code, 1,
            "worker {w} should end with the 1 of 'nothing to claim'\n--- stderr\n{}",
            r.stderr
        );
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "worker {w} reported errors: {}",
            r.stderr
        );
        assert!(
            r.stderr.starts_with("task-update: no ready task"),
            "{}",
            r.stderr
        );
        for line in r.stdout.lines() {
            let id: u32 = line
                .parse()
                .unwrap_or_else(|_| panic!("worker {w} printed {line:?}"));
            if let Some(other) = claimed_by.insert(id, w) {
                panic!("task {id} was claimed by worker {other} and worker {w}");
            }
        }
    }
    let all: BTreeSet<u32> = (1..=TASKS as u32).collect();
    let got: BTreeSet<u32> = claimed_by.keys().copied().collect();
    assert_eq!(got, all, "every task is claimed");

    assert_eq!(
        s.ok("task-list", ["--count"]),
        format!("pending 0\nin_progress 0\ncompleted {TASKS}\nfailed 0\ncancelled 0\n")
    );
    for t in s.tasks(&[]) {
        let id: u32 = t["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(t["attempts"], 1, "task {id} was claimed more than once");
        assert_eq!(
            t["owner"],
            Value::String(format!("w{}", claimed_by[&id])),
            "task {id} is owned by a worker that did not print it"
        );
    }
}

#[test]
fn concurrent_creators_get_distinct_ids() {
    const CREATORS: usize = 8;
    const EACH: usize = 50;
    let s = Store::new();
    let creator = r#"
        i=0
        while [ "$i" -lt "$N" ]; do
            task-create "creator $C task $i" -m "creator=$C" || exit 9
            i=$((i + 1))
        done
    "#;
    let runs = run_all(
        &s,
        creator,
        (0..CREATORS)
            .map(|c| {
                vec![
                    ("C".to_string(), c.to_string()),
                    ("N".to_string(), EACH.to_string()),
                ]
            })
            .collect(),
    );
    let mut ids = BTreeSet::new();
    for (c, r) in runs.into_iter().enumerate() {
        let out = r.success();
        let mine: Vec<u32> = out.lines().map(|l| l.parse().expect("an id")).collect();
        assert_eq!(mine.len(), EACH, "creator {c}");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "creator {c} got ids out of order: {mine:?}"
        );
        for id in mine {
            assert!(ids.insert(id), "id {id} was given twice");
        }
    }
    let want: BTreeSet<u32> = (1..=(CREATORS * EACH) as u32).collect();
    assert_eq!(ids, want);
    assert_eq!(
        s.ok("task-list", ["--count", "--format", "json"]).trim(),
        format!(
            "{{\"pending\":{n},\"in_progress\":0,\"completed\":0,\"failed\":0,\"cancelled\":0,\"total\":{n}}}",
            n = CREATORS * EACH
        )
    );
    for c in 0..CREATORS {
        assert_eq!(
            s.ids(&["-m", &format!("creator={c}")]).len(),
            EACH,
            "creator {c}"
        );
    }
}
