//! One create-if-absent put and its read-back, for every object the writer creates
//! (PROTOCOL.md §3, §4 "Put outcomes"):
//!
//! - put with create-if-absent; landed: the target's success;
//! - `NotSupported`: fatal `Unsupported`;
//! - anything else (taken, or unknown: the put may or may not have landed): read it back;
//!   - ours: the target's success;
//!   - someone else's: the target's "taken" rule;
//!   - absent: put the same bytes again as the next attempt; once the budget is spent, fail
//!     with the put's own error.
//!
//! What differs between targets is a rule of that target and lives in its hooks at the end of
//! this file (the rules themselves sit with their owners: `commit.rs`, `open.rs`, `append.rs`,
//! `flush.rs`).

use alloc::string::String;
use bytes::Bytes;

use super::{Purpose, Writer};
use crate::codec::{Entry, EntryHeader};
use crate::error::FatalError;
use crate::io::{Body, Op, Response, StoreError, StoreErrorKind};
use crate::requests::Pending;

/// An object the writer creates with create-if-absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PutTarget {
    /// Manifest version `version` (a claim, generation or truncate commit).
    Manifest { version: u64 },
    /// The intent of this writer's fence at `position` (put before the fence).
    FenceIntent { position: u64 },
    /// This writer's fence in WAL slot `position`.
    Fence { position: u64 },
    /// A data entry in WAL slot `position`.
    Entry { position: u64 },
    /// Generation `id` of this writer's epoch.
    Generation { id: u64 },
    /// The running compaction's merged generation.
    Merged,
    /// File `index` of the running restore (a rewritten or copied generation).
    Restored { index: usize },
}

impl PutTarget {
    /// A fence is put again at once when its read-back finds the slot empty (the walk waits
    /// on it); every other target waits a backoff first.
    fn put_again_at_once(self) -> bool {
        matches!(
            self,
            PutTarget::Fence { .. } | PutTarget::FenceIntent { .. }
        )
    }
}

/// What a read-back found where the put was to land.
enum Found {
    /// Our object: the put landed.
    Ours,
    /// Someone else's object: decoded (`Some`) when the target is a WAL slot.
    Theirs(Option<Entry>),
}

impl Writer {
    /// Puts `target`'s bytes with create-if-absent, as its first attempt.
    pub(super) fn put(&mut self, target: PutTarget) {
        let Some(body) = self.put_body(target).cloned() else {
            return;
        };
        let op = self.put_op(target, body);
        self.io.send(op, Purpose::Put { target });
    }

    fn put_op(&self, target: PutTarget, body: Body) -> Op {
        Op::Put {
            path: self.put_path(target),
            body,
        }
    }

    /// The put's answer: landed, unsupported, or read it back.
    pub(super) fn on_put(&mut self, target: PutTarget, put: Pending<Purpose>, resp: Response) {
        if self.put_body(target).is_none() {
            return; // stale: the target no longer waits for this put
        }
        match resp.into_put() {
            Ok(_) => self.landed(target),
            Err(e) if e.kind == StoreErrorKind::NotSupported => {
                self.fail(FatalError::Unsupported {
                    path: self.put_path(target),
                    message: e.message,
                });
            }
            // Taken, or unknown: the object's content decides. (object_store may retry a
            // create that landed and report AlreadyExists for our own object.) The read-back
            // spends the put's attempt.
            Err(put_error) => {
                let get = Op::Get {
                    path: self.put_path(target),
                };
                let read_back = put.same_attempt(get, Purpose::ReadBack { target, put_error });
                self.io.send_pending(read_back);
            }
        }
    }

