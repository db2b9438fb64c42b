//! Stores that misbehave: no conditional puts, and puts that land but report failure (object
//! store clients retry 5xx even for conditional puts, so a create that landed can come back
//! as an error or as AlreadyExists).

mod common;

use common::ids;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tidewal::{Error, Options, Wal};

#[derive(Debug, Default)]
struct Faults {
    /// Answer every create with NotImplemented.
    no_create: bool,
    /// Every n-th put lands, then reports a generic (5xx-like) error.
    land_then_error_every: u64,
    /// Every n-th put lands, then reports AlreadyExists (a retried create).
    land_then_exists_every: u64,
}

#[derive(Debug)]
struct FaultStore {
    inner: InMemory,
    faults: Faults,
    puts: AtomicU64,
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({:?})", self.faults)
    }
}

fn every(n: u64, count: u64) -> bool {
    n > 0 && count.is_multiple_of(n)
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if self.faults.no_create && matches!(opts.mode, PutMode::Create) {
            return Err(object_store::Error::NotImplemented {
                operation: "put with PutMode::Create".into(),
                implementer: "FaultStore".into(),
            });
        }
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if every(self.faults.land_then_error_every, n) {
            return Err(object_store::Error::Generic {
                store: "FaultStore",
                source: "injected: landed, then 503".into(),
            });
        }
        if every(self.faults.land_then_exists_every, n) {
            return Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "injected: retried create found its own object".into(),
            });
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
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

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn store(faults: Faults) -> Arc<FaultStore> {
    Arc::new(FaultStore {
        inner: InMemory::new(),
        faults,
        puts: AtomicU64::new(0),
    })
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(id: i64) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![id]))]).unwrap()
}

#[tokio::test]
async fn a_store_without_create_if_absent_is_refused_at_once() {
    let s = store(Faults {
        no_create: true,
        ..Faults::default()
    });
    let err = Wal::open(s.clone(), "", schema(), Options::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("needs conditional puts"), "{err}");
    assert_eq!(s.puts.load(Ordering::SeqCst), 0, "nothing written");
}

#[tokio::test]
async fn puts_that_land_then_fail_lose_nothing_and_duplicate_nothing() {
    let s = store(Faults {
        land_then_error_every: 3,
        land_then_exists_every: 5,
        ..Faults::default()
    });
    let mut options = Options::default();
    options.writer.group_commit.max_records = 1; // one entry per append: many puts
    let wal = Wal::open(s.clone(), "p", schema(), options.clone())
        .await
        .unwrap();
    let handles: Vec<_> = (0..200)
        .map(|i| wal.append_nowait(&batch(i)).unwrap())
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(
        ids(&wal.scan().try_collect::<Vec<_>>().await.unwrap()),
        (0..200).collect::<Vec<_>>()
    );
    wal.close().await.unwrap();
    let again = Wal::open(s, "p", schema(), options).await.unwrap();
    assert_eq!(
        ids(&again.scan().try_collect::<Vec<_>>().await.unwrap()),
        (0..200).collect::<Vec<_>>()
    );
}

#[test]
fn the_hardware_crc_is_the_protocol_crc() {
    let mut data = vec![0u8; 100_003];
    let mut x = 0x1234_5678u32;
    for b in &mut data {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    for cut in [0, 1, 7, 4096, 99_999] {
        let (a, b) = data.split_at(cut);
        let hw = crc32c::crc32c_append(crc32c::crc32c_append(0, a), b);
        assert_eq!(hw, tidewal_core::crc32c::crc32c(&data));
    }
}
