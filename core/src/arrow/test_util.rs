//! Test helpers shared by the codec's modules: a log schema with a few layouts, batches of it,
//! a codec for it, an entry header, and batches with large binary values.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{
    ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::ArrowCodec;
use crate::codec::{EntryHeader, EntryKind};

pub(super) fn schema() -> SchemaRef {
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

pub(super) fn batch(rows: usize, seed: i64) -> RecordBatch {
    let ids: Vec<i64> = (0..rows as i64).map(|i| seed * 1000 + i).collect();
    let names: Vec<Option<String>> = (0..rows)
        .map(|i| (i % 3 != 1).then(|| format!("row-{seed}-{i}")))
        .collect();
    let mut vecs = FixedSizeListBuilder::new(Float32Builder::new(), 4);
    for i in 0..rows {
        for k in 0..4 {
            vecs.values().append_value((i * 4 + k) as f32 * 0.5);
        }
        vecs.append(i % 5 != 2);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(TimestampMicrosecondArray::from(ids).with_timezone("UTC")),
        Arc::new(StringArray::from(names)),
        Arc::new(vecs.finish()),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

pub(super) fn codec() -> ArrowCodec {
    ArrowCodec::new(schema()).unwrap()
}

pub(super) fn header(kind: EntryKind) -> EntryHeader {
    EntryHeader {
        kind,
        epoch: 3,
        position: 42,
        nonce: 0x00ff_00ff_dead_beef,
        time: (kind == EntryKind::Data).then_some(1_700_000_000_123),
    }
}

/// A batch with one `size`-byte binary value per row.
pub(super) fn blob_batch(rows: usize, size: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("blob", DataType::Binary, true),
    ]));
    let blobs: Vec<Option<Vec<u8>>> = (0..rows)
        .map(|i| (i % 4 != 3).then(|| vec![i as u8; size]))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(BinaryArray::from_iter(blobs)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}
