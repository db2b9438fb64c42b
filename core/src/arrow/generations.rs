//! Generations: an IPC file of the log schema whose schema metadata carries the generation
//! header, the `tidewal.positions` index of which batches belong to which position, each
//! position's `tidewal.times` and each batch's `tidewal.batch_crc32c` (so that a reader can
//! fetch the footer and then only some batches, PROTOCOL.md §3).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ops::Range;

use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::root_as_footer;
use arrow_ipc::writer::FileWriter;
use bytes::Bytes;

use super::framing::{batch_header, batch_message, read_message, EOS};
use super::metadata::{
    parse_dec, parse_index, BATCH_CRCS, EPOCH, FORMAT, GENERATION, KIND, POSITIONS, TIMES,
};
use super::schema::fields_diff;
use super::{corrupt, encode_err, ArrowCodec};
use crate::codec::{
    Codec, CodecError, Generation, GenerationHeader, GenerationIndex, IndexedEntry, IndexedRecord,
    PositionedRecords, Record,
};

/// [`Codec::encode_generation`](crate::Codec::encode_generation) of an [`ArrowCodec`].
pub(super) fn encode_generation(
    codec: &ArrowCodec,
    header: &GenerationHeader,
    entries: &[PositionedRecords],
) -> Result<Bytes, CodecError> {
    let mut index = String::new();
    let mut times = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            if entries[i - 1].position >= e.position {
                return Err(encode_err("generation positions not increasing"));
            }
            index.push(',');
            times.push(',');
        }
        let _ = write!(index, "{}:{}", e.position, e.records.len());
        if let Some(t) = e.time {
            let _ = write!(times, "{t}");
        }
    }
    // The batches are written as the records' own bytes (the same writer options), so their
    // checksums are known before the file is: checked below, and the file is written again
    // with the checksums of what it holds if an arrow version ever re-encodes differently.
    let crcs: Vec<u32> = entries
        .iter()
        .flat_map(|e| e.records.iter())
        .map(|r| codec.checksum(&r.payload.to_bytes()))
        .collect();
    let file = write_file(codec, header, entries, &index, &times, &crcs)?;
    let written = batch_crcs(codec, &file)?;
    if written == crcs {
        return Ok(file);
    }
    let file = write_file(codec, header, entries, &index, &times, &written)?;
    if batch_crcs(codec, &file)? != written {
        return Err(encode_err(
            "generation batches are not encoded deterministically",
        ));
    }
    Ok(file)
}

fn write_file(
    codec: &ArrowCodec,
    header: &GenerationHeader,
    entries: &[PositionedRecords],
    index: &str,
    times: &str,
    crcs: &[u32],
) -> Result<Bytes, CodecError> {
    let mut crc_list = String::with_capacity(crcs.len() * 9);
    for (i, c) in crcs.iter().enumerate() {
        if i > 0 {
            crc_list.push(',');
        }
        let _ = write!(crc_list, "{c:08x}");
    }
    let schema = codec.schema_with(&[
        (KIND, "generation".into()),
        (EPOCH, header.epoch.to_string()),
        (GENERATION, header.id.to_string()),
        (POSITIONS, index.into()),
        (TIMES, times.into()),
        (BATCH_CRCS, crc_list),
    ]);
    // Sized up front: a merged generation is tens of MiB, and growing it by doubling held
    // twice that at the peak and left the allocator fragmented (a soak's RSS crept up).
    let payload: usize = entries
        .iter()
        .flat_map(|e| e.records.iter())
        .map(|r| r.payload.len())
        .sum();
    // The schema twice (message and footer) with its metadata, and a footer block per batch.
    let metadata = 2 * (index.len() + times.len() + crcs.len() * 9) + crcs.len() * 32 + 4096;
    let mut w = FileWriter::try_new_with_options(
        Vec::with_capacity(payload + metadata),
        &schema,
        codec.options.clone(),
    )
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

/// The checksums of the batches a file's footer indexes.
fn batch_crcs(codec: &ArrowCodec, file: &[u8]) -> Result<Vec<u32>, CodecError> {
    let range = footer_range(file).ok_or_else(|| encode_err("written file has no footer"))?;
    let footer = root_as_footer(&file[range.start..file.len() - 10])
        .map_err(|e| encode_err(format!("written footer: {e}")))?;
    footer
        .recordBatches()
        .into_iter()
        .flatten()
        .map(|b| {
            let start = usize::try_from(b.offset()).map_err(encode_err)?;
            let len = usize::try_from(i64::from(b.metaDataLength()) + b.bodyLength())
                .map_err(encode_err)?;
            let bytes = file
                .get(start..start + len)
                .ok_or_else(|| encode_err("written block out of bounds"))?;
            Ok(codec.checksum(bytes))
        })
        .collect()
}

/// Where an IPC file's footer lies: the footer flatbuffer, its length and the closing magic
/// (what the manifest's `index` names).
pub(super) fn footer_range(file: &[u8]) -> Option<Range<usize>> {
    let len = file.len();
    if len < 18 || file[len - 6..] != *b"ARROW1" {
        return None;
    }
    let tail = &file[len - 10..len - 6];
    let footer_len = usize::try_from(i32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]))
        .ok()
        .filter(|&l| l <= len - 18)?;
    Some(len - 10 - footer_len..len)
}

