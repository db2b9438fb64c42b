//! Named consumers on this host: [`Consumer`] claims a name, yields what follows its
//! committed position and stores positions with [`Consumer::commit`]; [`consumers`] lists a
//! log's consumers with their lag. The rules are the core's `Consumer` and `ConsumerLister`
//! (PROTOCOL.md §5, "Named consumers"); none of this opens a writer, so nobody is fenced.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use object_store::ObjectStore;
use tidewal_core::arrow::ArrowCodec;
use tidewal_core::{
    ConsumerConfig, ConsumerEvent, ConsumerLister, Error, FatalError, ReadEvent, ReaderConfig,
};
use tokio::sync::{mpsc, oneshot};

pub use tidewal_core::ConsumerInfo;

use crate::driver::{drive, Role};
use crate::read::Item;

/// How a consumer reads and keeps its versions.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// Keep reading new entries as they become durable (else the items end once caught up;
    /// commits still work until the consumer is closed or dropped).
    pub follow: bool,
    /// How often a follower looks for new entries.
    pub poll_interval: Duration,
    /// Versions of the name kept by GC (at least 2).
    pub keep_versions: u32,
    /// Bytes of records read ahead of what the caller has taken (PROTOCOL.md §5 "Flow
    /// control").
    pub read_ahead_bytes: u64,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            follow: false,
            poll_interval: ReaderConfig::default().poll_interval,
            keep_versions: 4,
            read_ahead_bytes: ReaderConfig::DEFAULT_READ_AHEAD_BYTES,
        }
    }
}

/// Items the caller has not taken yet, past which the consumer stops reading (unless a
/// commit is waiting to be answered: then reading on is what lets the answer through).
const BUFFERED_ITEMS: usize = 64;

enum Command {
    /// The caller took items holding these bytes of the reader's read-ahead.
    Release(u64),
    Commit(u64, oneshot::Sender<Result<u64, Error>>),
    Close(oneshot::Sender<Result<(), Error>>),
}

/// One instance of a named consumer of a log. Dropping it stops it (a commit not yet
/// answered may or may not land; the next instance resumes from what did).
pub struct Consumer {
    name: String,
    position: u64,
    items: mpsc::Receiver<Delivered>,
    commands: mpsc::UnboundedSender<Command>,
}

/// An item on its way to the caller, with the bytes to release to the reader once taken.
type Delivered = (Result<Item, Error>, u64);

