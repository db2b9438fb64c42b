//! A start at a position far past the cursor without the walk from the cursor (PROTOCOL.md §5
//! "Start past the cursor"): what the probes found, and where the walk may start.
//!
//! The reader GETs the `W` slots below the start, then LISTs the fence intents from the cursor
//! and GETs each intent's slot, then LISTs the manifests after the one it read. This module
//! only keeps what those answers said and decides; `reader.rs` sends the requests.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::codec::{Entry, EntryKind};

/// What a probed slot held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    Absent,
    Data,
    Fence { epoch: u64, window: u32 },
}

impl Seen {
    /// What `entry` (or an empty slot) is, for the shortcut.
    pub(crate) fn of(entry: Option<&Entry>) -> Seen {
        match entry.map(|e| (e.header.kind, e.header.epoch)) {
            None => Seen::Absent,
            Some((EntryKind::Fence { window }, epoch)) => Seen::Fence { epoch, window },
            Some((EntryKind::Data, _)) => Seen::Data,
        }
    }
}

/// Which answers the shortcut waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The slots `p - W .. p`.
    CheckRange,
    /// The LIST of intents.
    Intents,
    /// The slots of the intents below `p`.
    IntentSlots,
    /// The LIST of manifests after the one read: none, or the fences found may be garbage.
    Manifests,
}

/// The state of one shortcut start.
pub(crate) struct Shortcut {
    /// The start position.
    pub(crate) start: u64,
    /// The manifest's cursor and cursor epoch.
    pub(crate) cursor: u64,
    pub(crate) cursor_epoch: u64,
    /// The manifest's fence window `W`.
    pub(crate) window: u32,
    pub(crate) stage: Stage,
    /// Slots asked for that have not answered.
    pub(crate) waiting: BTreeSet<u64>,
    /// Every probed slot's content.
    pub(crate) seen: BTreeMap<u64, Seen>,
    /// The intents' positions below the start.
    pub(crate) intents: BTreeSet<u64>,
}

/// Where the walk starts and with which fence epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) walk_from: u64,
    pub(crate) fence_epoch: u64,
}

impl Shortcut {
    /// A shortcut start at `start`, which must be past `cursor + window`.
    pub(crate) fn new(start: u64, cursor: u64, cursor_epoch: u64, window: u32) -> Self {
        Shortcut {
            start,
            cursor,
            cursor_epoch,
            window: window.max(1),
            stage: Stage::CheckRange,
            waiting: BTreeSet::new(),
            seen: BTreeMap::new(),
            intents: BTreeSet::new(),
        }
    }

    /// Whether a start at `start` may take the shortcut: past `cursor + W`.
    pub(crate) fn applies(start: u64, cursor: u64, window: u32) -> bool {
        start > cursor.saturating_add(u64::from(window.max(1)))
    }

    /// The check range `p - W .. p`.
    pub(crate) fn check_range(&self) -> core::ops::Range<u64> {
        self.start - u64::from(self.window)..self.start
    }

    /// The slots of `intents` (positions) not probed yet, now recorded as wanted.
    pub(crate) fn intent_slots_to_probe(&mut self, intents: Vec<u64>) -> Vec<u64> {
        for at in intents {
            if at >= self.cursor && at < self.start {
                self.intents.insert(at);
            }
        }
        let missing: Vec<u64> = self
            .intents
            .iter()
            .copied()
            .filter(|at| !self.seen.contains_key(at))
            .collect();
        self.waiting.extend(missing.iter().copied());
        missing
    }

    /// A probe answered.
    pub(crate) fn arrived(&mut self, position: u64, seen: Seen) {
        if self.waiting.remove(&position) {
            self.seen.insert(position, seen);
        }
    }

    /// Every probe of this stage answered.
    pub(crate) fn stage_done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The fences found below the start: `(position, epoch, window)`, by position.
    fn fences(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.seen.iter().filter_map(|(&at, seen)| match *seen {
            Seen::Fence { epoch, window } if at < self.start => Some((at, epoch, window)),
            _ => None,
        })
    }

