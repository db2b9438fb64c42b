//! Generations: an IPC file of the log schema whose schema metadata carries the generation
//! header and the `tidewal.positions` index of which batches belong to which position.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ops::Range;

use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::root_as_footer;
use arrow_ipc::writer::FileWriter;
use bytes::Bytes;

use super::framing::{batch_header, read_message, EOS};
use super::metadata::{parse_dec, parse_index, EPOCH, FORMAT, GENERATION, KIND, POSITIONS};
use super::schema::fields_diff;
use super::{corrupt, encode_err, ArrowCodec};
use crate::codec::{CodecError, Generation, GenerationHeader, PositionedRecords, Record};

/// [`Codec::encode_generation`](crate::Codec::encode_generation) of an [`ArrowCodec`].
pub(super) fn encode_generation(
    codec: &ArrowCodec,
    header: &GenerationHeader,
    entries: &[PositionedRecords],
) -> Result<Bytes, CodecError> {
    let mut index = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            if entries[i - 1].position >= e.position {
                return Err(encode_err("generation positions not increasing"));
            }
            index.push(',');
        }
        let _ = write!(index, "{}:{}", e.position, e.records.len());
    }
    let schema = codec.schema_with(&[
        (KIND, "generation".into()),
        (EPOCH, header.epoch.to_string()),
        (GENERATION, header.id.to_string()),
        (POSITIONS, index),
    ]);
    let mut w = FileWriter::try_new_with_options(Vec::new(), &schema, codec.options.clone())
        .map_err(encode_err)?;
    for e in entries {
        for r in &e.records {
            let batch = codec
                .decode_record(r)
                .map_err(|err| encode_err(format!("record at {}: {err}", e.position)))?;
            w.write(&batch).map_err(encode_err)?;
        }
    }
    w.finish().map_err(encode_err)?;
    Ok(Bytes::from(w.into_inner().map_err(encode_err)?))
}

