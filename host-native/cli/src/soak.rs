//! `tidewal soak`: mixed load on one log for a given time, sampled into a CSV and an SVG,
//! then a full read that checks every acknowledged row (issue 16, "Soak").
//!
//! The load, all in this process: awaited 100 B appends, pipelined 4 KiB appends, pipelined
//! 64 KiB batches, awaited `append_group`s, a memtable flush every 17 s, background
//! compaction plus an explicit pass every 51 s, size-based retention held back by a named
//! consumer, a follower, and every `--reopen-secs` a second writer that takes the log over
//! (the first must then refuse with the typed `Fenced` error, never acknowledge).
//!
//! Every row carries an id, unique over the run and increasing in the order appends are
//! queued (ids are taken and the append queued under one lock), so the log must hold ids in
//! strictly increasing order. Acknowledged appends go to a journal file, not to memory, so
//! the harness itself does not grow while it measures growth.

use std::collections::VecDeque;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::ObjectStore;
use tidewal::{
    AppendHandle, CompactionConfig, Consumer, ConsumerOptions, Error, Item, Options, ReadOptions,
    RetentionPolicy, Tailer, Wal,
};
use tokio::sync::watch;

/// What `tidewal soak` was asked to do.
pub struct SoakArgs {
    /// The log's URL (must hold nothing yet).
    pub url: String,
    /// How long the load runs.
    pub duration: Duration,
    /// Time between samples.
    pub sample: Duration,
    /// Time between takeovers by a new writer.
    pub reopen: Duration,
    /// Where the samples go (CSV).
    pub csv: Option<PathBuf>,
    /// Where the plot goes (SVG).
    pub plot: Option<PathBuf>,
    /// Bytes kept in generations by the retention policy.
    pub keep_bytes: u64,
    /// How long manifest versions (and the files they name) are kept.
    pub history: Duration,
}

/// The CSV's header (the smoke test checks it).
pub const CSV_HEADER: &str = "elapsed_s,rss_kib,fds,objects,object_bytes,appends_per_s,mb_per_s,acked_rows,follower_rows,consumer_position,epoch";

/// Checks the arguments and turns `--minutes` / `--seconds` into one duration.
pub fn args(
    url: String,
    (minutes, seconds): (Option<f64>, Option<f64>),
    sample_secs: f64,
    reopen_secs: f64,
    (csv, plot): (Option<String>, Option<String>),
    (keep_mib, history_secs): (u64, f64),
) -> Result<SoakArgs, Error> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v < 1e7 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(Error::Invalid(format!(
                "{name} {v}: expected a positive number below 10,000,000"
            )))
        }
    };
    let duration = match (minutes, seconds) {
        (Some(m), None) => positive("--minutes", m)?,
        (None, Some(s)) => positive("--seconds", s)?,
        _ => {
            return Err(Error::Invalid(
                "soak needs its length: --minutes M or --seconds S".into(),
            ))
        }
    };
    let duration = if minutes.is_some() {
        duration * 60
    } else {
        duration
    };
    if keep_mib == 0 {
        return Err(Error::Invalid("--keep-mib 0: expected at least 1".into()));
    }
    Ok(SoakArgs {
        url,
        duration,
        sample: positive("--sample-secs", sample_secs)?,
        reopen: positive("--reopen-secs", reopen_secs)?,
        csv: csv.map(PathBuf::from),
        plot: plot.map(PathBuf::from),
        keep_bytes: keep_mib << 20,
        history: positive("--history-secs", history_secs)?,
    })
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("blob", DataType::Binary, false),
    ]))
}

/// The byte every blob of row `id` is filled with: the full read checks it.
fn fill(id: i64) -> u8 {
    (id.rem_euclid(251)) as u8
}

fn batch(schema: &SchemaRef, first: i64, rows: usize, blob: usize) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let blobs: Vec<Vec<u8>> = ids.iter().map(|&i| vec![fill(i); blob]).collect();
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(BinaryArray::from_iter_values(blobs.iter())),
        ],
    )
    .expect("soak batch matches its schema")
}

/// The writer the load goes to, and the next row id. Held only to take ids and queue an
/// append (both at once, so ids grow with the queue's order), or to swap writers.
struct Current {
    wal: Arc<Wal>,
    next_id: i64,
}

/// An acknowledged append, as the journal holds it: 20 bytes.
#[derive(Clone, Copy)]
struct Acked {
    position: u64,
    first_id: i64,
    rows: u32,
}

