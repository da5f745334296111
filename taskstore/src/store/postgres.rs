//! The PostgreSQL backend: its connection (libpq conventions for the URL, `PGPASSWORD`
//! and `~/.pgpass`), its schema migrations under an advisory lock, the few spots where
//! its SQL differs, and its change signal (`LISTEN`/`NOTIFY`).

use super::pg_schema::{MIGRATIONS, SCHEMA_VERSION};
use super::sql::{Arg, Db, Dialect, Row};
use super::{display_name, no_store, Access};
use crate::error::{Cause, Error, Result};
use crate::model::ListId;
use crate::probe;
use bytes::{BufMut, BytesMut};
use postgres::config::SslMode;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, Config, NoTls, Statement};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The channel every change of a task is announced on; the payload is the list's name.
const CHANNEL: &str = "parallel_tasks";

/// The longest `wait_change` blocks before it returns to its caller.
const BACKSTOP: Duration = Duration::from_millis(100);

/// Taken (transaction-scoped) while migrating, so that first users at once are fine.
const MIGRATION_LOCK: i64 = 0x7461_736b_7300; // "tasks\0"

const DIALECT: Dialect = Dialect {
    // 53 random bits: a token fits a JSON number exactly.
    random_token: "floor(random() * 9007199254740991)::bigint",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    lock_list: Some("SELECT id FROM lists WHERE id = ?1 FOR UPDATE"),
    meta_key: |k| k.to_string(),
    meta_get: |col, key| format!("({col} -> {key}::text)::jsonb"),
    json: |p| format!("{p}::jsonb"),
};

pub struct PgDb {
    client: Client,
    config: Config,
    /// The store as it may be shown: the URL with its password elided.
    name: String,
    statements: HashMap<String, Statement>,
    /// `LISTEN` has been sent on this connection.
    listening: bool,
    /// Notifications of our list seen so far.
    changes: u64,
    /// When the socket was last read for notifications by a wait (see `drain`).
    read_at: Instant,
    /// How long to keep reconnecting when the server goes away (long-running commands);
    /// zero: give up at once.
    patience: Duration,
}

impl PgDb {
    pub fn open(url: &str, access: Access) -> Result<PgDb> {
        let name = display_name(url);
        let at = |e: Error| e.context(format!("store {name}"));
        let config = config(url).map_err(at)?;
        let client = connect(&config).map_err(at)?;
        let mut db = PgDb {
            client,
            config,
            name: name.clone(),
            statements: HashMap::new(),
            listening: false,
            changes: 0,
            read_at: Instant::now(),
            patience: Duration::ZERO,
        };
        if access != Access::Create && db.version().map_err(at)?.is_none() {
            // Creating the schema is for the commands that may make a store; a reader
            // (perhaps a read-only role) is told, and nothing is created.
            return Err(no_store(
                &name,
                " (the database has no parallel-tasks schema)",
            ));
        }
        db.migrate().map_err(at)?;
        probe::phase("open");
        Ok(db)
    }

