//! What a named consumer costs: requests to open (claim) and to commit, counted on the core's
//! in-memory store, and the time of each on InMemory, InMemory with 20 ms per request
//! (object_store's ThrottledStore), LocalFileSystem and, when `TIDEWAL_S3_BUCKET` names one
//! (scripts/seaweedfs.sh), a real S3 server. Prints numbers; asserts nothing.
//!
//! `cargo run --release -p tidewal --example consumer_cost`

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::ObjectStore;
use tidewal::{Consumer, ConsumerOptions, Item, Options, Wal};
use tidewal_core::{
    ConsumerConfig, ConsumerEvent, IoCounters, Machine, MemStore, Output, RawCodec, ReadEvent,
};

const ROUNDS: u32 = 20;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

/// Drives a core consumer against `store` until `stop` says so; every request executed.
fn run(
    store: &mut MemStore,
    c: &mut tidewal_core::Consumer,
    stop: impl Fn(&ConsumerEvent) -> bool,
) {
    loop {
        match c.poll_output() {
            Output::Request(r) => {
                let resp = store.execute(&r.op);
                c.handle_response(r.id, resp, Duration::ZERO);
            }
            Output::Event(e) if stop(&e) => return,
            Output::Event(_) => {}
            Output::Wait(_) | Output::Done => return,
        }
    }
}

fn minus(a: IoCounters, b: IoCounters) -> String {
    format!(
        "{} LIST, {} GET, {} PUT, {} DELETE",
        a.lists - b.lists,
        a.gets - b.gets,
        a.puts - b.puts,
        a.deletes - b.deletes
    )
}

/// Requests of a claim on a fresh name and on a name with versions, and of a commit (its
/// GC deletes included), from the core machine's own counters (an empty log: the reader's
/// requests are only its first manifest list).
fn count_requests() {
    let mut store = MemStore::new();
    let codec = || Box::new(RawCodec::new("s"));
    for (what, seed) in [
        ("claim of a new name", 1),
        ("claim of a name with versions", 2),
    ] {
        let mut c = tidewal_core::Consumer::new(
            ConsumerConfig::new("p", "etl"),
            codec(),
            seed,
            Duration::ZERO,
        )
        .unwrap();
        run(&mut store, &mut c, |e| {
            matches!(e, ConsumerEvent::Claimed { .. })
        });
        println!(
            "{what:<34} {}",
            minus(c.io_counters(), IoCounters::default())
        );
        run(&mut store, &mut c, |e| {
            matches!(e, ConsumerEvent::Read(ReadEvent::CaughtUp { .. }))
        });
        let before = c.io_counters();
        for _ in 0..6 {
            c.commit(0).unwrap();
            run(&mut store, &mut c, |e| {
                matches!(e, ConsumerEvent::Committed { .. })
            });
        }
        let after = c.io_counters();
        println!(
            "{:<34} {} (6 commits, keep 4)",
            "commits",
            minus(after, before)
        );
    }
}

async fn time_on(label: &str, store: Arc<dyn ObjectStore>) {
    let wal = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .unwrap();
    let batch =
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![1i64, 2, 3]))]).unwrap();
    for _ in 0..10 {
        wal.append(&batch).await.unwrap();
    }
    let (mut open, mut commit) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut c = Consumer::open(
            store.clone(),
            "log",
            schema(),
            "etl",
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
        open += started.elapsed();
        let mut end = c.start_position();
        while let Some(item) = c.next().await {
            if let Item::CaughtUp { position } = item.unwrap() {
                end = position;
            }
        }
        let started = Instant::now();
        c.commit(end).await.unwrap();
        commit += started.elapsed();
        c.close().await.unwrap();
    }
    wal.close().await.unwrap();
    println!(
        "{label:<26} open (claim) {:>8.2} ms   commit {:>8.2} ms   (mean of {ROUNDS})",
        open.as_secs_f64() * 1e3 / f64::from(ROUNDS),
        commit.as_secs_f64() * 1e3 / f64::from(ROUNDS),
    );
}

#[tokio::main]
async fn main() {
    println!(
        "requests (core machine on MemStore; a claim's count includes its reader's first LIST):"
    );
    count_requests();
    println!("time (native host):");
    time_on("InMemory", Arc::new(InMemory::new())).await;
    let ms20 = Duration::from_millis(20);
    let throttle = ThrottleConfig {
        wait_put_per_call: ms20,
        wait_get_per_call: ms20,
        wait_list_per_call: ms20,
        wait_delete_per_call: ms20,
        ..ThrottleConfig::default()
    };
    time_on(
        "InMemory + 20 ms/request",
        Arc::new(ThrottledStore::new(InMemory::new(), throttle)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    time_on(
        "LocalFileSystem",
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
    )
    .await;
    // A real S3 server when one is configured (scripts/seaweedfs.sh exports these).
    if let Ok(bucket) = std::env::var("TIDEWAL_S3_BUCKET") {
        let url = format!("s3://{bucket}/consumer-cost-{}", std::process::id());
        let (store, prefix) = tidewal::store_for(&url).unwrap();
        let store = object_store::prefix::PrefixStore::new(store, prefix.as_str());
        time_on("S3 (TIDEWAL_S3_BUCKET)", Arc::new(store)).await;
    }
}
