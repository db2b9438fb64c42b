//! Named consumers: a [`Reader`] whose position survives it (PROTOCOL.md §5, "Named
//! consumers"). A [`Consumer`] claims its name, reads the log from the committed position with
//! an inner [`Reader`], forwards what it reads, and stores positions with
//! [`Consumer::commit`]. Two instances of one name fence each other as writers do.
//!
//! **Request ids.** The consumer's own requests (claim, commits, GC) and the inner reader's
//! share one id space towards the host: the reader's id `n` goes out as `2n`, the consumer's
//! own `n` as `2n + 1`, so neither table needs to know of the other and an answer finds its
//! table by the low bit.

mod claim;
mod list;
mod record;

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use core::fmt;
use core::time::Duration;

use crate::codec::Codec;
use crate::config::{ReaderConfig, Start};
use crate::error::FatalError;
use crate::io::{Request, RequestId, Response};
use crate::machine::{earliest, Machine, Output};
use crate::paths::Paths;
use crate::reader::{ReadEvent, Reader};
use crate::requests::{IoCounters, Requests};

pub use list::{ConsumerInfo, ConsumerLister};
pub use record::{validate_name, ConsumerVersion, MAX_NAME_LEN};

use claim::Purpose;
use record::ConsumerPaths;

/// Why a consumer refused a command or a commit failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The name is not 1 to 64 bytes of `[A-Za-z0-9._-]` (or is `.` / `..`).
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another instance claimed the name after this one: it never commits again.
    Fenced {
        /// The consumer's name.
        name: String,
    },
    /// A commit below the position already committed (or asked to be).
    CommitBelow {
        /// The position asked for.
        requested: u64,
        /// The highest position committed or asked to be.
        committed: u64,
    },
    /// A commit past what this instance has delivered.
    CommitAhead {
        /// The position asked for.
        requested: u64,
        /// Every entry below this was delivered.
        delivered: u64,
    },
    /// The consumer has not claimed its name yet.
    NotClaimed,
    /// `close` was called.
    Closed,
    /// The consumer stopped.
    Failed(FatalError),
}

impl fmt::Display for ConsumerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsumerError::InvalidName { name, reason } => {
                write!(f, "invalid consumer name {name:?}: {reason}")
            }
            ConsumerError::Fenced { name } => write!(
                f,
                "consumer '{name}' was fenced: another instance claimed the name"
            ),
            ConsumerError::CommitBelow {
                requested,
                committed,
            } => write!(
                f,
                "commit of position {requested} below the committed position {committed}"
            ),
            ConsumerError::CommitAhead {
                requested,
                delivered,
            } => write!(
                f,
                "commit of position {requested} past what was delivered ({delivered})"
            ),
            ConsumerError::NotClaimed => write!(f, "the consumer has not claimed its name yet"),
            ConsumerError::Closed => write!(f, "the consumer is closed"),
            ConsumerError::Failed(e) => write!(f, "the consumer failed: {e}"),
        }
    }
}

impl core::error::Error for ConsumerError {}

/// How a consumer behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The consumer's name ([`validate_name`]).
    pub name: String,
    /// How the log is read: prefix, follow, read-ahead, retries. Its `from` is ignored: a
    /// consumer starts at its committed position.
    pub reader: ReaderConfig,
    /// Versions kept by GC (at least 2).
    pub keep_versions: u32,
    /// Claims that may lose to other instances before the open fails `Contended`.
    pub claim_attempts: u32,
}

impl ConsumerConfig {
    /// A consumer `name` of the log under `prefix`, with default settings.
    pub fn new(prefix: &str, name: &str) -> Self {
        ConsumerConfig {
            name: name.into(),
            reader: ReaderConfig {
                prefix: prefix.into(),
                ..ReaderConfig::default()
            },
            keep_versions: 4,
            claim_attempts: 8,
        }
    }
}

