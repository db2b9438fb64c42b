//! What the clients report, checked and fed into the model: session replies and events, bare
//! writers' events, readers' output.

use std::collections::BTreeSet;

use tidewal_core::{AppendError, AppendId, Event, FatalError, ReadEvent, Record, SessionEvent};

use crate::actors::Machine;
use crate::model::{payload_id, View};
use crate::replies::{Fact, Outcome};
use crate::world::World;

impl World {
    /// After each call into a session (and after dropping one): what its writer accepted,
    /// then every reply answered since, in the order they were answered.
    pub(crate) fn settle_replies(&mut self, client: usize) -> Result<(), String> {
        let (now, timeout) = (self.local_now(client), self.backpressure_timeout);
        let answers = self.log.take();
        for a in &answers {
            if let Outcome::Append(Err(tidewal_core::Error::BackpressureTimeout { .. })) = a.outcome
            {
                self.clients[a.client].ledger.not_taken(a.ticket);
            }
        }
        let c = &self.clients[client];
        if let (Some(Machine::Session(s)), true) = (&c.machine, c.ledger.is_waiting()) {
            let total = s.stats().writer.appends;
            self.clients[client]
                .ledger
                .accepted(total, now, timeout)
                .map_err(|e| format!("c{client}: {e}"))?;
        }
        for a in answers {
            let c = a.client;
            self.note(format_args!("c{c} t{} answered {:?}", a.ticket, a.outcome));
            let local = self.local_now(c);
            let fact = self.clients[c]
                .ledger
                .answer(a.ticket, a.outcome, local, timeout)
                .map_err(|e| format!("c{c}: {e}"))?;
            match fact {
                Fact::Nothing => {}
                Fact::Ready(epoch) => {
                    if let Some(Machine::Session(s)) = &self.clients[c].machine {
                        let stats = s.stats().writer;
                        if stats.epoch != epoch {
                            return Err(format!(
                                "c{c} ready with epoch {epoch}, its writer has {}",
                                stats.epoch
                            ));
                        }
                    }
                    let view = self.replay_of(c, epoch)?;
                    self.opened(c, epoch, view)?;
                }
                Fact::Acked(ids, position) => self.durable(c, ids, position)?,
                Fact::Never(ids, why) => {
                    for id in ids {
                        if let Some(p) = self.model.landed.get(&id) {
                            return Err(format!("c{c}: payload {id} landed at {p}, but {why}"));
                        }
                        self.model.never.insert(id, why.clone());
                    }
                }
                Fact::Generation(g) => {
                    // Some manifest that landed lists it: a newer writer may have merged or
                    // dropped it since (a paused writer hears of its commit late).
                    let landed = self.model.history.by_version.values().flatten();
                    if !landed
                        .into_iter()
                        .any(|m| m.generations.iter().any(|r| r.id == g))
                    {
                        return Err(format!("c{c}: generation {g} flushed, in no manifest"));
                    }
                }
            }
        }
        self.clients[client]
            .ledger
            .settled()
            .map_err(|e| format!("c{client}: {e}"))
    }

    pub(crate) fn session_event(&mut self, client: usize, e: SessionEvent) -> Result<(), String> {
        self.note(format_args!("c{client} session event {e:?}"));
        match e {
            SessionEvent::Fenced(e) => self.clients[client]
                .ledger
                .fenced(e)
                .map_err(|e| format!("c{client}: {e}")),
            SessionEvent::Retained(d) => self.retained(client, d),
            _ => Ok(()),
        }
    }

    /// What the writer of `epoch` replayed, from the store as it stood when its fence landed.
    fn replay_of(&self, client: usize, epoch: u64) -> Result<View, String> {
        match self.model.replays.get(&epoch) {
            Some(Ok(view)) => Ok(view.clone()),
            Some(Err(e)) => Err(format!("c{client} ready with epoch {epoch}, but {e}")),
            None => Err(format!(
                "c{client} ready with epoch {epoch}, no fence of it landed"
            )),
        }
    }

    /// A writer owns the log: its replay is a valid run of the log that holds everything an
    /// older epoch acknowledged.
    fn opened(&mut self, client: usize, epoch: u64, (items, cursor): View) -> Result<(), String> {
        self.clients[client].epoch = epoch;
        self.clients[client].ready = true;
        if self.clients[client].retains {
            self.model.retention.policy_epochs.insert(epoch);
        }
        let who = format!("writer c{client} (epoch {epoch}) at open");
        self.model.check_sequence(&who, &items, &self.epochs())?;
        let view: BTreeSet<u64> = items.iter().map(|&(_, id)| id).collect();
        // Every append acknowledged by an older epoch must be here. (A newer writer may
        // already have acknowledged more: then this one learned of its own Ready late and is
        // a zombie that will fail on its first put.)
        for (&id, &pos) in &self.model.acked {
            let acker = self.clients[self.model.owner[id as usize]].epoch;
            if acker < epoch && pos >= cursor && !view.contains(&id) {
                return Err(format!(
                    "{who}: acked payload {id} at {pos} missing from replay"
                ));
            }
        }
        self.clients[client].view = view;
        self.clients[client].view_cursor = cursor;
        Ok(())
    }

