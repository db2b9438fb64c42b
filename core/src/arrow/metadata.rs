//! The `tidewal.*` schema-metadata keys that carry an entry's or a generation's header: their
//! names, reading them out of a schema message, where their values sit in its bytes, and their
//! canonical spellings.

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use super::corrupt;
use crate::codec::{CodecError, EntryHeader};

pub(super) const PREFIX: &str = "tidewal.";
pub(super) const FORMAT: &str = "tidewal.format";
pub(super) const KIND: &str = "tidewal.kind";
pub(super) const EPOCH: &str = "tidewal.epoch";
pub(super) const POSITION: &str = "tidewal.position";
pub(super) const NONCE: &str = "tidewal.nonce";
pub(super) const WINDOW: &str = "tidewal.window";
pub(super) const CRC: &str = "tidewal.crc32c";
pub(super) const GENERATION: &str = "tidewal.generation";
pub(super) const POSITIONS: &str = "tidewal.positions";
pub(super) const TIMES: &str = "tidewal.times";
pub(super) const TIME: &str = "tidewal.time";
pub(super) const BATCH_CRCS: &str = "tidewal.batch_crc32c";
pub(super) const CRC_PLACEHOLDER: &[u8; 8] = b"00000000";

/// The `tidewal.*` key/value pairs of a schema message, borrowed from the buffer.
pub(super) fn tidewal_metadata<'a>(
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
pub(super) fn lookup<'a>(md: &[(&'a str, &'a str)], key: &str) -> Result<&'a str, CodecError> {
    md.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| corrupt(format!("missing {key}")))
}

/// Where the value of `key` sits in `buf`, the message its metadata `md` was read from.
pub(super) fn value_range(
    buf: &[u8],
    md: &[(&str, &str)],
    key: &str,
) -> Result<Range<usize>, CodecError> {
    let value = lookup(md, key)?;
    // The value borrows from `buf`, so its address gives its offset (safe pointer arithmetic).
    let start = (value.as_ptr() as usize)
        .checked_sub(buf.as_ptr() as usize)
        .filter(|&s| s + value.len() <= buf.len())
        .ok_or_else(|| corrupt(format!("malformed {key}")))?;
    Ok(start..start + value.len())
}

/// Where the `tidewal.crc32c` value sits in `buf`: an 8-byte range.
pub(super) fn crc_range(buf: &[u8], md: &[(&str, &str)]) -> Result<Range<usize>, CodecError> {
    let range = value_range(buf, md, CRC)?;
    if range.len() != 8 {
        return Err(corrupt(format!("malformed {CRC}")));
    }
    Ok(range)
}

/// A data entry's schema message for one writer and position width, with the ranges of the
/// position's digits and of the checksum placeholder.
#[derive(Debug)]
pub(super) struct HeadTemplate {
    pub(super) epoch: u64,
    pub(super) nonce: u64,
    pub(super) head: Vec<u8>,
    pub(super) position: Range<usize>,
    /// Where the time's digits are, if the template's entry has a time.
    pub(super) time: Option<Range<usize>>,
    pub(super) crc: Range<usize>,
}

impl HeadTemplate {
    /// The message for a data entry of `header`, if this template is for its writer and its
    /// position (in decimal, `digits`) and its time (`time`, decimal) have as many digits.
    pub(super) fn patch(
        &self,
        header: &EntryHeader,
        digits: &str,
        time: Option<&str>,
    ) -> Option<Vec<u8>> {
        let time_fits = match (&self.time, time) {
            (Some(range), Some(t)) => range.len() == t.len(),
            (None, None) => true,
            _ => false,
        };
        let fits = header.epoch == self.epoch
            && header.nonce == self.nonce
            && digits.len() == self.position.len()
            && time_fits;
        fits.then(|| {
            let mut head = self.head.clone();
            head[self.position.clone()].copy_from_slice(digits.as_bytes());
            if let (Some(range), Some(t)) = (&self.time, time) {
                head[range.clone()].copy_from_slice(t.as_bytes());
            }
            head
        })
    }
}

/// Canonical decimal (what the encoder writes), so no two spellings decode alike.
pub(super) fn parse_dec(key: &str, s: &str) -> Result<u64, CodecError> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    canonical
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| corrupt(format!("malformed {key}: {s:?}")))
}

pub(super) fn parse_nonce(s: &str) -> Result<u64, CodecError> {
    let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .ok_or_else(|| corrupt(format!("malformed {NONCE}: {s:?}")))
}

/// Parses a generation's `tidewal.positions` index: `position:batches,...`.
pub(super) fn parse_index(s: &str) -> Result<Vec<(u64, usize)>, CodecError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

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
}
