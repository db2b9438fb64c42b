//! The manifest: the log's committed state, one JSON object per version (PROTOCOL.md §3).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::crc32c::{crc32c, to_hex8};
use crate::error::FatalError;

/// The protocol format this crate reads and writes.
pub const FORMAT: u32 = 1;

/// Counters (versions, epochs, positions, ids) stay below this.
pub const LIMIT: u64 = 1 << 62;

/// The largest fence window a log may have.
pub const MAX_FENCE_WINDOW: u32 = 1 << 16;

/// `{"crc32c":"` + 8 hex digits + `",`
const PREFIX_LEN: usize = 21;

/// One committed version of a log's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Protocol format ([`FORMAT`]).
    pub format: u32,
    /// Codec name (a log never mixes codecs).
    pub codec: String,
    /// Version; equals the number in the object name.
    pub version: u64,
    /// Epoch of the writer that owns the log.
    pub epoch: u64,
    /// That writer's nonce.
    #[serde(with = "hex_u64")]
    pub writer_nonce: u64,
    /// Skip window `W` after a fence; the bound on any writer's puts in flight.
    pub fence_window: u32,
    /// First WAL position not contained in a generation.
    pub replay_cursor: u64,
    /// Highest fence epoch below the cursor.
    pub cursor_epoch: u64,
    /// Whether the log keeps no memtable and no generations (absent: `false`).
    #[serde(default)]
    pub wal_only: bool,
    /// The codec's schema bytes, hex.
    pub schema: String,
    /// Id the next generation will get.
    pub next_generation: u64,
    /// Flushed generations, in position order.
    pub generations: Vec<GenerationRecord>,
    /// Every position below this was dropped (a WAL-only truncate asked for it): the log
    /// holds none of them and a reader may not start there. Written only once it is not 0,
    /// so logs that never dropped anything keep manifests older versions read as they are.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_before: u64,
    /// When the version was committed: the committing writer's wall clock (unix ms), never
    /// below the version it built on. Left out by writers without a clock (and older ones):
    /// GC then keeps the version by count only (PROTOCOL.md §4 "GC").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<u64>,
    /// Generation files a compaction replaced, not known deleted yet (PROTOCOL.md §3, §4
    /// "Compaction"). Left out while empty; readers ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredRecord>,
    /// The writer lease `L` in ms (PROTOCOL.md §4 "The writer lease"): fixed when first
    /// written; every writer of the log acknowledges only within `L` of a clean ownership
    /// check. Absent in logs whose writers held no lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// The first epoch whose writer held leases (and placed its fence): fences of epochs at
    /// or below it are never collected. Absent until such a writer committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<u64>,
    /// A drop to this point is being decided (PROTOCOL.md §4 "Retention"): the owner
    /// committed it before listing the named consumers, so a consumer that starts from the
    /// beginning while it is here waits for the drop's commit instead of reading entries the
    /// drop may remove. Absent when no drop is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropping: Option<Dropping>,
    /// Set only in a version a restore committed (PROTOCOL.md §4 "Restore"): what it
    /// restored to. Left out otherwise; older manifests decode without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<RestoredRecord>,
    /// The newest entry time (unix ms) the log held before a restore left entries out, or
    /// an older such floor (PROTOCOL.md §4 "Restore"): writers stamp new entries at least
    /// this, so that times never decrease along the log, even once a restore to an older
    /// version brings those entries back; or the newest time of generations a drop removed.
    /// Written by restores and drops, kept by every later commit; absent in logs that had
    /// neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_floor: Option<u64>,
}

/// What a restore did, as its manifest version records it (PROTOCOL.md §3, §4 "Restore").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredRecord {
    /// The point `P`: the version holds no entry at or past it below its cursor.
    pub to: u64,
    /// The version the restore was built on (the one below it).
    pub from_version: u64,
    /// The version restored to, for a restore to a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// A drop being decided (PROTOCOL.md §4 "Retention"): its point, and the version of the
/// intent commit that announced it (a later round's intent is another one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropping {
    /// Nothing below it is dropped by this round; it may drop less.
    pub to: u64,
    /// The manifest version that set it.
    pub version: u64,
}

