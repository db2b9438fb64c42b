//! A child process appends in a loop and is killed with SIGKILL at random moments; after each
//! kill a new writer opens and every acknowledged row must be there exactly once, in order.

// The library tests' helpers (the same `ids`).
#[path = "../../tests/common/mod.rs"]
mod common;

use common::ids;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use tidewal::{Options, Wal};

const KILLS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_rows_survive_sigkill_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    kill_and_check(&dir.path().to_string_lossy()).await;
}

/// The same against a real S3 server (SeaweedFS, started by scripts/test.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_rows_survive_sigkill_on_s3() {
    let Ok(bucket) = std::env::var("TIDEWAL_S3_BUCKET") else {
        eprintln!("TIDEWAL_S3_BUCKET is not set: S3 crash test not run");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    kill_and_check(&format!("s3://{bucket}/crash-{nanos}")).await;
}

async fn kill_and_check(path: &str) {
    let path = path.to_string();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let mut acked = BTreeSet::new();
    let mut next_id = 0i64;
    // Deterministic "random" kill moments: 5..120 ms after the first ack.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..KILLS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let after = Duration::from_millis(5 + state % 115);
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidewal"))
            .args(["append-forever", &path, "--start", &next_id.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        // Let it run, then kill it mid-flight.
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(300) + after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut got = 0;
        for l in lines {
            let mut parts = l.split_whitespace();
            if parts.next() == Some("ack") {
                let id: i64 = parts.next().unwrap().parse().unwrap();
                acked.insert(id);
                next_id = next_id.max(id + 1);
                got += 1;
            }
        }
        // Ids the child appended but never acknowledged may or may not be there; new ids
        // start well past them so that they stay unique.
        next_id += 1000;
        let wal = Wal::open_url(&path, schema.clone(), Options::default())
            .await
            .unwrap();
        let batches = wal.scan().try_collect::<Vec<_>>().await.unwrap();
        let ids = ids(&batches);
        let unique: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "round {round}: a row was read twice"
        );
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "round {round}: rows out of order"
        );
        let missing: Vec<_> = acked.difference(&unique).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged ids lost: {missing:?}"
        );
        wal.close().await.unwrap();
        eprintln!(
            "round {round}: killed after {:?}, {got} acks this round, {} acked in all, {} rows in the log",
            started.elapsed(),
            acked.len(),
            ids.len()
        );
    }
    assert!(
        acked.len() > 1000,
        "the child acknowledged too little: {}",
        acked.len()
    );
}
