//! Which manifest versions GC keeps (PROTOCOL.md §4 "GC"), in one place: the writer's GC
//! deletes the versions below [`oldest_kept_version`], and anything else that must not
//! delete what a kept version references asks the same function.

pub use crate::policy::{held_count, point_of, policy_count, RetentionPolicy};

use alloc::collections::{BTreeMap, BTreeSet};
use core::time::Duration;

/// What a writer keeps: the newest `keep` versions, and every version committed less than
/// `keep_for` ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Versions kept by count (at least 1).
    pub keep: u32,
    /// Versions committed more recently than this are kept whatever their count.
    pub keep_for: Duration,
}

/// The oldest version kept among `known` (version -> its `committed_at`, `None` where it is
/// unknown: listed, never read, or written by a writer without a clock), at the wall clock
/// `wall_now` (unix ms; `None`: no clock, versions are kept by count only). Every known
/// version at or past it is kept; `None` only when `known` is empty.
///
/// A version is collected only when it is older than the newest `keep` and its commit time
/// is older than `keep_for`. A version's commit time is taken as that of the first known
/// version at or past it that records one: commit times never decrease along the versions a
/// writer builds on one another (each is floored at the one before), so that is an upper
/// bound, and a version whose bound is unknown is kept by count only. The kept versions are
/// a suffix: collecting stops at the first version kept.
pub fn oldest_kept_version(
    known: &BTreeMap<u64, Option<u64>>,
    retention: Retention,
    wall_now: Option<u64>,
) -> Option<u64> {
    let keep_for = retention.keep_for.as_millis().min(u128::from(u64::MAX)) as u64;
    let by_count = known.len().saturating_sub(retention.keep.max(1) as usize);
    let mut versions = known.iter().enumerate();
    versions
        .find(|&(i, (&version, _))| {
            if i >= by_count {
                return true;
            }
            let Some(now) = wall_now else {
                return false;
            };
            let bound = known.range(version..).find_map(|(_, &at)| at);
            bound.is_some_and(|at| at.saturating_add(keep_for) > now)
        })
        .map(|(_, (&version, _))| version)
}

/// The listed version whose commit time GC should read next (PROTOCOL.md §4 "GC"), or `None`
/// when no read would let it collect more. Past the newest `keep` versions, the oldest kept
/// one may be kept only because its time is unknown and the next known time is young: the
/// versions of that run (from the oldest kept up to the first with a known time) that were
/// never read (`unread`) are the candidates, and the middle one is chosen. Commit times never
/// decrease along versions, so a time read there bounds every version below it: an old one
/// frees the run's lower half, a young one narrows the search to it. A writer whose takeover
/// comes before its versions age (a takeover lists every version without its time) thus
/// finds where age stops collection in log2(n) reads instead of keeping every version.
pub fn version_to_read(
    known: &BTreeMap<u64, Option<u64>>,
    unread: &BTreeSet<u64>,
    retention: Retention,
    wall_now: Option<u64>,
) -> Option<u64> {
    let now = wall_now?;
    let oldest = oldest_kept_version(known, retention, Some(now))?;
    let by_count = known.len().saturating_sub(retention.keep.max(1) as usize);
    let run: alloc::vec::Vec<u64> = known
        .iter()
        .take(by_count)
        .skip_while(|&(&v, _)| v < oldest)
        .take_while(|&(_, at)| at.is_none())
        .map(|(&v, _)| v)
        .filter(|v| unread.contains(v))
        .collect();
    run.get(run.len() / 2).copied()
}

/// A drop that would pass a named consumer's committed position (PROTOCOL.md §4
/// "Retention"): it has not consumed the entries the drop would remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldBack {
    /// The consumer holding the drop back (the lowest committed position among them).
    pub name: alloc::string::String,
    /// Its committed position (0: it consumed nothing and holds everything).
    pub position: u64,
}

impl core::fmt::Display for HeldBack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "consumer {} has consumed only below position {}",
            self.name, self.position
        )
    }
}

