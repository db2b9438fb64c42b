//! A reader's start at a time past the generations (PROTOCOL.md §5 "Start at a time"): the
//! search over WAL slots, the requests it costs, and when it falls back to the walk.

mod harness;

use std::time::Duration;

use harness::*;
use tidewal_core::{Op, Reader, ReaderConfig, Start, TimeStart};

const ORIGIN: u64 = 1_700_000_000_000;

/// A writer (with a clock, or without) appending `n` entries, 1 ms apart.
fn write(h: &mut Harness, seed: u64, n: u64, clock: bool) {
    let cfg = tidewal_core::WriterConfig {
        unix_ms_at_origin: clock.then_some(ORIGIN),
        ..config()
    };
    let mut w = h.open(cfg, seed);
    for i in 0..n {
        h.now += Duration::from_millis(1);
        w.append(h, rec(i));
        h.settle(&mut w);
    }
}

/// A reader from time `t` run to its end: positions reported, how it started, every request.
fn read(h: &mut Harness, t: u64) -> (Vec<u64>, TimeStart, Vec<Op>) {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Time(t),
        read_ahead: 4,
        poll_interval: Duration::from_millis(50),
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let (positions, ops) = read_to_end(&mut r, &mut h.store, h.now, 1_000_000);
    (positions, r.time_start(), ops)
}

fn count(ops: &[Op], list: bool) -> usize {
    ops.iter()
        .filter(|o| matches!(o, Op::List { .. }) == list)
        .count()
}

/// Fence at 0 (W = 4), then entries 4..4 + n; the entry at `4 + i` has time
/// `ORIGIN + i + 1`.
fn timed_log(n: u64) -> Harness {
    let mut h = Harness::new();
    write(&mut h, 1, n, true);
    h
}

#[test]
fn a_start_in_the_middle_of_a_big_wal_costs_log_n_requests() {
    let mut h = timed_log(3000);
    let (got, how, ops) = read(&mut h, ORIGIN + 1501);
    assert_eq!(got, (1504..3004).collect::<Vec<_>>());
    let TimeStart::Searched { position, rounds } = how else {
        panic!("{how:?}");
    };
    assert!(position <= 1504, "{position}");
    // Doubling to the end and halving back: about 2 log2(3000) probes.
    assert!(rounds <= 2 * 12 + 2, "{rounds} rounds");
    // Every request but reading the 1500 entries reported (and the read-ahead past the end):
    // the search, then the start past the cursor (W check slots, the intent's slot).
    let reading = 1500 + 4;
    let gets = count(&ops, false);
    assert!(gets - reading <= 40, "{gets} gets");
    assert!(count(&ops, true) <= 6, "{ops:?}");
}

#[test]
fn a_start_before_the_first_entry_reports_all_of_them() {
    let mut h = timed_log(200);
    let (got, how, _) = read(&mut h, ORIGIN);
    assert_eq!(got, (4..204).collect::<Vec<_>>());
    assert!(
        matches!(how, TimeStart::Searched { position, .. } if position <= 4),
        "{how:?}"
    );
}

#[test]
fn a_start_after_the_last_entry_reports_nothing() {
    let mut h = timed_log(200);
    let (got, how, ops) = read(&mut h, ORIGIN + 10_000);
    assert_eq!(got, Vec::<u64>::new());
    assert!(
        matches!(how, TimeStart::Searched { position: 204, .. }),
        "{how:?}"
    );
    assert!(count(&ops, false) < 60, "{ops:?}");
}

#[test]
fn a_writer_whose_intent_lacks_the_promise_makes_the_search_fall_back() {
    // Timed entries 4..104, untimed 108..113, timed 117..1117: the first untimed entry opens
    // the gate, and no probe of the slots around `t` could tell it is there.
    let mut h = Harness::new();
    write(&mut h, 1, 100, true);
    write(&mut h, 2, 5, false);
    write(&mut h, 3, 1000, true);
    let body = h
        .store
        .execute(&Op::Get {
            path: "t/fences/00000000000000000104-0000000002".into(),
        })
        .into_get()
        .expect("the untimed writer's intent");
    assert!(!body.ends_with(b" timed"), "{body:?}");
    let t = ORIGIN + 700;
    let (got, how, ops) = read(&mut h, t);
    // The untimed entries and everything after: the walk from the cursor. (A search would
    // have started near 711, past the untimed entries.)
    assert_eq!(got, (108..113).chain(117..1117).collect::<Vec<_>>());
    assert_eq!(how, TimeStart::Fallback);
    assert!(count(&ops, false) > 1100);
}
