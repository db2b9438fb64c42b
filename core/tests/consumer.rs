//! Consumer transitions with no I/O: claims that race, put outcomes read back, commits
//! refused, instances fenced, holes left by GC, names refused.

mod harness;

use std::collections::VecDeque;

use harness::*;
use tidewal_core::consumer::ConsumerVersion;
use tidewal_core::{
    Consumer, ConsumerConfig, ConsumerError, ConsumerEvent, FatalError, Machine, Op, ReadEvent,
    Request, Response, StoreError, StoreErrorKind,
};

/// A log under `t` with `n` durable entries at positions 4.. (after the first fence window).
fn log_with(n: u64) -> Harness {
    let mut h = Harness::new();
    let mut w = h.open(config(), 1);
    for i in 0..n {
        w.append(&h, rec(i));
    }
    h.settle(&mut w);
    assert_eq!(w.durable().len() as u64, n);
    h
}

struct Driven {
    c: Consumer,
    held: VecDeque<Request>,
    events: Vec<ConsumerEvent>,
}

fn consumer(h: &Harness, name: &str, seed: u64) -> Driven {
    let mut cfg = ConsumerConfig::new("t", name);
    cfg.keep_versions = 2;
    let c = Consumer::new(cfg, codec(), seed, h.now).expect("a valid name");
    let mut d = Driven {
        c,
        held: VecDeque::new(),
        events: Vec::new(),
    };
    d.collect();
    d
}

impl Driven {
    fn collect(&mut self) {
        let d = drain(&mut self.c);
        self.held.extend(d.requests);
        self.events.extend(d.events);
    }

    fn find(&self, pred: impl Fn(&Op) -> bool) -> usize {
        self.held
            .iter()
            .position(|r| pred(&r.op))
            .unwrap_or_else(|| panic!("no such request in {:?}", self.held))
    }

    fn execute(&mut self, h: &mut Harness, index: usize) -> Response {
        let req = self.held.remove(index).expect("a held request");
        let resp = h.store.execute(&req.op);
        self.c.handle_response(req.id, resp.clone(), h.now);
        self.collect();
        resp
    }

    fn answer(&mut self, h: &Harness, index: usize, resp: Response) {
        let req = self.held.remove(index).expect("a held request");
        self.c.handle_response(req.id, resp, h.now);
        self.collect();
    }

    /// Runs held requests in order and fires timers until the consumer only waits for
    /// commands.
    fn settle(&mut self, h: &mut Harness) {
        self.collect(); // after a command
        for _ in 0..10_000 {
            if !self.held.is_empty() {
                self.execute(h, 0);
            } else if let Some(at) = deadline(&mut self.c) {
                h.now = h.now.max(at);
                self.c.handle_timeout(h.now);
                self.collect();
            } else {
                return;
            }
        }
        panic!("consumer did not settle");
    }

    fn claimed(&self) -> Option<(u64, u64)> {
        self.events.iter().find_map(|e| match e {
            ConsumerEvent::Claimed { version, position } => Some((*version, *position)),
            _ => None,
        })
    }

    fn read(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ConsumerEvent::Read(ReadEvent::Records { position, .. }) => Some(*position),
                _ => None,
            })
            .collect()
    }

    fn committed(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ConsumerEvent::Committed { position, .. } => Some(*position),
                _ => None,
            })
            .collect()
    }

    fn failed_commits(&self) -> Vec<(u64, ConsumerError)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ConsumerEvent::CommitFailed { position, error } => Some((*position, error.clone())),
                _ => None,
            })
            .collect()
    }

    fn fenced(&self) -> bool {
        self.events.contains(&ConsumerEvent::Fenced)
    }
}

fn is_put(op: &Op) -> bool {
    matches!(op, Op::Put { .. })
}

fn version_of(h: &Harness, version: u64) -> Option<ConsumerVersion> {
    let path = format!("t/consumers/etl/{version:020}.json");
    let body = h.store.object(&path)?;
    Some(ConsumerVersion::decode(&path, "etl", version, body).expect("decodes"))
}

