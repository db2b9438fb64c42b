//! Input streams a caller hands in: Arrow IPC streams of the log schema (e.g. from
//! apache-arrow JS) split into records without re-encoding, and records joined back into one.
//! Their parse failures are the caller's bad input, not corruption.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;

use arrow_ipc::convert::try_fb_to_schema;
use arrow_schema::SchemaRef;
use bytes::Bytes;

use super::framing::{batch_header, read_message, EOS};
use super::schema::input_fields_diff;
use super::{corrupt, ArrowCodec};
use crate::codec::{CodecError, Record};

/// The schema of an Arrow IPC stream (its first message), for opening a log from bytes that
/// a non-Rust writer (e.g. apache-arrow JS) produced.
pub fn stream_schema(stream: &[u8]) -> Result<SchemaRef, CodecError> {
    let input = |why: &str| as_input(corrupt(why));
    if stream.is_empty() {
        return Err(input("empty input"));
    }
    let first = read_message(stream, 0)
        .map_err(as_input)?
        .ok_or_else(|| input("no schema message"))?;
    let fb = first
        .msg
        .header_as_schema()
        .ok_or_else(|| input("the first message is not a schema"))?;
    try_fb_to_schema(fb)
        .map(Arc::new)
        .map_err(|e| input(&format!("bad schema: {e}")))
}

/// Rewords a parse failure of caller-supplied bytes: the input is bad, nothing is corrupt.
fn as_input(e: CodecError) -> CodecError {
    match e {
        CodecError::Corrupt(why) | CodecError::Encode(why) => {
            CodecError::Encode(format!("not a valid Arrow IPC stream: {why}"))
        }
        other => other,
    }
}

impl ArrowCodec {
    /// Splits an Arrow IPC stream of the log schema (a schema message, record batches, an
    /// optional end-of-stream marker) into records, one per batch, without re-encoding: each
    /// record is a slice of `stream`. Every batch is validated as a decode would (bounds,
    /// buffers, row count); dictionary batches, compression and a foreign schema are refused.
    /// Any error means nothing in `stream` may be appended.
    pub fn split_stream(&self, stream: Bytes) -> Result<Vec<Record>, CodecError> {
        let schema = stream_schema(&stream)?;
        if let Some(diff) = input_fields_diff(self.schema.fields(), schema.fields()) {
            return Err(CodecError::SchemaMismatch(diff));
        }
        let first = read_message(&stream, 0).map_err(as_input)?;
        let mut at = first.map_or(0, |m| m.body.end);
        let mut records = Vec::new();
        while at < stream.len() {
            let Some(m) = read_message(&stream, at).map_err(as_input)? else {
                if at + EOS.len() != stream.len() {
                    return Err(as_input(corrupt("bytes after the end-of-stream marker")));
                }
                break;
            };
            if m.msg.header_as_dictionary_batch().is_some() {
                return Err(as_input(corrupt("dictionary batches are not supported")));
            }
            let (rb, rows) = batch_header(&m).map_err(as_input)?;
            if rb.compression().is_some() {
                return Err(as_input(corrupt(
                    "compressed record batches are not supported",
                )));
            }
            let record = Record {
                payload: stream.slice(at..m.body.end).into(),
                rows,
            };
            if !record.payload.len().is_multiple_of(8) {
                return Err(as_input(corrupt(
                    "record batch message not padded to 8 bytes",
                )));
            }
            self.decode_record(&record).map_err(as_input)?;
            records.push(record);
            at = m.body.end;
        }
        Ok(records)
    }

    /// An Arrow IPC stream of the log schema holding `records` (as [`ArrowCodec::split_stream`]
    /// or a decode returned them), with an end-of-stream marker.
    pub fn join_stream<'a>(&self, records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
        let mut out = self.schema_bytes.to_vec();
        for r in records {
            for chunk in r.payload.chunks() {
                out.extend_from_slice(chunk);
            }
        }
        out.extend_from_slice(&EOS);
        out
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;
    use std::io::Cursor;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow_ipc::reader::StreamReader;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::arrow::test_util::{batch, codec, header, schema};
    use crate::codec::{Codec, EntryKind, GenerationHeader};