/// What a consumer reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// The name is ours from `version` on; reading starts at the committed `position`.
    Claimed {
        /// The claim's version.
        version: u64,
        /// The committed position reading starts at.
        position: u64,
    },
    /// What the inner reader read (records and catching up; its failure comes as `Fatal`).
    Read(ReadEvent),
    /// A commit is durable and this instance still owns the name.
    Committed {
        /// The committed position.
        position: u64,
        /// The version holding it.
        version: u64,
    },
    /// A commit failed; with `Fenced`, every later one fails too.
    CommitFailed {
        /// The position asked for.
        position: u64,
        /// Why.
        error: ConsumerError,
    },
    /// Another instance claimed the name: this one never commits again (reported once).
    Fenced,
    /// The consumer stopped (the claim or the reader failed).
    Fatal(FatalError),
    /// `close` finished: every commit asked for before it was answered.
    Closed,
}

/// Where the consumer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Claiming,
    Reading,
    Fenced,
    Done,
}

/// The sans-I/O consumer: claim, read, commit.
pub struct Consumer {
    cfg: ConsumerConfig,
    paths: ConsumerPaths,
    codec: Option<Box<dyn Codec>>,
    seed: u64,
    nonce: u64,
    io: Requests<Purpose>,
    reader: Option<Reader>,
    /// The inner reader's last `Wait` (`None` inside: nothing due), or `None` once it is done.
    reader_wait: Option<Option<Duration>>,
    events: VecDeque<ConsumerEvent>,
    phase: Phase,
    now: Duration,
    claim_losses: u32,
    /// Versions this instance knows exist (listed at the claim, or its own): what GC deletes.
    known: BTreeSet<u64>,
    /// The claim's version (0 until claimed) and this instance's newest version.
    claim: u64,
    own: u64,
    /// The committed position (the newest version's).
    committed: u64,
    /// Every entry below this was handed to the caller.
    delivered: u64,
    /// Commits asked for and not yet written, in order; the one in flight is `writing`.
    queued: VecDeque<u64>,
    writing: Option<u64>,
    closing: bool,
}

