//! The reader machine: reads a log without writing (generations, then the WAL from the
//! cursor), optionally follows it, ignores orphans and reports corruption with the object's
//! path (PROTOCOL.md §5). Driven through the [`Machine`] contract, like the writer.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::vec::Vec;
use bytes::Bytes;
use core::time::Duration;

use crate::codec::{Codec, Entry, IndexedEntry, Record};
use crate::config::{ReaderConfig, Start};
use crate::error::FatalError;
use crate::flow::{record_bytes, Flow, Holding};
use crate::io::{Op, RequestId, Response, StoreError, StoreErrorKind};
use crate::machine::{earliest, Machine, Output};
use crate::manifest::{GenerationRecord, Manifest, ManifestError};
use crate::paths::Paths;
use crate::requests::{IoCounters, Pending, Requests};
use crate::walk::{decode_slot, Step, Walk};

mod ranged;
mod shortcut;
mod timesearch;
use ranged::{Planned, RangedGeneration};
use shortcut::{Seen, Shortcut, Stage};
use timesearch::{Key, Probed, TimeSearch};

/// What a reader reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadEvent {
    /// The records of one WAL position, in log order; each position is reported once.
    Records {
        /// WAL position.
        position: u64,
        /// Its records.
        records: Vec<Record>,
    },
    /// Everything durable at the time has been reported; the next entry would be at
    /// `position`. Without `follow` the reader is done after this.
    CaughtUp {
        /// Where the log ends for now.
        position: u64,
    },
    /// The reader stopped.
    Fatal(FatalError),
}

impl ReadEvent {
    /// The bytes this event holds against the reader's read-ahead bound (its records'
    /// payloads; 0 for other events): give them back with [`Reader::release`] once the
    /// records are handed on (PROTOCOL.md §5 "Flow control").
    pub fn bytes(&self) -> u64 {
        match self {
            ReadEvent::Records { records, .. } => record_bytes(records),
            _ => 0,
        }
    }
}

/// What each request was for. (Its attempt is kept by the request table.)
#[derive(Clone, Debug)]
enum Purpose {
    List,
    Manifest {
        version: u64,
    },
    Generation,
    /// The index of the generation at the front of `todo` (a start inside it).
    GenerationIndex,
    /// A run of that generation's records (`ranged::Run::seq`).
    GenerationRange {
        seq: u64,
    },
    Slot {
        position: u64,
        token: u64,
    },
    /// A slot probed by a start past the cursor (`shortcut.rs`).
    Probe {
        position: u64,
    },
    /// The LIST of fence intents for that start.
    Intents,
    /// The LIST of manifests that lets that start trust the fences it found.
    ProbeManifests,
    /// The LIST of every fence intent for a start at a time (`timesearch.rs`).
    SearchIntents,
    /// A fence intent's body, for that search.
    SearchIntent {
        position: u64,
        epoch: u64,
    },
    /// A slot probed by that search.
    SearchProbe {
        position: u64,
    },
    /// The LIST of manifests that lets that search trust what it found.
    SearchManifests,
    /// The LIST that names what is kept, after the version a reader as of a version asked
    /// for was not found.
    AsOfList {
        version: u64,
    },
}

/// How a start at a time past the generations found its position (PROTOCOL.md §5 "Start at
/// a time").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeStart {
    /// Not a start at a time past the generations.
    NotSearched,
    /// Searched: started as a start at this position, the time gate still on.
    Searched {
        /// The position found.
        position: u64,
        /// Rounds of slot probes the search took.
        rounds: u32,
    },
    /// The search could not be trusted: the walk from the cursor.
    Fallback,
}

/// How a start at a position was found (PROTOCOL.md §5 "Start past the cursor").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPath {
    /// From the cursor (the start is not far enough past it, or not a position).
    Walk,
    /// Past the cursor, from the fence intents and the slots below the start.
    Shortcut,
    /// The shortcut was tried and fell back to the walk from the cursor.
    Fallback,
}

/// A probe GET's outcome, for a start that may fall back to the walk.
enum ProbeAnswer {
    /// The slot's entry, or `None` for an empty slot.
    Slot(Option<Entry>),
    /// Bytes that do not decode: the walk decides what they mean (an orphan in a window is
    /// skipped), so the start falls back to it.
    Undecodable,
    /// The store failed: retry within the budget.
    Failed,
}

/// What slot answers do: only a walking reader consumes them at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a manifest or generations, or waiting to poll: slots that arrive wait.
    Elsewhere,
    /// Walking the WAL.
    Walking,
    /// Finished (caught up without `follow`, stopped, or failed): inert.
    Done,
}

/// The sans-I/O reader of one log.
pub struct Reader {
    cfg: ReaderConfig,
    codec: Box<dyn Codec>,
    paths: Paths,
    io: Requests<Purpose>,
    events: VecDeque<ReadEvent>,
    phase: Phase,
    now: Duration,
    manifest: Option<Manifest>,
    /// Every record below this position has been reported (or lies below the start).
    next_position: u64,
    /// A start at a time whose first entry was not met yet: entries of a known earlier time
    /// are read, not reported. `None` once the gate is open (times never decrease along the
    /// log, so everything after is reported).
    time_from: Option<u64>,
    todo: VecDeque<GenerationRecord>,
    /// The front of `todo`, when it is read with ranged gets.
    ranged: Option<RangedGeneration>,
    /// Names the next run of records (unique across generations, so a late answer for a
    /// generation the reader moved past is never taken for a current one).
    range_seq: u64,
    walk: Walk,
    poll_at: Option<Duration>,
    caught_up_at: Option<u64>,
    /// The end position at which the manifest was last checked.
    checked_at: Option<u64>,
    /// The fence position at which the manifest was last checked.
    fence_checked_at: Option<u64>,
    /// When the newest manifest LIST that answered was sent (on this reader's clock).
    manifest_listed_at: Option<Duration>,
    /// When each data slot waiting to be consumed answered: one that answered more than the
    /// log's lease after `manifest_listed_at` is reported only after a newer LIST
    /// (PROTOCOL.md §5, "A stale manifest and collected fences").
    slot_answered: BTreeMap<u64, Duration>,
    /// Caught up: fetch only the next slot until data flows again (no read-ahead polling).
    probing: bool,
    /// Bytes held against `read_ahead_bytes` (PROTOCOL.md §5 "Flow control").
    flow: Flow,
    /// The next generation's GET waits for the host to release bytes.
    generation_deferred: bool,
    /// A start past the cursor in progress.
    shortcut: Option<Shortcut>,
    start_path: StartPath,
    /// A start at a time searching the WAL.
    search: Option<TimeSearch>,
    time_start: TimeStart,
    /// A generation this reader's manifest names was deleted under it (PROTOCOL.md §5
    /// "Generation gone"): its path, while the manifest is re-read.
    gone: Option<alloc::string::String>,
    /// How many times that happened.
    generations_gone: u64,
    /// A consumer's start from the beginning: it waits out a drop in progress
    /// ([`Reader::settle_pending_drops`]).
    settle_drops: bool,
}

