//! CRC-32C (Castagnoli), slicing-by-8.
//!
//! Hand-written because the core's dependency list is fixed (bytes, serde, serde_json, Arrow);
//! the tables are built at compile time. CRC-32 detects every error burst of up to 32 bits, so
//! any single flipped byte is always caught.

const POLY: u32 = 0x82F6_3B78; // reflected Castagnoli polynomial

const TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// A running CRC-32C.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A fresh checksum.
    pub const fn new() -> Self {
        Crc32c(!0)
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            crc = TABLES[7][(lo & 0xFF) as usize]
                ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
                ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
                ^ TABLES[4][(lo >> 24) as usize]
                ^ TABLES[3][c[4] as usize]
                ^ TABLES[2][c[5] as usize]
                ^ TABLES[1][c[6] as usize]
                ^ TABLES[0][c[7] as usize];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ TABLES[0][((crc ^ b as u32) & 0xFF) as usize];
        }
        self.0 = crc;
    }

    /// The checksum of everything fed so far.
    pub const fn finish(&self) -> u32 {
        !self.0
    }
}

/// Extends `crc` (the CRC-32C of some prefix) with `data`: the CRC-32C of prefix ++ data.
/// Codecs take a function of this shape so that a host can plug in a hardware one.
pub type Crc32cAppend = fn(u32, &[u8]) -> u32;

/// The software [`Crc32cAppend`].
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let mut c = Crc32c(!crc);
    c.update(data);
    c.finish()
}

/// CRC-32C of one buffer.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(data);
    c.finish()
}

/// `v` as 8 lowercase hex digits.
pub fn to_hex8(v: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        let nibble = (v >> (28 - 4 * i)) & 0xF;
        *o = b"0123456789abcdef"[nibble as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 appendix B.4 and the classic check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: alloc::vec::Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
    }

    #[test]
    fn incremental_equals_oneshot() {
        let data: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut c = Crc32c::new();
        c.update(&data[..13]);
        c.update(&data[13..500]);
        c.update(&data[500..]);
        assert_eq!(c.finish(), crc32c(&data));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| (i * 31) as u8).collect();
        let good = crc32c(&data);
        for i in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xFF, 0x5A] {
                let mut bad = data.clone();
                bad[i] ^= flip;
                assert_ne!(crc32c(&bad), good, "flip {flip:#x} at {i} undetected");
            }
        }
    }

    #[test]
    fn append_equals_oneshot() {
        let data: alloc::vec::Vec<u8> = (0..777u32).map(|i| (i * 13) as u8).collect();
        let split = crc32c_append(crc32c_append(0, &data[..300]), &data[300..]);
        assert_eq!(split, crc32c(&data));
        assert_eq!(crc32c_append(0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn hex_digits() {
        assert_eq!(&to_hex8(0xdead_beef), b"deadbeef");
        assert_eq!(&to_hex8(1), b"00000001");
    }
}
