//! Bad input on the command line: a non-zero exit, an error naming what is wrong, and nothing
//! written (the directory is read before and after).

mod common;

use common::{text, tidewal};
use std::path::{Path, PathBuf};

/// Every file under `dir` with its bytes, in order.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let body = std::fs::read(&p).unwrap();
                out.push((p, body));
            }
        }
    }
    out.sort();
    out
}

/// Runs `args`, expects a failure whose message holds every one of `says`.
fn refused(args: &[&str], says: &[&str]) {
    let out = tidewal(args);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: {err:?} lacks {s:?}");
    }
}

fn a_log(dir: &Path) -> String {
    let log = dir.join("log");
    let log = log.to_str().unwrap().to_string();
    let out = tidewal(&["append", &log, "--generate", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    log
}

fn manifest(log: &str, version: u64) -> PathBuf {
    Path::new(log).join(format!("manifest/{version:020}.json"))
}

#[test]
fn verify_refuses_an_older_manifest_whose_body_is_another_version() {
    let dir = tempfile::tempdir().unwrap();
    let log = a_log(dir.path());
    assert!(tidewal(&["verify", &log]).status.success());
    std::fs::copy(manifest(&log, 2), manifest(&log, 1)).unwrap();
    refused(
        &["verify", &log],
        &[
            "manifest/00000000000000000001.json",
            "holds version 2, its name says 1",
        ],
    );
    refused(&["history", &log], &["holds version 2, its name says 1"]);
}

#[test]
fn reading_a_missing_directory_says_no_log_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let url = missing.to_str().unwrap();
    let commands: [&[&str]; 9] = [
        &["inspect", url],
        &["verify", url],
        &["cat", url],
        &["tail", url],
        &["history", url],
        &["consumers", url],
        &["flush", url],
        &["compact", url],
        &["truncate", url, "--before", "1"],
    ];
    for args in commands {
        refused(args, &["no log at", url]);
        assert!(!missing.exists(), "{args:?} created {url}");
    }
}

#[test]
fn urls_of_no_known_store_are_refused_naming_them() {
    refused(
        &["inspect", "ftp://host/log"],
        &["ftp://host/log", "unsupported store ftp://"],
    );
    refused(
        &["append", "s3:///log", "--generate", "1"],
        &["s3:///log", "names no bucket"],
    );
}

#[test]
fn a_prefix_holding_something_else_is_refused_naming_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::create_dir_all(log.join("manifest")).unwrap();
    std::fs::write(log.join("manifest/notes.txt"), "not a log").unwrap();
    let url = log.to_str().unwrap();
    let before = tree(dir.path());
    for args in [
        &["append", url, "--generate", "5"][..],
        &["inspect", url],
        &["verify", url],
        &["flush", url],
    ] {
        refused(args, &["manifest/notes.txt", "unexpected object"]);
    }
    assert_eq!(tree(dir.path()), before, "nothing written");
}

#[test]
fn a_log_of_another_format_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let log = a_log(dir.path());
    let body = std::fs::read(manifest(&log, 2)).unwrap();
    let mut m = tidewal_core::Manifest::decode(&body).unwrap();
    m.format = 2;
    m.version = 3;
    std::fs::write(manifest(&log, 3), m.encode()).unwrap();
    let before = tree(dir.path());
    for args in [
        &["append", &log, "--generate", "5"][..],
        &["cat", &log],
        &["inspect", &log],
    ] {
        refused(args, &["protocol format 2", "reads format 1"]);
    }
    assert_eq!(tree(dir.path()), before, "nothing written");
}

#[test]
fn options_out_of_range_are_refused_naming_them_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = a_log(dir.path());
    let before = tree(dir.path());
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["cat", &log, "--as-of-version", "0"],
            &["versions start at 1"],
        ),
        (
            &["cat", &log, "--as-of-version", "99"],
            &["version 99", "newest is 2"],
        ),
        (
            &["append", &log, "--generate", "5", "--batch-rows", "0"],
            &["--batch-rows"],
        ),
        (
            &["truncate", &log, "--before", "99999"],
            &["99999", "past the log's end"],
        ),
        (
            &["truncate", &log, "--older-than", "5x"],
            &["--older-than \"5x\""],
        ),
        (
            &["cat", &log, "--since", "garbage"],
            &["--since \"garbage\""],
        ),
        (&["tail", &log, "--consumer", "a/b"], &["\"a/b\"", "'/'"]),
    ];
    for (args, says) in cases {
        refused(args, says);
    }
    refused(&["cat", &log, "--columns", "nope"], &["\"nope\"", "id, ts"]);
    refused(
        &["cat", &log, "--from", "10", "--until", "5"],
        &["--until 5 is below --from 10"],
    );
    refused(
        &[
            "cat",
            &log,
            "--since",
            "2030-01-01T00:00:00Z",
            "--until-time",
            "2020-01-01T00:00:00Z",
        ],
        &["--until-time", "before --since"],
    );
    assert_eq!(tree(dir.path()), before, "nothing written");
}
