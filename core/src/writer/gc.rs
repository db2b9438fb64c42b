//! GC (PROTOCOL.md §4 "GC"): after a commit passed its post-check (and after each read of a
//! listed version's time, §4 "Reading a time"), delete the WAL data slots below the new cursor
//! that this writer read or wrote, and manifest versions no longer kept (older than the newest
//! `keep_manifests` and than `keep_manifests_for`); then, once this
//! writer's claim has outlived every older writer's lease, fences, their windows' orphans and
//! their intents below the cursor (§4 "Collecting fences"). A delete that keeps failing leaves
//! garbage behind and is counted (`gc_failures`); it never fails the writer.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::{lease, Event, Phase, Purpose, Writer};
use crate::error::CommandError;
use crate::io::{Op, Response, StoreError, StoreErrorKind};
use crate::manifest::Manifest;
use crate::requests::Pending;
use crate::retention::{oldest_kept_version, version_to_read, Retention};

impl Writer {
    /// Deletes the data slots below the committed cursor this writer read or wrote (fences
    /// go in a collection round, below).
    pub(super) fn collect_wal(&mut self) {
        let cursor = self.manifest.as_ref().map_or(0, |m| m.replay_cursor);
        while let Some(&p) = self.live_positions.front() {
            if p >= cursor {
                break;
            }
            self.live_positions.pop_front();
            let path = self.paths.wal(p);
            self.delete(path);
        }
    }

    fn delete(&mut self, path: String) {
        self.io.send(Op::Delete { path }, Purpose::Delete);
    }

    /// A delete that keeps failing leaves garbage behind (counted), never fails the writer.
    pub(super) fn on_delete(&mut self, request: Pending<Purpose>, resp: Response) {
        match resp.into_delete() {
            Ok(()) => {}
            Err(e) if e.kind == StoreErrorKind::NotFound => {}
            Err(_) => {
                if self.io.retry(self.now, request).is_err() {
                    self.counters.gc_failures += 1;
                }
            }
        }
    }

    /// Deletes the manifest versions it knows of below the oldest one kept
    /// ([`crate::retention::oldest_kept_version`]: older than the newest `keep_manifests`
    /// and committed longer than `keep_manifests_for` ago); then, if only an unknown time
    /// keeps the oldest, reads a version to learn it ([`version_to_read`]), one at a time.
    pub(super) fn collect_manifests(&mut self) {
        let retention = self.manifest_retention();
        let Some(oldest) = oldest_kept_version(&self.manifest_versions, retention, self.wall_now())
        else {
            return;
        };
        while let Some((&old, _)) = self.manifest_versions.first_key_value() {
            if old >= oldest {
                break;
            }
            self.manifest_versions.remove(&old);
            self.manifest_unread.remove(&old);
            // Kept (it may be read) until its delete is confirmed: a retired file waits.
            self.manifest_deleting.insert(old);
            let path = self.paths.manifest(old);
            self.io.send(
                Op::Delete { path },
                Purpose::DeleteManifest { version: old },
            );
        }
        self.read_version_time(retention);
    }

    fn manifest_retention(&self) -> Retention {
        Retention {
            keep: self.cfg.keep_manifests,
            keep_for: self.cfg.keep_manifests_for,
        }
    }

    /// Without this a writer taken over before its versions age would never collect the
    /// versions it only listed: their time is bounded by the version read at open, which
    /// each takeover renews (PROTOCOL.md §4 "Reading a time"). A close waits for the reads
    /// (at most log2 of the versions, each with its retries), as it waits for deletes.
    fn read_version_time(&mut self, retention: Retention) {
        if self.manifest_time_read.is_some() {
            return;
        }
        let unread = &self.manifest_unread;
        let Some(version) =
            version_to_read(&self.manifest_versions, unread, retention, self.wall_now())
        else {
            return;
        };
        self.manifest_time_read = Some(version);
        let path = self.paths.manifest(version);
        self.get(path, Purpose::VersionTime { version });
    }

