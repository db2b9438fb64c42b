//! The reference model: what the store and every observer must agree on.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tidewal_core::{Body, Codec, EntryHeader, EntryKind, Manifest, MemStore, RawCodec};

/// Payload ids are the first 8 bytes of each record.
pub fn payload_id(payload: &Body) -> Option<u64> {
    Some(u64::from_le_bytes(
        payload.to_bytes().get(..8)?.try_into().ok()?,
    ))
}

/// The facts every run accumulates, and the checks against them.
#[derive(Default)]
pub struct Model {
    /// The simulation's time, as the world last set it (for checks that need when).
    pub now: std::time::Duration,
    /// Payload → client that appended it.
    pub owner: Vec<usize>,
    /// Payload → position it landed at (from the store's successful puts).
    pub landed: BTreeMap<u64, u64>,
    /// Acknowledged payloads → position.
    pub acked: BTreeMap<u64, u64>,
    /// Fences written at or above the cursor: position → epoch.
    pub fences: BTreeMap<u64, u64>,
    /// The highest manifest version written.
    pub high: Option<Manifest>,
    /// The highest position any writer asked to truncate (WAL-only) or drop to: below it
    /// acknowledged entries may be gone.
    pub truncated_to: u64,
    /// The first manifest of each (epoch, writer nonce): the writer's claim, which its walk
    /// starts from. (A slow opener's claim may fill a collected hole with an epoch already
    /// taken; its post-commit check fails it before it walks.)
    pub claims: BTreeMap<(u64, u64), Manifest>,
    /// Each epoch's replay as the store holds it when the epoch's fence lands (the walk is
    /// over then): (position, payload) in order and the cursor below which nothing is owed,
    /// or why the store no longer holds the walk.
    pub replays: BTreeMap<u64, Result<View, String>>,
    /// Payloads that must never land, and why (timed out, refused, zero rows).
    pub never: BTreeMap<u64, String>,
    /// Payload → the time of the entry it landed in (`None`: its writer records none).
    pub time: BTreeMap<u64, Option<u64>>,
    /// Every manifest that landed, by version (a slow writer may fill a collected version's
    /// hole with another), and which versions a writer asked to delete (`history.rs`).
    pub history: crate::history::Versions,
    /// Compaction's facts (`compaction.rs`).
    pub compactions: crate::compaction::Compactions,
    /// Fences and fence intents deleted at the store (collected).
    pub fences_collected: u64,
    pub intents_collected: u64,
    /// Retention's facts (`retention.rs`).
    pub retention: crate::retention::Retained,
    /// Restores' facts (`restore.rs`).
    pub restores: crate::restore::Restores,
    /// Decoded generation contents by path: (position, payload) in order.
    gen_cache: BTreeMap<String, Vec<(u64, u64)>>,
}

/// A log as one observer saw it: (position, payload) in order, and the position below which it
/// holds nothing (WAL-only logs drop what lies below the cursor; the others below
/// `dropped_before`).
pub type View = (Vec<(u64, u64)>, u64);

pub type Check = Result<(), String>;

