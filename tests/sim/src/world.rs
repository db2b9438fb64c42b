//! The simulated world: store, network, clients, workload and the checks run after each step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use tidewal_core::{
    AppendError, AppendId, Event, FatalError, GroupCommit, Machine as _, MemStore, Op, Output,
    RawCodec, ReadEvent, Reader, ReaderConfig, Record, Request, RequestId, Response, RetryPolicy,
    StoreError, StoreErrorKind, Writer, WriterConfig,
};

use crate::model::{payload_id, Model};
use crate::rng::Rng;

const SCHEMA: &str = "sim-schema";
const WORK_TIME: Duration = Duration::from_secs(3);
const FINAL_DEADLINE: Duration = Duration::from_secs(120);

/// What one seed did.
pub struct Outcome {
    /// Events processed.
    pub steps: u64,
    /// Appends acknowledged.
    pub acked: u64,
    /// Hash of the trace (the same seed must give the same hash).
    pub trace_hash: u64,
    /// The first broken invariant, if any.
    pub violation: Option<String>,
    /// The trace lines, when asked for.
    pub trace: Vec<String>,
}

#[derive(Clone, Copy)]
struct Faults {
    fail_before: f64,
    fail_after: f64,
    exists_after: f64,
    max_latency_ms: u64,
}

enum Ev {
    Arrive {
        client: usize,
        id: RequestId,
        op: Op,
    },
    Deliver {
        client: usize,
        id: RequestId,
        resp: Response,
    },
    Timer {
        client: usize,
    },
    Act {
        client: usize,
    },
    Spawn,
}

/// One output of either machine.
enum Out {
    Request(Request),
    Writer(Event),
    Reader(ReadEvent),
    Wait(Option<Duration>),
}

enum Machine {
    Writer(Box<Writer>),
    Reader(Box<Reader>),
}

#[derive(Default)]
struct Client {
    machine: Option<Machine>,
    epoch: u64,
    /// Payload ids of each accepted append (a group holds several).
    appends: Vec<Vec<u64>>,
    acked: usize,
    /// An append refused for backpressure (payload ids, records), retried at `Writable` as
    /// hosts do; the client appends nothing else meanwhile.
    refused: Option<(Vec<u64>, Vec<Record>)>,
    ready: bool,
    /// Payloads of the log when this writer opened.
    view: BTreeSet<u64>,
    view_cursor: u64,
    /// A reader's output.
    read: Vec<(u64, u64)>,
    /// FNV-1a over every (position, payload byte) a reader reported.
    read_digest: u64,
    timer_at: Option<Duration>,
    /// Latency multiplier of this client's requests.
    slowness: u64,
    /// An append was refused with backpressure and `Writable` has not come yet.
    blocked: bool,
    /// A reader expected to fail (the corruption check).
    tolerate_failure: bool,
    closed: bool,
    failure: Option<FatalError>,
}

struct World {
    rng: Rng,
    now: Duration,
    queue: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
    store: MemStore,
    faults: Faults,
    clients: Vec<Client>,
    model: Model,
    codec: RawCodec,
    wcfg: WriterConfig,
    /// Whether the workload calls `flush_memtable` (else only thresholds and backpressure do).
    manual_flushes: bool,
    next_payload: u64,
    steps: u64,
    hash: u64,
    trace: Option<Vec<String>>,
    line: String,
}

/// Runs one seed.
pub fn run(seed: u64, trace: bool) -> Outcome {
    let mut w = World::new(seed, trace);
    let violation = w.main().err();
    Outcome {
        steps: w.steps,
        acked: w.model.acked.len() as u64,
        trace_hash: w.hash,
        violation,
        trace: w.trace.unwrap_or_default(),
    }
}

