//! `worker-spawn`: N workers in one process, each looping claim → run → record.
//!
//! Threads: one per worker (it blocks on its command), plus the calling thread as the
//! supervisor: it enforces `--timeout`, renews leases, handles SIGINT/SIGTERM and draws
//! the progress line. All share one store connection behind a mutex, so that our own
//! workers never wait on each other through SQLite's busy handler.
//!
//! Here: the pool, its workers' claim loop and the supervisor. `run.rs` runs one claimed
//! task and records its outcome; `changed.rs` stops a command whose task changed under
//! it; `idle.rs` decides whether a worker with nothing to claim waits, and holds the
//! budget; `child.rs` starts and captures a command; `envelope.rs` reads a Claude Code
//! worker's result; `tmux.rs` runs commands in tmux windows (`--tmux`).

mod changed;
mod child;
mod detach;
mod envelope;
mod guardian;
mod idle;
mod pools;
pub use pools::stop_pools;
mod run;
mod tmux;
mod worktree;

pub use pools::alive as pool_alive;

use crate::cli::SpawnArgs;
use crate::error::{Error, Kind, Result};
use crate::host;
use crate::model::{Status, StatusFilter, Task};
use crate::signals::{self, Signals};
use crate::store::{Claim, Filter, Holder, Store};
use guardian::Guardian;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why the supervisor signalled a running command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    /// The lease could not be renewed: another worker took the task over.
    Lost,
    Shutdown,
    /// Someone else cancelled, deleted, completed, failed or released the task while
    /// its command ran (or the command finished its own task with its token).
    Changed,
}

struct Running {
    task: Task,
    token: i64,
    /// Others' commits to the list (the change counter) as of the last look at whether
    /// the task is still ours: from just before the claim, so that a cancel that lands
    /// before the command is registered is seen too.
    seen: u64,
    pgid: i32,
    deadline: Option<Instant>,
    stop: Option<(Stop, Instant)>,
    killed: bool,
}

struct Shared {
    args: SpawnArgs,
    db: String,
    prefix: String,
    holder: Holder,
    store: Mutex<Box<dyn Store>>,
    guardian: Guardian,
    /// `--worktree`: the repository the tasks run in.
    worktrees: Option<worktree::Worktrees>,
    /// `--tmux`: the session the commands run in.
    tmux: Option<tmux::Tmux>,
    running: Mutex<HashMap<usize, Running>>,
    /// Per worker: the change counter read just before its last claim.
    claim_seen: Vec<AtomicU64>,
    /// Stop claiming new tasks (signal, --fail-fast, --max-tasks, store error).
    stop: AtomicBool,
    /// A signal asked us to end: running commands are being killed.
    shutdown: AtomicBool,
    /// Commits made through our own connection (SQLite's data_version counts others').
    commits: AtomicU64,
    /// `--max-tasks` slots reserved by workers about to claim, plus the ones used.
    claimed: AtomicU64,
    /// `--max-tasks` slots used: tasks claimed.
    taken: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    /// Commands stopped because their task was cancelled, deleted or finished from outside.
    stopped: AtomicU64,
    /// `--max-cost` was reached: no more claims, and exit 1.
    over_budget: AtomicBool,
    /// What the pool waits for while it has nothing to claim (said on stderr and on the
    /// progress line), and when it last said so.
    waiting: Mutex<Option<(String, Instant)>>,
    error: Mutex<Option<Error>>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Box<dyn Store>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> MutexGuard<'_, HashMap<usize, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes whenever anyone, we included, commits to the store.
    fn version(&self) -> Result<u64> {
        let theirs = self.store().change_counter(&self.args.store.list)?;
        Ok(theirs.wrapping_add(self.commits.load(SeqCst)))
    }

    fn committed(&self) {
        self.commits.fetch_add(1, SeqCst);
    }

    /// Remember the first store error and stop everything gracefully. Every worker
    /// meets the same broken store: say it once, not once a worker.
    fn fail(&self, e: Error) {
        self.stop.store(true, SeqCst);
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_some_and(|first| first.message == e.message)
        {
            return;
        }
        eprintln!("worker-spawn: {e}");
        slot.get_or_insert(e);
    }

