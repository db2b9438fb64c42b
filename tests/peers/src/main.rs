//! tidewal side by side with SlateDB and Lance MemWAL (and a raw put loop, the limit line) on
//! one object store. `run` spawns one child process per cell and repeat (so peak RSS is each
//! system's own), takes medians and writes results.json and results.md; `cell` is the child.
//! Plan and results: docs/benchmarks/README.md.

mod bench;
mod payload;
mod store;
mod systems;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

fn usage() -> String {
    "usage: tidewal-peers run [--quick] [--stores throttled-5,throttled-20,throttled-50,local,s3] \
     [--systems tidewal,raw,slatedb,lance] [--workloads durable,group,replay] [--repeats 3] [--seconds 3] \
     [--replay-mib 256] [--out DIR] [--merge]\n\
     \x20      tidewal-peers cell SYSTEM STORE WORKLOAD SIZE DEPTH SECONDS"
        .into()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("cell") => cell(&args[1..]),
        Some("run") => run(&args[1..]),
        _ => Err(usage()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Peak resident set size of this process, in MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

/// One measurement in this process; prints one JSON line.
fn cell(args: &[String]) -> Result<(), String> {
    let [system, store_name, workload, size, depth, secs] = args else {
        return Err(usage());
    };
    let size: usize = size.parse().map_err(|_| "bad SIZE")?;
    let depth: usize = depth.parse().map_err(|_| "bad DEPTH")?;
    let secs: f64 = secs.parse().map_err(|_| "bad SECONDS")?;
    let dir = std::env::temp_dir().join("tidewal-peers");
    let run_id = format!("{system}-{workload}-{}-{}", std::process::id(), size);
    let store = store::open(store_name, &dir, &run_id)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let out = rt.block_on(async {
        let max = usize::MAX;
        match workload.as_str() {
            "durable" | "group" => {
                let run = if workload == "durable" {
                    systems::durable(system, store.clone(), size, depth, secs, max).await?
                } else {
                    systems::group(system, store.clone(), secs).await?
                };
                let mb = run.bytes as f64 / 1e6;
                Ok::<Value, String>(json!({
                    "writes_per_sec": run.writes as f64 / run.secs,
                    "mb_per_sec": mb / run.secs,
                    "p50_ms": quantile(&run.latencies, 0.5),
                    "p99_ms": quantile(&run.latencies, 0.99),
                    "puts_per_mb": store.puts() as f64 / mb,
                }))
            }
            "replay" => Ok(
                json!({ "replay_mb_per_sec": systems::replay(system, store.clone(), size).await? }),
            ),
            other => Err(format!("unknown workload {other}")),
        }
    })?;
    let _ = std::fs::remove_dir_all(dir.join(&run_id));
    let mut out = out;
    out["peak_rss_mb"] = json!(peak_rss_mb());
    println!("{out}");
    Ok(())
}

struct RunArgs {
    stores: Vec<String>,
    systems: Vec<String>,
    workloads: Vec<String>,
    /// Keep the cells of an existing results.json that this run does not measure.
    merge: bool,
    repeats: usize,
    seconds: f64,
    replay_mib: usize,
    out: std::path::PathBuf,
}

fn parse_run(args: &[String]) -> Result<RunArgs, String> {
    let mut a = RunArgs {
        stores: ["throttled-5", "throttled-20", "throttled-50", "local"]
            .map(String::from)
            .to_vec(),
        systems: systems::SYSTEMS.iter().map(|s| s.to_string()).collect(),
        workloads: ["durable", "group", "replay"].map(String::from).to_vec(),
        merge: false,
        repeats: 3,
        seconds: 3.0,
        replay_mib: 256,
        out: "docs/benchmarks".into(),
    };
    if std::env::var("TIDEWAL_S3_BUCKET").is_ok() {
        a.stores.push("s3".into());
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => {
                a.repeats = 1;
                a.seconds = 1.0;
                a.replay_mib = 16;
            }
            "--stores" => a.stores = value()?.split(',').map(String::from).collect(),
            "--systems" => a.systems = value()?.split(',').map(String::from).collect(),
            "--workloads" => a.workloads = value()?.split(',').map(String::from).collect(),
            "--merge" => a.merge = true,
            "--repeats" => a.repeats = value()?.parse().map_err(|_| "bad --repeats")?,
            "--seconds" => a.seconds = value()?.parse().map_err(|_| "bad --seconds")?,
            "--replay-mib" => a.replay_mib = value()?.parse().map_err(|_| "bad --replay-mib")?,
            "--out" => a.out = value()?.into(),
            _ => return Err(usage()),
        }
    }
    Ok(a)
}

/// Every cell, `repeats` times each in a fresh process; medians to results.json / results.md.
fn run(args: &[String]) -> Result<(), String> {
    let a = parse_run(args)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cells: Vec<(String, String, String, usize, usize)> = Vec::new();
    for store in &a.stores {
        for system in &a.systems {
            for size in [1usize << 10, 64 << 10, 1 << 20] {
                for depth in [1usize, 32] {
                    cells.push((system.clone(), store.clone(), "durable".into(), size, depth));
                }
            }
            if system != "raw" {
                cells.push((
                    system.clone(),
                    store.clone(),
                    "group".into(),
                    systems::GROUP_WRITE,
                    systems::GROUP_WRITERS,
                ));
            }
            cells.push((
                system.clone(),
                store.clone(),
                "replay".into(),
                a.replay_mib << 20,
                16,
            ));
        }
    }
    cells.retain(|(_, _, workload, _, _)| a.workloads.contains(workload));
    let mut results = Vec::new();
    for (n, (system, store, workload, size, depth)) in cells.iter().enumerate() {
        let mut runs: Vec<Value> = Vec::new();
        for _ in 0..a.repeats {
            let out = Command::new(&exe)
                .args([
                    "cell",
                    system,
                    store,
                    workload,
                    &size.to_string(),
                    &depth.to_string(),
                    &a.seconds.to_string(),
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&out.stdout);
            match serde_json::from_str::<Value>(line.trim()) {
                Ok(v) if out.status.success() => runs.push(v),
                _ => {
                    // The line that says what went wrong, not the backtrace after it.
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let lines: Vec<&str> = stderr.lines().collect();
                    let why = lines
                        .iter()
                        .position(|l| l.starts_with("error:") || l.contains("panicked"))
                        .map(|i| lines[i..lines.len().min(i + 2)].join(" "))
                        .unwrap_or_else(|| stderr.trim().to_string());
                    runs.push(json!({ "error": why }));
                }
            }
        }
        let row = median_row(system, store, workload, *size, *depth, &runs);
        eprintln!("[{}/{}] {row}", n + 1, cells.len());
        results.push(row);
    }
    std::fs::create_dir_all(&a.out).map_err(|e| e.to_string())?;
    if a.merge {
        results = merged(&a.out.join("results.json"), results)?;
    }
    let json = serde_json::to_string_pretty(
        &json!({ "repeats": a.repeats, "seconds": a.seconds, "cells": results }),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(a.out.join("results.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(a.out.join("results.md"), markdown(&results)).map_err(|e| e.to_string())?;
    println!("{}", markdown(&results));
    Ok(())
}

/// The cells of an earlier results.json with `fresh` in place of the ones measured again
/// (same system, store, workload, size and depth), in the earlier order.
fn merged(path: &std::path::Path, fresh: Vec<Value>) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--merge: {e}"))?;
    let old: Value = serde_json::from_str(&text).map_err(|e| format!("--merge: {e}"))?;
    let id = |c: &Value| ["system", "store", "workload", "size", "depth"].map(|k| c[k].to_string());
    let mut fresh: Vec<Option<Value>> = fresh.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for cell in old["cells"].as_array().into_iter().flatten() {
        let again = fresh
            .iter_mut()
            .find(|f| f.as_ref().is_some_and(|f| id(f) == id(cell)));
        out.push(match again {
            Some(f) => f.take().unwrap_or_else(|| cell.clone()),
            None => cell.clone(),
        });
    }
    out.extend(fresh.into_iter().flatten());
    Ok(out)
}

/// The median of every metric over the runs that succeeded (errors kept as text).
fn median_row(
    system: &str,
    store: &str,
    workload: &str,
    size: usize,
    depth: usize,
    runs: &[Value],
) -> Value {
    let mut row = json!({ "system": system, "store": store, "workload": workload, "size": size, "depth": depth, "runs": runs.len() });
    let ok: Vec<&Value> = runs.iter().filter(|r| r.get("error").is_none()).collect();
    if ok.is_empty() {
        row["error"] = runs
            .first()
            .and_then(|r| r.get("error"))
            .cloned()
            .unwrap_or(Value::Null);
        return row;
    }
    let mut metrics: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &ok {
        for (k, v) in r.as_object().into_iter().flatten() {
            if let Some(x) = v.as_f64() {
                metrics.entry(k.clone()).or_default().push(x);
            }
        }
    }
    for (k, mut xs) in metrics {
        xs.sort_by(f64::total_cmp);
        row[k] = json!(xs[xs.len() / 2]);
    }
    row
}

/// One table per workload; tidewal / peer ratios beside each peer's figure.
fn markdown(rows: &[Value]) -> String {
    let get = |r: &Value, k: &str| r.get(k).and_then(Value::as_f64);
    let key = |r: &Value| {
        (
            r["store"].as_str().unwrap_or("").to_string(),
            r["workload"].as_str().unwrap_or("").to_string(),
            r["size"].as_u64().unwrap_or(0),
            r["depth"].as_u64().unwrap_or(0),
        )
    };
    let tidewal: BTreeMap<_, _> = rows
        .iter()
        .filter(|r| r["system"] == "tidewal")
        .map(|r| (key(r), r))
        .collect();
    let mut out = String::from(
        "| workload | store | size | depth | system | writes/s | MB/s | p50 ms | p99 ms | PUTs/MB | replay MB/s | peak RSS MB | tidewal ÷ this |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let f = |x: Option<f64>, d: usize| x.map_or("–".into(), |x| format!("{x:.d$}"));
    for r in rows {
        let (store, workload, size, depth) = key(r);
        let main = if workload == "replay" {
            "replay_mb_per_sec"
        } else {
            "writes_per_sec"
        };
        let ratio = tidewal
            .get(&key(r))
            .and_then(|t| Some(get(t, main)? / get(r, main)?))
            .filter(|_| r["system"] != "tidewal");
        let size_label = if size >= 1 << 20 {
            format!("{} MiB", size >> 20)
        } else {
            format!("{} KiB", size >> 10)
        };
        let system = match r.get("error") {
            Some(e) => format!(
                "{} (failed: {})",
                r["system"].as_str().unwrap_or(""),
                e.as_str().unwrap_or("")
            ),
            None => r["system"].as_str().unwrap_or("").to_string(),
        };
        out += &format!(
            "| {workload} | {store} | {size_label} | {depth} | {system} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f(get(r, "writes_per_sec"), 0),
            f(get(r, "mb_per_sec"), 1),
            f(get(r, "p50_ms"), 2),
            f(get(r, "p99_ms"), 2),
            f(get(r, "puts_per_mb"), 1),
            f(get(r, "replay_mb_per_sec"), 1),
            f(get(r, "peak_rss_mb"), 0),
            ratio.map_or("".into(), |x| format!("{x:.2}×")),
        );
    }
    out
}
