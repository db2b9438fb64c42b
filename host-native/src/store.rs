//! Executes the core's requests against any `object_store::ObjectStore`.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, UpdateVersion};
use tidewal_core::{GetResult, ObjectMeta, Op, PutMode, Response, StoreError, StoreErrorKind};

/// Maps an object_store error to the kinds the protocol distinguishes. Anything not named is
/// `Unknown`: for a put it may or may not have been applied, and the core reads back.
pub fn store_error(e: object_store::Error) -> StoreError {
    use object_store::Error as E;
    let kind = match &e {
        E::NotFound { .. } => StoreErrorKind::NotFound,
        E::AlreadyExists { .. } => StoreErrorKind::AlreadyExists,
        E::Precondition { .. } => StoreErrorKind::PreconditionFailed,
        E::NotSupported { .. } | E::NotImplemented { .. } => StoreErrorKind::NotSupported,
        _ => StoreErrorKind::Unknown,
    };
    StoreError::new(kind, e.to_string())
}

fn meta(m: object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        path: m.location.to_string(),
        size: m.size,
        etag: m.e_tag,
    }
}

/// A folder prefix as object_store wants it (no trailing slash).
fn folder(prefix: &str) -> Path {
    Path::from(prefix.trim_end_matches('/'))
}

/// Runs one operation.
pub async fn execute(store: Arc<dyn ObjectStore>, op: Op) -> Response {
    match op {
        Op::Put { path, body, mode } => {
            let mode = match mode {
                PutMode::Create => object_store::PutMode::Create,
                PutMode::IfMatch(etag) => object_store::PutMode::Update(UpdateVersion {
                    e_tag: Some(etag),
                    version: None,
                }),
                _ => object_store::PutMode::Overwrite,
            };
            let result = store
                .put_opts(
                    &Path::from(path),
                    body.into_chunks().into_iter().collect(),
                    PutOptions::from(mode),
                )
                .await;
            Response::Put(result.map(|r| r.e_tag).map_err(store_error))
        }
        Op::Get { path, range } => {
            let options = GetOptions {
                range: range.map(GetRange::Bounded),
                ..GetOptions::default()
            };
            let result = async {
                let got = store.get_opts(&Path::from(path), options).await?;
                let m = meta(got.meta.clone());
                let body = got.bytes().await?;
                Ok(GetResult { body, meta: m })
            }
            .await;
            Response::Get(result.map_err(store_error))
        }
        Op::Head { path } => Response::Head(
            store
                .head(&Path::from(path))
                .await
                .map(meta)
                .map_err(store_error),
        ),
        Op::List { prefix, after } => {
            let folder = folder(&prefix);
            let listing = match after {
                Some(after) => store.list_with_offset(Some(&folder), &Path::from(after)),
                None => store.list(Some(&folder)),
            };
            let result = listing.map_ok(meta).try_collect::<Vec<_>>().await;
            // The core's contract is lexicographic order; object_store does not promise it.
            Response::List(
                result
                    .map(|mut items| {
                        items.sort_by(|a, b| a.path.cmp(&b.path));
                        items
                    })
                    .map_err(store_error),
            )
        }
        Op::Delete { path } => match store.delete(&Path::from(path)).await {
            Err(object_store::Error::NotFound { .. }) => Response::Delete(Ok(())),
            other => Response::Delete(other.map_err(store_error)),
        },
        _ => Response::Put(Err(StoreError::new(
            StoreErrorKind::NotSupported,
            "operation unknown to this host",
        ))),
    }
}
