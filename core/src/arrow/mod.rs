//! The Arrow IPC codec (PROTOCOL.md section 2).
//!
//! A [`Record`] of this codec is one encoded Arrow IPC record batch message. An entry is an IPC
//! stream that carries those bytes verbatim, so building an entry never re-encodes column data
//! and decoding one reads only flatbuffer headers and the checksum. A generation is an IPC file.

mod buffers;
mod entries;
mod framing;
mod generations;
mod input;
mod metadata;
mod projection;
mod schema;
#[cfg(test)]
mod test_util;

pub use input::stream_schema;
pub use projection::Projection;
pub use schema::decode_schema;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Display;

use arrow_array::RecordBatch;
use arrow_ipc::convert::try_schema_from_ipc_buffer;
use arrow_ipc::writer::{
    write_message, DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamEncoder,
};
use arrow_ipc::MetadataVersion;
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;

use crate::codec::{
    Codec, CodecError, Entry, EntryHeader, Generation, GenerationHeader, PositionedRecords, Record,
};
use crate::crc32c::{crc32c_append, Crc32cAppend};
use crate::io::Body;
use entries::{record_rows, share_large_pieces};
use metadata::{HeadTemplate, FORMAT, PREFIX};
use schema::{fields_diff, has_dictionary, input_fields_diff};

/// Encodes a log's entries and generations as Arrow IPC streams and files.
#[derive(Clone, Debug)]
pub struct ArrowCodec {
    /// The log schema, without `tidewal.*` metadata.
    schema: SchemaRef,
    /// Its framed IPC schema message.
    schema_bytes: Bytes,
    options: IpcWriteOptions,
    /// CRC-32C implementation (software unless a host plugs in a faster one).
    crc: Crc32cAppend,
    /// Batch encoders, shared by the codec's clones.
    encoders: Arc<EncoderPool>,
    /// The last data entry's schema message, shared by the codec's clones.
    head_template: Arc<std::sync::Mutex<Option<HeadTemplate>>>,
}

/// Stream encoders whose schema message is already out, so an encode yields one record batch
/// message. Reused: a new one costs a schema encode, a third of a small append's encoding.
#[derive(Default)]
struct EncoderPool(std::sync::Mutex<Vec<StreamEncoder>>);

/// Idle encoders kept; more are made when more threads encode at once.
const POOL_SIZE: usize = 8;

impl core::fmt::Debug for EncoderPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EncoderPool")
    }
}

impl EncoderPool {
    /// An idle encoder, or a new one primed with an empty batch of `schema`.
    fn take(
        &self,
        schema: &SchemaRef,
        options: &IpcWriteOptions,
    ) -> Result<StreamEncoder, CodecError> {
        if let Some(e) = self.0.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(e);
        }
        let mut e =
            StreamEncoder::try_new_with_options(schema, options.clone()).map_err(encode_err)?;
        e.encode(&RecordBatch::new_empty(schema.clone()))
            .map_err(encode_err)?;
        Ok(e)
    }

    /// Returns an encoder whose last encode succeeded (a failed one's state is unknown).
    fn put(&self, encoder: StreamEncoder) {
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < POOL_SIZE {
                idle.push(encoder);
            }
        }
    }
}

fn corrupt(why: impl Display) -> CodecError {
    CodecError::Corrupt(why.to_string())
}

fn encode_err(why: impl Display) -> CodecError {
    CodecError::Encode(why.to_string())
}

impl ArrowCodec {
    /// Uses `crc` for entry checksums (it must compute CRC-32C, e.g. a hardware one).
    pub fn with_crc32c(mut self, crc: Crc32cAppend) -> Self {
        self.crc = crc;
        self
    }

