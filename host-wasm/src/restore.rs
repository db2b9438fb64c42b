//! `Wal.restore` from JS (PROTOCOL.md §4 "Restore"), the native host's `Wal::restore`:
//! pending appends and the memtable are flushed first, so every durable entry counts, then
//! the writer commits the restored version.

use js_sys::{Object, Promise, Reflect};
use tidewal_core::writer::{RestoreTarget, Restored};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::drop::command;
use crate::error::invalid;
use crate::store::set;
use crate::wal::Wal;

/// `{ toPosition }`, `{ toTime }` or `{ toVersion }`: exactly one, a whole number.
fn target(to: &JsValue) -> Result<RestoreTarget, JsValue> {
    let field = |name: &str| -> Result<Option<u64>, JsValue> {
        let v = Reflect::get(to, &name.into()).unwrap_or(JsValue::UNDEFINED);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        match v.as_f64() {
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 2f64.powi(53) => Ok(Some(n as u64)),
            _ => Err(invalid(format!(
                "restore: {name} must be a whole number from 0, not {v:?}"
            ))),
        }
    };
    if !to.is_object() {
        return Err(invalid(
            "restore: give { toPosition }, { toTime } (unix ms) or { toVersion }",
        ));
    }
    let given = [
        field("toPosition")?.map(RestoreTarget::Position),
        field("toTime")?.map(RestoreTarget::Time),
        field("toVersion")?.map(RestoreTarget::Version),
    ];
    let mut given = given.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(t), None) => Ok(t),
        _ => Err(invalid(
            "restore: give exactly one of toPosition, toTime (unix ms) and toVersion",
        )),
    }
}

fn restored(r: Restored) -> JsValue {
    let o = Object::new();
    set(&o, "to", r.to as f64);
    set(&o, "version", r.version as f64);
    set(&o, "fromVersion", r.from_version as f64);
    let as_of = r
        .as_of_version
        .map_or(JsValue::NULL, |v| JsValue::from(v as f64));
    set(&o, "asOfVersion", as_of);
    set(&o, "generationsKept", r.generations_kept as f64);
    set(&o, "generationsRewritten", r.generations_rewritten as f64);
    set(&o, "generationsCopied", r.generations_copied as f64);
    set(&o, "generationsRetired", r.generations_retired as f64);
    set(&o, "rows", r.rows as f64);
    o.into()
}

#[wasm_bindgen]
impl Wal {
    /// Restores the log: from now on it holds only the entries below `toPosition`, the
    /// entries up to `toTime` (unix ms), or version `toVersion`'s entries followed by what
    /// the log gained past that version's cursor since (the version below a restore undoes
    /// it). The cursor does not move back: new appends land past it. Flushes first. Resolves
    /// to what it did; rejects, nothing written, with `RestoreError` naming what is wrong
    /// (a WAL-only log, a position past the end, a time before the first entry, a version
    /// never committed or no longer kept), or `InvalidInputError` for a bad argument.
    #[wasm_bindgen(unchecked_return_type = "Promise<Restored>")]
    pub fn restore(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RestoreTo")] to: JsValue,
    ) -> Promise {
        let target = match target(&to) {
            Ok(t) => t,
            Err(e) => return Promise::reject(&e),
        };
        let driver = self.driver.clone();
        future_to_promise(async move {
            command(&driver, |s, r, now| s.flush(r, now)).await?;
            let flushed = command(&driver, |s, r, now| s.flush_memtable(r, now)).await;
            // A WAL-only log has no memtable: the restore itself refuses it, by name.
            if let Err(e) = flushed {
                let wrong_mode = js_sys::Reflect::get(&e, &"name".into())
                    .ok()
                    .and_then(|n| n.as_string())
                    .is_some_and(|n| n == "InvalidInputError");
                if !wrong_mode {
                    return Err(e);
                }
            }
            command(&driver, move |s, r, now| s.restore(target, r, now))
                .await
                .map(restored)
        })
    }
}
