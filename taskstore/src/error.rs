//! The one error type of every binary, and the one place that maps it to an exit code.

use std::fmt;

/// What went wrong, as far as the exit code is concerned (README: "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: a negative answer (nothing to claim, an awaited task failed).
    Negative,
    /// 2: usage error or invalid input.
    Usage,
    /// 3: a task or list does not exist.
    NotFound,
    /// 4: a precondition did not hold (`--if-status`, a lost claim).
    Conflict,
    /// 5: the store cannot be opened, read or written.
    Store,
    /// 124: a timeout.
    Timeout,
    /// The reader of stdout went away (`task-list | head -1`): end quietly with 0.
    BrokenPipe,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Negative => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Conflict => 4,
            Kind::Store => 5,
            Kind::Timeout => 124,
            Kind::BrokenPipe => 0,
        }
    }
}

/// Why the store failed, for code that must tell causes apart: matched on instead of
/// the text of a message, which a new SQLite (or a second backend) may word otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The store or its folder is on a read-only file system.
    ReadOnlyFs,
    /// No permission to write the store, or to create files in its folder.
    NoPermission,
    /// The engine could not open or write the store and did not say why.
    Unwritable,
    DiskFull,
    /// The file is not a task database.
    NotADatabase,
    /// The store was made by a newer version of parallel-tasks.
    NewerSchema,
    /// Another process held the store locked past the busy timeout.
    Locked,
    Corrupt,
    /// The engine gave up on a transaction that may simply be run again (a deadlock or
    /// a serialisation failure, PostgreSQL under contention).
    Retry,
    /// The server is unreachable or the connection to it was lost.
    Unreachable,
}

/// An error with its exit-code class and a message meant for a person.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// Set for store errors whose cause code must act on.
    pub cause: Option<Cause>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            cause: None,
        }
    }
    /// A store error with a cause that code can match on.
    pub fn store_cause(cause: Cause, message: impl Into<String>) -> Error {
        Error {
            cause: Some(cause),
            ..Error::store(message)
        }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(Kind::Conflict, message)
    }
    pub fn store(message: impl Into<String>) -> Error {
        Error::new(Kind::Store, message)
    }

    /// Prefix the message with where it happened, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Error::new(Kind::BrokenPipe, "broken pipe");
        }
        Error::store(e.to_string())
    }
}

/// `Err(Error::usage(format!(..)))` in one token.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$kind(format!($($arg)*)))
    };
}
