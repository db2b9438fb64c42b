//! `tidewal bench`: durable appends against a store, beside a raw create-if-absent put loop
//! at the same concurrency (the physical limit). Prints a table; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};
use tidewal::{Error, Options, Wal};
use tidewal_core::GroupCommit;

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Store label.
    pub store: String,
    /// Payload bytes per append.
    pub size: usize,
    /// Appends (or raw puts) in flight.
    pub depth: u32,
    /// Durable appends per second.
    pub appends_per_sec: f64,
    /// Payload MB/s.
    pub mb_per_sec: f64,
    /// Median ack latency.
    pub p50: Duration,
    /// 99th percentile ack latency.
    pub p99: Duration,
    /// PUT requests per MB of payload.
    pub puts_per_mb: f64,
    /// The raw put loop's puts per second at the same depth and size.
    pub raw_per_sec: f64,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Binary, false),
    ]))
}

fn batch(schema: &SchemaRef, id: i64, size: usize) -> RecordBatch {
    let payload = vec![(id % 251) as u8; size];
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![id])),
            Arc::new(BinaryArray::from(vec![payload.as_slice()])),
        ],
    )
    .expect("bench batch matches its schema")
}

/// How long and how much each cell runs.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Wall time per cell.
    pub time: Duration,
    /// Payload bytes per cell.
    pub bytes: usize,
    /// What the raw loop puts.
    pub raw_bodies: RawBodies,
    /// When the raw loop issues its next put.
    pub raw_order: RawOrder,
}

/// When the raw loop issues a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawOrder {
    /// Each of `depth` workers puts again as soon as its own put is done.
    Independent,
    /// A window of `depth` puts that complete in order: the next put goes out when the oldest
    /// is done, as a log that acknowledges in position order lets its writers go on. The
    /// limit for any such log, whose window stalls behind its slowest put.
    InOrder,
}

/// The raw loop's bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawBodies {
    /// One body shared by every put: the store's latency alone.
    Shared,
    /// A new copy of it for every put, as a writer of new data hands over: a store that keeps
    /// bodies in this process (InMemory) then pays for fresh memory on every put.
    Fresh,
}

/// Options under which every append of `size` bytes becomes its own WAL entry.
fn one_entry_per_append(size: usize) -> Options {
    let mut options = Options::default();
    options.writer.group_commit = GroupCommit {
        max_bytes: 1,
        max_records: 1,
        interval: Duration::ZERO,
    };
    options.writer.max_entry_bytes = size + (1 << 20);
    options
}

