//! The memtable, its generations and the cursor commits (a generation's, or a WAL-only
//! truncate's); what a commit frees is collected in `gc.rs`.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use super::commit::CommitKind;
use super::{Event, Phase, PutTarget, Writer};
use crate::codec::{GenerationHeader, PositionedRecords};
use crate::crc32c::to_hex8;
use crate::error::{CommandError, FatalError};
use crate::io::Body;
use crate::manifest::{GenerationRecord, IndexRecord};

/// A memtable frozen into a generation, waiting for its put and its commit.
struct Frozen {
    entries: Vec<PositionedRecords>,
    bytes: usize,
    body: Body,
    record: GenerationRecord,
    written: bool,
}

/// Entries not yet in a committed generation: frozen ones (oldest first), then the active one.
#[derive(Default)]
pub(super) struct Memtable {
    frozen: VecDeque<Frozen>,
    frozen_bytes: usize,
    active: Vec<PositionedRecords>,
    active_bytes: usize,
}

fn size_of(e: &PositionedRecords) -> usize {
    e.records.iter().map(|r| r.payload.len()).sum()
}

impl Memtable {
    pub(super) fn push(&mut self, entry: PositionedRecords) {
        self.active_bytes += size_of(&entry);
        self.active.push(entry);
    }

    pub(super) fn bytes(&self) -> usize {
        self.frozen_bytes + self.active_bytes
    }

    pub(super) fn active_len(&self) -> usize {
        self.active.len()
    }

    pub(super) fn has_frozen(&self) -> bool {
        !self.frozen.is_empty()
    }

    /// The id of the newest frozen generation, if one waits for its commit.
    pub(super) fn last_frozen(&self) -> Option<u64> {
        self.frozen.back().map(|f| f.record.id)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &PositionedRecords> {
        self.frozen
            .iter()
            .flat_map(|f| f.entries.iter())
            .chain(self.active.iter())
    }

    /// The bytes of frozen generation `id`, until it is committed.
    pub(super) fn body(&self, id: u64) -> Option<&Body> {
        self.frozen
            .iter()
            .find(|f| f.record.id == id)
            .map(|f| &f.body)
    }

    /// Generation `id` is in the store: it may be committed.
    pub(super) fn mark_written(&mut self, id: u64) {
        if let Some(f) = self.frozen.iter_mut().find(|f| f.record.id == id) {
            f.written = true;
        }
    }
}

impl Writer {
    pub(super) fn maybe_freeze(&mut self) {
        if !self.cfg.wal_only && self.memtable.active_bytes >= self.cfg.memtable_bytes {
            self.freeze();
        }
    }

    /// A refused append waits for room that only a flush can make (the memtable may sit below
    /// its freeze threshold but above the budget): make it now.
    pub(super) fn relieve_backpressure(&mut self) {
        if self.blocked.is_some() && !self.cfg.wal_only && self.memtable.active_len() > 0 {
            self.freeze();
        }
    }

    /// Freezes the active memtable and puts its generation. Returns the generation id.
    pub(super) fn freeze(&mut self) -> Option<u64> {
        if self.memtable.active.is_empty() {
            return None;
        }
        let committed_next = self.manifest.as_ref().map_or(0, |m| m.next_generation);
        let id = committed_next + self.memtable.frozen.len() as u64;
        let entries = core::mem::take(&mut self.memtable.active);
        let bytes = core::mem::take(&mut self.memtable.active_bytes);
        let header = GenerationHeader {
            epoch: self.epoch,
            id,
        };
        let path = self.paths.generation(self.epoch, id);
        let body = match self.codec.encode_generation(&header, &entries) {
            Ok(b) => b,
            Err(e) => {
                self.fail(FatalError::from_codec(path, e));
                return None;
            }
        };
        let record = self.describe_generation(id, path, &entries, &body);
        self.memtable.frozen_bytes += bytes;
        self.memtable.frozen.push_back(Frozen {
            entries,
            bytes,
            body: body.into(),
            record,
            written: false,
        });
        self.put(PutTarget::Generation { id });
        Some(id)
    }

    /// The manifest record of generation file `body` holding `entries` (non-empty, in
    /// position order): what a flush and a compaction both record (PROTOCOL.md §3).
    pub(super) fn describe_generation(
        &self,
        id: u64,
        path: alloc::string::String,
        entries: &[PositionedRecords],
        body: &[u8],
    ) -> GenerationRecord {
        let hex = |crc| alloc::string::String::from_utf8_lossy(&to_hex8(crc)).into();
        let index = self
            .codec
            .generation_index_range(body)
            .map(|r| IndexRecord {
                offset: r.start,
                length: r.end - r.start,
                crc32c: hex(self.codec.checksum(&body[r.start as usize..r.end as usize])),
            });
        // Over the entries that have a time (PROTOCOL.md §3).
        let times = entries.iter().filter_map(|e| e.time);
        GenerationRecord {
            id,
            path,
            first_position: entries.first().map_or(0, |e| e.position),
            last_position: entries.last().map_or(0, |e| e.position),
            entries: entries.len() as u64,
            records: entries.iter().map(|e| e.records.len() as u64).sum(),
            rows: entries
                .iter()
                .flat_map(|e| e.records.iter())
                .map(|r| r.rows)
                .sum(),
            bytes: body.len() as u64,
            crc32c: hex(self.codec.checksum(body)),
            index,
            min_time: times.clone().min(),
            max_time: times.max(),
            untimed: entries.iter().filter(|e| e.time.is_none()).count() as u64,
        }
    }

