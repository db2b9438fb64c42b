//! How entries and generations become bytes.
//!
//! The machines see records as opaque bytes plus a row count; a [`Codec`] turns them into
//! objects. [`RawCodec`] is a small binary frame used by tests and the simulation;
//! `ArrowCodec` (feature `arrow`) writes Arrow IPC streams and files (see PROTOCOL.md).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::ops::Range;

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
    /// Data entries: the writer's wall-clock time at seal, unix ms (`tidewal.time`), never
    /// below an earlier entry's of the log; `None` for fences and for entries of writers
    /// that record no time (older ones).
    pub time: Option<u64>,
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
    /// The entry's time (unix ms, `tidewal.time`), if its writer recorded one.
    pub time: Option<u64>,
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

/// One record of a generation as the generation's index places it: enough to fetch it alone
/// with a ranged get and check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedRecord {
    /// Its bytes in the generation file.
    pub range: Range<u64>,
    /// CRC-32C of those bytes.
    pub crc32c: u32,
    /// Rows it holds.
    pub rows: u64,
}

/// One WAL position of a generation, as its index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedEntry {
    /// WAL position.
    pub position: u64,
    /// The entry's time (unix ms), if known.
    pub time: Option<u64>,
    /// Its records, in order.
    pub records: Vec<IndexedRecord>,
}

/// What a generation's index (for Arrow, the IPC file footer) says: every position, where
/// its records lie, their checksums and the entries' times (PROTOCOL.md §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationIndex {
    /// Identity.
    pub header: GenerationHeader,
    /// Every WAL position the generation contains, in order.
    pub entries: Vec<IndexedEntry>,
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
    /// Where the index of `file` (a generation this codec encoded) lies, if the codec writes
    /// one: recorded in the manifest so that a reader can start inside the generation with
    /// ranged gets. `None`: the generation is only read whole.
    fn generation_index_range(&self, file: &[u8]) -> Option<Range<u64>> {
        let _ = file;
        None
    }
    /// Decodes a generation's index: `index` is the bytes of
    /// [`Codec::generation_index_range`] (already checked against the manifest) of a file of
    /// `file_len` bytes. Every record range lies before the index, in order.
    fn decode_generation_index(
        &self,
        index: &[u8],
        file_len: u64,
    ) -> Result<GenerationIndex, CodecError> {
        let _ = (index, file_len);
        Err(CodecError::Corrupt(
            "this codec writes no generation index".into(),
        ))
    }
    /// A generation's record fetched alone (its checksum already checked against the index).
    fn generation_record(&self, bytes: Bytes, rows: u64) -> Result<Record, CodecError> {
        Ok(Record::new(bytes, rows))
    }
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
    /// Whether writers record where the generation index lies (see [`RawCodec::unindexed`]).
    indexed: bool,
}

impl RawCodec {
    /// A raw codec whose "schema" is the given bytes.
    pub fn new(schema: impl Into<Bytes>) -> Self {
        RawCodec {
            schema: schema.into(),
            indexed: true,
        }
    }

    /// The same codec, except that it names no generation index
    /// ([`Codec::generation_index_range`] is `None`): a writer with it records generations
    /// as writers did before ranged reads existed, and readers read them whole.
    pub fn unindexed(mut self) -> Self {
        self.indexed = false;
        self
    }
}

