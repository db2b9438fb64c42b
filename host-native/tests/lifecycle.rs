//! A long-lived log on LocalFileSystem stays bounded (tidewal issue 14, "Prove"): sessions of
//! open → append → close through `Wal::open_url` on a temporary directory, every
//! `COLLECTOR_EVERY`th one a collector under a short lease: it calls `collect_garbage`
//! (waiting out `L * 1.1 + margin`) and stays open past `keep_manifests_for`. Every session's
//! commits delete the manifest versions that aged out (reading listed versions' times where
//! only an unknown time kept them, PROTOCOL.md §4 "Reading a time"); the bounds are those of
//! core/tests/lifecycle.rs, which proves them over 100,000 sessions in virtual time (the
//! manifest bound here is the looser one a collector alone would give).
//!
//! `cargo test -p tidewal --test lifecycle -- --nocapture` prints the table (600 sessions;
//! `TIDEWAL_LIFECYCLE_SESSIONS=2000` for the full run, about 2 minutes in debug).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use tidewal::{CompactionConfig, Options, Wal, WriterConfig};

const COLLECTOR_EVERY: u64 = 200;
/// A session commits its claim, its close's generation and at most one compaction (all runs
/// are tier 0 here: see core/tests/lifecycle.rs).
const VERSIONS_PER_SESSION: u64 = 3;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(id: i64) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![id]))]).unwrap()
}

fn options() -> Options {
    let mut writer = WriterConfig {
        lease: Duration::from_millis(100),
        gc_margin: Duration::from_millis(10),
        keep_manifests_for: Duration::from_millis(200),
        ..WriterConfig::default()
    };
    writer.compaction = Some(CompactionConfig {
        grace: Duration::from_millis(50),
        ..CompactionConfig::default()
    });
    Options {
        writer,
        ..Options::default()
    }
}

/// Files under `dir/<kind>/`.
fn count(dir: &Path, kind: &str) -> u64 {
    std::fs::read_dir(dir.join(kind)).map_or(0, |d| d.count() as u64)
}

fn newest_manifest_bytes(dir: &Path) -> u64 {
    let newest = std::fs::read_dir(dir.join("manifest"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .expect("a manifest");
    std::fs::metadata(newest).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_many_short_sessions_on_local_files_stays_bounded() {
    let n: u64 = std::env::var("TIDEWAL_LIFECYCLE_SESSIONS")
        .map(|s| s.parse().expect("TIDEWAL_LIFECYCLE_SESSIONS: a number"))
        .unwrap_or(600);
    let opts = options();
    let cfg = &opts.writer;
    let policy = cfg.compaction.clone().unwrap();
    // The bounds of core/tests/lifecycle.rs, for this config (the reasons are given there).
    let live_bound = u64::from(policy.top_tier()) * u64::from(policy.fanout - 1) + 1;
    let manifest_bound =
        u64::from(cfg.keep_manifests) + VERSIONS_PER_SESSION * (COLLECTOR_EVERY + 2);
    let retired_bound =
        u64::from(policy.fanout) * (COLLECTOR_EVERY + 2).div_ceil(u64::from(policy.fanout - 1));
    let gen_bound = live_bound + retired_bound;
    let fence_bound = COLLECTOR_EVERY + 2;
    let manifest_bytes_bound = 1024 + 512 * gen_bound;
    let warm = COLLECTOR_EVERY + 1;

    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_string_lossy().to_string();
    let every = (n / 10).max(1);
    println!(
        "{:>8} {:>5} {:>9} {:>9} {:>5} {:>5} {:>7} {:>8} {:>8}",
        "sessions", "live", "man_bytes", "manifests", "wal", "gens", "intents", "open_ms", "max_ms"
    );
    let mut max_open = Duration::ZERO;
    for i in 0..n {
        let started = Instant::now();
        let wal = Wal::open_url(&url, schema(), opts.clone()).await.unwrap();
        let open = started.elapsed();
        max_open = max_open.max(open);
        wal.append(&batch(i as i64)).await.unwrap();
        if (i + 1) % COLLECTOR_EVERY == 0 {
            wal.collect_garbage().await.unwrap();
            tokio::time::sleep(cfg.keep_manifests_for + Duration::from_millis(20)).await;
        }
        let live = wal.stats().await.unwrap().writer.generations_live;
        wal.close().await.unwrap();
        assert!(
            live <= live_bound,
            "session {i}: {live} live > {live_bound}"
        );
        let d = dir.path();
        let (manifests, wal_slots, gens, intents) = (
            count(d, "manifest"),
            count(d, "wal"),
            count(d, "gen"),
            count(d, "fences"),
        );
        let bytes = newest_manifest_bytes(d);
        if i >= warm {
            let what = format!("session {i}: {manifests} manifests, {wal_slots} WAL slots, {gens} generation files, {intents} intents, {bytes} manifest bytes");
            assert!(manifests <= manifest_bound, "{what}");
            assert!(gens <= gen_bound, "{what}");
            assert!(wal_slots <= fence_bound, "{what}");
            assert!(intents <= fence_bound, "{what}");
            assert!(bytes <= manifest_bytes_bound, "{what}");
        }
        if (i + 1) % every == 0 {
            println!(
                "{:>8} {:>5} {:>9} {:>9} {:>5} {:>5} {:>7} {:>8.2} {:>8.2}",
                i + 1,
                live,
                bytes,
                manifests,
                wal_slots,
                gens,
                intents,
                open.as_secs_f64() * 1e3,
                max_open.as_secs_f64() * 1e3
            );
            max_open = Duration::ZERO;
        }
    }
    println!(
        "bounds: live <= {live_bound}, manifests <= {manifest_bound}, gens <= {gen_bound}, \
         wal and intents <= {fence_bound}, manifest bytes <= {manifest_bytes_bound}"
    );
    // Everything appended is read back, in order.
    let wal = Wal::open_url(&url, schema(), opts.clone()).await.unwrap();
    let ids: Vec<i64> = futures::TryStreamExt::try_collect::<Vec<_>>(wal.scan())
        .await
        .unwrap()
        .iter()
        .flat_map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            col.values().to_vec()
        })
        .collect();
    assert_eq!(ids, (0..n as i64).collect::<Vec<_>>());
    wal.close().await.unwrap();
}
