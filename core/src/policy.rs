//! The automatic retention policy (PROTOCOL.md §4 "Automatic retention"): which leading
//! generations it drops, and how far a consumer floor lets it go. Pure functions; the
//! writer's round (`writer/retain.rs`) drives them.

use core::time::Duration;

use crate::error::ConfigError;
use crate::manifest::Manifest;

/// What the log's owner drops on its own, after its commits. Off unless set
/// ([`crate::WriterConfig::retention`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep entries younger than this by the writer's wall clock: a leading generation goes
    /// once every entry of it has a time and its newest is older than this. `None`: no age
    /// rule. Needs a wall clock (`unix_ms_at_origin`); without one, nothing goes by age.
    pub keep_for: Option<Duration>,
    /// Keep at most this many bytes in generations: the oldest go while the rest still hold
    /// more. `None`: no size rule.
    pub keep_bytes: Option<u64>,
    /// At most one round per this much of the host's clock.
    pub interval: Duration,
}

impl RetentionPolicy {
    /// The default `interval`: 30 s.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

    /// Checks the settings (each rule, if set, positive and in range; at least one set).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |why: &str| Err(ConfigError(why.into()));
        if self.keep_for.is_none() && self.keep_bytes.is_none() {
            return fail("retention needs keep_for or keep_bytes");
        }
        if let Some(age) = self.keep_for {
            if age.as_millis() == 0 || age.as_millis() > u128::from(u64::MAX / 2) {
                return fail("retention.keep_for must be between 1 ms and 2^63 ms");
            }
        }
        if self.keep_bytes == Some(0) {
            return fail("retention.keep_bytes must be positive");
        }
        if self.interval.is_zero() || self.interval.as_millis() > u128::from(u64::MAX / 2) {
            return fail("retention.interval must be between 1 ms and 2^63 ms");
        }
        Ok(())
    }
}

/// How many leading generations of `m` the policy drops at the wall clock `wall_now` (unix
/// ms, `None`: no clock). Each rule drops a prefix; the longer one wins.
pub fn policy_count(m: &Manifest, policy: &RetentionPolicy, wall_now: Option<u64>) -> usize {
    let by_age = match (policy.keep_for, wall_now) {
        (Some(age), Some(now)) => {
            let age = age.as_millis() as u64;
            m.generations
                .iter()
                .take_while(|g| {
                    g.untimed == 0 && g.max_time.is_some_and(|t| t.saturating_add(age) < now)
                })
                .count()
        }
        _ => 0,
    };
    let by_bytes = policy.keep_bytes.map_or(0, |keep| {
        let mut rest: u64 = m.generations.iter().map(|g| g.bytes).sum();
        m.generations
            .iter()
            .take_while(|g| {
                let over = rest > keep;
                rest -= g.bytes;
                over
            })
            .count()
    });
    by_age.max(by_bytes)
}

/// How many of the first `count` generations of `m` lie wholly below `floor` (the lowest
/// committed position of a named consumer): the ones a drop may take without passing it.
pub fn held_count(m: &Manifest, count: usize, floor: Option<u64>) -> usize {
    m.generations
        .iter()
        .take(count)
        .take_while(|g| floor.is_none_or(|f| g.last_position < f))
        .count()
}