const RAW_ENTRY_MAGIC: &[u8; 4] = b"TWE2";
const RAW_GEN_MAGIC: &[u8; 4] = b"TWG2";

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
        out.extend_from_slice(&header.time.unwrap_or(NO_TIME).to_le_bytes());
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
        let time = Some(c.u64()?).filter(|&t| t != NO_TIME);
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
                time,
            },
            records,
        })
    }

    fn encode_generation(
        &self,
        header: &GenerationHeader,
        entries: &[PositionedRecords],
    ) -> Result<Bytes, CodecError> {
        // Records first, then the index that places them, so that a reader can fetch the
        // index and then only the records it wants (PROTOCOL.md §2, "Raw codec").
        let mut out = Vec::new();
        out.extend_from_slice(RAW_GEN_MAGIC);
        let mut index = Vec::new();
        index.extend_from_slice(&header.epoch.to_le_bytes());
        index.extend_from_slice(&header.id.to_le_bytes());
        index.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            index.extend_from_slice(&e.position.to_le_bytes());
            index.extend_from_slice(&e.time.unwrap_or(NO_TIME).to_le_bytes());
            index.extend_from_slice(&(e.records.len() as u32).to_le_bytes());
            for r in &e.records {
                let bytes = r.payload.to_bytes();
                index.extend_from_slice(&(out.len() as u64).to_le_bytes());
                index.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                index.extend_from_slice(&r.rows.to_le_bytes());
                index.extend_from_slice(&crc32c(&bytes).to_le_bytes());
                out.extend_from_slice(&bytes);
            }
        }
        let index_len = index.len() as u32;
        out.extend_from_slice(&index);
        out.extend_from_slice(&index_len.to_le_bytes());
        Ok(seal(out))
    }

    fn decode_generation(&self, bytes: Bytes) -> Result<Generation, CodecError> {
        // The whole file's checksum first; then the index places the records.
        unseal(&bytes, RAW_GEN_MAGIC)?;
        let tail = raw_index_tail(&bytes)?;
        let index =
            self.decode_generation_index(&bytes[bytes.len() - tail..], bytes.len() as u64)?;
        let mut entries = Vec::with_capacity(index.entries.len());
        for e in index.entries {
            let mut records = Vec::with_capacity(e.records.len());
            for r in e.records {
                let payload = bytes.slice(r.range.start as usize..r.range.end as usize);
                if crc32c(&payload) != r.crc32c {
                    return Err(CodecError::Corrupt("record checksum mismatch".into()));
                }
                records.push(Record::new(payload, r.rows));
            }
            entries.push(PositionedRecords {
                position: e.position,
                time: e.time,
                records,
            });
        }
        Ok(Generation {
            header: index.header,
            entries,
        })
    }

    fn generation_index_range(&self, file: &[u8]) -> Option<Range<u64>> {
        if !self.indexed {
            return None;
        }
        let tail = raw_index_tail(file).ok()?;
        Some((file.len() - tail) as u64..file.len() as u64)
    }

    fn decode_generation_index(
        &self,
        index: &[u8],
        file_len: u64,
    ) -> Result<GenerationIndex, CodecError> {
        let corrupt = |why: &str| CodecError::Corrupt(why.into());
        if raw_index_tail(index)? != index.len() || index.len() as u64 > file_len {
            return Err(corrupt("index length differs from its range"));
        }
        let records_end = file_len - index.len() as u64;
        let mut c = Cursor {
            buf: Bytes::copy_from_slice(&index[..index.len() - 8]),
            at: 0,
        };
        let header = GenerationHeader {
            epoch: c.u64()?,
            id: c.u64()?,
        };
        let n = c.u32()? as usize;
        if n > c.buf.len() / 20 {
            return Err(corrupt("entry count exceeds the index"));
        }
        let mut entries = Vec::with_capacity(n);
        let mut at = RAW_GEN_MAGIC.len() as u64;
        for _ in 0..n {
            let position = c.u64()?;
            let time = Some(c.u64()?).filter(|&t| t != NO_TIME);
            let count = c.u32()? as usize;
            if count > c.buf.len() / 24 {
                return Err(corrupt("record count exceeds the index"));
            }
            let mut records = Vec::with_capacity(count);
            for _ in 0..count {
                let offset = c.u64()?;
                let len = u64::from(c.u32()?);
                let rows = c.u64()?;
                let crc = c.u32()?;
                // Records follow each other, before the index.
                if offset != at || offset + len > records_end {
                    return Err(corrupt("record range out of order or bounds"));
                }
                at = offset + len;
                records.push(IndexedRecord {
                    range: offset..offset + len,
                    crc32c: crc,
                    rows,
                });
            }
            entries.push(IndexedEntry {
                position,
                time,
                records,
            });
        }
        c.finish()?;
        if at != records_end {
            return Err(corrupt("records do not fill the file before the index"));
        }
        Ok(GenerationIndex { header, entries })
    }
}

/// "No time" in a raw generation index.
const NO_TIME: u64 = u64::MAX;

/// The length of a raw generation's tail that is its index: the index, its `u32` length and
/// the file's trailing checksum.
fn raw_index_tail(file: &[u8]) -> Result<usize, CodecError> {
    let n = file.len();
    if n < 8 + RAW_GEN_MAGIC.len() {
        return Err(CodecError::Corrupt("generation truncated".into()));
    }
    let l = &file[n - 8..n - 4];
    let index_len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
    index_len
        .checked_add(8)
        .filter(|&t| t <= n)
        .ok_or_else(|| CodecError::Corrupt("bad index length".into()))
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
            time: Some(1_700_000_000_123),
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
                time: None,
                records: vec![Record::new(&b"x"[..], 1)],
            },
            PositionedRecords {
                position: 9,
                time: None,
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
