//! The data commands: append, cat, tail, inspect, verify, flush, gc.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use clap::ValueEnum;
use tidewal::{Consumer, ConsumerOptions, Error, Item, Options, ReadOptions, Start, Tailer, Wal};

/// Output formats of `cat` and `tail`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON object per row.
    Json,
    /// An Arrow IPC stream (binary, to stdout).
    Ipc,
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// Reads every batch of an Arrow IPC stream or file, or of a CSV file (schema inferred).
fn read_input(path: &str, csv: bool) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("{path}: {e}")))?;
    if csv {
        let format = arrow_csv::reader::Format::default().with_header(true);
        let (schema, _) = format
            .infer_schema(std::io::Cursor::new(&bytes), Some(10_000))
            .map_err(|e| invalid(format!("{path}: {e}")))?;
        let schema = Arc::new(schema);
        let reader = arrow_csv::ReaderBuilder::new(schema.clone())
            .with_format(format)
            .build(std::io::Cursor::new(bytes))
            .map_err(|e| invalid(format!("{path}: {e}")))?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("{path}: {e}")))?;
        return Ok((schema, batches));
    }
    let batches: Result<(SchemaRef, Vec<RecordBatch>), arrow_schema::ArrowError> =
        if bytes.starts_with(b"ARROW1") {
            arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
                .and_then(|r| Ok((r.schema(), r.collect::<Result<Vec<_>, _>>()?)))
        } else {
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                .and_then(|r| Ok((r.schema(), r.collect::<Result<Vec<_>, _>>()?)))
        };
    batches.map_err(|e| invalid(format!("{path} is not an Arrow IPC stream or file: {e}")))
}

/// `append`: every batch is read and checked before the first is written, then all are
/// appended and the summary is printed only once all are durable.
/// The retention policy `--keep-bytes` and `--keep-for` ask for (`None`: neither).
pub fn retention(
    keep_bytes: Option<u64>,
    keep_for: Option<&str>,
) -> Result<Option<tidewal::RetentionPolicy>, Error> {
    let keep_for = keep_for
        .map(|s| {
            humantime::parse_duration(s)
                .map_err(|e| invalid(format!("--keep-for {s:?} is not a duration: {e}")))
        })
        .transpose()?;
    if keep_bytes.is_none() && keep_for.is_none() {
        return Ok(None);
    }
    let policy = tidewal::RetentionPolicy {
        keep_for,
        keep_bytes,
        interval: tidewal::RetentionPolicy::DEFAULT_INTERVAL,
    };
    policy.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(Some(policy))
}

pub async fn append(
    url: &str,
    input: (Option<String>, Option<String>, Option<usize>),
    batch_rows: usize,
    retention: Option<tidewal::RetentionPolicy>,
) -> Result<(), Error> {
    if batch_rows == 0 {
        return Err(invalid("--batch-rows must be at least 1"));
    }
    let (schema, batches) = match input {
        (Some(ipc), None, None) => read_input(&ipc, false)?,
        (None, Some(csv), None) => read_input(&csv, true)?,
        (None, None, Some(n)) => {
            let schema = crate::demo_schema();
            let batch = crate::sample(&schema, 0, n);
            (schema, vec![batch])
        }
        _ => return Err(invalid("give exactly one of --ipc, --csv, --generate")),
    };
    let mut chunks = Vec::new();
    for b in &batches {
        let mut offset = 0;
        while offset < b.num_rows() {
            let len = batch_rows.min(b.num_rows() - offset);
            chunks.push(b.slice(offset, len));
            offset += len;
        }
    }
    if chunks.is_empty() {
        return Err(invalid("the input holds no rows"));
    }
    let (mut options, replaying) = with_replay_progress()?;
    options.writer.retention = retention;
    let wal = Wal::open_url(url, schema, options).await?;
    replaying.finish_and_clear();
    let handles = chunks
        .iter()
        .map(|c| wal.append_nowait(c))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut first, mut last) = (u64::MAX, 0);
    for h in handles {
        let ack = h.await?;
        first = first.min(ack.position);
        last = last.max(ack.position);
    }
    wal.close().await?;
    let rows: usize = chunks.iter().map(|c| c.num_rows()).sum();
    println!(r#"{{"first_position":{first},"last_position":{last},"rows":{rows}}}"#);
    Ok(())
}

/// Prints batches as they come, in one output (one CSV header, one IPC stream).
struct Printer {
    out: Sink,
}