impl Consumer {
    /// Creates a consumer and starts claiming its name. `seed` gives its nonce and jitters
    /// retries. A bad name is refused before any request.
    pub fn new(
        cfg: ConsumerConfig,
        codec: Box<dyn Codec>,
        seed: u64,
        now: Duration,
    ) -> Result<Self, ConsumerError> {
        validate_name(&cfg.name)?;
        let mut io = Requests::new(seed, cfg.reader.retry.clone());
        let nonce = io.random();
        let mut c = Consumer {
            paths: ConsumerPaths::new(&Paths::new(&cfg.reader.prefix)),
            cfg,
            codec: Some(codec),
            seed,
            nonce,
            io,
            reader: None,
            reader_wait: None,
            events: VecDeque::new(),
            phase: Phase::Claiming,
            now,
            claim_losses: 0,
            known: BTreeSet::new(),
            claim: 0,
            own: 0,
            committed: 0,
            delivered: 0,
            queued: VecDeque::new(),
            writing: None,
            closing: false,
        };
        c.list_for_claim();
        Ok(c)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// This instance's nonce (written into every version it creates).
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The committed position (the newest version this instance knows of).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Every entry below this position was handed to the caller.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether the consumer finished (closed or failed).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether another instance fenced this one.
    pub fn is_fenced(&self) -> bool {
        self.phase == Phase::Fenced
    }

    /// How many times the inner reader met a generation gone and re-read the manifest
    /// (PROTOCOL.md §5 "Generation gone").
    pub fn generations_gone(&self) -> u64 {
        self.reader.as_ref().map_or(0, Reader::generations_gone)
    }

    /// Requests issued, by kind: the consumer's own and its reader's.
    pub fn io_counters(&self) -> IoCounters {
        let own = self.io.counters;
        let r = self
            .reader
            .as_ref()
            .map(Reader::io_counters)
            .unwrap_or_default();
        IoCounters {
            puts: own.puts + r.puts,
            gets: own.gets + r.gets,
            range_gets: own.range_gets + r.range_gets,
            range_bytes: own.range_bytes + r.range_bytes,
            lists: own.lists + r.lists,
            deletes: own.deletes + r.deletes,
        }
    }

    /// Asks to store `position` as the committed one: every entry below it was consumed.
    /// Answered with [`ConsumerEvent::Committed`] or [`ConsumerEvent::CommitFailed`]; refused
    /// at once below the highest position committed or asked for, past what was delivered,
    /// before the claim, once fenced, closed or failed.
    pub fn commit(&mut self, position: u64) -> Result<(), ConsumerError> {
        match self.phase {
            Phase::Claiming => return Err(ConsumerError::NotClaimed),
            Phase::Fenced => return Err(self.fenced_error()),
            Phase::Done => return Err(ConsumerError::Closed),
            Phase::Reading if self.closing => return Err(ConsumerError::Closed),
            Phase::Reading => {}
        }
        let highest = self
            .queued
            .back()
            .copied()
            .or(self.writing)
            .unwrap_or(self.committed);
        if position < highest {
            return Err(ConsumerError::CommitBelow {
                requested: position,
                committed: highest,
            });
        }
        if position > self.delivered {
            return Err(ConsumerError::CommitAhead {
                requested: position,
                delivered: self.delivered,
            });
        }
        self.queued.push_back(position);
        self.next_commit();
        Ok(())
    }

    /// The host handed on `bytes` of records the inner reader reported (the
    /// [`ReadEvent::bytes`] of the `Read` events it is done with): room for more read-ahead
    /// (PROTOCOL.md §5 "Flow control"). Until released, the reader stops at its bound.
    pub fn release(&mut self, bytes: u64) {
        if let Some(r) = &mut self.reader {
            // Whatever it sends now goes out at the next `poll_output`, which pumps it.
            r.release(bytes);
        }
    }

    /// Stops reading; answers the commits asked for so far, then reports `Closed` and is done.
    pub fn close(&mut self) {
        self.closing = true;
        if let Some(r) = &mut self.reader {
            r.stop();
        }
        self.reader_wait = None;
        self.finish_close();
    }

    fn finish_close(&mut self) {
        let idle = self.writing.is_none() && self.queued.is_empty();
        if self.closing && idle && self.phase != Phase::Done {
            self.shut();
            self.events.push_back(ConsumerEvent::Closed);
        }
    }

    fn fenced_error(&self) -> ConsumerError {
        ConsumerError::Fenced {
            name: self.cfg.name.clone(),
        }
    }

    fn shut(&mut self) {
        self.phase = Phase::Done;
        self.io.shut();
        if let Some(r) = &mut self.reader {
            r.stop();
        }
        self.reader_wait = None;
    }

    /// Stops with `e`; every commit asked for fails with it.
    fn fail(&mut self, e: FatalError) {
        if self.phase == Phase::Done {
            return;
        }
        for position in self.writing.take().into_iter().chain(self.queued.drain(..)) {
            let error = ConsumerError::Failed(e.clone());
            self.events
                .push_back(ConsumerEvent::CommitFailed { position, error });
        }
        self.shut();
        self.events.push_back(ConsumerEvent::Fatal(e));
    }

    /// Another instance claimed the name: this commit and every later one fail.
    fn fence(&mut self) {
        if matches!(self.phase, Phase::Fenced | Phase::Done) {
            return;
        }
        self.phase = Phase::Fenced;
        self.events.push_back(ConsumerEvent::Fenced);
        let failed: alloc::vec::Vec<u64> = self
            .writing
            .take()
            .into_iter()
            .chain(self.queued.drain(..))
            .collect();
        for position in failed {
            let error = self.fenced_error();
            self.events
                .push_back(ConsumerEvent::CommitFailed { position, error });
        }
        if self.closing {
            self.shut();
            self.events.push_back(ConsumerEvent::Closed);
        }
    }

    /// The claim landed and nothing newer exists: start reading at the committed position.
    fn claimed(&mut self, version: u64, position: u64) {
        self.claim = version;
        self.own = version;
        self.committed = position;
        self.delivered = position;
        self.known.insert(version);
        self.phase = Phase::Reading;
        self.events
            .push_back(ConsumerEvent::Claimed { version, position });
        let cfg = ReaderConfig {
            // Nothing consumed yet: the log's first entry, wherever it starts now.
            from: if position == 0 {
                Start::Beginning
            } else {
                Start::Position(position)
            },
            ..self.cfg.reader.clone()
        };
        let Some(codec) = self.codec.take() else {
            return;
        };
        let mut reader = Reader::new(cfg, codec, self.seed ^ 0x5eed, self.now);
        reader.settle_pending_drops();
        self.reader = Some(reader);
        self.reader_wait = Some(None);
        if self.closing {
            self.close();
        }
    }

    /// Moves the inner reader's output: requests out (as even ids), events into ours.
    fn pump_reader(&mut self) -> Option<Request> {
        self.reader_wait?;
        loop {
            match self.reader.as_mut()?.poll_output() {
                Output::Request(mut r) => {
                    r.id = RequestId(r.id.0 * 2);
                    return Some(r);
                }
                Output::Event(ReadEvent::Fatal(e)) => {
                    self.fail(e);
                    return None;
                }
                Output::Event(e) => self.events.push_back(ConsumerEvent::Read(e)),
                Output::Wait(at) => {
                    self.reader_wait = Some(at);
                    return None;
                }
                Output::Done => {
                    self.reader_wait = None;
                    return None;
                }
            }
        }
    }

    /// What the caller now has: every entry below this was handed out.
    fn delivering(&mut self, event: &ConsumerEvent) {
        match event {
            ConsumerEvent::Read(ReadEvent::Records { position, .. }) => {
                self.delivered = self.delivered.max(position + 1)
            }
            ConsumerEvent::Read(ReadEvent::CaughtUp { position }) => {
                self.delivered = self.delivered.max(*position)
            }
            _ => {}
        }
    }
}

impl Machine for Consumer {
    type Event = ConsumerEvent;