fn unknown() -> StoreError {
    StoreError::new(StoreErrorKind::Unknown, "reset")
}

#[test]
fn a_restarted_consumer_reads_only_what_follows_its_commit() {
    let mut h = log_with(5);
    let mut a = consumer(&h, "etl", 10);
    a.settle(&mut h);
    assert_eq!(a.claimed(), Some((1, 0)));
    assert_eq!(a.read(), [4, 5, 6, 7, 8]);
    a.c.commit(7).unwrap();
    a.settle(&mut h);
    assert_eq!(a.committed(), [7]);
    let v2 = version_of(&h, 2).expect("the commit's version");
    assert_eq!((v2.position, v2.nonce, v2.claim), (7, a.c.nonce(), 1));

    let mut b = consumer(&h, "etl", 11);
    b.settle(&mut h);
    assert_eq!(b.claimed(), Some((3, 7)));
    assert_eq!(b.read(), [7, 8]);
    // The older instance's next commit meets the newer claim: fenced, and for good.
    a.c.commit(9).unwrap();
    a.settle(&mut h);
    assert!(a.fenced());
    let fenced = ConsumerError::Fenced { name: "etl".into() };
    assert_eq!(a.failed_commits(), [(9, fenced.clone())]);
    assert_eq!(a.c.commit(9), Err(fenced));
    assert_eq!(version_of(&h, 3).unwrap().nonce, b.c.nonce());
    assert!(version_of(&h, 4).is_none(), "a fenced instance wrote");
}

#[test]
fn two_claims_race_and_the_loser_claims_after_the_winner() {
    let mut h = log_with(2);
    let mut a = consumer(&h, "etl", 20);
    let mut b = consumer(&h, "etl", 21);
    // Both list an empty folder, then both create version 1: b loses.
    a.execute(&mut h, 0);
    b.execute(&mut h, 0);
    a.execute(&mut h, a.find(is_put));
    let lost = b.execute(&mut h, b.find(is_put));
    assert_eq!(
        lost.into_put().unwrap_err().kind,
        StoreErrorKind::AlreadyExists
    );
    a.settle(&mut h);
    assert_eq!(a.claimed(), Some((1, 0)));
    b.settle(&mut h);
    assert_eq!(b.claimed(), Some((2, 0)));
    assert_eq!(version_of(&h, 2).unwrap().claim, 2);
}

#[test]
fn claims_that_keep_losing_end_contended() {
    let mut h = log_with(0);
    let mut cfg = ConsumerConfig::new("t", "etl");
    cfg.claim_attempts = 3;
    let c = Consumer::new(cfg, codec(), 5, h.now).unwrap();
    let mut d = Driven {
        c,
        held: VecDeque::new(),
        events: Vec::new(),
    };
    d.collect();
    let mut other = 100;
    while !d.held.is_empty() {
        // Before each of its creates lands, another instance takes the version.
        if let Some(i) = d.held.iter().position(|r| is_put(&r.op)) {
            let Op::Put { path, .. } = &d.held[i].op else {
                unreachable!()
            };
            let version: u64 = path[path.len() - 25..path.len() - 5].parse().unwrap();
            let theirs = ConsumerVersion {
                format: 1,
                name: "etl".into(),
                version,
                position: 0,
                nonce: other,
                claim: version,
            };
            other += 1;
            h.store.execute(&Op::Put {
                path: path.clone(),
                body: theirs.encode().into(),
            });
        }
        d.execute(&mut h, 0);
    }
    assert!(d
        .events
        .contains(&ConsumerEvent::Fatal(FatalError::Contended)));
    assert!(d.claimed().is_none());
}

