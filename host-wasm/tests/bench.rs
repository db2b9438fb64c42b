//! Throughput of the wasm host in headless Chromium: durable appends/s and MB/s, one append
//! per WAL entry, `depth` appends outstanding — the same workload as the native
//! `tidewal bench --latency-ms 0` — on `MemoryStore` (reached directly, like native InMemory)
//! and on a plain-JS in-memory store (the JS store contract's cost, what OPFS and R2 users
//! pay on top of their storage). Prints tables (run with `-- --nocapture`); asserts nothing
//! about speed.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use arrow_array::{BinaryArray, Int64Array, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema};
use futures::stream::{FuturesUnordered, StreamExt};
use js_sys::{Object, Reflect, Uint8Array};
use tidewal_wasm::{MemoryStore, Wal};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function js_map_store() {
  const objects = new Map();
  const fail = (name) => { const e = new Error(name); e.name = name; return e; };
  return {
    async get(path) {
      const body = objects.get(path);
      if (!body) throw fail('NotFound');
      return { body };
    },
    async put(path, body, opts) {
      if (opts.mode === 'create' && objects.has(path)) throw fail('AlreadyExists');
      objects.set(path, body);
    },
    async list(prefix, after) {
      return [...objects.keys()].filter((p) => p.startsWith(prefix) && (after == null || p > after))
        .map((path) => ({ path, size: objects.get(path).length }));
    },
    async delete(path) { objects.delete(path); },
  };
}
"#)]
extern "C" {
    fn js_map_store() -> JsValue;
}

const SECONDS_PER_CELL: f64 = 0.5;
const BYTES_PER_CELL: usize = 256 << 20;

fn stream(size: usize) -> Uint8Array {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Binary, false),
    ]));
    let payload = vec![7u8; size];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(BinaryArray::from(vec![payload.as_slice()])),
        ],
    )
    .unwrap();
    let mut w = StreamWriter::try_new(Vec::new(), &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    Uint8Array::from(&w.into_inner().unwrap()[..])
}

fn options(bytes: &Uint8Array, depth: u32, size: usize) -> JsValue {
    let o = Object::new();
    let set = |k: &str, v: JsValue| Reflect::set(&o, &k.into(), &v).unwrap();
    set("prefix", "bench".into());
    set("schema", bytes.into());
    set("walOnly", true.into());
    set("window", JsValue::from(depth.max(64)));
    set("maxInFlight", depth.into());
    set("groupCommitBytes", 1.into());
    set("groupCommitRecords", 1.into());
    set("groupCommitIntervalMs", 0.into());
    set("maxEntryBytes", JsValue::from((size + (1 << 20)) as f64));
    set("maxUnflushedBytes", JsValue::from((1u64 << 30) as f64));
    o.into()
}

#[wasm_bindgen_test]
async fn throughput_on_memory_store_and_a_js_store() {
    for (label, make) in [
        (
            "MemoryStore",
            (|| MemoryStore::new().into()) as fn() -> JsValue,
        ),
        ("plain-JS store", js_map_store as fn() -> JsValue),
    ] {
        cells(label, make).await;
    }
}

async fn cells(label: &str, make: fn() -> JsValue) {
    // Chrome runs new wasm code in its baseline compiler first and optimizes hot functions
    // later: a first unprinted cell keeps that warm-up out of the first printed one.
    let warm_up = [(1usize << 10, 8u32, false)];
    let measured = [1usize << 10, 64 << 10, 1 << 20]
        .into_iter()
        .flat_map(|size| [1u32, 8, 32].map(|depth| (size, depth, true)));
    console_log!("{label}\nsize      depth  appends/s     MB/s  ack p50 ms");
    for (size, depth, print) in warm_up.into_iter().chain(measured) {
        {
            let bytes = stream(size);
            let store = make();
            let wal = Wal::open(store.clone(), options(&bytes, depth, size))
                .await
                .unwrap();
            let started = js_sys::Date::now();
            let mut pending = FuturesUnordered::new();
            let (mut issued, mut done) = (0usize, 0usize);
            loop {
                let elapsed = (js_sys::Date::now() - started) / 1000.0;
                let more = elapsed < SECONDS_PER_CELL && issued * size < BYTES_PER_CELL;
                while more && pending.len() < depth as usize {
                    pending.push(JsFuture::from(wal.append(&bytes)));
                    issued += 1;
                }
                match pending.next().await {
                    Some(r) => {
                        r.unwrap();
                        done += 1;
                    }
                    None => break,
                }
            }
            let secs = (js_sys::Date::now() - started) / 1000.0;
            let stats: JsValue = wal.stats().into();
            let p50 = Reflect::get(&stats, &"ackP50Ms".into()).unwrap();
            JsFuture::from(wal.close()).await.unwrap();
            drop(wal);
            // Free a MemoryStore now: wasm-bindgen objects are not garbage collected, and a
            // heap holding every earlier cell's entries would slow the later cells.
            if let Ok(free) = Reflect::get(&store, &"free".into()) {
                if let Ok(free) = free.dyn_into::<js_sys::Function>() {
                    free.call0(&store).unwrap();
                }
            }
            if !print {
                continue;
            }
            console_log!(
                "{:>5} KiB {:>5} {:>10.0} {:>8.1} {:>10.2}",
                size >> 10,
                depth,
                done as f64 / secs,
                (done * size) as f64 / 1e6 / secs,
                p50.as_f64().unwrap_or(f64::NAN)
            );
        }
    }
}

