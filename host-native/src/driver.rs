//! The writer task: one per log. It executes the session's requests concurrently, feeds the
//! answers back and sleeps until the next deadline. Who waits for what is the core's
//! `Session`; no protocol logic lives here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::ObjectStore;
use tidewal_core::{Ack, Error, Record, RequestId, Response, Session, Stats};
use tokio::sync::{mpsc, oneshot};

use crate::store::{execute, OpKind};

type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(crate) enum Command {
    Append { record: Record, reply: Reply<Ack> },
    Flush { reply: Reply<()> },
    FlushMemtable { reply: Reply<Option<u64>> },
    Close { reply: Reply<()> },
    Stats { reply: oneshot::Sender<Stats> },
}

/// The session's way to answer a caller waiting on `tx`.
pub(crate) fn reply<T: Send + 'static>(tx: Reply<T>) -> tidewal_core::Reply<T> {
    Box::new(move |result| drop(tx.send(result)))
}

pub(crate) struct Driver {
    session: Session,
    store: Arc<dyn ObjectStore>,
    origin: Instant,
    in_flight: FuturesUnordered<BoxFuture<'static, (RequestId, Response)>>,
}

impl Driver {
    pub(crate) fn new(session: Session, store: Arc<dyn ObjectStore>, origin: Instant) -> Self {
        Driver {
            session,
            store,
            origin,
            in_flight: FuturesUnordered::new(),
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.start_requests();
        loop {
            let wake = self.session.wake_at().map(|at| self.origin + at);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    // Every handle is gone: nothing can wait for us any more.
                    None => return,
                },
                Some((id, response)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    let now = self.now();
                    self.session.handle_response(id, response, now);
                }
                _ = sleep_until(wake), if wake.is_some() => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
            }
            self.start_requests();
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        let s = &mut self.session;
        match command {
            Command::Append { record, reply: r } => s.append(vec![record], reply(r), now),
            Command::Flush { reply: r } => s.flush(reply(r), now),
            Command::FlushMemtable { reply: r } => s.flush_memtable(reply(r), now),
            Command::Close { reply: r } => s.close(reply(r), now),
            Command::Stats { reply } => drop(reply.send(s.stats())),
        }
    }

    /// Each request runs as its own task: a store's CPU work (copying a body, TLS) spreads
    /// over the runtime's threads instead of queueing on this one.
    fn start_requests(&mut self) {
        while let Some(request) = self.session.poll_request() {
            let kind = OpKind::of(&request.op);
            let task = tokio::spawn(execute(self.store.clone(), request.op));
            self.in_flight.push(Box::pin(async move {
                let response = task.await.unwrap_or_else(|e| kind.failed(e));
                (request.id, response)
            }));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}
