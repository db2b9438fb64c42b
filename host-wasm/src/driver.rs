//! One writer's driver: the machine, its pending replies, and the pump that moves requests to
//! the JS store and events into replies (DESIGN.md, "The driver loop"). The state sits in an
//! `Rc<RefCell<_>>`; no borrow is held across an await or a call into JS code that could call
//! back (replies are channels, completed after the borrow ends).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use js_sys::Function;
use tidewal_core::{AppendError, AppendId, Error, Event, Record, Writer, WriterStats};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::clock::{now_ms, since, sleep};
use crate::store::JsStore;

/// Where an append landed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ack {
    pub(crate) append: AppendId,
    pub(crate) position: u64,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// How many recent acknowledgement latencies the percentiles cover.
const LATENCY_WINDOW: usize = 4096;

/// An append refused for backpressure, retried when the machine says `Writable`.
struct Blocked {
    records: Vec<Record>,
    reply: Reply<Ack>,
    since_ms: f64,
}

/// A writer's counters with the host's acknowledgement latency.
pub(crate) struct Stats {
    pub(crate) writer: WriterStats,
    pub(crate) ack_p50_ms: Option<f64>,
    pub(crate) ack_p99_ms: Option<f64>,
}

pub(crate) struct Driver {
    machine: Writer,
    store: JsStore,
    origin_ms: f64,
    ready: Option<Reply<u64>>,
    appends: BTreeMap<AppendId, (Reply<Ack>, f64)>,
    latencies: VecDeque<f64>,
    flushes: Vec<(AppendId, Reply<()>)>,
    deferred: Vec<Reply<()>>,
    generations: Vec<(u64, Reply<Option<u64>>)>,
    closing: Option<Reply<()>>,
    blocked: VecDeque<Blocked>,
    backpressure_timeout_ms: f64,
    failed: Option<Error>,
    /// The deadline (ms, on `now_ms`) of the armed timer, if any.
    timer_at: Option<f64>,
    /// JS callback fired once when the writer is fenced.
    pub(crate) onfenced: Option<Function>,
    fenced_pending: Option<Error>,
}

pub(crate) type Shared = Rc<RefCell<Driver>>;

impl Driver {
    pub(crate) fn start(
        machine: Writer,
        store: JsStore,
        origin_ms: f64,
        ready: Reply<u64>,
        backpressure_timeout_ms: f64,
    ) -> Shared {
        let shared = Rc::new(RefCell::new(Driver {
            machine,
            store,
            origin_ms,
            ready: Some(ready),
            appends: BTreeMap::new(),
            latencies: VecDeque::with_capacity(LATENCY_WINDOW),
            flushes: Vec::new(),
            deferred: Vec::new(),
            generations: Vec::new(),
            closing: None,
            blocked: VecDeque::new(),
            backpressure_timeout_ms,
            failed: None,
            timer_at: None,
            onfenced: None,
            fenced_pending: None,
        }));
        pump(&shared);
        shared
    }

    fn now(&self) -> core::time::Duration {
        since(self.origin_ms)
    }

    /// The error every call gets once the writer stopped, if it did.
    pub(crate) fn failed(&self) -> Option<Error> {
        self.failed.clone()
    }

    pub(crate) fn append(&mut self, records: Vec<Record>, reply: Reply<Ack>) {
        if let Some(e) = self.failed() {
            let _ = reply.send(Err(e));
            return;
        }
        let since_ms = now_ms();
        if self.blocked.is_empty() {
            self.try_append(records, reply, since_ms);
        } else {
            // Keep order behind appends already waiting for room.
            self.blocked.push_back(Blocked {
                records,
                reply,
                since_ms,
            });
        }
    }

    fn try_append(&mut self, records: Vec<Record>, reply: Reply<Ack>, since_ms: f64) {
        let now = self.now();
        match self.machine.append_group(records.clone(), now) {
            Ok(id) => {
                self.appends.insert(id, (reply, since_ms));
            }
            Err(AppendError::Backpressure { .. }) => self.blocked.push_front(Blocked {
                records,
                reply,
                since_ms,
            }),
            Err(e) => drop(reply.send(Err(e.into()))),
        }
    }