/// Where an append's time goes, per entry of 1 KiB and of 1 MiB: the steps the host and core
/// run for it, then a whole append round trip on `MemoryStore` (awaited one at a time).
#[wasm_bindgen_test]
async fn cost_of_each_step() {
    use bytes::Bytes;
    use tidewal_core::arrow::{stream_schema, ArrowCodec};
    use tidewal_core::{Codec, EntryHeader, EntryKind};
    let clock = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).unwrap();
    let clock: web_time::Clock = clock.unchecked_into();
    // The first pass warms the optimizing compiler up (see `cells`); the second is printed.
    for (size, print) in [(1usize << 10, false), (1 << 10, true), (1 << 20, true)] {
        let n = if size < 1 << 16 { 5000 } else { 50 };
        let js = stream(size);
        let codec = ArrowCodec::new(stream_schema(&js.to_vec()).unwrap()).unwrap();
        let time = |label: &str, f: &mut dyn FnMut()| {
            let started = clock.now();
            for _ in 0..n {
                f();
            }
            let us = (clock.now() - started) * 1000.0 / n as f64;
            if print {
                console_log!("{:>5} KiB  {label:<38} {us:>9.1} µs", size >> 10);
            }
        };
        time("copy JS -> wasm (Uint8Array::to_vec)", &mut || {
            drop(std::hint::black_box(js.to_vec()))
        });
        let bytes = Bytes::from(js.to_vec());
        time("split_stream (parse + validate)", &mut || {
            drop(codec.split_stream(bytes.clone()).unwrap())
        });
        let records = codec.split_stream(bytes.clone()).unwrap();
        let header = EntryHeader {
            kind: EntryKind::Data,
            epoch: 2,
            position: 64,
            nonce: 1,
            time: Some(1_700_000_000_000),
        };
        time("encode_entry (schema, CRC-32C)", &mut || {
            drop(codec.encode_entry(&header, &records).unwrap())
        });
        let entry = codec.encode_entry(&header, &records).unwrap().to_bytes();
        time("CRC-32C alone (software)", &mut || {
            std::hint::black_box(codec.checksum(&entry));
        });
        time("copy wasm -> JS (Uint8Array::from)", &mut || {
            drop(std::hint::black_box(Uint8Array::from(&entry[..])))
        });
        let store: JsValue = MemoryStore::new().into();
        let wal = Wal::open(store.clone(), options(&js, 1, size))
            .await
            .unwrap();
        let started = clock.now();
        for _ in 0..n {
            JsFuture::from(wal.append(&js)).await.unwrap();
        }
        let us = (clock.now() - started) * 1000.0 / n as f64;
        if print {
            let label = "whole append, awaited (MemoryStore)";
            console_log!("{:>5} KiB  {label:<38} {us:>9.1} µs", size >> 10);
        }
        JsFuture::from(wal.close()).await.unwrap();
    }
}

/// `performance`, for a sub-millisecond clock.
mod web_time {
    use wasm_bindgen::prelude::*;
    #[wasm_bindgen]
    extern "C" {
        pub type Clock;
        #[wasm_bindgen(method)]
        pub fn now(this: &Clock) -> f64;
    }
}
