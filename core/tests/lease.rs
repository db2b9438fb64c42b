//! The writer lease and the collection of fences (PROTOCOL.md §4 "The writer lease",
//! "Collecting fences"), with every request held until the test lets it through.

mod harness;

use std::time::Duration;

use harness::*;

use tidewal_core::{
    collect_after, Event, FatalError, Machine as _, Manifest, Op, ReadEvent, Reader, ReaderConfig,
    WriterConfig,
};

const LEASE: Duration = Duration::from_millis(300);
const MARGIN: Duration = Duration::from_millis(20);

fn leased() -> WriterConfig {
    WriterConfig {
        lease: LEASE,
        gc_margin: MARGIN,
        ..config()
    }
}

fn is_manifest_list(op: &Op) -> bool {
    matches!(op, Op::List { prefix, .. } if prefix.ends_with("/manifest/"))
}

fn is_fences_list(op: &Op) -> bool {
    matches!(op, Op::List { prefix, .. } if prefix.ends_with("/fences/"))
}

/// Executes held requests in order (no timers) until none is held.
fn run_requests(h: &mut Harness, d: &mut Driven) {
    while !d.held.is_empty() {
        h.execute(d, 0);
    }
}

#[test]
fn an_expired_lease_holds_the_ack_until_the_renewal_answers() {
    let mut h = Harness::new();
    let mut d = h.open(leased(), 1);
    // Idle past the lease: no renewal was sent, so the lease has run out.
    h.now += LEASE + Duration::from_millis(1);
    d.append(&h, rec(1));
    let put = d.find(is_wal_put).expect("the entry's put");
    h.execute(&mut d, put);
    assert_eq!(d.durable(), vec![], "durable, but not acknowledged");
    assert_eq!(d.w.stats().acks_held, 1);
    let renewal = d.find(is_manifest_list).expect("one renewal LIST");
    assert_eq!(d.held.len(), 1, "at most one renewal in flight");
    h.execute(&mut d, renewal);
    assert_eq!(d.durable(), vec![(0, 4)]);
    assert_eq!(d.w.stats().lease_renewals, 1);
}

#[test]
fn a_renewal_that_finds_a_newer_manifest_fences() {
    let mut h = Harness::new();
    let mut d = h.open(leased(), 1);
    h.now += LEASE;
    d.append(&h, rec(1));
    let put = d.find(is_wal_put).expect("the entry's put");
    h.execute(&mut d, put);
    // A newer writer claims meanwhile (its fence lands at 5, past our entry).
    let newer = h.open(leased(), 2);
    assert!(newer.ready());
    let renewal = d.find(is_manifest_list).expect("the renewal");
    h.execute(&mut d, renewal);
    assert_eq!(d.durable(), vec![], "never acknowledged");
    assert_eq!(d.fatal(), Some(&FatalError::Fenced { epoch: 1 }));
}

#[test]
fn an_idle_writer_sends_nothing_for_ten_leases() {
    let mut h = Harness::new();
    let mut d = h.open(leased(), 1);
    d.append(&h, rec(1));
    h.settle(&mut d);
    let before = d.w.stats().io;
    assert_eq!(deadline(&mut d.w), None, "an idle writer arms no timer");
    for _ in 0..100 {
        h.now += LEASE / 10;
        d.w.handle_timeout(h.now);
        d.collect();
    }
    assert!(d.held.is_empty());
    assert_eq!(d.w.stats().io, before);
}

#[test]
fn an_active_writer_renews_every_third_of_the_lease() {
    let mut h = Harness::new();
    let mut d = h.open(leased(), 1);
    let start = h.now;
    d.append(&h, rec(1));
    // The put stays out: the writer is active.
    let at = deadline(&mut d.w).expect("a renewal timer");
    assert_eq!(at, start + LEASE / 3);
    h.now = at;
    d.w.handle_timeout(h.now);
    d.collect();
    let renewal = d.find(is_manifest_list).expect("a renewal");
    h.execute(&mut d, renewal);
    assert_eq!(deadline(&mut d.w), Some(at + LEASE / 3));
}

/// A log with three writers' fences: writer 1 created it (fence at 0, epoch 1 =
/// `lease_epoch`), writer 2 fenced at 5 (window 5..9) and appended, writer 3 fenced at 10,
/// appended and flushed (cursor 16, cursor epoch 3). Returns writer 3, its requests all
/// answered but no timer fired.
fn three_writers(h: &mut Harness) -> Driven {
    three_writers_after(h, Duration::ZERO)
}

