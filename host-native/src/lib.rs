//! # tidewal (native host)
//!
//! An Arrow-native write-ahead log on object storage, driven by tokio and `object_store`.
//! Everything protocol-related lives in `tidewal-core`; this crate executes its requests
//! against any `Arc<dyn ObjectStore>` (InMemory, LocalFileSystem, S3, GCS, Azure, ...).
//!
//! ```no_run
//! # async fn demo(batch: arrow_array::RecordBatch) -> Result<(), tidewal::Error> {
//! let wal = tidewal::Wal::open_url("./my-log", batch.schema(), Default::default()).await?;
//! let ack = wal.append(&batch).await?; // durable now
//! println!("at position {}", ack.position);
//! wal.close().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
mod consumer;
mod driver;
mod read;
mod registry;
mod store;
mod url;
mod wal;

pub use admin::{
    history, inspect, log_schema, verify, verify_with, Change, Inspection, ManifestHistory,
    Verified, VersionInfo,
};
pub use consumer::{consumers, Consumer, ConsumerInfo, ConsumerOptions};
pub use read::{read_log, Batches, Item, ReadOptions, Tailer};
pub use store::{execute, store_error};
pub use tidewal_core::Error;
pub use tidewal_core::{
    Ack, AppendId, Collected, CompactionConfig, CompactionPass, Dropped, RestoreError,
    RestoreTarget, Restored, RetentionPolicy, Start, Stats, WriterConfig, WriterStats,
};
pub use url::{existing_store_for, store_for};
pub use wal::{AppendHandle, Options, ReplayProgress, Wal};

use arrow_schema::SchemaRef;
use tidewal_core::arrow::ArrowCodec;

/// The Arrow codec for `schema`, with the hardware CRC-32C where the CPU has one (the same
/// checksum as the core's software one, many times faster).
pub fn codec(schema: SchemaRef) -> Result<ArrowCodec, Error> {
    Ok(ArrowCodec::new(schema)?.with_crc32c(crc32c::crc32c_append))
}
