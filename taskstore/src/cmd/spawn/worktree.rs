//! `worker-spawn --worktree`: every attempt runs in a git worktree of its own, on
//! branch `tasks/<list>/<id>`, made from HEAD with its blockers' branches merged in; what
//! a successful attempt leaves is committed there, and the worktree goes (the branch
//! stays). The `git` program does the work: its behaviour, hooks and configuration are
//! the user's, and there is no second implementation of git to trust.
//!
//! Git operations are serialised within this process (a mutex) and across the pools
//! sharing the repository (an advisory lock on a file in its git directory: git itself
//! does not guard `worktree add` against a worktree being made or removed at the same
//! moment, and fails reading its half-written administrative files). They are retried
//! when git reports a lock file held by another process, such as the user's own git.

use crate::cli::{SpawnArgs, WorktreeClean};
use crate::error::{Error, Result};
use crate::model::Task;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a git command that meets another process's lock file is retried.
const LOCK_PATIENCE: Duration = Duration::from_secs(20);

pub struct Worktrees {
    /// The repository's top level (the main work tree, which is never touched).
    root: PathBuf,
    /// Where the worktrees go: `<dir>/<list>/<id>`.
    dir: PathBuf,
    /// `-c user.name=… -c user.email=…` when git knows no committer, so that commits
    /// work on a fresh machine.
    identity: Vec<String>,
    clean: WorktreeClean,
    lock: Mutex<()>,
    /// `<git common dir>/parallel-tasks.lock`, locked while a pool works on worktrees.
    lock_file: PathBuf,
}

/// Held while git works on worktrees: this process's mutex, then the file lock that
/// other pools on the repository take too (released when the file closes).
struct Guard<'a> {
    _file: Option<std::fs::File>,
    _mutex: std::sync::MutexGuard<'a, ()>,
}

/// One attempt's worktree.
pub struct Tree {
    pub path: PathBuf,
    pub branch: String,
}

/// How preparing a worktree went.
pub enum Prepared {
    /// Ready, with lines for the log (a blocker without a branch).
    Ready(Tree, Vec<String>),
    /// Its blockers' branches do not merge: the task fails for good (running it again
    /// would meet the same conflict).
    Conflict(String),
    /// Git failed otherwise: the attempt fails.
    Failed(String),
}

/// A git command's outcome: its stdout, or its stderr and stdout as the error.
fn run(dir: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        let (err, so) = (text(&out.stderr), text(&out.stdout));
        Err([so, err]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// Another git process holds a lock file we need: worth trying again.
fn locked(err: &str) -> bool {
    err.contains(".lock") && (err.contains("File exists") || err.contains("Unable to create"))
        || err.contains("could not lock")
        || err.contains("cannot lock ref")
        // Another git reading or writing a worktree's administrative files as we do.
        || err.contains("failed to read") && err.contains("worktrees")
}

/// `run`, again while another process holds one of git's lock files.
fn git(dir: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(20);
    loop {
        match run(dir, args) {
            Err(e) if locked(&e) && start.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(500));
            }
            r => return r,
        }
    }
}

impl Worktrees {
    /// Check, before anything is claimed, that we are in a git repository and that the
    /// list can name branches; make sure the worktrees' folder is ignored by git.
    pub fn open(args: &SpawnArgs) -> Result<Worktrees> {
        let here = std::env::current_dir()
            .map_err(|e| Error::usage(format!("--worktree: no current directory: {e}")))?;
        let root = run(&here, &["rev-parse", "--show-toplevel"]).map_err(|e| {
            Error::usage(format!(
                "--worktree needs a git repository: {} is not in one ({})",
                here.display(),
                e.lines().last().unwrap_or("git said nothing")
            ))
        })?;
        let root = PathBuf::from(root);
        let list = args.store.list.as_str();
        let sample = format!("tasks/{list}/1");
        if run(&root, &["check-ref-format", "--branch", &sample]).is_err() {
            return Err(Error::usage(format!(
                "--worktree: the list '{list}' cannot name a git branch ({sample}); \
                 use a list id without ':' or '..'"
            )));
        }
        let dir = match &args.worktree_dir {
            Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
            None => root.join(".worktrees"),
        };
        let identity = match run(&root, &["config", "user.email"]) {
            Ok(email) if !email.is_empty() => Vec::new(),
            _ => vec![
                "-c".into(),
                "user.name=worker-spawn".into(),
                "-c".into(),
                format!("user.email=worker-spawn@{}", crate::host::hostname()),
            ],
        };
        let common = run(&root, &["rev-parse", "--git-common-dir"])
            .map_err(|e| Error::store(format!("--worktree: {e}")))?;
        let common = root.join(common);
        let w = Worktrees {
            lock_file: common.join("parallel-tasks.lock"),
            root,
            dir,
            identity,
            clean: args.worktree_clean,
            lock: Mutex::new(()),
        };
        w.exclude()?;
        Ok(w)
    }

    /// List the worktrees' folder in `.git/info/exclude` when it is inside the
    /// repository, so that `git status` of the main work tree does not show it.
    fn exclude(&self) -> Result<()> {
        let Ok(rel) = self.dir.strip_prefix(&self.root) else {
            return Ok(());
        };
        let _one_at_a_time = self.guard();
        let info = self.lock_file.with_file_name("info");
        let file = info.join("exclude");
        let line = format!("/{}/", rel.display());
        let old = std::fs::read_to_string(&file).unwrap_or_default();
        if old.lines().any(|l| l.trim() == line) {
            return Ok(());
        }
        let mut new = old;
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new += &format!("{line}\n");
        std::fs::create_dir_all(&info)
            .and_then(|_| std::fs::write(&file, new))
            .map_err(|e| Error::store(format!("cannot write {}: {e}", file.display())))
    }

