//! Requests and round trips to the first row when a reader starts in the middle of a log, by
//! position and by time: a WAL-only log of 100,000 entries and a log of 1,000 generations,
//! in a `MemStore`. Prints figures, asserts nothing.
//!
//! `cargo bench -p tidewal-core --bench start`
//!
//! A round trip is one turn of the driver: every outstanding request is answered, then the
//! reader asks again; at 20 ms per request (an object store's GET) a round costs about 20 ms,
//! so "at 20 ms" is rounds × 20 ms. The in-memory time is the core's own CPU time.

use std::time::{Duration, Instant};

use tidewal_core::{
    GroupCommit, Machine, MemStore, Output, RawCodec, ReadEvent, Reader, ReaderConfig, Record,
    Start, Writer, WriterConfig,
};

const ORIGIN_MS: u64 = 1_700_000_000_000;

fn codec() -> Box<RawCodec> {
    Box::new(RawCodec::new("bench"))
}

/// Runs `m` against the store until it has nothing left to ask and no timer due.
fn settle(store: &mut MemStore, w: &mut Writer, now: Duration) {
    loop {
        let mut requests = Vec::new();
        let mut wake = None;
        loop {
            match w.poll_output() {
                Output::Request(r) => requests.push(r),
                Output::Event(_) => {}
                Output::Wait(at) => {
                    wake = at;
                    break;
                }
                Output::Done => break,
            }
        }
        if requests.is_empty() {
            match wake {
                Some(at) if at <= now => w.handle_timeout(now),
                _ => return,
            }
            continue;
        }
        for r in requests {
            let resp = store.execute(&r.op);
            w.handle_response(r.id, resp, now);
        }
    }
}

fn writer(wal_only: bool) -> Writer {
    let cfg = WriterConfig {
        prefix: "log".into(),
        wal_only,
        group_commit: GroupCommit {
            max_bytes: 1 << 20,
            max_records: 1,
            interval: Duration::ZERO,
        },
        unix_ms_at_origin: Some(ORIGIN_MS),
        ..WriterConfig::default()
    };
    Writer::new(cfg, codec(), 1, Duration::ZERO).expect("a valid config")
}

fn record(i: u64) -> Record {
    Record::new(i.to_le_bytes().to_vec(), 1)
}

/// `chunks` × `per_chunk` entries, one millisecond of the writer's clock per chunk; with
/// `flush`, every chunk becomes one generation.
fn build(chunks: u64, per_chunk: u64, flush: bool) -> MemStore {
    let mut store = MemStore::new();
    let mut w = writer(!flush);
    let mut now = Duration::ZERO;
    settle(&mut store, &mut w, now);
    for c in 0..chunks {
        for i in 0..per_chunk {
            w.append(record(c * per_chunk + i), now).expect("append");
        }
        settle(&mut store, &mut w, now);
        if flush {
            w.flush_memtable(now).expect("flush");
            settle(&mut store, &mut w, now);
        }
        now += Duration::from_millis(1);
    }
    store
}

struct FirstRow {
    position: u64,
    rounds: u32,
    cpu: Duration,
    gets: u64,
    range_gets: u64,
    range_bytes: u64,
    lists: u64,
}

fn first_row(store: &mut MemStore, from: Start) -> FirstRow {
    let cfg = ReaderConfig {
        prefix: "log".into(),
        from,
        ..ReaderConfig::default()
    };
    let started = Instant::now();
    let mut r = Reader::new(cfg, codec(), 7, Duration::ZERO);
    let mut rounds = 0;
    loop {
        let mut requests = Vec::new();
        loop {
            match r.poll_output() {
                Output::Request(q) => requests.push(q),
                Output::Event(ReadEvent::Records { position, .. }) => {
                    let io = r.io_counters();
                    return FirstRow {
                        position,
                        rounds,
                        cpu: started.elapsed(),
                        gets: io.gets,
                        range_gets: io.range_gets,
                        range_bytes: io.range_bytes,
                        lists: io.lists,
                    };
                }
                Output::Event(e) => panic!("before the first row: {e:?}"),
                Output::Wait(_) | Output::Done => break,
            }
        }
        assert!(!requests.is_empty(), "the reader stopped before a row");
        rounds += 1;
        for q in requests {
            let resp = store.execute(&q.op);
            r.handle_response(q.id, resp, Duration::ZERO);
        }
    }
}

fn print(log: &str, how: &str, f: &FirstRow) {
    println!(
        "{log:<28} {how:<22} first row at {:>6}: {:>3} lists {:>6} gets {:>2} ranged gets ({:>6} B), {:>4} round trips (~{:>6} ms at 20 ms), {:>8.2} ms in memory",
        f.position,
        f.lists,
        f.gets,
        f.range_gets,
        f.range_bytes,
        f.rounds,
        f.rounds * 20,
        f.cpu.as_secs_f64() * 1000.0
    );
}

fn main() {
    let t = Instant::now();
    let mut wal = build(1000, 100, false);
    println!(
        "built a WAL-only log of 100,000 entries in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut gens = build(1000, 10, true);
    println!(
        "built a log of 1,000 generations (10 entries each) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // The middle: position 50,000 of the WAL (its fence is at 0, data from 64), and the
    // 500th millisecond of the writer's clock (the 500th chunk).
    let mid_time = ORIGIN_MS + 500;
    let wal_log = "WAL-only, 100,000 entries";
    print(
        wal_log,
        "by position 50,064",
        &first_row(&mut wal, Start::Position(50_064)),
    );
    print(
        wal_log,
        "by time (ms 500)",
        &first_row(&mut wal, Start::Time(mid_time)),
    );
    let gen_log = "1,000 generations";
    print(
        gen_log,
        "by position 5,064",
        &first_row(&mut gens, Start::Position(5_064)),
    );
    print(
        gen_log,
        "by position 5,069",
        &first_row(&mut gens, Start::Position(5_069)),
    );
    print(
        gen_log,
        "by time (ms 500)",
        &first_row(&mut gens, Start::Time(mid_time)),
    );
    print(
        gen_log,
        "from the beginning",
        &first_row(&mut gens, Start::Beginning),
    );
}