    /// Whether slot `x` lies in the window after one of the fences found.
    fn in_window(&self, x: u64) -> bool {
        self.fences()
            .any(|(at, _, w)| at < x && x < at.saturating_add(u64::from(w)))
    }

    /// Where the walk may start, or `None`: fall back to the walk from the cursor.
    /// Safe only if every intent's slot is present (its fence, or the entry it lost to) and
    /// every slot of the check range outside the fences' windows is present.
    pub(crate) fn decide(&self) -> Option<Decision> {
        let intent_absent = self
            .intents
            .iter()
            .any(|at| self.seen.get(at).is_none_or(|s| *s == Seen::Absent));
        if intent_absent {
            return None;
        }
        let hole = self
            .check_range()
            .any(|x| !self.in_window(x) && self.seen.get(&x).is_none_or(|s| *s == Seen::Absent));
        if hole {
            return None;
        }
        // The start inside (or at the end of) the last fence's window: the walk reads that
        // fence (and checks the manifest before passing it, as every walk does).
        let walk_from = match self.fences().last() {
            Some((at, _, w)) if self.start < at.saturating_add(u64::from(w)) => at,
            _ => self.start,
        };
        let fence_epoch = self
            .fences()
            .filter(|&(at, _, _)| at < walk_from)
            .map(|(_, e, _)| e)
            .fold(self.cursor_epoch, u64::max);
        Some(Decision {
            walk_from,
            fence_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(s: &mut Shortcut, seen: impl Fn(u64) -> Seen) {
        for x in s.check_range() {
            s.waiting.insert(x);
            s.arrived(x, seen(x));
        }
    }

    #[test]
    fn all_present_starts_at_the_start_with_the_fences_epochs() {
        let mut s = Shortcut::new(100, 0, 1, 4);
        checked(&mut s, |_| Seen::Data);
        assert_eq!(s.intent_slots_to_probe(alloc::vec![10, 50, 120]), [10, 50]);
        s.arrived(
            10,
            Seen::Fence {
                epoch: 3,
                window: 4,
            },
        );
        s.arrived(50, Seen::Data); // that intent lost its race
        assert!(s.stage_done());
        let d = s.decide().expect("safe");
        assert_eq!((d.walk_from, d.fence_epoch), (100, 3));
    }

    #[test]
    fn an_absent_intent_slot_or_a_hole_falls_back() {
        let mut s = Shortcut::new(100, 0, 1, 4);
        checked(&mut s, |_| Seen::Data);
        s.intent_slots_to_probe(alloc::vec![10]);
        s.arrived(10, Seen::Absent);
        assert_eq!(s.decide(), None);

        let mut s = Shortcut::new(100, 0, 1, 4);
        checked(&mut s, |x| if x == 97 { Seen::Absent } else { Seen::Data });
        assert_eq!(s.decide(), None);
    }

    #[test]
    fn a_start_inside_a_window_walks_from_its_fence() {
        // Fence at 97 (window 4 covers 98..101): absent 98, 99 are excused.
        let mut s = Shortcut::new(100, 0, 1, 4);
        checked(&mut s, |x| match x {
            97 => Seen::Fence {
                epoch: 5,
                window: 4,
            },
            96 => Seen::Data,
            _ => Seen::Absent,
        });
        s.intent_slots_to_probe(alloc::vec![97]);
        let d = s.decide().expect("safe");
        assert_eq!((d.walk_from, d.fence_epoch), (97, 1));
        // Right after the window: start there, with the fence's epoch.
        let mut s = Shortcut::new(101, 0, 1, 4);
        checked(&mut s, |x| match x {
            97 => Seen::Fence {
                epoch: 5,
                window: 4,
            },
            _ => Seen::Absent,
        });
        let d = s.decide().expect("safe");
        assert_eq!((d.walk_from, d.fence_epoch), (101, 5));
    }
}