    fn ipc_stream(schema: &Schema, batches: &[RecordBatch]) -> Vec<u8> {
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), schema).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn split_stream_slices_batches_and_join_rebuilds_them() {
        let c = codec();
        let batches = [batch(3, 1), batch(0, 2), batch(7, 3)];
        let stream = Bytes::from(ipc_stream(&schema(), &batches));
        let records = c.split_stream(stream.clone()).unwrap();
        assert_eq!(records.len(), 3);
        for (r, b) in records.iter().zip(&batches) {
            assert_eq!(r.rows, b.num_rows() as u64);
            assert_eq!(c.decode_record(r).unwrap(), *b);
            // A slice of the input, not a copy.
            let [piece] = r.payload.chunks() else {
                panic!("a record of a stream is one slice of it");
            };
            let offset = piece.as_ptr() as usize - stream.as_ptr() as usize;
            assert!(offset + r.payload.len() <= stream.len());
        }
        let entry = c
            .encode_entry(&header(EntryKind::Data), &records)
            .unwrap()
            .to_bytes();
        assert_eq!(c.decode_entry(entry).unwrap().records, records);
        let joined = c.join_stream(&records);
        let reader = StreamReader::try_new(Cursor::new(joined), None).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(read, batches);

        // Without the end-of-stream marker, and with no batches at all.
        let cut = stream.slice(..stream.len() - EOS.len());
        assert_eq!(c.split_stream(cut).unwrap(), records);
        let empty = Bytes::from(ipc_stream(&schema(), &[]));
        assert_eq!(c.split_stream(empty).unwrap(), vec![]);
    }

    #[test]
    fn split_stream_refuses_bad_input_with_clear_errors() {
        let c = codec();
        let input_err = |got: Result<Vec<Record>, CodecError>, want: &str| match got {
            Err(CodecError::Encode(why)) => {
                assert!(why.starts_with("not a valid Arrow IPC stream"), "{why}");
                assert!(why.contains(want), "{why} lacks {want}");
            }
            got => panic!("{got:?}"),
        };
        input_err(c.split_stream(Bytes::new()), "empty input");
        input_err(c.split_stream(Bytes::from_static(b"hello, world")), "");
        let file = c
            .encode_generation(&GenerationHeader { epoch: 1, id: 0 }, &[])
            .unwrap();
        input_err(c.split_stream(file), "");

        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let b = RecordBatch::try_new(
            other.clone(),
            vec![Arc::new(arrow_array::Int32Array::from(vec![1, 2]))],
        )
        .unwrap();
        let foreign = Bytes::from(ipc_stream(&other, &[b]));
        assert!(matches!(
            c.split_stream(foreign),
            Err(CodecError::SchemaMismatch(_))
        ));

        let mut trailing = ipc_stream(&schema(), &[batch(2, 1)]);
        trailing.extend_from_slice(b"junk");
        input_err(c.split_stream(trailing.into()), "after the end-of-stream");

        // A schema message followed by another schema message.
        let twice = [ipc_stream(&schema(), &[]), ipc_stream(&schema(), &[])].concat();
        input_err(c.split_stream(twice.into()), "");
    }

    /// A batch of many layouts: views with variadic buffers, a dense union, large offsets,
    /// booleans, 16-byte decimals, run-end encoding.
    fn wide_batch() -> RecordBatch {
        use arrow_array::types::Int32Type;
        use arrow_array::{
            BooleanArray, Decimal128Array, Int32Array, LargeStringArray, RunArray, StringViewArray,
            UnionArray,
        };
        use arrow_schema::UnionFields;
        let fields = UnionFields::try_new(
            vec![0, 1],
            vec![
                Field::new("i", DataType::Int32, false),
                Field::new("s", DataType::Utf8, false),
            ],
        )
        .unwrap();
        let union = UnionArray::try_new(
            fields,
            vec![0i8, 1, 0].into(),
            Some(vec![0i32, 0, 1].into()),
            vec![
                Arc::new(Int32Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec!["u"])),
            ],
        )
        .unwrap();
        let long = "a string longer than twelve bytes";
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "v",
                Arc::new(StringViewArray::from(vec![Some(long), None, Some("x")])),
            ),
            ("u", Arc::new(union)),
            (
                "l",
                Arc::new(LargeStringArray::from(vec!["a", "bb", "ccc"])),
            ),
            ("b", Arc::new(BooleanArray::from(vec![true, false, true]))),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![1i128, -2, 3])
                        .with_precision_and_scale(20, 2)
                        .unwrap(),
                ),
            ),
            (
                "r",
                Arc::new(RunArray::<Int32Type>::from_iter(["p", "p", "q"].map(Some))),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn split_stream_never_panics_and_only_accepts_valid_batches() {
        for batches in [vec![batch(5, 1), batch(4, 2)], vec![wide_batch()]] {
            let schema = batches[0].schema();
            let c = ArrowCodec::new(schema.clone()).unwrap();
            let stream = ipc_stream(&schema, &batches);
            assert_eq!(
                c.split_stream(stream.clone().into()).unwrap().len(),
                batches.len()
            );
            let check = |bytes: Vec<u8>| {
                if let Ok(records) = c.split_stream(bytes.into()) {
                    for r in &records {
                        c.decode_record(r).unwrap();
                    }
                    c.encode_entry(&header(EntryKind::Data), &records)
                        .unwrap()
                        .to_bytes();
                }
            };
            for cut in 0..stream.len() {
                check(stream[..cut].to_vec());
            }
            for i in 0..stream.len() {
                for bit in 0..8 {
                    let mut bytes = stream.clone();
                    bytes[i] ^= 1 << bit;
                    check(bytes);
                }
            }
        }
    }

    #[test]
    fn input_may_be_stricter_than_the_log_never_looser() {
        let field = |nullable| Field::new("id", DataType::Int64, nullable);
        let stream_of = |nullable| {
            let schema = Arc::new(Schema::new(vec![field(nullable)]));
            let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])
                .unwrap();
            (ipc_stream(&schema, core::slice::from_ref(&b)), b)
        };
        let nullable_log = ArrowCodec::new(Arc::new(Schema::new(vec![field(true)]))).unwrap();
        let strict_log = ArrowCodec::new(Arc::new(Schema::new(vec![field(false)]))).unwrap();
        let (strict_stream, strict_batch) = stream_of(false);
        let (loose_stream, loose_batch) = stream_of(true);
        let records = nullable_log.split_stream(strict_stream.into()).unwrap();
        assert_eq!(
            nullable_log.decode_record(&records[0]).unwrap().num_rows(),
            1
        );
        assert!(nullable_log.encode_batch(&strict_batch).is_ok());
        assert!(matches!(
            strict_log.split_stream(loose_stream.into()),
            Err(CodecError::SchemaMismatch(_))
        ));
        assert!(matches!(
            strict_log.encode_batch(&loose_batch),
            Err(CodecError::SchemaMismatch(_))
        ));
    }
}
