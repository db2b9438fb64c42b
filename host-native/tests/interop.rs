//! pyarrow opens a WAL entry and a generation file written by this host and reads exactly the
//! rows that were appended. Runs when `TIDEWAL_PYTHON` names a Python with pyarrow
//! (`scripts/test.sh` sets one up).

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use tidewal::{Options, Wal};

#[tokio::test]
async fn pyarrow_reads_entries_and_generations() {
    let Some(python) = std::env::var_os("TIDEWAL_PYTHON") else {
        eprintln!("TIDEWAL_PYTHON is not set: pyarrow interop not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = |ids: Vec<i64>| {
        let names: Vec<Option<String>> = ids.iter().map(|i| Some(format!("r{i}"))).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    };
    let wal = Wal::open_url(
        &dir.path().to_string_lossy(),
        schema.clone(),
        Options::default(),
    )
    .await
    .unwrap();
    wal.append(&batch(vec![1, 2, 3])).await.unwrap();
    wal.append(&batch(vec![4, 5])).await.unwrap();
    assert_eq!(wal.flush_memtable().await.unwrap(), Some(0));
    wal.append(&batch(vec![6, 7, 8, 9])).await.unwrap();
    let output = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        found.trim(),
        r#"{"wal_ids": [6, 7, 8, 9], "fences": 1, "generation_ids": [1, 2, 3, 4, 5], "kinds": ["fence", "data"]}"#
    );
}
