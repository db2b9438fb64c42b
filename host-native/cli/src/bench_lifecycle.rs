//! `tidewal bench --lifecycle N`: what `N` flush cycles (append one small batch, then
//! `flush_memtable`) leave behind, with background compaction on and off, beside a fresh log
//! holding the same rows written in one go: a fresh writer's open time, a full scan's time,
//! the current manifest's bytes and the objects under the prefix. Prints; asserts nothing.
//!
//! The logs are written to an unthrottled InMemory store (or a LocalFileSystem folder), then
//! measured there and, for InMemory, through a copy behind `latency_ms` per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::ObjectStore;
use tidewal::{CompactionConfig, Error, Options, Wal};

/// How a measured log was written.
#[derive(Clone, Copy, Debug)]
pub enum Written {
    /// `N` flush cycles, background compaction on (the default policy).
    CyclesCompacting,
    /// `N` flush cycles, compaction off.
    CyclesUncompacted,
    /// The same rows in one append and one flush.
    OneGo,
}

impl Written {
    pub const ALL: [Written; 3] = [
        Written::CyclesCompacting,
        Written::CyclesUncompacted,
        Written::OneGo,
    ];

    fn label(self) -> &'static str {
        match self {
            Written::CyclesCompacting => "cycles, compaction on",
            Written::CyclesUncompacted => "cycles, compaction off",
            Written::OneGo => "one go",
        }
    }
}

/// One log's figures on one store.
pub struct LifecycleCell {
    pub store: String,
    pub written: Written,
    pub write_secs: f64,
    pub open_ms: f64,
    pub scan_ms: f64,
    pub rows: u64,
    pub manifest_bytes: u64,
    /// Objects under the prefix: manifests, WAL slots, generations, fence intents.
    pub objects: [u64; 4],
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(schema: &SchemaRef, ids: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))])
        .expect("bench batch matches its schema")
}

fn options(compaction: bool) -> Options {
    let mut options = Options::default();
    options.writer.compaction = Some(CompactionConfig {
        enabled: compaction,
        ..CompactionConfig::default()
    });
    // By count only: the default keeps every version of the last hour, and a writer of N
    // flushes a minute commits N versions (without compaction, N manifests of up to N
    // records each: quadratic bytes).
    options.writer.keep_manifests_for = Duration::ZERO;
    options
}

/// Writes `cycles` one-row flushes (or, `OneGo`, the same rows at once) under `prefix`.
async fn write(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    cycles: u64,
    written: Written,
) -> Result<f64, Error> {
    let schema = schema();
    let compaction = !matches!(written, Written::CyclesUncompacted);
    let started = Instant::now();
    let wal = Wal::open(store, prefix, schema.clone(), options(compaction)).await?;
    match written {
        Written::OneGo => {
            wal.append(&batch(&schema, 0..cycles as i64)).await?;
            wal.flush_memtable().await?;
        }
        _ => {
            for i in 0..cycles as i64 {
                wal.append(&batch(&schema, i..i + 1)).await?;
                wal.flush_memtable().await?;
            }
        }
    }
    wal.close().await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Times a fresh writer's open (then closes it) and a full scan of `prefix`, and counts
/// what is under it.
async fn measure_log(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    compaction: bool,
) -> Result<(f64, f64, u64, u64, [u64; 4]), Error> {
    let started = Instant::now();
    let wal = Wal::open(store.clone(), prefix, schema(), options(compaction)).await?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    wal.close().await?;
    let started = Instant::now();
    let batches: Vec<RecordBatch> = tidewal::Tailer::scan(store.clone(), prefix, schema())?
        .batches()
        .try_collect()
        .await?;
    let scan_ms = started.elapsed().as_secs_f64() * 1e3;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut objects = [0u64; 4];
    let mut manifest_bytes = (String::new(), 0);
    let listed: Vec<_> = store
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    for meta in listed {
        let path = meta.location.to_string();
        let rest = path.strip_prefix(prefix).unwrap_or(&path);
        let kind = ["/manifest/", "/wal/", "/gen/", "/fences/"]
            .iter()
            .position(|k| rest.starts_with(k));
        if let Some(k) = kind {
            objects[k] += 1;
        }
        if kind == Some(0) && path > manifest_bytes.0 {
            manifest_bytes = (path, meta.size);
        }
    }
    Ok((open_ms, scan_ms, rows, manifest_bytes.1, objects))
}

/// Writes the three logs of `cycles` rows (to InMemory or to `dir`) and measures each there
/// and, for InMemory, behind `latency_ms` per request.
pub async fn measure_lifecycle(
    dir: Option<&std::path::Path>,
    cycles: u64,
    latency_ms: u64,
) -> Result<Vec<LifecycleCell>, Error> {
    let mut cells = Vec::new();
    for written in Written::ALL {
        let prefix = format!("lifecycle-{}", written as u8);
        let compaction = !matches!(written, Written::CyclesUncompacted);
        let mut stores: Vec<(Arc<dyn ObjectStore>, String)> = Vec::new();
        let write_secs = match dir {
            Some(dir) => {
                let folder = dir.join(&prefix);
                let _ = std::fs::remove_dir_all(&folder);
                std::fs::create_dir_all(&folder).map_err(|e| Error::Invalid(e.to_string()))?;
                let store: Arc<dyn ObjectStore> = Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&folder)
                        .map_err(|e| Error::Invalid(e.to_string()))?,
                );
                let secs = write(store.clone(), &prefix, cycles, written).await?;
                stores.push((store, "LocalFileSystem".into()));
                secs
            }
            None => {
                // Written unthrottled; measured on copies (`fork`) of what it holds.
                let store = Arc::new(InMemory::new());
                let secs = write(store.clone(), &prefix, cycles, written).await?;
                let wait = Duration::from_millis(latency_ms);
                let config = ThrottleConfig {
                    wait_get_per_call: wait,
                    wait_put_per_call: wait,
                    wait_list_per_call: wait,
                    wait_delete_per_call: wait,
                    ..ThrottleConfig::default()
                };
                stores.push((Arc::new(store.fork()), "InMemory".into()));
                stores.push((
                    Arc::new(ThrottledStore::new(store.fork(), config)),
                    format!("InMemory+{latency_ms}ms/request"),
                ));
                secs
            }
        };
        for (store, label) in stores {
            let (open_ms, scan_ms, rows, manifest_bytes, objects) =
                measure_log(store, &prefix, compaction).await?;
            cells.push(LifecycleCell {
                store: label,
                written,
                write_secs,
                open_ms,
                scan_ms,
                rows,
                manifest_bytes,
                objects,
            });
        }
    }
    Ok(cells)
}

pub fn print_lifecycle(cells: &[LifecycleCell], cycles: u64) {
    println!(
        "{:<26} {:<23} {:>8} {:>9} {:>9} {:>7} {:>9} {:>6} {:>6} {:>6} {:>7}",
        format!("lifecycle ({cycles} rows)"),
        "written",
        "write_s",
        "open_ms",
        "scan_ms",
        "rows",
        "man_bytes",
        "mans",
        "wal",
        "gens",
        "intents"
    );
    for c in cells {
        println!(
            "{:<26} {:<23} {:>8.1} {:>9.1} {:>9.1} {:>7} {:>9} {:>6} {:>6} {:>6} {:>7}",
            c.store,
            c.written.label(),
            c.write_secs,
            c.open_ms,
            c.scan_ms,
            c.rows,
            c.manifest_bytes,
            c.objects[0],
            c.objects[1],
            c.objects[2],
            c.objects[3]
        );
    }
}
