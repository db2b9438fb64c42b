//! The stores every system runs on, one instance per process shared by all systems of a cell,
//! behind a wrapper that counts PUT requests (so PUTs per MB are counted the same way for all).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Counts PUT requests (single puts and multipart uploads) passing through.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn ObjectStore>,
    puts: AtomicU64,
}

impl Counting {
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.puts.fetch_add(1, Ordering::Relaxed);
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

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The store named `name`: `throttled-<ms>` (InMemory with that latency per PUT and per GET),
/// `local` (a fresh directory under `dir`), `s3` (the `AWS_*` endpoint, bucket
/// `TIDEWAL_S3_BUCKET`, a fresh prefix).
pub fn open(name: &str, dir: &std::path::Path, run: &str) -> Result<Arc<Counting>, String> {
    let inner: Arc<dyn ObjectStore> = if let Some(ms) = name.strip_prefix("throttled-") {
        let ms: u64 = ms.parse().map_err(|_| format!("bad store {name}"))?;
        let config = ThrottleConfig {
            wait_put_per_call: Duration::from_millis(ms),
            wait_get_per_call: Duration::from_millis(ms),
            wait_list_per_call: Duration::from_millis(ms),
            ..ThrottleConfig::default()
        };
        Arc::new(ThrottledStore::new(InMemory::new(), config))
    } else if name == "local" {
        let path = dir.join(run);
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        Arc::new(LocalFileSystem::new_with_prefix(&path).map_err(|e| e.to_string())?)
    } else if name == "s3" {
        let bucket = std::env::var("TIDEWAL_S3_BUCKET")
            .map_err(|_| "s3 needs TIDEWAL_S3_BUCKET and AWS_*")?;
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| e.to_string())?;
        Arc::new(PrefixStore::new(s3, format!("peers/{run}")))
    } else {
        return Err(format!("unknown store {name} (throttled-<ms>, local, s3)"));
    };
    Ok(Arc::new(Counting {
        inner,
        puts: AtomicU64::new(0),
    }))
}