impl Reader {
    /// Creates a reader and starts reading. `seed` only jitters retries.
    pub fn new(mut cfg: ReaderConfig, codec: Box<dyn Codec>, seed: u64, now: Duration) -> Self {
        // A version does not grow: nothing to follow.
        cfg.follow &= cfg.as_of_version.is_none();
        let start = match cfg.from {
            Start::Position(p) => p,
            Start::Beginning | Start::Time(_) => 0,
        };
        let time_from = match cfg.from {
            Start::Time(t) => Some(t),
            _ => None,
        };
        let mut io = Requests::new(seed, cfg.retry.clone());
        io.set_clock(now);
        let mut r = Reader {
            flow: Flow::new(cfg.read_ahead_bytes),
            generation_deferred: false,
            paths: Paths::new(&cfg.prefix),
            walk: Walk::new(0, 0, cfg.read_ahead),
            io,
            cfg,
            codec,
            events: VecDeque::new(),
            phase: Phase::Elsewhere,
            now,
            manifest: None,
            next_position: start,
            time_from,
            todo: VecDeque::new(),
            ranged: None,
            range_seq: 0,
            poll_at: None,
            caught_up_at: None,
            checked_at: None,
            fence_checked_at: None,
            manifest_listed_at: None,
            slot_answered: BTreeMap::new(),
            probing: false,
            shortcut: None,
            start_path: StartPath::Walk,
            search: None,
            time_start: TimeStart::NotSearched,
            gone: None,
            generations_gone: 0,
            settle_drops: false,
        };
        match r.cfg.as_of_version {
            Some(0) => r.fail(FatalError::NoSuchVersion {
                version: 0,
                newest: None,
            }),
            Some(version) => {
                let path = r.paths.manifest(version);
                r.get(path, Purpose::Manifest { version });
            }
            None => r.list_manifests(),
        }
        r
    }

    /// A named consumer's reader (PROTOCOL.md §4 "Retention"): a start from the beginning
    /// whose first manifest says a drop is being decided (`dropping`) reads the manifest
    /// again (every `poll_interval`) until the drop's commit lands, and starts where the log
    /// starts then. The owner lists the consumers only after that intent, so a consumer it
    /// did not see must not start below the drop. An owner that died mid-drop leaves the
    /// intent to the next writer's claim, which clears it: until one opens the log, the
    /// consumer waits (neither start is safe: below the point the drop may still land, at
    /// it the consumer would skip entries the log keeps).
    pub(crate) fn settle_pending_drops(&mut self) {
        self.settle_drops = true;
    }

    /// Whether the reader finished (caught up without `follow`, or failed).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Every record below this position has been reported (or lies below the start).
    pub fn position(&self) -> u64 {
        self.next_position
    }

    /// How the start was found.
    pub fn start_path(&self) -> StartPath {
        self.start_path
    }

    /// How a start at a time found its position.
    pub fn time_start(&self) -> TimeStart {
        self.time_start
    }

    /// How many times a generation its manifest named was gone and the reader re-read the
    /// manifest to continue (PROTOCOL.md §5 "Generation gone").
    pub fn generations_gone(&self) -> u64 {
        self.generations_gone
    }

    /// Requests issued, by kind.
    pub fn io_counters(&self) -> IoCounters {
        self.io.counters
    }

    /// The host handed on `bytes` of reported records (the [`ReadEvent::bytes`] of the events
    /// it is done with; more than it was given counts as all): room for more read-ahead.
    /// Until records are released, the reader stops fetching once it holds
    /// `read_ahead_bytes` (PROTOCOL.md §5 "Flow control").
    pub fn release(&mut self, bytes: u64) {
        self.flow.release(bytes);
        if self.is_done() {
            return;
        }
        if self.generation_deferred {
            self.next_generation();
        } else if self.ranged.as_ref().is_some_and(|r| r.deferred) {
            self.fetch_range();
        } else if self.phase == Phase::Walking {
            self.drive_walk();
        }
    }

    /// Bytes reported and not released yet.
    pub fn unreleased(&self) -> u64 {
        self.flow.unreleased()
    }

    fn holding(&self) -> Holding {
        Holding {
            arrived: self.walk.arrived_bytes(),
            slots_in_flight: self.walk.in_flight(),
        }
    }

    /// Stops following; the reader becomes inert.
    pub fn stop(&mut self) {
        if !self.is_done() {
            self.phase = Phase::Done;
            self.io.shut();
            self.poll_at = None;
        }
    }

    fn fail(&mut self, e: FatalError) {
        if !self.is_done() {
            self.phase = Phase::Done;
            self.io.shut();
            self.poll_at = None;
            self.events.push_back(ReadEvent::Fatal(e));
        }
    }

    /// Re-sends a request after a backoff, or fails with `last` once its retry budget is
    /// spent.
    fn retry(&mut self, request: Pending<Purpose>, last: &StoreError) {
        let Err(request) = self.io.retry(self.now, request) else {
            return;
        };
        let path = match &request.op {
            Op::Get { path, .. } | Op::GetRange { path, .. } => path.clone(),
            Op::List { prefix, .. } => prefix.clone(),
            _ => alloc::string::String::new(),
        };
        self.fail(FatalError::Store {
            path,
            message: last.message.clone(),
        });
    }

