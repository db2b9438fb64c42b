//! The `tidewal` command line.

mod bench;
mod bench_compact;
mod bench_lifecycle;
mod bench_scan;
mod cmds;
mod since;
mod soak;

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use clap::{Parser, Subcommand};
use tidewal::{Error, Options, Wal};

#[derive(Parser)]
#[command(
    name = "tidewal",
    version,
    about = "An Arrow-native write-ahead log on object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Appends sample data, fences a writer with a second one, reopens to replay, flushes a
    /// generation and prints a summary.
    Demo {
        /// Where the log lives (a directory, `file:///abs/dir` or `memory://`).
        #[arg(default_value = "./tidewal-demo")]
        dir: String,
    },
    /// Appends rows (an Arrow IPC stream or file, a CSV file, or generated rows); prints
    /// `{"first_position":..,"last_position":..,"rows":..}` once all are durable.
    Append {
        /// The log (a directory, file://, memory:// or s3://bucket/prefix).
        url: String,
        /// An Arrow IPC stream or file.
        #[arg(long)]
        ipc: Option<String>,
        /// A CSV file with a header (schema inferred).
        #[arg(long)]
        csv: Option<String>,
        /// Generate this many rows of sample data.
        #[arg(long)]
        generate: Option<usize>,
        /// Rows per appended batch.
        #[arg(long, default_value_t = 8192)]
        batch_rows: usize,
        /// Retention policy: keep at most this many bytes in generations, dropping the
        /// oldest whole ones after the writer's flush (a named consumer holds it back).
        #[arg(long)]
        keep_bytes: Option<u64>,
        /// Retention policy: drop generations whose entries are all older than this
        /// (`7d`, `90m`, humantime syntax).
        #[arg(long)]
        keep_for: Option<String>,
    },
    /// Prints every durable row, in order.
    Cat {
        /// The log.
        url: String,
        /// Start at this position (default: the first the log holds).
        #[arg(long, conflicts_with = "since")]
        from: Option<u64>,
        /// Start at the first entry written at or after TIME: unix milliseconds or RFC 3339
        /// (`2024-05-01T12:00:00Z`, `...+02:00`).
        #[arg(long)]
        since: Option<String>,
        /// Stop before this position.
        #[arg(long)]
        until: Option<u64>,
        /// Print the rows of this manifest version only (see `history`): its generations,
        /// below its cursor, nothing written after it.
        #[arg(long)]
        as_of_version: Option<u64>,
        /// Stop at the first entry written after TIME (unix milliseconds or RFC 3339, as
        /// --since).
        #[arg(long)]
        until_time: Option<String>,
        /// Print only these columns, in this order (only they are decoded).
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// MiB of records read ahead of what is printed (default 16).
        #[arg(long)]
        read_ahead_mib: Option<u64>,
        /// Output format (table: one table per stored batch, printed as it is read).
        #[arg(long, value_enum, default_value = "table")]
        format: cmds::Format,
    },
    /// Prints rows as they are read; with --follow, keeps printing new ones.
    Tail {
        /// The log.
        url: String,
        /// Start at this position (default: the first the log holds).
        #[arg(long)]
        from: Option<u64>,
        /// Keep following the log.
        #[arg(long)]
        follow: bool,
        /// Print only these columns, in this order (only they are decoded).
        #[arg(long, value_delimiter = ',', conflicts_with = "consumer")]
        columns: Option<Vec<String>>,
        /// Read as this named consumer: start at its committed position and commit after
        /// each printed batch, so that running it again prints only what is new.
        #[arg(long, conflicts_with = "from")]
        consumer: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: cmds::Format,
    },
    /// Lists the log's named consumers: committed position and lag behind the log's end.
    Consumers {
        /// The log.
        url: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the kept manifest versions: commit time, epoch, cursor, generations, rows,
    /// bytes and what each changed (claim, flush, truncate).
    History {
        /// The log.
        url: String,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Shows the manifest, epoch, cursor, generations and WAL objects.
    Inspect {
        /// The log.
        url: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reads every object and checks every checksum; exits non-zero naming the bad object.
    Verify {
        /// The log.
        url: String,
    },
    /// Takes the log over (fencing any running writer), flushes the memtable to a generation
    /// (collecting the WAL slots it covers) and closes.
    Flush {
        /// The log.
        url: String,
    },
    /// Takes the log over, runs one full compaction pass (adjacent generations below the
    /// target merged into one while any is left) and closes; prints what it merged.
    Compact {
        /// The log.
        url: String,
    },
    /// Takes the log over and drops every entry below a position, or the generations older
    /// than a duration (whole leading generations; their files are deleted once no kept
    /// manifest version names them), and closes; prints what it dropped as JSON. A named
    /// consumer that has not consumed that far holds it back unless --force.
    Truncate {
        /// The log.
        url: String,
        /// Drop every entry below this position.
        #[arg(
            long,
            conflicts_with = "older_than",
            required_unless_present = "older_than"
        )]
        before: Option<u64>,
        /// Drop the leading generations whose entries are all older than this (`7d`, `36h`,
        /// `90m`, humantime syntax).
        #[arg(long)]
        older_than: Option<String>,
        /// Drop even past named consumers' committed positions (they will fail to resume).
        #[arg(long)]
        force: bool,
    },
    /// Takes the log over and restores it to a position, a time or a manifest version: one
    /// new manifest version holds only the entries below the point (for a version, that
    /// version's entries and what was appended past its cursor since), the cursor does not
    /// move back, older versions stay readable; closes and prints what it did as JSON.
    /// `--to-version` of the version below a restore undoes it.
    Restore {
        /// The log.
        url: String,
        /// Keep only the entries below this position.
        #[arg(long)]
        to_position: Option<u64>,
        /// Keep only the entries up to this time (unix ms or RFC 3339): the log ends where a
        /// reader `--until-time` it stops.
        #[arg(long)]
        to_time: Option<String>,
        /// Keep this manifest version's entries (and what came after its cursor).
        #[arg(long)]
        to_version: Option<u64>,
    },
    /// Flush, then collect the fences, fence windows and fence intents below the cursor,
    /// once older writers' leases ran out (waits up to 34 s with the default lease).
    Gc {
        /// The log.
        url: String,
    },
    /// Lists the objects under URL (exits non-zero if the store does not answer).
    #[command(hide = true)]
    Probe {
        /// A store URL.
        url: String,
    },
    /// Appends numbered one-row batches to DIR forever, printing `ack <id> <position>` once
    /// each is durable (the crash test kills it at random moments).
    #[command(hide = true)]
    AppendForever {
        /// Where the log lives.
        dir: String,
        /// First id to append.
        #[arg(long, default_value_t = 0)]
        start: i64,
    },
    /// Writes about MIB MiB of `(id, blob)` rows to DIR, one entry per ENTRY_KIB batch, with
    /// generations of MEMTABLE_MIB (the memory proof's and its smoke test's log).
    #[command(hide = true)]
    Fill {
        /// Where the log lives.
        dir: String,
        /// MiB of payload to write.
        #[arg(long)]
        mib: usize,
        /// KiB per batch (one WAL entry each).
        #[arg(long, default_value_t = 256)]
        entry_kib: usize,
        /// Memtable size in MiB: the size of each generation file.
        #[arg(long, default_value_t = 8)]
        memtable_mib: usize,
    },
    /// Opens the log at DIR as a writer and streams `Wal::scan` over it, printing rows and
    /// bytes read (the memory proof of `Wal::scan`; see `TIDEWAL_PRINT_VMHWM`).
    #[command(hide = true)]
    ScanCount {
        /// Where the log lives.
        dir: String,
    },
    /// Mixed load on an empty log for a given time (appends of several sizes, groups,
    /// flushes, compaction, retention, a follower, a named consumer, a new writer every
    /// --reopen-secs), sampling RSS, fds, objects and throughput into a CSV and an SVG;
    /// then a full read: exits non-zero if an acknowledged row is missing.
    Soak {
        /// The log (a directory, file:// or s3://bucket/prefix); must hold nothing yet.
        url: String,
        /// Minutes of load.
        #[arg(long, conflicts_with = "seconds")]
        minutes: Option<f64>,
        /// Seconds of load (instead of --minutes).
        #[arg(long)]
        seconds: Option<f64>,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10.0)]
        sample_secs: f64,
        /// Seconds between takeovers by a new writer (and consumer instances).
        #[arg(long, default_value_t = 180.0)]
        reopen_secs: f64,
        /// Write the samples here (CSV with a header).
        #[arg(long)]
        csv: Option<String>,
        /// Draw the samples here (SVG).
        #[arg(long)]
        plot: Option<String>,
        /// MiB kept in generations by the retention policy (the consumer holds it back).
        #[arg(long, default_value_t = 64)]
        keep_mib: u64,
        /// Seconds manifest versions (and the files they name) are kept (the writer's
        /// `keep_manifests_for`; 1 h by default outside the soak).
        #[arg(long, default_value_t = 300.0)]
        history_secs: f64,
    },
    /// Durable appends/s, MB/s, ack latency and puts per MB against InMemory with a fixed put
    /// latency and against a local directory, beside a raw put loop at the same depth.
    Bench {
        /// Put latency of the throttled in-memory store, in milliseconds.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// Seconds per cell.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Directory for the LocalFileSystem cells (a temporary one if absent).
        #[arg(long)]
        dir: Option<String>,
        /// Entry sizes in KiB.
        #[arg(long, value_delimiter = ',', default_value = "1,64,1024,4096")]
        sizes_kib: Vec<usize>,
        /// In-flight depths.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        depths: Vec<u32>,
        /// Also measure this S3 URL (e.g. s3://bucket/bench on SeaweedFS; AWS_* variables).
        #[arg(long)]
        s3: Option<String>,
        /// MiB of WAL (64 KiB entries) for the replay measurement (0: none).
        #[arg(long, default_value_t = 64)]
        replay_mib: usize,
        /// MiB of WAL (ten columns, 64 KiB entries) for the streaming scan measurement: all
        /// columns, one column, raw GETs (0: none).
        #[arg(long, default_value_t = 0)]
        scan_mib: usize,
        /// MiB of 4 MiB generations merged by a full compaction pass, timed, then appends/s
        /// alone and beside a second pass (0: none).
        #[arg(long, default_value_t = 0)]
        compaction_mib: usize,
        /// Flush cycles (append one row, flush) written with compaction on and off, beside
        /// the same rows in one go: open time, scan time, manifest bytes, objects (0: none).
        #[arg(long, default_value_t = 0)]
        lifecycle: u64,
        /// Skip the append cells (e.g. to measure only replay or scan).
        #[arg(long)]
        skip_appends: bool,
        /// Measure only these stores (throttled, local, s3); default: all given.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// At most this many MiB of payload per cell (a cell ends at `--seconds` or here).
        #[arg(long, default_value_t = 2048)]
        cell_mib: usize,
        /// The raw loop puts a new copy of its body each time (what a writer of new data
        /// hands a store) instead of one shared body.
        #[arg(long)]
        raw_fresh_bodies: bool,
        /// The raw loop's puts complete in order (a window of --depths puts; the next goes out
        /// when the oldest is done), as a log acknowledging in position order must.
        #[arg(long)]
        raw_in_order: bool,
    },
}

