//! Requests the machines emit and the responses a host feeds back.
//!
//! Plain owned data: a host executes `Op`s against any object store and answers each
//! [`Request`] by its [`RequestId`] with the matching [`Response`] variant.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::ops::Range;

/// Identifies one request of one machine. Ids are never reused by a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// One store operation to execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Answer with [`crate::Writer::handle_response`] (or the reader's) using this id.
    pub id: RequestId,
    /// What to do.
    pub op: Op,
}

/// A store operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Write `body` at `path` under `mode`. Answer with [`Response::Put`].
    Put {
        /// Object path.
        path: String,
        /// Object bytes.
        body: Bytes,
        /// Conditional semantics.
        mode: PutMode,
    },
    /// Read an object (a byte range of it, if given). Answer with [`Response::Get`].
    Get {
        /// Object path.
        path: String,
        /// Byte range, or the whole object.
        range: Option<Range<u64>>,
    },
    /// Read an object's metadata. Answer with [`Response::Head`].
    Head {
        /// Object path.
        path: String,
    },
    /// List every object whose path starts with `prefix` and sorts after `after`, in
    /// lexicographic order. Answer with [`Response::List`] holding all of them.
    List {
        /// Path prefix (ends with `/`).
        prefix: String,
        /// Exclusive lower bound (a full path), if any.
        after: Option<String>,
    },
    /// Delete an object. Deleting a missing object is a success.
    Delete {
        /// Object path.
        path: String,
    },
}

/// Conditional put semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutMode {
    /// Fail with [`StoreErrorKind::AlreadyExists`] if the object exists.
    Create,
    /// Fail with [`StoreErrorKind::PreconditionFailed`] unless the current etag matches.
    IfMatch(String),
    /// Unconditional.
    Overwrite,
}

/// Metadata of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Object path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag, where the store has one.
    pub etag: Option<String>,
}

/// A successful get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The bytes read (the requested range only).
    pub body: Bytes,
    /// The object's metadata.
    pub meta: ObjectMeta,
}

/// The outcome of a request, one variant per [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Outcome of [`Op::Put`]: the new etag, if any.
    Put(Result<Option<String>, StoreError>),
    /// Outcome of [`Op::Get`].
    Get(Result<GetResult, StoreError>),
    /// Outcome of [`Op::Head`].
    Head(Result<ObjectMeta, StoreError>),
    /// Outcome of [`Op::List`].
    List(Result<Vec<ObjectMeta>, StoreError>),
    /// Outcome of [`Op::Delete`].
    Delete(Result<(), StoreError>),
}

/// A store failure, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// The store's own words, for humans.
    pub message: String,
}

impl StoreError {
    /// A store error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }
}

/// Store failure kinds the protocol distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The object does not exist.
    NotFound,
    /// A create found the object already there.
    AlreadyExists,
    /// An if-match put found another etag.
    PreconditionFailed,
    /// The store cannot do this operation (e.g. no conditional put).
    NotSupported,
    /// Anything else: timeout, reset, 5xx, permission. For a put the write **may or may not**
    /// have been applied; the machine resolves it by reading back.
    Unknown,
}

fn wrong_kind() -> StoreError {
    StoreError::new(StoreErrorKind::Unknown, "response of the wrong kind")
}

impl Response {
    /// The put outcome; a response of another kind is an `Unknown` failure.
    pub fn into_put(self) -> Result<Option<String>, StoreError> {
        match self {
            Response::Put(r) => r,
            _ => Err(wrong_kind()),
        }
    }

    /// The get outcome; a response of another kind is an `Unknown` failure.
    pub fn into_get(self) -> Result<GetResult, StoreError> {
        match self {
            Response::Get(r) => r,
            _ => Err(wrong_kind()),
        }
    }

    /// The list outcome; a response of another kind is an `Unknown` failure.
    pub fn into_list(self) -> Result<Vec<ObjectMeta>, StoreError> {
        match self {
            Response::List(r) => r,
            _ => Err(wrong_kind()),
        }
    }

    /// The delete outcome; a response of another kind is an `Unknown` failure.
    pub fn into_delete(self) -> Result<(), StoreError> {
        match self {
            Response::Delete(r) => r,
            _ => Err(wrong_kind()),
        }
    }
}
