//! `task-update`: edits, claim, release, delete.

use super::Stdin;
use crate::bail;
use crate::cli::{UpdateArgs, UpdateFormat};
use crate::error::{Kind, Result};
use crate::model::{Status, Task};
use crate::output;
use crate::store::{Claim, OwnerChange, Release, Update};
use std::io::Write;
use std::time::{Duration, Instant};

pub fn run(a: UpdateArgs, out: &mut dyn Write) -> Result<u8> {
    let mut stdin = Stdin::default();
    let ids = stdin.ids(&a.ids)?;
    let list = a.store.list.clone();
    let edits = [
        ("--status", a.status.is_some()),
        ("--no-owner", a.no_owner),
        ("--subject", a.subject.is_some()),
        ("--description", a.description.is_some()),
        ("--active-form", a.active_form.is_some()),
        ("--priority", a.priority.is_some()),
        ("--max-attempts", a.max_attempts.is_some()),
        ("--add-blocked-by", !a.add_blocked_by.is_empty()),
        ("--remove-blocked-by", !a.remove_blocked_by.is_empty()),
        ("--add-blocks", !a.add_blocks.is_empty()),
        ("--remove-blocks", !a.remove_blocks.is_empty()),
        ("--scope", !a.scope.is_empty()),
        ("--remove-scope", !a.remove_scope.is_empty()),
        ("--result", a.result.is_some()),
        ("--verify", a.verify.is_some()),
        ("--note", a.note.is_some()),
    ];
    let first_edit = edits.iter().find(|(_, given)| *given).map(|(f, _)| *f);
    // --release and --delete change nothing else: a --meta or --lease would be lost.
    let other_change = first_edit
        .or(a.metadata.first().map(|_| "--meta"))
        .or(a.lease.map(|_| "--lease"));

    if a.claim {
        if let Some(flag) = first_edit.or(a.if_status.first().map(|_| "--if-status")) {
            bail!(usage, "--claim cannot be combined with {flag}");
        }
        if ids.is_empty() && a.ids.iter().any(|i| i == "-") {
            // `-` with nothing on stdin names no task: claim nothing, not any task.
            return Ok(Kind::Negative.exit_code());
        }
        if ids.len() > 1 {
            bail!(
                usage,
                "--claim takes at most one task id, got {}",
                ids.len()
            );
        }
        let mut matching = Vec::new();
        for (k, v) in a.metadata {
            match v {
                Some(v) => matching.push((k, v)),
                None => bail!(usage, "--meta {k}= has no value to match in a claim"),
            }
        }
        let claim = Claim {
            owner: a.owner.unwrap_or_default(),
            id: ids.first().copied(),
            matching,
            limits: a.limit,
            lease: a.lease,
            holder: None,
            output_dir: None,
        };
        let mut store = a.store.open(crate::store::Access::Write)?;
        let claimed = match a.wait {
            false => store.claim(&list, &claim)?,
            true => {
                let deadline = a.timeout.map(|t| Instant::now() + t);
                match claim_waiting(store.as_mut(), &claim, &list, deadline, &|| false)? {
                    Claimed::Task(task) => Some(*task),
                    Claimed::Nothing => None,
                    Claimed::Timeout => {
                        eprintln!(
                            "task-update: no task became claimable within {}",
                            humantime::format_duration(a.timeout.unwrap_or_default())
                        );
                        return Ok(Kind::Timeout.exit_code());
                    }
                }
            }
        };
        return match claimed {
            Some(task) => {
                print(out, a.format.unwrap_or(UpdateFormat::Ids), &[task])?;
                Ok(0)
            }
            // Nothing to claim is an answer, not an error: exit 1 and say nothing, as
            // grep finding nothing, so a shell worker loop ends quietly.
            None => Ok(Kind::Negative.exit_code()),
        };
    }

    if ids.is_empty() {
        if a.ids.iter().any(|i| i == "-") {
            return Ok(0); // `-` with nothing on stdin: nothing to do, like `xargs -r`
        }
        bail!(
            usage,
            "no task ids given (pass ids, or - to read them from stdin)"
        );
    }

    if a.release {
        if let Some(flag) = other_change {
            bail!(usage, "--release cannot be combined with {flag}");
        }
        let mut store = a.store.open(crate::store::Access::Write)?;
        let release = Release {
            by: Some(crate::host::user()),
            owner: a.owner,
            token: a.token,
            if_status: a.if_status,
        };
        let tasks = store.release(&list, &ids, &release)?;
        return print_if(out, a.format, &tasks);
    }

    if a.delete {
        if let Some(flag) = other_change
            .or(a.owner.as_ref().map(|_| "--owner"))
            .or(a.token.map(|_| "--token"))
        {
            bail!(usage, "--delete cannot be combined with {flag}");
        }
        let mut store = a.store.open(crate::store::Access::Write)?;
        store.delete(&list, &ids, &a.if_status)?;
        return Ok(0);
    }

    // With --note, --owner names the note's author: a note changes no owner.
    let (author, owner) = match a.note {
        Some(_) => (a.owner, None),
        None => (None, a.owner),
    };
    let by = changed_by(author, a.token, owner.as_deref(), a.status);
    let update = Update {
        status: a.status,
        owner: match (owner, a.no_owner) {
            (Some(o), _) => OwnerChange::Set(o),
            (None, true) => OwnerChange::Clear,
            (None, false) => OwnerChange::Keep,
        },
        subject: a.subject,
        description: stdin.text(a.description, "--description -")?,
        active_form: a.active_form,
        priority: a.priority,
        max_attempts: a.max_attempts,
        metadata: a.metadata,
        add_blocked_by: a.add_blocked_by,
        remove_blocked_by: a.remove_blocked_by,
        add_blocks: a.add_blocks,
        remove_blocks: a.remove_blocks,
        add_scopes: a.scope,
        remove_scopes: a.remove_scope,
        result: stdin.text(a.result, "--result -")?,
        verify: a.verify,
        log_line: None,
        note: match stdin.text(a.note, "--note -")? {
            Some(n) if n.trim().is_empty() => bail!(usage, "the note is empty"),
            n => n,
        },
        by,
        if_status: a.if_status,
        token: a.token,
        lease: a.lease,
    };
    if first_edit.is_none()
        && update.owner == OwnerChange::Keep
        && update.metadata.is_empty()
        && update.lease.is_none()
    {
        bail!(
            usage,
            "nothing to change: give --status, --owner, --meta, --result or another edit"
        );
    }
    let mut store = a.store.open(crate::store::Access::Write)?;
    let tasks = store.update(&list, &ids, &update)?;
    print_if(out, a.format, &tasks)
}

