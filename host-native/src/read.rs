//! Reading a log with the core's reader machine: all at once ([`read_log`]) or following it
//! ([`Tailer`]).

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use object_store::ObjectStore;
use tidewal_core::arrow::ArrowCodec;
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
        /// The rows.
        batch: RecordBatch,
    },
    /// Everything durable so far was yielded; the next entry would be at `position`.
    CaughtUp {
        /// Where the log ends for now.
        position: u64,
    },
}

/// A reader task's role: what it reads goes to `out`, decoded; it stops when nobody listens.
struct Deliver {
    codec: ArrowCodec,
    out: mpsc::Sender<Result<Item, Error>>,
}

impl Role for Deliver {
    type Machine = Reader;
    type Command = Infallible;

    async fn next_command(&mut self) -> Option<Infallible> {
        self.out.closed().await;
        None
    }

    async fn event(&mut self, event: ReadEvent) -> ControlFlow<()> {
        let items: Vec<Result<Item, Error>> = match event {
            ReadEvent::Records { position, records } => records
                .iter()
                .map(|r| {
                    self.codec
                        .decode_record(r)
                        .map(|batch| Item::Batch { position, batch })
                        .map_err(Error::from)
                })
                .collect(),
            ReadEvent::CaughtUp { position } => vec![Ok(Item::CaughtUp { position })],
            ReadEvent::Fatal(e) => vec![Err(e.into())],
            _ => Vec::new(),
        };
        for item in items {
            let failed = item.is_err();
            if self.out.send(item).await.is_err() || failed {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Starts a reader task on `store`.
fn spawn_reader(
    store: Arc<dyn ObjectStore>,
    cfg: ReaderConfig,
    codec: ArrowCodec,
    out: mpsc::Sender<Result<Item, Error>>,
) -> tokio::task::JoinHandle<()> {
    let reader = Reader::new(cfg, Box::new(codec.clone()), rand::random(), Duration::ZERO);
    tokio::spawn(async move {
        drive(reader, store, Instant::now(), Deliver { codec, out }).await;
    })
}

/// Where a read starts and ends, and whether it follows the log.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Where to start (a start below what the log still holds fails with `Truncated`).
    pub from: Start,
    /// Stop before this position (the read then ends, following or not).
    pub until: Option<u64>,
    /// Keep reading new entries as they become durable.
    pub follow: bool,
    /// How often a follower looks for new entries.
    pub poll_interval: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            from: Start::Beginning,
            until: None,
            follow: false,
            poll_interval: ReaderConfig::default().poll_interval,
        }
    }
}

fn config(prefix: &str, follow: bool, poll_interval: Duration) -> ReaderConfig {
    let options = ReadOptions {
        follow,
        poll_interval,
        ..ReadOptions::default()
    };
    config_of(prefix, &options)
}

fn config_of(prefix: &str, o: &ReadOptions) -> ReaderConfig {
    ReaderConfig {
        prefix: prefix.to_string(),
        from: o.from,
        until: o.until,
        follow: o.follow,
        poll_interval: o.poll_interval,
        ..ReaderConfig::default()
    }
}

/// Reads every durable record of the log under `prefix`, in order.
pub async fn read_log(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    codec: &ArrowCodec,
) -> Result<Vec<RecordBatch>, Error> {
    let (tx, mut rx) = mpsc::channel(64);
    let cfg = config(prefix, false, Duration::ZERO);
    let task = spawn_reader(store, cfg, codec.clone(), tx);
    let mut out = Vec::new();
    while let Some(item) = rx.recv().await {
        if let Item::Batch { batch, .. } = item? {
            out.push(batch);
        }
    }
    task.await.map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(out)
}

/// Follows a log without writing: generations, then the WAL, then new entries as they
/// become durable (polled every `poll_interval`). Dropping it stops the polling.
pub struct Tailer {
    items: mpsc::Receiver<Result<Item, Error>>,
}

impl Tailer {
    /// Starts following the log under `prefix` (which must have `schema`).
    pub fn open(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        poll_interval: Duration,
    ) -> Result<Tailer, Error> {
        Self::start(store, schema, config(prefix, true, poll_interval))
    }

    /// Reads the log as `options` say: from where, until where, following or not.
    pub fn with_options(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
        options: &ReadOptions,
    ) -> Result<Tailer, Error> {
        Self::start(store, schema, config_of(prefix, options))
    }

    /// Reads the log once, as a stream: it ends after the first `CaughtUp`.
    pub fn scan(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        schema: SchemaRef,
    ) -> Result<Tailer, Error> {
        Self::start(store, schema, config(prefix, false, Duration::ZERO))
    }

    fn start(
        store: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        cfg: ReaderConfig,
    ) -> Result<Tailer, Error> {
        let codec = crate::codec(schema)?;
        let (tx, items) = mpsc::channel(64);
        spawn_reader(store, cfg, codec, tx);
        Ok(Tailer { items })
    }

    /// The next item; `None` after a failure was yielded.
    pub async fn next(&mut self) -> Option<Result<Item, Error>> {
        self.items.recv().await
    }
}
