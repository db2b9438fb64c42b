//! Restore with no I/O (PROTOCOL.md §4 "Restore"): one manifest version whose generations
//! hold exactly the entries below the point (the straddling generation rewritten under a new
//! name), the cursor and `dropped_before` unchanged, the files left out retired; a restore to
//! a version brings back its entries and keeps what came after its cursor; refusals write
//! nothing.

mod harness;

use std::time::Duration;

use harness::*;

use tidewal_core::{
    Change, CompactionConfig, Event, History, Machine, Op, Output, Response, RestoreError,
    RestoreTarget, Restored, StoreError, StoreErrorKind, WriterConfig,
};

/// The wall clock of the writers that stamp times (unix ms at the harness's origin).
const ORIGIN: u64 = 1_700_000_000_000;

/// No background compaction (generations stay as flushed), many versions kept, a long grace.
fn restoring() -> WriterConfig {
    WriterConfig {
        keep_manifests: 32,
        compaction: Some(CompactionConfig {
            enabled: false,
            grace: Duration::from_secs(3600),
            ..CompactionConfig::default()
        }),
        ..config()
    }
}

/// `n` generations of `per` entries each (one flush each), 10 ms apart, settled.
fn flush_generations(h: &mut Harness, d: &mut Driven, n: u64, per: u64) {
    for g in 0..n {
        for i in 0..per {
            h.now += Duration::from_millis(10);
            d.append(h, rec(g * 100 + i));
            h.settle(d);
        }
        d.w.flush_memtable(h.now).unwrap();
        d.collect();
        h.settle(d);
    }
}

fn restored(d: &Driven) -> Option<&Result<Restored, RestoreError>> {
    d.events.iter().rev().find_map(|e| match e {
        Event::Restored(r) => Some(r),
        _ => None,
    })
}

fn positions(h: &mut Harness) -> Vec<u64> {
    h.read_all().unwrap().iter().map(|(p, _)| *p).collect()
}

/// Restores `d` to `target` and settles; the answer.
fn restore(
    h: &mut Harness,
    d: &mut Driven,
    target: RestoreTarget,
) -> Result<Restored, RestoreError> {
    d.events.clear();
    d.w.restore(target, h.now)?;
    d.collect();
    h.settle(d);
    restored(d).cloned().expect("answered")
}

fn history(h: &mut Harness) -> Vec<(u64, Change)> {
    let mut m = History::new("t");
    for _ in 0..1000 {
        match m.poll_output() {
            Output::Request(req) => {
                let resp = h.store.execute(&req.op);
                m.handle_response(req.id, resp, h.now);
            }
            Output::Event(Ok(history)) => {
                return history
                    .versions
                    .iter()
                    .map(|v| (v.version, v.change))
                    .collect()
            }
            Output::Event(Err(e)) => panic!("history failed: {e}"),
            _ => panic!("history stuck"),
        }
    }
    panic!("history did not finish");
}

