//! Retention in the simulation (PROTOCOL.md §4 "Retention"): bare writers drop the leading
//! generations below a random point (or, WAL-only, truncate), sometimes forced. As a host
//! does, they refuse early through the consumer rule (`tidewal_core::retention::drop_point`)
//! against a listing read straight from the store when the command is given (stale by the
//! time the commit lands); the writer then checks again itself after its intent commit. The model learns which points were asked for
//! (below them acknowledged entries may be gone) and which were forced (only those may
//! refuse a consumer's resume with `Truncated`). Most writers with a memtable also run
//! a random automatic policy (PROTOCOL.md §4 "Automatic retention"): its drops are never
//! forced, so a consumer it passes fails its resume check, and each must end at a
//! generation boundary of the manifest it committed.

use std::time::Duration;
use tidewal_core::consumer::ConsumerVersion;

use tidewal_core::retention::drop_point;
use tidewal_core::writer::DropRefusal;
use tidewal_core::{Dropped, FatalError, Manifest, RetentionPolicy};

use crate::actors::Machine;
use crate::model::{Check, Model};
use crate::rng::Rng;
use crate::world::World;

/// A bare writer's policy, seven times in ten: by bytes (a few generations), by age (sim
/// clocks), or both, rounds up to a few hundred ms apart.
pub(crate) fn policy(rng: &mut Rng) -> Option<RetentionPolicy> {
    if rng.chance(0.3) {
        return None;
    }
    let kind = rng.range(0, 2);
    Some(RetentionPolicy {
        keep_for: (kind != 0).then(|| Duration::from_millis(rng.range(20, 1500))),
        keep_bytes: (kind != 1).then(|| rng.range(1, 4000)),
        interval: Duration::from_millis(rng.range(1, 300)),
    })
}

/// What the model keeps about retention.
#[derive(Default)]
pub struct Retained {
    /// The highest point a forced drop (or truncate) asked for.
    pub forced_to: u64,
    /// Drops asked for, refused by a consumer, and forced.
    pub asked: u64,
    pub held_back: u64,
    pub forced: u64,
    /// Drops the writer refused itself: a consumer its listing after the intent found.
    pub refused_by_writer: u64,
    /// Manifests that raised `dropped_before` (drops and truncates committed).
    pub committed: u64,
    /// Drops the policy committed (as their writers told).
    pub auto: u64,
    /// Epochs whose writer runs a policy: their manifests may raise `dropped_before` past
    /// every point asked for, to the end of a generation.
    pub policy_epochs: std::collections::BTreeSet<u64>,
}

impl Model {
    /// Manifest `new` lands after `old`: a rise of `dropped_before` past every point asked
    /// for is a policy's, which ends whole generations of `old` (and of `new`).
    pub fn check_policy_drop(&mut self, old: &Manifest, new: &Manifest) -> Check {
        let to = new.dropped_before;
        if to <= old.dropped_before || to <= self.truncated_to {
            return Ok(());
        }
        if !self.retention.policy_epochs.contains(&new.epoch) {
            return Ok(());
        }
        let boundary = old.generations.iter().any(|g| g.last_position + 1 == to);
        let split = new.generations.first().filter(|g| g.first_position < to);
        if !boundary || split.is_some() {
            return Err(format!(
                "manifest v{} of a policy writer dropped to {to}, not the end of a generation of v{} ({:?})",
                new.version,
                old.version,
                old.generations
                    .iter()
                    .map(|g| (g.first_position, g.last_position))
                    .collect::<Vec<_>>()
            ));
        }
        self.truncated_to = to;
        Ok(())
    }
}

impl World {
    /// Every consumer name with its committed position (its newest version), as a LIST and
    /// GETs of `log/consumers/` would find them now.
    fn consumer_listing(&self) -> Vec<(String, u64)> {
        let store = &self.net.store;
        let mut newest: std::collections::BTreeMap<String, (u64, String)> = Default::default();
        for path in store.paths().filter(|p| p.starts_with("log/consumers/")) {
            let rest = &path["log/consumers/".len()..];
            let Some((name, file)) = rest.split_once('/') else {
                continue;
            };
            let Some(version) = file.strip_suffix(".json").and_then(|v| v.parse().ok()) else {
                continue;
            };
            let e = newest.entry(name.into()).or_insert((0, String::new()));
            if version >= e.0 {
                *e = (version, path.to_string());
            }
        }
        newest
            .into_iter()
            .filter_map(|(name, (version, path))| {
                let body = store.object(&path)?;
                let v = ConsumerVersion::decode(&path, &name, version, body).ok()?;
                Some((name, v.position))
            })
            .collect()
    }

