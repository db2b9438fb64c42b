//! Restore (PROTOCOL.md §4 "Restore"): the owner commits one manifest version `R` whose
//! generations hold only what lay below a point `P` (or, for a version `V`, `V`'s entries and
//! what the log gained at or past `V`'s cursor), without moving the cursor and without
//! rewriting a file: the generation straddling `P` is rewritten under a new name, an older
//! version's generations the current one no longer lists are copied under new names, and
//! every file `R` leaves out is retired (deleted by the retired-files rule of `compact.rs`).
//!
//! Every durable entry must be in a generation, or in one frozen and waiting for its commit,
//! when it is asked for (the host seals pending appends and flushes the memtable first):
//! otherwise it is refused with [`RestoreError::Unflushed`]; frozen generations commit
//! first, and the restore starts on the cursor they leave. Nothing is put before every
//! input was read and checked, so a refusal writes nothing.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::time::Duration;

use super::commit::CommitKind;
use super::{Event, Phase, Purpose, PutTarget, Writer};
use crate::codec::{CodecError, GenerationHeader, PositionedRecords};
use crate::error::{CommandError, FatalError};
use crate::io::{Body, Op, Response, StoreErrorKind};
use crate::manifest::{GenerationRecord, Manifest, ManifestError, RestoredRecord, RetiredRecord};
use crate::requests::Pending;

/// What to restore to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Keep only the entries below this position.
    Position(u64),
    /// Keep only what a reader until this time (unix ms) reports: everything before the first
    /// entry of a known time past it (PROTOCOL.md §5 "Until a time").
    Time(u64),
    /// Keep that manifest version's entries, and what the log gained at or past its cursor
    /// since (so the version below a restore undoes it).
    Version(u64),
}

/// What a committed restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The point `P`: no entry at or past it and below the cursor is left (a version's
    /// cursor for [`RestoreTarget::Version`]).
    pub to: u64,
    /// The manifest version the restore committed.
    pub version: u64,
    /// The version it was built on.
    pub from_version: u64,
    /// The version restored to, for [`RestoreTarget::Version`].
    pub as_of_version: Option<u64>,
    /// Generations listed as they were.
    pub generations_kept: u64,
    /// Generations rewritten (the one straddling the point, or a version's cursor).
    pub generations_rewritten: u64,
    /// Generations of the version restored to copied under new names.
    pub generations_copied: u64,
    /// Files the restore left out, now retired.
    pub generations_retired: u64,
    /// Rows in the generations the log lists now.
    pub rows: u64,
}