/// The format's writer over a buffered stdout (not locked: the command runs on a task that
/// may move between threads).
enum Sink {
    Table(std::io::BufWriter<std::io::Stdout>),
    /// `header`: the CSV header is still to be written (once, before the first row).
    Csv {
        out: std::io::BufWriter<std::io::Stdout>,
        header: bool,
    },
    Json(arrow_json::LineDelimitedWriter<std::io::BufWriter<std::io::Stdout>>),
    Ipc(arrow_ipc::writer::StreamWriter<std::io::BufWriter<std::io::Stdout>>),
}

/// What a write to stdout came to: a closed pipe (`| head`) is the reader's choice, not a
/// failure, and ends the output quietly.
enum Wrote {
    More,
    PipeClosed,
}

fn written(result: Result<(), Error>) -> Result<Wrote, Error> {
    match result {
        Err(e) if e.to_string().contains("Broken pipe") => Ok(Wrote::PipeClosed),
        Err(e) => Err(e),
        Ok(()) => Ok(Wrote::More),
    }
}

impl Printer {
    fn new(format: Format, schema: &SchemaRef) -> Result<Printer, Error> {
        let out = std::io::BufWriter::new(std::io::stdout());
        let out = match format {
            Format::Table => Sink::Table(out),
            Format::Csv => Sink::Csv { out, header: true },
            Format::Json => Sink::Json(arrow_json::LineDelimitedWriter::new(out)),
            Format::Ipc => {
                Sink::Ipc(arrow_ipc::writer::StreamWriter::try_new(out, schema).map_err(invalid)?)
            }
        };
        Ok(Printer { out })
    }

    /// Writes one batch and flushes it out.
    fn print(&mut self, batch: &RecordBatch) -> Result<Wrote, Error> {
        written(self.write(batch))
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        match &mut self.out {
            Sink::Table(out) => {
                let table = arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(batch))
                    .map_err(invalid)?;
                writeln!(out, "{table}").map_err(invalid)?;
                out.flush().map_err(invalid)
            }
            Sink::Csv { out, header } => {
                let mut w = arrow_csv::WriterBuilder::new()
                    .with_header(*header)
                    .build(&mut *out);
                w.write(batch).map_err(invalid)?;
                drop(w);
                *header = false;
                out.flush().map_err(invalid)
            }
            Sink::Json(w) => {
                w.write(batch).map_err(invalid)?;
                w.get_mut().flush().map_err(invalid)
            }
            Sink::Ipc(w) => {
                w.write(batch).map_err(invalid)?;
                w.flush().map_err(invalid)
            }
        }
    }

    /// Ends the output (the IPC end-of-stream marker; a JSON writer's finish).
    fn finish(self) -> Result<(), Error> {
        let done = match self.out {
            Sink::Table(mut out) => out.flush().map_err(invalid),
            Sink::Csv { mut out, .. } => out.flush().map_err(invalid),
            Sink::Json(mut w) => w.finish().map_err(invalid),
            Sink::Ipc(mut w) => w.finish().map_err(invalid),
        };
        written(done).map(|_| ())
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn progress(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.with_message(what.to_string())
}

/// The environment variable that sets the writer lease (ms) of a log a command creates
/// (PROTOCOL.md §4 "The writer lease"): for tests, which cannot wait out 30 s.
const LEASE_ENV: &str = "TIDEWAL_LEASE_MS";

/// The writer lease `TIDEWAL_LEASE_MS` asks for, if set.
fn lease_from_env() -> Result<Option<Duration>, Error> {
    let Ok(ms) = std::env::var(LEASE_ENV) else {
        return Ok(None);
    };
    let ms: u64 = ms
        .parse()
        .map_err(|_| invalid(format!("{LEASE_ENV} must be a number of ms, not {ms:?}")))?;
    Ok(Some(Duration::from_millis(ms)))
}

/// Default options whose long replay at open shows a spinner (cleared once open returns);
/// a short replay draws nothing.
fn with_replay_progress() -> Result<(Options, indicatif::ProgressBar), Error> {
    let bar = progress(None, "replaying");
    let shown = bar.clone();
    let tell = move |entries: u64, bytes: u64| {
        shown.set_message(format!(
            "replaying: {entries} WAL entries, {} MiB",
            bytes >> 20
        ));
        shown.tick();
    };
    let mut options = Options {
        on_replay: Some(Arc::new(tell)),
        ..Options::default()
    };
    if let Some(lease) = lease_from_env()? {
        options.writer.lease = lease;
    }
    Ok((options, bar))
}

/// What `--from`, `--until`, `--follow`, `--columns` and `--read-ahead-mib` ask of a read.
pub fn range(
    from: Option<u64>,
    until: Option<u64>,
    follow: bool,
    columns: Option<Vec<String>>,
    read_ahead_mib: Option<u64>,
) -> ReadOptions {
    let defaults = ReadOptions::default();
    ReadOptions {
        from: from.map_or(Start::Beginning, Start::Position),
        until,
        follow,
        poll_interval: Duration::from_millis(200),
        columns,
        read_ahead_bytes: read_ahead_mib.map_or(defaults.read_ahead_bytes, |m| m << 20),
        ..defaults
    }
}

/// `cat`: every durable row in the range, in order, printed as it is read (memory stays near
/// the read-ahead bound whatever the log's size).
pub async fn cat(url: &str, range: ReadOptions, format: Format) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let mut scan = Tailer::with_options(store, &prefix, schema, &range)?;
    let mut printer = Printer::new(format, &scan.schema())?;
    while let Some(item) = scan.next().await {
        if let Item::Batch { batch, .. } = item? {
            if let Wrote::PipeClosed = printer.print(&batch)? {
                return Ok(());
            }
        }
    }
    printer.finish()
}