#[test]
fn a_restore_to_a_position_inside_a_generation_keeps_exactly_the_entries_below_it() {
    let mut h = Harness::new();
    let mut w = h.open(restoring(), 1);
    // Positions 4..7, 7..10, 10..13 (fence at 0, window 4).
    flush_generations(&mut h, &mut w, 3, 3);
    let before = h.newest_manifest();
    assert_eq!(positions(&mut h), (4..13).collect::<Vec<_>>());
    let done = restore(&mut h, &mut w, RestoreTarget::Position(8)).unwrap();
    let m = h.newest_manifest();
    assert_eq!(
        done,
        Restored {
            to: 8,
            version: m.version,
            from_version: before.version,
            as_of_version: None,
            generations_kept: 1,
            generations_rewritten: 1,
            generations_copied: 0,
            generations_retired: 2,
            rows: 4,
        }
    );
    assert_eq!(m.version, before.version + 1);
    assert_eq!(m.replay_cursor, before.replay_cursor, "the cursor stays");
    assert_eq!(m.dropped_before, before.dropped_before);
    let r = m.restored.as_ref().expect("the version says it restored");
    assert_eq!((r.to, r.from_version, r.version), (8, before.version, None));
    // The first generation as it was, then the second's entries below 8 in a new file.
    assert_eq!(m.generations[0], before.generations[0]);
    let rewritten = &m.generations[1];
    assert_eq!(
        (
            rewritten.first_position,
            rewritten.last_position,
            rewritten.entries
        ),
        (7, 7, 1)
    );
    assert_eq!(rewritten.id, before.generations[1].id);
    assert!(
        rewritten
            .path
            .ends_with(&format!("-r{:020}.arrow", m.version)),
        "{}",
        rewritten.path
    );
    assert!(h.store.object(&rewritten.path).is_some());
    // The files left out are retired by this version, and still there for older readers.
    let retired: Vec<(&str, u64)> = m
        .retired
        .iter()
        .map(|r| (r.path.as_str(), r.version))
        .collect();
    assert_eq!(
        retired,
        vec![
            (before.generations[1].path.as_str(), m.version),
            (before.generations[2].path.as_str(), m.version)
        ]
    );
    assert!(h.store.object(&before.generations[2].path).is_some());
    assert_eq!(positions(&mut h), vec![4, 5, 6, 7]);
    assert_eq!(history(&mut h).last(), Some(&(m.version, Change::Restore)));
    // New entries land past the cursor; the next commit carries no `restored`.
    w.append(&h, rec(77));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert_eq!(h.newest_manifest().restored, None);
    assert_eq!(positions(&mut h), vec![4, 5, 6, 7, 13]);
    // A start inside what the restore left out is not refused: it reports from the cursor on.
    let cfg = tidewal_core::ReaderConfig {
        prefix: "t".into(),
        from: tidewal_core::Start::Position(9),
        ..tidewal_core::ReaderConfig::default()
    };
    let mut r = tidewal_core::Reader::new(cfg, codec(), 5, h.now);
    let (read, _) = read_to_end(&mut r, &mut h.store, h.now, 1000);
    assert_eq!(read, vec![13]);
    // A new writer (a reopen) reads the same log.
    let mut again = h.open(restoring(), 2);
    assert!(again.ready() && again.fatal().is_none());
    assert_eq!(positions(&mut h), vec![4, 5, 6, 7, 13]);
    let _ = &mut again;
}

#[test]
fn a_restore_to_a_time_keeps_every_entry_at_or_before_it() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        unix_ms_at_origin: Some(ORIGIN),
        ..restoring()
    };
    let mut w = h.open(cfg, 1);
    // Times ORIGIN + 10, 20, ... 90 ms at positions 4..13.
    flush_generations(&mut h, &mut w, 3, 3);
    let before = h.newest_manifest();
    // Only the first of the log's entries has a time at or before 15: the point is 5.
    let done = restore(&mut h, &mut w, RestoreTarget::Time(ORIGIN + 15)).unwrap();
    assert_eq!((done.to, done.generations_rewritten), (5, 1));
    assert_eq!(positions(&mut h), vec![4]);
    let m = h.newest_manifest();
    assert_eq!(m.replay_cursor, before.replay_cursor);
    assert_eq!(m.generations.len(), 1);
    assert_eq!(m.generations[0].max_time, Some(ORIGIN + 10));
}

#[test]
fn a_restore_to_a_time_at_a_generation_boundary_rewrites_nothing() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        unix_ms_at_origin: Some(ORIGIN),
        ..restoring()
    };
    let mut w = h.open(cfg, 1);
    flush_generations(&mut h, &mut w, 3, 3);
    // Entries at 10..=60 ms: the third generation starts with 70.
    let done = restore(&mut h, &mut w, RestoreTarget::Time(ORIGIN + 65)).unwrap();
    assert_eq!(
        (done.to, done.generations_kept, done.generations_rewritten),
        (10, 2, 0)
    );
    assert_eq!(positions(&mut h), (4..10).collect::<Vec<_>>());
}

