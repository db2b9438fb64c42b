//! The caller-facing layer every host needs on top of a [`Writer`]: who waits for what.
//!
//! Hosts differ in how they run requests, sleep and hand answers back, not in which caller an
//! event answers. A [`Session`] owns the writer, takes commands with a one-shot [`Reply`],
//! and settles the replies from the writer's events: appends in id order once durable, flushes
//! once their last append is, memtable flushes once their generation is committed, everything
//! with the writer's terminal error. Appends refused for backpressure wait here, in order, until
//! the writer is writable or `backpressure_timeout` passes. No I/O and no clock: `now` comes in.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use crate::codec::Record;
use crate::host_error::Error;
use crate::io::{RequestId, Response};
use crate::machine::{earliest, Machine, Output};
use crate::writer::{AppendId, Collected, Event, Writer, WriterStats};
use crate::AppendError;

/// Answers one caller, once.
pub type Reply<T> = Box<dyn FnOnce(Result<T, Error>) + Send>;

/// An acknowledged append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The append's id (grows by one per append of this writer).
    pub append: AppendId,
    /// The WAL position that holds it.
    pub position: u64,
}

/// A writer's counters and gauges, with the acknowledgement latency callers saw.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The core's counters and gauges (appends, bytes, requests, in flight, unflushed bytes,
    /// epoch, positions).
    pub writer: WriterStats,
    /// Median time from append to durable over the last acknowledged appends.
    pub ack_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub ack_p99: Option<Duration>,
}

/// What a full compaction pass merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionPass {
    /// Compactions it committed.
    pub runs: u64,
    /// Generations they replaced.
    pub replaced: u64,
    /// Generations the manifest lists after it.
    pub generations: u64,
}

/// How many recent acknowledgement latencies the percentiles cover.
const LATENCY_WINDOW: usize = 4096;

/// What a session reports to its host (callers get their replies directly).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// Open is replaying what older writers left (the writer's [`Event::Replaying`]).
    Replaying {
        /// WAL entries replayed so far.
        entries: u64,
        /// Bytes of their records.
        bytes: u64,
    },
    /// A newer writer took the log over; every waiting reply got this error too. Told once,
    /// for a host that tells its users (e.g. a JS `onfenced` callback).
    Fenced(Error),
    /// The writer's retention policy dropped generations on its own (the writer's
    /// [`Event::Retained`]).
    Retained(crate::writer::Dropped),
}

/// An append refused for backpressure, retried when the writer says `Writable`.
struct Blocked {
    records: Vec<Record>,
    reply: Reply<Ack>,
    since: Duration,
}

/// A writer and the callers waiting on it.
pub struct Session {
    machine: Writer,
    ready: Option<Reply<u64>>,
    appends: BTreeMap<AppendId, (Reply<Ack>, Duration)>,
    latencies: VecDeque<Duration>,
    flushes: Vec<(AppendId, Reply<()>)>,
    /// Flushes asked for while appends were blocked: they run once none is.
    deferred: Vec<Reply<()>>,
    generations: Vec<(u64, Reply<Option<u64>>)>,
    /// Full compaction passes asked for, answered when the writer's pass is over.
    compactions: Vec<Reply<CompactionPass>>,
    /// WAL-only truncates, in the order asked (the writer answers them in that order).
    truncates: VecDeque<Reply<u64>>,
    /// Collection rounds asked for, answered in order as rounds finish.
    collections: VecDeque<Reply<Collected>>,
    /// Drops, in the order asked (the writer answers them in that order).
    drops: VecDeque<Reply<crate::writer::Dropped>>,
    /// The restore asked for, answered by the writer's [`Event::Restored`].
    restores: Vec<Reply<crate::writer::Restored>>,
    closing: Option<Reply<()>>,
    /// `close` was called: later commands are refused at once. While appends still wait
    /// for room, the close waits behind them (and the flushes deferred before it) here.
    close_asked: bool,
    deferred_close: Option<Reply<()>>,
    blocked: VecDeque<Blocked>,
    backpressure_timeout: Duration,
    failed: Option<Error>,
    /// What the host hands on (told once each).
    events: VecDeque<SessionEvent>,
    /// The latest time a call brought (acknowledgement latency is measured against it).
    now: Duration,
}

