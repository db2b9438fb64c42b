//! Throughput of the Arrow codec's entry path: `encode_entry` from pre-encoded records,
//! `decode_entry` (checksum included), and `encode_batch` + `encode_entry` end to end.
//!
//! Run with `cargo bench -p tidewal-core --features arrow --bench codec`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tidewal_core::arrow::ArrowCodec;
use tidewal_core::{Codec, EntryHeader, EntryKind};

const TARGET: Duration = Duration::from_millis(300);

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "vec",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 4),
            true,
        ),
    ]))
}

fn batch(rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (0..rows as i64).collect();
    let names: Vec<String> = (0..rows).map(|i| format!("user-{i:08}")).collect();
    let mut vecs = FixedSizeListBuilder::new(Float32Builder::new(), 4);
    for i in 0..rows {
        for k in 0..4 {
            vecs.values().append_value((i * 4 + k) as f32);
        }
        vecs.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(TimestampMicrosecondArray::from(ids).with_timezone("UTC")),
        Arc::new(StringArray::from(names)),
        Arc::new(vecs.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("valid batch")
}

/// Mean time of `f`, run for about `TARGET` after a short calibration.
fn measure(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut calib = 0u32;
    while calib < 3 || start.elapsed() < TARGET / 10 {
        f();
        calib += 1;
    }
    let per = start.elapsed() / calib;
    let iters = (TARGET.as_nanos() / per.as_nanos().max(1)).max(1) as u32;
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters
}

fn main() {
    let codec = ArrowCodec::new(schema()).expect("codec");
    let header = EntryHeader {
        kind: EntryKind::Data,
        epoch: 1,
        position: 12_345,
        nonce: 0x0123_4567_89ab_cdef,
        time: Some(1_700_000_000_000),
    };
    let empty = codec.encode_entry(&header, &[]).expect("entry").len();
    let batch_overhead = codec.encode_batch(&batch(0)).expect("encode").payload.len();
    println!("empty data entry: {empty} B; record batch message of 0 rows: {batch_overhead} B");
    println!(
        "{:<8} {:>10} {:>6}  {:<22} {:>10} {:>12}",
        "target", "entry B", "rows", "op", "MB/s", "entries/s"
    );
    for (label, target) in [
        ("1 KiB", 1usize << 10),
        ("64 KiB", 64 << 10),
        ("1 MiB", 1 << 20),
    ] {
        // Size the batch so the whole entry lands near the target.
        let per_row = {
            let big = codec.encode_batch(&batch(1024)).expect("encode");
            big.payload.len() as f64 / 1024.0
        };
        let rows =
            ((target.saturating_sub(empty + batch_overhead) as f64 / per_row) as usize).max(1);
        let b = batch(rows);
        let record = codec.encode_batch(&b).expect("encode");
        let records = [record];
        let entry = codec
            .encode_entry(&header, &records)
            .expect("entry")
            .to_bytes();
        let size = entry.len();

        let ops: [(&str, Duration); 3] = [
            (
                "encode_entry",
                measure(|| {
                    black_box(
                        codec
                            .encode_entry(&header, black_box(&records))
                            .expect("entry"),
                    );
                }),
            ),
            (
                "decode_entry (+crc)",
                measure(|| {
                    black_box(
                        codec
                            .decode_entry(black_box(entry.clone()))
                            .expect("decode"),
                    );
                }),
            ),
            (
                "encode_batch+entry",
                measure(|| {
                    let r = codec.encode_batch(black_box(&b)).expect("encode");
                    black_box(codec.encode_entry(&header, &[r]).expect("entry"));
                }),
            ),
        ];
        for (op, t) in ops {
            let secs = t.as_secs_f64();
            println!(
                "{label:<8} {size:>10} {rows:>6}  {op:<22} {:>10.0} {:>12.0}",
                size as f64 / secs / 1e6,
                1.0 / secs
            );
        }
    }
}
