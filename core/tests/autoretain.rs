//! The automatic retention policy with no I/O (PROTOCOL.md §4 "Automatic retention"): after
//! a flush, at most once per interval, the owner lists the named consumers and drops the
//! leading generations the policy lets go that lie wholly below the lowest of them.

mod harness;

use std::time::Duration;

use harness::*;

use tidewal_core::consumer::ConsumerVersion;
use tidewal_core::retention::HeldBack;
use tidewal_core::{
    CompactionConfig, Dropped, Event, Machine, Manifest, Op, Response, RetentionPolicy, StoreError,
    StoreErrorKind, Writer, WriterConfig,
};

/// No compaction (generations stay as flushed), a long grace, and `policy`.
fn retaining(policy: RetentionPolicy) -> WriterConfig {
    WriterConfig {
        keep_manifests: 8,
        compaction: Some(CompactionConfig {
            enabled: false,
            grace: Duration::from_secs(3600),
            ..CompactionConfig::default()
        }),
        retention: Some(policy),
        ..config()
    }
}

fn by_bytes(keep: u64, interval: Duration) -> RetentionPolicy {
    RetentionPolicy {
        keep_for: None,
        keep_bytes: Some(keep),
        interval,
    }
}

/// One flush of `per` entries, driven until quiet (timers included).
fn flush_one(h: &mut Harness, d: &mut Driven, first: u64, per: u64) {
    for i in 0..per {
        d.append(h, rec(first + i));
    }
    h.settle(d);
    d.w.flush_memtable(h.now).unwrap();
    d.collect();
    h.settle(d);
}

fn retained(d: &Driven) -> Vec<Dropped> {
    d.events
        .iter()
        .filter_map(|e| match e {
            Event::Retained(x) => Some(x.clone()),
            _ => None,
        })
        .collect()
}

fn positions(h: &mut Harness) -> Vec<u64> {
    h.read_all().unwrap().iter().map(|(p, _)| *p).collect()
}

fn is_consumer_list(op: &Op) -> bool {
    matches!(op, Op::List { prefix, .. } if prefix.contains("consumers/"))
}

/// A round's intent: a manifest put announcing `dropping` (PROTOCOL.md §4 "Retention").
fn is_intent(op: &Op) -> bool {
    matches!(op, Op::Put { path, body } if path.contains("/manifest/")
        && Manifest::decode(&body.to_bytes()).is_ok_and(|m| m.dropping.is_some()))
}

/// A consumer `name` that committed `position` (its first version), as an instance writes it.
fn consumer_at(h: &mut Harness, name: &str, position: u64) {
    let v = ConsumerVersion {
        format: 1,
        name: name.into(),
        version: 1,
        position,
        nonce: 7,
        claim: 1,
    };
    let path = format!("t/consumers/{name}/{:020}.json", 1);
    let put = Op::Put {
        path,
        body: v.encode().into(),
    };
    assert!(matches!(h.store.execute(&put), Response::Put(Ok(()))));
}

/// Generations of the newest manifest: (first, last, bytes).
fn generations(h: &Harness) -> Vec<(u64, u64, u64)> {
    h.newest_manifest()
        .generations
        .iter()
        .map(|g| (g.first_position, g.last_position, g.bytes))
        .collect()
}

#[test]
fn keep_bytes_drops_the_oldest_whole_generations_after_each_flush() {
    let mut h = Harness::new();
    // Measure one generation of two entries, then keep two of them.
    let mut probe = h.open(retaining(by_bytes(u64::MAX, Duration::from_millis(1))), 1);
    flush_one(&mut h, &mut probe, 0, 2);
    let one = generations(&h)[0].2;
    drop(probe);
    let mut h = Harness::new();
    let mut w = h.open(retaining(by_bytes(2 * one, Duration::from_millis(1))), 1);
    for g in 0..5 {
        flush_one(&mut h, &mut w, g * 100, 2);
        h.now += Duration::from_millis(2);
        let gens = generations(&h);
        let bytes: u64 = gens.iter().map(|g| g.2).sum();
        assert!(bytes <= 2 * one, "{bytes} bytes live after flush {g}");
        assert_eq!(gens.len() as u64, (g + 1).min(2));
    }
    let m = h.newest_manifest();
    // Positions 4..14 were flushed two by two: the last two generations stay.
    assert_eq!(
        (m.dropped_before, m.generations[0].first_position),
        (10, 10)
    );
    assert_eq!(positions(&mut h), vec![10, 11, 12, 13]);
    let r = retained(&w);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.iter().all(|d| d.generations == 1 && d.bytes == one));
    assert!(w.events.iter().all(|e| !matches!(e, Event::Dropped(_))));
    let s = w.w.stats();
    assert_eq!((s.generations_dropped, s.bytes_dropped), (3, 3 * one));
    assert_eq!((s.retention_rounds, s.retention_held_back), (3, 0));
}

