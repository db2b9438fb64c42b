//! The WAL walk shared by writers (replay) and readers (PROTOCOL.md §4 "Walk").
//!
//! Slots are fetched ahead of the cursor, possibly out of order, and consumed strictly in
//! order. The walk knows nothing of requests: its owner turns `wanted()` positions into GETs
//! and feeds results back with the id it used, so stale answers are recognised and dropped.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use alloc::format;
use alloc::string::String;
use bytes::Bytes;

use crate::codec::{Codec, Entry, EntryKind};
use crate::error::FatalError;

/// Decodes the object in WAL slot `position` (at `path`): undecodable, or naming another
/// position, is corrupt.
pub(crate) fn decode_slot(
    codec: &dyn Codec,
    path: String,
    position: u64,
    body: Bytes,
) -> Result<Entry, FatalError> {
    match codec.decode_entry(body) {
        Ok(e) if e.header.position == position => Ok(e),
        Ok(e) => Err(FatalError::Corrupt {
            path,
            reason: format!("holds position {}", e.header.position),
        }),
        Err(e) => Err(FatalError::from_codec(path, e)),
    }
}

/// What the next slot of the walk holds.
#[derive(Debug)]
pub(crate) enum Step {
    /// An entry of the log.
    Data(Entry),
    /// An older epoch's entry above a newer fence: ignored.
    Orphan,
    /// A fence at the current position (not consumed until `pass_fence`).
    Fence { position: u64, epoch: u64 },
    /// The slot is empty; the walk stays here.
    End(u64),
}

pub(crate) struct Walk {
    next: u64,
    fence_epoch: u64,
    read_ahead: u64,
    /// Live fetches by position, each with a token that its answer must carry.
    requested: BTreeMap<u64, u64>,
    arrived: BTreeMap<u64, Option<Entry>>,
    next_token: u64,
}

impl Walk {
    pub(crate) fn new(start: u64, fence_epoch: u64, read_ahead: u32) -> Self {
        Walk {
            next: start,
            fence_epoch,
            read_ahead: u64::from(read_ahead.max(1)),
            requested: BTreeMap::new(),
            arrived: BTreeMap::new(),
            next_token: 0,
        }
    }

    /// The next position to consume.
    pub(crate) fn position(&self) -> u64 {
        self.next
    }

    /// Positions to fetch now (at most `limit` ahead), each with the token its answer must
    /// carry.
    pub(crate) fn wanted(&mut self, limit: u32) -> Vec<(u64, u64)> {
        self.wanted_at_most(limit, usize::MAX)
    }

    /// [`Walk::wanted`], but at most `max_new` new fetches (the nearest first): a reader's
    /// flow control (PROTOCOL.md §5 "Flow control") may allow fewer than the window.
    pub(crate) fn wanted_at_most(&mut self, limit: u32, max_new: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let ahead = self.read_ahead.min(u64::from(limit.max(1)));
        for p in self.next..self.next.saturating_add(ahead) {
            if out.len() >= max_new {
                break;
            }
            if !self.requested.contains_key(&p) && !self.arrived.contains_key(&p) {
                self.next_token += 1;
                self.requested.insert(p, self.next_token);
                out.push((p, self.next_token));
            }
        }
        out
    }

    /// Live fetches (sent, not answered, not made stale by a restart or a skip).
    pub(crate) fn in_flight(&self) -> usize {
        self.requested.len()
    }

    /// Record bytes of the slots that arrived and wait to be consumed.
    pub(crate) fn arrived_bytes(&self) -> u64 {
        self.arrived
            .values()
            .flatten()
            .map(|e| crate::flow::record_bytes(&e.records))
            .sum()
    }

    /// Whether `token` is the live fetch of `position` (else its answer is stale).
    pub(crate) fn is_live(&self, position: u64, token: u64) -> bool {
        self.requested.get(&position) == Some(&token)
    }

    /// The answer of a live fetch: `None` for an empty slot. The caller has checked that the
    /// entry's position matches the slot.
    pub(crate) fn arrived(&mut self, position: u64, token: u64, entry: Option<Entry>) {
        if self.is_live(position, token) {
            self.requested.remove(&position);
            self.arrived.insert(position, entry);
        }
    }

    /// The walk ended at an empty slot that turned out to be filled: continue with `entry`.
    pub(crate) fn fill_end(&mut self, entry: Entry) {
        self.arrived.insert(self.next, Some(entry));
    }

    /// Consumes the next slot if its content is known. A fence is only reported: the owner
    /// decides when to [`Walk::pass_fence`].
    pub(crate) fn step(&mut self) -> Option<Step> {
        let position = self.next;
        let entry = match self.arrived.get(&position)? {
            None => return Some(Step::End(position)),
            Some(entry) => entry,
        };
        if let EntryKind::Fence { .. } = entry.header.kind {
            return Some(Step::Fence {
                position,
                epoch: entry.header.epoch,
            });
        }
        let entry = self.arrived.remove(&position).flatten()?;
        self.skip_to(position.saturating_add(1));
        Some(if entry.header.epoch < self.fence_epoch {
            Step::Orphan
        } else {
            Step::Data(entry)
        })
    }

    /// Consumes the fence at the current position: its window is skipped.
    pub(crate) fn pass_fence(&mut self) {
        let Some(Some(entry)) = self.arrived.get(&self.next) else {
            return;
        };
        if let EntryKind::Fence { window } = entry.header.kind {
            self.fence_epoch = self.fence_epoch.max(entry.header.epoch);
            self.skip_to(self.next.saturating_add(u64::from(window)));
        }
    }

    /// Starts over at `start` (a newer cursor). Tokens keep counting, so answers to the old
    /// walk's fetches are never taken for the new one's.
    pub(crate) fn restart(&mut self, start: u64, fence_epoch: u64) {
        self.next = start;
        self.fence_epoch = fence_epoch;
        self.arrived.clear();
        self.requested.clear();
    }

    /// Forgets the empty slots seen from the current position on: they may fill later.
    /// (Present slots never change; fetches in flight stay live.)
    pub(crate) fn forget_empty(&mut self) {
        self.arrived.retain(|_, entry| entry.is_some());
    }

    /// Jumps forward (after a fence, or to a newer cursor), dropping what lies behind.
    pub(crate) fn skip_to(&mut self, position: u64) {
        if position > self.next {
            self.next = position;
            self.arrived = self.arrived.split_off(&position);
            self.requested = self.requested.split_off(&position);
        }
    }
}