#[test]
fn an_unknown_put_outcome_is_read_back_both_ways() {
    let mut h = log_with(3);
    let mut a = consumer(&h, "etl", 30);
    a.execute(&mut h, 0); // list
                          // The claim landed, but its answer was lost: read back, ours, claimed.
    let put = a.find(is_put);
    let req = a.held.remove(put).unwrap();
    h.store.execute(&req.op);
    a.c.handle_response(req.id, Response::Put(Err(unknown())), h.now);
    a.collect();
    a.settle(&mut h);
    assert_eq!(a.claimed(), Some((1, 0)));
    // A commit that never reached the store: read back absent, put again after a backoff.
    a.c.commit(6).unwrap();
    a.collect();
    let put = a.find(is_put);
    a.answer(&h, put, Response::Put(Err(unknown())));
    assert!(a.held.iter().any(|r| matches!(r.op, Op::Get { .. })));
    a.settle(&mut h);
    assert_eq!(a.committed(), [6]);
    assert_eq!(version_of(&h, 2).unwrap().position, 6);
    // A commit answered `AlreadyExists` although it was ours (a store retried it): durable.
    a.c.commit(7).unwrap();
    a.collect();
    let put = a.find(is_put);
    let req = a.held.remove(put).unwrap();
    h.store.execute(&req.op);
    let exists = StoreError::new(StoreErrorKind::AlreadyExists, "retried create");
    a.c.handle_response(req.id, Response::Put(Err(exists)), h.now);
    a.collect();
    a.settle(&mut h);
    assert_eq!(a.committed(), [6, 7]);
    assert!(!a.fenced());
}

#[test]
fn commits_below_or_past_what_was_delivered_are_refused() {
    let mut h = log_with(3);
    let mut a = consumer(&h, "etl", 40);
    assert_eq!(a.c.commit(0), Err(ConsumerError::NotClaimed));
    a.settle(&mut h);
    assert_eq!(a.read(), [4, 5, 6]);
    assert_eq!(
        a.c.commit(8),
        Err(ConsumerError::CommitAhead {
            requested: 8,
            delivered: 7
        })
    );
    a.c.commit(6).unwrap();
    // Below a commit still in flight: refused at once, nothing written for it.
    assert_eq!(
        a.c.commit(5),
        Err(ConsumerError::CommitBelow {
            requested: 5,
            committed: 6
        })
    );
    a.settle(&mut h);
    assert_eq!(a.committed(), [6]);
    assert_eq!(
        a.c.commit(2),
        Err(ConsumerError::CommitBelow {
            requested: 2,
            committed: 6
        })
    );
    assert!(version_of(&h, 3).is_none());
}

#[test]
fn bad_names_are_refused_by_name() {
    let h = Harness::new();
    for name in ["a/b", "", "..", "tab\t"] {
        let cfg = ConsumerConfig::new("t", name);
        match Consumer::new(cfg, codec(), 1, h.now) {
            Err(ConsumerError::InvalidName { name: n, .. }) => assert_eq!(n, name),
            Err(e) => panic!("{name:?}: {e}"),
            Ok(_) => panic!("{name:?} accepted"),
        }
    }
}

#[test]
fn a_slow_instance_that_fills_a_collected_hole_is_fenced() {
    let mut h = log_with(4);
    let mut a = consumer(&h, "etl", 50);
    a.settle(&mut h);
    // b claims v2 and commits v3..v5; with 2 kept it collects v1..v3.
    let mut b = consumer(&h, "etl", 51);
    b.settle(&mut h);
    assert_eq!(b.claimed(), Some((2, 0)));
    for p in [4, 5, 6] {
        b.c.commit(p).unwrap();
        b.settle(&mut h);
    }
    assert!(version_of(&h, 2).is_none() && version_of(&h, 3).is_none());
    assert!(version_of(&h, 5).is_some());
    // a's next version, 2, is a hole now: its create lands, its post-check fences it.
    a.c.commit(7).unwrap();
    a.settle(&mut h);
    assert_eq!(version_of(&h, 2).unwrap().nonce, a.c.nonce());
    assert!(a.fenced());
    assert!(a.committed().is_empty());
    // A new instance still starts from b's commit, the newest version.
    let mut c = consumer(&h, "etl", 52);
    c.settle(&mut h);
    assert_eq!(c.claimed(), Some((6, 6)));
}

