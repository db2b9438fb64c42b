//! The writer machine: open (claim, fence, replay), appends with group commit and pipelined
//! puts, memtable flushes to generations, GC and close. See PROTOCOL.md §4.
//!
//! # Driving it
//!
//! Through the [`Machine`] contract: after any input or command, drain
//! [`Machine::poll_output`] until it says `Wait` or `Done`:
//!
//! ```
//! use core::time::Duration;
//! use tidewal_core::{Machine, Output, Writer, WriterConfig, RawCodec, Request, Response};
//! # fn execute(_r: &Request) -> Response { unimplemented!() }
//! let now = Duration::ZERO;
//! let mut w = Writer::new(WriterConfig::default(), Box::new(RawCodec::new("s")), 42, now).unwrap();
//! let mut outbox: Vec<Request> = Vec::new();
//! let wake_at = loop {
//!     match w.poll_output() {
//!         Output::Request(req) => outbox.push(req), // run it, answer with handle_response
//!         Output::Event(ev) => { let _ = ev; }      // hand it on
//!         Output::Wait(at) => break at,             // call handle_timeout then
//!         _ => break None,                          // Done: the writer stopped
//!     }
//! };
//! # let _ = (outbox, wake_at);
//! ```

mod append;
mod commit;
mod compact;
mod drop;
mod flush;
mod gc;
mod lease;
mod open;
mod put;
mod restore;
mod retain;
mod window;

pub use window::WindowEstimates;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::codec::{Codec, PositionedRecords, Record};
use crate::config::WriterConfig;
use crate::error::{AppendError, CommandError, ConfigError, FatalError};
use crate::io::{Body, Op, RequestId, Response, StoreError};
use crate::machine::{earliest, Machine, Output};
use crate::manifest::Manifest;
use crate::paths::Paths;
use crate::requests::{IoCounters, Pending, Requests};
use crate::walk::Walk;

pub use append::AppendId;
pub use drop::Dropped;
pub use gc::Collected;
pub use lease::{collect_after, RHO_DEN, RHO_NUM};
use put::PutTarget;
pub use restore::{RestoreError, RestoreTarget, Restored};
pub use retain::DropRefusal;

/// How many replayed bytes there are between two [`Event::Replaying`].
pub const REPLAY_PROGRESS_STEP: u64 = 4 << 20;

/// What a writer reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Open is replaying what older writers left: told every [`REPLAY_PROGRESS_STEP`] bytes
    /// of replayed records (so a host can show progress of a long replay; a short one says
    /// nothing).
    Replaying {
        /// WAL entries replayed so far.
        entries: u64,
        /// Bytes of their records.
        bytes: u64,
    },
    /// Open finished: this writer owns the log.
    Ready {
        /// The claimed epoch.
        epoch: u64,
        /// Position of this writer's fence.
        fence_position: u64,
        /// Position of this writer's first entry.
        first_position: u64,
        /// WAL entries replayed into the memtable.
        replayed_entries: u64,
        /// Records in them.
        replayed_records: u64,
    },
    /// Every append up to and including `last_append` is durable.
    Durable {
        /// The newest durable append.
        last_append: AppendId,
        /// The WAL position that made it durable.
        position: u64,
    },
    /// A generation was committed; the cursor moved.
    Flushed {
        /// Generation id.
        generation: u64,
        /// New replay cursor.
        replay_cursor: u64,
    },
    /// A WAL-only truncate was committed.
    Truncated {
        /// New replay cursor.
        replay_cursor: u64,
    },
    /// A compaction was committed: `replaced` adjacent generations are now one (PROTOCOL.md
    /// §4 "Compaction").
    Compacted {
        /// The merged generation's id (the first replaced one's).
        generation: u64,
        /// Generations it replaced.
        replaced: u64,
        /// Its size.
        bytes: u64,
    },
    /// A drop asked for with [`Writer::drop_before`] was committed (or found nothing to do).
    Dropped(Dropped),
    /// A [`Writer::drop_before`] or [`Writer::truncate`] asked for without `force` dropped
    /// nothing: a named consumer holds it back, or the consumers could not be listed.
    DropRefused(DropRefusal),
    /// The retention policy dropped generations on its own (PROTOCOL.md §4 "Automatic
    /// retention"); never the answer to a [`Writer::drop_before`].
    Retained(Dropped),
    /// A restore asked for with [`Writer::restore`] was committed, or refused once it had
    /// read what it needed (nothing written).
    Restored(Result<Restored, RestoreError>),
    /// A full pass asked for with [`Writer::compact`] finished.
    CompactionPass {
        /// Compactions it committed.
        runs: u64,
        /// Generations they replaced.
        replaced: u64,
        /// Generations the manifest lists now.
        generations: u64,
        /// Why it stopped early: a run it had to merge could not be read (`None`: it merged
        /// every run it found).
        error: Option<FatalError>,
    },
    /// There is room for the append last refused with [`AppendError::Backpressure`].
    Writable,
    /// A collection round asked for with [`Writer::collect_garbage`] finished: what it
    /// deleted.
    Collected(Collected),
    /// `close` finished: everything appended is durable (and flushed, with a memtable).
    Closed,
    /// The writer stopped. Every append after the last [`Event::Durable`] failed.
    Fatal(FatalError),
}

