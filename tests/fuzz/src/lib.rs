//! What the fuzz targets share: the log schema they decode against (types whose IPC
//! validation has the most to check: offsets, nulls, nesting) and its codec.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use tidewal_core::arrow::ArrowCodec;

/// `id: Int64`, `name: Utf8?`, `tags: List<Int32?>?`.
pub fn schema() -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Int32, true));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("tags", DataType::List(item), true),
    ]))
}

/// The codec of [`schema`].
pub fn codec() -> ArrowCodec {
    ArrowCodec::new(schema()).expect("a supported schema")
}
