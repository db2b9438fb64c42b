//! How entries and generations become bytes.
//!
//! The machines see records as opaque bytes plus a row count; a [`Codec`] turns them into
//! objects. [`RawCodec`] is a small binary frame used by tests and the simulation;
//! `ArrowCodec` (feature `arrow`) writes Arrow IPC streams and files (see PROTOCOL.md).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use crate::crc32c::crc32c;
use crate::io::Body;

/// One appended unit: for the Arrow codec one encoded record batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Encoded bytes (opaque to the machines), in pieces: an encoder may share its input's
    /// buffers instead of copying them.
    pub payload: Body,
    /// Rows it holds.
    pub rows: u64,
}

impl Record {
    /// A record of `rows` rows.
    pub fn new(payload: impl Into<Body>, rows: u64) -> Self {
        Record {
            payload: payload.into(),
            rows,
        }
    }
}

/// What a WAL slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Appended records.
    Data,
    /// A fence: slots `position + 1 .. position + window` are skipped by everyone.
    Fence {
        /// The skip window `W`.
        window: u32,
    },
}

/// The identity of a WAL entry, carried inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Data or fence.
    pub kind: EntryKind,
    /// Epoch of the writer that wrote it.
    pub epoch: u64,
    /// The slot it was written to.
    pub position: u64,
    /// The writer's nonce (recognises its own writes when a put was ambiguous).
    pub nonce: u64,
}

/// A decoded WAL entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Identity.
    pub header: EntryHeader,
    /// Records, in append order (empty for a fence).
    pub records: Vec<Record>,
}

/// The records of one WAL position, as kept in a memtable and a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionedRecords {
    /// WAL position the records were written at.
    pub position: u64,
    /// Records, in append order.
    pub records: Vec<Record>,
}

/// The identity of a generation file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationHeader {
    /// Epoch of the writer that flushed it.
    pub epoch: u64,
    /// Generation id (dense, from 0).
    pub id: u64,
}

/// A decoded generation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// Identity.
    pub header: GenerationHeader,
    /// Every WAL position it contains, in order.
    pub entries: Vec<PositionedRecords>,
}

/// A codec failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid object of this codec (bad checksum, truncated, malformed).
    Corrupt(String),
    /// The bytes are valid but hold a schema other than the log's.
    SchemaMismatch(String),
    /// Encoding failed (e.g. the Arrow writer refused the data).
    Encode(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Corrupt(why) => write!(f, "corrupt: {why}"),
            CodecError::SchemaMismatch(why) => write!(f, "schema mismatch: {why}"),
            CodecError::Encode(why) => write!(f, "encode failed: {why}"),
        }
    }
}

/// Encodes and decodes the objects of one log.
pub trait Codec: Send + Sync {
    /// Stable codec name, recorded in the manifest (a log never mixes codecs).
    fn name(&self) -> &'static str;
    /// The log's schema as bytes, recorded in the manifest when the log is created.
    fn schema(&self) -> Bytes;
    /// What differs between the schema a manifest recorded (`stored`) and this codec's, or
    /// `None` if they are the same (compared when a machine reads a manifest).
    fn schema_diff(&self, stored: &[u8]) -> Option<String> {
        (stored != &self.schema()[..]).then(|| "the schema bytes differ".into())
    }
    /// Encodes a WAL entry (a fence has no records), in pieces that may share the records'
    /// bytes.
    fn encode_entry(&self, header: &EntryHeader, records: &[Record]) -> Result<Body, CodecError>;
    /// Decodes and verifies a WAL entry.
    fn decode_entry(&self, bytes: Bytes) -> Result<Entry, CodecError>;
    /// Encodes a generation file holding `entries` (in position order).
    fn encode_generation(
        &self,
        header: &GenerationHeader,
        entries: &[PositionedRecords],
    ) -> Result<Bytes, CodecError>;
    /// Decodes a generation file (its checksum is verified by the caller against the manifest).
    fn decode_generation(&self, bytes: Bytes) -> Result<Generation, CodecError>;
    /// CRC-32C of `data` (generation checksums in the manifest). A codec may use a faster
    /// implementation; the result must be the same.
    fn checksum(&self, data: &[u8]) -> u32 {
        crc32c(data)
    }
}

