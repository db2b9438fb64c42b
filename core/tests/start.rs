//! Fence intents and the reader's start far past the cursor (PROTOCOL.md §4 "Open", §5 "Start
//! past the cursor"): the requests it makes, and every reason it falls back to the walk.

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::*;
use tidewal_core::{
    Machine, Manifest, Op, ReadEvent, Reader, ReaderConfig, Response, Start, StartPath, StoreError,
    StoreErrorKind,
};

/// Writer 1: fence 0, data 4..=103. Writer 2: fence 104, data 108..=157. All in the WAL
/// (cursor 0).
fn two_writers(h: &mut Harness) {
    let mut a = h.open(config(), 1);
    for i in 0..100 {
        a.append(h, rec(i));
    }
    h.settle(&mut a);
    let mut b = h.open(config(), 2);
    for i in 100..150 {
        b.append(h, rec(i));
    }
    h.settle(&mut b);
    assert_eq!(b.durable().last().map(|d| d.1), Some(157));
}

/// A reader of `from .. until` run to its end: its positions, path and every request.
fn read(h: &mut Harness, from: u64, until: Option<u64>) -> (Vec<u64>, StartPath, Vec<Op>) {
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Position(from),
        until,
        read_ahead: 4,
        poll_interval: Duration::from_millis(50),
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let (positions, ops) = read_to_end(&mut r, &mut h.store, h.now, 100_000);
    (positions, r.start_path(), ops)
}

fn gets(ops: &[Op]) -> usize {
    ops.iter().filter(|o| matches!(o, Op::Get { .. })).count()
}

#[test]
fn every_fence_has_an_intent_put_before_it() {
    let mut h = Harness::new();
    two_writers(&mut h);
    let intents: Vec<&str> = h.store.paths().filter(|p| p.contains("/fences/")).collect();
    assert_eq!(
        intents,
        [
            "t/fences/00000000000000000000-0000000001",
            "t/fences/00000000000000000104-0000000002"
        ]
    );
}

#[test]
fn a_start_far_past_the_cursor_costs_the_window_and_the_intents_not_the_walk() {
    let mut h = Harness::new();
    two_writers(&mut h);
    let (walked, path, walk_ops) = read(&mut h, 4, Some(151));
    assert_eq!(path, StartPath::Walk);
    let want: Vec<u64> = walked.iter().copied().filter(|&p| p >= 150).collect();
    assert_eq!(want, [150]);
    let (got, path, ops) = read(&mut h, 150, Some(151));
    assert_eq!(path, StartPath::Shortcut);
    assert_eq!(got, want);
    // The manifest, W = 4 check slots, 2 intents' slots, the slot at 150 and 4 read ahead:
    // not the 150 slots from the cursor. Lists: manifests, intents, manifests again.
    assert_eq!(gets(&ops), 1 + 4 + 2 + 1 + 4, "{ops:?}");
    let lists = ops.iter().filter(|o| matches!(o, Op::List { .. })).count();
    assert_eq!(lists, 3, "{ops:?}");
    assert!(gets(&walk_ops) > 140);
}

#[test]
fn a_start_inside_a_window_walks_from_its_fence() {
    let mut h = Harness::new();
    two_writers(&mut h);
    for from in [105, 106, 107, 108] {
        let (got, path, _) = read(&mut h, from, Some(110));
        assert_eq!(path, StartPath::Shortcut, "from {from}");
        assert_eq!(got, [108, 109], "from {from}");
    }
}

#[test]
fn an_intent_whose_slot_is_absent_falls_back_to_the_walk() {
    let mut h = Harness::new();
    two_writers(&mut h);
    // An opener that crashed between its intent and its fence, in a window (slot 2 stays
    // empty): nothing says which slots it covers.
    h.store.overwrite(
        "t/fences/00000000000000000002-0000000009",
        Bytes::from_static(b"x"),
    );
    let (got, path, ops) = read(&mut h, 150, Some(151));
    assert_eq!(path, StartPath::Fallback);
    assert_eq!(got, [150]);
    assert!(gets(&ops) > 140);
}