#[derive(Default)]
struct Counters {
    acked_appends: AtomicU64,
    acked_rows: AtomicU64,
    acked_bytes: AtomicU64,
    /// Appends refused with `Fenced` (around a takeover: expected).
    fenced: AtomicU64,
    follower_rows: AtomicU64,
    follower_disorder: AtomicU64,
    consumer_position: AtomicU64,
    consumer_disorder: AtomicU64,
    consumer_reopens: AtomicU64,
    epoch: AtomicU64,
    reopens: AtomicU64,
    fence_checks: AtomicU64,
    flushes: AtomicU64,
    compactions: AtomicU64,
    collections: AtomicU64,
}

struct Shared {
    schema: SchemaRef,
    current: Mutex<Current>,
    counters: Counters,
    journal: Mutex<BufWriter<std::fs::File>>,
    /// Unexpected errors, as text (the first 50), and how many there were.
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
    started: Instant,
}

impl Shared {
    fn unexpected(&self, what: &str, e: impl std::fmt::Display) {
        self.error_count.fetch_add(1, Relaxed);
        let line = format!("{:.1} s: {what}: {e}", self.started.elapsed().as_secs_f64());
        eprintln!("soak: {line}");
        let mut errors = self.errors.lock().expect("errors lock");
        if errors.len() < 50 {
            errors.push(line);
        }
    }

    fn wal(&self) -> Arc<Wal> {
        self.current.lock().expect("writer lock").wal.clone()
    }

    /// Takes ids for `shape` (rows and blob size of each batch) and queues them as one
    /// append (a group if several batches) on the current writer.
    fn submit(&self, shape: &[(usize, usize)]) -> Result<Pending, Error> {
        let mut current = self.current.lock().expect("writer lock");
        let first = current.next_id;
        let mut id = first;
        let mut bytes = 0u64;
        let batches: Vec<RecordBatch> = shape
            .iter()
            .map(|&(rows, blob)| {
                let b = batch(&self.schema, id, rows, blob);
                id += rows as i64;
                bytes += (rows * (blob + 8)) as u64;
                b
            })
            .collect();
        let handle = current.wal.append_group_nowait(&batches)?;
        current.next_id = id;
        Ok(Pending {
            handle,
            first,
            rows: (id - first) as u32,
            bytes,
        })
    }

    /// Waits for an append and books its outcome.
    async fn settle(&self, p: Pending) {
        match p.handle.await {
            Ok(ack) => self.acked(ack.position, p.first, p.rows, p.bytes),
            Err(Error::Fenced { .. }) => drop(self.counters.fenced.fetch_add(1, Relaxed)),
            Err(e) => self.unexpected("append", e),
        }
    }

    fn acked(&self, position: u64, first_id: i64, rows: u32, bytes: u64) {
        let c = &self.counters;
        c.acked_appends.fetch_add(1, Relaxed);
        c.acked_rows.fetch_add(u64::from(rows), Relaxed);
        c.acked_bytes.fetch_add(bytes, Relaxed);
        let mut record = [0u8; 20];
        record[..8].copy_from_slice(&position.to_le_bytes());
        record[8..16].copy_from_slice(&first_id.to_le_bytes());
        record[16..].copy_from_slice(&rows.to_le_bytes());
        let mut journal = self.journal.lock().expect("journal lock");
        if let Err(e) = journal.write_all(&record) {
            drop(journal);
            self.unexpected("the ack journal", e);
        }
    }

    /// A failure of a maintenance call: `Fenced` is what a call on a writer being replaced
    /// meets; anything else is a finding.
    fn maintenance<T>(&self, what: &str, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(Error::Fenced { .. }) => None,
            Err(e) => {
                self.unexpected(what, e);
                None
            }
        }
    }
}

struct Pending {
    handle: AppendHandle,
    first: i64,
    rows: u32,
    bytes: u64,
}

/// One load task: an append of `shape` every `every`, `window` of them in flight (1:
/// awaited), until `stop`.
async fn load(
    shared: Arc<Shared>,
    shape: Vec<(usize, usize)>,
    every: Duration,
    window: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = VecDeque::new();
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        match shared.submit(&shape) {
            Ok(p) => pending.push_back(p),
            Err(Error::Fenced { .. }) => drop(shared.counters.fenced.fetch_add(1, Relaxed)),
            Err(e) => shared.unexpected("queueing an append", e),
        }
        while pending.len() >= window {
            if let Some(p) = pending.pop_front() {
                shared.settle(p).await;
            }
        }
    }
    for p in pending {
        shared.settle(p).await;
    }
}

/// Memtable flushes every 17 s and a full compaction pass every 51 s, on whichever writer
/// is current (not multiples of the default 180 s takeover, so they do not keep meeting it).
async fn maintain(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(17));
    tick.tick().await;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        let wal = shared.wal();
        if shared
            .maintenance("flush_memtable", wal.flush_memtable().await)
            .is_some()
        {
            shared.counters.flushes.fetch_add(1, Relaxed);
        }
        if n.is_multiple_of(3) && shared.maintenance("compact", wal.compact().await).is_some() {
            shared.counters.compactions.fetch_add(1, Relaxed);
        }
    }
}

