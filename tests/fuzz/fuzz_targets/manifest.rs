//! Manifest and consumer-version bytes as a store returns them (PROTOCOL.md §3, §5 "Named
//! consumers"): any bytes decode to a typed error or to a value that encodes and decodes to
//! itself; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidewal_core::consumer::ConsumerVersion;
use tidewal_core::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        let again = Manifest::decode(&m.encode()).expect("an encoded manifest decodes");
        assert_eq!(again, m, "a manifest changed through encode and decode");
    }
    let _ = Manifest::decode_version(data, 7);
    let _ = ConsumerVersion::decode(
        "log/consumers/etl/00000000000000000001.json",
        "etl",
        1,
        data,
    );
});