#[test]
fn a_time_before_the_first_entry_is_refused_and_writes_nothing() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        unix_ms_at_origin: Some(ORIGIN),
        ..restoring()
    };
    let mut w = h.open(cfg, 1);
    flush_generations(&mut h, &mut w, 2, 2);
    let objects: Vec<String> = h.store.paths().map(String::from).collect();
    assert_eq!(
        restore(&mut h, &mut w, RestoreTarget::Time(ORIGIN + 5)),
        Err(RestoreError::NothingAtOrBefore { time: ORIGIN + 5 })
    );
    let now: Vec<String> = h.store.paths().map(String::from).collect();
    assert_eq!(now, objects, "nothing written");
    // The writer goes on: a later restore works.
    assert!(restore(&mut h, &mut w, RestoreTarget::Time(ORIGIN + 15)).is_ok());
    assert_eq!(positions(&mut h), vec![4]);
}

#[test]
fn a_restore_to_a_version_brings_its_entries_back_and_keeps_what_came_after() {
    let mut h = Harness::new();
    let mut w = h.open(restoring(), 1);
    flush_generations(&mut h, &mut w, 3, 3);
    let v = h.newest_manifest();
    let done = restore(&mut h, &mut w, RestoreTarget::Position(6)).unwrap();
    assert_eq!(positions(&mut h), vec![4, 5]);
    // Appended after the restore: positions 13 and 14, in a new generation.
    w.append(&h, rec(500));
    w.append(&h, rec(501));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert_eq!(positions(&mut h), vec![4, 5, 13, 14]);
    // Undo: the version below the restore.
    let undo = restore(&mut h, &mut w, RestoreTarget::Version(done.version - 1)).unwrap();
    assert_eq!(done.version - 1, v.version);
    let m = h.newest_manifest();
    assert_eq!(
        (undo.to, undo.as_of_version, undo.generations_copied),
        (v.replay_cursor, Some(v.version), 3)
    );
    let mut expected: Vec<u64> = (4..13).collect();
    expected.extend([13, 14]);
    assert_eq!(positions(&mut h), expected);
    let r = m.restored.as_ref().unwrap();
    assert_eq!(
        (r.to, r.from_version, r.version),
        (v.replay_cursor, m.version - 1, Some(v.version))
    );
    // The version's files are copied, never listed again by their (retired) paths.
    for g in &v.generations {
        assert!(m.generations.iter().all(|n| n.path != g.path), "{}", g.path);
    }
    let records: Vec<_> = m.generations[..3]
        .iter()
        .map(|g| (g.id, g.first_position, g.last_position, &g.crc32c))
        .collect();
    let theirs: Vec<_> = v
        .generations
        .iter()
        .map(|g| (g.id, g.first_position, g.last_position, &g.crc32c))
        .collect();
    assert_eq!(records, theirs);
    assert_eq!(m.replay_cursor, 15);
    // Every file the undo left out is retired by it; the ones it lists are not.
    for g in &m.generations {
        assert!(m.retired.iter().all(|r| r.path != g.path), "{}", g.path);
    }
    assert!(m
        .retired
        .iter()
        .any(|r| r.version == m.version && r.path.contains("-r")));
}