impl Model {
    /// A put landed in the store.
    pub fn on_put(
        &mut self,
        store: &MemStore,
        path: &str,
        body: &Bytes,
        codec: &RawCodec,
    ) -> Check {
        if path.contains("/wal/") || path.starts_with("wal/") {
            let e = codec
                .decode_entry(body.clone())
                .map_err(|e| format!("unreadable entry written at {path}: {e}"))?;
            match e.header.kind {
                EntryKind::Fence { .. } => {
                    if let Some((prefix, _)) = path.rsplit_once("wal/") {
                        let h = &e.header;
                        let replay = self.replay_to(store, codec, prefix, h);
                        self.replays.insert(h.epoch, replay);
                    }
                    // A slow opener can fence a slot that a newer writer already flushed and
                    // collected: below the cursor nobody walks, so it fences nothing.
                    let cursor = self.high.as_ref().map_or(0, |m| m.replay_cursor);
                    if e.header.position >= cursor {
                        self.fences.insert(e.header.position, e.header.epoch);
                    }
                }
                EntryKind::Data => {
                    for r in &e.records {
                        let id = payload_id(&r.payload).ok_or("short payload")?;
                        if let Some(why) = self.never.get(&id) {
                            return Err(format!(
                                "payload {id} landed at {}, but {why}",
                                e.header.position
                            ));
                        }
                        self.time.insert(id, e.header.time);
                        if let Some(prev) = self.landed.insert(id, e.header.position) {
                            if prev != e.header.position {
                                return Err(format!(
                                    "payload {id} landed at {prev} and at {}",
                                    e.header.position
                                ));
                            }
                        }
                    }
                }
            }
        } else if path.contains("manifest/") {
            let m = Manifest::decode(body).map_err(|e| format!("bad manifest {path}: {e:?}"))?;
            self.history.landed(&m);
            self.retired_landed(&m, self.now);
            self.claims
                .entry((m.epoch, m.writer_nonce))
                .or_insert_with(|| m.clone());
            let newer = self.high.as_ref().is_none_or(|h| m.version > h.version);
            if newer {
                if let Some(h) = &self.high {
                    if m.epoch < h.epoch || m.replay_cursor < h.replay_cursor {
                        return Err(format!(
                            "manifest went backwards: v{} epoch {} cursor {} after v{} epoch {} cursor {}",
                            m.version, m.epoch, m.replay_cursor, h.version, h.epoch, h.replay_cursor
                        ));
                    }
                    let h = h.clone();
                    if m.restored.is_some() {
                        self.check_restore(store, codec, &h, &m)?;
                    } else {
                        self.check_policy_drop(&h, &m)?;
                        self.check_generations_extend(store, codec, &h, &m)?;
                    }
                }
                self.high = Some(m);
                self.check_cursor(store, codec)?;
            } else if self.high.as_ref().is_some_and(|h| m.version < h.version) {
                self.compactions.holes.insert(m.version);
            }
        }
        Ok(())
    }

    /// Every acknowledged payload below the current cursor is in a generation.
    pub fn check_cursor(&mut self, store: &MemStore, codec: &RawCodec) -> Check {
        let Some(m) = self.high.clone() else {
            return Ok(());
        };
        if m.wal_only {
            return Ok(());
        }
        let in_gens: BTreeSet<u64> = self
            .generations(store, codec, &m)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        for (&id, &pos) in &self.acked {
            // Below `dropped_before`, retention may have dropped it.
            if pos >= m.dropped_before && pos < m.replay_cursor && !in_gens.contains(&id) {
                return Err(format!(
                    "cursor {} (manifest v{}) skipped acked payload {id} at {pos}",
                    m.replay_cursor, m.version
                ));
            }
        }
        Ok(())
    }

    /// A delete is about to be applied.
    pub fn on_delete(&self, store: &MemStore, path: &str) -> Check {
        self.check_generation_delete(store, path)?;
        if let Some(pos) = wal_position(path) {
            // A fence is collected only once its window lies below the cursor (PROTOCOL.md §4
            // "Collecting fences"); whether that loses an acknowledged append is what the
            // checks of every read and every open tell.
            let cursor = self.high.as_ref().map_or(0, |m| m.replay_cursor);
            let window = self.high.as_ref().map_or(0, |m| u64::from(m.fence_window));
            if self.fences.contains_key(&pos) && pos + window > cursor {
                return Err(format!(
                    "fence at {pos} deleted, its window reaching the cursor {cursor}"
                ));
            }
            if pos >= cursor {
                return Err(format!(
                    "WAL slot {pos} deleted at or above the cursor {cursor}"
                ));
            }
        }
        Ok(())
    }

    /// The (position, payload) pairs of a manifest's generations.
    pub fn generations(
        &mut self,
        store: &MemStore,
        codec: &RawCodec,
        m: &Manifest,
    ) -> Result<Vec<(u64, u64)>, String> {
        let mut out = Vec::new();
        for g in &m.generations {
            if !self.gen_cache.contains_key(&g.path) {
                let body = store
                    .object(&g.path)
                    .ok_or_else(|| format!("generation {} missing", g.path))?;
                let decoded = codec
                    .decode_generation(body.clone())
                    .map_err(|e| format!("generation {}: {e}", g.path))?;
                let mut items = Vec::new();
                for e in decoded.entries {
                    for r in e.records {
                        items.push((e.position, payload_id(&r.payload).ok_or("short payload")?));
                    }
                }
                self.gen_cache.insert(g.path.clone(), items);
            }
            out.extend_from_slice(&self.gen_cache[&g.path]);
        }
        Ok(out)
    }

