//! A generation read with ranged gets (PROTOCOL.md §5): its checked index says where each
//! entry's records lie; they are fetched in runs of adjacent records, several runs in flight
//! at once (as many as flow control allows), and reported strictly in order whatever order
//! the runs arrive in. Pure bookkeeping: the reader sends the requests and checks the bytes.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::Bytes;
use core::ops::Range;

use crate::codec::IndexedEntry;

/// The largest run (more than one record); a single record larger than this is fetched
/// alone. Small enough that freed bodies do not pile up in an allocator's arenas, large
/// enough that a run costs few requests.
pub(super) const MAX_RUN: u64 = 2 << 20;

/// Entries whose records lie next to each other, fetched with one ranged get.
pub(super) struct Run {
    /// Tells this run's answer from any other, across generations.
    pub(super) seq: u64,
    /// Its entries, in order (entries without records take no bytes).
    pub(super) entries: Vec<IndexedEntry>,
    /// The bytes of the file it covers.
    pub(super) range: Range<u64>,
    /// Its bytes, once arrived (at once for a run of record-less entries).
    body: Option<Bytes>,
}

/// What [`RangedGeneration::plan`] came to.
pub(super) enum Planned {
    /// Fetch this range for run `seq`.
    Fetch { seq: u64, range: Range<u64> },
    /// A run that needs no bytes is ready.
    Ready,
    /// Nothing to plan: every entry before `until` is in a run.
    Nothing,
}

/// The entries of one generation still to report, from the start on.
pub(super) struct RangedGeneration {
    /// Not yet in a run, in order.
    unplanned: VecDeque<IndexedEntry>,
    /// Planned runs, in order: in flight, or arrived and waiting for the ones before.
    runs: VecDeque<Run>,
    /// The next run waits for the host to release bytes (flow control).
    pub(super) deferred: bool,
}

impl RangedGeneration {
    pub(super) fn new(entries: VecDeque<IndexedEntry>) -> Self {
        RangedGeneration {
            unplanned: entries,
            runs: VecDeque::new(),
            deferred: false,
        }
    }

    /// Every entry was handed out.
    pub(super) fn finished(&self) -> bool {
        self.unplanned.is_empty() && self.runs.is_empty()
    }

    /// Nothing is planned and the next entry is at or past `until`: the reader is done.
    pub(super) fn reached(&self, until: u64) -> bool {
        self.runs.is_empty() && self.unplanned.front().is_some_and(|e| e.position >= until)
    }

