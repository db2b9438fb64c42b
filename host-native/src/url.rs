//! Opening a store from a URL or a path.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;

use crate::error::Error;

/// The store and the prefix inside it that `url` names: `memory://[prefix]`,
/// `file:///abs/dir`, or a plain directory path (created if missing).
pub fn store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    if let Some(prefix) = url.strip_prefix("memory://") {
        return Ok((Arc::new(InMemory::new()), prefix.to_string()));
    }
    let dir = match url.split_once("://") {
        Some(("file", path)) => path,
        Some((scheme, _)) => {
            return Err(Error::Invalid(format!(
                "unsupported store scheme {scheme}:// (this build knows memory:// and file://)"
            )))
        }
        None => url,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("{dir}: {e}")))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((Arc::new(store), String::new()))
}