/// `tail`: like `cat`; with `follow`, keeps printing new rows.
pub async fn tail(url: &str, range: ReadOptions, format: Format) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let follow = range.follow;
    let range = ReadOptions {
        follow: true,
        ..range
    };
    let mut tailer = Tailer::with_options(store, &prefix, schema, &range)?;
    let mut printer = Printer::new(format, &tailer.schema())?;
    while let Some(item) = tailer.next().await {
        match item? {
            Item::Batch { batch, .. } => {
                if let Wrote::PipeClosed = printer.print(&batch)? {
                    return Ok(());
                }
            }
            Item::CaughtUp { .. } if !follow => break,
            Item::CaughtUp { .. } => {}
        }
    }
    printer.finish()
}

/// `tail --consumer NAME`: prints what follows the name's committed position and commits as
/// it goes: once a batch at a new position is printed, everything below it was, so that
/// position is committed (awaited, one commit per position); catching up commits the end.
/// Interrupted, a rerun prints at most the entry it was printing again, never skips one.
pub async fn tail_consumer(
    url: &str,
    name: &str,
    follow: bool,
    format: Format,
) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let options = ConsumerOptions {
        follow,
        poll_interval: Duration::from_millis(200),
        ..ConsumerOptions::default()
    };
    let mut consumer = Consumer::open(store, &prefix, schema.clone(), name, options).await?;
    let mut committed = consumer.start_position();
    let mut printer = Printer::new(format, &schema)?;
    while let Some(item) = consumer.next().await {
        match item? {
            Item::Batch { position, batch } => {
                // Everything below `position` was printed and flushed (`print` flushes).
                if position > committed {
                    consumer.commit(position).await?;
                    committed = position;
                }
                if let Wrote::PipeClosed = printer.print(&batch)? {
                    // The reader of our output left: this batch may not have reached it,
                    // and stays uncommitted.
                    return consumer.close().await;
                }
            }
            Item::CaughtUp { position } => {
                if position > committed {
                    consumer.commit(position).await?;
                    committed = position;
                }
            }
        }
    }
    printer.finish()?;
    consumer.close().await
}

/// `consumers`: every named consumer with its committed position and lag.
pub async fn consumers(url: &str, json: bool) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let list = tidewal::consumers(store, &prefix).await?;
    if json {
        let value: Vec<_> = list
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "position": c.position,
                    "version": c.version,
                    "lag_entries": c.lag_entries,
                    "lag_bytes": c.lag_bytes,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(value));
        return Ok(());
    }
    println!(
        "{:<24} {:>12} {:>12} {:>14}",
        "name", "position", "lag entries", "lag bytes"
    );
    for c in &list {
        println!(
            "{:<24} {:>12} {:>12} {:>14}",
            c.name, c.position, c.lag_entries, c.lag_bytes
        );
    }
    Ok(())
}