impl Consumer {
    /// Claims `name` on the log under `prefix` (which must have `schema`) and starts reading
    /// at its committed position (the beginning for a new name). Fails with a typed error for a
    /// bad name, `Contended` if other instances kept claiming it, `Truncated` if the log no
    /// longer holds the position.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        name: &str,
        options: ConsumerOptions,
    ) -> Result<Consumer, Error> {
        let codec = crate::codec(schema)?;
        let mut cfg = ConsumerConfig::new(prefix, name);
        cfg.reader.follow = options.follow;
        cfg.reader.poll_interval = options.poll_interval;
        cfg.keep_versions = options.keep_versions;
        cfg.reader.read_ahead_bytes = options.read_ahead_bytes;
        let machine = tidewal_core::Consumer::new(
            cfg,
            Box::new(codec.clone()),
            rand::random(),
            Duration::ZERO,
        )?;
        let (items_tx, items) = mpsc::channel(BUFFERED_ITEMS);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (claimed_tx, claimed) = oneshot::channel();
        let role = Deliver {
            codec,
            follow: options.follow,
            ending: false,
            out: Some(items_tx),
            buffer: VecDeque::new(),
            commands: commands_rx,
            stashed: VecDeque::new(),
            claimed: Some(claimed_tx),
            commits: VecDeque::new(),
            closing: Vec::new(),
        };
        tokio::spawn(async move {
            let role = drive(machine, store, Instant::now(), role).await;
            role.end(Error::Closed);
        });
        let position = claimed.await.map_err(|_| Error::Closed)??;
        Ok(Consumer {
            name: name.into(),
            position,
            items,
            commands,
        })
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The committed position this instance started at.
    pub fn start_position(&self) -> u64 {
        self.position
    }

    /// The next item; `None` once caught up (without `follow`), after a failure was
    /// yielded, or once closed.
    pub async fn next(&mut self) -> Option<Result<Item, Error>> {
        let (item, bytes) = self.items.recv().await?;
        if bytes > 0 {
            // Taken: the reader may read further ahead (PROTOCOL.md §5 "Flow control"). A
            // consumer that has ended no longer listens, which is fine.
            let _ = self.commands.send(Command::Release(bytes));
        }
        Some(item)
    }

    /// Stores `position` durably: every entry below it was consumed, and the next instance
    /// of the name starts there. Refused below the committed position, past what this
    /// instance has read (its items, taken or still buffered), and once another instance
    /// claimed the name (`Fenced`, for good).
    /// Resolves with the version that holds it.
    pub async fn commit(&self, position: u64) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Commit(position, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Stops reading, waits for the commits asked for so far, then stops.
    pub async fn close(self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Close(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

/// The consumer task's role: decoded items go to `out` (buffered, see [`BUFFERED_ITEMS`]),
/// commits and closes come from the handle and are answered in order.
struct Deliver {
    codec: ArrowCodec,
    follow: bool,
    /// Caught up without following: no item comes after those buffered.
    ending: bool,
    out: Option<mpsc::Sender<Delivered>>,
    buffer: VecDeque<Delivered>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Commands received while waiting for room, applied at the next chance.
    stashed: VecDeque<Command>,
    claimed: Option<oneshot::Sender<Result<u64, Error>>>,
    commits: VecDeque<oneshot::Sender<Result<u64, Error>>>,
    closing: Vec<oneshot::Sender<Result<(), Error>>>,
}

impl Deliver {
    /// Hands buffered items to the caller while there is room, without waiting.
    fn flush(&mut self) {
        while let (Some(out), false) = (&self.out, self.buffer.is_empty()) {
            let closed = match out.try_reserve() {
                Ok(permit) => {
                    permit.send(self.buffer.pop_front().expect("a front item"));
                    false
                }
                Err(mpsc::error::TrySendError::Full(())) => return,
                Err(mpsc::error::TrySendError::Closed(())) => true,
            };
            if closed {
                self.out = None;
                self.buffer.clear();
            }
        }
        if self.ending && self.buffer.is_empty() {
            self.out = None;
        }
    }

    /// Everyone still waiting learns the task stopped.
    fn end(mut self, e: Error) {
        if let Some(c) = self.claimed.take() {
            let _ = c.send(Err(e.clone()));
        }
        for c in self.commits.drain(..) {
            let _ = c.send(Err(e.clone()));
        }
        for c in self.closing.drain(..) {
            let _ = c.send(Ok(()));
        }
    }

    fn push(&mut self, item: Delivered) {
        if self.out.is_some() {
            self.buffer.push_back(item);
        }
        self.flush();
    }
}

impl Role for Deliver {
    type Machine = tidewal_core::Consumer;
    type Command = Command;

    async fn next_command(&mut self) -> Option<Command> {
        loop {
            if let Some(c) = self.stashed.pop_front() {
                return Some(c);
            }
            self.flush();
            let (out, empty) = (self.out.clone(), self.buffer.is_empty());
            let room = async move {
                match (out, empty) {
                    (Some(out), false) => out.reserve().await.map(drop).is_ok(),
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv() => return command,
                _ = room => {}
            }
        }
    }

    fn command(&mut self, machine: &mut tidewal_core::Consumer, command: Command, _now: Duration) {
        match command {
            Command::Release(bytes) => machine.release(bytes),
            Command::Commit(position, reply) => match machine.commit(position) {
                Ok(()) => self.commits.push_back(reply),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Close(reply) => {
                self.closing.push(reply);
                machine.close();
            }
        }
    }

    async fn event(&mut self, event: ConsumerEvent) -> ControlFlow<()> {
        match event {
            ConsumerEvent::Claimed { position, .. } => {
                if let Some(c) = self.claimed.take() {
                    let _ = c.send(Ok(position));
                }
            }
            ConsumerEvent::Read(ReadEvent::Records { position, records }) => {
                for r in &records {
                    let item = self
                        .codec
                        .decode_record(r)
                        .map(|batch| Item::Batch { position, batch })
                        .map_err(Error::from);
                    self.push((item, r.payload.len() as u64));
                }
            }
            ConsumerEvent::Read(ReadEvent::CaughtUp { position }) => {
                self.push((Ok(Item::CaughtUp { position }), 0));
                if !self.follow {
                    // The items end here: the sender goes once they are all handed over.
                    self.ending = true;
                    self.flush();
                }
            }
            ConsumerEvent::Committed { version, .. } => {
                if let Some(c) = self.commits.pop_front() {
                    let _ = c.send(Ok(version));
                }
            }
            ConsumerEvent::CommitFailed { error, .. } => {
                if let Some(c) = self.commits.pop_front() {
                    let _ = c.send(Err(error.into()));
                }
            }
            ConsumerEvent::Fatal(e) => {
                let e: Error = e.into();
                if let Some(c) = self.claimed.take() {
                    let _ = c.send(Err(e.clone()));
                }
                self.push((Err(e), 0));
            }
            ConsumerEvent::Closed => {
                for c in self.closing.drain(..) {
                    let _ = c.send(Ok(()));
                }
            }
            _ => {}
        }
        // Without room, wait for the caller, unless a commit or close is waiting on the
        // machine: then reading on is what lets its answer through.
        while self.buffer.len() >= BUFFERED_ITEMS
            && self.commits.is_empty()
            && self.closing.is_empty()
            && self.stashed.is_empty()
        {
            let Some(out) = self.out.clone() else { break };
            tokio::select! {
                permit = out.reserve() => match permit {
                    Ok(p) => p.send(self.buffer.pop_front().expect("a full buffer")),
                    Err(_) => { self.out = None; self.buffer.clear(); }
                },
                command = self.commands.recv() => match command {
                    Some(c) => self.stashed.push_back(c),
                    None => return ControlFlow::Break(()),
                },
            }
        }
        ControlFlow::Continue(())
    }
}

/// The consumers of the log under `prefix`: name, committed position, and lag behind the
/// writer's durable end in entries and bytes (PROTOCOL.md §5, "Lag"), by name.
pub async fn consumers(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
) -> Result<Vec<ConsumerInfo>, Error> {
    let inspection = crate::admin::inspect(store.clone(), prefix).await?;
    let lister = ConsumerLister::new(prefix, inspection);
    let found = drive(lister, store, Instant::now(), Gather(None)).await;
    Ok(found.0.ok_or(Error::Closed)??)
}

/// Keeps the lister's one result.
struct Gather(Option<Result<Vec<ConsumerInfo>, FatalError>>);

impl Role for Gather {
    type Machine = ConsumerLister;
    type Command = Infallible;

    async fn event(&mut self, event: Result<Vec<ConsumerInfo>, FatalError>) -> ControlFlow<()> {
        self.0 = Some(event);
        ControlFlow::Continue(())
    }
}
