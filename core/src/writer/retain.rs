//! Drops and truncates (PROTOCOL.md §4 "Retention"): the policy's (after a generation or
//! compaction commit, at most once per `interval`) and every `drop_before` or `truncate`,
//! one *round* at a time, asked-for ones in the order asked (each answered by one event).
//! A round checked against the named consumers (all but a forced one) is:
//!
//! 1. an intent commit sets the manifest's `dropping` to the round's point;
//! 2. the named consumers are listed (the core's [`ConsumerLister`], its requests sent
//!    through this writer);
//! 3. one closing commit drops (or truncates) to the point, lowered to the lowest consumer,
//!    and clears `dropping`; a round with nothing left to drop only clears it.
//!
//! Why the intent first: a consumer created after the listing was not seen by it, so it must
//! not start below the drop. It claims its name and then reads the manifest; a claim that the
//! listing missed came after the listing, so after the intent, and its reader sees `dropping`
//! (every commit of the round carries it) and waits for the closing commit.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use super::commit::CommitKind;
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

/// Which command a round answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RoundKind {
    /// The retention policy (answered by [`Event::Retained`], when it dropped something).
    Policy,
    /// `drop_before` (answered by [`Event::Dropped`] or [`Event::DropRefused`]).
    Drop,
    /// A WAL-only `truncate` (answered by [`Event::Truncated`] or [`Event::DropRefused`]).
    Truncate,
}

/// Why a drop or truncate asked for without `force` dropped nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropRefusal {
    /// A named consumer has not consumed past the point: the drop would remove entries it
    /// has yet to read. Retry with `force` to pass it.
    HeldBack(HeldBack),
    /// The consumers could not be listed (after this writer's retries): nothing was dropped.
    Listing(FatalError),
}

impl core::fmt::Display for DropRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DropRefusal::HeldBack(h) => write!(f, "held back: {h}"),
            DropRefusal::Listing(e) => write!(f, "the named consumers could not be listed: {e}"),
        }
    }
}

enum Step {
    /// The intent waits for the commit slot.
    Announce,
    /// The intent's commit is in the slot.
    Announcing,
    /// The intent landed: the consumers are being listed.
    Listing(alloc::boxed::Box<ConsumerLister>),
    /// The listing's lowest consumer (`None`: none named), until the closing commit.
    Listed(Result<Option<HeldBack>, FatalError>),
    /// The closing commit is in the slot; what the round answers once it lands.
    Closing(Option<DropRefusal>),
}

pub(super) struct Round {
    kind: RoundKind,
    /// The point the intent announces: the round never drops past it.
    point: u64,
    step: Step,
}

/// The policy's timing and the running round.
#[derive(Default)]
pub(super) struct Retain {
    /// A commit since the last policy round: one is wanted.
    due: bool,
    /// When the last policy round started (rounds are `interval` apart).
    last: Option<Duration>,
    /// Drops and truncates asked for, in order: `(kind, point, force)`.
    asked: VecDeque<(RoundKind, u64, bool)>,
    round: Option<Round>,
}

impl Writer {
    /// A generation or compaction was committed: a policy round is wanted.
    pub(super) fn want_retention(&mut self) {
        self.retain.due = self.cfg.retention.is_some();
    }

    /// A round runs or waits to run (a closing writer finishes it first).
    pub(super) fn dropping_in_progress(&self) -> bool {
        self.retain.round.is_some() || !self.retain.asked.is_empty()
    }

    fn policy_idle(&self) -> bool {
        self.retain.due && !self.dropping_in_progress() && self.phase == Phase::Ready
    }

    /// When a wanted policy round may start, if it must wait for the interval (a closing
    /// writer does not wait: it runs a round after its last flush only if one is due by then).
    pub(super) fn retain_deadline(&self) -> Option<Duration> {
        if self.closing {
            return None;
        }
        let interval = self.cfg.retention.as_ref()?.interval;
        let at = self.retain.last?.saturating_add(interval);
        (self.policy_idle() && at > self.now).then_some(at)
    }

    /// A drop (`kind` Drop) or truncate to `point`, checked against the consumers unless
    /// `force`: it runs after the rounds asked before it.
    pub(super) fn ask_round(&mut self, kind: RoundKind, point: u64, force: bool) {
        self.retain.asked.push_back((kind, point, force));
        self.start_asked();
    }

