//! Compaction (PROTOCOL.md §4 "Compaction"): the owner merges the run the policy picks
//! (GET each generation, check it, concatenate the entries in position order, put the merged
//! file), commits a manifest that replaces exactly that run, in the one commit slot, and
//! retires the replaced files; a retired file is deleted once no kept manifest version names
//! it and its grace passed, and a later commit drops its record.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::time::Duration;

use super::commit::CommitKind;
use super::{Event, Phase, Purpose, PutTarget, Writer};
use crate::codec::{GenerationHeader, PositionedRecords};
use crate::compaction::CompactionConfig;
use crate::error::{CommandError, FatalError};
use crate::io::{Body, Op, Response, StoreErrorKind};
use crate::manifest::{GenerationRecord, Manifest, RetiredRecord};
use crate::requests::Pending;

/// A merge in progress.
pub(super) struct Compaction {
    /// Tells this compaction's GET answers from an older one's.
    seq: u64,
    /// The run, as the newest committed manifest held it when the policy picked it.
    run: Vec<GenerationRecord>,
    bodies: Vec<Option<Bytes>>,
    /// The merged generation's record and bytes, once encoded.
    merged: Option<(GenerationRecord, Body)>,
    /// The merged file is in the store.
    written: bool,
    /// Its manifest commit is out.
    committing: bool,
}

/// A full pass asked for with [`Writer::compact`]: what it merged so far.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FullPass {
    /// It merges only generations with ids below this (those flushed before it was asked
    /// for), so appends going on beside it cannot keep it running.
    below_id: u64,
    runs: u64,
    replaced: u64,
}

/// A retired file this writer knows of.
pub(super) struct Retiring {
    record: RetiredRecord,
    /// When this writer retired it, or read it in the manifest (its own clock).
    since: Duration,
    state: RetireState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetireState {
    Waiting,
    Deleting,
    /// Deleted (or found absent): the next commit drops its record.
    Deleted,
    /// Its delete kept failing: left for a later writer (counted in `gc_failures`).
    Failed,
}

impl Writer {
    /// The settings compaction runs with: the configured ones, or the defaults for a full
    /// pass and for deleting retired files when background compaction is off.
    fn compaction_cfg(&self) -> CompactionConfig {
        self.cfg.compaction.clone().unwrap_or_default()
    }

    fn background_compaction(&self) -> bool {
        self.cfg.compaction.as_ref().is_some_and(|c| c.enabled)
    }

    /// Runs one full compaction pass (PROTOCOL.md §4 "Compaction"): merges the oldest run of
    /// at least two adjacent generations below the target, again and again, then emits
    /// [`Event::CompactionPass`]. Works with background compaction off too.
    pub fn compact(&mut self, now: Duration) -> Result<(), CommandError> {
        self.now = self.now.max(now);
        self.command_allowed()?;
        if self.cfg.wal_only {
            return Err(CommandError::WrongMode);
        }
        if self.phase != Phase::Ready {
            return Err(CommandError::NotReady);
        }
        let below_id = self.manifest.as_ref().map_or(0, |m| m.next_generation);
        self.full_pass.get_or_insert(FullPass {
            below_id,
            ..FullPass::default()
        });
        self.after_input();
        Ok(())
    }