    fn get(&mut self, path: alloc::string::String, purpose: Purpose) {
        self.io.send(Op::Get { path }, purpose);
    }

    fn list_manifests(&mut self) {
        self.phase = Phase::Elsewhere;
        self.list_newer_manifests(Purpose::List);
    }

    /// A LIST of the manifests after the one read (all of them before any was read).
    fn list_newer_manifests(&mut self, purpose: Purpose) {
        let after = self
            .manifest
            .as_ref()
            .map(|m| self.paths.manifest(m.version));
        let prefix = self.paths.manifest_dir();
        self.io.send(Op::List { prefix, after }, purpose);
    }

    fn on_list(&mut self, request: Pending<Purpose>, resp: Response) {
        let items = match resp.into_list() {
            Ok(items) => items,
            Err(e) => return self.retry(request, &e),
        };
        self.manifest_listed_at = Some(request.sent_at);
        let newest = items
            .iter()
            .filter_map(|m| self.paths.manifest_version(&m.path))
            .max();
        match newest {
            Some(version) => {
                let path = self.paths.manifest(version);
                self.get(path, Purpose::Manifest { version });
            }
            // A generation was gone and no newer manifest replaced it: it is missing.
            None => match self.gone.take() {
                Some(path) => self.fail(FatalError::Corrupt {
                    path,
                    reason: "generation named by the manifest is missing".into(),
                }),
                None => self.resume_walk(),
            },
        }
    }

    /// A generation the manifest names is gone (a compaction replaced it and its file was
    /// deleted, PROTOCOL.md §5 "Generation gone"): drop what is out for it and re-read the
    /// manifest; its generations are read on from `next_position`.
    fn generation_gone(&mut self, path: &str) {
        if let Some(version) = self.cfg.as_of_version {
            // A read as of a version reads that version or nothing: never a newer one.
            return self.fail(FatalError::GenerationCollected {
                version,
                path: path.into(),
            });
        }
        self.generations_gone += 1;
        self.ranged = None;
        self.flow.generation(0);
        self.generation_deferred = false;
        self.gone = Some(path.into());
        self.list_manifests();
    }

    fn on_manifest(&mut self, version: u64, request: Pending<Purpose>, resp: Response) {
        let path = self.paths.manifest(version);
        let body = match resp.into_get() {
            Ok(got) => got,
            // As of a version: gone, or never there; the LIST says which.
            Err(e) if e.kind == StoreErrorKind::NotFound && self.cfg.as_of_version.is_some() => {
                let prefix = self.paths.manifest_dir();
                let op = Op::List {
                    prefix,
                    after: None,
                };
                self.io.send(op, Purpose::AsOfList { version });
                return;
            }
            // Collected after the list: a newer one exists.
            Err(e) if e.kind == StoreErrorKind::NotFound => return self.list_manifests(),
            Err(e) => return self.retry(request, &e),
        };
        let m = match Manifest::decode_version(&body, version) {
            Ok(m) => m,
            Err(ManifestError::Corrupt(reason)) => {
                return self.fail(FatalError::Corrupt { path, reason })
            }
            Err(ManifestError::UnsupportedFormat(format)) => {
                return self.fail(FatalError::UnsupportedFormat { path, format })
            }
        };
        if m.codec != self.codec.name() {
            let detail = format!("codec {}, this reader's {}", m.codec, self.codec.name());
            return self.fail(FatalError::SchemaMismatch { path, detail });
        }
        if let Err(e) = m.check_schema(self.codec.as_ref(), &path) {
            return self.fail(e);
        }
        let first_read = self.manifest.is_none();
        let waits = self.settle_drops && matches!(self.cfg.from, Start::Beginning);
        if first_read && waits && m.dropping.is_some() {
            self.poll_at = Some(self.now + self.cfg.poll_interval);
            return;
        }
        if let (true, Start::Position(p)) = (first_read, self.cfg.from) {
            let first_available = m.first_available();
            if p < first_available {
                return self.fail(FatalError::Truncated { first_available });
            }
        }
        if first_read {
            // A start from the beginning (or at a time) starts at what the log still holds,
            // inside the first kept generation if retention's point lies there (§4
            // "Retention"): entries below `dropped_before` are never reported from it.
            self.next_position = self.next_position.max(m.first_available());
        } else if self.next_position < m.first_available().min(self.cfg.until.unwrap_or(u64::MAX)) {
            // Retention dropped what this reader has yet to report: it says so, never skips
            // it (§5 "Start and end").
            let first_available = m.first_available();
            return self.fail(FatalError::Truncated { first_available });
        }
        if self.cfg.as_of_version.is_some() {
            // Exactly the rows below its cursor: the generations, no WAL.
            let cursor = m.replay_cursor;
            self.cfg.until = Some(self.cfg.until.map_or(cursor, |u| u.min(cursor)));
        }
        // After a generation was gone the cursor may not have moved: its generations are
        // read again from `next_position` all the same.
        let gone = self.gone.take().is_some();
        let moved = m.replay_cursor > self.walk.position() || gone;
        if first_read || moved {
            if let Some(t) = self.time_from {
                // Generations wholly before `t` (by the manifest: no request) hold nothing
                // to report: start after them.
                let before = m
                    .generations
                    .iter()
                    .take_while(|g| g.untimed == 0 && g.max_time.is_some_and(|max| max < t))
                    .last();
                if let Some(g) = before {
                    self.next_position = self.next_position.max(g.last_position + 1);
                }
            }
            // Generations from the first record not yet reported.
            let from = self.next_position;
            let until = self.cfg.until.unwrap_or(u64::MAX);
            self.todo = m
                .generations
                .iter()
                .filter(|g| g.last_position >= from && g.first_position < until)
                .cloned()
                .collect();
            self.ranged = None;
            self.walk.restart(m.replay_cursor, m.cursor_epoch);
            self.slot_answered.clear();
        }
        let as_of = self.cfg.as_of_version.is_some();
        let shortcut = match self.cfg.from {
            Start::Position(p)
                if first_read
                    && !as_of
                    && self.todo.is_empty()
                    && Shortcut::applies(p, m.replay_cursor, m.fence_window) =>
            {
                Some(Shortcut::new(
                    p,
                    m.replay_cursor,
                    m.cursor_epoch,
                    m.fence_window,
                ))
            }
            _ => None,
        };
        let search = match self.time_from {
            Some(t) if first_read && !as_of && self.todo.is_empty() => {
                Some(TimeSearch::new(t, m.replay_cursor, m.cursor_epoch, m.epoch))
            }
            _ => None,
        };
        self.manifest = Some(m);
        if let Some(shortcut) = shortcut {
            self.start_shortcut(shortcut);
        } else if let Some(search) = search {
            self.start_search(search);
        } else if first_read || moved {
            self.next_generation();
        } else {
            self.resume_walk();
        }
    }