    /// Starts the next asked-for round once none runs; one with nothing to do is answered
    /// at once (in its turn, so answers keep the order asked).
    fn start_asked(&mut self) {
        while self.retain.round.is_none() {
            let Some((kind, point, force)) = self.retain.asked.pop_front() else {
                return;
            };
            let Some(m) = &self.manifest else { return };
            let (first, cursor) = (m.dropped_before, m.replay_cursor);
            match kind {
                RoundKind::Drop if point <= first => {
                    self.events.push_back(Event::Dropped(super::Dropped {
                        first_position: first,
                        ..super::Dropped::default()
                    }));
                }
                // (A truncate to the cursor may still move it past a fence to the first
                // data position.)
                RoundKind::Truncate if !self.build_truncate(&mut m.clone(), point) => {
                    self.events.push_back(Event::Truncated {
                        replay_cursor: cursor,
                    })
                }
                _ => {
                    // A forced round lists nothing: its closing commit is its only one.
                    let step = if force {
                        Step::Listed(Ok(None))
                    } else {
                        Step::Announce
                    };
                    self.retain.round = Some(Round { kind, point, step });
                }
            }
        }
    }

    /// Starts a wanted policy round once the interval passed. A round whose point does not
    /// move `dropped_before` writes nothing.
    pub(super) fn maybe_retain(&mut self) {
        let Some(policy) = &self.cfg.retention else {
            return;
        };
        if !self.policy_idle()
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
        let Some(point) = point_of(m, policy_count(m, policy, self.wall_now())) else {
            return;
        };
        self.counters.retention_rounds += 1;
        self.retain.round = Some(Round {
            kind: RoundKind::Policy,
            point,
            step: Step::Announce,
        });
        self.try_commit();
    }

    /// The round's commit, if it has one to make now, built on the newest manifest `m`
    /// (version raised); otherwise `m` comes back.
    pub(super) fn try_commit_round(&mut self, mut m: Manifest) -> Option<Manifest> {
        let Some(round) = self.retain.round.as_mut() else {
            return Some(m);
        };
        match &round.step {
            Step::Announce => {
                round.step = Step::Announcing;
                m.dropping = Some(round.point);
                self.start_commit(m, CommitKind::Intent);
                None
            }
            Step::Listed(_) => {
                let Some(Round {
                    kind,
                    point,
                    step: Step::Listed(listed),
                }) = self.retain.round.take()
                else {
                    return Some(m);
                };
                // A forced round set no intent: with nothing to drop it commits nothing.
                let intent = m.dropping.take().is_some();
                self.close_round(m, kind, point, listed, intent);
                None
            }
            _ => Some(m),
        }
    }

    /// Builds the closing commit: the drop (or truncate) to `point` lowered to the lowest
    /// consumer, or `dropping` cleared alone.
    fn close_round(
        &mut self,
        m: Manifest,
        kind: RoundKind,
        point: u64,
        listed: Result<Option<HeldBack>, FatalError>,
        intent: bool,
    ) {
        let lowest = match listed {
            Ok(lowest) => lowest,
            Err(e) => {
                // Left as it was: the policy tries at its next round, a command is refused.
                self.counters.retention_failures += u64::from(kind == RoundKind::Policy);
                let refusal = (kind != RoundKind::Policy).then_some(DropRefusal::Listing(e));
                return self.settle(m, kind, point, refusal);
            }
        };
        match kind {
            RoundKind::Policy => {
                let Some(policy) = &self.cfg.retention else {
                    return self.settle(m, kind, point, None);
                };
                // Recomputed on the newest manifest (a compaction meanwhile moves
                // boundaries, not entries), never past the announced point.
                let wanted = policy_count(&m, policy, self.wall_now());
                let capped = held_count(&m, wanted, Some(point));
                let count = held_count(&m, capped, lowest.as_ref().map(|h| h.position));
                if count < capped {
                    self.counters.retention_held_back += 1;
                    self.counters.retention_held_by = lowest;
                }
                match point_of(&m, count) {
                    Some(to) => self.commit_round_drop(m, kind, to, intent),
                    None => self.settle(m, kind, point, None),
                }
            }
            RoundKind::Drop | RoundKind::Truncate => match lowest {
                Some(held) if held.position < point => {
                    self.settle(m, kind, point, Some(DropRefusal::HeldBack(held)))
                }
                _ => self.commit_round_drop(m, kind, point, intent),
            },
        }
    }

