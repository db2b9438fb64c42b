//! Deterministic simulation of the tidewal protocol.
//!
//! A seeded in-memory store with real create-if-absent semantics sits behind a network with
//! latency, jitter, reordering and faults injected before and after the store applies a
//! request (`net`). Writers driven through [`tidewal_core::Session`] with recording replies
//! (a few bare `Writer`s too, the only ones that truncate), old ones kept alive as zombies,
//! crashes, restarts, GC and a tailing reader run against it (`actors`); [`model::Model`]
//! checks the invariants of `core/PROTOCOL.md` §6 after every step, and a `replies::Ledger`
//! per session the rules of its replies. No threads and no sleeps: virtual time jumps to the
//! next event (`world`). One seed is one run.

mod actors;
mod clocks;
mod compaction;
mod consumers;
mod flow;
mod history;
pub mod model;
mod net;
mod observe;
mod replies;
mod restore;
mod retention;
mod rng;
mod world;

pub use world::{run, Outcome};
