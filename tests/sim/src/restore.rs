//! Restore in the simulation (PROTOCOL.md §4 "Restore"): now and then a restorer (a bare
//! writer that appends nothing, as `tidewal restore` is) opens the log, flushes what it
//! replayed and restores to a random position, time or version (a third of the versions undo
//! the newest restore), then closes. The model checks the version it commits against the
//! one below it: for a point `P`, exactly that version's entries below `P` (the point of a
//! time is the first entry of a known time past it); for a version `V`, `V`'s entries then
//! the previous version's at or past `V`'s cursor; the cursor and `dropped_before` kept.
//! Entries a restore leaves out leave the model's log (readers no longer owe them; a reader
//! may have reported them, nothing is retracted) and come back if a later restore brings
//! them back. The delete check of `compaction.rs` (no generation a kept version names is
//! deleted) holds restores to the retired-files rule.

use std::collections::{BTreeMap, BTreeSet};

use tidewal_core::{Manifest, MemStore, RawCodec, RestoreError, RestoreTarget, Restored};

use crate::actors::Machine;
use crate::model::{Check, Model};
use crate::world::World;

/// What the model keeps about restores.
#[derive(Default)]
pub struct Restores {
    /// What each restorer's epoch asked for.
    pub targets: BTreeMap<u64, RestoreTarget>,
    /// Payloads the log held and a restore left out (the current ones: a later restore may
    /// bring some back).
    pub away: BTreeSet<u64>,
    /// Acknowledged payloads among them, with their positions: acknowledged again if they
    /// come back.
    pub away_acked: BTreeMap<u64, u64>,
    /// Acknowledged payloads a restore brought back, with the count of restores committed
    /// once it had: a reader that started before read a version without them.
    pub back: BTreeMap<u64, u64>,
    /// Restores asked for, committed (their version landed and passed the check), and
    /// refused (typed errors).
    pub asked: u64,
    pub committed: u64,
    pub refused: u64,
    /// Committed ones to a position, a time, a version.
    pub kinds: [u64; 3],
}

/// A restorer's progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Restorer {
    /// Opening, or open and about to ask.
    #[default]
    Idle,
    /// Asked; waits for `Restored`.
    Asked,
    /// Answered: closing.
    Done,
}

