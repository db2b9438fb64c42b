//! `MemoryStore`: the core's in-memory store (real conditional semantics) behind the JS store
//! contract, for pages, tests and benchmarks.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use tidewal_core::{MemStore, Op, PutMode, Response};
use wasm_bindgen::prelude::*;

use crate::error::invalid;
use crate::store::{js_meta, js_store_error, set};

/// An object store in memory, shared by every `Wal` given it (clones share it too).
#[wasm_bindgen]
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Rc<RefCell<MemStore>>,
}

fn settle(r: Result<JsValue, JsValue>) -> Promise {
    match r {
        Ok(v) => Promise::resolve(&v),
        Err(e) => Promise::reject(&e),
    }
}

fn field(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

#[wasm_bindgen]
impl MemoryStore {
    /// An empty store.
    #[wasm_bindgen(constructor)]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn run(&self, op: Op) -> Response {
        self.inner.borrow_mut().execute(&op)
    }

    /// Reads an object, or `range` (`{start, end}`, end exclusive) of it.
    pub fn get(&self, path: String, range: JsValue) -> Promise {
        let range = if range.is_undefined() || range.is_null() {
            None
        } else {
            let (s, e) = (
                field(&range, "start").as_f64(),
                field(&range, "end").as_f64(),
            );
            match (s, e) {
                (Some(s), Some(e)) if 0.0 <= s && s <= e => Some(s as u64..e as u64),
                _ => return settle(Err(invalid("range must be {start, end} with start <= end"))),
            }
        };
        settle(match self.run(Op::Get { path, range }) {
            Response::Get(Ok(got)) => {
                let o = js_meta(&got.meta);
                set(&o, "body", Uint8Array::from(&got.body[..]));
                Ok(o.into())
            }
            Response::Get(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// Writes an object: `opts.mode` is `'create'` (fails with `AlreadyExists`), `'ifMatch'`
    /// with `opts.etag` (fails with `PreconditionFailed`), or `'overwrite'` (the default).
    pub fn put(&self, path: String, body: Uint8Array, opts: JsValue) -> Promise {
        let mode = match field(&opts, "mode").as_string().as_deref() {
            Some("create") => PutMode::Create,
            Some("ifMatch") => match field(&opts, "etag").as_string() {
                Some(tag) => PutMode::IfMatch(tag),
                None => return settle(Err(invalid("ifMatch needs opts.etag"))),
            },
            None | Some("overwrite") => PutMode::Overwrite,
            Some(other) => return settle(Err(invalid(format!("unknown put mode {other:?}")))),
        };
        let body = Bytes::from(body.to_vec());
        settle(match self.run(Op::Put { path, body, mode }) {
            Response::Put(Ok(tag)) => {
                let o = Object::new();
                if let Some(t) = tag {
                    set(&o, "etag", t);
                }
                Ok(o.into())
            }
            Response::Put(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// An object's `{path, size, etag}`.
    pub fn head(&self, path: String) -> Promise {
        settle(match self.run(Op::Head { path }) {
            Response::Head(Ok(m)) => Ok(js_meta(&m).into()),
            Response::Head(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// Every object under `prefix` sorting after `after`, in order.
    pub fn list(&self, prefix: String, after: Option<String>) -> Promise {
        settle(match self.run(Op::List { prefix, after }) {
            Response::List(Ok(items)) => Ok(items.iter().map(js_meta).collect::<Array>().into()),
            Response::List(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// Deletes an object (a missing one is a success).
    pub fn delete(&self, path: String) -> Promise {
        settle(match self.run(Op::Delete { path }) {
            Response::Delete(Ok(())) => Ok(JsValue::UNDEFINED),
            Response::Delete(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// Every path in the store, in order (for tests and the demo page).
    pub fn paths(&self) -> Vec<String> {
        self.inner.borrow().paths().map(String::from).collect()
    }

    /// Replaces an object's bytes without changing its etag (to test corruption handling).
    pub fn tamper(&self, path: &str, body: Uint8Array) {
        self.inner
            .borrow_mut()
            .tamper(path, Bytes::from(body.to_vec()));
    }
}
