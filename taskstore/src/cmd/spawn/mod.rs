//! `worker-spawn`: N workers in one process, each looping claim → run → record.
//!
//! Threads: one per worker (it blocks on its command), plus the calling thread as the
//! supervisor: it enforces `--timeout`, renews leases, handles SIGINT/SIGTERM and draws
//! the progress line. All share one store connection behind a mutex, so that our own
//! workers never wait on each other through SQLite's busy handler.

mod child;
mod detach;
mod envelope;
mod guardian;
mod pools;
mod worktree;

pub use pools::alive as pool_alive;

use crate::cli::SpawnArgs;
use crate::error::{Error, Kind, Result};
use crate::host;
use crate::model::{Status, StatusFilter, Task, TaskId};
use crate::signals::{self, Signals};
use crate::store::{Claim, Filter, Holder, Outcome, Store};
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
    let hostname = host::hostname();
    let holder = host::me(&hostname);
    // Before any thread exists: the guardian is forked.
    let guardian = Guardian::start(format!("{}-{}", holder.pid, holder.started))?;
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
                stop_taken_back(shared, c);
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

/// Stop the command of every running task that is no longer ours: cancelled, deleted,
/// completed, failed or released by someone else (or by the command itself, with its
/// token), or taken over under another claim. What became of it is settled by its worker
/// once the command is gone (`settle_changed`).
fn stop_taken_back(shared: &Shared, counter: u64) {
    let held: Vec<(usize, TaskId, i64)> = shared
        .running()
        .iter_mut()
        .filter(|(_, r)| r.stop.is_none() && r.seen != counter)
        .map(|(&n, r)| {
            r.seen = counter;
            (n, r.task.id, r.token)
        })
        .collect();
    for (n, id, token) in held {
        let now = shared
            .store()
            .tasks(&shared.args.store.list, &Filter::ids([id]));
        let why = match now {
            Err(e) if e.kind == Kind::NotFound => Stop::Changed,
            Ok(t) if t[0].status != Status::InProgress => Stop::Changed,
            Ok(t) if t[0].claim_token != Some(token) => Stop::Lost,
            _ => continue,
        };
        // The worker may have finished that task and started another since the read: stop
        // the command only if it still runs this claim.
        let mut running = shared.running();
        let Some(r) = running
            .get_mut(&n)
            .filter(|r| r.task.id == id && r.token == token && r.stop.is_none())
        else {
            continue;
        };
        if why == Stop::Lost {
            eprintln!(
                "worker-spawn: task {id} was taken over by another worker; stopping its command"
            );
        }
        r.stop = Some((why, Instant::now()));
        let _ = killpg(Pid::from_raw(r.pgid), Signal::SIGTERM);
    }
}

/// After a command was stopped because its task changed under it: keep the new state and
/// say what happened. A task the command finished itself (its history names our worker)
/// counts as completed or failed; anything else counts as stopped, with a history note.
fn settle_changed(shared: &Shared, task: &Task, owner: &str) -> Result<()> {
    let list = &shared.args.store.list;
    let mut store = shared.store();
    let now = match store.tasks(list, &Filter::ids([task.id])) {
        Err(e) if e.kind == Kind::NotFound => {
            shared.stopped.fetch_add(1, SeqCst);
            eprintln!(
                "worker-spawn: task {} was deleted while running; its command was stopped",
                task.id
            );
            return Ok(());
        }
        r => r?.remove(0),
    };
    let last = store.history(list, &[task.id], Some(1))?.pop();
    if last.as_ref().is_some_and(|e| e.kind == "taken_over") {
        // Its claim was lost (lease run out, or thought dead), not taken back by a person.
        eprintln!(
            "worker-spawn: task {} was taken over by another worker; its outcome was not recorded",
            task.id
        );
        return Ok(());
    }
    let by = last.and_then(|e| e.by).unwrap_or_else(|| "someone".into());
    if by == owner && now.status.is_terminal() {
        let counter = match now.status {
            Status::Completed => &shared.completed,
            _ => &shared.failed,
        };
        counter.fetch_add(1, SeqCst);
        return Ok(());
    }
    shared.stopped.fetch_add(1, SeqCst);
    let what = match now.status {
        Status::Pending => "released".to_string(),
        s => s.to_string(),
    };
    eprintln!(
        "worker-spawn: task {} was {what} by {by} while running; its command was stopped",
        task.id
    );
    let note = crate::store::Update {
        note: Some(format!("stopped: {what} by {by} while running")),
        by: Some(owner.to_string()),
        ..Default::default()
    };
    store.update(list, &[task.id], &note)?;
    shared.committed();
    Ok(())
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
        match within_budget(shared) {
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
                run_task(shared, n, task, &cx);
            }
            Ok(None) => {
                if a.max_tasks.is_some() {
                    shared.claimed.fetch_sub(1, SeqCst);
                }
                match idle(shared, before) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return shared.fail(e),
                }
            }
            Err(e) => return shared.fail(e),
        }
    }
}