#[test]
fn refusals_are_typed_and_write_nothing() {
    let mut h = Harness::new();
    let wal_only = WriterConfig {
        wal_only: true,
        ..config()
    };
    let mut w = h.open(wal_only, 1);
    w.append(&h, rec(1));
    h.settle(&mut w);
    assert_eq!(
        w.w.restore(RestoreTarget::Position(0), h.now),
        Err(RestoreError::WrongMode)
    );
    drop(w);

    let mut h = Harness::new();
    let mut w = h.open(restoring(), 1);
    flush_generations(&mut h, &mut w, 2, 2);
    let m = h.newest_manifest();
    assert_eq!(
        w.w.restore(RestoreTarget::Position(m.replay_cursor + 1), h.now),
        Err(RestoreError::OutOfRange {
            requested: m.replay_cursor + 1,
            min: 0,
            max: m.replay_cursor
        })
    );
    assert_eq!(
        w.w.restore(RestoreTarget::Version(m.version + 1), h.now),
        Err(RestoreError::NoSuchVersion {
            version: m.version + 1,
            newest: m.version
        })
    );
    assert_eq!(
        w.w.restore(RestoreTarget::Version(0), h.now),
        Err(RestoreError::NoSuchVersion {
            version: 0,
            newest: m.version
        })
    );
    // Durable but not in a generation: flush first.
    w.append(&h, rec(9));
    h.settle(&mut w);
    let objects = h.store.paths().count();
    assert!(matches!(
        w.w.restore(RestoreTarget::Position(4), h.now),
        Err(RestoreError::Unflushed { bytes }) if bytes > 0
    ));
    w.collect();
    assert!(w.held.is_empty(), "nothing sent: {:?}", w.held);
    assert_eq!(h.store.paths().count(), objects);
    // A second restore while one runs is busy.
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    w.w.restore(RestoreTarget::Position(5), h.now).unwrap();
    assert_eq!(
        w.w.restore(RestoreTarget::Position(5), h.now),
        Err(RestoreError::Busy)
    );
    w.collect();
    h.settle(&mut w);
    assert!(matches!(restored(&w), Some(Ok(_))));
}

#[test]
fn a_version_no_longer_kept_is_refused() {
    let mut h = Harness::new();
    // No clock: versions are kept by count only.
    let cfg = WriterConfig {
        keep_manifests: 2,
        ..restoring()
    };
    let mut w = h.open(cfg, 1);
    flush_generations(&mut h, &mut w, 4, 1);
    assert!(h
        .store
        .object("t/manifest/00000000000000000001.json")
        .is_none());
    let objects: Vec<String> = h.store.paths().map(String::from).collect();
    let oldest = h
        .store
        .paths()
        .filter_map(|p| p.strip_prefix("t/manifest/"))
        .filter_map(|n| n.strip_suffix(".json")?.parse::<u64>().ok())
        .min()
        .unwrap();
    assert_eq!(
        restore(&mut h, &mut w, RestoreTarget::Version(1)),
        Err(RestoreError::VersionNotKept {
            version: 1,
            oldest_kept: oldest
        })
    );
    let now: Vec<String> = h.store.paths().map(String::from).collect();
    assert_eq!(now, objects, "nothing written");
}

/// A lost answer: the store did what was asked, the writer hears a timeout.
fn unknown() -> Response {
    Response::Put(Err(StoreError::new(StoreErrorKind::Unknown, "timeout")))
}

#[test]
fn unknown_put_outcomes_of_the_rewritten_file_and_the_commit_are_read_back() {
    let mut h = Harness::new();
    let mut w = h.open(restoring(), 1);
    flush_generations(&mut h, &mut w, 2, 3);
    let before = h.newest_manifest();
    w.w.restore(RestoreTarget::Position(5), h.now).unwrap();
    w.collect();
    let is_rewrite = |op: &Op| matches!(op, Op::Put { path, .. } if path.contains("-r"));
    // The source generation's GET.
    while w.find(is_rewrite).is_none() {
        h.execute(&mut w, 0);
    }
    // The first put is lost on its way (never landed): read back absent, put again later.
    let i = w.find(is_rewrite).unwrap();
    h.answer(&mut w, i, unknown());
    let get = w.find(|op| matches!(op, Op::Get { path } if path.contains("-r")));
    h.execute(&mut w, get.expect("read back"));
    while w.find(is_rewrite).is_none() {
        assert!(w.held.is_empty(), "{:?}", w.held);
        let at = deadline(&mut w.w).expect("a backoff");
        h.now = h.now.max(at);
        w.w.handle_timeout(h.now);
        w.collect();
    }
    // The second lands but its answer is lost: read back, ours.
    let i = w.find(is_rewrite).unwrap();
    let req = w.held.remove(i).unwrap();
    h.store.execute(&req.op);
    w.w.handle_response(req.id, unknown(), h.now);
    w.collect();
    let is_commit = |op: &Op| matches!(op, Op::Put { path, .. } if path.contains("/manifest/"));
    while w.find(is_commit).is_none() {
        h.execute(&mut w, 0);
    }
    // The commit fails on its way (never landed): read back absent, put again later.
    let i = w.find(is_commit).unwrap();
    h.answer(&mut w, i, unknown());
    let get = w.find(|op| matches!(op, Op::Get { path } if path.contains("/manifest/")));
    h.execute(&mut w, get.expect("read back"));
    assert_eq!(
        h.newest_manifest().version,
        before.version,
        "not committed yet"
    );
    while w.find(is_commit).is_none() {
        assert!(w.held.is_empty(), "{:?}", w.held);
        let at = deadline(&mut w.w).expect("a backoff");
        h.now = h.now.max(at);
        w.w.handle_timeout(h.now);
        w.collect();
    }
    assert!(restored(&w).is_none(), "not answered before it lands");
    // Then it lands, its answer lost: read back, ours, post-checked, answered.
    let i = w.find(is_commit).unwrap();
    let req = w.held.remove(i).unwrap();
    h.store.execute(&req.op);
    w.w.handle_response(req.id, unknown(), h.now);
    w.collect();
    h.settle(&mut w);
    assert!(w.fatal().is_none(), "{:?}", w.fatal());
    let done = restored(&w).cloned().expect("answered").unwrap();
    assert_eq!(done.version, before.version + 1);
    assert_eq!(positions(&mut h), vec![4]);
}

