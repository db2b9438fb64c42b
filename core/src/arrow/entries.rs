//! Entries: an IPC stream whose schema message carries the entry header (`tidewal.*` keys,
//! the checksum among them) and whose record batch messages are the records, verbatim.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::ops::Range;

use arrow_ipc::convert::try_fb_to_schema;
use bytes::Bytes;

use super::framing::{batch_header, batch_message_within, header_len, read_message, EOS};
use super::metadata::{
    crc_range, lookup, parse_dec, parse_nonce, tidewal_metadata, value_range, HeadTemplate, CRC,
    CRC_PLACEHOLDER, EPOCH, FORMAT, KIND, NONCE, POSITION, TIME, WINDOW,
};
use super::schema::fields_diff;
use super::{corrupt, encode_err, ArrowCodec};
use crate::codec::{CodecError, Entry, EntryHeader, EntryKind, Record};
use crate::crc32c::to_hex8;
use crate::io::Body;

/// Pieces at least this long (column buffers) are shared as they are; shorter ones are copied
/// together, so a record is a few pieces however many columns it has.
const SHARE_FROM: usize = 16 << 10;

/// A body of `first` followed by `pieces`: short pieces are copied together with their
/// neighbours (as is a message header split over pieces, so a decoder finds it whole in one
/// piece), long ones (column buffers) are shared. A store writes a piece per call, so a small
/// body is one piece.
pub(super) fn share_large_pieces(first: Vec<u8>, pieces: impl IntoIterator<Item = Bytes>) -> Body {
    let mut chunks = Vec::new();
    let mut small = first;
    for piece in pieces {
        let in_header = chunks.is_empty() && small.len() < header_len(&small);
        if in_header || piece.len() < SHARE_FROM {
            small.extend_from_slice(&piece);
        } else {
            if !small.is_empty() {
                chunks.push(Bytes::from(core::mem::take(&mut small)));
            }
            chunks.push(piece);
        }
    }
    if !small.is_empty() {
        chunks.push(small.into());
    }
    Body::from_chunks(chunks)
}

/// The row count of a record's payload: exactly one record batch message, its header in the
/// first piece.
pub(super) fn record_rows(payload: &Body) -> Result<u64, CodecError> {
    let head = payload.chunks().first().map_or(&[][..], |c| &c[..]);
    let (_, _, rows) = batch_message_within(head, payload.len())?;
    Ok(rows)
}

/// An entry's schema message and where its checksum goes. A writer's data entries differ
/// only in the position's digits, so theirs is patched from a template: encoding the
/// message was two thirds of encoding a 1 KiB entry.
fn entry_head(
    codec: &ArrowCodec,
    header: &EntryHeader,
) -> Result<(Vec<u8>, Range<usize>), CodecError> {
    let position = header.position.to_string();
    // Only data entries carry a time.
    let time = header
        .time
        .filter(|_| header.kind == EntryKind::Data)
        .map(|t| t.to_string());
    if header.kind == EntryKind::Data {
        let template = codec.head_template.lock().ok();
        if let Some(t) = template.as_ref().and_then(|t| t.as_ref()) {
            if let Some(head) = t.patch(header, &position, time.as_deref()) {
                return Ok((head, t.crc.clone()));
            }
        }
    }
    let mut pairs = Vec::with_capacity(6);
    let kind = match header.kind {
        EntryKind::Data => "data",
        EntryKind::Fence { window } => {
            pairs.push((WINDOW, window.to_string()));
            "fence"
        }
    };
    pairs.push((KIND, kind.into()));
    pairs.push((EPOCH, header.epoch.to_string()));
    pairs.push((POSITION, position));
    pairs.push((NONCE, format!("{:016x}", header.nonce)));
    if let Some(t) = time {
        pairs.push((TIME, t));
    }
    pairs.push((CRC, "00000000".into()));
    let mut head = Vec::with_capacity(1024);
    codec.write_schema(&mut head, &codec.schema_with(&pairs))?;
    let m = read_message(&head, 0)?.ok_or_else(|| encode_err("no schema message"))?;
    let fb = m
        .msg
        .header_as_schema()
        .ok_or_else(|| encode_err("no schema"))?;
    let md = tidewal_metadata(fb)?;
    let crc = value_range(&head, &md, CRC)?;
    if header.kind == EntryKind::Data {
        let template = HeadTemplate {
            epoch: header.epoch,
            nonce: header.nonce,
            position: value_range(&head, &md, POSITION)?,
            time: match header.time {
                Some(_) => Some(value_range(&head, &md, TIME)?),
                None => None,
            },
            crc: crc.clone(),
            head: head.clone(),
        };
        if let Ok(mut slot) = codec.head_template.lock() {
            *slot = Some(template);
        }
    }
    Ok((head, crc))
}

