//! The JS store contract (DESIGN.md): any object with `get`, `put`, `list` and `delete`
//! returning Promises. Converts the core's operations to calls and the answers back; error
//! `name`s pick the kinds the protocol distinguishes, anything else is "unknown".

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use tidewal_core::{MemStore, ObjectMeta, Op, Response, StoreError, StoreErrorKind};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::invalid;

/// Where a log's objects live: a JS store object, or a `MemoryStore` reached directly (its
/// objects are in wasm memory already: no copies across the JS boundary, no Promise per call).
#[derive(Clone)]
pub(crate) enum Store {
    Js(Rc<JsMethods>),
    Memory(Rc<RefCell<MemStore>>),
}

/// A JS store object with its four methods looked up once.
pub(crate) struct JsMethods {
    this: JsValue,
    get: Function,
    put: Function,
    list: Function,
    delete: Function,
}

/// Sets `key` on a plain object (cannot fail on one).
pub(crate) fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &key.into(), &value.into());
}

fn get_field(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// The kind a store error `name` stands for.
pub(crate) fn kind_of(name: &str) -> StoreErrorKind {
    match name {
        "NotFound" | "NotFoundError" => StoreErrorKind::NotFound,
        "AlreadyExists" => StoreErrorKind::AlreadyExists,
        "NotSupported" | "NotSupportedError" => StoreErrorKind::NotSupported,
        "InvalidRange" => StoreErrorKind::InvalidRange,
        _ => StoreErrorKind::Unknown,
    }
}

/// The `name` a store gives an error of `kind`.
pub(crate) fn name_of(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::NotFound => "NotFound",
        StoreErrorKind::AlreadyExists => "AlreadyExists",
        StoreErrorKind::NotSupported => "NotSupported",
        StoreErrorKind::InvalidRange => "InvalidRange",
        _ => "StoreError",
    }
}

fn store_error(e: JsValue) -> StoreError {
    let name = get_field(&e, "name").as_string().unwrap_or_default();
    let message = get_field(&e, "message")
        .as_string()
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    StoreError::new(kind_of(&name), format!("{name}: {message}"))
}

fn bad_answer(what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Unknown, format!("store answered {what}"))
}

/// A list item: `{ path, size }` (other fields are ignored).
fn meta(v: &JsValue) -> Result<ObjectMeta, StoreError> {
    let path = get_field(v, "path")
        .as_string()
        .ok_or_else(|| bad_answer("a list item without a string `path`"))?;
    let size = get_field(v, "size")
        .as_f64()
        .filter(|s| *s >= 0.0 && s.fract() == 0.0)
        .ok_or_else(|| bad_answer("a list item without a whole `size`"))?;
    Ok(ObjectMeta {
        path,
        size: size as u64,
    })
}

impl Store {
    /// A `MemoryStore` directly, any other object through its four methods (checked here).
    pub(crate) fn new(this: JsValue) -> Result<Store, JsValue> {
        if let Some(mem) = crate::memory::registered(&this) {
            return Ok(Store::Memory(mem));
        }
        JsMethods::new(this).map(|m| Store::Js(Rc::new(m)))
    }

    /// The answer at once, where the store is in wasm memory; `None`: use `execute`.
    pub(crate) fn run_now(&self, op: &Op) -> Option<Response> {
        match self {
            Store::Memory(mem) => Some(mem.borrow_mut().execute(op)),
            Store::Js(_) => None,
        }
    }

    /// Runs one operation.
    pub(crate) async fn execute(&self, op: Op) -> Response {
        match self {
            Store::Js(js) => js.execute(op).await,
            Store::Memory(mem) => mem.borrow_mut().execute(&op),
        }
    }
}

impl JsMethods {
    fn new(this: JsValue) -> Result<JsMethods, JsValue> {
        let method = |name: &str| {
            get_field(&this, name)
                .dyn_into::<Function>()
                .map_err(|_| invalid(format!("the store has no `{name}` method")))
        };
        Ok(JsMethods {
            get: method("get")?,
            put: method("put")?,
            list: method("list")?,
            delete: method("delete")?,
            this,
        })
    }

