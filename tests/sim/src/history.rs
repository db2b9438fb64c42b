//! Manifest history (PROTOCOL.md §4 "GC", §5 "As of a version", "Until a time"): which
//! manifest versions landed and which a writer asked to delete, the check that a delete
//! keeps the retention rule, and readers as of a random version or until a random time,
//! checked against the model.

use std::collections::{BTreeMap, BTreeSet};

use tidewal_core::{FatalError, Manifest, Op, Start};

use crate::actors::Machine;
use crate::world::World;

/// Two writers' clocks differ by at most this at the simulation's time `now`: each is its
/// own clock (the simulation's at a rate in `[1, 1 + rho]`, `clocks.rs`) plus a skew in
/// `-300 ..= 300` ms (`actors.rs`).
fn max_clock_spread_ms(now: std::time::Duration) -> u64 {
    600 + now.as_millis() as u64 * u64::from(tidewal_core::RHO_NUM)
        / u64::from(tidewal_core::RHO_DEN)
}

/// Every manifest that landed, by version, and the versions a writer asked to delete.
#[derive(Default)]
pub struct Versions {
    /// A slow writer's create may fill a collected version's hole with another manifest:
    /// every one that landed at a version, in order.
    pub by_version: BTreeMap<u64, Vec<Manifest>>,
    /// Versions a writer sent a delete of, and whether one of those writers had no clock
    /// (it keeps by count only).
    pub delete_sent: BTreeMap<u64, bool>,
}

impl Versions {
    pub fn landed(&mut self, m: &Manifest) {
        self.by_version
            .entry(m.version)
            .or_default()
            .push(m.clone());
    }
}

/// What the history readers did (the summary line), and what the model needs of them.
#[derive(Default)]
pub struct Counts {
    pub as_of_reads: u64,
    pub as_of_collected: u64,
    pub until_time_stops: u64,
    /// A reader as of a version: the newest version that had landed when it started.
    high_at_spawn: BTreeMap<usize, u64>,
    /// Readers until a time that follow: they finish only where the time stops them (one
    /// that does not follow also finishes at the log's end, wherever that is).
    following_until: BTreeSet<usize>,
}

/// The version a manifest path names (not a consumer's version).
fn manifest_version(path: &str) -> Option<u64> {
    let name = path.strip_prefix("log/manifest/")?;
    name.strip_suffix(".json")?.parse().ok()
}

impl World {
    /// A writer's delete of a manifest version keeps the rule (PROTOCOL.md §4 "GC"): never
    /// one of the newest `keep_manifests`, and, for a writer with a clock, never one whose
    /// commit time is within `keep_manifests_for` of its clock (up to the spread of clocks:
    /// the writer bounds a version's time by a later version's, another writer's clock).
    pub(crate) fn check_manifest_delete(&mut self, client: usize, op: &Op) -> Result<(), String> {
        let Op::Delete { path } = op else {
            return Ok(());
        };
        let Some(v) = manifest_version(path) else {
            return Ok(());
        };
        let clockless = self.clients[client].wall_origin.is_none();
        *self.model.history.delete_sent.entry(v).or_default() |= clockless;
        let high = self.model.high.as_ref().map_or(0, |m| m.version);
        let keep = u64::from(self.wcfg.keep_manifests);
        if v + keep > high {
            return Err(format!(
                "c{client} deletes manifest v{v}, one of the newest {keep} (v{high})"
            ));
        }
        let Some(origin) = self.clients[client].wall_origin else {
            // No clock: by count only.
            return Ok(());
        };
        let wall = origin + self.local_now(client).as_millis() as u64;
        let committed = self.model.history.by_version.get(&v).and_then(|ms| {
            ms.iter()
                .map(|m| m.committed_at)
                .collect::<Option<Vec<u64>>>()
        });
        let keep_for = self.wcfg.keep_manifests_for.as_millis() as u64;
        if let Some(at) = committed.and_then(|ats| ats.into_iter().min()) {
            if at + keep_for > wall + max_clock_spread_ms(self.now) {
                return Err(format!(
                    "c{client} deletes manifest v{v} committed at {at}, within {keep_for} ms of its clock {wall}"
                ));
            }
        }
        Ok(())
    }

    /// The final writer's wall clock and the newest version when it started opening: what
    /// [`World::check_versions_aged_out`] judges against.
    pub(crate) fn final_writer_start(&self, fw: usize) -> Option<(u64, u64)> {
        let origin = self.clients[fw].wall_origin?;
        let wall = origin + self.local_now(fw).as_millis() as u64;
        Some((wall, self.model.high.as_ref().map_or(0, |m| m.version)))
    }

