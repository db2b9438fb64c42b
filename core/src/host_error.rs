//! The error type of the hosts' public APIs (shared so native and WebAssembly users see the
//! same kinds): the machines' errors, plus what only a host can tell (timeouts, bad input).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::codec::CodecError;
use crate::consumer::ConsumerError;
use crate::error::{AppendError, CommandError, FatalError};
use crate::writer::RestoreError;

/// Anything that can go wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A newer writer owns the log; this writer writes nothing more.
    Fenced {
        /// This writer's epoch.
        epoch: u64,
    },
    /// An object failed verification.
    Corrupt {
        /// The object.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A batch or the log has another schema.
    SchemaMismatch {
        /// What differs, or the object that holds the other schema.
        detail: String,
    },
    /// Unflushed bytes stayed over budget for this long.
    BackpressureTimeout {
        /// How long the append waited.
        waited: Duration,
    },
    /// The store kept failing, or cannot do what the log needs.
    Store {
        /// The object.
        path: String,
        /// The store's words.
        message: String,
    },
    /// The store cannot create-if-absent, which the log needs (e.g. S3 with conditional puts
    /// disabled, or plain HTTP).
    Unsupported {
        /// The object of the refused request.
        path: String,
        /// The store's words.
        message: String,
    },
    /// Bad input (empty or oversized batch, bad URL, bad option); nothing was written.
    Invalid(String),
    /// A read named a column the log does not have.
    UnknownColumn {
        /// The name asked for.
        column: String,
        /// The log's columns, in order.
        columns: Vec<String>,
    },
    /// The writer was closed.
    Closed,
    /// A named consumer refused a command or lost its name.
    Consumer(ConsumerError),
    /// Retention would drop entries a named consumer has not consumed yet (PROTOCOL.md §4
    /// "Retention"); nothing was written. Forcing the drop passes it.
    HeldBack {
        /// The consumer with the lowest committed position.
        name: String,
        /// Its committed position.
        position: u64,
    },
    /// This process already has an open writer of this log (a second one would fence it);
    /// nothing was written. Close or drop the first, or ask to take it over (the native
    /// host's `Options::take_over`).
    AlreadyOpen {
        /// The log: its URL, or its prefix in the store handed in.
        log: String,
    },
    /// A restore was refused (PROTOCOL.md §4 "Restore"); nothing was written.
    Restore(RestoreError),
    /// Any other terminal condition of the log.
    Failed(FatalError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Fenced { epoch } => {
                write!(
                    f,
                    "fenced: a newer writer owns the log (this writer had epoch {epoch})"
                )
            }
            Error::Corrupt { path, reason } => write!(f, "corrupt object {path}: {reason}"),
            Error::SchemaMismatch { detail } => write!(f, "schema mismatch: {detail}"),
            Error::BackpressureTimeout { waited } => {
                write!(f, "backpressure: no room for the append after {waited:?}")
            }
            Error::Store { path, message } => write!(f, "store error at {path}: {message}"),
            Error::Unsupported { path, message } => write!(
                f,
                "the store cannot create-if-absent ({path}: {message}); tidewal needs conditional puts"
            ),
            Error::Invalid(why) => write!(f, "invalid input: {why}"),
            Error::UnknownColumn { column, columns } => write!(
                f,
                "unknown column {column:?}; the log's columns are {}",
                columns.join(", ")
            ),
            Error::Closed => write!(f, "the writer is closed"),
            Error::Consumer(e) => write!(f, "{e}"),
            Error::HeldBack { name, position } => write!(
                f,
                "named consumer {name} has consumed only below position {position}: the drop would pass it (force it to drop anyway)"
            ),
            Error::AlreadyOpen { log } => write!(
                f,
                "this process already has a writer of {log}: use it, or close it first (opening a second one would fence it)"
            ),
            Error::Restore(e) => write!(f, "restore refused: {e}"),
            Error::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<FatalError> for Error {
    fn from(e: FatalError) -> Self {
        match e {
            FatalError::Fenced { epoch } => Error::Fenced { epoch },
            FatalError::Corrupt { path, reason } => Error::Corrupt { path, reason },
            FatalError::SchemaMismatch { path, detail } => Error::SchemaMismatch {
                detail: format!("{path} holds another schema: {detail}"),
            },
            FatalError::Store { path, message } => Error::Store { path, message },
            FatalError::Unsupported { path, message } => Error::Unsupported { path, message },
            other => Error::Failed(other),
        }
    }
}

impl From<AppendError> for Error {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Failed(f) => f.into(),
            AppendError::Closed => Error::Closed,
            other => Error::Invalid(other.to_string()),
        }
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Failed(f) => f.into(),
            CommandError::Closed => Error::Closed,
            other => Error::Invalid(other.to_string()),
        }
    }
}

impl From<RestoreError> for Error {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Failed(f) => f.into(),
            RestoreError::Closed => Error::Closed,
            other => Error::Restore(other),
        }
    }
}

impl From<crate::retention::HeldBack> for Error {
    fn from(e: crate::retention::HeldBack) -> Self {
        Error::HeldBack {
            name: e.name,
            position: e.position,
        }
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::SchemaMismatch(detail) => Error::SchemaMismatch { detail },
            other => Error::Invalid(other.to_string()),
        }
    }
}

impl From<ConsumerError> for Error {
    fn from(e: ConsumerError) -> Self {
        match e {
            ConsumerError::Failed(f) => f.into(),
            ConsumerError::Closed => Error::Closed,
            other => Error::Consumer(other),
        }
    }
}
