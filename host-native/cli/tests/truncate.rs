//! `tidewal truncate`: retention by position or age (PROTOCOL.md §4 "Retention"), bad input
//! that writes nothing, and a named consumer that holds it back until `--force`.

mod common;

use common::{text, tidewal};
use std::path::Path;
use std::process::Output;

/// Appends one row `id` (one `append` run: one entry, flushed at its close); its position.
fn append_row(dir: &Path, log: &str, id: u64) -> u64 {
    let csv = dir.join(format!("{id}.csv"));
    std::fs::write(&csv, format!("id,name\n{id},row-{id}\n")).unwrap();
    let out = tidewal(&["append", log, "--csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["first_position"].as_u64().unwrap()
}

fn ids(out: &Output) -> Vec<i64> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
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
fn bad_input_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    for id in 0..3 {
        append_row(dir.path(), log_s, id);
    }
    let before = files(&log);
    let cases: [(&[&str], &str); 4] = [
        (&["--before", "100000"], "past the log's end"),
        (
            &["--older-than", "soon"],
            "--older-than \"soon\" is not a duration",
        ),
        (&[], "the following required arguments were not provided"),
        (
            &["--before", "1", "--older-than", "1h"],
            "cannot be used with",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["truncate", log_s];
        all.extend_from_slice(args);
        let out = tidewal(&all);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(files(&log), before, "{args:?} wrote something");
    }
}

#[test]
fn a_named_consumer_holds_truncate_back_until_forced_and_cat_starts_at_the_new_first_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    let mut positions = vec![
        append_row(dir.path(), log_s, 0),
        append_row(dir.path(), log_s, 1),
    ];
    // `etl` consumes the first two rows, then three more arrive.
    let out = tidewal(&["tail", log_s, "--consumer", "etl", "--format", "json"]);
    assert_eq!(ids(&out), vec![0, 1], "{}", text(&out.stderr));
    for id in 2..5 {
        positions.push(append_row(dir.path(), log_s, id));
    }
    let out = tidewal(&["consumers", log_s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let etl = v[0]["position"].as_u64().unwrap();
    assert!(etl > positions[1] && etl <= positions[2], "etl at {etl}");

    // Past etl: refused by name, nothing written.
    let before = files(&log);
    let point = positions[4].to_string();
    let out = tidewal(&["truncate", log_s, "--before", &point]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("etl") && err.contains("--force"), "{err}");
    assert_eq!(files(&log), before, "a refused truncate wrote something");

    // Up to etl: allowed.
    let out = tidewal(&["truncate", log_s, "--before", &etl.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["first_position"], etl);
    let out = tidewal(&["cat", log_s, "--format", "json"]);
    assert_eq!(ids(&out), vec![2, 3, 4]);

    // Forced: past etl.
    let out = tidewal(&["truncate", log_s, "--before", &point, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("forced truncate: {r}");
    assert_eq!(r["first_position"], positions[4]);
    let out = tidewal(&["cat", log_s, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ids(&out), vec![4], "cat starts at the new first position");
    let out = tidewal(&[
        "cat",
        log_s,
        "--format",
        "json",
        "--from",
        &positions[3].to_string(),
    ]);
    assert!(
        !out.status.success(),
        "a start below the first position is refused"
    );
    // etl resumes below what the log holds: refused, it must learn what it missed.
    let out = tidewal(&["tail", log_s, "--consumer", "etl", "--format", "json"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no longer holds"),
        "{}",
        text(&out.stderr)
    );
    let out = tidewal(&["verify", log_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn older_than_drops_only_generations_older_than_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    let mut last = 0;
    for id in 0..3 {
        last = append_row(dir.path(), log_s, id);
    }
    let out = tidewal(&["truncate", log_s, "--older-than", "1h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["generations_dropped"], 0, "{r}");
    assert_eq!(
        ids(&tidewal(&["cat", log_s, "--format", "json"])),
        vec![0, 1, 2]
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = tidewal(&["truncate", log_s, "--older-than", "10ms"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("older than 10ms: {r}");
    assert!(r["generations_dropped"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["bytes_dropped"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["first_position"], last + 1);
    assert_eq!(
        ids(&tidewal(&["cat", log_s, "--format", "json"])),
        Vec::<i64>::new()
    );
}