impl Model {
    /// Manifest `new` records a restore and lands on `old` (the newest before it).
    pub fn check_restore(
        &mut self,
        store: &MemStore,
        codec: &RawCodec,
        old: &Manifest,
        new: &Manifest,
    ) -> Check {
        let Some(r) = new.restored.clone() else {
            return Ok(());
        };
        let who = format!("restore v{}", new.version);
        if r.from_version != old.version || new.version != old.version + 1 {
            return Err(format!(
                "{who} says it was built on v{}, the newest was v{}",
                r.from_version, old.version
            ));
        }
        if new.replay_cursor != old.replay_cursor || new.dropped_before != old.dropped_before {
            return Err(format!(
                "{who} moved the cursor or dropped_before: {} / {} after {} / {}",
                new.replay_cursor, new.dropped_before, old.replay_cursor, old.dropped_before
            ));
        }
        // A file is never listed again by a version once one retired it: GC may delete it.
        if let Some(g) = new
            .generations
            .iter()
            .find(|g| new.retired.iter().any(|r| r.path == g.path))
        {
            return Err(format!("{who} lists {}, which it keeps retired", g.path));
        }
        let target = *self
            .restores
            .targets
            .get(&new.epoch)
            .ok_or_else(|| format!("{who} by epoch {}, which asked for none", new.epoch))?;
        let floor = old.dropped_before;
        let mut before = self.generations(store, codec, old)?;
        before.retain(|&(pos, _)| pos >= floor);
        let mut after = self.generations(store, codec, new)?;
        after.retain(|&(pos, _)| pos >= floor);
        let below = |p: u64| {
            before
                .iter()
                .filter(|e| e.0 < p)
                .copied()
                .collect::<Vec<_>>()
        };
        let expected = match target {
            RestoreTarget::Position(p) => {
                if r.to != p {
                    return Err(format!(
                        "{who} to position {p} says it restored to {}",
                        r.to
                    ));
                }
                vec![below(p)]
            }
            RestoreTarget::Time(t) => {
                // The first entry of a known time past `t` (times never decrease).
                let p = before
                    .iter()
                    .find(|(_, id)| self.time.get(id).copied().flatten().is_some_and(|x| x > t))
                    .map_or(old.replay_cursor, |e| e.0);
                if r.to != p {
                    return Err(format!(
                        "{who} to time {t} restored to {}, the first entry past it is at {p}",
                        r.to
                    ));
                }
                vec![below(p)]
            }
            RestoreTarget::Version(v) => {
                if r.version != Some(v) {
                    return Err(format!("{who} to v{v} says {:?}", r.version));
                }
                // Any manifest that landed at `v` (a hole may hold another one).
                let mut options = Vec::new();
                for m in self.history.by_version.get(&v).cloned().unwrap_or_default() {
                    let mut theirs = self.generations(store, codec, &m)?;
                    theirs.retain(|&(pos, _)| pos >= floor);
                    theirs.extend(before.iter().filter(|e| e.0 >= m.replay_cursor));
                    options.push(theirs);
                }
                options
            }
        };
        if !expected.contains(&after) {
            let first = expected.first().cloned().unwrap_or_default();
            let at = first
                .iter()
                .zip(&after)
                .position(|(a, b)| a != b)
                .unwrap_or(first.len().min(after.len()));
            return Err(format!(
                "{who} to {target:?} holds {} entries, expected {}: entry {at} is {:?}, expected {:?}",
                after.len(),
                first.len(),
                after.get(at),
                first.get(at)
            ));
        }
        // The log below the cursor is `after` now.
        let kept: BTreeSet<u64> = after.iter().map(|&(_, id)| id).collect();
        for &(_, id) in &before {
            if !kept.contains(&id) {
                self.restores.away.insert(id);
                if let Some(pos) = self.acked.remove(&id) {
                    self.restores.away_acked.insert(id, pos);
                }
            }
        }
        self.restores.committed += 1;
        for id in &kept {
            self.restores.away.remove(id);
            if let Some(pos) = self.restores.away_acked.remove(id) {
                self.acked.insert(*id, pos);
                self.restores.back.insert(*id, self.restores.committed);
            }
        }
        self.restores.kinds[match target {
            RestoreTarget::Position(_) => 0,
            RestoreTarget::Time(_) => 1,
            RestoreTarget::Version(_) => 2,
        }] += 1;
        Ok(())
    }
}

impl World {
    /// A restorer for the log, now and then (not for WAL-only logs, which refuse restores:
    /// the core tests check that).
    pub(crate) fn maybe_spawn_restorer(&mut self) -> Result<(), String> {
        if self.wcfg.wal_only || !self.restore_rng.chance(0.15) {
            return Ok(());
        }
        let client = self.spawn_writer_as(true, false)?;
        self.note(format_args!("c{client} is a restorer"));
        self.clients[client].restorer = Some(Restorer::Idle);
        Ok(())
    }

    /// A restorer's step: once it owns the log, flush what it replayed and ask for a random
    /// restore.
    pub(crate) fn act_restorer(&mut self, client: usize) -> Result<(), String> {
        if self.clients[client].restorer != Some(Restorer::Idle) || !self.clients[client].ready {
            return Ok(());
        }
        let now = self.local_now(client);
        let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        let _ = w.flush_memtable(now);
        let Some(m) = w.manifest().cloned() else {
            return Ok(());
        };
        let end = w
            .memtable()
            .last()
            .map_or(m.replay_cursor, |e| e.position + 1);
        let epoch = w.epoch();
        let target = self.restore_target(&m, end);
        self.model.restores.asked += 1;
        self.model.restores.targets.insert(epoch, target);
        let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        let result = w.restore(target, now);
        self.note(format_args!("c{client} restore {target:?}: {result:?}"));
        match result {
            Ok(()) => self.clients[client].restorer = Some(Restorer::Asked),
            Err(e) => self.restore_refused(client, target, &m, e)?,
        }
        self.drain(client)
    }

