//! Writer transitions, misuse and bad input, with no I/O.

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::*;
use tidewal_core::{
    AppendError, AppendId, CommandError, Event, FatalError, GroupCommit, Op, RawCodec, Record,
    Response, StoreError, StoreErrorKind, Writer, WriterConfig,
};
use tidewal_core::{Codec, Machine};

#[test]
fn opening_an_empty_store_creates_the_log_and_fences_slot_zero() {
    let mut h = Harness::new();
    let d = h.open(config(), 1);
    assert_eq!(
        d.events,
        vec![Event::Ready {
            epoch: 1,
            fence_position: 0,
            first_position: 4,
            replayed_entries: 0,
            replayed_records: 0
        }]
    );
    assert!(h
        .store
        .object("t/manifest/00000000000000000001.json")
        .is_some());
    assert!(h
        .store
        .object("t/wal/00000000000000000000.arrows")
        .is_some());
}

#[test]
fn puts_are_pipelined_and_acks_follow_position_order() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    for i in 0..6 {
        d.append(&h, rec(i));
    }
    // Depth 4: four puts in flight, two waiting.
    assert_eq!(d.held.len(), 4);
    assert_eq!(d.w.stats().entries_in_flight, 4);
    // Complete positions 7, 5, 6 first: nothing is acknowledged before 4.
    for target in [7u64, 5, 6] {
        let i = d
            .find(|op| matches!(op, Op::Put { path, .. } if path.ends_with(&format!("{target:020}.arrows"))))
            .unwrap();
        h.execute(&mut d, i);
    }
    assert!(d.durable().is_empty());
    let i = d.find(is_wal_put).unwrap();
    h.execute(&mut d, i); // position 4
    assert_eq!(d.durable(), vec![(0, 4), (1, 5), (2, 6), (3, 7)]);
    h.settle(&mut d);
    assert_eq!(d.durable().last(), Some(&(5, 9)));
}

#[test]
fn group_commit_by_count_bytes_interval_and_flush() {
    let mut cfg = config();
    cfg.group_commit = GroupCommit {
        max_bytes: 20,
        max_records: 3,
        interval: Duration::from_millis(10),
    };
    let mut h = Harness::new();
    let mut d = h.open(cfg, 1);
    // Bytes: the third 8-byte record would pass 20 bytes, so the first two are sealed.
    for i in 0..3 {
        d.append(&h, rec(i));
    }
    assert_eq!(d.held.len(), 1, "one entry of two records in flight");
    // The third waits for the interval.
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(1, 4), (2, 5)], "bytes, then interval");
    // Interval: one record waits for the timer.
    d.append(&h, rec(9));
    assert!(d.held.is_empty());
    // The group commit timer (no retry is pending: nothing failed).
    let at = deadline(&mut d.w).unwrap();
    assert_eq!(at, h.now + Duration::from_millis(10));
    h.settle(&mut d);
    assert_eq!(d.durable().last(), Some(&(3, 6)));
    // Explicit flush seals at once.
    d.append(&h, rec(10));
    assert_eq!(d.w.flush(h.now).unwrap(), Some(AppendId(4)));
    d.collect();
    assert_eq!(d.held.len(), 1);
}