#[test]
fn a_hole_below_the_start_falls_back_and_reports_nothing_above_it() {
    let mut h = Harness::new();
    two_writers(&mut h);
    // A put still out (or lost) at 148: an entry above it may never be acknowledged.
    let hole = "t/wal/00000000000000000148.arrows";
    let resp = h.store.execute(&Op::Delete { path: hole.into() });
    assert!(matches!(resp, Response::Delete(Ok(()))));
    let (got, path, _) = read(&mut h, 150, Some(151));
    assert_eq!(path, StartPath::Fallback);
    assert_eq!(got, Vec::<u64>::new());
}

#[test]
fn an_intent_put_with_an_unknown_outcome_is_read_back_before_the_fence() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    a.append(&h, rec(0));
    h.settle(&mut a);
    let mut b = h.writer(config(), 2);
    let is_intent = |o: &Op| matches!(o, Op::Put { path, .. } if path.contains("/fences/"));
    loop {
        if let Some(i) = b.find(is_intent) {
            // It lands, but the answer is lost.
            let req = b.held.remove(i).unwrap();
            let _ = h.store.execute(&req.op);
            let lost = req
                .op
                .failed(StoreError::new(StoreErrorKind::Unknown, "timeout"));
            b.w.handle_response(req.id, lost, h.now);
            b.collect();
            break;
        }
        assert!(b.find(is_wal_put).is_none(), "a fence before its intent");
        h.execute(&mut b, 0);
    }
    // The read-back GET of the intent comes before any WAL put.
    let read_back = b
        .find(|o| matches!(o, Op::Get { path } if path.contains("/fences/")))
        .expect("the intent is read back");
    assert!(b.find(is_wal_put).is_none());
    h.execute(&mut b, read_back);
    assert!(b.find(is_wal_put).is_some(), "the fence follows its intent");
    h.settle(&mut b);
    assert!(b.ready());
    assert_eq!(b.fatal(), None);
}

#[test]
fn an_intent_put_that_finds_another_object_is_a_protocol_violation() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    a.append(&h, rec(0));
    h.settle(&mut a);
    // Writer 2 will fence slot 5 with epoch 2: something else already holds that name.
    h.store.overwrite(
        "t/fences/00000000000000000005-0000000002",
        Bytes::from_static(b"not ours"),
    );
    let b = h.open(config(), 2);
    assert!(
        matches!(
            b.fatal(),
            Some(tidewal_core::FatalError::ProtocolViolation { .. })
        ),
        "{:?}",
        b.fatal()
    );
}

#[test]
fn a_newer_manifest_after_the_probes_falls_back() {
    let mut h = Harness::new();
    two_writers(&mut h);
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Position(150),
        until: Some(151),
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let mut positions = Vec::new();
    let mut wrote_newer = false;
    for _ in 0..10_000 {
        let d = drain(&mut r);
        for e in d.events {
            if let ReadEvent::Records { position, .. } = e {
                positions.push(position);
            }
        }
        if d.done {
            break;
        }
        for req in d.requests {
            // The last step of the shortcut: a LIST of manifests after the one read. A
            // newer writer claims just before it (its fences may be garbage now).
            let probe = matches!(&req.op, Op::List { prefix, after: Some(_) } if prefix.ends_with("manifest/"));
            if probe && !wrote_newer {
                wrote_newer = true;
                let current = "t/manifest/00000000000000000002.json";
                let mut m = Manifest::decode(h.store.object(current).unwrap()).unwrap();
                m.version += 1;
                m.epoch += 1;
                h.store
                    .overwrite("t/manifest/00000000000000000003.json", m.encode());
            }
            let resp = h.store.execute(&req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    assert!(wrote_newer);
    assert_eq!(r.start_path(), StartPath::Fallback);
    assert_eq!(positions, [150]);
}
