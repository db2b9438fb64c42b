//! The wasm host on a page of headless Chromium (wasm-bindgen-test).
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod scenarios;