fn options(keep_bytes: u64, history: Duration) -> Options {
    let mut o = Options {
        take_over: true,
        ..Options::default()
    };
    // Generations of about 2 MiB, so flushes, compaction and retention all happen often.
    o.writer.memtable_bytes = 2 << 20;
    o.writer.compaction = Some(CompactionConfig::default());
    // Every version committed within `keep_manifests_for` is kept, and every file it names
    // (1 h by default): shorter, so that a run of 30 minutes reaches its steady state.
    o.writer.keep_manifests_for = history;
    o.writer.retention = Some(RetentionPolicy {
        keep_for: None,
        keep_bytes: Some(keep_bytes),
        interval: Duration::from_secs(30),
    });
    o
}

/// Every `every`, a new writer takes the log over; the old one must refuse a new append
/// with `Fenced` (never acknowledge it) and tell `fenced()`. Then, once the new writer's
/// claim outlived the old leases, collects fences (in the background: it waits ~34 s).
async fn reopen(
    shared: Arc<Shared>,
    (store, prefix): (Arc<dyn ObjectStore>, String),
    every: Duration,
    (keep_bytes, history): (u64, Duration),
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut collectors = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let opened = Wal::open(
            store.clone(),
            &prefix,
            shared.schema.clone(),
            options(keep_bytes, history),
        )
        .await;
        let Some(new) = shared.maintenance("a takeover's open", opened) else {
            continue;
        };
        let new = Arc::new(new);
        shared.counters.epoch.store(new.epoch(), Relaxed);
        shared.counters.reopens.fetch_add(1, Relaxed);
        let (old, probe) = {
            let mut current = shared.current.lock().expect("writer lock");
            let old = std::mem::replace(&mut current.wal, new.clone());
            // An append on the old writer after the new one claimed: must never be acked.
            let id = current.next_id;
            current.next_id += 1;
            let probe = old.append_nowait(&batch(&shared.schema, id, 1, 100));
            (old, probe.map(|h| (h, id)))
        };
        let check = async {
            let refused = match probe {
                Ok((h, id)) => match h.await {
                    Ok(ack) => {
                        shared.acked(ack.position, id, 1, 108);
                        Err(format!("acknowledged at position {}", ack.position))
                    }
                    Err(Error::Fenced { .. }) => Ok(()),
                    Err(e) => Err(format!("failed with {e}, not Fenced")),
                },
                Err(Error::Fenced { .. }) => Ok(()),
                Err(e) => Err(format!("refused with {e}, not Fenced")),
            };
            let told = old.fenced().await;
            (refused, told)
        };
        match tokio::time::timeout(Duration::from_secs(120), check).await {
            Ok((Ok(()), Error::Fenced { .. })) => {
                shared.counters.fence_checks.fetch_add(1, Relaxed);
            }
            Ok((Ok(()), told)) => shared.unexpected("the fenced writer's fenced()", told),
            Ok((Err(e), _)) => shared.unexpected("an append on the fenced writer", e),
            Err(_) => shared.unexpected("the fenced writer", "no Fenced within 120 s (hang)"),
        }
        drop(old);
        let s = shared.clone();
        collectors.push(tokio::spawn(async move {
            if s.maintenance("collect_garbage", new.collect_garbage().await)
                .is_some()
            {
                s.counters.collections.fetch_add(1, Relaxed);
            }
        }));
        collectors.retain(|c| !c.is_finished());
    }
    for c in collectors {
        c.abort();
    }
}

/// Follows the log from its beginning, counting rows and checking that ids only grow.
async fn follow(
    shared: Arc<Shared>,
    (store, prefix): (Arc<dyn ObjectStore>, String),
    mut stop: watch::Receiver<bool>,
) {
    let options = ReadOptions {
        follow: true,
        columns: Some(vec!["id".into()]),
        ..ReadOptions::default()
    };
    let mut tailer = match Tailer::with_options(store, &prefix, shared.schema.clone(), &options) {
        Ok(t) => t,
        Err(e) => return shared.unexpected("the follower's open", e),
    };
    let mut last = i64::MIN;
    loop {
        let item = tokio::select! {
            item = tailer.next() => item,
            _ = stop.changed() => return,
        };
        match item {
            Some(Ok(Item::Batch { batch, .. })) => {
                let c = &shared.counters;
                c.follower_rows.fetch_add(batch.num_rows() as u64, Relaxed);
                c.follower_disorder
                    .fetch_add(disorder(&batch, &mut last), Relaxed);
            }
            Some(Ok(Item::CaughtUp { .. })) => {}
            Some(Err(e)) => return shared.unexpected("the follower", e),
            None => return shared.unexpected("the follower", "its stream ended"),
        }
    }
}