    /// What the writer of this fence replayed, if the fence just landed: its claim's
    /// generations, then the walk from the claim's cursor up to the fence.
    fn replay_to(
        &mut self,
        store: &MemStore,
        codec: &RawCodec,
        prefix: &str,
        fence: &EntryHeader,
    ) -> Result<View, String> {
        let (epoch, at) = (fence.epoch, fence.position);
        let m = self
            .claims
            .get(&(epoch, fence.nonce))
            .cloned()
            .ok_or_else(|| format!("a fence of epoch {epoch}, which its writer never claimed"))?;
        let mut items = self.generations(store, codec, &m)?;
        let (walked, end) = walk(store, codec, prefix, &m, Some(at));
        if end != at {
            return Err(format!(
                "the walk of epoch {epoch} from {} ends at {end}, its fence is at {at}",
                m.replay_cursor
            ));
        }
        items.extend(walked);
        if m.wal_only {
            return Ok((items, m.replay_cursor));
        }
        // What retention dropped is not part of the log, even where a kept generation holds it.
        items.retain(|&(pos, _)| pos >= m.dropped_before);
        Ok((items, m.dropped_before))
    }

    /// One observed run of the log (a writer's view at open, or a reader's output so far):
    /// ordered, no duplicates, consistent with the store, nothing written past a newer fence.
    /// Where a reader from time `t` must start reporting: the first acknowledged entry at or
    /// past `floor` whose time is at or past `t`, or unknown (`u64::MAX`: none yet). Also checks that the known
    /// times of acknowledged entries never decrease along the log.
    pub fn first_since(&self, t: u64, floor: u64) -> Result<u64, String> {
        let mut by_position: Vec<(u64, Option<u64>)> = self
            .acked
            .iter()
            .map(|(id, &pos)| (pos, self.time.get(id).copied().flatten()))
            .collect();
        by_position.sort();
        let mut newest = (0, 0);
        for &(pos, time) in &by_position {
            if let Some(time) = time {
                if time < newest.1 {
                    return Err(format!(
                        "acked entry at {pos} has time {time}, below {} at {}",
                        newest.1, newest.0
                    ));
                }
                newest = (pos, time);
            }
        }
        Ok(by_position
            .iter()
            .find(|(pos, time)| *pos >= floor && time.is_none_or(|time| time >= t))
            .map_or(u64::MAX, |&(pos, _)| pos))
    }

    pub fn check_sequence(&self, who: &str, items: &[(u64, u64)], epochs: &[u64]) -> Check {
        let mut seen = BTreeSet::new();
        let mut last = None;
        for &(pos, id) in items {
            if last.is_some_and(|l| pos < l) {
                return Err(format!("{who}: position {pos} after {}", last.unwrap_or(0)));
            }
            last = Some(pos);
            if !seen.insert(id) {
                return Err(format!("{who}: payload {id} read twice"));
            }
            let Some(&landed) = self.landed.get(&id) else {
                return Err(format!("{who}: payload {id} was never written"));
            };
            if landed != pos {
                return Err(format!(
                    "{who}: payload {id} read at {pos}, written at {landed}"
                ));
            }
            let epoch = epochs[self.owner[id as usize]];
            if let Some((fpos, fepoch)) = self.fences.range(..pos).find(|(_, &e)| e > epoch) {
                return Err(format!(
                    "{who}: payload {id} of epoch {epoch} at {pos} read past fence {fpos} of epoch {fepoch}"
                ));
            }
        }
        Ok(())
    }
}

/// The data a walk from `m`'s cursor reaches, straight from the store, and where it ends: the
/// first empty or undecodable slot, or `until`.
pub fn walk(
    store: &MemStore,
    codec: &RawCodec,
    prefix: &str,
    m: &Manifest,
    until: Option<u64>,
) -> (Vec<(u64, u64)>, u64) {
    let mut out = Vec::new();
    let mut pos = m.replay_cursor;
    let mut fence_epoch = m.cursor_epoch;
    while until.is_none_or(|u| pos < u) {
        let Some(body) = store.object(&format!("{prefix}wal/{pos:020}.arrows")) else {
            break;
        };
        let Ok(e) = codec.decode_entry(body.clone()) else {
            break;
        };
        match e.header.kind {
            EntryKind::Fence { window } => {
                fence_epoch = fence_epoch.max(e.header.epoch);
                pos += u64::from(window);
                continue;
            }
            EntryKind::Data if e.header.epoch >= fence_epoch => {
                for r in &e.records {
                    if let Some(id) = payload_id(&r.payload) {
                        out.push((pos, id));
                    }
                }
            }
            EntryKind::Data => {}
        }
        pos += 1;
    }
    (out, pos)
}

/// The position named by a WAL path.
pub fn wal_position(path: &str) -> Option<u64> {
    let name = path.rsplit_once("wal/")?.1;
    name.strip_suffix(".arrows")?.parse().ok()
}
