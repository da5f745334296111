//! `worker-spawn --worktree`: each task in a git worktree of its own on branch
//! `tasks/<list>/<id>`, its blockers' branches merged in, what it leaves committed, the
//! worktree removed on success and kept for inspection on failure; the main work tree
//! never touched. Needs the `git` program (on every machine the tests run on).

mod procs;
mod util;

use procs::Bg;
use std::path::{Path, PathBuf};
use std::process::Command;
use util::{assert_failure, Run, Store};

/// `git -C DIR ARGS…` with no user or system configuration (so that a machine without
/// a git identity behaves like this one); its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A repository with one commit (README) in the store's folder.
fn repo(s: &Store) -> PathBuf {
    let r = s.dir().join("repo");
    std::fs::create_dir(&r).unwrap();
    git(&r, &["init", "-q", "-b", "main"]);
    std::fs::write(r.join("README"), "hello\n").unwrap();
    git(&r, &["add", "README"]);
    git(
        &r,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "init",
        ],
    );
    r
}

/// worker-spawn ARGS… run in `dir`, without any git identity configured.
fn spawn_in(s: &Store, dir: &Path, args: &[&str]) -> Bg {
    let mut c = s.std_cmd("worker-spawn");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(args);
    Bg::spawn("worker-spawn", c)
}

fn run_in(s: &Store, dir: &Path, args: &[&str]) -> Run {
    spawn_in(s, dir, args).wait()
}

/// What is left under the worktrees' folder.
fn left(repo: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let base = repo.join(".worktrees");
    for e in walk(&base) {
        found.push(e.strip_prefix(&base).unwrap().display().to_string());
    }
    found
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path());
            out.extend(walk(&e.path()));
        }
    }
    out
}

/// Each task writes a file named after its key and lists what it sees.
const JOB: &str = r#"echo "$TASK_SUBJECT" > "$TASK_SUBJECT.txt"; ls *.txt 2>/dev/null | tr '\n' ' '; echo "$TASK_BRANCH $PWD" >&2"#;

#[test]
fn tasks_run_on_their_own_branches_and_a_pipeline_stage_sees_its_inputs() {
    let s = Store::new();
    let r = repo(&s);
    let head = git(&r, &["rev-parse", "HEAD"]);
    for name in ["a", "b", "c"] {
        s.create(name, &["--key", name]);
    }
    let d = s.create("d", &["--blocked-by", "a,b"]);
    let r1 = run_in(
        &s,
        &r,
        &[
            "-j",
            "3",
            "--worktree",
            "--verify",
            "test -f \"$TASK_SUBJECT.txt\"",
            "--",
            "sh",
            "-c",
            JOB,
        ],
    );
    assert_eq!(r1.code, 0, "{r1:?}");
    let tasks = s.tasks(&[]);
    for t in &tasks {
        assert_eq!(t["status"], "completed", "{t}");
        let id = t["id"].as_str().unwrap();
        let branch = format!("tasks/default/{id}");
        assert_eq!(t["metadata"]["git"]["branch"], branch.as_str());
        assert_eq!(
            t["metadata"]["git"]["commit"],
            git(&r, &["rev-parse", &branch]).as_str()
        );
        // Committed with the subject and the task's name.
        let msg = git(&r, &["log", "-1", "--format=%B", &branch]);
        assert!(
            msg.starts_with(t["subject"].as_str().unwrap())
                && msg.contains(&format!("task default#{id}")),
            "{msg}"
        );
        // It ran in its worktree, on its branch.
        let wt = r
            .canonicalize()
            .unwrap()
            .join(".worktrees/default")
            .join(id);
        assert_eq!(
            t["log"].as_str().unwrap().trim(),
            format!("{branch} {}", wt.display())
        );
    }
    // The independent ones saw only their own file; d saw its blockers' and its own.
    let result = |subject: &str| {
        tasks.iter().find(|t| t["subject"] == subject).unwrap()["result"]
            .as_str()
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(result("a"), "a.txt");
    assert_eq!(result("c"), "c.txt");
    assert_eq!(result("d"), "a.txt b.txt d.txt");
    let files = git(
        &r,
        &["ls-tree", "--name-only", &format!("tasks/default/{d}")],
    );
    assert_eq!(files, "README\na.txt\nb.txt\nd.txt");
    // Nothing left; the main work tree untouched and clean (the folder is excluded).
    assert!(left(&r).is_empty(), "{:?}", left(&r));
    assert_eq!(git(&r, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&r, &["status", "--porcelain"]), "");
    let exclude = std::fs::read_to_string(r.join(".git/info/exclude")).unwrap();
    assert!(exclude.lines().any(|l| l == "/.worktrees/"), "{exclude}");
    assert_eq!(git(&r, &["worktree", "list"]).lines().count(), 1);

    // The README's recipe: merge the sinks (they contain their blockers).
    git(
        &r,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "merge",
            "-q",
            "--no-edit",
            &format!("tasks/default/{d}"),
            "tasks/default/3",
        ],
    );
    for f in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        assert!(r.join(f).exists(), "{f} merged");
    }
}

