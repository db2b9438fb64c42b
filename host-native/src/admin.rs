//! Looking at a log without writing: its schema, its objects, and a full verification.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tidewal_core::arrow::decode_schema;
use tidewal_core::crc32c::to_hex8;
use tidewal_core::paths::Paths;
use tidewal_core::{Codec, EntryKind, Manifest};

use crate::store::store_error;
use tidewal_core::Error;

/// What a log holds, from its objects.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The current manifest, if the log exists.
    pub manifest: Option<Manifest>,
    /// Manifest versions present.
    pub manifest_versions: Vec<u64>,
    /// WAL objects present: (position, size).
    pub wal: Vec<(u64, u64)>,
}

fn store_err(path: &str) -> impl Fn(object_store::Error) -> Error + '_ {
    move |e| {
        let e = store_error(e);
        Error::Store {
            path: path.to_string(),
            message: e.message,
        }
    }
}

async fn list(
    store: &Arc<dyn ObjectStore>,
    folder: &str,
) -> Result<Vec<object_store::ObjectMeta>, Error> {
    let mut items: Vec<_> = store
        .list(Some(&Path::from(folder.trim_end_matches('/'))))
        .try_collect()
        .await
        .map_err(store_err(folder))?;
    items.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(items)
}

async fn get(store: &Arc<dyn ObjectStore>, path: &str) -> Result<bytes::Bytes, Error> {
    let got = store
        .get(&Path::from(path))
        .await
        .map_err(store_err(path))?;
    got.bytes().await.map_err(store_err(path))
}

fn wal_position(path: &str) -> Option<u64> {
    path.rsplit_once("wal/")?
        .1
        .strip_suffix(".arrows")?
        .parse()
        .ok()
}

fn decode_manifest(path: &str, body: &[u8]) -> Result<Manifest, Error> {
    Manifest::decode(body).map_err(|e| Error::Corrupt {
        path: path.to_string(),
        reason: format!("{e:?}"),
    })
}

/// Lists the log's objects and reads its current manifest.
pub async fn inspect(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Inspection, Error> {
    let paths = Paths::new(prefix);
    let mut versions = Vec::new();
    for meta in list(&store, &paths.manifest_dir()).await? {
        let path = meta.location.to_string();
        let v = paths
            .manifest_version(&path)
            .ok_or_else(|| Error::Corrupt {
                path: path.clone(),
                reason: "unexpected object in the manifest folder".into(),
            })?;
        versions.push(v);
    }
    let manifest = match versions.last() {
        Some(&v) => {
            let path = paths.manifest(v);
            Some(decode_manifest(&path, &get(&store, &path).await?)?)
        }
        None => None,
    };
    let wal_dir = paths.wal(0);
    let wal_dir = &wal_dir[..wal_dir.len() - "00000000000000000000.arrows".len()];
    let wal = list(&store, wal_dir)
        .await?
        .into_iter()
        .filter_map(|m| Some((wal_position(m.location.as_ref())?, m.size)))
        .collect();
    Ok(Inspection {
        manifest,
        manifest_versions: versions,
        wal,
    })
}

/// The log's schema, from its current manifest.
pub async fn log_schema(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<SchemaRef, Error> {
    let inspection = inspect(store, prefix).await?;
    let m = inspection
        .manifest
        .ok_or_else(|| Error::Invalid(format!("no log under '{prefix}'")))?;
    let bytes = m
        .schema_bytes()
        .ok_or_else(|| Error::Invalid("manifest schema is not hex".into()))?;
    Ok(decode_schema(&bytes)?)
}

/// What [`verify`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Manifest versions decoded.
    pub manifests: usize,
    /// Generations checked against the manifest and decoded.
    pub generations: usize,
    /// WAL objects decoded (data and fences).
    pub wal_entries: usize,
    /// Fences among them.
    pub fences: usize,
    /// Rows in generations and WAL data entries.
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Reads every object of the log and checks every checksum and name: the first problem is
/// returned as `Corrupt { path }`.
pub async fn verify(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Verified, Error> {
    verify_with(store, prefix, |_| {}).await
}

/// [`verify`], calling `progress` with the bytes of each object once it is checked.
pub async fn verify_with(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    mut progress: impl FnMut(u64),
) -> Result<Verified, Error> {
    let paths = Paths::new(prefix);
    let inspection = inspect(store.clone(), prefix).await?;
    let Some(current) = inspection.manifest else {
        return Err(Error::Invalid(format!("no log under '{prefix}'")));
    };
    let schema = log_schema(store.clone(), prefix).await?;
    let codec = crate::codec(schema)?;
    let mut out = Verified::default();
    for &v in &inspection.manifest_versions {
        let path = paths.manifest(v);
        let body = get(&store, &path).await?;
        out.bytes += body.len() as u64;
        decode_manifest(&path, &body)?;
        out.manifests += 1;
        progress(body.len() as u64);
    }
    for g in &current.generations {
        let body = get(&store, &g.path).await?;
        out.bytes += body.len() as u64;
        progress(body.len() as u64);
        let digest = String::from_utf8_lossy(&to_hex8(codec.checksum(&body))).into_owned();
        if body.len() as u64 != g.bytes || digest != g.crc32c {
            return Err(Error::Corrupt {
                path: g.path.clone(),
                reason: "size or checksum differs from the manifest".into(),
            });
        }
        let decoded = codec.decode_generation(body).map_err(|e| Error::Corrupt {
            path: g.path.clone(),
            reason: e.to_string(),
        })?;
        out.rows += decoded
            .entries
            .iter()
            .flat_map(|e| &e.records)
            .map(|r| r.rows)
            .sum::<u64>();
        out.generations += 1;
    }
    for &(position, _) in &inspection.wal {
        let path = paths.wal(position);
        let body = get(&store, &path).await?;
        out.bytes += body.len() as u64;
        progress(body.len() as u64);
        let entry = codec.decode_entry(body).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if entry.header.position != position {
            return Err(Error::Corrupt {
                path,
                reason: format!("holds position {}", entry.header.position),
            });
        }
        match entry.header.kind {
            EntryKind::Fence { .. } => out.fences += 1,
            EntryKind::Data => out.rows += entry.records.iter().map(|r| r.rows).sum::<u64>(),
        }
        out.wal_entries += 1;
    }
    Ok(out)
}