/// [`three_writers`], writer 3 appending and flushing `idle` after its claim.
fn three_writers_after(h: &mut Harness, idle: Duration) -> Driven {
    let mut w1 = h.open(leased(), 1);
    w1.append(h, rec(1));
    h.settle(&mut w1);
    let mut w2 = h.open(leased(), 2);
    w2.append(h, rec(2));
    h.settle(&mut w2);
    let mut w3 = h.open(leased(), 3);
    h.now += idle;
    for i in 3..5 {
        w3.append(h, rec(i));
    }
    run_requests(h, &mut w3);
    w3.w.flush_memtable(h.now).unwrap();
    w3.collect();
    run_requests(h, &mut w3);
    let m = w3.w.manifest().unwrap();
    assert_eq!((m.replay_cursor, m.cursor_epoch), (16, 3));
    w3
}

fn present(h: &Harness, path: &str) -> bool {
    h.store.object(path).is_some()
}

#[test]
fn collection_waits_for_the_claim_age_then_collects_only_what_the_rules_allow() {
    let mut h = Harness::new();
    let mut w3 = three_writers(&mut h);
    assert_eq!(
        w3.w.stats().io.deletes,
        4,
        "only the data slots below the cursor"
    );
    let at = w3.w.collectable_at().unwrap();
    assert!(at >= h.now);
    // No request before the claim is old enough: a timer at the moment it is.
    assert_eq!(deadline(&mut w3.w), Some(at));
    h.now = at - Duration::from_millis(1);
    w3.w.handle_timeout(h.now);
    w3.collect();
    assert!(w3.held.is_empty());
    h.now = at;
    w3.w.handle_timeout(h.now);
    w3.collect();
    assert!(w3.find(is_fences_list).is_some());
    run_requests(&mut h, &mut w3);
    // Writer 2's fence, its window's orphan-free slots and its intent are gone.
    assert!(!present(&h, "t/wal/00000000000000000005.arrows"));
    assert!(!present(&h, "t/fences/00000000000000000005-0000000002"));
    // Writer 1's (epoch 1 = lease_epoch) and writer 3's (the cursor epoch) are kept.
    assert!(present(&h, "t/wal/00000000000000000000.arrows"));
    assert!(present(&h, "t/fences/00000000000000000000-0000000001"));
    assert!(present(&h, "t/wal/00000000000000000010.arrows"));
    assert!(present(&h, "t/fences/00000000000000000010-0000000003"));
    let c = w3.w.stats().collected;
    assert_eq!((c.fences, c.intents), (1, 1));
    let read: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(read, vec![4, 9, 14, 15]);
}

#[test]
fn collect_garbage_reports_what_it_deleted() {
    let mut h = Harness::new();
    let mut w3 = three_writers(&mut h);
    w3.w.collect_garbage(h.now).unwrap();
    w3.collect();
    assert!(w3.held.is_empty(), "waits for the claim age");
    h.settle(&mut w3);
    let collected = w3.events.iter().find_map(|e| match e {
        Event::Collected(c) => Some(*c),
        _ => None,
    });
    let c = collected.expect("a Collected event");
    assert_eq!((c.fences, c.orphans, c.intents), (1, 0, 1));
    assert!(h.now >= w3.w.collectable_at().unwrap());
    assert_eq!(
        collect_after(LEASE, MARGIN),
        LEASE + LEASE / 10 + MARGIN,
        "L * (1 + rho) + margin"
    );
}

