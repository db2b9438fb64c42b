//! The `tidewal` command line: output, exit codes, and bad input that writes nothing.

mod common;

use common::{text, tidewal};
use std::process::Command;

#[test]
fn append_cat_inspect_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let out = tidewal(&["append", log, "--generate", "100", "--batch-rows", "30"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.trim().ends_with(r#""rows":100}"#), "{line}");
    let out = tidewal(&["cat", log, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 100);
    let out = tidewal(&["inspect", log, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["epoch"], 1);
    let out = tidewal(&["verify", log]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("100 rows stored"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn verify_names_the_corrupt_object_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_str = log.to_str().unwrap();
    assert!(tidewal(&["append", log_str, "--generate", "10"])
        .status
        .success());
    // `append` closes the writer, which flushed a generation: flip a byte in it.
    let generation = std::fs::read_dir(log.join("gen"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&generation).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&generation, bytes).unwrap();
    let out = tidewal(&["verify", log_str]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("corrupt") && err.contains("gen/"), "{err}");
}

#[test]
fn bad_input_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let junk = dir.path().join("junk.arrows");
    std::fs::write(&junk, b"definitely not arrow").unwrap();
    let out = tidewal(&["append", log, "--ipc", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an Arrow IPC"),
        "{}",
        text(&out.stderr)
    );
    let out = tidewal(&["append", log]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exactly one of"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !std::path::Path::new(log).join("manifest").exists(),
        "nothing written"
    );
    let out = tidewal(&["cat", log]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no log"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tail_as_csv_prints_the_header_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    for _ in 0..2 {
        let out = tidewal(&["append", log, "--generate", "5", "--batch-rows", "2"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = tidewal(&["tail", log, "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 11, "one header and ten rows: {printed}");
    assert!(lines[1..].iter().all(|l| *l != lines[0]), "{printed}");
}

#[test]
fn cat_reads_from_and_until_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    // Six runs of one row each: one entry per run, at the position each run prints.
    let positions: Vec<String> = (0..6)
        .map(|_| {
            let out = tidewal(&["append", log, "--generate", "1"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let line = text(&out.stdout);
            let at = line.split(r#""first_position":"#).nth(1).unwrap();
            at.split(',').next().unwrap().to_string()
        })
        .collect();
    let rows = |args: &[&str]| {
        let out = tidewal(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    let (from, until) = (positions[2].as_str(), positions[4].as_str());
    assert_eq!(rows(&["cat", log, "--format", "json"]), 6);
    assert_eq!(rows(&["cat", log, "--format", "json", "--from", from]), 4);
    let ranged = [
        "cat", log, "--format", "json", "--from", from, "--until", until,
    ];
    assert_eq!(rows(&ranged), 2);
    assert_eq!(rows(&["tail", log, "--format", "json", "--from", from]), 4);
}

#[test]
fn cat_and_tail_print_only_the_named_columns_and_refuse_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let out = tidewal(&["append", log, "--generate", "7", "--batch-rows", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for cmd in ["cat", "tail"] {
        let out = tidewal(&[cmd, log, "--format", "csv", "--columns", "value,id"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let printed = text(&out.stdout);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines[0], "value,id", "{printed}");
        assert_eq!(lines.len(), 8, "{printed}");
        assert!(
            lines[1..].iter().all(|l| l.split(',').count() == 2),
            "{printed}"
        );
    }
    let out = tidewal(&["cat", log, "--columns", "id,nope"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("\"nope\"") && err.contains("id, ts, name, value"),
        "{err}"
    );
}

/// The memory smoke (scripts/memory.sh is the 1 GiB proof): `cat` of a 128 MiB log with a
/// 4 MiB read-ahead keeps its peak RSS far below the log's size.
#[test]
fn cat_of_a_128_mib_log_stays_far_below_its_size_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let out = tidewal(&[
        "fill",
        log,
        "--mib",
        "128",
        "--entry-kib",
        "256",
        "--memtable-mib",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_tidewal"))
        .args(["cat", log, "--format", "ipc", "--read-ahead-mib", "4"])
        .env("TIDEWAL_PRINT_VMHWM", "1")
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let kb: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM: "))
        .and_then(|v| v.trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {err}"));
    println!("cat of a 128 MiB log: peak RSS {kb} kB");
    // Collecting the log first would take more than its 128 MiB. What a streaming `cat` of
    // this debug build peaks at (45-57 MiB measured, 4 MiB of it the read-ahead) varies with
    // the allocator's arenas, hence the margin.
    assert!(kb < 96 << 10, "peak RSS {kb} kB for a 128 MiB log");
}

#[test]
fn tail_as_a_consumer_prints_only_what_is_new_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let tail = || tidewal(&["tail", log, "--consumer", "etl", "--format", "json"]);
    assert!(
        tidewal(&["append", log, "--generate", "50", "--batch-rows", "10"])
            .status
            .success()
    );
    let out = tail();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 50);
    // Nothing new: nothing printed.
    let out = tail();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(tidewal(&["append", log, "--generate", "7"])
        .status
        .success());
    let out = tail();
    assert_eq!(
        text(&out.stdout).lines().count(),
        7,
        "{}",
        text(&out.stderr)
    );

    let out = tidewal(&["consumers", log, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "etl");
    assert_eq!(v[0]["lag_entries"], 0);
    assert!(v[0]["position"].as_u64().unwrap() > 0);
    let out = tidewal(&["consumers", log]);
    assert!(text(&out.stdout).contains("etl"), "{}", text(&out.stdout));
    // Another name starts from the beginning.
    let out = tidewal(&["tail", log, "--consumer", "other", "--format", "json"]);
    assert_eq!(text(&out.stdout).lines().count(), 57);
}

#[test]
fn a_bad_consumer_name_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    assert!(tidewal(&["append", log, "--generate", "5"])
        .status
        .success());
    let out = tidewal(&["tail", log, "--consumer", "a/b"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("\"a/b\""), "{err}");
    assert!(!dir.path().join("log/consumers").exists());
}

#[test]
fn cat_since_a_time_prints_what_was_written_from_then() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let unix_ms = || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.unwrap().as_millis() as u64
    };
    let append = || {
        let out = tidewal(&["append", log, "--generate", "1"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    append();
    append();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let since = unix_ms();
    std::thread::sleep(std::time::Duration::from_millis(20));
    append();
    append();
    append();
    let rows = |time: &str| {
        let out = tidewal(&["cat", log, "--format", "json", "--since", time]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    assert_eq!(rows(&since.to_string()), 3);
    assert_eq!(rows("1970-01-01T00:00:00Z"), 5);
    assert_eq!(rows("2999-01-01T00:00:00+02:00"), 0);
    // The same instant as RFC 3339 (seconds, milliseconds, UTC).
    let (secs, ms) = (since / 1000, since % 1000);
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date of `days` (Howard Hinnant's algorithm), to write the time out by hand.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let rfc = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z");
    assert_eq!(rows(&rfc), 3, "{rfc}");
    // A bad time is refused, naming it.
    let out = tidewal(&["cat", log, "--since", "last tuesday"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"last tuesday\""),
        "{}",
        text(&out.stderr)
    );
}

/// Each `append` run claims the log and flushes what it wrote at close: two versions.
fn history_json(log: &str) -> Vec<serde_json::Value> {
    let out = tidewal(&["history", log, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn history_lists_every_version_and_cat_reads_one_as_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    for rows in ["10", "20", "30"] {
        let out = tidewal(&["append", log, "--generate", rows]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let versions = history_json(log);
    let changes: Vec<&str> = versions
        .iter()
        .map(|v| v["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["create", "flush", "claim", "flush", "claim", "flush"]
    );
    let rows: Vec<u64> = versions
        .iter()
        .map(|v| v["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [0, 10, 10, 30, 30, 60]);
    assert!(versions
        .iter()
        .all(|v| v["committed_at"].as_u64().is_some()));
    let at = |version: &str| {
        let out = tidewal(&["cat", log, "--format", "json", "--as-of-version", version]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    assert_eq!(at("1"), 0);
    assert_eq!(at("2"), 10);
    assert_eq!(at("4"), 30);
    assert_eq!(at("6"), 60);
    // The table says the same.
    let out = tidewal(&["history", log]);
    let table = text(&out.stdout);
    assert_eq!(table.lines().count(), 7, "{table}");
    assert!(table.lines().nth(4).unwrap().ends_with("flush"), "{table}");
    // inspect counts what is kept.
    let out = tidewal(&["inspect", log, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest_versions_kept"], 6);
    assert_eq!(v["oldest_kept_version"], 1);
}

#[test]
fn cat_as_of_a_version_collected_or_never_committed_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    let out = tidewal(&["append", log_s, "--generate", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refused = |version: &str, says: &str| {
        let out = tidewal(&["cat", log_s, "--as-of-version", version]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert!(out.stdout.is_empty());
    };
    refused(
        "9",
        "manifest version 9 was never committed: the newest is 2",
    );
    refused("0", "manifest version 0 was never committed");
    // Collected, as GC does.
    std::fs::remove_file(log.join("manifest/00000000000000000001.json")).unwrap();
    refused(
        "1",
        "manifest version 1 is no longer kept: the oldest kept is 2",
    );
    let versions = history_json(log_s);
    assert_eq!(versions.len(), 1);
    // Its predecessor is gone: what it changed is not known.
    assert_eq!(versions[0]["change"], "?");
    let out = tidewal(&["inspect", log_s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["oldest_kept_version"], 2);
}

#[test]
fn cat_until_a_time_prints_what_was_written_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let append = || {
        let out = tidewal(&["append", log, "--generate", "1"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    append();
    append();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let until = now.unwrap().as_millis() as u64;
    std::thread::sleep(std::time::Duration::from_millis(20));
    append();
    append();
    append();
    let rows = |args: &[&str]| {
        let out = tidewal(&[&["cat", log, "--format", "json"], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    assert_eq!(rows(&["--until-time", &until.to_string()]), 2);
    // Before the first entry: nothing; far past the last: everything.
    assert_eq!(rows(&["--until-time", "1970-01-01T00:00:00Z"]), 0);
    assert_eq!(rows(&["--until-time", "2999-01-01T00:00:00+02:00"]), 5);
    // With a start past the first run's entries (its flush's cursor): only the second.
    let cursor = history_json(log)[1]["cursor"].as_u64().unwrap().to_string();
    assert_eq!(
        rows(&["--until-time", &until.to_string(), "--from", &cursor]),
        1
    );
    let out = tidewal(&["cat", log, "--until-time", "next week"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--until-time \"next week\""), "{err}");
}

/// The `id` column of `cat --format json` output, row by row.
fn json_ids(stdout: &[u8]) -> Vec<i64> {
    text(stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[test]
fn twenty_appends_then_compact_leave_fewer_generations_and_every_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let generations = || {
        let out = tidewal(&["inspect", log, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["manifest"]["generations"].as_array().unwrap().len()
    };
    let mut positions = Vec::new();
    for i in 0..20 {
        let csv = dir.path().join(format!("{i}.csv"));
        std::fs::write(&csv, format!("id,name\n{i},row-{i}\n")).unwrap();
        let out = tidewal(&["append", log, "--csv", csv.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        positions.push(v["first_position"].as_u64().unwrap());
    }
    // Each append flushed a generation at its close; background compaction merged some.
    let before = generations();
    let out = tidewal(&["compact", log]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("20 appends: {before} generations; compact: {report}");
    assert_eq!(report["generations_before"], before);
    assert_eq!(report["generations_after"], 1);
    assert_eq!(generations(), 1);
    assert!(before > 1, "nothing left to compact: {before}");
    let out = tidewal(&["cat", log, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids = json_ids(&out.stdout);
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    // A start inside the merged generation reads it from its index.
    let from = positions[13].to_string();
    let out = tidewal(&["cat", log, "--format", "json", "--from", &from]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids = json_ids(&out.stdout);
    assert_eq!(ids, (13..20).collect::<Vec<_>>());
    let out = tidewal(&["verify", log]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn gc_collects_older_writers_fences_and_intents_and_the_log_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    // A short lease (fixed in the log by its first writer), so gc waits about 1.3 s.
    let with_lease = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tidewal"))
            .args(args)
            .env("TIDEWAL_LEASE_MS", "300")
            .output()
            .unwrap()
    };
    // Three writers (epochs 1, 2, 3), each with its fence and intent.
    for _ in 0..3 {
        let out = with_lease(&["append", log, "--generate", "10"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let names = |folder: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path().join("log").join(folder))
            .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()))
            .map(|d| d.collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let intents = names("fences");
    assert_eq!(intents.len(), 3, "{intents:?}");
    let out = with_lease(&["gc", log]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("for the lease of older writers to run out"),
        "{}",
        text(&out.stderr)
    );
    let line = text(&out.stdout);
    assert!(line.contains(r#""fences_collected":1"#), "{line}");
    assert!(line.contains(r#""intents_collected":1"#), "{line}");
    // Epoch 2's intent and fence are gone; epoch 1's (the first lease writer's) and epoch
    // 3's (the cursor's) stay, and gc's own writer (epoch 4) added its intent.
    let left = names("fences");
    assert_eq!(
        left[..2],
        [intents[0].clone(), intents[2].clone()],
        "{left:?}"
    );
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left[2].ends_with("-0000000004"), "{left:?}");
    let epoch2_fence = format!("{}.arrows", &intents[1][..20]);
    assert!(!names("wal").contains(&epoch2_fence), "{:?}", names("wal"));
    let out = tidewal(&["cat", log, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 30);
    let out = tidewal(&["verify", log]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
