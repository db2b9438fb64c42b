//! Request bookkeeping shared by the machines: ids, the outbox, what each request was for,
//! delayed retries with jittered backoff, and I/O counters.

use alloc::collections::{BTreeMap, VecDeque};
use core::time::Duration;

use crate::config::RetryPolicy;
use crate::io::{as_contract, Op, Request, RequestId, Response};

/// Requests issued, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Puts issued.
    pub puts: u64,
    /// Gets issued.
    pub gets: u64,
    /// Lists issued.
    pub lists: u64,
    /// Deletes issued.
    pub deletes: u64,
}

/// SplitMix64: the machines' only source of "randomness", seeded by the host.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

pub(crate) struct Plumbing<P> {
    next_id: u64,
    outbox: VecDeque<Request>,
    pending: BTreeMap<RequestId, (P, Op)>,
    delayed: BTreeMap<(Duration, u64), (P, Op)>,
    delayed_seq: u64,
    rng: SplitMix64,
    pub(crate) counters: IoCounters,
}

impl<P> Plumbing<P> {
    pub(crate) fn new(seed: u64) -> Self {
        Plumbing {
            next_id: 0,
            outbox: VecDeque::new(),
            pending: BTreeMap::new(),
            delayed: BTreeMap::new(),
            delayed_seq: 0,
            rng: SplitMix64::new(seed),
            counters: IoCounters::default(),
        }
    }

    /// Queues `op` now; its response will come back with `purpose`.
    pub(crate) fn send(&mut self, op: Op, purpose: P) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        match &op {
            Op::Put { .. } => self.counters.puts += 1,
            Op::Get { .. } => self.counters.gets += 1,
            Op::List { .. } => self.counters.lists += 1,
            Op::Delete { .. } => self.counters.deletes += 1,
        }
        self.outbox.push_back(Request { id, op: op.clone() });
        self.pending.insert(id, (purpose, op));
        id
    }

    /// Queues `op` after a backoff for retry number `attempt` (1-based).
    pub(crate) fn send_after_backoff(
        &mut self,
        now: Duration,
        policy: &RetryPolicy,
        attempt: u32,
        op: Op,
        purpose: P,
    ) {
        let exp = attempt.saturating_sub(1).min(20);
        let full = policy
            .base
            .saturating_mul(1u32 << exp)
            .min(policy.max)
            .max(Duration::from_micros(1));
        // Jitter in [full/2, full] so that competing writers do not retry in lockstep.
        let nanos = full.as_nanos().min(u64::MAX as u128) as u64;
        let jitter = self.rng.next_u64() % (nanos / 2 + 1);
        let at = now + Duration::from_nanos(nanos / 2 + jitter);
        self.delayed.insert((at, self.delayed_seq), (purpose, op));
        self.delayed_seq += 1;
    }

    /// The purpose and op of a request with its answer read as the contract says
    /// ([`as_contract`]), once; `None` for an unknown or answered id.
    pub(crate) fn take(&mut self, id: RequestId, response: Response) -> Option<(P, Op, Response)> {
        let (purpose, op) = self.pending.remove(&id)?;
        let response = as_contract(&op, response);
        Some((purpose, op, response))
    }

    pub(crate) fn poll_request(&mut self) -> Option<Request> {
        self.outbox.pop_front()
    }

    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.delayed.keys().next().map(|(at, _)| *at)
    }

    /// Sends every delayed request that is due.
    pub(crate) fn fire_due(&mut self, now: Duration) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (purpose, op) = entry.remove();
            self.send(op, purpose);
        }
    }

    /// Requests sent and not answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Drops everything queued, delayed and pending: the machine stopped.
    pub(crate) fn shut(&mut self) {
        self.outbox.clear();
        self.delayed.clear();
        self.pending.clear();
    }

    pub(crate) fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
