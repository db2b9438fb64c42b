//! A start at a time past the generations without the walk from the cursor (PROTOCOL.md §5
//! "Start at a time", the WAL search): which position the start may take.
//!
//! The search only picks a position `p_t`; the reader then starts there as a start at a
//! position, with the time gate still on. `p_t` is one past the highest slot found to hold a
//! log entry of a known time below `t`, so it never passes the first entry the gate would
//! report. This module keeps what the answers said and decides; `reader.rs` sends requests.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::codec::{Entry, EntryKind};

/// The marker a writer that stamps a time on every data entry adds to its fence intent's
/// body (after its nonce).
pub(crate) const TIMED_MARKER: &str = " timed";

/// Whether a fence intent's body promises times on every data entry of its writer.
pub(crate) fn promises_times(body: &[u8]) -> bool {
    body.len() == 16 + TIMED_MARKER.len() && body.ends_with(TIMED_MARKER.as_bytes())
}

/// What a probed slot held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probed {
    Absent,
    Data { epoch: u64, time: Option<u64> },
    Fence { epoch: u64, window: u32 },
}

impl Probed {
    /// What `entry` (or an empty slot) is.
    pub(crate) fn of(entry: Option<&Entry>) -> Probed {
        match entry {
            None => Probed::Absent,
            Some(e) => match e.header.kind {
                EntryKind::Fence { window } => Probed::Fence {
                    epoch: e.header.epoch,
                    window,
                },
                EntryKind::Data => Probed::Data {
                    epoch: e.header.epoch,
                    time: e.header.time,
                },
            },
        }
    }
}

/// Which answers the search waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The LIST of every fence intent.
    Intents,
    /// The intents' bodies (one per writer epoch) and the slots of the intents at or past
    /// the cursor.
    Writers,
    /// One probe doubling its distance from the cursor.
    Expand,
    /// One probe halving the range.
    Bisect,
    /// The LIST of manifests after the one read.
    Manifests,
}

/// The state of one time search.
pub(crate) struct TimeSearch {
    t: u64,
    cursor: u64,
    cursor_epoch: u64,
    /// The read manifest's epoch: the newest writer that had claimed.
    epoch: u64,
    pub(crate) stage: Stage,
    /// Requests (slots or intent bodies, by key) that have not answered.
    pub(crate) waiting: BTreeSet<Key>,
    /// Per writer epoch: whether its intent promises times.
    promises: BTreeMap<u64, bool>,
    /// The fences found in the intents' slots at or past the cursor: position -> (epoch, w).
    fences: BTreeMap<u64, (u64, u32)>,
    /// The highest slot found to hold a log entry of a known time below `t`.
    before: Option<u64>,
    /// The lowest probed slot not found to be such an entry.
    not_before: Option<u64>,
    /// The next distance from the cursor while expanding.
    step: u64,
    /// Rounds of probes sent (for tests and benches).
    pub(crate) rounds: u32,
}

/// A request the search waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Slot(u64),
    Intent { position: u64, epoch: u64 },
}

impl TimeSearch {
    /// A search for `t` from `cursor` (every generation lies below `t`).
    pub(crate) fn new(t: u64, cursor: u64, cursor_epoch: u64, epoch: u64) -> Self {
        TimeSearch {
            t,
            cursor,
            cursor_epoch,
            epoch,
            stage: Stage::Intents,
            waiting: BTreeSet::new(),
            promises: BTreeMap::new(),
            fences: BTreeMap::new(),
            before: None,
            not_before: None,
            step: 0,
            rounds: 0,
        }
    }

    /// The LIST of intents answered (position, epoch each): the requests to send, one
    /// intent body per writer epoch from the cursor's on, and every intent's slot at or past
    /// the cursor.
    pub(crate) fn writers_to_ask(&mut self, intents: &[(u64, u64)]) -> Vec<Key> {
        self.stage = Stage::Writers;
        let mut epochs = BTreeSet::new();
        let mut keys = Vec::new();
        for &(position, epoch) in intents {
            if epoch >= self.cursor_epoch && epoch <= self.epoch && epochs.insert(epoch) {
                keys.push(Key::Intent { position, epoch });
            }
            if position >= self.cursor && !keys.contains(&Key::Slot(position)) {
                keys.push(Key::Slot(position));
            }
        }
        self.waiting.extend(keys.iter().copied());
        keys
    }