/// A generation's `tidewal.*` header, read from its footer schema's metadata.
struct Header {
    header: GenerationHeader,
    positions: Vec<(u64, usize)>,
    /// Per position; absent in generations written before times existed.
    times: Option<Vec<Option<u64>>>,
    /// Per batch; absent in generations written before ranged reads existed.
    crcs: Option<Vec<u32>>,
}

fn read_header(codec: &ArrowCodec, footer: &arrow_ipc::Footer<'_>) -> Result<Header, CodecError> {
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
    let positions = parse_index(get(POSITIONS)?)?;
    let times = md
        .get(TIMES)
        .map(|s| parse_times(s, positions.len()))
        .transpose()?;
    let crcs = md.get(BATCH_CRCS).map(|s| parse_crcs(s)).transpose()?;
    Ok(Header {
        header,
        positions,
        times,
        crcs,
    })
}

/// `tidewal.times`: one value per position, decimal unix ms or empty (unknown).
fn parse_times(s: &str, positions: usize) -> Result<Vec<Option<u64>>, CodecError> {
    if positions == 0 {
        return if s.is_empty() {
            Ok(Vec::new())
        } else {
            Err(corrupt(format!("{TIMES} for no positions")))
        };
    }
    let times: Vec<Option<u64>> = s
        .split(',')
        .map(|t| (!t.is_empty()).then(|| parse_dec(TIMES, t)).transpose())
        .collect::<Result<_, _>>()?;
    if times.len() != positions {
        return Err(corrupt(format!("{TIMES} count differs from {POSITIONS}")));
    }
    Ok(times)
}

/// `tidewal.batch_crc32c`: one 8-hex-digit CRC-32C per batch.
fn parse_crcs(s: &str) -> Result<Vec<u32>, CodecError> {
    s.split(',')
        .filter(|_| !s.is_empty())
        .map(|c| {
            let ok = c.len() == 8 && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            ok.then(|| u32::from_str_radix(c, 16).ok())
                .flatten()
                .ok_or_else(|| corrupt(format!("malformed {BATCH_CRCS}")))
        })
        .collect()
}

