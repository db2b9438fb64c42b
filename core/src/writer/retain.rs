//! Automatic retention (PROTOCOL.md §4 "Automatic retention"): after a generation or
//! compaction commit, at most once per `interval`, a round lists the named consumers (the
//! core's [`ConsumerLister`], its requests sent through this writer) and drops the leading
//! generations the policy lets go that lie wholly below the lowest of them, through the
//! drop path of `drop_before`.

use alloc::vec::Vec;
use core::time::Duration;

use super::{Event, Phase, Purpose, Writer};
use crate::consumer::{ConsumerInfo, ConsumerLister};
use crate::error::FatalError;
use crate::inspect::Inspection;
use crate::io::{RequestId, Response, StoreErrorKind};
use crate::machine::{Machine, Output};
use crate::manifest::Manifest;
use crate::policy::{held_count, point_of, policy_count};
use crate::requests::Pending;
use crate::retention::HeldBack;

/// The round's state.
#[derive(Default)]
pub(super) struct Retain {
    /// A commit since the last round: one is wanted.
    due: bool,
    /// When the last round started (rounds are `interval` apart).
    last: Option<Duration>,
    /// The running round's consumer listing.
    lister: Option<ConsumerLister>,
    /// The listing's lowest consumer (`Some(None)`: none named), until the drop is built.
    listed: Option<Option<HeldBack>>,
    /// The commit in the slot is this round's drop.
    pub(super) committing: bool,
}

impl Writer {
    /// A generation or compaction was committed: a round is wanted.
    pub(super) fn want_retention(&mut self) {
        self.retain.due = self.cfg.retention.is_some();
    }

    fn retain_idle(&self) -> bool {
        let r = &self.retain;
        r.due
            && r.lister.is_none()
            && r.listed.is_none()
            && !r.committing
            && self.phase == Phase::Ready
    }

    /// When a wanted round may start, if it must wait for the interval (a closing writer
    /// does not wait: it runs a round after its last flush only if one is due by then).
    pub(super) fn retain_deadline(&self) -> Option<Duration> {
        if self.closing {
            return None;
        }
        let interval = self.cfg.retention.as_ref()?.interval;
        let at = self.retain.last?.saturating_add(interval);
        (self.retain_idle() && at > self.now).then_some(at)
    }

    /// Starts a wanted round once the interval passed. A round whose point does not move
    /// `dropped_before` sends nothing.
    pub(super) fn maybe_retain(&mut self) {
        let Some(policy) = &self.cfg.retention else {
            return;
        };
        if !self.retain_idle()
            || self
                .retain
                .last
                .is_some_and(|t| self.now < t.saturating_add(policy.interval))
        {
            return;
        }
        self.retain.due = false;
        self.retain.last = Some(self.now);
        let Some(m) = &self.manifest else { return };
        if point_of(m, policy_count(m, policy, self.wall_now())).is_none() {
            return;
        }
        self.counters.retention_rounds += 1;
        let nothing = Inspection {
            manifest: None,
            manifest_versions: Vec::new(),
            wal: Vec::new(),
            fence_intents: Vec::new(),
        };
        self.retain.lister = Some(ConsumerLister::new(&self.cfg.prefix, nothing));
        self.pump_lister();
    }

    /// Sends what the listing asks for; takes its answer once it has one.
    fn pump_lister(&mut self) {
        let Some(mut lister) = self.retain.lister.take() else {
            return;
        };
        loop {
            match lister.poll_output() {
                Output::Request(r) => {
                    self.io.send(r.op, Purpose::Retain { inner: r.id });
                }
                Output::Event(result) => return self.consumers_listed(result),
                _ => break,
            }
        }
        self.retain.lister = Some(lister);
    }

    fn consumers_listed(&mut self, result: Result<Vec<ConsumerInfo>, FatalError>) {
        match result {
            Ok(consumers) => {
                let lowest = consumers
                    .into_iter()
                    .min_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)));
                self.retain.listed = Some(lowest.map(|c| HeldBack {
                    name: c.name,
                    position: c.position,
                }));
            }
            // Left to the next round: the log is as it was.
            Err(_) => self.counters.retention_failures += 1,
        }
    }

    /// An answer to one of the listing's requests: a failed one is retried by this writer's
    /// policy first (NotFound is the listing's to read: a version collected under it).
    pub(super) fn on_retain(&mut self, inner: RequestId, request: Pending<Purpose>, r: Response) {
        if self.retain.lister.is_none() {
            return;
        }
        let failed = match &r {
            Response::List(Err(e)) | Response::Get(Err(e)) => e.kind != StoreErrorKind::NotFound,
            _ => false,
        };
        if failed && self.io.retry(self.now, request).is_ok() {
            return;
        }
        if let Some(lister) = self.retain.lister.as_mut() {
            lister.handle_response(inner, r, self.now);
        }
        self.pump_lister();
    }

    /// Builds the round's drop on the newest manifest `m` (version raised), or hands `m`
    /// back when there is none to commit.
    pub(super) fn try_commit_retention(&mut self, m: Manifest) -> Option<Manifest> {
        let Some(lowest) = self.retain.listed.take() else {
            return Some(m);
        };
        let Some(policy) = &self.cfg.retention else {
            return Some(m);
        };
        let wanted = policy_count(&m, policy, self.wall_now());
        let count = held_count(&m, wanted, lowest.as_ref().map(|h| h.position));
        if count < wanted {
            self.counters.retention_held_back += 1;
            self.counters.retention_held_by = lowest;
        }
        let Some(to) = point_of(&m, count) else {
            return Some(m);
        };
        self.retain.committing = true;
        self.commit_drop(m, to);
        None
    }

    /// The round's drop passed its post-check (`drop.rs` counts it).
    pub(super) fn on_retained(&mut self, d: super::Dropped) {
        self.retain.committing = false;
        self.events.push_back(Event::Retained(d));
    }
}