#[test]
fn appends_queued_behind_a_full_window_share_one_entry() {
    let mut cfg = config();
    cfg.max_in_flight = 2;
    cfg.group_commit = GroupCommit {
        max_bytes: 1 << 20,
        max_records: 3,
        interval: Duration::ZERO,
    };
    let mut h = Harness::new();
    let mut d = h.open(cfg, 1);
    // Two slots: the first two appends go out at once, one entry each.
    for i in 0..2 {
        d.append(&h, rec(i));
    }
    assert_eq!(d.held.len(), 2);
    // The window is full: the next appends wait together, up to max_records (3), then the
    // fourth starts another batch. No timer is due while they wait (a host must not spin).
    for i in 2..6 {
        d.append(&h, rec(i));
    }
    assert_eq!(d.held.len(), 2);
    // The only timer is the lease renewal of an active writer, L / 3 after its fence check.
    let lease = d.w.manifest().and_then(|m| m.lease_ms).unwrap();
    assert_eq!(
        deadline(&mut d.w),
        Some(h.now + Duration::from_millis(lease) / 3)
    );
    // A free slot takes the first waiting batch (appends 2..=4), the next takes append 5.
    h.execute(&mut d, 0);
    assert_eq!(d.held.len(), 2);
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(0, 4), (1, 5), (4, 6), (5, 7)]);
    let entries = h.read_all().unwrap();
    let sizes: Vec<usize> = entries.iter().map(|(_, r)| r.len()).collect();
    assert_eq!(sizes, vec![1, 1, 3, 1]);
}

#[test]
fn group_commit_by_count() {
    let mut cfg = config();
    cfg.group_commit = GroupCommit {
        max_bytes: 1 << 20,
        max_records: 3,
        interval: Duration::from_secs(60),
    };
    let mut h = Harness::new();
    let mut d = h.open(cfg, 1);
    for i in 0..3 {
        d.append(&h, rec(i));
    }
    assert_eq!(d.held.len(), 1);
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(2, 4)]);
}

#[test]
fn bad_appends_are_refused_with_typed_errors_and_nothing_is_kept() {
    let mut cfg = config();
    cfg.max_entry_bytes = 16;
    let mut h = Harness::new();
    let mut d = h.open(cfg, 1);
    let now = h.now;
    assert_eq!(
        d.w.append(Record::new(Bytes::new(), 1), now),
        Err(AppendError::Empty)
    );
    assert_eq!(
        d.w.append(Record::new(vec![1u8], 0), now),
        Err(AppendError::ZeroRows)
    );
    assert_eq!(
        d.w.append(Record::new(vec![0u8; 17], 1), now),
        Err(AppendError::TooLarge {
            bytes: 17,
            limit: 16
        })
    );
    assert_eq!(d.w.stats().appends, 0);
    assert_eq!(
        d.w.append(rec(1), now),
        Ok(AppendId(0)),
        "ids are not used by refusals"
    );
}

#[test]
fn backpressure_refuses_past_the_budget_and_signals_writable() {
    let mut cfg = config();
    cfg.unflushed_budget = 20;
    cfg.wal_only = true;
    let mut h = Harness::new();
    let mut d = h.open(cfg, 1);
    d.append(&h, rec(1));
    d.append(&h, rec(2));
    let err = d.w.append(rec(3), h.now).unwrap_err();
    assert_eq!(
        err,
        AppendError::Backpressure {
            unflushed: 16,
            budget: 20
        }
    );
    h.settle(&mut d);
    assert!(d.events.contains(&Event::Writable));
    d.append(&h, rec(3));
}

#[test]
fn appends_after_close_fail_and_close_flushes_the_memtable() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    d.append(&h, rec(1));
    d.w.close(h.now).unwrap();
    assert_eq!(d.w.append(rec(2), h.now), Err(AppendError::Closed));
    assert_eq!(d.w.flush(h.now), Err(CommandError::Closed));
    h.settle(&mut d);
    assert_eq!(d.events.last(), Some(&Event::Closed));
    assert!(matches!(
        d.events.iter().rev().nth(1),
        Some(Event::Flushed {
            generation: 0,
            replay_cursor: 5
        })
    ));
    let log = h.read_all().unwrap();
    assert_eq!(log, vec![(4, vec![rec(1)])]);
}