    fn filter_in_progress() -> Filter {
        Filter {
            statuses: vec![StatusFilter::Is(Status::InProgress)],
            ..Filter::default()
        }
    }

    /// Recover the list's lost claims: leases that ran out, and processes of this host
    /// that are gone (we are not).
    fn recover_dead(&self) -> Result<()> {
        let me = &self.holder;
        let alive = |h: &Holder| h == me || host::is_alive(h);
        let recovered = self
            .store()
            .reap(&self.args.store.list, &self.prefix, &me.host, &alive)?;
        for t in &recovered {
            let why = t
                .log
                .as_deref()
                .and_then(|l| l.lines().last())
                .unwrap_or("");
            let now = match t.status {
                Status::Failed => ": it failed",
                _ => "; it is claimable again",
            };
            eprintln!(
                "worker-spawn: task {} of list '{}': {why}{now}",
                t.id, t.list
            );
            self.committed();
        }
        Ok(())
    }
}

/// A pool that serves new tasks until stopped (`--follow`) may be started before the
/// first task exists, so it makes the store; any other pool needs one to work on.
fn access(args: &SpawnArgs) -> crate::store::Access {
    match args.follow {
        true => crate::store::Access::Create,
        false => crate::store::Access::Write,
    }
}

pub fn run(args: SpawnArgs, out: &mut dyn Write) -> Result<u8> {
    if args.stop {
        return pools::stop(&args, out);
    }
    child::check_runnable(&args.command[0])?;
    if let Some(session) = &args.tmux {
        tmux::check(session)?;
    }
    let worktrees = match args.worktree {
        true => Some(worktree::Worktrees::open(&args)?),
        false => None,
    };
    let log = match args.detach {
        false => None,
        true => match detach::start(&args, out)? {
            detach::Side::Caller(code) => return Ok(code),
            detach::Side::Pool(log, started) => Some((log.display().to_string(), started)),
        },
    };
    // After --detach forked: the folder is the pool's, removed when the pool ends.
    let tmux = args.tmux.as_deref().map(tmux::Tmux::new).transpose()?;
    let hostname = host::hostname();
    let holder = host::me(&hostname);
    // Before any thread exists: the guardian is forked.
    let guardian = Guardian::start(
        format!("{}-{}", holder.pid, holder.started),
        tmux.as_ref().map(tmux::Tmux::dir),
    )?;
    let signals = Signals::install()?;
    let prefix = args
        .owner_prefix
        .clone()
        .unwrap_or_else(|| format!("{hostname}-{}", holder.pid));
    let path = args.store.path()?;
    let db = match path.to_string_lossy() {
        url if crate::store::is_url(&url) => url.into_owned(),
        _ => std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string(),
    };
    let mut store = args.store.open(access(&args))?;
    // A server restart under a running pool is survived; its commands keep running.
    store.keep_trying(crate::store::PATIENCE);
    pools::forget_dead(store.as_mut(), &hostname)?;
    let (log, started) = log.unzip();
    store.pool_add(&pools::me(&args, &holder, log.as_deref()))?;
    if let Some(started) = started {
        started.say();
    }
    let jobs = args.jobs as usize;
    let show_progress = !args.no_progress && (args.progress || std::io::stderr().is_terminal());

    let shared = Arc::new(Shared {
        args,
        db,
        prefix,
        holder,
        store: Mutex::new(store),
        guardian,
        worktrees,
        tmux,
        running: Mutex::new(HashMap::new()),
        claim_seen: (0..=jobs).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        shutdown: AtomicBool::new(false),
        commits: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
        taken: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        retried: AtomicU64::new(0),
        stopped: AtomicU64::new(0),
        over_budget: AtomicBool::new(false),
        waiting: Mutex::new(None),
        error: Mutex::new(None),
    });
    // A second SIGINT while we shut down ends the process at once; the guardian then
    // kills the children and the next run recovers their tasks.
    let second = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(signals::SIGINT, 130, Arc::clone(&second))
        .map_err(|e| Error::store(format!("cannot install a signal handler: {e}")))?;

    if let Err(e) = shared.recover_dead() {
        shared.fail(e);
    }
    let started = Instant::now();
    let workers: Vec<_> = (1..=jobs)
        .map(|n| {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || worker(&s, n))
        })
        .collect();

    let sig = supervise(&shared, &signals, &second, &workers, started, show_progress);
    for w in workers {
        let _ = w.join();
    }
    if let Err(e) = shared.store().pool_remove(&shared.holder) {
        shared.fail(e);
    }
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let (c, f, r) = (
        shared.completed.load(SeqCst),
        shared.failed.load(SeqCst),
        shared.retried.load(SeqCst),
    );
    if c + f + r + shared.stopped.load(SeqCst) == 0 && sig.is_none() {
        // A pool that ran nothing on a list that was never made: a typo, say so.
        match crate::store::unknown_list(shared.store().as_mut(), &shared.args.store.list) {
            Ok(Some(msg)) => eprintln!("worker-spawn: {msg}"),
            Ok(None) => {}
            Err(e) => shared.fail(e),
        }
    }
    let stopped = match shared.stopped.load(SeqCst) {
        0 => String::new(),
        n => format!(", {n} stopped"),
    };
    eprintln!(
        "worker-spawn: {c} completed, {f} failed, {r} retried{stopped} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if let Some(sig) = sig {
        return Ok(signals::exit_code(sig));
    }
    let error = shared
        .error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(e) = error {
        // Already reported; keep its exit code.
        return Ok(e.kind.exit_code());
    }
    let spent = shared.over_budget.load(SeqCst);
    Ok(if f > 0 || spent {
        Kind::Negative.exit_code()
    } else {
        0
    })
}

