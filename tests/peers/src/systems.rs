//! Each system behind the same three workloads: `durable` (one durable write per call,
//! `depth` outstanding), `group` (many small writes, 10 ms flush interval) and `replay`
//! (reopen a log of `total` bytes; MB/s of the reopen). Each uses its own best settings for
//! the workload, named here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

use crate::bench::{closed_loop, Run};
use crate::payload;
use crate::store::Counting;

/// Group commit workload: writes of this size from this many writers.
pub const GROUP_WRITE: usize = 1 << 10;
pub const GROUP_WRITERS: usize = 64;
pub const GROUP_INTERVAL: Duration = Duration::from_millis(10);
/// Replay workload: the log is written in writes of this size, `GROUP_WRITERS` outstanding,
/// each system group-committing them every `GROUP_INTERVAL` (as a busy writer would).
pub const REPLAY_WRITE: usize = 64 << 10;

pub const SYSTEMS: &[&str] = &["tidewal", "raw", "slatedb", "lance"];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub async fn durable(
    system: &str,
    store: Arc<Counting>,
    size: usize,
    depth: usize,
    secs: f64,
    max: usize,
) -> Result<Run, String> {
    match system {
        "tidewal" => tidewal_wal::durable(store, size, depth, secs, max).await,
        "raw" => raw_durable(store, size, depth, secs, max).await,
        #[cfg(feature = "slatedb")]
        "slatedb" => peers_slatedb::durable(store, size, depth, secs, max).await,
        #[cfg(feature = "lance")]
        "lance" => peers_lance::durable(store, size, depth, secs, max).await,
        other => Err(format!("system {other} not built in")),
    }
}

pub async fn group(system: &str, store: Arc<Counting>, secs: f64) -> Result<Run, String> {
    match system {
        "tidewal" => tidewal_wal::group(store, secs).await,
        #[cfg(feature = "slatedb")]
        "slatedb" => peers_slatedb::group(store, secs).await,
        #[cfg(feature = "lance")]
        "lance" => peers_lance::group(store, secs).await,
        other => Err(format!("system {other} has no group commit workload")),
    }
}

/// MB/s of reopening (and replaying) a log of `total` bytes written in `REPLAY_WRITE` writes.
pub async fn replay(system: &str, store: Arc<Counting>, total: usize) -> Result<f64, String> {
    match system {
        "tidewal" => tidewal_wal::replay(store, total).await,
        "raw" => raw_replay(store, total).await,
        #[cfg(feature = "slatedb")]
        "slatedb" => peers_slatedb::replay(store, total).await,
        #[cfg(feature = "lance")]
        "lance" => peers_lance::replay(store, total).await,
        other => Err(format!("system {other} not built in")),
    }
}

/// What a timed loop of writes does: `writers` outstanding writes of `size` bytes until
/// `secs` pass or `max_bytes` are written.
#[derive(Clone, Copy)]
struct Load {
    writers: usize,
    size: usize,
    secs: f64,
    max_bytes: usize,
}

impl Load {
    fn durable(size: usize, depth: usize, secs: f64, max_bytes: usize) -> Self {
        Load {
            writers: depth,
            size,
            secs,
            max_bytes,
        }
    }

    fn group(secs: f64) -> Self {
        Load::durable(GROUP_WRITE, GROUP_WRITERS, secs, usize::MAX)
    }

    /// The replay workload's log: `total` bytes.
    fn replay_log(total: usize) -> Self {
        Load::durable(REPLAY_WRITE, GROUP_WRITERS, f64::INFINITY, total)
    }

    async fn run<F, Fut>(self, write: F) -> Result<Run, String>
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send,
    {
        closed_loop(self.writers, self.secs, self.size, self.max_bytes, write).await
    }
}

/// The limit line: create-if-absent puts of the payload's bytes, `depth` at a time.
async fn raw_durable(
    store: Arc<Counting>,
    size: usize,
    depth: usize,
    secs: f64,
    max: usize,
) -> Result<Run, String> {
    let body = Bytes::from(payload::ipc(&payload::batch(0, size)));
    Load::durable(size, depth, secs, max)
        .run(move |i| {
            let (store, body) = (store.clone(), body.clone());
            async move {
                let path = Path::from(format!("raw/{i:020}"));
                store
                    .put_opts(&path, body.into(), PutOptions::from(PutMode::Create))
                    .await
                    .map(drop)
                    .map_err(err)
            }
        })
        .await
}

/// The limit line for replay: pipelined GETs of one object per write, 16 at a time.
async fn raw_replay(store: Arc<Counting>, total: usize) -> Result<f64, String> {
    use futures::{StreamExt, TryStreamExt};
    raw_durable(store.clone(), REPLAY_WRITE, 16, f64::MAX, total).await?;
    let started = Instant::now();
    let paths: Vec<Path> = store
        .list(Some(&Path::from("raw")))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(err)?;
    let bytes: usize = futures::stream::iter(paths.into_iter().map(|p| {
        let store = store.clone();
        async move { store.get(&p).await?.bytes().await.map(|b| b.len()) }
    }))
    .buffer_unordered(16)
    .try_fold(0, |acc, n| async move { Ok(acc + n) })
    .await
    .map_err(err)?;
    Ok(bytes as f64 / 1e6 / started.elapsed().as_secs_f64())
}