#[test]
fn gc_keeps_the_newest_versions() {
    let mut h = log_with(6);
    let mut a = consumer(&h, "etl", 60);
    a.settle(&mut h);
    for p in 4..10 {
        a.c.commit(p).unwrap();
        a.settle(&mut h);
    }
    let present: Vec<u64> = (1..=8).filter(|&v| version_of(&h, v).is_some()).collect();
    assert_eq!(present, [6, 7]);
    a.c.close();
    let d = drain(&mut a.c);
    assert!(d.done && d.events.contains(&ConsumerEvent::Closed));
}

#[test]
fn close_answers_commits_asked_before_it() {
    let mut h = log_with(2);
    let mut a = consumer(&h, "etl", 70);
    a.settle(&mut h);
    a.c.commit(5).unwrap();
    a.c.close();
    assert_eq!(a.c.commit(6), Err(ConsumerError::Closed));
    a.collect();
    a.settle(&mut h);
    assert_eq!(a.committed(), [5]);
    assert_eq!(a.events.last(), Some(&ConsumerEvent::Closed));
}

/// Runs a one-verdict machine (inspector, lister) against the store.
fn verdict<M: Machine>(h: &mut Harness, mut m: M) -> M::Event {
    for _ in 0..1000 {
        let d = drain(&mut m);
        if let Some(e) = d.events.into_iter().next() {
            return e;
        }
        assert!(!d.requests.is_empty(), "no verdict and nothing asked");
        for r in d.requests {
            let resp = h.store.execute(&r.op);
            m.handle_response(r.id, resp, h.now);
        }
    }
    panic!("no verdict");
}

#[test]
fn the_listing_counts_what_lies_past_each_position() {
    let mut h = Harness::new();
    let mut w = h.open(config(), 1);
    for i in 0..4 {
        w.append(&h, rec(i)); // positions 4..=7
    }
    h.settle(&mut w);
    w.w.flush_memtable(h.now).unwrap();
    w.collect();
    h.settle(&mut w);
    for i in 4..6 {
        w.append(&h, rec(i)); // positions 8, 9: in the WAL above the cursor
    }
    h.settle(&mut w);
    let at = |h: &mut Harness, name: &str, p: u64, seed: u64| {
        let mut c = consumer(h, name, seed);
        c.settle(h);
        if p > 0 {
            c.c.commit(p).unwrap();
            c.settle(h);
            assert_eq!(c.committed(), [p]);
        }
    };
    at(&mut h, "all", 0, 80);
    at(&mut h, "mid", 6, 81);
    at(&mut h, "wal", 9, 82);
    at(&mut h, "end", 10, 83);
    let inspection = verdict(&mut h, tidewal_core::Inspector::new("t")).unwrap();
    let generation = inspection.manifest.clone().unwrap().generations[0].clone();
    assert_eq!(
        (generation.first_position, generation.last_position),
        (4, 7)
    );
    let slot = |p: u64| inspection.wal.iter().find(|w| w.0 == p).unwrap().1;
    let listed = verdict(
        &mut h,
        tidewal_core::ConsumerLister::new("t", inspection.clone()),
    );
    let lag: Vec<(String, u64, u64, u64)> = listed
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.position, c.lag_entries, c.lag_bytes))
        .collect();
    let (g, s8, s9) = (generation.bytes, slot(8), slot(9));
    assert_eq!(
        lag,
        [
            ("all".into(), 0, 6, g + s8 + s9),
            // Inside the generation: its entries past 6, the generation read whole.
            ("end".into(), 10, 0, 0),
            ("mid".into(), 6, 2 + 2, g + s8 + s9),
            ("wal".into(), 9, 1, s9),
        ]
    );
}

impl Driven {
    /// Runs held requests and timers `rounds` times: a consumer waiting on the log (for a
    /// drop in progress) never settles, so this is bounded.
    fn run_rounds(&mut self, h: &mut Harness, rounds: usize) {
        for _ in 0..rounds {
            if !self.held.is_empty() {
                self.execute(h, 0);
            } else if let Some(at) = deadline(&mut self.c) {
                h.now = h.now.max(at);
                self.c.handle_timeout(h.now);
                self.collect();
            }
        }
    }

