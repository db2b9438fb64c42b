//! One writer's driver on the JS event loop: it runs the session's requests on the JS store,
//! feeds the answers back and arms one timer (DESIGN.md, "The driver loop"). Who waits for what
//! is the core's `Session`. The state sits in an `Rc<RefCell<_>>`; no borrow is held across an
//! await or a call into JS code that could call back (`onfenced` runs after the borrow ends).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::Function;
use tidewal_core::Session;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::clock::{now_ms, since, sleep};
use crate::store::Store;

pub(crate) struct Driver {
    pub(crate) session: Session,
    store: Store,
    origin_ms: f64,
    /// The deadline (ms, on `now_ms`) of the armed timer, if any.
    timer_at: Option<f64>,
    /// JS callback fired once when the writer is fenced.
    pub(crate) onfenced: Option<Function>,
}

pub(crate) type Shared = Rc<RefCell<Driver>>;

impl Driver {
    pub(crate) fn start(session: Session, store: Store, origin_ms: f64) -> Shared {
        let shared = Rc::new(RefCell::new(Driver {
            session,
            store,
            origin_ms,
            timer_at: None,
            onfenced: None,
        }));
        pump(&shared);
        shared
    }

    /// The session's clock: time since this driver started.
    pub(crate) fn now(&self) -> core::time::Duration {
        since(self.origin_ms)
    }
}

/// Moves requests to the store, re-arms the timer, and fires `onfenced` (outside the borrow:
/// the callback may call into the `Wal`).
pub(crate) fn pump(shared: &Shared) {
    let (requests, store, timer, fenced) = {
        let mut d = shared.borrow_mut();
        let mut requests = Vec::new();
        while let Some(request) = d.session.poll_request() {
            match d.store.run_now(&request.op) {
                // A store in wasm memory answers at once: no task, no JS round trip.
                Some(response) => {
                    let now = d.now();
                    d.session.handle_response(request.id, response, now);
                }
                None => requests.push(request),
            }
        }
        let wake = d
            .session
            .wake_at()
            .map(|at| d.origin_ms + at.as_secs_f64() * 1000.0);
        let timer = match (wake, d.timer_at) {
            (Some(at), Some(armed)) if at >= armed => None,
            (Some(at), _) => {
                d.timer_at = Some(at);
                Some(at)
            }
            (None, _) => None,
        };
        let fenced = d
            .session
            .take_fenced()
            .and_then(|e| d.onfenced.clone().map(|f| (f, e)));
        (requests, d.store.clone(), timer, fenced)
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
                    d.session.handle_response(request.id, response, now);
                }
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
            d.session.handle_timeout(now);
        }
        pump(&shared);
    });
}