/// A generation file a compaction replaced, waiting to be deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredRecord {
    /// Object path.
    pub path: String,
    /// The manifest version that dropped it from `generations`: every version below may
    /// still name it.
    pub version: u64,
    /// Its size (what deleting it reclaims).
    pub bytes: u64,
    /// The retiring writer's wall clock (unix ms), if it has one: informative only (the
    /// grace is counted on the deleting writer's own clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A generation file as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// Generation id.
    pub id: u64,
    /// Object path.
    pub path: String,
    /// First WAL position it contains.
    pub first_position: u64,
    /// Last WAL position it contains.
    pub last_position: u64,
    /// WAL entries it contains.
    pub entries: u64,
    /// Records it contains.
    pub records: u64,
    /// Rows it contains.
    pub rows: u64,
    /// Object size.
    pub bytes: u64,
    /// CRC-32C of the object, 8 hex digits.
    pub crc32c: String,
    /// Where the generation's index (for Arrow, the IPC footer) lies and its checksum: what
    /// a reader starting inside the generation needs to fetch only what it reads. Absent in
    /// generations written before ranged reads existed (they are read whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexRecord>,
    /// The earliest entry time (unix ms) in the generation, of those that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_time: Option<u64>,
    /// The latest entry time (unix ms) in the generation, of those that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<u64>,
    /// Entries without a time (their writers recorded none); left out when 0. A reader
    /// skips a generation by its `max_time` only when there are none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untimed: u64,
}

/// The index of a generation file, as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecord {
    /// First byte of the index in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub length: u64,
    /// CRC-32C of those bytes, 8 hex digits.
    pub crc32c: String,
}

impl IndexRecord {
    /// The index's bytes in the file.
    pub fn range(&self) -> core::ops::Range<u64> {
        self.offset..self.offset + self.length
    }

    /// Checks fetched index bytes against this record: `Corrupt` naming `path` otherwise.
    pub fn verify(
        &self,
        codec: &dyn crate::codec::Codec,
        path: &str,
        body: &[u8],
    ) -> Result<(), FatalError> {
        let digest = to_hex8(codec.checksum(body));
        if body.len() as u64 != self.length || digest[..] != *self.crc32c.as_bytes() {
            return Err(FatalError::Corrupt {
                path: path.into(),
                reason: "index size or checksum differs from the manifest".into(),
            });
        }
        Ok(())
    }
}

impl GenerationRecord {
    /// Checks that `body` is the object this record describes: the size and the checksum
    /// (`codec`'s CRC-32C) the manifest recorded when it committed the generation.
    pub fn verify(&self, codec: &dyn crate::codec::Codec, body: &[u8]) -> Result<(), FatalError> {
        let digest = to_hex8(codec.checksum(body));
        if body.len() as u64 != self.bytes || digest[..] != *self.crc32c.as_bytes() {
            return Err(FatalError::Corrupt {
                path: self.path.clone(),
                reason: "size or checksum differs from the manifest".into(),
            });
        }
        Ok(())
    }
}

impl Manifest {
    /// The lowest position the log still holds ([`Manifest::dropped_before`]). Not the
    /// cursor: a truncate moves the cursor to the first data entry at or past what it asked
    /// for, and what lies between (a fence and its window) held no data to drop.
    pub fn first_available(&self) -> u64 {
        self.dropped_before
    }

    /// Checks that the log's recorded schema is `codec`'s: `SchemaMismatch` naming this
    /// manifest (`path`) and what differs.
    pub(crate) fn check_schema(
        &self,
        codec: &dyn crate::codec::Codec,
        path: &str,
    ) -> Result<(), FatalError> {
        let detail = match self.schema_bytes() {
            Some(stored) => codec.schema_diff(&stored),
            None => Some("the recorded schema is not hex".into()),
        };
        match detail {
            None => Ok(()),
            Some(detail) => Err(FatalError::SchemaMismatch {
                path: path.into(),
                detail,
            }),
        }
    }
}

/// Why manifest bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// Not a valid manifest object.
    Corrupt(String),
    /// A valid manifest of a protocol format this crate does not know.
    UnsupportedFormat(u32),
}