/// The drop point of the first `count` generations of `m`: one past the last one's last
/// position, never below `dropped_before` (`None` when `count` is 0 or it would not move).
pub fn point_of(m: &Manifest, count: usize) -> Option<u64> {
    let last = m.generations.get(count.checked_sub(1)?)?;
    Some(last.last_position + 1).filter(|&p| p > m.dropped_before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::GenerationRecord;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn gen(first: u64, last: u64, bytes: u64, max_time: Option<u64>) -> GenerationRecord {
        GenerationRecord {
            id: first,
            path: String::new(),
            first_position: first,
            last_position: last,
            entries: last - first + 1,
            records: 1,
            rows: 1,
            bytes,
            crc32c: String::new(),
            index: None,
            min_time: max_time,
            max_time,
            untimed: u64::from(max_time.is_none()),
        }
    }

    fn manifest(gens: Vec<GenerationRecord>) -> Manifest {
        Manifest {
            format: crate::manifest::FORMAT,
            codec: "raw".into(),
            version: 1,
            epoch: 1,
            writer_nonce: 1,
            fence_window: 4,
            replay_cursor: gens.last().map_or(0, |g| g.last_position + 1),
            cursor_epoch: 0,
            wal_only: false,
            schema: "00".into(),
            next_generation: gens.len() as u64,
            generations: gens,
            dropped_before: 0,
            committed_at: None,
            retired: Vec::new(),
            lease_ms: None,
            lease_epoch: None,
            restored: None,
            time_floor: None,
            dropping: None,
        }
    }

    fn policy(keep_for: Option<u64>, keep_bytes: Option<u64>) -> RetentionPolicy {
        RetentionPolicy {
            keep_for: keep_for.map(Duration::from_millis),
            keep_bytes,
            interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn bytes_drop_the_oldest_while_the_rest_hold_more() {
        let m = manifest(alloc::vec![
            gen(0, 9, 100, None),
            gen(10, 19, 100, None),
            gen(25, 30, 100, None),
        ]);
        assert_eq!(policy_count(&m, &policy(None, Some(300)), None), 0);
        assert_eq!(policy_count(&m, &policy(None, Some(299)), None), 1);
        assert_eq!(policy_count(&m, &policy(None, Some(200)), None), 1);
        assert_eq!(policy_count(&m, &policy(None, Some(150)), None), 2);
        // A generation larger than the bound goes whole once it is the oldest.
        assert_eq!(policy_count(&m, &policy(None, Some(50)), None), 3);
        assert_eq!(point_of(&m, 2), Some(20));
        assert_eq!(point_of(&m, 0), None);
    }

    #[test]
    fn age_stops_at_an_untimed_or_young_generation_and_needs_a_clock() {
        let m = manifest(alloc::vec![
            gen(0, 9, 1, Some(1_000)),
            gen(10, 19, 1, Some(2_000)),
            gen(20, 29, 1, None),
            gen(30, 39, 1, Some(1_500)),
        ]);
        let p = policy(Some(500), None);
        // 2 000 + 500 is not before 2 500: kept.
        assert_eq!(policy_count(&m, &p, Some(2_500)), 1);
        assert_eq!(policy_count(&m, &p, Some(2_501)), 2);
        // The untimed one stops it, however old the ones after it.
        assert_eq!(policy_count(&m, &p, Some(99_999)), 2);
        assert_eq!(policy_count(&m, &p, None), 0);
        // A generation goes by its newest entry, not its oldest.
        let mut young = m.clone();
        young.generations[1].min_time = Some(1_000);
        assert_eq!(policy_count(&young, &p, Some(2_400)), 1);
        // Either rule: the longer prefix.
        assert_eq!(
            policy_count(&m, &policy(Some(500), Some(1)), Some(2_501)),
            3
        );
    }

    #[test]
    fn a_floor_keeps_every_generation_not_wholly_below_it() {
        let m = manifest(alloc::vec![gen(0, 9, 1, None), gen(10, 19, 1, None)]);
        assert_eq!(held_count(&m, 2, None), 2);
        assert_eq!(held_count(&m, 2, Some(20)), 2);
        assert_eq!(held_count(&m, 2, Some(19)), 1);
        assert_eq!(held_count(&m, 2, Some(10)), 1);
        assert_eq!(held_count(&m, 2, Some(9)), 0);
        assert_eq!(held_count(&m, 1, Some(99)), 1);
        // Never below what is dropped already.
        let mut m = m;
        m.dropped_before = 15;
        assert_eq!(point_of(&m, 1), None);
        assert_eq!(point_of(&m, 2), Some(20));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(policy(None, None).validate().is_err());
        assert!(policy(Some(0), None).validate().is_err());
        assert!(policy(None, Some(0)).validate().is_err());
        assert!(policy(Some(1), Some(1)).validate().is_ok());
        let mut p = policy(None, Some(1));
        p.interval = Duration::ZERO;
        assert!(p.validate().is_err());
        p.interval = Duration::MAX;
        assert!(p.validate().is_err());
        let p = RetentionPolicy {
            keep_for: Some(Duration::MAX),
            ..policy(None, None)
        };
        assert!(p.validate().is_err());
    }
}
