//! Named consumers on InMemory and LocalFileSystem (and SeaweedFS when `TIDEWAL_S3_BUCKET`
//! names a bucket): resume after a commit, fencing, refused commits and names, the listing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use tidewal::{consumers, Consumer, ConsumerOptions, Error, Item, Options, Wal};
use tidewal_core::ConsumerError;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn batch(first: i64, rows: i64) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows).collect();
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
}

async fn on_each_store<F, Fut>(test: F)
where
    F: Fn(Arc<dyn ObjectStore>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(Arc::new(InMemory::new())).await;
    let dir = tempfile::tempdir().unwrap();
    test(Arc::new(
        LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
    ))
    .await;
    if let Ok(bucket) = std::env::var("TIDEWAL_S3_BUCKET") {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let unique = format!("s3://{bucket}/consumer-{}-{nanos}", std::process::id());
        let (store, prefix) = tidewal::store_for(&unique).unwrap();
        test(Arc::new(PrefixStore::new(store, prefix.as_str()))).await;
    }
}

/// Everything the consumer yields until its items end: the ids, and where it caught up.
async fn drain(c: &mut Consumer) -> (Vec<i64>, u64) {
    let (mut batches, mut end) = (Vec::new(), 0);
    while let Some(item) = c.next().await {
        match item.unwrap() {
            Item::Batch { batch, .. } => batches.push(batch),
            Item::CaughtUp { position } => end = position,
        }
    }
    (common::ids(&batches), end)
}

async fn open(store: &Arc<dyn ObjectStore>, name: &str) -> Result<Consumer, Error> {
    Consumer::open(
        store.clone(),
        "log",
        schema(),
        name,
        ConsumerOptions::default(),
    )
    .await
}

#[tokio::test]
async fn a_consumer_resumes_after_its_commit_and_the_listing_shows_its_lag() {
    on_each_store(|store| async move {
        let wal = Wal::open(store.clone(), "log", schema(), Options::default())
            .await
            .unwrap();
        for i in 0..5 {
            wal.append(&batch(i * 10, 10)).await.unwrap();
        }
        let mut a = open(&store, "etl").await.unwrap();
        assert_eq!(a.start_position(), 0);
        let (read, end) = drain(&mut a).await;
        assert_eq!(read, (0..50).collect::<Vec<_>>());
        // The claim is a version: the name is listed at 0, the whole log behind it (five
        // entries and the writer's fence at 0: slots are counted, not decoded).
        let listed = consumers(store.clone(), "log").await.unwrap();
        assert_eq!((listed[0].position, listed[0].lag_entries), (0, 6));
        a.commit(end).await.unwrap();
        drop(a);

        wal.append(&batch(50, 10)).await.unwrap();
        let listed = consumers(store.clone(), "log").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].position), ("etl", end));
        assert_eq!(listed[0].lag_entries, 1);
        assert!(listed[0].lag_bytes > 0);

        let mut b = open(&store, "etl").await.unwrap();
        assert_eq!(b.start_position(), end);
        let (read, end) = drain(&mut b).await;
        assert_eq!(read, (50..60).collect::<Vec<_>>());
        b.commit(end).await.unwrap();
        b.close().await.unwrap();
        let listed = consumers(store.clone(), "log").await.unwrap();
        assert_eq!((listed[0].position, listed[0].lag_entries), (end, 0));
        wal.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_second_instance_fences_the_first() {
    on_each_store(|store| async move {
        let wal = Wal::open(store.clone(), "log", schema(), Options::default())
            .await
            .unwrap();
        wal.append(&batch(0, 3)).await.unwrap();
        let mut a = open(&store, "etl").await.unwrap();
        let (_, end) = drain(&mut a).await;
        let b = open(&store, "etl").await.unwrap();
        let fenced = Error::Consumer(ConsumerError::Fenced { name: "etl".into() });
        assert_eq!(a.commit(end).await, Err(fenced.clone()));
        assert_eq!(a.commit(end).await, Err(fenced));
        // b still owns the name; it delivered nothing past 0 yet, so it can commit 0 only.
        assert_eq!(b.commit(0).await.map(|_| ()), Ok(()));
        wal.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bad_names_and_commits_are_refused_with_what_is_wrong() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for name in ["a/b", ""] {
        match open(&store, name).await {
            Err(Error::Consumer(ConsumerError::InvalidName { name: n, .. })) => {
                assert_eq!(n, name)
            }
            Err(e) => panic!("{name:?}: {e}"),
            Ok(_) => panic!("{name:?} accepted"),
        }
    }
    let wal = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .unwrap();
    wal.append(&batch(0, 3)).await.unwrap();
    let mut a = open(&store, "etl").await.unwrap();
    let (_, end) = drain(&mut a).await;
    assert!(matches!(
        a.commit(end + 1).await,
        Err(Error::Consumer(ConsumerError::CommitAhead { .. }))
    ));
    a.commit(end).await.unwrap();
    assert_eq!(
        a.commit(end - 1).await,
        Err(Error::Consumer(ConsumerError::CommitBelow {
            requested: end - 1,
            committed: end
        }))
    );
    wal.close().await.unwrap();
}

#[tokio::test]
async fn a_following_consumer_sees_new_entries_and_commits_while_reading() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wal = Wal::open(store.clone(), "log", schema(), Options::default())
        .await
        .unwrap();
    let options = ConsumerOptions {
        follow: true,
        poll_interval: Duration::from_millis(5),
        ..ConsumerOptions::default()
    };
    let mut c = Consumer::open(store.clone(), "log", schema(), "live", options)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for i in 0..200 {
        wal.append(&batch(i, 1)).await.unwrap();
    }
    while seen.len() < 200 {
        if let Item::Batch { position, batch } = c.next().await.unwrap().unwrap() {
            seen.extend(common::ids(&[batch]));
            c.commit(position + 1).await.unwrap();
        }
    }
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    c.close().await.unwrap();
    wal.close().await.unwrap();
}