    /// A writer acknowledged `ids` at `position`: they landed there, and no newer open writer
    /// lacks them (at most one writer acknowledges).
    fn durable(&mut self, client: usize, ids: Vec<u64>, position: u64) -> Result<(), String> {
        let epoch = self.clients[client].epoch;
        for id in ids {
            match self.model.landed.get(&id) {
                Some(&p) if p == position => {}
                other => {
                    return Err(format!(
                        "c{client} acked p{id} at {position}, store has {other:?}"
                    ))
                }
            }
            for (i, other) in self.clients.iter().enumerate() {
                if other.ready
                    && other.epoch > epoch
                    && !other.view.contains(&id)
                    && position >= other.view_cursor
                {
                    return Err(format!(
                        "c{client} (epoch {epoch}) acked p{id} at {position} after c{i} (epoch {}) opened without it",
                        other.epoch
                    ));
                }
            }
            // Acknowledged late (a zombie's answer) after a restore left it out: owed again
            // only if a later restore brings it back.
            if self.model.restores.away.contains(&id) {
                self.model.restores.away_acked.insert(id, position);
                continue;
            }
            self.model.acked.insert(id, position);
        }
        Ok(())
    }

    /// Records a bare writer's append; `retry` marks a retry at `Writable`, which must not be
    /// refused for backpressure again (a host retrying at once would spin).
    pub(crate) fn appended(
        &mut self,
        client: usize,
        ids: Vec<u64>,
        records: Vec<Record>,
        result: Result<AppendId, AppendError>,
        retry: bool,
    ) -> Result<(), String> {
        match result {
            Ok(aid) => {
                debug_assert_eq!(aid.0 as usize, self.clients[client].appends.len());
                self.note(format_args!("c{client} append {ids:?} as a{}", aid.0));
                self.clients[client].appends.push(ids);
            }
            Err(AppendError::Backpressure { .. }) if retry => {
                return Err(format!(
                    "c{client}: append {ids:?} refused again right after Writable"
                ))
            }
            Err(AppendError::Backpressure { .. }) => {
                let c = &mut self.clients[client];
                c.blocked = true;
                c.refused = Some((ids, records));
            }
            Err(AppendError::Closed) | Err(AppendError::Failed(_)) => {}
            Err(e) => return Err(format!("c{client}: valid append refused: {e}")),
        }
        Ok(())
    }

