//! The same payload for every system: Arrow batches of one schema (an id, a timestamp, a
//! string, a float vector), sized to about N bytes per durable write. SlateDB gets their IPC
//! bytes as values; Lance (arrow 58) gets them decoded from the same IPC bytes.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Floats in the vector column.
const DIM: i32 = 16;
/// About what one row costs in an IPC message (8 + 8 + ~16 + 4 + 64 bytes).
const ROW_BYTES: usize = 100;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("name", DataType::Utf8, false),
        Field::new(
            "vec",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), DIM),
            false,
        ),
    ]))
}

/// A batch of about `bytes` bytes whose ids start at `first`.
pub fn batch(first: i64, bytes: usize) -> RecordBatch {
    let rows = (bytes / ROW_BYTES).max(1);
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("row-{i:012}")).collect();
    let mut vecs = FixedSizeListBuilder::new(Float32Builder::new(), DIM);
    for &i in &ids {
        for k in 0..DIM {
            vecs.values().append_value((i as f32) * 0.5 + k as f32);
        }
        vecs.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(TimestampMicrosecondArray::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(vecs.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("payload matches its schema")
}

/// `batch` as an Arrow IPC stream.
pub fn ipc(batch: &RecordBatch) -> Vec<u8> {
    let mut w =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).expect("ipc writer");
    w.write(batch).expect("ipc write");
    w.finish().expect("ipc finish");
    w.into_inner().expect("ipc bytes")
}
