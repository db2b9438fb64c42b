//! A reader's flow control (PROTOCOL.md §5 "Flow control"): how many bytes it holds against
//! its read-ahead bound, and whether it may send one more data GET.

use crate::codec::Record;

/// The bytes a reader counts for `records`: their payloads (what the host holds once they
/// are reported, decoded or not).
pub(crate) fn record_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.payload.len() as u64).sum()
}

/// The byte accounting of one reader.
#[derive(Clone, Debug)]
pub(crate) struct Flow {
    /// The read-ahead bound in bytes (at least 1).
    bound: u64,
    /// Reported in events and not yet released by the host.
    unreleased: u64,
    /// Record bytes and count of every data slot that arrived: their running mean is the
    /// estimate of a slot GET in flight, whose size is unknown until it arrives.
    arrived_bytes: u64,
    arrived_slots: u64,
    /// The manifest's size of the generation being fetched or decoded (0: none).
    generation: u64,
}

/// What the reader holds besides what `Flow` itself counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holding {
    /// Record bytes of slots that arrived and are not consumed yet.
    pub(crate) arrived: u64,
    /// Live slot GETs in flight.
    pub(crate) slots_in_flight: usize,
}

impl Flow {
    pub(crate) fn new(bound: u64) -> Self {
        Flow {
            bound: bound.max(1),
            unreleased: 0,
            arrived_bytes: 0,
            arrived_slots: 0,
            generation: 0,
        }
    }

    /// Records of `bytes` were reported.
    pub(crate) fn reported(&mut self, bytes: u64) {
        self.unreleased = self.unreleased.saturating_add(bytes);
    }

    /// The host handed `bytes` of reported records on (more than it holds counts as all).
    pub(crate) fn release(&mut self, bytes: u64) {
        self.unreleased = self.unreleased.saturating_sub(bytes);
    }

    /// Bytes reported and not released.
    pub(crate) fn unreleased(&self) -> u64 {
        self.unreleased
    }

    /// A data slot of `bytes` record bytes arrived (fences and empty slots are not counted:
    /// they would pull the mean down at the end of a log, where every GET finds nothing).
    pub(crate) fn slot_arrived(&mut self, bytes: u64) {
        self.arrived_bytes = self.arrived_bytes.saturating_add(bytes);
        self.arrived_slots += 1;
    }

    /// What a slot GET in flight is taken to hold: the running mean of the data slots that
    /// arrived, or, before any did, the whole bound (so the first slot is fetched alone).
    pub(crate) fn slot_estimate(&self) -> u64 {
        match self.arrived_slots {
            0 => self.bound,
            n => (self.arrived_bytes / n).max(1),
        }
    }

    /// A generation of `bytes` (the manifest's size) is being fetched; 0 once it arrived.
    pub(crate) fn generation(&mut self, bytes: u64) {
        self.generation = bytes;
    }

    /// Everything the reader holds or has asked for.
    pub(crate) fn held(&self, h: Holding) -> u64 {
        let in_flight = self
            .slot_estimate()
            .saturating_mul(h.slots_in_flight as u64);
        self.unreleased
            .saturating_add(h.arrived)
            .saturating_add(in_flight)
            .saturating_add(self.generation)
    }

    /// Whether one more data GET may go out: while the reader holds less than the bound, or
    /// when it holds nothing the host could release and has no data GET in flight (so a
    /// bound smaller than one entry, or entries waiting behind a gap, never stall it).
    pub(crate) fn may_send(&self, h: Holding) -> bool {
        let data_in_flight = h.slots_in_flight > 0 || self.generation > 0;
        self.held(h) < self.bound || (self.unreleased == 0 && !data_in_flight)
    }

    /// New slot GETs allowed now, at most `limit`: each counts as one estimate once sent.
    pub(crate) fn slot_budget(&self, mut h: Holding, limit: usize) -> usize {
        let mut n = 0;
        while n < limit && self.may_send(h) {
            n += 1;
            h.slots_in_flight += 1;
        }
        n
    }

    /// The reader waits for the host: it holds unreleased records and is at the bound, so a
    /// release (a command), not a response or a timer, moves it next. Not a stall.
    pub(crate) fn waiting_for_release(&self, h: Holding) -> bool {
        self.unreleased > 0 && !self.may_send(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(arrived: u64, slots_in_flight: usize) -> Holding {
        Holding {
            arrived,
            slots_in_flight,
        }
    }

    #[test]
    fn the_first_slot_goes_alone_then_the_mean_sets_the_window() {
        let mut f = Flow::new(100);
        assert_eq!(f.slot_budget(holding(0, 0), 64), 1);
        assert_eq!(f.slot_budget(holding(0, 1), 64), 0);
        f.slot_arrived(10);
        // 0 + 10 + 20 + ... stays below 100 for ten slots.
        assert_eq!(f.slot_budget(holding(0, 0), 64), 10);
        assert_eq!(f.slot_budget(holding(0, 0), 4), 4);
        f.reported(95);
        assert_eq!(f.slot_budget(holding(0, 0), 64), 1);
        f.reported(5);
        assert_eq!(f.slot_budget(holding(0, 0), 64), 0);
        assert!(f.waiting_for_release(holding(0, 0)));
        f.release(50);
        assert_eq!(f.slot_budget(holding(0, 0), 64), 5);
        assert!(!f.waiting_for_release(holding(0, 0)));
    }

    #[test]
    fn nothing_held_always_allows_one_get() {
        let mut f = Flow::new(1);
        f.slot_arrived(1 << 20);
        // Arrived slots behind a gap are over the bound, yet the gap's slot is fetched.
        assert_eq!(f.slot_budget(holding(5 << 20, 0), 64), 1);
        assert_eq!(f.slot_budget(holding(5 << 20, 1), 64), 0);
        f.generation(1 << 30);
        assert!(!f.may_send(holding(0, 0)));
        f.generation(0);
        f.reported(1);
        assert!(!f.may_send(holding(0, 0)));
        f.release(u64::MAX);
        assert_eq!(f.unreleased(), 0);
        assert!(f.may_send(holding(0, 0)));
    }
}