async fn probe(url: &str) -> Result<(), Error> {
    use futures::TryStreamExt;
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let prefix = object_store::path::Path::from(prefix);
    let n = store
        .list(Some(&prefix))
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await
        .map_err(|e| Error::Store {
            path: url.to_string(),
            message: e.to_string(),
        })?;
    println!("{n} objects under {url}");
    Ok(())
}

async fn append_forever(dir: &str, start: i64) -> Result<(), Error> {
    use std::io::Write;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let mut options = Options::default();
    options.writer.memtable_bytes = 64 << 10; // flush generations often
    options.writer.max_in_flight = 8;
    let wal = Wal::open_url(dir, schema.clone(), options).await?;
    let mut pending = std::collections::VecDeque::new();
    let mut out = std::io::stdout();
    for id in start.. {
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![id]))])
                .expect("one-row batch");
        pending.push_back((id, wal.append_nowait(&batch)?));
        if pending.len() >= 16 {
            if let Some((id, handle)) = pending.pop_front() {
                let ack = handle.await?;
                let _ = writeln!(out, "ack {id} {}", ack.position);
                let _ = out.flush();
            }
        }
    }
    Ok(())
}

fn blob_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("blob", DataType::Binary, false),
    ]))
}

async fn fill(dir: &str, mib: usize, entry_kib: usize, memtable_mib: usize) -> Result<(), Error> {
    use arrow_array::BinaryArray;
    if entry_kib == 0 || memtable_mib == 0 {
        return Err(Error::Invalid(
            "--entry-kib and --memtable-mib must be positive".into(),
        ));
    }
    let schema = blob_schema();
    let mut options = Options::default();
    options.writer.memtable_bytes = memtable_mib << 20;
    options.writer.group_commit.max_bytes = 1;
    let wal = Wal::open_url(dir, schema.clone(), options).await?;
    let entries = (mib << 10) / entry_kib;
    let mut pending = std::collections::VecDeque::new();
    for id in 0..entries as i64 {
        let blob = vec![(id % 251) as u8; entry_kib << 10];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![id])),
                Arc::new(BinaryArray::from(vec![blob.as_slice()])),
            ],
        )
        .expect("blob batch matches its schema");
        pending.push_back(wal.append_nowait(&batch)?);
        // A window of appends, so the writer's own memory stays small too.
        if pending.len() >= 16 {
            if let Some(h) = pending.pop_front() {
                h.await?;
            }
        }
    }
    for h in pending {
        h.await?;
    }
    wal.close().await?;
    println!("wrote {entries} entries of {entry_kib} KiB ({mib} MiB) to {dir}");
    Ok(())
}