    /// An intent's body answered (`None`: it is gone).
    pub(crate) fn intent_arrived(&mut self, position: u64, epoch: u64, body: Option<&[u8]>) {
        if self.waiting.remove(&Key::Intent { position, epoch }) {
            let promised = body.is_some_and(promises_times);
            self.promises.insert(epoch, promised);
        }
    }

    /// A probed slot answered; `false` if it was not asked for.
    pub(crate) fn slot_arrived(&mut self, position: u64, probed: Probed) -> bool {
        if !self.waiting.remove(&Key::Slot(position)) {
            return false;
        }
        match self.stage {
            Stage::Writers => {
                if let Probed::Fence { epoch, window } = probed {
                    self.fences.insert(position, (epoch, window.max(1)));
                }
            }
            Stage::Expand | Stage::Bisect => {
                if self.is_before(position, probed) {
                    self.before = Some(self.before.map_or(position, |b| b.max(position)));
                } else if self.stage == Stage::Expand && self.in_fence_or_window(position) {
                    // A known fence or its window: expand past it rather than stop there.
                } else {
                    self.not_before = Some(self.not_before.map_or(position, |n| n.min(position)));
                }
            }
            Stage::Intents | Stage::Manifests => {}
        }
        true
    }

    /// Every request of this round answered.
    pub(crate) fn round_done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether every writer that may have written a log entry at or past the cursor promised
    /// times: each epoch from the cursor's (at least 1) to the manifest's has an intent that promises
    /// them. The cursor's writer is excused when the cursor slot holds a fence of a newer
    /// epoch (its later entries are orphans). A claimed epoch without an intent (a writer
    /// that crashed or was fenced before its intent, or one older than intents) counts as
    /// no promise.
    pub(crate) fn writers_promise(&self) -> bool {
        let first = match self.fences.get(&self.cursor) {
            Some(&(e, _)) if e > self.cursor_epoch => self.cursor_epoch + 1,
            _ => self.cursor_epoch,
        };
        // Epoch 0 is nobody's (the first writer claims 1).
        (first.max(1)..=self.epoch).all(|e| self.promises.get(&e) == Some(&true))
    }

    /// Whether `x` is a found fence's slot or lies in its window.
    fn in_fence_or_window(&self, x: u64) -> bool {
        self.fences
            .range(..=x)
            .any(|(&at, &(_, w))| x < at.saturating_add(u64::from(w)))
    }

    /// Whether `x` holds a log entry of a known time below `t`. Anything uncertain is not:
    /// an absent slot, a fence, a slot in a found fence's window, an orphan (data of an
    /// epoch below the highest fence epoch below it), data of a writer that did not promise
    /// times, data without a time.
    fn is_before(&self, x: u64, probed: Probed) -> bool {
        let Probed::Data {
            epoch,
            time: Some(time),
        } = probed
        else {
            return false;
        };
        let in_window = self
            .fences
            .range(..x)
            .any(|(&at, &(_, w))| x < at.saturating_add(u64::from(w)));
        let fence_epoch = self
            .fences
            .range(..x)
            .map(|(_, &(e, _))| e)
            .fold(self.cursor_epoch, u64::max);
        x >= self.cursor
            && !in_window
            && epoch >= fence_epoch
            && self.promises.get(&epoch) == Some(&true)
            && time < self.t
    }

    /// The next slot to probe, or `None`: the search is over.
    pub(crate) fn next_probe(&mut self) -> Option<u64> {
        if self.stage == Stage::Writers {
            self.stage = Stage::Expand;
        }
        if self.stage == Stage::Expand {
            if self.not_before.is_none() {
                // Probes at cursor + 0, 1, 3, 7, ...: the first not before `t` (past the
                // found fences and their windows) bounds it.
                let x = self.cursor.saturating_add(self.step);
                self.step = self.step.saturating_mul(2).saturating_add(1);
                return Some(self.probe(x));
            }
            self.stage = Stage::Bisect;
        }
        let lo = self.before.unwrap_or(self.cursor);
        let hi = self.not_before?;
        if hi <= lo.saturating_add(1) {
            return None;
        }
        Some(self.probe(lo + (hi - lo) / 2))
    }

    fn probe(&mut self, x: u64) -> u64 {
        self.rounds += 1;
        self.waiting.insert(Key::Slot(x));
        x
    }

