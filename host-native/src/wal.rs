//! The Arrow-native API of a log: open, append, flush, close, scan, stats.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use object_store::ObjectStore;
use tidewal_core::arrow::ArrowCodec;
use tidewal_core::{
    Ack, Collected, CompactionPass, Dropped, Record, RestoreTarget, Restored, Session,
    SessionEvent, Stats, WriterConfig,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::{drive, Role};
use crate::read::{Batches, ReadOptions, Tailer};
use tidewal_core::Error;

/// Called during a long replay at open with the WAL entries and bytes replayed so far (every
/// `tidewal_core::REPLAY_PROGRESS_STEP` bytes; a short replay calls it never).
pub type ReplayProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How a writer behaves.
#[derive(Clone)]
pub struct Options {
    /// The core's settings (its `prefix` is replaced by the one given to `open`).
    pub writer: WriterConfig,
    /// How long an append waits for room under backpressure before it fails.
    pub backpressure_timeout: Duration,
    /// Told the progress of a long replay at open, if set (e.g. to draw a progress bar).
    pub on_replay: Option<ReplayProgress>,
    /// Open even while this process has a writer of the log (same URL, or same store and
    /// prefix): the new writer fences that one, as a writer in another process would. Off:
    /// such an open fails with [`Error::AlreadyOpen`], nothing written.
    pub take_over: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            writer: WriterConfig::default(),
            backpressure_timeout: Session::DEFAULT_BACKPRESSURE_TIMEOUT,
            on_replay: None,
            take_over: false,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("writer", &self.writer)
            .field("backpressure_timeout", &self.backpressure_timeout)
            .field(
                "on_replay",
                &self.on_replay.as_ref().map(|_| "Fn(entries, bytes)"),
            )
            .field("take_over", &self.take_over)
            .finish()
    }
}

/// A writer of one log. Cheap to share by reference across tasks; many logs can live on one
/// runtime. Dropping every handle stops its task (pending appends then fail). Call it from
/// runtime tasks rather than from a `block_on` thread (`#[tokio::main]`'s body): waking the
/// writer's task from outside the runtime's workers costs a thread hand-off per call.
pub struct Wal {
    commands: mpsc::UnboundedSender<Command>,
    /// Set once, with the fence error, when a newer writer takes the log over.
    fenced: watch::Receiver<Option<Error>>,
    codec: ArrowCodec,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    epoch: u64,
    /// Its hold on the log, let go when it closes, is fenced or is dropped.
    registration: Arc<crate::registry::Registration>,
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.registration.release();
    }
}

/// Resolves when its append is durable (or failed).
pub struct AppendHandle(oneshot::Receiver<Result<Ack, Error>>);

impl Future for AppendHandle {
    type Output = Result<Ack, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

impl Wal {
    /// Opens (or creates) the log under `prefix` of `store`: claims a new epoch, fences older
    /// writers and replays what they left. Resolves once this writer owns the log. Refused,
    /// nothing written: a log this process has a writer of ([`Error::AlreadyOpen`], unless
    /// [`Options::take_over`]), a store that refuses the credentials or has no such bucket
    /// (`Store`, saying which), bad options (`Invalid`).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        options: Options,
    ) -> Result<Wal, Error> {
        let key = crate::registry::store_key(&store, prefix);
        Wal::open_as(store, prefix, schema, options, key, prefix).await
    }

    /// [`Wal::open`] of the log `log` (its name in errors), held in the registry as `key`.
    async fn open_as(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        options: Options,
        key: String,
        log: &str,
    ) -> Result<Wal, Error> {
        let registration = crate::registry::Registration::claim(key, log, options.take_over)?;
        Wal::start(store, prefix, schema, options, (registration, log)).await
    }