async fn scan_count(dir: &str) -> Result<(), Error> {
    use futures::StreamExt;
    let (store, prefix) = tidewal::store_for(dir)?;
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let wal = Wal::open(store, &prefix, schema, Options::default()).await?;
    if std::env::var_os("TIDEWAL_PRINT_VMHWM").is_some() {
        eprint!("after open: ");
        print_peak_memory();
    }
    let started = Instant::now();
    let (mut rows, mut bytes) = (0usize, 0usize);
    let mut scan = wal.scan();
    while let Some(batch) = scan.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        // The blobs' bytes (a batch's buffers are slices of a larger fetched object).
        if let Some(blobs) = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::BinaryArray>()
        {
            let offsets = blobs.value_offsets();
            bytes += (offsets[offsets.len() - 1] - offsets[0]) as usize;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    wal.close().await?;
    println!(
        "Wal::scan: {rows} rows, {:.0} MB in {secs:.1} s ({:.0} MB/s)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}

/// What `bench` measures.
struct BenchCells {
    sizes_kib: Vec<usize>,
    depths: Vec<u32>,
    replay_mib: usize,
    scan_mib: usize,
    compaction_mib: usize,
    lifecycle: u64,
    skip_appends: bool,
    only: Vec<String>,
    cell_mib: usize,
    raw_fresh_bodies: bool,
    raw_in_order: bool,
}

async fn bench(
    latency_ms: u64,
    seconds: f64,
    dir: Option<String>,
    cells: BenchCells,
    s3: Option<String>,
) -> Result<(), Error> {
    let BenchCells {
        sizes_kib,
        depths,
        replay_mib,
        scan_mib,
        compaction_mib,
        lifecycle,
        skip_appends,
        only,
        cell_mib,
        raw_fresh_bodies,
        raw_in_order,
    } = cells;
    use crate::bench::{
        measure, measure_replay, print_replay, print_row, Budget, RawBodies, RawOrder,
    };
    use object_store::memory::InMemory;
    use object_store::throttle::{ThrottleConfig, ThrottledStore};
    let budget = Budget {
        time: std::time::Duration::from_secs_f64(seconds),
        bytes: cell_mib << 20,
        raw_bodies: match raw_fresh_bodies {
            true => RawBodies::Fresh,
            false => RawBodies::Shared,
        },
        raw_order: match raw_in_order {
            true => RawOrder::InOrder,
            false => RawOrder::Independent,
        },
    };
    let scratch =
        Scratch(std::env::temp_dir().join(format!("tidewal-bench-{}", std::process::id())));
    let dir = dir
        .map(std::path::PathBuf::from)
        .unwrap_or(scratch.0.clone());
    let mut header = true;
    let all: &[&str] = if s3.is_some() {
        &["throttled", "local", "s3"]
    } else {
        &["throttled", "local"]
    };
    if let Some(unknown) = only.iter().find(|k| !all.contains(&k.as_str())) {
        return Err(Error::Invalid(format!(
            "--only {unknown}: expected one of {}",
            all.join(", ")
        )));
    }
    let kinds: Vec<&str> = all
        .iter()
        .copied()
        .filter(|k| only.is_empty() || only.iter().any(|o| o == k))
        .collect();
    for &kind in kinds.iter().filter(|_| !skip_appends) {
        for &kib in &sizes_kib {
            for &depth in &depths {
                let (store, label): (Arc<dyn object_store::ObjectStore>, String) = match kind {
                    "throttled" => {
                        let config = ThrottleConfig {
                            wait_put_per_call: std::time::Duration::from_millis(latency_ms),
                            ..ThrottleConfig::default()
                        };
                        let store = ThrottledStore::new(InMemory::new(), config);
                        (Arc::new(store), format!("InMemory+{latency_ms}ms put"))
                    }
                    "s3" => {
                        let base = s3.as_deref().unwrap_or_default().trim_end_matches('/');
                        let (store, prefix) = tidewal::store_for(&format!(
                            "{base}/{kib}k-{depth}-{}",
                            std::process::id()
                        ))?;
                        let store = object_store::prefix::PrefixStore::new(store, prefix.as_str());
                        (Arc::new(store), "S3 (SeaweedFS)".into())
                    }
                    _ => {
                        let cell_dir = dir.join(format!("{kib}k-{depth}"));
                        let _ = std::fs::remove_dir_all(&cell_dir);
                        let (store, _) = tidewal::store_for(&cell_dir.to_string_lossy())?;
                        (store, "LocalFileSystem".into())
                    }
                };
                let cell = measure(store.clone(), &label, kib << 10, depth, budget).await;
                // A cell writes up to --cell-mib: keep the disk from filling over a run.
                match kind {
                    "s3" => delete_all(&store).await,
                    _ => drop(std::fs::remove_dir_all(dir.join(format!("{kib}k-{depth}")))),
                }
                print_row(&cell?, header);
                header = false;
            }
        }
    }
    let mut header = true;
    for &kind in kinds.iter().filter(|_| replay_mib > 0) {
        let (store, label) = read_bench_store(kind, "replay", &dir, s3.as_deref(), latency_ms)?;
        let r = measure_replay(store.clone(), &label, 64 << 10, replay_mib << 20, 16).await;
        match kind {
            "s3" => delete_all(&store).await,
            _ => drop(std::fs::remove_dir_all(dir.join("replay"))),
        }
        print_replay(&r?, header);
        header = false;
    }
    let mut header = true;
    for &kind in kinds.iter().filter(|_| scan_mib > 0) {
        let (store, label) = read_bench_store(kind, "scan", &dir, s3.as_deref(), latency_ms)?;
        let s =
            crate::bench_scan::measure_scan(store.clone(), &label, 64 << 10, scan_mib << 20).await;
        match kind {
            "s3" => delete_all(&store).await,
            _ => drop(std::fs::remove_dir_all(dir.join("scan"))),
        }
        crate::bench_scan::print_scan(&s?, header);
        header = false;
    }
    let mut header = true;
    for &kind in kinds.iter().filter(|_| compaction_mib > 0) {
        let (store, label) = match kind {
            // Every request waits: a compaction GETs, PUTs, LISTs and DELETEs.
            "throttled" => {
                let wait = std::time::Duration::from_millis(latency_ms);
                let config = object_store::throttle::ThrottleConfig {
                    wait_get_per_call: wait,
                    wait_put_per_call: wait,
                    wait_list_per_call: wait,
                    wait_delete_per_call: wait,
                    ..Default::default()
                };
                let store = object_store::throttle::ThrottledStore::new(
                    object_store::memory::InMemory::new(),
                    config,
                );
                let store: Arc<dyn object_store::ObjectStore> = Arc::new(store);
                (store, format!("InMemory+{latency_ms}ms/request"))
            }
            _ => read_bench_store(kind, "compaction", &dir, s3.as_deref(), latency_ms)?,
        };
        let c =
            crate::bench_compact::measure_compaction(store.clone(), &label, compaction_mib << 20)
                .await;
        match kind {
            "s3" => delete_all(&store).await,
            "local" => drop(std::fs::remove_dir_all(dir.join("compaction"))),
            _ => {}
        }
        crate::bench_compact::print_compaction(&c?, header);
        header = false;
    }
    if lifecycle > 0 {
        let mut cells = Vec::new();
        for &kind in kinds.iter().filter(|k| **k != "s3") {
            let local = (kind == "local").then_some(dir.as_path());
            let c = crate::bench_lifecycle::measure_lifecycle(local, lifecycle, latency_ms).await;
            if kind == "local" {
                for i in 0..3 {
                    drop(std::fs::remove_dir_all(dir.join(format!("lifecycle-{i}"))));
                }
            }
            cells.extend(c?);
        }
        crate::bench_lifecycle::print_lifecycle(&cells, lifecycle);
    }
    drop(scratch);
    Ok(())
}

/// The store a read benchmark (`purpose`: replay, scan) runs on, and its label: InMemory with
/// `latency_ms` per GET, a fresh folder `purpose` under `dir`, or a fresh prefix under `s3`.
fn read_bench_store(
    kind: &str,
    purpose: &str,
    dir: &std::path::Path,
    s3: Option<&str>,
    latency_ms: u64,
) -> Result<(Arc<dyn object_store::ObjectStore>, String), Error> {
    use object_store::memory::InMemory;
    use object_store::throttle::{ThrottleConfig, ThrottledStore};
    Ok(match kind {
        "throttled" => {
            let config = ThrottleConfig {
                wait_get_per_call: std::time::Duration::from_millis(latency_ms),
                ..ThrottleConfig::default()
            };
            let store = ThrottledStore::new(InMemory::new(), config);
            (Arc::new(store), format!("InMemory+{latency_ms}ms get"))
        }
        "s3" => {
            let base = s3.unwrap_or_default().trim_end_matches('/');
            let url = format!("{base}/{purpose}-{}", std::process::id());
            let (store, prefix) = tidewal::store_for(&url)?;
            let store = object_store::prefix::PrefixStore::new(store, prefix.as_str());
            (Arc::new(store), "S3 (SeaweedFS)".into())
        }
        _ => {
            let folder = dir.join(purpose);
            let _ = std::fs::remove_dir_all(&folder);
            let (store, _) = tidewal::store_for(&folder.to_string_lossy())?;
            (store, "LocalFileSystem".into())
        }
    })
}

/// Deletes every object of `store`, as far as it can (a bench's leftovers).
async fn delete_all(store: &Arc<dyn object_store::ObjectStore>) {
    use futures::{StreamExt, TryStreamExt};
    let paths = store.list(None).map_ok(|meta| meta.location).boxed();
    let _ = store
        .delete_stream(paths)
        .try_for_each(|_| async { Ok(()) })
        .await;
}

/// The bench's own temporary directory, removed however the bench ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn demo_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]))
}

pub(crate) fn sample(schema: &SchemaRef, first: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("sensor-{}", i % 17)).collect();
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(TimestampMicrosecondArray::from(
                ids.iter()
                    .map(|i| 1_700_000_000_000_000 + i * 1000)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| (*i as f64).sin()).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("sample batch matches its schema")
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

async fn demo(dir: &str) -> Result<(), Error> {
    let schema = demo_schema();
    let (store, prefix) = tidewal::store_for(dir)?;
    println!("tidewal demo: log in {dir}");

    let a = Wal::open(store.clone(), &prefix, schema.clone(), Options::default()).await?;
    let before = rows(&futures::TryStreamExt::try_collect::<Vec<_>>(a.scan()).await?);
    println!(
        "1. writer A opened with epoch {} ({before} rows already in the log)",
        a.epoch()
    );
    let started = Instant::now();
    let handles: Vec<_> = (0..20)
        .map(|i| a.append_nowait(&sample(&schema, i * 500, 500)))
        .collect::<Result<_, _>>()?;
    let mut last = None;
    for h in handles {
        last = Some(h.await?);
    }
    let last = last.expect("twenty appends");
    println!(
        "   appended 20 batches of 500 rows, all durable in {:.1} ms (last at position {})",
        started.elapsed().as_secs_f64() * 1e3,
        last.position
    );

    // In one process a second writer must ask to take the log over (another process need not).
    let take_over = Options {
        take_over: true,
        ..Options::default()
    };
    let b = Wal::open(store.clone(), &prefix, schema.clone(), take_over).await?;
    println!("2. writer B opened with epoch {}: it fences A", b.epoch());
    match a.append(&sample(&schema, 10_000, 10)).await {
        Err(e @ Error::Fenced { .. }) => println!("   A's next append fails: {e}"),
        other => println!("   unexpected: A's append returned {other:?}"),
    }
    b.append(&sample(&schema, 10_000, 250)).await?;
    b.close().await?;
    println!("   B appended 250 rows and closed (flushing its memtable to a generation)");

    let c = Wal::open(store.clone(), &prefix, schema.clone(), Options::default()).await?;
    let stats = c.stats().await?;
    println!(
        "3. writer C reopened with epoch {}: replay cursor {}, next position {}",
        c.epoch(),
        stats.writer.replay_cursor,
        stats.writer.next_position
    );
    c.append(&sample(&schema, 20_000, 100)).await?;
    c.flush().await?;
    let generation = c.flush_memtable().await?;
    println!("   C appended 100 rows and flushed generation {generation:?}");
    let all: Vec<_> = futures::TryStreamExt::try_collect(c.scan()).await?;
    let stats = c.stats().await?;
    c.close().await?;
    println!(
        "4. summary: {} rows in the log ({} added now), {} puts, {} gets, {} lists by C",
        rows(&all),
        rows(&all) - before,
        stats.writer.io.puts,
        stats.writer.io.gets,
        stats.writer.io.lists
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run_main()),
        Err(e) => {
            eprintln!("error: no async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives every thread that allocates its own arena (up to 8 per core) and keeps what is
/// freed in each: on LocalFileSystem every read and write runs on tokio's blocking pool, so
/// the generations compaction reads and writes (tens of MiB) were spread over many arenas and
/// a 30-minute soak's RSS grew by 658 MiB/h while its heap peaked at 256 MiB (heaptrack).
/// Two arenas, before any thread starts, keep it flat (an 8-minute soak side by side: 133 MiB
/// at the end against 473, same appends/s). `MALLOC_ARENA_MAX` set by the user wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets an allocator parameter (glibc serialises it); called before any
        // thread starts so every thread shares the two arenas. A refusal (0) leaves glibc's
        // default, which is only more memory, so it is not reported.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

async fn run_main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The command runs as a task on the runtime's workers: `main` runs on a thread of its own
    // (`block_on`), so every wake between it and the writer's task would cross threads (this
    // cost small local appends half their rate in the bench, whose raw loop runs as tasks).
    let result = match tokio::spawn(run(cli.command)).await {
        Ok(result) => result,
        Err(e) => Err(Error::Invalid(format!("the command's task failed: {e}"))),
    };
    if std::env::var_os("TIDEWAL_PRINT_VMHWM").is_some() {
        print_peak_memory();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// With `TIDEWAL_PRINT_VMHWM` set, the process's peak resident memory goes to stderr as
/// `VmHWM: <kB> kB` (Linux; the memory proof and its smoke test read it).
fn print_peak_memory() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find(|l| l.starts_with("VmHWM:")) {
        Some(line) => eprintln!("{}", line.split_whitespace().collect::<Vec<_>>().join(" ")),
        None => eprintln!("VmHWM: unknown (no /proc/self/status)"),
    }
}

async fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Demo { dir } => demo(&dir).await,
        Command::Probe { url } => probe(&url).await,
        Command::Append {
            url,
            ipc,
            csv,
            generate,
            batch_rows,
            keep_bytes,
            keep_for,
        } => {
            let retention = cmds::retention(keep_bytes, keep_for.as_deref())?;
            cmds::append(&url, (ipc, csv, generate), batch_rows, retention).await
        }
        Command::Cat {
            url,
            from,
            since,
            until,
            as_of_version,
            until_time,
            columns,
            read_ahead_mib,
            format,
        } => {
            if let Some((f, u)) = from.zip(until).filter(|(f, u)| u < f) {
                return Err(Error::Invalid(format!("--until {u} is below --from {f}")));
            }
            let mut range = cmds::range(from, until, false, columns, read_ahead_mib);
            let mut since_ms = None;
            if let Some(s) = since {
                let t = since::parse_time(&s).map_err(Error::Invalid)?;
                range.from = tidewal::Start::Time(t);
                since_ms = Some(t);
            }
            if let Some(s) = until_time {
                let t = since::parse_time_of("--until-time", &s).map_err(Error::Invalid)?;
                if let Some(since) = since_ms.filter(|&since| t < since) {
                    return Err(Error::Invalid(format!(
                        "--until-time ({t} ms) is before --since ({since} ms)"
                    )));
                }
                range.until_time = Some(t);
            }
            range.as_of_version = as_of_version;
            cmds::cat(&url, range, format).await
        }
        Command::Tail {
            url,
            from: _,
            follow,
            columns: _,
            consumer: Some(name),
            format,
        } => cmds::tail_consumer(&url, &name, follow, format).await,
        Command::Tail {
            url,
            from,
            follow,
            columns,
            consumer: None,
            format,
        } => cmds::tail(&url, cmds::range(from, None, follow, columns, None), format).await,
        Command::Consumers { url, json } => cmds::consumers(&url, json).await,
        Command::History { url, json } => cmds::history(&url, json).await,
        Command::Inspect { url, json } => cmds::inspect(&url, json).await,
        Command::Verify { url } => cmds::verify(&url).await,
        Command::Flush { url } => cmds::flush(&url).await,
        Command::Gc { url } => cmds::gc(&url).await,
        Command::Compact { url } => cmds::compact(&url).await,
        Command::Truncate {
            url,
            before,
            older_than,
            force,
        } => cmds::truncate(&url, before, older_than.as_deref(), force).await,
        Command::Restore {
            url,
            to_position,
            to_time,
            to_version,
        } => {
            let time = to_time
                .map(|s| since::parse_time_of("--to-time", &s).map_err(Error::Invalid))
                .transpose()?;
            cmds::restore(&url, to_position, time, to_version).await
        }
        Command::AppendForever { dir, start } => append_forever(&dir, start).await,
        Command::Fill {
            dir,
            mib,
            entry_kib,
            memtable_mib,
        } => fill(&dir, mib, entry_kib, memtable_mib).await,
        Command::ScanCount { dir } => scan_count(&dir).await,
        Command::Soak {
            url,
            minutes,
            seconds,
            sample_secs,
            reopen_secs,
            csv,
            plot,
            keep_mib,
            history_secs,
        } => {
            let (when, keep) = ((minutes, seconds), (keep_mib, history_secs));
            let args = soak::args(url, when, sample_secs, reopen_secs, (csv, plot), keep)?;
            soak::soak(args).await
        }
        Command::Bench {
            latency_ms,
            seconds,
            dir,
            sizes_kib,
            depths,
            s3,
            replay_mib,
            scan_mib,
            compaction_mib,
            lifecycle,
            skip_appends,
            only,
            cell_mib,
            raw_fresh_bodies,
            raw_in_order,
        } => {
            let cells = BenchCells {
                sizes_kib,
                depths,
                replay_mib,
                scan_mib,
                compaction_mib,
                lifecycle,
                skip_appends,
                only,
                cell_mib,
                raw_fresh_bodies,
                raw_in_order,
            };
            bench(latency_ms, seconds, dir, cells, s3).await
        }
    }
}
