//! `Consumer`, a named consumer for JS: the core's `Consumer` machine on the one drive loop.
//! It claims its name, hands each position's rows to a callback from the committed position
//! on, and stores positions with `commit` (PROTOCOL.md §5, "Named consumers"). It opens no
//! writer, so it never fences one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Function, Promise, Reflect, Uint8Array};
use tidewal_core::arrow::{stream_schema, ArrowCodec};
use tidewal_core::{ConsumerConfig, ConsumerEvent, Error, ReadEvent};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::clock::now_ms;
use crate::driver::{pump, Driver, Handler, Shared};
use crate::error::{invalid, to_js};
use crate::store::Store;

/// What the machine's events settle, and where rows go.
struct State {
    codec: ArrowCodec,
    onbatch: Function,
    claimed: RefCell<Option<oneshot::Sender<Result<u64, Error>>>>,
    commits: RefCell<VecDeque<oneshot::Sender<Result<u64, Error>>>>,
    caught_up: RefCell<Option<u64>>,
    caught_up_waiters: RefCell<Vec<oneshot::Sender<u64>>>,
    failed: RefCell<Option<Error>>,
    finish: RefCell<Option<oneshot::Sender<Result<(), Error>>>>,
}

impl Handler<ConsumerEvent> for State {
    fn event(&self, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Claimed { position, .. } => {
                if let Some(tx) = self.claimed.borrow_mut().take() {
                    let _ = tx.send(Ok(position));
                }
            }
            ConsumerEvent::Read(ReadEvent::Records { position, records }) => {
                let ipc = Uint8Array::from(&self.codec.join_stream(&records)[..]);
                let at = JsValue::from(position as f64);
                let _ = self.onbatch.call2(&JsValue::NULL, &ipc, &at);
            }
            ConsumerEvent::Read(ReadEvent::CaughtUp { position }) => {
                *self.caught_up.borrow_mut() = Some(position);
                let waiters = std::mem::take(&mut *self.caught_up_waiters.borrow_mut());
                for tx in waiters {
                    let _ = tx.send(position);
                }
            }
            ConsumerEvent::Committed { version, .. } => {
                let tx = self.commits.borrow_mut().pop_front();
                if let Some(tx) = tx {
                    let _ = tx.send(Ok(version));
                }
            }
            ConsumerEvent::CommitFailed { error, .. } => {
                let tx = self.commits.borrow_mut().pop_front();
                if let Some(tx) = tx {
                    let _ = tx.send(Err(error.into()));
                }
            }
            ConsumerEvent::Fatal(e) => {
                let e: Error = e.into();
                if let Some(tx) = self.claimed.borrow_mut().take() {
                    let _ = tx.send(Err(e.clone()));
                }
                *self.failed.borrow_mut() = Some(e);
            }
            _ => {}
        }
    }

    fn done(&self) {
        if let Some(tx) = self.finish.borrow_mut().take() {
            let result = self.failed.borrow_mut().take().map_or(Ok(()), Err);
            let _ = tx.send(result);
        }
    }
}

/// One instance of a named consumer of a log.
#[wasm_bindgen]
pub struct Consumer {
    driver: Shared<tidewal_core::Consumer>,
    state: Rc<State>,
    position: u64,
    done: Promise,
}

fn string(options: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let v = Reflect::get(options, &key.into())?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| invalid(format!("option {key} must be a string")))
}

async fn settled<T>(rx: oneshot::Receiver<Result<T, Error>>) -> Result<T, JsValue> {
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_js(&e)),
        Err(_) => Err(to_js(&Error::Closed)),
    }
}