/// [`Codec::decode_generation_index`](crate::Codec::decode_generation_index) of an
/// [`ArrowCodec`]: the footer (`index`) of a file of `file_len` bytes.
pub(super) fn decode_generation_index(
    codec: &ArrowCodec,
    index: &[u8],
    file_len: u64,
) -> Result<GenerationIndex, CodecError> {
    let n = index.len();
    let framed = n > 10 && index[n - 6..] == *b"ARROW1" && {
        let l = &index[n - 10..n - 6];
        usize::try_from(i32::from_le_bytes([l[0], l[1], l[2], l[3]])) == Ok(n - 10)
    };
    // The file holds at least its magic, a schema message and the end-of-stream marker.
    if !framed || (n as u64).saturating_add(8 + EOS.len() as u64) > file_len {
        return Err(corrupt("not an Arrow IPC file footer"));
    }
    let footer = root_as_footer(&index[..index.len() - 10])
        .map_err(|e| corrupt(format!("bad footer: {e}")))?;
    let h = read_header(codec, &footer)?;
    let crcs = h
        .crcs
        .ok_or_else(|| corrupt(format!("missing {BATCH_CRCS}")))?;
    // Batches follow the schema message, in order, and end before the end-of-stream marker.
    let batches_end = file_len - index.len() as u64 - EOS.len() as u64;
    let mut at = 8u64;
    let mut ranges = Vec::new();
    for b in footer.recordBatches().into_iter().flatten() {
        let start = u64::try_from(b.offset()).ok();
        let len = u64::try_from(i64::from(b.metaDataLength()) + b.bodyLength()).ok();
        let Some((start, end)) = start
            .zip(len)
            .and_then(|(s, l)| Some((s, s.checked_add(l)?)))
        else {
            return Err(corrupt("bad footer block"));
        };
        if start < at || end > batches_end || start == end {
            return Err(corrupt("footer blocks out of order or bounds"));
        }
        at = end;
        ranges.push(start..end);
    }
    let total = h
        .positions
        .iter()
        .try_fold(0usize, |acc, &(_, n)| acc.checked_add(n));
    if total != Some(ranges.len()) || crcs.len() != ranges.len() {
        return Err(corrupt("batch count differs from the positions index"));
    }
    if footer.dictionaries().is_some_and(|d| !d.is_empty()) {
        return Err(corrupt("generation with dictionaries"));
    }
    let times = h
        .times
        .unwrap_or_else(|| alloc::vec![None; h.positions.len()]);
    let mut batches = ranges.into_iter().zip(crcs);
    let entries = h
        .positions
        .into_iter()
        .zip(times)
        .map(|((position, n), time)| IndexedEntry {
            position,
            time,
            records: batches
                .by_ref()
                .take(n)
                .map(|(range, crc32c)| IndexedRecord {
                    range,
                    crc32c,
                    // Known once the batch is read (its message says).
                    rows: 0,
                })
                .collect(),
        })
        .collect();
    Ok(GenerationIndex {
        header: h.header,
        entries,
    })
}