/// What a writer counts as it goes (the gauges of [`WriterStats`] are read off its state).
#[derive(Clone, Debug, Default)]
struct Counters {
    appends: u64,
    appended_bytes: u64,
    entries_written: u64,
    generations_committed: u64,
    gc_failures: u64,
    compactions: u64,
    compactions_dropped: u64,
    compactions_failed: u64,
    generations_compacted: u64,
    bytes_reclaimed: u64,
    lease_renewals: u64,
    acks_held: u64,
    collected: Collected,
    generations_dropped: u64,
    bytes_dropped: u64,
    retention_rounds: u64,
    retention_held_back: u64,
    retention_held_by: Option<crate::retention::HeldBack>,
    retention_failures: u64,
}

/// Counters and gauges of a writer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Appends accepted.
    pub appends: u64,
    /// Bytes of accepted records.
    pub appended_bytes: u64,
    /// Data entries put durably.
    pub entries_written: u64,
    /// Generations committed.
    pub generations_committed: u64,
    /// Requests issued, by kind.
    pub io: IoCounters,
    /// Requests in flight.
    pub requests_in_flight: usize,
    /// WAL puts in flight (entries issued, not yet acknowledged).
    pub entries_in_flight: usize,
    /// The in-flight window the writer chose and what it measured (PROTOCOL.md §4 "The
    /// in-flight window").
    pub window: WindowEstimates,
    /// Bytes counted against the unflushed budget.
    pub unflushed_bytes: usize,
    /// The claimed epoch (0 while opening).
    pub epoch: u64,
    /// Next WAL position to be issued.
    pub next_position: u64,
    /// Last acknowledged WAL position.
    pub durable_position: Option<u64>,
    /// The committed replay cursor.
    pub replay_cursor: u64,
    /// Deletes that kept failing (garbage left behind).
    pub gc_failures: u64,
    /// Generations the newest manifest lists.
    pub generations_live: u64,
    /// Compactions committed.
    pub compactions: u64,
    /// Compactions dropped: their run changed before their commit, or one of its
    /// generations was gone.
    pub compactions_dropped: u64,
    /// Compactions given up because their run could not be read (the store kept failing,
    /// or a generation is corrupt); the writer went on.
    pub compactions_failed: u64,
    /// Why compaction stopped for this writer: a generation it had to merge is corrupt.
    pub compaction_error: Option<FatalError>,
    /// Generations replaced by compactions.
    pub generations_compacted: u64,
    /// Bytes of retired generation files deleted.
    pub bytes_reclaimed: u64,
    /// Renewal LISTs of the writer lease sent.
    pub lease_renewals: u64,
    /// Acks that had to wait for a renewal because the lease had run out.
    pub acks_held: u64,
    /// Fences, window orphans and fence intents collected.
    pub collected: Collected,
    /// Generations dropped by retention ([`Writer::drop_before`] and the policy).
    pub generations_dropped: u64,
    /// Their bytes.
    pub bytes_dropped: u64,
    /// Rounds of the retention policy that listed the consumers (it had something to drop).
    pub retention_rounds: u64,
    /// Rounds a named consumer held back (the policy is never forced).
    pub retention_held_back: u64,
    /// The consumer that held the last such round back, at its listed position.
    pub retention_held_by: Option<crate::retention::HeldBack>,
    /// Rounds whose consumer listing failed (left to the next round).
    pub retention_failures: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Opening,
    Ready,
    Closed,
    Failed(FatalError),
}