    /// A random target: a position up to a little past the end, a time near an entry's
    /// (or before every one), a recent version (or the one below the newest restore: its
    /// undo, or one never committed).
    fn restore_target(&mut self, m: &Manifest, end: u64) -> RestoreTarget {
        match self.restore_rng.range(0, 2) {
            0 => {
                let p = self.restore_rng.range(m.dropped_before, end + 2);
                RestoreTarget::Position(p)
            }
            1 => {
                let times: Vec<u64> = self.model.time.values().filter_map(|&t| t).collect();
                let t = match times.len() as u64 {
                    n if n > 0 && self.restore_rng.chance(0.9) => {
                        times[self.restore_rng.range(0, n - 1) as usize]
                            + self.restore_rng.range(0, 2)
                            - 1
                    }
                    _ => crate::world::WALL_CLOCK_BASE - 1000,
                };
                RestoreTarget::Time(t)
            }
            _ => {
                let undo = self
                    .model
                    .history
                    .by_version
                    .iter()
                    .rev()
                    .find(|(_, ms)| ms.iter().any(|m| m.restored.is_some()))
                    .map(|(&v, _)| v - 1);
                let v = match undo {
                    Some(v) if self.restore_rng.chance(0.5) => v,
                    _ if self.restore_rng.chance(0.1) => m.version + 1,
                    _ => self
                        .restore_rng
                        .range(m.version.saturating_sub(4).max(1), m.version),
                };
                RestoreTarget::Version(v)
            }
        }
    }

    /// A restorer's answer: committed (the model checked the version as it landed), or a
    /// typed refusal that the model agrees with. Either way it closes.
    pub(crate) fn restored(
        &mut self,
        client: usize,
        result: Result<Restored, RestoreError>,
    ) -> Result<(), String> {
        let target = self
            .model
            .restores
            .targets
            .get(&self.clients[client].epoch)
            .copied();
        let Some(target) = target else {
            return Err(format!("c{client} answered a restore it never asked for"));
        };
        match result {
            Ok(r) => {
                let landed = self.model.history.by_version.get(&r.version);
                if !landed.is_some_and(|ms| ms.iter().any(|m| m.restored.is_some())) {
                    return Err(format!(
                        "c{client} restored as v{}, which never landed as a restore",
                        r.version
                    ));
                }
            }
            Err(e) => {
                let m = self.model.high.clone().ok_or("no manifest")?;
                self.restore_refused(client, target, &m, e)?;
            }
        }
        self.clients[client].restorer = Some(Restorer::Done);
        let now = self.local_now(client);
        if let Some(Machine::Writer(w)) = &mut self.clients[client].machine {
            let _ = w.close(now);
        }
        Ok(())
    }

    /// A refusal must be one the log as the model knows it explains.
    fn restore_refused(
        &mut self,
        client: usize,
        target: RestoreTarget,
        m: &Manifest,
        e: RestoreError,
    ) -> Result<(), String> {
        self.model.restores.refused += 1;
        self.clients[client].restorer = Some(Restorer::Done);
        let high = self.model.high.as_ref().map_or(0, |h| h.version);
        let explained = match (&e, target) {
            (RestoreError::OutOfRange { max, .. }, RestoreTarget::Position(p)) => p > *max,
            (RestoreError::NoSuchVersion { .. }, RestoreTarget::Version(v)) => {
                v == 0 || v > high.min(m.version)
            }
            (RestoreError::VersionNotKept { .. }, RestoreTarget::Version(v)) => {
                self.model.history.delete_sent.contains_key(&v)
            }
            (RestoreError::NothingAtOrBefore { .. }, RestoreTarget::Time(t)) => {
                let mut log = self.model.generations(&self.net.store, &self.codec, m)?;
                log.retain(|&(pos, _)| pos >= m.dropped_before);
                log.first().is_none_or(|(_, id)| {
                    self.model
                        .time
                        .get(id)
                        .copied()
                        .flatten()
                        .is_some_and(|x| x > t)
                })
            }
            // A generation of an older version collected with it, or ids used up between
            // neighbours: the log as it is decides; both are typed and write nothing.
            (RestoreError::GenerationCollected { .. } | RestoreError::NoIdLeft { .. }, _) => true,
            // The writer stopped (fenced by a newer one, or the store kept failing).
            (RestoreError::Failed(_) | RestoreError::Closed, _) => true,
            // A restorer with a retention policy may be in its own policy round (seed 10566:
            // a flush's round was still committing when the restore was asked).
            (RestoreError::Busy, _) => self.clients[client].retains,
            _ => false,
        };
        if !explained {
            return Err(format!("c{client}: restore to {target:?} refused: {e}"));
        }
        Ok(())
    }
}
