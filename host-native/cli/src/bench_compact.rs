//! `tidewal bench --compaction-mib N`: how fast a full compaction pass merges generations
//! (MB/s of generation bytes merged), and what it does to durable appends running beside it
//! (appends/s with and without a compaction in flight). Prints; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::ObjectStore;
use tidewal::{CompactionConfig, Error, Options, Wal};

/// Generations of this size are merged (each a memtable flush of 256 KiB entries).
const GENERATION_BYTES: usize = 4 << 20;
const ENTRY_BYTES: usize = 256 << 10;
/// The appends measured beside the compaction: 64 KiB, 8 in flight.
const APPEND_BYTES: usize = 64 << 10;
const APPEND_DEPTH: usize = 8;

/// One store's figures.
pub struct CompactionCell {
    pub store: String,
    /// Generation bytes merged by the pass, and generations before and after it.
    pub bytes: u64,
    pub generations: (u64, u64),
    pub secs: f64,
    /// Durable appends/s alone, and while a second pass ran (and how long it ran).
    pub appends_alone: f64,
    pub appends_during: f64,
    pub during_secs: f64,
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

/// No background compaction: the bench runs the passes itself.
fn options() -> Options {
    let mut options = Options::default();
    options.writer.compaction = Some(CompactionConfig {
        enabled: false,
        ..CompactionConfig::default()
    });
    // Only the bench's own flushes freeze the memtable during `fill` (each then waits for its
    // generation's commit); the appends measured beside a pass flush at this size too.
    options.writer.memtable_bytes = 2 * GENERATION_BYTES;
    options
}

/// Writes `bytes` of generations (one flush per [`GENERATION_BYTES`]) under `prefix`.
async fn fill(wal: &Wal, schema: &SchemaRef, bytes: usize) -> Result<(), Error> {
    let template = batch(schema, 0, ENTRY_BYTES);
    for _ in 0..bytes.div_ceil(GENERATION_BYTES) {
        let mut pending = FuturesUnordered::new();
        for _ in 0..GENERATION_BYTES / ENTRY_BYTES {
            pending.push(wal.append_nowait(&template)?);
        }
        while let Some(ack) = pending.next().await {
            ack?;
        }
        wal.flush_memtable().await?;
    }
    Ok(())
}

/// Durable appends/s of a closed loop of [`APPEND_DEPTH`] appends until `stop` resolves (or
/// for `at_least`, whichever is later), and how long it ran.
async fn appends_until(
    wal: &Wal,
    schema: &SchemaRef,
    stop: impl std::future::Future<Output = Result<(), Error>>,
    at_least: Duration,
) -> Result<(f64, f64), Error> {
    let template = batch(schema, 1, APPEND_BYTES);
    let started = Instant::now();
    let mut stop = std::pin::pin!(stop);
    let mut stopped = false;
    let mut pending = FuturesUnordered::new();
    let mut done = 0u64;
    loop {
        while pending.len() < APPEND_DEPTH {
            pending.push(wal.append_nowait(&template)?);
        }
        tokio::select! {
            ack = pending.next() => {
                if let Some(ack) = ack {
                    ack?;
                    done += 1;
                }
            }
            result = &mut stop, if !stopped => {
                result?;
                stopped = true;
            }
        }
        if stopped && started.elapsed() >= at_least {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    while let Some(ack) = pending.next().await {
        ack?;
    }
    Ok((done as f64 / secs, secs))
}

/// Fills `store` with `bytes` of generations, times a full pass over them, then measures
/// appends alone and beside a second pass over as many new generations.
pub async fn measure_compaction(
    store: Arc<dyn ObjectStore>,
    label: &str,
    bytes: usize,
) -> Result<CompactionCell, Error> {
    let schema = schema();
    let wal = Wal::open(store.clone(), "bench", schema.clone(), options()).await?;
    fill(&wal, &schema, bytes).await?;
    let started = Instant::now();
    let pass = wal.compact().await?;
    let secs = started.elapsed().as_secs_f64();
    let inspection = tidewal::inspect(store.clone(), "bench").await?;
    let generations = inspection
        .manifest
        .map(|m| m.generations)
        .unwrap_or_default();
    // Everything the pass read and wrote again: all of it is in the merged generations.
    let merged: u64 = generations.iter().map(|g| g.bytes).sum();
    let after = generations.len() as u64;
    let before = after + pass.replaced - pass.runs;
    // Appends alone for about as long as the pass took (at least a second).
    let alone_for = Duration::from_secs_f64(secs.max(1.0));
    let (appends_alone, _) = appends_until(&wal, &schema, async { Ok(()) }, alone_for).await?;
    fill(&wal, &schema, bytes).await?;
    let (appends_during, during_secs) = appends_until(
        &wal,
        &schema,
        async { wal.compact().await.map(drop) },
        Duration::ZERO,
    )
    .await?;
    wal.close().await?;
    Ok(CompactionCell {
        store: label.to_string(),
        bytes: merged,
        generations: (before, after),
        secs,
        appends_alone,
        appends_during,
        during_secs,
    })
}

pub fn print_compaction(c: &CompactionCell, header: bool) {
    if header {
        println!(
            "{:<26} {:>9} {:>11} {:>8} {:>9} {:>16} {:>17}",
            "compaction",
            "MB",
            "generations",
            "secs",
            "MB/s",
            "appends/s alone",
            "appends/s during"
        );
    }
    println!(
        "{:<26} {:>9.1} {:>5} -> {:<3} {:>8.2} {:>9.1} {:>16.0} {:>11.0} ({:.1}s)",
        c.store,
        c.bytes as f64 / 1e6,
        c.generations.0,
        c.generations.1,
        c.secs,
        c.bytes as f64 / 1e6 / c.secs,
        c.appends_alone,
        c.appends_during,
        c.during_secs
    );
}