/// What each request was for. (Its attempt is kept by the request table.)
#[derive(Clone, Debug)]
enum Purpose {
    ListManifests,
    GetManifest {
        version: u64,
    },
    /// A create-if-absent put (put.rs).
    Put {
        target: PutTarget,
    },
    /// Reading a put's target back: the put was taken or its outcome unknown.
    ReadBack {
        target: PutTarget,
        /// Why the put is being read back (reported if it never lands).
        put_error: StoreError,
    },
    PostCheck {
        version: u64,
    },
    WalkGet {
        position: u64,
        token: u64,
    },
    FenceCheck {
        position: u64,
    },
    Delete,
    /// A manifest version's delete (confirmed before a retired file may go).
    DeleteManifest {
        version: u64,
    },
    /// GC reads a listed version to learn its commit time.
    VersionTime {
        version: u64,
    },
    /// A retired generation file's delete.
    DeleteRetired {
        path: String,
    },
    /// Generation `index` of compaction `seq`'s run.
    CompactGet {
        seq: u64,
        index: usize,
    },
    /// A lease renewal: a LIST of the manifests after this writer's newest committed one.
    Renew,
    /// A request of a collection round.
    Collect {
        step: gc::GcStep,
    },
    /// Request `inner` of a retention round's consumer listing.
    Retain {
        inner: RequestId,
    },
    /// A GET of restore `seq`.
    Restore {
        seq: u64,
        read: restore::RestoreRead,
    },
}

/// The sans-I/O writer of one log.
pub struct Writer {
    cfg: WriterConfig,
    codec: Box<dyn Codec>,
    paths: Paths,
    nonce: u64,
    io: Requests<Purpose>,
    events: VecDeque<Event>,
    phase: Phase,
    now: Duration,
    epoch: u64,
    window: u32,
    /// The newest manifest this writer read or committed.
    manifest: Option<Manifest>,
    /// Manifest versions known to exist (listed at open, or committed), with their commit
    /// time where known: what GC may delete (`retention.rs`).
    manifest_versions: BTreeMap<u64, Option<u64>>,
    /// Manifest versions whose delete is sent but not confirmed: they may still be read.
    manifest_deleting: BTreeSet<u64>,
    /// Listed versions never read: GC may read one to learn its time (`retention.rs`).
    manifest_unread: BTreeSet<u64>,
    /// The version whose time GC is reading, if one.
    manifest_time_read: Option<u64>,
    open_attempts: u32,
    walk: Option<Walk>,
    /// The slot where this writer's fence is being put, and the fence's bytes (the walk
    /// waits on it).
    fence_at: Option<(u64, Body)>,
    /// The intent of that fence while its put is out (PROTOCOL.md §4 "Open").
    intent_at: Option<(u64, Body)>,
    /// Replayed so far: entries, records, bytes of records.
    replayed: (u64, u64, u64),
    /// The newest entry time this writer saw (replayed, or its own last): it never stamps
    /// below it, so times never decrease along the log.
    last_time: u64,
    /// Fences walked or written: (position, epoch).
    fences: Vec<(u64, u64)>,
    commit: Option<commit::Commit>,
    compaction: Option<compact::Compaction>,
    compaction_seq: u64,
    /// A run's generation was gone at this manifest version: no compaction until a newer one.
    compaction_paused_at: Option<u64>,
    /// A generation a compaction had to merge is corrupt: no more compactions while the
    /// manifest names it.
    compaction_error: Option<(String, FatalError)>,
    /// The first failure of the full pass in progress, if any.
    pass_error: Option<FatalError>,
    full_pass: Option<compact::FullPass>,
    /// Retired generation files this writer knows of (PROTOCOL.md §4 "Compaction").
    retiring: Vec<compact::Retiring>,
    pipeline: append::Pipeline,
    /// How many entry puts may be in flight (`window.rs`).
    flight: window::Window,
    memtable: flush::Memtable,
    /// Durable data positions not yet below the cursor (what GC may delete later).
    live_positions: VecDeque<u64>,
    /// What the drop in the commit slot removes (`drop.rs`).
    drop_in_slot: Option<Dropped>,
    closing: bool,
    /// Bytes of the last append refused for backpressure, until there is room for them.
    blocked: Option<usize>,
    counters: Counters,
    lease: lease::Lease,
    /// The `now` at which this writer's claim's post-check answered (its claim's age runs
    /// from there).
    claimed_at: Option<Duration>,
    /// Each cursor this writer committed (its claim's first) and the `now` at which that
    /// commit's post-check answered: a fence is collected only once the cursor passed its
    /// window long enough ago for every reader's manifest (PROTOCOL.md §5).
    cursor_times: VecDeque<(u64, Duration)>,
    gc: gc::Gc,
    retain: retain::Retain,
    /// The restore asked for and not answered yet (`restore.rs`).
    restore: Option<restore::Restore>,
    restore_seq: u64,
    /// Merged files this writer named (a restore may bring back a run's first and last ids).
    merged_paths: BTreeSet<String>,
}

