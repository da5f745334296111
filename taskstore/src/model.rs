//! The task and the small value types around it: ids, statuses, list ids.

use crate::bail;
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// A task id: a positive integer, per list. Accepted as `3` or `#3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub i64);

impl FromStr for TaskId {
    type Err = Error;
    fn from_str(s: &str) -> Result<TaskId> {
        let digits = s.strip_prefix('#').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(TaskId(n)),
            _ => bail!(
                usage,
                "invalid task id '{s}' (expected a positive integer such as 3 or #3)"
            ),
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Whether `s` is shaped like a task id: digits, or anything after `#`. Such a text is
/// never a key, so a reference (`-b`, `blockedBy`) is an id or a key, never both.
fn looks_like_id(s: &str) -> bool {
    s.starts_with('#') || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Check a task key (`--key`, a batch record's `key`): a name, unique within its list,
/// that other records and commands can refer to. Not empty, not shaped like a task id
/// (`3`, `#3`, `#x`, `0`), no control characters (newlines included), and no white
/// space at either end.
pub fn check_key(key: &str) -> Result<()> {
    let why = if key.is_empty() {
        "it is empty"
    } else if looks_like_id(key) {
        "it looks like a task id (a key may not be all digits or start with '#')"
    } else if key.chars().any(char::is_control) {
        "it contains a control character (a newline, tab, …)"
    } else if key.trim() != key {
        "it begins or ends with white space"
    } else {
        return Ok(());
    };
    bail!(usage, "invalid key '{}': {why}", key.escape_debug())
}

/// A write scope in its one spelling: a path relative to the repository root (or a
/// resource name), with `.` segments, empty segments and a trailing `/` dropped; `.` for
/// the whole repository. `..` and absolute paths are refused: a scope never leaves the
/// repository.
pub fn normalize_scope(raw: &str) -> Result<String> {
    let bad = |why: &str| -> Result<String> {
        bail!(usage, "invalid scope '{}': {why}", raw.escape_debug())
    };
    if raw.is_empty() {
        return bad("it is empty");
    }
    if raw.starts_with('/') {
        return bad("it is absolute (give a path relative to the repository root)");
    }
    if raw.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    let mut parts = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => return bad("'..' leaves the repository"),
            s => parts.push(s),
        }
    }
    Ok(match parts.is_empty() {
        true => ".".into(),
        false => parts.join("/"),
    })
}

/// The keys a scope is indexed under: the scope itself (exact), and each folder above
/// it up to `.` (not exact). Two scopes conflict exactly when they share a key that is
/// exact for at least one of them: equal, or one a folder prefix of the other.
pub fn scope_keys(scope: &str) -> Vec<(String, bool)> {
    let mut keys = vec![(scope.to_string(), true)];
    if scope != "." {
        keys.push((".".into(), false));
        for (i, _) in scope.match_indices('/') {
            keys.push((scope[..i].to_string(), false));
        }
    }
    keys
}

/// Whether two normalised scopes conflict (the rule the claim applies in SQL).
pub fn scopes_conflict(a: &str, b: &str) -> bool {
    let ka = scope_keys(a);
    scope_keys(b)
        .iter()
        .any(|(k, exact)| ka.iter().any(|(j, e)| j == k && (*e || *exact)))
}

/// A task named on the command line or in a batch: by id (`3`, `#3`), or by its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskRef {
    Id(TaskId),
    Key(String),
}

impl FromStr for TaskRef {
    type Err = Error;
    /// `3` and `#3` are ids (a bad one is an invalid id); any other text is a key.
    fn from_str(s: &str) -> Result<TaskRef> {
        if looks_like_id(s) {
            return Ok(TaskRef::Id(s.parse()?));
        }
        check_key(s)?;
        Ok(TaskRef::Key(s.to_string()))
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskRef::Id(id) => id.fmt(f),
            TaskRef::Key(k) => write!(f, "key '{k}'"),
        }
    }
}

/// What `task-create` does with a record whose key a task of the list already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnConflict {
    /// Create nothing for it and print the existing task's id
    #[default]
    Existing,
    /// Exit 4 and create nothing at all
    Error,
}

/// A list id: 1–128 characters of `[A-Za-z0-9._:@+=-]`, not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListId(String);

