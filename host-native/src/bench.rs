//! `tidewal bench`: durable appends against a store, beside a raw create-if-absent put loop
//! at the same concurrency (the physical limit). Prints a table; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};
use tidewal_core::GroupCommit;

use crate::{Error, Options, Wal};

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
}

/// Measures tidewal: `depth` appends outstanding (closed loop), one append per WAL entry.
pub async fn measure(
    store: Arc<dyn ObjectStore>,
    label: &str,
    size: usize,
    depth: u32,
    budget: Budget,
) -> Result<Cell, Error> {
    let mut options = Options::default();
    options.writer.wal_only = true;
    options.writer.max_in_flight = depth;
    options.writer.group_commit = GroupCommit {
        max_bytes: 1,
        max_records: 1,
        interval: Duration::ZERO,
    };
    options.writer.max_entry_bytes = size + (1 << 20);
    options.writer.unflushed_budget = 1 << 30;
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
    let raw = raw_puts(store, size, depth, budget).await?;
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

/// The limit line: `depth` workers putting `size`-byte objects with create-if-absent.
async fn raw_puts(
    store: Arc<dyn ObjectStore>,
    size: usize,
    depth: u32,
    budget: Budget,
) -> Result<f64, Error> {
    let body = Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..depth)
        .map(|w| {
            let (store, body, count) = (store.clone(), body.clone(), count.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                loop {
                    let done = count.load(std::sync::atomic::Ordering::Relaxed);
                    if started.elapsed() >= budget.time || done * size >= budget.bytes {
                        return Ok::<(), object_store::Error>(());
                    }
                    let path = Path::from(format!("raw/{w}/{i}"));
                    store
                        .put_opts(
                            &path,
                            body.clone().into(),
                            PutOptions::from(PutMode::Create),
                        )
                        .await?;
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.await
            .map_err(|e| Error::Invalid(e.to_string()))?
            .map_err(|e| Error::Store {
                path: "raw/".into(),
                message: e.to_string(),
            })?;
    }
    let n = count.load(std::sync::atomic::Ordering::Relaxed);
    Ok(n as f64 / started.elapsed().as_secs_f64())
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
