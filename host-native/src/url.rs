//! Opening a store from a URL or a path.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;

use tidewal_core::Error;

/// A store, the log's prefix in it, and the log's identity for the writer registry
/// (`None`: a store of its own, as `memory://`).
pub(crate) type Resolved = (Arc<dyn ObjectStore>, String, Option<String>);

/// The store and the prefix inside it that `url` names: `memory://[prefix]`,
/// `file:///abs/dir`, a plain directory path (created if missing), or `s3://bucket/prefix`
/// configured from the usual `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...).
pub fn store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    resolve(url, true).map(|(store, prefix, _)| (store, prefix))
}

/// [`store_for`] for a log that must exist already (reading, inspecting): a missing
/// directory is `Invalid` naming it, and nothing is created.
pub fn existing_store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    resolve(url, false).map(|(store, prefix, _)| (store, prefix))
}

/// The store, prefix and identity of the log at `url`; `create` makes a missing directory.
pub(crate) fn resolve(url: &str, create: bool) -> Result<Resolved, Error> {
    if let Some(prefix) = url.strip_prefix("memory://") {
        return Ok((Arc::new(InMemory::new()), prefix.to_string(), None));
    }
    let dir = match url.split_once("://") {
        Some(("file", path)) => path,
        Some(("s3" | "s3a", _)) => return s3(url),
        Some((scheme, _)) => {
            return Err(Error::Invalid(format!(
                "{url}: unsupported store {scheme}:// (known: s3://, file://, memory://, or a directory)"
            )))
        }
        None => url,
    };
    if dir.is_empty() {
        return Err(Error::Invalid(format!("{url}: names no directory")));
    }
    if create {
        std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    } else if !std::path::Path::new(dir).is_dir() {
        return Err(Error::Invalid(format!(
            "no log at {url}: {dir} is not a directory"
        )));
    }
    let canonical =
        std::fs::canonicalize(dir).map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let store = LocalFileSystem::new_with_prefix(&canonical)
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let key = format!("file://{}", canonical.display());
    Ok((Arc::new(store), String::new(), Some(key)))
}

fn s3(url: &str) -> Result<Resolved, Error> {
    let parsed = ::url::Url::parse(url).map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let bucket = parsed.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(Error::Invalid(format!(
            "{url}: names no bucket (expected s3://BUCKET/PREFIX)"
        )));
    }
    let options = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, prefix) = object_store::parse_url_opts(&parsed, options)
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let endpoint = std::env::var("AWS_ENDPOINT").unwrap_or_default();
    let key = format!("s3://{bucket}/{}@{endpoint}", prefix.as_ref());
    Ok((Arc::from(store), prefix.to_string(), Some(key)))
}
