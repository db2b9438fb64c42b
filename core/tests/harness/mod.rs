//! Drives machines against a `MemStore` with no I/O: requests are held until the test lets
//! them through, so tests choose the order and the outcome of every request.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use tidewal_core::{
    Event, GroupCommit, Machine, MemStore, Op, Output, RawCodec, ReadEvent, Reader, ReaderConfig,
    Record, Request, Response, Writer, WriterConfig,
};

/// A machine's output until it waits: its requests, its events, and then when it wants
/// `handle_timeout` (`done`: it said `Done`).
pub struct Drained<E> {
    pub requests: Vec<Request>,
    pub events: Vec<E>,
    pub wake: Option<Duration>,
    pub done: bool,
}

/// Drains `m` as the `Machine` contract says, after any input.
pub fn drain<M: Machine>(m: &mut M) -> Drained<M::Event> {
    let mut d = Drained {
        requests: Vec::new(),
        events: Vec::new(),
        wake: None,
        done: false,
    };
    loop {
        match m.poll_output() {
            Output::Request(r) => d.requests.push(r),
            Output::Event(e) => d.events.push(e),
            Output::Wait(at) => {
                d.wake = at;
                return d;
            }
            Output::Done => {
                d.done = true;
                return d;
            }
        }
    }
}

/// When `m` wants `handle_timeout`, for a machine whose output was already taken.
pub fn deadline<M: Machine>(m: &mut M) -> Option<Duration>
where
    M::Event: std::fmt::Debug,
{
    let d = drain(m);
    assert!(d.requests.is_empty(), "untaken requests: {:?}", d.requests);
    assert!(d.events.is_empty(), "untaken events: {:?}", d.events);
    d.wake
}

pub fn config() -> WriterConfig {
    WriterConfig {
        prefix: "t".into(),
        fence_window: 4,
        max_in_flight: 4,
        group_commit: GroupCommit {
            max_bytes: 1 << 20,
            max_records: 1,
            interval: Duration::ZERO,
        },
        ..WriterConfig::default()
    }
}

pub fn codec() -> Box<RawCodec> {
    Box::new(RawCodec::new("schema-a"))
}

pub fn rec(n: u64) -> Record {
    Record::new(n.to_le_bytes().to_vec(), 1)
}

pub struct Harness {
    pub store: MemStore,
    pub now: Duration,
}

pub struct Driven {
    pub w: Writer,
    pub held: VecDeque<Request>,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            store: MemStore::new(),
            now: Duration::ZERO,
        }
    }

    pub fn writer(&mut self, cfg: WriterConfig, seed: u64) -> Driven {
        let w = Writer::new(cfg, codec(), seed, self.now).expect("valid config");
        let mut d = Driven {
            w,
            held: VecDeque::new(),
            events: Vec::new(),
        };
        d.collect();
        d
    }

    /// Opens a writer and runs it until quiet.
    pub fn open(&mut self, cfg: WriterConfig, seed: u64) -> Driven {
        let mut d = self.writer(cfg, seed);
        self.settle(&mut d);
        d
    }

    /// Executes one held request against the store and feeds the answer back.
    pub fn execute(&mut self, d: &mut Driven, index: usize) -> Response {
        let req = d.held.remove(index).expect("a held request");
        let resp = self.store.execute(&req.op);
        d.w.handle_response(req.id, resp.clone(), self.now);
        d.collect();
        resp
    }

    /// Answers a held request with `resp` without touching the store.
    pub fn answer(&mut self, d: &mut Driven, index: usize, resp: Response) {
        let req = d.held.remove(index).expect("a held request");
        d.w.handle_response(req.id, resp, self.now);
        d.collect();
    }

    /// Advances to the writer's next deadline and fires it; `false` if it waits for nothing.
    pub fn fire_next_timer(&mut self, d: &mut Driven) -> bool {
        let Some(at) = deadline(&mut d.w) else {
            return false;
        };
        self.now = self.now.max(at);
        d.w.handle_timeout(self.now);
        d.collect();
        true
    }

    /// Runs requests in order and fires timers until nothing is left.
    pub fn settle(&mut self, d: &mut Driven) {
        for _ in 0..100_000 {
            if !d.held.is_empty() {
                self.execute(d, 0);
            } else if !self.fire_next_timer(d) {
                return;
            }
        }
        panic!("writer did not settle");
    }

    /// Reads the whole log with a fresh reader: (position, records) in order, or its error.
    pub fn read_all(&mut self) -> Result<Vec<(u64, Vec<Record>)>, tidewal_core::FatalError> {
        let cfg = ReaderConfig {
            prefix: "t".into(),
            ..ReaderConfig::default()
        };
        let mut r = Reader::new(cfg, codec(), 7, self.now);
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let d = drain(&mut r);
            for e in d.events {
                // Handed on: its bytes are room for the reader's read-ahead again.
                r.release(e.bytes());
                match e {
                    ReadEvent::Records { position, records } => out.push((position, records)),
                    ReadEvent::Fatal(f) => return Err(f),
                    _ => {}
                }
            }
            if d.done {
                return Ok(out);
            }
            if !d.requests.is_empty() {
                for req in d.requests {
                    let resp = self.store.execute(&req.op);
                    r.handle_response(req.id, resp, self.now);
                }
            } else if let Some(at) = d.wake {
                self.now = self.now.max(at);
                r.handle_timeout(self.now);
            } else {
                panic!("reader stuck");
            }
        }
        panic!("reader did not finish");
    }
}

