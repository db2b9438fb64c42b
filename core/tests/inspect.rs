//! Inspecting and verifying a log with no I/O: what is found, and the first bad object named.

mod harness;

use bytes::Bytes;
use harness::*;
use tidewal_core::{
    Body, FatalError, Inspection, Inspector, Machine, Op, Response, Verified, Verifier, VerifyEvent,
};

/// Runs `m` against the harness's store until it is done; its events.
fn run<M: Machine>(h: &mut Harness, m: &mut M) -> Vec<M::Event> {
    let mut events = Vec::new();
    for _ in 0..10_000 {
        let d = drain(m);
        events.extend(d.events);
        if d.done {
            return events;
        }
        assert!(!d.requests.is_empty(), "waits with nothing out");
        for r in d.requests {
            let response = h.store.execute(&r.op);
            m.handle_response(r.id, response, h.now);
        }
    }
    panic!("never done");
}

fn inspect(h: &mut Harness) -> Result<Inspection, FatalError> {
    let mut events = run(h, &mut Inspector::new("t"));
    assert_eq!(events.len(), 1, "one result");
    events.remove(0)
}

fn verify(h: &mut Harness) -> (Vec<VerifyEvent>, Result<Verified, FatalError>) {
    let inspection = inspect(h).unwrap();
    let mut v = Verifier::new("t", inspection, codec()).unwrap();
    let mut events = run(h, &mut v);
    let last = match events.pop() {
        Some(VerifyEvent::Verified(done)) => Ok(done),
        Some(VerifyEvent::Fatal(e)) => Err(e),
        other => panic!("{other:?}"),
    };
    (events, last)
}

/// A log with a generation (positions 0..=3 fence + data, flushed) and a WAL tail.
fn log_with_generation_and_tail(h: &mut Harness) {
    let mut d = h.open(config(), 1);
    for i in 0..3 {
        d.append(h, rec(i));
    }
    h.settle(&mut d);
    d.w.flush_memtable(h.now).unwrap();
    d.collect();
    h.settle(&mut d);
    d.append(h, rec(9));
    h.settle(&mut d);
    assert_eq!(d.durable().len(), 4);
}

#[test]
fn an_empty_store_has_no_log_and_cannot_be_verified() {
    let mut h = Harness::new();
    let i = inspect(&mut h).unwrap();
    assert_eq!(i.manifest, None);
    assert!(i.manifest_versions.is_empty() && i.wal.is_empty());
    assert!(matches!(
        Verifier::new("t", i, codec()),
        Err(FatalError::ConfigConflict { reason }) if reason.contains("no log under 't'")
    ));
}

#[test]
fn inspection_lists_what_the_log_holds() {
    let mut h = Harness::new();
    log_with_generation_and_tail(&mut h);
    let i = inspect(&mut h).unwrap();
    let m = i.manifest.as_ref().unwrap();
    assert_eq!(i.manifest_versions.last(), Some(&m.version));
    assert_eq!(m.generations.len(), 1);
    let positions: Vec<u64> = i.wal.iter().map(|w| w.0).collect();
    // The fence at 0 stays (fences are never collected), 4..=6 were flushed and collected,
    // 7 is the tail.
    assert_eq!((positions, m.replay_cursor), (vec![0, 7], 7));
    let tail = h.store.object("t/wal/00000000000000000007.arrows");
    assert_eq!(i.wal[1].1, tail.unwrap().len() as u64);
}

#[test]
fn verify_reads_every_object_and_counts_rows() {
    let mut h = Harness::new();
    log_with_generation_and_tail(&mut h);
    let i = inspect(&mut h).unwrap();
    let objects = i.manifest_versions.len() + 1 + i.wal.len();
    let (progress, done) = verify(&mut h);
    let done = done.unwrap();
    assert_eq!(progress.len(), objects, "one Checked per object");
    assert_eq!(done.manifests, i.manifest_versions.len());
    assert_eq!((done.generations, done.wal_entries), (1, i.wal.len()));
    assert_eq!(done.rows, 4, "3 rows in the generation, 1 in the tail");
    let bytes: u64 = progress
        .iter()
        .map(|e| match e {
            VerifyEvent::Checked { bytes, .. } => *bytes,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(done.bytes, bytes);
}

#[test]
fn verify_names_the_first_bad_object() {
    let mut h = Harness::new();
    log_with_generation_and_tail(&mut h);
    let i = inspect(&mut h).unwrap();
    let gen = i.manifest.as_ref().unwrap().generations[0].path.clone();
    let (tail, _) = *i.wal.last().unwrap();
    let tail = format!("t/wal/{tail:020}.arrows");

    // A flipped byte in the WAL tail: corrupt, named.
    let good = h.store.object(&tail).unwrap().clone();
    let mut bad = good.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    h.store.tamper(&tail, Bytes::from(bad));
    match verify(&mut h).1 {
        Err(FatalError::Corrupt { path, .. }) => assert_eq!(path, tail),
        other => panic!("{other:?}"),
    }
    h.store.tamper(&tail, good);

    // A generation whose bytes differ from the manifest's record: named before the tail.
    let mut g = h.store.object(&gen).unwrap().to_vec();
    g.push(0);
    h.store.tamper(&gen, Bytes::from(g));
    match verify(&mut h).1 {
        Err(FatalError::Corrupt { path, reason }) => {
            assert_eq!(path, gen);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stray_object_in_the_manifest_folder_is_named() {
    let mut h = Harness::new();
    log_with_generation_and_tail(&mut h);
    let stray = Op::Put {
        path: "t/manifest/notes.txt".into(),
        body: Body::from(&b"hi"[..]),
    };
    assert!(matches!(h.store.execute(&stray), Response::Put(Ok(_))));
    match inspect(&mut h) {
        Err(FatalError::Corrupt { path, reason }) => {
            assert_eq!(path, "t/manifest/notes.txt");
            assert!(reason.contains("unexpected object"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_checks_a_generations_index_against_the_manifest() {
    let mut h = Harness::new();
    log_with_generation_and_tail(&mut h);
    let i = inspect(&mut h).unwrap();
    let version = *i.manifest_versions.last().unwrap();
    let path = format!("t/manifest/{version:020}.json");
    let mut m = i.manifest.clone().unwrap();
    let gen = m.generations[0].path.clone();
    let index = m.generations[0]
        .index
        .as_mut()
        .expect("an indexed generation");
    // The whole file is intact (its size and checksum hold); the index record lies.
    index.crc32c = "00000000".into();
    h.store.tamper(&path, m.encode());
    let (_, done) = verify(&mut h);
    assert!(
        matches!(&done, Err(FatalError::Corrupt { path, reason })
            if *path == gen && reason.contains("index")),
        "{done:?}"
    );
}
