//! Core overhead per append: an instant in-memory store, no Arrow (RawCodec), one record per
//! entry, at in-flight depth 1, 8 and 32. Prints ns/append and appends/s.
//!
//! `cargo bench -p tidewal-core --bench overhead`

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tidewal_core::{
    Event, GroupCommit, Machine, MemStore, Output, RawCodec, Record, Request, Writer, WriterConfig,
};

fn run(depth: u32, appends: u64, wal_only: bool) -> (f64, u64) {
    let cfg = WriterConfig {
        prefix: "bench".into(),
        wal_only,
        fence_window: 64,
        max_in_flight: depth,
        group_commit: GroupCommit {
            max_bytes: 1 << 20,
            max_records: 1,
            interval: Duration::ZERO,
        },
        unflushed_budget: 1 << 30,
        ..WriterConfig::default()
    };
    let mut store = MemStore::new();
    let mut w = Writer::new(cfg, Box::new(RawCodec::new("s")), 1, Duration::ZERO).unwrap();
    let mut queue: VecDeque<Request> = VecDeque::new();
    let mut durable = 0u64;
    let mut pump = |w: &mut Writer,
                    queue: &mut VecDeque<Request>,
                    keep: usize,
                    durable: &mut u64| loop {
        loop {
            match w.poll_output() {
                Output::Request(r) => queue.push_back(r),
                Output::Event(Event::Durable { last_append, .. }) => *durable = last_append.0 + 1,
                Output::Event(_) => {}
                _ => break,
            }
        }
        if queue.len() <= keep {
            return;
        }
        let r = queue.pop_front().unwrap();
        let resp = store.execute(&r.op);
        w.handle_response(r.id, resp, Duration::ZERO);
    };
    pump(&mut w, &mut queue, 0, &mut durable);
    let payload = vec![7u8; 100];
    let start = Instant::now();
    for _ in 0..appends {
        w.append(Record::new(payload.clone(), 1), Duration::ZERO)
            .unwrap();
        pump(&mut w, &mut queue, depth as usize - 1, &mut durable);
    }
    pump(&mut w, &mut queue, 0, &mut durable);
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(durable, appends, "every append acknowledged");
    (elapsed, w.stats().io.puts)
}

fn main() {
    let appends = 200_000;
    println!("core overhead: {appends} appends of 100 B, one record per entry, instant MemStore");
    println!(
        "{:<10} {:>6} {:>12} {:>14} {:>10}",
        "mode", "depth", "ns/append", "appends/s", "puts"
    );
    for wal_only in [true, false] {
        for depth in [1, 8, 32] {
            let (secs, puts) = run(depth, appends, wal_only);
            let mode = if wal_only { "wal-only" } else { "memtable" };
            println!(
                "{mode:<10} {depth:>6} {:>12.0} {:>14.0} {puts:>10}",
                secs * 1e9 / appends as f64,
                appends as f64 / secs
            );
        }
    }
}