impl Writer {
    /// Creates a writer and starts opening the log. `seed` must differ between writers (it
    /// makes the nonce and the retry jitter); `now` is the host's clock.
    pub fn new(
        cfg: WriterConfig,
        codec: Box<dyn Codec>,
        seed: u64,
        now: Duration,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut io = Requests::new(seed, cfg.retry.clone());
        let nonce = io.random();
        let flight = window::Window::new(cfg.max_in_flight, cfg.adaptive_window);
        let mut w = Writer {
            paths: Paths::new(&cfg.prefix),
            window: cfg.fence_window,
            cfg,
            codec,
            nonce,
            io,
            events: VecDeque::new(),
            phase: Phase::Opening,
            now,
            epoch: 0,
            manifest: None,
            manifest_versions: BTreeMap::new(),
            manifest_deleting: BTreeSet::new(),
            manifest_unread: BTreeSet::new(),
            manifest_time_read: None,
            open_attempts: 0,
            walk: None,
            fence_at: None,
            intent_at: None,
            replayed: (0, 0, 0),
            last_time: 0,
            fences: Vec::new(),
            commit: None,
            compaction: None,
            compaction_seq: 0,
            compaction_paused_at: None,
            compaction_error: None,
            pass_error: None,
            full_pass: None,
            retiring: Vec::new(),
            pipeline: append::Pipeline::default(),
            flight,
            memtable: flush::Memtable::default(),
            live_positions: VecDeque::new(),
            drop_in_slot: None,
            closing: false,
            blocked: None,
            counters: Counters::default(),
            lease: lease::Lease::default(),
            claimed_at: None,
            cursor_times: VecDeque::new(),
            gc: gc::Gc::default(),
            retain: retain::Retain::default(),
            restore: None,
            restore_seq: 0,
            merged_paths: BTreeSet::new(),
        };
        w.io.set_clock(now);
        w.start_open();
        Ok(w)
    }

    // ---- outputs (the `Machine` impl below composes them) ---------------------------------

    pub(crate) fn next_request(&mut self) -> Option<crate::io::Request> {
        self.io.poll_request()
    }

