//! Errors as JS `Error` objects with a `name` callers can branch on.

use js_sys::Reflect;
use tidewal_core::Error;
use wasm_bindgen::JsValue;

/// The `name` of the JS error for `e`.
pub(crate) fn error_name(e: &Error) -> &'static str {
    match e {
        Error::Fenced { .. } => "FencedError",
        Error::Corrupt { .. } => "CorruptError",
        Error::SchemaMismatch { .. } => "SchemaMismatchError",
        Error::BackpressureTimeout { .. } => "BackpressureTimeoutError",
        Error::Store { .. } => "StoreError",
        Error::Unsupported { .. } => "UnsupportedError",
        Error::Invalid(_) => "InvalidInputError",
        Error::Closed => "ClosedError",
        Error::Consumer(_) => "ConsumerError",
        Error::HeldBack { .. } => "HeldBackError",
        Error::Restore(_) => "RestoreError",
        _ => "WalError",
    }
}

/// A JS `Error` for `e`, with `name` set and, where known, `path` and `epoch`.
pub(crate) fn to_js(e: &Error) -> JsValue {
    let js = js_sys::Error::new(&e.to_string());
    js.set_name(error_name(e));
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&js, &key.into(), &value);
    };
    match e {
        Error::Fenced { epoch } => set("epoch", JsValue::from(*epoch as f64)),
        Error::Corrupt { path, .. }
        | Error::Store { path, .. }
        | Error::Unsupported { path, .. } => set("path", path.into()),
        Error::HeldBack { name, position } => {
            set("consumer", name.as_str().into());
            set("position", JsValue::from(*position as f64));
        }
        _ => {}
    }
    js.into()
}

/// An `InvalidInputError` with this message.
pub(crate) fn invalid(why: impl Into<String>) -> JsValue {
    to_js(&Error::Invalid(why.into()))
}