#[test]
fn a_named_consumer_holds_the_policy_back_at_a_generation_boundary_never_forced() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(by_bytes(1, Duration::from_millis(1))), 1);
    // 7 lies inside the second generation (6..8): only the first goes, whole.
    consumer_at(&mut h, "etl", 9);
    consumer_at(&mut h, "audit", 7);
    for g in 0..3 {
        flush_one(&mut h, &mut w, g * 100, 2);
        h.now += Duration::from_millis(2);
    }
    let m = h.newest_manifest();
    assert_eq!(m.dropped_before, 6);
    assert_eq!(m.generations[0].first_position, 6);
    assert_eq!(positions(&mut h), vec![6, 7, 8, 9]);
    let s = w.w.stats();
    assert!(s.retention_held_back >= 1);
    assert_eq!(
        s.retention_held_by,
        Some(HeldBack {
            name: "audit".into(),
            position: 7
        })
    );
    // A consumer at 0 holds everything: rounds list, nothing is committed.
    let mut h = Harness::new();
    let mut w = h.open(retaining(by_bytes(1, Duration::from_millis(1))), 1);
    consumer_at(&mut h, "fresh", 0);
    for g in 0..2 {
        flush_one(&mut h, &mut w, g * 100, 2);
        h.now += Duration::from_millis(2);
    }
    assert_eq!(h.newest_manifest().dropped_before, 0);
    assert!(retained(&w).is_empty());
    let s = w.w.stats();
    assert_eq!((s.retention_rounds, s.retention_held_back), (2, 2));
    assert_eq!(s.generations_dropped, 0);
}

#[test]
fn rounds_are_an_interval_apart_and_a_due_one_waits_for_its_timer() {
    let mut h = Harness::new();
    let interval = Duration::from_secs(10);
    let cfg = WriterConfig {
        // A lease longer than the test: no renewal timers in the way.
        lease: Duration::from_secs(3600),
        ..retaining(by_bytes(1, interval))
    };
    let mut w = h.open(cfg, 1);
    for i in 0..2 {
        w.append(&h, rec(i));
    }
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    // Run everything but timers: the first round runs at once.
    let quiet = |h: &mut Harness, w: &mut Driven| {
        while !w.held.is_empty() {
            h.execute(w, 0);
        }
    };
    let mut lists = 0;
    while !w.held.is_empty() {
        lists += u64::from(is_consumer_list(&w.held[0].op));
        h.execute(&mut w, 0);
    }
    assert_eq!((lists, retained(&w).len()), (1, 1));
    let first_round = h.now;
    // A flush within the interval: no round, but a timer at its end.
    h.now += Duration::from_secs(1);
    w.append(&h, rec(5));
    quiet(&mut h, &mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    assert!(w.find(is_consumer_list).is_none());
    quiet(&mut h, &mut w);
    assert!(
        w.find(is_consumer_list).is_none(),
        "a round inside the interval"
    );
    assert_eq!(deadline(&mut w.w), Some(first_round + interval));
    h.now = first_round + interval;
    w.w.handle_timeout(h.now);
    w.collect();
    assert!(w.find(is_intent).is_some(), "the due round at its timer");
    quiet(&mut h, &mut w);
    assert_eq!(retained(&w).len(), 2);
    assert_eq!(w.w.stats().retention_rounds, 2);
}

#[test]
fn keep_for_drops_generations_older_than_it_by_the_writers_wall_clock() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        unix_ms_at_origin: Some(1_000_000),
        ..retaining(RetentionPolicy {
            keep_for: Some(Duration::from_secs(3)),
            keep_bytes: None,
            interval: Duration::from_millis(1),
        })
    };
    let mut w = h.open(cfg, 1);
    flush_one(&mut h, &mut w, 0, 2);
    h.now += Duration::from_secs(2);
    flush_one(&mut h, &mut w, 100, 2);
    assert_eq!(generations(&h).len(), 2, "nothing is 3 s old yet");
    // At 4 s the first is older than 3 s, the second (2 s) is not.
    h.now += Duration::from_secs(2);
    flush_one(&mut h, &mut w, 200, 2);
    let m = h.newest_manifest();
    assert_eq!(m.generations.len(), 2);
    assert_eq!(m.dropped_before, 6);
    assert_eq!(positions(&mut h), vec![6, 7, 8, 9]);
    // Without a clock the age rule drops nothing, and the round sends nothing.
    let mut h = Harness::new();
    let cfg = WriterConfig {
        unix_ms_at_origin: None,
        ..retaining(RetentionPolicy {
            keep_for: Some(Duration::from_millis(1)),
            keep_bytes: None,
            interval: Duration::from_millis(1),
        })
    };
    let mut w = h.open(cfg, 1);
    for g in 0..2 {
        flush_one(&mut h, &mut w, g * 100, 2);
        h.now += Duration::from_secs(5);
    }
    assert_eq!(h.newest_manifest().dropped_before, 0);
    assert_eq!(w.w.stats().retention_rounds, 0);
}