impl ListId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ListId {
    type Err = Error;
    fn from_str(s: &str) -> Result<ListId> {
        if s.is_empty() {
            bail!(usage, "invalid list id: it is empty");
        }
        if let Some(c) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "._:@+=-".contains(c)))
        {
            bail!(
                usage,
                "invalid list id '{}': character {:?} is not allowed (use A-Z a-z 0-9 . _ : @ + = -)",
                s.escape_debug(),
                c
            );
        }
        if s.len() > 128 {
            bail!(
                usage,
                "invalid list id: {} characters, at most 128 allowed",
                s.len()
            );
        }
        if s.starts_with('.') {
            bail!(usage, "invalid list id '{s}': it may not start with '.'");
        }
        Ok(ListId(s.to_string()))
    }
}

impl fmt::Display for ListId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pending,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::InProgress,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::usage(format!(
                    "unknown status '{s}' (expected one of: pending, in_progress, completed, failed, cancelled)"
                ))
            })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `--status` / `-s` accepts when filtering: a stored status or a derived one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Is(Status),
    /// pending, every blocker completed.
    Ready,
    /// pending with a blocker not yet completed.
    Blocked,
    /// pending and, transitively, blocked by a failed or cancelled task.
    Stalled,
    /// pending or in_progress.
    Open,
    /// completed, failed or cancelled.
    Done,
}

impl FromStr for StatusFilter {
    type Err = Error;
    fn from_str(s: &str) -> Result<StatusFilter> {
        Ok(match s {
            "ready" => StatusFilter::Ready,
            "blocked" => StatusFilter::Blocked,
            "stalled" => StatusFilter::Stalled,
            "open" => StatusFilter::Open,
            "done" => StatusFilter::Done,
            _ => StatusFilter::Is(s.parse().map_err(|_| {
                Error::usage(format!(
                    "unknown status '{s}' (expected one of: pending, in_progress, completed, failed, cancelled, ready, blocked, stalled, open, done)"
                ))
            })?),
        })
    }
}

/// The process that holds a claim (worker-spawn's), so that a claim of a dead process on
/// this host can be recovered at once instead of after its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Process start time (clock ticks since boot), to tell a reused pid apart.
    pub started: u64,
}

/// A task as the store returns it. Serialised as a superset of Claude Code's task file.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub list: String,
    /// Unique within the list (`task-create --key`).
    pub key: Option<String>,
    pub subject: String,
    pub description: String,
    pub active_form: Option<String>,
    pub status: Status,
    pub owner: Option<String>,
    pub blocked_by: Vec<TaskId>,
    /// The subset of `blocked_by` whose blocker is not completed.
    pub open_blockers: Vec<TaskId>,
    pub blocks: Vec<TaskId>,
    pub priority: i64,
    /// Open tasks on the longest chain of open tasks that waits on this one: after
    /// priority, the claim takes the deepest first (the critical path).
    pub depth: i64,
    pub metadata: Map<String, Value>,
    /// Normalised write scopes, sorted.
    pub scopes: Vec<String>,
    /// The task's own check (`task-create --verify`), run through `sh -c` after its
    /// command succeeds.
    pub verify: Option<String>,
    /// The output tail of the last check that failed: what the next attempt is told.
    pub feedback: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub result: Option<String>,
    pub log: Option<String>,
    pub exit_code: Option<i64>,
    /// Changes with every claim; a worker holding an older token lost the task.
    pub claim_token: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub lease_until: Option<i64>,
    /// The process holding the claim, when worker-spawn made it (not shown).
    pub holder: Option<Holder>,
    /// The claiming worker-spawn's `--output-dir` for this list: the attempt's output
    /// grows in `<dir>/<id>.out` and `.err` (shown as `logFile`).
    pub output_dir: Option<String>,
    /// What its Claude Code workers cost, as worker-spawn recorded it from their result
    /// envelopes (the store's count, which `--max-cost` reads; not shown apart: the
    /// JSON has it as `metadata.claude.costUsd`).
    pub cost_usd: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// What Claude Code workers have cost a task so far: `metadata.claude.costUsd`, which
/// worker-spawn keeps from their result envelopes, summed over attempts.
pub fn claude_cost(metadata: &Map<String, Value>) -> Option<f64> {
    metadata.get("claude")?.get("costUsd")?.as_f64()
}

/// The Claude Code session of the task's last attempt (`metadata.claude.sessionId`).
pub fn claude_session(metadata: &Map<String, Value>) -> Option<&str> {
    metadata.get("claude")?.get("sessionId")?.as_str()
}