#[test]
fn a_restore_waits_for_a_running_compaction_and_none_starts_meanwhile() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        compaction: Some(CompactionConfig {
            enabled: false,
            grace: Duration::from_secs(3600),
            ..CompactionConfig::default()
        }),
        ..restoring()
    };
    let mut w = h.open(cfg, 1);
    flush_generations(&mut h, &mut w, 3, 2);
    // A full pass starts merging; the restore is asked for while its GETs are out.
    w.w.compact(h.now).unwrap();
    w.collect();
    assert!(w.find(|op| matches!(op, Op::Get { .. })).is_some());
    w.w.restore(RestoreTarget::Position(5), h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let done = restored(&w).cloned().expect("answered").unwrap();
    assert_eq!(positions(&mut h), vec![4]);
    // The compaction committed first (not dropped), and the restore rewrote the merged
    // generation it planned on.
    assert_eq!(w.w.stats().compactions, 1);
    assert_eq!(done.generations_rewritten, 1);
    let m = h.newest_manifest();
    assert!(m.retired.iter().any(|r| r.version == m.version
        && r.path.ends_with(".arrow")
        && r.path.matches('-').count() == 2));
    assert!(w
        .events
        .iter()
        .any(|e| matches!(e, Event::CompactionPass { .. })));
}

