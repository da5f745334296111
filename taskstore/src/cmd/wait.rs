//! `task-wait`: block until the awaited tasks reach the asked-for condition, woken by
//! the store's change signal (see [`super::waker`]). Waiting holds no lock.

use super::waker::Waker;
use super::Stdin;
use crate::bail;
use crate::cli::{WaitArgs, WaitFormat};
use crate::error::{Kind, Result};
use crate::host;
use crate::model::{Holder, ListId, Status, Task, TaskId};
use crate::output;
use crate::report;
use crate::signals::{self, Signals};
use crate::store::{loss, stalled_among, Filter, Stalled, Store};
use crate::time::now_ms;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// What is decided so far about the awaited tasks.
enum Verdict {
    /// The condition is met by completed tasks.
    Met,
    /// A failure, cancellation or stall decided it; the message says which.
    Failed(String),
    Waiting,
}

/// What the awaited tasks must reach: all, any one, or N of them completed.
#[derive(Clone, Copy)]
pub enum Condition {
    All,
    Any,
    Count(u64),
}

/// The awaited tasks as last read.
pub struct State {
    pub tasks: Vec<Task>,
    pub stalled: Stalled,
    /// When the lease of an awaited task's claim runs out (no commit tells of that).
    recheck: Option<Instant>,
    /// The processes of this host holding awaited tasks: one may die without a commit.
    holders: Vec<Holder>,
}

impl State {
    fn read(store: &mut dyn Store, list: &ListId, ids: &[TaskId], me: &str) -> Result<State> {
        let filter = Filter {
            ids: ids.to_vec(),
            ..Filter::default()
        };
        let mut tasks = store.tasks(list, &filter)?;
        // A lost claim is recovered here, so that a waiter sees its task go back to
        // pending, or fail with no attempt left, without anyone else writing.
        let now = now_ms();
        if tasks
            .iter()
            .any(|t| loss(t, now, me, &host::is_alive).is_some())
        {
            store.reap(list, "task-wait", me, &host::is_alive)?;
            tasks = store.tasks(list, &filter)?;
        }
        let held = || tasks.iter().filter(|t| t.status == Status::InProgress);
        let recheck = held()
            .filter_map(|t| t.lease_until)
            .min()
            .map(|until| Instant::now() + Duration::from_millis((until - now).max(0) as u64 + 1));
        let mut holders: Vec<Holder> = held()
            .filter_map(|t| t.holder.clone())
            .filter(|h| h.host == me)
            .collect();
        holders.dedup();
        let stalled = stalled_among(store, list, &tasks)?;
        Ok(State {
            tasks,
            stalled,
            recheck,
            holders,
        })
    }

    fn settled(&self, t: &Task) -> bool {
        t.status.is_terminal() || self.stalled.contains_key(&t.id)
    }

    fn count(&self, f: impl Fn(&Task) -> bool) -> u64 {
        self.tasks.iter().filter(|t| f(t)).count() as u64
    }

    fn names(&self, f: impl Fn(&Task) -> bool) -> String {
        let v: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| f(t))
            .map(|t| t.id.to_string())
            .collect();
        v.join(", ")
    }

    /// Why the wait ended badly: the failed tasks, then the stalled ones.
    fn failure(&self) -> String {
        let failed = self.names(|t| matches!(t.status, Status::Failed | Status::Cancelled));
        let stalled = self.names(|t| self.stalled.contains_key(&t.id));
        match (failed.is_empty(), stalled.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!("failed or cancelled: {failed}"),
            (true, false) => format!("stalled: {stalled}"),
            _ => format!("failed or cancelled: {failed}; stalled (blocked by them): {stalled}"),
        }
    }

    fn verdict(&self, cond: Condition, fail_fast: bool) -> Verdict {
        let completed = self.count(|t| t.status == Status::Completed);
        let failed = self.count(|t| matches!(t.status, Status::Failed | Status::Cancelled));
        let open = self.count(|t| !self.settled(t));
        if fail_fast && failed > 0 {
            return Verdict::Failed(self.failure());
        }
        match cond {
            Condition::All if open == 0 => {
                if completed == self.tasks.len() as u64 {
                    Verdict::Met
                } else {
                    Verdict::Failed(self.failure())
                }
            }
            Condition::Any if completed > 0 => Verdict::Met,
            // Decided from the tasks that exist: with none, --any cannot be met.
            Condition::Any if self.tasks.is_empty() => {
                Verdict::Failed("no tasks to wait for, so --any cannot be met".into())
            }
            Condition::Any if failed > 0 || open == 0 => Verdict::Failed(self.failure()),
            Condition::Count(n) if completed >= n => Verdict::Met,
            Condition::Count(n) if completed + open < n => {
                let why = self.failure();
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!("; {why}")
                };
                Verdict::Failed(format!(
                    "{n} completed tasks can no longer be reached: {completed} completed, {open} still open{why}"
                ))
            }
            _ => Verdict::Waiting,
        }
    }

    fn progress(&self, started: Instant) -> String {
        format!(
            "task-wait: {}/{} done, {} running, {} failed, {:.1}s",
            self.count(|t| t.status.is_terminal()),
            self.tasks.len(),
            self.count(|t| t.status == Status::InProgress),
            self.count(|t| matches!(t.status, Status::Failed | Status::Cancelled)),
            started.elapsed().as_secs_f64()
        )
    }
}