impl Session {
    /// How long an append waits for room under backpressure before it fails, unless the
    /// host is told otherwise (every host's default).
    pub const DEFAULT_BACKPRESSURE_TIMEOUT: Duration = Duration::from_secs(30);

    /// Starts opening the log `cfg.prefix` names: a new [`Writer`] (seeded with `seed`, which
    /// must differ between writers) wrapped in a session. `ready` is answered with the epoch
    /// once it owns the log. Refused at once for a configuration the writer cannot use.
    pub fn open(
        cfg: crate::WriterConfig,
        codec: Box<dyn crate::Codec>,
        seed: u64,
        backpressure_timeout: Duration,
        ready: Reply<u64>,
    ) -> Result<Self, crate::ConfigError> {
        let writer = Writer::new(cfg, codec, seed, Duration::ZERO)?;
        Ok(Session::new(writer, ready, backpressure_timeout))
    }

    /// Wraps a writer that was just created; `ready` is answered with the epoch once it owns
    /// the log (or with the error that stopped it).
    pub fn new(machine: Writer, ready: Reply<u64>, backpressure_timeout: Duration) -> Self {
        let mut s = Session {
            machine,
            ready: Some(ready),
            appends: BTreeMap::new(),
            latencies: VecDeque::new(),
            flushes: Vec::new(),
            deferred: Vec::new(),
            generations: Vec::new(),
            compactions: Vec::new(),
            truncates: VecDeque::new(),
            collections: VecDeque::new(),
            drops: VecDeque::new(),
            restores: Vec::new(),
            closing: None,
            close_asked: false,
            deferred_close: None,
            blocked: VecDeque::new(),
            backpressure_timeout,
            failed: None,
            events: VecDeque::new(),
            now: Duration::ZERO,
        };
        s.settle();
        s
    }

    /// Appends `records` as one append (one entry); `reply` gets its [`Ack`] once durable.
    /// Zero-row records hold nothing and are left out; an append with no rows at all is
    /// refused ([`AppendError::ZeroRows`]) with nothing queued.
    pub fn append(&mut self, mut records: Vec<Record>, reply: Reply<Ack>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        records.retain(|r| r.rows > 0);
        if records.is_empty() {
            return reply(Err(AppendError::ZeroRows.into()));
        }
        if self.blocked.is_empty() {
            self.try_append(records, reply, now, now);
        } else {
            // Keep order behind appends already waiting for room.
            self.blocked.push_back(Blocked {
                records,
                reply,
                since: now,
            });
        }
        self.settle();
    }

    /// Seals pending appends; `reply` once all appends so far are durable.
    pub fn flush(&mut self, reply: Reply<()>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        if self.blocked.is_empty() {
            self.flush_now(reply, now);
        } else {
            self.deferred.push(reply);
        }
        self.settle();
    }

    /// Freezes the memtable; `reply` with the generation id once committed (`None`: empty).
    pub fn flush_memtable(&mut self, reply: Reply<Option<u64>>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        match self.machine.flush_memtable(now) {
            Ok(Some(id)) => self.generations.push((id, reply)),
            Ok(None) => reply(Ok(None)),
            Err(e) => reply(Err(e.into())),
        }
        self.settle();
    }

    /// WAL-only: drops every entry below `position` by moving the replay cursor there (or to
    /// the first entry past it); `reply` with the committed cursor once the manifest holds it
    /// (at once, in its turn, if the cursor cannot move). Refused at once outside
    /// `min = cursor ..= max = first position not yet durable` (`OutOfRange`), with a
    /// memtable (`WrongMode`) or before the writer is ready. Without `force`, named
    /// consumers are checked by the writer ([`Writer::truncate`]): `HeldBack` when one has
    /// not consumed past `position`.
    pub fn truncate(&mut self, position: u64, force: bool, reply: Reply<u64>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        match self.machine.truncate(position, force, now) {
            Ok(()) => self.truncates.push_back(reply),
            Err(e) => reply(Err(e.into())),
        }
        self.settle();
    }