fn writer_config(rng: &mut Rng) -> WriterConfig {
    let fence_window = rng.range(1, 8) as u32;
    WriterConfig {
        prefix: "log".into(),
        wal_only: rng.chance(0.2),
        fence_window,
        max_in_flight: rng.range(1, u64::from(fence_window)) as u32,
        group_commit: GroupCommit {
            max_bytes: rng.range(64, 2048) as usize,
            max_records: rng.range(1, 16) as usize,
            interval: Duration::from_millis(rng.range(0, 10)),
        },
        max_entry_bytes: 4096,
        memtable_bytes: rng.range(256, 8192) as usize,
        // Sometimes below the memtable threshold: only a flush on backpressure makes room.
        unflushed_budget: if rng.chance(0.2) {
            rng.range(512, 4096)
        } else {
            rng.range(8192, 65536)
        } as usize,
        read_ahead: rng.range(1, 8) as u32,
        keep_manifests: rng.range(1, 4) as u32,
        open_attempts: 50,
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            max: Duration::from_millis(200),
            attempts: 40,
        },
    }
}

impl World {
    fn new(seed: u64, trace: bool) -> Self {
        let mut rng = Rng::new(seed);
        let heavy = rng.chance(0.5);
        let faults = Faults {
            fail_before: if heavy { 0.05 } else { 0.01 },
            fail_after: if heavy { 0.05 } else { 0.01 },
            exists_after: if heavy { 0.03 } else { 0.0 },
            max_latency_ms: rng.range(2, 40),
        };
        let wcfg = writer_config(&mut rng);
        let manual_flushes = rng.chance(0.5);
        World {
            manual_flushes,
            rng,
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            store: MemStore::new(),
            faults,
            clients: Vec::new(),
            model: Model::default(),
            codec: RawCodec::new(SCHEMA),
            wcfg,
            next_payload: 0,
            steps: 0,
            hash: 0xcbf2_9ce4_8422_2325,
            trace: trace.then(Vec::new),
            line: String::new(),
        }
    }

    /// Records a trace line (hashed always, kept when tracing).
    fn note(&mut self, args: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{:>9.3}ms ", self.now.as_secs_f64() * 1e3);
        let _ = self.line.write_fmt(args);
        for b in self.line.bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if let Some(t) = &mut self.trace {
            t.push(self.line.clone());
        }
    }

    fn schedule(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// One network hop of `client` (slow clients make the races between zombies and newer
    /// writers that a uniform network rarely produces).
    fn latency(&mut self, client: usize) -> Duration {
        let hop = self.rng.range(100, self.faults.max_latency_ms * 1000);
        Duration::from_micros(hop * self.clients[client].slowness)
    }

    fn main(&mut self) -> Result<(), String> {
        self.schedule(Duration::ZERO, Ev::Spawn);
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            if at > WORK_TIME {
                self.queue.insert((at, 0), ev);
                break;
            }
            self.now = at;
            self.steps += 1;
            self.step(ev)?;
        }
        self.finale()
    }