impl Task {
    /// Pending with every blocker completed (claimable by anyone it is not reserved away from).
    pub fn is_ready(&self) -> bool {
        self.status == Status::Pending && self.open_blockers.is_empty()
    }

    /// Sorts ready tasks in the order the claim takes them: highest priority, then
    /// greatest depth (the critical path), then lowest id.
    pub fn claim_rank(&self) -> (std::cmp::Reverse<(i64, i64)>, TaskId) {
        (std::cmp::Reverse((self.priority, self.depth)), self.id)
    }

    /// The files the claiming worker-spawn writes this attempt's stdout and stderr to,
    /// as they arrive: `<output dir>/<id>.out` and `.err` (`logFile` in the JSON).
    pub fn log_files(&self) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let dir = std::path::Path::new(self.output_dir.as_deref()?);
        let file = |ext: &str| dir.join(format!("{}.{ext}", self.id.0));
        Some((file("out"), file("err")))
    }
}

/// A task to create. `blocked_by` holds existing tasks (by id or key) or records of the
/// same batch.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub key: Option<String>,
    pub subject: String,
    pub description: String,
    pub active_form: Option<String>,
    pub blocked_by: Vec<BlockerRef>,
    pub priority: i64,
    pub metadata: Map<String, Value>,
    pub owner: Option<String>,
    pub max_attempts: i64,
    /// Normalised write scopes.
    pub scopes: Vec<String>,
    /// The task's check (`--verify`).
    pub verify: Option<String>,
    /// Where the record came from (`line 3`), for messages; empty for a single task.
    pub origin: String,
}

impl NewTask {
    /// `"line 3: "`, or nothing for a task that did not come from a batch.
    pub fn origin_prefix(&self) -> String {
        if self.origin.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.origin)
        }
    }
}

/// A `blockedBy` entry of a batch record: an existing task, or another record of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockerRef {
    Id(TaskId),
    /// The key of a task of the list (looked up when the batch is written).
    Key(String),
    /// Index into the batch.
    Record(usize),
}

impl From<TaskRef> for BlockerRef {
    fn from(r: TaskRef) -> BlockerRef {
        match r {
            TaskRef::Id(id) => BlockerRef::Id(id),
            TaskRef::Key(k) => BlockerRef::Key(k),
        }
    }
}

/// Parse `KEY=VALUE` (VALUE as JSON when it parses as JSON, else as a string);
/// `KEY=` yields `None`, meaning "remove KEY".
pub fn parse_meta(s: &str) -> Result<(String, Option<Value>)> {
    let Some((k, v)) = s.split_once('=') else {
        bail!(
            usage,
            "invalid metadata '{s}' (expected KEY=VALUE, or KEY= to remove)"
        );
    };
    if k.is_empty() {
        bail!(usage, "invalid metadata '{s}': the key is empty");
    }
    if v.is_empty() {
        return Ok((k.to_string(), None));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), Some(value)))
}

/// Parse `KEY=N` of `--limit`.
pub fn parse_limit(s: &str) -> Result<(String, i64)> {
    match s.split_once('=') {
        Some((k, n)) if !k.is_empty() => match n.parse::<i64>() {
            Ok(n) if n >= 1 => Ok((k.to_string(), n)),
            _ => bail!(
                usage,
                "invalid limit '{s}': N must be a whole number of at least 1"
            ),
        },
        _ => bail!(usage, "invalid limit '{s}' (expected KEY=N, e.g. agent=1)"),
    }
}

