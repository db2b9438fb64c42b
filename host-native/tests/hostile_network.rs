//! A network that drops and lies (tidewal issue 16, part 2): a writer (awaited and pipelined
//! appends), a follower and a named consumer reach SeaweedFS through a proxy that fails
//! requests at random, every kind of `common/proxy.rs` (resets before and after forwarding,
//! cut bodies, 500 and 503 SlowDown before and after forwarding, answers held past the
//! client's timeout). A writer that stops must stop with a typed error (a new one takes over);
//! no await may outlive its bound. At the end a direct read (no proxy) checks that every
//! acknowledged row is in the log exactly once, in order, that nothing in the log or read by
//! the follower or the consumer was never appended, and that the follower read the log in
//! order without repeats.
//!
//! Needs `TIDEWAL_S3_BUCKET` and `AWS_ENDPOINT` (scripts/test.sh starts SeaweedFS); skipped
//! without. `TIDEWAL_PROXY_SEED` picks the fault schedule (printed, to replay a run);
//! `TIDEWAL_PROXY_SECONDS` the length of the load (default 15).

#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use tidewal::{Consumer, ConsumerOptions, Error, Item, Options, ReadOptions, Start, Tailer, Wal};

/// A client gives up on an answer after this: the proxy's longer delays make ambiguous puts.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Faults per thousand requests.
const FAULT_PER_MILLE: u64 = 120;
/// A writer is replaced after this (closed, or dropped as a crash).
const WRITER_LIFE: Duration = Duration::from_secs(4);
/// No await of the test may take longer: past it the test fails as hung.
const BOUND: Duration = Duration::from_secs(45);

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from_iter_values(ids))]).unwrap()
}

fn ids_of(b: &RecordBatch) -> Vec<i64> {
    let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    col.values().to_vec()
}

/// The server's address and bucket, when the test command started one.
fn seaweedfs() -> Option<(SocketAddr, String)> {
    let bucket = std::env::var("TIDEWAL_S3_BUCKET").ok()?;
    let endpoint = std::env::var("AWS_ENDPOINT").ok()?;
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    Some((
        hostport.parse().expect("AWS_ENDPOINT: http://IP:PORT"),
        bucket,
    ))
}

fn store(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    // The client options replace the builder's: `allow_http` must be set here again.
    let client = ClientOptions::new()
        .with_allow_http(true)
        .with_timeout(CLIENT_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(1));
    // Few client retries: most faults reach the core, whose retries and read-backs are what
    // this test is about.
    let retry = RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(20),
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
        },
    };
    let s3 = AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .unwrap();
    Arc::new(s3)
}

/// Awaits `f`, failing the test if it takes longer than [`BOUND`].
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung past {BOUND:?}"),
    }
}

fn options() -> Options {
    let mut o = Options {
        take_over: true,
        ..Options::default()
    };
    // Small memtables: generations are flushed (and compacted) through the proxy too.
    o.writer.memtable_bytes = 64 << 10;
    o
}

/// The variant of a typed error (its Debug name), for the report.
fn kind(e: &Error) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{']).next().unwrap_or("").to_string()
}

#[derive(Default)]
struct Writes {
    appended: BTreeSet<i64>,
    acked: BTreeSet<i64>,
    writers: u64,
    /// Writers dropped without closing.
    crashed: u64,
    stops: Vec<String>,
}

