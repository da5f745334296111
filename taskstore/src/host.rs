//! Who holds a claim: host name, pid and process start time, so that a claim of a
//! process that is gone (kill -9, OOM, reboot) is recovered at once on this host, and a
//! reused pid is not mistaken for the dead holder.

use crate::model::Holder;

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The user running us, as a task's history names them: `$USER`, else `$LOGNAME`, else
/// the numeric uid.
pub fn user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            // /proc/self belongs to our effective uid.
            std::fs::metadata("/proc/self").map_or("unknown".into(), |m| m.uid().to_string())
        })
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); None
/// when there is no such process or it has exited and waits to be reaped (a zombie, state
/// Z or X: it can hold nothing any more).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// This process as a claim holder.
pub fn me(host: &str) -> Holder {
    let pid = std::process::id();
    Holder {
        host: host.to_string(),
        pid,
        started: start_time(pid).unwrap_or(0),
    }
}

/// Whether the holder (a process on this host) still runs. Without /proc (start time
/// 0, unknown) every holder is taken to be alive: its lease will tell.
pub fn is_alive(h: &Holder) -> bool {
    if h.started == 0 {
        return true;
    }
    start_time(h.pid) == Some(h.started)
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_is_alive_and_a_changed_start_time_is_not() {
        let mut me = super::me("h");
        assert!(me.started > 0);
        assert!(super::is_alive(&me));
        me.started += 1;
        assert!(!super::is_alive(&me));
    }
}
