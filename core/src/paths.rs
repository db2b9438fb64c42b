//! Object names under a log's prefix (PROTOCOL.md §1).

use alloc::format;
use alloc::string::String;

/// The names of one log's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The prefix with a trailing `/`, or empty.
    base: String,
}

impl Paths {
    /// Names under `prefix` (leading and trailing `/` are ignored).
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        let base = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Paths { base }
    }

    /// The folder that holds manifest versions.
    pub fn manifest_dir(&self) -> String {
        format!("{}manifest/", self.base)
    }

    /// Manifest version `v`.
    pub fn manifest(&self, version: u64) -> String {
        format!("{}manifest/{version:020}.json", self.base)
    }

    /// The version named by a manifest path, if it is one.
    pub fn manifest_version(&self, path: &str) -> Option<u64> {
        let name = path.strip_prefix(&self.manifest_dir())?;
        twenty_digits(name.strip_suffix(".json")?)
    }

    /// The folder that holds WAL slots.
    pub fn wal_dir(&self) -> String {
        format!("{}wal/", self.base)
    }

    /// WAL slot at `position`.
    pub fn wal(&self, position: u64) -> String {
        format!("{}wal/{position:020}.arrows", self.base)
    }

    /// The position named by a WAL slot path, if it is one.
    pub fn wal_position(&self, path: &str) -> Option<u64> {
        let name = path.strip_prefix(&self.wal_dir())?;
        twenty_digits(name.strip_suffix(".arrows")?)
    }

    /// The folder that holds fence intents (PROTOCOL.md §1, §4 "Open").
    pub fn fences_dir(&self) -> String {
        format!("{}fences/", self.base)
    }

    /// The intent of the fence a writer of `epoch` is about to put at `position`.
    pub fn fence_intent(&self, position: u64, epoch: u64) -> String {
        format!("{}fences/{position:020}-{epoch:010}", self.base)
    }

    /// A LIST bound below every intent at or past `position`.
    pub fn fence_intents_from(&self, position: u64) -> String {
        format!("{}fences/{position:020}", self.base)
    }

    /// The position and epoch named by a fence intent path, if it is one.
    pub fn fence_intent_parts(&self, path: &str) -> Option<(u64, u64)> {
        let name = path.strip_prefix(&self.fences_dir())?;
        let (position, epoch) = name.split_once('-')?;
        if epoch.len() != 10 || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((twenty_digits(position)?, epoch.parse().ok()?))
    }

    /// Generation `id` flushed by a writer of `epoch`.
    pub fn generation(&self, epoch: u64, id: u64) -> String {
        format!("{}gen/{epoch:010}-{id:010}.arrow", self.base)
    }

    /// The generation a writer of `epoch` merged from the run of generation records with ids
    /// `first ..= last` (PROTOCOL.md §1, §4 "Compaction").
    pub fn merged_generation(&self, epoch: u64, first: u64, last: u64) -> String {
        format!("{}gen/{epoch:010}-{first:010}-{last:010}.arrow", self.base)
    }

    /// A generation a writer of `epoch` wrote for the restore planned as manifest version
    /// `version`, recorded with id `id`: a straddling generation rewritten, or an older
    /// version's generation copied (PROTOCOL.md §1, §4 "Restore").
    pub fn restored_generation(&self, epoch: u64, id: u64, version: u64) -> String {
        format!("{}gen/{epoch:010}-{id:010}-r{version:020}.arrow", self.base)
    }
}

/// A number written as the 20 digits object names use (so names sort numerically).
fn twenty_digits(digits: &str) -> Option<u64> {
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_numerically_and_parse_back() {
        let p = Paths::new("/logs/a/");
        assert_eq!(p.manifest(7), "logs/a/manifest/00000000000000000007.json");
        assert_eq!(p.manifest_version(&p.manifest(u64::MAX)), Some(u64::MAX));
        assert_eq!(p.manifest_version("logs/a/manifest/7.json"), None);
        assert_eq!(
            p.manifest_version("logs/a/manifest/0000000000000000000x.json"),
            None
        );
        assert!(p.wal(9) < p.wal(10));
        assert_eq!(p.wal_position(&p.wal(12)), Some(12));
        assert_eq!(p.wal_position("logs/a/wal/12.arrows"), None);
        assert_eq!(
            p.wal_position("logs/b/wal/00000000000000000012.arrows"),
            None
        );
        assert_eq!(Paths::new("").wal(1), "wal/00000000000000000001.arrows");
        assert_eq!(p.generation(2, 3), "logs/a/gen/0000000002-0000000003.arrow");
        assert_eq!(
            p.merged_generation(2, 3, 9),
            "logs/a/gen/0000000002-0000000003-0000000009.arrow"
        );
        assert_eq!(
            p.restored_generation(2, 3, 9),
            "logs/a/gen/0000000002-0000000003-r00000000000000000009.arrow"
        );
        let intent = p.fence_intent(12, 3);
        assert_eq!(intent, "logs/a/fences/00000000000000000012-0000000003");
        assert_eq!(p.fence_intent_parts(&intent), Some((12, 3)));
        assert!(p.fence_intents_from(12) < intent && intent < p.fence_intents_from(13));
        assert!(p.fence_intent(9, 99) < p.fence_intent(10, 1));
        assert_eq!(p.fence_intent_parts("logs/a/fences/12-3"), None);
        assert_eq!(
            p.fence_intent_parts("logs/a/fences/00000000000000000012-000000003x"),
            None
        );
    }
}
