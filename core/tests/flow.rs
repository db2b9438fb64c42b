//! Reader flow control (PROTOCOL.md §5 "Flow control"): a reader holds at most about
//! `read_ahead_bytes` of records its host has not released, never stalls because of the bound,
//! and waiting for a release is not a stall.

mod harness;

use std::time::Duration;

use harness::*;
use tidewal_core::{FatalError, Machine, Op, ReadEvent, Reader, ReaderConfig, Request};

/// `rec(n)` records are 8 payload bytes each.
const REC: u64 = 8;

fn reader(h: &Harness, bound: u64, follow: bool) -> Reader {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        follow,
        poll_interval: Duration::from_millis(50),
        read_ahead: 64,
        read_ahead_bytes: bound,
        ..ReaderConfig::default()
    };
    Reader::new(cfg, codec(), 5, h.now)
}

/// A log of `n` one-record entries at positions 4.. (all in the WAL).
fn wal_log(h: &mut Harness, n: u64) {
    let mut w = h.open(config(), 1);
    for i in 0..n {
        w.append(h, rec(i));
        h.settle(&mut w);
    }
}

fn is_slot_get(r: &Request) -> bool {
    matches!(&r.op, Op::Get { path } if path.contains("/wal/"))
}

fn is_generation_get(r: &Request) -> bool {
    matches!(&r.op, Op::Get { path } if path.contains("/gen/"))
}

/// What a run without releases saw: the events, and the most slot GETs out at once.
struct Run {
    events: Vec<ReadEvent>,
    most_slots_out: usize,
}