/// Measures tidewal: `depth` appends outstanding (closed loop), one append per WAL entry.
pub async fn measure(
    store: Arc<dyn ObjectStore>,
    label: &str,
    size: usize,
    depth: u32,
    budget: Budget,
) -> Result<Cell, Error> {
    let mut options = one_entry_per_append(size);
    options.writer.wal_only = true;
    options.writer.max_in_flight = depth;
    options.writer.unflushed_budget = 1 << 30;
    // The raw loop runs half before and half after tidewal (ABA): a local file system slows
    // down for seconds after many files are deleted (ext4 skips recently freed inodes), and
    // whoever ran first would pay for it alone.
    let half = Budget {
        time: budget.time / 2,
        bytes: budget.bytes / 2,
        ..budget
    };
    let raw_before = raw_puts(store.clone(), "raw-a", size, depth, half).await?;
    let schema = schema();
    let wal = Wal::open(store.clone(), "bench", schema.clone(), options).await?;
    let puts_before = wal.stats().await?.writer.io.puts;
    let template = batch(&schema, 0, size);
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut latencies = Vec::new();
    let mut issued = 0usize;
    loop {
        let more = started.elapsed() < budget.time && issued * size < budget.bytes;
        while more && pending.len() < depth as usize {
            let handle = wal.append_nowait(&template)?;
            let at = Instant::now();
            pending.push(async move { handle.await.map(|_| at.elapsed()) });
            issued += 1;
        }
        match pending.next().await {
            Some(latency) => latencies.push(latency?),
            None => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let puts = wal.stats().await?.writer.io.puts - puts_before;
    wal.close().await?;
    latencies.sort();
    let n = latencies.len();
    let mb = (n * size) as f64 / 1e6;
    let raw_after = raw_puts(store, "raw-b", size, depth, half).await?;
    let raw = (raw_before + raw_after) / 2.0;
    Ok(Cell {
        store: label.to_string(),
        size,
        depth,
        appends_per_sec: n as f64 / elapsed,
        mb_per_sec: mb / elapsed,
        p50: latencies[n / 2],
        p99: latencies[(n * 99 / 100).min(n - 1)],
        puts_per_mb: puts as f64 / mb,
        raw_per_sec: raw,
    })
}

/// The limit line: `size`-byte objects put with create-if-absent, `depth` at a time (see
/// [`RawOrder`]), named like WAL slots: numbered in order, in one folder (a local file system
/// serialises creates in one directory; a folder per worker would not pay for that and the
/// WAL does).
async fn raw_puts(
    store: Arc<dyn ObjectStore>,
    folder: &'static str,
    size: usize,
    depth: u32,
    budget: Budget,
) -> Result<f64, Error> {
    let raw = Arc::new(RawLoop {
        store,
        folder,
        size,
        budget,
        body: Bytes::from(vec![7u8; size]),
        started: Instant::now(),
    });
    let done = match budget.raw_order {
        RawOrder::Independent => raw.clone().independent(depth).await?,
        RawOrder::InOrder => raw.clone().in_order(depth).await?,
    };
    Ok(done as f64 / raw.started.elapsed().as_secs_f64())
}

/// One raw loop's settings and clock.
struct RawLoop {
    store: Arc<dyn ObjectStore>,
    folder: &'static str,
    size: usize,
    budget: Budget,
    body: Bytes,
    started: Instant,
}

impl RawLoop {
    /// Whether the cell goes on after `done` puts.
    fn more(&self, done: usize) -> bool {
        self.started.elapsed() < self.budget.time && done * self.size < self.budget.bytes
    }

    /// Puts the object of `slot`.
    async fn put(self: Arc<Self>, slot: u64) -> Result<(), Error> {
        let path = Path::from(format!("{}/{slot:020}", self.folder));
        let body = match self.budget.raw_bodies {
            RawBodies::Shared => self.body.clone(),
            RawBodies::Fresh => Bytes::from(self.body.to_vec()),
        };
        let options = PutOptions::from(PutMode::Create);
        match self.store.put_opts(&path, body.into(), options).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Store {
                path: path.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// `depth` workers, each putting again as soon as its own put is done.
    async fn independent(self: Arc<Self>, depth: u32) -> Result<usize, Error> {
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let workers: Vec<_> = (0..depth)
            .map(|_| {
                let (raw, done, next) = (self.clone(), done.clone(), next.clone());
                tokio::spawn(async move {
                    while raw.more(done.load(std::sync::atomic::Ordering::Relaxed)) {
                        let slot = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        raw.clone().put(slot).await?;
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();
        for w in workers {
            w.await.map_err(|e| Error::Invalid(e.to_string()))??;
        }
        Ok(done.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A window of `depth` puts that completes in order.
    async fn in_order(self: Arc<Self>, depth: u32) -> Result<usize, Error> {
        let mut window = std::collections::VecDeque::new();
        let (mut slot, mut done) = (0u64, 0usize);
        loop {
            while self.more(done) && window.len() < depth as usize {
                window.push_back(tokio::spawn(self.clone().put(slot)));
                slot += 1;
            }
            let Some(oldest) = window.pop_front() else {
                return Ok(done);
            };
            oldest.await.map_err(|e| Error::Invalid(e.to_string()))??;
            done += 1;
        }
    }
}

/// Prints one table row (and the header first when asked).
pub fn print_row(cell: &Cell, header: bool) {
    if header {
        println!(
            "{:<22} {:>8} {:>5} {:>11} {:>9} {:>9} {:>9} {:>8} {:>10} {:>7}",
            "store",
            "size",
            "depth",
            "appends/s",
            "MB/s",
            "p50 ms",
            "p99 ms",
            "puts/MB",
            "raw puts/s",
            "% raw"
        );
    }
    let size = match cell.size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s => format!("{} KiB", s >> 10),
    };
    println!(
        "{:<22} {:>8} {:>5} {:>11.0} {:>9.1} {:>9.2} {:>9.2} {:>8.1} {:>10.0} {:>6.0}%",
        cell.store,
        size,
        cell.depth,
        cell.appends_per_sec,
        cell.mb_per_sec,
        cell.p50.as_secs_f64() * 1e3,
        cell.p99.as_secs_f64() * 1e3,
        cell.puts_per_mb,
        cell.raw_per_sec,
        100.0 * cell.appends_per_sec / cell.raw_per_sec
    );
}

/// Replay figures for one store.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Store label.
    pub store: String,
    /// Entry size.
    pub entry: usize,
    /// Bytes of WAL replayed.
    pub bytes: usize,
    /// Writer open (claim, walk, replay into the memtable, fence) MB/s.
    pub open_mb_per_sec: f64,
    /// Reader (scan) MB/s.
    pub scan_mb_per_sec: f64,
    /// Raw GET loop with `depth` gets in flight, MB/s.
    pub raw_mb_per_sec: f64,
    /// Read-ahead / raw GET depth.
    pub depth: u32,
}

/// Writes `total` bytes of WAL in `entry`-byte entries, then times a writer's open (replay),
/// a full scan, and a raw pipelined GET loop over the same objects.
pub async fn measure_replay(
    store: Arc<dyn ObjectStore>,
    label: &str,
    entry: usize,
    total: usize,
    depth: u32,
) -> Result<Replay, Error> {
    let mut options = one_entry_per_append(entry);
    options.writer.memtable_bytes = usize::MAX / 4;
    options.writer.unflushed_budget = usize::MAX / 4;
    options.writer.read_ahead = depth;
    let schema = schema();
    let writer = Wal::open(store.clone(), "replay", schema.clone(), options.clone()).await?;
    let template = batch(&schema, 0, entry);
    let handles = (0..total / entry)
        .map(|_| writer.append_nowait(&template))
        .collect::<Result<Vec<_>, _>>()?;
    for h in handles {
        h.await?;
    }
    drop(writer); // a crash: nothing flushed, everything to replay
    let mb = total as f64 / 1e6;
    let started = Instant::now();
    let reopened = Wal::open(store.clone(), "replay", schema.clone(), options).await?;
    let open_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let rows: usize = reopened
        .scan()
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let scan_secs = started.elapsed().as_secs_f64();
    if rows != total / entry {
        return Err(Error::Invalid(format!(
            "replay read {rows} rows of {}",
            total / entry
        )));
    }
    let paths: Vec<Path> = {
        use futures::TryStreamExt;
        store
            .list(Some(&Path::from("replay/wal")))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::Invalid(e.to_string()))?
    };
    let started = Instant::now();
    let mut gets = futures::stream::iter(paths.into_iter().map(|p| {
        let store = store.clone();
        async move {
            use object_store::ObjectStoreExt;
            store.get(&p).await?.bytes().await.map(|b| b.len())
        }
    }))
    .buffer_unordered(depth as usize);
    let mut raw_bytes = 0usize;
    while let Some(n) = gets.next().await {
        raw_bytes += n.map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let raw_secs = started.elapsed().as_secs_f64();
    Ok(Replay {
        store: label.to_string(),
        entry,
        bytes: total,
        open_mb_per_sec: mb / open_secs,
        scan_mb_per_sec: mb / scan_secs,
        raw_mb_per_sec: raw_bytes as f64 / 1e6 / raw_secs,
        depth,
    })
}

/// Prints one replay row (and the header first when asked).
pub fn print_replay(r: &Replay, header: bool) {
    if header {
        println!(
            "\n{:<22} {:>8} {:>8} {:>6} {:>12} {:>12} {:>13}",
            "replay", "entry", "MiB", "depth", "open MB/s", "scan MB/s", "raw GET MB/s"
        );
    }
    println!(
        "{:<22} {:>5} KiB {:>8} {:>6} {:>12.1} {:>12.1} {:>13.1}",
        r.store,
        r.entry >> 10,
        r.bytes >> 20,
        r.depth,
        r.open_mb_per_sec,
        r.scan_mb_per_sec,
        r.raw_mb_per_sec
    );
}
