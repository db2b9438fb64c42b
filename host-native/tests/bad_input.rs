//! Bad input, everywhere a user hands it in: each a typed error naming what is wrong, and
//! nothing written (the store is listed before and after).

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidewal::{Error, Options, ReadOptions, Tailer, Wal, WriterConfig};
use tidewal_core::{FatalError, Manifest};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(id: i64) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![id]))]).unwrap()
}

/// Every object under the store, with its bytes.
async fn listing(store: &Arc<dyn ObjectStore>) -> Vec<(String, Bytes)> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let body = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((m.location.to_string(), body));
    }
    out.sort();
    out
}

async fn put(store: &Arc<dyn ObjectStore>, path: &str, body: Bytes) {
    store
        .put(&Path::from(path), PutPayload::from(body))
        .await
        .unwrap();
}

/// A closed log of a few rows under `prefix`.
async fn a_log(store: &Arc<dyn ObjectStore>, prefix: &str) {
    let wal = Wal::open(store.clone(), prefix, schema(), Options::default())
        .await
        .unwrap();
    wal.append(&batch(1)).await.unwrap();
    wal.close().await.unwrap();
}

fn manifest_path(prefix: &str, version: u64) -> String {
    tidewal_core::paths::Paths::new(prefix).manifest(version)
}

#[tokio::test]
async fn urls_that_name_no_store_are_invalid_and_name_the_url() {
    for (url, says) in [
        ("ftp://host/log", "unsupported store ftp://"),
        ("s3:///log", "names no bucket"),
        ("s3://", "names no bucket"),
        ("file://", "names no directory"),
    ] {
        let err = tidewal::store_for(url).err().unwrap();
        assert!(matches!(err, Error::Invalid(_)), "{url}: {err}");
        let text = err.to_string();
        assert!(text.contains(url) && text.contains(says), "{url}: {text}");
        let err = Wal::open_url(url, schema(), Options::default()).await.err();
        assert!(matches!(err, Some(Error::Invalid(_))), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn a_missing_directory_is_no_log_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let url = missing.to_str().unwrap();
    let err = tidewal::existing_store_for(url).err().unwrap();
    assert!(err.to_string().contains("no log at"), "{err}");
    assert!(err.to_string().contains(url), "{err}");
    assert!(!missing.exists(), "nothing created");
    // A writer creates it: that is what opening a new log is.
    let (store, _) = tidewal::store_for(url).unwrap();
    assert!(missing.is_dir());
    assert!(listing(&store).await.is_empty());
}

#[tokio::test]
async fn options_out_of_range_name_the_option_its_value_and_the_range() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    type Set = fn(&mut WriterConfig);
    let cases: [(Set, &str); 4] = [
        (
            |w| w.fence_window = 0,
            "writer.fence_window is 0: allowed 1 to 65536",
        ),
        (
            |w| w.max_in_flight = 65,
            "writer.max_in_flight (at most fence_window) is 65: allowed 1 to 64",
        ),
        (
            |w| w.lease = std::time::Duration::from_millis(1),
            "writer.lease (ms) is 1: allowed 3 to 4294967295",
        ),
        (
            |w| w.compaction.as_mut().unwrap().fanout = 1,
            "compaction.fanout is 1: allowed at least 2",
        ),
    ];
    for (set, says) in cases {
        let mut options = Options::default();
        set(&mut options.writer);
        let err = Wal::open(store.clone(), "log", schema(), options)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(listing(&store).await.is_empty(), "nothing written");
}

#[tokio::test]
async fn a_prefix_holding_something_else_is_corrupt_naming_the_object() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for (path, body) in [
        ("other/manifest/README", "not a log"),
        ("json/manifest/00000000000000000001.json", r#"{"a":1}"#),
    ] {
        put(&store, path, Bytes::from(body)).await;
        let prefix = path.split('/').next().unwrap();
        let before = listing(&store).await;
        let err = Wal::open(store.clone(), prefix, schema(), Options::default())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if p == path),
            "{prefix}: {err}"
        );
        assert_eq!(listing(&store).await, before, "nothing written");
        let err = tidewal::verify(store.clone(), prefix).await.err().unwrap();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if p == path),
            "{err}"
        );
        let err = tidewal::inspect(store.clone(), prefix).await.err().unwrap();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if p == path),
            "{err}"
        );
    }
    // In a log's WAL and fences folders, inspect and verify name it (a writer walks the WAL
    // by name, and passes over what it cannot parse among fence intents).
    for folder in ["wal", "fences"] {
        let prefix = format!("log-{folder}");
        a_log(&store, &prefix).await;
        let path = format!("{prefix}/{folder}/README");
        put(&store, &path, Bytes::from("not a log")).await;
        let err = tidewal::verify(store.clone(), &prefix).await.err().unwrap();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if *p == path),
            "{err}"
        );
        let err = tidewal::inspect(store.clone(), &prefix)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if *p == path),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_log_of_another_format_is_refused_naming_both_formats() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    a_log(&store, "log").await;
    let newest = tidewal::inspect(store.clone(), "log").await.unwrap();
    let version = *newest.manifest_versions.last().unwrap();
    let mut m = newest.manifest.unwrap();
    m.format = 2;
    m.version = version + 1;
    let path = manifest_path("log", version + 1);
    put(&store, &path, m.encode()).await;
    let before = listing(&store).await;
    let err = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .err()
        .unwrap();
    let unsupported = Error::Failed(FatalError::UnsupportedFormat {
        path: path.clone(),
        format: 2,
    });
    assert_eq!(err, unsupported);
    assert!(err.to_string().contains("reads format 1"), "{err}");
    assert_eq!(listing(&store).await, before, "nothing written");
    let mut reader =
        Tailer::with_options(store.clone(), "log", schema(), &ReadOptions::default()).unwrap();
    assert_eq!(reader.next().await.unwrap().err(), Some(unsupported));
}

