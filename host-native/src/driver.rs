//! The writer task: one per log. It executes the machine's requests concurrently, feeds the
//! answers back, sleeps until the machine's next timer and turns events into replies. No
//! protocol logic lives here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::ObjectStore;
use tidewal_core::{
    AppendError, AppendId, Event, Record, RequestId, Response, Writer, WriterStats,
};
use tokio::sync::{mpsc, oneshot};

use crate::store::execute;
use tidewal_core::Error;

/// An acknowledged append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The append's id (grows by one per append of this writer).
    pub append: AppendId,
    /// The WAL position that holds it.
    pub position: u64,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(crate) enum Command {
    Append { record: Record, reply: Reply<Ack> },
    Flush { reply: Reply<()> },
    FlushMemtable { reply: Reply<Option<u64>> },
    Close { reply: Reply<()> },
    Stats { reply: oneshot::Sender<Stats> },
}

/// A writer's counters and gauges, with the host's view of acknowledgement latency.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The core's counters and gauges (appends, bytes, requests, in flight, unflushed bytes,
    /// epoch, positions).
    pub writer: WriterStats,
    /// Median time from append to durable over the last acknowledged appends.
    pub ack_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub ack_p99: Option<Duration>,
}

/// How many recent acknowledgement latencies the percentiles cover.
const LATENCY_WINDOW: usize = 4096;

/// An append refused for backpressure, retried when the machine says `Writable`.
struct Blocked {
    record: Record,
    reply: Reply<Ack>,
    since: Instant,
}

pub(crate) struct Driver {
    machine: Writer,
    store: Arc<dyn ObjectStore>,
    origin: Instant,
    in_flight: FuturesUnordered<BoxFuture<'static, (RequestId, Response)>>,
    ready: Option<Reply<u64>>,
    appends: BTreeMap<AppendId, (Reply<Ack>, Instant)>,
    latencies: VecDeque<Duration>,
    flushes: Vec<(AppendId, Reply<()>)>,
    /// Flushes asked for while appends were blocked.
    deferred: Vec<Reply<()>>,
    generations: Vec<(u64, Reply<Option<u64>>)>,
    closing: Option<Reply<()>>,
    blocked: VecDeque<Blocked>,
    backpressure_timeout: Duration,
    failed: Option<Error>,
}

