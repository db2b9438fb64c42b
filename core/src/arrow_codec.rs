//! The Arrow IPC codec (PROTOCOL.md section 2).
//!
//! A [`Record`] of this codec is one encoded Arrow IPC record batch message. An entry is an IPC
//! stream that carries those bytes verbatim, so building an entry never re-encodes column data
//! and decoding one reads only flatbuffer headers and the checksum. A generation is an IPC file.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{Display, Write as _};
use core::ops::Range;
use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_ipc::convert::{try_fb_to_schema, try_schema_from_ipc_buffer};
use arrow_ipc::reader::read_record_batch;
use arrow_ipc::writer::{
    write_message, DictionaryTracker, FileWriter, IpcDataGenerator, IpcWriteOptions, StreamEncoder,
};
use arrow_ipc::{root_as_footer, root_as_message, Message, MetadataVersion};
use arrow_schema::{DataType, Fields, Schema, SchemaRef};
use bytes::Bytes;

use crate::codec::{
    Codec, CodecError, Entry, EntryHeader, EntryKind, Generation, GenerationHeader,
    PositionedRecords, Record,
};
use crate::crc32c::{crc32c_append, to_hex8, Crc32cAppend};
use crate::io::Body;

const PREFIX: &str = "tidewal.";
const FORMAT: &str = "tidewal.format";
const KIND: &str = "tidewal.kind";
const EPOCH: &str = "tidewal.epoch";
const POSITION: &str = "tidewal.position";
const NONCE: &str = "tidewal.nonce";
const WINDOW: &str = "tidewal.window";
const CRC: &str = "tidewal.crc32c";
const GENERATION: &str = "tidewal.generation";
const POSITIONS: &str = "tidewal.positions";
const CRC_PLACEHOLDER: &[u8; 8] = b"00000000";
const CONTINUATION: [u8; 4] = [0xFF; 4];
const EOS: [u8; 8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];

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

fn has_dictionary(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(..) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_dictionary(f.data_type()),
        DataType::Struct(fs) => fs.iter().any(|f| has_dictionary(f.data_type())),
        DataType::Union(fs, _) => fs.iter().any(|(_, f)| has_dictionary(f.data_type())),
        DataType::RunEndEncoded(a, b) => {
            has_dictionary(a.data_type()) || has_dictionary(b.data_type())
        }
        _ => false,
    }
}

/// Names the first difference between the log's fields and `got`, if any.
fn fields_diff(want: &Fields, got: &Fields) -> Option<String> {
    if want == got {
        return None;
    }
    if want.len() != got.len() {
        return Some(format!("{} fields, expected {}", got.len(), want.len()));
    }
    let diff = want
        .iter()
        .zip(got.iter())
        .enumerate()
        .find(|(_, (w, g))| w != g);
    Some(match diff {
        Some((i, (w, g))) => format!("field {i} is {g:?}, expected {w:?}"),
        None => "fields differ".into(),
    })
}

/// Names the first field of `got` the log cannot take, if any: input may be stricter than the
/// log (a non-nullable field into a nullable one, as apache-arrow JS declares columns without
/// nulls), never looser. Names, types and order must match.
fn input_fields_diff(want: &Fields, got: &Fields) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!("{} fields, expected {}", got.len(), want.len()));
    }
    let (i, (w, g)) = want
        .iter()
        .zip(got.iter())
        .enumerate()
        .find(|(_, (w, g))| !w.contains(g))?;
    Some(format!("field {i} is {g:?}, expected {w:?}"))
}

/// Pieces at least this long (column buffers) are shared as they are; shorter ones are copied
/// together, so a record is a few pieces however many columns it has.
const SHARE_FROM: usize = 16 << 10;

/// The length of a framed message's prefix and metadata, once `buf` holds the 8-byte prefix.
fn header_len(buf: &[u8]) -> usize {
    match buf.get(4..8) {
        Some(&[a, b, c, d]) => 8 + usize::try_from(i32::from_le_bytes([a, b, c, d])).unwrap_or(0),
        _ => usize::MAX,
    }
}

/// A body of `first` followed by `pieces`: short pieces are copied together with their
/// neighbours (as is a message header split over pieces, so a decoder finds it whole in one
/// piece), long ones (column buffers) are shared. A store writes a piece per call, so a small
/// body is one piece.
fn share_large_pieces(first: Vec<u8>, pieces: impl IntoIterator<Item = Bytes>) -> Body {
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
fn record_rows(payload: &Body) -> Result<u64, CodecError> {
    let head = payload.chunks().first().map_or(&[][..], |c| &c[..]);
    let (_, _, rows) = batch_message_within(head, payload.len())?;
    Ok(rows)
}

/// One framed IPC message inside a buffer.
struct Framed<'a> {
    msg: Message<'a>,
    /// The message body (after the padded flatbuffer); `end` is where the next message starts.
    body: Range<usize>,
}