/// Where a drop to `requested` may go, given each named consumer's committed position
/// (`(name, position)`, the newest version of each name): at most the lowest of them.
/// Refused with the lowest consumer when it lies below `requested`, unless `force`. Hosts use
/// it to refuse early, before anything is written; the guarantee rests on the writer's own
/// round (PROTOCOL.md §4 "Retention": the drop's intent is committed before its listing, so
/// a name claimed after that listing waits for the drop).
pub fn drop_point<'a>(
    requested: u64,
    consumers: impl IntoIterator<Item = (&'a str, u64)>,
    force: bool,
) -> Result<u64, HeldBack> {
    let lowest = consumers
        .into_iter()
        .min_by_key(|&(name, position)| (position, name));
    match lowest {
        Some((name, position)) if position < requested && !force => Err(HeldBack {
            name: name.into(),
            position,
        }),
        _ => Ok(requested),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(items: &[(u64, Option<u64>)]) -> BTreeMap<u64, Option<u64>> {
        items.iter().copied().collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_lowest_consumer_holds_a_drop_back_unless_forced() {
        let consumers = [("etl", 40), ("audit", 12), ("new", 50)];
        assert_eq!(drop_point(12, consumers, false), Ok(12));
        let held = drop_point(13, consumers, false).unwrap_err();
        assert_eq!((held.name.as_str(), held.position), ("audit", 12));
        assert_eq!(drop_point(13, consumers, true), Ok(13));
        // A consumer at 0 consumed nothing: it holds everything.
        assert!(drop_point(1, [("fresh", 0)], false).is_err());
        assert_eq!(drop_point(99, [], false), Ok(99));
    }

    #[test]
    fn without_a_clock_versions_are_kept_by_count() {
        let k = known(&[(1, Some(0)), (2, Some(0)), (3, None), (4, None)]);
        let r = Retention {
            keep: 2,
            keep_for: HOUR,
        };
        assert_eq!(oldest_kept_version(&k, r, None), Some(3));
        assert_eq!(oldest_kept_version(&BTreeMap::new(), r, None), None);
    }

    #[test]
    fn a_version_younger_than_the_age_is_kept_past_the_count() {
        let k = known(&[
            (1, Some(1_000)),
            (2, Some(5_000)),
            (3, Some(9_000)),
            (4, None),
        ]);
        let r = Retention {
            keep: 1,
            keep_for: Duration::from_millis(4_000),
        };
        // At 8 500: version 1 (1 000) is old, 2 (5 000) is not.
        assert_eq!(oldest_kept_version(&k, r, Some(8_500)), Some(2));
        // At 9 000 exactly, 5 000 + 4 000 is not younger: collected.
        assert_eq!(oldest_kept_version(&k, r, Some(9_000)), Some(3));
        // Much later only the count keeps anything.
        assert_eq!(oldest_kept_version(&k, r, Some(99_000)), Some(4));
    }

    #[test]
    fn an_unknown_time_is_bounded_by_the_next_known_one() {
        // 1 and 2 were listed, never read; 3 records a young time: 1 and 2 are no older.
        let k = known(&[(1, None), (2, None), (3, Some(9_000)), (4, Some(9_100))]);
        let r = Retention {
            keep: 1,
            keep_for: Duration::from_millis(1_000),
        };
        assert_eq!(oldest_kept_version(&k, r, Some(9_500)), Some(1));
        assert_eq!(oldest_kept_version(&k, r, Some(10_050)), Some(4));
        // No known time at or past a version: by count only.
        let k = known(&[(1, None), (2, None)]);
        assert_eq!(oldest_kept_version(&k, r, Some(0)), Some(2));
    }

    #[test]
    fn the_kept_versions_are_a_suffix() {
        // A young version below an old one (a skewed clock): collecting stops at it.
        let k = known(&[(1, Some(9_000)), (2, Some(1_000)), (3, Some(9_000))]);
        let r = Retention {
            keep: 1,
            keep_for: Duration::from_millis(1_000),
        };
        assert_eq!(oldest_kept_version(&k, r, Some(9_500)), Some(1));
    }
    #[test]
    fn the_time_to_read_halves_the_run_an_unknown_time_keeps() {
        // A takeover listed 1..=8 and read 8 (young): 1..=7 are kept only by that bound.
        let mut k = known(&[(8, Some(9_000))]);
        let mut unread = BTreeSet::new();
        for v in 1..=7 {
            k.insert(v, None);
            unread.insert(v);
        }
        let r = Retention {
            keep: 1,
            keep_for: Duration::from_millis(1_000),
        };
        let now = Some(9_500);
        assert_eq!(oldest_kept_version(&k, r, now), Some(1));
        assert_eq!(version_to_read(&k, &unread, r, now), Some(4));
        // 4 turns out old: everything up to it goes, the search goes on above it.
        k.insert(4, Some(1_000));
        unread.remove(&4);
        assert_eq!(oldest_kept_version(&k, r, now), Some(5));
        assert_eq!(version_to_read(&k, &unread, r, now), Some(6));
        // 6 turns out young: the search narrows to 5.
        k.insert(6, Some(9_000));
        unread.remove(&6);
        assert_eq!(version_to_read(&k, &unread, r, now), Some(5));
        // 5 read, no time (a writer without a clock): nothing left to learn.
        unread.remove(&5);
        assert_eq!(version_to_read(&k, &unread, r, now), None);
    }

    #[test]
    fn nothing_is_read_where_count_clock_or_a_known_time_decides() {
        let unread: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let k = known(&[(1, None), (2, None), (3, None)]);
        let r = Retention {
            keep: 3,
            keep_for: Duration::from_millis(1_000),
        };
        // All within the count.
        assert_eq!(version_to_read(&k, &unread, r, Some(9_000)), None);
        // Past the count with no known time at or past them: collected, nothing to read.
        let r1 = Retention { keep: 1, ..r };
        assert_eq!(oldest_kept_version(&k, r1, Some(9_000)), Some(3));
        assert_eq!(version_to_read(&k, &unread, r1, Some(9_000)), None);
        // A young known time keeps them: read one, unless there is no clock (by count only).
        let k = known(&[(1, None), (2, None), (3, Some(8_500))]);
        assert_eq!(version_to_read(&k, &unread, r1, Some(9_000)), Some(2));
        assert_eq!(version_to_read(&k, &unread, r1, None), None);
        // The oldest kept has a known, young time: reading above it frees nothing.
        let k = known(&[(1, Some(8_500)), (2, None), (3, None)]);
        assert_eq!(version_to_read(&k, &unread, r1, Some(9_000)), None);
    }
}
