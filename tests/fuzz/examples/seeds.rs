//! Writes the seed corpora from real objects: a writer with the fuzz schema appends a few
//! batches to a `MemStore`, flushes a generation and closes; its manifests, WAL entries and
//! generation files, and the IPC stream the batches came from, become `corpus/<target>/`.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use tidewal_core::{Machine, MemStore, Output, Writer, WriterConfig};

fn batch(from: i64, rows: i64) -> RecordBatch {
    let ids = Int64Array::from_iter_values(from..from + rows);
    let names =
        StringArray::from_iter((from..from + rows).map(|i| (i % 3 != 0).then(|| i.to_string())));
    let mut tags = ListBuilder::new(Int32Builder::new());
    for i in from..from + rows {
        if i % 4 == 0 {
            tags.append_null();
        } else {
            tags.values().append_value(i as i32);
            tags.values().append_null();
            tags.append(true);
        }
    }
    let columns: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(names), Arc::new(tags.finish())];
    RecordBatch::try_new(tidewal_fuzz::schema(), columns).expect("batch of the schema")
}

/// Runs `w` against `store` until it waits for a command.
fn run(w: &mut Writer, store: &mut MemStore, now: &mut Duration) {
    for _ in 0..100_000 {
        match w.poll_output() {
            Output::Request(r) => {
                let resp = store.execute(&r.op);
                w.handle_response(r.id, resp, *now);
            }
            Output::Event(_) => {}
            Output::Wait(Some(at)) if at > *now && at < Duration::from_secs(3600) => {
                *now = at;
                w.handle_timeout(*now);
            }
            Output::Wait(_) | Output::Done => return,
        }
    }
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let codec = tidewal_fuzz::codec();
    let mut store = MemStore::new();
    let mut now = Duration::ZERO;
    let cfg = WriterConfig {
        prefix: "log".into(),
        ..WriterConfig::default()
    };
    let mut w = Writer::new(cfg, Box::new(codec.clone()), 1, now).expect("valid config");
    run(&mut w, &mut store, &mut now);
    let mut stream = Vec::new();
    {
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(&mut stream, &tidewal_fuzz::schema())
                .expect("stream writer");
        for (i, rows) in [3, 1, 7].into_iter().enumerate() {
            let b = batch(i as i64 * 10, rows);
            writer.write(&b).expect("write");
            let record = codec.encode_batch(&b).expect("encode");
            w.append(record, now).expect("append");
            w.flush(now).expect("flush");
            run(&mut w, &mut store, &mut now);
        }
        writer.finish().expect("finish");
    }
    // The WAL entries before the flush collects them, then everything after.
    let mut objects: std::collections::BTreeMap<String, bytes::Bytes> = store
        .paths()
        .map(|p| (p.to_string(), store.object(p).expect("listed").clone()))
        .collect();
    w.flush_memtable(now).expect("flush memtable");
    run(&mut w, &mut store, &mut now);
    w.close(now).expect("close");
    run(&mut w, &mut store, &mut now);
    for p in store.paths() {
        objects.insert(p.to_string(), store.object(p).expect("listed").clone());
    }
    let mut written = 0;
    let mut put = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("corpus dir");
        std::fs::write(d.join(name.replace('/', "_")), bytes).expect("seed");
        written += 1;
    };
    for (path, body) in &objects {
        let target = if path.contains("/manifest/") {
            "manifest"
        } else if path.contains("/wal/") {
            "entry"
        } else if path.contains("/gen/") {
            "generation"
        } else {
            continue;
        };
        put(target, path, body);
    }
    put("stream", "batches.arrows", &stream);
    println!("{written} seeds under {}", dir.display());
}