/// Why a restore was refused. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// A WAL-only log keeps no generations to restore.
    WrongMode,
    /// The writer has not finished opening.
    NotReady,
    /// Durable entries are not all in generations yet (or appends are pending): flush the
    /// memtable first.
    Unflushed {
        /// Bytes not in a committed generation.
        bytes: u64,
    },
    /// A position outside what the log holds: `dropped_before ..= cursor`.
    OutOfRange {
        /// The position asked for.
        requested: u64,
        /// Lowest allowed (`dropped_before`).
        min: u64,
        /// Highest allowed (the cursor: the log's end once flushed).
        max: u64,
    },
    /// Another restore, or a drop asked for, is in flight (or the generations it planned on
    /// changed before its commit): ask again once it is answered.
    Busy,
    /// No entry of the log lies at or before this time: the restore would empty the log.
    NothingAtOrBefore {
        /// The time asked for (unix ms).
        time: u64,
    },
    /// The version was never committed (0, or past the newest).
    NoSuchVersion {
        /// The version asked for.
        version: u64,
        /// The newest version.
        newest: u64,
    },
    /// The version was collected (GC keeps versions by count and age).
    VersionNotKept {
        /// The version asked for.
        version: u64,
        /// The oldest version this writer knows is kept.
        oldest_kept: u64,
    },
    /// A generation the restore needs is gone (collected with the versions naming it).
    GenerationCollected {
        /// The version whose generation it is.
        version: u64,
        /// The generation.
        path: String,
    },
    /// The generation that must be rewritten has no id left between its neighbours' (ids
    /// increase along the list).
    NoIdLeft {
        /// The generation to rewrite.
        path: String,
        /// The id before it.
        after: u64,
        /// The id after it (or the manifest's `next_generation`).
        before: u64,
    },
    /// An object the restore read failed verification.
    Corrupt {
        /// The object.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// `close` was called.
    Closed,
    /// The writer stopped.
    Failed(FatalError),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::WrongMode => write!(
                f,
                "a WAL-only log keeps no generations: it cannot be restored (truncate it instead)"
            ),
            RestoreError::NotReady => write!(f, "writer is still opening"),
            RestoreError::Unflushed { bytes } => write!(
                f,
                "{bytes} bytes are not in a generation yet: flush the memtable before restoring"
            ),
            RestoreError::OutOfRange {
                requested,
                min,
                max,
            } => write!(
                f,
                "position {requested} is outside what the log holds, {min}..={max}"
            ),
            RestoreError::Busy => write!(
                f,
                "another restore or a drop is in flight: ask again once it is answered"
            ),
            RestoreError::NothingAtOrBefore { time } => write!(
                f,
                "no entry of the log lies at or before time {time}: the restore would empty it"
            ),
            RestoreError::NoSuchVersion { version, newest } => write!(
                f,
                "manifest version {version} was never committed: the newest is {newest}"
            ),
            RestoreError::VersionNotKept {
                version,
                oldest_kept,
            } => write!(
                f,
                "manifest version {version} is no longer kept: the oldest kept is {oldest_kept}"
            ),
            RestoreError::GenerationCollected { version, path } => write!(
                f,
                "generation {path} of manifest version {version} was collected"
            ),
            RestoreError::NoIdLeft {
                path,
                after,
                before,
            } => write!(
                f,
                "no generation id is left between {after} and {before} for the rewrite of {path}"
            ),
            RestoreError::Corrupt { path, reason } => write!(f, "corrupt object {path}: {reason}"),
            RestoreError::Closed => write!(f, "writer is closed"),
            RestoreError::Failed(e) => write!(f, "writer failed: {e}"),
        }
    }
}

impl core::error::Error for RestoreError {}

impl From<CommandError> for RestoreError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Failed(f) => RestoreError::Failed(f),
            CommandError::NotReady => RestoreError::NotReady,
            CommandError::WrongMode => RestoreError::WrongMode,
            CommandError::OutOfRange {
                requested,
                min,
                max,
            } => RestoreError::OutOfRange {
                requested,
                min,
                max,
            },
            _ => RestoreError::Closed,
        }
    }
}

/// What one of a restore's GETs was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RestoreRead {
    /// The manifest version restored to.
    Version,
    /// The generation holding the first entry past the time restored to.
    Time,
    /// The source of write `index`.
    Source(usize),
}

/// Which of a source generation's entries a write keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// All, byte for byte (a copy of an older version's generation).
    All,
    /// Those below the position (the generation straddling the point).
    Below(u64),
    /// Those at or past the position (the current generation straddling a version's cursor).
    From(u64),
}

/// A generation file the restore writes.
struct Write {
    from: GenerationRecord,
    keep: Keep,
    id: u64,
    path: String,
    source: Option<Bytes>,
    /// The new record and bytes, once encoded.
    out: Option<(GenerationRecord, Body)>,
    written: bool,
}

/// A list item of the restored version, below the cursor it was planned at.
enum Item {
    Keep(GenerationRecord),
    Write(usize),
}

/// A restore's plan, built on the newest manifest (`base`) when it started.
struct Plan {
    to: u64,
    /// The version the restore was planned as (its files' names carry it).
    version: u64,
    as_of: Option<u64>,
    base: Vec<GenerationRecord>,
    list: Vec<Item>,
    writes: Vec<Write>,
    /// The records of the version restored to (their times count for the floor).
    brought: Vec<GenerationRecord>,
}

