//! An in-memory object store with real create-if-absent semantics: drive a machine with no
//! I/O at all (your own tests), or wrap it with latency and faults (the simulation).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;
use core::ops::Range;

use crate::io::{ObjectMeta, Op, Response, StoreError, StoreErrorKind};

/// A map of path → bytes.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    objects: BTreeMap<String, Bytes>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Executes one operation atomically.
    pub fn execute(&mut self, op: &Op) -> Response {
        match op {
            Op::Put { path, body } => Response::Put(self.create(path, body.to_bytes())),
            Op::Get { path } => Response::Get(
                self.objects
                    .get(path)
                    .cloned()
                    .ok_or_else(|| not_found(path)),
            ),
            Op::GetRange { path, range } => Response::Get(self.get_range(path, range)),
            Op::List { prefix, after } => Response::List(Ok(self.list(prefix, after.as_deref()))),
            Op::Delete { path } => {
                self.objects.remove(path);
                Response::Delete(Ok(()))
            }
        }
    }

    fn get_range(&self, path: &str, range: &Range<u64>) -> Result<Bytes, StoreError> {
        let object = self.objects.get(path).ok_or_else(|| not_found(path))?;
        let within = range.start < range.end && range.end <= object.len() as u64;
        if !within {
            return Err(StoreError::new(
                StoreErrorKind::InvalidRange,
                format!(
                    "{path}: bytes {}..{} of {}",
                    range.start,
                    range.end,
                    object.len()
                ),
            ));
        }
        Ok(object.slice(range.start as usize..range.end as usize))
    }

    fn create(&mut self, path: &str, body: Bytes) -> Result<(), StoreError> {
        if self.objects.contains_key(path) {
            return Err(StoreError::new(
                StoreErrorKind::AlreadyExists,
                format!("{path} exists"),
            ));
        }
        self.objects.insert(path.to_string(), body);
        Ok(())
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Vec<ObjectMeta> {
        self.objects
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .filter(|(p, _)| after.is_none_or(|a| p.as_str() > a))
            .map(|(p, b)| ObjectMeta {
                path: p.clone(),
                size: b.len() as u64,
            })
            .collect()
    }

    /// The bytes at `path`, if any.
    pub fn object(&self, path: &str) -> Option<&Bytes> {
        self.objects.get(path)
    }

    /// Writes `body` at `path` whether or not an object is there, behind the protocol's back
    /// (fault injection, or a store shared with something that is not a log).
    pub fn overwrite(&mut self, path: &str, body: Bytes) {
        self.objects.insert(path.to_string(), body);
    }

    /// Replaces the bytes of an existing object at `path` behind the protocol's back (fault
    /// injection); nothing happens if there is none.
    pub fn tamper(&mut self, path: &str, body: Bytes) {
        if let Some(slot) = self.objects.get_mut(path) {
            *slot = body;
        }
    }

    /// Every path, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.objects.keys().map(String::as_str)
    }
}

fn not_found(path: &str) -> StoreError {
    StoreError::new(StoreErrorKind::NotFound, format!("{path} not found"))
}