/// [`Codec::encode_entry`](crate::Codec::encode_entry) of an [`ArrowCodec`].
pub(super) fn encode_entry(
    codec: &ArrowCodec,
    header: &EntryHeader,
    records: &[Record],
) -> Result<Body, CodecError> {
    if let EntryKind::Fence { window } = header.kind {
        if window == 0 || !records.is_empty() {
            return Err(encode_err("a fence needs a window > 0 and no records"));
        }
    }
    for (i, r) in records.iter().enumerate() {
        // A record the decoder would reject must not reach the store.
        let rows = record_rows(&r.payload).map_err(|e| encode_err(format!("record {i}: {e}")))?;
        if rows != r.rows || r.payload.len() % 8 != 0 {
            return Err(encode_err(format!(
                "record {i}: bad row count or alignment"
            )));
        }
    }
    let (mut head, crc_at) = entry_head(codec, header)?;
    // The checksum covers the whole stream with the placeholder in place; the records'
    // column buffers go out as they are (no copy into one buffer).
    let mut crc = (codec.crc)(0, &head);
    for chunk in records.iter().flat_map(|r| r.payload.chunks()) {
        crc = (codec.crc)(crc, chunk);
    }
    crc = (codec.crc)(crc, &EOS);
    head[crc_at].copy_from_slice(&to_hex8(crc));
    let pieces = records.iter().flat_map(|r| r.payload.chunks()).cloned();
    Ok(share_large_pieces(
        head,
        pieces.chain([Bytes::from_static(&EOS)]),
    ))
}

