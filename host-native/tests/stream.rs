//! Streaming reads: byte-bounded read-ahead (a consumer that stops pulling stops the reader),
//! column projection, and scans that stream.

mod common;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tidewal::{Error, Item, Options, ReadOptions, Wal};
use tidewal_core::GroupCommit;

/// An in-memory store that counts GETs of WAL slots.
#[derive(Debug, Default)]
struct Counting {
    inner: InMemory,
    slot_gets: AtomicU64,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting")
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if location.as_ref().contains("/wal/") || location.as_ref().starts_with("wal/") {
            self.slot_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("blob", DataType::Binary, false),
    ]))
}

const BLOB: usize = 16 << 10;

fn batch(id: i64) -> RecordBatch {
    let blob = vec![id as u8; BLOB];
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![id])),
            Arc::new(BinaryArray::from(vec![blob.as_slice()])),
        ],
    )
    .unwrap()
}

/// A WAL-only log of `n` one-batch entries (about 16 KiB each).
async fn wal_log(store: Arc<dyn ObjectStore>, n: i64) -> Wal {
    let mut options = Options::default();
    options.writer.wal_only = true;
    options.writer.group_commit = GroupCommit {
        max_bytes: 1,
        max_records: 1,
        interval: Duration::ZERO,
    };
    let wal = Wal::open(store, "", schema(), options).await.unwrap();
    for id in 0..n {
        wal.append(&batch(id)).await.unwrap();
    }
    wal
}

#[tokio::test]
async fn a_consumer_that_stops_pulling_stops_the_reader_near_the_bound() {
    let store = Arc::new(Counting::default());
    let wal = wal_log(store.clone(), 200).await;
    // The writer's own open walked the WAL: count the reader's GETs only.
    store.slot_gets.store(0, Ordering::SeqCst);
    let options = ReadOptions {
        read_ahead_bytes: 8 * BLOB as u64,
        ..ReadOptions::default()
    };
    let mut read = wal.read(&options).unwrap();
    let first = read.next().await.unwrap().unwrap();
    assert!(matches!(first, Item::Batch { position, .. } if position > 0));
    // The consumer holds one batch and pulls no more: the reader fills its bound and waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = store.slot_gets.load(Ordering::SeqCst);
    // The fence slot, the taken batch, eight held, and one estimate of overshoot (a slot's
    // size is only known once it arrives), far below the 200 entries of the log.
    assert!(held <= 12, "{held} slot GETs while the consumer waits");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.slot_gets.load(Ordering::SeqCst), held, "it waits");
    // Pulling again resumes it to the end.
    let mut ids = vec![];
    while let Some(item) = read.next().await {
        match item.unwrap() {
            Item::Batch { batch, .. } => ids.extend(common::ids(&[batch])),
            Item::CaughtUp { .. } => {}
        }
    }
    assert_eq!(ids, (1..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn scan_streams_and_a_bound_below_one_entry_still_reads_everything() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wal = wal_log(store, 30).await;
    let got: Vec<RecordBatch> = wal.scan().try_collect().await.unwrap();
    assert_eq!(common::ids(&got), (0..30).collect::<Vec<_>>());
    let options = ReadOptions {
        read_ahead_bytes: 1,
        ..ReadOptions::default()
    };
    let got: Vec<RecordBatch> = wal
        .read(&options)
        .unwrap()
        .batches()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(common::ids(&got), (0..30).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_projection_yields_only_the_named_columns_and_unknown_names_are_refused() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wal = wal_log(store, 5).await;
    wal.flush_memtable().await.ok();
    let options = ReadOptions {
        columns: Some(vec!["id".into()]),
        ..ReadOptions::default()
    };
    let read = wal.read(&options).unwrap();
    assert_eq!(read.schema().fields().len(), 1);
    let got: Vec<RecordBatch> = read.batches().try_collect().await.unwrap();
    assert!(got.iter().all(|b| b.num_columns() == 1));
    assert_eq!(common::ids(&got), (0..5).collect::<Vec<_>>());
    let bad = ReadOptions {
        columns: Some(vec!["id".into(), "nope".into()]),
        ..ReadOptions::default()
    };
    match wal.read(&bad).err().unwrap() {
        Error::UnknownColumn { column, columns } => {
            assert_eq!(column, "nope");
            assert_eq!(columns, vec!["id".to_string(), "blob".to_string()]);
        }
        other => panic!("expected UnknownColumn, got {other:?}"),
    }
    // Dropping a read stops it: the stream ends nothing, nothing hangs.
    let mut partial = wal.scan();
    assert!(partial.next().await.is_some());
    drop(partial);
}