/// A compact binary codec with a trailing CRC-32C: no Arrow, for tests and the simulation.
#[derive(Clone, Debug)]
pub struct RawCodec {
    schema: Bytes,
}

impl RawCodec {
    /// A raw codec whose "schema" is the given bytes.
    pub fn new(schema: impl Into<Bytes>) -> Self {
        RawCodec {
            schema: schema.into(),
        }
    }
}

const RAW_ENTRY_MAGIC: &[u8; 4] = b"TWE1";
const RAW_GEN_MAGIC: &[u8; 4] = b"TWG1";

fn put_records(out: &mut Vec<u8>, records: &[Record]) {
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        out.extend_from_slice(&r.rows.to_le_bytes());
        out.extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
        for chunk in r.payload.chunks() {
            out.extend_from_slice(chunk);
        }
    }
}

fn seal(mut out: Vec<u8>) -> Bytes {
    let crc = crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Bytes::from(out)
}

/// Checks the trailing checksum and returns the covered part.
fn unseal(bytes: &Bytes, magic: &[u8; 4]) -> Result<Bytes, CodecError> {
    if bytes.len() < 8 || &bytes[..4] != magic {
        return Err(CodecError::Corrupt("bad magic or truncated".into()));
    }
    let body = bytes.slice(..bytes.len() - 4);
    let tail = &bytes[bytes.len() - 4..];
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32c(&body) != stored {
        return Err(CodecError::Corrupt("checksum mismatch".into()));
    }
    Ok(body.slice(4..))
}

/// A bounds-checked little-endian cursor over [`Bytes`].
struct Cursor {
    buf: Bytes,
    at: usize,
}

impl Cursor {
    fn take(&mut self, n: usize) -> Result<Bytes, CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| CodecError::Corrupt("truncated".into()))?;
        let out = self.buf.slice(self.at..end);
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }
    fn records(&mut self) -> Result<Vec<Record>, CodecError> {
        let n = self.u32()? as usize;
        // Each record needs at least 12 bytes: bound the allocation by what is there.
        if n > (self.buf.len() - self.at) / 12 {
            return Err(CodecError::Corrupt(
                "record count exceeds object size".into(),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let rows = self.u64()?;
            let len = self.u32()? as usize;
            out.push(Record {
                payload: self.take(len)?.into(),
                rows,
            });
        }
        Ok(out)
    }
    fn finish(&self) -> Result<(), CodecError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError::Corrupt("trailing bytes".into()))
        }
    }
}

impl Codec for RawCodec {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn schema(&self) -> Bytes {
        self.schema.clone()
    }

    fn encode_entry(&self, header: &EntryHeader, records: &[Record]) -> Result<Body, CodecError> {
        let size: usize = records.iter().map(|r| r.payload.len() + 12).sum();
        let mut out = Vec::with_capacity(48 + size);
        out.extend_from_slice(RAW_ENTRY_MAGIC);
        let (kind, window) = match header.kind {
            EntryKind::Data => (0u8, 0u32),
            EntryKind::Fence { window } => (1u8, window),
        };
        out.push(kind);
        out.extend_from_slice(&header.epoch.to_le_bytes());
        out.extend_from_slice(&header.position.to_le_bytes());
        out.extend_from_slice(&header.nonce.to_le_bytes());
        out.extend_from_slice(&window.to_le_bytes());
        put_records(&mut out, records);
        Ok(seal(out).into())
    }