/// Appends until `until`: one awaited append, then eight pipelined ones, again and again. A
/// writer that stops (a typed error) or lived [`WRITER_LIFE`] is replaced by a new one, which
/// fences it.
async fn write(store: Arc<dyn ObjectStore>, prefix: String, until: Instant) -> Writes {
    let mut w = Writes::default();
    let mut next = 0i64;
    while Instant::now() < until {
        let wal = match bounded(
            "open",
            Wal::open(store.clone(), &prefix, schema(), options()),
        )
        .await
        {
            Ok(wal) => wal,
            Err(e) => {
                w.stops.push(format!("open: {}", kind(&e)));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        w.writers += 1;
        let born = Instant::now();
        let mut stopped = false;
        'appending: while Instant::now() < until && born.elapsed() < WRITER_LIFE {
            let n = 1 + next % 3;
            let ids = next..next + n;
            next += n;
            w.appended.extend(ids.clone());
            match bounded("append", wal.append(&batch(ids.clone()))).await {
                Ok(_) => w.acked.extend(ids),
                Err(e) => {
                    w.stops.push(format!("append: {}", kind(&e)));
                    stopped = true;
                    break 'appending;
                }
            }
            let mut pipelined = Vec::new();
            for _ in 0..8 {
                let ids = next..next + 2;
                next += 2;
                w.appended.extend(ids.clone());
                match wal.append_nowait(&batch(ids.clone())) {
                    Ok(h) => pipelined.push((ids, h)),
                    Err(e) => {
                        w.stops.push(format!("append_nowait: {}", kind(&e)));
                        break;
                    }
                }
            }
            let mut failed = pipelined.len() < 8;
            for (ids, h) in pipelined {
                match bounded("pipelined append", h).await {
                    Ok(_) => w.acked.extend(ids),
                    Err(e) => {
                        if !failed {
                            w.stops.push(format!("pipelined append: {}", kind(&e)));
                        }
                        failed = true;
                    }
                }
            }
            if failed {
                stopped = true;
                break;
            }
        }
        // Two writers in three, and the last, die without closing (as a killed process): what
        // it acknowledged is only in the WAL, for the next one (or the final read) to find.
        if !stopped && (w.writers % 3 != 0 || Instant::now() >= until) {
            w.crashed += 1;
            drop(wal);
            continue;
        }
        // A close may fail too (the network), but within its bound.
        if let Err(e) = bounded("close", wal.close()).await {
            w.stops.push(format!("close: {}", kind(&e)));
        }
    }
    w
}

#[derive(Default)]
struct Follower {
    /// (position, id) of every row read, across restarts.
    read: Vec<(u64, i64)>,
    restarts: Vec<String>,
}

/// Follows the log until `stop`; after a typed error, a new reader resumes past the last
/// position it read.
async fn follow(store: Arc<dyn ObjectStore>, prefix: String, stop: Arc<AtomicBool>) -> Follower {
    let mut f = Follower::default();
    while !stop.load(Ordering::Relaxed) {
        let from = f
            .read
            .last()
            .map_or(Start::Beginning, |&(p, _)| Start::Position(p + 1));
        let opts = ReadOptions {
            from,
            follow: true,
            poll_interval: Duration::from_millis(50),
            ..ReadOptions::default()
        };
        let mut t = match Tailer::with_options(store.clone(), &prefix, schema(), &opts) {
            Ok(t) => t,
            Err(e) => panic!("a reader's options refused: {e}"),
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return f;
            }
            match tokio::time::timeout(Duration::from_millis(500), t.next()).await {
                Err(_) => continue, // nothing new yet
                Ok(Some(Ok(Item::Batch { position, batch }))) => {
                    f.read
                        .extend(ids_of(&batch).into_iter().map(|id| (position, id)));
                }
                Ok(Some(Ok(Item::CaughtUp { .. }))) => {}
                Ok(Some(Err(e))) => {
                    f.restarts.push(kind(&e));
                    break;
                }
                Ok(None) => {
                    f.restarts.push("ended".into());
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f
}

#[derive(Default)]
struct Consumed {
    /// Each instance's rows, in the order it read them.
    instances: Vec<Vec<i64>>,
    commits: u64,
    restarts: Vec<String>,
}

/// A named consumer that commits after every fourth position; reclaimed after a typed error.
async fn consume(store: Arc<dyn ObjectStore>, prefix: String, stop: Arc<AtomicBool>) -> Consumed {
    let mut c = Consumed::default();
    let opts = ConsumerOptions {
        follow: true,
        poll_interval: Duration::from_millis(50),
        ..ConsumerOptions::default()
    };
    while !stop.load(Ordering::Relaxed) {
        let open = Consumer::open(store.clone(), &prefix, schema(), "etl", opts.clone());
        let mut consumer = match bounded("consumer open", open).await {
            Ok(consumer) => consumer,
            Err(e) => {
                c.restarts.push(format!("open: {}", kind(&e)));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut rows = Vec::new();
        'reading: while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_millis(500), consumer.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(Item::Batch { position, batch }))) => {
                    rows.extend(ids_of(&batch));
                    if position % 4 != 0 {
                        continue;
                    }
                    match bounded("consumer commit", consumer.commit(position + 1)).await {
                        Ok(_) => c.commits += 1,
                        Err(e) => {
                            c.restarts.push(format!("commit: {}", kind(&e)));
                            break 'reading;
                        }
                    }
                }
                Ok(Some(Ok(Item::CaughtUp { .. }))) => {}
                Ok(Some(Err(e))) => {
                    c.restarts.push(kind(&e));
                    break;
                }
                Ok(None) => break,
            }
        }
        c.instances.push(rows);
        let _ = bounded("consumer close", consumer.close()).await;
    }
    c
}

/// Strictly increasing (no repeats, in order).
fn increasing(ids: impl IntoIterator<Item = i64>) -> Result<(), String> {
    let mut last = None;
    for id in ids {
        if last.is_some_and(|l| id <= l) {
            return Err(format!("{id} after {}", last.unwrap()));
        }
        last = Some(id);
    }
    Ok(())
}

/// A writer, a follower and a consumer on `reach` for `seconds` (with `meanwhile` running
/// beside them), then the checks against a direct read of `direct`. Returns the report.
async fn run_and_check(
    reach: Arc<dyn ObjectStore>,
    direct: Arc<dyn ObjectStore>,
    prefix: &str,
    seconds: u64,
    meanwhile: impl Future<Output = ()>,
) -> String {
    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(seconds);
    let writer = tokio::spawn(write(reach.clone(), prefix.into(), until));
    // The readers start once the log exists (its first writer created it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let follower = tokio::spawn(follow(reach.clone(), prefix.into(), stop.clone()));
    let consumer = tokio::spawn(consume(reach.clone(), prefix.into(), stop.clone()));
    meanwhile.await;
    let w = bounded("the writers", writer).await.unwrap();
    // Let the readers catch up, then stop them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let f = bounded("the follower", follower).await.unwrap();
    let c = bounded("the consumer", consumer).await.unwrap();

    let codec = tidewal::codec(schema()).unwrap();
    let log: Vec<i64> = bounded("the final read", tidewal::read_log(direct, prefix, &codec))
        .await
        .unwrap()
        .iter()
        .flat_map(ids_of)
        .collect();
    let in_log: BTreeSet<i64> = log.iter().copied().collect();
    let lost: Vec<i64> = w.acked.difference(&in_log).copied().collect();
    let mut stops = std::collections::BTreeMap::<&str, u64>::new();
    for s in &w.stops {
        *stops.entry(s).or_default() += 1;
    }
    let report = format!(
        "rows appended {}, acknowledged {}, in the log {}, lost {}; writers {} ({} crashed), stops {stops:?}\n\
         follower read {} rows, restarts {:?}; consumer {} instances, {} rows, {} commits, restarts {:?}",
        w.appended.len(),
        w.acked.len(),
        log.len(),
        lost.len(),
        w.writers,
        w.crashed,
        f.read.len(),
        f.restarts,
        c.instances.len(),
        c.instances.iter().map(Vec::len).sum::<usize>(),
        c.commits,
        c.restarts
    );
    println!("{report}");

    assert!(!w.acked.is_empty(), "nothing was acknowledged");
    assert_eq!(
        lost,
        Vec::<i64>::new(),
        "acknowledged rows missing from the log"
    );
    increasing(log.iter().copied())
        .map_err(|e| format!("the log: {e}"))
        .unwrap();
    let unappended: Vec<&i64> = log.iter().filter(|id| !w.appended.contains(id)).collect();
    assert!(
        unappended.is_empty(),
        "in the log, never appended: {unappended:?}"
    );
    // The follower: rows of the log only, in its order, each once.
    increasing(f.read.iter().map(|&(_, id)| id))
        .map_err(|e| format!("the follower: {e}"))
        .unwrap();
    let strays: Vec<i64> = f
        .read
        .iter()
        .map(|&(_, id)| id)
        .filter(|id| !in_log.contains(id))
        .collect();
    assert!(
        strays.is_empty(),
        "the follower read rows not in the log: {strays:?}"
    );
    assert!(!f.read.is_empty(), "the follower read nothing");
    // The consumer: each instance in log order; only rows of the log.
    for (i, rows) in c.instances.iter().enumerate() {
        increasing(rows.iter().copied())
            .map_err(|e| format!("consumer instance {i}: {e}"))
            .unwrap();
        let strays: Vec<&i64> = rows.iter().filter(|id| !in_log.contains(id)).collect();
        assert!(
            strays.is_empty(),
            "consumer instance {i} read rows not in the log: {strays:?}"
        );
    }
    assert!(
        c.instances.iter().any(|rows| !rows.is_empty()),
        "the consumer read nothing"
    );
    report
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_row_survives_a_network_that_drops_and_lies() {
    let Some((upstream, bucket)) = seaweedfs() else {
        eprintln!("skipped: TIDEWAL_S3_BUCKET / AWS_ENDPOINT not set (scripts/test.sh sets them)");
        return;
    };
    let seed = env_number("TIDEWAL_PROXY_SEED", u64::from(rand::random::<u32>()));
    let seconds = env_number("TIDEWAL_PROXY_SECONDS", 15);
    // A mild rate the clients' retries mostly absorb, then a harsh one where writers stop.
    for (round, per_mille) in [(0, FAULT_PER_MILLE), (1, 3 * FAULT_PER_MILLE)] {
        let seed = seed + round;
        println!("TIDEWAL_PROXY_SEED={seed}: {seconds} s, {per_mille}/1000 requests failed");
        let p = proxy::Proxy::start(
            upstream,
            seed,
            per_mille,
            CLIENT_TIMEOUT * 2,
            CLIENT_TIMEOUT,
        )
        .await;
        let proxied = store(&format!("http://{}", p.addr), &bucket);
        let direct = store(&format!("http://{upstream}"), &bucket);
        let prefix = format!("hostile-{seed}-{}-{round}", std::process::id());
        run_and_check(proxied, direct, &prefix, seconds, async {}).await;
        println!("proxy: {}", p.counts.report());
        for (kind, n) in proxy::FAULTS.iter().zip(&p.counts.faults) {
            assert!(n.load(Ordering::Relaxed) > 0, "no {kind:?} injected");
        }
    }
}

/// A private SeaweedFS (`weed mini`, the one scripts/test.sh installs) on ports of its own,
/// so it can be killed and restarted on the same data directory.
struct PrivateSeaweedfs {
    weed: std::path::PathBuf,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

/// Fixed, like its other ports: two runs of this test at once would collide.
const PRIVATE_S3_PORT: u16 = 18433;

impl PrivateSeaweedfs {
    fn start(weed: std::path::PathBuf) -> PrivateSeaweedfs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s3.json"),
            r#"{"identities":[{"name":"tidewal","credentials":[{"accessKey":"tidewal","secretKey":"tidewal-secret-key"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let mut s = PrivateSeaweedfs {
            weed,
            dir,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("weed.log")).unwrap();
        let child = std::process::Command::new(&self.weed)
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .args(["-bucket=tidewal", &format!("-s3.port={PRIVATE_S3_PORT}")])
            // Every other port away from the test command's SeaweedFS (its defaults).
            .args([
                "-master.port=9433",
                "-master.port.grpc=19433",
                "-volume.port=9440",
                "-volume.port.grpc=19440",
                "-filer.port=8988",
                "-filer.port.grpc=18988",
                "-s3.port.grpc=28433",
                "-s3.port.iceberg=8281",
                "-s3.port.lance=9201",
                "-admin.port=23746",
                "-admin.port.grpc=33746",
                "-webdav.port=7433",
                "-debug.port=6160",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed mini starts");
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL: nothing flushed on the way out).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for PrivateSeaweedfs {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until a LIST of the bucket answers.
async fn until_ready(store: &Arc<dyn ObjectStore>, server: &PrivateSeaweedfs) {
    use futures::TryStreamExt;
    let started = Instant::now();
    loop {
        let listed: Result<Vec<_>, _> = store.list(Some(&"ready".into())).try_collect().await;
        if listed.is_ok() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the private SeaweedFS did not come up: {}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_row_survives_the_store_killed_and_restarted() {
    // The test command's SeaweedFS tells where `weed` is: the same install.
    if seaweedfs().is_none() {
        eprintln!("skipped: TIDEWAL_S3_BUCKET / AWS_ENDPOINT not set (scripts/test.sh sets them)");
        return;
    }
    let weed = std::env::var("TIDEWAL_WEED").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/weed"),
        std::path::PathBuf::from,
    );
    assert!(
        weed.exists(),
        "no weed at {} (TIDEWAL_WEED)",
        weed.display()
    );
    let mut server = PrivateSeaweedfs::start(weed);
    let endpoint = format!("http://127.0.0.1:{PRIVATE_S3_PORT}");
    let s = store(&endpoint, "tidewal");
    until_ready(&s, &server).await;
    let seconds = env_number("TIDEWAL_PROXY_SECONDS", 15);
    let server_ref = &mut server;
    let s_ref = &s;
    let outage = async move {
        // Twice: killed for two seconds, then restarted on the same data.
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let down = Instant::now();
            server_ref.kill();
            tokio::time::sleep(Duration::from_secs(2)).await;
            server_ref.spawn();
            until_ready(s_ref, server_ref).await;
            println!("store down for {:?}", down.elapsed());
        }
    };
    let prefix = format!("restart-{}", std::process::id());
    run_and_check(s.clone(), s.clone(), &prefix, seconds, outage).await;
}
