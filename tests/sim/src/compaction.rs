//! Compaction in the simulation (PROTOCOL.md §4 "Compaction", §5 "Generation gone"): the
//! writers' settings (small tiers and targets so that merges happen often within a seed, a
//! short grace so that retired files go while slow readers still hold the manifests that
//! named them), the model's checks (every manifest's generations hold the previous one's
//! entries, in order; no generation a manifest version still in the store names is deleted)
//! and the count of readers that met a generation gone.

use std::collections::BTreeSet;
use std::time::Duration;

use tidewal_core::{CompactionConfig, Manifest, MemStore, RawCodec};

use crate::actors::Machine;
use crate::model::{Check, Model};
use crate::rng::Rng;
use crate::world::World;

/// A seed's compaction settings: mostly on, with tiers of a few hundred bytes (generations
/// are 256 B .. 8 KiB), a target of a few KiB and a grace from nothing to a few polls.
pub(crate) fn config(rng: &mut Rng) -> Option<CompactionConfig> {
    if rng.chance(0.15) {
        return None;
    }
    Some(CompactionConfig {
        enabled: true,
        fanout: rng.range(2, 4) as u32,
        tier_base: rng.range(64, 1024),
        target_bytes: rng.range(2048, 32768),
        grace: Duration::from_millis(rng.range(0, 80)),
    })
}

/// What the model keeps about compaction.
#[derive(Default)]
pub struct Compactions {
    /// Manifest versions written into a collected hole below the newest (a fenced writer's):
    /// nobody reads them as current, and they may name files the owner since deleted.
    pub holes: BTreeSet<u64>,
    /// Manifests whose generations are fewer than the one before's (a compaction landed).
    pub committed: u64,
    /// Each retired file: when a landed manifest first listed it in `retired` (simulation
    /// time) and the `at` it was retired with.
    pub retired_seen: std::collections::BTreeMap<String, (Duration, Option<u64>)>,
    /// Retired files deleted, each checked against the grace period.
    pub grace_checked: u64,
}

impl Model {
    /// A manifest landed at simulation time `now`: the retired files it lists start their
    /// grace no earlier than this.
    pub fn retired_landed(&mut self, m: &Manifest, now: Duration) {
        for r in &m.retired {
            self.compactions
                .retired_seen
                .entry(r.path.clone())
                .or_insert((now, r.at));
        }
    }

    /// A manifest newer than every other landed: its generations must hold exactly the
    /// previous newest one's entries, in order, then what it flushed (a compaction changes no
    /// entry of the log; a flush only adds).
    pub fn check_generations_extend(
        &mut self,
        store: &MemStore,
        codec: &RawCodec,
        old: &Manifest,
        new: &Manifest,
    ) -> Check {
        if new.generations.len() < old.generations.len() && new.dropped_before == old.dropped_before
        {
            self.compactions.committed += 1;
        }
        // Retention drops what lies below `dropped_before` (whole leading generations): the
        // rest must be kept exactly (`retention.rs`).
        let floor = new.dropped_before;
        self.retention.committed += u64::from(floor > old.dropped_before);
        let mut before = self.generations(store, codec, old)?;
        let mut after = self.generations(store, codec, new)?;
        before.retain(|&(pos, _)| pos >= floor);
        after.retain(|&(pos, _)| pos >= floor);
        if after.get(..before.len()) != Some(&before[..]) {
            let at = before
                .iter()
                .zip(&after)
                .position(|(a, b)| a != b)
                .unwrap_or(after.len().min(before.len()));
            return Err(format!(
                "manifest v{} changed the log's generations: entry {at} was {:?}, now {:?}",
                new.version,
                before.get(at),
                after.get(at)
            ));
        }
        Ok(())
    }

    /// A generation file is about to be deleted: no manifest version still in the store
    /// (but a fenced writer's in a hole) may name it.
    pub fn check_generation_delete(&self, store: &MemStore, path: &str) -> Check {
        if !path.contains("/gen/") {
            return Ok(());
        }
        for other in store.paths().filter(|p| p.contains("manifest/")) {
            let Some(body) = store.object(other) else {
                continue;
            };
            let Ok(m) = Manifest::decode(body) else {
                continue;
            };
            if self.compactions.holes.contains(&m.version) {
                continue;
            }
            if m.generations.iter().any(|g| g.path == path) {
                return Err(format!(
                    "deleted {path}, which kept manifest v{} names",
                    m.version
                ));
            }
        }
        Ok(())
    }
}

impl World {
    /// Counts the times reader (or consumer) `client` met a generation gone and re-read the
    /// manifest.
    pub(crate) fn count_gone(&mut self, client: usize) {
        let c = &mut self.clients[client];
        let seen = match &c.machine {
            Some(Machine::Reader(r)) => r.generations_gone(),
            Some(Machine::Consumer(k)) => k.generations_gone(),
            _ => return,
        };
        if seen > c.gone_seen {
            self.generations_gone += seen - c.gone_seen;
            c.gone_seen = seen;
        }
    }
}

impl World {
    /// A writer sends the delete of a retired file: its grace must have passed by the rule
    /// of PROTOCOL.md §4 "Retired files", on this writer's clocks. Without a wall clock (or a
    /// record without `at`) the grace runs on its own clock from when it learned of the file,
    /// which is no earlier than the manifest that retired it landed; with both, from `at` by
    /// its wall clock.
    pub(crate) fn check_grace(&mut self, client: usize, path: &str) -> Result<(), String> {
        let Some(&(seen, at)) = self.model.compactions.retired_seen.get(path) else {
            // Never listed as retired: a merged file no manifest named.
            return Ok(());
        };
        let grace = self.wcfg.compaction.clone().unwrap_or_default().grace;
        let c = &self.clients[client];
        let local_now = c.clock.local(self.now);
        let (waited, rule) = match (c.wall_origin, at) {
            (Some(origin), Some(at)) => {
                let wall = origin + local_now.as_millis() as u64;
                (
                    Duration::from_millis(wall.saturating_sub(at)),
                    "by its wall clock",
                )
            }
            _ => (
                local_now.saturating_sub(c.clock.local(seen)),
                "on its clock since the retiring manifest landed",
            ),
        };
        if waited < grace {
            return Err(format!(
                "c{client} deleted retired {path} after {waited:?} {rule}, within the grace {grace:?}"
            ));
        }
        self.model.compactions.grace_checked += 1;
        Ok(())
    }
}