    fn decode_entry(&self, bytes: Bytes) -> Result<Entry, CodecError> {
        let mut c = Cursor {
            buf: unseal(&bytes, RAW_ENTRY_MAGIC)?,
            at: 0,
        };
        let kind = c.u8()?;
        let epoch = c.u64()?;
        let position = c.u64()?;
        let nonce = c.u64()?;
        let window = c.u32()?;
        let kind = match (kind, window) {
            (0, 0) => EntryKind::Data,
            (1, w) if w > 0 => EntryKind::Fence { window: w },
            _ => return Err(CodecError::Corrupt("bad entry kind".into())),
        };
        let records = c.records()?;
        c.finish()?;
        if matches!(kind, EntryKind::Fence { .. }) && !records.is_empty() {
            return Err(CodecError::Corrupt("fence with records".into()));
        }
        Ok(Entry {
            header: EntryHeader {
                kind,
                epoch,
                position,
                nonce,
            },
            records,
        })
    }

    fn encode_generation(
        &self,
        header: &GenerationHeader,
        entries: &[PositionedRecords],
    ) -> Result<Bytes, CodecError> {
        let mut out = Vec::new();
        out.extend_from_slice(RAW_GEN_MAGIC);
        out.extend_from_slice(&header.epoch.to_le_bytes());
        out.extend_from_slice(&header.id.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            out.extend_from_slice(&e.position.to_le_bytes());
            put_records(&mut out, &e.records);
        }
        Ok(seal(out))
    }

    fn decode_generation(&self, bytes: Bytes) -> Result<Generation, CodecError> {
        let mut c = Cursor {
            buf: unseal(&bytes, RAW_GEN_MAGIC)?,
            at: 0,
        };
        let epoch = c.u64()?;
        let id = c.u64()?;
        let n = c.u32()? as usize;
        if n > c.buf.len() / 12 {
            return Err(CodecError::Corrupt(
                "entry count exceeds object size".into(),
            ));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let position = c.u64()?;
            entries.push(PositionedRecords {
                position,
                records: c.records()?,
            });
        }
        c.finish()?;
        Ok(Generation {
            header: GenerationHeader { epoch, id },
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn header(kind: EntryKind) -> EntryHeader {
        EntryHeader {
            kind,
            epoch: 3,
            position: 42,
            nonce: 0xfeed,
        }
    }

    #[test]
    fn entry_round_trip() {
        let codec = RawCodec::new("s");
        let recs = vec![Record::new(&b"abc"[..], 2), Record::new(&b""[..], 0)];
        let bytes = codec
            .encode_entry(&header(EntryKind::Data), &recs)
            .unwrap()
            .to_bytes();
        let e = codec.decode_entry(bytes).unwrap();
        assert_eq!(e.header, header(EntryKind::Data));
        assert_eq!(e.records, recs);
        let f = codec
            .encode_entry(&header(EntryKind::Fence { window: 8 }), &[])
            .unwrap()
            .to_bytes();
        assert_eq!(
            codec.decode_entry(f).unwrap().header.kind,
            EntryKind::Fence { window: 8 }
        );
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_corrupt() {
        let codec = RawCodec::new("s");
        let recs = vec![Record::new(&b"hello world"[..], 1)];
        let bytes = codec
            .encode_entry(&header(EntryKind::Data), &recs)
            .unwrap()
            .to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x10;
            assert!(matches!(
                codec.decode_entry(Bytes::from(bad)),
                Err(CodecError::Corrupt(_))
            ));
        }
        for n in 0..bytes.len() {
            assert!(codec.decode_entry(bytes.slice(..n)).is_err());
        }
    }

    #[test]
    fn generation_round_trip_and_corruption() {
        let codec = RawCodec::new("s");
        let entries = vec![
            PositionedRecords {
                position: 4,
                records: vec![Record::new(&b"x"[..], 1)],
            },
            PositionedRecords {
                position: 9,
                records: vec![Record::new(&b"yy"[..], 2), Record::new(&b"z"[..], 1)],
            },
        ];
        let h = GenerationHeader { epoch: 2, id: 7 };
        let bytes = codec.encode_generation(&h, &entries).unwrap();
        let g = codec.decode_generation(bytes.clone()).unwrap();
        assert_eq!(g.header, h);
        assert_eq!(g.entries, entries);
        let mut bad = bytes.to_vec();
        bad[10] ^= 1;
        assert!(codec.decode_generation(Bytes::from(bad)).is_err());
    }
}