    /// A listed version's time read: learnt (or, for a body that does not decode, never read
    /// again: it is kept by the bound, counted in `gc_failures`, and `verify` names it), or
    /// the version found gone; then GC goes on with what it learnt.
    pub(super) fn on_version_time(
        &mut self,
        version: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        match resp.into_get() {
            Ok(body) => {
                self.manifest_unread.remove(&version);
                match Manifest::decode_version(&body, version) {
                    Ok(m) => {
                        if let Some(at) = self.manifest_versions.get_mut(&version) {
                            *at = m.committed_at;
                        }
                    }
                    Err(_) => self.counters.gc_failures += 1,
                }
            }
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                self.manifest_unread.remove(&version);
                self.manifest_versions.remove(&version);
            }
            Err(_) => {
                if self.io.retry(self.now, request).is_ok() {
                    return;
                }
                // Left unread: the next commit's GC reads it again.
                self.counters.gc_failures += 1;
                self.manifest_time_read = None;
                return;
            }
        }
        self.manifest_time_read = None;
        self.collect_manifests();
    }

    /// A manifest version's delete: confirmed (or found nothing), or left behind.
    pub(super) fn on_delete_manifest(
        &mut self,
        version: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        match resp.into_delete() {
            Ok(()) => {}
            Err(e) if e.kind == StoreErrorKind::NotFound => {}
            Err(_) => {
                if self.io.retry(self.now, request).is_err() {
                    // Still in the store: it stays in `manifest_deleting` for good, so the
                    // files it names are never deleted by this writer.
                    self.counters.gc_failures += 1;
                }
                return;
            }
        }
        self.manifest_deleting.remove(&version);
    }
}

/// A fence the owner may collect: its intent `(position, epoch)`, and what is left to delete
/// before the intent may go (slot `position` and the window's orphans).
struct Candidate {
    position: u64,
    epoch: u64,
    /// WAL deletes not answered yet.
    outstanding: usize,
    /// A WAL delete kept failing: the intent stays, the next round finds it again.
    failed: bool,
}

/// One collection round of fences, window orphans and fence intents (PROTOCOL.md §4
/// "Collecting fences").
pub(super) struct Round {
    candidates: Vec<Candidate>,
    /// Requests of the round not answered yet.
    outstanding: usize,
    /// Whether a `collect_garbage` command waits for this round.
    reporting: bool,
    counts: Collected,
}

/// What a collection round deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Fences (slot `F` of an intent: the fence, or below-cursor data when its opener lost
    /// the slot) deleted.
    pub fences: u64,
    /// Slots of fence windows deleted.
    pub orphans: u64,
    /// Fence intents deleted.
    pub intents: u64,
}

/// Whether a collection is wanted, and the round running.
#[derive(Default)]
pub(super) struct Gc {
    wanted: bool,
    /// A wanted round waits until then (intents left by the last round become collectable).
    not_before: Option<Duration>,
    /// A `collect_garbage` command waits for the next round.
    report: bool,
    /// What rounds deleted since a `collect_garbage` whose report waits for a later round.
    carried: Collected,
    round: Option<Round>,
}

/// What a request of a round was for.
#[derive(Clone, Copy, Debug)]
pub(super) enum GcStep {
    ListIntents,
    ListWal,
    /// A WAL delete for candidate `candidate`: its slot `F` (`fence`) or a window slot.
    Slot {
        candidate: usize,
        fence: bool,
    },
    /// The intent of a candidate whose WAL deletes all landed.
    Intent,
}

impl Writer {
    /// A commit moved the cursor: collect fences once the rules allow. Only fences of epochs
    /// above `lease_epoch` and below `cursor_epoch` are ever collected: with no such epoch
    /// there is no round, and no timer (a log's only writer sends nothing for it).
    pub(super) fn want_collection(&mut self) {
        let Some(m) = &self.manifest else { return };
        if m.lease_epoch
            .is_some_and(|lease| m.cursor_epoch > lease.saturating_add(1))
        {
            self.gc.wanted = true;
        }
    }

    /// Runs a collection round of fences, window orphans and fence intents as soon as the
    /// rules allow (PROTOCOL.md §4 "Collecting fences": once this writer's claim is
    /// `L * (1 + rho) + gc_margin` old, waiting it out if needed), then emits
    /// [`Event::Collected`] with what it deleted.
    pub fn collect_garbage(&mut self, now: Duration) -> Result<(), CommandError> {
        self.advance(now);
        self.command_allowed()?;
        if self.phase != Phase::Ready {
            return Err(CommandError::NotReady);
        }
        self.gc.wanted = true;
        self.gc.report = true;
        self.after_input();
        Ok(())
    }

    /// When a round can collect everything below the committed cursor: once this writer's
    /// claim and its newest cursor move are `L * (1 + rho) + margin` old (`None` before it
    /// claimed). [`Writer::collect_garbage`] reports once it did.
    pub fn collectable_at(&self) -> Option<Duration> {
        let &(_, moved) = self.cursor_times.back()?;
        Some(moved + self.collect_wait())
    }

    fn collect_wait(&self) -> Duration {
        lease::collect_after(self.lease_length(), self.cfg.gc_margin)
    }

    /// When this writer's claim is old enough for any collection.
    fn claim_old_at(&self) -> Option<Duration> {
        Some(self.claimed_at? + self.collect_wait())
    }