    /// The closing commit of a round that drops to `to`. One that finds nothing left to drop
    /// on the newest manifest (another round got there) commits only to clear its intent.
    fn commit_round_drop(&mut self, mut m: Manifest, kind: RoundKind, to: u64, intent: bool) {
        self.retain.round = Some(Round {
            kind,
            point: to,
            step: Step::Closing(None),
        });
        let moves = match kind {
            RoundKind::Truncate => self.build_truncate(&mut m, to),
            _ => to > m.dropped_before,
        };
        match (moves, kind) {
            (true, RoundKind::Truncate) => self.start_commit(m, CommitKind::Truncate),
            (true, _) => self.commit_drop(m, to),
            (false, _) if intent => self.start_commit(m, CommitKind::Settle),
            // A forced round with nothing left to drop writes nothing.
            (false, _) => self.on_round_closed(None),
        }
    }

    /// Commits `m` with `dropping` cleared and nothing dropped.
    fn settle(&mut self, m: Manifest, kind: RoundKind, point: u64, refusal: Option<DropRefusal>) {
        self.retain.round = Some(Round {
            kind,
            point,
            step: Step::Closing(refusal),
        });
        self.start_commit(m, CommitKind::Settle);
    }

    /// The intent passed its post-check: list the consumers.
    pub(super) fn on_intent_committed(&mut self) {
        let Some(round) = self.retain.round.as_mut() else {
            return;
        };
        let nothing = Inspection {
            manifest: None,
            manifest_versions: Vec::new(),
            wal: Vec::new(),
            fence_intents: Vec::new(),
        };
        round.step = Step::Listing(alloc::boxed::Box::new(ConsumerLister::new(
            &self.cfg.prefix,
            nothing,
        )));
        self.pump_lister();
    }

    /// Sends what the listing asks for; takes its answer once it has one.
    fn pump_lister(&mut self) {
        let Some(round) = self.retain.round.as_mut() else {
            return;
        };
        let Step::Listing(lister) = &mut round.step else {
            return;
        };
        loop {
            match lister.poll_output() {
                Output::Request(r) => {
                    self.io.send(r.op, Purpose::Retain { inner: r.id });
                }
                Output::Event(result) => {
                    round.step = Step::Listed(result.map(lowest));
                    return;
                }
                _ => return,
            }
        }
    }

    /// An answer to one of the listing's requests: a failed one is retried by this writer's
    /// policy first (NotFound is the listing's to read: a version collected under it).
    pub(super) fn on_retain(&mut self, inner: RequestId, request: Pending<Purpose>, r: Response) {
        let listing = matches!(
            self.retain.round,
            Some(Round {
                step: Step::Listing(_),
                ..
            })
        );
        if !listing {
            return;
        }
        let failed = match &r {
            Response::List(Err(e)) | Response::Get(Err(e)) => e.kind != StoreErrorKind::NotFound,
            _ => false,
        };
        if failed && self.io.retry(self.now, request).is_ok() {
            return;
        }
        if let Some(Round {
            step: Step::Listing(lister),
            ..
        }) = self.retain.round.as_mut()
        {
            lister.handle_response(inner, r, self.now);
        }
        self.pump_lister();
    }

    /// The round's closing commit passed its post-check: the round's answer, then the next
    /// asked-for round. `dropped`: what a drop commit removed (`drop.rs`).
    pub(super) fn on_round_closed(&mut self, dropped: Option<super::Dropped>) {
        let Some(Round {
            kind,
            step: Step::Closing(refusal),
            ..
        }) = self.retain.round.take()
        else {
            return;
        };
        let replay_cursor = self.manifest.as_ref().map_or(0, |m| m.replay_cursor);
        let first_position = self.manifest.as_ref().map_or(0, |m| m.dropped_before);
        match (kind, refusal) {
            (RoundKind::Policy, _) => {
                if let Some(d) = dropped {
                    self.events.push_back(Event::Retained(d));
                }
            }
            (_, Some(refusal)) => self.events.push_back(Event::DropRefused(refusal)),
            (RoundKind::Drop, None) => {
                self.events
                    .push_back(Event::Dropped(dropped.unwrap_or(super::Dropped {
                        first_position,
                        ..super::Dropped::default()
                    })))
            }
            (RoundKind::Truncate, None) => {
                self.events.push_back(Event::Truncated { replay_cursor })
            }
        }
        self.start_asked();
    }
}

/// The lowest committed position among the listed consumers (ties: by name).
fn lowest(consumers: Vec<ConsumerInfo>) -> Option<HeldBack> {
    consumers
        .into_iter()
        .min_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)))
        .map(|c| HeldBack {
            name: c.name,
            position: c.position,
        })
}