/// Reads the framed message at `at`, bounds-checked; `None` is the end-of-stream marker.
fn read_message(buf: &[u8], at: usize) -> Result<Option<Framed<'_>>, CodecError> {
    read_message_within(buf, at, buf.len())
}

/// [`read_message`] where `buf` holds the message's metadata and the stream goes on to
/// `total` bytes (the body may be in later pieces).
fn read_message_within(
    buf: &[u8],
    at: usize,
    total: usize,
) -> Result<Option<Framed<'_>>, CodecError> {
    let meta_start = at
        .checked_add(8)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| corrupt("truncated message prefix"))?;
    let prefix = &buf[at..meta_start];
    if prefix[..4] != CONTINUATION {
        return Err(corrupt("missing continuation marker"));
    }
    let len = i32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if len == 0 {
        return Ok(None);
    }
    let meta_end = usize::try_from(len)
        .ok()
        .and_then(|l| meta_start.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| corrupt("bad message metadata length"))?;
    // root_as_message runs the flatbuffer verifier: bad offsets are errors, not panics.
    let msg = root_as_message(&buf[meta_start..meta_end])
        .map_err(|e| corrupt(format!("bad message flatbuffer: {e}")))?;
    let end = usize::try_from(msg.bodyLength())
        .ok()
        .and_then(|l| meta_end.checked_add(l))
        .filter(|&e| e <= total)
        .ok_or_else(|| corrupt("bad message body length"))?;
    Ok(Some(Framed {
        msg,
        body: meta_end..end,
    }))
}

/// The record batch header of a message, with its buffers checked against the body (arrow's
/// reader slices them unchecked and would panic); also returns the row count.
fn batch_header<'a>(m: &Framed<'a>) -> Result<(arrow_ipc::RecordBatch<'a>, u64), CodecError> {
    let rb = m
        .msg
        .header_as_record_batch()
        .ok_or_else(|| corrupt("not a record batch message"))?;
    // The buffer checks (arrow_buffers) follow V5's layout; V4 unions differ.
    if m.msg.version() != MetadataVersion::V5 {
        return Err(corrupt(format!(
            "metadata version {:?}, expected V5",
            m.msg.version()
        )));
    }
    let body_len = m.body.len() as u64;
    for b in rb.buffers().into_iter().flatten() {
        let end = u64::try_from(b.offset())
            .ok()
            .zip(u64::try_from(b.length()).ok())
            .and_then(|(o, l)| o.checked_add(l));
        // Offsets must be 8-aligned (as Arrow C++ requires).
        if b.offset() % 8 != 0 || end.is_none_or(|e| e > body_len) {
            return Err(corrupt("record batch buffer misaligned or out of bounds"));
        }
    }
    let rows = u64::try_from(rb.length()).map_err(|_| corrupt("negative row count"))?;
    Ok((rb, rows))
}

/// Parses `buf` as exactly one record batch message.
fn batch_message(buf: &[u8]) -> Result<(Framed<'_>, arrow_ipc::RecordBatch<'_>, u64), CodecError> {
    batch_message_within(buf, buf.len())
}

/// [`batch_message`] of a message `total` bytes long whose metadata is in `buf`.
fn batch_message_within(
    buf: &[u8],
    total: usize,
) -> Result<(Framed<'_>, arrow_ipc::RecordBatch<'_>, u64), CodecError> {
    let m = read_message_within(buf, 0, total)?
        .ok_or_else(|| corrupt("end-of-stream, not a record batch"))?;
    if m.body.end != total {
        return Err(corrupt("trailing bytes after the record batch message"));
    }
    let (rb, rows) = batch_header(&m)?;
    Ok((m, rb, rows))
}