/// Ids of `batch` (column 0) not above every one before; `last` is the highest so far.
fn disorder(batch: &RecordBatch, last: &mut i64) -> u64 {
    let Some(ids) = batch.column(0).as_any().downcast_ref::<Int64Array>() else {
        return batch.num_rows() as u64;
    };
    let mut bad = 0;
    for id in ids.values().iter().copied() {
        // Measured against the highest id so far: a repeat after a reversal is bad too.
        if id <= *last {
            bad += 1;
        } else {
            *last = id;
        }
    }
    bad
}

/// The named consumer `soak`: follows, commits where it got every 5 s (and before it closes), and every
/// `reopen` closes and opens again (the new instance must start where the last commit put it).
async fn consume(
    shared: Arc<Shared>,
    (store, prefix): (Arc<dyn ObjectStore>, String),
    reopen: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let options = ConsumerOptions {
        follow: true,
        ..ConsumerOptions::default()
    };
    let mut committed = 0u64;
    'instances: loop {
        let opened = Consumer::open(
            store.clone(),
            &prefix,
            shared.schema.clone(),
            "soak",
            options.clone(),
        )
        .await;
        let mut consumer = match opened {
            Ok(c) => c,
            Err(e) => return shared.unexpected("the consumer's open", e),
        };
        if consumer.start_position() != committed {
            let e = format!(
                "resumed at {}, committed {committed}",
                consumer.start_position()
            );
            shared.unexpected("the consumer", e);
        }
        let opened_at = Instant::now();
        let mut last_commit = Instant::now();
        let mut last = i64::MIN;
        let mut position: u64;
        loop {
            let item = tokio::select! {
                item = consumer.next() => item,
                _ = stop.changed() => break 'instances,
            };
            match item {
                Some(Ok(Item::Batch { batch, position: p })) => {
                    let bad = disorder(&batch, &mut last);
                    shared.counters.consumer_disorder.fetch_add(bad, Relaxed);
                    // Every entry below `p` was consumed (several batches share a position).
                    position = p;
                }
                Some(Ok(Item::CaughtUp { position: p })) => position = p,
                Some(Err(e)) => return shared.unexpected("the consumer", e),
                None => return shared.unexpected("the consumer", "its stream ended"),
            }
            let closing = opened_at.elapsed() >= reopen;
            if (closing || last_commit.elapsed() >= Duration::from_secs(5)) && position > committed
            {
                match consumer.commit(position).await {
                    Ok(_) => {
                        committed = position;
                        shared.counters.consumer_position.store(position, Relaxed);
                    }
                    Err(e) => return shared.unexpected("the consumer's commit", e),
                }
                last_commit = Instant::now();
            }
            if closing {
                if let Err(e) = consumer.close().await {
                    shared.unexpected("the consumer's close", e);
                }
                shared.counters.consumer_reopens.fetch_add(1, Relaxed);
                continue 'instances;
            }
        }
    }
}

/// One load task: the batches of an append (rows, blob bytes), how often, how many in flight.
type Load = (Vec<(usize, usize)>, Duration, usize);

/// What a plot's panel draws of a sample.
type Series = fn(&Sample) -> f64;