#[test]
fn a_failed_listing_is_counted_and_drops_nothing_and_the_writer_goes_on() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(by_bytes(1, Duration::from_millis(1))), 1);
    for i in 0..2 {
        w.append(&h, rec(i));
    }
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    let mut refused = 0;
    for _ in 0..10_000 {
        if let Some(i) = w.find(is_consumer_list) {
            refused += 1;
            let e = StoreError::new(StoreErrorKind::Unknown, "down");
            h.answer(&mut w, i, Response::List(Err(e)));
        } else if !w.held.is_empty() {
            h.execute(&mut w, 0);
        } else if let Some(at) = deadline(&mut w.w).filter(|_| w.w.stats().retention_failures == 0)
        {
            h.now = h.now.max(at);
            w.w.handle_timeout(h.now);
            w.collect();
        } else {
            break;
        }
    }
    // Retried by the writer's policy, then given up for this round.
    assert_eq!(refused, config().retry.attempts);
    let s = w.w.stats();
    assert_eq!((s.retention_failures, s.generations_dropped), (1, 0));
    assert!(w.fatal().is_none());
    assert_eq!(h.newest_manifest().dropped_before, 0);
    // The next flush's round succeeds.
    h.now += Duration::from_millis(2);
    flush_one(&mut h, &mut w, 100, 2);
    assert_eq!(w.w.stats().generations_dropped, 2);
    assert!(positions(&mut h).is_empty());
}

#[test]
fn a_policy_with_nothing_to_drop_sends_no_request() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(by_bytes(1 << 30, Duration::from_millis(1))), 1);
    for g in 0..3 {
        for i in 0..2 {
            w.append(&h, rec(g * 100 + i));
        }
        h.settle(&mut w);
        w.w.flush_memtable(h.now).unwrap();
        w.collect();
        while !w.held.is_empty() {
            assert!(!is_consumer_list(&w.held[0].op));
            h.execute(&mut w, 0);
        }
        h.now += Duration::from_millis(2);
    }
    assert_eq!(w.w.stats().retention_rounds, 0);
}

#[test]
fn bad_policies_and_a_policy_on_a_wal_only_log_are_refused() {
    let bad = [
        RetentionPolicy {
            keep_for: None,
            keep_bytes: None,
            interval: Duration::from_secs(1),
        },
        by_bytes(0, Duration::from_secs(1)),
        by_bytes(1, Duration::ZERO),
        RetentionPolicy {
            keep_for: Some(Duration::ZERO),
            keep_bytes: None,
            interval: Duration::from_secs(1),
        },
        RetentionPolicy {
            keep_for: Some(Duration::MAX),
            keep_bytes: None,
            interval: Duration::from_secs(1),
        },
    ];
    for p in bad {
        let e = Writer::new(retaining(p.clone()), codec(), 1, Duration::ZERO)
            .err()
            .unwrap_or_else(|| panic!("{p:?} accepted"));
        assert!(e.0.contains("retention"), "{e}");
    }
    let wal_only = WriterConfig {
        wal_only: true,
        ..retaining(by_bytes(1, Duration::from_secs(1)))
    };
    let e = Writer::new(wal_only, codec(), 1, Duration::ZERO)
        .err()
        .unwrap();
    assert!(e.0.contains("WAL-only"), "{e}");
}

#[test]
fn a_closing_writer_applies_the_policy_after_its_last_flush() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(by_bytes(1, Duration::from_millis(1))), 1);
    for i in 0..2 {
        w.append(&h, rec(i));
    }
    h.settle(&mut w);
    h.now += Duration::from_millis(2);
    w.w.close(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert!(w.events.iter().any(|e| matches!(e, Event::Closed)));
    let r = retained(&w);
    assert_eq!(r.len(), 1, "{r:?}");
    let closed_at = w.events.iter().position(|e| matches!(e, Event::Closed));
    let retained_at = w
        .events
        .iter()
        .position(|e| matches!(e, Event::Retained(_)));
    assert!(retained_at < closed_at, "Closed before the round's drop");
    assert_eq!(h.newest_manifest().generations.len(), 0);
}