    /// Where a drop to `wanted` may go by the consumer rule (forced one time in four), or
    /// `None` when a consumer holds it back (checked: the one named lies below `wanted`, at
    /// the lowest position listed).
    fn retention_point(
        &mut self,
        client: usize,
        wanted: u64,
    ) -> Result<Option<(u64, bool)>, String> {
        let listing = self.consumer_listing();
        let force = self.rng.chance(0.25);
        let lowest = listing.iter().map(|&(_, p)| p).min();
        self.model.retention.asked += 1;
        match drop_point(wanted, listing.iter().map(|(n, p)| (n.as_str(), *p)), force) {
            Ok(point) => {
                self.model.retention.forced += u64::from(force);
                Ok(Some((point, force)))
            }
            Err(held) => {
                self.note(format_args!("c{client} drop to {wanted} held back: {held}"));
                if lowest != Some(held.position) || held.position >= wanted {
                    return Err(format!(
                        "drop to {wanted} held back by {} at {}, lowest listed {lowest:?}",
                        held.name, held.position
                    ));
                }
                self.model.retention.held_back += 1;
                Ok(None)
            }
        }
    }

    /// A bare writer's retention command: a drop below a random point up to its cursor (with
    /// a memtable), or a truncate up to its durable end (WAL-only).
    pub(crate) fn act_retention(&mut self, client: usize) -> Result<(), String> {
        let now = self.now;
        let Some(Machine::Writer(w)) = &self.clients[client].machine else {
            return Ok(());
        };
        let Some(m) = w.manifest().cloned() else {
            return Ok(());
        };
        let (low, high) = if m.wal_only {
            let end = w
                .stats()
                .durable_position
                .map_or(m.replay_cursor, |d| d + 1);
            (m.replay_cursor, end.max(m.replay_cursor))
        } else {
            (m.dropped_before, m.replay_cursor.max(m.dropped_before))
        };
        let wanted = self.rng.range(low, high);
        let Some((to, forced)) = self.retention_point(client, wanted)? else {
            return Ok(());
        };
        let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        // The host's listing only refuses early: the writer checks the consumers again after
        // its intent commit (PROTOCOL.md §4 "Retention"), and may answer `DropRefused`.
        let result = if m.wal_only {
            w.truncate(to, forced, now)
        } else {
            w.drop_before(to, forced, now)
        };
        self.note(format_args!(
            "c{client} drop to {to} (forced {forced}): {result:?}"
        ));
        if result.is_ok() && !forced && self.rng.chance(0.5) {
            let at = self.now + Duration::from_millis(self.rng.range(1, 80));
            self.schedule(at, crate::world::Ev::SpawnFresh);
        }
        if result.is_ok() {
            self.model.truncated_to = self.model.truncated_to.max(to);
            if forced {
                self.model.retention.forced_to = self.model.retention.forced_to.max(to);
            }
        }
        Ok(())
    }

    /// A writer refused a drop or truncate it was asked for without force.
    pub(crate) fn drop_refused(&mut self, client: usize, r: DropRefusal) -> Result<(), String> {
        self.note(format_args!("c{client} drop refused by the writer: {r}"));
        match r {
            DropRefusal::HeldBack(h) => {
                let listed = self.consumer_listing();
                if !listed.iter().any(|(n, p)| *n == h.name && *p >= h.position) {
                    return Err(format!(
                        "c{client}: a drop held back by {} at {}, which the store does not hold",
                        h.name, h.position
                    ));
                }
                self.model.retention.refused_by_writer += 1;
            }
            DropRefusal::Listing(FatalError::Store { .. }) => {}
            DropRefusal::Listing(e) => {
                return Err(format!("c{client}: consumer listing failed: {e}"))
            }
        }
        Ok(())
    }

    /// A writer's policy committed a drop: below its point acknowledged entries may be gone
    /// (never forced: a consumer it passed fails its resume check), and the point ends whole
    /// generations in every version of this writer that landed with it.
    pub(crate) fn retained(&mut self, client: usize, d: Dropped) -> Result<(), String> {
        let epoch = self.clients[client].epoch;
        let store = &self.net.store;
        let mut landed = 0;
        for path in store.paths().filter(|p| p.starts_with("log/manifest/")) {
            let Some(m) = store.object(path).and_then(|b| Manifest::decode(b).ok()) else {
                continue;
            };
            if m.epoch != epoch || m.dropped_before != d.first_position {
                continue;
            }
            landed += 1;
            if let Some(g) = m
                .generations
                .first()
                .filter(|g| g.first_position < d.first_position)
            {
                return Err(format!(
                    "c{client} retention split generation {}..={} at {} (manifest v{})",
                    g.first_position, g.last_position, d.first_position, m.version
                ));
            }
        }
        if landed == 0 && d.generations > 0 {
            self.note(format_args!(
                "c{client} retained to {}: its versions collected",
                d.first_position
            ));
        }
        self.model.retention.auto += 1;
        self.model.truncated_to = self.model.truncated_to.max(d.first_position);
        Ok(())
    }
}
