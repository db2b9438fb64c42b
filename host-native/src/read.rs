//! Reading a log with the core's reader machine, as a stream ([`Tailer`], [`Batches`]) whose
//! read-ahead is bounded in bytes: the stream releases a batch's bytes to the reader as its
//! consumer takes the batch (PROTOCOL.md §5 "Flow control"), so a consumer that stops pulling
//! stops the reader after about `read_ahead_bytes`.

use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::Stream;
use object_store::ObjectStore;
use tidewal_core::arrow::{ArrowCodec, Projection};
use tidewal_core::{Error, ReadEvent, Reader, ReaderConfig, Start};
use tokio::sync::mpsc;

use crate::driver::{drive, Role};

/// What a reader yields.
#[derive(Clone, Debug)]
pub enum Item {
    /// A batch stored at a WAL position (several batches can share one position).
    Batch {
        /// WAL position.
        position: u64,
        /// The rows (only the projected columns, if the read named some).
        batch: RecordBatch,
    },
    /// Everything durable so far was yielded; the next entry would be at `position`.
    CaughtUp {
        /// Where the log ends for now.
        position: u64,
    },
}

/// An item on its way to the consumer, with the bytes to release to the reader once taken.
type Delivered = (Result<Item, Error>, u64);

/// Items decoded but not yet taken, at most (the byte bound is the real limit).
const CHANNEL_ITEMS: usize = 64;

/// A reader task's role: what it reads goes to `out`, decoded (projected); releases come
/// back as commands; it stops when the consumer is gone.
struct Deliver {
    codec: ArrowCodec,
    projection: Option<Projection>,
    out: mpsc::Sender<Delivered>,
    releases: mpsc::UnboundedReceiver<u64>,
}

impl Role for Deliver {
    type Machine = Reader;
    type Command = u64;

    async fn next_command(&mut self) -> Option<u64> {
        // `None`: the stream was dropped, nobody will take another item.
        self.releases.recv().await
    }

    fn command(&mut self, reader: &mut Reader, bytes: u64, _now: Duration) {
        reader.release(bytes);
    }

    async fn event(&mut self, event: ReadEvent) -> ControlFlow<()> {
        let items: Vec<Delivered> = match event {
            ReadEvent::Records { position, records } => records
                .iter()
                .map(|r| {
                    let item = self
                        .codec
                        .decode_projected(r, self.projection.as_ref())
                        .map(|batch| Item::Batch { position, batch })
                        .map_err(Error::from);
                    (item, r.payload.len() as u64)
                })
                .collect(),
            ReadEvent::CaughtUp { position } => vec![(Ok(Item::CaughtUp { position }), 0)],
            ReadEvent::Fatal(e) => vec![(Err(e.into()), 0)],
            _ => Vec::new(),
        };
        for item in items {
            let failed = item.0.is_err();
            if self.out.send(item).await.is_err() || failed {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Where a read starts and ends, whether it follows the log, which columns it decodes and
/// how much it reads ahead.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Where to start (a start below what the log still holds fails with `Truncated`).
    pub from: Start,
    /// Stop before this position (the read then ends, following or not).
    pub until: Option<u64>,
    /// Read exactly this manifest version: its generations, below its cursor, no WAL and no
    /// following (PROTOCOL.md §5 "As of a version"). A version no longer kept, or never
    /// committed, fails the read with a typed error naming it.
    pub as_of_version: Option<u64>,
    /// Stop at the first entry whose time (unix ms) is known and past this one (PROTOCOL.md
    /// §5 "Until a time"), following or not.
    pub until_time: Option<u64>,
    /// Keep reading new entries as they become durable.
    pub follow: bool,
    /// How often a follower looks for new entries.
    pub poll_interval: Duration,
    /// Decode only these columns, in this order (`None`: all). A name the log does not have
    /// fails the open with [`Error::UnknownColumn`].
    pub columns: Option<Vec<String>>,
    /// Bytes of records read ahead of what the consumer has taken (PROTOCOL.md §5 "Flow
    /// control"); with the channel's items, about what a read holds besides the batches its
    /// consumer keeps.
    pub read_ahead_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            from: Start::Beginning,
            until: None,
            as_of_version: None,
            until_time: None,
            follow: false,
            poll_interval: ReaderConfig::default().poll_interval,
            columns: None,
            read_ahead_bytes: ReaderConfig::DEFAULT_READ_AHEAD_BYTES,
        }
    }
}

fn config_of(prefix: &str, o: &ReadOptions) -> ReaderConfig {
    ReaderConfig {
        prefix: prefix.to_string(),
        from: o.from,
        until: o.until,
        as_of_version: o.as_of_version,
        until_time: o.until_time,
        follow: o.follow,
        poll_interval: o.poll_interval,
        read_ahead_bytes: o.read_ahead_bytes,
        ..ReaderConfig::default()
    }
}

/// Reads every durable record of the log under `prefix`, in order, into memory (a
/// convenience over [`Tailer`] for small logs and tests).
pub async fn read_log(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    codec: &ArrowCodec,
) -> Result<Vec<RecordBatch>, Error> {
    use futures::TryStreamExt;
    Tailer::start(store, codec.clone(), prefix, &ReadOptions::default())?
        .batches()
        .try_collect()
        .await
}

/// A read of a log without writing: generations, then the WAL, then (following) new entries
/// as they become durable. A [`Stream`] of [`Item`]s; dropping it stops the reader.
pub struct Tailer {
    items: mpsc::Receiver<Delivered>,
    releases: mpsc::UnboundedSender<u64>,
    schema: SchemaRef,
}

impl Tailer {
    /// Starts following the log under `prefix` (which must have `schema`).
    pub fn open(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        poll_interval: Duration,
    ) -> Result<Tailer, Error> {
        let options = ReadOptions {
            follow: true,
            poll_interval,
            ..ReadOptions::default()
        };
        Self::with_options(store, prefix, schema, &options)
    }