    pub(crate) fn writer_event(&mut self, client: usize, e: Event) -> Result<(), String> {
        self.note(format_args!("c{client} event {e:?}"));
        match e {
            Event::Ready {
                epoch,
                replayed_records,
                ..
            } => {
                self.clients[client].epoch = epoch;
                let view = self.writer_view(client)?;
                let replay = self.replay_of(client, epoch)?;
                let same = if self.wcfg.wal_only {
                    replay.0.len() as u64 == replayed_records
                } else {
                    view == replay
                };
                if !same {
                    return Err(format!(
                        "c{client} replayed {} records ({replayed_records} walked), its walk to its fence holds {}",
                        view.0.len(),
                        replay.0.len()
                    ));
                }
                self.opened(client, epoch, view)?;
            }
            Event::Durable {
                last_append,
                position,
            } => {
                let c = &mut self.clients[client];
                let newly: Vec<u64> = c.appends[c.acked..=last_append.0 as usize].concat();
                c.acked = last_append.0 as usize + 1;
                self.durable(client, newly, position)?;
            }
            Event::Writable => {
                self.clients[client].blocked = false;
                if let Some((ids, records)) = self.clients[client].refused.take() {
                    let now = self.local_now(client);
                    if let Some(Machine::Writer(w)) = &mut self.clients[client].machine {
                        let result = w.append_group(records.clone(), now);
                        self.appended(client, ids, records, result, true)?;
                    }
                }
            }
            Event::Retained(d) => self.retained(client, d)?,
            Event::Restored(r) => self.restored(client, r)?,
            Event::DropRefused(r) => self.drop_refused(client, r)?,
            Event::Closed => {
                self.clients[client].closed = true;
                self.clients[client].machine = None;
            }
            Event::Fatal(f) => {
                let allowed = matches!(
                    f,
                    FatalError::Fenced { .. } | FatalError::Contended | FatalError::Store { .. }
                );
                if !allowed {
                    return Err(format!("c{client} failed: {f}"));
                }
                self.clients[client].failure = Some(f);
                self.clients[client].machine = None;
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn reader_event(&mut self, client: usize, e: ReadEvent) -> Result<(), String> {
        if e.bytes() > 0 {
            self.took(client, e.bytes());
        }
        match e {
            ReadEvent::Records { position, records } => {
                self.note(format_args!(
                    "c{client} read {position} ({} records)",
                    records.len()
                ));
                let c = &mut self.clients[client];
                if position < c.dropped_at_spawn {
                    return Err(format!(
                        "reader c{client} reported {position}, below dropped_before {} of the manifest when it started",
                        c.dropped_at_spawn
                    ));
                }
                let (from, until) = c.range;
                if position < from || until.is_some_and(|u| position >= u) {
                    return Err(format!(
                        "reader c{client} reported {position} outside its range {from}..{until:?}"
                    ));
                }
                for r in records {
                    let id = payload_id(&r.payload).ok_or("short payload")?;
                    // A reader from a time starts with an entry at or past it (or unknown).
                    if let (Some(t), true) = (c.since, c.read.is_empty()) {
                        let time = self.model.time.get(&id).copied().flatten();
                        if time.is_some_and(|time| time < t) {
                            return Err(format!(
                                "reader c{client} from time {t} first reported {position} of time {time:?}"
                            ));
                        }
                    }
                    if let Some(t) = c.until_time {
                        let time = self.model.time.get(&id).copied().flatten();
                        if time.is_some_and(|time| time > t) {
                            return Err(format!(
                                "reader c{client} until time {t} reported {position} of time {time:?}"
                            ));
                        }
                    }
                    c.read.push((position, id));
                    for b in position
                        .to_le_bytes()
                        .iter()
                        .chain(r.payload.chunks().iter().flatten())
                    {
                        c.read_digest =
                            (c.read_digest ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                let who = format!("reader c{client}");
                self.model
                    .check_sequence(&who, &self.clients[client].read, &self.epochs())?;
            }
            ReadEvent::CaughtUp { position } => {
                self.note(format_args!("c{client} caught up at {position}"));
                self.check_history_reader(client, position)?;
                // A reader as of a version was just checked against that version exactly; the
                // log now may hold more (a later restore brought entries back, seed 66844).
                if self.clients[client].as_of.is_some() {
                    return Ok(());
                }
                // Everything acknowledged below where it stands must have been read (retention
                // may have dropped what lies below the points asked for).
                let read: BTreeSet<u64> = self.clients[client]
                    .read
                    .iter()
                    .map(|&(_, id)| id)
                    .collect();
                let floor = self.model.truncated_to;
                // ... and at or past where it started, below where it stops.
                let (from, until) = self.clients[client].range;
                let floor = floor.max(from);
                let floor = match self.clients[client].since {
                    Some(t) => floor.max(self.model.first_since(t, floor)?),
                    None => floor,
                };
                let end = until.map_or(position, |u| u.min(position));
                // What a restore brought back after it started, it may have read without.
                let spawned = self.clients[client].restores_at_spawn;
                let back = &self.model.restores.back;
                let owed = |id: &u64| back.get(id).is_none_or(|&at| at <= spawned);
                for (&id, &pos) in &self.model.acked {
                    if pos >= floor && pos < end && !read.contains(&id) && owed(&id) {
                        return Err(format!(
                            "reader c{client} caught up at {position} without acked p{id} at {pos}"
                        ));
                    }
                }
            }
            ReadEvent::Fatal(f) => {
                self.note(format_args!("c{client} reader failed: {f}"));
                if self.clients[client].tolerate_failure {
                    self.clients[client].failure = Some(f);
                    return Ok(());
                }
                if self.history_failure(client, &f)? {
                    self.clients[client].machine = None;
                    return Ok(());
                }
                // A start below what the log still holds: refused, naming a first position
                // that some truncate or drop asked for and that lies past the start.
                let refused_start = match f {
                    FatalError::Truncated { first_available } => {
                        self.clients[client].range.0 < first_available
                            && first_available <= self.model.truncated_to
                    }
                    _ => false,
                };
                if !matches!(f, FatalError::Store { .. }) && !refused_start {
                    return Err(format!("reader c{client} failed: {f}"));
                }
                self.clients[client].machine = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// A bare writer's log at open: its manifest's generations, then its memtable (WAL-only
    /// keeps no memtable: then what its walk replayed, read back from the store).
    pub(crate) fn writer_view(&mut self, client: usize) -> Result<View, String> {
        let Some(Machine::Writer(w)) = &self.clients[client].machine else {
            return Ok((Vec::new(), 0));
        };
        let m = w.manifest().cloned().ok_or("ready without a manifest")?;
        if m.wal_only {
            return self.replay_of(client, w.epoch());
        }
        let mut items = self.model.generations(&self.net.store, &self.codec, &m)?;
        let Some(Machine::Writer(w)) = &self.clients[client].machine else {
            unreachable!()
        };
        for e in w.memtable() {
            for r in &e.records {
                items.push((e.position, payload_id(&r.payload).ok_or("short payload")?));
            }
        }
        items.retain(|&(pos, _)| pos >= m.dropped_before);
        Ok((items, m.dropped_before))
    }
}