pub fn run(args: WaitArgs, out: &mut dyn Write) -> Result<u8> {
    if args.graph && args.format != WaitFormat::Md {
        bail!(usage, "--graph goes with --format md");
    }
    if args.max_chars.is_some() && args.format != WaitFormat::Md {
        bail!(usage, "--max-chars goes with --format md");
    }
    let signals = Signals::install()?;
    let ids = Stdin::default().ids(&args.ids)?;
    let cond = match (args.any, args.count) {
        (true, _) => Condition::Any,
        (_, Some(n)) => Condition::Count(n),
        _ => Condition::All,
    };
    // `-` with no ids on stdin awaits no task (not every task of the list), like
    // `task-list -` and `xargs -r`: all of nothing is done; any or N of nothing never is.
    if ids.is_empty() && args.ids.iter().any(|i| i == "-") {
        output_state(out, &args, &[], &Stalled::new(), None)?;
        if let Condition::All = cond {
            return Ok(0);
        }
        eprintln!("task-wait: no task ids on standard input, so --any or --count cannot be met");
        return Ok(Kind::Negative.exit_code());
    }
    let show_progress = !args.no_progress && (args.progress || std::io::stderr().is_terminal());
    let started = Instant::now();
    let mut store = args.store.open(crate::store::Access::Read)?;
    store.keep_trying(args.timeout.unwrap_or(crate::store::PATIENCE));
    let wait = Wait {
        list: &args.store.list,
        ids: &ids,
        cond,
        fail_fast: args.fail_fast,
        deadline: args.timeout.map(|t| started + t),
        slice: Duration::MAX,
    };
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let (ending, mut state) = wait.run(store.as_mut(), |state| {
        if let Some(sig) = signals.received() {
            return Some(signals::exit_code(sig));
        }
        if show_progress && last_progress.elapsed() >= Duration::from_millis(200) {
            eprint!("\r{}\x1b[K", state.progress(started));
            last_progress = Instant::now();
        }
        None
    })?;
    clear_progress(show_progress);
    let code = match ending {
        Ending::Met => 0,
        Ending::Failed(why) => {
            eprintln!("task-wait: {why}");
            Kind::Negative.exit_code()
        }
        Ending::Stopped(code) => return Ok(code),
        Ending::Timeout => {
            eprintln!(
                "task-wait: timed out after {}",
                humantime::format_duration(args.timeout.unwrap_or_default())
            );
            Kind::Timeout.exit_code()
        }
    };
    if code == 0 && args.cancel_rest {
        state = cancel_rest(store.as_mut(), &args, &ids, state)?;
    }
    output_state(
        out,
        &args,
        &state.tasks,
        &state.stalled,
        Some(store.as_mut()),
    )?;
    Ok(code)
}

/// How a wait ended.
pub enum Ending {
    /// The condition is met by completed tasks.
    Met,
    /// A failure, cancellation or stall decided it; the message says which.
    Failed(String),
    /// The deadline passed first.
    Timeout,
    /// The caller's check asked to stop, with this exit code (a signal).
    Stopped(u8),
}

/// One wait for tasks of a list: what `task-wait` and the MCP server's `task_wait` share.
pub struct Wait<'a> {
    pub list: &'a ListId,
    /// The awaited tasks; none: every task of the list.
    pub ids: &'a [TaskId],
    pub cond: Condition,
    pub fail_fast: bool,
    pub deadline: Option<Instant>,
    /// The longest sleep between two calls of the caller's check.
    pub slice: Duration,
}

