//! Opening a store from a URL or a path.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;

use tidewal_core::Error;

/// The store and the prefix inside it that `url` names: `memory://[prefix]`,
/// `file:///abs/dir`, a plain directory path (created if missing), or `s3://bucket/prefix`
/// configured from the usual `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...).
pub fn store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    if let Some(prefix) = url.strip_prefix("memory://") {
        return Ok((Arc::new(InMemory::new()), prefix.to_string()));
    }
    let dir = match url.split_once("://") {
        Some(("file", path)) => path,
        Some(("s3" | "s3a", _)) => return s3(url),
        Some((scheme, _)) => {
            return Err(Error::Invalid(format!(
                "unsupported store {scheme}:// (known: s3://, file://, memory://)"
            )))
        }
        None => url,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("{dir}: {e}")))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((Arc::new(store), String::new()))
}

fn s3(url: &str) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    let parsed = ::url::Url::parse(url).map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let options = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, prefix) = object_store::parse_url_opts(&parsed, options)
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    Ok((Arc::from(store), prefix.to_string()))
}