/// [`Codec::decode_generation`](crate::Codec::decode_generation) of an [`ArrowCodec`].
pub(super) fn decode_generation(
    codec: &ArrowCodec,
    bytes: Bytes,
) -> Result<Generation, CodecError> {
    // Walked like an entry instead of through arrow's FileReader, which panics on some
    // malformed files; the footer must index exactly the walked batches, so every Arrow
    // file reader sees the same records. Records are zero-copy slices of the file.
    let len = bytes.len();
    if len < 18 || bytes[..8] != *b"ARROW1\0\0" || bytes[len - 6..] != *b"ARROW1" {
        return Err(corrupt("not an Arrow IPC file"));
    }
    let first = read_message(&bytes, 8)?.ok_or_else(|| corrupt("no schema message"))?;
    if first.msg.header_as_schema().is_none() {
        return Err(corrupt("first message is not a schema"));
    }
    let mut batches: Vec<(Range<usize>, usize, u64)> = Vec::new();
    let mut at = first.body.end;
    while let Some(m) = read_message(&bytes, at)? {
        let (_, rows) = batch_header(&m)?;
        batches.push((at..m.body.end, m.body.start - at, rows));
        at = m.body.end;
    }
    let tail = &bytes[len - 10..len - 6];
    let footer_len = i32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let footer_start = at + EOS.len();
    if footer_start > len - 10 || usize::try_from(footer_len) != Ok(len - 10 - footer_start) {
        return Err(corrupt("bad footer length"));
    }
    let footer = root_as_footer(&bytes[footer_start..len - 10])
        .map_err(|e| corrupt(format!("bad footer: {e}")))?;
    let blocks = footer.recordBatches().into_iter().flatten();
    let indexed = blocks.map(|b| (b.offset(), b.metaDataLength(), b.bodyLength()));
    let walked = batches.iter().map(|(r, meta, _)| {
        let meta = *meta as i64;
        (r.start as i64, meta as i32, (r.len() as i64) - meta)
    });
    if footer.dictionaries().is_some_and(|d| !d.is_empty()) || !indexed.eq(walked) {
        return Err(corrupt("footer does not index the file's batches"));
    }

    let schema = footer
        .schema()
        .ok_or_else(|| corrupt("footer has no schema"))
        .and_then(|fb| try_fb_to_schema(fb).map_err(|e| corrupt(format!("bad schema: {e}"))))?;
    if let Some(diff) = fields_diff(codec.schema.fields(), schema.fields()) {
        return Err(CodecError::SchemaMismatch(diff));
    }
    let md = schema.metadata();
    let get = |key: &str| {
        md.get(key)
            .map(String::as_str)
            .ok_or_else(|| corrupt(format!("missing {key}")))
    };
    if get(FORMAT)? != "1" || get(KIND)? != "generation" {
        return Err(corrupt(format!("bad {FORMAT} or {KIND}")));
    }
    let header = GenerationHeader {
        epoch: parse_dec(EPOCH, get(EPOCH)?)?,
        id: parse_dec(GENERATION, get(GENERATION)?)?,
    };
    let index = parse_index(get(POSITIONS)?)?;
    let total = index
        .iter()
        .try_fold(0usize, |acc, &(_, n)| acc.checked_add(n));
    if total != Some(batches.len()) {
        return Err(corrupt("batch count differs from the positions index"));
    }
    let mut batches = batches.into_iter();
    let entries = index
        .into_iter()
        .map(|(position, n)| PositionedRecords {
            position,
            records: batches
                .by_ref()
                .take(n)
                .map(|(range, _, rows)| Record {
                    payload: bytes.slice(range).into(),
                    rows,
                })
                .collect(),
        })
        .collect();
    Ok(Generation { header, entries })
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;
    use std::io::Cursor;

    use arrow_ipc::reader::FileReader;
    use bytes::Bytes;

    use super::{GENERATION, POSITIONS};
    use crate::arrow::test_util::{batch, codec};
    use crate::codec::{Codec, GenerationHeader, PositionedRecords};

    #[test]
    fn generation_round_trip_and_file_reader() {
        let c = codec();
        let rec = |rows, seed| c.encode_batch(&batch(rows, seed)).unwrap();
        let entries = vec![
            PositionedRecords {
                position: 12,
                records: vec![rec(3, 1), rec(2, 2)],
            },
            PositionedRecords {
                position: 13,
                records: vec![rec(1, 3)],
            },
            PositionedRecords {
                position: 20,
                records: vec![],
            },
        ];
        let h = GenerationHeader { epoch: 2, id: 7 };
        let bytes = c.encode_generation(&h, &entries).unwrap();
        let g = c.decode_generation(bytes.clone()).unwrap();
        assert_eq!(g.header, h);
        // Same writer options, so re-encoded records are byte-identical.
        assert_eq!(g.entries, entries);

        let reader = FileReader::try_new(Cursor::new(bytes.to_vec()), None).unwrap();
        let md = reader.schema().metadata().clone();
        assert_eq!(
            md.get(POSITIONS).map(String::as_str),
            Some("12:2,13:1,20:0")
        );
        assert_eq!(md.get(GENERATION).map(String::as_str), Some("7"));
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 6);

        let empty = c.encode_generation(&h, &[]).unwrap();
        assert!(c.decode_generation(empty).unwrap().entries.is_empty());
        let backwards = [entries[1].clone(), entries[0].clone()];
        assert!(c.encode_generation(&h, &backwards).is_err());
        for n in 0..bytes.len() {
            assert!(
                c.decode_generation(bytes.slice(..n)).is_err(),
                "truncated to {n}"
            );
        }
        // No checksum inside (the manifest has it): flips may decode, but never panic.
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80] {
                let mut bad = bytes.to_vec();
                bad[i] ^= mask;
                let _ = c.decode_generation(Bytes::from(bad));
            }
        }
    }
}