mod tidewal_wal {
    use super::*;
    use ::tidewal::{Options, Wal};

    fn options() -> Options {
        let mut o = Options::default();
        o.writer.max_entry_bytes = 64 << 20;
        o.writer.unflushed_budget = 8 << 30;
        o.writer.memtable_bytes = 4 << 30;
        o
    }

    /// Durable appends of a batch of `load.size` bytes.
    async fn appends(wal: Arc<Wal>, load: Load) -> Result<Run, String> {
        let batch = payload::batch(0, load.size);
        load.run(move |_| {
            let handle = wal.append_nowait(&batch);
            async move { handle.map_err(err)?.await.map(drop).map_err(err) }
        })
        .await
    }

    /// No group commit interval, `depth` entry puts in flight: a write goes out at once in its
    /// own entry (it would join the writes waiting for a free slot only if all were busy).
    pub async fn durable(
        store: Arc<Counting>,
        size: usize,
        depth: usize,
        secs: f64,
        max: usize,
    ) -> Result<Run, String> {
        let mut o = options();
        o.writer.wal_only = true;
        // TIDEWAL_WINDOW: a smaller window than the depth, so writes share entries
        // (docs/benchmarks/README.md measures it by hand; the matrix keeps window = depth).
        o.writer.max_in_flight = std::env::var("TIDEWAL_WINDOW")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(depth as u32);
        o.writer.group_commit.max_bytes = 8 << 20;
        o.writer.group_commit.interval = Duration::ZERO;
        timed(store, o, Load::durable(size, depth, secs, max)).await
    }

    async fn timed(store: Arc<Counting>, o: Options, load: Load) -> Result<Run, String> {
        let wal = Arc::new(
            Wal::open(store, "tidewal", payload::schema(), o)
                .await
                .map_err(err)?,
        );
        let run = appends(wal.clone(), load).await?;
        wal.close().await.map_err(err)?;
        Ok(run)
    }

    /// Many writers, entries sealed every 10 ms (or at 1 MiB).
    pub async fn group(store: Arc<Counting>, secs: f64) -> Result<Run, String> {
        let mut o = options();
        o.writer.wal_only = true;
        o.writer.group_commit.interval = GROUP_INTERVAL;
        timed(store, o, Load::group(secs)).await
    }

    /// Writes `total` bytes (group commit every 10 ms), leaves them unflushed (a crash),
    /// times a new writer's open.
    pub async fn replay(store: Arc<Counting>, total: usize) -> Result<f64, String> {
        let mut o = options();
        o.writer.group_commit.interval = GROUP_INTERVAL;
        let wal = Arc::new(
            Wal::open(store.clone(), "tidewal", payload::schema(), o.clone())
                .await
                .map_err(err)?,
        );
        appends(wal, Load::replay_log(total)).await?;
        let started = Instant::now();
        let reopened = Wal::open(store, "tidewal", payload::schema(), o)
            .await
            .map_err(err)?;
        let secs = started.elapsed().as_secs_f64();
        drop(reopened);
        Ok(total as f64 / 1e6 / secs)
    }
}

#[cfg(feature = "slatedb")]
mod peers_slatedb {
    use super::*;
    use slatedb::config::{CloseOptions, FlushType, Settings};
    use slatedb::Db;

    async fn open(store: Arc<Counting>, flush_interval: Duration) -> Result<Db, String> {
        let settings = Settings {
            flush_interval: Some(flush_interval),
            l0_sst_size_bytes: 1 << 30,
            max_unflushed_bytes: 8 << 30,
            compactor_options: None,
            garbage_collector_options: None,
            ..Settings::default()
        };
        Db::builder("slatedb", store as Arc<dyn ObjectStore>)
            .with_settings(settings)
            .build()
            .await
            .map_err(err)
    }

    /// `put` + `await_durable` of the batch's IPC bytes (key: the write's number).
    async fn puts(db: &Db, load: Load) -> Result<Run, String> {
        let value = Bytes::from(payload::ipc(&payload::batch(0, load.size)));
        let db = db.clone();
        load.run(move |i| {
            let (db, value) = (db.clone(), value.clone());
            async move {
                let handle = db.put(i.to_be_bytes(), value).await.map_err(err)?;
                handle.await_durable().await.map_err(err)
            }
        })
        .await
    }

    async fn timed(store: Arc<Counting>, flush: Duration, load: Load) -> Result<Run, String> {
        let db = open(store, flush).await?;
        let run = puts(&db, load).await?;
        db.close().await.map_err(err)?;
        Ok(run)
    }

    /// `put` + `await_durable`, `depth` outstanding; the WAL flushes every 1 ms (its shortest
    /// practical interval: a flush uploads what the outstanding writes put in the buffer).
    pub async fn durable(
        store: Arc<Counting>,
        size: usize,
        depth: usize,
        secs: f64,
        max: usize,
    ) -> Result<Run, String> {
        let load = Load::durable(size, depth, secs, max);
        timed(store, Duration::from_millis(1), load).await
    }