/// [`Codec::generation_record`](crate::Codec::generation_record) of an [`ArrowCodec`]: one
/// batch message, whose header gives the rows.
pub(super) fn generation_record(bytes: Bytes) -> Result<Record, CodecError> {
    let (_, _, rows) = batch_message(&bytes)?;
    Ok(Record {
        payload: bytes.into(),
        rows,
    })
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
    let h = read_header(codec, &footer)?;
    let total = h
        .positions
        .iter()
        .try_fold(0usize, |acc, &(_, n)| acc.checked_add(n));
    if total != Some(batches.len()) || h.crcs.as_ref().is_some_and(|c| c.len() != batches.len()) {
        return Err(corrupt("batch count differs from the positions index"));
    }
    let times = h
        .times
        .unwrap_or_else(|| alloc::vec![None; h.positions.len()]);
    let mut batches = batches.into_iter();
    let entries = h
        .positions
        .into_iter()
        .zip(times)
        .map(|((position, n), time)| PositionedRecords {
            position,
            time,
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
    Ok(Generation {
        header: h.header,
        entries,
    })
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
                time: None,
                records: vec![rec(3, 1), rec(2, 2)],
            },
            PositionedRecords {
                position: 13,
                time: None,
                records: vec![rec(1, 3)],
            },
            PositionedRecords {
                position: 20,
                time: None,
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

    #[test]
    fn the_footer_indexes_every_record_with_its_checksum_and_time() {
        let c = codec();
        let rec = |rows, seed| c.encode_batch(&batch(rows, seed)).unwrap();
        let entries = vec![
            PositionedRecords {
                position: 3,
                time: Some(1_700_000_000_000),
                records: vec![rec(3, 1), rec(2, 2)],
            },
            PositionedRecords {
                position: 4,
                time: None,
                records: vec![],
            },
            PositionedRecords {
                position: 9,
                time: Some(1_700_000_000_005),
                records: vec![rec(4, 3)],
            },
        ];
        let h = GenerationHeader { epoch: 1, id: 0 };
        let file = c.encode_generation(&h, &entries).unwrap();
        let range = c.generation_index_range(&file).unwrap();
        assert_eq!(range.end, file.len() as u64);
        let footer = &file[range.start as usize..];
        let index = c
            .decode_generation_index(footer, file.len() as u64)
            .unwrap();
        assert_eq!(index.header, h);
        assert_eq!(index.entries.len(), 3);
        for (e, want) in index.entries.iter().zip(&entries) {
            assert_eq!((e.position, e.time), (want.position, want.time));
            assert_eq!(e.records.len(), want.records.len());
            for (r, w) in e.records.iter().zip(&want.records) {
                let bytes = file.slice(r.range.start as usize..r.range.end as usize);
                assert_eq!(bytes, w.payload.to_bytes());
                assert_eq!(r.crc32c, c.checksum(&bytes));
                assert_eq!(c.generation_record(bytes, 0).unwrap().rows, w.rows);
            }
        }
        // Whole reads see the times too.
        let whole = c.decode_generation(file.clone()).unwrap();
        assert_eq!(whole.entries, entries);
        // The index of a file other than its own length, or flipped anywhere: an error or
        // (flips the flatbuffer does not notice) a value, never a panic.
        assert!(c
            .decode_generation_index(footer, footer.len() as u64)
            .is_err());
        for i in 0..footer.len() {
            let mut bad = footer.to_vec();
            bad[i] ^= 0x41;
            let _ = c.decode_generation_index(&bad, file.len() as u64);
        }
        for n in 0..footer.len() {
            assert!(c
                .decode_generation_index(&footer[n + 1..], file.len() as u64)
                .is_err());
        }
    }

    #[test]
    fn a_generation_written_before_times_and_batch_checksums_reads_whole() {
        use super::{EPOCH, KIND};
        use alloc::format;
        use alloc::vec::Vec;
        use arrow_ipc::writer::FileWriter;
        let c = codec();
        // What writers wrote before: the header and the positions index, nothing more.
        let schema = c.schema_with(&[
            (KIND, "generation".into()),
            (EPOCH, "1".into()),
            (GENERATION, "0".into()),
            (POSITIONS, "5:1,6:1".into()),
        ]);
        let mut w =
            FileWriter::try_new_with_options(Vec::new(), &schema, c.options.clone()).unwrap();
        w.write(&batch(2, 1)).unwrap();
        w.write(&batch(3, 2)).unwrap();
        w.finish().unwrap();
        let file = Bytes::from(w.into_inner().unwrap());
        let g = c.decode_generation(file.clone()).unwrap();
        let got: Vec<(u64, Option<u64>, usize)> = g
            .entries
            .iter()
            .map(|e| (e.position, e.time, e.records.len()))
            .collect();
        assert_eq!(got, [(5, None, 1), (6, None, 1)]);
        // Its footer cannot serve a ranged read (no batch checksums): a typed error.
        let range = c.generation_index_range(&file).unwrap();
        let err = c
            .decode_generation_index(&file[range.start as usize..], file.len() as u64)
            .unwrap_err();
        assert!(format!("{err}").contains("tidewal.batch_crc32c"), "{err}");
    }
}
