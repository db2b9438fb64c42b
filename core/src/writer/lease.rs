//! The writer lease (PROTOCOL.md §4 "The writer lease"): a writer acknowledges only while
//! `now < lease_start + L` on its own clock, `lease_start` being the `now` at which its newest
//! clean ownership check (a LIST of the manifests after its newest committed version that
//! found nothing newer) was sent. Acks due with the lease expired wait for one renewal; an
//! active writer renews every `L / 3`, an idle one never.

use alloc::collections::VecDeque;
use core::time::Duration;

use super::{AppendId, Event, Phase, Purpose, Writer};
use crate::config::WriterConfig;
use crate::io::{Op, Response};
use crate::requests::Pending;

/// How much faster any writer's clock may run than any other's over any interval, as
/// `RHO_NUM / RHO_DEN` (0.1): a protocol constant. Hosts' clocks are monotonic and
/// NTP-disciplined (slewed by at most 500 ppm); a paused VM's clock stops, it does not speed.
pub const RHO_NUM: u32 = 1;
/// See [`RHO_NUM`].
pub const RHO_DEN: u32 = 10;

/// The lease a writer writes into a log that has none, in ms.
pub(super) fn lease_ms(cfg: &WriterConfig) -> u64 {
    cfg.lease.as_millis().min(u128::from(u32::MAX)) as u64
}

/// How old a collector's claim must be before it deletes a fence: `L * (1 + rho) + margin`.
pub fn collect_after(lease: Duration, margin: Duration) -> Duration {
    lease + lease * RHO_NUM / RHO_DEN + margin
}

/// The lease's state.
#[derive(Default)]
pub(super) struct Lease {
    /// The `now` at which the newest clean check was sent.
    start: Option<Duration>,
    /// A renewal LIST is out.
    renewing: bool,
    /// When the last renewal was sent (active writers renew at most once per `L / 3`).
    last_renewal: Option<Duration>,
    /// Acks waiting for a valid lease, in order.
    held: VecDeque<(AppendId, u64)>,
    /// How many of `held` were counted as held already.
    counted: usize,
}

impl Lease {
    /// Whether acks wait for the lease.
    pub(super) fn holds_acks(&self) -> bool {
        !self.held.is_empty()
    }
}

impl Writer {
    /// The log's lease `L` (the manifest's once claimed; this writer's setting before).
    pub(super) fn lease_length(&self) -> Duration {
        let ms = self.manifest.as_ref().and_then(|m| m.lease_ms);
        ms.map_or(self.cfg.lease, Duration::from_millis)
    }

    fn lease_valid(&self) -> bool {
        let length = self.lease_length();
        self.lease.start.is_some_and(|s| self.now < s + length)
    }

    /// A check sent at `sent_at` found no newer manifest: the lease runs from there.
    pub(super) fn clean_check(&mut self, sent_at: Duration) {
        self.lease.start = Some(self.lease.start.map_or(sent_at, |s| s.max(sent_at)));
    }

    /// Every append up to `last_append` is durable at `position`: acknowledged once the lease
    /// allows (at once while it is valid).
    pub(super) fn ack(&mut self, last_append: AppendId, position: u64) {
        self.lease.held.push_back((last_append, position));
    }

    /// Emits the acks that wait, if the lease is valid; else asks for a renewal.
    pub(super) fn release_acks(&mut self) {
        if self.lease.held.is_empty() || self.phase != Phase::Ready {
            return;
        }
        if self.lease_valid() {
            self.lease.counted = 0;
            while let Some((last_append, position)) = self.lease.held.pop_front() {
                self.events.push_back(Event::Durable {
                    last_append,
                    position,
                });
            }
            return;
        }
        self.counters.acks_held += (self.lease.held.len() - self.lease.counted) as u64;
        self.lease.counted = self.lease.held.len();
        self.renew();
    }

    /// Whether the writer has work that an ack would end (then it keeps its lease fresh).
    fn active(&self) -> bool {
        self.pipeline.has_work() || self.lease.holds_acks()
    }

    /// When an active writer renews next (none while idle, while a renewal or a commit is
    /// out: a commit's post-check renews).
    pub(super) fn renew_deadline(&self) -> Option<Duration> {
        if self.phase != Phase::Ready || self.lease.renewing || self.commit.is_some() {
            return None;
        }
        if !self.active() {
            return None;
        }
        let third = self.lease_length() / 3;
        let start = self.lease.start?;
        let due = start + third;
        Some(self.lease.last_renewal.map_or(due, |r| due.max(r + third)))
    }

    /// Renews if an active writer's renewal is due.
    pub(super) fn maybe_renew(&mut self) {
        if self.renew_deadline().is_some_and(|at| at <= self.now) {
            self.renew();
        }
    }

    /// Sends one renewal LIST, unless one (or a commit, whose post-check renews) is out.
    fn renew(&mut self) {
        if self.lease.renewing || self.commit.is_some() || !self.is_live() {
            return;
        }
        let Some(version) = self.manifest.as_ref().map(|m| m.version) else {
            return;
        };
        self.lease.renewing = true;
        self.lease.last_renewal = Some(self.now);
        self.counters.lease_renewals += 1;
        let op = Op::List {
            prefix: self.paths.manifest_dir(),
            after: Some(self.paths.manifest(version)),
        };
        self.io.send(op, Purpose::Renew);
    }

    /// The renewal's answer: versions up to our newest committed one are ours (committed
    /// while it was out); the version our running commit creates is inconclusive (its
    /// post-check decides); anything else is a newer writer: fenced.
    pub(super) fn on_renew(&mut self, request: Pending<Purpose>, resp: Response) {
        let items = match resp.into_list() {
            Ok(items) => items,
            Err(e) => return self.retry(request, &e),
        };
        self.lease.renewing = false;
        let own = self.manifest.as_ref().map_or(0, |m| m.version);
        let running = self.commit.as_ref().map(|c| c.manifest.version);
        let mut inconclusive = false;
        for item in &items {
            match self.paths.manifest_version(&item.path) {
                Some(v) if v <= own => {}
                Some(v) if Some(v) == running => inconclusive = true,
                Some(_) => return self.fenced(),
                None => {}
            }
        }
        if !inconclusive {
            self.clean_check(request.sent_at);
        }
    }
}