impl Manifest {
    /// Encodes as checksummed JSON.
    pub fn encode(&self) -> Bytes {
        frame(self)
    }

    /// Decodes and verifies the manifest object of `version` (the number in its name): the
    /// version its body records must be that number (PROTOCOL.md §3), else `Corrupt`.
    pub fn decode_version(bytes: &[u8], version: u64) -> Result<Manifest, ManifestError> {
        let m = Manifest::decode(bytes)?;
        if m.version != version {
            return Err(ManifestError::Corrupt(format!(
                "holds version {}, its name says {version}",
                m.version
            )));
        }
        Ok(m)
    }

    /// Decodes and verifies manifest bytes (of an object whose name is not known: every
    /// manifest object is read with [`Manifest::decode_version`]).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let json = unframe(bytes).map_err(ManifestError::Corrupt)?;
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
        }
        let probe: Probe = serde_json::from_slice(&json)
            .map_err(|e| ManifestError::Corrupt(format!("bad JSON: {e}")))?;
        if probe.format != FORMAT {
            return Err(ManifestError::UnsupportedFormat(probe.format));
        }
        let m: Manifest = serde_json::from_slice(&json)
            .map_err(|e| ManifestError::Corrupt(format!("bad JSON: {e}")))?;
        m.check_bounds().map_err(ManifestError::Corrupt)?;
        Ok(m)
    }

    /// Numbers stay far from overflow and generations are ordered, so machines can add to
    /// them without checks.
    fn check_bounds(&self) -> Result<(), String> {
        let big = [
            self.version,
            self.epoch,
            self.replay_cursor,
            self.next_generation,
        ];
        if big.iter().any(|&v| v >= LIMIT) {
            return Err("a counter is out of range".into());
        }
        if self.version == 0 || self.cursor_epoch > self.epoch {
            return Err("version 0 or cursor epoch past the epoch".into());
        }
        if self.fence_window == 0 || self.fence_window > MAX_FENCE_WINDOW {
            return Err(format!("fence window {} out of range", self.fence_window));
        }
        // The lease a writer acks by (PROTOCOL.md §4): the same range a writer may configure,
        // so a log never makes its writers renew without pause or ack never.
        if let Some(ms) = self
            .lease_ms
            .filter(|&ms| !(3..=u64::from(u32::MAX)).contains(&ms))
        {
            return Err(format!("lease of {ms} ms out of range"));
        }
        if self.lease_epoch.is_some_and(|e| e > self.epoch) {
            return Err("lease epoch past the epoch".into());
        }
        let mut next_position = 0;
        let mut next_id = 0;
        for g in &self.generations {
            let ordered = g.first_position >= next_position
                && g.first_position <= g.last_position
                && g.last_position < self.replay_cursor
                && g.id >= next_id
                && g.id < self.next_generation;
            if !ordered {
                return Err(format!("generation {} out of order or range", g.id));
            }
            let index_fits = g.index.as_ref().is_none_or(|i| {
                i.length > 0 && i.offset.checked_add(i.length).is_some_and(|e| e <= g.bytes)
            });
            if !index_fits {
                return Err(format!("generation {} index out of range", g.id));
            }
            next_position = g.last_position + 1;
            next_id = g.id + 1;
        }
        Ok(())
    }

    /// The schema bytes recorded in the manifest.
    pub fn schema_bytes(&self) -> Option<Vec<u8>> {
        decode_hex(&self.schema)
    }
}

/// `value` as JSON whose first 21 bytes are `{"crc32c":"XXXXXXXX",`, the CRC-32C of every
/// byte after them (the framing of manifests and consumer versions, PROTOCOL.md §3).
pub(crate) fn frame<T: Serialize>(value: &T) -> Bytes {
    // serde_json of a plain struct cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let rest = body.get(1..).unwrap_or_default(); // drop '{'
    let mut out = Vec::with_capacity(PREFIX_LEN + rest.len());
    out.extend_from_slice(b"{\"crc32c\":\"");
    out.extend_from_slice(&to_hex8(crc32c(rest)));
    out.extend_from_slice(b"\",");
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// The JSON object inside a [`frame`], checksum verified; the error says what is wrong.
pub(crate) fn unframe(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() <= PREFIX_LEN
        || &bytes[..11] != b"{\"crc32c\":\""
        || &bytes[19..PREFIX_LEN] != b"\","
    {
        return Err("not a tidewal object (bad prefix)".into());
    }
    let rest = &bytes[PREFIX_LEN..];
    // Compare the digits as written: parsing would accept `A` for `a` or a leading `+`.
    if bytes[11..19] != to_hex8(crc32c(rest)) {
        return Err("checksum mismatch".into());
    }
    let mut json = Vec::with_capacity(rest.len() + 1);
    json.push(b'{');
    json.extend_from_slice(rest);
    Ok(json)
}

/// Lowercase hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        s.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    s
}

