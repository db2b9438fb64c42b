//! The simulated world's event loop: virtual time, the queue of network hops, timers and
//! workload steps, the drain of every machine after each input, and the finale.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use tidewal_core::{
    FatalError, GroupCommit, Machine as _, Op, Output, RawCodec, Request, RequestId, Response,
    RetryPolicy, Session, Start, WriterConfig,
};

use crate::actors::{Client, Machine, Out};
use crate::model::Model;
use crate::net::{is_ok, op_name, Faults, Net};
use crate::replies::Log;
use crate::rng::Rng;

pub(crate) const SCHEMA: &str = "sim-schema";
/// Unix ms at the sim clock's zero: writers' wall clocks are this plus the sim clock plus a
/// skew of their own.
pub(crate) const WALL_CLOCK_BASE: u64 = 1_700_000_000_000;
const WORK_TIME: Duration = Duration::from_secs(3);
const FINAL_DEADLINE: Duration = Duration::from_secs(120);
/// Timer wakes of one client at one instant past which it spins.
const SPIN_LIMIT: u32 = 1000;

/// What one seed did.
pub struct Outcome {
    /// Events processed.
    pub steps: u64,
    /// Appends acknowledged.
    pub acked: u64,
    /// Session replies answered.
    pub replies: u64,
    /// Appends that timed out under backpressure.
    pub timed_out: u64,
    /// Ranged gets that reached the store.
    pub range_gets: u64,
    /// Readers' starts past the cursor that took the shortcut, and that fell back.
    pub shortcut_starts: u64,
    pub shortcut_fallbacks: u64,
    /// Readers' starts at a time past the generations that searched the WAL, and that fell
    /// back to the walk from the cursor.
    pub time_searches: u64,
    pub time_fallbacks: u64,
    /// Readers as of a version that read it, that found it collected (the typed error), and
    /// readers until a time that stopped there.
    pub as_of_reads: u64,
    pub as_of_collected: u64,
    pub until_time_stops: u64,
    /// Hash of the trace (the same seed must give the same hash).
    pub trace_hash: u64,
    /// The first broken invariant, if any.
    pub violation: Option<String>,
    /// The trace lines, when asked for.
    pub trace: Vec<String>,
    /// Consumer commits acknowledged, instances fenced, claims that resumed past 0.
    pub consumer_commits: u64,
    pub consumers_fenced: u64,
    pub consumer_resumes: u64,
    /// Compactions that landed, and readers' GETs that met a generation gone (each re-read
    /// the manifest).
    pub compactions: u64,
    pub generations_gone: u64,
    /// Fences and fence intents collected (deleted at the store), writer pauses, and acks
    /// writers held until a renewal because their lease had run out.
    pub fences_collected: u64,
    pub intents_collected: u64,
    pub pauses: u64,
    pub acks_held: u64,
    /// Retention: drops (and truncates) asked for, held back by a consumer, forced, and
    /// committed (`retention.rs`).
    pub drops_asked: u64,
    pub drops_held_back: u64,
    pub drops_refused_by_writer: u64,
    pub grace_checked: u64,
    pub drops_forced: u64,
    pub drops_committed: u64,
    /// Automatic retention: drops the policy committed.
    pub auto_drops: u64,
    /// Restores asked for, committed, refused (`restore.rs`).
    pub restores_asked: u64,
    pub restores_committed: u64,
    pub restores_refused: u64,
    /// Committed restores to a position, a time, a version.
    pub restore_kinds: [u64; 3],
}

pub(crate) enum Ev {
    Arrive {
        client: usize,
        id: RequestId,
        op: Op,
    },
    Deliver {
        client: usize,
        id: RequestId,
        resp: Response,
    },
    Timer {
        client: usize,
    },
    Act {
        client: usize,
    },
    /// A reader's host releases some of the bytes it holds.
    Release {
        client: usize,
    },
    Spawn,
    /// A consumer of a name never claimed before, just after a drop was asked for: the one a
    /// drop's listing may miss (PROTOCOL.md §4 "Retention").
    SpawnFresh,
}