    /// GC is live (PROTOCOL.md §4 "GC"): once the final writer (with a clock) has committed
    /// and closed, no version is left that was out of the newest `keep_manifests` when it
    /// started and whose commit time, and that of every version below it, was older than
    /// `keep_manifests_for` on its clock then. It listed every such version without its time,
    /// so it must have read the times it needed instead of bounding them by the newest.
    pub(crate) fn check_versions_aged_out(&self, start: Option<(u64, u64)>) -> Result<(), String> {
        let Some((wall, high)) = start else {
            return Ok(());
        };
        let keep = u64::from(self.wcfg.keep_manifests);
        let keep_for = self.wcfg.keep_manifests_for.as_millis() as u64;
        let mut stored: Vec<(u64, &str)> = self
            .net
            .store
            .paths()
            .filter_map(|p| Some((manifest_version(p)?, p)))
            .collect();
        stored.sort_unstable();
        let mut newest_time = 0;
        for (v, path) in stored {
            if v + keep > high {
                break;
            }
            let body = self.net.store.object(path);
            let Some(at) = body
                .and_then(|b| Manifest::decode_version(b, v).ok())
                .and_then(|m| m.committed_at)
            else {
                // No time (a writer without a clock), or not a manifest: kept by a bound.
                break;
            };
            newest_time = newest_time.max(at);
            if newest_time + keep_for < wall {
                return Err(format!(
                    "v{v} (committed at {at}) outlived keep_manifests_for ({keep_for} ms) on the final writer's clock {wall}: GC never collected it"
                ));
            }
        }
        Ok(())
    }

    /// A reader as of a random version (mostly a recent one, sometimes one past the newest),
    /// or until a random time (mostly an acknowledged entry's), from the beginning or a
    /// random position.
    pub(crate) fn spawn_history_reader(&mut self) -> usize {
        let end = self.model.landed.values().max().map_or(0, |p| p + 1);
        let from = match self.rng.chance(0.5) {
            true => Start::Beginning,
            false => Start::Position(self.rng.range(0, end + 4)),
        };
        let high = self.model.high.as_ref().map_or(0, |m| m.version);
        if self.rng.chance(0.5) {
            let version = match self.rng.range(0, 9) {
                _ if high == 0 => 1,
                0 => high + 1,
                1..=3 => self.rng.range(high.saturating_sub(3).max(1), high),
                _ => self.rng.range(1, high),
            };
            let r = self
                .spawn_configured_reader(false, from, None, |c| c.as_of_version = Some(version));
            self.history_counts.high_at_spawn.insert(r, high);
            r
        } else {
            let times: Vec<u64> = self.model.time.values().filter_map(|&t| t).collect();
            let wall = crate::world::WALL_CLOCK_BASE + self.now.as_millis() as u64;
            // Just below, at or just past an entry's time: the stop must fall exactly there.
            let jitter = self.rng.range(0, 2);
            let t = match times.len() as u64 {
                n if n > 0 && self.rng.chance(0.8) => {
                    times[self.rng.range(0, n - 1) as usize] + jitter - 1
                }
                _ => wall.saturating_sub(self.rng.range(0, 3000)),
            };
            let follow = self.rng.chance(0.5);
            let r = self.spawn_configured_reader(follow, from, None, |c| c.until_time = Some(t));
            if follow {
                self.history_counts.following_until.insert(r);
            }
            r
        }
    }

