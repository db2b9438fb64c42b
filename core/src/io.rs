//! Requests the machines emit and the responses a host feeds back.
//!
//! Plain owned data: a host executes `Op`s against any object store and answers each
//! [`Request`] by its [`RequestId`] with the matching [`Response`] variant.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

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

/// A store operation: exactly what the protocol's rules use (PROTOCOL.md §1). An operation
/// is added only together with the rule that needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Create `path` with `body` if no object is there (create-if-absent). Answer with
    /// [`Response::Put`]: `AlreadyExists` if the object exists.
    Put {
        /// Object path.
        path: String,
        /// Object bytes.
        body: Body,
    },
    /// Read a whole object. Answer with [`Response::Get`]: `NotFound` if it is missing.
    Get {
        /// Object path.
        path: String,
    },
    /// Read the bytes `range` of an object (a ranged GET), for a reader that starts inside a
    /// generation (PROTOCOL.md §1, §5). Answer with [`Response::Get`] holding exactly those
    /// bytes: `NotFound` if the object is missing, `InvalidRange` if the range does not lie
    /// within it (an answer of another length is read as `InvalidRange`).
    GetRange {
        /// Object path.
        path: String,
        /// Byte range, `start < end`.
        range: core::ops::Range<u64>,
    },
    /// List the objects under `prefix` (ends with `/`) sorting after `after`. Answer with
    /// [`Response::List`]; the machine sorts and filters the answer itself, so a store may
    /// return them in any order, and more than asked.
    List {
        /// Path prefix (ends with `/`).
        prefix: String,
        /// Exclusive lower bound (a full path), if any.
        after: Option<String>,
    },
    /// Delete an object. Answer with [`Response::Delete`]; a missing object may be reported
    /// as `NotFound` or as success: the machine counts both as deleted.
    Delete {
        /// Object path.
        path: String,
    },
}

/// Which operation an [`Op`] is, without its data: enough to answer it when all a host has
/// left is that it failed (a task that died, a timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpKind {
    /// [`Op::Put`].
    Put,
    /// [`Op::Get`].
    Get,
    /// [`Op::GetRange`] (answered like a get).
    GetRange,
    /// [`Op::List`].
    List,
    /// [`Op::Delete`].
    Delete,
}

impl OpKind {
    /// The response of this kind that reports `error`.
    pub fn failed(self, error: StoreError) -> Response {
        match self {
            OpKind::Put => Response::Put(Err(error)),
            OpKind::Get | OpKind::GetRange => Response::Get(Err(error)),
            OpKind::List => Response::List(Err(error)),
            OpKind::Delete => Response::Delete(Err(error)),
        }
    }
}

impl Op {
    /// Which operation this is.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Put { .. } => OpKind::Put,
            Op::Get { .. } => OpKind::Get,
            Op::GetRange { .. } => OpKind::GetRange,
            Op::List { .. } => OpKind::List,
            Op::Delete { .. } => OpKind::Delete,
        }
    }

    /// The response to this operation that reports `error` (e.g. `Unknown` when the host
    /// cannot tell whether it was applied).
    pub fn failed(&self, error: StoreError) -> Response {
        self.kind().failed(error)
    }
}

/// The bytes of a put, in pieces: a WAL entry carries its records' bytes as they are, without
/// copying them into one buffer (a host hands the pieces to the store as they are, or joins
/// them if the store wants one buffer). Equality compares the bytes, not the pieces.
#[derive(Clone, Debug, Default)]
pub struct Body(Vec<Bytes>);

impl Body {
    /// A body made of these pieces, in order.
    pub fn from_chunks(chunks: Vec<Bytes>) -> Self {
        Body(chunks)
    }

    /// The pieces, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.0
    }

    /// The pieces, in order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.0
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Bytes::is_empty)
    }

    /// The bytes in one buffer (no copy if there is one piece).
    pub fn to_bytes(&self) -> Bytes {
        match self.0.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = Vec::with_capacity(self.len());
                for c in many {
                    out.extend_from_slice(c);
                }
                out.into()
            }
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(alloc::vec![bytes])
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body::from(Bytes::from_static(bytes))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from(Bytes::from(bytes))
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        fn bytes(b: &Body) -> impl Iterator<Item = &u8> {
            b.0.iter().flat_map(|c| c.iter())
        }
        self.len() == other.len() && bytes(self).eq(bytes(other))
    }
}

impl Eq for Body {}