#[test]
fn a_second_writer_fences_the_first_which_then_fails_every_append() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    a.append(&h, rec(1));
    h.settle(&mut a);
    let b = h.open(config(), 2);
    assert!(matches!(
        b.events[0],
        Event::Ready {
            epoch: 2,
            fence_position: 5,
            first_position: 9,
            replayed_entries: 1,
            ..
        }
    ));
    // A's next put hits B's fence: fenced, terminal.
    a.append(&h, rec(2));
    h.settle(&mut a);
    assert_eq!(a.fatal(), Some(&FatalError::Fenced { epoch: 1 }));
    assert!(matches!(
        a.w.append(rec(3), h.now),
        Err(AppendError::Failed(FatalError::Fenced { .. }))
    ));
    assert!(matches!(a.w.flush(h.now), Err(CommandError::Failed(_))));
    // Nothing A wrote after the fence is in the log.
    let log = h.read_all().unwrap();
    assert_eq!(log, vec![(4, vec![rec(1)])]);
}

#[test]
fn the_pipelining_trap_zombie_puts_land_in_the_window_and_are_never_read() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1); // fence 0, data from 4
    for i in 0..4 {
        a.append(&h, rec(i));
    }
    // Position 4 lands; 5, 6, 7 stay in flight (A is a zombie from now on).
    let i = a.find(is_wal_put).unwrap();
    h.execute(&mut a, i);
    let b = h.open(config(), 2);
    assert!(matches!(
        b.events[0],
        Event::Ready {
            fence_position: 5,
            first_position: 9,
            ..
        }
    ));
    // The zombie's puts land after the fence, in slots 6 and 7.
    while a.find(is_wal_put).is_some() {
        let i = a.find(is_wal_put).unwrap();
        h.execute(&mut a, i);
    }
    h.settle(&mut a);
    assert_eq!(a.fatal(), Some(&FatalError::Fenced { epoch: 1 }));
    assert_eq!(a.durable(), vec![(0, 4)]);
    assert!(h
        .store
        .object("t/wal/00000000000000000006.arrows")
        .is_some());
    assert_eq!(h.read_all().unwrap(), vec![(4, vec![rec(0)])]);
    // A third writer replays the same single entry.
    let c = h.open(config(), 3);
    assert!(matches!(
        c.events[0],
        Event::Ready {
            replayed_entries: 1,
            fence_position: 9,
            ..
        }
    ));
}

#[test]
fn an_ambiguous_put_that_landed_is_recognised_by_reading_back() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    d.append(&h, rec(1));
    let req = d.held.pop_front().unwrap();
    // The put lands, but the answer is lost; then object_store's retry sees AlreadyExists.
    let _ = h.store.execute(&req.op);
    d.w.handle_response(
        req.id,
        Response::Put(Err(StoreError::new(
            StoreErrorKind::AlreadyExists,
            "retried",
        ))),
        h.now,
    );
    d.collect();
    assert!(matches!(&d.held[0].op, Op::Get { .. }), "reads back");
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(0, 4)]);
    assert_eq!(h.read_all().unwrap().len(), 1);
}

#[test]
fn an_ambiguous_put_that_did_not_land_is_put_again() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    d.append(&h, rec(1));
    h.answer(
        &mut d,
        0,
        Response::Put(Err(StoreError::new(StoreErrorKind::Unknown, "timeout"))),
    );
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(0, 4)]);
    assert_eq!(h.read_all().unwrap(), vec![(4, vec![rec(1)])]);
}

