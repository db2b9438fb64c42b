//! The automatic retention policy on LocalFileSystem (PROTOCOL.md §4 "Automatic retention"):
//! a writer that keeps appending and flushing under `keep_bytes` keeps the bytes of its live
//! generations, and of the generation files on disk, bounded while what it appended grows;
//! a named consumer holds the policy back.
//!
//! `cargo test -p tidewal --test autoretain -- --nocapture` prints the table.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use tidewal::{CompactionConfig, ConsumerOptions, Options, RetentionPolicy, Wal, WriterConfig};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(first: i64, rows: i64) -> RecordBatch {
    let ids = Int64Array::from((first..first + rows).collect::<Vec<_>>());
    RecordBatch::try_new(schema(), vec![Arc::new(ids)]).unwrap()
}

const KEEP: u64 = 64 << 10;

fn options() -> Options {
    let writer = WriterConfig {
        keep_manifests: 1,
        keep_manifests_for: Duration::ZERO,
        compaction: Some(CompactionConfig {
            grace: Duration::ZERO,
            ..CompactionConfig::default()
        }),
        retention: Some(RetentionPolicy {
            keep_for: None,
            keep_bytes: Some(KEEP),
            interval: Duration::from_millis(1),
        }),
        ..WriterConfig::default()
    };
    Options {
        writer,
        ..Options::default()
    }
}

/// Bytes of the files under `dir/gen/`.
fn gen_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("gen"))
        .map_or(0, |d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
}

/// One flush of `n` appends of 1,000 rows; then the writer's round (after the flush's
/// commit) is given a moment, and the next append's flush commits its drop's retired files.
async fn flush_round(wal: &Wal, first: i64, n: i64) {
    for i in 0..n {
        wal.append(&batch(first + i * 1000, 1000)).await.unwrap();
    }
    wal.flush_memtable().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_bytes_keeps_the_live_and_on_disk_generation_bytes_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_string_lossy().to_string();
    let wal = Wal::open_url(&url, schema(), options()).await.unwrap();
    println!(
        "{:>7} {:>12} {:>10} {:>10} {:>8} {:>8}",
        "flushes", "appended_b", "live_b", "disk_gen_b", "dropped", "live"
    );
    let mut largest = 0;
    for f in 0..40 {
        flush_round(&wal, f * 4000, 2).await;
        let s = wal.stats().await.unwrap().writer;
        let (store, prefix) = tidewal::store_for(&url).unwrap();
        let m = tidewal::inspect(store, &prefix)
            .await
            .unwrap()
            .manifest
            .unwrap();
        let live: u64 = m.generations.iter().map(|g| g.bytes).sum();
        largest = largest.max(m.generations.iter().map(|g| g.bytes).max().unwrap_or(0));
        let disk = gen_bytes(dir.path());
        if f % 5 == 4 {
            println!(
                "{:>7} {:>12} {:>10} {:>10} {:>8} {:>8}",
                f + 1,
                s.appended_bytes,
                live,
                disk,
                s.generations_dropped,
                s.generations_live
            );
        }
        // The round after each flush leaves at most KEEP in generations.
        assert!(live <= KEEP, "flush {f}: {live} bytes live > {KEEP}");
        // On disk: the live ones and those retired by the last drop, until the next commit.
        assert!(
            disk <= 2 * KEEP + 2 * largest,
            "flush {f}: {disk} bytes on disk"
        );
    }
    let s = wal.stats().await.unwrap().writer;
    assert!(
        s.appended_bytes > 8 * KEEP,
        "the log wrote well past the bound"
    );
    assert!(s.generations_dropped > 0 && s.retention_rounds > 0);
    assert_eq!(s.retention_held_back, 0);
    wal.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_consumer_holds_the_policy_back_and_is_named_in_stats() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_string_lossy().to_string();
    let wal = Wal::open_url(&url, schema(), options()).await.unwrap();
    // A consumer that consumed nothing holds every entry.
    let (store, prefix) = tidewal::store_for(&url).unwrap();
    let consumer =
        tidewal::Consumer::open(store, &prefix, schema(), "slow", ConsumerOptions::default())
            .await
            .unwrap();
    for f in 0..6 {
        flush_round(&wal, f * 4000, 4).await;
    }
    let s = wal.stats().await.unwrap().writer;
    assert_eq!(s.generations_dropped, 0);
    assert!(s.retention_held_back > 0);
    let held = s.retention_held_by.expect("the consumer that held it back");
    assert_eq!((held.name.as_str(), held.position), ("slow", 0));
    drop(consumer);
    wal.close().await.unwrap();
}