/// A listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Object path.
    pub path: String,
    /// Size in bytes (what an inspection reports).
    pub size: u64,
}

/// The outcome of a request, one variant per [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Outcome of [`Op::Put`].
    Put(Result<(), StoreError>),
    /// Outcome of [`Op::Get`] (the object's bytes) and of [`Op::GetRange`] (the range's).
    Get(Result<Bytes, StoreError>),
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
    /// The store cannot do this operation (e.g. no conditional put).
    NotSupported,
    /// A ranged get asked for bytes that the object does not hold (past its end).
    InvalidRange,
    /// Anything else: timeout, reset, 5xx, permission. For a put the write **may or may not**
    /// have been applied; the machine resolves it by reading back.
    Unknown,
}

/// The answer to `op` as the rules read it, whatever the store did within the contract:
/// a list keeps only what is under the prefix and after the bound, sorted, without repeats
/// (stores list in their own order, and some return more); a delete of a missing object
/// succeeded. Every machine reads its answers through this, so no host repeats these rules.
pub(crate) fn as_contract(op: &Op, response: Response) -> Response {
    match (op, response) {
        (Op::List { prefix, after }, Response::List(Ok(mut items))) => {
            items.retain(|m| {
                m.path.starts_with(prefix.as_str())
                    && after.as_deref().is_none_or(|a| m.path.as_str() > a)
            });
            items.sort_by(|a, b| a.path.cmp(&b.path));
            items.dedup_by(|a, b| a.path == b.path);
            Response::List(Ok(items))
        }
        (Op::Delete { .. }, Response::Delete(Err(e))) if e.kind == StoreErrorKind::NotFound => {
            Response::Delete(Ok(()))
        }
        (Op::GetRange { path, range }, Response::Get(Ok(bytes)))
            if bytes.len() as u64 != range.end.saturating_sub(range.start) =>
        {
            Response::Get(Err(StoreError::new(
                StoreErrorKind::InvalidRange,
                alloc::format!(
                    "{path}: asked for bytes {}..{}, got {}",
                    range.start,
                    range.end,
                    bytes.len()
                ),
            )))
        }
        (_, response) => response,
    }
}

fn wrong_kind() -> StoreError {
    StoreError::new(StoreErrorKind::Unknown, "response of the wrong kind")
}

impl Response {
    /// The put outcome; a response of another kind is an `Unknown` failure.
    pub fn into_put(self) -> Result<(), StoreError> {
        match self {
            Response::Put(r) => r,
            _ => Err(wrong_kind()),
        }
    }

    /// The get outcome; a response of another kind is an `Unknown` failure.
    pub fn into_get(self) -> Result<Bytes, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_its_bytes_however_it_is_cut() {
        let cut = Body::from_chunks(alloc::vec![Bytes::from("ab"), Bytes::new(), "cd".into()]);
        assert_eq!(cut, Body::from(Bytes::from("abcd")));
        assert_ne!(cut, Body::from(Bytes::from("abce")));
        assert_ne!(cut, Body::from(Bytes::from("abc")));
        assert_eq!(cut.len(), 4);
        assert_eq!(cut.to_bytes(), Bytes::from("abcd"));
        assert!(Body::default().is_empty() && Body::default().to_bytes().is_empty());
    }

    fn meta(path: &str) -> ObjectMeta {
        ObjectMeta {
            path: path.into(),
            size: 1,
        }
    }

    #[test]
    fn answers_are_read_as_the_contract_says() {
        let list = Op::List {
            prefix: "a/".into(),
            after: Some("a/2".into()),
        };
        // Unsorted, repeated, outside the prefix, at or before the bound: all handled here.
        let answered = Response::List(Ok(alloc::vec![
            meta("a/4"),
            meta("b/9"),
            meta("a/2"),
            meta("a/3"),
            meta("a/1"),
            meta("a/4"),
            meta("a"),
        ]));
        let paths: Vec<String> = match as_contract(&list, answered) {
            Response::List(Ok(items)) => items.into_iter().map(|m| m.path).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(paths, ["a/3", "a/4"]);
        let delete = Op::Delete { path: "a/1".into() };
        let missing = StoreError::new(StoreErrorKind::NotFound, "gone");
        assert_eq!(
            as_contract(&delete, delete.failed(missing)),
            Response::Delete(Ok(()))
        );
        let other = StoreError::new(StoreErrorKind::Unknown, "reset");
        assert_eq!(
            as_contract(&delete, delete.failed(other.clone())),
            Response::Delete(Err(other))
        );
    }
}
