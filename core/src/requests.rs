//! The request table shared by the machines: ids, the outbox, every pending request with what
//! it was for and which attempt it is, delayed retries with jittered backoff, and I/O counters.

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
    /// Ranged gets issued.
    pub range_gets: u64,
    /// Bytes asked for by ranged gets.
    pub range_bytes: u64,
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

/// A request of the table: what it was for, what it asks, and which attempt it is.
#[derive(Clone, Debug)]
pub(crate) struct Pending<P> {
    pub(crate) purpose: P,
    pub(crate) op: Op,
    /// 1 for a first try; every retry is the next attempt, up to the policy's `attempts`.
    pub(crate) attempt: u32,
    /// The machine's clock when this attempt was queued, which is when the host polls it
    /// out (the drain rule): at or before the real send.
    pub(crate) sent_at: Duration,
}

impl<P> Pending<P> {
    /// Another request counted as this same attempt: a put's read-back spends the put's
    /// budget, and a put sent again after a read-back continues from the read-back's count.
    pub(crate) fn same_attempt(&self, op: Op, purpose: P) -> Pending<P> {
        Pending {
            purpose,
            op,
            attempt: self.attempt,
            sent_at: self.sent_at,
        }
    }
}

/// The request table of one machine; `P` says what a request was for.
pub(crate) struct Requests<P> {
    next_id: u64,
    outbox: VecDeque<Request>,
    pending: BTreeMap<RequestId, Pending<P>>,
    delayed: BTreeMap<(Duration, u64), Pending<P>>,
    delayed_seq: u64,
    rng: SplitMix64,
    policy: RetryPolicy,
    /// The machine's clock, as last told ([`Requests::set_clock`]): stamps `sent_at`.
    clock: Duration,
    pub(crate) counters: IoCounters,
}

impl<P> Requests<P> {
    /// `policy` bounds and spaces every retry of the table.
    pub(crate) fn new(seed: u64, policy: RetryPolicy) -> Self {
        Requests {
            next_id: 0,
            outbox: VecDeque::new(),
            pending: BTreeMap::new(),
            delayed: BTreeMap::new(),
            delayed_seq: 0,
            rng: SplitMix64::new(seed),
            policy,
            clock: Duration::ZERO,
            counters: IoCounters::default(),
        }
    }

    /// Queues `op` now, as its first attempt; its response will come back with `purpose`.
    pub(crate) fn send(&mut self, op: Op, purpose: P) -> RequestId {
        self.send_pending(Pending {
            purpose,
            op,
            attempt: 1,
            sent_at: self.clock,
        })
    }

    /// The machine's clock moved to `now` (it stamps the requests queued from now on).
    pub(crate) fn set_clock(&mut self, now: Duration) {
        self.clock = self.clock.max(now);
    }

    /// Queues a request now, with the attempt it carries (see [`Pending::same_attempt`]).
    pub(crate) fn send_pending(&mut self, mut request: Pending<P>) -> RequestId {
        request.sent_at = self.clock;
        let id = RequestId(self.next_id);
        self.next_id += 1;
        match &request.op {
            Op::Put { .. } => self.counters.puts += 1,
            Op::Get { .. } => self.counters.gets += 1,
            Op::GetRange { range, .. } => {
                self.counters.range_gets += 1;
                self.counters.range_bytes += range.end.saturating_sub(range.start);
            }
            Op::List { .. } => self.counters.lists += 1,
            Op::Delete { .. } => self.counters.deletes += 1,
        }
        self.outbox.push_back(Request {
            id,
            op: request.op.clone(),
        });
        self.pending.insert(id, request);
        id
    }

    /// Sends `request` again as its next attempt, after a jittered backoff that grows with
    /// the attempt that failed. Gives it back once it was the policy's last attempt.
    pub(crate) fn retry(&mut self, now: Duration, request: Pending<P>) -> Result<(), Pending<P>> {
        let failed = request.attempt;
        let next = Self::next_attempt(&self.policy, request)?;
        let exp = failed.saturating_sub(1).min(20);
        let full = self
            .policy
            .base
            .saturating_mul(1u32 << exp)
            .min(self.policy.max)
            .max(Duration::from_micros(1));
        // Jitter in [full/2, full] so that competing writers do not retry in lockstep.
        let nanos = full.as_nanos().min(u64::MAX as u128) as u64;
        let jitter = self.rng.next_u64() % (nanos / 2 + 1);
        let at = now + Duration::from_nanos(nanos / 2 + jitter);
        self.delayed.insert((at, self.delayed_seq), next);
        self.delayed_seq += 1;
        Ok(())
    }

    /// Sends `request` again as its next attempt, at once. Gives it back once it was the
    /// policy's last attempt.
    pub(crate) fn retry_now(&mut self, request: Pending<P>) -> Result<(), Pending<P>> {
        let next = Self::next_attempt(&self.policy, request)?;
        self.send_pending(next);
        Ok(())
    }

    fn next_attempt(policy: &RetryPolicy, request: Pending<P>) -> Result<Pending<P>, Pending<P>> {
        if request.attempt >= policy.attempts {
            return Err(request);
        }
        Ok(Pending {
            attempt: request.attempt + 1,
            ..request
        })
    }

    /// A request's purpose, op and attempt, once, with its answer read as the contract says
    /// ([`as_contract`]); `None` for an unknown or answered id.
    pub(crate) fn take(
        &mut self,
        id: RequestId,
        response: Response,
    ) -> Option<(Pending<P>, Response)> {
        let pending = self.pending.remove(&id)?;
        let response = as_contract(&pending.op, response);
        Some((pending, response))
    }

    pub(crate) fn poll_request(&mut self) -> Option<Request> {
        self.outbox.pop_front()
    }

    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.delayed.keys().next().map(|(at, _)| *at)
    }

    /// Sends every delayed request that is due.
    pub(crate) fn fire_due(&mut self, now: Duration) {
        self.set_clock(now);
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let request = entry.remove();
            self.send_pending(request);
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
