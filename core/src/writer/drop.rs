//! Retention: dropping the leading generations wholly below a point (PROTOCOL.md §4
//! "Retention"). The dropped files are retired, so the rule that deletes a compaction's
//! inputs (no kept version names them, their grace passed) deletes them too.

use core::time::Duration;

use super::commit::CommitKind;
use super::retain::RoundKind;
use super::{Phase, Writer};
use crate::error::CommandError;
use crate::manifest::{Manifest, RetiredRecord};

/// What a committed drop removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Generations removed from the manifest.
    pub generations: u64,
    /// Their bytes (reclaimed once the retired files are deleted).
    pub bytes: u64,
    /// The manifest's `dropped_before` now: the first position the log holds.
    pub first_position: u64,
}

impl Writer {
    /// With a memtable: drops every entry below `position` (at most the committed cursor:
    /// only entries in generations are dropped). The leading generations wholly below it leave
    /// the manifest and are retired; `dropped_before` becomes `position`, so a reader from the
    /// beginning starts there (inside the first kept generation, if it lies inside one).
    /// Without `force` the named consumers are checked first (PROTOCOL.md §4 "Retention": an
    /// intent commit, a listing, then the drop): answered by [`super::Event::Dropped`], or by
    /// [`super::Event::DropRefused`] when a consumer has not consumed past `position` or the
    /// consumers could not be listed (nothing dropped). With `force`, dropped whatever the consumers. WAL-only logs use
    /// [`Writer::truncate`].
    pub fn drop_before(
        &mut self,
        position: u64,
        force: bool,
        now: Duration,
    ) -> Result<(), CommandError> {
        self.now = self.now.max(now);
        self.command_allowed()?;
        if self.cfg.wal_only {
            return Err(CommandError::WrongMode);
        }
        if self.phase != Phase::Ready {
            return Err(CommandError::NotReady);
        }
        let (min, max) = self
            .manifest
            .as_ref()
            .map_or((0, 0), |m| (m.dropped_before, m.replay_cursor));
        if position < min || position > max {
            return Err(CommandError::OutOfRange {
                requested: position,
                min,
                max,
            });
        }
        self.ask_round(RoundKind::Drop, position, force);
        self.after_input();
        Ok(())
    }

    /// Commits `m` less its leading generations wholly below `to` (past `dropped_before`),
    /// for `drop_before` and for the rounds of `retain.rs`.
    pub(super) fn commit_drop(&mut self, mut m: Manifest, to: u64) {
        let at = self.wall_clock();
        let n = m
            .generations
            .iter()
            .take_while(|g| g.last_position < to)
            .count();
        let version = m.version;
        let dropped: alloc::vec::Vec<_> = m.generations.drain(..n).collect();
        m.retired.extend(dropped.iter().map(|g| RetiredRecord {
            path: g.path.clone(),
            version,
            bytes: g.bytes,
            at,
        }));
        // Times never decrease along the log: the newest time a dropped generation held stays
        // in the manifest, or a writer with a lagging clock that opens after the drop took
        // every timed generation would stamp below it (simulation seed 7022).
        let dropped_time = dropped.iter().filter_map(|g| g.max_time).max();
        if let Some(t) = dropped_time {
            m.time_floor = Some(m.time_floor.map_or(t, |f| f.max(t)));
        }
        m.dropped_before = to;
        self.drop_in_slot = Some(Dropped {
            generations: dropped.len() as u64,
            bytes: dropped.iter().map(|g| g.bytes).sum(),
            first_position: to,
        });
        self.start_commit(m, CommitKind::Drop);
    }

    /// The drop's manifest passed its post-check.
    pub(super) fn on_dropped(&mut self) {
        let Some(d) = self.drop_in_slot.take() else {
            return;
        };
        self.counters.generations_dropped += d.generations;
        self.counters.bytes_dropped += d.bytes;
        self.on_round_closed(Some(d));
    }
}
