//! Manifest history: GC keeps versions by count and by age; readers as of a version and
//! until a time (PROTOCOL.md §4 "GC", §5 "As of a version", "Until a time").

mod harness;

use std::time::Duration;

use harness::*;
use tidewal_core::{
    FatalError, Machine, Manifest, MemStore, Op, ReadEvent, Reader, ReaderConfig, Response, Start,
    StoreError, StoreErrorKind, WriterConfig,
};

const HOUR: Duration = Duration::from_secs(3600);

fn versions(store: &MemStore) -> Vec<u64> {
    store
        .paths()
        .filter_map(|p| {
            p.strip_prefix("t/manifest/")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect()
}

fn manifest(store: &MemStore, version: u64) -> Manifest {
    let path = format!("t/manifest/{version:020}.json");
    Manifest::decode(store.object(&path).expect("the version is kept")).unwrap()
}

/// Appends `n` records from `first` (10 ms apart) and flushes them into a generation.
fn flush_batch(h: &mut Harness, d: &mut Driven, first: u64, n: u64) {
    for i in first..first + n {
        d.append(h, rec(i));
        h.settle(d);
        h.now += Duration::from_millis(10);
    }
    d.w.flush_memtable(h.now).unwrap();
    d.collect();
    h.settle(d);
}

/// Runs a reader to its end: the positions it reported, where it caught up, its error, and
/// every request it sent.
fn run(h: &mut Harness, cfg: ReaderConfig) -> (Vec<u64>, Option<u64>, Option<FatalError>, Vec<Op>) {
    let mut r = Reader::new(cfg, codec(), 5, h.now);
    let (mut positions, mut caught_up, mut ops) = (Vec::new(), None, Vec::new());
    for _ in 0..10_000 {
        let d = drain(&mut r);
        for e in d.events {
            r.release(e.bytes());
            match e {
                ReadEvent::Records { position, .. } => positions.push(position),
                ReadEvent::CaughtUp { position } => caught_up = Some(position),
                ReadEvent::Fatal(f) => return (positions, caught_up, Some(f), ops),
                _ => {}
            }
        }
        if d.done {
            return (positions, caught_up, None, ops);
        }
        if d.requests.is_empty() {
            let at = d.wake.expect("a reader with nothing out waits for a timer");
            h.now = h.now.max(at);
            r.handle_timeout(h.now);
        }
        for req in d.requests {
            ops.push(req.op.clone());
            let resp = h.store.execute(&req.op);
            r.handle_response(req.id, resp, h.now);
        }
    }
    panic!("reader did not finish");
}

fn as_of(version: u64) -> ReaderConfig {
    ReaderConfig {
        prefix: "t".into(),
        as_of_version: Some(version),
        // Ignored: a version does not grow.
        follow: true,
        ..ReaderConfig::default()
    }
}

/// A writer with a wall clock. No compaction: these tests count the versions flushes commit.
fn timed(origin: u64) -> WriterConfig {
    WriterConfig {
        unix_ms_at_origin: Some(origin),
        compaction: None,
        ..config()
    }
}

#[test]
fn each_commit_records_its_time_never_below_the_version_before() {
    let mut h = Harness::new();
    let mut a = Harness::writer_with(&mut h, codec(), timed(1_000_000));
    h.settle(&mut a);
    flush_batch(&mut h, &mut a, 0, 2);
    let ats: Vec<Option<u64>> = versions(&h.store)
        .into_iter()
        .map(|v| manifest(&h.store, v).committed_at)
        .collect();
    assert!(ats.iter().all(Option::is_some), "{ats:?}");
    assert!(ats.windows(2).all(|w| w[0] <= w[1]), "{ats:?}");
    // A writer whose clock is far behind claims at the newest time, not its own.
    let newest = ats.last().unwrap().unwrap();
    let mut b = Harness::writer_with(&mut h, codec(), timed(5));
    h.settle(&mut b);
    let claim = *versions(&h.store).last().unwrap();
    assert_eq!(manifest(&h.store, claim).committed_at, Some(newest));
    // Without a clock: none.
    let mut c = h.open(config(), 3);
    h.settle(&mut c);
    let claim = *versions(&h.store).last().unwrap();
    assert_eq!(manifest(&h.store, claim).committed_at, None);
}

#[test]
fn gc_keeps_versions_younger_than_the_age_past_the_count() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        keep_manifests: 1,
        keep_manifests_for: HOUR,
        ..timed(1_000_000)
    };
    let mut a = Harness::writer_with(&mut h, codec(), cfg);
    h.settle(&mut a);
    for b in 0..3 {
        flush_batch(&mut h, &mut a, b * 2, 2);
    }
    // Four commits (the creation, which claims, and three flushes) within the hour: all kept.
    assert_eq!(versions(&h.store), [1, 2, 3, 4]);
    h.now += HOUR;
    flush_batch(&mut h, &mut a, 6, 1);
    // An hour on, only the count keeps: the newest.
    assert_eq!(versions(&h.store), [5]);
}

