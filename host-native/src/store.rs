//! Executes the core's requests against any `object_store::ObjectStore`.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutOptions};
use tidewal_core::{ObjectMeta, Op, Response, StoreError, StoreErrorKind};

/// Maps an object_store error to the kinds the protocol distinguishes. Anything not named is
/// `Unknown`: for a put it may or may not have been applied, and the core reads back.
pub fn store_error(e: object_store::Error) -> StoreError {
    use object_store::Error as E;
    let kind = match &e {
        E::NotFound { .. } => StoreErrorKind::NotFound,
        E::AlreadyExists { .. } => StoreErrorKind::AlreadyExists,
        E::NotSupported { .. } | E::NotImplemented { .. } => StoreErrorKind::NotSupported,
        _ => StoreErrorKind::Unknown,
    };
    StoreError::new(kind, e.to_string())
}

fn meta(m: object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        path: m.location.to_string(),
        size: m.size,
    }
}

/// A ranged get. Stores answer a range past the object's end differently (an error of their
/// own, or clipped bytes, which the core reads as `InvalidRange`): on an error the object's
/// size is looked up, so that a range past its end is `InvalidRange` whatever the store.
async fn get_range(
    store: &dyn ObjectStore,
    path: String,
    range: std::ops::Range<u64>,
) -> Result<bytes::Bytes, StoreError> {
    let location = Path::from(path.as_str());
    match store.get_range(&location, range.clone()).await {
        Ok(bytes) => Ok(bytes),
        Err(e @ object_store::Error::NotFound { .. }) => Err(store_error(e)),
        Err(e) => match store.head(&location).await {
            Ok(meta) if range.end > meta.size || range.start >= range.end => Err(StoreError::new(
                StoreErrorKind::InvalidRange,
                format!(
                    "{path}: bytes {}..{} of {} ({e})",
                    range.start, range.end, meta.size
                ),
            )),
            _ => Err(store_error(e)),
        },
    }
}

/// A folder prefix as object_store wants it (no trailing slash).
fn folder(prefix: &str) -> Path {
    Path::from(prefix.trim_end_matches('/'))
}

/// Runs one operation. The answer is the store's own: the core reads it as its contract
/// says (it sorts and filters lists, and counts a missing delete as done).
pub async fn execute(store: Arc<dyn ObjectStore>, op: Op) -> Response {
    match op {
        Op::Put { path, body } => {
            let result = store
                .put_opts(
                    &Path::from(path),
                    body.into_chunks().into_iter().collect(),
                    PutOptions::from(object_store::PutMode::Create),
                )
                .await;
            Response::Put(result.map(|_| ()).map_err(store_error))
        }
        Op::Get { path } => {
            let result = async { store.get(&Path::from(path)).await?.bytes().await }.await;
            Response::Get(result.map_err(store_error))
        }
        Op::GetRange { path, range } => Response::Get(get_range(&*store, path, range).await),
        Op::List { prefix, after } => {
            let folder = folder(&prefix);
            let listing = match after {
                Some(after) => store.list_with_offset(Some(&folder), &Path::from(after)),
                None => store.list(Some(&folder)),
            };
            let result = listing.map_ok(meta).try_collect::<Vec<_>>().await;
            Response::List(result.map_err(store_error))
        }
        Op::Delete { path } => {
            Response::Delete(store.delete(&Path::from(path)).await.map_err(store_error))
        }
        other => other.failed(StoreError::new(
            StoreErrorKind::NotSupported,
            "operation unknown to this host",
        )),
    }
}