#[wasm_bindgen]
impl Consumer {
    /// Claims `options.name` on the log under `options.prefix` of `store` and starts reading
    /// at its committed position (the beginning for a new name): `onbatch(ipc, position)` gets
    /// each position's rows, in order, as an Arrow IPC stream. `options.schema` is the log's
    /// schema as an IPC stream; `follow` (default false) keeps reading new entries, checking
    /// every `pollMs` (default 100). Rejects with an `InvalidInputError` for a bad option, a
    /// `ConsumerError` for a bad name, and as the log's errors otherwise.
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ConsumerOptions")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(ipc: Uint8Array, position: number) => void")]
        onbatch: Function,
    ) -> Result<Consumer, JsValue> {
        let store = Store::new(store)?;
        if !options.is_object() {
            return Err(invalid(
                "options must be an object with `name` and `schema`",
            ));
        }
        let name = string(&options, "name")?.ok_or_else(|| invalid("option name is required"))?;
        let prefix = string(&options, "prefix")?.unwrap_or_default();
        let schema = Reflect::get(&options, &"schema".into())?
            .dyn_into::<Uint8Array>()
            .map_err(|_| invalid("option schema must be an Arrow IPC stream (Uint8Array)"))?
            .to_vec();
        let schema = stream_schema(&schema).map_err(|e| to_js(&e.into()))?;
        let codec = ArrowCodec::new(schema).map_err(|e| to_js(&e.into()))?;
        let mut cfg = ConsumerConfig::new(&prefix, &name);
        cfg.reader.follow = Reflect::get(&options, &"follow".into())?.is_truthy();
        if let Some(ms) = Reflect::get(&options, &"pollMs".into())?.as_f64() {
            cfg.reader.poll_interval = core::time::Duration::from_millis(ms.max(1.0) as u64);
        }
        // `onbatch` gets each position's rows copied into JS memory as it is reported, so
        // the reader holds nothing the caller could give back: no byte bound (its read-ahead
        // stays bounded in entries).
        cfg.reader.read_ahead_bytes = u64::MAX;
        let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
        let seed = (half() << 32) | half();
        let machine =
            tidewal_core::Consumer::new(cfg, Box::new(codec.clone()), seed, Default::default())
                .map_err(|e| to_js(&e.into()))?;
        let (claimed_tx, claimed) = oneshot::channel();
        let (finish_tx, finished) = oneshot::channel();
        let state = Rc::new(State {
            codec,
            onbatch,
            claimed: RefCell::new(Some(claimed_tx)),
            commits: RefCell::new(VecDeque::new()),
            caught_up: RefCell::new(None),
            caught_up_waiters: RefCell::new(Vec::new()),
            failed: RefCell::new(None),
            finish: RefCell::new(Some(finish_tx)),
        });
        let driver = Driver::start(machine, store, now_ms(), state.clone());
        let position = settled(claimed).await?;
        let done = future_to_promise(async move {
            settled(finished).await?;
            Ok(JsValue::UNDEFINED)
        });
        Ok(Consumer {
            driver,
            state,
            position,
            done,
        })
    }

    /// The committed position this instance started at.
    #[wasm_bindgen(getter)]
    pub fn position(&self) -> f64 {
        self.position as f64
    }

    /// Resolves with the position where the log ended once the consumer first caught up (at
    /// once if it already has).
    #[wasm_bindgen(js_name = caughtUp, unchecked_return_type = "Promise<number>")]
    pub fn caught_up(&self) -> Promise {
        let (tx, rx) = oneshot::channel();
        match *self.state.caught_up.borrow() {
            Some(position) => drop(tx.send(position)),
            None => self.state.caught_up_waiters.borrow_mut().push(tx),
        }
        future_to_promise(async move {
            let position = rx.await.map_err(|_| to_js(&Error::Closed))?;
            Ok(JsValue::from(position as f64))
        })
    }

    /// Stores `position` durably (every entry below it was consumed): resolves with the
    /// version holding it. Rejects with a `ConsumerError` below the committed position, past
    /// what was read, or once another instance claimed the name (then for good).
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn commit(&self, position: f64) -> Promise {
        let (tx, rx) = oneshot::channel();
        if !(position >= 0.0 && position.fract() == 0.0 && position < 2f64.powi(53)) {
            let e = invalid("a position is a whole number from 0");
            return future_to_promise(async move { Err(e) });
        }
        let refused = {
            let mut d = self.driver.borrow_mut();
            d.machine.commit(position as u64).err()
        };
        match refused {
            Some(e) => drop(tx.send(Err(e.into()))),
            None => self.state.commits.borrow_mut().push_back(tx),
        }
        pump(&self.driver);
        future_to_promise(async move { Ok(JsValue::from(settled(rx).await? as f64)) })
    }

    /// Stops reading, waits for the commits asked for so far, then resolves.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        self.driver.borrow_mut().machine.close();
        pump(&self.driver);
        self.done.clone()
    }

    /// Settles when the consumer stops: resolves once closed, rejects if it failed.
    #[wasm_bindgen(getter, unchecked_return_type = "Promise<void>")]
    pub fn done(&self) -> Promise {
        self.done.clone()
    }
}