/// One row of the CSV.
#[derive(Clone, Copy, Debug)]
struct Sample {
    elapsed: f64,
    rss_kib: f64,
    fds: f64,
    objects: f64,
    object_bytes: f64,
    appends_per_s: f64,
    mb_per_s: f64,
    acked_rows: u64,
    follower_rows: u64,
    consumer_position: u64,
    epoch: u64,
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn open_fds() -> f64 {
    // Less the one `read_dir` itself holds open while it lists.
    std::fs::read_dir("/proc/self/fd").map_or(f64::NAN, |d| d.count() as f64 - 1.0)
}

async fn objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<(u64, u64), Error> {
    let path = object_store::path::Path::from(prefix);
    store
        .list(Some(&path))
        .try_fold(
            (0u64, 0u64),
            |(n, b), m| async move { Ok((n + 1, b + m.size)) },
        )
        .await
        .map_err(|e| Error::Store {
            path: prefix.to_string(),
            message: e.to_string(),
        })
}

/// Runs the soak; `Err` for bad input or a setup failure, and for a run that lost a row or
/// met an unexpected error (after printing everything it measured).
pub async fn soak(args: SoakArgs) -> Result<(), Error> {
    let (store, prefix) = tidewal::store_for(&args.url)?;
    let (held, _) = objects(&store, &prefix).await?;
    if held > 0 {
        return Err(Error::Invalid(format!(
            "soak needs an empty log: {} holds {held} objects",
            args.url
        )));
    }
    let mut csv = match &args.csv {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| Error::Invalid(format!("--csv {}: {e}", path.display())))?;
            writeln!(f, "{CSV_HEADER}")
                .map_err(|e| Error::Invalid(format!("--csv {}: {e}", path.display())))?;
            Some(f)
        }
        None => None,
    };
    let journal_path =
        std::env::temp_dir().join(format!("tidewal-soak-{}.acks", std::process::id()));
    let journal = std::fs::File::create(&journal_path)
        .map_err(|e| Error::Invalid(format!("{}: {e}", journal_path.display())))?;
    let schema = schema();
    let wal = Wal::open(
        store.clone(),
        &prefix,
        schema.clone(),
        options(args.keep_bytes, args.history),
    )
    .await?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        schema: schema.clone(),
        counters: Counters::default(),
        current: Mutex::new(Current {
            wal: Arc::new(wal),
            next_id: 0,
        }),
        journal: Mutex::new(BufWriter::new(journal)),
        errors: Mutex::new(Vec::new()),
        error_count: AtomicU64::new(0),
        started,
    });
    shared.counters.epoch.store(shared.wal().epoch(), Relaxed);
    eprintln!(
        "soak: {} for {:.0} s, a sample every {:.0} s, a new writer every {:.0} s",
        args.url,
        args.duration.as_secs_f64(),
        args.sample.as_secs_f64(),
        args.reopen.as_secs_f64()
    );

    let (stop_tx, stop) = watch::channel(false);
    let ms = Duration::from_millis;
    // (rows, blob bytes) per batch; one batch is an append, several a group.
    let loads: Vec<Load> = vec![
        (vec![(1, 100)], ms(5), 1),                        // awaited 100 B rows
        (vec![(1, 4096)], ms(5), 16),                      // pipelined 4 KiB rows
        (vec![(16, 4096)], ms(50), 4),                     // pipelined 64 KiB batches
        (vec![(1, 100), (2, 4096), (4, 1024)], ms(20), 1), // awaited groups
    ];
    let mut load_tasks = Vec::new();
    for (shape, every, window) in loads {
        load_tasks.push(tokio::spawn(load(
            shared.clone(),
            shape,
            every,
            window,
            stop.clone(),
        )));
    }
    let at = (store.clone(), prefix.clone());
    let others = vec![
        tokio::spawn(maintain(shared.clone(), stop.clone())),
        tokio::spawn(reopen(
            shared.clone(),
            at.clone(),
            args.reopen,
            (args.keep_bytes, args.history),
            stop.clone(),
        )),
    ];
    let readers = vec![
        tokio::spawn(follow(shared.clone(), at.clone(), stop.clone())),
        tokio::spawn(consume(
            shared.clone(),
            at.clone(),
            args.reopen,
            stop.clone(),
        )),
    ];

    // Sampling, until the time is up.
    let mut samples = Vec::new();
    let mut reopens_at = Vec::new();
    let mut tick = tokio::time::interval(args.sample);
    tick.tick().await;
    let (mut last_at, mut last_appends, mut last_bytes) = (0.0f64, 0u64, 0u64);
    let mut last_reopens = 0;
    loop {
        let left = args.duration.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep(left) => {}
        }
        let c = &shared.counters;
        let elapsed = started.elapsed().as_secs_f64();
        let (n, bytes) = match objects(&store, &prefix).await {
            Ok(v) => v,
            Err(e) => {
                shared.unexpected("listing the log", e);
                (0, 0)
            }
        };
        let appends = c.acked_appends.load(Relaxed);
        let acked_bytes = c.acked_bytes.load(Relaxed);
        let dt = (elapsed - last_at).max(1e-9);
        let s = Sample {
            elapsed,
            rss_kib: rss_kib(),
            fds: open_fds(),
            objects: n as f64,
            object_bytes: bytes as f64,
            appends_per_s: (appends - last_appends) as f64 / dt,
            mb_per_s: (acked_bytes - last_bytes) as f64 / dt / 1e6,
            acked_rows: c.acked_rows.load(Relaxed),
            follower_rows: c.follower_rows.load(Relaxed),
            consumer_position: c.consumer_position.load(Relaxed),
            epoch: c.epoch.load(Relaxed),
        };
        (last_at, last_appends, last_bytes) = (elapsed, appends, acked_bytes);
        let reopens = c.reopens.load(Relaxed);
        if reopens != last_reopens {
            reopens_at.push(elapsed);
            last_reopens = reopens;
        }
        let line = format!(
            "{:.1},{:.0},{:.0},{:.0},{:.0},{:.1},{:.3},{},{},{},{}",
            s.elapsed,
            s.rss_kib,
            s.fds,
            s.objects,
            s.object_bytes,
            s.appends_per_s,
            s.mb_per_s,
            s.acked_rows,
            s.follower_rows,
            s.consumer_position,
            s.epoch
        );
        eprintln!("soak: {line}");
        if let Some(f) = csv.as_mut() {
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                shared.unexpected("writing the CSV", e);
            }
        }
        samples.push(s);
    }

    // Wind down: the load drains its windows, the rest stops, the last writer closes.
    let _ = stop_tx.send(true);
    for t in load_tasks.into_iter().chain(others) {
        if let Err(e) = t.await {
            shared.unexpected("a load task", e);
        }
    }
    for t in readers {
        if let Err(e) = t.await {
            shared.unexpected("a reader task", e);
        }
    }
    let wal = shared.wal();
    if let Err(e) = wal.close().await {
        shared.unexpected("closing the last writer", e);
    }
    drop(wal);
    let load_secs = started.elapsed().as_secs_f64();

    // The full read.
    let check = full_read(&store, &prefix, &schema, &shared, &journal_path).await;
    let check = match check {
        Ok(c) => c,
        Err(e) => {
            shared.unexpected("the full read", &e);
            Check::default()
        }
    };
    if let Some(path) = &args.plot {
        let svg = plot(&samples, &reopens_at, warm_up(args.duration), &args.url);
        if let Err(e) = std::fs::write(path, svg) {
            shared.unexpected("writing the plot", format!("{}: {e}", path.display()));
        }
    }
    let errors = shared.error_count.load(Relaxed);
    print_summary(&args, &shared, &samples, &check, load_secs);
    let failed = check.lost > 0 || check.disorder > 0 || check.bad_blobs > 0 || errors > 0;
    if failed {
        for e in shared.errors.lock().expect("errors lock").iter() {
            println!("error: {e}");
        }
        return Err(Error::Invalid(format!(
            "soak failed: {} acknowledged rows lost, {} out of order, {} bad blobs, {errors} \
             unexpected errors (ack journal kept at {})",
            check.lost,
            check.disorder,
            check.bad_blobs,
            journal_path.display()
        )));
    }
    let _ = std::fs::remove_file(&journal_path);
    Ok(())
}