    /// Highest fence epoch below `cursor` (data of older epochs at or past it are orphans).
    fn cursor_epoch(&self, cursor: u64) -> u64 {
        let base = self.manifest.as_ref().map_or(0, |m| m.cursor_epoch);
        self.fences
            .iter()
            .filter(|(p, _)| *p < cursor)
            .map(|(_, e)| *e)
            .fold(base, u64::max)
    }

    /// Starts the next manifest commit, if one is due and none is running. Generations commit
    /// strictly in order, so a failing older flush holds the cursor back.
    pub(super) fn try_commit(&mut self) {
        if self.commit.is_some() || self.phase != Phase::Ready {
            return;
        }
        let Some(mut m) = self.manifest.clone() else {
            return;
        };
        m.version += 1;
        // Every commit drops the records of retired files known deleted.
        self.prune_retired(&mut m);
        // The first lease writer of an older log says so once its fence is in place, so a
        // fence of `lease_epoch` exists and holds back every older zombie (PROTOCOL.md §4).
        m.lease_epoch = m.lease_epoch.or(Some(self.epoch));
        if let Some(front) = self.memtable.frozen.front().filter(|f| f.written) {
            let record = front.record.clone();
            m.replay_cursor = record.last_position + 1;
            m.next_generation = record.id + 1;
            m.generations.push(record);
            m.cursor_epoch = self.cursor_epoch(m.replay_cursor);
            self.start_commit(m, CommitKind::Generation);
        } else if self.restore_turn() {
            // Rounds of retention and compactions wait for a restore once it started.
            self.try_commit_restore(m);
        } else if let Some(m) = self.try_commit_round(m) {
            self.try_commit_compaction(m);
        }
    }

    /// Moves `m`'s cursor for a WAL-only truncate to `to`: to the first data position at or
    /// past it that is not dropped. `false` when the cursor would not move.
    pub(super) fn build_truncate(&self, m: &mut crate::manifest::Manifest, to: u64) -> bool {
        let cursor = self
            .live_positions
            .iter()
            .copied()
            .find(|&p| p >= to)
            .unwrap_or_else(|| self.pipeline.first_undurable());
        if cursor <= m.replay_cursor {
            return false;
        }
        m.replay_cursor = cursor;
        m.dropped_before = m.dropped_before.max(to);
        m.cursor_epoch = self.cursor_epoch(cursor);
        // Times never decrease along the log: a truncate past every entry leaves a later
        // opener nothing to replay, so the newest time this writer saw stays in the manifest
        // (as a drop keeps its dropped generations' newest, drop.rs).
        if self.last_time > 0 {
            m.time_floor = m.time_floor.max(Some(self.last_time));
        }
        true
    }

    pub(super) fn on_generation_committed(&mut self) {
        let Some(f) = self.memtable.frozen.pop_front() else {
            return;
        };
        self.memtable.frozen_bytes -= f.bytes;
        self.counters.generations_committed += 1;
        self.collect_wal();
        self.want_collection();
        let replay_cursor = self.manifest.as_ref().map_or(0, |m| m.replay_cursor);
        self.events.push_back(Event::Flushed {
            generation: f.record.id,
            replay_cursor,
        });
    }

    pub(super) fn on_truncated(&mut self) {
        self.collect_wal();
        self.want_collection();
        self.on_round_closed(None);
    }

    /// WAL-only: drops every entry below `position` by moving the cursor (committed in the
    /// manifest, then collected). Answered by [`Event::Truncated`]. Without `force` the named
    /// consumers are checked first, as [`Writer::drop_before`] does ([`Event::DropRefused`]
    /// when one holds it back).
    pub fn truncate(
        &mut self,
        position: u64,
        force: bool,
        now: Duration,
    ) -> Result<(), CommandError> {
        self.advance(now);
        self.command_allowed()?;
        if !self.cfg.wal_only {
            return Err(CommandError::WrongMode);
        }
        if self.phase != Phase::Ready {
            return Err(CommandError::NotReady);
        }
        let min = self.manifest.as_ref().map_or(0, |m| m.replay_cursor);
        let max = self.pipeline.first_undurable().max(min);
        if position < min || position > max {
            return Err(CommandError::OutOfRange {
                requested: position,
                min,
                max,
            });
        }
        self.ask_round(super::retain::RoundKind::Truncate, position, force);
        self.after_input();
        Ok(())
    }
}
