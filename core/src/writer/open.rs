//! Opening: read the current manifest (or create the log), claim an epoch, walk the WAL from
//! the cursor replaying entries, and place the fence at the first empty slot.

use alloc::format;
use alloc::string::ToString;

use super::commit::CommitKind;
use super::lease::lease_ms;
use super::{Event, Phase, Purpose, PutTarget, Writer, REPLAY_PROGRESS_STEP};
use crate::codec::{Entry, EntryHeader, EntryKind, PositionedRecords};
use crate::error::FatalError;
use crate::io::{Body, Op, Response, StoreErrorKind};
use crate::manifest::{encode_hex, Manifest, ManifestError, FORMAT};
use crate::requests::Pending;
use crate::walk::{decode_slot, Step, Walk};

impl Writer {
    pub(super) fn start_open(&mut self) {
        self.open_attempts += 1;
        if self.open_attempts > self.cfg.open_attempts {
            self.fail(FatalError::Contended);
            return;
        }
        let prefix = self.paths.manifest_dir();
        self.io.send(
            Op::List {
                prefix,
                after: None,
            },
            Purpose::ListManifests,
        );
    }

    pub(super) fn on_list_manifests(&mut self, request: Pending<Purpose>, response: Response) {
        let items = match response.into_list() {
            Ok(items) => items,
            Err(e) => return self.retry(request, &e),
        };
        self.manifest_versions.clear();
        self.manifest_unread.clear();
        for meta in items {
            match self.paths.manifest_version(&meta.path) {
                Some(v) => {
                    self.manifest_versions.insert(v, None);
                    self.manifest_unread.insert(v);
                }
                None => {
                    return self.fail(FatalError::Corrupt {
                        path: meta.path,
                        reason: "unexpected object in the manifest folder".into(),
                    })
                }
            }
        }
        match self.manifest_versions.last_key_value().map(|(&v, _)| v) {
            None => self.create_log(),
            Some(version) => {
                let path = self.paths.manifest(version);
                self.get(path, Purpose::GetManifest { version });
            }
        }
    }

    fn create_log(&mut self) {
        let m = Manifest {
            format: FORMAT,
            codec: self.codec.name().to_string(),
            version: 1,
            epoch: 1,
            writer_nonce: self.nonce,
            fence_window: self.cfg.fence_window,
            replay_cursor: 0,
            cursor_epoch: 0,
            wal_only: self.cfg.wal_only,
            schema: encode_hex(&self.codec.schema()),
            next_generation: 0,
            generations: alloc::vec::Vec::new(),
            dropped_before: 0,
            committed_at: None,
            retired: alloc::vec::Vec::new(),
            // A log created by a lease writer never had a writer without one.
            lease_ms: Some(lease_ms(&self.cfg)),
            lease_epoch: Some(1),
            restored: None,
            time_floor: None,
            dropping: None,
        };
        self.window = m.fence_window;
        self.start_commit(m, CommitKind::Claim);
    }

    pub(super) fn on_get_manifest(
        &mut self,
        version: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        let path = self.paths.manifest(version);
        let got = match resp.into_get() {
            Ok(got) => got,
            // Collected between list and get: a newer version exists, start over.
            Err(e) if e.kind == StoreErrorKind::NotFound => return self.start_open(),
            Err(e) => return self.retry(request, &e),
        };
        let m = match Manifest::decode_version(&got, version) {
            Ok(m) => m,
            Err(ManifestError::Corrupt(reason)) => {
                return self.fail(FatalError::Corrupt { path, reason })
            }
            Err(ManifestError::UnsupportedFormat(format)) => {
                return self.fail(FatalError::UnsupportedFormat { path, format })
            }
        };
        if let Err(e) = self.check_compatible(&m, &path) {
            return self.fail(e);
        }
        self.window = m.fence_window;
        self.manifest_versions.insert(version, m.committed_at);
        self.manifest_unread.remove(&version);
        let mut claim = m.clone();
        claim.version = version + 1;
        claim.epoch = m.epoch + 1;
        claim.writer_nonce = self.nonce;
        // The lease is fixed when first written; `lease_epoch` is written by this writer's
        // first commit once its fence is in place (flush.rs), if no writer wrote it before.
        claim.lease_ms = m.lease_ms.or(Some(lease_ms(&self.cfg)));
        // A drop the fenced owner was deciding will never commit (its next commit loses to
        // this claim): consumers waiting on it go on from the claim.
        claim.dropping = None;
        self.manifest = Some(m);
        self.start_commit(claim, CommitKind::Claim);
    }