    /// Reads the log as `options` say: from where, until where, following or not, which
    /// columns, how far ahead.
    pub fn with_options(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        options: &ReadOptions,
    ) -> Result<Tailer, Error> {
        Self::start(store, crate::codec(schema)?, prefix, options)
    }

    /// Reads the log once, as a stream: it ends after the first `CaughtUp`.
    pub fn scan(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
    ) -> Result<Tailer, Error> {
        Self::with_options(store, prefix, schema, &ReadOptions::default())
    }

    pub(crate) fn start(
        store: Arc<dyn ObjectStore>,
        codec: ArrowCodec,
        prefix: &str,
        options: &ReadOptions,
    ) -> Result<Tailer, Error> {
        let projection = match &options.columns {
            Some(names) => Some(codec.projection(names)?),
            None => None,
        };
        Ok(Self::spawn(store, codec, prefix, options, projection))
    }

    /// Starts the reader task, decoding onto `projection` (the options' columns are not
    /// looked at again).
    pub(crate) fn spawn(
        store: Arc<dyn ObjectStore>,
        codec: ArrowCodec,
        prefix: &str,
        options: &ReadOptions,
        projection: Option<Projection>,
    ) -> Tailer {
        let schema = projection
            .as_ref()
            .map_or_else(|| codec.schema_ref(), Projection::schema);
        let (out, items) = mpsc::channel(CHANNEL_ITEMS);
        let (releases, commands) = mpsc::unbounded_channel();
        let cfg = config_of(prefix, options);
        let reader = Reader::new(cfg, Box::new(codec.clone()), rand::random(), Duration::ZERO);
        let role = Deliver {
            codec,
            projection,
            out,
            releases: commands,
        };
        tokio::spawn(async move {
            drive(reader, store, Instant::now(), role).await;
        });
        Tailer {
            items,
            releases,
            schema,
        }
    }

    /// The schema of the batches it yields (the projected one, if the read named columns).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next item; `None` after a failure was yielded (or at the end of a read that does
    /// not follow).
    pub async fn next(&mut self) -> Option<Result<Item, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Only the batches, as a stream of `Result<RecordBatch>`.
    pub fn batches(self) -> Batches {
        Batches(self)
    }
}

impl Stream for Tailer {
    type Item = Result<Item, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.poll_recv(cx).map(|got| {
            got.map(|(item, bytes)| {
                // Taken: the consumer holds it now, the reader may read further ahead. A
                // reader that has ended no longer listens, which is fine.
                if bytes > 0 {
                    let _ = self.releases.send(bytes);
                }
                item
            })
        })
    }
}

/// The batches of a read, in log order: a [`Stream`] of `Result<RecordBatch>` (see
/// [`Tailer`]; `CaughtUp` items are left out).
pub struct Batches(Tailer);

impl Batches {
    /// The schema of the batches it yields.
    pub fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
}

impl Stream for Batches {
    type Item = Result<RecordBatch, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.0).poll_next(cx) {
                Poll::Ready(Some(Ok(Item::CaughtUp { .. }))) => continue,
                Poll::Ready(Some(Ok(Item::Batch { batch, .. }))) => {
                    return Poll::Ready(Some(Ok(batch)))
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
