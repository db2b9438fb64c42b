//! `tidewal append --keep-bytes / --keep-for`: each append session applies the retention
//! policy as it closes (PROTOCOL.md §4 "Automatic retention"); bad values write nothing.

mod common;

use common::{text, tidewal};

/// The current manifest's generations: (first position, bytes).
fn generations(log: &str) -> (u64, Vec<(u64, u64)>) {
    let out = tidewal(&["inspect", log, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["manifest"];
    let gens = m["generations"].as_array().unwrap();
    let gens = gens
        .iter()
        .map(|g| {
            (
                g["first_position"].as_u64().unwrap(),
                g["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    (m["dropped_before"].as_u64().unwrap_or(0), gens)
}

#[test]
fn append_sessions_under_keep_bytes_keep_the_log_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let out = tidewal(&["append", log, "--generate", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let one = generations(log).1[0].1;
    // Room for two generations (and a half): every later session drops the oldest.
    let keep = (one * 5 / 2).to_string();
    for session in 0..4 {
        let out = tidewal(&["append", log, "--generate", "1000", "--keep-bytes", &keep]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let (dropped_before, gens) = generations(log);
        let live: u64 = gens.iter().map(|g| g.1).sum();
        println!(
            "session {session}: {} generations, {live} bytes live",
            gens.len()
        );
        assert!(live <= one * 5 / 2, "session {session}: {live} bytes live");
        assert_eq!(gens.len(), 2, "session {session}");
        assert!(gens[0].0 >= dropped_before, "whole generations only");
    }
    let out = tidewal(&["cat", log, "--format", "json"]);
    assert_eq!(text(&out.stdout).lines().count(), 2000);
}

#[test]
fn bad_keep_values_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    for bad in [
        &["--keep-bytes", "0"][..],
        &["--keep-for", "soon"][..],
        &["--keep-for", "0s"][..],
    ] {
        let mut args = vec!["append", log, "--generate", "10"];
        args.extend_from_slice(bad);
        let out = tidewal(&args);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = text(&out.stderr);
        assert!(err.contains("keep"), "{bad:?}: {err}");
        assert!(!dir.path().join("log").exists(), "{bad:?} wrote the log");
    }
}