/// Runs `d` until it holds a GET of a manifest version: (that version, the request's index).
fn next_version_read(h: &mut Harness, d: &mut Driven) -> (u64, usize) {
    let version = |op: &Op| match op {
        Op::Get { path } => path
            .strip_prefix("t/manifest/")?
            .strip_suffix(".json")?
            .parse()
            .ok(),
        _ => None,
    };
    for _ in 0..10_000 {
        if let Some(i) = d.find(|op| version(op).is_some()) {
            return (version(&d.held[i].op).unwrap(), i);
        }
        if d.held.is_empty() {
            assert!(h.fire_next_timer(d), "the writer waits for nothing");
        } else {
            h.execute(d, 0);
        }
    }
    panic!("no read of a manifest version");
}

#[test]
fn a_takeover_before_the_versions_age_reads_their_times_and_collects_the_aged() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        keep_manifests: 1,
        keep_manifests_for: HOUR,
        ..timed(1_000_000)
    };
    // Versions 1..=5 now (the creation and four flushes).
    let mut a = Harness::writer_with(&mut h, codec(), cfg.clone());
    h.settle(&mut a);
    for b in 0..4 {
        flush_batch(&mut h, &mut a, b * 2, 2);
    }
    drop(a);
    assert_eq!(versions(&h.store), [1, 2, 3, 4, 5]);
    // 59 minutes on, a takeover claims 6 and dies: 1..=5 are young as far as it knows.
    h.now += HOUR - Duration::from_secs(60);
    let b = h.open(cfg.clone(), 2);
    drop(b);
    assert_eq!(versions(&h.store), [1, 2, 3, 4, 5, 6]);
    // Two minutes later a third writer lists 1..=6 and reads 6 (young): the versions it only
    // listed are kept by that bound alone, so it reads the middle of them, 3, first.
    h.now += Duration::from_secs(120);
    let mut c = h.writer(cfg.clone(), 3);
    let (newest, open_read) = next_version_read(&mut h, &mut c);
    assert_eq!(newest, 6);
    h.execute(&mut c, open_read);
    let (middle, second) = next_version_read(&mut h, &mut c);
    assert_eq!(middle, 3);
    // Its first answer is lost: retried, nothing decided on it.
    h.answer(
        &mut c,
        second,
        Response::Get(Err(StoreError::new(StoreErrorKind::Unknown, "lost"))),
    );
    let (retried, at) = next_version_read(&mut h, &mut c);
    assert_eq!(retried, 3);
    h.execute(&mut c, at);
    // 3 was old: 1..=3 go, and the run left, 4 and 5, is halved at 5 (old too).
    let (next, at) = next_version_read(&mut h, &mut c);
    assert_eq!(next, 5);
    h.execute(&mut c, at);
    h.settle(&mut c);
    assert!(c.fatal().is_none(), "{:?}", c.fatal());
    // 6 is young, 7 is the count: log2 of the run's 5 versions, 2 reads (and a retry).
    assert_eq!(versions(&h.store), [6, 7]);
    assert_eq!(c.w.stats().gc_failures, 0);
    // Every record is still read.
    assert_eq!(h.read_all().unwrap().len(), 8);
}

