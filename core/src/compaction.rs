//! The compaction policy (PROTOCOL.md §4 "Compaction"): which run of adjacent generations
//! the owner merges next. Pure functions of the generations' sizes; the writer does the I/O
//! (`writer/compact.rs`).

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;
use core::time::Duration;

use crate::error::ConfigError;

/// When and how the owner merges small generations (size-tiered).
///
/// Memory: a compaction holds its inputs' bytes and the merged file's while it encodes,
/// about twice the run's size: at most `2 * target_bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    /// `false`: never compact (as `None` in [`crate::WriterConfig::compaction`]).
    pub enabled: bool,
    /// Generations of one tier merged at once (at least 2); also the ratio between tiers.
    pub fanout: u32,
    /// Every generation smaller than this is tier 0 (bytes, at least 1).
    pub tier_base: u64,
    /// A generation at or above this size is never merged, and no merge grows past it.
    pub target_bytes: u64,
    /// How long a replaced file stays after its retirement before it may be deleted (on the
    /// writer's clock), so a reader that just read an older manifest rarely meets it gone.
    pub grace: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: true,
            fanout: 4,
            tier_base: 1 << 20,
            target_bytes: 256 << 20,
            grace: Duration::from_secs(60),
        }
    }
}

impl CompactionConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fanout < 2 {
            let fanout = self.fanout;
            return Err(ConfigError(format!(
                "compaction.fanout is {fanout}: allowed at least 2"
            )));
        }
        if self.tier_base == 0 || self.target_bytes == 0 {
            let (base, target) = (self.tier_base, self.target_bytes);
            return Err(ConfigError(format!(
                "compaction.tier_base is {base}, target_bytes {target}: both must be at least 1"
            )));
        }
        Ok(())
    }

    /// `floor(log_fanout(max(bytes, base) / base))`: 0 below `fanout * base`.
    pub fn tier(&self, bytes: u64) -> u32 {
        let fanout = u64::from(self.fanout);
        let mut tier = 0;
        let mut edge = self.tier_base.saturating_mul(fanout);
        while bytes >= edge && edge < u64::MAX {
            tier += 1;
            edge = edge.saturating_mul(fanout);
        }
        tier
    }

    /// Whether a generation of `bytes` may still be merged.
    fn mergeable(&self, bytes: u64) -> bool {
        bytes < self.target_bytes
    }

    /// The top tier: generations of at least `target / fanout` bytes (below the target).
    /// `fanout` of them would pass the target, so they merge in smaller runs.
    pub fn top_tier(&self) -> u32 {
        self.tier(self.target_bytes / u64::from(self.fanout))
    }

    /// The tier each generation counts in: its own, but never above an older one's. So
    /// tiers never rise from the oldest generation to the newest, and a small generation
    /// left between larger ones (a large flush after small ones) is merged with its
    /// neighbours instead of staying behind for good.
    pub fn tiers(&self, sizes: &[u64]) -> Vec<u32> {
        let mut floor = u32::MAX;
        sizes
            .iter()
            .map(|&b| {
                floor = floor.min(self.tier(b));
                floor
            })
            .collect()
    }

    /// The policy: the oldest run of `fanout` adjacent generations of one tier ([`tiers`])
    /// below the top tier, or of at least two of the top tier, each below the target, as
    /// many as fit the target. Generations at or above the target are never merged.
    ///
    /// [`tiers`]: CompactionConfig::tiers
    pub fn pick(&self, sizes: &[u64]) -> Option<Range<usize>> {
        let (n, top) = (self.fanout as usize, self.top_tier());
        let tiers = self.tiers(sizes);
        (0..sizes.len()).find_map(|start| {
            let tier = tiers[start].min(top);
            let mut total = 0;
            let len = (start..sizes.len())
                .take_while(|&i| {
                    total += sizes[i];
                    self.mergeable(sizes[i])
                        && tiers[i].min(top) == tier
                        && total <= self.target_bytes
                })
                .take(if tier < top { n } else { usize::MAX })
                .count();
            let enough = if tier < top { len == n } else { len >= 2 };
            enough.then_some(start..start + len)
        })
    }

    /// A full pass's pick: the oldest run of at least two adjacent generations below the
    /// target whose total fits it, as long as it can grow.
    pub fn pick_full(&self, sizes: &[u64]) -> Option<Range<usize>> {
        let mut start = 0;
        while start + 1 < sizes.len() {
            let mut end = start;
            let mut total = 0u64;
            while end < sizes.len()
                && self.mergeable(sizes[end])
                && total + sizes[end] <= self.target_bytes
            {
                total += sizes[end];
                end += 1;
            }
            if end - start >= 2 {
                return Some(start..end);
            }
            start += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    #[test]
    fn tiers_are_powers_of_the_fanout_above_the_base() {
        let c = CompactionConfig::default();
        assert_eq!(c.tier(0), 0);
        assert_eq!(c.tier(4 * MIB - 1), 0);
        assert_eq!(c.tier(4 * MIB), 1);
        assert_eq!(c.tier(16 * MIB - 1), 1);
        assert_eq!(c.tier(16 * MIB), 2);
        assert_eq!(c.tier(u64::MAX), c.tier(u64::MAX - 1));
    }

    #[test]
    fn picks_the_oldest_run_of_one_tier_within_the_target() {
        let c = CompactionConfig::default();
        assert_eq!(c.top_tier(), 3);
        // A tier-1 one, then three tier-0 ones: no run of four.
        assert_eq!(c.pick(&[5 * MIB, KIB, KIB, KIB]), None);
        assert_eq!(c.pick(&[5 * MIB, KIB, KIB, KIB, KIB, KIB]), Some(1..5));
        // A larger one after small ones counts in their tier: nothing stays behind it.
        assert_eq!(c.tiers(&[300 * MIB, KIB, 5 * MIB, 20 * MIB]), [4, 0, 0, 0]);
        assert_eq!(c.pick(&[300 * MIB, KIB, KIB, KIB, 5 * MIB]), Some(1..5));
        // Top-tier ones merge as many as fit; those at the target never.
        assert_eq!(c.pick(&[100 * MIB, 100 * MIB, 100 * MIB]), Some(0..2));
        assert_eq!(c.pick(&[200 * MIB, 100 * MIB, 100 * MIB]), Some(1..3));
        assert_eq!(c.pick(&[256 * MIB, 256 * MIB, 300 * MIB]), None);
        let small = CompactionConfig {
            target_bytes: 10 * MIB,
            ..c.clone()
        };
        assert_eq!(small.pick(&[10 * MIB; 4]), None);
        assert_eq!(
            small.pick_full(&[3 * MIB, 3 * MIB, 3 * MIB, 3 * MIB]),
            Some(0..3)
        );
        assert_eq!(small.pick_full(&[10 * MIB, KIB, 10 * MIB, KIB]), None);
        assert_eq!(small.pick_full(&[10 * MIB, KIB, KIB, 10 * MIB]), Some(1..3));
    }

    /// Replays `flushes` flushes of the given sizes through the policy (each merge's size the
    /// sum of its inputs'), merging whatever it picks after each flush; returns the most
    /// generations below the top tier seen live at once, and the generations at the end.
    fn drive(
        c: &CompactionConfig,
        flushes: usize,
        size: impl Fn(usize) -> u64,
    ) -> (usize, Vec<u64>, u64) {
        let mut live: Vec<u64> = Vec::new();
        let (mut worst, mut rewritten) = (0, 0);
        for i in 0..flushes {
            live.push(size(i));
            while let Some(run) = c.pick(&live) {
                let merged = live[run.clone()].iter().sum();
                rewritten += merged;
                live.splice(run, [merged]);
            }
            let top = c.target_bytes / u64::from(c.fanout);
            let small = live.iter().filter(|&&b| b < top).count();
            worst = worst.max(small);
        }
        (worst, live, rewritten)
    }

    #[test]
    fn live_generations_stay_logarithmic() {
        let c = CompactionConfig::default();
        // Below the top tier (64 MiB): tiers 0..3, fewer than `fanout` of a tier in a row,
        // plus the one a flush just added. Top-tier ones merge while two fit the target, so
        // the rest each hold more than a target's half with its neighbour: their number is
        // bounded by the data, like the generations at the target.
        let top = c.target_bytes / u64::from(c.fanout);
        let bound = c.top_tier() as usize * (c.fanout as usize - 1) + 1;
        for (what, size) in [
            ("1 KiB flushes", &(|_| KIB) as &dyn Fn(usize) -> u64),
            ("64 KiB..2 MiB flushes", &|i| {
                64 * KIB + (i as u64 * 7919 % 32) * 64 * KIB
            }),
            ("1 KiB..4 MiB flushes", &|i| {
                KIB + (i as u64 * 104_729 % 4096) * KIB
            }),
        ] {
            let n = 100_000;
            let (worst, live, rewritten) = drive(&c, n, size);
            let total: u64 = live.iter().sum();
            let below_top = live.iter().filter(|&&b| b < top).count();
            let settled = live.len() - below_top;
            std::println!(
                "{what}: {n} flushes ({} MiB), at most {worst} live generations below the \
                 top tier at once (bound {bound}); at the end {} live: {below_top} below the \
                 top tier, {settled} at or above it; each byte rewritten {:.1} times",
                total >> 20,
                live.len(),
                rewritten as f64 / total as f64
            );
            assert!(worst <= bound, "{what}: {worst} live below the top tier");
            // No two adjacent top-tier generations below the target that would fit it.
            for pair in live.windows(2) {
                let both_top = pair.iter().all(|&b| b >= top && b < c.target_bytes);
                assert!(
                    !both_top || pair[0] + pair[1] > c.target_bytes,
                    "{what}: {pair:?}"
                );
            }
            assert!(
                settled as u64 <= 2 * total / c.target_bytes + 1,
                "{what}: {settled}"
            );
        }
    }
}