pub(crate) struct World {
    pub(crate) rng: Rng,
    /// The restorers' draws (`restore.rs`), apart: a seed without a restorer runs as it did
    /// before restores existed.
    pub(crate) restore_rng: Rng,
    pub(crate) now: Duration,
    queue: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
    pub(crate) net: Net,
    pub(crate) clients: Vec<Client>,
    pub(crate) model: Model,
    pub(crate) consumers: crate::consumers::Consumers,
    pub(crate) codec: RawCodec,
    pub(crate) wcfg: WriterConfig,
    /// Whether the workload calls `flush_memtable` (else only thresholds and backpressure do).
    pub(crate) manual_flushes: bool,
    /// How long a session lets an append wait for room.
    pub(crate) backpressure_timeout: Duration,
    /// The share of workload writers driven as a bare `Writer`: the only ones that truncate
    /// (`Session` has no truncate) and whose replay can be read off the machine at open.
    pub(crate) bare_writers: f64,
    /// Where every session reply records its answer.
    pub(crate) log: Log,
    pub(crate) next_payload: u64,
    steps: u64,
    /// Ranged gets that reached the store (readers starting inside generations).
    range_gets: u64,
    /// Readers' starts past the cursor: taken as a shortcut, fallen back to the walk.
    pub(crate) shortcut_starts: u64,
    pub(crate) shortcut_fallbacks: u64,
    /// Readers' starts at a time: searched, fallen back.
    pub(crate) time_searches: u64,
    pub(crate) time_fallbacks: u64,
    pub(crate) history_counts: crate::history::Counts,
    pub(crate) generations_gone: u64,
    /// Writer pauses and stalled requests (clocks.rs).
    pub(crate) pauses: u64,
    pub(crate) stalls: u64,
    hash: u64,
    trace: Option<Vec<String>>,
    line: String,
}

/// Runs one seed.
pub fn run(seed: u64, trace: bool) -> Outcome {
    let mut w = World::new(seed, trace);
    let violation = w.main().err();
    let sessions = w.clients.iter().map(|c| &c.ledger);
    let (replies, timed_out) = sessions.fold((0, 0), |(r, t), l| (r + l.answered, t + l.timed_out));
    Outcome {
        steps: w.steps,
        acked: w.model.acked.len() as u64,
        replies,
        timed_out,
        range_gets: w.range_gets,
        shortcut_starts: w.shortcut_starts,
        shortcut_fallbacks: w.shortcut_fallbacks,
        time_searches: w.time_searches,
        time_fallbacks: w.time_fallbacks,
        as_of_reads: w.history_counts.as_of_reads,
        as_of_collected: w.history_counts.as_of_collected,
        until_time_stops: w.history_counts.until_time_stops,
        trace_hash: w.hash,
        violation,
        trace: w.trace.unwrap_or_default(),
        consumer_commits: w.consumers.commits,
        consumers_fenced: w.consumers.fenced,
        consumer_resumes: w.consumers.resumes,
        compactions: w.model.compactions.committed,
        generations_gone: w.generations_gone,
        fences_collected: w.model.fences_collected,
        intents_collected: w.model.intents_collected,
        pauses: w.pauses,
        acks_held: w.clients.iter().map(|c| c.acks_held).sum(),
        drops_asked: w.model.retention.asked,
        drops_held_back: w.model.retention.held_back,
        drops_refused_by_writer: w.model.retention.refused_by_writer,
        grace_checked: w.model.compactions.grace_checked,
        drops_forced: w.model.retention.forced,
        drops_committed: w.model.retention.committed,
        auto_drops: w.model.retention.auto,
        restores_asked: w.model.restores.asked,
        restores_committed: w.model.restores.committed,
        restores_refused: w.model.restores.refused,
        restore_kinds: w.model.restores.kinds,
    }
}