/// [`Codec::decode_entry`](crate::Codec::decode_entry) of an [`ArrowCodec`].
pub(super) fn decode_entry(codec: &ArrowCodec, bytes: Bytes) -> Result<Entry, CodecError> {
    let first = read_message(&bytes, 0)?.ok_or_else(|| corrupt("empty stream"))?;
    let fb = first
        .msg
        .header_as_schema()
        .ok_or_else(|| corrupt("first message is not a schema"))?;
    if !first.body.is_empty() {
        return Err(corrupt("schema message has a body"));
    }
    let md = tidewal_metadata(fb)?;

    // Checksum first: everything after it parses bytes known to be what the writer wrote.
    let at = crc_range(&bytes, &md)?;
    let crc = (codec.crc)(0, &bytes[..at.start]);
    let crc = (codec.crc)(crc, CRC_PLACEHOLDER);
    let crc = (codec.crc)(crc, &bytes[at.end..]);
    // Byte comparison, not parsing: "ABCDEF01" or "+bcdef01" must not pass for "abcdef01".
    if to_hex8(crc)[..] != bytes[at] {
        return Err(corrupt("checksum mismatch"));
    }

    let schema = try_fb_to_schema(fb).map_err(|e| corrupt(format!("bad schema: {e}")))?;
    if let Some(diff) = fields_diff(codec.schema.fields(), schema.fields()) {
        return Err(CodecError::SchemaMismatch(diff));
    }
    let format = lookup(&md, FORMAT)?;
    if format != "1" {
        return Err(corrupt(format!("unsupported {FORMAT} {format:?}")));
    }
    let window = md.iter().find(|(k, _)| *k == WINDOW).map(|(_, v)| *v);
    let kind = match (lookup(&md, KIND)?, window) {
        ("data", None) => EntryKind::Data,
        ("fence", Some(w)) => EntryKind::Fence {
            window: u32::try_from(parse_dec(WINDOW, w)?)
                .ok()
                .filter(|&w| w > 0)
                .ok_or_else(|| corrupt(format!("bad {WINDOW}")))?,
        },
        (k, _) => return Err(corrupt(format!("bad {KIND} {k:?} or {WINDOW}"))),
    };
    let header = EntryHeader {
        kind,
        epoch: parse_dec(EPOCH, lookup(&md, EPOCH)?)?,
        position: parse_dec(POSITION, lookup(&md, POSITION)?)?,
        nonce: parse_nonce(lookup(&md, NONCE)?)?,
        time: match md.iter().find(|(k, _)| *k == TIME) {
            Some(_) if kind != EntryKind::Data => {
                return Err(corrupt(format!("a fence with {TIME}")))
            }
            Some((_, t)) => Some(parse_dec(TIME, t)?),
            None => None,
        },
    };

    let mut records = Vec::new();
    let mut at = first.body.end;
    while let Some(m) = read_message(&bytes, at)? {
        let (_, rows) = batch_header(&m)?;
        records.push(Record {
            payload: bytes.slice(at..m.body.end).into(),
            rows,
        });
        at = m.body.end;
    }
    // read_message returned the end-of-stream marker at `at`.
    if at + EOS.len() != bytes.len() {
        return Err(corrupt("trailing bytes after end-of-stream"));
    }
    if matches!(kind, EntryKind::Fence { .. }) && !records.is_empty() {
        return Err(corrupt("fence with records"));
    }
    Ok(Entry { header, records })
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;
    use std::io::Cursor;

    use arrow_array::{Array, RecordBatch};
    use arrow_ipc::reader::StreamReader;
    use bytes::Bytes;

    use super::EOS;
    use crate::arrow::test_util::{batch, blob_batch, codec, header};
    use crate::arrow::ArrowCodec;
    use crate::codec::{Codec, CodecError, EntryHeader, EntryKind, Record};

    #[test]
    fn data_entry_round_trip() {
        let c = codec();
        let batches = [batch(5, 1), batch(0, 2), batch(17, 3)];
        let recs: Vec<Record> = batches.iter().map(|b| c.encode_batch(b).unwrap()).collect();
        let bytes = c
            .encode_entry(&header(EntryKind::Data), &recs)
            .unwrap()
            .to_bytes();
        let e = c.decode_entry(bytes).unwrap();
        assert_eq!(e.header, header(EntryKind::Data));
        assert_eq!(e.records, recs);
        for (r, b) in e.records.iter().zip(&batches) {
            assert_eq!(&c.decode_record(r).unwrap(), b);
        }
    }

    #[test]
    fn entries_patched_from_the_template_decode_as_their_own_header() {
        let c = codec();
        let clone = c.clone();
        let rec = c.encode_batch(&batch(2, 1)).unwrap();
        // Positions across digit widths, writers (epoch, nonce) taking turns on clones that
        // share the template, and fences in between.
        let mut headers = Vec::new();
        for position in [0, 9, 10, 11, 99, 100, 12_345, 99_999, u64::MAX] {
            for (epoch, nonce) in [(3, 7), (4, 7), (4, 8), (3, 7)] {
                let kind = if position == 11 {
                    EntryKind::Fence { window: 5 }
                } else {
                    EntryKind::Data
                };
                let time = match (kind, position % 3) {
                    (EntryKind::Fence { .. }, _) | (_, 0) => None,
                    (_, 1) => Some(1_700_000_000_000 + position % 7),
                    _ => Some(position),
                };
                headers.push(EntryHeader {
                    kind,
                    epoch,
                    position,
                    nonce,
                    time,
                });
            }
        }
        for (i, h) in headers.iter().enumerate() {
            let by = if i % 3 == 0 { &clone } else { &c };
            let records = if h.kind == EntryKind::Data {
                vec![rec.clone()]
            } else {
                vec![]
            };
            let bytes = by.encode_entry(h, &records).unwrap().to_bytes();
            let e = c.decode_entry(bytes).unwrap();
            assert_eq!((e.header, e.records), (*h, records), "entry {i}");
        }
    }

    #[test]
    fn entry_body_shares_column_buffers_and_copies_small_pieces_together() {
        let big = blob_batch(8, 20 << 10);
        let c = ArrowCodec::new(big.schema()).unwrap();
        let mut h = header(EntryKind::Data);
        let small = [
            c.encode_batch(&blob_batch(3, 10)).unwrap(),
            c.encode_batch(&blob_batch(5, 20)).unwrap(),
        ];
        let body = c.encode_entry(&h, &small).unwrap();
        assert_eq!(body.chunks().len(), 1, "a small entry is one piece");
        assert_eq!(c.decode_entry(body.to_bytes()).unwrap().records, small);

        h.position += 1;
        let recs = [
            small[0].clone(),
            c.encode_batch(&big).unwrap(),
            small[1].clone(),
        ];
        let body = c.encode_entry(&h, &recs).unwrap();
        let values = big.column(1).to_data().buffers()[1].as_ptr();
        assert!(
            body.chunks().iter().any(|p| p.as_ptr() == values),
            "a column buffer goes out as it is"
        );
        assert_eq!(body.chunks().len(), 3, "small pieces around it are joined");
        assert_eq!(c.decode_entry(body.to_bytes()).unwrap().records, recs);
    }

    #[test]
    fn fence_round_trip_and_rules() {
        let c = codec();
        let h = header(EntryKind::Fence { window: 64 });
        let e = c
            .decode_entry(c.encode_entry(&h, &[]).unwrap().to_bytes())
            .unwrap();
        assert_eq!(e.header, h);
        assert!(e.records.is_empty());
        let rec = c.encode_batch(&batch(1, 1)).unwrap();
        assert!(matches!(
            c.encode_entry(&h, &[rec]),
            Err(CodecError::Encode(_))
        ));
        let zero = header(EntryKind::Fence { window: 0 });
        assert!(matches!(
            c.encode_entry(&zero, &[]),
            Err(CodecError::Encode(_))
        ));
        let junk = Record::new(&b"not a batch"[..], 1);
        let data = header(EntryKind::Data);
        assert!(matches!(
            c.encode_entry(&data, &[junk]),
            Err(CodecError::Encode(_))
        ));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_an_error() {
        let c = codec();
        let rec = c.encode_batch(&batch(2, 7)).unwrap();
        let data = c
            .encode_entry(&header(EntryKind::Data), &[rec])
            .unwrap()
            .to_bytes();
        let fence = c
            .encode_entry(&header(EntryKind::Fence { window: 8 }), &[])
            .unwrap()
            .to_bytes();
        for bytes in [data, fence] {
            for i in 0..bytes.len() {
                for mask in [0x01u8, 0x20, 0x80, 0xFF] {
                    let mut bad = bytes.to_vec();
                    bad[i] ^= mask;
                    let got = c.decode_entry(Bytes::from(bad));
                    assert!(
                        matches!(got, Err(CodecError::Corrupt(_))),
                        "flip {mask:#x} at {i}: {got:?}"
                    );
                }
            }
            for n in 0..bytes.len() {
                assert!(
                    c.decode_entry(bytes.slice(..n)).is_err(),
                    "truncated to {n}"
                );
            }
            let mut long = bytes.to_vec();
            long.extend_from_slice(&EOS);
            assert!(c.decode_entry(Bytes::from(long)).is_err());
        }
    }

    #[test]
    fn stream_readable_by_arrow_reader() {
        let c = codec();
        let batches = [batch(4, 1), batch(6, 2)];
        let recs: Vec<Record> = batches.iter().map(|b| c.encode_batch(b).unwrap()).collect();
        let bytes = c
            .encode_entry(&header(EntryKind::Data), &recs)
            .unwrap()
            .to_bytes();
        let reader = StreamReader::try_new(Cursor::new(bytes.to_vec()), None).unwrap();
        let md = reader.schema().metadata().clone();
        assert_eq!(md.get("tidewal.kind").map(String::as_str), Some("data"));
        assert_eq!(md.get("tidewal.position").map(String::as_str), Some("42"));
        assert_eq!(
            md.get("tidewal.nonce").map(String::as_str),
            Some("00ff00ffdeadbeef")
        );
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(read.len(), 2);
        for (r, b) in read.iter().zip(&batches) {
            assert_eq!(r.columns(), b.columns());
        }
    }
}