enum Step {
    /// Asked; starts once no compaction runs (none starts meanwhile) and the slot is free.
    Asked,
    /// The GET of the version restored to is out.
    ReadingVersion,
    /// The GET of the generation that decides the point of a time is out.
    FindingTime(GenerationRecord),
    /// Reading sources, then putting files, then ready to commit.
    Planned(Plan),
    /// The commit is out.
    Committing(Restored),
}

pub(super) struct Restore {
    target: RestoreTarget,
    seq: u64,
    step: Step,
    /// The newest generation frozen when it was asked: it starts once that one committed.
    after_generation: Option<u64>,
}

impl Writer {
    /// Restores the log to `target` (PROTOCOL.md §4 "Restore"): commits one manifest version
    /// whose generations hold only the entries below the point (for a version: that
    /// version's, then what the log gained at or past its cursor), the cursor and
    /// `dropped_before` unchanged. Answered by [`Event::Restored`]; refused at once (nothing
    /// written) for a WAL-only log, with appends pending or durable entries not yet frozen
    /// into a generation ([`Writer::flush`] and [`Writer::flush_memtable`] first), with a
    /// restore or a drop in flight, or for a position or version that cannot be.
    pub fn restore(&mut self, target: RestoreTarget, now: Duration) -> Result<(), RestoreError> {
        self.advance(now);
        self.command_allowed()?;
        if self.cfg.wal_only {
            return Err(RestoreError::WrongMode);
        }
        if self.phase != Phase::Ready {
            return Err(RestoreError::NotReady);
        }
        if self.restore.is_some() || self.dropping_in_progress() {
            return Err(RestoreError::Busy);
        }
        // Generations already frozen are committed first (their commits go first anyway):
        // the restore starts once they are. Anything else not in a generation is refused.
        if self.pipeline.has_work() || self.memtable.active_len() > 0 {
            return Err(RestoreError::Unflushed {
                bytes: self.unflushed() as u64,
            });
        }
        let Some(m) = self.manifest.as_ref() else {
            return Err(RestoreError::NotReady);
        };
        let frozen = self.memtable.last_frozen();
        match target {
            // The frozen generations' entries count as the log's end (checked again when
            // the restore starts, on the cursor they committed).
            RestoreTarget::Position(p) if frozen.is_some() => {
                let max = self.pipeline.first_undurable().max(m.replay_cursor);
                if p < m.dropped_before || p > max {
                    return Err(RestoreError::OutOfRange {
                        requested: p,
                        min: m.dropped_before,
                        max,
                    });
                }
            }
            RestoreTarget::Position(p) => check_position(m, p)?,
            RestoreTarget::Version(v) if v == 0 || v > m.version => {
                return Err(RestoreError::NoSuchVersion {
                    version: v,
                    newest: m.version,
                })
            }
            RestoreTarget::Time(time) if m.generations.is_empty() && frozen.is_none() => {
                return Err(RestoreError::NothingAtOrBefore { time })
            }
            _ => {}
        }
        self.restore_seq += 1;
        self.restore = Some(Restore {
            target,
            seq: self.restore_seq,
            step: Step::Asked,
            after_generation: frozen,
        });
        self.after_input();
        Ok(())
    }

    /// Whether the restore holds the commit slot after generation commits (and truncates):
    /// once it started, drops, retention and compactions wait for it; before, it waits for a
    /// running compaction, which goes first.
    pub(super) fn restore_turn(&self) -> bool {
        self.restore
            .as_ref()
            .is_some_and(|r| !matches!(r.step, Step::Asked) || self.compaction.is_none())
    }