    fn next_generation(&mut self) {
        self.generation_deferred = false;
        match self.todo.front() {
            // Every entry of it is of a known time past `until_time`: the reader ends there
            // (at its first position, or the start inside it) without reading it.
            Some(g) if self.past_until_time(g) => {
                let at = g.first_position.max(self.next_position);
                self.finish_at(at)
            }
            // Flow control: a generation waits until the host released enough.
            Some(_) if !self.flow.may_send(self.holding()) => self.generation_deferred = true,
            Some(g) => {
                let path = g.path.clone();
                // Whole when the start is not inside it (all of it is read anyway) and it fits
                // the read-ahead bound, or when it has no index (written before ranged reads
                // existed). A generation larger than the bound is read in runs of records,
                // each fetched only once the host has room (flow control).
                let inside = self.next_position > g.first_position
                    || self
                        .time_from
                        .is_some_and(|t| g.untimed > 0 || g.min_time.is_none_or(|min| min < t));
                let too_big = g.bytes > self.cfg.read_ahead_bytes;
                match g.index.as_ref().filter(|_| inside || too_big) {
                    Some(index) => {
                        let range = index.range();
                        self.io
                            .send(Op::GetRange { path, range }, Purpose::GenerationIndex);
                    }
                    None => {
                        self.flow.generation(g.bytes);
                        self.get(path, Purpose::Generation);
                    }
                }
            }
            // As of a version: its generations were all; `until` is its cursor.
            None if self.cfg.as_of_version.is_some() => self.reached_until(),
            None => {
                self.next_position = self.next_position.max(self.walk.position());
                self.resume_walk();
            }
        }
    }

    /// Whether every entry of generation `g` has a known time past `until_time`.
    fn past_until_time(&self, g: &GenerationRecord) -> bool {
        let Some(t) = self.cfg.until_time else {
            return false;
        };
        g.untimed == 0 && g.min_time.is_some_and(|min| min > t)
    }

    /// A generation named by the manifest is not there: collected, for a reader as of an
    /// older version; corrupt otherwise (the current manifest's generations are never
    /// deleted while it is current).
    /// The LIST after the version asked for was not found: collected if it lies within
    /// the versions committed (1 ..= the newest), else never committed.
    fn on_as_of_list(&mut self, version: u64, request: Pending<Purpose>, resp: Response) {
        let items = match resp.into_list() {
            Ok(items) => items,
            Err(e) => return self.retry(request, &e),
        };
        let versions = || {
            items
                .iter()
                .filter_map(|m| self.paths.manifest_version(&m.path))
        };
        let (oldest, newest) = (versions().min(), versions().max());
        if versions().any(|v| v == version) {
            // Committed between the GET and the LIST: read it.
            let path = self.paths.manifest(version);
            return self.get(path, Purpose::Manifest { version });
        }
        // Versions are created one above the newest, so every version up to the newest
        // existed: one not listed was collected.
        match newest {
            Some(newest) if version <= newest => self.fail(FatalError::VersionNotKept {
                version,
                oldest_kept: oldest,
            }),
            newest => self.fail(FatalError::NoSuchVersion { version, newest }),
        }
    }