    /// Calls a method and waits for its Promise (or plain value).
    async fn call(&self, f: &Function, args: &[JsValue]) -> Result<JsValue, StoreError> {
        let array: Array = args.iter().collect();
        let returned = f.apply(&self.this, &array).map_err(store_error)?;
        JsFuture::from(Promise::resolve(&returned))
            .await
            .map_err(store_error)
    }

    /// Runs one operation. The answer is the store's own: the core reads it as its contract
    /// says (it sorts and filters lists, and counts a missing delete as done).
    async fn execute(&self, op: Op) -> Response {
        match op {
            Op::Put { path, body } => {
                // Create-if-absent is the only put the protocol makes; the mode is still named
                // so that a store which defaults to overwriting cannot get it wrong.
                let opts = Object::new();
                set(&opts, "mode", "create");
                // One copy out of wasm memory, piece by piece.
                let bytes = Uint8Array::new_with_length(body.len() as u32);
                let mut at = 0u32;
                for chunk in body.chunks() {
                    let end = at + chunk.len() as u32;
                    bytes.subarray(at, end).copy_from(chunk);
                    at = end;
                }
                let r = self
                    .call(&self.put, &[path.into(), bytes.into(), opts.into()])
                    .await;
                Response::Put(r.map(|_| ()))
            }
            Op::Get { path } => {
                let r = self.call(&self.get, &[path.as_str().into()]).await;
                Response::Get(r.and_then(|v| {
                    let body = get_field(&v, "body")
                        .dyn_into::<Uint8Array>()
                        .map_err(|_| bad_answer("a get without a Uint8Array `body`"))?;
                    Ok(Bytes::from(body.to_vec()))
                }))
            }
            Op::GetRange { path, range } => {
                // `get(path, { range })`: a store that reads only the range answers with the
                // `offset` it read from; one that ignores the argument answers the whole
                // object, which is cut here (so every store can serve a ranged read).
                let asked = Object::new();
                let r = Object::new();
                set(&r, "offset", range.start as f64);
                set(&r, "length", (range.end - range.start) as f64);
                set(&asked, "range", r);
                let answer = self
                    .call(&self.get, &[path.as_str().into(), asked.into()])
                    .await;
                Response::Get(answer.and_then(|v| {
                    let body = get_field(&v, "body")
                        .dyn_into::<Uint8Array>()
                        .map_err(|_| bad_answer("a get without a Uint8Array `body`"))?;
                    let offset = get_field(&v, "offset").as_f64();
                    if offset.is_some_and(|o| o == range.start as f64) {
                        return Ok(Bytes::from(body.to_vec()));
                    }
                    if offset.is_some() {
                        return Err(bad_answer("a ranged get from another offset"));
                    }
                    let whole = body.length() as u64;
                    if range.end > whole || range.start >= range.end {
                        return Err(StoreError::new(
                            StoreErrorKind::InvalidRange,
                            format!("{path}: bytes {}..{} of {whole}", range.start, range.end),
                        ));
                    }
                    let part = body.subarray(range.start as u32, range.end as u32);
                    Ok(Bytes::from(part.to_vec()))
                }))
            }
            Op::List { prefix, after } => {
                let after = after.as_deref().map_or(JsValue::UNDEFINED, JsValue::from);
                let r = self
                    .call(&self.list, &[prefix.as_str().into(), after])
                    .await;
                Response::List(r.and_then(|v| {
                    if !Array::is_array(&v) {
                        return Err(bad_answer("a list that is not an array"));
                    }
                    Array::from(&v).iter().map(|item| meta(&item)).collect()
                }))
            }
            Op::Delete { path } => {
                let r = self.call(&self.delete, &[path.into()]).await;
                Response::Delete(r.map(|_| ()))
            }
            other => other.failed(StoreError::new(
                StoreErrorKind::NotSupported,
                "operation unknown to this host",
            )),
        }
    }
}

/// A JS `Error` with `name` for a store failure (what a store written in Rust rejects with).
pub(crate) fn js_store_error(e: &StoreError) -> JsValue {
    let js = js_sys::Error::new(&e.message);
    js.set_name(name_of(e.kind));
    js.into()
}

/// The JS value a store resolves `meta` to.
pub(crate) fn js_meta(m: &ObjectMeta) -> Object {
    let o = Object::new();
    set(&o, "path", m.path.as_str());
    set(&o, "size", m.size as f64);
    o
}