    /// Starts the compaction the policy picks, if none runs.
    pub(super) fn maybe_compact(&mut self) {
        // A restore in flight plans on the generations as they are: none starts meanwhile.
        let restoring = self.restoring();
        if self.compaction.is_some() || restoring || self.cfg.wal_only || self.phase != Phase::Ready
        {
            return;
        }
        let Some(m) = self.manifest.as_ref() else {
            return;
        };
        // A corrupt generation stops compaction while the manifest names it (retention may
        // drop it).
        if let Some((path, _)) = &self.compaction_error {
            if !m.generations.iter().any(|g| g.path == *path) {
                self.compaction_error = None;
            }
        }
        let paused =
            self.compaction_paused_at == Some(m.version) || self.compaction_error.is_some();
        let cfg = self.compaction_cfg();
        let sizes: Vec<u64> = m.generations.iter().map(|g| g.bytes).collect();
        let picked = match self.full_pass {
            _ if paused => None,
            Some(pass) => {
                let asked = m.generations.iter().take_while(|g| g.id < pass.below_id);
                cfg.pick_full(&sizes[..asked.count()])
            }
            None if self.background_compaction() => cfg.pick(&sizes),
            None => None,
        };
        let Some(range) = picked else {
            if let Some(pass) = self.full_pass.take() {
                self.events.push_back(Event::CompactionPass {
                    runs: pass.runs,
                    replaced: pass.replaced,
                    generations: m.generations.len() as u64,
                    error: self.pass_error.take(),
                });
            }
            return;
        };
        let run = m.generations[range].to_vec();
        // After a restore (which keeps ids) a run may carry the first and last ids of a run
        // this epoch merged before: its name is taken, possibly by a retired file that GC
        // will delete. Not merged while the manifest stays as it is.
        let (first, last) = (run[0].id, run[run.len() - 1].id);
        if self
            .merged_paths
            .contains(&self.paths.merged_generation(self.epoch, first, last))
        {
            self.compaction_paused_at = Some(m.version);
            return;
        }
        self.compaction_seq += 1;
        let seq = self.compaction_seq;
        for (index, g) in run.iter().enumerate() {
            let path = g.path.clone();
            self.get(path, Purpose::CompactGet { seq, index });
        }
        self.compaction = Some(Compaction {
            seq,
            bodies: alloc::vec![None; run.len()],
            run,
            merged: None,
            written: false,
            committing: false,
        });
    }

    /// One of the run's generations arrived: checked against its record, as readers do.
    pub(super) fn on_compact_get(
        &mut self,
        seq: u64,
        index: usize,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        let Some(c) = self.compaction.as_mut().filter(|c| c.seq == seq) else {
            return;
        };
        let body = match resp.into_get() {
            Ok(body) => body,
            // Deleted under us: only a newer writer retires this writer's generations; the
            // next commit finds it and fences this one. Nothing was put yet; no compaction
            // starts again until a commit moves the manifest on (it would meet the same).
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                self.compaction = None;
                self.counters.compactions_dropped += 1;
                self.compaction_paused_at = self.manifest.as_ref().map(|m| m.version);
                return;
            }
            Err(e) => {
                if let Err(request) = self.io.retry(self.now, request) {
                    let path = Self::path_of(&request.op);
                    self.compaction_failed(Self::store_fatal(path, &e), None);
                }
                return;
            }
        };
        if let Err(e) = c.run[index].verify(self.codec.as_ref(), &body) {
            let path = c.run[index].path.clone();
            return self.compaction_failed(e, Some(path));
        }
        c.bodies[index] = Some(body);
        if c.bodies.iter().all(Option::is_some) {
            self.merge();
        }
    }

    /// Every input is here: concatenate their entries in position order and put the merged
    /// generation under its own name.
    fn merge(&mut self) {
        let Some(c) = self.compaction.as_mut() else {
            return;
        };
        let run = c.run.clone();
        let bodies: Vec<Bytes> = c.bodies.iter_mut().filter_map(Option::take).collect();
        match self.merged_entries(&run, bodies) {
            Ok(entries) => self.put_merged(&run, &entries),
            Err(e) => {
                let path = match &e {
                    FatalError::Corrupt { path, .. } | FatalError::Unsupported { path, .. } => {
                        Some(path.clone())
                    }
                    _ => None,
                };
                self.compaction_failed(e, path)
            }
        }
    }

    /// A run could not be read (its store kept failing, or a generation is corrupt): the
    /// compaction is dropped, nothing was put, and the writer goes on, since compaction only
    /// saves space. A store failure pauses compaction until a commit moves the manifest on;
    /// a corrupt generation stops it for this writer (`compaction_error` in stats names it:
    /// merging around it would only be retried and fail again, and readers meet the same
    /// error).
    pub(super) fn compaction_failed(&mut self, error: FatalError, corrupt: Option<String>) {
        self.compaction = None;
        self.counters.compactions_failed += 1;
        self.compaction_paused_at = self.manifest.as_ref().map(|m| m.version);
        if self.full_pass.is_some() && self.pass_error.is_none() {
            self.pass_error = Some(error.clone());
        }
        if let Some(path) = corrupt {
            self.compaction_error = Some((path, error));
        }
    }

