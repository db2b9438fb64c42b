//! `tidewal soak`: a short run on a temporary directory (its CSV, plot and summary), and
//! bad arguments refused with a clear error before anything is written.

mod common;

use common::{text, tidewal};

#[test]
fn a_short_soak_samples_takes_over_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let csv = dir.path().join("soak.csv");
    let svg = dir.path().join("soak.svg");
    let out = tidewal(&[
        "soak",
        log.to_str().unwrap(),
        "--seconds",
        "15",
        "--sample-secs",
        "1",
        "--reopen-secs",
        "5",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.lines().any(|l| l == "lost = 0"), "{stdout}");
    assert!(stdout.contains("| lost | 0 |"), "{stdout}");

    let csv = std::fs::read_to_string(&csv).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "elapsed_s",
            "rss_kib",
            "fds",
            "objects",
            "object_bytes",
            "appends_per_s",
            "mb_per_s",
            "acked_rows",
            "follower_rows",
            "consumer_position",
            "epoch"
        ]
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    // About one a second for 15 s (a busy machine may delay some).
    assert!(rows.len() >= 8 && rows.len() <= 16, "{csv}");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{csv}");
        assert!(r[col("rss_kib")] > 1000.0, "RSS in KiB: {csv}");
        assert!(
            r[col("fds")] >= 3.0,
            "stdin, stdout, stderr at least: {csv}"
        );
        assert!(r[col("objects")] >= 1.0, "{csv}");
    }
    let last = rows.last().unwrap();
    assert!(last[col("acked_rows")] > 0.0, "{csv}");
    assert!(last[col("follower_rows")] > 0.0, "{csv}");
    // Elapsed time and acked rows only grow; a takeover every 5 s raised the epoch.
    for w in rows.windows(2) {
        assert!(w[1][col("elapsed_s")] > w[0][col("elapsed_s")], "{csv}");
        assert!(w[1][col("acked_rows")] >= w[0][col("acked_rows")], "{csv}");
    }
    assert!(last[col("epoch")] >= 2.0, "{csv}");
    assert!(stdout.contains("fenced writers checked"), "{stdout}");

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 4, "one line per panel");
}

#[test]
fn bad_soak_arguments_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&[], "--minutes M or --seconds S"),
        (&["--minutes", "0"], "--minutes 0"),
        (&["--seconds=-3"], "--seconds -3"),
        (&["--seconds", "5", "--sample-secs", "0"], "--sample-secs 0"),
        (
            &["--seconds", "5", "--reopen-secs", "NaN"],
            "--reopen-secs NaN",
        ),
        (&["--seconds", "5", "--keep-mib", "0"], "--keep-mib 0"),
    ];
    for (extra, says) in cases {
        let mut args = vec!["soak", log];
        args.extend_from_slice(extra);
        let out = tidewal(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!dir.path().join("log").exists(), "{args:?} wrote the log");
    }
    // A log that already holds something: its ids would not be the soak's.
    let out = tidewal(&["append", log, "--generate", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tidewal(&["soak", log, "--seconds", "5"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("soak needs an empty log"), "{stderr}");
    // An unknown scheme is the URL's typed error.
    let out = tidewal(&["soak", "ftp://x/y", "--seconds", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ftp://x/y"),
        "{}",
        text(&out.stderr)
    );
}