    /// In the commit slot (free), `m` the newest manifest with its version raised: start
    /// the restore, or commit it once its files are in the store.
    pub(super) fn try_commit_restore(&mut self, m: Manifest) {
        let flushed = |r: &Restore| r.after_generation.is_none_or(|id| id < m.next_generation);
        if self
            .restore
            .as_ref()
            .is_some_and(|r| matches!(r.step, Step::Asked) && flushed(r))
        {
            self.start_restore();
        }
        let Some(r) = self.restore.as_mut() else {
            return;
        };
        // A plan with nothing to write (or whose files all landed) commits now.
        if matches!(&r.step, Step::Planned(plan) if plan.writes.iter().all(|w| w.written)) {
            let Step::Planned(plan) = core::mem::replace(&mut r.step, Step::Asked) else {
                return;
            };
            self.commit_restore(m, plan)
        }
    }

    /// A restore in flight (close waits for it).
    pub(super) fn restoring(&self) -> bool {
        self.restore.is_some()
    }

    fn finish_restore(&mut self, result: Result<Restored, RestoreError>) {
        self.restore = None;
        self.events.push_back(Event::Restored(result));
    }

    fn start_restore(&mut self) {
        let Some(r) = self.restore.as_mut() else {
            return;
        };
        let (target, seq) = (r.target, r.seq);
        let Some(m) = self.manifest.clone() else {
            return;
        };
        match target {
            RestoreTarget::Position(p) => match check_position(&m, p) {
                Ok(()) => self.plan_restore(&m, p, None, None),
                Err(e) => self.finish_restore(Err(e)),
            },
            RestoreTarget::Version(v) if v == m.version => {
                self.plan_restore(&m, m.replay_cursor, Some(&m), None)
            }
            RestoreTarget::Version(v) => {
                r.step = Step::ReadingVersion;
                let path = self.paths.manifest(v);
                let read = RestoreRead::Version;
                self.get(path, Purpose::Restore { seq, read });
            }
            RestoreTarget::Time(time) => self.find_time(&m, time, 0),
        }
    }

    /// Looks for the point of `time` from position `from` on: the first entry at or past
    /// `dropped_before` (where a reader starts) of a known time past it. A generation whose
    /// entries are all past it needs no request; another that may hold it is read.
    fn find_time(&mut self, m: &Manifest, time: u64, from: u64) {
        let db = m.dropped_before;
        let past = m
            .generations
            .iter()
            .find(|g| g.last_position >= from.max(db) && g.max_time.is_some_and(|t| t > time));
        match past {
            None => self.restore_to_time(m, time, m.replay_cursor, None),
            // Every entry of it is past the time: the point is where the log's part of it
            // starts.
            Some(g) if g.untimed == 0 && g.min_time.is_some_and(|t| t > time) => {
                self.restore_to_time(m, time, g.first_position.max(db), None)
            }
            Some(g) => {
                let (g, path) = (g.clone(), g.path.clone());
                let Some(r) = self.restore.as_mut() else {
                    return;
                };
                r.step = Step::FindingTime(g);
                let (seq, read) = (r.seq, RestoreRead::Time);
                self.get(path, Purpose::Restore { seq, read });
            }
        }
    }

    /// The point of a time is `to`: refused if no entry of the log lies below it.
    fn restore_to_time(
        &mut self,
        m: &Manifest,
        time: u64,
        to: u64,
        read: Option<(GenerationRecord, Bytes, Vec<PositionedRecords>)>,
    ) {
        let db = m.dropped_before;
        let below = |p: u64| p >= db && p < to;
        let any = m.generations.iter().any(|g| below(g.last_position))
            || read
                .as_ref()
                .is_some_and(|(_, _, entries)| entries.iter().any(|e| below(e.position)));
        if !any {
            return self.finish_restore(Err(RestoreError::NothingAtOrBefore { time }));
        }
        let have = read.map(|(g, body, _)| (g, body));
        self.plan_restore(m, to, None, have);
    }