    fn fatal(&self) -> Option<&FatalError> {
        self.events.iter().find_map(|e| match e {
            ConsumerEvent::Fatal(f) => Some(f),
            _ => None,
        })
    }
}

/// A log under `t` with generations at positions 4..6 and 6..8, and its writer (no
/// background compaction, so the boundaries stay).
fn log_with_generations(h: &mut Harness) -> harness::Driven {
    let cfg = tidewal_core::WriterConfig {
        compaction: Some(tidewal_core::CompactionConfig {
            enabled: false,
            ..tidewal_core::CompactionConfig::default()
        }),
        ..config()
    };
    let mut w = h.open(cfg, 1);
    for g in 0..2 {
        w.append(h, rec(g * 2));
        w.append(h, rec(g * 2 + 1));
        h.settle(&mut w);
        w.w.flush_memtable(h.now).unwrap();
        w.collect();
        h.settle(&mut w);
    }
    w
}

fn is_consumer_list(op: &Op) -> bool {
    matches!(op, Op::List { prefix, .. } if prefix == "t/consumers/")
}

/// The log of [`log_with_generations`] with a drop to 6 asked: its intent has committed and
/// its LIST of the named consumers is held.
fn drop_announced(h: &mut Harness) -> harness::Driven {
    let mut w = log_with_generations(h);
    w.w.drop_before(6, false, h.now).unwrap();
    w.collect();
    for _ in 0..1_000 {
        if w.find(is_consumer_list).is_some() {
            assert_eq!(
                h.newest_manifest().dropping.map(|d| d.to),
                Some(6),
                "the intent landed before the listing"
            );
            return w;
        }
        assert!(!w.held.is_empty(), "the writer stopped before listing");
        h.execute(&mut w, 0);
    }
    panic!("no consumer listing");
}

#[test]
fn a_consumer_the_drops_listing_missed_waits_for_the_drop_and_starts_past_it() {
    // The race the simulation found at seed 7684: a consumer created between the owner's
    // listing of the consumers and the drop's commit must not start below the drop.
    let mut h = Harness::new();
    let mut w = drop_announced(&mut h);
    // The listing finds no consumer; the drop's commit waits.
    let i = w.find(is_consumer_list).unwrap();
    h.execute(&mut w, i);
    // A consumer claims now: it sees the intent and reads nothing while it is there.
    let mut c = consumer(&h, "late", 9);
    c.run_rounds(&mut h, 200);
    assert_eq!(c.claimed(), Some((1, 0)));
    assert!(
        c.read().is_empty(),
        "read {:?} under a drop in progress",
        c.read()
    );
    h.settle(&mut w);
    let m = h.newest_manifest();
    assert_eq!((m.dropped_before, m.dropping), (6, None));
    c.run_rounds(&mut h, 200);
    assert_eq!(c.read(), vec![6, 7]);
    assert!(c.fatal().is_none(), "{:?}", c.fatal());
}

#[test]
fn a_consumer_that_claims_before_the_listing_holds_the_drop_back() {
    let mut h = Harness::new();
    let mut w = drop_announced(&mut h);
    // The consumer claims before the listing runs: the listing sees it at 0.
    let mut c = consumer(&h, "early", 9);
    c.run_rounds(&mut h, 200);
    assert_eq!(c.claimed(), Some((1, 0)));
    assert!(c.read().is_empty(), "it waits for the intent too");
    h.settle(&mut w);
    let refused = w.events.iter().find_map(|e| match e {
        tidewal_core::Event::DropRefused(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        refused,
        Some(tidewal_core::writer::DropRefusal::HeldBack(
            tidewal_core::retention::HeldBack {
                name: "early".into(),
                position: 0
            }
        ))
    );
    let m = h.newest_manifest();
    assert_eq!((m.dropped_before, m.dropping), (0, None), "nothing dropped");
    c.run_rounds(&mut h, 200);
    assert_eq!(
        c.read(),
        vec![4, 5, 6, 7],
        "from the beginning, nothing skipped"
    );
}