fn writer_config(rng: &mut Rng) -> WriterConfig {
    let fence_window = rng.range(1, 8) as u32;
    WriterConfig {
        prefix: "log".into(),
        wal_only: rng.chance(0.2),
        fence_window,
        max_in_flight: rng.range(1, u64::from(fence_window)) as u32,
        adaptive_window: rng.chance(0.7),
        group_commit: GroupCommit {
            max_bytes: rng.range(64, 2048) as usize,
            max_records: rng.range(1, 16) as usize,
            interval: Duration::from_millis(rng.range(0, 10)),
        },
        max_entry_bytes: 4096,
        memtable_bytes: rng.range(256, 8192) as usize,
        // Sometimes below the memtable threshold: only a flush on backpressure makes room.
        unflushed_budget: if rng.chance(0.2) {
            rng.range(512, 4096)
        } else {
            rng.range(8192, 65536)
        } as usize,
        read_ahead: rng.range(1, 8) as u32,
        // Few versions, kept briefly: GC collects versions while readers as of them run.
        keep_manifests: rng.range(1, 3) as u32,
        keep_manifests_for: Duration::from_millis(rng.range(700, 1500)),
        open_attempts: 50,
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            max: Duration::from_millis(200),
            attempts: 40,
        },
        unix_ms_at_origin: None,
        compaction: crate::compaction::config(rng),
        // Short, so that leases run out and collectors run within a seed.
        lease: Duration::from_millis(rng.range(100, 300)),
        gc_margin: Duration::from_millis(20),
        // Bare writers draw their own (`retention.rs`).
        retention: None,
    }
}

/// A seed's backpressure timeout: often short enough that blocked appends fail.
fn backpressure_timeout(rng: &mut Rng) -> Duration {
    match rng.range(0, 9) {
        0..=2 => Duration::from_millis(rng.range(0, 40)),
        3..=5 => Duration::from_millis(rng.range(40, 1000)),
        _ => Session::DEFAULT_BACKPRESSURE_TIMEOUT,
    }
}

impl World {
    fn new(seed: u64, trace: bool) -> Self {
        let mut rng = Rng::new(seed);
        let faults = Faults::draw(&mut rng);
        let wcfg = writer_config(&mut rng);
        let manual_flushes = rng.chance(0.5);
        let backpressure_timeout = backpressure_timeout(&mut rng);
        World {
            manual_flushes,
            backpressure_timeout,
            bare_writers: if wcfg.wal_only { 0.3 } else { 0.15 },
            rng,
            restore_rng: Rng::new(seed ^ 0x7265_7374_6f72_6521),
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            net: Net::new(faults),
            clients: Vec::new(),
            model: Model::default(),
            consumers: Default::default(),
            codec: RawCodec::new(SCHEMA),
            wcfg,
            log: Log::default(),
            next_payload: 0,
            steps: 0,
            range_gets: 0,
            shortcut_starts: 0,
            shortcut_fallbacks: 0,
            time_searches: 0,
            time_fallbacks: 0,
            history_counts: Default::default(),
            generations_gone: 0,
            pauses: 0,
            stalls: 0,
            hash: 0xcbf2_9ce4_8422_2325,
            trace: trace.then(Vec::new),
            line: String::new(),
        }
    }

    /// Records a trace line (hashed always, kept when tracing).
    pub(crate) fn note(&mut self, args: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{:>9.3}ms ", self.now.as_secs_f64() * 1e3);
        let _ = self.line.write_fmt(args);
        for b in self.line.bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if let Some(t) = &mut self.trace {
            t.push(self.line.clone());
        }
    }

    pub(crate) fn schedule(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn latency(&mut self, client: usize) -> Duration {
        let slowness = self.clients[client].slowness;
        self.net.latency(&mut self.rng, slowness)
    }

    fn main(&mut self) -> Result<(), String> {
        self.schedule(Duration::ZERO, Ev::Spawn);
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            if at > WORK_TIME {
                self.queue.insert((at, 0), ev);
                break;
            }
            self.now = at;
            self.steps += 1;
            self.step(ev)?;
        }
        self.finale()
    }

