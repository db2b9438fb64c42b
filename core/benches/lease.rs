//! What the writer lease costs (PROTOCOL.md §4 "The writer lease"): a writer driven for one
//! hour of virtual time against an in-memory store whose answers take 20 ms, idle (nothing
//! appended after open) and active (an append every 100 ms), with the default lease (30 s).
//! Prints the LISTs and renewals per hour. No real I/O, no sleeping.
//!
//! `cargo bench -p tidewal-core --bench lease`

use std::collections::BTreeMap;
use std::time::Duration;

use tidewal_core::{Machine, MemStore, Output, RawCodec, Record, Request, Writer, WriterConfig};

const HOUR: Duration = Duration::from_secs(3600);
const LATENCY: Duration = Duration::from_millis(20);

/// Runs a writer for an hour, appending every `every` (none if `None`); returns
/// (LISTs, renewals, acks held, appends) counted after open.
fn hour(every: Option<Duration>) -> (u64, u64, u64, u64) {
    let cfg = WriterConfig {
        prefix: "bench".into(),
        ..WriterConfig::default()
    };
    let mut store = MemStore::new();
    let mut w = Writer::new(cfg, Box::new(RawCodec::new("s")), 1, Duration::ZERO).unwrap();
    // Requests in flight, by the time their answer arrives.
    let mut flight: BTreeMap<(Duration, u64), Request> = BTreeMap::new();
    let (mut now, mut seq) = (Duration::ZERO, 0u64);
    let mut base = None;
    let mut next_append = every;
    let mut appends = 0u64;
    loop {
        let wake = loop {
            match w.poll_output() {
                Output::Request(r) => {
                    seq += 1;
                    flight.insert((now + LATENCY, seq), r);
                }
                Output::Event(_) => {}
                Output::Wait(at) => break at,
                Output::Done => return (0, 0, 0, 0),
            }
        };
        if base.is_none() && w.epoch() > 0 && flight.is_empty() {
            base = Some(w.stats());
        }
        let answer = flight.keys().next().map(|k| k.0);
        let at = [answer, wake, next_append.filter(|_| base.is_some())]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(HOUR);
        if at >= HOUR && base.is_some() {
            break;
        }
        now = now.max(at);
        if answer == Some(at) {
            let (_, r) = flight.pop_first().unwrap();
            let resp = store.execute(&r.op);
            w.handle_response(r.id, resp, now);
        } else if next_append == Some(at) && base.is_some() {
            w.append(Record::new(appends.to_le_bytes().to_vec(), 1), now)
                .unwrap();
            appends += 1;
            next_append = every.map(|e| at + e);
        } else {
            w.handle_timeout(now);
        }
    }
    let (b, s) = (base.unwrap(), w.stats());
    (
        s.io.lists - b.io.lists,
        s.lease_renewals - b.lease_renewals,
        s.acks_held - b.acks_held,
        appends,
    )
}

fn main() {
    println!("writer lease L = 30 s, store latency 20 ms, one hour of virtual time:");
    let (lists, renewals, held, _) = hour(None);
    println!("  idle writer:   {lists} LISTs/hour ({renewals} renewals, {held} acks held)");
    let (lists, renewals, held, appends) = hour(Some(Duration::from_millis(100)));
    println!(
        "  active writer: {lists} LISTs/hour ({renewals} renewals, {held} acks held) for {appends} appends"
    );
    let (lists, renewals, held, appends) = hour(Some(Duration::from_secs(60)));
    println!(
        "  an append a minute: {lists} LISTs/hour ({renewals} renewals, {held} acks held) for {appends} appends"
    );
}