    /// The bytes of a generation's (ranged) get, or `None` once the failure is handled.
    fn generation_bytes(
        &mut self,
        path: &str,
        request: Pending<Purpose>,
        resp: Response,
    ) -> Option<Bytes> {
        let reason = match resp.into_get() {
            Ok(got) => return Some(got),
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                self.generation_gone(path);
                return None;
            }
            Err(e) if e.kind == StoreErrorKind::InvalidRange => {
                format!("shorter than the manifest says ({})", e.message)
            }
            Err(e) => {
                self.retry(request, &e);
                return None;
            }
        };
        self.fail(FatalError::Corrupt {
            path: path.into(),
            reason,
        });
        None
    }

    /// The index of the front generation arrived: check it against the manifest, keep the
    /// entries at or past the start and fetch them.
    fn on_generation_index(&mut self, request: Pending<Purpose>, resp: Response) {
        let Some(record) = self.todo.front().cloned() else {
            return;
        };
        let Some(body) = self.generation_bytes(&record.path, request, resp) else {
            return;
        };
        let path = record.path.clone();
        let checked = match &record.index {
            Some(index) => index.verify(self.codec.as_ref(), &path, &body),
            None => return,
        };
        if let Err(e) = checked {
            return self.fail(e);
        }
        let index = match self.codec.decode_generation_index(&body, record.bytes) {
            Ok(index) => index,
            Err(e) => return self.fail(FatalError::from_codec(path, e)),
        };
        if let Err(e) = check_positions(&record, index.entries.iter().map(|e| e.position)) {
            return self.fail(e);
        }
        let from = self.next_position;
        let time_from = self.time_from;
        let before_time =
            |e: &IndexedEntry| time_from.is_some_and(|t| e.time.is_some_and(|et| et < t));
        self.ranged = Some(RangedGeneration::new(
            index
                .entries
                .into_iter()
                .filter(|e| e.position >= from)
                .skip_while(before_time)
                .collect(),
        ));
        self.fetch_range();
    }

    /// Asks for the next runs of the front generation's records while flow control allows
    /// (several in flight, PROTOCOL.md §5), hands out what is ready, and moves to the next
    /// generation once every entry was reported.
    fn fetch_range(&mut self) {
        let until = self.cfg.until.unwrap_or(u64::MAX);
        let Some(path) = self.todo.front().map(|g| g.path.clone()) else {
            return;
        };
        loop {
            let Some(ranged) = self.ranged.as_ref() else {
                return;
            };
            if ranged.finished() {
                self.ranged = None;
                self.flow.generation(0);
                self.todo.pop_front();
                return self.next_generation();
            }
            if ranged.reached(until) {
                // The gate finishes the reader there: nothing of it is fetched.
                return self.reached_until();
            }
            let may_send = self.flow.may_send(self.holding());
            if let Some(r) = self.ranged.as_mut() {
                // Flow control: without room, the next run waits for a release.
                r.deferred = !may_send;
            }
            if !may_send {
                return;
            }
            // A run holds at most what the bound leaves room for (at least one entry).
            let room = self
                .cfg
                .read_ahead_bytes
                .saturating_sub(self.flow.held(self.holding()));
            let seq = self.range_seq;
            let Some(ranged) = self.ranged.as_mut() else {
                return;
            };
            let planned = ranged.plan(until, room, seq);
            self.flow.generation(ranged.planned_bytes());
            match planned {
                Planned::Fetch { seq, range } => {
                    self.range_seq += 1;
                    let op = Op::GetRange {
                        path: path.clone(),
                        range,
                    };
                    self.io.send(op, Purpose::GenerationRange { seq });
                }
                Planned::Ready => {
                    self.range_seq += 1;
                    if !self.report_ready_runs() {
                        return;
                    }
                }
                // Every entry before `until` is planned: wait for the runs out.
                Planned::Nothing => return,
            }
        }
    }

    /// Run `seq` of the front generation arrived: report every run that is now ready, in
    /// order, and ask for more.
    fn on_generation_range(&mut self, seq: u64, request: Pending<Purpose>, resp: Response) {
        let Some(path) = self.todo.front().map(|g| g.path.clone()) else {
            return;
        };
        if !self.ranged.as_ref().is_some_and(|r| r.waits_for(seq)) {
            // A run of a generation the reader moved past (or that was gone).
            return;
        }
        let Some(body) = self.generation_bytes(&path, request, resp) else {
            return;
        };
        if !self.ranged.as_mut().is_some_and(|r| r.arrived(seq, body)) {
            // A run of a generation the reader has moved past.
            return;
        }
        if self.report_ready_runs() {
            self.fetch_range();
        }
    }

    /// Reports the entries of the runs whose bytes are here, in order, each record checked
    /// against its checksum in the index. `false`: the reader finished or failed.
    fn report_ready_runs(&mut self) -> bool {
        let Some(path) = self.todo.front().map(|g| g.path.clone()) else {
            return false;
        };
        while let Some((run, body)) = self.ranged.as_mut().and_then(RangedGeneration::pop_ready) {
            // Its bytes now count as the records it reports.
            let planned = self
                .ranged
                .as_ref()
                .map_or(0, RangedGeneration::planned_bytes);
            self.flow.generation(planned);
            for entry in run.entries {
                let mut records = Vec::with_capacity(entry.records.len());
                for r in entry.records {
                    let (lo, hi) = (
                        r.range.start - run.range.start,
                        r.range.end - run.range.start,
                    );
                    let bytes = body.slice(lo as usize..hi as usize);
                    if self.codec.checksum(&bytes) != r.crc32c {
                        self.fail(FatalError::Corrupt {
                            path,
                            reason: format!(
                                "record at bytes {}..{} differs from its checksum in the index",
                                r.range.start, r.range.end
                            ),
                        });
                        return false;
                    }
                    match self.codec.generation_record(bytes, r.rows) {
                        Ok(record) => records.push(record),
                        Err(e) => {
                            self.fail(FatalError::from_codec(path, e));
                            return false;
                        }
                    }
                }
                if !self.report(entry.position, entry.time, records) {
                    return false;
                }
            }
        }
        true
    }

    fn on_generation(&mut self, request: Pending<Purpose>, resp: Response) {
        let Some(record) = self.todo.front().cloned() else {
            return;
        };
        let path = record.path.clone();
        let body = match resp.into_get() {
            Ok(got) => got,
            Err(e) if e.kind == StoreErrorKind::NotFound => return self.generation_gone(&path),
            Err(e) => return self.retry(request, &e),
        };
        // Its bytes now count as the records it reports.
        self.flow.generation(0);
        if let Err(e) = record.verify(self.codec.as_ref(), &body) {
            return self.fail(e);
        }
        let generation = match self.codec.decode_generation(body) {
            Ok(g) => g,
            Err(e) => return self.fail(FatalError::from_codec(path, e)),
        };
        if let Err(e) = check_positions(&record, generation.entries.iter().map(|e| e.position)) {
            return self.fail(e);
        }
        for entry in generation.entries {
            if entry.position >= self.next_position
                && !self.report(entry.position, entry.time, entry.records)
            {
                return;
            }
        }
        self.todo.pop_front();
        self.next_generation();
    }

    /// A start far past the cursor (PROTOCOL.md §5 "Start past the cursor"): first the `W`
    /// slots below the start.
    fn start_shortcut(&mut self, mut shortcut: Shortcut) {
        self.phase = Phase::Elsewhere;
        for position in shortcut.check_range() {
            shortcut.waiting.insert(position);
            let path = self.paths.wal(position);
            self.get(path, Purpose::Probe { position });
        }
        self.shortcut = Some(shortcut);
    }

    /// Gives up the shortcut: the walk from the cursor, always correct.
    fn shortcut_fallback(&mut self) {
        if self.shortcut.take().is_none() {
            return;
        }
        // Probes still out answer into nothing (`self.shortcut` is gone).
        self.start_path = StartPath::Fallback;
        self.walk_from_cursor();
    }

    /// The start every shortcut and search falls back to: the walk from the manifest's cursor
    /// (after any generations left), always correct.
    fn walk_from_cursor(&mut self) {
        let (cursor, epoch) = self
            .manifest
            .as_ref()
            .map_or((0, 0), |m| (m.replay_cursor, m.cursor_epoch));
        self.walk.restart(cursor, epoch);
        self.next_generation();
    }

    /// What a probe of slot `position` (the shortcut's or the time search's) found.
    fn probe_answer(&self, position: u64, resp: Response) -> ProbeAnswer {
        match resp.into_get() {
            Ok(got) => {
                match decode_slot(self.codec.as_ref(), self.paths.wal(position), position, got) {
                    Ok(e) => ProbeAnswer::Slot(Some(e)),
                    Err(_) => ProbeAnswer::Undecodable,
                }
            }
            Err(e) if e.kind == StoreErrorKind::NotFound => ProbeAnswer::Slot(None),
            Err(_) => ProbeAnswer::Failed,
        }
    }

    /// A shortcut's request failed: sent again after a backoff while its budget lasts, then
    /// the walk from the cursor.
    fn shortcut_retry(&mut self, request: Pending<Purpose>) {
        if self.shortcut.is_some() && self.io.retry(self.now, request).is_err() {
            self.shortcut_fallback();
        }
    }

    fn on_probe(&mut self, position: u64, request: Pending<Purpose>, resp: Response) {
        let entry = match self.probe_answer(position, resp) {
            ProbeAnswer::Slot(entry) => entry,
            ProbeAnswer::Undecodable => return self.shortcut_fallback(),
            ProbeAnswer::Failed => return self.shortcut_retry(request),
        };
        let Some(shortcut) = self.shortcut.as_mut() else {
            return;
        };
        shortcut.arrived(position, Seen::of(entry.as_ref()));
        if !shortcut.stage_done() {
            return;
        }
        match shortcut.stage {
            Stage::CheckRange => {
                // Listed only after the check range answered: a fence whose writer's data
                // the check range saw has its intent written before that data.
                shortcut.stage = Stage::Intents;
                let after = Some(self.paths.fence_intents_from(shortcut.cursor));
                let prefix = self.paths.fences_dir();
                self.io.send(Op::List { prefix, after }, Purpose::Intents);
            }
            Stage::IntentSlots => self.probe_manifests(),
            Stage::Intents | Stage::Manifests => {}
        }
    }

    fn on_intents(&mut self, request: Pending<Purpose>, resp: Response) {
        let Ok(items) = resp.into_list() else {
            return self.shortcut_retry(request);
        };
        let mut intents = Vec::with_capacity(items.len());
        for item in &items {
            match self.paths.fence_intent_parts(&item.path) {
                Some((position, _)) => intents.push(position),
                None => return self.shortcut_fallback(),
            }
        }
        let Some(shortcut) = self.shortcut.as_mut() else {
            return;
        };
        shortcut.stage = Stage::IntentSlots;
        let probes = shortcut.intent_slots_to_probe(intents);
        if probes.is_empty() {
            return self.probe_manifests();
        }
        for position in probes {
            let path = self.paths.wal(position);
            self.get(path, Purpose::Probe { position });
        }
    }

    /// The fences found are trusted only if no manifest is newer than the one read: a slow
    /// opener's fence in a slot a newer writer collected lies below that writer's cursor, and
    /// the writer claimed (a newer manifest) before it collected.
    fn probe_manifests(&mut self) {
        let Some(shortcut) = self.shortcut.as_mut() else {
            return;
        };
        shortcut.stage = Stage::Manifests;
        self.list_newer_manifests(Purpose::ProbeManifests);
    }

    fn on_probe_manifests(&mut self, request: Pending<Purpose>, resp: Response) {
        let newer = match resp.into_list() {
            Ok(items) => items
                .iter()
                .any(|m| self.paths.manifest_version(&m.path).is_some()),
            Err(_) => return self.shortcut_retry(request),
        };
        let decision = self.shortcut.as_ref().and_then(Shortcut::decide);
        match decision {
            Some(d) if !newer => {
                self.shortcut = None;
                self.start_path = StartPath::Shortcut;
                self.walk.restart(d.walk_from, d.fence_epoch);
                self.next_generation();
            }
            _ => self.shortcut_fallback(),
        }
    }

    /// A start at a time past the generations (PROTOCOL.md §5 "Start at a time"): first the
    /// LIST of every fence intent.
    fn start_search(&mut self, search: TimeSearch) {
        self.phase = Phase::Elsewhere;
        let prefix = self.paths.fences_dir();
        self.io.send(
            Op::List {
                prefix,
                after: None,
            },
            Purpose::SearchIntents,
        );
        self.search = Some(search);
    }

    /// Gives up the search: the walk from the cursor, always correct.
    fn search_fallback(&mut self) {
        if self.search.take().is_none() {
            return;
        }
        // Answers still out land in nothing (`self.search` is gone).
        self.time_start = TimeStart::Fallback;
        self.walk_from_cursor();
    }

    /// A search's request failed: sent again after a backoff while its budget lasts, then
    /// the walk from the cursor.
    fn search_retry(&mut self, request: Pending<Purpose>) {
        if self.search.is_some() && self.io.retry(self.now, request).is_err() {
            self.search_fallback();
        }
    }

    fn on_search_intents(&mut self, request: Pending<Purpose>, resp: Response) {
        let Ok(items) = resp.into_list() else {
            return self.search_retry(request);
        };
        let mut intents = Vec::with_capacity(items.len());
        for item in &items {
            match self.paths.fence_intent_parts(&item.path) {
                Some(parts) => intents.push(parts),
                None => return self.search_fallback(),
            }
        }
        let Some(search) = self.search.as_mut() else {
            return;
        };
        let keys = search.writers_to_ask(&intents);
        if keys.is_empty() {
            return self.search_round_done();
        }
        for key in keys {
            match key {
                Key::Slot(position) => {
                    let path = self.paths.wal(position);
                    self.get(path, Purpose::SearchProbe { position });
                }
                Key::Intent { position, epoch } => {
                    let path = self.paths.fence_intent(position, epoch);
                    self.get(path, Purpose::SearchIntent { position, epoch });
                }
            }
        }
    }

    fn on_search_intent(
        &mut self,
        position: u64,
        epoch: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        let body = match resp.into_get() {
            Ok(got) => Some(got),
            Err(e) if e.kind == StoreErrorKind::NotFound => None,
            Err(_) => return self.search_retry(request),
        };
        let Some(search) = self.search.as_mut() else {
            return;
        };
        search.intent_arrived(position, epoch, body.as_deref());
        if search.round_done() {
            self.search_round_done();
        }
    }

    fn on_search_probe(&mut self, position: u64, request: Pending<Purpose>, resp: Response) {
        let entry = match self.probe_answer(position, resp) {
            ProbeAnswer::Slot(entry) => entry,
            ProbeAnswer::Undecodable => return self.search_fallback(),
            ProbeAnswer::Failed => return self.search_retry(request),
        };
        let Some(search) = self.search.as_mut() else {
            return;
        };
        if search.slot_arrived(position, Probed::of(entry.as_ref())) && search.round_done() {
            self.search_round_done();
        }
    }

    /// Every answer of a round is in: the next probe, or the LIST of manifests.
    fn search_round_done(&mut self) {
        let Some(search) = self.search.as_mut() else {
            return;
        };
        if search.stage == timesearch::Stage::Writers && !search.writers_promise() {
            // A writer that may not have stamped times: an untimed entry no probe can rule
            // out would open the gate.
            return self.search_fallback();
        }
        match search.next_probe() {
            Some(position) => {
                let path = self.paths.wal(position);
                self.get(path, Purpose::SearchProbe { position });
            }
            None => {
                search.stage = timesearch::Stage::Manifests;
                self.list_newer_manifests(Purpose::SearchManifests);
            }
        }
    }

    /// The search is trusted only if no writer claimed since the manifest read (its entries
    /// and promise are unknown): then the start is a start at the position found.
    fn on_search_manifests(&mut self, request: Pending<Purpose>, resp: Response) {
        let newer = match resp.into_list() {
            Ok(items) => items
                .iter()
                .any(|m| self.paths.manifest_version(&m.path).is_some()),
            Err(_) => return self.search_retry(request),
        };
        if newer {
            return self.search_fallback();
        }
        let Some(search) = self.search.take() else {
            return;
        };
        let position = search.found();
        self.time_start = TimeStart::Searched {
            position,
            rounds: search.rounds,
        };
        self.next_position = self.next_position.max(position);
        let Some(m) = self.manifest.as_ref() else {
            return;
        };
        if Shortcut::applies(position, m.replay_cursor, m.fence_window) {
            let shortcut = Shortcut::new(position, m.replay_cursor, m.cursor_epoch, m.fence_window);
            self.start_shortcut(shortcut);
        } else {
            self.next_generation();
        }
    }

    fn resume_walk(&mut self) {
        if self.manifest.is_none() {
            // No log yet.
            return self.caught_up(0);
        }
        self.phase = Phase::Walking;
        self.walk.forget_empty();
        self.drive_walk();
    }

    /// Whether the next slot of the walk answered more than the log's lease after the newest
    /// manifest LIST was sent: a collector may have freed it since and a zombie refilled it
    /// (PROTOCOL.md §5, "A stale manifest and collected fences"), so the manifest is checked
    /// before it is reported.
    fn next_slot_outlived_the_manifest(&self) -> bool {
        let Some(lease) = self.manifest.as_ref().and_then(|m| m.lease_ms) else {
            return false;
        };
        let (Some(&answered), Some(listed)) = (
            self.slot_answered.get(&self.walk.position()),
            self.manifest_listed_at,
        ) else {
            return false;
        };
        answered > listed + Duration::from_millis(lease)
    }

    fn drive_walk(&mut self) {
        loop {
            // Slots the walk passed (consumed, orphans, fence windows) are forgotten.
            let position = self.walk.position();
            while self
                .slot_answered
                .first_key_value()
                .is_some_and(|(&p, _)| p < position)
            {
                self.slot_answered.pop_first();
            }
            if self.next_slot_outlived_the_manifest() {
                return self.list_manifests();
            }
            let Some(step) = self.walk.step() else { break };
            match step {
                Step::Data(entry) => {
                    let position = entry.header.position;
                    if position >= self.next_position {
                        if !self.report(position, entry.header.time, entry.records) {
                            return;
                        }
                        self.caught_up_at = None;
                        self.checked_at = None;
                        self.probing = false;
                    }
                }
                Step::Orphan => {}
                // A fence is only trusted once a manifest read after it shows the cursor has
                // not passed it: a slow opener may have fenced a slot that was already
                // flushed and collected (PROTOCOL.md §5).
                Step::Fence { position, .. } if self.fence_checked_at == Some(position) => {
                    self.walk.pass_fence()
                }
                Step::Fence { position, .. } => {
                    self.fence_checked_at = Some(position);
                    return self.list_manifests();
                }
                Step::End(position) => {
                    if self.cfg.until.is_some_and(|u| position >= u) {
                        return self.reached_until();
                    }
                    // The slot may be collected behind a newer cursor, or not written yet:
                    // look for a newer manifest once, then call it the end.
                    if self.checked_at == Some(position) {
                        return self.caught_up(position);
                    }
                    self.checked_at = Some(position);
                    return self.list_manifests();
                }
            }
        }
        let limit = if self.probing { 1 } else { self.cfg.read_ahead };
        let budget = self.flow.slot_budget(self.holding(), limit as usize);
        let wanted = self.walk.wanted_at_most(limit, budget);
        for (position, token) in wanted {
            let path = self.paths.wal(position);
            self.get(path, Purpose::Slot { position, token });
        }
    }

    /// Reports the records of `position` unless it is at or past `until` (then the reader
    /// finishes) or, for a start at a time not met yet, its entry is known to be earlier:
    /// the one gate every report passes, so nothing outside `from .. until` is ever
    /// reported. `false`: the reader finished.
    fn report(&mut self, position: u64, time: Option<u64>, records: Vec<Record>) -> bool {
        if self.cfg.until.is_some_and(|u| position >= u) {
            self.reached_until();
            return false;
        }
        if let (Some(t), Some(time)) = (self.cfg.until_time, time) {
            // Times never decrease along the log: nothing after it is at or before `t`.
            if time > t {
                self.finish_at(position);
                return false;
            }
        }
        self.next_position = position + 1;
        if let Some(t) = self.time_from {
            if time.is_some_and(|time| time < t) {
                return true;
            }
            // The first entry at or past `t`, or of unknown time (an older writer's: nothing
            // says it is earlier): from here on, all.
            self.time_from = None;
        }
        // Counted only once reported: what the gate drops, the host never holds.
        self.flow.reported(record_bytes(&records));
        self.events
            .push_back(ReadEvent::Records { position, records });
        true
    }

    /// Everything before `until` was reported: caught up there, and done even when following.
    fn reached_until(&mut self) {
        let until = self.cfg.until.unwrap_or(u64::MAX);
        self.finish_at(until);
    }

    /// The reader's end is at `position` (`until`, or the first entry of a known time past
    /// `until_time`): caught up there, and done even when following.
    fn finish_at(&mut self, position: u64) {
        if self.caught_up_at != Some(position) {
            self.caught_up_at = Some(position);
            self.events.push_back(ReadEvent::CaughtUp { position });
        }
        self.phase = Phase::Done;
        self.io.shut();
        self.poll_at = None;
    }

    fn caught_up(&mut self, position: u64) {
        if self.caught_up_at != Some(position) {
            self.caught_up_at = Some(position);
            self.events.push_back(ReadEvent::CaughtUp { position });
        }
        if self.cfg.follow {
            self.probing = true;
            self.phase = Phase::Elsewhere;
            self.poll_at = Some(self.now + self.cfg.poll_interval);
        } else {
            self.phase = Phase::Done;
            self.io.shut();
        }
    }

    fn on_slot(&mut self, position: u64, token: u64, request: Pending<Purpose>, resp: Response) {
        if !self.walk.is_live(position, token) {
            return;
        }
        let path = self.paths.wal(position);
        let entry = match resp.into_get() {
            Ok(got) => match decode_slot(self.codec.as_ref(), path, position, got) {
                Ok(e) => {
                    if !e.records.is_empty() {
                        self.flow.slot_arrived(record_bytes(&e.records));
                    }
                    Some(e)
                }
                Err(fatal) => return self.fail(fatal),
            },
            Err(e) if e.kind == StoreErrorKind::NotFound => None,
            Err(e) => return self.retry(request, &e),
        };
        if entry
            .as_ref()
            .is_some_and(|e| e.header.kind == crate::codec::EntryKind::Data)
        {
            self.slot_answered.insert(position, self.now);
        }
        self.walk.arrived(position, token, entry);
        if self.phase == Phase::Walking {
            self.drive_walk();
        }
    }
}