#[test]
fn a_put_that_never_lands_fails_with_the_puts_error_not_the_read_backs() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    d.append(&h, rec(1));
    for _ in 0..100 {
        if d.fatal().is_some() {
            break;
        }
        if let Some(i) = d.find(is_wal_put) {
            let refused = StoreError::new(StoreErrorKind::Unknown, "disk full (put)");
            h.answer(&mut d, i, Response::Put(Err(refused)));
        } else if !d.held.is_empty() {
            h.execute(&mut d, 0); // the read-back: not found
        } else if let Some(at) = deadline(&mut d.w) {
            h.now = h.now.max(at);
            d.w.handle_timeout(h.now);
            d.collect();
        }
    }
    match d.fatal() {
        Some(tidewal_core::FatalError::Store { path, message }) => {
            assert_eq!(path, "t/wal/00000000000000000004.arrows");
            assert!(message.contains("disk full (put)"), "{message}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(d.durable().is_empty());
}

#[test]
fn unknown_ids_are_ignored_and_wrong_kinds_count_as_failures() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    d.w.handle_response(
        tidewal_core::RequestId(9_999),
        Response::Delete(Ok(())),
        h.now,
    );
    d.collect();
    assert!(d.held.is_empty() && d.fatal().is_none());
    d.append(&h, rec(1));
    // A list answer to a put: treated as unknown, resolved by reading back.
    h.answer(&mut d, 0, Response::List(Ok(vec![])));
    assert!(matches!(&d.held[0].op, Op::Get { .. }));
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(0, 4)]);
}

#[test]
fn a_store_without_create_if_absent_stops_the_writer_before_anything_is_written() {
    let mut h = Harness::new();
    let mut d = h.writer(config(), 1);
    h.execute(&mut d, 0); // list manifests
    h.answer(
        &mut d,
        0,
        Response::Put(Err(StoreError::new(
            StoreErrorKind::NotSupported,
            "no conditional put",
        ))),
    );
    assert!(
        matches!(d.fatal(), Some(FatalError::Unsupported { path, .. }) if path.contains("manifest"))
    );
    assert_eq!(h.store.paths().count(), 0);
    assert!(d.held.is_empty());
}

#[test]
fn a_different_schema_is_refused_on_open() {
    let mut h = Harness::new();
    h.open(config(), 1);
    let mut d = Harness::writer_with(&mut h, Box::new(RawCodec::new("schema-b")), config());
    h.settle(&mut d);
    assert!(
        matches!(d.fatal(), Some(FatalError::SchemaMismatch { path, .. }) if path.contains("manifest"))
    );
}

#[test]
fn a_deeper_writer_than_the_log_window_is_refused() {
    let mut h = Harness::new();
    h.open(config(), 1);
    let mut cfg = config();
    cfg.fence_window = 16;
    cfg.max_in_flight = 8;
    let d = h.open(cfg, 2);
    assert!(
        matches!(d.fatal(), Some(FatalError::ConfigConflict { reason }) if reason.contains("fence window"))
    );
    assert!(Writer::new(
        WriterConfig {
            max_in_flight: 9,
            fence_window: 8,
            ..config()
        },
        codec(),
        1,
        h.now
    )
    .is_err());
}

#[test]
fn corrupt_objects_are_reported_with_their_path() {
    // A corrupt WAL entry found during replay.
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    a.append(&h, rec(1));
    h.settle(&mut a);
    let path = "t/wal/00000000000000000004.arrows";
    let mut bad = h.store.object(path).unwrap().to_vec();
    bad[10] ^= 0x40;
    h.store.tamper(path, bad.into());
    let b = h.open(config(), 2);
    assert!(matches!(b.fatal(), Some(FatalError::Corrupt { path: p, .. }) if p == path));
    assert!(matches!(h.read_all(), Err(FatalError::Corrupt { path: p, .. }) if p == path));

    // A corrupt manifest.
    let mut h = Harness::new();
    h.open(config(), 1);
    let mpath = "t/manifest/00000000000000000001.json";
    let mut bad = h.store.object(mpath).unwrap().to_vec();
    bad[40] ^= 0x01;
    h.store.tamper(mpath, bad.into());
    let b = h.open(config(), 2);
    assert!(matches!(b.fatal(), Some(FatalError::Corrupt { path: p, .. }) if p == mpath));
}