impl Wait<'_> {
    /// Wait, woken by the store's change signal, until the condition is met or decided
    /// otherwise, or the deadline passes, or `check` (called between sleeps with the
    /// state as last read) gives an exit code to stop with. A list that was never made
    /// is not found: nothing to wait for there is a typo, not success.
    pub fn run(
        &self,
        store: &mut dyn Store,
        mut check: impl FnMut(&State) -> Option<u8>,
    ) -> Result<(Ending, State)> {
        let me = host::hostname();
        let list = self.list;
        let mut waker = Waker::new(store, list)?;
        let mut state = State::read(store, list, self.ids, &me)?;
        if state.tasks.is_empty() {
            if let Some(msg) = crate::store::unknown_list(store, list)? {
                return Err(crate::Error::not_found(msg));
            }
        }
        let mut last_alive = Instant::now();
        loop {
            match state.verdict(self.cond, self.fail_fast) {
                Verdict::Met => return Ok((Ending::Met, state)),
                Verdict::Failed(why) => return Ok((Ending::Failed(why), state)),
                Verdict::Waiting => {}
            }
            // Sleep until the next commit, the deadline or a stop.
            loop {
                if let Some(code) = check(&state) {
                    return Ok((Ending::Stopped(code), state));
                }
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok((Ending::Timeout, state));
                }
                if state.recheck.is_some_and(|r| Instant::now() >= r) {
                    break; // a lease ran out: read again
                }
                if last_alive.elapsed() >= Duration::from_secs(1) {
                    last_alive = Instant::now();
                    if !state.holders.iter().all(host::is_alive) {
                        break; // a holder died: read again
                    }
                }
                let until = match (self.deadline, state.recheck) {
                    (Some(d), Some(r)) => Some(d.min(r)),
                    (d, r) => d.or(r),
                };
                let left = until.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                if waker.sleep(store, list, left.min(self.slice))? {
                    break;
                }
            }
            state = State::read(store, list, self.ids, &me)?;
        }
    }
}

/// `--cancel-rest`: cancel the awaited tasks still open, all in one transaction. A task
/// that closes meanwhile makes the compare-and-set fail: read again and retry.
fn cancel_rest(
    store: &mut dyn Store,
    args: &WaitArgs,
    ids: &[TaskId],
    mut state: State,
) -> Result<State> {
    let me = host::hostname();
    let list = &args.store.list;
    let cancel = crate::store::Update {
        status: Some(Status::Cancelled),
        if_status: vec![Status::Pending, Status::InProgress],
        log_line: Some("cancelled by task-wait --cancel-rest: the wait was satisfied".into()),
        by: Some("task-wait".into()),
        ..Default::default()
    };
    loop {
        let open: Vec<TaskId> = state
            .tasks
            .iter()
            .filter(|t| !t.status.is_terminal())
            .map(|t| t.id)
            .collect();
        if open.is_empty() {
            return Ok(state);
        }
        match store.update(list, &open, &cancel) {
            Err(e) if e.kind == Kind::Conflict => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        state = State::read(store, list, ids, &me)?;
    }
}

fn clear_progress(shown: bool) {
    if shown {
        eprint!("\r\x1b[K");
    }
}

fn output_state(
    out: &mut dyn Write,
    args: &WaitArgs,
    tasks: &[Task],
    stalled: &Stalled,
    store: Option<&mut dyn crate::store::Store>,
) -> Result<()> {
    let max_chars = args.max_chars;
    match args.format {
        WaitFormat::Text => output::write_text(out, tasks),
        WaitFormat::Json => output::write_json(out, tasks),
        WaitFormat::Jsonl => output::write_jsonl(out, tasks),
        WaitFormat::Ids => output::write_ids(out, tasks.iter().map(|t| t.id)),
        WaitFormat::Html => match store {
            Some(store) => crate::html::write(out, store, &args.store.list, tasks, stalled),
            None => {
                let page = crate::html::render(
                    &args.store.list,
                    tasks,
                    stalled,
                    &[],
                    crate::time::now_ms(),
                );
                Ok(out.write_all(page.as_bytes())?)
            }
        },
        WaitFormat::Md => {
            let everything = "`task-wait … --format md --max-chars 0` shows every task in full, \
                `task-list ID --format json` one";
            let history = match store {
                Some(store) => report::history(store, &args.store.list, tasks)?,
                None => Default::default(),
            };
            report::write(
                out,
                tasks,
                stalled,
                &history,
                max_chars.unwrap_or(report::MAX_CHARS),
                everything,
                args.graph,
            )
        }
    }
}
