//! What the page draws, worked out from the store's task events: every attempt of every
//! task as a bar from its claim to its end, the lanes (one a worker), and the run's
//! longest chain.

use crate::model::{Event, Task, TaskId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One attempt: from its claim to what ended it.
#[derive(Debug, Clone)]
pub struct Bar {
    pub task: TaskId,
    pub attempt: i64,
    pub worker: String,
    pub host: Option<String>,
    /// Milliseconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// completed, failed, cancelled, retried (failed, and tried again), released (handed
    /// back), lost (its worker died or its lease ran out: taken over), running.
    pub outcome: &'static str,
    pub exit_code: Option<i64>,
}

fn outcome_of(status: Option<&str>) -> &'static str {
    match status {
        Some("completed") => "completed",
        Some("failed") => "failed",
        Some("cancelled") => "cancelled",
        Some("pending") => "released",
        _ => "completed",
    }
}

/// The attempts the events tell of (events in the order they happened), ended at `now`
/// when still running.
pub fn bars(events: &[Event], now: i64) -> Vec<Bar> {
    let mut open: HashMap<TaskId, Bar> = HashMap::new();
    let mut done = Vec::new();
    let mut close = |open: &mut HashMap<TaskId, Bar>, e: &Event, outcome: &'static str| {
        if let Some(mut b) = open.remove(&e.task) {
            b.end = e.at.max(b.start);
            b.outcome = outcome;
            if let Some(c) = e.detail.get("exitCode").and_then(|c| c.as_i64()) {
                b.exit_code = Some(c);
            }
            done.push(b);
        }
    };
    for e in events {
        let status = e.detail.get("status").and_then(|s| s.as_str());
        match e.kind.as_str() {
            "claimed" => {
                // A claim while one is open: the earlier one was lost unseen.
                close(&mut open, e, "lost");
                open.insert(
                    e.task,
                    Bar {
                        task: e.task,
                        attempt: e
                            .detail
                            .get("attempt")
                            .and_then(|a| a.as_i64())
                            .unwrap_or(1),
                        worker: e.by.clone().unwrap_or_else(|| "?".into()),
                        host: e
                            .detail
                            .get("host")
                            .and_then(|h| h.as_str())
                            .map(str::to_string),
                        start: e.at,
                        end: e.at,
                        outcome: "running",
                        exit_code: None,
                    },
                );
            }
            "finished" => close(&mut open, e, outcome_of(status)),
            "retried" => close(&mut open, e, "retried"),
            "released" => close(&mut open, e, "released"),
            "taken_over" => close(&mut open, e, "lost"),
            // Changed from outside while running (cancelled, completed by hand, reopened).
            "edited" if status.is_some_and(|s| s != "in_progress") => {
                close(&mut open, e, outcome_of(status))
            }
            _ => {}
        }
    }
    for (_, mut b) in open {
        b.end = now.max(b.start);
        done.push(b);
    }
    done.sort_by_key(|b| (b.start, b.task));
    done
}

/// The workers' lanes, in the order each first claimed: (worker, its bars).
pub fn lanes(bars: &[Bar]) -> Vec<(String, Vec<&Bar>)> {
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<&str, Vec<&Bar>> = HashMap::new();
    for b in bars {
        if !by.contains_key(b.worker.as_str()) {
            order.push(b.worker.clone());
        }
        by.entry(&b.worker).or_default().push(b);
    }
    order
        .into_iter()
        .map(|w| {
            let v = by.remove(w.as_str()).unwrap_or_default();
            (w, v)
        })
        .collect()
}

/// The blockers of each task among `tasks`, and the tasks blockers first (Kahn's order:
/// the graph has no cycles).
fn order(tasks: &[Task]) -> (HashMap<TaskId, Vec<TaskId>>, Vec<TaskId>) {
    let here: HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
    let blockers: HashMap<TaskId, Vec<TaskId>> = tasks
        .iter()
        .map(|t| {
            (
                t.id,
                t.blocked_by
                    .iter()
                    .copied()
                    .filter(|b| here.contains(b))
                    .collect(),
            )
        })
        .collect();
    let mut waiting: HashMap<TaskId, usize> = blockers.iter().map(|(t, b)| (*t, b.len())).collect();
    let mut blocks: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    for (t, bs) in &blockers {
        for b in bs {
            blocks.entry(*b).or_default().push(*t);
        }
    }
    let mut ready: Vec<TaskId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(t, _)| *t)
        .collect();
    ready.sort_by(|a, b| b.cmp(a));
    let mut sorted = Vec::with_capacity(tasks.len());
    while let Some(t) = ready.pop() {
        sorted.push(t);
        for n in blocks.get(&t).into_iter().flatten() {
            let w = waiting.get_mut(n).expect("a task of the page");
            *w -= 1;
            if *w == 0 {
                ready.push(*n);
            }
        }
    }
    (blockers, sorted)
}

