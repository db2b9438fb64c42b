//! Retention with no I/O (PROTOCOL.md §4 "Retention"): a drop removes exactly the leading
//! generations wholly below its point, raises `dropped_before`, retires the files (deleted
//! only once no kept version names them and their grace passed), and readers from the
//! beginning start at the point, inside the first kept generation if it lies there.

mod harness;

use std::time::Duration;

use harness::*;

use tidewal_core::{
    CommandError, CompactionConfig, Dropped, Event, FatalError, Machine, Op, Reader, ReaderConfig,
    Response, Start, StoreError, StoreErrorKind, WriterConfig,
};

/// No background compaction (generations stay as flushed), `keep` versions, `grace`.
fn retaining(keep_manifests: u32, grace: Duration) -> WriterConfig {
    WriterConfig {
        keep_manifests,
        compaction: Some(CompactionConfig {
            enabled: false,
            grace,
            ..CompactionConfig::default()
        }),
        ..config()
    }
}

/// `n` generations of `per` entries each (one flush each), settled.
fn flush_generations(h: &mut Harness, d: &mut Driven, n: u64, per: u64) {
    for g in 0..n {
        for i in 0..per {
            d.append(h, rec(g * 100 + i));
        }
        h.settle(d);
        d.w.flush_memtable(h.now).unwrap();
        d.collect();
        h.settle(d);
    }
}

fn dropped(d: &Driven) -> Option<&Dropped> {
    d.events.iter().find_map(|e| match e {
        Event::Dropped(x) => Some(x),
        _ => None,
    })
}

