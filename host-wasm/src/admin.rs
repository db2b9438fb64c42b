//! `inspect` and `verify` for JS: the core's `Inspector` and `Verifier` machines on the one
//! drive loop, answering with plain objects.

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Array, Object, Promise};
use tidewal_core::arrow::ArrowCodec;
use tidewal_core::{
    ConsumerInfo, ConsumerLister, Error, FatalError, History, Inspection, Inspector, Machine,
    ManifestHistory, Verified, Verifier, VerifyEvent,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::clock::now_ms;
use crate::driver::{Driver, Handler};
use crate::error::to_js;
use crate::store::{set, Store};

/// Settles `tx` with the machine's verdict, once.
struct Verdict<T>(RefCell<Option<oneshot::Sender<Result<T, Error>>>>);

impl<T> Verdict<T> {
    fn settle(&self, result: Result<T, FatalError>) {
        if let Some(tx) = self.0.borrow_mut().take() {
            let _ = tx.send(result.map_err(Error::from));
        }
    }
}

impl Handler<Result<Inspection, FatalError>> for Verdict<Inspection> {
    fn event(&self, result: Result<Inspection, FatalError>) {
        self.settle(result);
    }
}

impl Handler<Result<Vec<ConsumerInfo>, FatalError>> for Verdict<Vec<ConsumerInfo>> {
    fn event(&self, result: Result<Vec<ConsumerInfo>, FatalError>) {
        self.settle(result);
    }
}

impl Handler<VerifyEvent> for Verdict<Verified> {
    fn event(&self, event: VerifyEvent) {
        match event {
            VerifyEvent::Verified(v) => self.settle(Ok(v)),
            VerifyEvent::Fatal(e) => self.settle(Err(e)),
            _ => {}
        }
    }
}

impl Handler<Result<ManifestHistory, FatalError>> for Verdict<ManifestHistory> {
    fn event(&self, result: Result<ManifestHistory, FatalError>) {
        self.settle(result);
    }
}

/// Runs `machine` on `store` until its verdict.
async fn run<M, T>(machine: M, store: Store) -> Result<T, Error>
where
    M: Machine + 'static,
    Verdict<T>: Handler<M::Event> + 'static,
{
    let (tx, rx) = oneshot::channel();
    let handler = Rc::new(Verdict(RefCell::new(Some(tx))));
    let driver = Driver::start(machine, store, now_ms(), handler);
    let result = rx.await.unwrap_or(Err(Error::Closed));
    drop(driver);
    result
}

pub(crate) async fn inspection(store: Store, prefix: &str) -> Result<Inspection, Error> {
    run(Inspector::new(prefix), store).await
}

/// The codec of the log under `prefix` (its schema from the manifest; an error if there is
/// no log).
pub(crate) async fn log_codec(store: Store, prefix: &str) -> Result<ArrowCodec, Error> {
    let schema = inspection(store, prefix).await?.arrow_schema(prefix)?;
    Ok(ArrowCodec::new(schema)?)
}

/// What the log under `prefix` of `store` holds: `{ manifest, manifestVersions, wal }`, with
/// `manifest` the current manifest as stored (PROTOCOL.md §3) or `null` if there is no log,
/// and `wal` the WAL objects as `{ position, bytes }`. Writes nothing.
#[wasm_bindgen(unchecked_return_type = "Promise<Inspection>")]
pub fn inspect(
    #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
    prefix: String,
) -> Promise {
    future_to_promise(async move {
        let store = Store::new(store)?;
        let i = inspection(store, &prefix).await.map_err(|e| to_js(&e))?;
        let o = Object::new();
        let manifest = match &i.manifest {
            Some(m) => {
                let json = String::from_utf8_lossy(&m.encode()).into_owned();
                js_sys::JSON::parse(&json)?
            }
            None => JsValue::NULL,
        };
        set(&o, "manifest", manifest);
        let versions: Array = i
            .manifest_versions
            .iter()
            .map(|&v| JsValue::from(v as f64))
            .collect();
        set(&o, "manifestVersions", versions);
        let wal: Array = i
            .wal
            .iter()
            .map(|&(position, bytes)| {
                let w = Object::new();
                set(&w, "position", position as f64);
                set(&w, "bytes", bytes as f64);
                JsValue::from(w)
            })
            .collect();
        set(&o, "wal", wal);
        Ok(o.into())
    })
}

/// Reads every object of the log under `prefix` of `store` and checks every name, size and
/// checksum: resolves to the counts (`{ manifests, generations, walEntries, fences, rows,
/// bytes }`), rejects with the first problem (`CorruptError` with its `path`). Writes nothing.
#[wasm_bindgen(unchecked_return_type = "Promise<Verified>")]
pub fn verify(
    #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
    prefix: String,
) -> Promise {
    future_to_promise(async move {
        let store = Store::new(store)?;
        let checked = async {
            let i = inspection(store.clone(), &prefix).await?;
            let codec = ArrowCodec::new(i.arrow_schema(&prefix)?)?;
            run(Verifier::new(&prefix, i, Box::new(codec))?, store).await
        };
        let v = checked.await.map_err(|e| to_js(&e))?;
        let o = Object::new();
        set(&o, "manifests", v.manifests as f64);
        set(&o, "generations", v.generations as f64);
        set(&o, "walEntries", v.wal_entries as f64);
        set(&o, "fences", v.fences as f64);
        set(&o, "rows", v.rows as f64);
        set(&o, "bytes", v.bytes as f64);
        Ok(o.into())
    })
}

/// Every named consumer of the log under `prefix` of `store` (what a drop checks first).
pub(crate) async fn list_consumers(store: Store, prefix: &str) -> Result<Vec<ConsumerInfo>, Error> {
    let i = inspection(store.clone(), prefix).await?;
    run(ConsumerLister::new(prefix, i), store).await
}

/// The kept manifest versions of the log under `prefix` of `store` (PROTOCOL.md §3
/// "History"): `{ versions: [{ version, committedAt, epoch, cursor, droppedBefore,
/// generations, rows, bytes, change }], skipped }`, `committedAt` in unix ms or `null`,
/// `change` one of `create`, `claim`, `flush`, `truncate`, `?`; `skipped` names versions
/// collected between the listing and their read. Writes nothing.
#[wasm_bindgen(unchecked_return_type = "Promise<LogHistory>")]
pub fn history(
    #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
    prefix: String,
) -> Promise {
    future_to_promise(async move {
        let store = Store::new(store)?;
        let h = run(History::new(&prefix), store)
            .await
            .map_err(|e| to_js(&e))?;
        let versions: Array = h
            .versions
            .iter()
            .map(|v| {
                let o = Object::new();
                set(&o, "version", v.version as f64);
                let at = v
                    .committed_at
                    .map_or(JsValue::NULL, |t| JsValue::from(t as f64));
                set(&o, "committedAt", at);
                set(&o, "epoch", v.epoch as f64);
                set(&o, "cursor", v.cursor as f64);
                set(&o, "droppedBefore", v.dropped_before as f64);
                set(&o, "generations", v.generations as f64);
                set(&o, "rows", v.rows as f64);
                set(&o, "bytes", v.bytes as f64);
                set(&o, "change", v.change.name());
                JsValue::from(o)
            })
            .collect();
        let skipped: Array = h.skipped.iter().map(|&v| JsValue::from(v as f64)).collect();
        let o = Object::new();
        set(&o, "versions", versions);
        set(&o, "skipped", skipped);
        Ok(o.into())
    })
}

/// The named consumers of the log under `prefix` of `store`, by name: `{ name, position,
/// version, lagEntries, lagBytes }` (PROTOCOL.md §5, "Named consumers": the committed
/// position, and how far it is behind the log's end). Writes nothing.
#[wasm_bindgen(unchecked_return_type = "Promise<ConsumerInfo[]>")]
pub fn consumers(
    #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
    prefix: String,
) -> Promise {
    future_to_promise(async move {
        let store = Store::new(store)?;
        let listed = async {
            let i = inspection(store.clone(), &prefix).await?;
            run(ConsumerLister::new(&prefix, i), store).await
        };
        let list = listed.await.map_err(|e| to_js(&e))?;
        let out: Array = list
            .iter()
            .map(|c| {
                let o = Object::new();
                set(&o, "name", c.name.as_str());
                set(&o, "position", c.position as f64);
                set(&o, "version", c.version as f64);
                set(&o, "lagEntries", c.lag_entries as f64);
                set(&o, "lagBytes", c.lag_bytes as f64);
                JsValue::from(o)
            })
            .collect();
        Ok(out.into())
    })
}