#[test]
fn a_merge_conflict_fails_the_task_for_good_and_keeps_the_worktree() {
    let s = Store::new();
    let r = repo(&s);
    s.create("one", &["--key", "one"]);
    s.create("two", &["--key", "two"]);
    let both = s.create("both", &["--blocked-by", "one,two", "--max-attempts", "3"]);
    let out = run_in(
        &s,
        &r,
        &[
            "-j",
            "2",
            "--worktree",
            "--",
            "sh",
            "-c",
            r#"echo "$TASK_SUBJECT" > same.txt"#,
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "task #{both} failed (its blockers' branches do not merge)"
        )),
        "{}",
        out.stderr
    );
    let t = s.json(&both);
    // Final at once: not retried though attempts remain, and its command never ran.
    assert_eq!(
        (&t["status"], &t["attempts"], &t["exitCode"]),
        (&"failed".into(), &1.into(), &serde_json::Value::Null)
    );
    let log = t["log"].as_str().unwrap();
    let kept = r
        .canonicalize()
        .unwrap()
        .join(".worktrees/default")
        .join(&both);
    assert!(
        log.contains(&format!(
            "merging tasks/default/2 into tasks/default/{both} failed: conflict in same.txt"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("worktree kept for inspection: {}", kept.display())),
        "{log}"
    );
    assert!(kept.join("same.txt").exists());
    assert_eq!(
        git(&kept, &["diff", "--name-only", "--diff-filter=U"]),
        "same.txt"
    );
    assert_eq!(git(&r, &["status", "--porcelain"]), "");

    // Run again (after a fix on one side) with --worktree-clean always: the old worktree
    // goes, the new attempt merges cleanly, and nothing is left.
    git(
        &r,
        &["branch", "-f", "tasks/default/2", "tasks/default/2~1"],
    );
    s.ok("task-update", [both.as_str(), "-s", "pending"]);
    let again = run_in(
        &s,
        &r,
        &["--worktree", "--worktree-clean", "always", "--", "true"],
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(s.json(&both)["status"], "completed");
    assert!(left(&r).is_empty(), "{:?}", left(&r));
}

#[test]
fn a_failed_attempts_worktree_is_replaced_by_the_retry() {
    let s = Store::new();
    let r = repo(&s);
    let id = s.create("t", &["--max-attempts", "2"]);
    // Attempt 1 leaves junk and fails; attempt 2 must start clean.
    let job = r#"if [ "$TASK_ATTEMPT" = 1 ]; then touch junk; exit 1; fi; [ ! -e junk ] && echo fixed > fix.txt"#;
    let out = run_in(&s, &r, &["--worktree", "--", "sh", "-c", job]);
    assert_eq!(out.code, 0, "{out:?}");
    let t = s.json(&id);
    assert_eq!(
        (&t["status"], &t["attempts"]),
        (&"completed".into(), &2.into())
    );
    assert_eq!(
        git(&r, &["ls-tree", "--name-only", "tasks/default/1"]),
        "README\nfix.txt"
    );
    assert!(left(&r).is_empty(), "{:?}", left(&r));

    // With attempts used up, the failure's worktree stays, named in the log.
    let id = s.create("u", &[]);
    let out = run_in(
        &s,
        &r,
        &["--worktree", "--", "sh", "-c", "touch half-done; exit 4"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let log = s.json(&id)["log"].as_str().unwrap().to_string();
    let kept = r
        .canonicalize()
        .unwrap()
        .join(".worktrees/default")
        .join(&id);
    assert!(
        log.contains(&format!("worktree kept for inspection: {}", kept.display())),
        "{log}"
    );
    assert!(kept.join("half-done").exists());
}

#[test]
fn two_pools_at_once_share_one_repository() {
    let s = Store::new();
    let r = repo(&s);
    for n in 0..12 {
        s.create(&format!("f{n}"), &[]);
    }
    let args = ["-j", "3", "--worktree", "--", "sh", "-c", JOB];
    let p1 = spawn_in(&s, &r, &args);
    let p2 = spawn_in(&s, &r, &args);
    let (o1, o2) = (p1.wait(), p2.wait());
    let logs: Vec<String> = s
        .tasks(&[])
        .iter()
        .filter(|t| t["status"] != "completed")
        .map(|t| format!("#{}: {}", t["id"], t["log"]))
        .collect();
    assert_eq!((o1.code, o2.code), (0, 0), "{o1:?}\n{o2:?}\n{logs:?}");
    let tasks = s.tasks(&[]);
    assert_eq!(
        tasks.iter().filter(|t| t["status"] == "completed").count(),
        12
    );
    for t in &tasks {
        let id = t["id"].as_str().unwrap();
        let files = git(
            &r,
            &["ls-tree", "--name-only", &format!("tasks/default/{id}")],
        );
        assert_eq!(
            files,
            format!("README\n{}.txt", t["subject"].as_str().unwrap())
        );
    }
    assert!(left(&r).is_empty(), "{:?}", left(&r));
    assert_eq!(git(&r, &["worktree", "list"]).lines().count(), 1);
    assert_eq!(git(&r, &["status", "--porcelain"]), "");
}

#[test]
fn outside_a_repository_or_with_a_list_git_cannot_name_nothing_is_claimed() {
    let s = Store::new();
    s.create("t", &[]);
    let before = s.snapshot();
    let elsewhere = s.dir().join("plain");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = run_in(&s, &elsewhere, &["--worktree", "--", "true"]);
    assert_failure(
        &out,
        "worker-spawn",
        2,
        &["--worktree needs a git repository"],
    );
    let r = repo(&s);
    let out = run_in(&s, &r, &["--list", "a:b", "--worktree", "--", "true"]);
    assert_failure(&out, "worker-spawn", 2, &["'a:b' cannot name a git branch"]);
    let out = run_in(&s, &r, &["--worktree-dir", "x", "--", "true"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(s.snapshot(), before);
}
