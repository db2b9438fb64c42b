//! The one drive loop of this host, for every core machine, on the JS event loop: it runs
//! the machine's requests on the JS store, feeds the answers back, arms one timer and hands
//! events to a [`Handler`] (DESIGN.md, "The driver loop"). The rules are the core's `Machine`
//! contract. The state sits in an `Rc<RefCell<_>>`; no borrow is held across an await or a
//! call into JS code that could call back (handlers run after the borrow ends).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use tidewal_core::{Machine, Output, Request};
use wasm_bindgen_futures::spawn_local;

use crate::clock::{now_ms, since, sleep};
use crate::store::Store;

/// What is done with a machine's events (called outside the driver's borrow: it may call
/// back into the machine's JS object).
pub(crate) trait Handler<E> {
    /// One event, in order.
    fn event(&self, event: E);
    /// The machine said `Done`: told once.
    fn done(&self) {}
}

/// A machine and what drives it.
pub(crate) struct Driver<M: Machine> {
    pub(crate) machine: M,
    store: Store,
    origin_ms: f64,
    /// The deadline (ms, on `now_ms`) of the armed timer, if any.
    timer_at: Option<f64>,
    handler: Rc<dyn Handler<M::Event>>,
    done: bool,
}

pub(crate) type Shared<M> = Rc<RefCell<Driver<M>>>;

impl<M: Machine + 'static> Driver<M> {
    /// Starts driving `machine`, whose clock started at `origin_ms`.
    pub(crate) fn start(
        machine: M,
        store: Store,
        origin_ms: f64,
        handler: Rc<dyn Handler<M::Event>>,
    ) -> Shared<M> {
        let shared = Rc::new(RefCell::new(Driver {
            machine,
            store,
            origin_ms,
            timer_at: None,
            handler,
            done: false,
        }));
        pump(&shared);
        shared
    }

    /// The machine's clock: time since this driver started.
    pub(crate) fn now(&self) -> core::time::Duration {
        since(self.origin_ms)
    }
}

/// Drains the machine (the contract's rule, after every input): requests to the store,
/// events to the handler, and the timer re-armed.
pub(crate) fn pump<M: Machine + 'static>(shared: &Shared<M>) {
    let mut requests: Vec<Request> = Vec::new();
    let mut events = Vec::new();
    let (store, handler, timer, finished) = {
        let mut d = shared.borrow_mut();
        let wake = loop {
            match d.machine.poll_output() {
                Output::Request(request) => match d.store.run_now(&request.op) {
                    // A store in wasm memory answers at once: no task, no JS round trip.
                    Some(response) => {
                        let now = d.now();
                        d.machine.handle_response(request.id, response, now);
                    }
                    None => requests.push(request),
                },
                Output::Event(event) => events.push(event),
                Output::Wait(at) => break Some(at),
                Output::Done => break None,
            }
        };
        let finished = wake.is_none() && !d.done;
        d.done |= finished;
        let wake = wake
            .flatten()
            .map(|at| d.origin_ms + at.as_secs_f64() * 1000.0);
        let timer = match (wake, d.timer_at) {
            (Some(at), Some(armed)) if at >= armed => None,
            (Some(at), _) => {
                d.timer_at = Some(at);
                Some(at)
            }
            (None, _) => None,
        };
        (d.store.clone(), d.handler.clone(), timer, finished)
    };
    for request in requests {
        let weak = Rc::downgrade(shared);
        let store = store.clone();
        spawn_local(async move {
            let response = store.execute(request.op).await;
            if let Some(shared) = weak.upgrade() {
                {
                    let mut d = shared.borrow_mut();
                    let now = d.now();
                    d.machine.handle_response(request.id, response, now);
                }
                pump(&shared);
            }
        });
    }
    if let Some(at) = timer {
        arm(Rc::downgrade(shared), at);
    }
    for event in events {
        handler.event(event);
    }
    if finished {
        handler.done();
    }
}

/// Wakes the driver at `at` (ms). A timer superseded by an earlier one still fires, finds
/// nothing due (or something due early) and re-arms: harmless.
fn arm<M: Machine + 'static>(weak: Weak<RefCell<Driver<M>>>, at: f64) {
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
        }
        pump(&shared);
    });
}
