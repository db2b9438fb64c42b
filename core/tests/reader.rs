//! Reader transitions with no I/O: empty logs, following, fence windows, GC behind its back.

mod harness;

use std::time::Duration;

use harness::*;
use std::collections::VecDeque;

use tidewal_core::Codec as _;
use tidewal_core::{
    FatalError, GenerationRecord, Machine, Manifest, MemStore, Op, RawCodec, ReadEvent, Reader,
    ReaderConfig, Record, Request, Start, StoreErrorKind, WriterConfig,
};

fn follower(h: &Harness) -> Reader {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        follow: true,
        poll_interval: Duration::from_millis(50),
        read_ahead: 4,
        ..ReaderConfig::default()
    };
    Reader::new(cfg, codec(), 3, h.now)
}

/// Runs the reader's requests against the store until it has nothing to do but wait.
fn pump(h: &mut Harness, r: &mut Reader) -> Vec<ReadEvent> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let d = drain(r);
        for e in &d.events {
            r.release(e.bytes());
        }
        out.extend(d.events);
        if d.requests.is_empty() {
            return out;
        }
        for req in d.requests {
            let resp = h.store.execute(&req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    panic!("reader never went idle");
}

fn positions(events: &[ReadEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Records { position, .. } => Some(*position),
            _ => None,
        })
        .collect()
}

fn tick(h: &mut Harness, r: &mut Reader) -> Vec<ReadEvent> {
    let at = deadline(r).expect("a follower always has a timer");
    // The poll timer, not a retry: due one poll interval after it caught up.
    assert_eq!(at, h.now + Duration::from_millis(50));
    h.now = at;
    r.handle_timeout(at);
    pump(h, r)
}

#[test]
fn an_empty_store_is_caught_up_at_zero() {
    let mut h = Harness::new();
    assert_eq!(h.read_all().unwrap(), vec![]);
}

#[test]
fn a_follower_sees_new_entries_and_polls_only_the_next_slot() {
    let mut h = Harness::new();
    let mut w = h.open(config(), 1);
    w.append(&h, rec(1));
    h.settle(&mut w);
    let mut r = follower(&h);
    let ev = pump(&mut h, &mut r);
    assert_eq!(positions(&ev), vec![4]);
    assert_eq!(ev.last(), Some(&ReadEvent::CaughtUp { position: 5 }));
    // Idle polls: one LIST and one GET each, no read-ahead.
    let before = r.io_counters();
    assert!(positions(&tick(&mut h, &mut r)).is_empty());
    let after = r.io_counters();
    assert_eq!(
        (after.lists - before.lists, after.gets - before.gets),
        (1, 1)
    );
    // New data shows up on the next poll.
    w.append(&h, rec(2));
    w.append(&h, rec(3));
    h.settle(&mut w);
    let ev = tick(&mut h, &mut r);
    assert_eq!(positions(&ev), vec![5, 6]);
}

#[test]
fn a_follower_skips_a_fence_window_and_continues_with_the_new_writer() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    a.append(&h, rec(1));
    h.settle(&mut a);
    let mut r = follower(&h);
    assert_eq!(positions(&pump(&mut h, &mut r)), vec![4]);
    let mut b = h.open(config(), 2); // fence at 5, data from 9
    b.append(&h, rec(2));
    h.settle(&mut b);
    assert_eq!(positions(&tick(&mut h, &mut r)), vec![9]);
}

