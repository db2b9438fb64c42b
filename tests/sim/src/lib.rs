//! Deterministic simulation of the tidewal protocol.
//!
//! A seeded in-memory store with real create-if-absent / if-match semantics sits behind a
//! network with latency, jitter, reordering and faults injected before and after the store
//! applies a request. Writers (old ones kept alive as zombies), crashes, restarts, GC and a
//! tailing reader run against it; [`model::Model`] checks the invariants of `core/PROTOCOL.md`
//! §6 after every step. No threads and no sleeps: virtual time jumps to the next event. One
//! seed is one run.

pub mod model;
mod rng;
mod world;

pub use world::{run, Outcome};