#[test]
fn a_corrupt_generation_is_reported_by_readers() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    a.append(&h, rec(1));
    h.settle(&mut a);
    a.w.flush_memtable(h.now).unwrap();
    a.collect();
    h.settle(&mut a);
    assert!(a.events.iter().any(|e| matches!(
        e,
        Event::Flushed {
            replay_cursor: 5,
            ..
        }
    )));
    assert!(
        h.store
            .object("t/wal/00000000000000000004.arrows")
            .is_none(),
        "collected"
    );
    assert!(
        h.store
            .object("t/wal/00000000000000000000.arrows")
            .is_some(),
        "fences stay"
    );
    assert_eq!(h.read_all().unwrap(), vec![(4, vec![rec(1)])]);
    let gpath = "t/gen/0000000001-0000000000.arrow";
    let mut bad = h.store.object(gpath).unwrap().to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    h.store.tamper(gpath, bad.into());
    assert!(matches!(h.read_all(), Err(FatalError::Corrupt { path, .. }) if path == gpath));
}

#[test]
fn reopening_replays_the_memtable_and_generations_survive() {
    let mut h = Harness::new();
    let mut a = h.open(config(), 1);
    for i in 0..3 {
        a.append(&h, rec(i));
    }
    h.settle(&mut a);
    a.w.flush_memtable(h.now).unwrap();
    a.collect();
    a.append(&h, rec(3));
    h.settle(&mut a);
    let b = h.open(config(), 2);
    let replayed: Vec<u64> = b.w.memtable().map(|e| e.position).collect();
    assert_eq!(replayed, vec![7]);
    assert_eq!(b.w.manifest().unwrap().generations.len(), 1);
    let log: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(log, vec![4, 5, 6, 7]);
}

#[test]
fn a_wal_only_truncate_past_every_entry_keeps_their_newest_time_for_later_stamps() {
    const ORIGIN: u64 = 1_700_000_000_000;
    let cfg = WriterConfig {
        wal_only: true,
        unix_ms_at_origin: Some(ORIGIN),
        ..config()
    };
    let mut h = Harness::new();
    let mut a = h.open(cfg.clone(), 1);
    for i in 0..3 {
        h.now += Duration::from_millis(10);
        a.append(&h, rec(i));
        h.settle(&mut a);
    }
    let newest = ORIGIN + h.now.as_millis() as u64;
    // Past the last durable entry: everything goes.
    let end = a.durable().last().unwrap().1 + 1;
    a.w.truncate(end, false, h.now).unwrap();
    a.collect();
    h.settle(&mut a);
    assert_eq!(h.read_all().unwrap(), vec![]);
    assert_eq!(h.newest_manifest().time_floor, Some(newest));
    drop(a);
    // A writer whose clock lags a minute replays nothing, yet stamps past the floor.
    let behind = WriterConfig {
        unix_ms_at_origin: Some(ORIGIN - 60_000),
        ..cfg
    };
    let mut b = h.open(behind, 2);
    b.append(&h, rec(9));
    h.settle(&mut b);
    let (position, _) = h.read_all().unwrap()[0].clone();
    let body = h
        .store
        .object(&format!("t/wal/{position:020}.arrows"))
        .unwrap()
        .clone();
    let entry = codec().decode_entry(body).unwrap();
    assert!(entry.header.time >= Some(newest), "{:?}", entry.header.time);
}

#[test]
fn wal_only_truncates_and_refuses_memtable_commands() {
    let mut cfg = config();
    cfg.wal_only = true;
    let mut h = Harness::new();
    let mut d = h.open(cfg.clone(), 1);
    for i in 0..3 {
        d.append(&h, rec(i));
    }
    h.settle(&mut d);
    assert_eq!(d.w.flush_memtable(h.now), Err(CommandError::WrongMode));
    assert_eq!(
        d.w.truncate(99, false, h.now),
        Err(CommandError::OutOfRange {
            requested: 99,
            min: 0,
            max: 7
        })
    );
    d.w.truncate(6, false, h.now).unwrap();
    d.collect();
    h.settle(&mut d);
    assert!(d.events.contains(&Event::Truncated { replay_cursor: 6 }));
    assert_eq!(h.read_all().unwrap(), vec![(6, vec![rec(2)])]);
    assert!(h
        .store
        .object("t/wal/00000000000000000004.arrows")
        .is_none());
    // A memtable writer cannot open a WAL-only log.
    let other = h.open(config(), 2);
    assert!(matches!(
        other.fatal(),
        Some(FatalError::ConfigConflict { .. })
    ));
}

