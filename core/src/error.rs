//! Errors in three layers: misuse returned at once ([`AppendError`], [`CommandError`]), store
//! failures as data in responses ([`crate::StoreError`]), and terminal conditions reported as
//! [`FatalError`] events, after which a machine is inert.

use alloc::string::String;
use core::fmt;

/// A terminal condition. The machine emits it once and then stops.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FatalError {
    /// A writer of a newer epoch owns the log. Nothing more is written by this writer.
    Fenced {
        /// This writer's epoch (0 if it never claimed one).
        epoch: u64,
    },
    /// An object failed verification.
    Corrupt {
        /// The object.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// An object breaks a protocol rule (e.g. an older writer's entry in a slot it cannot reach).
    ProtocolViolation {
        /// The object.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The log's schema differs from the one this machine was given.
    SchemaMismatch {
        /// The manifest or entry holding the other schema.
        path: String,
        /// What differs (the first differing field with both types, or the count of fields).
        detail: String,
    },
    /// A manifest of a protocol format this crate does not know.
    UnsupportedFormat {
        /// The manifest.
        path: String,
        /// Its format number.
        format: u32,
    },
    /// The configuration cannot be used with this log (codec, mode or fence window).
    ConfigConflict {
        /// What conflicts.
        reason: String,
    },
    /// The store cannot do what the protocol needs (create-if-absent).
    Unsupported {
        /// The object of the refused request.
        path: String,
        /// The store's words.
        message: String,
    },
    /// A store request kept failing past the retry budget.
    Store {
        /// The object.
        path: String,
        /// The last error.
        message: String,
    },
    /// Other writers kept claiming the log while this one tried to open it.
    Contended,
    /// A reader was asked to start below what the log still holds (entries dropped by
    /// truncation).
    Truncated {
        /// The lowest position the log still holds.
        first_available: u64,
    },
    /// A reader as of a manifest version found it collected (GC keeps versions by count and
    /// by age, PROTOCOL.md §4 "GC").
    VersionNotKept {
        /// The version asked for.
        version: u64,
        /// The oldest version the log still keeps (`None`: none listed).
        oldest_kept: Option<u64>,
    },
    /// A reader as of a manifest version asked for one never committed (0, or past the
    /// newest).
    NoSuchVersion {
        /// The version asked for.
        version: u64,
        /// The newest version of the log (`None`: the log has none, or 0 was asked for,
        /// which no log has: it is refused before any request).
        newest: Option<u64>,
    },
    /// A generation of the manifest version a reader reads as of was collected (that
    /// version is no longer readable whole).
    GenerationCollected {
        /// The version read.
        version: u64,
        /// The generation gone.
        path: String,
    },
    /// A machine had nothing in flight, nothing due and nothing to report: no input could
    /// ever move it again. A bug in this crate, reported instead of hanging the host.
    Stalled,
    /// The codec could not encode records it had accepted.
    Encode {
        /// The codec's words.
        reason: String,
    },
}

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FatalError::Fenced { epoch } => {
                write!(f, "fenced: a newer writer owns the log (this writer's epoch {epoch})")
            }
            FatalError::Corrupt { path, reason } => write!(f, "corrupt object {path}: {reason}"),
            FatalError::ProtocolViolation { path, reason } => {
                write!(f, "protocol violation at {path}: {reason}")
            }
            FatalError::SchemaMismatch { path, detail } => {
                write!(f, "schema mismatch: {path} holds another schema: {detail}")
            }
            FatalError::UnsupportedFormat { path, format } => {
                write!(
                    f,
                    "{path} has protocol format {format}; this version of tidewal reads format {}",
                    crate::manifest::FORMAT
                )
            }
            FatalError::ConfigConflict { reason } => write!(f, "configuration conflict: {reason}"),
            FatalError::Unsupported { path, message } => write!(
                f,
                "the store cannot create-if-absent ({path}): {message}; tidewal needs conditional puts"
            ),
            FatalError::Store { path, message } => write!(f, "store error at {path}: {message}"),
            FatalError::Contended => write!(f, "other writers kept claiming the log during open"),
            FatalError::Encode { reason } => write!(f, "encoding failed: {reason}"),
            FatalError::Truncated { first_available } => write!(
                f,
                "the log no longer holds that position: it starts at {first_available}"
            ),
            FatalError::VersionNotKept {
                version,
                oldest_kept: Some(oldest),
            } => write!(
                f,
                "manifest version {version} is no longer kept: the oldest kept is {oldest}"
            ),
            FatalError::VersionNotKept {
                version,
                oldest_kept: None,
            } => write!(f, "manifest version {version} is no longer kept (none is listed)"),
            FatalError::NoSuchVersion { version: 0, .. } => {
                write!(f, "manifest version 0 was never committed: versions start at 1")
            }
            FatalError::NoSuchVersion {
                version,
                newest: Some(newest),
            } => write!(
                f,
                "manifest version {version} was never committed: the newest is {newest}"
            ),
            FatalError::NoSuchVersion {
                version,
                newest: None,
            } => write!(f, "manifest version {version} was never committed: the log has none"),
            FatalError::GenerationCollected { version, path } => write!(
                f,
                "generation {path} of manifest version {version} was collected: that version is no longer readable"
            ),
            FatalError::Stalled => write!(
                f,
                "the machine stalled with nothing to wait for (a bug in tidewal: please report it)"
            ),
        }
    }
}

