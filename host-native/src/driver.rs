//! The one drive loop of this host, for every core machine: it runs each request against the
//! store as its own task, feeds the answers back, sleeps until the machine's next deadline and
//! hands events to a [`Role`] (what differs between a writer and a reader: where commands
//! come from and where events go). The rules are the core's `Machine` contract.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::ObjectStore;
use tidewal_core::{Machine, Output, Request, RequestId, Response, StoreError, StoreErrorKind};

use crate::store::execute;

/// What one kind of task does around its machine.
pub(crate) trait Role: Send {
    /// The machine it drives.
    type Machine: Machine + Send;
    /// What its callers send (`Infallible` for a task nobody commands).
    type Command: Send;

    /// The next command; `None` once no caller can send any more (the loop ends). By
    /// default none ever comes: the machine alone decides when the loop ends.
    fn next_command(&mut self) -> impl Future<Output = Option<Self::Command>> + Send {
        std::future::pending()
    }

    /// Applies a command to the machine (a role with commands implements it).
    fn command(&mut self, machine: &mut Self::Machine, command: Self::Command, now: Duration) {
        let _ = (machine, command, now);
    }

    /// Hands an event on; `Break` ends the loop (nobody listens, or the machine failed).
    fn event(
        &mut self,
        event: <Self::Machine as Machine>::Event,
    ) -> impl Future<Output = ControlFlow<()>> + Send;
}

/// Drives `machine` until it is done, its role says stop, or no command can come any more;
/// then hands the role back (with whatever it gathered). `origin` is the instant the
/// machine's clock started at.
pub(crate) async fn drive<R: Role>(
    mut machine: R::Machine,
    store: Arc<dyn ObjectStore>,
    origin: Instant,
    mut role: R,
) -> R {
    let mut in_flight: FuturesUnordered<BoxFuture<'static, (RequestId, Response)>> =
        FuturesUnordered::new();
    loop {
        let wake = loop {
            match machine.poll_output() {
                Output::Request(request) => in_flight.push(start(store.clone(), request)),
                Output::Event(event) => {
                    if role.event(event).await.is_break() {
                        return role;
                    }
                }
                Output::Wait(at) => break at.map(|at| origin + at),
                Output::Done => return role,
            }
        };
        tokio::select! {
            command = role.next_command() => match command {
                Some(c) => role.command(&mut machine, c, origin.elapsed()),
                None => return role,
            },
            Some((id, response)) = in_flight.next(), if !in_flight.is_empty() => {
                machine.handle_response(id, response, origin.elapsed());
            }
            _ = sleep_until(wake), if wake.is_some() => machine.handle_timeout(origin.elapsed()),
        }
    }
}

/// Each request runs as its own task: a store's CPU work (copying a body, TLS) spreads over
/// the runtime's threads instead of queueing on the driver's. A task that dies is answered
/// `Unknown`, so a put counts as ambiguous and the core reads back.
fn start(
    store: Arc<dyn ObjectStore>,
    request: Request,
) -> BoxFuture<'static, (RequestId, Response)> {
    let kind = request.op.kind();
    let task = tokio::spawn(execute(store, request.op));
    Box::pin(async move {
        let response = task.await.unwrap_or_else(|e| {
            let why = format!("store task failed: {e}");
            kind.failed(StoreError::new(StoreErrorKind::Unknown, why))
        });
        (request.id, response)
    })
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}
