//! The wasm host in a dedicated Web Worker of headless Chromium: the same scenarios as a page.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

mod scenarios;

/// The scenarios above really ran in a worker: a worker scope, no document.
#[wasm_bindgen_test::wasm_bindgen_test]
fn this_is_a_dedicated_worker() {
    let global = js_sys::global();
    let has = |name: &str| js_sys::Reflect::has(&global, &name.into()).unwrap();
    assert!(has("importScripts") && has("postMessage"));
    assert!(!has("document"));
}