/// Parse a duration: `500ms`, `30s`, `5m`, `1h`, `1h30m`, or plain seconds (`30`, `0.5`).
/// At most 10^10 seconds (about 317 years), so that adding it to a clock cannot overflow.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    const MAX_SECS: f64 = 1e10;
    let t = s.trim();
    let d = match t.parse::<f64>() {
        Ok(secs) if (0.0..MAX_SECS).contains(&secs) => {
            Some(std::time::Duration::from_secs_f64(secs))
        }
        Ok(secs) if secs >= MAX_SECS => Some(std::time::Duration::MAX),
        Ok(_) => None, // negative or NaN
        Err(_) => humantime::parse_duration(t).ok(),
    };
    if let Some(d) = d {
        if d.as_secs_f64() < MAX_SECS {
            return Ok(d);
        }
        bail!(
            usage,
            "invalid duration '{s}': too long (at most 10000000000 seconds, about 317 years)"
        );
    }
    bail!(
        usage,
        "invalid duration '{s}' (expected e.g. 500ms, 30s, 5m, 1h or plain seconds)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!("3".parse::<TaskId>().unwrap(), TaskId(3));
        assert_eq!("#3".parse::<TaskId>().unwrap(), TaskId(3));
        for bad in ["0", "-1", "+3", "x", "", "#", "3.0", " 3"] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_refs() {
        for good in [
            "build", "b-1", "3x", "x3", "-1", "1.5", "+1", "１", "a b", "ü",
        ] {
            assert!(check_key(good).is_ok(), "{good}");
            assert_eq!(good.parse::<TaskRef>().unwrap(), TaskRef::Key(good.into()));
        }
        for bad in [
            "", "3", "#3", "#", "#x", "0", "007", " a", "a ", "a\nb", "a\tb", "\u{7f}",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!("3".parse::<TaskRef>().unwrap(), TaskRef::Id(TaskId(3)));
        assert_eq!("#3".parse::<TaskRef>().unwrap(), TaskRef::Id(TaskId(3)));
        // Shaped like an id but not a valid one: an invalid id, not a key.
        for bad in ["0", "#0", "#", "#x", "99999999999999999999"] {
            let e = bad.parse::<TaskRef>().unwrap_err();
            assert_eq!(e.kind, crate::Kind::Usage, "{bad}");
        }
        assert!(check_key("a\nb").unwrap_err().message.contains("'a\\nb'"));
    }

    #[test]
    fn list_ids() {
        assert!("review:pr-1@a+b=c".parse::<ListId>().is_ok());
        assert!(".hidden".parse::<ListId>().is_err());
        assert!("a/b".parse::<ListId>().is_err());
        assert!("x".repeat(129).parse::<ListId>().is_err());
        assert!("x".repeat(128).parse::<ListId>().is_ok());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("nan").is_err());
        // Past 10^10 s an `Instant` or a lease in ms could overflow.
        assert!(parse_duration("18446744073709551615s").is_err());
        assert!(parse_duration("9223372036854775000ms").is_err());
        assert!(parse_duration("1000years").is_err());
    }

    #[test]
    fn meta() {
        assert_eq!(
            parse_meta("a=1").unwrap(),
            ("a".into(), Some(Value::from(1)))
        );
        assert_eq!(
            parse_meta("a=x y").unwrap(),
            ("a".into(), Some(Value::from("x y")))
        );
        assert_eq!(parse_meta("a=").unwrap(), ("a".into(), None));
        assert!(parse_meta("a").is_err());
        assert!(parse_meta("=1").is_err());
    }
}

#[cfg(test)]
mod scope_tests {
    use super::{normalize_scope, scopes_conflict};

    #[test]
    fn scopes_normalise_to_one_spelling() {
        for (raw, norm) in [
            ("src", "src"),
            ("./src/", "src"),
            ("src//auth///login.rs", "src/auth/login.rs"),
            ("./", "."),
            (".", "."),
            ("a/./b", "a/b"),
        ] {
            assert_eq!(normalize_scope(raw).unwrap(), norm, "{raw}");
        }
        for bad in ["", "..", "a/../b", "/abs", "a\nb"] {
            assert!(normalize_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_conflict_on_folder_boundaries() {
        for (a, b, want) in [
            ("src", "src", true),
            ("src", "src/auth/login.rs", true),
            ("src/auth/login.rs", "src", true),
            ("src/auth", "src/auth/login.rs", true),
            ("src/a", "src/ab.rs", false),
            ("src/ab.rs", "src/a", false),
            ("src/auth", "src/authz", false),
            ("docs", "src", false),
            (".", "anything/at/all", true),
            ("a/b/c", "a/b/d", false),
        ] {
            assert_eq!(scopes_conflict(a, b), want, "{a} vs {b}");
        }
    }
}

/// One change of a task, as its history records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub task: TaskId,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// `created`, `edited`, `claimed`, `released`, `taken_over`, `check_failed`,
    /// `retried`, `finished`, `note`.
    pub kind: String,
    /// Who made the change: an owner, a user, or the tool.
    pub by: Option<String>,
    /// What else there is to say, by event (a JSON object).
    pub detail: Map<String, Value>,
}
