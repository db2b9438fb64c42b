//! # tidewal-wasm
//!
//! tidewal for browsers, Web Workers and edge runtimes: the `tidewal-core` machines driven from
//! JavaScript through wasm-bindgen. No protocol logic lives here (see `DESIGN.md` beside this
//! crate): requests go to a JS store object, answers come back, events settle Promises.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod clock;
mod consumer;
mod driver;
mod drop;
mod error;
mod memory;
mod options;
mod reader;
mod restore;
mod store;
mod typings;
mod wal;

pub use admin::{consumers, history, inspect, verify};
pub use consumer::Consumer;
pub use memory::MemoryStore;
pub use reader::LogReader;
pub use wal::{Tail, Wal};

use wasm_bindgen::prelude::wasm_bindgen;

/// The version of this package.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").into()
}