#[test]
fn appends_before_ready_are_written_after_the_fence() {
    let mut h = Harness::new();
    let mut d = h.writer(config(), 1);
    let id = d.append(&h, rec(1));
    assert_eq!(id, AppendId(0));
    h.settle(&mut d);
    assert_eq!(d.durable(), vec![(0, 4)]);
}

#[test]
fn backpressure_with_a_memtable_below_its_threshold_still_makes_room() {
    // The memtable would only freeze at 500 bytes, but the budget is 400: flushing on
    // backpressure is the only way out.
    let mut cfg = config();
    cfg.memtable_bytes = 500;
    cfg.unflushed_budget = 400;
    let mut h = Harness::new();
    let mut d = h.open(cfg, 1);
    let big = |n: u8| Record::new(vec![n; 150], 1);
    d.append(&h, big(1));
    d.append(&h, big(2));
    h.settle(&mut d);
    assert!(matches!(
        d.w.append(big(3), h.now),
        Err(AppendError::Backpressure { .. })
    ));
    d.collect();
    h.settle(&mut d);
    assert!(d.events.contains(&Event::Writable), "room made by a flush");
    assert!(d.events.iter().any(|e| matches!(e, Event::Flushed { .. })));
    d.append(&h, big(3));
}

#[test]
fn a_manifest_with_counters_near_overflow_is_corrupt() {
    let mut h = Harness::new();
    let d = h.open(config(), 1);
    let mut m = d.w.manifest().unwrap().clone();
    m.version = 2;
    m.replay_cursor = u64::MAX - 2;
    let path = "t/manifest/00000000000000000002.json";
    h.store.execute(&Op::Put {
        path: path.into(),
        body: m.encode().into(),
    });
    let d2 = h.open(config(), 2);
    assert!(matches!(d2.fatal(), Some(FatalError::Corrupt { path: p, .. }) if p == path));
}

#[test]
fn close_waits_for_collection_so_a_host_may_stop_right_after() {
    let mut h = Harness::new();
    let mut d = h.open(config(), 1);
    d.append(&h, rec(1));
    h.settle(&mut d);
    d.w.close(h.now).unwrap();
    d.collect();
    // Run until Closed, then drop whatever is still queued, as an exiting process would.
    while !d.events.contains(&Event::Closed) {
        h.execute(&mut d, 0);
    }
    assert!(
        d.held.is_empty(),
        "nothing left to execute after Closed: {:?}",
        d.held
    );
    assert!(
        h.store
            .object("t/wal/00000000000000000004.arrows")
            .is_none(),
        "collected"
    );
}

#[test]
fn a_long_replay_reports_progress_every_step_then_ready() {
    let mut cfg = config();
    cfg.max_entry_bytes = 2 << 20;
    cfg.memtable_bytes = 64 << 20;
    cfg.unflushed_budget = 64 << 20;
    let mut h = Harness::new();
    let mut a = h.open(cfg.clone(), 1);
    // Nine entries of 1 MiB: 9 MiB to replay, two steps of 4 MiB.
    for i in 0..9u8 {
        a.append(&h, Record::new(vec![i; 1 << 20], 1));
    }
    h.settle(&mut a);
    assert_eq!(a.durable().len(), 9);
    let b = h.open(cfg, 2);
    let progress: Vec<(u64, u64)> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Replaying { entries, bytes } => Some((*entries, *bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, vec![(4, 4 << 20), (8, 8 << 20)]);
    assert!(matches!(
        b.events.last(),
        Some(Event::Ready {
            replayed_entries: 9,
            ..
        })
    ));
}
