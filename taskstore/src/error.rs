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

/// An error with its exit-code class and a message meant for a person.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
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
            kind: self.kind,
            message: format!("{what}: {}", self.message),
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