#[test]
fn without_a_clock_gc_keeps_by_count_only() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        keep_manifests: 2,
        keep_manifests_for: HOUR,
        ..config()
    };
    let mut a = h.open(cfg, 1);
    for b in 0..3 {
        flush_batch(&mut h, &mut a, b * 2, 2);
    }
    assert_eq!(versions(&h.store), [3, 4]);
}

/// Two generations (versions 2 and 3), then two entries in the WAL only.
fn two_flushes_and_a_tail(h: &mut Harness) -> (Manifest, Manifest) {
    let mut a = h.open(config(), 1);
    flush_batch(h, &mut a, 0, 3);
    flush_batch(h, &mut a, 3, 3);
    for i in 6..8 {
        a.append(h, rec(i));
        h.settle(&mut a);
    }
    (manifest(&h.store, 2), manifest(&h.store, 3))
}

#[test]
fn a_reader_as_of_a_version_reads_exactly_its_generations_and_no_wal() {
    let mut h = Harness::new();
    let (v2, v3) = two_flushes_and_a_tail(&mut h);
    assert_eq!(v2.generations.len(), 1);
    assert_eq!(v3.generations.len(), 2);
    let all = h.read_all().unwrap();
    let below = |cursor| -> Vec<u64> {
        all.iter()
            .map(|(p, _)| *p)
            .filter(|&p| p < cursor)
            .collect()
    };
    for m in [&v2, &v3] {
        let (got, end, err, ops) = run(&mut h, as_of(m.version));
        assert_eq!(err, None);
        assert_eq!(got, below(m.replay_cursor), "as of v{}", m.version);
        assert_eq!(end, Some(m.replay_cursor));
        assert!(
            ops.iter()
                .all(|op| !matches!(op, Op::Get { path } if path.contains("/wal/"))),
            "as of v{} walked the WAL: {ops:?}",
            m.version
        );
        assert!(ops.iter().all(|op| !matches!(op, Op::List { .. })));
    }
    // Combined with a start and an end.
    let start = v3.generations[1].first_position + 1;
    let cfg = ReaderConfig {
        from: Start::Position(start),
        until: Some(v3.replay_cursor - 1),
        ..as_of(3)
    };
    let (got, end, _, _) = run(&mut h, cfg);
    let want: Vec<u64> = below(v3.replay_cursor - 1)
        .into_iter()
        .filter(|&p| p >= start)
        .collect();
    assert_eq!(got, want);
    assert_eq!(end, Some(v3.replay_cursor - 1));
}

#[test]
fn a_version_collected_or_never_committed_is_a_typed_error() {
    let mut h = Harness::new();
    let cfg = WriterConfig {
        keep_manifests: 2,
        ..config()
    };
    let mut a = h.open(cfg, 1);
    for b in 0..3 {
        flush_batch(&mut h, &mut a, b * 2, 2);
    }
    assert_eq!(versions(&h.store), [3, 4]);
    let (got, _, err, _) = run(&mut h, as_of(2));
    assert!(got.is_empty());
    assert_eq!(
        err,
        Some(FatalError::VersionNotKept {
            version: 2,
            oldest_kept: Some(3)
        })
    );
    let (_, _, err, _) = run(&mut h, as_of(9));
    assert_eq!(
        err,
        Some(FatalError::NoSuchVersion {
            version: 9,
            newest: Some(4)
        })
    );
    let (_, _, err, ops) = run(&mut h, as_of(0));
    assert_eq!(
        err,
        Some(FatalError::NoSuchVersion {
            version: 0,
            newest: None
        })
    );
    assert!(ops.is_empty());
}