    pub async fn group(store: Arc<Counting>, secs: f64) -> Result<Run, String> {
        timed(store, GROUP_INTERVAL, Load::group(secs)).await
    }

    /// Writes `total` bytes, closes leaving them in the WAL, times the reopen (WAL replay).
    pub async fn replay(store: Arc<Counting>, total: usize) -> Result<f64, String> {
        let db = open(store.clone(), GROUP_INTERVAL).await?;
        puts(&db, Load::replay_log(total)).await?;
        db.close_with_options(CloseOptions {
            flush_type: Some(FlushType::Wal),
        })
        .await
        .map_err(err)?;
        let started = Instant::now();
        let reopened = open(store, GROUP_INTERVAL).await?;
        let secs = started.elapsed().as_secs_f64();
        reopened
            .close_with_options(CloseOptions { flush_type: None })
            .await
            .map_err(err)?;
        Ok(total as f64 / 1e6 / secs)
    }
}

#[cfg(feature = "lance")]
mod peers_lance {
    use super::*;
    use arrow_array_58::RecordBatch as Batch58;
    use lance::dataset::mem_wal::{ShardWriter, ShardWriterConfig, WalAppender};

    fn lance_store(store: Arc<Counting>) -> Arc<lance::io::ObjectStore> {
        let url = url::Url::parse("bench:///lance").expect("static url");
        Arc::new(lance::io::ObjectStore::new(
            store as Arc<dyn ObjectStore>,
            url,
            None,
            None,
            false,
            false,
            64,
            3,
            None,
        ))
    }

    fn batch58(size: usize) -> Result<Batch58, String> {
        let bytes = payload::ipc(&payload::batch(0, size));
        let mut reader =
            arrow_ipc_58::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                .map_err(err)?;
        reader.next().ok_or("no batch")?.map_err(err)
    }

    /// `WalAppender::append` (one WAL object per call; the appender serializes calls).
    pub async fn durable(
        store: Arc<Counting>,
        size: usize,
        depth: usize,
        secs: f64,
        max: usize,
    ) -> Result<Run, String> {
        let shard = uuid::Uuid::new_v4();
        let appender = Arc::new(
            WalAppender::open(lance_store(store), Path::from("lance"), shard, 0)
                .await
                .map_err(err)?,
        );
        let batch = batch58(size)?;
        Load::durable(size, depth, secs, max)
            .run(move |_| {
                let (appender, batch) = (appender.clone(), batch.clone());
                async move { appender.append(vec![batch]).await.map(drop).map_err(err) }
            })
            .await
    }

    fn config(shard: uuid::Uuid, interval: Duration) -> ShardWriterConfig {
        let mut c = ShardWriterConfig::new(shard);
        c.durable_write = true;
        c.max_wal_flush_interval = Some(interval);
        // Large enough that nothing freezes during a run (replay stays a WAL replay); Lance
        // checks the memtable fits under its backpressure ceiling.
        c.max_memtable_size = 512 << 20;
        c.max_memtable_rows = 1 << 23;
        c.max_memtable_batches = 1 << 17;
        c.max_unflushed_memtable_bytes = 2 << 30;
        c
    }

    async fn writer(
        store: Arc<Counting>,
        shard: uuid::Uuid,
        interval: Duration,
    ) -> Result<ShardWriter, String> {
        let schema = Arc::new(batch58(1)?.schema().as_ref().clone());
        ShardWriter::open(
            lance_store(store),
            Path::from("lance"),
            "bench:///lance",
            config(shard, interval),
            schema,
            vec![],
        )
        .await
        .map_err(err)
    }

    /// Durable `ShardWriter::put`s of a batch of `load.size` bytes.
    async fn puts(w: Arc<ShardWriter>, load: Load) -> Result<Run, String> {
        let batch = batch58(load.size)?;
        load.run(move |_| {
            let (w, batch) = (w.clone(), batch.clone());
            async move { w.put(vec![batch]).await.map(drop).map_err(err) }
        })
        .await
    }

    /// `ShardWriter::put` with durable writes; the WAL flushes every 10 ms.
    pub async fn group(store: Arc<Counting>, secs: f64) -> Result<Run, String> {
        let w = Arc::new(writer(store, uuid::Uuid::new_v4(), GROUP_INTERVAL).await?);
        puts(w, Load::group(secs)).await
    }

    /// Writes `total` bytes through a ShardWriter, abandons it, times the reopen (replay into
    /// the memtable).
    pub async fn replay(store: Arc<Counting>, total: usize) -> Result<f64, String> {
        let shard = uuid::Uuid::new_v4();
        let w = Arc::new(writer(store.clone(), shard, GROUP_INTERVAL).await?);
        puts(w, Load::replay_log(total)).await?;
        let started = Instant::now();
        let reopened = writer(store, shard, GROUP_INTERVAL).await?;
        let secs = started.elapsed().as_secs_f64();
        drop(reopened);
        Ok(total as f64 / 1e6 / secs)
    }
}