/// What the full read found.
#[derive(Default)]
struct Check {
    /// The log's first position (retention dropped what lay below).
    start: u64,
    rows_read: u64,
    /// Acknowledged rows at or past `start`: each must be in the log.
    checked: u64,
    /// Acknowledged rows below `start`, dropped by retention.
    dropped: u64,
    lost: u64,
    /// Rows whose id is not above the one before (a duplicate or a reordering).
    disorder: u64,
    /// Rows whose blob is not filled with its id's byte.
    bad_blobs: u64,
    /// Rows present that were never acknowledged (appends the fenced writers had in flight).
    unacked_present: u64,
}

async fn full_read(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    schema: &SchemaRef,
    shared: &Shared,
    journal_path: &std::path::Path,
) -> Result<Check, Error> {
    let start = tidewal::inspect(store.clone(), prefix)
        .await?
        .manifest
        .map_or(0, |m| m.dropped_before);
    let mut check = Check {
        start,
        ..Check::default()
    };
    // Present ids as ranges [a, b): ids are consecutive except where appends were not acked.
    let mut present: Vec<(i64, i64)> = Vec::new();
    let mut last = i64::MIN;
    let mut tailer = Tailer::scan(store.clone(), prefix, schema.clone())?;
    while let Some(item) = tailer.next().await {
        let Item::Batch { batch, .. } = item? else {
            continue;
        };
        check.rows_read += batch.num_rows() as u64;
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>();
        let blobs = batch.column(1).as_any().downcast_ref::<BinaryArray>();
        let (Some(ids), Some(blobs)) = (ids, blobs) else {
            return Err(Error::Invalid(
                "the log's columns are not (id, blob)".into(),
            ));
        };
        for (i, id) in ids.values().iter().copied().enumerate() {
            if id <= last {
                check.disorder += 1;
                continue;
            }
            last = id;
            if blobs.is_null(i) || blobs.value(i).iter().any(|&b| b != fill(id)) {
                check.bad_blobs += 1;
            }
            match present.last_mut() {
                Some((_, end)) if *end == id => *end += 1,
                _ => present.push((id, id + 1)),
            }
        }
    }
    // The acknowledged appends, by first id.
    shared
        .journal
        .lock()
        .expect("journal lock")
        .flush()
        .map_err(|e| Error::Invalid(format!("the ack journal: {e}")))?;
    let mut bytes = Vec::new();
    std::fs::File::open(journal_path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::Invalid(format!("the ack journal: {e}")))?;
    let mut acked: Vec<Acked> = bytes
        .chunks_exact(20)
        .map(|r| Acked {
            position: u64::from_le_bytes(r[..8].try_into().expect("8 bytes")),
            first_id: i64::from_le_bytes(r[8..16].try_into().expect("8 bytes")),
            rows: u32::from_le_bytes(r[16..].try_into().expect("4 bytes")),
        })
        .collect();
    acked.sort_by_key(|a| a.first_id);
    let mut acked_present = 0u64;
    for a in &acked {
        let (lo, hi) = (a.first_id, a.first_id + i64::from(a.rows));
        let covered = overlap(&present, lo, hi);
        acked_present += covered;
        if a.position < start {
            check.dropped += u64::from(a.rows);
        } else {
            check.checked += u64::from(a.rows);
            check.lost += u64::from(a.rows) - covered;
        }
    }
    let present_rows: u64 = present.iter().map(|(a, b)| (b - a) as u64).sum();
    check.unacked_present = present_rows.saturating_sub(acked_present);
    Ok(check)
}