    /// The read-back's answer: ours, someone else's, or absent (put again).
    pub(super) fn on_read_back(
        &mut self,
        target: PutTarget,
        put_error: StoreError,
        read_back: Pending<Purpose>,
        resp: Response,
    ) {
        if self.put_body(target).is_none() {
            return; // stale
        }
        match resp.into_get() {
            Ok(got) => match self.found(target, got) {
                Some(Found::Ours) => self.landed(target),
                Some(Found::Theirs(theirs)) => self.taken(target, theirs),
                None => {} // the writer failed: the slot does not decode
            },
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                self.put_again(target, &put_error, &read_back)
            }
            Err(e) => {
                if let Err(request) = self.io.retry(self.now, read_back) {
                    let path = Self::path_of(&request.op);
                    self.put_gave_up(target, Self::store_fatal(path, &e));
                }
            }
        }
    }

    /// A put (or its read-back) kept failing: the writer fails, but for a compaction's
    /// merged file, which only saves space: that compaction is dropped and the file, which
    /// may have landed with its answer lost, deleted (no manifest names it).
    fn put_gave_up(&mut self, target: PutTarget, error: FatalError) {
        if target != PutTarget::Merged {
            return self.fail(error);
        }
        let path = self.merged_path();
        self.compaction_failed(error, None);
        self.io.send(Op::Delete { path }, Purpose::Delete);
    }

    /// Nothing is there: the same bytes again as the next attempt, reporting the put's own
    /// error once the budget is spent.
    fn put_again(
        &mut self,
        target: PutTarget,
        put_error: &StoreError,
        read_back: &Pending<Purpose>,
    ) {
        let Some(body) = self.put_body(target).cloned() else {
            return;
        };
        let put = read_back.same_attempt(self.put_op(target, body), Purpose::Put { target });
        let sent = if target.put_again_at_once() {
            self.io.retry_now(put)
        } else {
            self.io.retry(self.now, put)
        };
        if sent.is_err() {
            self.put_gave_up(target, Self::store_fatal(self.put_path(target), put_error));
        }
    }

    /// Whose object the read-back found. A WAL slot is decoded (a bad one is corrupt: the
    /// writer fails and this says `None`) and is ours if its header is; a manifest or a
    /// generation is ours if its bytes are.
    fn found(&mut self, target: PutTarget, body: Bytes) -> Option<Found> {
        match self.own_header(target) {
            Some(ours) => {
                let entry = self.decode_slot(ours.position, body)?;
                Some(if entry.header == ours {
                    Found::Ours
                } else {
                    Found::Theirs(Some(entry))
                })
            }
            None => {
                let ours = *self.put_body(target)? == Body::from(body);
                Some(if ours {
                    Found::Ours
                } else {
                    Found::Theirs(None)
                })
            }
        }
    }

    // ---- the targets' hooks --------------------------------------------------------------

    fn put_path(&self, target: PutTarget) -> String {
        match target {
            PutTarget::Manifest { version } => self.paths.manifest(version),
            PutTarget::Fence { position } | PutTarget::Entry { position } => {
                self.paths.wal(position)
            }
            PutTarget::Generation { id } => self.paths.generation(self.epoch, id),
            PutTarget::Merged => self.merged_path(),
            PutTarget::Restored { index } => self.restored_path(index),
            PutTarget::FenceIntent { position } => self.paths.fence_intent(position, self.epoch),
        }
    }

    /// The bytes being put; `None` once the target no longer waits for them (a stale answer,
    /// ignored).
    fn put_body(&self, target: PutTarget) -> Option<&Body> {
        match target {
            PutTarget::Manifest { version } => self.commit_body(version),
            PutTarget::Fence { position } => self.fence_body(position),
            PutTarget::Entry { position } => self.pipeline.body(position),
            PutTarget::Generation { id } => self.memtable.body(id),
            PutTarget::Merged => self.merged_body(),
            PutTarget::Restored { index } => self.restored_body(index),
            PutTarget::FenceIntent { position } => self.intent_body(position),
        }
    }

    /// The header a WAL target's own entry carries; `None` for the other targets.
    fn own_header(&self, target: PutTarget) -> Option<EntryHeader> {
        match target {
            PutTarget::Fence { position } => Some(self.fence_header(position)),
            PutTarget::Entry { position } => {
                Some(self.entry_header(position, self.pipeline.time(position)))
            }
            PutTarget::Manifest { .. }
            | PutTarget::Generation { .. }
            | PutTarget::Merged
            | PutTarget::Restored { .. }
            | PutTarget::FenceIntent { .. } => None,
        }
    }

    /// The object is ours.
    fn landed(&mut self, target: PutTarget) {
        match target {
            // The post-commit check (PROTOCOL.md §3).
            PutTarget::Manifest { version } => self.post_check(version),
            // The fence check (PROTOCOL.md §4).
            PutTarget::Fence { position } => self.check_fence(position),
            // Only once the intent is durable may the fence follow (PROTOCOL.md §4 "Open").
            PutTarget::FenceIntent { position } => self.intent_landed(position),
            PutTarget::Entry { position } => self.mark_durable(position),
            PutTarget::Generation { id } => self.memtable.mark_written(id),
            PutTarget::Merged => self.merged_landed(),
            PutTarget::Restored { index } => self.restored_landed(index),
        }
    }

    /// Someone else's object holds the name.
    fn taken(&mut self, target: PutTarget, theirs: Option<Entry>) {
        match target {
            // Another writer's version: a claim starts over, anything else is fenced.
            PutTarget::Manifest { .. } => self.lost_race(),
            // A zombie's entry landed first: it is part of the walk, which goes on.
            PutTarget::Fence { .. } => self.fence_taken(theirs),
            // A newer epoch's fence or entry: fenced; anything else breaks the protocol.
            PutTarget::Entry { position } => self.entry_taken(position, theirs),
            PutTarget::Generation { .. } | PutTarget::Merged | PutTarget::Restored { .. } => self
                .fail(FatalError::ProtocolViolation {
                    path: self.put_path(target),
                    reason: "another object holds this writer's generation name".into(),
                }),
            // The name carries this writer's epoch: nobody else writes it.
            PutTarget::FenceIntent { .. } => self.fail(FatalError::ProtocolViolation {
                path: self.put_path(target),
                reason: "another object holds this writer's fence intent".into(),
            }),
        }
    }
}