    /// Plans the restore of the current manifest `m` to `to` (with `v`: to that version),
    /// then reads its sources (`have`: one already read).
    fn plan_restore(
        &mut self,
        m: &Manifest,
        to: u64,
        v: Option<&Manifest>,
        have: Option<(GenerationRecord, Bytes)>,
    ) {
        let version = m.version + 1;
        let mut list = Vec::new();
        let mut writes: Vec<Write> = Vec::new();
        let (paths, epoch) = (&self.paths, self.epoch);
        let write = |writes: &mut Vec<Write>, from: &GenerationRecord, keep: Keep, id: u64| {
            writes.push(Write {
                from: from.clone(),
                keep,
                id,
                path: paths.restored_generation(epoch, id, version),
                source: None,
                out: None,
                written: false,
            });
            Item::Write(writes.len() - 1)
        };
        match v {
            None => {
                for g in &m.generations {
                    if g.last_position < to {
                        list.push(Item::Keep(g.clone()));
                    } else if g.first_position < to {
                        list.push(write(&mut writes, g, Keep::Below(to), g.id));
                    }
                }
            }
            Some(v) => {
                // The version's generations the log still holds some of: listed as they are
                // if the current version lists them, else copied (a retired file may be
                // deleted even if listed again).
                for g in v
                    .generations
                    .iter()
                    .filter(|g| g.last_position >= m.dropped_before)
                {
                    if m.generations.contains(g) {
                        list.push(Item::Keep(g.clone()));
                    } else {
                        list.push(write(&mut writes, g, Keep::All, g.id));
                    }
                }
                let mut last_id = list.last().map(|i| item_id(i, &writes));
                let after: Vec<&GenerationRecord> = m
                    .generations
                    .iter()
                    .filter(|g| g.last_position >= v.replay_cursor)
                    .collect();
                for (i, g) in after.iter().enumerate() {
                    let floor = last_id.map_or(0, |id| id + 1);
                    if g.first_position >= v.replay_cursor && g.id >= floor {
                        list.push(Item::Keep((*g).clone()));
                        last_id = Some(g.id);
                        continue;
                    }
                    // Straddling the version's cursor (a compaction merged across it), or
                    // out of id order: rewritten with an id between its neighbours'.
                    let id = g.id.max(floor);
                    let before = after.get(i + 1).map_or(m.next_generation, |n| n.id);
                    if id >= before {
                        let path = g.path.clone();
                        let after = floor.saturating_sub(1);
                        let error = RestoreError::NoIdLeft {
                            path,
                            after,
                            before,
                        };
                        return self.finish_restore(Err(error));
                    }
                    let from = g.first_position.max(v.replay_cursor);
                    list.push(write(&mut writes, g, Keep::From(from), id));
                    last_id = Some(id);
                }
            }
        }
        let Some(r) = self.restore.as_mut() else {
            return;
        };
        let seq = r.seq;
        for w in writes.iter_mut() {
            if let Some((_, body)) = have.as_ref().filter(|(g, _)| *g == w.from) {
                w.source = Some(body.clone());
            }
        }
        let plan = Plan {
            to,
            version,
            as_of: v.map(|v| v.version),
            base: m.generations.clone(),
            list,
            writes,
            brought: v.map_or_else(Vec::new, |v| v.generations.clone()),
        };
        let reads: Vec<(usize, String)> = plan
            .writes
            .iter()
            .enumerate()
            .filter(|(_, w)| w.source.is_none())
            .map(|(i, w)| (i, w.from.path.clone()))
            .collect();
        r.step = Step::Planned(plan);
        for (i, path) in reads {
            let read = RestoreRead::Source(i);
            self.get(path, Purpose::Restore { seq, read });
        }
        self.maybe_write_restore();
    }

