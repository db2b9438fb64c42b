//! Compaction with no I/O (PROTOCOL.md §4 "Compaction", §5 "Generation gone"): the merged
//! generation holds exactly the inputs' entries, a retired file waits for its grace and for
//! the versions that name it, and a reader that meets a generation gone mid-way continues
//! exactly where it was.

mod harness;

use std::time::Duration;

use harness::*;

use tidewal_core::Codec as _;
use tidewal_core::{
    CompactionConfig, Event, Machine, Manifest, Op, PositionedRecords, ReadEvent, Reader,
    ReaderConfig, Start, WriterConfig,
};

/// Merges every two tiny generations (tier base 1 byte, fanout 2), with `grace`.
fn compacting(grace: Duration, keep_manifests: u32) -> WriterConfig {
    WriterConfig {
        keep_manifests,
        compaction: Some(CompactionConfig {
            enabled: true,
            fanout: 2,
            tier_base: 1 << 20,
            target_bytes: 1 << 20,
            grace,
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

fn entries_of(h: &Harness, path: &str) -> Vec<PositionedRecords> {
    let body = h
        .store
        .object(path)
        .expect("generation in the store")
        .clone();
    codec().decode_generation(body).unwrap().entries
}

#[test]
fn a_merged_generation_holds_exactly_the_inputs_entries_and_every_reader_path_reads_it() {
    let mut h = Harness::new();
    // Retired files stay (a long grace), so the inputs can be compared with the merge.
    let mut w = h.open(compacting(Duration::from_secs(3600), 8), 1);
    flush_generations(&mut h, &mut w, 2, 3);
    let m = h.newest_manifest();
    assert_eq!(m.generations.len(), 1, "two tier-0 generations merged");
    assert_eq!(m.retired.len(), 2);
    let merged = &m.generations[0];
    assert!(
        merged.path.ends_with("-0000000000-0000000001.arrow"),
        "{}",
        merged.path
    );
    let inputs: Vec<PositionedRecords> = m
        .retired
        .iter()
        .flat_map(|r| entries_of(&h, &r.path))
        .collect();
    assert_eq!(entries_of(&h, &merged.path), inputs);
    assert_eq!((merged.first_position, merged.last_position), (4, 9));
    assert_eq!((merged.entries, merged.records), (6, 6));
    assert!(merged.index.is_some());
    assert!(w.events.iter().any(|e| matches!(
        e,
        Event::Compacted {
            generation: 0,
            replaced: 2,
            ..
        }
    )));
    let stats = w.w.stats();
    assert_eq!((stats.compactions, stats.generations_compacted), (1, 2));
    assert_eq!(stats.generations_live, 1);
    // The cursor did not move for it, and every start reads it: whole, and from inside.
    let all: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(all, (4..=9).collect::<Vec<_>>());
    let cfg = ReaderConfig {
        prefix: "t".into(),
        from: Start::Position(7),
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let (positions, ops) = read_to_end(&mut r, &mut h.store, h.now, 1000);
    assert_eq!(positions, vec![7, 8, 9]);
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::GetRange { path, .. } if *path == merged.path)));
}

/// Runs the writer's requests, holding those `hold` picks, until only they are left.
fn run_but(h: &mut Harness, w: &mut Driven, hold: impl Fn(&Op) -> bool) {
    while let Some(i) = w.find(|op| !hold(op)) {
        h.execute(w, i);
    }
}

fn is_manifest_delete(op: &Op) -> bool {
    matches!(op, Op::Delete { path } if path.contains("manifest/"))
}

fn is_gen_delete(op: &Op) -> bool {
    matches!(op, Op::Delete { path } if path.contains("/gen/"))
}

#[test]
fn a_retired_file_is_deleted_only_once_no_kept_version_names_it() {
    let mut h = Harness::new();
    let grace = Duration::from_secs(10);
    // Two versions kept: the one before the compaction's still names its inputs.
    let mut w = h.open(compacting(grace, 2), 1);
    flush_generations(&mut h, &mut w, 2, 1);
    let m = h.newest_manifest();
    assert_eq!((m.generations.len(), m.retired.len()), (1, 2));
    let kept = Manifest::decode(
        h.store
            .object(&format!("t/manifest/{:020}.json", m.version - 1))
            .expect("the version before is kept"),
    )
    .unwrap();
    assert!(kept.generations.iter().any(|g| g.path == m.retired[0].path));
    // Past the grace, still there: a kept version names them.
    h.now += grace * 2;
    w.w.handle_timeout(h.now);
    w.collect();
    h.settle(&mut w);
    for r in &m.retired {
        assert!(
            h.store.object(&r.path).is_some(),
            "{} deleted early",
            r.path
        );
    }
    // The next commit collects that version; until its delete is confirmed, nothing goes.
    w.append(&h, rec(7));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    run_but(&mut h, &mut w, |op| {
        is_manifest_delete(op) || is_gen_delete(op)
    });
    assert!(w.find(is_manifest_delete).is_some());
    h.now += grace * 2;
    w.w.handle_timeout(h.now);
    w.collect();
    assert!(
        w.find(is_gen_delete).is_none(),
        "deleted before its version's delete landed"
    );
    // Confirmed: the grace passed long ago, so they go at once.
    run_but(&mut h, &mut w, is_gen_delete);
    let due: Vec<String> = w
        .held
        .iter()
        .filter_map(|r| match &r.op {
            Op::Delete { path } if path.contains("/gen/") => Some(path.clone()),
            _ => None,
        })
        .collect();
    for r in &m.retired {
        assert!(due.contains(&r.path), "{} not deleted: {due:?}", r.path);
    }
    h.settle(&mut w);
    for r in &m.retired {
        assert!(h.store.object(&r.path).is_none(), "{} deleted", r.path);
    }
    assert!(w.w.stats().bytes_reclaimed >= m.retired.iter().map(|r| r.bytes).sum::<u64>());
    // A later commit drops their records.
    w.append(&h, rec(9));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    let now_retired = h.newest_manifest().retired;
    assert!(
        m.retired.iter().all(|r| !now_retired.contains(r)),
        "{now_retired:?}"
    );
}

#[test]
fn a_retired_file_waits_for_its_grace() {
    let mut h = Harness::new();
    let grace = Duration::from_secs(10);
    // One version kept: only the grace holds the files back.
    let mut w = h.open(compacting(grace, 1), 1);
    flush_generations(&mut h, &mut w, 1, 1);
    w.append(&h, rec(5));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    // Every request, no timer: the compaction commits, the older versions go.
    run_but(&mut h, &mut w, |_| false);
    let m = h.newest_manifest();
    assert_eq!(m.retired.len(), 2);
    assert_eq!(
        h.store.paths().filter(|p| p.contains("manifest/")).count(),
        1
    );
    for r in &m.retired {
        assert!(
            h.store.object(&r.path).is_some(),
            "{} deleted within the grace",
            r.path
        );
    }
    let wake = deadline(&mut w.w).expect("a timer for the grace");
    assert_eq!(wake, h.now + grace);
    h.now = wake;
    w.w.handle_timeout(h.now);
    w.collect();
    h.settle(&mut w);
    for r in &m.retired {
        assert!(
            h.store.object(&r.path).is_none(),
            "{} kept past the grace",
            r.path
        );
    }
}

#[test]
fn a_reader_that_meets_a_generation_gone_mid_way_continues_exactly() {
    let mut h = Harness::new();
    // No background compaction: the test chooses when the full pass runs.
    let cfg = WriterConfig {
        compaction: Some(CompactionConfig {
            enabled: false,
            grace: Duration::ZERO,
            ..CompactionConfig::default()
        }),
        keep_manifests: 1,
        ..config()
    };
    let mut w = h.open(cfg, 1);
    flush_generations(&mut h, &mut w, 3, 4);
    let m = h.newest_manifest();
    assert_eq!(m.generations.len(), 3);
    let expected: Vec<u64> =
        (m.generations[0].first_position..=m.generations[2].last_position).collect();
    // A reader bound to one record at a time reads the first generation from inside (its
    // runs): let it report five entries, the second generation's first among them.
    let rcfg = ReaderConfig {
        prefix: "t".into(),
        read_ahead_bytes: 1,
        ..ReaderConfig::default()
    };
    let mut r = Reader::new(rcfg, codec(), 5, h.now);
    let mut got = Vec::new();
    let mut pending = Vec::new();
    while got.len() < 5 {
        let d = drain(&mut r);
        for e in d.events {
            r.release(e.bytes());
            if let ReadEvent::Records { position, .. } = e {
                got.push(position);
            }
        }
        pending.extend(d.requests);
        if got.len() >= 5 {
            break;
        }
        if pending.is_empty() {
            continue; // the releases above let it ask for more
        }
        let req = pending.remove(0);
        let resp = h.store.execute(&req.op);
        r.handle_response(req.id, resp, h.now);
    }
    // Meanwhile the owner merges all three and deletes them (no grace, one version kept).
    w.w.compact(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    assert!(w.events.iter().any(|e| matches!(
        e,
        Event::CompactionPass {
            runs: 1,
            replaced: 3,
            generations: 1
        }
    )));
    for g in &m.generations {
        assert!(h.store.object(&g.path).is_none(), "{} deleted", g.path);
    }
    // The reader's next GET of the old files meets NotFound: it re-reads the manifest and
    // continues inside the merged one, from the first entry it has not reported.
    for req in pending {
        let resp = h.store.execute(&req.op);
        r.handle_response(req.id, resp, h.now);
    }
    let mut ops = Vec::new();
    for _ in 0..10_000 {
        let d = drain(&mut r);
        let released = !d.events.is_empty();
        for e in d.events {
            r.release(e.bytes());
            match e {
                ReadEvent::Records { position, .. } => got.push(position),
                ReadEvent::Fatal(f) => panic!("reader failed: {f}"),
                _ => {}
            }
        }
        if d.done {
            break;
        }
        assert!(released || !d.requests.is_empty(), "reader stuck");
        for req in d.requests {
            ops.push(req.op.clone());
            let resp = h.store.execute(&req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    assert!(r.is_done());
    assert_eq!(got, expected, "every entry once, in order");
    assert!(r.generations_gone() >= 1);
    let merged = &h.newest_manifest().generations[0].path;
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::GetRange { path, .. } if path == merged)));
}

#[test]
fn a_gone_generation_without_a_newer_manifest_is_corrupt() {
    let mut h = Harness::new();
    let mut w = h.open(config(), 1);
    flush_generations(&mut h, &mut w, 1, 2);
    let g = h.newest_manifest().generations[0].path.clone();
    h.store.execute(&Op::Delete { path: g.clone() });
    match h.read_all() {
        Err(tidewal_core::FatalError::Corrupt { path, .. }) => assert_eq!(path, g),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_compaction_that_meets_a_generation_gone_stops_until_the_manifest_moves() {
    let mut h = Harness::new();
    let mut w = h.open(compacting(Duration::from_secs(3600), 8), 1);
    flush_generations(&mut h, &mut w, 1, 1);
    w.append(&h, rec(5));
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    // Everything up to the compaction's GETs; then the first generation vanishes.
    run_but(
        &mut h,
        &mut w,
        |op| matches!(op, Op::Get { path } if path.contains("/gen/")),
    );
    let first = h.newest_manifest().generations[0].path.clone();
    h.store.execute(&Op::Delete { path: first });
    h.settle(&mut w);
    let gets = |w: &Driven| w.w.stats().io.gets;
    let before = gets(&w);
    // Idle: no GET loop over the missing file.
    w.w.handle_timeout(h.now);
    w.collect();
    h.settle(&mut w);
    assert_eq!(gets(&w), before);
    assert_eq!(w.w.stats().compactions_dropped, 1);
    assert!(w.fatal().is_none());
    assert_eq!(h.newest_manifest().generations.len(), 2, "nothing merged");
}

#[test]
fn a_corrupt_generation_stops_compaction_not_the_writer() {
    let mut h = Harness::new();
    let mut w = h.open(compacting(Duration::from_secs(3600), 8), 1);
    flush_generations(&mut h, &mut w, 1, 2);
    // Bit rot in the first generation: the next flush's compaction reads it.
    let first = h.newest_manifest().generations[0].path.clone();
    let mut rotten = h.store.object(&first).unwrap().to_vec();
    let mid = rotten.len() / 2;
    rotten[mid] ^= 0xff;
    h.store.overwrite(&first, rotten.into());
    flush_generations(&mut h, &mut w, 1, 2);
    let stats = w.w.stats();
    assert_eq!(stats.compactions_failed, 1);
    assert!(
        matches!(&stats.compaction_error, Some(tidewal_core::FatalError::Corrupt { path, .. }) if *path == first),
        "{:?}",
        stats.compaction_error
    );
    assert!(w.fatal().is_none(), "the writer goes on: {:?}", w.fatal());
    // Appends and flushes go on; no compaction reads the run again.
    flush_generations(&mut h, &mut w, 2, 1);
    assert_eq!(h.newest_manifest().generations.len(), 4, "nothing merged");
    assert_eq!(w.w.stats().compactions_failed, 1);
    assert_eq!(w.durable().len(), 6);
}