    /// A codec for a log of `schema`. Dictionary types (anywhere) are refused, since every entry
    /// would need its own dictionary batches; `tidewal.*` schema metadata is dropped.
    pub fn new(schema: SchemaRef) -> Result<Self, CodecError> {
        if let Some(f) = schema
            .fields()
            .iter()
            .find(|f| has_dictionary(f.data_type()))
        {
            return Err(CodecError::Encode(format!(
                "field {:?}: dictionary types are not supported",
                f.name()
            )));
        }
        let mut metadata = schema.metadata().clone();
        metadata.retain(|k, _| !k.starts_with(PREFIX));
        let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
        let options =
            IpcWriteOptions::try_new(8, false, MetadataVersion::V5).map_err(encode_err)?;
        let mut codec = ArrowCodec {
            schema,
            schema_bytes: Bytes::new(),
            options,
            crc: crc32c_append,
            encoders: Arc::default(),
            head_template: Arc::default(),
        };
        let mut bytes = Vec::new();
        codec.write_schema(&mut bytes, &codec.schema)?;
        codec.schema_bytes = bytes.into();
        Ok(codec)
    }

    /// The log schema (without `tidewal.*` metadata).
    pub fn schema_ref(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Encodes one batch of the log schema as a record (one IPC record batch message).
    pub fn encode_batch(&self, batch: &RecordBatch) -> Result<Record, CodecError> {
        if let Some(diff) = input_fields_diff(self.schema.fields(), batch.schema_ref().fields()) {
            return Err(CodecError::SchemaMismatch(diff));
        }
        // The encoder hands out the batch's own buffers (zero copy).
        let mut encoder = self.encoders.take(&self.schema, &self.options)?;
        let pieces = encoder.encode(batch).map_err(encode_err)?;
        self.encoders.put(encoder);
        let payload =
            share_large_pieces(Vec::with_capacity(512), pieces.into_iter().map(Bytes::from));
        let rows = record_rows(&payload)?;
        if rows != batch.num_rows() as u64 {
            return Err(encode_err("encoded row count differs from the batch"));
        }
        Ok(Record::new(payload, rows))
    }

    /// Decodes a record (as made by [`ArrowCodec::encode_batch`] or returned by a decode) into a
    /// batch of the log schema, validating its buffers.
    pub fn decode_record(&self, record: &Record) -> Result<RecordBatch, CodecError> {
        self.decode_projected(record, None)
    }

    /// Appends the framed schema message of `schema` to `out`.
    fn write_schema(&self, out: &mut Vec<u8>, schema: &Schema) -> Result<(), CodecError> {
        let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut DictionaryTracker::new(false),
            &self.options,
        );
        write_message(out, encoded, &self.options).map_err(encode_err)?;
        Ok(())
    }

    /// The log schema with `tidewal.format` and the given keys added to its metadata.
    fn schema_with(&self, pairs: &[(&str, String)]) -> Schema {
        let mut metadata = self.schema.metadata().clone();
        metadata.insert(FORMAT, "1");
        for (k, v) in pairs {
            metadata.insert(*k, v.as_str());
        }
        Schema::new_with_metadata(self.schema.fields().clone(), metadata)
    }
}