    /// A GET of the restore answered.
    pub(super) fn on_restore_get(
        &mut self,
        seq: u64,
        read: RestoreRead,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        let Some(r) = self.restore.as_ref().filter(|r| r.seq == seq) else {
            return; // an abandoned restore's
        };
        let body = match resp.into_get() {
            Ok(body) => body,
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                let error = match (read, &r.step, r.target) {
                    (RestoreRead::Version, _, RestoreTarget::Version(version)) => {
                        RestoreError::VersionNotKept {
                            version,
                            oldest_kept: self.oldest_kept_version(),
                        }
                    }
                    (_, Step::Planned(plan), _) => {
                        let (path, version) = match read {
                            RestoreRead::Source(i) => (
                                plan.writes[i].from.path.clone(),
                                plan.as_of.unwrap_or(plan.version - 1),
                            ),
                            _ => (String::new(), plan.version - 1),
                        };
                        RestoreError::GenerationCollected { version, path }
                    }
                    (_, Step::FindingTime(g), _) => RestoreError::GenerationCollected {
                        version: self.manifest.as_ref().map_or(0, |m| m.version),
                        path: g.path.clone(),
                    },
                    _ => RestoreError::Busy,
                };
                return self.finish_restore(Err(error));
            }
            Err(e) => return self.retry(request, &e),
        };
        match read {
            RestoreRead::Version => self.on_restore_version(body),
            RestoreRead::Time => self.on_restore_time(body),
            RestoreRead::Source(i) => self.on_restore_source(i, body),
        }
    }

    fn on_restore_version(&mut self, body: Bytes) {
        let Some(RestoreTarget::Version(version)) = self.restore.as_ref().map(|r| r.target) else {
            return;
        };
        let path = self.paths.manifest(version);
        let v = match Manifest::decode_version(&body, version) {
            Ok(v) => v,
            Err(ManifestError::Corrupt(reason)) => {
                return self.finish_restore(Err(RestoreError::Corrupt { path, reason }))
            }
            Err(ManifestError::UnsupportedFormat(format)) => {
                let reason = alloc::format!("protocol format {format}, not this log's");
                return self.finish_restore(Err(RestoreError::Corrupt { path, reason }));
            }
        };
        let Some(m) = self.manifest.clone() else {
            return;
        };
        self.plan_restore(&m, v.replay_cursor, Some(&v), None);
    }

    fn on_restore_time(&mut self, body: Bytes) {
        let Some(r) = self.restore.as_ref() else {
            return;
        };
        let (Step::FindingTime(g), RestoreTarget::Time(time)) = (&r.step, r.target) else {
            return;
        };
        let g = g.clone();
        let entries = match self.checked_entries(&g, body.clone()) {
            Ok(entries) => entries,
            Err(e) => return self.finish_restore(Err(e)),
        };
        let Some(m) = self.manifest.clone() else {
            return;
        };
        // Times never decrease along the log (PROTOCOL.md §2): the first past it is the point.
        // Those past it below `dropped_before` are not the log's: none at or past it here,
        // and the point lies further on.
        let past = entries
            .iter()
            .find(|e| e.position >= m.dropped_before && e.time.is_some_and(|t| t > time));
        match past.map(|e| e.position) {
            Some(to) => self.restore_to_time(&m, time, to, Some((g, body, entries))),
            None => self.find_time(&m, time, g.last_position + 1),
        }
    }

    fn on_restore_source(&mut self, index: usize, body: Bytes) {
        let Some(Step::Planned(plan)) = self.restore.as_mut().map(|r| &mut r.step) else {
            return;
        };
        if let Some(w) = plan.writes.get_mut(index) {
            w.source = Some(body);
        }
        self.maybe_write_restore();
    }

    /// The source generation's entries, checked against its record.
    fn checked_entries(
        &self,
        g: &GenerationRecord,
        body: Bytes,
    ) -> Result<Vec<PositionedRecords>, RestoreError> {
        // The path is the error's; the reason says only what is wrong with it.
        let corrupt = |reason: String| RestoreError::Corrupt {
            path: g.path.clone(),
            reason,
        };
        g.verify(self.codec.as_ref(), &body).map_err(|e| match e {
            FatalError::Corrupt { reason, .. } => corrupt(reason),
            other => corrupt(alloc::format!("{other:?}")),
        })?;
        let generation = self.codec.decode_generation(body).map_err(|e| match e {
            CodecError::Corrupt(reason) | CodecError::Encode(reason) => corrupt(reason),
            CodecError::SchemaMismatch(detail) => {
                corrupt(alloc::format!("holds another schema: {detail}"))
            }
        })?;
        let mut last = None;
        for e in &generation.entries {
            let in_range = (g.first_position..=g.last_position).contains(&e.position);
            if !in_range || last.is_some_and(|l| l >= e.position) {
                return Err(RestoreError::Corrupt {
                    path: g.path.clone(),
                    reason: alloc::format!("entry position {} out of order or range", e.position),
                });
            }
            last = Some(e.position);
        }
        Ok(generation.entries)
    }

    /// Once every source is read (and checked): encode the files and put them.
    fn maybe_write_restore(&mut self) {
        let Some(Step::Planned(plan)) = self.restore.as_ref().map(|r| &r.step) else {
            return;
        };
        let ready = plan
            .writes
            .iter()
            .all(|w| w.source.is_some() || w.out.is_some());
        if !ready || plan.writes.iter().any(|w| w.out.is_some()) {
            return;
        }
        let mut outs = Vec::new();
        for w in &plan.writes {
            let Some(body) = w.source.clone() else {
                return;
            };
            let out = match w.keep {
                Keep::All => self.checked_entries(&w.from, body.clone()).map(|_| {
                    let mut record = w.from.clone();
                    record.path = w.path.clone();
                    (record, Body::from(body))
                }),
                Keep::Below(p) | Keep::From(p) => {
                    self.checked_entries(&w.from, body).and_then(|entries| {
                        let kept: Vec<PositionedRecords> = entries
                            .into_iter()
                            .filter(|e| match w.keep {
                                Keep::Below(_) => e.position < p,
                                _ => e.position >= p,
                            })
                            .collect();
                        self.encode_restored(w, &kept)
                    })
                }
            };
            match out {
                Ok(out) => outs.push(out),
                Err(e) => return self.finish_restore(Err(e)),
            }
        }
        let Some(Step::Planned(plan)) = self.restore.as_mut().map(|r| &mut r.step) else {
            return;
        };
        for (w, out) in plan.writes.iter_mut().zip(outs) {
            w.source = None;
            w.out = Some(out);
        }
        for index in 0..plan.writes.len() {
            self.put(PutTarget::Restored { index });
        }
    }

    /// A rewritten generation of `kept` (non-empty), with the metadata a flush writes.
    fn encode_restored(
        &self,
        w: &Write,
        kept: &[PositionedRecords],
    ) -> Result<(GenerationRecord, Body), RestoreError> {
        if kept.is_empty() {
            return Err(RestoreError::Corrupt {
                path: w.from.path.clone(),
                reason: "holds no entry its record says it holds".into(),
            });
        }
        let header = GenerationHeader {
            epoch: self.epoch,
            id: w.id,
        };
        let body =
            self.codec
                .encode_generation(&header, kept)
                .map_err(|e| RestoreError::Corrupt {
                    path: w.path.clone(),
                    reason: alloc::format!("could not be encoded: {e}"),
                })?;
        let record = self.describe_generation(w.id, w.path.clone(), kept, &body);
        Ok((record, body.into()))
    }

    /// The restore's file `index`: its path and, until it landed, its bytes.
    pub(super) fn restored_path(&self, index: usize) -> String {
        self.restore_write(index)
            .map_or_else(String::new, |w| w.path.clone())
    }

    pub(super) fn restored_body(&self, index: usize) -> Option<&Body> {
        self.restore_write(index)
            .filter(|w| !w.written)
            .and_then(|w| w.out.as_ref())
            .map(|(_, b)| b)
    }

    pub(super) fn restored_landed(&mut self, index: usize) {
        if let Some(Step::Planned(plan)) = self.restore.as_mut().map(|r| &mut r.step) {
            if let Some(w) = plan.writes.get_mut(index) {
                w.written = true;
            }
        }
    }

    fn restore_write(&self, index: usize) -> Option<&Write> {
        match self.restore.as_ref().map(|r| &r.step) {
            Some(Step::Planned(plan)) => plan.writes.get(index),
            _ => None,
        }
    }

    /// The restore's commit on the newest manifest `m` (version raised): the plan's list,
    /// then whatever was flushed since it was planned; everything else listed is retired.
    fn commit_restore(&mut self, mut m: Manifest, plan: Plan) {
        let written = plan.writes.iter().filter_map(|w| w.out.as_ref());
        let written: Vec<String> = written.map(|(r, _)| r.path.clone()).collect();
        if !m.generations.starts_with(&plan.base) {
            // Only flushes commit while a restore runs; a log that changed otherwise is not
            // restored on a stale plan. Its files were never named: nobody reads them.
            for path in written {
                self.io.send(Op::Delete { path }, Purpose::Delete);
            }
            return self.finish_restore(Err(RestoreError::Busy));
        }
        let mut generations: Vec<GenerationRecord> = Vec::new();
        let mut result = Restored {
            to: plan.to,
            as_of_version: plan.as_of,
            ..Restored::default()
        };
        for item in &plan.list {
            match item {
                Item::Keep(g) => {
                    result.generations_kept += 1;
                    generations.push(g.clone());
                }
                Item::Write(i) => {
                    let w = &plan.writes[*i];
                    if w.keep == Keep::All {
                        result.generations_copied += 1;
                    } else {
                        result.generations_rewritten += 1;
                    }
                    if let Some((record, _)) = &w.out {
                        generations.push(record.clone());
                    }
                }
            }
        }
        let since = m.generations[plan.base.len()..].to_vec();
        result.generations_kept += since.len() as u64;
        generations.extend(since);
        let at = self.wall_clock();
        let version = m.version;
        let left_out: Vec<RetiredRecord> = m
            .generations
            .iter()
            .filter(|g| !generations.iter().any(|n| n.path == g.path))
            .map(|g| RetiredRecord {
                path: g.path.clone(),
                version,
                bytes: g.bytes,
                at,
            })
            .collect();
        result.generations_retired = left_out.len() as u64;
        result.rows = generations.iter().map(|g| g.rows).sum();
        result.version = version;
        result.from_version = version - 1;
        m.retired.extend(left_out);
        // Entries appended from now on are stamped past every time the log held, so that
        // times never decrease, even once an undo brings the left-out entries back.
        let newest = m
            .generations
            .iter()
            .chain(&plan.brought)
            .filter_map(|g| g.max_time);
        m.time_floor = newest.max().max(m.time_floor);
        m.generations = generations;
        m.restored = Some(RestoredRecord {
            to: plan.to,
            from_version: version - 1,
            version: plan.as_of,
        });
        if let Some(r) = self.restore.as_mut() {
            r.step = Step::Committing(result);
        }
        self.start_commit(m, CommitKind::Restore);
    }

    /// The restore's manifest passed its post-check.
    pub(super) fn on_restored(&mut self) {
        let Some(r) = self.restore.take() else {
            return;
        };
        if let Step::Committing(result) = r.step {
            self.events.push_back(Event::Restored(Ok(result)));
        }
    }
}

/// A position the log can be restored to: `dropped_before ..= cursor`.
fn check_position(m: &Manifest, p: u64) -> Result<(), RestoreError> {
    let (min, max) = (m.dropped_before, m.replay_cursor);
    if p < min || p > max {
        return Err(RestoreError::OutOfRange {
            requested: p,
            min,
            max,
        });
    }
    Ok(())
}

fn item_id(item: &Item, writes: &[Write]) -> u64 {
    match item {
        Item::Keep(g) => g.id,
        Item::Write(i) => writes[*i].id,
    }
}
