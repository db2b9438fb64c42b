//! Appends: group commit into entries, pipelined create-if-absent puts, acknowledgement in
//! position order.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use super::window::Sent;
use super::{PutTarget, Writer};
use crate::codec::{Entry, EntryHeader, EntryKind, PositionedRecords, Record};
use crate::config::GroupCommit;
use crate::error::FatalError;
use crate::io::Body;

/// Identifies an append of one writer; ids grow by one per accepted append, from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppendId(pub u64);

/// Records sealed into one entry.
pub(super) struct Batch {
    records: Vec<Record>,
    bytes: usize,
    last_append: AppendId,
}

/// An entry put (or being put) at a position.
struct Slot {
    batch: Batch,
    body: Body,
    /// The entry's time.
    time: Option<u64>,
    durable: bool,
    /// What the window controller said when the put went out.
    sent: Sent,
}

/// The append pipeline: open batch → sealed batches → slots in flight.
#[derive(Default)]
pub(super) struct Pipeline {
    next_append: u64,
    open: Vec<Record>,
    open_bytes: usize,
    deadline: Option<Duration>,
    sealed: VecDeque<Batch>,
    sealed_bytes: usize,
    slots: BTreeMap<u64, Slot>,
    slot_bytes: usize,
    pub(super) next_position: u64,
    pub(super) durable_position: Option<u64>,
}

impl Pipeline {
    /// Queues `records` as one append: they land in the same entry, in order.
    pub(super) fn push(
        &mut self,
        records: Vec<Record>,
        now: Duration,
        gc: &GroupCommit,
    ) -> AppendId {
        let size: usize = records.iter().map(|r| r.payload.len()).sum();
        if !self.open.is_empty() && self.open_bytes + size > gc.max_bytes {
            self.seal();
        }
        if self.open.is_empty() {
            self.deadline = Some(now + gc.interval);
        }
        self.open.extend(records);
        self.open_bytes += size;
        let id = AppendId(self.next_append);
        self.next_append += 1;
        if self.open_bytes >= gc.max_bytes || self.open.len() >= gc.max_records {
            self.seal();
        }
        id
    }

    /// Whether the open batch is due (its interval has passed). A due batch goes out when an
    /// in-flight slot is free; until then it keeps taking appends, so appends that queue
    /// behind a full window share one entry instead of one entry each.
    fn open_due(&self, now: Duration) -> bool {
        !self.open.is_empty() && self.deadline.is_some_and(|d| d <= now)
    }

    pub(super) fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let batch = Batch {
            records: core::mem::take(&mut self.open),
            bytes: self.open_bytes,
            last_append: AppendId(self.next_append - 1),
        };
        self.sealed_bytes += batch.bytes;
        self.open_bytes = 0;
        self.deadline = None;
        self.sealed.push_back(batch);
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    pub(super) fn last_append(&self) -> Option<AppendId> {
        self.next_append.checked_sub(1).map(AppendId)
    }

    pub(super) fn in_flight(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn unflushed(&self) -> usize {
        self.open_bytes + self.sealed_bytes + self.slot_bytes
    }

    pub(super) fn has_work(&self) -> bool {
        !self.open.is_empty() || !self.sealed.is_empty() || !self.slots.is_empty()
    }

    /// The bytes of the entry being put at `position`.
    pub(super) fn body(&self, position: u64) -> Option<&Body> {
        self.slots.get(&position).map(|s| &s.body)
    }

    /// The time of the entry being put at `position`.
    pub(super) fn time(&self, position: u64) -> Option<u64> {
        self.slots.get(&position).and_then(|s| s.time)
    }

    /// Lowest position not yet durable among those issued, else the next to issue.
    pub(super) fn first_undurable(&self) -> u64 {
        self.slots
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_position)
    }
}

impl Writer {
    pub(super) fn entry_header(&self, position: u64, time: Option<u64>) -> EntryHeader {
        EntryHeader {
            kind: EntryKind::Data,
            epoch: self.epoch,
            position,
            nonce: self.nonce,
            time,
        }
    }