/// How many ids of [lo, hi) the sorted, disjoint ranges hold.
fn overlap(ranges: &[(i64, i64)], lo: i64, hi: i64) -> u64 {
    let first = ranges.partition_point(|&(_, end)| end <= lo);
    ranges[first..]
        .iter()
        .take_while(|&&(a, _)| a < hi)
        .map(|&(a, b)| (b.min(hi) - a.max(lo)).max(0) as u64)
        .sum()
}

/// Samples before this are warm-up: 5 minutes, or a sixth of a shorter run.
fn warm_up(duration: Duration) -> f64 {
    (duration.as_secs_f64() / 6.0).min(300.0)
}

/// Least-squares slope of `y` over `x`, per hour (`x` in seconds); `None` below 2 points.
fn slope_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx * 3600.0)
}

fn print_summary(args: &SoakArgs, shared: &Shared, samples: &[Sample], k: &Check, secs: f64) {
    let c = &shared.counters;
    let warm = warm_up(args.duration);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.elapsed >= warm).collect();
    let first = after.first().copied();
    let end = samples.last();
    let series = |f: fn(&Sample) -> f64| {
        let points: Vec<(f64, f64)> = after.iter().map(|s| (s.elapsed, f(s))).collect();
        (
            first.map(f),
            end.map(f),
            slope_per_hour(&points),
            points.iter().map(|p| p.1).fold(f64::NAN, f64::max),
        )
    };
    let fmt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.1}{unit}"));
    let appends = c.acked_appends.load(Relaxed);
    let mb = c.acked_bytes.load(Relaxed) as f64 / 1e6;
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| log | {} |", args.url);
    println!(
        "| duration | {secs:.0} s of load ({} samples, warm-up {warm:.0} s) |",
        samples.len()
    );
    println!(
        "| appends acked | {appends} ({:.1}/s, {:.2} MB/s payload, {mb:.0} MB) |",
        appends as f64 / secs,
        mb / secs
    );
    println!("| rows acked | {} |", c.acked_rows.load(Relaxed));
    println!(
        "| writers | {} (takeovers {}, fenced writers checked {}, appends refused Fenced {}) |",
        c.reopens.load(Relaxed) + 1,
        c.reopens.load(Relaxed),
        c.fence_checks.load(Relaxed),
        c.fenced.load(Relaxed)
    );
    println!(
        "| maintenance | {} memtable flushes, {} compaction passes, {} fence collections |",
        c.flushes.load(Relaxed),
        c.compactions.load(Relaxed),
        c.collections.load(Relaxed)
    );
    println!(
        "| follower | {} rows, {} out of order |",
        c.follower_rows.load(Relaxed),
        c.follower_disorder.load(Relaxed)
    );
    println!(
        "| consumer | committed position {}, {} instances, {} rows out of order |",
        c.consumer_position.load(Relaxed),
        c.consumer_reopens.load(Relaxed) + 1,
        c.consumer_disorder.load(Relaxed)
    );
    println!(
        "| full read | {} rows from position {} (retention dropped acked rows: {}) |",
        k.rows_read, k.start, k.dropped
    );
    println!(
        "| acked rows checked | {} (present, never acked: {}) |",
        k.checked, k.unacked_present
    );
    println!("| lost | {} |", k.lost);
    println!(
        "| out of order or duplicated | {} (bad blobs {}) |",
        k.disorder, k.bad_blobs
    );
    let (r0, r1, rs, rmax) = series(|s| s.rss_kib / 1024.0);
    println!(
        "| RSS MiB after warm-up / end / max | {} / {} / {:.1} |",
        fmt(r0, ""),
        fmt(r1, ""),
        rmax
    );
    println!("| RSS growth per hour | {} |", fmt(rs, " MiB"));
    let (f0, f1, fs, fmax) = series(|s| s.fds);
    println!(
        "| fds after warm-up / end / max | {} / {} / {fmax:.0} |",
        fmt(f0, ""),
        fmt(f1, "")
    );
    println!("| fd growth per hour | {} |", fmt(fs, ""));
    let (o0, o1, os, omax) = series(|s| s.objects);
    println!(
        "| objects after warm-up / end / max | {} / {} / {omax:.0} |",
        fmt(o0, ""),
        fmt(o1, "")
    );
    println!("| object growth per hour | {} |", fmt(os, ""));
    let (b0, b1, _, _) = series(|s| s.object_bytes / 1e6);
    println!(
        "| MB under the prefix after warm-up / end | {} / {} |",
        fmt(b0, ""),
        fmt(b1, "")
    );
    println!(
        "| unexpected errors | {} |",
        shared.error_count.load(Relaxed)
    );
    println!("lost = {}", k.lost);
}