/// The defect `tidewal verify` had: an older version whose body is another version's.
#[tokio::test]
async fn a_manifest_whose_body_is_another_version_fails_verify_open_and_readers() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    a_log(&store, "log").await;
    let versions = tidewal::inspect(store.clone(), "log")
        .await
        .unwrap()
        .manifest_versions;
    assert!(versions.len() >= 2, "{versions:?}");
    let (first, second) = (versions[0], versions[1]);
    let second_body = store
        .get(&Path::from(manifest_path("log", second)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // An older version: verify reads every version and must refuse it.
    let older = manifest_path("log", first);
    put(&store, &older, second_body.clone()).await;
    let err = tidewal::verify(store.clone(), "log").await.err().unwrap();
    match &err {
        Error::Corrupt { path, reason } => {
            assert_eq!(path, &older);
            assert_eq!(
                reason,
                &format!("holds version {second}, its name says {first}")
            );
        }
        other => panic!("{other}"),
    }
    let err = tidewal::history(store.clone(), "log").await.err().unwrap();
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path == &older),
        "{err}"
    );
    // The newest: inspect, a writer's open and a reader all read it.
    let newest_version = *versions.last().unwrap();
    let newest = manifest_path("log", newest_version + 1);
    let mut m = Manifest::decode(&second_body).unwrap();
    assert_eq!(m.version, second);
    m.version = newest_version; // a valid body, under the name of the version after it
    put(&store, &newest, m.encode()).await;
    let before = listing(&store).await;
    let corrupt = |e: &Error| matches!(e, Error::Corrupt { path, .. } if path == &newest);
    let err = tidewal::inspect(store.clone(), "log").await.err().unwrap();
    assert!(corrupt(&err), "{err}");
    let err = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .err()
        .unwrap();
    assert!(corrupt(&err), "{err}");
    let mut reader =
        Tailer::with_options(store.clone(), "log", schema(), &ReadOptions::default()).unwrap();
    let err = reader.next().await.unwrap().err().unwrap();
    assert!(corrupt(&err), "{err}");
    assert_eq!(listing(&store).await, before, "nothing written");
}