    async fn start(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        options: Options,
        (registration, log): (crate::registry::Registration, &str),
    ) -> Result<Wal, Error> {
        let codec = crate::codec(schema)?;
        let mut cfg = options.writer;
        cfg.prefix = prefix.to_string();
        let origin = Instant::now();
        // Entry times (PROTOCOL.md §2) are this wall clock plus the monotonic time since.
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        cfg.unix_ms_at_origin = cfg
            .unix_ms_at_origin
            .or_else(|| wall.ok().map(|d| d.as_millis() as u64));
        let (ready, opened) = oneshot::channel();
        let timeout = options.backpressure_timeout;
        let session = Session::open(
            cfg,
            Box::new(codec.clone()),
            rand::random(),
            timeout,
            reply(ready),
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        crate::store::preflight(&store, prefix, log).await?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (told, fenced) = watch::channel(None);
        let registration = Arc::new(registration);
        let role = Commands {
            rx,
            told,
            on_replay: options.on_replay,
            registration: registration.clone(),
        };
        tokio::spawn(drive(session, store.clone(), origin, role));
        let epoch = match opened.await.unwrap_or(Err(Error::Closed)) {
            Ok(epoch) => epoch,
            Err(e) => {
                registration.release();
                return Err(e);
            }
        };
        Ok(Wal {
            commands,
            fenced,
            codec,
            store,
            prefix: prefix.to_string(),
            epoch,
            registration,
        })
    }

    /// Opens a log by URL: `memory://`, `file:///abs/dir`, a plain directory path (created
    /// if missing) or `s3://bucket/prefix` (see [`crate::store_for`]). Errors name the URL.
    pub async fn open_url(url: &str, schema: SchemaRef, options: Options) -> Result<Wal, Error> {
        let (store, prefix, key) = crate::url::resolve(url, true)?;
        let key = key.unwrap_or_else(|| crate::registry::store_key(&store, &prefix));
        Wal::open_as(store, &prefix, schema, options, key, url).await
    }

    /// The epoch this writer claimed.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The log's schema.
    pub fn schema(&self) -> SchemaRef {
        self.codec.schema_ref()
    }

    /// Queues `batch` and returns at once; the handle resolves when it is durable. The batch
    /// is checked against the log's schema here: a mismatch is refused with nothing written.
    pub fn append_nowait(&self, batch: &RecordBatch) -> Result<AppendHandle, Error> {
        self.append_group_nowait(std::slice::from_ref(batch))
    }

    /// Queues `batches` as one append and returns at once: they go into one entry, in order,
    /// so a reader sees all of them or none. Every batch is checked first: one that does not
    /// fit the log refuses the whole group with nothing written. Zero-row batches are left
    /// out; a group with no rows at all is refused.
    pub fn append_group_nowait(&self, batches: &[RecordBatch]) -> Result<AppendHandle, Error> {
        let records = batches
            .iter()
            .map(|b| self.codec.encode_batch(b))
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append { records, reply })?;
        Ok(AppendHandle(rx))
    }

    /// Appends `batches` as one append (see [`Wal::append_group_nowait`]) and waits until it
    /// is durable.
    pub async fn append_group(&self, batches: &[RecordBatch]) -> Result<Ack, Error> {
        self.append_group_nowait(batches)?.await
    }

    /// Appends `batch` and waits until it is durable.
    pub async fn append(&self, batch: &RecordBatch) -> Result<Ack, Error> {
        self.append_nowait(batch)?.await
    }

