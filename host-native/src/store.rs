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
    match refusal(&e) {
        Some(why) => StoreError::new(kind, format!("{why}: {e}")),
        None => StoreError::new(kind, e.to_string()),
    }
}

/// Why a request failed for good, in words a user can act on, when the store's error says
/// it will fail whatever is retried: credentials refused, no credentials found, no such
/// bucket. `None` for anything else (the core's retries decide).
pub(crate) fn refusal(e: &object_store::Error) -> Option<&'static str> {
    use object_store::Error as E;
    let message = e.to_string();
    let has = |s: &str| message.contains(s);
    Some(match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            "the store refused the credentials or the access"
        }
        _ if has("NoSuchBucket") => "the bucket does not exist",
        _ if has("169.254.169.254") => {
            "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        }
        _ if has("SignatureDoesNotMatch") || has("InvalidAccessKeyId") => {
            "the store refused the credentials"
        }
        _ if has("403 Forbidden") || has("401 Unauthorized") || has("AccessDenied") => {
            "the store refused the access"
        }
        _ => return None,
    })
}

/// One LIST of the log's manifest folder before a writer starts: a store that refuses for
/// good (see [`refusal`]), or that did not answer through object_store's own retries, fails
/// the open at once, naming `log` and the store's words, instead of after the core's
/// retries multiply them; any other answer is left to the core.
pub(crate) async fn preflight(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    log: &str,
) -> Result<(), tidewal_core::Error> {
    let dir = tidewal_core::paths::Paths::new(prefix).manifest_dir();
    let first = store.list(Some(&folder(&dir))).try_next().await;
    let unanswered = |e: &object_store::Error| {
        let message = e.to_string();
        let silent = message.contains("error sending request") || message.contains("timed out");
        silent.then_some("the store does not answer")
    };
    let why = |e| refusal(e).or_else(|| unanswered(e));
    match first.as_ref().err().and_then(|e| Some((why(e)?, e))) {
        Some((why, e)) => Err(tidewal_core::Error::Store {
            path: if log.is_empty() { dir } else { log.to_string() },
            message: format!("{why}: {e}"),
        }),
        None => Ok(()),
    }
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