/// The supervisor loop; returns the signal that stopped us, if one did.
fn supervise(
    shared: &Shared,
    signals: &Signals,
    second: &AtomicBool,
    workers: &[std::thread::JoinHandle<()>],
    started: Instant,
    show_progress: bool,
) -> Option<i32> {
    let a = &shared.args;
    let renew_every = (a.lease / 3).max(Duration::from_millis(100));
    let mut last_renew = Instant::now();
    let mut last_seen = Instant::now();
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let mut sig = None;
    while !workers.iter().all(|w| w.is_finished()) {
        if let (None, Some(s)) = (sig, signals.received()) {
            sig = Some(s);
            second.store(true, SeqCst);
            shared.stop.store(true, SeqCst);
            shared.shutdown.store(true, SeqCst);
            let now = Instant::now();
            for r in shared.running().values_mut() {
                r.stop = Some((Stop::Shutdown, now));
                let _ = killpg(Pid::from_raw(r.pgid), Signal::SIGTERM);
            }
        }
        let now = Instant::now();
        for r in shared.running().values_mut() {
            if r.stop.is_none() && r.deadline.is_some_and(|d| now >= d) {
                r.stop = Some((Stop::Timeout, now));
                let _ = killpg(Pid::from_raw(r.pgid), Signal::SIGTERM);
            }
            if let Some((_, at)) = r.stop {
                if !r.killed && now.duration_since(at) >= a.kill_after {
                    r.killed = true;
                    let _ = killpg(Pid::from_raw(r.pgid), Signal::SIGKILL);
                }
            }
        }
        if !shared.running().is_empty() {
            let counter = shared.store().change_counter(&a.store.list);
            // Others' commits to the list: each is a reason to look whether a running
            // task was cancelled, deleted or finished from outside.
            if let Ok(c) = counter {
                changed::stop_taken_back(shared, c);
            }
        }
        if last_renew.elapsed() >= renew_every {
            last_renew = Instant::now();
            renew(shared);
        }
        if last_seen.elapsed() >= pools::HEARTBEAT {
            last_seen = Instant::now();
            if shared.store().pool_seen(&shared.holder).is_ok() {
                shared.committed();
            }
        }
        if show_progress && last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            progress(shared, started);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sig
}

fn renew(shared: &Shared) {
    let leases: Vec<(usize, Task, i64)> = shared
        .running()
        .iter()
        .filter(|(_, r)| r.stop.is_none())
        .map(|(&n, r)| (n, r.task.clone(), r.token))
        .collect();
    for (n, t, token) in leases {
        let list = match t.list.parse() {
            Ok(l) => l,
            Err(_) => continue,
        };
        let result = shared.store().renew(&list, t.id, token, shared.args.lease);
        match result {
            Ok(()) => shared.committed(),
            Err(e) if e.kind == Kind::Conflict => {
                if let Some(r) = shared.running().get_mut(&n) {
                    eprintln!("worker-spawn: {e}; stopping its command");
                    r.stop = Some((Stop::Lost, Instant::now()));
                    let _ = killpg(Pid::from_raw(r.pgid), Signal::SIGTERM);
                }
            }
            Err(e) => eprintln!("worker-spawn: cannot renew the lease of task {}: {e}", t.id),
        }
    }
}

fn progress(shared: &Shared, started: Instant) {
    let counts = {
        let mut store = shared.store();
        store.counts(&shared.args.store.list, &Filter::default())
    };
    let Ok(c) = counts else { return };
    let done = c.get(Status::Completed) + c.get(Status::Failed) + c.get(Status::Cancelled);
    let ours = shared.completed.load(SeqCst) + shared.failed.load(SeqCst);
    let left = c.total() - done;
    let eta = if ours > 0 {
        let per = started.elapsed().as_secs_f64() / ours as f64;
        format!(", ETA {:.0}s", per * left as f64 / shared.args.jobs as f64)
    } else {
        String::new()
    };
    let waiting = match &*shared.waiting.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((what, _)) => format!(", waiting for {what}"),
        None => String::new(),
    };
    eprint!(
        "\rworker-spawn: {done}/{} done, {} running, {} failed{eta}{waiting}\x1b[K",
        c.total(),
        c.get(Status::InProgress),
        c.get(Status::Failed)
    );
}

