//! `MemoryStore`: the core's in-memory store (real conditional semantics) behind the JS store
//! contract, for pages, tests and benchmarks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use tidewal_core::{MemStore, Op, Response};
use wasm_bindgen::prelude::*;

use crate::error::invalid;
use crate::store::{js_meta, js_store_error, set};

/// An object store in memory, shared by every `Wal` given it (clones share it too). A `Wal`
/// reaches it directly, not through its JS methods (see `registered`).
#[wasm_bindgen]
#[derive(Clone)]
pub struct MemoryStore {
    inner: Rc<RefCell<MemStore>>,
    id: u32,
}

/// The JS property a `MemoryStore` answers with its registry id.
const ID_KEY: &str = "__tidewalMemoryStoreId";

/// The last id given out, and the live stores by id.
type Registry = (u32, HashMap<u32, Weak<RefCell<MemStore>>>);

thread_local! {
    /// Every live `MemoryStore` by id: a JS object only hands us a handle, so this is how a
    /// `Wal` finds the Rust store behind one (without unsafe code).
    static REGISTRY: RefCell<Registry> = RefCell::default();
}

/// The Rust store behind `obj`, if it is a live `MemoryStore` of this module.
pub(crate) fn registered(obj: &JsValue) -> Option<Rc<RefCell<MemStore>>> {
    let f: js_sys::Function = Reflect::get(obj, &ID_KEY.into()).ok()?.dyn_into().ok()?;
    let id = f.call0(obj).ok()?.as_f64()? as u32;
    REGISTRY.with(|r| r.borrow().1.get(&id).and_then(Weak::upgrade))
}

impl Default for MemoryStore {
    fn default() -> Self {
        let inner = Rc::new(RefCell::new(MemStore::new()));
        let id = REGISTRY.with(|r| {
            let mut r = r.borrow_mut();
            r.0 += 1;
            let id = r.0;
            // Forget stores that are gone, so the map stays as small as the live set.
            r.1.retain(|_, w| w.strong_count() > 0);
            r.1.insert(id, Rc::downgrade(&inner));
            id
        });
        MemoryStore { inner, id }
    }
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

    /// This store's registry id (how a `Wal` recognises it).
    #[wasm_bindgen(js_name = __tidewalMemoryStoreId, skip_typescript)]
    pub fn registry_id(&self) -> u32 {
        self.id
    }

    fn run(&self, op: Op) -> Response {
        self.inner.borrow_mut().execute(&op)
    }

    /// Reads an object: `{ body }`; with `opts.range` (`{ offset, length }`) only those
    /// bytes: `{ body, offset }` (`InvalidRange` if they are not all there).
    #[wasm_bindgen(unchecked_return_type = "Promise<{ body: Uint8Array; offset?: number }>")]
    pub fn get(
        &self,
        path: String,
        #[wasm_bindgen(
            unchecked_param_type = "{ range?: { offset: number; length: number } } | undefined"
        )]
        opts: JsValue,
    ) -> Promise {
        let range = Reflect::get(&opts, &"range".into())
            .ok()
            .filter(|r| r.is_object())
            .map(|r| {
                let num = |k: &str| Reflect::get(&r, &k.into()).ok().and_then(|v| v.as_f64());
                (num("offset"), num("length"))
            });
        let op = match range {
            None => Op::Get { path },
            Some((Some(offset), Some(length)))
                if offset >= 0.0
                    && length > 0.0
                    && offset.fract() == 0.0
                    && length.fract() == 0.0 =>
            {
                let start = offset as u64;
                Op::GetRange {
                    path,
                    range: start..start + length as u64,
                }
            }
            Some(_) => {
                return settle(Err(invalid(
                    "opts.range needs whole `offset` and `length` > 0",
                )))
            }
        };
        let offset = match &op {
            Op::GetRange { range, .. } => Some(range.start),
            _ => None,
        };
        settle(match self.run(op) {
            Response::Get(Ok(body)) => {
                let o = Object::new();
                set(&o, "body", Uint8Array::from(&body[..]));
                if let Some(offset) = offset {
                    set(&o, "offset", offset as f64);
                }
                Ok(o.into())
            }
            Response::Get(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// Writes an object: `opts.mode` `'create'` is create-if-absent (fails with
    /// `AlreadyExists`; all a log asks for); `'overwrite'` (the default) replaces it.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn put(
        &self,
        path: String,
        body: Uint8Array,
        #[wasm_bindgen(unchecked_param_type = "{ mode?: 'create' | 'overwrite' } | undefined")]
        opts: JsValue,
    ) -> Promise {
        let body = Bytes::from(body.to_vec());
        settle(match field(&opts, "mode").as_string().as_deref() {
            Some("create") => match self.run(Op::Put {
                path,
                body: body.into(),
            }) {
                Response::Put(Ok(())) => Ok(JsValue::UNDEFINED),
                Response::Put(Err(e)) => Err(js_store_error(&e)),
                _ => Err(invalid("unexpected answer")),
            },
            None | Some("overwrite") => {
                self.inner.borrow_mut().overwrite(&path, body);
                Ok(JsValue::UNDEFINED)
            }
            Some(other) => Err(invalid(format!("unknown put mode {other:?}"))),
        })
    }

    /// Every object under `prefix` sorting after `after`, in order.
    #[wasm_bindgen(unchecked_return_type = "Promise<ObjectMeta[]>")]
    pub fn list(&self, prefix: String, after: Option<String>) -> Promise {
        settle(match self.run(Op::List { prefix, after }) {
            Response::List(Ok(items)) => Ok(items.iter().map(js_meta).collect::<Array>().into()),
            Response::List(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
        })
    }

    /// Deletes an object (a missing one is a success).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
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

    /// Replaces an existing object's bytes (to test corruption handling).
    pub fn tamper(&self, path: &str, body: Uint8Array) {
        self.inner
            .borrow_mut()
            .tamper(path, Bytes::from(body.to_vec()));
    }
}