#[test]
fn a_generation_of_the_version_gone_is_a_typed_error_not_a_skip() {
    let mut h = Harness::new();
    let (v2, _) = two_flushes_and_a_tail(&mut h);
    let path = v2.generations[0].path.clone();
    h.store.execute(&Op::Delete { path: path.clone() });
    let (got, _, err, _) = run(&mut h, as_of(2));
    assert!(got.is_empty());
    assert_eq!(
        err,
        Some(FatalError::GenerationCollected { version: 2, path })
    );
}

/// Ten timed entries 10 ms apart flushed into a generation, two more in the WAL: every data
/// entry's (position, time).
fn timed_log(h: &mut Harness) -> Vec<(u64, u64)> {
    let mut a = Harness::writer_with(h, codec(), timed(1_000_000));
    h.settle(&mut a);
    flush_batch(h, &mut a, 0, 10);
    for i in 10..12 {
        a.append(h, rec(i));
        h.settle(&mut a);
        h.now += Duration::from_millis(10);
    }
    let positions: Vec<u64> = h.read_all().unwrap().iter().map(|(p, _)| *p).collect();
    assert_eq!(positions.len(), 12);
    // Sealed at once (interval 0), 10 ms apart from the origin on.
    let first = manifest(&h.store, 2).generations[0].min_time.unwrap();
    positions
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, first + 10 * i as u64))
        .collect()
}

fn until_time(t: u64, follow: bool) -> ReaderConfig {
    ReaderConfig {
        prefix: "t".into(),
        until_time: Some(t),
        follow,
        ..ReaderConfig::default()
    }
}

#[test]
fn a_reader_until_a_time_stops_at_the_first_entry_past_it() {
    let mut h = Harness::new();
    let entries = timed_log(&mut h);
    // Inside the generation, exactly at an entry's time, and in the WAL; following or not.
    for k in [0, 4, 9, 10] {
        for follow in [false, true] {
            let (p_k, t_k) = entries[k];
            let (got, end, err, _) = run(&mut h, until_time(t_k, follow));
            assert_eq!(err, None);
            let want: Vec<u64> = entries[..=k].iter().map(|e| e.0).collect();
            assert_eq!(got, want, "until {t_k} (entry {k} at {p_k})");
            assert_eq!(end, Some(entries[k + 1].0));
        }
    }
    // Just before the next entry's time: the same stop (a stop a millisecond late would
    // report that entry).
    for k in [3, 10] {
        let (got, end, _, _) = run(&mut h, until_time(entries[k + 1].1 - 1, true));
        assert_eq!(got, entries[..=k].iter().map(|e| e.0).collect::<Vec<_>>());
        assert_eq!(end, Some(entries[k + 1].0));
    }
    // Past the last entry: everything, then the log's end.
    let (got, _, _, _) = run(&mut h, until_time(entries[11].1 + 5, false));
    assert_eq!(got.len(), 12);
}

#[test]
fn a_time_before_the_first_entry_reads_no_generation() {
    let mut h = Harness::new();
    let entries = timed_log(&mut h);
    let (got, end, err, ops) = run(&mut h, until_time(entries[0].1 - 1, false));
    assert_eq!((got, err), (Vec::new(), None));
    assert_eq!(end, Some(entries[0].0));
    assert!(
        ops.iter().all(|op| !matches!(op, Op::Get { path } | Op::GetRange { path, .. } if path.contains("/gen/"))),
        "{ops:?}"
    );
    // Combined with a start at a time.
    let cfg = ReaderConfig {
        from: Start::Time(entries[3].1),
        ..until_time(entries[6].1, false)
    };
    let (got, _, _, _) = run(&mut h, cfg);
    let want: Vec<u64> = entries[3..=6].iter().map(|e| e.0).collect();
    assert_eq!(got, want);
}