    /// A history reader caught up at `position`. As of a version: it read exactly the
    /// entries at or past its start in the generations of a manifest that landed at that
    /// version, and stopped at that manifest's cursor. Until a time: the entry it stopped
    /// at (a follower's: it ends only there) is none of an acknowledged time at or before it,
    /// nor of unknown time.
    pub(crate) fn check_history_reader(
        &mut self,
        client: usize,
        position: u64,
    ) -> Result<(), String> {
        let c = &self.clients[client];
        let from = c.range.0;
        if let Some(v) = c.as_of {
            let read = c.read.clone();
            let ms = self
                .model
                .history
                .by_version
                .get(&v)
                .cloned()
                .ok_or_else(|| format!("reader c{client} read v{v}, which never landed"))?;
            for m in &ms {
                let mut expected = self.model.generations(&self.net.store, &self.codec, m)?;
                let from = from.max(m.dropped_before);
                expected.retain(|&(pos, _)| pos >= from && pos < m.replay_cursor);
                if read == expected && position == m.replay_cursor {
                    self.history_counts.as_of_reads += 1;
                    return Ok(());
                }
            }
            return Err(format!(
                "reader c{client} as of v{v} read {} entries up to {position} (last {:?}); v{v} holds {} below cursor {}",
                read.len(),
                read.last(),
                self.model.generations(&self.net.store, &self.codec, &ms[0])?.len(),
                ms[0].replay_cursor
            ));
        }
        // A follower's CaughtUp at the log's end leaves it following: only its last one is
        // where the time stopped it.
        let stopped = self.history_counts.following_until.contains(&client)
            && matches!(&c.machine, Some(Machine::Reader(r)) if r.is_done());
        if let (Some(t), true) = (c.until_time, stopped) {
            let at: Vec<Option<u64>> = self
                .model
                .acked
                .iter()
                .filter(|&(_, &pos)| pos == position)
                .map(|(id, _)| self.model.time.get(id).copied().flatten())
                .collect();
            if let Some(time) = at.iter().find(|time| time.is_none_or(|time| time <= t)) {
                return Err(format!(
                    "reader c{client} until time {t} stopped at {position}, an entry of time {time:?}"
                ));
            }
            if !at.is_empty() {
                self.history_counts.until_time_stops += 1;
            }
        }
        Ok(())
    }

    /// A reader as of `v` found it collected: a writer sent its delete, and the version was
    /// no longer kept by the rule (section 4 "GC"), judged apart from the delete's own check:
    /// not one of the newest `keep_manifests` now, and, unless a writer without a clock
    /// deleted it, committed longer than `keep_manifests_for` before any writer's clock now
    /// (the newest clock, give or take the spread of clocks).
    fn collected_under_reader(&self, client: usize, v: u64) -> Result<(), String> {
        let Some(&clockless) = self.model.history.delete_sent.get(&v) else {
            return Err(format!(
                "reader c{client}: v{v} not kept, yet nobody deleted it"
            ));
        };
        let high = self.model.high.as_ref().map_or(0, |m| m.version);
        let keep = u64::from(self.wcfg.keep_manifests);
        if v + keep > high {
            return Err(format!(
                "reader c{client}: v{v} not kept, one of the newest {keep} (v{high})"
            ));
        }
        let committed = self.model.history.by_version.get(&v).and_then(|ms| {
            ms.iter()
                .map(|m| m.committed_at)
                .collect::<Option<Vec<u64>>>()
        });
        let fastest = self.now.as_millis() as u64
            * (u64::from(tidewal_core::RHO_DEN) + u64::from(tidewal_core::RHO_NUM))
            / u64::from(tidewal_core::RHO_DEN);
        let newest_clock = crate::world::WALL_CLOCK_BASE + fastest + 300;
        let keep_for = self.wcfg.keep_manifests_for.as_millis() as u64;
        match committed.and_then(|ats| ats.into_iter().min()) {
            Some(at) if !clockless && at + keep_for > newest_clock + max_clock_spread_ms(self.now) => {
                Err(format!(
                    "reader c{client}: v{v} committed at {at} not kept, {keep_for} ms not past (clocks at most {newest_clock})"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether `f` is a history reader's legitimate end: a version collected (a writer asked
    /// to delete it, and `check_manifest_delete` checked that it could), or one that had not
    /// landed when the reader started. `Err` for any other history error.
    pub(crate) fn history_failure(
        &mut self,
        client: usize,
        f: &FatalError,
    ) -> Result<bool, String> {
        let as_of = self.clients[client].as_of;
        match f {
            FatalError::VersionNotKept { version, .. } if as_of == Some(*version) => {
                self.collected_under_reader(client, *version)?;
                self.history_counts.as_of_collected += 1;
                Ok(true)
            }
            // A generation of the version deleted under the reader: legitimate only once the
            // version itself was collected (compaction deletes a retired file only then; the
            // model's delete check holds it to that).
            FatalError::GenerationCollected { version, .. } if as_of == Some(*version) => {
                self.collected_under_reader(client, *version)?;
                self.history_counts.as_of_collected += 1;
                Ok(true)
            }
            FatalError::NoSuchVersion { version, .. }
                if as_of == Some(*version)
                    && self
                        .history_counts
                        .high_at_spawn
                        .get(&client)
                        .is_some_and(|&high| *version > high) =>
            {
                Ok(true)
            }
            FatalError::VersionNotKept { .. }
            | FatalError::NoSuchVersion { .. }
            | FatalError::GenerationCollected { .. } => {
                Err(format!("reader c{client} (as of {as_of:?}) failed: {f}"))
            }
            _ => Ok(false),
        }
    }
}