    /// The time of an entry sealed now: the wall clock (`unix_ms_at_origin` + `now`), but
    /// never below the newest time this writer saw, replayed or its own (PROTOCOL.md §2).
    /// `None` when the host gave no wall clock.
    fn stamp(&mut self) -> Option<u64> {
        let now = self.wall_now()?;
        let committed = self.manifest.as_ref().and_then(|m| {
            // Times never decrease along the log: the newest known one is the last (or the
            // floor a restore left, above entries it left out).
            let last = m.generations.iter().rev().find_map(|g| g.max_time);
            last.max(m.time_floor)
        });
        let time = now.max(self.last_time).max(committed.unwrap_or(0));
        self.last_time = time;
        Some(time)
    }

    /// The wall clock now (unix ms, `unix_ms_at_origin + now`), `None` without a clock.
    pub(super) fn wall_now(&self) -> Option<u64> {
        let origin = self.cfg.unix_ms_at_origin?;
        Some(origin.saturating_add(self.now.as_millis().min(u64::MAX as u128) as u64))
    }

    /// A replayed (or otherwise seen) entry's time: later stamps are not below it.
    pub(super) fn saw_time(&mut self, time: Option<u64>) {
        self.last_time = self.last_time.max(time.unwrap_or(0));
    }

    /// Issues sealed batches, then the open batch if it is due, while the in-flight window
    /// has room; work left waiting for a slot tells the window controller so.
    pub(super) fn pump(&mut self) {
        loop {
            if self.pipeline.slots.len() >= self.flight.window() as usize {
                if !self.pipeline.sealed.is_empty() || self.pipeline.open_due(self.now) {
                    self.flight.blocked();
                }
                break;
            }
            if self.pipeline.sealed.is_empty() && self.pipeline.open_due(self.now) {
                self.pipeline.seal();
            }
            let Some(batch) = self.pipeline.sealed.pop_front() else {
                break;
            };
            self.pipeline.sealed_bytes -= batch.bytes;
            let position = self.pipeline.next_position;
            self.pipeline.next_position += 1;
            let time = self.stamp();
            let body = match self
                .codec
                .encode_entry(&self.entry_header(position, time), &batch.records)
            {
                Ok(b) => b,
                Err(e) => return self.fail(FatalError::from_codec(self.paths.wal(position), e)),
            };
            self.pipeline.slot_bytes += batch.bytes;
            let in_flight = self.pipeline.slots.len() as u32 + 1;
            self.pipeline.slots.insert(
                position,
                Slot {
                    batch,
                    body,
                    time,
                    durable: false,
                    sent: self.flight.sent(self.now, in_flight),
                },
            );
            self.put(PutTarget::Entry { position });
        }
    }

    /// Another entry holds this writer's slot: a newer epoch's fence or entry means fenced;
    /// anything else breaks the protocol.
    pub(super) fn entry_taken(&mut self, position: u64, theirs: Option<Entry>) {
        let epoch = theirs.map_or(0, |e| e.header.epoch);
        if epoch > self.epoch {
            self.fenced();
        } else {
            self.fail(FatalError::ProtocolViolation {
                path: self.paths.wal(position),
                reason: alloc::format!("an entry of epoch {epoch} holds this writer's slot"),
            });
        }
    }

    /// Marks a slot durable and acknowledges every entry below the watermark, in order.
    pub(super) fn mark_durable(&mut self, position: u64) {
        if let Some(slot) = self.pipeline.slots.get_mut(&position) {
            if !slot.durable {
                self.flight
                    .landed(slot.batch.bytes as u64, slot.sent, self.now);
            }
            slot.durable = true;
        }
        while let Some(entry) = self.pipeline.slots.first_entry() {
            if !entry.get().durable {
                break;
            }
            let position = *entry.key();
            let slot = entry.remove();
            self.pipeline.slot_bytes -= slot.batch.bytes;
            self.pipeline.durable_position = Some(position);
            self.counters.entries_written += 1;
            self.live_positions.push_back(position);
            if !self.cfg.wal_only {
                self.memtable.push(PositionedRecords {
                    position,
                    time: slot.time,
                    records: slot.batch.records,
                });
            }
            // Acknowledged only under a valid lease (PROTOCOL.md §4 "The writer lease").
            self.ack(slot.batch.last_append, position);
        }
        self.release_acks();
    }
}