    /// When a wanted round may start: once the claim is old enough, and not before an intent
    /// the last round left becomes collectable.
    fn round_due(&self) -> Option<Duration> {
        let at = self.claim_old_at()?;
        Some(self.gc.not_before.map_or(at, |n| at.max(n)))
    }

    /// When a wanted round may start, if it waits.
    pub(super) fn gc_deadline(&self) -> Option<Duration> {
        if !self.gc.wanted || self.gc.round.is_some() || self.phase != Phase::Ready {
            return None;
        }
        if self.closing && !self.gc.report {
            return None;
        }
        self.round_due().filter(|&at| at > self.now)
    }

    /// When the committed cursor first reached `position` (as this writer knows it: its
    /// claim's cursor counts from the claim).
    fn cursor_reached_at(&self, position: u64) -> Option<Duration> {
        self.cursor_times
            .iter()
            .find(|&&(cursor, _)| cursor >= position)
            .map(|&(_, at)| at)
    }

    /// Starts a wanted round once the claim is old enough (no request before).
    pub(super) fn maybe_collect(&mut self) {
        if !self.gc.wanted || self.gc.round.is_some() || self.phase != Phase::Ready {
            return;
        }
        if self.closing && !self.gc.report {
            self.gc.wanted = false;
            return;
        }
        if self.round_due().is_none_or(|at| at > self.now) {
            return;
        }
        self.gc.wanted = false;
        self.gc.not_before = None;
        let reporting = core::mem::take(&mut self.gc.report);
        let lease_epoch = self.manifest.as_ref().and_then(|m| m.lease_epoch);
        self.gc.round = Some(Round {
            candidates: Vec::new(),
            outstanding: 0,
            reporting,
            counts: Collected::default(),
        });
        if lease_epoch.is_none() {
            // No writer of this log is known to have held leases yet: nothing is collected.
            return self.finish_round();
        }
        let op = Op::List {
            prefix: self.paths.fences_dir(),
            after: None,
        };
        self.gc_send(op, GcStep::ListIntents);
    }

    fn gc_send(&mut self, op: Op, step: GcStep) {
        if let Some(round) = self.gc.round.as_mut() {
            round.outstanding += 1;
        }
        self.io.send(op, Purpose::Collect { step });
    }

    pub(super) fn on_collect(&mut self, step: GcStep, request: Pending<Purpose>, resp: Response) {
        if self.gc.round.is_none() {
            return;
        }
        match step {
            GcStep::ListIntents => match resp.into_list() {
                Ok(items) => self.intents_listed(items),
                Err(e) => return self.gc_retry(request, step, &e),
            },
            GcStep::ListWal => match resp.into_list() {
                Ok(items) => self.wal_listed(items),
                Err(e) => return self.gc_retry(request, step, &e),
            },
            GcStep::Slot { .. } | GcStep::Intent => match resp.into_delete() {
                Ok(()) => self.gc_deleted(step),
                Err(e) if e.kind == StoreErrorKind::NotFound => self.gc_deleted(step),
                Err(e) => return self.gc_retry(request, step, &e),
            },
        }
        self.gc_answered();
    }

    /// A failed request of the round is retried; once its retries are spent it is counted
    /// (`gc_failures`) and what depends on it is left for a later round.
    fn gc_retry(&mut self, request: Pending<Purpose>, step: GcStep, _e: &StoreError) {
        if self.io.retry(self.now, request).is_ok() {
            return;
        }
        self.counters.gc_failures += 1;
        if let (GcStep::Slot { candidate, .. }, Some(round)) = (step, self.gc.round.as_mut()) {
            if let Some(c) = round.candidates.get_mut(candidate) {
                c.failed = true;
                c.outstanding -= 1;
            }
        }
        self.gc_answered();
    }

    fn gc_answered(&mut self) {
        let Some(round) = self.gc.round.as_mut() else {
            return;
        };
        round.outstanding -= 1;
        if round.outstanding == 0 {
            self.finish_round();
        }
    }

    fn finish_round(&mut self) {
        let Some(round) = self.gc.round.take() else {
            return;
        };
        let c = round.counts;
        self.counters.collected.fences += c.fences;
        self.counters.collected.orphans += c.orphans;
        self.counters.collected.intents += c.intents;
        let carried = &mut self.gc.carried;
        carried.fences += c.fences;
        carried.orphans += c.orphans;
        carried.intents += c.intents;
        if round.reporting {
            let all = core::mem::take(&mut self.gc.carried);
            self.events.push_back(Event::Collected(all));
        } else if !self.gc.report {
            self.gc.carried = Collected::default();
        }
    }