/// The `tidewal.*` key/value pairs of a schema message, borrowed from the buffer.
fn tidewal_metadata<'a>(
    schema: arrow_ipc::Schema<'a>,
) -> Result<Vec<(&'a str, &'a str)>, CodecError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for kv in schema.custom_metadata().into_iter().flatten() {
        if let (Some(k), Some(v)) = (kv.key(), kv.value()) {
            if k.starts_with(PREFIX) {
                if out.iter().any(|(seen, _)| *seen == k) {
                    return Err(corrupt(format!("duplicate {k}")));
                }
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

/// Looks up a metadata key; missing keys mean the object is corrupt.
fn lookup<'a>(md: &[(&'a str, &'a str)], key: &str) -> Result<&'a str, CodecError> {
    md.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| corrupt(format!("missing {key}")))
}

/// Where the value of `key` sits in `buf`, the message its metadata `md` was read from.
fn value_range(buf: &[u8], md: &[(&str, &str)], key: &str) -> Result<Range<usize>, CodecError> {
    let value = lookup(md, key)?;
    // The value borrows from `buf`, so its address gives its offset (safe pointer arithmetic).
    let start = (value.as_ptr() as usize)
        .checked_sub(buf.as_ptr() as usize)
        .filter(|&s| s + value.len() <= buf.len())
        .ok_or_else(|| corrupt(format!("malformed {key}")))?;
    Ok(start..start + value.len())
}

/// Where the `tidewal.crc32c` value sits in `buf`: an 8-byte range.
fn crc_range(buf: &[u8], md: &[(&str, &str)]) -> Result<Range<usize>, CodecError> {
    let range = value_range(buf, md, CRC)?;
    if range.len() != 8 {
        return Err(corrupt(format!("malformed {CRC}")));
    }
    Ok(range)
}

/// A data entry's schema message for one writer and position width, with the ranges of the
/// position's digits and of the checksum placeholder.
#[derive(Debug)]
struct HeadTemplate {
    epoch: u64,
    nonce: u64,
    head: Vec<u8>,
    position: Range<usize>,
    crc: Range<usize>,
}

impl HeadTemplate {
    /// The message for a data entry of `header`, if this template is for its writer and its
    /// position (in decimal, `digits`) has as many digits.
    fn patch(&self, header: &EntryHeader, digits: &str) -> Option<Vec<u8>> {
        let fits = header.epoch == self.epoch
            && header.nonce == self.nonce
            && digits.len() == self.position.len();
        fits.then(|| {
            let mut head = self.head.clone();
            head[self.position.clone()].copy_from_slice(digits.as_bytes());
            head
        })
    }
}

/// Canonical decimal (what the encoder writes), so no two spellings decode alike.
fn parse_dec(key: &str, s: &str) -> Result<u64, CodecError> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    canonical
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| corrupt(format!("malformed {key}: {s:?}")))
}

fn parse_nonce(s: &str) -> Result<u64, CodecError> {
    let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .ok_or_else(|| corrupt(format!("malformed {NONCE}: {s:?}")))
}

/// Parses a generation's `tidewal.positions` index: `position:batches,...`.
fn parse_index(s: &str) -> Result<Vec<(u64, usize)>, CodecError> {
    let mut out: Vec<(u64, usize)> = Vec::new();
    for part in s.split(',').filter(|_| !s.is_empty()) {
        let (p, n) = part
            .split_once(':')
            .ok_or_else(|| corrupt(format!("malformed {POSITIONS}")))?;
        let p = parse_dec(POSITIONS, p)?;
        let n = usize::try_from(parse_dec(POSITIONS, n)?).map_err(corrupt)?;
        if out.last().is_some_and(|&(prev, _)| prev >= p) {
            return Err(corrupt(format!("{POSITIONS} not increasing")));
        }
        out.push((p, n));
    }
    Ok(out)
}

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

