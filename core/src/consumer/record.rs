//! A consumer version object: names, encoding and the rule on consumer names
//! (PROTOCOL.md §5, "Named consumers").

use alloc::format;
use alloc::string::String;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::FatalError;
use crate::manifest::{frame, hex_u64, unframe, FORMAT, LIMIT};
use crate::paths::Paths;

use super::ConsumerError;

/// The longest consumer name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a consumer name: 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9._-]`, neither `.` nor
/// `..`, so it is exactly one path segment and no two names share a folder.
pub fn validate_name(name: &str) -> Result<(), ConsumerError> {
    let bad = |reason: &str| {
        Err(ConsumerError::InvalidName {
            name: name.into(),
            reason: reason.into(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 64 bytes");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not names");
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => bad(&format!("{c:?} is not one of A-Z a-z 0-9 . _ -")),
        None => Ok(()),
    }
}

/// The names of one log's consumer objects.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerPaths {
    /// `P/consumers/`.
    root: String,
}

impl ConsumerPaths {
    pub(crate) fn new(paths: &Paths) -> Self {
        // The manifest folder's parent is the log's prefix.
        let dir = paths.manifest_dir();
        let base = dir.strip_suffix("manifest/").unwrap_or_default();
        ConsumerPaths {
            root: format!("{base}consumers/"),
        }
    }

    /// The folder of every consumer: `P/consumers/`.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The folder of one name's versions.
    pub(crate) fn dir(&self, name: &str) -> String {
        format!("{}{name}/", self.root)
    }

    /// Version `v` of `name`.
    pub(crate) fn version(&self, name: &str, version: u64) -> String {
        format!("{}{name}/{version:020}.json", self.root)
    }

    /// The (name, version) a path under [`Self::root`] names, if it is a consumer version.
    pub(crate) fn parse<'a>(&self, path: &'a str) -> Option<(&'a str, u64)> {
        let rest = path.strip_prefix(&self.root)?;
        let (name, file) = rest.split_once('/')?;
        let digits = file.strip_suffix(".json")?;
        if validate_name(name).is_err()
            || digits.len() != 20
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some((name, digits.parse().ok()?))
    }
}

/// One version of a consumer's committed position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerVersion {
    /// Protocol format.
    pub format: u32,
    /// The consumer's name (equals the folder's).
    pub name: String,
    /// Version; equals the number in the object name.
    pub version: u64,
    /// Every entry below this position was consumed.
    pub position: u64,
    /// The nonce of the instance that wrote this version.
    #[serde(with = "hex_u64")]
    pub nonce: u64,
    /// The version at which that instance claimed the name (its claim: `claim == version`).
    pub claim: u64,
}

impl ConsumerVersion {
    /// Checksummed JSON, framed like a manifest.
    pub fn encode(&self) -> Bytes {
        frame(self)
    }

    /// Decodes and verifies the object at `path`, which must be version `version` of `name`.
    pub fn decode(path: &str, name: &str, version: u64, bytes: &[u8]) -> Result<Self, FatalError> {
        let corrupt = |reason: String| FatalError::Corrupt {
            path: path.into(),
            reason,
        };
        let json = unframe(bytes).map_err(corrupt)?;
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
        }
        let probe: Probe =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("bad JSON: {e}")))?;
        if probe.format != FORMAT {
            return Err(FatalError::UnsupportedFormat {
                path: path.into(),
                format: probe.format,
            });
        }
        let v: ConsumerVersion =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("bad JSON: {e}")))?;
        if v.name != name || v.version != version {
            return Err(corrupt(format!(
                "holds version {} of '{}'",
                v.version, v.name
            )));
        }
        if v.position >= LIMIT || v.claim > v.version || v.version == 0 {
            return Err(corrupt("a counter is out of range".into()));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConsumerVersion {
        ConsumerVersion {
            format: FORMAT,
            name: "etl".into(),
            version: 5,
            position: 120,
            nonce: 0x00ff_00ff_00ff_00ff,
            claim: 4,
        }
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_refused() {
        let v = sample();
        let bytes = v.encode();
        assert!(bytes.starts_with(b"{\"crc32c\":\""));
        assert_eq!(ConsumerVersion::decode("x", "etl", 5, &bytes), Ok(v));
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x20;
            assert!(ConsumerVersion::decode("x", "etl", 5, &bad).is_err(), "{i}");
        }
        // Another name's or version's object is corrupt where it lies.
        assert!(matches!(
            ConsumerVersion::decode("x", "etl", 6, &bytes),
            Err(FatalError::Corrupt { .. })
        ));
        let mut future = sample();
        future.format = 2;
        assert_eq!(
            ConsumerVersion::decode("x", "etl", 5, &future.encode()),
            Err(FatalError::UnsupportedFormat {
                path: "x".into(),
                format: 2
            })
        );
    }

    #[test]
    fn names_are_one_safe_segment() {
        for good in ["etl", "a", "A.b_c-9", &"x".repeat(64)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a/b", ".", "..", "a b", "é", &"x".repeat(65), "a\\b"] {
            match validate_name(bad) {
                Err(ConsumerError::InvalidName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn paths_parse_back_and_names_list_apart() {
        let p = ConsumerPaths::new(&Paths::new("logs/a"));
        assert_eq!(p.root(), "logs/a/consumers/");
        let path = p.version("etl", 7);
        assert_eq!(path, "logs/a/consumers/etl/00000000000000000007.json");
        assert_eq!(p.parse(&path), Some(("etl", 7)));
        assert_eq!(p.parse("logs/a/consumers/etl/7.json"), None);
        assert_eq!(
            p.parse("logs/a/consumers/a b/00000000000000000007.json"),
            None
        );
        assert!(!p.version("etl-b", 1).starts_with(&p.dir("etl")));
        assert_eq!(ConsumerPaths::new(&Paths::new("")).root(), "consumers/");
    }
}