#[test]
fn a_lagging_follower_reads_from_generations_after_gc() {
    let mut h = Harness::new();
    let mut w = h.open(config(), 1);
    w.append(&h, rec(1));
    h.settle(&mut w);
    let mut r = follower(&h);
    assert_eq!(positions(&pump(&mut h, &mut r)), vec![4]);
    // More entries, flushed and collected before the reader looks again.
    for i in 2..5 {
        w.append(&h, rec(i));
    }
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert!(h
        .store
        .object("t/wal/00000000000000000005.arrows")
        .is_none());
    // The reader's poll comes due.
    h.now += Duration::from_secs(1);
    assert!(deadline(&mut r).is_some_and(|at| at <= h.now));
    r.handle_timeout(h.now);
    let ev = pump(&mut h, &mut r);
    assert_eq!(
        positions(&ev),
        vec![5, 6, 7],
        "from the generation, 4 not repeated"
    );
    let records: Vec<Record> = ev
        .into_iter()
        .filter_map(|e| match e {
            ReadEvent::Records { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(records, vec![rec(2), rec(3), rec(4)]);
}

#[test]
fn stop_makes_a_follower_inert() {
    let mut h = Harness::new();
    h.open(config(), 1);
    let mut r = follower(&h);
    pump(&mut h, &mut r);
    r.stop();
    assert!(r.is_done());
    let d = drain(&mut r);
    assert!(d.done && d.requests.is_empty() && d.events.is_empty());
}

fn is_delete_of_wal_other_than(op: &Op, keep: &str) -> bool {
    matches!(op, Op::Delete { path } if path.contains("/wal/") && !path.ends_with(keep))
}

/// A slow opener can leave a fence in a slot that was already flushed and collected. A lagging
/// follower that reaches it must not skip the acknowledged entries behind it (they are in a
/// generation).
#[test]
fn lagging_reader_skips_acked_entries_behind_a_buried_fence() {
    let mut h = Harness::new();
    // W1 (epoch 1): fence at 0, data at 4..=8, all acknowledged.
    let mut w1 = h.open(config(), 1);
    for i in 1..=5 {
        w1.append(&h, rec(i));
    }
    h.settle(&mut w1);
    assert_eq!(w1.durable().len(), 5);
    let acked_positions: Vec<u64> = w1.durable().iter().map(|d| d.1).collect();
    assert_eq!(acked_positions, vec![4, 5, 6, 7, 8]);

    // A following reader reads manifest v1 (cursor 0) and starts walking; its GETs are slow.
    let rcfg = ReaderConfig {
        prefix: "t".into(),
        follow: true,
        poll_interval: Duration::from_millis(50),
        read_ahead: 4,
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(rcfg, codec(), 3, h.now);
    let mut rheld: VecDeque<Request> = VecDeque::new();
    let mut revents = Vec::new();
    // list, get manifest, GET 0..3 (fence at 0), then it asks for 4..7: hold those.
    for _ in 0..6 {
        let d = drain(&mut r);
        rheld.extend(d.requests);
        revents.extend(d.events);
        let Some(q) = rheld.pop_front() else { break };
        if matches!(&q.op, Op::Get { path, .. } if path.contains("/wal/0000000000000000000") && !path.ends_with("00.arrows") && !path.ends_with("01.arrows") && !path.ends_with("02.arrows") && !path.ends_with("03.arrows"))
        {
            rheld.push_front(q);
            break;
        }
        let resp = h.store.execute(&q.op);
        r.handle_response(q.id, resp, h.now);
    }
    let d = drain(&mut r);
    rheld.extend(d.requests);
    revents.extend(d.events);

    // A (epoch 2) claims and issues its walk GETs, which stay in flight.
    let mut a = h.writer(config(), 2);
    while a
        .find(|op| matches!(op, Op::Get { path, .. } if path.contains("/wal/")))
        .is_none()
    {
        h.execute(&mut a, 0);
    }
    assert_eq!(a.w.epoch(), 2);

    // B (epoch 3) claims after A, replays 4..=8, fences 9, flushes them into a generation and
    // collects: only the delete of slot 5 has landed so far.
    let mut b = h.writer(config(), 3);
    h.settle(&mut b);
    assert!(b.ready());
    b.w.flush_memtable(h.now).unwrap();
    b.collect();
    while let Some(i) = b
        .held
        .iter()
        .position(|q| !is_delete_of_wal_other_than(&q.op, "00000000000000000005.arrows"))
    {
        h.execute(&mut b, i);
    }
    assert_eq!(b.w.manifest().unwrap().replay_cursor, 9);
    b.append(&h, rec(6));
    while let Some(i) = b
        .held
        .iter()
        .position(|q| !is_delete_of_wal_other_than(&q.op, "00000000000000000005.arrows"))
    {
        h.execute(&mut b, i);
    }
    assert_eq!(b.durable(), vec![(0, 13)]);

    // A's walk: 0 fence, 4 data, 5 absent (collected) -> A fences 5, then fails its fence check.
    h.settle(&mut a);
    assert!(a.fatal().is_some(), "A is fenced by its fence check");
    assert!(
        h.store
            .object("t/wal/00000000000000000005.arrows")
            .is_some(),
        "buried fence at 5"
    );

    // The reader now runs to completion against the store.
    for _ in 0..10_000 {
        let d = drain(&mut r);
        rheld.extend(d.requests);
        revents.extend(d.events);
        if let Some(q) = rheld.pop_front() {
            let resp = h.store.execute(&q.op);
            r.handle_response(q.id, resp, h.now);
        } else {
            break;
        }
    }
    // One more poll, to be sure it does not recover.
    if let Some(at) = deadline(&mut r) {
        h.now = at;
        r.handle_timeout(at);
        revents.extend(pump(&mut h, &mut r));
    }
    let read: Vec<u64> = revents
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Records { position, .. } => Some(*position),
            _ => None,
        })
        .collect();
    assert_eq!(read, vec![4, 5, 6, 7, 8, 13], "acked 5..=8 must be read");
}

/// A reader of `from .. until`, following or not; runs until it waits or is done.
fn read_range(
    h: &mut Harness,
    from: Start,
    until: Option<u64>,
    follow: bool,
) -> (Vec<ReadEvent>, Reader) {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from,
        until,
        follow,
        poll_interval: Duration::from_millis(50),
        read_ahead: 4,
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 9, h.now);
    let ev = pump(h, &mut r);
    (ev, r)
}

/// Writer 1 (fence 0, data 4..=6, flushed into a generation), writer 2 (fence 7, data 11..=12
/// in the WAL): a generation, a fence window and a WAL tail to start in.
fn log_across_a_generation_and_a_window(h: &mut Harness) {
    let mut a = h.open(config(), 1);
    for i in 0..3 {
        a.append(h, rec(i));
    }
    h.settle(&mut a);
    a.w.flush_memtable(h.now).unwrap();
    a.collect();
    h.settle(&mut a);
    let mut b = h.open(config(), 2);
    for i in 3..5 {
        b.append(h, rec(i));
    }
    h.settle(&mut b);
    assert_eq!(b.durable().last().map(|d| d.1), Some(12));
}

#[test]
fn a_reader_starts_at_any_position_and_reports_nothing_below_it() {
    let mut h = Harness::new();
    log_across_a_generation_and_a_window(&mut h);
    let cases: [(u64, &[u64]); 6] = [
        (0, &[4, 5, 6, 11, 12]),
        (5, &[5, 6, 11, 12]), // inside the generation: its entries below 5 are dropped
        (7, &[11, 12]),       // on the fence
        (9, &[11, 12]),       // inside the fence window: nothing from it
        (12, &[12]),          // in the WAL tail
        (40, &[]),            // past the end: caught up, nothing reported
    ];
    for (from, want) in cases {
        let (ev, r) = read_range(&mut h, Start::Position(from), None, false);
        assert_eq!(positions(&ev), want, "from {from}");
        assert!(r.is_done());
        assert!(
            !ev.iter().any(|e| matches!(e, ReadEvent::Fatal(_))),
            "{ev:?}"
        );
    }
}

#[test]
fn a_reader_stops_before_until_even_when_following() {
    let mut h = Harness::new();
    log_across_a_generation_and_a_window(&mut h);
    for (from, until, want) in [
        (0, 6, vec![4, 5]),
        (5, 12, vec![5, 6, 11]),
        (11, 11, vec![]),
    ] {
        let (ev, mut r) = read_range(&mut h, Start::Position(from), Some(until), true);
        assert_eq!(positions(&ev), want, "{from}..{until}");
        assert_eq!(ev.last(), Some(&ReadEvent::CaughtUp { position: until }));
        assert!(r.is_done(), "done at until though following");
        assert!(drain(&mut r).done);
    }
    // Until past the end while following: it waits for the log to get there.
    let (ev, mut r) = read_range(&mut h, Start::Beginning, Some(20), true);
    assert_eq!(positions(&ev), vec![4, 5, 6, 11, 12]);
    assert!(!r.is_done(), "still following: 20 not reached");
    assert!(deadline(&mut r).is_some());
}

#[test]
fn a_start_below_what_a_truncated_log_holds_is_refused_with_its_first_position() {
    let mut h = Harness::new();
    let mut cfg = config();
    cfg.wal_only = true;
    let mut w = h.open(cfg, 1);
    for i in 0..4 {
        w.append(&h, rec(i));
    }
    h.settle(&mut w);
    w.w.truncate(6, false, h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let (ev, r) = read_range(&mut h, Start::Position(5), None, false);
    assert_eq!(
        ev,
        vec![ReadEvent::Fatal(tidewal_core::FatalError::Truncated {
            first_available: 6
        })]
    );
    assert!(r.is_done());
    // From the beginning, or from what it holds: what is left.
    let (ev, _) = read_range(&mut h, Start::Beginning, None, false);
    assert_eq!(positions(&ev), vec![6, 7]);
    let (ev, _) = read_range(&mut h, Start::Position(6), None, false);
    assert_eq!(positions(&ev), vec![6, 7]);
}

#[test]
fn a_truncate_that_drops_no_data_refuses_no_start() {
    let mut h = Harness::new();
    let mut cfg = config();
    cfg.wal_only = true;
    let mut w = h.open(cfg, 1);
    w.append(&h, rec(1));
    h.settle(&mut w);
    // The cursor moves past the fence and its window to the first entry, 4; nothing held
    // data below it, so nothing was dropped.
    w.w.truncate(0, false, h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert_eq!(w.w.manifest().unwrap().replay_cursor, 4);
    let (ev, _) = read_range(&mut h, Start::Position(1), None, false);
    assert_eq!(positions(&ev), vec![4]);
}

/// One writer, ten entries (positions 4..=13) flushed into one generation, with `codec`.
fn one_generation(h: &mut Harness, codec: Box<dyn tidewal_core::Codec>) -> GenerationRecord {
    let mut a = Harness::writer_with(h, codec, config());
    h.settle(&mut a);
    for i in 0..10 {
        a.append(h, rec(i));
    }
    h.settle(&mut a);
    a.w.flush_memtable(h.now).unwrap();
    a.collect();
    h.settle(&mut a);
    let newest = h
        .store
        .paths()
        .filter(|p| p.starts_with("t/manifest/"))
        .max();
    let m = Manifest::decode(h.store.object(newest.unwrap()).unwrap());
    let g = m.unwrap().generations[0].clone();
    assert_eq!((g.first_position, g.last_position), (4, 13));
    g
}

/// A reader from `from` with every request it made.
fn read_logged(h: &mut Harness, from: u64) -> (Vec<ReadEvent>, Vec<Op>) {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Position(from),
        read_ahead: 4,
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 9, h.now);
    let (mut events, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        let d = drain(&mut r);
        events.extend(d.events);
        if d.requests.is_empty() {
            return (events, ops);
        }
        for req in d.requests {
            let resp = h.store.execute(&req.op);
            ops.push(req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    panic!("reader never went idle");
}

fn fatal(events: &[ReadEvent]) -> Option<&FatalError> {
    events.iter().find_map(|e| match e {
        ReadEvent::Fatal(f) => Some(f),
        _ => None,
    })
}

#[test]
fn a_start_inside_a_generation_fetches_its_index_and_only_the_records_from_there() {
    let mut h = Harness::new();
    let g = one_generation(&mut h, codec());
    let index = g.index.clone().expect("an indexed generation");
    let (events, ops) = read_logged(&mut h, 10);
    assert_eq!(positions(&events), [10, 11, 12, 13]);
    assert!(fatal(&events).is_none(), "{events:?}");
    let on_gen: Vec<&Op> = ops
        .iter()
        .filter(|op| matches!(op, Op::Get { path } | Op::GetRange { path, .. } if *path == g.path))
        .collect();
    // The index, then one range of the four records it needs; never the whole file.
    assert_eq!(on_gen.len(), 2, "{on_gen:?}");
    assert!(matches!(on_gen[0], Op::GetRange { range, .. } if *range == index.range()));
    let Op::GetRange { range, .. } = on_gen[1] else {
        panic!("{:?}", on_gen[1]);
    };
    // Four records of 8 bytes each.
    assert_eq!(range.end - range.start, 4 * 8);
    let fetched = index.length + (range.end - range.start);
    assert!(fetched < g.bytes, "{fetched} of {}", g.bytes);
    // The records are the appended ones.
    let got: Vec<Record> = events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Records { records, .. } => Some(records[0].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, (6..10).map(rec).collect::<Vec<_>>());
    // At the generation's first position it is read whole, in one get.
    let (events, ops) = read_logged(&mut h, 4);
    assert_eq!(positions(&events).len(), 10);
    assert!(ops.contains(&Op::Get {
        path: g.path.clone()
    }));
    assert!(!ops.iter().any(|op| matches!(op, Op::GetRange { .. })));
}

/// Flips one byte of the object at `path`.
fn flip(h: &mut Harness, path: &str, at: u64) {
    let mut bytes = h.store.object(path).unwrap().to_vec();
    bytes[at as usize] ^= 0x40;
    h.store.tamper(path, bytes.into());
}

#[test]
fn a_corrupt_index_or_record_is_corrupt_with_the_generations_path() {
    let mut h = Harness::new();
    let g = one_generation(&mut h, codec());
    let index = g.index.clone().unwrap();
    let clean = h.store.object(&g.path).unwrap().clone();
    // A byte of the index: its checksum in the manifest catches it.
    flip(&mut h, &g.path, index.offset + 3);
    let (events, _) = read_logged(&mut h, 10);
    assert!(
        matches!(fatal(&events), Some(FatalError::Corrupt { path, reason })
            if *path == g.path && reason.contains("index")),
        "{events:?}"
    );
    assert!(positions(&events).is_empty());
    // A byte of the record at position 12 (the 9th record, 8 bytes each after the magic):
    // 10 and 11 are reported, 12 is refused.
    h.store.tamper(&g.path, clean.clone());
    flip(&mut h, &g.path, 4 + 8 * 8 + 2);
    let (events, _) = read_logged(&mut h, 10);
    assert!(
        matches!(fatal(&events), Some(FatalError::Corrupt { path, reason })
            if *path == g.path && reason.contains("checksum")),
        "{events:?}"
    );
    assert!(positions(&events).iter().all(|&p| p < 12), "{events:?}");
    // A file shorter than the manifest says: the ranged get is past its end.
    h.store
        .tamper(&g.path, clean.slice(..index.offset as usize - 4));
    let (events, _) = read_logged(&mut h, 10);
    assert!(
        matches!(fatal(&events), Some(FatalError::Corrupt { path, reason })
            if *path == g.path && reason.contains("shorter")),
        "{events:?}"
    );
}

#[test]
fn a_generation_written_without_an_index_is_read_whole() {
    let mut h = Harness::new();
    let g = one_generation(&mut h, Box::new(RawCodec::new("schema-a").unindexed()));
    assert_eq!(g.index, None);
    let (events, ops) = read_logged(&mut h, 10);
    assert_eq!(positions(&events), [10, 11, 12, 13]);
    assert!(ops.contains(&Op::Get {
        path: g.path.clone()
    }));
    assert!(!ops.iter().any(|op| matches!(op, Op::GetRange { .. })));
}

#[test]
fn a_range_past_an_objects_end_is_a_typed_error() {
    let mut store = MemStore::new();
    store.overwrite("a", bytes::Bytes::from_static(b"0123456789"));
    let get = |store: &mut MemStore, range| {
        store.execute(&Op::GetRange {
            path: "a".into(),
            range,
        })
    };
    assert_eq!(
        get(&mut store, 2..5).into_get().unwrap(),
        bytes::Bytes::from_static(b"234")
    );
    for bad in [5..11, 10..12, 4..4] {
        let err = get(&mut store, bad.clone()).into_get().unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::InvalidRange, "{bad:?}");
    }
    let missing = store.execute(&Op::GetRange {
        path: "b".into(),
        range: 0..1,
    });
    assert_eq!(
        missing.into_get().unwrap_err().kind,
        StoreErrorKind::NotFound
    );
}

/// Writer 1 (wall clock at 1_000_000 ms) writes ten entries 10 ms apart (positions 4..=13)
/// and flushes them; writer 2, whose clock is far behind, writes two more in the WAL. Returns
/// the generation's record and every data entry's (position, time).
fn timed_log(h: &mut Harness) -> (GenerationRecord, Vec<(u64, u64)>) {
    let timed = |origin| WriterConfig {
        unix_ms_at_origin: Some(origin),
        ..config()
    };
    let mut a = Harness::writer_with(h, codec(), timed(1_000_000));
    h.settle(&mut a);
    for i in 0..10 {
        a.append(h, rec(i));
        h.settle(&mut a);
        h.now += Duration::from_millis(10);
    }
    a.w.flush_memtable(h.now).unwrap();
    a.collect();
    h.settle(&mut a);
    let mut b = Harness::writer_with(h, codec(), timed(5));
    h.settle(&mut b);
    for i in 10..12 {
        b.append(h, rec(i));
        h.settle(&mut b);
    }
    let newest = h
        .store
        .paths()
        .filter(|p| p.starts_with("t/manifest/"))
        .max();
    let m = Manifest::decode(h.store.object(newest.unwrap()).unwrap()).unwrap();
    let g = m.generations[0].clone();
    let mut times = Vec::new();
    let generation = codec()
        .decode_generation(h.store.object(&g.path).unwrap().clone())
        .unwrap();
    for e in generation.entries {
        times.push((e.position, e.time.expect("a timed entry")));
    }
    let wal: Vec<String> = h
        .store
        .paths()
        .filter(|p| p.contains("/wal/"))
        .map(String::from)
        .collect();
    for path in wal {
        let e = codec()
            .decode_entry(h.store.object(&path).unwrap().clone())
            .unwrap();
        if e.header.kind == tidewal_core::EntryKind::Data && e.header.position > g.last_position {
            times.push((e.header.position, e.header.time.expect("a timed entry")));
        }
    }
    (g, times)
}

fn read_since(h: &mut Harness, t: u64) -> (Vec<ReadEvent>, Vec<Op>) {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Time(t),
        read_ahead: 4,
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 9, h.now);
    let (mut events, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        let d = drain(&mut r);
        events.extend(d.events);
        if d.requests.is_empty() {
            assert!(r.is_done());
            return (events, ops);
        }
        for req in d.requests {
            let resp = h.store.execute(&req.op);
            ops.push(req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    panic!("reader never went idle");
}

#[test]
fn entries_record_non_decreasing_wall_clock_times() {
    let mut h = Harness::new();
    let (g, times) = timed_log(&mut h);
    assert_eq!(times.len(), 12);
    // Writer 1's clock: 1_000_000 + its monotonic time, 10 ms apart at least.
    assert!(times[0].1 >= 1_000_000);
    for w in times[..10].windows(2) {
        assert!(w[1].1 >= w[0].1 + 10, "{times:?}");
    }
    // Writer 2's clock is behind: it stamps the newest time it saw, never less.
    assert_eq!(times[10].1, times[9].1);
    assert_eq!(times[11].1, times[9].1);
    assert_eq!(
        (g.min_time, g.max_time),
        (Some(times[0].1), Some(times[9].1))
    );
    assert_eq!(g.untimed, 0);
}

#[test]
fn a_start_at_a_time_reports_from_the_first_entry_at_or_past_it() {
    let mut h = Harness::new();
    let (g, times) = timed_log(&mut h);
    let positions_from = |i: usize| times[i..].iter().map(|&(p, _)| p).collect::<Vec<_>>();
    let touches_gen = |ops: &[Op]| {
        ops.iter()
            .filter(
                |op| matches!(op, Op::Get { path } | Op::GetRange { path, .. } if *path == g.path),
            )
            .count()
    };
    // Before everything: all of it, the generation in one whole get.
    let (ev, ops) = read_since(&mut h, 0);
    assert_eq!(positions(&ev), positions_from(0));
    assert!(ops.contains(&Op::Get {
        path: g.path.clone()
    }));
    // Inside the generation: its index, then only the entries from there.
    let (ev, ops) = read_since(&mut h, times[4].1);
    assert_eq!(positions(&ev), positions_from(4));
    assert!(!ops.contains(&Op::Get {
        path: g.path.clone()
    }));
    assert_eq!(touches_gen(&ops), 2, "{ops:?}");
    // A millisecond after entry 4: from entry 5.
    let (ev, _) = read_since(&mut h, times[4].1 + 1);
    assert_eq!(positions(&ev), positions_from(5));
    // Past the generation (by the manifest's max_time): nothing of it is fetched. Writer 2's
    // entries share the generation's last time, so a start just after it is past them too.
    let (ev, ops) = read_since(&mut h, times[9].1 + 1);
    assert_eq!(positions(&ev), Vec::<u64>::new());
    assert_eq!(touches_gen(&ops), 0, "{ops:?}");
    assert!(
        matches!(ev.last(), Some(ReadEvent::CaughtUp { .. })),
        "{ev:?}"
    );
    // At the last time: the generation's last entry and writer 2's.
    let (ev, _) = read_since(&mut h, times[9].1);
    assert_eq!(positions(&ev), positions_from(9));
}