/// Decodes schema bytes recorded in a manifest (an encoded IPC schema message).
pub fn decode_schema(stored: &[u8]) -> Result<SchemaRef, CodecError> {
    try_schema_from_ipc_buffer(stored)
        .map(Arc::new)
        .map_err(|e| corrupt(format!("schema bytes: {e}")))
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
        // A record straight from encode_batch shares its batch's buffers in pieces; arrow's
        // reader wants one buffer.
        let buf = record.payload.to_bytes();
        let (m, rb, rows) = batch_message(&buf)?;
        crate::arrow_buffers::check_buffer_lengths(self.schema.fields(), rb).map_err(corrupt)?;
        // Zero-copy when the body is aligned; arrow copies it otherwise.
        let body = buf.slice(m.body.clone()).into();
        let batch = read_record_batch(
            &body,
            rb,
            self.schema.clone(),
            &HashMap::new(),
            None,
            &m.msg.version(),
        )
        .map_err(|e| corrupt(format!("bad record batch: {e}")))?;
        if rows != record.rows {
            return Err(corrupt("record row count differs from its batch"));
        }
        Ok(batch)
    }

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

    /// An entry's schema message and where its checksum goes. A writer's data entries differ
    /// only in the position's digits, so theirs is patched from a template: encoding the
    /// message was two thirds of encoding a 1 KiB entry.
    fn entry_head(&self, header: &EntryHeader) -> Result<(Vec<u8>, Range<usize>), CodecError> {
        let position = header.position.to_string();
        if header.kind == EntryKind::Data {
            let template = self.head_template.lock().ok();
            if let Some(t) = template.as_ref().and_then(|t| t.as_ref()) {
                if let Some(head) = t.patch(header, &position) {
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
        pairs.push((CRC, "00000000".into()));
        let mut head = Vec::with_capacity(1024);
        self.write_schema(&mut head, &self.schema_with(&pairs))?;
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
                crc: crc.clone(),
                head: head.clone(),
            };
            if let Ok(mut slot) = self.head_template.lock() {
                *slot = Some(template);
            }
        }
        Ok((head, crc))
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

    fn schema_matches(&self, stored: &[u8]) -> bool {
        // Compare decoded fields: another arrow-rs version may encode the same schema differently.
        try_schema_from_ipc_buffer(stored)
            .is_ok_and(|s| fields_diff(self.schema.fields(), s.fields()).is_none())
    }

    fn encode_entry(&self, header: &EntryHeader, records: &[Record]) -> Result<Body, CodecError> {
        if let EntryKind::Fence { window } = header.kind {
            if window == 0 || !records.is_empty() {
                return Err(encode_err("a fence needs a window > 0 and no records"));
            }
        }
        for (i, r) in records.iter().enumerate() {
            // A record the decoder would reject must not reach the store.
            let rows =
                record_rows(&r.payload).map_err(|e| encode_err(format!("record {i}: {e}")))?;
            if rows != r.rows || r.payload.len() % 8 != 0 {
                return Err(encode_err(format!(
                    "record {i}: bad row count or alignment"
                )));
            }
        }
        let (mut head, crc_at) = self.entry_head(header)?;
        // The checksum covers the whole stream with the placeholder in place; the records'
        // column buffers go out as they are (no copy into one buffer).
        let mut crc = (self.crc)(0, &head);
        for chunk in records.iter().flat_map(|r| r.payload.chunks()) {
            crc = (self.crc)(crc, chunk);
        }
        crc = (self.crc)(crc, &EOS);
        head[crc_at].copy_from_slice(&to_hex8(crc));
        let pieces = records.iter().flat_map(|r| r.payload.chunks()).cloned();
        Ok(share_large_pieces(
            head,
            pieces.chain([Bytes::from_static(&EOS)]),
        ))
    }

    fn checksum(&self, data: &[u8]) -> u32 {
        (self.crc)(0, data)
    }

    fn decode_entry(&self, bytes: Bytes) -> Result<Entry, CodecError> {
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
        let crc = (self.crc)(0, &bytes[..at.start]);
        let crc = (self.crc)(crc, CRC_PLACEHOLDER);
        let crc = (self.crc)(crc, &bytes[at.end..]);
        // Byte comparison, not parsing: "ABCDEF01" or "+bcdef01" must not pass for "abcdef01".
        if to_hex8(crc)[..] != bytes[at] {
            return Err(corrupt("checksum mismatch"));
        }

        let schema = try_fb_to_schema(fb).map_err(|e| corrupt(format!("bad schema: {e}")))?;
        if let Some(diff) = fields_diff(self.schema.fields(), schema.fields()) {
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

    fn encode_generation(
        &self,
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
        let schema = self.schema_with(&[
            (KIND, "generation".into()),
            (EPOCH, header.epoch.to_string()),
            (GENERATION, header.id.to_string()),
            (POSITIONS, index),
        ]);
        let mut w = FileWriter::try_new_with_options(Vec::new(), &schema, self.options.clone())
            .map_err(encode_err)?;
        for e in entries {
            for r in &e.records {
                let batch = self
                    .decode_record(r)
                    .map_err(|err| encode_err(format!("record at {}: {err}", e.position)))?;
                w.write(&batch).map_err(encode_err)?;
            }
        }
        w.finish().map_err(encode_err)?;
        Ok(Bytes::from(w.into_inner().map_err(encode_err)?))
    }

    fn decode_generation(&self, bytes: Bytes) -> Result<Generation, CodecError> {
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
        if let Some(diff) = fields_diff(self.schema.fields(), schema.fields()) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec;
    use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
    use arrow_array::{
        Array, ArrayRef, BinaryArray, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use arrow_ipc::reader::{FileReader, StreamReader};
    use arrow_schema::{Field, TimeUnit};
    use std::io::Cursor;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "vec",
                DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 4),
                true,
            ),
        ]))
    }

    fn batch(rows: usize, seed: i64) -> RecordBatch {
        let ids: Vec<i64> = (0..rows as i64).map(|i| seed * 1000 + i).collect();
        let names: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 3 != 1).then(|| format!("row-{seed}-{i}")))
            .collect();
        let mut vecs = FixedSizeListBuilder::new(Float32Builder::new(), 4);
        for i in 0..rows {
            for k in 0..4 {
                vecs.values().append_value((i * 4 + k) as f32 * 0.5);
            }
            vecs.append(i % 5 != 2);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(TimestampMicrosecondArray::from(ids).with_timezone("UTC")),
            Arc::new(StringArray::from(names)),
            Arc::new(vecs.finish()),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    fn codec() -> ArrowCodec {
        ArrowCodec::new(schema()).unwrap()
    }

    fn header(kind: EntryKind) -> EntryHeader {
        EntryHeader {
            kind,
            epoch: 3,
            position: 42,
            nonce: 0x00ff_00ff_dead_beef,
        }
    }

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
                headers.push(EntryHeader {
                    kind,
                    epoch,
                    position,
                    nonce,
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

    /// A batch with one `size`-byte binary value per row.
    fn blob_batch(rows: usize, size: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("blob", DataType::Binary, true),
        ]));
        let blobs: Vec<Option<Vec<u8>>> = (0..rows)
            .map(|i| (i % 4 != 3).then(|| vec![i as u8; size]))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(BinaryArray::from_iter(blobs)),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

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

    #[test]
    fn schema_mismatch_and_dictionaries() {
        let c = codec();
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let b = RecordBatch::try_new(
            other.clone(),
            vec![Arc::new(arrow_array::Int32Array::from(vec![1, 2]))],
        )
        .unwrap();
        match c.encode_batch(&b) {
            Err(CodecError::SchemaMismatch(why)) => assert!(why.contains("fields"), "{why}"),
            got => panic!("{got:?}"),
        }
        let oc = ArrowCodec::new(other).unwrap();
        let rec = oc.encode_batch(&b).unwrap();
        let entry = oc
            .encode_entry(&header(EntryKind::Data), &[rec])
            .unwrap()
            .to_bytes();
        assert!(matches!(
            c.decode_entry(entry),
            Err(CodecError::SchemaMismatch(_))
        ));
        let generation = oc.encode_generation(&GenerationHeader { epoch: 1, id: 0 }, &[]);
        let got = c.decode_generation(generation.unwrap());
        assert!(matches!(got, Err(CodecError::SchemaMismatch(_))));

        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let nested = DataType::List(Arc::new(Field::new("item", dict.clone(), true)));
        for t in [dict, nested] {
            let s = Arc::new(Schema::new(vec![Field::new("d", t, true)]));
            match ArrowCodec::new(s) {
                Err(CodecError::Encode(why)) => assert!(why.contains("dictionary"), "{why}"),
                got => panic!("{got:?}"),
            }
        }
    }

    #[test]
    fn schema_bytes_and_matching() {
        let c = codec();
        let mut md = arrow_schema::Metadata::new();
        md.insert("tidewal.kind", "data");
        md.insert("owner", "me");
        let with_md = Arc::new(Schema::new_with_metadata(schema().fields().clone(), md));
        let c2 = ArrowCodec::new(with_md).unwrap();
        assert_eq!(c2.schema_ref().metadata().len(), 1);
        assert!(c2.schema_ref().metadata().contains_key("owner"));
        assert_eq!(c.schema(), ArrowCodec::new(schema()).unwrap().schema());
        assert_eq!(c.name(), "arrow-ipc");
        assert!(c.schema_matches(&c.schema()));
        assert!(c.schema_matches(&c2.schema()));
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        assert!(!c.schema_matches(&ArrowCodec::new(other).unwrap().schema()));
        let s = c.schema();
        for bad in [&b""[..], b"garbage", &s[..s.len() / 2], &s[8..]] {
            assert!(!c.schema_matches(bad));
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

    #[test]
    fn index_parsing() {
        assert_eq!(parse_index("").unwrap(), vec![]);
        assert_eq!(parse_index("1:2,5:0").unwrap(), vec![(1, 2), (5, 0)]);
        for bad in [
            "1", "1:", ":1", "1:2,", "2:1,1:1", "01:1", "1:+2", "1:2,1:3",
        ] {
            assert!(parse_index(bad).is_err(), "{bad}");
        }
    }

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
