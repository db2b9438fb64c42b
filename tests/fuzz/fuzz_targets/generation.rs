//! Generation file bytes (PROTOCOL.md §1): the whole-file decode (and each record's batch),
//! and the index a ranged reader reads first; never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidewal_core::Codec;

fuzz_target!(|data: &[u8]| {
    let codec = tidewal_fuzz::codec();
    if let Ok(generation) = codec.decode_generation(Bytes::copy_from_slice(data)) {
        for entry in &generation.entries {
            for record in &entry.records {
                let _ = codec.decode_record(record);
            }
        }
    }
    if let Some(range) = codec.generation_index_range(data) {
        let (start, end) = (range.start as usize, range.end as usize);
        if start <= end && end <= data.len() {
            let _ = codec.decode_generation_index(&data[start..end], data.len() as u64);
        }
    }
});