impl Codec for ArrowCodec {
    fn name(&self) -> &'static str {
        "arrow-ipc"
    }

    fn schema(&self) -> Bytes {
        self.schema_bytes.clone()
    }

    fn schema_diff(&self, stored: &[u8]) -> Option<String> {
        // Compare decoded fields: another arrow-rs version may encode the same schema differently.
        match try_schema_from_ipc_buffer(stored) {
            // "expected" is the log's: it names what this codec would have to be.
            Ok(log) => fields_diff(log.fields(), self.schema.fields()),
            Err(e) => Some(format!("the recorded schema does not decode: {e}")),
        }
    }

    fn encode_entry(&self, header: &EntryHeader, records: &[Record]) -> Result<Body, CodecError> {
        entries::encode_entry(self, header, records)
    }

    fn checksum(&self, data: &[u8]) -> u32 {
        (self.crc)(0, data)
    }

    fn decode_entry(&self, bytes: Bytes) -> Result<Entry, CodecError> {
        entries::decode_entry(self, bytes)
    }

    fn encode_generation(
        &self,
        header: &GenerationHeader,
        entries: &[PositionedRecords],
    ) -> Result<Bytes, CodecError> {
        generations::encode_generation(self, header, entries)
    }

    fn generation_index_range(&self, file: &[u8]) -> Option<core::ops::Range<u64>> {
        generations::footer_range(file).map(|r| r.start as u64..r.end as u64)
    }

    fn decode_generation_index(
        &self,
        index: &[u8],
        file_len: u64,
    ) -> Result<crate::codec::GenerationIndex, CodecError> {
        generations::decode_generation_index(self, index, file_len)
    }

    fn generation_record(&self, bytes: Bytes, _rows: u64) -> Result<Record, CodecError> {
        generations::generation_record(bytes)
    }

    fn decode_generation(&self, bytes: Bytes) -> Result<Generation, CodecError> {
        generations::decode_generation(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use arrow_array::Array;

    use framing::{read_message, CONTINUATION, EOS};
    use test_util::{batch, blob_batch, codec};

    /// What arrow's contiguous writer makes of `batch`.
    fn contiguous_encoding(c: &ArrowCodec, batch: &RecordBatch) -> Vec<u8> {
        let (_, encoded) = IpcDataGenerator::default()
            .encode(
                batch,
                &mut DictionaryTracker::new(false),
                &c.options,
                &mut arrow_ipc::writer::IpcWriteContext::default(),
            )
            .unwrap();
        let mut out = Vec::new();
        write_message(&mut out, encoded, &c.options).unwrap();
        out
    }

    #[test]
    fn encode_batch_shares_large_column_buffers() {
        let big = blob_batch(8, 20 << 10);
        let c = ArrowCodec::new(big.schema()).unwrap();
        for batch in [big.clone(), big.slice(3, 4), blob_batch(5, 10)] {
            let rec = c.encode_batch(&batch).unwrap();
            assert_eq!(rec.payload.to_bytes(), contiguous_encoding(&c, &batch));
            assert_eq!(c.decode_record(&rec).unwrap(), batch);
            assert_eq!(record_rows(&rec.payload).unwrap(), batch.num_rows() as u64);
        }
        // The values buffer goes out as it is, not copied.
        let rec = c.encode_batch(&big).unwrap();
        let values = big.column(1).to_data().buffers()[1].as_ptr();
        assert!(rec.payload.chunks().iter().any(|p| p.as_ptr() == values));
        // Small batches stay one piece.
        let small = c.encode_batch(&blob_batch(5, 10)).unwrap();
        assert_eq!(small.payload.chunks().len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let c = codec();
        for len in [0usize, 1, 7, 8, 9, 64, 300] {
            for fill in [0u8, 0xFF, 0x5A] {
                let mut v = vec![fill; len];
                if len >= 8 {
                    v[..4].copy_from_slice(&CONTINUATION);
                }
                assert!(c.decode_entry(Bytes::from(v.clone())).is_err());
                assert!(c.decode_generation(Bytes::from(v.clone())).is_err());
                assert!(c.decode_record(&Record::new(v, 1)).is_err());
            }
        }
        // A footer length that points before the end-of-stream marker.
        let mut file = b"ARROW1\0\0".to_vec();
        file.extend_from_slice(&c.schema());
        file.extend_from_slice(&EOS);
        file.extend_from_slice(&[0x00, 0x80]);
        file.extend_from_slice(b"ARROW1");
        assert!(c.decode_generation(Bytes::from(file)).is_err());
        // Buffers outside the body are refused before arrow's reader slices them.
        let rec = c.encode_batch(&batch(3, 9)).unwrap();
        let payload = rec.payload.to_bytes();
        let body = read_message(&payload, 0).unwrap().unwrap().body;
        let mut bad = payload.to_vec();
        let declared = (body.len() as i64).to_le_bytes();
        let at = (8..body.start - 8)
            .find(|&i| bad[i..i + 8] == declared)
            .unwrap();
        // Shrink the declared body by 8 bytes: the last buffer now ends past it.
        bad[at..at + 8].copy_from_slice(&(body.len() as i64 - 8).to_le_bytes());
        bad.truncate(bad.len() - 8);
        let shrunk = Record::new(bad, rec.rows);
        let got = c.decode_record(&shrunk);
        assert!(
            matches!(got, Err(CodecError::Corrupt(ref why)) if why.contains("bounds")),
            "{got:?}"
        );
    }
}