    pub(crate) fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` has something to do next.
    pub(crate) fn deadline(&self) -> Option<Duration> {
        // Only a batch that can go out when due needs a timer: with the window full, the
        // next answer frees a slot (and a due deadline must not make a host spin).
        let group = self
            .pipeline
            .deadline()
            .filter(|_| self.phase == Phase::Ready)
            .filter(|_| self.pipeline.in_flight() < self.flight.window() as usize);
        let lease = earliest(self.renew_deadline(), self.gc_deadline());
        let lease = earliest(lease, self.retain_deadline());
        earliest(
            earliest(earliest(group, self.io.next_deadline()), lease),
            self.retire_deadline(),
        )
    }

    /// Closed or failed: no command can make it send anything again.
    pub(crate) fn is_finished(&self) -> bool {
        !self.is_live()
    }

    // ---- getters -------------------------------------------------------------------------

    /// The claimed epoch (0 while opening).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The newest manifest this writer read or committed.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Entries not yet in a committed generation (frozen ones first), in position order.
    pub fn memtable(&self) -> impl Iterator<Item = &PositionedRecords> {
        self.memtable.iter()
    }

    /// Counters and gauges.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            appends: c.appends,
            appended_bytes: c.appended_bytes,
            entries_written: c.entries_written,
            generations_committed: c.generations_committed,
            gc_failures: c.gc_failures,
            lease_renewals: c.lease_renewals,
            acks_held: c.acks_held,
            collected: c.collected,
            io: self.io.counters,
            requests_in_flight: self.io.in_flight(),
            entries_in_flight: self.pipeline.in_flight(),
            window: self.flight.estimates(),
            unflushed_bytes: self.unflushed(),
            epoch: self.epoch,
            next_position: self.pipeline.next_position,
            durable_position: self.pipeline.durable_position,
            replay_cursor: self.manifest.as_ref().map_or(0, |m| m.replay_cursor),
            generations_live: self
                .manifest
                .as_ref()
                .map_or(0, |m| m.generations.len() as u64),
            compactions: c.compactions,
            compactions_dropped: c.compactions_dropped,
            compactions_failed: c.compactions_failed,
            compaction_error: self.compaction_error.as_ref().map(|(_, e)| e.clone()),
            generations_compacted: c.generations_compacted,
            bytes_reclaimed: c.bytes_reclaimed,
            generations_dropped: c.generations_dropped,
            bytes_dropped: c.bytes_dropped,
            retention_rounds: c.retention_rounds,
            retention_held_back: c.retention_held_back,
            retention_held_by: c.retention_held_by.clone(),
            retention_failures: c.retention_failures,
        }
    }

    // ---- shared helpers ------------------------------------------------------------------

    /// The host's clock moved to `now` (never back).
    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
        self.io.set_clock(self.now);
    }

    fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Opening | Phase::Ready)
    }

    fn fail(&mut self, error: FatalError) {
        if !self.is_live() {
            return;
        }
        self.phase = Phase::Failed(error.clone());
        self.io.shut();
        self.walk = None;
        self.events.push_back(Event::Fatal(error));
    }

    fn fenced(&mut self) {
        self.fail(FatalError::Fenced { epoch: self.epoch });
    }

    fn store_fatal(path: String, e: &StoreError) -> FatalError {
        FatalError::Store {
            path,
            message: e.message.clone(),
        }
    }

    fn path_of(op: &Op) -> String {
        match op {
            Op::Put { path, .. }
            | Op::Get { path, .. }
            | Op::GetRange { path, .. }
            | Op::Delete { path } => path.clone(),
            Op::List { prefix, .. } => prefix.clone(),
        }
    }

    /// Re-sends a request after a backoff, or fails with `last` once its retry budget is
    /// spent.
    fn retry(&mut self, request: Pending<Purpose>, last: &StoreError) {
        if let Err(request) = self.io.retry(self.now, request) {
            self.fail(Self::store_fatal(Self::path_of(&request.op), last));
        }
    }

    fn get(&mut self, path: String, purpose: Purpose) -> RequestId {
        self.io.send(Op::Get { path }, purpose)
    }

    fn dispatch(&mut self, request: Pending<Purpose>, response: Response) {
        match &request.purpose {
            Purpose::ListManifests => self.on_list_manifests(request, response),
            Purpose::GetManifest { version } => self.on_get_manifest(*version, request, response),
            Purpose::Put { target } => self.on_put(*target, request, response),
            Purpose::ReadBack { target, put_error } => {
                let (target, put_error) = (*target, put_error.clone());
                self.on_read_back(target, put_error, request, response)
            }
            Purpose::PostCheck { version } => self.on_post_check(*version, request, response),
            Purpose::WalkGet { position, token } => {
                self.on_walk_get(*position, *token, request, response)
            }
            Purpose::FenceCheck { position } => self.on_fence_check(*position, request, response),
            Purpose::Delete => self.on_delete(request, response),
            Purpose::DeleteManifest { version } => {
                let version = *version;
                self.on_delete_manifest(version, request, response)
            }
            Purpose::VersionTime { version } => {
                let version = *version;
                self.on_version_time(version, request, response)
            }
            Purpose::DeleteRetired { path } => {
                let path = path.clone();
                self.on_delete_retired(&path, request, response)
            }
            Purpose::CompactGet { seq, index } => {
                let (seq, index) = (*seq, *index);
                self.on_compact_get(seq, index, request, response)
            }
            Purpose::Renew => self.on_renew(request, response),
            Purpose::Collect { step } => {
                let step = *step;
                self.on_collect(step, request, response)
            }
            Purpose::Retain { inner } => {
                let inner = *inner;
                self.on_retain(inner, request, response)
            }
            Purpose::Restore { seq, read } => {
                let (seq, read) = (*seq, *read);
                self.on_restore_get(seq, read, request, response)
            }
        }
    }

    /// Work that any input may have unblocked.
    fn after_input(&mut self) {
        if self.phase == Phase::Ready {
            self.pump();
            self.maybe_freeze();
            self.relieve_backpressure();
            self.try_commit();
            self.maybe_compact();
            self.maybe_retain();
            self.collect_retired();
            self.release_acks();
            self.maybe_renew();
            self.maybe_collect();
            self.check_writable();
            self.check_closed();
        }
    }

    fn unflushed(&self) -> usize {
        self.pipeline.unflushed() + self.memtable.bytes()
    }

    /// Says `Writable` once the refused append would be accepted (the rule in `append_group`):
    /// a retry on `Writable` must not be refused again, or a host retrying at once would spin.
    fn check_writable(&mut self) {
        let Some(size) = self.blocked else { return };
        let unflushed = self.unflushed();
        if unflushed == 0 || unflushed + size <= self.cfg.unflushed_budget {
            self.blocked = None;
            self.events.push_back(Event::Writable);
        }
    }

    /// Accepts a record: see [`AppendError`] for refusals.
    pub fn append(&mut self, record: Record, now: Duration) -> Result<AppendId, AppendError> {
        self.append_group(alloc::vec![record], now)
    }

    /// Accepts several records as one append: they go into the same entry, in order, so a
    /// reader sees all of them or none. Refused as a whole like [`Writer::append`] (sizes
    /// add up; an empty group or any empty or zero-row record is refused).
    pub fn append_group(
        &mut self,
        records: Vec<Record>,
        now: Duration,
    ) -> Result<AppendId, AppendError> {
        self.advance(now);
        match &self.phase {
            Phase::Failed(e) => return Err(AppendError::Failed(e.clone())),
            Phase::Closed => return Err(AppendError::Closed),
            _ if self.closing => return Err(AppendError::Closed),
            _ => {}
        }
        if records.is_empty() || records.iter().any(|r| r.payload.is_empty()) {
            return Err(AppendError::Empty);
        }
        if records.iter().any(|r| r.rows == 0) {
            return Err(AppendError::ZeroRows);
        }
        let size: usize = records.iter().map(|r| r.payload.len()).sum();
        if size > self.cfg.max_entry_bytes {
            return Err(AppendError::TooLarge {
                bytes: size,
                limit: self.cfg.max_entry_bytes,
            });
        }
        let unflushed = self.unflushed();
        if unflushed > 0 && unflushed + size > self.cfg.unflushed_budget {
            self.blocked = Some(size);
            self.after_input();
            return Err(AppendError::Backpressure {
                unflushed,
                budget: self.cfg.unflushed_budget,
            });
        }
        self.counters.appends += 1;
        self.counters.appended_bytes += size as u64;
        let id = self
            .pipeline
            .push(records, self.now, &self.cfg.group_commit);
        self.after_input();
        Ok(id)
    }

    /// Seals pending records into an entry now. Returns the last append so far, whose
    /// [`Event::Durable`] means everything before the call is durable.
    pub fn flush(&mut self, now: Duration) -> Result<Option<AppendId>, CommandError> {
        self.advance(now);
        self.command_allowed()?;
        self.pipeline.seal();
        self.after_input();
        Ok(self.pipeline.last_append())
    }

    /// Freezes the memtable into a generation now. Returns its id, or `None` if empty.
    pub fn flush_memtable(&mut self, now: Duration) -> Result<Option<u64>, CommandError> {
        self.advance(now);
        self.command_allowed()?;
        if self.cfg.wal_only {
            return Err(CommandError::WrongMode);
        }
        if self.phase != Phase::Ready {
            return Err(CommandError::NotReady);
        }
        let id = self.freeze();
        self.after_input();
        Ok(id)
    }

    /// Drains: seals pending records, waits for every entry to be durable and (with a
    /// memtable) flushes it, then emits [`Event::Closed`]. Later appends fail with `Closed`.
    pub fn close(&mut self, now: Duration) -> Result<(), CommandError> {
        self.advance(now);
        self.command_allowed()?;
        self.closing = true;
        self.pipeline.seal();
        self.after_input();
        Ok(())
    }

    fn command_allowed(&self) -> Result<(), CommandError> {
        match &self.phase {
            Phase::Failed(e) => Err(CommandError::Failed(e.clone())),
            Phase::Closed => Err(CommandError::Closed),
            _ if self.closing => Err(CommandError::Closed),
            _ => Ok(()),
        }
    }

    fn check_closed(&mut self) {
        if !self.closing || self.pipeline.has_work() || self.lease.holds_acks() {
            return;
        }
        if !self.cfg.wal_only {
            if self.memtable.active_len() > 0 {
                self.freeze();
            }
            // A compaction the flushes started is finished too (it is bounded by its target).
            if self.memtable.has_frozen()
                || self.commit.is_some()
                || self.compacting()
                || self.restoring()
                || self.dropping_in_progress()
            {
                return;
            }
        } else if self.commit.is_some() || self.dropping_in_progress() {
            return;
        }
        // Collection too: a host may stop driving the machine once it is closed.
        if self.io.in_flight() > 0 || self.io.next_deadline().is_some() {
            return;
        }
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed);
    }
}

impl Machine for Writer {
    type Event = Event;

    /// Feeds the outcome of a request. Unknown or already answered ids are ignored; a response
    /// of the wrong kind counts as a failed request of that id.
    fn handle_response(&mut self, id: RequestId, response: Response, now: Duration) {
        self.advance(now);
        if !self.is_live() {
            return;
        }
        let Some((request, response)) = self.io.take(id, response) else {
            return;
        };
        self.dispatch(request, response);
        self.after_input();
    }

    /// Time has passed; fires due timers.
    fn handle_timeout(&mut self, now: Duration) {
        self.advance(now);
        if !self.is_live() {
            return;
        }
        self.io.fire_due(self.now);
        // A due open batch goes out in `pump`.
        self.after_input();
    }

    fn poll_output(&mut self) -> Output<Event> {
        if let Some(request) = self.next_request() {
            Output::Request(request)
        } else if let Some(event) = self.next_event() {
            Output::Event(event)
        } else if self.is_finished() {
            Output::Done
        } else {
            Output::Wait(self.deadline())
        }
    }
}