    fn check_compatible(&self, m: &Manifest, path: &str) -> Result<(), FatalError> {
        let conflict = |reason: alloc::string::String| Err(FatalError::ConfigConflict { reason });
        if m.codec != self.codec.name() {
            return conflict(format!(
                "the log uses codec {}, this writer {}",
                m.codec,
                self.codec.name()
            ));
        }
        m.check_schema(self.codec.as_ref(), path)?;
        if m.wal_only != self.cfg.wal_only {
            return conflict(format!(
                "the log has wal_only = {}, this writer {}",
                m.wal_only, self.cfg.wal_only
            ));
        }
        if self.cfg.max_in_flight > m.fence_window {
            return conflict(format!(
                "max_in_flight {} exceeds the log's fence window {}",
                self.cfg.max_in_flight, m.fence_window
            ));
        }
        Ok(())
    }

    /// The claim is committed: walk the WAL from the cursor.
    pub(super) fn on_claimed(&mut self) {
        let Some(m) = &self.manifest else { return };
        self.epoch = m.epoch;
        self.walk = Some(Walk::new(
            m.replay_cursor,
            m.cursor_epoch,
            self.cfg.read_ahead,
        ));
        self.pipeline.next_position = m.replay_cursor;
        self.drive_walk();
    }

    pub(super) fn on_walk_get(
        &mut self,
        position: u64,
        token: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        if !self
            .walk
            .as_ref()
            .is_some_and(|w| w.is_live(position, token))
        {
            return;
        }
        let entry = match resp.into_get() {
            Ok(got) => match self.decode_slot(position, got) {
                Some(entry) => Some(entry),
                None => return, // failed
            },
            Err(e) if e.kind == StoreErrorKind::NotFound => None,
            Err(e) => return self.retry(request, &e),
        };
        if let Some(walk) = self.walk.as_mut() {
            walk.arrived(position, token, entry);
        }
        self.drive_walk();
    }

    /// Decodes a WAL slot, failing the writer (and returning `None`) if it is bad.
    pub(super) fn decode_slot(&mut self, position: u64, body: bytes::Bytes) -> Option<Entry> {
        let path = self.paths.wal(position);
        match decode_slot(self.codec.as_ref(), path, position, body) {
            Ok(e) => Some(e),
            Err(fatal) => {
                self.fail(fatal);
                None
            }
        }
    }

    fn drive_walk(&mut self) {
        loop {
            let Some(step) = self.walk.as_mut().and_then(|w| w.step()) else {
                break;
            };
            match step {
                Step::Data(entry) if entry.header.epoch > self.epoch => return self.fenced(),
                Step::Data(entry) => self.replay(entry),
                Step::Orphan => {}
                Step::Fence { epoch, .. } if epoch > self.epoch => return self.fenced(),
                Step::Fence { position, epoch } if epoch == self.epoch => {
                    return self.fail(FatalError::ProtocolViolation {
                        path: self.paths.wal(position),
                        reason: "a fence of this writer's epoch that it did not write".into(),
                    })
                }
                Step::Fence { position, epoch } => {
                    self.fences.push((position, epoch));
                    if let Some(walk) = self.walk.as_mut() {
                        walk.pass_fence();
                    }
                }
                Step::End(position) => {
                    if self.fence_at.is_none() {
                        self.place_fence(position);
                    }
                    return;
                }
            }
        }
        let ahead = self.cfg.read_ahead;
        let wanted = self
            .walk
            .as_mut()
            .map(|w| w.wanted(ahead))
            .unwrap_or_default();
        for (position, token) in wanted {
            let path = self.paths.wal(position);
            self.get(path, Purpose::WalkGet { position, token });
        }
    }

    fn replay(&mut self, entry: Entry) {
        let position = entry.header.position;
        self.replayed.0 += 1;
        self.replayed.1 += entry.records.len() as u64;
        let before = self.replayed.2;
        self.replayed.2 += entry
            .records
            .iter()
            .map(|r| r.payload.len() as u64)
            .sum::<u64>();
        if self.replayed.2 / REPLAY_PROGRESS_STEP > before / REPLAY_PROGRESS_STEP {
            self.events.push_back(Event::Replaying {
                entries: self.replayed.0,
                bytes: self.replayed.2,
            });
        }
        self.live_positions.push_back(position);
        self.saw_time(entry.header.time);
        if !self.cfg.wal_only {
            self.memtable.push(PositionedRecords {
                position,
                time: entry.header.time,
                records: entry.records,
            });
        }
    }

