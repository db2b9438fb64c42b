//! The native API against InMemory and LocalFileSystem.

mod common;

use common::ids;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::{FutureExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use tidewal::{Error, Options, Wal, WriterConfig};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn batch(first: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

/// Runs `test` on a fresh InMemory store, a fresh LocalFileSystem directory and, when
/// `TIDEWAL_S3_BUCKET` names one (scripts/test.sh starts SeaweedFS), a fresh prefix of a real
/// S3 server configured by the `AWS_*` variables.
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
        let unique = format!("s3://{bucket}/test-{}", unique_suffix());
        let (store, prefix) = tidewal::store_for(&unique).unwrap();
        test(Arc::new(PrefixStore::new(store, prefix.as_str()))).await;
    }
}

/// Options of a writer that fences one this process has open.
fn take_over() -> Options {
    Options {
        take_over: true,
        ..Options::default()
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn appends_are_durable_in_order_and_scan_reads_them_back() {
    on_each_store(|store| async move {
        let wal = Wal::open(store, "logs/a", schema(), Options::default())
            .await
            .unwrap();
        let handles: Vec<_> = (0..50)
            .map(|i| wal.append_nowait(&batch(i * 10, 10)).unwrap())
            .collect();
        let mut positions = Vec::new();
        for h in handles {
            positions.push(h.await.unwrap().position);
        }
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "acks follow positions"
        );
        let read = wal.scan().try_collect::<Vec<_>>().await.unwrap();
        assert_eq!(ids(&read), (0..500).collect::<Vec<_>>());
        wal.close().await.unwrap();
        assert_eq!(wal.append(&batch(0, 1)).await, Err(Error::Closed));
    })
    .await;
}

#[tokio::test]
async fn a_second_writer_fences_the_first_and_replays_its_data() {
    on_each_store(|store| async move {
        let a = Wal::open(store.clone(), "", schema(), Options::default())
            .await
            .unwrap();
        a.append(&batch(0, 5)).await.unwrap();
        // In one process a second writer must ask to take the log over (a second process
        // need not: it fences the first the same way).
        let b = Wal::open(store.clone(), "", schema(), take_over())
            .await
            .unwrap();
        assert_eq!(b.epoch(), a.epoch() + 1);
        assert!(a.fenced().now_or_never().is_none(), "a has not met b yet");
        // Whoever waits on `fenced` learns it when a's append meets b's fence.
        let more = batch(5, 5);
        let (told, appended) = tokio::join!(a.fenced(), a.append(&more));
        assert_eq!(appended, Err(Error::Fenced { epoch: a.epoch() }));
        assert_eq!(told, Error::Fenced { epoch: a.epoch() });
        // Fenced is terminal: later calls fail the same way.
        assert!(matches!(a.flush().await, Err(Error::Fenced { .. })));
        b.append(&batch(100, 5)).await.unwrap();
        assert_eq!(
            ids(&b.scan().try_collect::<Vec<_>>().await.unwrap()),
            vec![0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
        );
        b.close().await.unwrap();
        // After close (memtable flushed to a generation), a reopen sees the same.
        let c = Wal::open(store, "", schema(), Options::default())
            .await
            .unwrap();
        assert_eq!(
            c.scan()
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            10
        );
        assert!(c.stats().await.unwrap().writer.replay_cursor > 0);
    })
    .await;
}

#[tokio::test]
async fn bad_batches_are_refused_and_nothing_is_written() {
    on_each_store(|store| async move {
        let wal = Wal::open(store, "x", schema(), Options::default())
            .await
            .unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let wrong =
            RecordBatch::try_new(other, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        assert!(matches!(
            wal.append(&wrong).await,
            Err(Error::SchemaMismatch { .. })
        ));
        assert!(matches!(
            wal.append(&batch(0, 0)).await,
            Err(Error::Invalid(_))
        ));
        wal.flush().await.unwrap();
        assert_eq!(wal.stats().await.unwrap().writer.appends, 0);
        assert!(wal.scan().try_collect::<Vec<_>>().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_log_refuses_a_writer_with_another_schema() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wal = Wal::open(store.clone(), "", schema(), Options::default())
        .await
        .unwrap();
    wal.close().await.unwrap();
    let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
    let err = Wal::open(store, "", other, Options::default())
        .await
        .err()
        .unwrap();
    // Named: the differing field, with both types (the log's "expected").
    match &err {
        Error::SchemaMismatch { detail } => {
            assert!(detail.contains("manifest/"), "{detail}");
            assert!(
                detail.contains("Int32") && detail.contains("Int64"),
                "{detail}"
            );
            assert!(
                detail.contains("\"x\"") && detail.contains("\"id\""),
                "{detail}"
            );
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn flush_memtable_writes_a_generation_and_collects_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let wal = Wal::open(store, "", schema(), Options::default())
        .await
        .unwrap();
    for i in 0..5 {
        wal.append(&batch(i * 3, 3)).await.unwrap();
    }
    assert_eq!(wal.flush_memtable().await.unwrap(), Some(0));
    assert_eq!(wal.flush_memtable().await.unwrap(), None);
    let gens: Vec<_> = std::fs::read_dir(dir.path().join("gen")).unwrap().collect();
    assert_eq!(gens.len(), 1);
    assert_eq!(
        ids(&wal.scan().try_collect::<Vec<_>>().await.unwrap()),
        (0..15).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_tailer_follows_new_appends_and_a_new_writer() {
    use tidewal::{Item, Tailer};
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = Wal::open(store.clone(), "t", schema(), Options::default())
        .await
        .unwrap();
    a.append(&batch(0, 2)).await.unwrap();
    let mut tail = Tailer::open(
        store.clone(),
        "t",
        schema(),
        std::time::Duration::from_millis(10),
    )
    .unwrap();
    let mut seen = Vec::new();
    while let Item::Batch { batch, .. } = tail.next().await.unwrap().unwrap() {
        seen.extend(ids(&[batch]));
    }
    assert_eq!(seen, vec![0, 1]);
    a.append(&batch(2, 2)).await.unwrap();
    let b = Wal::open(store, "t", schema(), take_over()).await.unwrap();
    b.append(&batch(10, 1)).await.unwrap();
    while seen.len() < 5 {
        if let Item::Batch { batch, .. } = tail.next().await.unwrap().unwrap() {
            seen.extend(ids(&[batch]));
        }
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 10]);
}

#[tokio::test]
async fn many_logs_share_one_runtime_and_report_their_stats() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut logs = Vec::new();
    for i in 0..16 {
        let wal = Wal::open(
            store.clone(),
            &format!("log-{i}"),
            schema(),
            Options::default(),
        )
        .await
        .unwrap();
        logs.push(wal);
    }
    let appends = logs.iter().enumerate().flat_map(|(i, wal)| {
        (0..10).map(move |j| wal.append_nowait(&batch(i as i64 * 100 + j, 1)).unwrap())
    });
    for handle in appends.collect::<Vec<_>>() {
        handle.await.unwrap();
    }
    for (i, wal) in logs.iter().enumerate() {
        let stats = wal.stats().await.unwrap();
        assert_eq!(stats.writer.appends, 10);
        assert_eq!(stats.writer.epoch, 1);
        let (p50, p99) = (stats.ack_p50.unwrap(), stats.ack_p99.unwrap());
        assert!(p50 <= p99);
        let expected: Vec<i64> = (0..10).map(|j| i as i64 * 100 + j).collect();
        assert_eq!(
            ids(&wal.scan().try_collect::<Vec<_>>().await.unwrap()),
            expected
        );
    }
}

#[tokio::test]
async fn a_group_is_one_entry_and_a_bad_batch_refuses_all_of_it() {
    on_each_store(|store| async move {
        let wal = Wal::open(store, "g", schema(), Options::default())
            .await
            .unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let bad = RecordBatch::try_new(other, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        let refused = wal.append_group(&[batch(0, 2), bad]).await;
        assert!(
            matches!(refused, Err(Error::SchemaMismatch { .. })),
            "{refused:?}"
        );
        let ack = wal
            .append_group(&[batch(0, 2), batch(2, 0), batch(2, 3)])
            .await
            .unwrap();
        let one = wal.append(&batch(5, 1)).await.unwrap();
        assert_eq!(
            one.position,
            ack.position + 1,
            "the group took one position"
        );
        assert_eq!(
            ids(&wal.scan().try_collect::<Vec<_>>().await.unwrap()),
            (0..6).collect::<Vec<_>>()
        );
        let nothing = wal.append_group(&[batch(9, 0)]).await;
        assert!(matches!(nothing, Err(Error::Invalid(ref why)) if why.contains("no rows")));
        wal.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_wal_only_log_truncates_from_the_host() {
    on_each_store(|store| async move {
        let options = Options {
            writer: WriterConfig {
                wal_only: true,
                ..WriterConfig::default()
            },
            ..Options::default()
        };
        let wal = Wal::open(store.clone(), "t", schema(), options.clone())
            .await
            .unwrap();
        let mut acks = Vec::new();
        for i in 0..4 {
            acks.push(wal.append(&batch(i * 10, 10)).await.unwrap());
        }
        let cursor = wal.truncate(acks[2].position).await.unwrap();
        assert_eq!(cursor, acks[2].position);
        assert_eq!(
            ids(&wal.scan().try_collect::<Vec<_>>().await.unwrap()),
            (20..40).collect::<Vec<_>>()
        );
        let past = wal.truncate(acks[3].position + 5).await;
        assert!(matches!(past, Err(Error::Invalid(_))), "{past:?}");
        wal.close().await.unwrap();
        let with_memtable = Wal::open(store, "m", schema(), Options::default())
            .await
            .unwrap();
        assert!(matches!(
            with_memtable.truncate(0).await,
            Err(Error::Invalid(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_long_replay_reports_its_progress() {
    on_each_store(|store| async move {
        let a = Wal::open(store.clone(), "r", schema(), Options::default())
            .await
            .unwrap();
        let big = "x".repeat(1 << 20);
        for i in 0..9 {
            let b = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(vec![i])),
                    Arc::new(StringArray::from(vec![big.as_str()])),
                ],
            )
            .unwrap();
            a.append(&b).await.unwrap();
        }
        drop(a); // no close: the nine entries stay in the WAL for the next writer to replay
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = told.clone();
        let options = Options {
            on_replay: Some(Arc::new(move |entries, bytes| {
                sink.lock().unwrap().push((entries, bytes))
            })),
            ..Options::default()
        };
        let b = Wal::open(store, "r", schema(), options).await.unwrap();
        let told = told.lock().unwrap().clone();
        assert_eq!(told.len(), 2, "every 4 MiB of 9: {told:?}");
        assert!(told.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
        assert!(told[1].1 >= 8 << 20, "{told:?}");
        assert_eq!(b.scan().try_collect::<Vec<_>>().await.unwrap().len(), 9);
        b.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_ranged_get_past_an_objects_end_is_invalid_range_on_each_store() {
    use tidewal_core::{Op, StoreErrorKind};
    on_each_store(|store| async move {
        let path = object_store::path::Path::from("obj");
        object_store::ObjectStoreExt::put(&*store, &path, b"0123456789".to_vec().into())
            .await
            .unwrap();
        let get = |range| {
            let op = Op::GetRange {
                path: "obj".into(),
                range,
            };
            tidewal::execute(store.clone(), op)
        };
        assert_eq!(get(2..5).await.into_get().unwrap().as_ref(), b"234");
        for bad in [5..11, 10..12] {
            match get(bad.clone()).await.into_get() {
                Err(e) => assert_eq!(e.kind, StoreErrorKind::InvalidRange, "{bad:?}: {e:?}"),
                // A store that clips the range: the core reads it as InvalidRange.
                Ok(b) => assert!(b.len() < 6, "{bad:?}"),
            }
        }
        let missing = tidewal::execute(
            store.clone(),
            Op::GetRange {
                path: "none".into(),
                range: 0..1,
            },
        );
        assert_eq!(
            missing.await.into_get().unwrap_err().kind,
            StoreErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test]
async fn a_read_from_inside_a_generation_yields_only_what_follows() {
    on_each_store(|store| async move {
        let wal = Wal::open(store.clone(), "", schema(), Options::default())
            .await
            .unwrap();
        let mut positions = Vec::new();
        for i in 0..6 {
            positions.push(wal.append(&batch(i * 2, 2)).await.unwrap().position);
        }
        assert_eq!(wal.flush_memtable().await.unwrap(), Some(0));
        wal.close().await.unwrap();
        let options = tidewal::ReadOptions {
            from: tidewal::Start::Position(positions[3]),
            ..tidewal::ReadOptions::default()
        };
        let mut t = tidewal::Tailer::with_options(store, "", schema(), &options).unwrap();
        let mut got = Vec::new();
        while let Some(item) = t.next().await {
            match item.unwrap() {
                tidewal::Item::Batch { batch, .. } => got.push(batch),
                tidewal::Item::CaughtUp { .. } => break,
            }
        }
        assert_eq!(ids(&got), (6..12).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test]
async fn a_read_from_a_time_yields_what_was_written_from_then() {
    on_each_store(|store| async move {
        let unix_ms = || {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_millis() as u64
        };
        let wal = Wal::open(store.clone(), "", schema(), Options::default())
            .await
            .unwrap();
        for i in 0..3 {
            wal.append(&batch(i * 2, 2)).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let since = unix_ms();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        for i in 3..6 {
            wal.append(&batch(i * 2, 2)).await.unwrap();
        }
        // Two generations (close flushes the second): the time falls inside the first, which
        // is read from inside.
        wal.flush_memtable().await.unwrap();
        for i in 6..8 {
            wal.append(&batch(i * 2, 2)).await.unwrap();
        }
        wal.close().await.unwrap();
        let read_from = |from| {
            let store = store.clone();
            async move {
                let options = tidewal::ReadOptions {
                    from,
                    ..tidewal::ReadOptions::default()
                };
                let mut t = tidewal::Tailer::with_options(store, "", schema(), &options).unwrap();
                let mut got = Vec::new();
                while let Some(item) = t.next().await {
                    match item.unwrap() {
                        tidewal::Item::Batch { batch, .. } => got.push(batch),
                        tidewal::Item::CaughtUp { .. } => break,
                    }
                }
                ids(&got)
            }
        };
        assert_eq!(
            read_from(tidewal::Start::Time(since)).await,
            (6..16).collect::<Vec<_>>()
        );
        assert_eq!(
            read_from(tidewal::Start::Time(0)).await,
            (0..16).collect::<Vec<_>>()
        );
        let later = read_from(tidewal::Start::Time(unix_ms() + 60_000)).await;
        assert!(later.is_empty(), "{later:?}");
    })
    .await;
}

#[tokio::test]
async fn history_keeps_young_versions_and_reads_one_as_of_it() {
    on_each_store(|store| async move {
        // One version by count, but an hour by age: nothing is collected.
        let options = |keep_for| Options {
            writer: WriterConfig {
                keep_manifests: 1,
                keep_manifests_for: keep_for,
                ..WriterConfig::default()
            },
            ..Options::default()
        };
        let hour = std::time::Duration::from_secs(3600);
        let wal = Wal::open(store.clone(), "t", schema(), options(hour))
            .await
            .unwrap();
        for i in 0..3 {
            wal.append(&batch(i * 10, 10)).await.unwrap();
            wal.flush_memtable().await.unwrap();
        }
        wal.close().await.unwrap();
        let h = tidewal::history(store.clone(), "t").await.unwrap();
        let rows: Vec<u64> = h.versions.iter().map(|v| v.rows).collect();
        assert_eq!(rows, [0, 10, 20, 30]);
        assert!(h.versions.iter().all(|v| v.committed_at.is_some()));
        // As of the version of the second flush: its 20 rows, nothing after.
        let options_as_of = tidewal::ReadOptions {
            as_of_version: Some(h.versions[2].version),
            ..tidewal::ReadOptions::default()
        };
        let read = tidewal::Tailer::with_options(store.clone(), "t", schema(), &options_as_of)
            .unwrap()
            .batches()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        assert_eq!(ids(&read), (0..20).collect::<Vec<_>>());
        // Without the age, the next commit collects all but the newest.
        let wal = Wal::open(
            store.clone(),
            "t",
            schema(),
            options(std::time::Duration::ZERO),
        )
        .await
        .unwrap();
        wal.close().await.unwrap();
        let h = tidewal::history(store.clone(), "t").await.unwrap();
        assert_eq!(h.versions.len(), 1, "{h:?}");
        let gone = tidewal::Tailer::with_options(store, "t", schema(), &options_as_of)
            .unwrap()
            .batches()
            .try_collect::<Vec<_>>()
            .await;
        assert!(
            matches!(
                &gone,
                Err(Error::Failed(
                    tidewal_core::FatalError::VersionNotKept { .. }
                ))
            ),
            "{gone:?}"
        );
    })
    .await;
}