/// The time each task's attempts took, together (ms).
pub fn spent(bars: &[Bar]) -> HashMap<TaskId, i64> {
    let mut spent: HashMap<TaskId, i64> = HashMap::new();
    for b in bars {
        *spent.entry(b.task).or_default() += b.end - b.start;
    }
    spent
}

/// The run's longest chain: the tasks, blockers first, whose attempts' time adds up to
/// the most (`spent`) along one path of dependencies among `tasks`. Empty when nothing
/// ran.
pub fn critical(tasks: &[Task], spent: &HashMap<TaskId, i64>) -> Vec<TaskId> {
    if spent.is_empty() {
        return Vec::new();
    }
    let (blockers, sorted) = order(tasks);
    let mut best: BTreeMap<TaskId, (i64, Option<TaskId>)> = BTreeMap::new();
    for t in sorted {
        let (via, before) = blockers[&t]
            .iter()
            .map(|b| (best.get(b).map_or(0, |x| x.0), Some(*b)))
            .max()
            .unwrap_or((0, None));
        best.insert(t, (via + spent.get(&t).copied().unwrap_or(0), before));
    }
    let Some((&last, _)) = best
        .iter()
        .max_by_key(|(id, (len, _))| (*len, std::cmp::Reverse(**id)))
    else {
        return Vec::new();
    };
    let mut chain = vec![last];
    let mut at = last;
    while let Some((_, Some(b))) = best.get(&at) {
        chain.push(*b);
        at = *b;
    }
    chain.reverse();
    chain
}

/// The run's waves: 1 for a task without a blocker among `tasks`, else one more than its
/// latest blocker's; each wave in id order.
pub fn waves(tasks: &[Task]) -> Vec<Vec<&Task>> {
    let by_id: HashMap<TaskId, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    let (blockers, sorted) = order(tasks);
    let mut wave: HashMap<TaskId, usize> = HashMap::new();
    let mut out: Vec<Vec<&Task>> = Vec::new();
    for t in sorted {
        let w = 1 + blockers[&t].iter().map(|b| wave[b]).max().unwrap_or(0);
        wave.insert(t, w);
        if out.len() < w {
            out.resize(w, Vec::new());
        }
        out[w - 1].push(by_id[&t]);
    }
    for w in &mut out {
        w.sort_by_key(|t| t.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(task: i64, at: i64, kind: &str, by: &str, detail: serde_json::Value) -> Event {
        Event {
            task: TaskId(task),
            at,
            kind: kind.into(),
            by: Some(by.into()),
            detail: detail.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Every way an attempt ends is its own bar: a retry, a takeover after a lost worker,
    /// a release, a cancel from outside, and one still running.
    #[test]
    fn attempts_from_events() {
        let events = [
            ev(1, 0, "created", "me", json!({})),
            ev(1, 10, "claimed", "w1", json!({"attempt": 1, "host": "a"})),
            ev(1, 20, "retried", "w1", json!({"attempt": 1, "exitCode": 1})),
            ev(1, 25, "claimed", "w2", json!({"attempt": 2, "host": "b"})),
            ev(
                1,
                40,
                "taken_over",
                "w3",
                json!({"attempt": 2, "status": "pending"}),
            ),
            ev(1, 45, "claimed", "w3", json!({"attempt": 3})),
            ev(
                1,
                60,
                "finished",
                "w3",
                json!({"attempt": 3, "status": "completed", "exitCode": 0}),
            ),
            ev(2, 12, "claimed", "w2", json!({"attempt": 1})),
            ev(2, 18, "released", "w2", json!({"from": "w2"})),
            ev(2, 30, "claimed", "w1", json!({"attempt": 1})),
            ev(
                2,
                35,
                "edited",
                "me",
                json!({"fields": ["status"], "status": "cancelled"}),
            ),
            ev(3, 50, "claimed", "w1", json!({"attempt": 1})),
        ];
        let b = bars(&events, 70);
        let seen: Vec<(i64, i64, &str, &str, i64, i64)> = b
            .iter()
            .map(|b| {
                (
                    b.task.0,
                    b.attempt,
                    b.worker.as_str(),
                    b.outcome,
                    b.start,
                    b.end,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, 1, "w1", "retried", 10, 20),
                (2, 1, "w2", "released", 12, 18),
                (1, 2, "w2", "lost", 25, 40),
                (2, 1, "w1", "cancelled", 30, 35),
                (1, 3, "w3", "completed", 45, 60),
                (3, 1, "w1", "running", 50, 70),
            ]
        );
        assert_eq!(b[0].exit_code, Some(1));
        let lanes: Vec<String> = lanes(&b).into_iter().map(|(w, _)| w).collect();
        assert_eq!(lanes, ["w1", "w2", "w3"]);
    }
}