    pub fn branch(t: &Task) -> String {
        format!("tasks/{}/{}", t.list, t.id.0)
    }

    fn path(&self, t: &Task) -> PathBuf {
        self.dir.join(&t.list).join(t.id.0.to_string())
    }

    /// One pool's git work on worktrees at a time. Without the lock file (a read-only
    /// git directory) the retries on git's own lock files are all there is.
    fn guard(&self) -> Guard<'_> {
        let mutex = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_file)
            .ok()
            .filter(|f| f.lock().is_ok());
        Guard {
            _file: file,
            _mutex: mutex,
        }
    }

    /// A fresh worktree for an attempt of `t`: an earlier attempt's goes first; the
    /// branch starts again from HEAD, and each blocker's branch is merged in.
    pub fn prepare(&self, t: &Task) -> Prepared {
        let _one_at_a_time = self.guard();
        let path = self.path(t);
        let branch = Self::branch(t);
        let p = path.to_string_lossy().into_owned();
        self.forget(&path);
        let mut tries = 0;
        loop {
            // Another worker-spawn may remove the list's folder, empty, as we make it.
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            match git(
                &self.root,
                &["worktree", "add", "-q", "-B", &branch, &p, "HEAD"],
            ) {
                Ok(_) => break,
                Err(e)
                    if tries < 5
                        && (e.contains("No such file") || e.contains("could not create")) =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Prepared::Failed(format!(
                        "worker-spawn: git worktree add {p} failed: {e}"
                    ))
                }
            }
        }
        let mut notes = Vec::new();
        for b in &t.blocked_by {
            let theirs = format!("tasks/{}/{}", t.list, b.0);
            let exists = run(
                &path,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{theirs}"),
                ],
            )
            .is_ok();
            if !exists {
                notes.push(format!(
                    "worker-spawn: blocker {b} has no branch {theirs}: not merged"
                ));
                continue;
            }
            let mut args: Vec<&str> = self.identity.iter().map(String::as_str).collect();
            args.extend(["merge", "--no-edit", "-q", &theirs]);
            if let Err(e) = git(&path, &args) {
                let files = run(&path, &["diff", "--name-only", "--diff-filter=U"])
                    .unwrap_or_default()
                    .lines()
                    .collect::<Vec<_>>()
                    .join(", ");
                let what = if files.is_empty() {
                    e
                } else {
                    format!("conflict in {files}")
                };
                let kept = self.keep_or_clean(&path);
                return Prepared::Conflict(format!(
                    "worker-spawn: merging {theirs} into {branch} failed: {what}; \
                     the task fails without running (it would meet the same conflict again){kept}"
                ));
            }
        }
        Prepared::Ready(Tree { path, branch }, notes)
    }

    /// Commit what the attempt left uncommitted (if anything); the branch's commit.
    pub fn commit(&self, tree: &Tree, t: &Task) -> std::result::Result<String, String> {
        let _one_at_a_time = self.guard();
        git(&tree.path, &["add", "-A"])
            .map_err(|e| format!("worker-spawn: git add -A failed: {e}"))?;
        let staged = run(&tree.path, &["diff", "--cached", "--quiet"]).is_err();
        if staged {
            let message = format!("{}\n\ntask {}#{}", t.subject, t.list, t.id.0);
            let mut args: Vec<&str> = self.identity.iter().map(String::as_str).collect();
            args.extend(["commit", "-q", "-m", &message]);
            git(&tree.path, &args).map_err(|e| format!("worker-spawn: git commit failed: {e}"))?;
        }
        run(&tree.path, &["rev-parse", "HEAD"]).map_err(|e| format!("worker-spawn: {e}"))
    }

    /// The attempt is over: remove its worktree if it succeeded (or with
    /// `--worktree-clean always`); else keep it, and say where in the log.
    pub fn done(&self, tree: &Tree, success: bool) -> String {
        let _one_at_a_time = self.guard();
        if success {
            self.forget(&tree.path);
            String::new()
        } else {
            self.keep_or_clean(&tree.path)
        }
    }

    /// After a failure: the log's note on the worktree (kept, where), or nothing when
    /// `--worktree-clean always` removed it.
    fn keep_or_clean(&self, path: &Path) -> String {
        match self.clean {
            WorktreeClean::Always => {
                self.forget(path);
                String::new()
            }
            WorktreeClean::OnSuccess => format!(
                "\nworker-spawn: worktree kept for inspection: {} (until the task runs again)",
                path.display()
            ),
        }
    }

    /// Remove the worktree at `path` if there is one (the branch stays), and the
    /// folders above it that it leaves empty.
    fn forget(&self, path: &Path) {
        if path.exists() {
            let p = path.to_string_lossy();
            if git(
                &self.root,
                &["worktree", "remove", "--force", "--force", &p],
            )
            .is_err()
            {
                // Not a worktree git knows (a leftover folder): remove it as files.
                let _ = std::fs::remove_dir_all(path);
            }
        }
        let _ = git(&self.root, &["worktree", "prune"]);
        if let Some(list_dir) = path.parent() {
            if std::fs::remove_dir(list_dir).is_ok() {
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }
}
