//! IPC message framing: the continuation marker, the metadata length prefix, the end-of-stream
//! marker, and bounds-checked reads of the framed messages a stream or file is made of.

use alloc::format;
use core::ops::Range;

use arrow_ipc::{root_as_message, Message, MetadataVersion};

use super::corrupt;
use crate::codec::CodecError;

pub(super) const CONTINUATION: [u8; 4] = [0xFF; 4];
pub(super) const EOS: [u8; 8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];

/// The length of a framed message's prefix and metadata, once `buf` holds the 8-byte prefix.
pub(super) fn header_len(buf: &[u8]) -> usize {
    match buf.get(4..8) {
        Some(&[a, b, c, d]) => 8 + usize::try_from(i32::from_le_bytes([a, b, c, d])).unwrap_or(0),
        _ => usize::MAX,
    }
}

/// One framed IPC message inside a buffer.
pub(super) struct Framed<'a> {
    pub(super) msg: Message<'a>,
    /// The message body (after the padded flatbuffer); `end` is where the next message starts.
    pub(super) body: Range<usize>,
}

/// Reads the framed message at `at`, bounds-checked; `None` is the end-of-stream marker.
pub(super) fn read_message(buf: &[u8], at: usize) -> Result<Option<Framed<'_>>, CodecError> {
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
pub(super) fn batch_header<'a>(
    m: &Framed<'a>,
) -> Result<(arrow_ipc::RecordBatch<'a>, u64), CodecError> {
    let rb = m
        .msg
        .header_as_record_batch()
        .ok_or_else(|| corrupt("not a record batch message"))?;
    // The buffer checks (buffers) follow V5's layout; V4 unions differ.
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
pub(super) fn batch_message(
    buf: &[u8],
) -> Result<(Framed<'_>, arrow_ipc::RecordBatch<'_>, u64), CodecError> {
    batch_message_within(buf, buf.len())
}

/// [`batch_message`] of a message `total` bytes long whose metadata is in `buf`.
pub(super) fn batch_message_within(
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