    /// Feeds an answer: even ids are the reader's, odd ones the consumer's own.
    fn handle_response(&mut self, id: RequestId, response: Response, now: Duration) {
        self.now = self.now.max(now);
        if self.phase == Phase::Done {
            return;
        }
        if id.0.is_multiple_of(2) {
            if let Some(r) = &mut self.reader {
                r.handle_response(RequestId(id.0 / 2), response, self.now);
            }
            return;
        }
        if let Some((request, response)) = self.io.take(RequestId(id.0 / 2), response) {
            self.on_response(request, response);
        }
    }

    fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        if self.phase == Phase::Done {
            return;
        }
        self.io.fire_due(self.now);
        if let (Some(r), Some(_)) = (&mut self.reader, self.reader_wait) {
            r.handle_timeout(self.now);
        }
    }

    fn poll_output(&mut self) -> Output<ConsumerEvent> {
        if let Some(mut r) = self.io.poll_request() {
            r.id = RequestId(r.id.0 * 2 + 1);
            return Output::Request(r);
        }
        if let Some(r) = self.pump_reader() {
            return Output::Request(r);
        }
        if let Some(event) = self.events.pop_front() {
            self.delivering(&event);
            return Output::Event(event);
        }
        if self.phase == Phase::Done {
            return Output::Done;
        }
        // With nothing out or due, a consumer waits for commands (commit, close).
        Output::Wait(earliest(
            self.io.next_deadline(),
            self.reader_wait.flatten(),
        ))
    }
}