impl Driven {
    pub fn collect(&mut self) {
        let d = drain(&mut self.w);
        self.held.extend(d.requests);
        self.events.extend(d.events);
    }

    pub fn append(&mut self, h: &Harness, record: Record) -> tidewal_core::AppendId {
        let id = self.w.append(record, h.now).expect("append accepted");
        self.collect();
        id
    }

    pub fn ready(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Ready { .. }))
    }

    pub fn durable(&self) -> Vec<(u64, u64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Durable {
                    last_append,
                    position,
                } => Some((last_append.0, *position)),
                _ => None,
            })
            .collect()
    }

    pub fn fatal(&self) -> Option<&tidewal_core::FatalError> {
        self.events.iter().find_map(|e| match e {
            Event::Fatal(f) => Some(f),
            _ => None,
        })
    }

    /// Index of the first held request matching `pred`.
    pub fn find(&self, pred: impl Fn(&Op) -> bool) -> Option<usize> {
        self.held.iter().position(|r| pred(&r.op))
    }
}

impl Harness {
    /// The newest manifest object under the test prefix `t/`, as stored.
    pub fn newest_manifest_bytes(&self) -> &[u8] {
        let newest = self
            .store
            .paths()
            .filter(|p| p.starts_with("t/manifest/"))
            .max()
            .expect("a manifest");
        self.store.object(newest).unwrap()
    }

    /// The newest manifest under `t/`, decoded.
    pub fn newest_manifest(&self) -> tidewal_core::Manifest {
        tidewal_core::Manifest::decode(self.newest_manifest_bytes()).unwrap()
    }
}

pub fn is_wal_put(op: &Op) -> bool {
    matches!(op, Op::Put { path, .. } if path.contains("/wal/"))
}

impl Harness {
    pub fn writer_with(
        h: &mut Harness,
        codec: Box<dyn tidewal_core::Codec>,
        cfg: WriterConfig,
    ) -> Driven {
        let w = Writer::new(cfg, codec, 99, h.now).expect("valid config");
        let mut d = Driven {
            w,
            held: VecDeque::new(),
            events: Vec::new(),
        };
        d.collect();
        d
    }
}

/// Runs `r` against `store` until it is done (at most `steps` rounds), releasing every event
/// at once: the positions it reported and every request it sent. Panics if it fails or stalls.
pub fn read_to_end(
    r: &mut Reader,
    store: &mut MemStore,
    now: Duration,
    steps: usize,
) -> (Vec<u64>, Vec<Op>) {
    let (mut positions, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let d = drain(r);
        for e in d.events {
            r.release(e.bytes());
            match e {
                ReadEvent::Records { position, .. } => positions.push(position),
                ReadEvent::Fatal(f) => panic!("reader failed: {f}"),
                _ => {}
            }
        }
        if d.done {
            return (positions, ops);
        }
        assert!(!d.requests.is_empty(), "reader stuck");
        for req in d.requests {
            ops.push(req.op.clone());
            let resp = store.execute(&req.op);
            r.handle_response(req.id, resp, now);
        }
    }
    panic!("reader did not finish");
}