/// Parses lowercase or uppercase hex.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A u64 as 16 hex digits: JSON numbers lose precision past 2^53 in many readers.
pub(crate) mod hex_u64 {
    use alloc::format;
    use alloc::string::String;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 16 {
            return Err(D::Error::custom("expected 16 hex digits"));
        }
        u64::from_str_radix(&s, 16).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            codec: "raw".into(),
            version: 7,
            epoch: 3,
            writer_nonce: u64::MAX - 5,
            fence_window: 64,
            replay_cursor: 120,
            cursor_epoch: 3,
            wal_only: false,
            schema: encode_hex(b"schema"),
            next_generation: 1,
            generations: vec![GenerationRecord {
                id: 0,
                path: "p/gen/0000000001-0000000000.arrow".into(),
                first_position: 0,
                last_position: 57,
                entries: 40,
                records: 40,
                rows: 4096,
                bytes: 1000,
                crc32c: "0a0b0c0d".into(),
                index: None,
                min_time: None,
                max_time: None,
                untimed: 0,
            }],
            dropped_before: 0,
            committed_at: None,
            retired: vec![],
            lease_ms: None,
            lease_epoch: None,
            restored: None,
            time_floor: None,
            dropping: None,
        }
    }

    #[test]
    fn round_trip_is_json() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["writer_nonce"], "fffffffffffffffa");
        // Nothing dropped: the field is left out, so older readers see the same bytes.
        assert!(v.get("dropped_before").is_none());
        assert!(v.get("committed_at").is_none());
        let mut timed = sample();
        timed.committed_at = Some(1_700_000_000_123);
        let bytes = timed.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), timed);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["committed_at"], 1_700_000_000_123u64);
        assert_eq!(m.schema_bytes().unwrap(), b"schema");
        assert!(v.get("restored").is_none());
        let mut restored = sample();
        restored.restored = Some(RestoredRecord {
            to: 40,
            from_version: 6,
            version: None,
        });
        let bytes = restored.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), restored);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["restored"],
            serde_json::json!({"to": 40, "from_version": 6})
        );
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            for mask in [0x01, 0x20, 0x80, 0xFF] {
                let mut bad = bytes.to_vec();
                bad[i] ^= mask;
                assert!(
                    Manifest::decode(&bad).is_err(),
                    "flip {mask:#x} at {i} accepted"
                );
            }
        }
        for n in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn a_body_of_another_version_than_its_name_is_corrupt() {
        let m = sample();
        assert_eq!(Manifest::decode_version(&m.encode(), 7), Ok(m.clone()));
        for named in [1, 6, 8] {
            assert_eq!(
                Manifest::decode_version(&m.encode(), named),
                Err(ManifestError::Corrupt(format!(
                    "holds version 7, its name says {named}"
                )))
            );
        }
    }

    #[test]
    fn unknown_format_is_typed() {
        let mut m = sample();
        m.format = 2;
        assert_eq!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::UnsupportedFormat(2))
        );
    }

    #[test]
    fn out_of_range_counters_and_unordered_generations_are_corrupt() {
        let mut m = sample();
        m.replay_cursor = LIMIT;
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::Corrupt(_))
        ));
        let mut m = sample();
        m.generations[0].last_position = m.replay_cursor;
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::Corrupt(_))
        ));
        let mut m = sample();
        m.fence_window = 0;
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::Corrupt(_))
        ));
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(
            decode_hex(&encode_hex(&[0, 1, 0xab, 0xff])).unwrap(),
            vec![0, 1, 0xab, 0xff]
        );
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
