//! `MemoryStore`: the core's in-memory store (real conditional semantics) behind the JS store
//! contract, for pages, tests and benchmarks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use tidewal_core::{MemStore, Op, PutMode, Response};
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

    /// Reads an object, or `range` (`{start, end}`, end exclusive) of it.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ body: Uint8Array; path: string; size: number; etag?: string }>"
    )]
    pub fn get(
        &self,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "{ start: number; end: number } | undefined")] range: JsValue,
    ) -> Promise {
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
    #[wasm_bindgen(unchecked_return_type = "Promise<{ etag?: string }>")]
    pub fn put(
        &self,
        path: String,
        body: Uint8Array,
        #[wasm_bindgen(
            unchecked_param_type = "{ mode?: 'create' | 'ifMatch' | 'overwrite'; etag?: string } | undefined"
        )]
        opts: JsValue,
    ) -> Promise {
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
        settle(
            match self.run(Op::Put {
                path,
                body: body.into(),
                mode,
            }) {
                Response::Put(Ok(tag)) => {
                    let o = Object::new();
                    if let Some(t) = tag {
                        set(&o, "etag", t);
                    }
                    Ok(o.into())
                }
                Response::Put(Err(e)) => Err(js_store_error(&e)),
                _ => Err(invalid("unexpected answer")),
            },
        )
    }

    /// An object's `{path, size, etag}`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ObjectMeta>")]
    pub fn head(&self, path: String) -> Promise {
        settle(match self.run(Op::Head { path }) {
            Response::Head(Ok(m)) => Ok(js_meta(&m).into()),
            Response::Head(Err(e)) => Err(js_store_error(&e)),
            _ => Err(invalid("unexpected answer")),
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

    /// Replaces an object's bytes without changing its etag (to test corruption handling).
    pub fn tamper(&self, path: &str, body: Uint8Array) {
        self.inner
            .borrow_mut()
            .tamper(path, Bytes::from(body.to_vec()));
    }
}