impl core::error::Error for FatalError {}

impl FatalError {
    /// The terminal error for a codec failure on the object at `path`.
    pub(crate) fn from_codec(path: String, e: crate::codec::CodecError) -> FatalError {
        use crate::codec::CodecError;
        match e {
            CodecError::SchemaMismatch(detail) => FatalError::SchemaMismatch { path, detail },
            CodecError::Corrupt(reason) => FatalError::Corrupt { path, reason },
            CodecError::Encode(reason) => FatalError::Encode { reason },
        }
    }
}

/// Why an append was refused. Nothing of a refused append is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppendError {
    /// The record has no bytes.
    Empty,
    /// The record has no rows.
    ZeroRows,
    /// The record is larger than `max_entry_bytes`.
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Unflushed bytes are over budget; retry after [`crate::Event::Writable`].
    Backpressure {
        /// Bytes not yet flushed.
        unflushed: usize,
        /// The budget.
        budget: usize,
    },
    /// `close` was called.
    Closed,
    /// The machine stopped.
    Failed(FatalError),
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Empty => write!(f, "empty record"),
            AppendError::ZeroRows => write!(f, "the append holds no rows"),
            AppendError::TooLarge { bytes, limit } => {
                write!(
                    f,
                    "record of {bytes} bytes exceeds the entry limit of {limit}"
                )
            }
            AppendError::Backpressure { unflushed, budget } => write!(
                f,
                "backpressure: {unflushed} unflushed bytes, budget {budget}"
            ),
            AppendError::Closed => write!(f, "writer is closed"),
            AppendError::Failed(e) => write!(f, "writer failed: {e}"),
        }
    }
}

impl core::error::Error for AppendError {}

/// Why a command other than append was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The command needs the other mode (memtable vs WAL-only).
    WrongMode,
    /// The writer has not finished opening.
    NotReady,
    /// A truncate position outside `replay_cursor ..= durable position`.
    OutOfRange {
        /// Requested position.
        requested: u64,
        /// Lowest allowed.
        min: u64,
        /// Highest allowed.
        max: u64,
    },
    /// `close` was called.
    Closed,
    /// The machine stopped.
    Failed(FatalError),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::WrongMode => write!(f, "not available in this mode"),
            CommandError::NotReady => write!(f, "writer is still opening"),
            CommandError::OutOfRange {
                requested,
                min,
                max,
            } => {
                write!(f, "position {requested} outside {min}..={max}")
            }
            CommandError::Closed => write!(f, "writer is closed"),
            CommandError::Failed(e) => write!(f, "writer failed: {e}"),
        }
    }
}

impl core::error::Error for CommandError {}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl core::error::Error for ConfigError {}