    /// The run's entries, in position order, each generation's checked to lie within its
    /// record and after the one before.
    fn merged_entries(
        &self,
        run: &[GenerationRecord],
        bodies: Vec<Bytes>,
    ) -> Result<Vec<PositionedRecords>, FatalError> {
        let mut entries: Vec<PositionedRecords> = Vec::new();
        for (record, body) in run.iter().zip(bodies) {
            let generation = self
                .codec
                .decode_generation(body)
                .map_err(|e| FatalError::from_codec(record.path.clone(), e))?;
            for e in generation.entries {
                let in_range = (record.first_position..=record.last_position).contains(&e.position);
                let ascending = entries.last().is_none_or(|last| last.position < e.position);
                if !in_range || !ascending {
                    return Err(FatalError::Corrupt {
                        path: record.path.clone(),
                        reason: alloc::format!(
                            "entry position {} out of order or range",
                            e.position
                        ),
                    });
                }
                entries.push(e);
            }
        }
        Ok(entries)
    }

    /// Encodes the merged generation and puts it under its own name (PROTOCOL.md §1).
    fn put_merged(&mut self, run: &[GenerationRecord], entries: &[PositionedRecords]) {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return;
        };
        let (id, last_id) = (first.id, last.id);
        let header = GenerationHeader {
            epoch: self.epoch,
            id,
        };
        let path = self.paths.merged_generation(self.epoch, id, last_id);
        self.merged_paths.insert(path.clone());
        // The records are slices of the inputs' bytes (no copy); encoding writes each once.
        let body = match self.codec.encode_generation(&header, entries) {
            Ok(b) => b,
            // Not the inputs' fault: retried after the next commit.
            Err(e) => return self.compaction_failed(FatalError::from_codec(path, e), None),
        };
        let record = self.describe_generation(id, path, entries, &body);
        if let Some(c) = self.compaction.as_mut() {
            c.merged = Some((record, body.into()));
        }
        self.put(PutTarget::Merged);
    }

    /// The merged file's path and bytes, while they wait for their put.
    pub(super) fn merged_path(&self) -> String {
        self.compaction
            .as_ref()
            .and_then(|c| c.merged.as_ref())
            .map_or_else(String::new, |(r, _)| r.path.clone())
    }

    pub(super) fn merged_body(&self) -> Option<&Body> {
        self.compaction
            .as_ref()
            .filter(|c| !c.written)
            .and_then(|c| c.merged.as_ref())
            .map(|(_, b)| b)
    }

    pub(super) fn merged_landed(&mut self) {
        if let Some(c) = self.compaction.as_mut() {
            c.written = true;
        }
    }

    /// The compaction's commit, once its file is in the store: the merged record replaces
    /// exactly the run in `m` (the newest committed manifest, version already raised). A run
    /// that is not there as it was planned drops the compaction.
    pub(super) fn try_commit_compaction(&mut self, mut m: Manifest) {
        let at_ms = self.wall_clock();
        let Some(c) = self
            .compaction
            .as_mut()
            .filter(|c| c.written && !c.committing)
        else {
            return;
        };
        let Some((merged, _)) = c.merged.clone() else {
            return;
        };
        let n = c.run.len();
        let at = m.generations.windows(n).position(|w| w == &c.run[..]);
        let Some(at) = at else {
            // Never named by any manifest: nobody reads it.
            self.compaction = None;
            self.counters.compactions_dropped += 1;
            self.io
                .send(Op::Delete { path: merged.path }, Purpose::Delete);
            return;
        };
        c.committing = true;
        let retired = c.run.iter().map(|g| RetiredRecord {
            path: g.path.clone(),
            version: m.version,
            bytes: g.bytes,
            at: at_ms,
        });
        m.retired.extend(retired);
        m.generations.splice(at..at + n, [merged]);
        self.start_commit(m, CommitKind::Compaction);
    }

    /// The compaction's manifest passed its post-check.
    pub(super) fn on_compacted(&mut self) {
        let Some(c) = self.compaction.take() else {
            return;
        };
        let replaced = c.run.len() as u64;
        self.counters.compactions += 1;
        self.counters.generations_compacted += replaced;
        if let Some(pass) = self.full_pass.as_mut() {
            pass.runs += 1;
            pass.replaced += replaced;
        }
        if let Some((merged, _)) = c.merged {
            self.events.push_back(Event::Compacted {
                generation: merged.id,
                replaced,
                bytes: merged.bytes,
            });
        }
    }

    /// Unix ms now, if the writer has a wall clock.
    pub(super) fn wall_clock(&self) -> Option<u64> {
        self.cfg
            .unix_ms_at_origin
            .map(|o| o + self.now.as_millis() as u64)
    }

    // ---- retired files -------------------------------------------------------------------

    /// The oldest manifest version that may still be in the store: the oldest this writer
    /// listed or wrote whose delete is not confirmed. A retired file is deleted only once it
    /// is at or past the version that retired it (no kept version names the file).
    pub(super) fn oldest_kept_version(&self) -> u64 {
        let listed = self.manifest_versions.keys().next().copied();
        let deleting = self.manifest_deleting.first().copied();
        let current = self.manifest.as_ref().map_or(0, |m| m.version);
        [listed, deleting]
            .into_iter()
            .flatten()
            .fold(current, u64::min)
    }

    /// A commit is being built: drop the records of retired files known deleted.
    pub(super) fn prune_retired(&self, m: &mut Manifest) {
        m.retired.retain(|r| {
            !self
                .retiring
                .iter()
                .any(|x| x.record.path == r.path && x.state == RetireState::Deleted)
        });
    }

    /// A commit landed: learn the retired files it names (their grace starts now) and forget
    /// those it dropped.
    pub(super) fn sync_retiring(&mut self) {
        let Some(m) = self.manifest.as_ref() else {
            return;
        };
        let (now, wall) = (self.now, self.wall_clock());
        self.retiring
            .retain(|x| m.retired.iter().any(|r| r.path == x.record.path));
        for r in &m.retired {
            if !self.retiring.iter().any(|x| x.record.path == r.path) {
                // Retired earlier by a writer with a clock, as ours says: the grace counts
                // from then (so short-lived writers collect too). A skewed clock can only
                // shorten it, which a reader survives (PROTOCOL.md §5 "Generation gone").
                let ago = match (wall, r.at) {
                    (Some(wall), Some(at)) => Duration::from_millis(wall.saturating_sub(at)),
                    _ => Duration::ZERO,
                };
                self.retiring.push(Retiring {
                    record: r.clone(),
                    since: now.saturating_sub(ago),
                    state: RetireState::Waiting,
                });
            }
        }
    }

    fn grace(&self) -> Duration {
        self.compaction_cfg().grace
    }

    /// Deletes the retired files that are due: no kept version names them and their grace
    /// passed.
    pub(super) fn collect_retired(&mut self) {
        if self.phase != Phase::Ready {
            return;
        }
        let (kept, grace, now) = (self.oldest_kept_version(), self.grace(), self.now);
        let mut due = Vec::new();
        for x in self.retiring.iter_mut() {
            if x.state == RetireState::Waiting && x.record.version <= kept && now >= x.since + grace
            {
                x.state = RetireState::Deleting;
                due.push(x.record.path.clone());
            }
        }
        for path in due {
            let op = Op::Delete { path: path.clone() };
            self.io.send(op, Purpose::DeleteRetired { path });
        }
    }

    /// When the next retired file's grace ends, among those no kept version names.
    pub(super) fn retire_deadline(&self) -> Option<Duration> {
        if self.phase != Phase::Ready || self.closing {
            return None;
        }
        let (kept, grace) = (self.oldest_kept_version(), self.grace());
        self.retiring
            .iter()
            .filter(|x| x.state == RetireState::Waiting && x.record.version <= kept)
            .map(|x| x.since + grace)
            .min()
    }

    pub(super) fn on_delete_retired(
        &mut self,
        path: &str,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        let outcome = match resp.into_delete() {
            Ok(()) => RetireState::Deleted,
            Err(e) if e.kind == StoreErrorKind::NotFound => RetireState::Deleted,
            Err(_) => match self.io.retry(self.now, request) {
                Ok(()) => return,
                Err(_) => {
                    self.counters.gc_failures += 1;
                    RetireState::Failed
                }
            },
        };
        if let Some(x) = self.retiring.iter_mut().find(|x| x.record.path == path) {
            x.state = outcome;
            if outcome == RetireState::Deleted {
                self.counters.bytes_reclaimed += x.record.bytes;
            }
        }
    }

    /// Whether a compaction is in progress (close waits for it).
    pub(super) fn compacting(&self) -> bool {
        self.compaction.is_some() || self.full_pass.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{RawCodec, Record};
    use crate::machine::{Machine, Output};
    use crate::mem::MemStore;
    use crate::WriterConfig;
    use alloc::boxed::Box;

    /// Answers the writer's requests from `store` one at a time, until it waits or `stop`
    /// holds after an answer.
    fn run(w: &mut Writer, store: &mut MemStore, stop: impl Fn(&Writer) -> bool) {
        for _ in 0..10_000 {
            match w.poll_output() {
                Output::Request(req) => {
                    let resp = store.execute(&req.op);
                    w.handle_response(req.id, resp, Duration::ZERO);
                    if stop(w) {
                        return;
                    }
                }
                Output::Event(_) => {}
                _ => return,
            }
        }
        panic!("writer did not settle");
    }

    #[test]
    fn a_compaction_whose_run_changed_is_dropped_and_its_file_deleted() {
        let cfg = WriterConfig {
            prefix: "t".into(),
            compaction: Some(CompactionConfig {
                fanout: 2,
                ..CompactionConfig::default()
            }),
            ..WriterConfig::default()
        };
        let mut store = MemStore::new();
        let codec = Box::new(RawCodec::new("s"));
        let mut w = Writer::new(cfg, codec, 1, Duration::ZERO).unwrap();
        run(&mut w, &mut store, |_| false);
        let committing = |w: &Writer| w.compaction.as_ref().is_some_and(|c| c.committing);
        for i in 0..2u64 {
            let record = Record::new(i.to_le_bytes().to_vec(), 1);
            w.append(record, Duration::ZERO).unwrap();
            w.flush(Duration::ZERO).unwrap();
            run(&mut w, &mut store, |_| false);
            w.flush_memtable(Duration::ZERO).unwrap();
            run(&mut w, &mut store, committing);
        }
        assert!(
            committing(&w),
            "the merged file landed and its commit started"
        );
        let merged = w.merged_path();
        assert!(store.object(&merged).is_some());
        // Its manifest put is not sent: the store never sees it.
        while let Output::Request(_) = w.poll_output() {}
        // Had another commit changed the run meanwhile (its first generation gone, as a
        // retention would), the commit built on that newest manifest must not replace it.
        w.commit = None;
        if let Some(c) = w.compaction.as_mut() {
            c.committing = false;
        }
        let mut m = w.manifest.clone().unwrap();
        m.version += 1;
        m.generations.remove(0);
        w.try_commit_compaction(m);
        assert!(w.compaction.is_none());
        assert_eq!(w.stats().compactions_dropped, 1);
        let mut ops = alloc::vec::Vec::new();
        while let Output::Request(req) = w.poll_output() {
            ops.push(req.op);
        }
        assert!(ops.contains(&Op::Delete { path: merged }), "{ops:?}");
        let version = w.manifest.as_ref().unwrap().version + 1;
        let commit = crate::paths::Paths::new("t").manifest(version);
        assert!(!ops
            .iter()
            .any(|op| matches!(op, Op::Put { path, .. } if *path == commit)));
    }
}
