//! An in-memory object store with real conditional semantics: drive a machine with no I/O at
//! all (your own tests), or wrap it with latency and faults (the simulation).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;

use crate::io::{Body, GetResult, ObjectMeta, Op, PutMode, Response, StoreError, StoreErrorKind};

/// A map of path → (bytes, etag). Etags are unique for the store's lifetime.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    objects: BTreeMap<String, (Bytes, u64)>,
    next_etag: u64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Executes one operation atomically.
    pub fn execute(&mut self, op: &Op) -> Response {
        match op {
            Op::Put { path, body, mode } => Response::Put(self.put(path, body, mode)),
            Op::Get { path, range } => Response::Get(self.get(path, range.clone())),
            Op::Head { path } => Response::Head(
                self.objects
                    .get(path)
                    .map(|(b, e)| meta(path, b, *e))
                    .ok_or_else(|| not_found(path)),
            ),
            Op::List { prefix, after } => Response::List(Ok(self.list(prefix, after.as_deref()))),
            Op::Delete { path } => {
                self.objects.remove(path);
                Response::Delete(Ok(()))
            }
        }
    }

    fn put(
        &mut self,
        path: &str,
        body: &Body,
        mode: &PutMode,
    ) -> Result<Option<String>, StoreError> {
        let current = self.objects.get(path).map(|(_, e)| *e);
        match (mode, current) {
            (PutMode::Create, Some(_)) => {
                return Err(StoreError::new(
                    StoreErrorKind::AlreadyExists,
                    format!("{path} exists"),
                ))
            }
            (PutMode::IfMatch(want), cur) if cur.map(|e| e.to_string()).as_ref() != Some(want) => {
                return Err(StoreError::new(
                    StoreErrorKind::PreconditionFailed,
                    format!("{path}: etag differs"),
                ))
            }
            _ => {}
        }
        self.next_etag += 1;
        self.objects
            .insert(path.to_string(), (body.to_bytes(), self.next_etag));
        Ok(Some(self.next_etag.to_string()))
    }

    fn get(
        &self,
        path: &str,
        range: Option<core::ops::Range<u64>>,
    ) -> Result<GetResult, StoreError> {
        let (body, etag) = self.objects.get(path).ok_or_else(|| not_found(path))?;
        let body = match range {
            None => body.clone(),
            Some(r) if r.start <= r.end && r.end <= body.len() as u64 => {
                body.slice(r.start as usize..r.end as usize)
            }
            Some(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Unknown,
                    "range out of bounds",
                ))
            }
        };
        Ok(GetResult {
            meta: meta(path, &self.objects[path].0, *etag),
            body,
        })
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Vec<ObjectMeta> {
        self.objects
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .filter(|(p, _)| after.is_none_or(|a| p.as_str() > a))
            .map(|(p, (b, e))| meta(p, b, *e))
            .collect()
    }

    /// The bytes at `path`, if any.
    pub fn object(&self, path: &str) -> Option<&Bytes> {
        self.objects.get(path).map(|(b, _)| b)
    }

    /// Replaces the bytes at `path` behind the protocol's back (fault injection).
    pub fn tamper(&mut self, path: &str, body: Bytes) {
        if let Some(slot) = self.objects.get_mut(path) {
            slot.0 = body;
        }
    }

    /// Every path, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.objects.keys().map(String::as_str)
    }
}

fn meta(path: &str, body: &Bytes, etag: u64) -> ObjectMeta {
    ObjectMeta {
        path: path.to_string(),
        size: body.len() as u64,
        etag: Some(etag.to_string()),
    }
}

fn not_found(path: &str) -> StoreError {
    StoreError::new(StoreErrorKind::NotFound, format!("{path} not found"))
}