/// `inspect`: manifest, epoch, positions, generations, WAL objects.
pub async fn inspect(url: &str, json: bool) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let i = tidewal::inspect(store, &prefix).await?;
    let Some(m) = &i.manifest else {
        return Err(invalid(format!("no log at {url}")));
    };
    let wal_bytes: u64 = i.wal.iter().map(|(_, s)| s).sum();
    let gen_bytes: u64 = m.generations.iter().map(|g| g.bytes).sum();
    let oldest_kept = i.manifest_versions.first().copied();
    if json {
        let value = serde_json::json!({
            "manifest": m,
            "manifest_versions": i.manifest_versions,
            "manifest_versions_kept": i.manifest_versions.len(),
            "oldest_kept_version": oldest_kept,
            "wal": i.wal.iter().map(|(p, s)| serde_json::json!({"position": p, "bytes": s})).collect::<Vec<_>>(),
            "fence_intents": i.fence_intents.iter().map(|(p, e)| serde_json::json!({"position": p, "epoch": e})).collect::<Vec<_>>(),
        });
        println!("{value}");
        return Ok(());
    }
    println!("log {url}");
    println!(
        "  format {} codec {}, manifest version {} ({} kept, the oldest {}), committed at {}",
        m.format,
        m.codec,
        m.version,
        i.manifest_versions.len(),
        oldest_kept.map_or("-".to_string(), |v| v.to_string()),
        m.committed_at
            .map_or("- (no clock)".to_string(), |t| format!("{t} (unix ms)")),
    );
    println!(
        "  epoch {} (writer nonce {:016x}), fence window {}",
        m.epoch, m.writer_nonce, m.fence_window
    );
    println!(
        "  replay cursor {} (cursor epoch {}), wal only: {}",
        m.replay_cursor, m.cursor_epoch, m.wal_only
    );
    println!(
        "  generations: {} ({} rows, {} bytes); WAL objects: {} ({} bytes), positions {}..={}",
        m.generations.len(),
        m.generations.iter().map(|g| g.rows).sum::<u64>(),
        gen_bytes,
        i.wal.len(),
        wal_bytes,
        i.wal.first().map_or(0, |w| w.0),
        i.wal.last().map_or(0, |w| w.0),
    );
    println!(
        "  first position {} (dropped before it); retired files waiting for deletion: {} ({} bytes)",
        m.dropped_before,
        m.retired.len(),
        m.retired.iter().map(|r| r.bytes).sum::<u64>()
    );
    println!("  fence intents: {}", i.fence_intents.len());
    Ok(())
}

/// `history`: every kept manifest version, oldest first: a table, or JSON lines.
pub async fn history(url: &str, json: bool) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let h = tidewal::history(store, &prefix).await?;
    if h.versions.is_empty() && h.skipped.is_empty() {
        return Err(invalid(format!("no log at {url}")));
    }
    if json {
        for v in &h.versions {
            let value = serde_json::json!({
                "version": v.version,
                "committed_at": v.committed_at,
                "epoch": v.epoch,
                "cursor": v.cursor,
                "dropped_before": v.dropped_before,
                "generations": v.generations,
                "rows": v.rows,
                "bytes": v.bytes,
                "change": v.change.name(),
            });
            println!("{value}");
        }
        for v in &h.skipped {
            println!(
                "{}",
                serde_json::json!({"version": v, "skipped": "collected while listed"})
            );
        }
        return Ok(());
    }
    println!(
        "{:>8} {:>15} {:>6} {:>10} {:>5} {:>12} {:>12}  change",
        "version", "committed_at", "epoch", "cursor", "gens", "rows", "bytes"
    );
    for v in &h.versions {
        let at = v.committed_at.map_or("-".to_string(), |t| t.to_string());
        println!(
            "{:>8} {:>15} {:>6} {:>10} {:>5} {:>12} {:>12}  {}",
            v.version,
            at,
            v.epoch,
            v.cursor,
            v.generations,
            v.rows,
            v.bytes,
            v.change.name()
        );
    }
    for v in &h.skipped {
        println!("{v:>8} skipped: collected between the list and its read");
    }
    Ok(())
}

/// `verify`: reads every object and checks every checksum.
pub async fn verify(url: &str) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let i = tidewal::inspect(store.clone(), &prefix).await?;
    let total = i.wal.iter().map(|(_, s)| s).sum::<u64>()
        + i.manifest
            .as_ref()
            .map_or(0, |m| m.generations.iter().map(|g| g.bytes).sum());
    let bar = progress(Some(total), "verifying");
    let v = tidewal::verify_with(store, &prefix, |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    println!(
        "ok: {} manifests, {} generations, {} WAL objects ({} fences), {} rows stored, {} bytes read",
        v.manifests, v.generations, v.wal_entries, v.fences, v.rows, v.bytes
    );
    Ok(())
}

