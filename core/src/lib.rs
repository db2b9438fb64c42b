//! # tidewal-core
//!
//! The sans-I/O heart of tidewal, an Arrow-native write-ahead log on object storage. The
//! machines here never touch a socket, file or clock: they emit [`Request`]s, consume
//! [`Response`]s, and report events, all through one contract, [`Machine`]. Time (`now`)
//! and entropy (a seed) are passed in.
//!
//! The object layout and every rule are in `PROTOCOL.md` beside this crate.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "arrow")]
pub mod arrow;
pub mod codec;
pub mod compaction;
pub mod config;
pub mod consumer;
pub mod crc32c;
pub mod error;
mod flow;
pub mod history;
pub mod host_error;
pub mod inspect;
pub mod io;
pub mod machine;
pub mod manifest;
pub mod mem;
pub mod paths;
mod policy;
pub mod reader;
mod requests;
pub mod retention;
pub mod session;
mod walk;
pub mod writer;

pub use codec::{
    Codec, CodecError, Entry, EntryHeader, EntryKind, Generation, GenerationHeader,
    GenerationIndex, IndexedEntry, IndexedRecord, PositionedRecords, RawCodec, Record,
};
pub use compaction::CompactionConfig;
pub use config::{GroupCommit, ReaderConfig, RetryPolicy, Start, WriterConfig};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerError, ConsumerEvent, ConsumerInfo, ConsumerLister,
};
pub use error::{AppendError, CommandError, ConfigError, FatalError};
pub use history::{Change, History, ManifestHistory, VersionInfo};
pub use host_error::Error;
pub use inspect::{Inspection, Inspector, Verified, Verifier, VerifyEvent};
pub use io::{
    Body, ObjectMeta, Op, OpKind, Request, RequestId, Response, StoreError, StoreErrorKind,
};
pub use machine::{Machine, Output};
pub use manifest::{
    Dropping, GenerationRecord, IndexRecord, Manifest, RestoredRecord, RetiredRecord,
};
pub use mem::MemStore;
pub use policy::RetentionPolicy;
pub use reader::{ReadEvent, Reader, StartPath, TimeStart};
pub use requests::IoCounters;
pub use session::{Ack, CompactionPass, Reply, Session, SessionEvent, Stats};
pub use writer::{
    collect_after, AppendId, Collected, Dropped, Event, RestoreError, RestoreTarget, Restored,
    WindowEstimates, Writer, WriterStats, REPLAY_PROGRESS_STEP, RHO_DEN, RHO_NUM,
};
