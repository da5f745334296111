//! `task-sync`: keep one list and Claude Code's own task files for it (`pass.rs`), or a
//! queue folder of markdown items (`--queue`: `queue.rs`, `queue_pass.rs`), in step. A
//! pass reads both sides and brings each up to date; `--follow` runs one at every change
//! of either side: the folder's notifications (`notify.rs`) and the store's change
//! signal, as `task-wait` wakes on it.
//!
//! Two task-syncs on one folder take turns, a pass each, through an flock on
//! `<dir>/.task-sync.lock` (Claude Code ignores files that are not `<n>.json`): each pass
//! then sees the pairs the other recorded.

mod fields;
mod notify;
mod pass;
mod queue;
mod queue_pass;

use crate::claude::{self, Dir};
use crate::cli::SyncArgs;
use crate::error::{Error, Result};
use crate::signals::{self, Signals};
use crate::store::{Access, Store, PATIENCE};
use nix::fcntl::{Flock, FlockArg};
use notify::Notify;
use pass::{Bridge, Pass};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest `--follow` goes without a pass: a backstop for a change no signal told
/// of. Long, as a pass over a big list costs tens of milliseconds and neither signal
/// loses changes (an overflow of inotify's queue counts as a change).
const BACKSTOP: Duration = Duration::from_secs(60);

/// Without notifications, the folder is read this often.
const POLL: Duration = Duration::from_secs(1);

/// How long a burst of writes is given to end before the pass it triggers.
const SETTLE: Duration = Duration::from_millis(20);

/// How often a pass that lost a race for a new file is run again at once.
const AGAIN: usize = 5;

/// The other side of a list: Claude Code's task files, or a queue folder.
enum Side<'a> {
    Claude(Bridge<'a>),
    Queue(queue_pass::Queue<'a>),
}

impl Side<'_> {
    fn store(&mut self) -> &mut dyn Store {
        match self {
            Side::Claude(b) => b.store,
            Side::Queue(q) => q.store,
        }
    }

    fn pass(&mut self, out: &mut dyn Write, stop: &dyn Fn() -> bool) -> Result<Pass> {
        match self {
            Side::Claude(b) => b.pass(out, stop),
            Side::Queue(q) => q.pass(out),
        }
    }
}

pub fn run(args: SyncArgs, out: &mut dyn Write) -> Result<u8> {
    let signals = Signals::install()?;
    let stop = || signals.received().is_some();
    let list = &args.store.list;
    let path = match (&args.queue, &args.dir) {
        (Some(q), _) => q.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => claude::default_dir(list)?,
    };
    // The store first: a store that fails leaves no folder behind.
    let mut store = args.store.open(Access::Create)?;
    let (dir, folder) = match args.queue {
        Some(_) => (None, Some(queue::Folder::open(path.clone())?)),
        None => (Some(Dir::open(path.clone())?), None),
    };
    if args.follow {
        store.keep_trying(PATIENCE);
    }
    // What wakes a pass: Claude Code's task files and its high-water mark; any item
    // (hidden names are ours or temporary).
    let counts: fn(&str) -> bool = match args.queue {
        Some(_) => |n| !n.starts_with('.'),
        None => |n| n == ".highwatermark" || claude::file_id(n).is_some(),
    };
    let mut notify = args.follow.then(|| Notify::new(&path, counts)).flatten();
    let mut side = match (&dir, &folder) {
        (Some(dir), _) => {
            let mut b = Bridge::new(store.as_mut(), list, dir);
            b.import = !args.export_only;
            b.export = !args.import_only;
            b.verbose = args.verbose;
            Side::Claude(b)
        }
        (None, Some(folder)) => {
            let mut q = queue_pass::Queue::new(store.as_mut(), list, folder);
            q.import = !args.export_only;
            q.export = !args.import_only;
            q.verbose = args.verbose;
            Side::Queue(q)
        }
        (None, None) => unreachable!("one side is open"),
    };
    while !stop() {
        let seen = side.store().change_counter(list)?;
        let Some(turn) = take_turn(&path, &stop)? else {
            break;
        };
        for _ in 0..AGAIN {
            if side.pass(out, &stop)? != Pass::Again {
                break;
            }
        }
        drop(turn);
        if !args.follow {
            break;
        }
        wait(side.store(), list, seen, notify.as_mut(), &stop)?;
    }
    Ok(signals.received().map(signals::exit_code).unwrap_or(0))
}

/// A problem with one file or one edit, on stderr; the pass goes on.
fn problem(what: impl std::fmt::Display) {
    eprintln!("task-sync: {what}");
}

/// With `-v`, what a pass changed: a line on stdout, at once.
fn say(out: &mut dyn Write, verbose: bool, what: impl std::fmt::Display) -> Result<()> {
    if verbose {
        writeln!(out, "{what}")?;
        out.flush()?;
    }
    Ok(())
}

/// Apply an edit from the folder's side, made by `task-sync` as the history says. One
/// the store refuses (the task changed meanwhile, or the edit is not allowed) is said on
/// stderr after `refused`, and the store's state stands: false.
fn apply(
    store: &mut dyn Store,
    list: &crate::model::ListId,
    id: crate::model::TaskId,
    u: &crate::store::Update,
    refused: impl std::fmt::Display,
) -> Result<bool> {
    let u = crate::store::Update {
        by: Some("task-sync".into()),
        ..u.clone()
    };
    match store.update(list, &[id], &u) {
        Ok(_) => Ok(true),
        Err(e) if e.kind != crate::Kind::Store => {
            problem(format_args!("{refused}: {e}"));
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Sleep until either side may have changed: a task file (notification), the store
/// (its change counter moved past `seen`), the backstop, or a signal.
fn wait(
    store: &mut dyn Store,
    list: &crate::model::ListId,
    seen: u64,
    mut notify: Option<&mut Notify>,
    stop: &dyn Fn() -> bool,
) -> Result<()> {
    let until = Instant::now() + if notify.is_some() { BACKSTOP } else { POLL };
    while !stop() && Instant::now() < until {
        if let Some(n) = notify.as_deref_mut() {
            if n.changed() {
                std::thread::sleep(SETTLE);
                n.changed();
                return Ok(());
            }
        }
        if store.change_counter(list)? != seen {
            return Ok(());
        }
        store.wait_change(list, Duration::from_millis(200))?;
    }
    Ok(())
}

/// Take this folder's turn (see the module's note); None when told to stop first.
fn take_turn(dir: &Path, stop: &dyn Fn() -> bool) -> Result<Option<Flock<std::fs::File>>> {
    let path = dir.join(".task-sync.lock");
    let cannot =
        |e: &dyn std::fmt::Display| Error::usage(format!("cannot lock {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| cannot(&e))?;
    let mut nap = Duration::from_millis(2);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(turn) => return Ok(Some(turn)),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => file = f,
            Err((_, e)) => return Err(cannot(&e)),
        }
        if stop() {
            return Ok(None);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}