/// `tidewal compact`: one full compaction pass (PROTOCOL.md §4 "Compaction"), then close.
pub async fn compact(url: &str) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let generations =
        |i: &tidewal::Inspection| i.manifest.as_ref().map_or(0, |m| m.generations.len());
    let before = generations(&tidewal::inspect(store.clone(), &prefix).await?);
    let (options, replaying) = with_replay_progress()?;
    let wal = Wal::open(store.clone(), &prefix, schema, options).await?;
    replaying.finish_and_clear();
    let pass = wal.compact().await?;
    wal.close().await?;
    let after = generations(&tidewal::inspect(store, &prefix).await?);
    println!(
        r#"{{"compactions":{},"generations_replaced":{},"generations_before":{before},"generations_after":{after}}}"#,
        pass.runs, pass.replaced
    );
    Ok(())
}

/// `truncate`: retention by position or by age (PROTOCOL.md §4 "Retention"). The duration is
/// checked before the log is opened: bad input writes nothing.
pub async fn truncate(
    url: &str,
    before: Option<u64>,
    older_than: Option<&str>,
    force: bool,
) -> Result<(), Error> {
    let age = older_than
        .map(|s| {
            humantime::parse_duration(s)
                .map_err(|e| invalid(format!("--older-than {s:?} is not a duration: {e}")))
        })
        .transpose()?;
    let (store, prefix) = tidewal::existing_store_for(url)?;
    if before.is_some() == age.is_some() {
        return Err(invalid(
            "give exactly one of --before POSITION, --older-than DURATION",
        ));
    }
    // Refusals the log as it stands decides are made before opening it (an open writes a
    // claim and a fence); the writer checks again once it owns the log.
    let i = tidewal::inspect(store.clone(), &prefix).await?;
    let m = i
        .manifest
        .as_ref()
        .ok_or_else(|| invalid(format!("no log at {url}")))?;
    let end = i.wal.last().map_or(0, |(p, _)| p + 1).max(m.replay_cursor);
    let point = match (before, age) {
        (Some(p), _) if p > end => {
            return Err(invalid(format!("position {p} is past the log's end {end}")))
        }
        (Some(p), _) => p,
        (None, _) => m.dropped_before,
    };
    if !force && point > m.dropped_before {
        let listed = tidewal::consumers(store.clone(), &prefix).await?;
        let named = listed.iter().map(|c| (c.name.as_str(), c.position));
        if let Err(held) = tidewal_core::retention::drop_point(point, named, false) {
            let e = Error::from(held);
            return Err(invalid(format!("{e}; pass --force to drop anyway")));
        }
    }
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let (options, replaying) = with_replay_progress()?;
    let wal = Wal::open(store.clone(), &prefix, schema, options).await?;
    replaying.finish_and_clear();
    let dropped = match (before, age) {
        (Some(p), None) => wal.truncate_before(p, force).await,
        (None, Some(age)) => wal.drop_older_than(age, force).await,
        _ => Err(invalid(
            "give exactly one of --before POSITION, --older-than DURATION",
        )),
    };
    let closed = wal.close().await;
    let dropped = match dropped {
        Err(e @ Error::HeldBack { .. }) => {
            return Err(invalid(format!("{e}; pass --force to drop anyway")))
        }
        other => other?,
    };
    closed?;
    println!(
        r#"{{"generations_dropped":{},"bytes_dropped":{},"first_position":{}}}"#,
        dropped.generations, dropped.bytes, dropped.first_position
    );
    Ok(())
}