    /// Create or upgrade the schema. The version is read without a lock first: on an
    /// up-to-date store that is one round trip.
    fn migrate(&mut self) -> Result<()> {
        if self.version()? == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        let mut tx = self.client.transaction().map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(pg)?;
        let row = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(pg)?;
        let version: i64 = match row {
            Some(r) => r.get::<_, i32>(0) as i64,
            None => {
                tx.execute("INSERT INTO schema_version VALUES (0)", &[])
                    .map_err(pg)?;
                0
            }
        };
        if version > SCHEMA_VERSION {
            return Err(super::newer_schema(version));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql).map_err(pg)?;
            tx.execute("UPDATE schema_version SET version = $1", &[&(i as i32 + 1)])
                .map_err(pg)?;
        }
        tx.commit().map_err(pg)
    }

    /// The schema's version, None for a database without our tables.
    fn version(&mut self) -> Result<Option<i64>> {
        let rows = self
            .client
            .simple_query(
                "SELECT version FROM schema_version WHERE to_regclass('schema_version') IS NOT NULL",
            )
            .or_else(|e| match e.code() {
                // The table does not exist (to_regclass is evaluated late on old servers).
                Some(c) if c.code() == "42P01" => Ok(Vec::new()),
                _ => Err(e),
            })
            .map_err(pg)?;
        for m in rows {
            if let postgres::SimpleQueryMessage::Row(r) = m {
                let v = r.get(0).and_then(|v| v.parse().ok());
                if let Some(v) = v {
                    if v > SCHEMA_VERSION {
                        return Err(super::newer_schema(v));
                    }
                    return Ok(Some(v));
                }
            }
        }
        Ok(None)
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(&dollars(sql)).map_err(pg)?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    /// After losing the server: connect again, retrying with backoff within `patience`.
    fn reconnect(&mut self) -> Result<()> {
        let give_up = Instant::now() + self.patience;
        let mut nap = Duration::from_millis(50);
        loop {
            match connect(&self.config) {
                Ok(c) => {
                    self.client = c;
                    self.statements.clear();
                    self.listening = false;
                    // What changed while we were away is unknown: say it may have.
                    self.changes += 1;
                    return Ok(());
                }
                Err(e) if Instant::now() + nap >= give_up => {
                    return Err(e.context(format!("store {}", self.name)))
                }
                Err(_) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Reconnect first if the connection is known to be gone and we may.
    fn ensure_connected(&mut self) -> Result<()> {
        if self.client.is_closed() {
            if self.patience.is_zero() {
                return Err(lost());
            }
            self.reconnect()?;
        }
        Ok(())
    }

    fn listen(&mut self) -> Result<()> {
        if !self.listening {
            self.client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(pg)?;
            self.listening = true;
        }
        Ok(())
    }

    /// Count the notifications received for `list`. The non-blocking read sees only
    /// what a query or a wait already took off the socket: on a connection that runs
    /// nothing else (a pool with one worker, busy running its command), a notification
    /// would wait there unseen. So at most every `READ_EVERY` the socket is read for a
    /// moment (1 ms).
    fn drain(&mut self, list: &ListId) -> Result<()> {
        const READ_EVERY: Duration = Duration::from_millis(50);
        let mut seen = 0;
        let mut it = self.client.notifications();
        {
            let mut iter = it.iter();
            while let Some(n) = iter.next().map_err(pg)? {
                seen += u64::from(n.payload() == list.as_str());
            }
        }
        if seen == 0 && self.read_at.elapsed() >= READ_EVERY {
            self.read_at = Instant::now();
            let mut iter = it.timeout_iter(Duration::from_millis(1));
            while let Some(n) = iter.next().map_err(pg)? {
                seen += u64::from(n.payload() == list.as_str());
            }
        }
        self.changes += seen;
        Ok(())
    }

    /// A failure that may be the server going away: reconnect if we may, and say
    /// whether the caller should simply go on (the change counter moved).
    fn survive(&mut self, e: Error) -> Result<()> {
        if self.client.is_closed() && !self.patience.is_zero() {
            return self.reconnect();
        }
        Err(e)
    }
}

fn lost() -> Error {
    Error::store_cause(
        Cause::Unreachable,
        "the connection to the PostgreSQL server was lost",
    )
}

/// The connection settings of a URL, with libpq's defaults from the environment.
fn config(url: &str) -> Result<Config> {
    let mut c: Config = url
        .parse()
        .map_err(|e| Error::usage(format!("invalid PostgreSQL URL: {e}")))?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if c.get_hosts().is_empty() {
        c.host(&env("PGHOST").unwrap_or_else(|| "localhost".into()));
    }
    if c.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            c.port(p);
        }
    }
    if c.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        c.user(&user);
    }
    if c.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| c.get_user().unwrap_or_default().into());
        c.dbname(&db);
    }
    if c.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD").or_else(|| pgpass(&c)) {
            c.password(p);
        }
    }
    // libpq reads PGSSLMODE when the URL does not say.
    if !url.contains("sslmode=") {
        if let Some(mode) = env("PGSSLMODE") {
            c.ssl_mode(match mode.as_str() {
                "disable" => SslMode::Disable,
                "prefer" => SslMode::Prefer,
                "require" => SslMode::Require,
                _ => {
                    return Err(Error::usage(format!(
                        "PGSSLMODE={mode}: expected disable, prefer or require"
                    )))
                }
            });
        }
    }
    if cfg!(not(feature = "tls")) && c.get_ssl_mode() == SslMode::Require {
        return Err(Error::store(
            "sslmode=require: this build has no TLS support (build with --features tls); \
             or use a local socket, an SSH tunnel, or sslmode=prefer"
                .to_string(),
        ));
    }
    c.application_name("parallel-tasks");
    c.connect_timeout(Duration::from_secs(10));
    Ok(c)
}

/// The first `~/.pgpass` (or `$PGPASSFILE`) line matching host, port, database and user.
fn pgpass(c: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    // Like libpq: a file others can read is ignored.
    let meta = std::fs::metadata(&path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match c.get_hosts().first()? {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(_) => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        c.get_dbname().unwrap_or_default(),
        c.get_user().unwrap_or_default(),
    ];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(pgpass_fields)
        .find(|f| f.len() == 5 && (0..4).all(|i| f[i] == "*" || f[i] == want[i]))
        .map(|f| f[4].clone())
}

/// `host:port:db:user:password`, with `\:` and `\\` escapes.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(ch),
        }
    }
    fields
}