    /// Where the start at a position begins: one past the highest slot found to hold a log
    /// entry before `t`, else the cursor.
    pub(crate) fn found(&self) -> u64 {
        self.before.map_or(self.cursor, |b| b + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(epoch: u64, time: u64) -> Probed {
        Probed::Data {
            epoch,
            time: Some(time),
        }
    }

    /// A search over slots 0.. where slot `x` holds data of epoch 2 at time `x` below `end`,
    /// behind a fence at 0 of epoch 2: returns the start found and the probes sent.
    fn search(t: u64, end: u64, seen: impl Fn(u64) -> Probed) -> (u64, u32) {
        let mut s = TimeSearch::new(t, 0, 1, 2);
        let keys = s.writers_to_ask(&[(0, 2)]);
        assert_eq!(
            keys,
            [
                Key::Intent {
                    position: 0,
                    epoch: 2
                },
                Key::Slot(0)
            ]
        );
        s.intent_arrived(0, 2, Some(b"00000000000000ff timed"));
        s.slot_arrived(
            0,
            Probed::Fence {
                epoch: 2,
                window: 4,
            },
        );
        assert!(s.writers_promise());
        while let Some(x) = s.next_probe() {
            let probed = if x < end { seen(x) } else { Probed::Absent };
            assert!(s.slot_arrived(x, probed));
        }
        (s.found(), s.rounds)
    }

    #[test]
    fn finds_the_first_entry_at_or_past_t_in_log_rounds() {
        let timed = |x| if x < 4 { Probed::Absent } else { data(2, x) };
        let (found, rounds) = search(50_000, 100_000, timed);
        assert_eq!(found, 50_000);
        assert!(rounds < 40, "{rounds} rounds");
        // Before every entry: the cursor. Past every entry: the end.
        assert_eq!(search(0, 100_000, timed).0, 0);
        assert_eq!(search(u64::MAX, 1000, timed).0, 1000);
    }

    #[test]
    fn uncertain_probes_only_lower_the_start() {
        // Past 1000 only slots that claim a time below t but prove nothing: an untimed entry,
        // an orphan (epoch 1 below the fence's 2), a writer that promised nothing, a fence.
        for odd in [
            Probed::Data {
                epoch: 2,
                time: None,
            },
            data(1, 10),
            data(7, 10),
            Probed::Fence {
                epoch: 9,
                window: 4,
            },
        ] {
            let seen = |x| match x {
                0..=3 => Probed::Absent,
                1000.. => odd,
                _ => data(2, x / 10),
            };
            let (found, _) = search(100, 2000, seen);
            assert_eq!(found, 1000, "{odd:?}");
        }
    }

    #[test]
    fn an_orphan_or_a_window_slot_is_not_before_t() {
        // Fence 0 (epoch 2), fence 1000 (epoch 3, W 4): past it, slots of its window and
        // orphans of epoch 2 that claim an early time; epoch 3's entries lie at or past t.
        let mut s = TimeSearch::new(100, 0, 1, 3);
        s.writers_to_ask(&[(0, 2), (1000, 3)]);
        s.intent_arrived(0, 2, Some(b"00000000000000ff timed"));
        s.intent_arrived(1000, 3, Some(b"00000000000000fe timed"));
        s.slot_arrived(
            0,
            Probed::Fence {
                epoch: 2,
                window: 4,
            },
        );
        s.slot_arrived(
            1000,
            Probed::Fence {
                epoch: 3,
                window: 4,
            },
        );
        assert!(s.writers_promise());
        while let Some(x) = s.next_probe() {
            let probed = match x {
                0..=3 => Probed::Absent,
                1000 => Probed::Fence {
                    epoch: 3,
                    window: 4,
                },
                1001..=1003 => data(2, 5),
                1004..=1500 if x % 2 == 0 => data(2, 5),
                1004..=1500 => data(3, 200),
                1501.. => Probed::Absent,
                _ => data(2, x / 20),
            };
            assert!(s.slot_arrived(x, probed));
        }
        assert_eq!(s.found(), 1000);
    }

    #[test]
    fn a_writer_without_the_promise_is_no_promise() {
        let mut s = TimeSearch::new(5, 0, 1, 3);
        s.writers_to_ask(&[(0, 2), (100, 3)]);
        s.intent_arrived(0, 2, Some(b"00000000000000ff timed"));
        s.intent_arrived(100, 3, Some(b"00000000000000fe"));
        assert!(!s.writers_promise());
        // An epoch without an intent at all: no promise either.
        let mut s = TimeSearch::new(5, 0, 1, 3);
        s.writers_to_ask(&[(0, 2)]);
        s.intent_arrived(0, 2, Some(b"00000000000000ff timed"));
        s.slot_arrived(
            0,
            Probed::Fence {
                epoch: 2,
                window: 4,
            },
        );
        assert!(!s.writers_promise());
        assert!(!promises_times(b"x timed"));
    }
}
