//! A long-lived log stays bounded (tidewal issue 14, "Prove"): many short sessions, each
//! open → append one small record → close, through the core `Writer` on a `MemStore` in
//! virtual time, with every `COLLECTOR_EVERY`th session a long-lived one that calls
//! `collect_garbage` (its claim outlives `L * 1.1 + margin`, so it collects the fences, window
//! orphans and fence intents the short ones left: short-lived writers never collect) and stays
//! open past `keep_manifests_for`. Manifest versions need no collector: a session lives far
//! less than `keep_manifests_for`, and a writer knows the commit times of only the versions it
//! read at open or wrote, but where an unknown time is all that keeps a version, its GC reads
//! versions' times (PROTOCOL.md §4 "GC"), so every session's commits delete what aged out.
//!
//! What bounds what (PROTOCOL.md §4):
//! - live generations: the size-tiered policy, `top · (fanout - 1) + 1`, whatever the number
//!   of flushes (every session's close flushes one generation);
//! - manifest versions: `keep_manifests` by count and `keep_manifests_for` by age, applied by
//!   every session: those committed within the age window, at most `VERSIONS_PER_SESSION` a
//!   session;
//! - generation files: live ones plus retired ones waiting for the versions naming them to age
//!   out and for their grace (`grace`), so those retired within `keep_manifests_for + grace`;
//! - WAL slots below the cursor: deleted by every commit's GC; fences and fence intents (one
//!   each per session): only by a collection, so they grow by one a session between two
//!   collectors (`COLLECTOR_EVERY`) and drop back at each one;
//! - the manifest's bytes: its live generations' and its retired files' records.
//!
//! CI runs 1,000 sessions; the full run prints a row every 10,000:
//! `TIDEWAL_LIFECYCLE_SESSIONS=100000 cargo test --release -p tidewal-core --test lifecycle -- --nocapture`

mod harness;

use std::time::Duration;

use harness::*;

use tidewal_core::{CompactionConfig, Event, WriterConfig};

/// Virtual time between two sessions' starts: a session itself takes virtual milliseconds
/// (its requests are answered at once), so this is the log's idle time.
const SPACING: Duration = Duration::from_secs(1);
/// Every this many sessions, one stays open until it collected (a nightly job, a server).
const COLLECTOR_EVERY: u64 = 250;
/// A session commits its claim, its close's generation and at most one compaction: every
/// run the policy picks here is tier 0 (all files are far below `4 · tier_base`), and after a
/// merge of `fanout` tier-0 generations fewer than `fanout` are left, so no second one
/// follows (checked per session below).
const VERSIONS_PER_SESSION: u64 = 3;

fn lifecycle_config() -> WriterConfig {
    WriterConfig {
        // A wall clock, so versions are kept by age too, as a native host's are.
        unix_ms_at_origin: Some(1_700_000_000_000),
        // Shorter than the default hour and minute, so CI's run is past its warm-up; the
        // bounds below are computed from them, not from these numbers.
        keep_manifests_for: Duration::from_secs(120),
        compaction: Some(CompactionConfig {
            grace: Duration::from_secs(30),
            ..CompactionConfig::default()
        }),
        ..config()
    }
}

fn sessions() -> u64 {
    match std::env::var("TIDEWAL_LIFECYCLE_SESSIONS") {
        Ok(n) => n
            .parse()
            .expect("TIDEWAL_LIFECYCLE_SESSIONS: a number of sessions"),
        Err(_) => 1_000,
    }
}

/// Objects under the prefix, by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Census {
    manifests: u64,
    wal: u64,
    generations: u64,
    intents: u64,
    other: u64,
}

fn census(h: &Harness) -> Census {
    let mut c = Census::default();
    for p in h.store.paths() {
        let n = if p.starts_with("t/manifest/") {
            &mut c.manifests
        } else if p.starts_with("t/wal/") {
            &mut c.wal
        } else if p.starts_with("t/gen/") {
            &mut c.generations
        } else if p.starts_with("t/fences/") {
            &mut c.intents
        } else {
            &mut c.other
        };
        *n += 1;
    }
    c
}

/// Opens a writer, counting the requests it sends until it is ready.
fn open_counted(h: &mut Harness, cfg: WriterConfig, seed: u64) -> (Driven, u64) {
    let mut d = h.writer(cfg, seed);
    let mut requests = 0;
    while !d.ready() {
        assert!(d.fatal().is_none(), "open failed: {:?}", d.fatal());
        if d.held.is_empty() {
            assert!(
                h.fire_next_timer(&mut d),
                "an opening writer waits for nothing"
            );
        } else {
            h.execute(&mut d, 0);
            requests += 1;
        }
    }
    (d, requests)
}

fn close(h: &mut Harness, d: &mut Driven) {
    d.w.close(h.now).unwrap();
    d.collect();
    h.settle(d);
    assert!(d.fatal().is_none(), "{:?}", d.fatal());
    assert!(d.events.iter().any(|e| matches!(e, Event::Closed)));
}