fn connect(c: &Config) -> Result<Client> {
    #[cfg(feature = "tls")]
    let r = match c.get_ssl_mode() {
        SslMode::Disable => c.connect(NoTls),
        _ => c.connect(super::pg_tls::connector()?),
    };
    #[cfg(not(feature = "tls"))]
    let r = c.connect(NoTls);
    r.map_err(|e| {
        if e.as_db_error().is_some() {
            return pg(e);
        }
        let host = match c.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let why = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string());
        Error::store_cause(
            Cause::Unreachable,
            format!("cannot connect to {host}:{port} ({why})"),
        )
    })
}

/// `?N` placeholders as PostgreSQL's `$N`.
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A driver error as ours: the server's message, classified by its SQLSTATE.
fn pg(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let msg = db.message().to_string();
        return match db.code().code() {
            // deadlock_detected, serialization_failure: run the transaction again.
            "40P01" | "40001" => Error::store_cause(Cause::Retry, msg),
            "28P01" | "28000" => Error::store(msg),
            "3D000" => Error::store(msg),
            "42501" => Error::store_cause(Cause::NoPermission, msg),
            "53100" => Error::store_cause(Cause::DiskFull, msg),
            "57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006" => {
                Error::store_cause(Cause::Unreachable, msg)
            }
            _ => Error::store(msg),
        };
    }
    if e.is_closed() {
        return lost();
    }
    let why = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    Error::store_cause(Cause::Unreachable, format!("the PostgreSQL server: {why}"))
}

impl ToSql for Arg {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT8 => v.to_sql(ty, out),
                _ => v.to_string().as_str().to_sql(ty, out),
            },
            Arg::Text(s) => match *ty {
                Type::JSONB => {
                    out.put_u8(1); // jsonb's binary format: a version byte, then the text
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ => s.as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column value as an [`Arg`], whatever its type.
struct Value(Arg);

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value(match *ty {
            Type::INT8 => Arg::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Arg::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Arg::Int(i16::from_sql(ty, raw)? as i64),
            Type::BOOL => Arg::Int(bool::from_sql(ty, raw)? as i64),
            Type::JSONB => Arg::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.into()),
            _ => Arg::Text(std::str::from_utf8(raw)?.into()),
        }))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value(Arg::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Db for PgDb {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn begin(&mut self, write: bool) -> Result<i64> {
        self.ensure_connected()?;
        // Reads see one snapshot; writes run READ COMMITTED and take the row and list
        // locks they need. The transaction's time is the server's.
        let begin = if write {
            "BEGIN; SELECT floor(extract(epoch FROM now()) * 1000)::bigint"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SELECT floor(extract(epoch FROM now()) * 1000)::bigint"
        };
        let msgs = match self.client.simple_query(begin) {
            Ok(m) => m,
            Err(e) => {
                let e = pg(e);
                self.survive(e)?;
                self.client.simple_query(begin).map_err(pg)?
            }
        };
        msgs.iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse().ok(),
                _ => None,
            })
            .ok_or_else(|| Error::store("the server did not tell its time"))
    }

    fn commit(&mut self) -> Result<()> {
        self.client.batch_execute("COMMIT").map_err(pg)
    }

    fn rollback(&mut self) {
        if !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }

    fn query(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        let st = self.statement(sql)?;
        let rows = self.client.query(&st, &params(args)).map_err(pg)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Value>(i).map(|v| v.0))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(Row)
                    .map_err(pg)
            })
            .collect()
    }

    fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let st = self.statement(sql)?;
        self.client.execute(&st, &params(args)).map_err(pg)
    }

    fn explain(&self, e: Error) -> Error {
        e
    }

    fn change_counter(&mut self, list: &ListId) -> Result<u64> {
        self.ensure_connected()?;
        let r = self.listen().and_then(|()| self.drain(list));
        if let Err(e) = r {
            self.survive(e)?;
        }
        Ok(self.changes)
    }

    fn wait_change(&mut self, list: &ListId, max: Duration) -> Result<bool> {
        self.ensure_connected()?;
        let before = self.changes;
        let waited = self.listen().and_then(|()| {
            self.drain(list)?;
            if self.changes != before {
                return Ok(());
            }
            // At most a short interval: the caller checks signals and deadlines between.
            let end = Instant::now() + max.min(BACKSTOP);
            loop {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                let mut n = self.client.notifications();
                let mut it = n.timeout_iter(left);
                match it.next().map_err(pg)? {
                    Some(n) if n.payload() == list.as_str() => {
                        self.changes += 1;
                        return Ok(());
                    }
                    Some(_) => continue,
                    None => return Ok(()),
                }
            }
        });
        if let Err(e) = waited {
            self.survive(e)?;
        }
        Ok(self.changes != before)
    }

    fn keep_trying(&mut self, patience: Duration) {
        self.patience = patience;
    }

    fn recovered(&mut self, e: &Error) -> bool {
        e.cause == Some(Cause::Unreachable)
            && self.client.is_closed()
            && !self.patience.is_zero()
            && self.reconnect().is_ok()
    }
}