    /// Seals pending appends into an entry now and waits until all of them are durable.
    pub async fn flush(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Flush { reply })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Writes the memtable (every durable entry not yet flushed) as a generation file and
    /// commits it; returns its id, or `None` if there was nothing to flush.
    pub async fn flush_memtable(&self) -> Result<Option<u64>, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::FlushMemtable { reply })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// WAL-only logs: drops every entry below `position` (the replay cursor moves there, or to
    /// the first entry past it; the dropped entries are deleted) and returns the committed
    /// cursor. Refused for a log with a memtable, past the last durable entry, or past the
    /// committed position of a named consumer (`HeldBack`: the writer checks them,
    /// PROTOCOL.md §4 "Retention"; [`Wal::truncate_before`] with `force` passes them).
    pub async fn truncate(&self, position: u64) -> Result<u64, Error> {
        self.truncate_checked(position, false).await
    }

    async fn truncate_checked(&self, position: u64, force: bool) -> Result<u64, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Truncate {
            position,
            force,
            reply,
        })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Retention (PROTOCOL.md §4 "Retention"): drops every entry below `position`, whole
    /// leading generations first (with a memtable, it is flushed first, so every durable
    /// entry may be dropped; WAL-only, the cursor moves as [`Wal::truncate`] does). Refused,
    /// nothing written, for a position past the log's end (`Invalid`) or past the committed
    /// position of a named consumer (`HeldBack`, naming the lowest) unless `force`. Returns
    /// what it dropped and the log's new first position.
    pub async fn truncate_before(&self, position: u64, force: bool) -> Result<Dropped, Error> {
        let m = self.flushed_manifest().await?;
        let end = if m.wal_only {
            let durable = self.stats().await?.writer.durable_position;
            durable
                .map_or(m.replay_cursor, |d| d + 1)
                .max(m.replay_cursor)
        } else {
            m.replay_cursor
        };
        if position > end {
            return Err(Error::Invalid(format!(
                "position {position} is past the log's end {end}"
            )));
        }
        if position <= m.dropped_before {
            return Ok(Dropped {
                first_position: m.dropped_before,
                ..Dropped::default()
            });
        }
        // Refused before anything is written when a listing now already says so; the
        // writer checks again after announcing the drop (a consumer created meanwhile).
        let listed = crate::consumers(self.store.clone(), &self.prefix).await?;
        let named = listed.iter().map(|c| (c.name.as_str(), c.position));
        let point = tidewal_core::retention::drop_point(position, named, force)?;
        if m.wal_only && point <= m.replay_cursor {
            // Everything below a WAL-only cursor is dropped already (or a fence window).
            return Ok(Dropped {
                first_position: m.dropped_before,
                ..Dropped::default()
            });
        }
        if m.wal_only {
            self.truncate_checked(point, force).await?;
            return Ok(Dropped {
                first_position: point,
                ..Dropped::default()
            });
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::DropBefore {
            position: point,
            force,
            reply,
        })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Retention by age: drops the leading generations whose entries all carry a time older
    /// than `age` by this host's wall clock (an untimed one stops it), through
    /// [`Wal::truncate_before`] and its consumer rule. WAL-only logs are refused (`Invalid`):
    /// their entries' times are read only by a walk.
    pub async fn drop_older_than(&self, age: Duration, force: bool) -> Result<Dropped, Error> {
        let m = self.flushed_manifest().await?;
        if m.wal_only {
            return Err(Error::Invalid(
                "a WAL-only log keeps no generations: truncate it --before a position".into(),
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let cutoff = now.saturating_sub(age).as_millis() as u64;
        let old = m
            .generations
            .iter()
            .take_while(|g| g.untimed == 0 && g.max_time.is_some_and(|t| t < cutoff))
            .last();
        let point = old.map_or(m.dropped_before, |g| g.last_position + 1);
        self.truncate_before(point.max(m.dropped_before), force)
            .await
    }

    /// The committed manifest once every durable entry is in a generation (WAL-only: as it is).
    async fn flushed_manifest(&self) -> Result<tidewal_core::Manifest, Error> {
        let m = crate::inspect(self.store.clone(), &self.prefix)
            .await?
            .manifest;
        let m = m.ok_or_else(|| Error::Invalid("no log here".into()))?;
        if m.wal_only {
            return Ok(m);
        }
        self.flush_memtable().await?;
        let m = crate::inspect(self.store.clone(), &self.prefix)
            .await?
            .manifest;
        m.ok_or_else(|| Error::Invalid("no log here".into()))
    }

    /// Restores the log (PROTOCOL.md §4 "Restore"): one manifest version whose generations
    /// hold only the entries below a position, the entries up to a time (unix ms), or a
    /// version's entries followed by what the log gained past its cursor since (the version
    /// below a restore undoes it). The cursor does not move back: new appends land past it.
    /// Flushes first (pending appends, then the memtable), so every durable entry counts.
    /// Refused, nothing written, with [`Error::Restore`] naming what is wrong: a WAL-only
    /// log, a position past the end or below what was dropped, a time before the first
    /// entry, a version never committed or no longer kept, another restore in flight.
    pub async fn restore(&self, target: RestoreTarget) -> Result<Restored, Error> {
        self.flush().await?;
        // A WAL-only log has no memtable: the restore itself refuses it, by name.
        match self.flush_memtable().await {
            Ok(_) => {}
            Err(Error::Invalid(_)) => {}
            Err(e) => return Err(e),
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Restore { target, reply })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Runs one full compaction pass (PROTOCOL.md §4 "Compaction": runs of adjacent
    /// generations below the target merged while any is left, whether or not background
    /// compaction is on) and returns what it merged. Refused for a WAL-only log.
    pub async fn compact(&self) -> Result<CompactionPass, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Compact { reply })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Collects the fences, their windows' orphans and their intents that lie below the
    /// cursor (PROTOCOL.md §4 "Collecting fences") and returns how many of each it deleted.
    /// Waits first, if needed, until this writer's claim has outlived every older writer's
    /// lease ([`Wal::collectable_in`]: up to `L * 1.1 + 1 s`, 34 s with the default lease).
    pub async fn collect_garbage(&self) -> Result<Collected, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::CollectGarbage { reply })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// How long [`Wal::collect_garbage`] would wait now for older writers' leases to run out
    /// (zero once it need not).
    pub async fn collectable_in(&self) -> Result<Duration, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::CollectableIn { reply })?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Resolves, with the `Fenced` error, once this writer has found that a newer one took
    /// the log over (its next put or manifest commit meets the newer writer's objects), for a
    /// task that wants to know without waiting on an append of its own; every pending and
    /// later call fails with the same error.
    pub async fn fenced(&self) -> Error {
        let mut told = self.fenced.clone();
        let error = match told.wait_for(Option::is_some).await {
            Ok(fence) => fence.clone(),
            Err(_) => None,
        };
        // The writer's task only ends with the last handle, so it cannot end first.
        error.unwrap_or(Error::Closed)
    }

    /// Drains: every pending append becomes durable, the memtable is flushed, the writer
    /// stops. Later calls fail with [`Error::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Close { reply })?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Counters and gauges of the writer, and its recent acknowledgement latency.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stats { reply })?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Every durable row of the log, in order (generations, then the WAL), as a stream of
    /// batches read ahead at most [`ReadOptions::default`]'s bytes beyond what was taken.
    /// (`futures::TryStreamExt::try_collect` gathers it into a `Vec`.)
    pub fn scan(&self) -> Batches {
        let (store, codec) = (self.store.clone(), self.codec.clone());
        Tailer::spawn(store, codec, &self.prefix, &ReadOptions::default(), None).batches()
    }

    /// Reads the log as `options` say (range, follow, columns, read-ahead bytes), as a stream
    /// of [`crate::Item`]s. Fails at once only for a column the log does not have.
    pub fn read(&self, options: &ReadOptions) -> Result<Tailer, Error> {
        Tailer::start(
            self.store.clone(),
            self.codec.clone(),
            &self.prefix,
            options,
        )
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a `Wal` asks its writer task.
enum Command {
    Append {
        records: Vec<Record>,
        reply: Reply<Ack>,
    },
    Flush {
        reply: Reply<()>,
    },
    FlushMemtable {
        reply: Reply<Option<u64>>,
    },
    Truncate {
        position: u64,
        force: bool,
        reply: Reply<u64>,
    },
    Close {
        reply: Reply<()>,
    },
    Compact {
        reply: Reply<CompactionPass>,
    },
    CollectGarbage {
        reply: Reply<Collected>,
    },
    CollectableIn {
        reply: oneshot::Sender<Duration>,
    },
    DropBefore {
        position: u64,
        force: bool,
        reply: Reply<Dropped>,
    },
    Restore {
        target: RestoreTarget,
        reply: Reply<Restored>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
}

/// The session's way to answer a caller waiting on `tx`.
fn reply<T: Send + 'static>(tx: Reply<T>) -> tidewal_core::Reply<T> {
    Box::new(move |result| drop(tx.send(result)))
}

/// The writer task's role: commands from the `Wal` handles, replies straight to callers,
/// and the fence told to whoever waits in [`Wal::fenced`].
struct Commands {
    rx: mpsc::UnboundedReceiver<Command>,
    told: watch::Sender<Option<Error>>,
    on_replay: Option<ReplayProgress>,
    /// This writer's hold on the log, let go once it closes or is fenced.
    registration: Arc<crate::registry::Registration>,
}

impl Role for Commands {
    type Machine = Session;
    type Command = Command;

    async fn next_command(&mut self) -> Option<Command> {
        // `None`: every handle is gone, nothing can wait for the writer any more.
        self.rx.recv().await
    }

    fn command(&mut self, s: &mut Session, command: Command, now: Duration) {
        match command {
            Command::Append { records, reply: r } => s.append(records, reply(r), now),
            Command::Flush { reply: r } => s.flush(reply(r), now),
            Command::FlushMemtable { reply: r } => s.flush_memtable(reply(r), now),
            Command::Truncate {
                position,
                force,
                reply: r,
            } => s.truncate(position, force, reply(r), now),
            Command::Close { reply: r } => {
                let registration = self.registration.clone();
                let closed = move |result: Result<(), Error>| {
                    registration.release();
                    drop(r.send(result));
                };
                s.close(Box::new(closed), now)
            }
            Command::Compact { reply: r } => s.compact(reply(r), now),
            Command::DropBefore {
                position,
                force,
                reply: r,
            } => s.drop_before(position, force, reply(r), now),
            Command::Restore { target, reply: r } => s.restore(target, reply(r), now),
            Command::Stats { reply } => drop(reply.send(s.stats())),
            Command::CollectGarbage { reply: r } => s.collect_garbage(reply(r), now),
            Command::CollectableIn { reply } => {
                let at = s.collectable_at().unwrap_or(now);
                let _ = reply.send(at.saturating_sub(now));
            }
        }
    }

    async fn event(&mut self, event: SessionEvent) -> ControlFlow<()> {
        match event {
            SessionEvent::Fenced(e) => {
                self.registration.release();
                drop(self.told.send_replace(Some(e)))
            }
            SessionEvent::Replaying { entries, bytes } => {
                if let Some(tell) = &self.on_replay {
                    tell(entries, bytes);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
