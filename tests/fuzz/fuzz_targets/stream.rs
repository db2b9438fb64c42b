//! An Arrow IPC stream as a JS caller hands it to the wasm host (`stream_schema`, then
//! `split_stream` into records, each decoded back into a batch); never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tidewal_core::arrow::stream_schema(data);
    let codec = tidewal_fuzz::codec();
    if let Ok(records) = codec.split_stream(Bytes::copy_from_slice(data)) {
        for record in &records {
            let _ = codec.decode_record(record);
        }
    }
});
