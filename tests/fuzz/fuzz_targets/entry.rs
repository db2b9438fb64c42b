//! WAL entry bytes (PROTOCOL.md §2): decoded by the Arrow codec (and each record decoded
//! into a batch, which validates its buffers) and by the raw codec; never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidewal_core::{Codec, RawCodec};

fuzz_target!(|data: &[u8]| {
    let codec = tidewal_fuzz::codec();
    if let Ok(entry) = codec.decode_entry(Bytes::copy_from_slice(data)) {
        for record in &entry.records {
            let _ = codec.decode_record(record);
        }
    }
    let _ = RawCodec::new(Bytes::from_static(b"s")).decode_entry(Bytes::copy_from_slice(data));
});
