//! `tidewal restore`: to a position inside a generation, to a time, to a version (undoing a
//! restore), and bad input refused before the log is opened, nothing written (PROTOCOL.md §4
//! "Restore").

mod common;

use common::{text, tidewal};
use std::path::Path;
use std::sync::Arc;

/// Appends one row `id` (one `append` run: one entry, flushed at its close); its position.
fn append_row(dir: &Path, log: &str, id: u64) -> u64 {
    let csv = dir.join(format!("{id}.csv"));
    std::fs::write(&csv, format!("id,name\n{id},row-{id}\n")).unwrap();
    let out = tidewal(&["append", log, "--csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["first_position"].as_u64().unwrap()
}

fn ids(log: &str) -> Vec<i64> {
    let out = tidewal(&["cat", log, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

fn manifest(log: &str) -> serde_json::Value {
    let out = tidewal(&["inspect", log, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["manifest"].clone()
}

fn restore(log: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["restore", log];
    all.extend_from_slice(args);
    let out = tidewal(&all);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file under `dir` with its size: what "nothing written" compares.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn restore_to_a_position_then_undo_it_with_the_version_below() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let positions: Vec<u64> = (0..5).map(|id| append_row(dir.path(), log, id)).collect();
    // One generation of five entries: the point lies inside it.
    let out = tidewal(&["compact", log]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = manifest(log);
    assert_eq!(before["generations"].as_array().unwrap().len(), 1);
    let p = positions[2].to_string();
    let r = restore(log, &["--to-position", &p]);
    println!("restore: {r}");
    assert_eq!(r["to"], positions[2]);
    assert_eq!(r["generations_rewritten"], 1);
    assert_eq!(r["rows"], 2);
    assert_eq!(r["to_version"], serde_json::Value::Null);
    assert_eq!(ids(log), vec![0, 1]);
    let m = manifest(log);
    assert_eq!(m["restored"]["to"], positions[2]);
    assert_eq!(
        m["replay_cursor"], before["replay_cursor"],
        "the cursor stays"
    );
    let out = tidewal(&["history", log, "--json"]);
    assert!(
        text(&out.stdout).contains("restore"),
        "{}",
        text(&out.stdout)
    );

    // Appends land past the cursor; the undo keeps them.
    append_row(dir.path(), log, 9);
    assert_eq!(ids(log), vec![0, 1, 9]);
    let below = (r["version"].as_u64().unwrap() - 1).to_string();
    let undo = restore(log, &["--to-version", &below]);
    println!("undo: {undo}");
    assert_eq!(undo["to_version"], r["version"].as_u64().unwrap() - 1);
    assert_eq!(ids(log), vec![0, 1, 2, 3, 4, 9]);
}

#[test]
fn restore_to_a_time_keeps_what_a_reader_until_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    for id in 0..3 {
        append_row(dir.path(), log, id);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The time of the second entry's generation.
    let m = manifest(log);
    let t = m["generations"][1]["max_time"].as_u64().unwrap();
    let r = restore(log, &["--to-time", &t.to_string()]);
    println!("restore: {r}");
    assert_eq!(ids(log), vec![0, 1]);
}

#[test]
fn bad_input_fails_clearly_before_opening_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    for id in 0..3 {
        append_row(dir.path(), log_s, id);
    }
    let before = files(&log);
    let cases: [(&[&str], &str); 6] = [
        (
            &[],
            "give exactly one of --to-position P, --to-time T, --to-version V",
        ),
        (
            &["--to-position", "1", "--to-version", "1"],
            "give exactly one of",
        ),
        (&["--to-position", "100000"], "past the log's end"),
        (
            &["--to-time", "5"],
            "no entry of the log lies at or before time 5",
        ),
        (&["--to-time", "soon"], "--to-time \"soon\""),
        (&["--to-version", "100000"], "was never committed"),
    ];
    for (args, says) in cases {
        let mut all = vec!["restore", log_s];
        all.extend_from_slice(args);
        let out = tidewal(&all);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(files(&log), before, "{args:?} wrote something");
    }
}

#[test]
fn a_wal_only_log_is_refused_before_opening() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use arrow_array::{Int64Array, RecordBatch};
        use arrow_schema::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])
            .unwrap();
        let options = tidewal::Options {
            writer: tidewal::WriterConfig {
                wal_only: true,
                ..tidewal::WriterConfig::default()
            },
            ..tidewal::Options::default()
        };
        let wal = tidewal::Wal::open_url(log_s, schema, options)
            .await
            .unwrap();
        wal.append(&batch).await.unwrap();
        // The library refuses it by name too.
        let refused = wal.restore(tidewal::RestoreTarget::Position(0)).await;
        assert!(
            matches!(
                refused,
                Err(tidewal::Error::Restore(tidewal::RestoreError::WrongMode))
            ),
            "{refused:?}"
        );
        wal.close().await.unwrap();
    });
    let before = files(&log);
    let out = tidewal(&["restore", log_s, "--to-position", "0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("WAL-only"), "{err}");
    assert_eq!(files(&log), before, "wrote something");
}