impl Driver {
    pub(crate) fn new(
        machine: Writer,
        store: Arc<dyn ObjectStore>,
        origin: Instant,
        ready: Reply<u64>,
        backpressure_timeout: Duration,
    ) -> Self {
        Driver {
            machine,
            store,
            origin,
            in_flight: FuturesUnordered::new(),
            ready: Some(ready),
            appends: BTreeMap::new(),
            latencies: VecDeque::with_capacity(LATENCY_WINDOW),
            flushes: Vec::new(),
            deferred: Vec::new(),
            generations: Vec::new(),
            closing: None,
            blocked: VecDeque::new(),
            backpressure_timeout,
            failed: None,
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.drain();
        loop {
            let wake = self.wake_at();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    // Every handle is gone: nothing can wait for us any more.
                    None => return,
                },
                Some((id, response)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    let now = self.now();
                    self.machine.handle_response(id, response, now);
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)), if wake != far_future() => {
                    let now = self.now();
                    self.machine.handle_timeout(now);
                    self.expire_blocked();
                }
            }
            self.drain();
        }
    }

    /// The earliest of the machine's timer and the oldest blocked append's deadline.
    fn wake_at(&self) -> Instant {
        let machine = self
            .machine
            .poll_timeout()
            .map(|(at, _)| self.origin + at)
            .unwrap_or_else(far_future);
        let blocked = self
            .blocked
            .front()
            .map(|b| b.since + self.backpressure_timeout)
            .unwrap_or_else(far_future);
        machine.min(blocked)
    }

    fn command(&mut self, command: Command) {
        if let Some(e) = &self.failed {
            let e = e.clone();
            return match command {
                Command::Append { reply, .. } => drop(reply.send(Err(e))),
                Command::Flush { reply } | Command::Close { reply } => drop(reply.send(Err(e))),
                Command::FlushMemtable { reply } => drop(reply.send(Err(e))),
                Command::Stats { reply } => drop(reply.send(self.stats())),
            };
        }
        let now = self.now();
        match command {
            Command::Append { record, reply } => {
                if self.blocked.is_empty() {
                    self.append(record, reply, Instant::now());
                } else {
                    // Keep order behind appends already waiting for room.
                    self.blocked.push_back(Blocked {
                        record,
                        reply,
                        since: Instant::now(),
                    });
                }
            }
            // Appends still waiting for room come first.
            Command::Flush { reply } if !self.blocked.is_empty() => self.deferred.push(reply),
            Command::Flush { reply } => self.flush(reply),
            Command::FlushMemtable { reply } => match self.machine.flush_memtable(now) {
                Ok(Some(id)) => self.generations.push((id, reply)),
                Ok(None) => drop(reply.send(Ok(None))),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::Close { reply } => match self.machine.close(now) {
                Ok(()) => self.closing = Some(reply),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::Stats { reply } => drop(reply.send(self.stats())),
        }
    }

    fn stats(&self) -> Stats {
        let mut sorted: Vec<Duration> = self.latencies.iter().copied().collect();
        sorted.sort();
        let pick = |q: usize| {
            sorted
                .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
                .copied()
        };
        Stats {
            writer: self.machine.stats(),
            ack_p50: pick(50),
            ack_p99: pick(99),
        }
    }

    fn flush(&mut self, reply: Reply<()>) {
        let now = self.now();
        match self.machine.flush(now) {
            Ok(Some(last)) if self.appends.contains_key(&last) => self.flushes.push((last, reply)),
            Ok(_) => drop(reply.send(Ok(()))),
            Err(e) => drop(reply.send(Err(e.into()))),
        }
    }

    /// Runs the flushes that waited for blocked appends, once none is left.
    fn run_deferred(&mut self) {
        if self.blocked.is_empty() {
            for reply in std::mem::take(&mut self.deferred) {
                self.flush(reply);
            }
        }
    }

    fn append(&mut self, record: Record, reply: Reply<Ack>, since: Instant) {
        let now = self.now();
        match self.machine.append(record.clone(), now) {
            Ok(id) => {
                self.appends.insert(id, (reply, since));
            }
            Err(AppendError::Backpressure { .. }) => self.blocked.push_front(Blocked {
                record,
                reply,
                since,
            }),
            Err(e) => drop(reply.send(Err(e.into()))),
        }
    }

    /// Retries blocked appends in order until one is refused again.
    fn unblock(&mut self) {
        while let Some(b) = self.blocked.pop_front() {
            let before = self.blocked.len();
            self.append(b.record, b.reply, b.since);
            if self.blocked.len() > before {
                break;
            }
        }
        self.run_deferred();
    }

    fn expire_blocked(&mut self) {
        while let Some(b) = self.blocked.front() {
            let waited = b.since.elapsed();
            if waited < self.backpressure_timeout {
                break;
            }
            if let Some(b) = self.blocked.pop_front() {
                let _ = b.reply.send(Err(Error::BackpressureTimeout { waited }));
            }
        }
        self.run_deferred();
    }

    /// Moves requests onto the store and events into replies.
    fn drain(&mut self) {
        while let Some(request) = self.machine.poll_request() {
            let store = self.store.clone();
            self.in_flight.push(Box::pin(async move {
                (request.id, execute(store, request.op).await)
            }));
        }
        while let Some(event) = self.machine.poll_event() {
            self.event(event);
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
                let rest = self.appends.split_off(&AppendId(last_append.0 + 1));
                for (append, (reply, since)) in std::mem::replace(&mut self.appends, rest) {
                    if self.latencies.len() == LATENCY_WINDOW {
                        self.latencies.pop_front();
                    }
                    self.latencies.push_back(since.elapsed());
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
        if let Some(r) = self.ready.take() {
            let _ = r.send(Err(e.clone()));
        }
        for (_, (r, _)) in std::mem::take(&mut self.appends) {
            let _ = r.send(Err(e.clone()));
        }
        for b in std::mem::take(&mut self.blocked) {
            let _ = b.reply.send(Err(e.clone()));
        }
        for (_, r) in std::mem::take(&mut self.flushes) {
            let _ = r.send(Err(e.clone()));
        }
        for r in std::mem::take(&mut self.deferred) {
            let _ = r.send(Err(e.clone()));
        }
        for (_, r) in std::mem::take(&mut self.generations) {
            let _ = r.send(Err(e.clone()));
        }
        if let Some(r) = self.closing.take() {
            let _ = r.send(Err(e.clone()));
        }
        self.failed = Some(e);
    }
}

fn far_future() -> Instant {
    static FAR: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *FAR.get_or_init(|| Instant::now() + Duration::from_secs(86_400 * 365))
}