#[test]
fn a_log_without_a_lease_keeps_the_fences_of_its_first_lease_writer_and_older() {
    let mut h = Harness::new();
    let mut w1 = h.open(leased(), 1);
    w1.append(&h, rec(1));
    h.settle(&mut w1);
    let mut w2 = h.open(leased(), 2);
    w2.append(&h, rec(2));
    h.settle(&mut w2);
    // Make it a log older writers wrote: no lease in its manifest.
    let path = "t/manifest/00000000000000000002.json";
    let mut m = Manifest::decode(h.store.object(path).unwrap()).unwrap();
    (m.lease_ms, m.lease_epoch) = (None, None);
    h.store.overwrite(path, m.encode());
    // Writer 3 claims (adding the lease) and its first commit says it is the first lease
    // writer: lease_epoch = 3, so neither writer 2's fence nor its own is collected.
    let mut w3 = h.open(leased(), 3);
    assert_eq!(w3.w.manifest().unwrap().lease_epoch, None);
    assert_eq!(w3.w.manifest().unwrap().lease_ms, Some(300));
    w3.append(&h, rec(3));
    h.settle(&mut w3);
    w3.w.flush_memtable(h.now).unwrap();
    w3.collect();
    h.settle(&mut w3);
    assert_eq!(w3.w.manifest().unwrap().lease_epoch, Some(3));
    let mut w4 = h.open(leased(), 4);
    w4.append(&h, rec(4));
    h.settle(&mut w4);
    w4.w.flush_memtable(h.now).unwrap();
    w4.collect();
    h.settle(&mut w4);
    assert_eq!(w4.w.manifest().unwrap().cursor_epoch, 4);
    assert!(present(&h, "t/fences/00000000000000000005-0000000002"));
    assert!(present(&h, "t/wal/00000000000000000005.arrows"));
    assert!(present(&h, "t/fences/00000000000000000010-0000000003"));
    assert!(present(&h, "t/wal/00000000000000000010.arrows"));
    assert_eq!(w4.w.stats().collected.fences, 0);
    let read: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(read, vec![4, 9, 14, 19]);
}

#[test]
fn a_window_the_cursor_passed_recently_waits_until_every_reader_saw_the_move() {
    let mut h = Harness::new();
    // Writer 3's claim is long past the claim age when its flush moves the cursor past
    // writer 2's window: readers of the older manifest may still walk there.
    let wait = collect_after(LEASE, MARGIN);
    let mut w3 = three_writers_after(&mut h, 2 * wait);
    let moved = h.now;
    // The round ran at the flush (the claim is old enough) and left writer 2's intent.
    assert!(present(&h, "t/wal/00000000000000000005.arrows"));
    assert!(present(&h, "t/fences/00000000000000000005-0000000002"));
    // Asked for a collection now, the writer says when it can collect all of it, and
    // reports once it did: a round now leaves the intent, a later one collects it.
    assert_eq!(w3.w.collectable_at(), Some(moved + wait));
    w3.w.collect_garbage(h.now).unwrap();
    w3.collect();
    run_requests(&mut h, &mut w3);
    let reported = |d: &Driven| {
        d.events.iter().find_map(|e| match e {
            Event::Collected(c) => Some(*c),
            _ => None,
        })
    };
    assert_eq!(reported(&w3), None);
    assert_eq!(deadline(&mut w3.w), Some(moved + wait));
    h.now = moved + wait;
    w3.w.handle_timeout(h.now);
    w3.collect();
    run_requests(&mut h, &mut w3);
    assert!(!present(&h, "t/wal/00000000000000000005.arrows"));
    assert!(!present(&h, "t/fences/00000000000000000005-0000000002"));
    let c = reported(&w3).expect("reported once collected");
    assert_eq!((c.fences, c.intents), (1, 1));
}

/// Reads the log of one entry (fence at 0, data at 4) with a fresh reader; the GET of slot 4
/// answers `delay` after the reader started. Returns what happened, in order: manifest LISTs,
/// the late answer, records reported.
fn read_with_slot_answered_after(delay: Duration) -> Vec<&'static str> {
    let mut h = Harness::new();
    let mut w = h.open(leased(), 1);
    w.append(&h, rec(1));
    h.settle(&mut w);
    let cfg = ReaderConfig {
        prefix: "t".into(),
        ..ReaderConfig::default()
    };
    let start = h.now;
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let mut seen = Vec::new();
    for _ in 0..100 {
        let d = drain(&mut r);
        for e in &d.events {
            r.release(e.bytes());
            if let ReadEvent::Records { .. } = e {
                seen.push("records");
            }
        }
        if d.done {
            return seen;
        }
        for req in d.requests {
            if is_manifest_list(&req.op) {
                seen.push("list");
            }
            if matches!(&req.op, Op::Get { path } if path.ends_with("/00000000000000000004.arrows"))
            {
                h.now = start + delay;
                seen.push("slot 4");
            }
            let resp = h.store.execute(&req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    panic!("the reader did not finish");
}

#[test]
fn a_reader_checks_the_manifest_before_reporting_a_slot_that_outlived_it_by_a_lease() {
    let on_time = read_with_slot_answered_after(LEASE);
    let late = read_with_slot_answered_after(LEASE + Duration::from_millis(1));
    // The same reads, and one more LIST right before the late slot's records.
    let at = on_time.iter().position(|&s| s == "records").unwrap();
    let mut expected = on_time.clone();
    expected.insert(at, "list");
    assert_eq!(late, expected, "on time: {on_time:?}");
}