    fn step(&mut self, ev: Ev) -> Result<(), String> {
        let now = self.now;
        self.model.now = now;
        match ev {
            Ev::Arrive { client, id, op } => {
                self.check_manifest_delete(client, &op)?;
                if matches!(op, Op::GetRange { .. }) {
                    self.range_gets += 1;
                }
                let (resp, note) =
                    self.net
                        .arrive(&mut self.rng, &mut self.model, &self.codec, op)?;
                self.note(format_args!("c{client} #{} {note}", id.0));
                let at = self.now + self.latency(client);
                self.schedule(at, Ev::Deliver { client, id, resp });
                Ok(())
            }
            Ev::Deliver { client, id, resp } => {
                if let Some(until) = self.paused(client) {
                    self.schedule(until, Ev::Deliver { client, id, resp });
                    return Ok(());
                }
                let now = self.local_now(client);
                self.note(format_args!("c{client} <- #{} ok={}", id.0, is_ok(&resp)));
                self.data_get_answered(client, id, &resp);
                match &mut self.clients[client].machine {
                    Some(Machine::Session(s)) => s.handle_response(id, resp, now),
                    Some(Machine::Writer(w)) => w.handle_response(id, resp, now),
                    Some(Machine::Reader(r)) => r.handle_response(id, resp, now),
                    Some(Machine::Consumer(c)) => c.handle_response(id, resp, now),
                    None => return Ok(()),
                }
                self.count_start(client);
                self.count_gone(client);
                self.drain(client)
            }
            Ev::Timer { client } => {
                if self.clients[client].timer_at != Some(now) {
                    return Ok(());
                }
                if let Some(until) = self.paused(client) {
                    self.clients[client].timer_at = Some(until);
                    self.schedule(until, Ev::Timer { client });
                    return Ok(());
                }
                let c = &mut self.clients[client];
                c.timer_at = None;
                // A deadline that stays due would make a host spin.
                c.wakes = if c.wakes.0 == now {
                    (now, c.wakes.1 + 1)
                } else {
                    (now, 1)
                };
                if c.wakes.1 > SPIN_LIMIT {
                    return Err(format!(
                        "c{client} spins: woken {SPIN_LIMIT} times at {now:?}, still due"
                    ));
                }
                let now = self.local_now(client);
                match &mut self.clients[client].machine {
                    Some(Machine::Session(s)) => s.handle_timeout(now),
                    Some(Machine::Writer(w)) => w.handle_timeout(now),
                    Some(Machine::Reader(r)) => r.handle_timeout(now),
                    Some(Machine::Consumer(c)) => c.handle_timeout(now),
                    None => return Ok(()),
                }
                self.drain(client)
            }
            Ev::Act { client } => self.act(client),
            Ev::Release { client } => self.release(client),
            Ev::SpawnFresh => {
                let name = format!("fresh{}", self.clients.len());
                self.spawn_consumer(Some(&name), true).map(|_| ())
            }
            Ev::Spawn => {
                let writers = self.clients.iter().filter(|c| c.is_live_writer()).count();
                let readers = self
                    .clients
                    .iter()
                    .filter(|c| matches!(c.machine, Some(Machine::Reader(_))))
                    .count();
                // Readers come and go while the log grows, so they start in generations,
                // fence windows and the WAL tail alike.
                let consumers = self
                    .clients
                    .iter()
                    .filter(|c| matches!(&c.machine, Some(Machine::Consumer(m)) if !m.is_fenced()))
                    .count();
                if readers < 2 && self.rng.chance(0.3) {
                    self.spawn_random_reader();
                } else if writers < 3 {
                    self.spawn_writer(false)?;
                }
                // Readers as of a version or until a time, while GC collects versions.
                if self.rng.chance(0.4) {
                    self.spawn_history_reader();
                }
                // Instances of few names come and go beside them, so they overlap and fence.
                if consumers < 3 && self.rng.chance(0.6) {
                    self.spawn_consumer(None, true)?;
                }
                self.maybe_spawn_restorer()?;
                let next = self.now + Duration::from_millis(self.rng.range(100, 900));
                self.schedule(next, Ev::Spawn);
                Ok(())
            }
        }
    }