/// A plain SVG: RSS, fds, objects and throughput over time, one panel each, the warm-up
/// shaded and each takeover a thin vertical line.
fn plot(samples: &[Sample], reopens: &[f64], warm: f64, title: &str) -> String {
    use std::fmt::Write as _;
    let (w, ph, left, top) = (900.0, 150.0, 70.0, 40.0);
    let panels: [(&str, Series); 4] = [
        ("RSS (MiB)", |s| s.rss_kib / 1024.0),
        ("open fds", |s| s.fds),
        ("objects under the prefix", |s| s.objects),
        ("acked MB/s (payload)", |s| s.mb_per_s),
    ];
    let h = top + panels.len() as f64 * (ph + 40.0) + 20.0;
    let t_max = samples.last().map_or(1.0, |s| s.elapsed).max(1.0);
    let pw = w - left - 20.0;
    let x = |t: f64| left + t / t_max * pw;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="20" font-size="14">tidewal soak: {} ({:.0} min)</text>"#,
        escape(title),
        t_max / 60.0
    );
    for (i, (label, f)) in panels.iter().enumerate() {
        let y0 = top + i as f64 * (ph + 40.0);
        let values: Vec<f64> = samples.iter().map(f).filter(|v| v.is_finite()).collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        let max = if max > 0.0 { max * 1.1 } else { 1.0 };
        let y = |v: f64| y0 + ph - v / max * ph;
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{y0}" width="{:.1}" height="{ph}" fill="#eee"/>"##,
            (x(warm.min(t_max)) - left).max(0.0)
        );
        for &t in reopens {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{y0}" y2="{1}" stroke="#fc8" stroke-width="1"/>"##,
                x(t),
                y0 + ph
            );
        }
        let points: Vec<String> = samples
            .iter()
            .filter(|s| f(s).is_finite())
            .map(|s| format!("{:.1},{:.1}", x(s.elapsed), y(f(s))))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#1f5fa8" stroke-width="1.5"/>"##,
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="{:.1}">{}</text>"#,
            y0 - 5.0,
            escape(label)
        );
        for v in [0.0, max / 2.0, max] {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 5.0,
                y(v) + 4.0,
                short(v)
            );
        }
        for k in 0..=6 {
            let t = t_max * k as f64 / 6.0;
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0} min</text>"#,
                x(t),
                y0 + ph + 15.0,
                t / 60.0
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="{:.1}" fill="#666">grey: warm-up; orange lines: a new writer took over</text>"##,
        h - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn short(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_only_covered_ids() {
        let ranges = [(0, 10), (12, 20), (30, 31)];
        assert_eq!(overlap(&ranges, 0, 10), 10);
        assert_eq!(overlap(&ranges, 8, 14), 4);
        assert_eq!(overlap(&ranges, 20, 30), 0);
        assert_eq!(overlap(&ranges, 25, 40), 1);
        assert_eq!(overlap(&[], 0, 5), 0);
    }

    #[test]
    fn slope_is_per_hour() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64 * 60.0, 5.0 + i as f64)).collect();
        let s = slope_per_hour(&points).unwrap();
        assert!((s - 60.0).abs() < 1e-9, "{s}");
        assert_eq!(slope_per_hour(&points[..1]), None);
    }

    #[test]
    fn disorder_counts_repeats_and_reversals() {
        let schema = schema();
        let mut last = i64::MIN;
        assert_eq!(disorder(&batch(&schema, 0, 5, 1), &mut last), 0);
        assert_eq!(disorder(&batch(&schema, 3, 4, 1), &mut last), 2);
        assert_eq!(last, 6);
        assert_eq!(disorder(&batch(&schema, 6, 1, 1), &mut last), 1, "a repeat");
    }
}
