//! Pools that can be seen and stopped: every worker-spawn records itself in the store
//! while it runs (`task-list --workers`), and `worker-spawn --stop` ends this host's
//! pools on a list.

use crate::cli::SpawnArgs;
use crate::error::Result;
use crate::host;
use crate::model::Holder;
use crate::store::{Pool, Store};
use crate::time::now_ms;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Map};
use std::io::Write;
use std::time::{Duration, Instant};

/// How often a running pool says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// This process's row in the pools table.
pub fn me(args: &SpawnArgs, holder: &Holder, log: Option<&str>) -> Pool {
    let now = now_ms();
    let mut options = Map::new();
    options.insert("jobs".into(), json!(args.jobs));
    options.insert("command".into(), json!(args.command));
    options.insert("detached".into(), json!(args.detach));
    options.insert("follow".into(), json!(args.follow));
    if let Some(p) = &args.owner_prefix {
        options.insert("ownerPrefix".into(), json!(p));
    }
    if let Some(l) = log {
        options.insert("log".into(), json!(l));
    }
    Pool {
        holder: holder.clone(),
        list: args.store.list.to_string(),
        options,
        started_at: now,
        seen_at: now,
    }
}

/// Whether a recorded pool still runs: on this host, its process is there (pid and
/// start time, as for claim holders); on another, it said so within three heartbeats.
pub fn alive(p: &Pool, this_host: &str, now: i64) -> bool {
    if p.holder.host == this_host {
        return host::is_alive(&p.holder);
    }
    now - p.seen_at <= 3 * HEARTBEAT.as_millis() as i64
}

/// Forget the pools of this host that are gone (killed without a chance to say so).
pub fn forget_dead(store: &mut dyn Store, this_host: &str) -> Result<()> {
    let now = now_ms();
    for p in store.pools(None)? {
        if p.holder.host == this_host && !alive(&p, this_host, now) {
            store.pool_remove(&p.holder)?;
        }
    }
    Ok(())
}

/// `worker-spawn --stop`: SIGTERM to this host's pools on the list, then wait for them to
/// hand their tasks back and end (at most `--timeout`, default 30 s); one still there is
/// killed (exit 1).
pub fn stop(args: &SpawnArgs, _out: &mut dyn Write) -> Result<u8> {
    let mut store = args.store.open(crate::store::Access::Write)?;
    let limit = args.timeout.unwrap_or(Duration::from_secs(30));
    let ended = stop_pools(store.as_mut(), &args.store.list, limit)?;
    if ended.is_empty() {
        eprintln!(
            "worker-spawn: no pool is running on list '{}' on this host",
            args.store.list
        );
    }
    for (p, killed) in &ended {
        match killed {
            false => eprintln!("worker-spawn: pool {} stopped", p.holder.pid),
            true => eprintln!(
                "worker-spawn: pool {} did not end within {} of SIGTERM: killed",
                p.holder.pid,
                humantime::format_duration(limit)
            ),
        }
    }
    match ended.iter().any(|(_, killed)| *killed) {
        true => Ok(crate::Kind::Negative.exit_code()),
        false => Ok(0),
    }
}

/// Stop this host's pools on `list`: SIGTERM, up to `limit` for them to hand their tasks
/// back and end, then SIGKILL for any still there. Returns each pool and whether it had
/// to be killed.
pub fn stop_pools(
    store: &mut dyn Store,
    list: &crate::model::ListId,
    limit: Duration,
) -> Result<Vec<(Pool, bool)>> {
    let me = host::hostname();
    let now = now_ms();
    let pools: Vec<Pool> = store
        .pools(Some(list))?
        .into_iter()
        .filter(|p| p.holder.host == me && alive(p, &me, now))
        .collect();
    if pools.is_empty() {
        return Ok(Vec::new());
    }
    for p in &pools {
        let _ = kill(Pid::from_raw(p.holder.pid as i32), Signal::SIGTERM);
    }
    wait_gone(&pools, limit);
    let ended: Vec<(Pool, bool)> = pools
        .into_iter()
        .map(|p| {
            let stubborn = host::is_alive(&p.holder);
            (p, stubborn)
        })
        .collect();
    let stubborn: Vec<&Pool> = ended.iter().filter(|e| e.1).map(|e| &e.0).collect();
    if stubborn.is_empty() {
        return Ok(ended);
    }
    for p in &stubborn {
        let _ = kill(Pid::from_raw(p.holder.pid as i32), Signal::SIGKILL);
    }
    wait_gone(stubborn, Duration::from_secs(2));
    forget_dead(store, &me)?;
    Ok(ended)
}

/// Wait until every one of `pools` has ended, or `limit` passed.
fn wait_gone<'a>(pools: impl IntoIterator<Item = &'a Pool> + Clone, limit: Duration) {
    let end = Instant::now() + limit;
    while Instant::now() < end && pools.clone().into_iter().any(|p| host::is_alive(&p.holder)) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