    /// Settles a client's replies, moves its requests onto the network and its events into
    /// the model, then arms its timer (the `Machine` drain rule: until it waits).
    pub(crate) fn drain(&mut self, client: usize) -> Result<(), String> {
        self.settle_replies(client)?;
        let timeout = loop {
            let out = match &mut self.clients[client].machine {
                Some(Machine::Session(s)) => match s.poll_output() {
                    Output::Request(r) => Out::Request(r),
                    Output::Event(e) => Out::Session(e),
                    Output::Wait(at) => Out::Wait(at),
                    _ => Out::Wait(None),
                },
                Some(Machine::Writer(w)) => match w.poll_output() {
                    Output::Request(r) => Out::Request(r),
                    Output::Event(e) => Out::Writer(e),
                    Output::Wait(at) => Out::Wait(at),
                    _ => Out::Wait(None),
                },
                Some(Machine::Reader(r)) => match r.poll_output() {
                    Output::Request(r) => Out::Request(r),
                    Output::Event(e) => Out::Reader(e),
                    Output::Wait(at) => Out::Wait(at),
                    _ => Out::Wait(None),
                },
                Some(Machine::Consumer(c)) => match c.poll_output() {
                    Output::Request(r) => Out::Request(r),
                    Output::Event(e) => Out::Consumer(e),
                    Output::Wait(at) => Out::Wait(at),
                    _ => Out::Wait(None),
                },
                None => Out::Wait(None),
            };
            match out {
                Out::Request(Request { id, op, .. }) => {
                    self.note(format_args!("c{client} -> #{} {}", id.0, op_name(&op)));
                    if let Op::Delete { path } = &op {
                        self.check_grace(client, path)?;
                    }
                    self.data_get_sent(client, id, &op)?;
                    let at = self.now + self.latency(client) + self.stall(client);
                    self.schedule(at, Ev::Arrive { client, id, op });
                }
                Out::Session(e) => self.session_event(client, e)?,
                Out::Writer(e) => self.writer_event(client, e)?,
                Out::Reader(e) => self.reader_event(client, e)?,
                Out::Consumer(e) => self.consumer_event(client, e)?,
                Out::Wait(at) => break at,
            }
        };
        self.clients[client]
            .ledger
            .told()
            .map_err(|e| format!("c{client}: {e}"))?;
        self.note_lease_stats(client);
        self.check_window(client)?;
        if let Some(t) = timeout {
            // The machine's deadline is on its own clock.
            let t = self.clients[client].clock.sim_at(t).max(self.now);
            if self.clients[client].timer_at != Some(t) {
                self.clients[client].timer_at = Some(t);
                self.schedule(t, Ev::Timer { client });
            }
        }
        Ok(())
    }

    pub(crate) fn epochs(&self) -> Vec<u64> {
        self.clients.iter().map(|c| c.epoch).collect()
    }

    /// Runs until `done` holds or the deadline passes (no more workload).
    pub(crate) fn run_until(
        &mut self,
        deadline: Duration,
        done: impl Fn(&World) -> bool,
    ) -> Result<bool, String> {
        while !done(self) {
            let Some(((at, _), ev)) = self.queue.pop_first() else {
                return Ok(done(self));
            };
            if at > deadline {
                return Ok(false);
            }
            if matches!(ev, Ev::Spawn | Ev::Act { .. }) {
                continue;
            }
            self.now = self.now.max(at);
            self.steps += 1;
            self.step(ev)?;
        }
        Ok(true)
    }