/// A generation's positions lie within its manifest record's range, in increasing order.
fn check_positions(
    record: &GenerationRecord,
    positions: impl Iterator<Item = u64>,
) -> Result<(), FatalError> {
    let mut previous = None;
    for position in positions {
        let in_range = (record.first_position..=record.last_position).contains(&position);
        if !in_range || previous.is_some_and(|p| p >= position) {
            return Err(FatalError::Corrupt {
                path: record.path.clone(),
                reason: format!("entry position {position} out of order or range"),
            });
        }
        previous = Some(position);
    }
    Ok(())
}

impl Machine for Reader {
    type Event = ReadEvent;

    /// Feeds the outcome of a request (unknown ids are ignored).
    fn handle_response(&mut self, id: RequestId, response: Response, now: Duration) {
        self.now = self.now.max(now);
        self.io.set_clock(self.now);
        if self.is_done() {
            return;
        }
        let Some((request, response)) = self.io.take(id, response) else {
            return;
        };
        match request.purpose {
            Purpose::List => self.on_list(request, response),
            Purpose::Manifest { version } => self.on_manifest(version, request, response),
            Purpose::Generation => self.on_generation(request, response),
            Purpose::GenerationIndex => self.on_generation_index(request, response),
            Purpose::GenerationRange { seq } => self.on_generation_range(seq, request, response),
            Purpose::Slot { position, token } => self.on_slot(position, token, request, response),
            Purpose::Probe { position } => self.on_probe(position, request, response),
            Purpose::Intents => self.on_intents(request, response),
            Purpose::ProbeManifests => self.on_probe_manifests(request, response),
            Purpose::SearchIntents => self.on_search_intents(request, response),
            Purpose::SearchIntent { position, epoch } => {
                self.on_search_intent(position, epoch, request, response)
            }
            Purpose::SearchProbe { position } => self.on_search_probe(position, request, response),
            Purpose::SearchManifests => self.on_search_manifests(request, response),
            Purpose::AsOfList { version } => self.on_as_of_list(version, request, response),
        }
    }

    /// Time has passed: retries and polls.
    fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        self.io.set_clock(self.now);
        if self.is_done() {
            return;
        }
        self.io.fire_due(self.now);
        if self.poll_at.is_some_and(|t| t <= self.now) {
            self.poll_at = None;
            self.list_manifests();
        }
    }

    fn poll_output(&mut self) -> Output<ReadEvent> {
        if let Some(request) = self.io.poll_request() {
            Output::Request(request)
        } else if let Some(event) = self.events.pop_front() {
            Output::Event(event)
        } else if self.is_done() {
            Output::Done
        } else {
            let wake = earliest(self.poll_at, self.io.next_deadline());
            let waiting_for_release = self.flow.waiting_for_release(self.holding());
            if wake.is_none() && self.io.in_flight() == 0 && !waiting_for_release {
                // Nothing out, nothing due and nothing the host could release: no input
                // could ever move it again. Say so rather than leave a host waiting forever.
                // (Waiting for a release is `Wait(None)`: the host holds the records.)
                self.fail(FatalError::Stalled);
                return self.poll_output();
            }
            Output::Wait(wake)
        }
    }
}