/// `--max-cost`: whether the list's recorded cost (every pool's, every host's) is still
/// below the budget. Once it is not, the pool claims nothing more (running tasks finish),
/// says so once, and ends with exit 1.
fn within_budget(shared: &Shared) -> Result<bool> {
    let Some(max) = shared.args.max_cost else {
        return Ok(true);
    };
    let spent = shared.store().cost(&shared.args.store.list)?.unwrap_or(0.0);
    if spent < max {
        return Ok(true);
    }
    shared.stop.store(true, SeqCst);
    if !shared.over_budget.swap(true, SeqCst) {
        eprintln!(
            "worker-spawn: the list has spent {} of --max-cost {}: claiming no more tasks",
            crate::output::dollars(spent),
            crate::output::dollars(max)
        );
    }
    Ok(false)
}

/// Nothing was claimable. Wait for the store to change; false: time to stop, because
/// nothing is in progress anywhere in the list that could unblock work (unless --follow).
fn idle(shared: &Shared, before: u64) -> Result<bool> {
    shared.recover_dead()?;
    if !shared.args.follow && !worth_waiting(shared)? && shared.version()? == before {
        return Ok(false);
    }
    // Poll the change counter, 1 ms after activity growing to 20 ms; look again at
    // least every second anyway, for leases that run out without any commit.
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    while start.elapsed() < Duration::from_secs(1) {
        if shared.stop.load(SeqCst) {
            return Ok(false);
        }
        if shared.version()? != before {
            return Ok(true);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    Ok(true)
}

/// Whether an idle worker should wait for tasks in progress: while the pool itself runs
/// one (it may unblock work, and the pool ends with it anyway); while a pending task this
/// pool could run waits, through its blockers, on a task in progress elsewhere, or is
/// ready but held back (a `--limit` or a scope held by a task in progress); or while a
/// task it could run is held elsewhere under a lease (should its holder die, the lease
/// runs out and this pool takes it over). A lease-less claim that nothing waits on — a
/// shell worker that died holding it — keeps no pool alive. The lease-less claims it
/// waits for are said on stderr once, and again each minute (a person must free them).
fn worth_waiting(shared: &Shared) -> Result<bool> {
    let list = &shared.args.store.list;
    let in_progress = shared
        .store()
        .counts(list, &Shared::filter_in_progress())?
        .get(Status::InProgress);
    if in_progress == 0 {
        return Ok(false);
    }
    if !shared.running().is_empty() {
        return Ok(true);
    }
    let open = Filter {
        statuses: vec![StatusFilter::Open],
        ..Filter::default()
    };
    let tasks = shared.store().tasks(list, &open)?;
    let ours = |t: &Task| {
        shared
            .args
            .metadata
            .iter()
            .all(|(k, v)| t.metadata.get(k) == Some(v))
    };
    let mut awaited = crate::graph::awaited_in_progress(&tasks, |t| t.owner.is_none() && ours(t));
    let leased = tasks
        .iter()
        .filter(|t| t.status == Status::InProgress && t.lease_until.is_some() && ours(t));
    awaited.extend(leased);
    let mut waiting = shared.waiting.lock().unwrap_or_else(|e| e.into_inner());
    if awaited.is_empty() {
        *waiting = None;
        return Ok(false);
    }
    awaited.sort_by_key(|t| t.id);
    awaited.dedup_by_key(|t| t.id);
    let what = awaited
        .iter()
        .map(|t| held_phrase(t))
        .collect::<Vec<_>>()
        .join("; ");
    let unleased = awaited.iter().any(|t| t.lease_until.is_none());
    let say = match &*waiting {
        Some((said, at)) => *said != what || at.elapsed() >= Duration::from_secs(60),
        None => true,
    };
    if say && unleased {
        eprintln!("worker-spawn: waiting for {what}");
    }
    if say {
        *waiting = Some((what, Instant::now()));
    }
    Ok(true)
}

/// `#1 (in progress by shellw since 13:40 UTC, no lease — task-update 1 --release gives
/// it back)`: who holds a task the pool waits for, and how a person frees it.
fn held_phrase(t: &Task) -> String {
    let hhmm = |ms: i64| {
        let s = crate::time::rfc3339(ms);
        format!("{} UTC", s.get(11..16).unwrap_or(&s))
    };
    let owner = t.owner.as_deref().unwrap_or("nobody");
    let since = t
        .started_at
        .map(|s| format!(" since {}", hhmm(s)))
        .unwrap_or_default();
    let lease = match t.lease_until {
        Some(u) => format!("lease until {}", hhmm(u)),
        None => format!("no lease — task-update {} --release gives it back", t.id.0),
    };
    format!("{} (in progress by {owner}{since}, {lease})", t.id)
}

/// How a command or a check ended.
struct Ran {
    stop: Option<Stop>,
    code: i64,
    cap: child::Captured,
}

impl Ran {
    fn message(code: i64, msg: String) -> Ran {
        Ran {
            stop: None,
            code,
            cap: child::Captured::message(msg),
        }
    }
}

/// Run a started command or check to its end under the supervisor's watch (timeout,
/// lease renewal, signals).
fn execute(shared: &Shared, n: usize, task: &Task, token: i64, mut st: child::Started) -> Ran {
    let a = &shared.args;
    let pgid = st.child.id() as i32;
    shared.guardian.watch(pgid);
    shared.running().insert(
        n,
        Running {
            task: task.clone(),
            token,
            seen: shared.claim_seen[n].load(SeqCst),
            pgid,
            deadline: a.timeout.map(|t| Instant::now() + t),
            stop: None,
            killed: false,
        },
    );
    // A signal that arrived between the claim and the registration.
    if shared.shutdown.load(SeqCst) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        if let Some(r) = shared.running().get_mut(&n) {
            r.stop = Some((Stop::Shutdown, Instant::now()));
        }
    }
    let mut cap = child::capture(&mut st);
    let status = st.child.wait();
    // Nothing the command started outlives its task.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    shared.guardian.unwatch(pgid);
    let (stop, killed) = shared
        .running()
        .remove(&n)
        .map_or((None, false), |r| (r.stop.map(|(s, _)| s), r.killed));
    let code = match (stop, status) {
        (Some(Stop::Timeout), _) => 124,
        (_, Ok(st)) => child::exit_code(st),
        (_, Err(_)) => 1,
    };
    if stop == Some(Stop::Timeout) {
        cap.note(&timeout_note(a, killed));
    }
    Ran { stop, code, cap }
}

/// Run the task's check after its command succeeded; on failure, the attempt's log
/// gets a `verify:` line and the check's output, and the output is returned (the
/// feedback for the next attempt).
fn verify(
    shared: &Shared,
    n: usize,
    task: &Task,
    token: i64,
    cx: &child::Context,
    place: &child::Place,
    ran: &mut Ran,
) -> Option<String> {
    let check = task.verify.as_deref().or(shared.args.verify.as_deref())?;
    let input = ran.cap.stdout.clone();
    let checked = match child::spawn_check(check, task, cx, place, input) {
        Ok(st) => execute(shared, n, task, token, st),
        Err(e) => Ran::message(127, format!("worker-spawn: cannot run sh: {e}\n")),
    };
    match checked.stop {
        Some(s @ (Stop::Shutdown | Stop::Lost | Stop::Changed)) => {
            ran.stop = Some(s);
            None
        }
        _ if checked.code == 0 => None,
        _ => {
            let output = checked.cap.log().unwrap_or_default();
            ran.cap
                .note(&format!("verify: `{check}` exited {}", checked.code));
            if !output.trim().is_empty() {
                ran.cap.note(output.trim_end());
            }
            ran.code = checked.code;
            Some(output)
        }
    }
}

fn run_task(shared: &Shared, n: usize, task: Task, cx: &child::Context) {
    let a = &shared.args;
    let list = &a.store.list;
    let token = task.claim_token.unwrap_or_default();
    let mut place = child::Place::default();
    let mut tree = None;
    // Exit code recorded: none when the command never ran (its worktree failed).
    let mut recorded_code = true;
    // A failure that running again cannot mend (a merge conflict of its blockers).
    let mut for_good = false;
    let mut ran = None;
    if let Some(w) = &shared.worktrees {
        match w.prepare(&task) {
            worktree::Prepared::Ready(t, notes) => {
                place.dir = Some(t.path.clone());
                place.branch = Some(t.branch.clone());
                tree = Some((t, notes));
            }
            worktree::Prepared::Conflict(msg) => {
                for_good = true;
                recorded_code = false;
                ran = Some(Ran::message(1, msg));
            }
            worktree::Prepared::Failed(msg) => {
                recorded_code = false;
                ran = Some(Ran::message(1, msg));
            }
        }
    }
    let mut ran = ran.unwrap_or_else(|| match child::spawn(&a.command, &task, cx, &place) {
        Ok(st) => execute(shared, n, &task, token, st),
        // As a shell says it: 126 found but not executable, 127 not found.
        Err(e) => Ran::message(
            match e.kind() {
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 127,
            },
            format!(
                "worker-spawn: cannot run '{}': {e}\n",
                child::expand(&a.command[0], &task)
            ),
        ),
    });
    // A Claude Code worker's result envelope: its answer is the result, its own verdict
    // counts as much as the exit code, and its session and cost are kept.
    let mut metadata = serde_json::Map::new();
    let agent = ran
        .stop
        .is_none()
        .then(|| envelope::parse(ran.cap.envelope_source()))
        .flatten();
    let agent_failed = agent.as_ref().is_some_and(|e| e.is_error);
    if let Some(e) = &agent {
        metadata.insert("claude".into(), e.metadata(&task.metadata));
        if e.is_error {
            ran.cap.note(&e.failure_line());
        }
    }
    let mut check_failed = None;
    if ran.stop.is_none() && ran.code == 0 && !agent_failed {
        check_failed = verify(shared, n, &task, token, cx, &place, &mut ran);
    }
    if let (Some(w), Some((t, notes))) = (&shared.worktrees, &tree) {
        for line in notes {
            ran.cap.note(line);
        }
        if ran.stop.is_none() && ran.code == 0 && !agent_failed {
            match w.commit(t, &task) {
                Ok(commit) => {
                    metadata.insert(
                        "git".into(),
                        serde_json::json!({ "branch": t.branch, "commit": commit }),
                    );
                }
                Err(msg) => {
                    ran.cap.note(&msg);
                    ran.code = 1;
                }
            }
        }
        if ran.stop.is_none() {
            let kept = w.done(t, ran.code == 0 && !agent_failed);
            if !kept.is_empty() {
                ran.cap.note(kept.trim_start());
            }
        }
    }
    let Ran { stop, code, cap } = ran;
    // A command that cannot be started (126, 127) fails the same way every time; so do
    // the exit codes the user names as permanent (--no-retry-on).
    if stop.is_none() && (code == 126 || code == 127 || a.no_retry_on.contains(&code)) {
        for_good = true;
    }
    let ok = code == 0 && !agent_failed;
    let outcome = |status| Outcome {
        status,
        result: Some(match agent.as_ref() {
            Some(e) => e.result.clone().unwrap_or_default(),
            None => cap.result(a.max_output),
        }),
        cost_usd: agent.as_ref().and_then(|e| e.cost_usd),
        log: cap.log(),
        exit_code: recorded_code.then_some(code),
        check_failed: check_failed.clone(),
        metadata: metadata.clone(),
    };
    let result = match stop {
        Some(Stop::Shutdown) => shared.store().unclaim(list, task.id, token, true),
        Some(Stop::Lost) => Ok(()),
        Some(Stop::Changed) => settle_changed(shared, &task, cx.owner),
        _ if ok => shared
            .store()
            .finish(list, task.id, token, &outcome(Status::Completed))
            .map(|_| {
                shared.completed.fetch_add(1, SeqCst);
            }),
        _ if !for_good && task.attempts < task.max_attempts && !shared.shutdown.load(SeqCst) => {
            hold_for(shared, &task, token, a.retry_delay);
            if shared.shutdown.load(SeqCst) {
                shared.store().unclaim(list, task.id, token, false)
            } else {
                shared
                    .store()
                    .finish(list, task.id, token, &outcome(Status::Pending))
                    .map(|_| {
                        shared.retried.fetch_add(1, SeqCst);
                    })
            }
        }
        _ => shared
            .store()
            .finish(list, task.id, token, &outcome(Status::Failed))
            .map(|_| {
                shared.failed.fetch_add(1, SeqCst);
                let why = match (check_failed.is_some(), recorded_code) {
                    _ if code == 0 && agent_failed => agent
                        .as_ref()
                        .map_or_else(String::new, |e| format!("claude: {}", e.subtype)),
                    (true, _) => format!("its check exited {code}"),
                    (_, true) if for_good && task.attempts < task.max_attempts => {
                        format!("exit code {code}, not retried")
                    }
                    (_, true) => format!("exit code {code}"),
                    (_, false) if for_good => "its blockers' branches do not merge".into(),
                    (_, false) => "its worktree could not be prepared".into(),
                };
                eprintln!("worker-spawn: task {} failed ({why})", task.id);
                if a.fail_fast {
                    shared.stop.store(true, SeqCst);
                }
            }),
    };
    shared.committed();
    let result = match result {
        // Refused: the claim is no longer ours. Taken over by another claim, or the task
        // changed from outside (or by its own command) before we saw it while it ran.
        Err(e) if e.kind == Kind::Conflict => {
            let now = shared.store().tasks(list, &Filter::ids([task.id]));
            match now {
                Ok(t) if t[0].status == Status::InProgress => {
                    eprintln!("worker-spawn: {e}");
                    Ok(())
                }
                _ => settle_changed(shared, &task, cx.owner),
            }
        }
        r => r,
    };
    if let Err(e) = result {
        shared.fail(e);
    }
}

/// The log line of a command killed by `--timeout`: after how long, and whether SIGTERM
/// ended it or SIGKILL was needed.
fn timeout_note(a: &SpawnArgs, killed: bool) -> String {
    let t = humantime::format_duration(a.timeout.unwrap_or_default());
    let k = humantime::format_duration(a.kill_after);
    let how = if killed {
        format!("it did not end within {k} (--kill-after) of SIGTERM, so it got SIGKILL")
    } else {
        "it ended after SIGTERM".into()
    };
    format!("worker-spawn: timed out after {t} (--timeout): {how}")
}

/// The retry delay holds the claim (so nobody takes the task early), renewing its
/// lease as the supervisor would; a signal cuts it short.
fn hold_for(shared: &Shared, task: &Task, token: i64, d: Duration) {
    let lease = shared.args.lease;
    let renew_every = (lease / 3).max(Duration::from_millis(100));
    let end = Instant::now() + d;
    let mut renewed = Instant::now();
    while Instant::now() < end && !shared.shutdown.load(SeqCst) {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
        if renewed.elapsed() >= renew_every {
            renewed = Instant::now();
            let result = shared
                .store()
                .renew(&shared.args.store.list, task.id, token, lease);
            if result.is_ok() {
                shared.committed();
            }
        }
    }
}