    fn step(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Arrive { client, id, op } => self.arrive(client, id, op),
            Ev::Deliver { client, id, resp } => {
                let now = self.now;
                let ok = matches!(
                    &resp,
                    Response::Put(Ok(_))
                        | Response::Get(Ok(_))
                        | Response::List(Ok(_))
                        | Response::Delete(Ok(_))
                );
                self.note(format_args!("c{client} <- #{} ok={ok}", id.0));
                match &mut self.clients[client].machine {
                    Some(Machine::Writer(w)) => w.handle_response(id, resp, now),
                    Some(Machine::Reader(r)) => r.handle_response(id, resp, now),
                    None => return Ok(()),
                }
                self.drain(client)
            }
            Ev::Timer { client } => {
                let now = self.now;
                if self.clients[client].timer_at != Some(now) {
                    return Ok(());
                }
                self.clients[client].timer_at = None;
                match &mut self.clients[client].machine {
                    Some(Machine::Writer(w)) => w.handle_timeout(now),
                    Some(Machine::Reader(r)) => r.handle_timeout(now),
                    None => return Ok(()),
                }
                self.drain(client)
            }
            Ev::Act { client } => self.act(client),
            Ev::Spawn => {
                let writers = self
                    .clients
                    .iter()
                    .filter(|c| matches!(c.machine, Some(Machine::Writer(_))))
                    .count();
                let readers = self
                    .clients
                    .iter()
                    .filter(|c| matches!(c.machine, Some(Machine::Reader(_))))
                    .count();
                if readers == 0 && self.rng.chance(0.3) {
                    self.spawn_reader(true);
                } else if writers < 3 {
                    self.spawn_writer();
                }
                let next = self.now + Duration::from_millis(self.rng.range(100, 900));
                self.schedule(next, Ev::Spawn);
                Ok(())
            }
        }
    }

    /// A request reaches the store: maybe fail before applying, apply, maybe lose the answer.
    fn arrive(&mut self, client: usize, id: RequestId, op: Op) -> Result<(), String> {
        let f = self.faults;
        let resp = if self.rng.chance(f.fail_before) {
            self.note(format_args!("c{client} #{} dropped before apply", id.0));
            op.failed(StoreError::new(
                StoreErrorKind::Unknown,
                "injected: failed before apply",
            ))
        } else {
            let missing = matches!(&op, Op::Delete { path } if self.store.object(path).is_none());
            if let Op::Delete { path } = &op {
                self.model.on_delete(path)?;
            }
            let resp = self.store.execute(&op);
            if let (Op::Put { path, body, .. }, Response::Put(Ok(_))) = (&op, &resp) {
                self.model
                    .on_put(&self.store, path, &body.to_bytes(), &self.codec)?;
            }
            self.note(format_args!(
                "c{client} #{} applied {}",
                id.0,
                describe(&op, &resp)
            ));
            let created = matches!((&op, &resp), (Op::Put { .. }, Response::Put(Ok(_))));
            if created && self.rng.chance(f.exists_after) {
                // object_store retries a create whose answer was lost and sees its own object.
                op.failed(StoreError::new(
                    StoreErrorKind::AlreadyExists,
                    "injected: retried create",
                ))
            } else if self.rng.chance(f.fail_after) {
                op.failed(StoreError::new(
                    StoreErrorKind::Unknown,
                    "injected: answer lost",
                ))
            } else {
                self.as_a_real_store_answers(&op, resp, missing)
            }
        };
        let at = self.now + self.latency(client);
        self.schedule(at, Ev::Deliver { client, id, resp });
        Ok(())
    }

    /// What real stores do within the contract and the core must handle itself: lists in
    /// any order, with objects outside the asked range (an S3 listing from a start key, a
    /// prefix that matches more than the folder), and `NotFound` for a missing delete.
    fn as_a_real_store_answers(&mut self, op: &Op, resp: Response, missing: bool) -> Response {
        match (op, resp) {
            (Op::List { prefix, .. }, Response::List(Ok(mut items))) => {
                if self.rng.chance(0.3) {
                    // Below the bound (when there is one) and outside the folder.
                    let stray: Vec<_> = self.store.paths().take(2).map(String::from).collect();
                    let beside = format!("{}-beside/x", prefix.trim_end_matches('/'));
                    for path in stray.into_iter().chain([beside]) {
                        items.push(tidewal_core::ObjectMeta { path, size: 1 });
                    }
                }
                for i in (1..items.len()).rev() {
                    let j = self.rng.range(0, i as u64) as usize;
                    items.swap(i, j);
                }
                Response::List(Ok(items))
            }
            (Op::Delete { path }, Response::Delete(Ok(()))) if missing && self.rng.chance(0.5) => {
                Response::Delete(Err(StoreError::new(
                    StoreErrorKind::NotFound,
                    format!("injected: {path} was not there"),
                )))
            }
            (_, resp) => resp,
        }
    }

    fn slowness(&mut self) -> u64 {
        if self.rng.chance(0.3) {
            self.rng.range(2, 12)
        } else {
            1
        }
    }

    fn spawn_writer(&mut self) {
        let seed = self.rng.u64();
        let machine = Writer::new(
            self.wcfg.clone(),
            Box::new(self.codec.clone()),
            seed,
            self.now,
        );
        let Ok(machine) = machine else { return };
        let client = self.clients.len();
        self.note(format_args!("c{client} spawn writer"));
        let slowness = self.slowness();
        self.clients.push(Client {
            machine: Some(Machine::Writer(Box::new(machine))),
            slowness,
            ..Client::default()
        });
        let _ = self.drain(client);
        let at = self.now + Duration::from_millis(self.rng.range(1, 5));
        self.schedule(at, Ev::Act { client });
    }

    fn spawn_reader(&mut self, follow: bool) -> usize {
        let cfg = ReaderConfig {
            prefix: "log".into(),
            follow,
            poll_interval: Duration::from_millis(20),
            read_ahead: self.rng.range(1, 8) as u32,
            retry: self.wcfg.retry.clone(),
            ..ReaderConfig::default()
        };
        let seed = self.rng.u64();
        let client = self.clients.len();
        self.note(format_args!("c{client} spawn reader follow={follow}"));
        let slowness = self.slowness();
        self.clients.push(Client {
            slowness,
            machine: Some(Machine::Reader(Box::new(Reader::new(
                cfg,
                Box::new(self.codec.clone()),
                seed,
                self.now,
            )))),
            ..Client::default()
        });
        let _ = self.drain(client);
        client
    }

    /// A random command from a writer (or a crash).
    fn act(&mut self, client: usize) -> Result<(), String> {
        let now = self.now;
        let roll = self.rng.range(0, 999);
        let waiting = self.clients[client].refused.is_some();
        let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        if roll < 12 {
            self.clients[client].machine = None;
            self.note(format_args!("c{client} CRASH"));
            return Ok(());
        }
        if roll < 750 && !waiting {
            // One in five appends is a group of 2-3 records that must share an entry.
            let count = if roll.is_multiple_of(5) {
                2 + roll % 2
            } else {
                1
            };
            let ids: Vec<u64> = (self.next_payload..self.next_payload + count).collect();
            self.next_payload += count;
            for _ in &ids {
                self.model.owner.push(client);
            }
            let records: Vec<Record> = ids
                .iter()
                .map(|&id| {
                    let filler = (id % 97) as usize;
                    let mut payload = id.to_le_bytes().to_vec();
                    payload.resize(8 + filler, (id % 251) as u8);
                    Record::new(payload, 1 + id % 4)
                })
                .collect();
            let result = if count == 1 {
                w.append(records[0].clone(), now)
            } else {
                w.append_group(records.clone(), now)
            };
            self.appended(client, ids, records, result, false)?;
        } else if roll < 750 {
            // Waiting for `Writable`.
        } else if roll < 850 {
            let _ = w.flush(now);
        } else if roll < 900 {
            if self.wcfg.wal_only {
                if let Some(m) = w.manifest().cloned() {
                    let target = w
                        .stats()
                        .durable_position
                        .map_or(m.replay_cursor, |d| d + 1);
                    let to = self.rng.range(m.replay_cursor, target.max(m.replay_cursor));
                    if w.truncate(to, now).is_ok() {
                        self.model.truncated_to = self.model.truncated_to.max(to);
                    }
                }
            } else if self.manual_flushes {
                let _ = w.flush_memtable(now);
            }
        } else if roll < 905 {
            let _ = w.close(now);
        }
        self.drain(client)?;
        if self.clients[client].machine.is_some() {
            let at = self.now + Duration::from_millis(self.rng.range(1, 8));
            self.schedule(at, Ev::Act { client });
        }
        Ok(())
    }

    /// Moves a client's requests onto the network and its events into the model, then arms
    /// its timer (the `Machine` drain rule: until it waits).
    fn drain(&mut self, client: usize) -> Result<(), String> {
        let timeout = loop {
            let out = match &mut self.clients[client].machine {
                Some(Machine::Writer(w)) => match w.poll_output() {
                    Output::Request(r) => Out::Request(r),
                    Output::Event(e) => Out::Writer(e),
                    Output::Wait(at) => Out::Wait(at),
                    _ => Out::Wait(None),
                },
                Some(Machine::Reader(r)) => match r.poll_output() {
                    Output::Request(r) => Out::Request(r),
                    Output::Event(e) => Out::Reader(e),
                    Output::Wait(at) => Out::Wait(at),
                    _ => Out::Wait(None),
                },
                None => Out::Wait(None),
            };
            match out {
                Out::Request(req) => {
                    self.note(format_args!(
                        "c{client} -> #{} {}",
                        req.id.0,
                        op_name(&req.op)
                    ));
                    let at = self.now + self.latency(client);
                    self.schedule(
                        at,
                        Ev::Arrive {
                            client,
                            id: req.id,
                            op: req.op,
                        },
                    );
                }
                Out::Writer(e) => self.writer_event(client, e)?,
                Out::Reader(e) => self.reader_event(client, e)?,
                Out::Wait(at) => break at,
            }
        };
        if let Some(t) = timeout {
            let t = t.max(self.now);
            if self.clients[client].timer_at != Some(t) {
                self.clients[client].timer_at = Some(t);
                self.schedule(t, Ev::Timer { client });
            }
        }
        Ok(())
    }

    fn epochs(&self) -> Vec<u64> {
        self.clients.iter().map(|c| c.epoch).collect()
    }

    /// Records an append's outcome; `retry` marks a retry at `Writable`, which must not be
    /// refused for backpressure again (a host retrying at once would spin).
    fn appended(
        &mut self,
        client: usize,
        ids: Vec<u64>,
        records: Vec<Record>,
        result: Result<AppendId, AppendError>,
        retry: bool,
    ) -> Result<(), String> {
        match result {
            Ok(aid) => {
                let c = &mut self.clients[client];
                debug_assert_eq!(aid.0 as usize, c.appends.len());
                self.note(format_args!("c{client} append {ids:?} as a{}", aid.0));
                self.clients[client].appends.push(ids);
            }
            Err(AppendError::Backpressure { .. }) if retry => {
                return Err(format!(
                    "c{client}: append {ids:?} refused again right after Writable"
                ))
            }
            Err(AppendError::Backpressure { .. }) => {
                self.clients[client].blocked = true;
                self.clients[client].refused = Some((ids, records));
            }
            Err(AppendError::Closed) | Err(AppendError::Failed(_)) => {}
            Err(e) => return Err(format!("c{client}: valid append refused: {e}")),
        }
        Ok(())
    }

    fn writer_event(&mut self, client: usize, e: Event) -> Result<(), String> {
        self.note(format_args!("c{client} event {e:?}"));
        match e {
            Event::Ready { epoch, .. } => {
                self.clients[client].epoch = epoch;
                self.clients[client].ready = true;
                let (items, cursor) = self.writer_view(client)?;
                let who = format!("writer c{client} (epoch {epoch}) at open");
                self.model.check_sequence(&who, &items, &self.epochs())?;
                let view: BTreeSet<u64> = items.iter().map(|&(_, id)| id).collect();
                // Every append acknowledged by an older epoch must be here. (A newer writer may
                // already have acknowledged more: then this one learned of its own Ready late
                // and is a zombie that will fail on its first put.)
                for (&id, &pos) in &self.model.acked {
                    let acker = self.clients[self.model.owner[id as usize]].epoch;
                    if acker < epoch && pos >= cursor && !view.contains(&id) {
                        return Err(format!(
                            "{who}: acked payload {id} at {pos} missing from replay"
                        ));
                    }
                }
                self.clients[client].view = view;
                self.clients[client].view_cursor = cursor;
            }
            Event::Durable {
                last_append,
                position,
            } => {
                let c = &mut self.clients[client];
                let epoch = c.epoch;
                let newly: Vec<u64> = c.appends[c.acked..=last_append.0 as usize].concat();
                c.acked = last_append.0 as usize + 1;
                for id in newly {
                    match self.model.landed.get(&id) {
                        Some(&p) if p == position => {}
                        other => {
                            return Err(format!(
                                "c{client} acked p{id} at {position}, store has {other:?}"
                            ))
                        }
                    }
                    // At most one writer acknowledges: a newer open writer must hold it.
                    for (i, other) in self.clients.iter().enumerate() {
                        if other.ready
                            && other.epoch > epoch
                            && !other.view.contains(&id)
                            && position >= other.view_cursor
                        {
                            return Err(format!(
                                "c{client} (epoch {epoch}) acked p{id} at {position} after c{i} (epoch {}) opened without it",
                                other.epoch
                            ));
                        }
                    }
                    self.model.acked.insert(id, position);
                }
            }
            Event::Writable => {
                self.clients[client].blocked = false;
                if let Some((ids, records)) = self.clients[client].refused.take() {
                    let now = self.now;
                    if let Some(Machine::Writer(w)) = &mut self.clients[client].machine {
                        let result = w.append_group(records.clone(), now);
                        self.appended(client, ids, records, result, true)?;
                    }
                }
            }
            Event::Closed => {
                self.clients[client].closed = true;
                self.clients[client].machine = None;
            }
            Event::Fatal(f) => {
                let allowed = matches!(
                    f,
                    FatalError::Fenced { .. } | FatalError::Contended | FatalError::Store { .. }
                );
                if !allowed {
                    return Err(format!("c{client} failed: {f}"));
                }
                self.clients[client].failure = Some(f);
                self.clients[client].machine = None;
            }
            _ => {}
        }
        Ok(())
    }

    fn reader_event(&mut self, client: usize, e: ReadEvent) -> Result<(), String> {
        match e {
            ReadEvent::Records { position, records } => {
                self.note(format_args!(
                    "c{client} read {position} ({} records)",
                    records.len()
                ));
                let c = &mut self.clients[client];
                for r in records {
                    let id = payload_id(&r.payload).ok_or("short payload")?;
                    c.read.push((position, id));
                    for b in position
                        .to_le_bytes()
                        .iter()
                        .chain(r.payload.chunks().iter().flatten())
                    {
                        c.read_digest =
                            (c.read_digest ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                let who = format!("reader c{client}");
                self.model
                    .check_sequence(&who, &self.clients[client].read, &self.epochs())?;
            }
            ReadEvent::CaughtUp { position } => {
                self.note(format_args!("c{client} caught up at {position}"));
                // Everything acknowledged below where it stands must have been read (WAL-only
                // logs may have truncated what lies below the truncate point).
                let read: BTreeSet<u64> = self.clients[client]
                    .read
                    .iter()
                    .map(|&(_, id)| id)
                    .collect();
                let floor = if self.wcfg.wal_only {
                    self.model.truncated_to
                } else {
                    0
                };
                for (&id, &pos) in &self.model.acked {
                    if pos >= floor && pos < position && !read.contains(&id) {
                        return Err(format!(
                            "reader c{client} caught up at {position} without acked p{id} at {pos}"
                        ));
                    }
                }
            }
            ReadEvent::Fatal(f) => {
                self.note(format_args!("c{client} reader failed: {f}"));
                if self.clients[client].tolerate_failure {
                    self.clients[client].failure = Some(f);
                    return Ok(());
                }
                if !matches!(f, FatalError::Store { .. }) {
                    return Err(format!("reader c{client} failed: {f}"));
                }
                self.clients[client].machine = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// A writer's log at open: its manifest's generations, then its memtable.
    fn writer_view(&mut self, client: usize) -> Result<(Vec<(u64, u64)>, u64), String> {
        let Some(Machine::Writer(w)) = &self.clients[client].machine else {
            return Ok((Vec::new(), 0));
        };
        let m = w.manifest().cloned().ok_or("ready without a manifest")?;
        let mut items = self.model.generations(&self.store, &self.codec, &m)?;
        let cursor = if m.wal_only { m.replay_cursor } else { 0 };
        let Some(Machine::Writer(w)) = &self.clients[client].machine else {
            unreachable!()
        };
        for e in w.memtable() {
            for r in &e.records {
                items.push((e.position, payload_id(&r.payload).ok_or("short payload")?));
            }
        }
        if m.wal_only {
            // WAL-only keeps no memtable: the view is what the walk replayed, read back.
            items = self.wal_view(&m);
        }
        Ok((items, cursor))
    }

    /// The data entries a walk from the manifest's cursor reaches, straight from the store.
    fn wal_view(&self, m: &tidewal_core::Manifest) -> Vec<(u64, u64)> {
        use tidewal_core::{Codec, EntryKind};
        let mut out = Vec::new();
        let mut pos = m.replay_cursor;
        let mut fence_epoch = m.cursor_epoch;
        while let Some(body) = self.store.object(&format!("log/wal/{pos:020}.arrows")) {
            let Ok(e) = self.codec.decode_entry(body.clone()) else {
                break;
            };
            match e.header.kind {
                EntryKind::Fence { window } => {
                    fence_epoch = fence_epoch.max(e.header.epoch);
                    pos += u64::from(window);
                    continue;
                }
                EntryKind::Data if e.header.epoch >= fence_epoch => {
                    for r in &e.records {
                        if let Some(id) = payload_id(&r.payload) {
                            out.push((pos, id));
                        }
                    }
                }
                EntryKind::Data => {}
            }
            pos += 1;
        }
        out
    }

    /// Runs until `done` holds or the deadline passes.
    fn run_until(
        &mut self,
        deadline: Duration,
        done: impl Fn(&World) -> bool,
    ) -> Result<bool, String> {
        while !done(self) {
            let Some(((at, _), ev)) = self.queue.pop_first() else {
                return Ok(done(self));
            };
            if at > deadline {
                return Ok(false);
            }
            if matches!(ev, Ev::Spawn | Ev::Act { .. }) {
                continue;
            }
            self.now = self.now.max(at);
            self.steps += 1;
            self.step(ev)?;
        }
        Ok(true)
    }

    /// Faults off, every client crashes, a final writer must replay every acknowledged append,
    /// a final reader must read the same, and a flipped byte must be caught.
    /// Every live machine that still owes something has a request in flight or a timer: none
    /// waits for an answer that will never come.
    fn check_liveness(&self) -> Result<(), String> {
        let mut busy = BTreeSet::new();
        for ev in self.queue.values() {
            if let Ev::Arrive { client, .. } | Ev::Deliver { client, .. } = ev {
                busy.insert(*client);
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            let owes = match &c.machine {
                Some(Machine::Writer(_)) => !c.ready || c.blocked || c.appends.len() > c.acked,
                Some(Machine::Reader(r)) => !r.is_done(),
                None => false,
            };
            if owes && !busy.contains(&i) && c.timer_at.is_none() {
                return Err(format!("c{i} is stuck: nothing in flight and no timer"));
            }
        }
        Ok(())
    }

    fn finale(&mut self) -> Result<(), String> {
        self.check_liveness()?;
        self.faults = Faults {
            fail_before: 0.0,
            fail_after: 0.0,
            exists_after: 0.0,
            ..self.faults
        };
        for c in &mut self.clients {
            c.machine = None;
        }
        self.note(format_args!("finale: all clients crashed"));
        let deadline = self.now + FINAL_DEADLINE;
        self.spawn_writer();
        let fw = self.clients.len() - 1;
        let opened = self.run_until(deadline, |w| {
            w.clients[fw].ready || w.clients[fw].machine.is_none()
        })?;
        if !opened || !self.clients[fw].ready {
            return Err(format!(
                "final writer did not open: {:?}",
                self.clients[fw].failure
            ));
        }
        let (mut expected, _) = self.writer_view(fw)?;
        // Close it: everything is flushed (or durable, WAL-only).
        if let Some(Machine::Writer(w)) = &mut self.clients[fw].machine {
            w.close(self.now).map_err(|e| format!("final close: {e}"))?;
        }
        self.drain(fw)?;
        let closed = self.run_until(deadline, |w| {
            w.clients[fw].closed || w.clients[fw].failure.is_some()
        })?;
        if !closed || !self.clients[fw].closed {
            return Err(format!(
                "final writer did not close: {:?}",
                self.clients[fw].failure
            ));
        }
        self.model.check_cursor(&self.store, &self.codec)?;
        if self.wcfg.wal_only {
            let m = self.model.high.clone().ok_or("no manifest")?;
            expected = self.wal_view(&m);
        }
        let (got, digest) = self.read_all()?;
        if got != expected {
            return Err(format!(
                "final reader read {} records, final writer replayed {}",
                got.len(),
                expected.len()
            ));
        }
        self.check_corruption(digest)
    }

    /// Reads the whole log with a fresh non-following reader.
    fn read_all(&mut self) -> Result<(Vec<(u64, u64)>, u64), String> {
        let r = self.spawn_reader(false);
        let deadline = self.now + FINAL_DEADLINE;
        let finished = self.run_until(deadline, |w| match &w.clients[r].machine {
            Some(Machine::Reader(m)) => m.is_done(),
            _ => true,
        })?;
        if !finished {
            return Err("final reader did not finish".into());
        }
        let c = &mut self.clients[r];
        Ok((std::mem::take(&mut c.read), c.read_digest))
    }

    /// Flips one bit of a random object: a fresh reader must report it as corrupt with its
    /// path, or (if its walk never decodes that object) read exactly what it read before.
    fn check_corruption(&mut self, expected: u64) -> Result<(), String> {
        let paths: Vec<String> = self.store.paths().map(String::from).collect();
        let victim = paths[self.rng.range(0, paths.len() as u64 - 1) as usize].clone();
        let mut body = self
            .store
            .object(&victim)
            .cloned()
            .unwrap_or_default()
            .to_vec();
        if body.is_empty() {
            return Ok(());
        }
        let at = self.rng.range(0, body.len() as u64 - 1) as usize;
        body[at] ^= 1 << self.rng.range(0, 7);
        self.store.tamper(&victim, Bytes::from(body));
        self.note(format_args!("flipped a bit of {victim} at byte {at}"));
        let r = self.spawn_reader(false);
        self.clients[r].tolerate_failure = true;
        let deadline = self.now + FINAL_DEADLINE;
        let finished = self.run_until(deadline, |w| match &w.clients[r].machine {
            Some(Machine::Reader(m)) => m.is_done(),
            _ => true,
        })?;
        match self.clients[r].failure.take() {
            _ if !finished => Err("corruption reader did not finish".into()),
            Some(FatalError::Corrupt { path, .. }) if path == victim => Ok(()),
            Some(f) => Err(format!("flipped {victim}: reader failed otherwise: {f}")),
            None if self.clients[r].read_digest != expected => {
                Err(format!("flipped {victim}: read as data"))
            }
            None => Ok(()),
        }
    }
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Put { path, .. } => format!("PUT {path}"),
        Op::Get { path, .. } => format!("GET {path}"),
        Op::List { prefix, after } => format!("LIST {prefix} after {after:?}"),
        Op::Delete { path } => format!("DELETE {path}"),
        _ => "?".into(),
    }
}

fn describe(op: &Op, resp: &Response) -> String {
    let outcome = match resp {
        Response::Put(r) => r
            .as_ref()
            .map(|_| "ok".to_string())
            .unwrap_or_else(|e| format!("{:?}", e.kind)),
        Response::Get(r) => r
            .as_ref()
            .map(|g| format!("{} bytes", g.len()))
            .unwrap_or_else(|e| format!("{:?}", e.kind)),
        Response::List(r) => r
            .as_ref()
            .map(|l| format!("{} items", l.len()))
            .unwrap_or_else(|e| format!("{:?}", e.kind)),
        Response::Delete(_) => "ok".into(),
        _ => "?".into(),
    };
    format!("{} -> {outcome}", op_name(op))
}