#[test]
fn a_generation_frozen_before_the_restore_commits_first_and_counts() {
    let mut h = Harness::new();
    let mut w = h.open(restoring(), 1);
    flush_generations(&mut h, &mut w, 2, 2);
    // Position 8 is durable and frozen, its generation's put still out.
    w.append(&h, rec(8));
    h.settle(&mut w);
    assert_eq!(w.w.flush_memtable(h.now), Ok(Some(2)));
    w.collect();
    assert_eq!(h.newest_manifest().replay_cursor, 8);
    // Its entry counts as the log's end...
    assert_eq!(
        w.w.restore(RestoreTarget::Position(10), h.now),
        Err(RestoreError::OutOfRange {
            requested: 10,
            min: 0,
            max: 9
        })
    );
    w.w.restore(RestoreTarget::Position(5), h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let done = restored(&w).cloned().expect("answered").unwrap();
    // ...and its generation committed before the restore, which left it out.
    assert_eq!(
        (done.generations_rewritten, done.generations_retired),
        (1, 3)
    );
    let m = h.newest_manifest();
    assert_eq!(m.replay_cursor, 9);
    assert_eq!(positions(&mut h), vec![4]);
}

#[test]
fn a_run_merged_again_after_an_undo_never_relists_a_retired_file() {
    let mut h = Harness::new();
    // Files go as soon as no kept version names them.
    let cfg = WriterConfig {
        keep_manifests: 2,
        compaction: Some(CompactionConfig {
            enabled: false,
            grace: Duration::ZERO,
            ..CompactionConfig::default()
        }),
        ..config()
    };
    let mut w = h.open(cfg, 1);
    flush_generations(&mut h, &mut w, 2, 2);
    let v = h.newest_manifest().version;
    // Merged into this epoch's `..-0000000000-0000000001.arrow`, the inputs retired.
    w.w.compact(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let merged = h.newest_manifest().generations[0].path.clone();
    // Undo the merge (a restore to the version before it): the inputs come back as copies
    // with their ids, the merged file is retired.
    let undo = restore(&mut h, &mut w, RestoreTarget::Version(v));
    assert!(undo.is_ok(), "{undo:?}");
    // A second pass would pick the same run, named like the retired file: it must not
    // list that name again (GC deletes it).
    w.w.compact(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    for _ in 0..3 {
        w.append(&h, rec(900));
        h.settle(&mut w);
        w.w.flush_memtable(h.now).unwrap();
        w.collect();
        h.settle(&mut w);
    }
    let m = h.newest_manifest();
    assert!(
        m.generations.iter().all(|g| g.path != merged) || h.store.object(&merged).is_some(),
        "{merged} listed and deleted"
    );
    assert!(w.fatal().is_none(), "{:?}", w.fatal());
    assert_eq!(positions(&mut h), vec![4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn entries_after_a_restore_are_stamped_past_every_time_it_left_out() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        unix_ms_at_origin: Some(ORIGIN),
        ..restoring()
    };
    let mut w = h.open(cfg.clone(), 1);
    flush_generations(&mut h, &mut w, 3, 3);
    restore(&mut h, &mut w, RestoreTarget::Time(ORIGIN + 15)).unwrap();
    let m = h.newest_manifest();
    assert_eq!(m.time_floor, Some(ORIGIN + 90), "the newest time it held");
    drop(w);
    // A writer whose clock lags far behind: its entries still come after every time an undo
    // could bring back, so times never decrease along the log.
    let behind = WriterConfig {
        unix_ms_at_origin: Some(ORIGIN - 60_000),
        ..cfg
    };
    let mut w = h.open(behind, 2);
    w.append(&h, rec(1000));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let m = h.newest_manifest();
    assert_eq!(m.time_floor, Some(ORIGIN + 90), "later commits keep it");
    let newest = m.generations.last().unwrap();
    assert!(
        newest.min_time >= Some(ORIGIN + 90),
        "{:?}",
        newest.min_time
    );
}

#[test]
fn a_corrupt_or_missing_source_is_a_typed_refusal_that_writes_nothing() {
    let mut h = Harness::new();
    let mut w = h.open(restoring(), 1);
    flush_generations(&mut h, &mut w, 2, 3);
    let m = h.newest_manifest();
    let victim = m.generations[0].path.clone();
    let good = h.store.object(&victim).unwrap().clone();
    let mut bad = good.to_vec();
    bad[3] ^= 1;
    h.store.tamper(&victim, bad.into());
    let objects: Vec<String> = h.store.paths().map(String::from).collect();
    match restore(&mut h, &mut w, RestoreTarget::Position(5)) {
        Err(RestoreError::Corrupt { path, reason }) => {
            assert_eq!(path, victim);
            assert!(
                !reason.contains(&victim),
                "the path is not repeated: {reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(w.fatal().is_none(), "the writer goes on");
    let now: Vec<String> = h.store.paths().map(String::from).collect();
    assert_eq!(now, objects, "nothing written");
    // Gone: the version's generation was collected.
    h.store.execute(&Op::Delete {
        path: victim.clone(),
    });
    assert_eq!(
        restore(&mut h, &mut w, RestoreTarget::Position(5)),
        Err(RestoreError::GenerationCollected {
            version: m.version,
            path: victim.clone()
        })
    );
    h.store.overwrite(&victim, good);
    assert!(restore(&mut h, &mut w, RestoreTarget::Position(5)).is_ok());
    assert_eq!(positions(&mut h), vec![4]);
}
