//! `tidewal bench --scan-mib N`: streaming scan MB/s of a log of ten binary columns, reading
//! every column and projecting one, beside a raw pipelined GET loop over the same WAL objects,
//! and then the same rows flushed into one generation.
//! Prints a table; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BinaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;
use tidewal::{Error, Options, ReadOptions, Tailer};
use tidewal_core::GroupCommit;

/// Columns of the bench log.
const COLUMNS: usize = 10;

/// Scan figures for one store.
#[derive(Clone, Debug)]
pub struct Scan {
    /// Store label.
    pub store: String,
    /// Entry size.
    pub entry: usize,
    /// Bytes of payload in the log.
    pub bytes: usize,
    /// All columns, MB/s of payload.
    pub all_mb_per_sec: f64,
    /// One column of ten decoded, MB/s of the log's payload (the same objects are fetched).
    pub projected_mb_per_sec: f64,
    /// Raw GET loop, `depth` in flight, MB/s of object bytes.
    pub raw_mb_per_sec: f64,
    /// Raw GET depth (the reader reads 64 slots ahead, bounded by 16 MiB).
    pub depth: usize,
    /// All columns once the same rows were flushed into one generation, MB/s (read by
    /// ranged gets of runs of records, several in flight within the 16 MiB bound).
    pub generation_mb_per_sec: f64,
}

fn schema() -> SchemaRef {
    let fields: Vec<Field> = (0..COLUMNS)
        .map(|i| Field::new(format!("c{i}"), DataType::Binary, false))
        .collect();
    Arc::new(Schema::new(fields))
}

fn batch(schema: &SchemaRef, size: usize) -> RecordBatch {
    let value = vec![7u8; size / COLUMNS];
    let columns: Vec<ArrayRef> = (0..COLUMNS)
        .map(|_| Arc::new(BinaryArray::from(vec![value.as_slice()])) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("bench batch matches its schema")
}

/// Streams the log under "scan" with `columns`, returning the rows read.
async fn stream(store: Arc<dyn ObjectStore>, columns: Option<Vec<String>>) -> Result<usize, Error> {
    let options = ReadOptions {
        columns,
        ..ReadOptions::default()
    };
    Tailer::with_options(store, "scan", schema(), &options)?
        .batches()
        .try_fold(0, |n, b| async move { Ok(n + b.num_rows()) })
        .await
}

/// Writes `total` bytes of WAL in `entry`-byte entries (ten columns), then times a streaming
/// scan of all columns, one of one column, and a raw pipelined GET loop.
pub async fn measure_scan(
    store: Arc<dyn ObjectStore>,
    label: &str,
    entry: usize,
    total: usize,
) -> Result<Scan, Error> {
    let mut options = Options::default();
    options.writer.group_commit = GroupCommit {
        max_bytes: 1,
        max_records: 1,
        interval: Duration::ZERO,
    };
    options.writer.memtable_bytes = usize::MAX / 4;
    options.writer.unflushed_budget = usize::MAX / 4;
    options.writer.max_entry_bytes = entry + (1 << 20);
    let schema = schema();
    let writer = tidewal::Wal::open(store.clone(), "scan", schema.clone(), options.clone()).await?;
    let template = batch(&schema, entry);
    let entries = total / entry;
    let handles = (0..entries)
        .map(|_| writer.append_nowait(&template))
        .collect::<Result<Vec<_>, _>>()?;
    for h in handles {
        h.await?;
    }
    drop(writer); // everything stays in the WAL
    let mb = total as f64 / 1e6;
    let timed = |columns: Option<Vec<String>>| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            let rows = stream(store, columns).await?;
            if rows != entries {
                return Err(Error::Invalid(format!(
                    "scan read {rows} rows of {entries}"
                )));
            }
            Ok::<f64, Error>(mb / started.elapsed().as_secs_f64())
        }
    };
    let all = timed(None).await?;
    let projected = timed(Some(vec!["c0".into()])).await?;
    let paths: Vec<Path> = store
        .list(Some(&Path::from("scan/wal")))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let depth = 64;
    let started = Instant::now();
    let mut gets = futures::stream::iter(paths.into_iter().map(|p| {
        let store = store.clone();
        async move {
            use object_store::ObjectStoreExt;
            store.get(&p).await?.bytes().await.map(|b| b.len())
        }
    }))
    .buffer_unordered(depth);
    let mut raw_bytes = 0usize;
    while let Some(n) = gets.next().await {
        raw_bytes += n.map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let raw_mb_per_sec = raw_bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    // The same rows in one generation: open (replays the WAL), flush, close.
    let writer = tidewal::Wal::open(store.clone(), "scan", schema, options).await?;
    writer.flush_memtable().await?;
    writer.close().await?;
    let generation = timed(None).await?;
    Ok(Scan {
        store: label.to_string(),
        entry,
        bytes: total,
        all_mb_per_sec: all,
        projected_mb_per_sec: projected,
        raw_mb_per_sec,
        depth,
        generation_mb_per_sec: generation,
    })
}

/// Prints one scan row (and the header first when asked).
pub fn print_scan(s: &Scan, header: bool) {
    if header {
        println!(
            "\n{:<22} {:>8} {:>8} {:>14} {:>16} {:>13} {:>6} {:>16}",
            "scan (10 columns)",
            "entry",
            "MiB",
            "all MB/s",
            "1 column MB/s",
            "raw GET MB/s",
            "depth",
            "generation MB/s"
        );
    }
    println!(
        "{:<22} {:>5} KiB {:>8} {:>14.1} {:>16.1} {:>13.1} {:>6} {:>16.1}",
        s.store,
        s.entry >> 10,
        s.bytes >> 20,
        s.all_mb_per_sec,
        s.projected_mb_per_sec,
        s.raw_mb_per_sec,
        s.depth,
        s.generation_mb_per_sec
    );
}