    pub(super) fn fence_header(&self, position: u64) -> EntryHeader {
        EntryHeader {
            kind: EntryKind::Fence {
                window: self.window,
            },
            epoch: self.epoch,
            position,
            nonce: self.nonce,
            time: None,
        }
    }

    /// Puts this writer's fence at the walk's first empty slot: its intent first, so that a
    /// reader's one LIST of `fences/` finds every fence (PROTOCOL.md §4 "Open"); the fence
    /// follows once the intent is durable ([`Writer::intent_landed`]).
    fn place_fence(&mut self, position: u64) {
        let body = match self.codec.encode_entry(&self.fence_header(position), &[]) {
            Ok(b) => b,
            Err(e) => return self.fail(FatalError::from_codec(self.paths.wal(position), e)),
        };
        self.fence_at = Some((position, body));
        // The body names the writer, so a read-back tells its own intent (an unknown outcome)
        // from anything else. A writer with a clock stamps every data entry with a time and
        // says so: a reader's time search relies on it (PROTOCOL.md §5 "Start at a time").
        let timed = if self.cfg.unix_ms_at_origin.is_some() {
            " timed"
        } else {
            ""
        };
        let intent = format!("{:016x}{timed}", self.nonce).into_bytes();
        self.intent_at = Some((position, Body::from(intent)));
        self.put(PutTarget::FenceIntent { position });
    }

    /// The bytes of the fence intent being put at `position`.
    pub(super) fn intent_body(&self, position: u64) -> Option<&Body> {
        self.intent_at
            .as_ref()
            .filter(|(at, _)| *at == position)
            .map(|(_, body)| body)
    }

    /// The intent of the fence at `position` is durable: now the fence.
    pub(super) fn intent_landed(&mut self, position: u64) {
        self.intent_at = None;
        if self.fence_body(position).is_some() {
            self.put(PutTarget::Fence { position });
        }
    }

    /// The bytes of the fence being put at `position`.
    pub(super) fn fence_body(&self, position: u64) -> Option<&Body> {
        self.fence_at
            .as_ref()
            .filter(|(at, _)| *at == position)
            .map(|(_, body)| body)
    }

    /// Someone else's entry landed in the fence's slot first: it is part of the walk, which
    /// goes on.
    pub(super) fn fence_taken(&mut self, theirs: Option<Entry>) {
        self.fence_at = None;
        if let (Some(walk), Some(entry)) = (self.walk.as_mut(), theirs) {
            walk.fill_end(entry);
        }
        self.drive_walk();
    }

    /// The fence landed. A newer writer may have claimed the log and collected slots of our
    /// walk meanwhile (a collected slot reads as empty, and our fence may then have filled it):
    /// own the log only if no newer manifest exists now.
    pub(super) fn check_fence(&mut self, position: u64) {
        let version = self.manifest.as_ref().map_or(0, |m| m.version);
        let op = Op::List {
            prefix: self.paths.manifest_dir(),
            after: Some(self.paths.manifest(version)),
        };
        self.io.send(op, Purpose::FenceCheck { position });
    }

    pub(super) fn on_fence_check(
        &mut self,
        position: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        match resp.into_list() {
            Ok(items)
                if items
                    .iter()
                    .any(|m| self.paths.manifest_version(&m.path).is_some()) =>
            {
                self.fenced()
            }
            Ok(_) => {
                // The first clean ownership check of this writer's lease.
                self.clean_check(request.sent_at);
                self.become_ready(position)
            }
            Err(e) => self.retry(request, &e),
        }
    }

    fn become_ready(&mut self, fence_position: u64) {
        if self.phase != Phase::Opening {
            return;
        }
        self.walk = None;
        self.fence_at = None;
        self.fences.push((fence_position, self.epoch));
        let first_position = fence_position + u64::from(self.window);
        self.pipeline.next_position = first_position;
        self.phase = Phase::Ready;
        self.events.push_back(Event::Ready {
            epoch: self.epoch,
            fence_position,
            first_position,
            replayed_entries: self.replayed.0,
            replayed_records: self.replayed.1,
        });
    }
}
