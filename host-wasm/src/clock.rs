//! Time and timers from the JS global scope (window, worker or workerd alike).

use core::time::Duration;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;
}

thread_local! {
    /// `performance.now` bound to `performance`, where the global scope has it.
    static PERFORMANCE_NOW: Option<(JsValue, Function)> = {
        let perf = Reflect::get(&js_sys::global(), &"performance".into()).ok();
        perf.filter(|p| p.is_object()).and_then(|p| {
            let now = Reflect::get(&p, &"now".into()).ok()?.dyn_into::<Function>().ok()?;
            Some((p, now))
        })
    };
}

/// Milliseconds on a monotonic clock where there is one (`performance.now()`), else wall time.
pub(crate) fn now_ms() -> f64 {
    PERFORMANCE_NOW
        .with(|p| {
            p.as_ref()
                .and_then(|(perf, now)| now.call0(perf).ok()?.as_f64())
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// Time since `origin_ms`, as the machines want it.
pub(crate) fn since(origin_ms: f64) -> Duration {
    Duration::from_secs_f64(((now_ms() - origin_ms) / 1000.0).max(0.0))
}

/// Resolves after `ms` milliseconds.
pub(crate) async fn sleep(ms: f64) {
    let promise = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms.max(0.0));
    });
    // A timer promise never rejects.
    let _ = JsFuture::from(promise).await;
}
