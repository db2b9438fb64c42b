//! A writer, a reader and a named consumer on one store, fed whatever the fuzzer picks: each
//! held request answered by the store, with a store error of any kind, with an ambiguous
//! `Unknown` after it landed, with made-up bodies and listings, with a lie (success, nothing
//! done) or with the wrong kind of response, in any order, between commands of every kind and
//! jumps of the clock. Whatever happens, no machine may panic: failures are typed events.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidewal_core::writer::RestoreTarget;
use tidewal_core::{
    CompactionConfig, Consumer, ConsumerConfig, Machine, MemStore, ObjectMeta, Op, Output,
    RawCodec, ReaderConfig, Record, Request, Response, RetentionPolicy, StoreError, StoreErrorKind,
    Writer, WriterConfig,
};

/// The fuzzer's bytes, read as choices; `None` once they run out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn small(&mut self) -> Option<u64> {
        let hi = u64::from(self.byte()?);
        Some(hi * 256 + u64::from(self.byte()?) % 64)
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let n = (self.byte()? as usize).min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(Bytes::copy_from_slice(taken))
    }
}

fn codec() -> Box<RawCodec> {
    Box::new(RawCodec::new(Bytes::from_static(b"s")))
}

fn error(kind: u8) -> StoreError {
    let kind = match kind % 5 {
        0 => StoreErrorKind::NotFound,
        1 => StoreErrorKind::AlreadyExists,
        2 => StoreErrorKind::NotSupported,
        3 => StoreErrorKind::InvalidRange,
        _ => StoreErrorKind::Unknown,
    };
    StoreError::new(kind, "fuzzed")
}

/// The answer the fuzzer picks for `op`.
fn answer(op: &Op, store: &mut MemStore, c: &mut Choices) -> Option<Response> {
    Some(match c.byte()? % 8 {
        0..=3 => store.execute(op),
        4 => op.failed(error(c.byte()?)),
        // Landed, answer lost.
        5 => {
            store.execute(op);
            op.failed(error(4))
        }
        // Made up: a body, a listing under the prefix, a success for nothing done.
        6 => match op {
            Op::Get { .. } | Op::GetRange { .. } => Response::Get(Ok(c.bytes()?)),
            Op::List { prefix, .. } => {
                let n = c.byte()? % 4;
                let mut items = Vec::new();
                for _ in 0..n {
                    let name = c.small()?;
                    let path = format!(
                        "{prefix}{name:020}.{}",
                        ["json", "arrows", "arrow"][name as usize % 3]
                    );
                    items.push(ObjectMeta {
                        path,
                        size: c.small()?,
                    });
                }
                Response::List(Ok(items))
            }
            Op::Put { .. } => Response::Put(Ok(())),
            Op::Delete { .. } => Response::Delete(Ok(())),
            _ => op.failed(error(4)),
        },
        // The wrong kind of answer.
        _ => match op {
            Op::List { .. } => Response::Put(Ok(())),
            _ => Response::List(Ok(Vec::new())),
        },
    })
}

enum Actor {
    Writer(Box<Writer>),
    Reader(Box<tidewal_core::Reader>),
    Consumer(Box<Consumer>),
}

impl Actor {
    /// Everything it has to say now: requests are held, events dropped (any is fine).
    fn drain(&mut self, index: usize, held: &mut Vec<(usize, Request)>) {
        for _ in 0..10_000 {
            let out = match self {
                Actor::Writer(m) => next(m.poll_output()),
                Actor::Reader(m) => next(m.poll_output()),
                Actor::Consumer(m) => next(m.poll_output()),
            };
            match out {
                Next::Request(r) => held.push((index, r)),
                Next::Event => {}
                Next::Waiting => return,
            }
        }
    }

    fn feed(&mut self, id: tidewal_core::RequestId, r: Response, now: Duration) {
        match self {
            Actor::Writer(m) => m.handle_response(id, r, now),
            Actor::Reader(m) => m.handle_response(id, r, now),
            Actor::Consumer(m) => m.handle_response(id, r, now),
        }
    }

    fn tick(&mut self, now: Duration) {
        match self {
            Actor::Writer(m) => m.handle_timeout(now),
            Actor::Reader(m) => m.handle_timeout(now),
            Actor::Consumer(m) => m.handle_timeout(now),
        }
    }
}

/// What a machine said, less the event itself.
enum Next {
    Request(Request),
    Event,
    Waiting,
}

fn next<E>(out: Output<E>) -> Next {
    match out {
        Output::Request(r) => Next::Request(r),
        Output::Event(_) => Next::Event,
        Output::Wait(_) | Output::Done => Next::Waiting,
    }
}

