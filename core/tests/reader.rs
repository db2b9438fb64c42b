//! Reader transitions with no I/O: empty logs, following, fence windows, GC behind its back.

mod harness;

use std::time::Duration;

use harness::*;
use tidewal_core::{ReadEvent, Reader, ReaderConfig, Record, TimerReason};

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
        while let Some(e) = r.poll_event() {
            out.push(e);
        }
        match r.poll_request() {
            Some(req) => {
                let resp = h.store.execute(&req.op);
                r.handle_response(req.id, resp, h.now);
            }
            None => return out,
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
    let (at, reason) = r.poll_timeout().expect("a follower always has a timer");
    assert_eq!(reason, TimerReason::Poll);
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
    let ev = tick(&mut h, &mut r);
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
    assert!(r.poll_timeout().is_none());
    assert!(r.poll_request().is_none());
}