    /// The intents the rules let this writer collect: `F + W <= cursor` (the fence and its
    /// window lie below the cursor), an epoch below `cursor_epoch` (the cursor epoch's intent
    /// stays for the time search) and above `lease_epoch` (older zombies held no lease).
    fn intents_listed(&mut self, items: Vec<crate::io::ObjectMeta>) {
        let Some(m) = self.manifest.as_ref() else {
            return;
        };
        let (cursor, cursor_epoch) = (m.replay_cursor, m.cursor_epoch);
        let lease_epoch = m.lease_epoch.unwrap_or(u64::MAX);
        let window = u64::from(m.fence_window);
        let wait = lease::collect_after(self.lease_length(), self.cfg.gc_margin);
        let now = self.now;
        // A reader whose manifest predates the cursor's move past a window may still walk
        // into it: only a move `wait` old frees it (PROTOCOL.md §5); younger ones wait for a
        // later round.
        let eligible: Vec<(u64, u64, Duration)> = items
            .iter()
            // A name that does not parse is not ours to judge: it stays (a reader falls back
            // on it, PROTOCOL.md §5).
            .filter_map(|i| self.paths.fence_intent_parts(&i.path))
            .filter(|&(f, e)| {
                f.saturating_add(window) <= cursor && e < cursor_epoch && e > lease_epoch
            })
            .map(|(f, e)| {
                let reached = self
                    .cursor_reached_at(f.saturating_add(window))
                    .unwrap_or(now);
                (f, e, reached + wait)
            })
            .collect();
        let later = eligible
            .iter()
            .map(|&(_, _, due)| due)
            .filter(|&due| due > now)
            .min();
        if let Some(at) = later {
            self.gc.wanted = true;
            self.gc.not_before = Some(at);
            // A `collect_garbage` waits for the round that collects them.
            if let Some(round) = self.gc.round.as_mut().filter(|r| r.reporting) {
                round.reporting = false;
                self.gc.report = true;
            }
        }
        let mut candidates: Vec<Candidate> = eligible
            .iter()
            .filter(|&&(_, _, due)| due <= now)
            .map(|&(f, e, _)| (f, e))
            .map(|(position, epoch)| Candidate {
                position,
                epoch,
                outstanding: 0,
                failed: false,
            })
            .collect();
        candidates.sort_by_key(|c| (c.position, c.epoch));
        let Some(first) = candidates.first().map(|c| c.position) else {
            return;
        };
        if let Some(round) = self.gc.round.as_mut() {
            round.candidates = candidates;
        }
        let op = Op::List {
            prefix: self.paths.wal_dir(),
            after: first.checked_sub(1).map(|p| self.paths.wal(p)),
        };
        self.gc_send(op, GcStep::ListWal);
    }

    /// Deletes each candidate's slot `F` and the slots listed in its window `F + 1 .. F + W`.
    fn wal_listed(&mut self, items: Vec<crate::io::ObjectMeta>) {
        let window = self.window_of_log();
        let listed: Vec<u64> = items
            .iter()
            .filter_map(|i| self.paths.wal_position(&i.path))
            .collect();
        let Some(round) = self.gc.round.as_ref() else {
            return;
        };
        let mut deletes: Vec<(usize, u64, bool)> = Vec::new();
        for (i, c) in round.candidates.iter().enumerate() {
            deletes.push((i, c.position, true));
            let window_slots = listed
                .iter()
                .filter(|&&p| p > c.position && p < c.position.saturating_add(window));
            deletes.extend(window_slots.map(|&p| (i, p, false)));
        }
        for (candidate, position, fence) in deletes {
            if let Some(c) = self
                .gc
                .round
                .as_mut()
                .and_then(|r| r.candidates.get_mut(candidate))
            {
                c.outstanding += 1;
            }
            let path = self.paths.wal(position);
            self.gc_send(Op::Delete { path }, GcStep::Slot { candidate, fence });
        }
    }

    fn window_of_log(&self) -> u64 {
        u64::from(
            self.manifest
                .as_ref()
                .map_or(self.window, |m| m.fence_window),
        )
    }

    /// A delete of the round landed. Once every WAL delete of a candidate did, its intent
    /// goes (last: a crash before leaves the intent, and the next round finds it again).
    fn gc_deleted(&mut self, step: GcStep) {
        let Some(round) = self.gc.round.as_mut() else {
            return;
        };
        match step {
            GcStep::Slot { candidate, fence } => {
                if fence {
                    round.counts.fences += 1;
                } else {
                    round.counts.orphans += 1;
                }
                let Some(c) = round.candidates.get_mut(candidate) else {
                    return;
                };
                c.outstanding -= 1;
                if c.outstanding > 0 || c.failed {
                    return;
                }
                let path = self.paths.fence_intent(c.position, c.epoch);
                self.gc_send(Op::Delete { path }, GcStep::Intent);
            }
            GcStep::Intent => round.counts.intents += 1,
            _ => {}
        }
    }
}