/// Who makes a change, as the task's history records it: a note's author; a change made
/// under a claim (its token, or its owner with a final status) is the holder's own (None:
/// the store names the holder); anything else is the user's.
pub fn changed_by(
    note_author: Option<String>,
    token: Option<i64>,
    owner: Option<&str>,
    status: Option<Status>,
) -> Option<String> {
    match (note_author, token, owner) {
        (Some(author), _, _) => Some(author),
        (None, Some(_), _) => None,
        (None, None, Some(o)) if status.is_some_and(|s| s.is_terminal()) => Some(o.to_string()),
        _ => Some(crate::host::user()),
    }
}

/// How a waiting claim ended.
pub enum Claimed {
    Task(Box<Task>),
    /// Nothing open is left that could still become claimable.
    Nothing,
    /// The deadline passed, or `stop` said to stop.
    Timeout,
}

/// `--claim --wait`: claim, else sleep until the list changes (or a lease may have run
/// out: at least every second) and try again. Ends with the task, with nothing once
/// nothing open is left that could still become claimable (every open task stalled behind
/// a failure counts as nothing), or at the deadline (or when `stop` says so).
pub fn claim_waiting(
    store: &mut dyn crate::store::Store,
    claim: &Claim,
    list: &crate::model::ListId,
    deadline: Option<Instant>,
    stop: &dyn Fn() -> bool,
) -> Result<Claimed> {
    use crate::model::StatusFilter;
    let mut waker = super::waker::Waker::new(store, list)?;
    let open = crate::store::Filter {
        statuses: vec![StatusFilter::Open],
        ..Default::default()
    };
    loop {
        if let Some(task) = store.claim(list, claim)? {
            return Ok(Claimed::Task(Box::new(task)));
        }
        // With nothing in progress, nothing will change by itself: done when no pending
        // task is ours to take (none matches the claim's --meta, or all are stalled).
        let counts = store.counts(list, &open)?;
        if counts.get(Status::InProgress) == 0 {
            let pending = counts.get(Status::Pending);
            let ours = crate::store::Filter {
                statuses: vec![StatusFilter::Is(Status::Pending)],
                metadata: claim.matching.clone(),
                ..Default::default()
            };
            if pending == 0
                || store.counts(list, &ours)?.total() == 0
                || store.stalled(list)?.len() as u64 >= pending
            {
                return Ok(Claimed::Nothing);
            }
        }
        // Sleep until a commit, the deadline or a second (a lease may run out unseen).
        let mut nap = Duration::from_secs(1);
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Claimed::Timeout);
            }
            nap = nap.min(left);
        }
        if stop() {
            return Ok(Claimed::Timeout);
        }
        let until = Instant::now() + nap;
        while Instant::now() < until && !waker.sleep(store, list, until - Instant::now())? {}
    }
}

fn print_if(out: &mut dyn Write, format: Option<UpdateFormat>, tasks: &[Task]) -> Result<u8> {
    if let Some(f) = format {
        print(out, f, tasks)?;
    }
    Ok(0)
}

fn print(out: &mut dyn Write, format: UpdateFormat, tasks: &[Task]) -> Result<()> {
    match format {
        UpdateFormat::Ids => output::write_ids(out, tasks.iter().map(|t| t.id)),
        UpdateFormat::Json => output::write_json(out, tasks),
        UpdateFormat::Jsonl => output::write_jsonl(out, tasks),
        UpdateFormat::Env => output::write_env(out, tasks),
    }
}