    /// With a memtable: drops the leading generations wholly below `position` and raises
    /// `dropped_before` to it (PROTOCOL.md §4 "Retention"); `reply` with what was dropped once
    /// the manifest holds it. Refused at once outside `dropped_before ..= cursor`
    /// (`OutOfRange`), WAL-only (`WrongMode`) or before the writer is ready. Without
    /// `force`, named consumers are checked by the writer ([`Writer::drop_before`]):
    /// `HeldBack` when one has not consumed past `position`.
    pub fn drop_before(
        &mut self,
        position: u64,
        force: bool,
        reply: Reply<crate::writer::Dropped>,
        now: Duration,
    ) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        match self.machine.drop_before(position, force, now) {
            Ok(()) => self.drops.push_back(reply),
            Err(e) => reply(Err(e.into())),
        }
        self.settle();
    }

    /// Restores the log to `target` (PROTOCOL.md §4 "Restore", [`Writer::restore`]); `reply`
    /// with what it did once the manifest holds it. Refused at once (nothing written) for a
    /// WAL-only log, durable entries not yet in generations (flush the memtable first), a
    /// restore or drop in flight, or a position or version that cannot be.
    pub fn restore(
        &mut self,
        target: crate::writer::RestoreTarget,
        reply: Reply<crate::writer::Restored>,
        now: Duration,
    ) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        match self.machine.restore(target, now) {
            Ok(()) => self.restores.push(reply),
            Err(e) => reply(Err(e.into())),
        }
        self.settle();
    }

    /// Runs one full compaction pass (PROTOCOL.md §4 "Compaction"); `reply` with what it
    /// merged once it is over.
    pub fn compact(&mut self, reply: Reply<CompactionPass>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        match self.machine.compact(now) {
            Ok(()) => self.compactions.push(reply),
            Err(e) => reply(Err(e.into())),
        }
        self.settle();
    }

    /// Collects fences, window orphans and fence intents below the cursor as soon as the
    /// writer lease allows ([`Writer::collect_garbage`]: possibly `L * (1 + rho)` and a
    /// margin after the writer's claim); `reply` with what was deleted.
    pub fn collect_garbage(&mut self, reply: Reply<Collected>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        match self.machine.collect_garbage(now) {
            Ok(()) => self.collections.push_back(reply),
            Err(e) => reply(Err(e.into())),
        }
        self.settle();
    }

    /// When the writer's claim is old enough to collect fences (on the session's clock;
    /// `None` before it owns the log).
    pub fn collectable_at(&self) -> Option<Duration> {
        self.machine.collectable_at()
    }

    /// Drains and stops the writer; `reply` once it is closed. Everything asked before it
    /// is drained first, appends still waiting for room included (they become durable or
    /// time out); everything asked after it is refused with `Closed`.
    pub fn close(&mut self, reply: Reply<()>, now: Duration) {
        self.now = self.now.max(now);
        if let Some(e) = self.refusal() {
            return reply(Err(e));
        }
        self.close_asked = true;
        if self.blocked.is_empty() {
            self.close_now(reply, now);
        } else {
            self.deferred_close = Some(reply);
        }
        self.settle();
    }

    fn close_now(&mut self, reply: Reply<()>, now: Duration) {
        match self.machine.close(now) {
            Ok(()) => self.closing = Some(reply),
            Err(e) => reply(Err(e.into())),
        }
    }

    /// Why a new command is refused at once: the writer stopped, or `close` was called.
    fn refusal(&self) -> Option<Error> {
        match &self.failed {
            Some(e) => Some(e.clone()),
            None if self.close_asked => Some(Error::Closed),
            None => None,
        }
    }

    /// Counters, gauges and acknowledgement latency percentiles.
    pub fn stats(&self) -> Stats {
        let mut sorted: Vec<Duration> = self.latencies.iter().copied().collect();
        sorted.sort();
        let pick = |q: usize| {
            sorted
                .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
                .copied()
        };
        Stats {
            writer: self.machine.stats(),
            ack_p50: pick(50),
            ack_p99: pick(99),
        }
    }

    fn try_append(
        &mut self,
        records: Vec<Record>,
        reply: Reply<Ack>,
        since: Duration,
        now: Duration,
    ) {
        match self.machine.append_group(records.clone(), now) {
            Ok(id) => {
                self.appends.insert(id, (reply, since));
            }
            Err(AppendError::Backpressure { .. }) => self.blocked.push_front(Blocked {
                records,
                reply,
                since,
            }),
            Err(e) => reply(Err(e.into())),
        }
    }

    fn flush_now(&mut self, reply: Reply<()>, now: Duration) {
        match self.machine.flush(now) {
            Ok(Some(last)) if self.appends.contains_key(&last) => self.flushes.push((last, reply)),
            Ok(_) => reply(Ok(())),
            Err(e) => reply(Err(e.into())),
        }
    }

    /// Retries blocked appends in order until one is refused again.
    fn unblock(&mut self, now: Duration) {
        while let Some(b) = self.blocked.pop_front() {
            let before = self.blocked.len();
            self.try_append(b.records, b.reply, b.since, now);
            if self.blocked.len() > before {
                break;
            }
        }
        self.run_deferred(now);
    }

    /// Once no append waits for room: the flushes, then the close, asked meanwhile.
    fn run_deferred(&mut self, now: Duration) {
        if self.blocked.is_empty() {
            for reply in core::mem::take(&mut self.deferred) {
                self.flush_now(reply, now);
            }
            if let Some(reply) = self.deferred_close.take() {
                self.close_now(reply, now);
            }
        }
    }

    fn expire_blocked(&mut self, now: Duration) {
        while let Some(b) = self.blocked.front() {
            let waited = now.saturating_sub(b.since);
            if waited < self.backpressure_timeout {
                break;
            }
            if let Some(b) = self.blocked.pop_front() {
                (b.reply)(Err(Error::BackpressureTimeout { waited }));
            }
        }
        self.run_deferred(now);
        self.settle();
    }

    /// A checked drop or truncate dropped nothing: the oldest waiting one (a log either
    /// drops or truncates: the other kind is refused as `WrongMode`).
    fn drop_refused(&mut self, refusal: crate::writer::DropRefusal) {
        let error = match refusal {
            crate::writer::DropRefusal::HeldBack(h) => Error::from(h),
            crate::writer::DropRefusal::Listing(e) => e.into(),
        };
        if let Some(r) = self.drops.pop_front() {
            r(Err(error));
        } else if let Some(r) = self.truncates.pop_front() {
            r(Err(error));
        }
    }

    /// Turns every pending event into replies.
    fn settle(&mut self) {
        while let Some(event) = self.machine.next_event() {
            self.event(event);
        }
    }

    fn event(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Ready { epoch, .. } => {
                if let Some(r) = self.ready.take() {
                    r(Ok(epoch));
                }
            }
            Event::Durable {
                last_append,
                position,
            } => {
                let rest = self.appends.split_off(&AppendId(last_append.0 + 1));
                for (append, (reply, since)) in core::mem::replace(&mut self.appends, rest) {
                    if self.latencies.len() == LATENCY_WINDOW {
                        self.latencies.pop_front();
                    }
                    self.latencies.push_back(now.saturating_sub(since));
                    reply(Ok(Ack { append, position }));
                }
                let (done, waiting) = core::mem::take(&mut self.flushes)
                    .into_iter()
                    .partition(|(id, _)| *id <= last_append);
                self.flushes = waiting;
                done.into_iter()
                    .for_each(|(_, r): (_, Reply<()>)| r(Ok(())));
            }
            Event::Flushed { generation, .. } => {
                let (done, waiting) = core::mem::take(&mut self.generations)
                    .into_iter()
                    .partition(|(id, _)| *id <= generation);
                self.generations = waiting;
                done.into_iter()
                    .for_each(|(id, r): (_, Reply<Option<u64>>)| r(Ok(Some(id))));
            }
            Event::Replaying { entries, bytes } => self
                .events
                .push_back(SessionEvent::Replaying { entries, bytes }),
            // The writer answers drops and truncates one by one, in the order asked.
            Event::Truncated { replay_cursor } => {
                if let Some(r) = self.truncates.pop_front() {
                    r(Ok(replay_cursor));
                }
            }
            Event::Writable => self.unblock(now),
            Event::Compacted { .. } => {}
            Event::Retained(d) => self.events.push_back(SessionEvent::Retained(d)),
            Event::Dropped(d) => {
                if let Some(r) = self.drops.pop_front() {
                    r(Ok(d));
                }
            }
            Event::Restored(result) => {
                for r in core::mem::take(&mut self.restores) {
                    r(result.clone().map_err(Error::from));
                }
            }
            Event::DropRefused(refusal) => self.drop_refused(refusal),
            Event::CompactionPass {
                runs,
                replaced,
                generations,
                error,
            } => {
                let pass = CompactionPass {
                    runs,
                    replaced,
                    generations,
                };
                // A pass that stopped at a run it could not read says so (the writer goes on).
                for r in core::mem::take(&mut self.compactions) {
                    r(match &error {
                        Some(e) => Err(e.clone().into()),
                        None => Ok(pass),
                    });
                }
            }
            Event::Collected(c) => {
                // One round answers every collection asked before it started.
                for r in core::mem::take(&mut self.collections) {
                    r(Ok(c));
                }
            }
            Event::Closed => {
                self.failed = Some(Error::Closed);
                // Close drains commits first, so none should wait; none is left unanswered.
                for r in core::mem::take(&mut self.truncates) {
                    r(Err(Error::Closed));
                }
                for r in core::mem::take(&mut self.compactions) {
                    r(Err(Error::Closed));
                }
                for r in core::mem::take(&mut self.collections) {
                    r(Err(Error::Closed));
                }
                for r in core::mem::take(&mut self.drops) {
                    r(Err(Error::Closed));
                }
                for r in core::mem::take(&mut self.restores) {
                    r(Err(Error::Closed));
                }
                if let Some(r) = self.closing.take() {
                    r(Ok(()));
                }
            }
            Event::Fatal(f) => self.fail_all(f.into()),
        }
    }

    fn fail_all(&mut self, e: Error) {
        if let Some(r) = self.ready.take() {
            r(Err(e.clone()));
        }
        for (_, (r, _)) in core::mem::take(&mut self.appends) {
            r(Err(e.clone()));
        }
        for b in core::mem::take(&mut self.blocked) {
            (b.reply)(Err(e.clone()));
        }
        let done = core::mem::take(&mut self.flushes)
            .into_iter()
            .map(|(_, r)| r);
        let deferred = core::mem::take(&mut self.deferred);
        let closes = self
            .closing
            .take()
            .into_iter()
            .chain(self.deferred_close.take());
        for r in done.chain(deferred).chain(closes) {
            r(Err(e.clone()));
        }
        for (_, r) in core::mem::take(&mut self.generations) {
            r(Err(e.clone()));
        }
        for r in core::mem::take(&mut self.truncates) {
            r(Err(e.clone()));
        }
        for r in core::mem::take(&mut self.compactions) {
            r(Err(e.clone()));
        }
        for r in core::mem::take(&mut self.collections) {
            r(Err(e.clone()));
        }
        for r in core::mem::take(&mut self.drops) {
            r(Err(e.clone()));
        }
        for r in core::mem::take(&mut self.restores) {
            r(Err(e.clone()));
        }
        if matches!(e, Error::Fenced { .. }) {
            self.events.push_back(SessionEvent::Fenced(e.clone()));
        }
        self.failed = Some(e);
    }
}

impl Machine for Session {
    type Event = SessionEvent;

    fn handle_response(&mut self, id: RequestId, response: Response, now: Duration) {
        self.now = self.now.max(now);
        // Appends past their timeout fail before this answer can make room for them (after
        // a pause of the host, both are due at once).
        self.expire_blocked(now);
        self.machine.handle_response(id, response, now);
        self.settle();
    }

    /// The writer's timers and the backpressure deadline.
    fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        self.expire_blocked(now);
        self.machine.handle_timeout(now);
        self.settle();
        self.expire_blocked(now);
    }

    /// Never `Done`: after the writer stops, commands are still answered (at once, with the
    /// reason it stopped) for as long as the host keeps the session.
    fn poll_output(&mut self) -> Output<SessionEvent> {
        if let Some(request) = self.machine.next_request() {
            return Output::Request(request);
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        let blocked = self
            .blocked
            .front()
            .map(|b| b.since + self.backpressure_timeout);
        Output::Wait(earliest(self.machine.deadline(), blocked))
    }
}
