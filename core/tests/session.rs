//! The session layer hosts share: replies settled by events, backpressure waits and timeouts,
//! the fence told once. Driven with no I/O against a `MemStore`.

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{codec, config, drain, rec};
use tidewal_core::{
    Ack, Error, Machine, MemStore, Reply, Session, SessionEvent, Writer, WriterConfig,
};

type Log<T> = Arc<Mutex<Vec<Result<T, Error>>>>;

/// A reply that records what it was answered with.
fn recorder<T: Send + 'static>() -> (Reply<T>, Log<T>) {
    let log: Log<T> = Arc::default();
    let sink = log.clone();
    (Box::new(move |r| sink.lock().unwrap().push(r)), log)
}

fn taken<T: Clone>(log: &Log<T>) -> Vec<Result<T, Error>> {
    log.lock().unwrap().clone()
}

/// Opens a session on `store` and runs requests until it is ready.
fn open(store: &mut MemStore, cfg: WriterConfig, seed: u64, timeout: Duration) -> Session {
    let w = Writer::new(cfg, codec(), seed, Duration::ZERO).unwrap();
    let (ready, epoch) = recorder();
    let mut s = Session::new(w, ready, timeout);
    run(&mut s, store, Duration::ZERO);
    assert!(matches!(taken(&epoch)[..], [Ok(_)]), "{:?}", taken(&epoch));
    s
}

/// Runs every request the session has, and the ones they lead to; returns its events.
fn run(s: &mut Session, store: &mut MemStore, now: Duration) -> Vec<SessionEvent> {
    let mut steps = 0;
    let mut events = Vec::new();
    loop {
        let d = drain(s);
        events.extend(d.events);
        if d.requests.is_empty() {
            return events;
        }
        for r in d.requests {
            steps += 1;
            assert!(steps < 10_000, "requests never stop: {:?}", r.op);
            let response = store.execute(&r.op);
            s.handle_response(r.id, response, now);
        }
    }
}

#[test]
fn appends_and_flushes_are_answered_once_durable_in_order() {
    let mut store = MemStore::new();
    let mut s = open(&mut store, config(), 1, Duration::from_secs(1));
    let logs: Vec<Log<Ack>> = (0..3)
        .map(|n| {
            let (reply, log) = recorder();
            s.append(vec![rec(n)], reply, Duration::from_millis(10));
            log
        })
        .collect();
    let (flush, flushed) = recorder();
    s.flush(flush, Duration::from_millis(10));
    assert!(
        logs.iter().all(|l| taken(l).is_empty()),
        "nothing is durable yet"
    );
    assert!(taken(&flushed).is_empty());
    run(&mut s, &mut store, Duration::from_millis(30));
    let acks: Vec<Ack> = logs.iter().map(|l| taken(l)[0].clone().unwrap()).collect();
    assert!(acks
        .windows(2)
        .all(|w| w[0].append < w[1].append && w[0].position < w[1].position));
    assert_eq!(taken(&flushed).len(), 1);
    assert_eq!(s.stats().ack_p50, Some(Duration::from_millis(20)));
    assert_eq!(s.stats().writer.appends, 3);
}

#[test]
fn blocked_appends_wait_in_order_then_time_out_and_deferred_flushes_follow() {
    let mut store = MemStore::new();
    let cfg = WriterConfig {
        unflushed_budget: 20,
        ..config()
    };
    let timeout = Duration::from_secs(2);
    let mut s = open(&mut store, cfg, 2, timeout);
    let t0 = Duration::from_secs(1);
    let (r0, a0) = recorder();
    let (r1, a1) = recorder();
    let (r2, a2) = recorder();
    s.append(vec![rec(0)], r0, t0);
    s.append(vec![rec(1)], r1, t0);
    // 8 + 8 + 8 bytes > 20: the third waits; the flush waits behind it.
    s.append(vec![rec(2)], r2, t0);
    let (f, flushed) = recorder();
    s.flush(f, t0);
    // The puts of the first two stay out while the deadline passes.
    let held = drain(&mut s);
    assert_eq!(held.wake.map(|at| at <= t0 + timeout), Some(true));
    s.handle_timeout(t0 + timeout);
    match &taken(&a2)[..] {
        [Err(Error::BackpressureTimeout { waited })] => assert_eq!(*waited, timeout),
        other => panic!("{other:?}"),
    }
    assert!(
        taken(&flushed).is_empty(),
        "the flush waits for the accepted appends"
    );
    for r in held.requests {
        let response = store.execute(&r.op);
        s.handle_response(r.id, response, t0 + timeout);
    }
    run(&mut s, &mut store, t0 + timeout);
    assert!(matches!(taken(&a0)[..], [Ok(_)]));
    assert!(matches!(taken(&a1)[..], [Ok(_)]));
    assert!(matches!(taken(&flushed)[..], [Ok(())]));
    assert_eq!(
        s.stats().writer.appends,
        2,
        "the timed-out append was never accepted"
    );
}