/// Answers every request until the reader waits; a host that releases nothing.
fn run_without_release(h: &mut Harness, r: &mut Reader) -> Run {
    let mut run = Run {
        events: Vec::new(),
        most_slots_out: 0,
    };
    let mut out: Vec<Request> = Vec::new();
    for _ in 0..10_000 {
        let d = drain(r);
        run.events.extend(d.events);
        out.extend(d.requests);
        run.most_slots_out = run
            .most_slots_out
            .max(out.iter().filter(|q| is_slot_get(q)).count());
        if out.is_empty() {
            return run;
        }
        let q = out.remove(0);
        let resp = h.store.execute(&q.op);
        r.handle_response(q.id, resp, h.now);
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

fn failed(events: &[ReadEvent]) -> Option<&FatalError> {
    events.iter().find_map(|e| match e {
        ReadEvent::Fatal(f) => Some(f),
        _ => None,
    })
}

#[test]
fn a_host_that_never_releases_stops_the_reader_at_the_bound_and_release_resumes_it() {
    let mut h = Harness::new();
    wal_log(&mut h, 20);
    let mut r = reader(&h, 4 * REC, false);
    let run = run_without_release(&mut h, &mut r);
    // The first slot goes alone (nothing known of slot sizes), then the mean (8 bytes) fills
    // the bound: four records held, no more GETs.
    assert_eq!(positions(&run.events), vec![4, 5, 6, 7]);
    assert_eq!(r.unreleased(), 4 * REC);
    assert!(
        run.most_slots_out <= 3,
        "{} slot GETs out",
        run.most_slots_out
    );
    // Waiting for the host is not a stall: no failure, no timer, not done, nothing asked.
    let d = drain(&mut r);
    assert!(failed(&run.events).is_none() && d.requests.is_empty() && d.events.is_empty());
    assert!(d.wake.is_none() && !d.done, "waits for a release");
    let gets = r.io_counters().gets;
    // Releasing one record's bytes makes room for one more slot.
    r.release(REC);
    let run = run_without_release(&mut h, &mut r);
    assert_eq!(positions(&run.events), vec![8]);
    assert_eq!(r.io_counters().gets, gets + 1);
    // Releasing everything lets it read to the end.
    let mut seen = vec![4, 5, 6, 7, 8];
    for _ in 0..100 {
        r.release(u64::MAX);
        let run = run_without_release(&mut h, &mut r);
        seen.extend(positions(&run.events));
        if run.events.contains(&ReadEvent::CaughtUp { position: 24 }) {
            break;
        }
    }
    assert_eq!(seen, (4..24).collect::<Vec<_>>());
    assert!(drain(&mut r).done);
}

#[test]
fn a_bound_below_one_entry_still_reads_everything_one_slot_at_a_time() {
    let mut h = Harness::new();
    wal_log(&mut h, 6);
    let mut r = reader(&h, 1, false);
    let mut seen = Vec::new();
    for _ in 0..100 {
        let run = run_without_release(&mut h, &mut r);
        assert!(
            run.most_slots_out <= 1,
            "{} slot GETs out",
            run.most_slots_out
        );
        assert!(failed(&run.events).is_none(), "{:?}", run.events);
        // The host hands each event on, then releases its bytes.
        for e in &run.events {
            r.release(e.bytes());
        }
        seen.extend(positions(&run.events));
        if r.is_done() {
            break;
        }
    }
    assert_eq!(seen, (4..10).collect::<Vec<_>>());
}

#[test]
fn a_follower_waiting_for_release_does_not_poll_or_stall() {
    let mut h = Harness::new();
    wal_log(&mut h, 3);
    let mut r = reader(&h, REC, true);
    let run = run_without_release(&mut h, &mut r);
    assert_eq!(positions(&run.events), vec![4]);
    let d = drain(&mut r);
    assert!(d.wake.is_none() && !d.done && failed(&run.events).is_none());
    // A release resumes it; once everything is released it catches up and polls again.
    for _ in 0..10 {
        r.release(u64::MAX);
        let run = run_without_release(&mut h, &mut r);
        if run.events.contains(&ReadEvent::CaughtUp { position: 7 }) {
            let at = drain(&mut r).wake;
            assert_eq!(at, Some(h.now + Duration::from_millis(50)), "a poll timer");
            return;
        }
    }
    panic!("never caught up");
}

#[test]
fn a_generation_larger_than_the_bound_is_read_in_runs_each_after_a_release() {
    let mut h = Harness::new();
    let mut w = h.open(config(), 1);
    for g in 0..2 {
        for i in 0..3 {
            w.append(&h, rec(g * 10 + i));
        }
        h.settle(&mut w);
        w.w.flush_memtable(h.now).unwrap();
        w.collect();
        h.settle(&mut w);
    }
    let mut r = reader(&h, 2 * REC, false);
    let mut events = Vec::new();
    let (mut whole_gets, mut ranged_gets) = (0, 0);
    // Runs the reader until it asks for nothing more; counts its generation GETs.
    let mut settle = |r: &mut Reader, events: &mut Vec<ReadEvent>| {
        let mut out: Vec<Request> = Vec::new();
        for _ in 0..1000 {
            let d = drain(r);
            events.extend(d.events);
            whole_gets += d.requests.iter().filter(|q| is_generation_get(q)).count();
            ranged_gets += d
                .requests
                .iter()
                .filter(|q| matches!(&q.op, Op::GetRange { path, .. } if path.contains("/gen/")))
                .count();
            out.extend(d.requests);
            if out.is_empty() {
                return;
            }
            let q = out.remove(0);
            let resp = h.store.execute(&q.op);
            r.handle_response(q.id, resp, h.now);
        }
    };
    settle(&mut r, &mut events);
    // Each generation (3 records) is over the bound: never fetched whole, and without a
    // release the reader stops once its host holds the bound.
    let first = positions(&events).len();
    assert!((1..6).contains(&first), "{:?}", positions(&events));
    assert!(r.unreleased() >= 2 * REC);
    assert!(failed(&events).is_none() && !drain(&mut r).done);
    // Released, it goes on, a run at a time, until every entry was read, in order.
    for _ in 0..10 {
        r.release(u64::MAX);
        settle(&mut r, &mut events);
    }
    assert_eq!(positions(&events).len(), 6, "{:?}", positions(&events));
    assert!(positions(&events).windows(2).all(|p| p[0] < p[1]));
    assert_eq!(whole_gets, 0);
    // Two indexes and at least one run per release-limited batch of records.
    assert!(ranged_gets >= 4, "{ranged_gets} ranged gets");
}
