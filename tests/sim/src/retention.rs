//! Retention in the simulation (PROTOCOL.md §4 "Retention"): bare writers drop the leading
//! generations below a random point (or, WAL-only, truncate), both through the consumer rule
//! (`tidewal_core::retention::drop_point`) against a listing of the consumers read straight
//! from the store when the command is given (the commit lands later: the listing is stale by
//! then, as a host's is), sometimes forced. The model learns which points were asked for
//! (below them acknowledged entries may be gone) and which were forced (only those may
//! refuse a consumer's resume with `Truncated`).

use tidewal_core::consumer::ConsumerVersion;
use tidewal_core::retention::drop_point;

use crate::actors::Machine;
use crate::world::World;

/// What the model keeps about retention.
#[derive(Default)]
pub struct Retained {
    /// The highest point a forced drop (or truncate) asked for.
    pub forced_to: u64,
    /// Drops asked for, refused by a consumer, and forced.
    pub asked: u64,
    pub held_back: u64,
    pub forced: u64,
    /// Manifests that raised `dropped_before` (drops and truncates committed).
    pub committed: u64,
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
        let result = if m.wal_only {
            w.truncate(to, now)
        } else {
            w.drop_before(to, now)
        };
        self.note(format_args!(
            "c{client} drop to {to} (forced {forced}): {result:?}"
        ));
        if result.is_ok() {
            self.model.truncated_to = self.model.truncated_to.max(to);
            if forced {
                self.model.retention.forced_to = self.model.retention.forced_to.max(to);
            }
        }
        Ok(())
    }
}