#[test]
fn a_log_of_many_short_sessions_stays_bounded() {
    let cfg = lifecycle_config();
    let policy = cfg.compaction.clone().unwrap();
    let live_bound = u64::from(policy.top_tier()) * u64::from(policy.fanout - 1) + 1;
    // Every session's commits delete the versions out of the count that aged out (reading
    // their times where only an unknown time kept them), so those left are the count and the
    // ones committed within `keep_manifests_for`: at most `VERSIONS_PER_SESSION` a session,
    // one session every `SPACING` (and the one committing now).
    let age_window = cfg.keep_manifests_for.as_secs().div_ceil(SPACING.as_secs());
    let manifest_bound = u64::from(cfg.keep_manifests) + VERSIONS_PER_SESSION * (age_window + 2);
    // A retired file waits for every version below its retirement to be deleted (at worst
    // for the next collector) and for its grace (shorter than a collector's life): so those
    // retired since the last collector wait. In steady state a merge of `fanout` tier-0
    // generations leaves one, so the next comes `fanout - 1` flushes (sessions) later.
    let retired_bound =
        u64::from(policy.fanout) * (COLLECTOR_EVERY + 2).div_ceil(u64::from(policy.fanout - 1));
    let gen_bound = live_bound + retired_bound;
    // One fence and one intent a session since the last collector, plus the collector's own
    // and the current epoch's (not collectable: at or above the cursor's epoch).
    let fence_bound = COLLECTOR_EVERY + 2;
    // A generation's record in JSON (path, ids, positions, counts, times, index) is well under
    // 512 bytes, and so is a retired one's; the rest of the manifest under 1 KiB.
    let manifest_bytes_bound = 1024 + 512 * gen_bound as usize;
    // Warm-up: the first collector behind us.
    let warm = COLLECTOR_EVERY + 1;

    let n = sessions();
    let every = if n >= 100_000 {
        10_000
    } else {
        n.div_ceil(10).max(1)
    };
    let mut h = Harness::new();
    let mut version = 0;
    // The largest value of each column over the sessions since the row before (between two
    // collectors they grow, at each they drop), then the row's own manifests and WAL slots.
    let mut peak = [0u64; 7];
    println!("largest since the row before:");
    println!(
        "{:>8} {:>5} {:>9} {:>9} {:>5} {:>5} {:>7} {:>8} {:>9} {:>5}",
        "sessions",
        "live",
        "man_bytes",
        "manifests",
        "wal",
        "gens",
        "intents",
        "open_req",
        "now:man",
        "wal"
    );
    for i in 0..n {
        let started = h.now;
        let (mut d, open_requests) = open_counted(&mut h, cfg.clone(), i + 1);
        d.append(&h, rec(i));
        if (i + 1) % COLLECTOR_EVERY == 0 {
            d.w.collect_garbage(h.now).unwrap();
            d.collect();
            h.settle(&mut d);
            assert!(
                d.events.iter().any(|e| matches!(e, Event::Collected(_))),
                "session {i} did not collect"
            );
            // Alive past `keep_manifests_for`: its close's commit collects versions by age.
            h.now += cfg.keep_manifests_for + SPACING;
        }
        close(&mut h, &mut d);
        let m = d.w.manifest().expect("a committed manifest");
        assert!(
            m.version - version <= VERSIONS_PER_SESSION,
            "session {i} committed {} versions",
            m.version - version
        );
        version = m.version;
        let live = d.w.stats().generations_live;
        assert!(
            live <= live_bound,
            "session {i}: {live} live > {live_bound}"
        );
        let c = census(&h);
        let bytes = h.newest_manifest_bytes().len();
        if i >= warm {
            assert!(c.manifests <= manifest_bound, "session {i}: {c:?}");
            assert!(c.generations <= gen_bound, "session {i}: {c:?}");
            assert!(c.wal <= fence_bound, "session {i}: {c:?}");
            assert!(c.intents <= fence_bound, "session {i}: {c:?}");
            assert_eq!(c.other, 0, "session {i}: {c:?}");
            assert!(bytes <= manifest_bytes_bound, "session {i}: {bytes} bytes");
        }
        let row = [
            live,
            bytes as u64,
            c.manifests,
            c.wal,
            c.generations,
            c.intents,
            open_requests,
        ];
        for (p, v) in peak.iter_mut().zip(row) {
            *p = (*p).max(v);
        }
        if (i + 1) % every == 0 || i + 1 == n {
            print!("{:>8}", i + 1);
            for (p, width) in peak.iter().zip([5, 9, 9, 5, 5, 7, 8]) {
                print!(" {p:>width$}");
            }
            println!(" {:>9} {:>5}", c.manifests, c.wal);
            peak = [0; 7];
        }
        h.now = h.now.max(started + SPACING);
    }
    println!(
        "bounds: live <= {live_bound}, manifests <= {manifest_bound}, gens <= {gen_bound}, \
         wal and intents <= {fence_bound}, manifest bytes <= {manifest_bytes_bound}"
    );
    // Every acknowledged record is still read, in order.
    let read: Vec<u64> = h
        .read_all()
        .unwrap()
        .iter()
        .flat_map(|(_, records)| records.iter())
        .map(|r| u64::from_le_bytes(r.payload.to_bytes()[..8].try_into().unwrap()))
        .collect();
    assert_eq!(read, (0..n).collect::<Vec<_>>());
}