    /// Bytes of planned runs (in flight or arrived and not handed out): what the reader
    /// holds for this generation.
    pub(super) fn planned_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.range.end - r.range.start).sum()
    }

    /// Plans the next run: adjacent entries before `until`, at most `room` bytes unless one
    /// entry alone is larger. `seq` names it.
    pub(super) fn plan(&mut self, until: u64, room: u64, seq: u64) -> Planned {
        let Some(front) = self.unplanned.front() else {
            return Planned::Nothing;
        };
        if front.position >= until {
            return Planned::Nothing;
        }
        let start = self
            .unplanned
            .iter()
            .take_while(|e| e.position < until)
            .find_map(|e| e.records.first().map(|r| r.range.start));
        let Some(start) = start else {
            // Only record-less entries before `until`: ready without a request.
            let n = self
                .unplanned
                .iter()
                .take_while(|e| e.position < until)
                .count();
            let entries = self.unplanned.drain(..n).collect();
            self.runs.push_back(Run {
                seq,
                entries,
                range: 0..0,
                body: Some(Bytes::new()),
            });
            return Planned::Ready;
        };
        let (mut end, mut covered, mut with_bytes) = (start, 0, 0);
        for e in self.unplanned.iter().take_while(|e| e.position < until) {
            let first = e.records.first().map_or(end, |r| r.range.start);
            let last = e.records.last().map_or(end, |r| r.range.end);
            if first != end || (with_bytes > 0 && last - start > room.min(MAX_RUN)) {
                break;
            }
            end = last;
            covered += 1;
            with_bytes += usize::from(!e.records.is_empty());
        }
        let entries = self.unplanned.drain(..covered).collect();
        self.runs.push_back(Run {
            seq,
            entries,
            range: start..end,
            body: None,
        });
        Planned::Fetch {
            seq,
            range: start..end,
        }
    }

    /// Whether run `seq` is planned and its bytes not here yet.
    pub(super) fn waits_for(&self, seq: u64) -> bool {
        self.runs.iter().any(|r| r.seq == seq && r.body.is_none())
    }

    /// The bytes of run `seq` arrived; `false` if no such run is waiting (a stale answer).
    pub(super) fn arrived(&mut self, seq: u64, body: Bytes) -> bool {
        match self
            .runs
            .iter_mut()
            .find(|r| r.seq == seq && r.body.is_none())
        {
            Some(run) => {
                run.body = Some(body);
                true
            }
            None => false,
        }
    }

    /// The front run, once its bytes are here (the runs behind it wait for it).
    pub(super) fn pop_ready(&mut self) -> Option<(Run, Bytes)> {
        // Not yet: the runs behind it wait, whatever arrived.
        self.runs.front()?.body.as_ref()?;
        let mut run = self.runs.pop_front()?;
        let body = run.body.take()?;
        Some((run, body))
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of records' byte ranges, some of one
mod tests {
    use super::*;
    use crate::codec::IndexedRecord;

    /// Entry at `position` with records of these byte ranges.
    fn entry(position: u64, ranges: &[Range<u64>]) -> IndexedEntry {
        IndexedEntry {
            position,
            time: None,
            records: ranges
                .iter()
                .map(|r| IndexedRecord {
                    range: r.clone(),
                    crc32c: 0,
                    rows: 1,
                })
                .collect(),
        }
    }

    fn generation() -> RangedGeneration {
        RangedGeneration::new(
            [
                entry(1, &[0..10]),
                entry(2, &[]),
                entry(3, &[10..20, 20..30]),
                entry(4, &[30..40]),
            ]
            .into(),
        )
    }

    #[test]
    fn runs_respect_room_but_take_at_least_one_entry_and_come_out_in_order() {
        let mut g = generation();
        let Planned::Fetch { range, .. } = g.plan(u64::MAX, 5, 0) else {
            panic!("a fetch")
        };
        assert_eq!(range, 0..10, "one entry even when larger than the room");
        let Planned::Fetch { range, .. } = g.plan(u64::MAX, 25, 1) else {
            panic!("a fetch")
        };
        assert_eq!(
            range,
            10..30,
            "the record-less entry rides along; 4 does not fit"
        );
        assert_eq!(g.planned_bytes(), 30);
        // The second arrives first: nothing is ready until the first is.
        assert!(g.arrived(1, Bytes::from_static(&[0; 20])));
        assert!(g.pop_ready().is_none());
        assert!(!g.arrived(7, Bytes::new()), "a stale answer");
        assert!(g.arrived(0, Bytes::from_static(&[0; 10])));
        let positions: Vec<u64> = core::iter::from_fn(|| g.pop_ready())
            .flat_map(|(run, _)| run.entries.into_iter().map(|e| e.position))
            .collect();
        assert_eq!(positions, [1, 2, 3]);
        assert!(!g.finished());
        assert!(matches!(g.plan(u64::MAX, 100, 2), Planned::Fetch { .. }));
        assert!(matches!(g.plan(u64::MAX, 100, 3), Planned::Nothing));
    }

    #[test]
    fn until_stops_planning_and_record_less_runs_are_ready_at_once() {
        let mut g = generation();
        assert!(matches!(g.plan(2, 100, 0), Planned::Fetch { range, .. } if range == (0..10)));
        assert!(matches!(g.plan(2, 100, 1), Planned::Nothing));
        assert!(!g.reached(2), "a run is still out");
        assert!(g.arrived(0, Bytes::from_static(&[0; 10])));
        assert!(g.pop_ready().is_some());
        assert!(g.reached(2));
        let mut only_empty = RangedGeneration::new([entry(5, &[]), entry(6, &[])].into());
        assert!(matches!(only_empty.plan(u64::MAX, 0, 0), Planned::Ready));
        let (run, body) = only_empty.pop_ready().unwrap();
        assert_eq!((run.entries.len(), body.len()), (2, 0));
        assert!(only_empty.finished());
    }
}