fn worker(shared: &Shared, n: usize) {
    let a = &shared.args;
    let owner = format!("{}-{n}", shared.prefix);
    let claim = Claim {
        owner: owner.clone(),
        id: None,
        matching: a.metadata.clone(),
        limits: a.limit.clone(),
        lease: Some(a.lease),
        holder: Some(shared.holder.clone()),
        // Where the command's output goes (the task's `logFile`): absolute, for any
        // shell to tail.
        output_dir: a.output_dir.as_deref().map(|d| {
            let d = std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf());
            d.join(a.store.list.as_str()).to_string_lossy().into_owned()
        }),
    };
    let cx = child::Context {
        mark: &shared.guardian.mark,
        db: &shared.db,
        owner: &owner,
        stdin: a.stdin,
        max_output: a.max_output,
        tmux: shared.tmux.as_ref().map(|t| (t, n)),
    };
    while !shared.stop.load(SeqCst) {
        if let Some(max) = a.max_tasks {
            if shared.claimed.fetch_add(1, SeqCst) >= max {
                // The rest of the quota is taken, or only reserved by workers still
                // looking for a task: leave it to them. (Stopping everyone here ended
                // the run with the quota unused while a task in progress elsewhere could
                // still unblock work.)
                shared.claimed.fetch_sub(1, SeqCst);
                break;
            }
        }
        match idle::within_budget(shared) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return shared.fail(e),
        }
        let theirs = shared.store().change_counter(&a.store.list);
        let before = match theirs {
            Ok(v) => {
                shared.claim_seen[n].store(v, SeqCst);
                v.wrapping_add(shared.commits.load(SeqCst))
            }
            Err(e) => return shared.fail(e),
        };
        let claimed = shared.store().claim(&a.store.list, &claim);
        match claimed {
            Ok(Some(task)) => {
                shared.committed();
                if a.max_tasks
                    .is_some_and(|max| shared.taken.fetch_add(1, SeqCst) + 1 >= max)
                {
                    // The quota is used up: the workers waiting for work can go.
                    shared.stop.store(true, SeqCst);
                }
                run::run_task(shared, n, task, &cx);
            }
            Ok(None) => {
                if a.max_tasks.is_some() {
                    shared.claimed.fetch_sub(1, SeqCst);
                }
                match idle::idle(shared, before) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return shared.fail(e),
                }
            }
            Err(e) => return shared.fail(e),
        }
    }
}