    /// Every live machine that still owes something has a request in flight or a timer: none
    /// waits for an answer that will never come.
    fn check_liveness(&self) -> Result<(), String> {
        let mut busy = BTreeSet::new();
        for ev in self.queue.values() {
            if let Ev::Arrive { client, .. } | Ev::Deliver { client, .. } | Ev::Release { client } =
                ev
            {
                busy.insert(*client);
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.owes() && !busy.contains(&i) && c.timer_at.is_none() {
                return Err(format!("c{i} is stuck: nothing in flight and no timer"));
            }
        }
        Ok(())
    }

    /// Faults off, every client crashes (its session's replies die with it), a final writer
    /// must replay every acknowledged append, a final reader must read the same, and a
    /// flipped byte must be caught.
    fn finale(&mut self) -> Result<(), String> {
        self.check_liveness()?;
        self.net.calm();
        for client in 0..self.clients.len() {
            self.crash(client)?;
        }
        self.note(format_args!("finale: all clients crashed"));
        for (i, c) in self.clients.iter().enumerate() {
            let l = &c.ledger;
            if l.issued != l.answered + l.dropped || !l.pending.is_empty() {
                return Err(format!(
                    "c{i}: {} replies asked for, {} answered, {} dropped at its crash",
                    l.issued, l.answered, l.dropped
                ));
            }
        }
        self.relay_takeovers()?;
        let deadline = self.now + FINAL_DEADLINE;
        let fw = self.spawn_writer(true)?;
        let final_start = self.final_writer_start(fw);
        let opened = self.run_until(deadline, |w| {
            w.clients[fw].ready || w.clients[fw].machine.is_none()
        })?;
        if !opened || !self.clients[fw].ready {
            return Err(format!(
                "final writer did not open: {:?}",
                self.clients[fw].failure
            ));
        }
        let (mut expected, _) = self.writer_view(fw)?;
        // Close it: everything is flushed (or durable, WAL-only).
        let local = self.local_now(fw);
        if let Some(Machine::Writer(w)) = &mut self.clients[fw].machine {
            w.close(local).map_err(|e| format!("final close: {e}"))?;
        }
        self.drain(fw)?;
        let closed = self.run_until(deadline, |w| {
            w.clients[fw].closed || w.clients[fw].failure.is_some()
        })?;
        if !closed || !self.clients[fw].closed {
            return Err(format!(
                "final writer did not close: {:?}",
                self.clients[fw].failure
            ));
        }
        self.model.check_cursor(&self.net.store, &self.codec)?;
        self.check_versions_aged_out(final_start)?;
        if self.wcfg.wal_only {
            let m = self.model.high.clone().ok_or("no manifest")?;
            expected = crate::model::walk(&self.net.store, &self.codec, "log/", &m, None).0;
        }
        let (got, mut digest) = self.read_all()?;
        // Half the corruption checks read from a random position of the log (after the
        // final close mostly inside a generation, with ranged gets): what a clean reader
        // from there reads is what the corrupted one must read, or fail with the path.
        let from = match got.len() {
            0 => Start::Beginning,
            n if self.rng.chance(0.5) => {
                Start::Position(got[self.rng.range(0, n as u64 - 1) as usize].0)
            }
            _ => Start::Beginning,
        };
        if from != Start::Beginning {
            let r = self.spawn_range_reader(false, from, None);
            self.finish_reader(r, "clean ranged reader")?;
            if let Some(f) = self.clients[r].failure.take() {
                return Err(format!("clean reader from {from:?} failed: {f}"));
            }
            digest = self.clients[r].read_digest;
        }
        if got != expected {
            return Err(format!(
                "final reader read {} records, final writer replayed {}",
                got.len(),
                expected.len()
            ));
        }
        self.check_reads_in_log(&got)?;
        self.resume_every_consumer(self.now + FINAL_DEADLINE)?;
        self.check_misnamed_manifest()?;
        self.check_corruption(digest, from)
    }

    /// Five writers, each taking over `0.3 * keep_manifests_for` after the last and crashing
    /// once its claim landed: none lives long enough for the version it read at open to age,
    /// the pattern under which a writer that bounds unknown times by that version collects
    /// nothing. The final writer's GC must still collect what aged (`check_versions_aged_out`).
    fn relay_takeovers(&mut self) -> Result<(), String> {
        for _ in 0..5 {
            self.now += self.wcfg.keep_manifests_for.mul_f64(0.3);
            let deadline = self.now + FINAL_DEADLINE;
            let high = |world: &World| world.model.high.as_ref().map_or(0, |m| m.version);
            let before = high(self);
            let w = self.spawn_writer(true)?;
            self.run_until(deadline, |world| {
                high(world) > before || world.clients[w].machine.is_none()
            })?;
            if high(self) <= before {
                return Err(format!(
                    "relay writer c{w} did not claim the log on a calm network: {:?}",
                    self.clients[w].failure
                ));
            }
            self.note(format_args!("finale: relay writer c{w} crashes"));
            self.crash(w)?;
        }
        Ok(())
    }

    /// Puts a well-framed body of another version under the newest manifest's name: a fresh
    /// reader must fail with `Corrupt` naming it (PROTOCOL.md §3), then the body is restored.
    fn check_misnamed_manifest(&mut self) -> Result<(), String> {
        let paths = tidewal_core::paths::Paths::new("log/");
        let store = &mut self.net.store;
        let newest = store
            .paths()
            .filter_map(|p| paths.manifest_version(p))
            .max()
            .ok_or("no manifest")?;
        let victim = paths.manifest(newest);
        let body = store.object(&victim).cloned().ok_or("no manifest body")?;
        let mut m = tidewal_core::Manifest::decode(&body).map_err(|e| format!("{e:?}"))?;
        m.version = if newest > 1 && self.rng.chance(0.5) {
            newest - 1
        } else {
            newest + 1
        };
        store.tamper(&victim, m.encode());
        let r = self.spawn_range_reader(false, Start::Beginning, None);
        self.clients[r].tolerate_failure = true;
        let finished =
            self.run_until(self.now + FINAL_DEADLINE, |w| match &w.clients[r].machine {
                Some(Machine::Reader(m)) => m.is_done(),
                _ => true,
            })?;
        self.net.store.tamper(&victim, body);
        match self.clients[r].failure.take() {
            _ if !finished => Err("misnamed manifest reader did not finish".into()),
            Some(FatalError::Corrupt { path, .. }) if path == victim => Ok(()),
            other => Err(format!(
                "{victim} holding version {}: reader ended with {other:?}",
                m.version
            )),
        }
    }

    /// Every entry any reader reported is part of the final log (a reader that reported an
    /// entry above a hole that later became a fence reported an orphan; the fence may land
    /// after the report, so the check at each report cannot see it). Retention may have
    /// dropped what lies below the points asked for.
    fn check_reads_in_log(&self, log: &[(u64, u64)]) -> Result<(), String> {
        let log: std::collections::BTreeSet<&(u64, u64)> = log.iter().collect();
        let floor = self.model.truncated_to;
        // A restore may have left out what a reader reported before it (nothing is
        // retracted).
        let away = &self.model.restores.away;
        for (i, c) in self.clients.iter().enumerate() {
            let missing =
                |r: &&(u64, u64)| r.0 >= floor && !log.contains(r) && !away.contains(&r.1);
            if let Some(item) = c.read.iter().find(missing) {
                return Err(format!(
                    "c{i} read payload {} at {}, which is not in the final log",
                    item.1, item.0
                ));
            }
        }
        Ok(())
    }

    /// Runs reader `r` until it is done (or the deadline passes: an error).
    fn finish_reader(&mut self, r: usize, what: &str) -> Result<(), String> {
        let deadline = self.now + FINAL_DEADLINE;
        let finished = self.run_until(deadline, |w| match &w.clients[r].machine {
            Some(Machine::Reader(m)) => m.is_done(),
            _ => true,
        })?;
        if !finished {
            return Err(format!("{what} did not finish"));
        }
        Ok(())
    }

    /// Reads the whole log with a fresh non-following reader.
    fn read_all(&mut self) -> Result<(Vec<(u64, u64)>, u64), String> {
        let r = self.spawn_reader(false);
        let deadline = self.now + FINAL_DEADLINE;
        let finished = self.run_until(deadline, |w| match &w.clients[r].machine {
            Some(Machine::Reader(m)) => m.is_done(),
            _ => true,
        })?;
        if !finished {
            return Err("final reader did not finish".into());
        }
        let c = &mut self.clients[r];
        Ok((std::mem::take(&mut c.read), c.read_digest))
    }

    /// Flips one bit of a random object: a fresh reader must report it as corrupt with its
    /// path, or (if its walk never decodes that object) read exactly what it read before.
    fn check_corruption(&mut self, expected: u64, from: Start) -> Result<(), String> {
        let store = &mut self.net.store;
        let paths: Vec<String> = store.paths().map(String::from).collect();
        let victim = paths[self.rng.range(0, paths.len() as u64 - 1) as usize].clone();
        let mut body = store.object(&victim).cloned().unwrap_or_default().to_vec();
        if body.is_empty() {
            return Ok(());
        }
        let at = self.rng.range(0, body.len() as u64 - 1) as usize;
        body[at] ^= 1 << self.rng.range(0, 7);
        store.tamper(&victim, Bytes::from(body));
        self.note(format_args!(
            "flipped a bit of {victim} at byte {at}, reading from {from:?}"
        ));
        let r = self.spawn_range_reader(false, from, None);
        self.clients[r].tolerate_failure = true;
        let deadline = self.now + FINAL_DEADLINE;
        let finished = self.run_until(deadline, |w| match &w.clients[r].machine {
            Some(Machine::Reader(m)) => m.is_done(),
            _ => true,
        })?;
        match self.clients[r].failure.take() {
            _ if !finished => Err("corruption reader did not finish".into()),
            Some(FatalError::Corrupt { path, .. }) if path == victim => Ok(()),
            Some(f) => Err(format!("flipped {victim}: reader failed otherwise: {f}")),
            None if self.clients[r].read_digest != expected => {
                Err(format!("flipped {victim}: read as data"))
            }
            None => Ok(()),
        }
    }
}