fn writer(actors: &mut [Actor; 3]) -> &mut Writer {
    match &mut actors[0] {
        Actor::Writer(w) => w,
        _ => unreachable!("the writer is the first actor"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Choices(data);
    let Some(shape) = c.byte() else { return };
    let cfg = WriterConfig {
        prefix: "log".into(),
        wal_only: shape & 1 == 1,
        fence_window: u32::from(shape >> 1 & 3) + 1,
        compaction: (shape & 8 == 8).then(|| CompactionConfig {
            enabled: true,
            fanout: 2,
            tier_base: 16,
            target_bytes: 4096,
            grace: Duration::from_millis(u64::from(shape >> 4) * 10),
        }),
        retention: (shape & 1 == 0 && shape & 16 == 16).then(|| RetentionPolicy {
            keep_for: Some(Duration::from_millis(50)),
            keep_bytes: Some(64),
            interval: Duration::from_millis(20),
        }),
        lease: Duration::from_millis(100),
        ..WriterConfig::default()
    };
    let cfg = WriterConfig {
        max_in_flight: cfg.fence_window,
        ..cfg
    };
    let mut now = Duration::ZERO;
    let Ok(w) = Writer::new(cfg, codec(), 1, now) else {
        return;
    };
    let reader = ReaderConfig {
        prefix: "log".into(),
        follow: shape & 32 == 32,
        poll_interval: Duration::from_millis(10),
        ..ReaderConfig::default()
    };
    let Ok(consumer) = Consumer::new(ConsumerConfig::new("log", "etl"), codec(), 3, now) else {
        return;
    };
    let mut actors = [
        Actor::Writer(Box::new(w)),
        Actor::Reader(Box::new(tidewal_core::Reader::new(reader, codec(), 2, now))),
        Actor::Consumer(Box::new(consumer)),
    ];
    let mut store = MemStore::new();
    let mut held: Vec<(usize, Request)> = Vec::new();
    for _ in 0..2_000 {
        for (i, a) in actors.iter_mut().enumerate() {
            a.drain(i, &mut held);
        }
        let Some(step) = c.byte() else { return };
        let result = match step % 16 {
            0..=6 if !held.is_empty() => {
                let Some(pick) = c.byte() else { return };
                let (who, r) = held.remove(pick as usize % held.len());
                let Some(resp) = answer(&r.op, &mut store, &mut c) else {
                    return;
                };
                actors[who].feed(r.id, resp, now);
                Ok(())
            }
            0..=7 => {
                let Some(ms) = c.byte() else { return };
                now += Duration::from_millis(u64::from(ms) * 7);
                actors.iter_mut().for_each(|a| a.tick(now));
                Ok(())
            }
            8 => {
                let Some(payload) = c.bytes() else { return };
                writer(&mut actors)
                    .append(Record::new(payload, 1 + u64::from(step >> 4)), now)
                    .map(drop)
                    .map_err(drop)
            }
            9 => writer(&mut actors).flush(now).map(drop).map_err(drop),
            10 => writer(&mut actors)
                .flush_memtable(now)
                .map(drop)
                .map_err(drop),
            11 => {
                let Some(p) = c.small() else { return };
                writer(&mut actors)
                    .drop_before(p, step & 16 == 16, now)
                    .map_err(drop)
            }
            12 => {
                let Some(p) = c.small() else { return };
                writer(&mut actors)
                    .truncate(p, step & 16 == 16, now)
                    .map_err(drop)
            }
            13 => {
                let w = writer(&mut actors);
                let compacted = w.compact(now).map_err(drop);
                compacted.and_then(|()| w.collect_garbage(now).map_err(drop))
            }
            14 => {
                let Some(p) = c.small() else { return };
                let target = match step >> 4 & 3 {
                    0 => RestoreTarget::Position(p),
                    1 => RestoreTarget::Time(1_700_000_000_000 + p),
                    _ => RestoreTarget::Version(p % 16),
                };
                writer(&mut actors).restore(target, now).map_err(drop)
            }
            _ => {
                let Some(p) = c.small() else { return };
                if let Actor::Consumer(consumer) = &mut actors[2] {
                    if step & 16 == 16 {
                        consumer.close();
                    } else {
                        let _ = consumer.commit(p);
                    }
                }
                if step & 32 == 32 {
                    let _ = writer(&mut actors).close(now);
                }
                Ok(())
            }
        };
        // A refused command is fine: it is typed, and nothing was queued.
        let _ = result;
    }
});
