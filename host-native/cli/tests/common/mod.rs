//! Helpers for the command line's integration tests (`ids` is the same as in the library's
//! `host-native/tests/common`).

use arrow_array::{Int64Array, RecordBatch};

/// The values of the first column (an Int64 `id`) of every batch, in order.
pub fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            col.values().to_vec()
        })
        .collect()
}