/// `restore`: exactly one of a position, a time (unix ms) or a version. What the log as it
/// stands refuses is refused before opening it (an open writes a claim and a fence); the
/// writer checks everything again once it owns the log.
pub async fn restore(
    url: &str,
    position: Option<u64>,
    time: Option<u64>,
    version: Option<u64>,
) -> Result<(), Error> {
    use tidewal::RestoreTarget;
    let target = match (position, time, version) {
        (Some(p), None, None) => RestoreTarget::Position(p),
        (None, Some(t), None) => RestoreTarget::Time(t),
        (None, None, Some(v)) => RestoreTarget::Version(v),
        _ => {
            return Err(invalid(
                "give exactly one of --to-position P, --to-time T, --to-version V",
            ))
        }
    };
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let i = tidewal::inspect(store.clone(), &prefix).await?;
    let m = i
        .manifest
        .as_ref()
        .ok_or_else(|| invalid(format!("no log at {url}")))?;
    if m.wal_only {
        return Err(invalid(
            "a WAL-only log keeps no generations: it cannot be restored (truncate it instead)",
        ));
    }
    let end = i.wal.last().map_or(0, |(p, _)| p + 1).max(m.replay_cursor);
    match target {
        RestoreTarget::Position(p) if p > end => {
            return Err(invalid(format!("position {p} is past the log's end {end}")))
        }
        RestoreTarget::Position(p) if p < m.dropped_before => {
            return Err(invalid(format!(
                "position {p} was dropped: the log starts at {}",
                m.dropped_before
            )))
        }
        // Times never decrease along the log: a first generation all of whose entries are
        // past the time means nothing lies at or before it.
        RestoreTarget::Time(t) => {
            let first = m.generations.first();
            let none = match first {
                Some(g) => g.untimed == 0 && g.min_time.is_some_and(|min| min > t),
                None => i.wal.is_empty(),
            };
            if none {
                return Err(invalid(format!(
                    "no entry of the log lies at or before time {t}: the restore would empty it"
                )));
            }
        }
        RestoreTarget::Version(v) if v == 0 || v > m.version => {
            return Err(invalid(format!(
                "manifest version {v} was never committed: the newest is {}",
                m.version
            )))
        }
        RestoreTarget::Version(v) if i.manifest_versions.first().is_some_and(|&o| v < o) => {
            return Err(invalid(format!(
                "manifest version {v} is no longer kept: the oldest kept is {}",
                i.manifest_versions[0]
            )))
        }
        _ => {}
    }
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let (options, replaying) = with_replay_progress()?;
    let wal = Wal::open(store.clone(), &prefix, schema, options).await?;
    replaying.finish_and_clear();
    let restored = wal.restore(target).await;
    let closed = wal.close().await;
    let r = restored?;
    closed?;
    let as_of = r
        .as_of_version
        .map_or_else(|| "null".to_string(), |v| v.to_string());
    println!(
        r#"{{"to":{},"version":{},"from_version":{},"to_version":{as_of},"generations_kept":{},"generations_rewritten":{},"generations_copied":{},"generations_retired":{},"rows":{}}}"#,
        r.to,
        r.version,
        r.from_version,
        r.generations_kept,
        r.generations_rewritten,
        r.generations_copied,
        r.generations_retired,
        r.rows
    );
    Ok(())
}

/// `flush`: take the log over (fencing any running writer), flush the memtable to a
/// generation (which collects the WAL slots it covers) and close.
pub async fn flush(url: &str) -> Result<(), Error> {
    flush_and_collect(url, false).await
}

/// `gc`: `flush`, then collect the fences, window orphans and fence intents below the cursor,
/// waiting once (and saying so) for older writers' leases to run out.
pub async fn gc(url: &str) -> Result<(), Error> {
    flush_and_collect(url, true).await
}

async fn flush_and_collect(url: &str, collect: bool) -> Result<(), Error> {
    let (store, prefix) = tidewal::existing_store_for(url)?;
    let schema = tidewal::log_schema(store.clone(), &prefix).await?;
    let before = tidewal::inspect(store.clone(), &prefix).await?.wal.len();
    let (options, replaying) = with_replay_progress()?;
    let wal = Wal::open(store.clone(), &prefix, schema, options).await?;
    replaying.finish_and_clear();
    let generation = wal.flush_memtable().await?;
    let collected = if collect {
        let wait = wal.collectable_in().await?;
        if !wait.is_zero() {
            eprintln!(
                "waiting {} s for the lease of older writers to run out",
                wait.as_secs_f64().ceil()
            );
        }
        let c = wal.collect_garbage().await?;
        format!(
            r#","fences_collected":{},"orphans_collected":{},"intents_collected":{}"#,
            c.fences, c.orphans, c.intents
        )
    } else {
        String::new()
    };
    wal.close().await?;
    let after = tidewal::inspect(store, &prefix).await?;
    let cursor = after.manifest.map_or(0, |m| m.replay_cursor);
    println!(
        r#"{{"generation":{},"replay_cursor":{cursor},"wal_objects_before":{before},"wal_objects_after":{}{collected}}}"#,
        generation.map_or("null".to_string(), |g| g.to_string()),
        after.wal.len()
    );
    Ok(())
}