#[test]
fn a_fenced_session_fails_everything_and_tells_the_host_once() {
    let mut store = MemStore::new();
    let mut first = open(&mut store, config(), 3, Duration::from_secs(1));
    let (r, pending) = recorder();
    first.append(vec![rec(0)], r, Duration::ZERO);
    let _second = open(&mut store, config(), 4, Duration::from_secs(1));
    let told = run(&mut first, &mut store, Duration::ZERO);
    let epoch = match &taken(&pending)[..] {
        [Err(Error::Fenced { epoch })] => *epoch,
        other => panic!("{other:?}"),
    };
    assert_eq!(told, vec![SessionEvent::Fenced(Error::Fenced { epoch })]);
    assert!(drain(&mut first).events.is_empty(), "told once");
    let (c, closed) = recorder();
    first.close(c, Duration::ZERO);
    assert_eq!(taken(&closed), vec![Err(Error::Fenced { epoch })]);
}

#[test]
fn zero_row_records_are_left_out_and_an_append_of_no_rows_is_refused() {
    let mut store = MemStore::new();
    let mut s = open(&mut store, config(), 5, Duration::from_secs(1));
    let empty = tidewal_core::Record::new(vec![7u8; 8], 0);
    let (refused, nothing) = recorder();
    s.append(vec![empty.clone()], refused, Duration::ZERO);
    let (none_at_all, nothing_either) = recorder();
    s.append(Vec::new(), none_at_all, Duration::ZERO);
    for log in [&nothing, &nothing_either] {
        match &taken(log)[..] {
            [Err(Error::Invalid(why))] => assert!(why.contains("no rows"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    let (kept, acked) = recorder();
    s.append(vec![empty, rec(1)], kept, Duration::ZERO);
    run(&mut s, &mut store, Duration::ZERO);
    assert!(matches!(taken(&acked)[..], [Ok(_)]));
    assert_eq!(
        s.stats().writer.appends,
        1,
        "only the append with rows was accepted"
    );
    assert_eq!(
        s.stats().writer.appended_bytes,
        8,
        "the zero-row record was left out"
    );
}

#[test]
fn a_wal_only_truncate_is_answered_once_the_cursor_is_committed() {
    let mut store = MemStore::new();
    let cfg = WriterConfig {
        wal_only: true,
        ..config()
    };
    let mut s = open(&mut store, cfg, 6, Duration::from_secs(1));
    let acks: Vec<Log<Ack>> = (0..3)
        .map(|n| {
            let (reply, log) = recorder();
            s.append(vec![rec(n)], reply, Duration::ZERO);
            log
        })
        .collect();
    run(&mut s, &mut store, Duration::ZERO);
    let last = taken(&acks[2])[0].clone().unwrap().position;
    // Past what is durable: refused at once, nothing waits.
    let (too_far, refused) = recorder();
    s.truncate(last + 2, false, too_far, Duration::ZERO);
    assert!(
        matches!(&taken(&refused)[..], [Err(Error::Invalid(_))]),
        "{:?}",
        taken(&refused)
    );
    // Up to the last entry: answered only once the manifest holds the cursor.
    let (to_last, truncated) = recorder();
    s.truncate(last, false, to_last, Duration::ZERO);
    assert!(taken(&truncated).is_empty(), "not before the commit");
    run(&mut s, &mut store, Duration::ZERO);
    assert_eq!(taken(&truncated), vec![Ok(last)]);
    assert!(
        store
            .object(&format!("t/wal/{:020}.arrows", last - 1))
            .is_none(),
        "collected"
    );
    // At or below the cursor: answered at once with the cursor.
    let (again, at_once) = recorder();
    s.truncate(last, false, again, Duration::ZERO);
    assert_eq!(taken(&at_once), vec![Ok(last)]);
}

#[test]
fn close_drains_appends_waiting_for_room_and_refuses_what_comes_after() {
    let mut store = MemStore::new();
    let cfg = WriterConfig {
        unflushed_budget: 20,
        ..config()
    };
    let mut s = open(&mut store, cfg, 7, Duration::from_secs(5));
    let t = Duration::from_secs(1);
    let logs: Vec<Log<Ack>> = (0..3)
        .map(|n| {
            let (reply, log) = recorder();
            s.append(vec![rec(n)], reply, t);
            log
        })
        .collect();
    // The third waits for room; close is asked behind it.
    let (c, closed) = recorder();
    s.close(c, t);
    let (late, refused) = recorder();
    s.append(vec![rec(9)], late, t);
    assert!(
        matches!(taken(&refused)[..], [Err(Error::Closed)]),
        "after close: refused at once"
    );
    run(&mut s, &mut store, t);
    for log in &logs {
        assert!(
            matches!(taken(log)[..], [Ok(_)]),
            "drained, not refused: {:?}",
            taken(log)
        );
    }
    assert_eq!(taken(&closed), vec![Ok(())]);
}