    pub(crate) fn flush(&mut self, reply: Reply<()>) {
        if let Some(e) = self.failed() {
            let _ = reply.send(Err(e));
        } else if !self.blocked.is_empty() {
            // Appends still waiting for room come first.
            self.deferred.push(reply);
        } else {
            let now = self.now();
            match self.machine.flush(now) {
                Ok(Some(last)) if self.appends.contains_key(&last) => {
                    self.flushes.push((last, reply))
                }
                Ok(_) => drop(reply.send(Ok(()))),
                Err(e) => drop(reply.send(Err(e.into()))),
            }
        }
    }

    pub(crate) fn flush_memtable(&mut self, reply: Reply<Option<u64>>) {
        if let Some(e) = self.failed() {
            let _ = reply.send(Err(e));
            return;
        }
        let now = self.now();
        match self.machine.flush_memtable(now) {
            Ok(Some(id)) => self.generations.push((id, reply)),
            Ok(None) => drop(reply.send(Ok(None))),
            Err(e) => drop(reply.send(Err(e.into()))),
        }
    }

    pub(crate) fn close(&mut self, reply: Reply<()>) {
        if let Some(e) = self.failed() {
            let _ = reply.send(Err(e));
            return;
        }
        let now = self.now();
        match self.machine.close(now) {
            Ok(()) => self.closing = Some(reply),
            Err(e) => drop(reply.send(Err(e.into()))),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: usize| {
            sorted
                .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
                .copied()
        };
        Stats {
            writer: self.machine.stats(),
            ack_p50_ms: pick(50),
            ack_p99_ms: pick(99),
        }
    }

    fn unblock(&mut self) {
        while let Some(b) = self.blocked.pop_front() {
            let before = self.blocked.len();
            self.try_append(b.records, b.reply, b.since_ms);
            if self.blocked.len() > before {
                break;
            }
        }
        self.run_deferred();
    }

    fn run_deferred(&mut self) {
        if self.blocked.is_empty() {
            for reply in std::mem::take(&mut self.deferred) {
                self.flush(reply);
            }
        }
    }

    fn expire_blocked(&mut self) {
        let now = now_ms();
        while let Some(b) = self.blocked.front() {
            let waited = now - b.since_ms;
            if waited < self.backpressure_timeout_ms {
                break;
            }
            if let Some(b) = self.blocked.pop_front() {
                let _ = b.reply.send(Err(Error::BackpressureTimeout {
                    waited: core::time::Duration::from_secs_f64(waited.max(0.0) / 1000.0),
                }));
            }
        }
        self.run_deferred();
    }

    /// The earliest of the machine's timer and the oldest blocked append's deadline (ms).
    fn wake_at(&self) -> Option<f64> {
        let machine = self
            .machine
            .poll_timeout()
            .map(|(at, _)| self.origin_ms + at.as_secs_f64() * 1000.0);
        let blocked = self
            .blocked
            .front()
            .map(|b| b.since_ms + self.backpressure_timeout_ms);
        match (machine, blocked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Ready { epoch, .. } => {
                if let Some(r) = self.ready.take() {
                    let _ = r.send(Ok(epoch));
                }
            }
            Event::Durable {
                last_append,
                position,
            } => {
                let now = now_ms();
                let rest = self.appends.split_off(&AppendId(last_append.0 + 1));
                for (append, (reply, since_ms)) in std::mem::replace(&mut self.appends, rest) {
                    if self.latencies.len() == LATENCY_WINDOW {
                        self.latencies.pop_front();
                    }
                    self.latencies.push_back(now - since_ms);
                    let _ = reply.send(Ok(Ack { append, position }));
                }
                let (done, waiting) = std::mem::take(&mut self.flushes)
                    .into_iter()
                    .partition(|(id, _)| *id <= last_append);
                self.flushes = waiting;
                for (_, reply) in done {
                    let _ = reply.send(Ok(()));
                }
            }
            Event::Flushed { generation, .. } => {
                let (done, waiting) = std::mem::take(&mut self.generations)
                    .into_iter()
                    .partition(|(id, _)| *id <= generation);
                self.generations = waiting;
                for (id, reply) in done {
                    let _ = reply.send(Ok(Some(id)));
                }
            }
            Event::Writable => self.unblock(),
            Event::Closed => {
                self.failed = Some(Error::Closed);
                if let Some(r) = self.closing.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Event::Fatal(f) => self.fail_all(f.into()),
            _ => {}
        }
    }

    fn fail_all(&mut self, e: Error) {
        let send = |r: Reply<()>| drop(r.send(Err(e.clone())));
        if let Some(r) = self.ready.take() {
            let _ = r.send(Err(e.clone()));
        }
        for (_, (r, _)) in std::mem::take(&mut self.appends) {
            let _ = r.send(Err(e.clone()));
        }
        for b in std::mem::take(&mut self.blocked) {
            let _ = b.reply.send(Err(e.clone()));
        }
        std::mem::take(&mut self.flushes)
            .into_iter()
            .for_each(|(_, r)| send(r));
        std::mem::take(&mut self.deferred)
            .into_iter()
            .for_each(send);
        for (_, r) in std::mem::take(&mut self.generations) {
            let _ = r.send(Err(e.clone()));
        }
        if let Some(r) = self.closing.take() {
            send(r);
        }
        if matches!(e, Error::Fenced { .. }) {
            self.fenced_pending = Some(e.clone());
        }
        self.failed = Some(e);
    }
}

/// Moves requests to the store and events into replies, re-arms the timer, and fires
/// `onfenced` (outside the borrow: the callback may call into the `Wal`).
pub(crate) fn pump(shared: &Shared) {
    let (requests, store, timer, fenced) = {
        let mut d = shared.borrow_mut();
        let mut requests = Vec::new();
        loop {
            let mut progressed = false;
            while let Some(r) = d.machine.poll_request() {
                requests.push(r);
                progressed = true;
            }
            while let Some(e) = d.machine.poll_event() {
                d.event(e);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let timer = match (d.wake_at(), d.timer_at) {
            (Some(at), Some(armed)) if at >= armed => None,
            (Some(at), _) => {
                d.timer_at = Some(at);
                Some(at)
            }
            (None, _) => None,
        };
        let fenced = d
            .fenced_pending
            .take()
            .and_then(|e| d.onfenced.clone().map(|f| (f, e)));
        (requests, d.store.clone(), timer, fenced)
    };
    for request in requests {
        let weak = Rc::downgrade(shared);
        let store = store.clone();
        spawn_local(async move {
            let response = store.execute(request.op).await;
            if let Some(shared) = weak.upgrade() {
                let now = shared.borrow().now();
                shared
                    .borrow_mut()
                    .machine
                    .handle_response(request.id, response, now);
                pump(&shared);
            }
        });
    }
    if let Some(at) = timer {
        arm(Rc::downgrade(shared), at);
    }
    if let Some((callback, e)) = fenced {
        let _ = callback.call1(&JsValue::NULL, &crate::error::to_js(&e));
    }
}

/// Wakes the driver at `at` (ms). A timer superseded by an earlier one still fires, finds
/// nothing due (or something due early) and re-arms: harmless.
fn arm(weak: Weak<RefCell<Driver>>, at: f64) {
    spawn_local(async move {
        sleep(at - now_ms()).await;
        let Some(shared) = weak.upgrade() else { return };
        {
            let mut d = shared.borrow_mut();
            if d.timer_at == Some(at) {
                d.timer_at = None;
            }
            let now = d.now();
            d.machine.handle_timeout(now);
            d.expire_blocked();
        }
        pump(&shared);
    });
}