#[tokio::test]
async fn a_second_writer_of_a_log_in_one_process_is_refused_until_the_first_is_gone() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let first = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .unwrap();
    first.append(&batch(1)).await.unwrap();
    let before = listing(&store).await;
    for prefix in ["log", "log/", "/log"] {
        let err = Wal::open(store.clone(), prefix, schema(), Options::default())
            .await
            .err()
            .unwrap();
        assert_eq!(err, Error::AlreadyOpen { log: prefix.into() });
    }
    assert_eq!(listing(&store).await, before, "nothing written");
    // Another log of the same store, and the same prefix of another store, are other logs.
    let other = Wal::open(store.clone(), "other", schema(), Options::default())
        .await
        .unwrap();
    let elsewhere: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let third = Wal::open(elsewhere, "log", schema(), Options::default())
        .await
        .unwrap();
    // Closed, dropped, or taken over: the log can be opened again.
    first.append(&batch(2)).await.unwrap();
    first.close().await.unwrap();
    let second = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .unwrap();
    drop(second);
    let again = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .unwrap();
    let take_over = Options {
        take_over: true,
        ..Options::default()
    };
    let newer = Wal::open(store.clone(), "log", schema(), take_over)
        .await
        .unwrap();
    assert!(matches!(
        again.append(&batch(3)).await,
        Err(Error::Fenced { .. })
    ));
    let rows = newer.scan().try_collect::<Vec<_>>().await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    drop((other, third));
}

#[tokio::test]
async fn one_directory_by_any_spelling_is_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let plain = path.to_str().unwrap().to_string();
    let first = Wal::open_url(&plain, schema(), Options::default())
        .await
        .unwrap();
    let dotted = format!("{}/../log/", plain);
    for url in [plain.clone(), format!("file://{plain}"), dotted] {
        let err = Wal::open_url(&url, schema(), Options::default())
            .await
            .err()
            .unwrap();
        assert_eq!(err, Error::AlreadyOpen { log: url.clone() });
    }
    first.close().await.unwrap();
    let second = Wal::open_url(&format!("file://{plain}"), schema(), Options::default())
        .await
        .unwrap();
    second.close().await.unwrap();
}

#[tokio::test]
async fn an_endpoint_that_refuses_connections_fails_open_naming_it() {
    let endpoint = "http://127.0.0.1:1";
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name("b")
        .with_region("us-east-1")
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .with_retry(object_store::RetryConfig {
            max_retries: 2,
            ..Default::default()
        })
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = Wal::open(Arc::new(store), "log", schema(), Options::default())
        .await
        .err()
        .unwrap();
    println!("refused in {:?}", started.elapsed());
    assert!(matches!(err, Error::Store { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("the store does not answer") && text.contains(endpoint),
        "{text}"
    );
}

/// The S3 server scripts/test.sh starts (SeaweedFS), when `TIDEWAL_S3_BUCKET` names it.
fn s3() -> Option<(object_store::aws::AmazonS3Builder, String)> {
    let bucket = std::env::var("TIDEWAL_S3_BUCKET").ok()?;
    let builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket);
    Some((builder, bucket))
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("bad-input-{what}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn s3_a_missing_bucket_wrong_credentials_and_no_conditional_puts_are_named() {
    let Some((builder, bucket)) = s3() else {
        eprintln!("skipped: TIDEWAL_S3_BUCKET is not set (scripts/test.sh sets it)");
        return;
    };
    let good: Arc<dyn ObjectStore> = Arc::new(builder.clone().build().unwrap());
    let prefix = unique("s3");
    let under = |l: Vec<(String, Bytes)>| -> Vec<String> {
        l.into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with(&prefix))
            .collect()
    };
    let before = under(listing(&good).await);
    let missing = format!("{bucket}-missing-{}", std::process::id());
    let cases = [
        (
            builder.clone().with_bucket_name(&missing),
            "the bucket does not exist",
            missing.clone(),
        ),
        (
            builder.clone().with_secret_access_key("wrong"),
            "the store refused the credentials",
            bucket.clone(),
        ),
    ];
    for (store, says, named) in cases {
        let store: Arc<dyn ObjectStore> = Arc::new(store.build().unwrap());
        let started = std::time::Instant::now();
        let err = Wal::open(store, &prefix, schema(), Options::default())
            .await
            .err()
            .unwrap();
        println!("{says}: refused in {:?}", started.elapsed());
        assert!(matches!(err, Error::Store { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(says) && text.contains(&named), "{text}");
        let endpoint = std::env::var("AWS_ENDPOINT").unwrap_or_default();
        assert!(text.contains(&endpoint), "{text}");
    }
    let no_conditional = builder.with_config(
        object_store::aws::AmazonS3ConfigKey::ConditionalPut,
        "disabled",
    );
    let store: Arc<dyn ObjectStore> = Arc::new(no_conditional.build().unwrap());
    let err = Wal::open(store, &prefix, schema(), Options::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("needs conditional puts"), "{err}");
    assert_eq!(under(listing(&good).await), before, "nothing written");
}