#[test]
fn a_drop_removes_only_the_generations_wholly_below_its_point() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(8, Duration::from_secs(3600)), 1);
    // Positions 4..6, 6..8, 8..10 (fence at 0, window 4).
    flush_generations(&mut h, &mut w, 3, 2);
    let before = h.newest_manifest();
    assert_eq!(before.generations.len(), 3);
    // 7 lies inside the second generation: only the first is wholly below it.
    w.w.drop_before(7, false, h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let m = h.newest_manifest();
    assert_eq!(m.dropped_before, 7);
    assert_eq!(m.generations, before.generations[1..].to_vec());
    assert_eq!(m.retired.len(), 1);
    assert_eq!(m.retired[0].path, before.generations[0].path);
    assert_eq!(m.retired[0].version, m.version);
    assert_eq!(m.replay_cursor, before.replay_cursor, "the cursor stays");
    let d = dropped(&w).expect("answered");
    assert_eq!(
        (d.generations, d.bytes, d.first_position),
        (1, before.generations[0].bytes, 7)
    );
    let stats = w.w.stats();
    assert_eq!(
        (stats.generations_dropped, stats.bytes_dropped),
        (1, before.generations[0].bytes)
    );
    // The file waits for its grace (and the versions that name it).
    assert!(h.store.object(&before.generations[0].path).is_some());
    // From the beginning: the point, read from inside the generation holding it.
    let all: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(all, vec![7, 8, 9]);
    // Below the point: refused.
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Position(6),
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let mut failed = None;
    for _ in 0..100 {
        let d = drain(&mut r);
        for e in d.events {
            if let tidewal_core::ReadEvent::Fatal(f) = e {
                failed = Some(f);
            }
        }
        if d.done || failed.is_some() {
            break;
        }
        for req in d.requests {
            let resp = h.store.execute(&req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    assert_eq!(failed, Some(FatalError::Truncated { first_available: 7 }));
}

#[test]
fn a_drop_past_the_cursor_or_below_dropped_before_is_refused_and_writes_nothing() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(8, Duration::ZERO), 1);
    flush_generations(&mut h, &mut w, 1, 2);
    w.append(&h, rec(9));
    h.settle(&mut w);
    let objects = h.store.paths().count();
    // Position 6 is durable but only in the WAL: not droppable by a drop.
    assert_eq!(
        w.w.drop_before(7, false, h.now),
        Err(CommandError::OutOfRange {
            requested: 7,
            min: 0,
            max: 6
        })
    );
    w.collect();
    assert!(w.held.is_empty(), "nothing sent");
    w.w.drop_before(5, false, h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert_eq!(
        w.w.drop_before(4, false, h.now),
        Err(CommandError::OutOfRange {
            requested: 4,
            min: 5,
            max: 6
        })
    );
    assert!(h.store.paths().count() >= objects);
}

#[test]
fn a_dropped_file_is_deleted_only_once_no_kept_version_names_it_and_its_grace_passed() {
    let mut h = Harness::new();
    let grace = Duration::from_secs(10);
    // Two versions kept: the one before the drop still names the dropped file.
    let mut w = h.open(retaining(2, grace), 1);
    flush_generations(&mut h, &mut w, 2, 1);
    let first = h.newest_manifest().generations[0].clone();
    w.w.drop_before(first.last_position + 1, false, h.now)
        .unwrap();
    w.collect();
    h.settle(&mut w);
    h.now += grace * 2;
    w.w.handle_timeout(h.now);
    w.collect();
    h.settle(&mut w);
    assert!(
        h.store.object(&first.path).is_some(),
        "deleted while the version before the drop is kept"
    );
    // The next commit collects that version; then the file goes.
    w.append(&h, rec(7));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert!(h.store.object(&first.path).is_none(), "kept past its rule");
    assert!(w.w.stats().bytes_reclaimed >= first.bytes);
    // Every entry the log still holds reads back.
    let all: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(all, vec![5, 6]);
}

#[test]
fn a_compaction_in_flight_over_a_dropped_generation_is_dropped_not_committed() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        keep_manifests: 8,
        compaction: Some(CompactionConfig {
            enabled: true,
            fanout: 2,
            tier_base: 1 << 20,
            target_bytes: 1 << 20,
            grace: Duration::from_secs(3600),
        }),
        ..config()
    };
    let mut w = h.open(cfg, 1);
    // One generation; the second's commit starts a compaction of both: hold its GETs.
    flush_generations(&mut h, &mut w, 1, 1);
    w.append(&h, rec(5));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    let is_gen_get = |op: &Op| matches!(op, Op::Get { path } if path.contains("/gen/"));
    while let Some(i) = w.find(|op| !is_gen_get(op)) {
        h.execute(&mut w, i);
    }
    assert!(w.find(is_gen_get).is_some(), "a compaction reads its run");
    // The drop takes the commit slot before the merge is put (forced: a checked drop's
    // intent and listing would let the merge commit first).
    w.w.drop_before(5, true, h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let m = h.newest_manifest();
    assert_eq!(m.dropped_before, 5);
    assert_eq!(m.generations.len(), 1);
    assert_eq!(
        (
            m.generations[0].first_position,
            m.generations[0].last_position
        ),
        (5, 5)
    );
    assert_eq!(w.w.stats().compactions_dropped, 1);
    let all: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(all, vec![5]);
}

fn is_manifest_put(op: &Op) -> bool {
    matches!(op, Op::Put { path, .. } if path.contains("manifest/"))
}

#[test]
fn a_drop_whose_commit_landed_but_was_answered_as_a_timeout_is_read_back_and_reported_once() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(8, Duration::from_secs(3600)), 1);
    flush_generations(&mut h, &mut w, 2, 1);
    let first = h.newest_manifest().generations[0].clone();
    w.w.drop_before(first.last_position + 1, false, h.now)
        .unwrap();
    w.collect();
    let i = w.find(is_manifest_put).expect("the drop's commit");
    // It lands, but the answer is lost.
    let req = w.held.remove(i).unwrap();
    h.store.execute(&req.op);
    let lost = StoreError::new(StoreErrorKind::Unknown, "timeout");
    w.w.handle_response(req.id, Response::Put(Err(lost)), h.now);
    w.collect();
    h.settle(&mut w);
    let m = h.newest_manifest();
    assert_eq!(m.dropped_before, first.last_position + 1);
    assert_eq!(m.generations.len(), 1);
    let dropped: Vec<_> = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::Dropped(_)))
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(w.fatal().is_none());
}

#[test]
fn a_drop_that_loses_its_commit_slot_to_a_newer_writer_drops_nothing() {
    let mut h = Harness::new();
    let mut w = h.open(retaining(8, Duration::ZERO), 1);
    flush_generations(&mut h, &mut w, 2, 1);
    let before = h.newest_manifest();
    w.w.drop_before(before.generations[0].last_position + 1, false, h.now)
        .unwrap();
    w.collect();
    assert!(w.find(is_manifest_put).is_some());
    // A newer writer claims first: the drop's create meets its version.
    let mut newer = h.open(retaining(8, Duration::ZERO), 2);
    assert!(newer.ready());
    h.settle(&mut w);
    assert!(
        matches!(w.fatal(), Some(FatalError::Fenced { .. })),
        "{:?}",
        w.fatal()
    );
    assert!(
        dropped(&w).is_none(),
        "a drop reported that never committed"
    );
    let m = h.newest_manifest();
    assert_eq!(m.dropped_before, 0);
    assert_eq!(m.generations, before.generations);
    for g in &before.generations {
        assert!(h.store.object(&g.path).is_some(), "{} deleted", g.path);
    }
    let all: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(all, vec![4, 5]);
    newer.collect();
}
