//! Named consumers in the simulation: instances that claim a name, read while writers run,
//! commit at random points, crash (their state is lost) and come back as new instances; and
//! the checks of PROTOCOL.md §6 on them.
//!
//! - A claim's position is at or past every commit of the name acknowledged so far, and is a
//!   position some instance asked to commit (or 0): a resume never re-reads what an
//!   acknowledged commit covers, nor skips what no commit covered.
//! - What an instance reads is checked like a reader of `position..` (the log's acknowledged
//!   entries from there, in order, no gaps, no repeats).
//! - In version order, the acknowledged versions of a name (claims and commits) carry
//!   non-decreasing claims and positions: no instance's commit is acknowledged at a version
//!   past a later instance's claim.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tidewal_core::{
    Consumer, ConsumerConfig, ConsumerError, ConsumerEvent, FatalError, ReaderConfig,
};

use crate::actors::{Client, Machine};
use crate::world::{Ev, World};

/// The names instances take: few, so that instances of one name overlap and fence.
const NAMES: [&str; 2] = ["n0", "n.1"];

/// What the run learned about consumers.
#[derive(Default)]
pub(crate) struct Consumers {
    /// Per name: acknowledged versions → (claim, position).
    acked: BTreeMap<String, BTreeMap<u64, (u64, u64)>>,
    /// Per name: every position an instance asked to commit.
    asked: BTreeMap<String, BTreeSet<u64>>,
    /// Per name: positions asked to commit below the log's first position at the time (the
    /// log had dropped them before: nothing there to consume). Their resume is refused with
    /// `Truncated` whatever retention does (PROTOCOL.md §7).
    below_first: BTreeSet<(String, u64)>,
    /// Commits acknowledged, instances fenced, resumes at a non-zero position.
    pub(crate) commits: u64,
    pub(crate) fenced: u64,
    pub(crate) resumes: u64,
}

impl Consumers {
    /// An acknowledged version: checked against every other one of the name.
    fn acknowledge(
        &mut self,
        name: &str,
        version: u64,
        claim: u64,
        position: u64,
    ) -> Result<(), String> {
        let versions = self.acked.entry(name.into()).or_default();
        if let Some(&(c, p)) = versions.range(..version).next_back().map(|(_, v)| v) {
            if c > claim || p > position {
                return Err(format!(
                    "consumer {name}: v{version} (claim {claim}, position {position}) acknowledged after an earlier version by claim {c} at {p}"
                ));
            }
        }
        if let Some(&(c, p)) = versions.range(version + 1..).next().map(|(_, v)| v) {
            if c < claim || p < position {
                return Err(format!(
                    "consumer {name}: v{version} (claim {claim}, position {position}) acknowledged below a later version by claim {c} at {p}"
                ));
            }
        }
        if versions.insert(version, (claim, position)).is_some() {
            return Err(format!("consumer {name}: v{version} acknowledged twice"));
        }
        Ok(())
    }

    fn highest_acked(&self, name: &str) -> u64 {
        self.acked
            .get(name)
            .and_then(|v| v.values().map(|&(_, p)| p).max())
            .unwrap_or(0)
    }
}

impl World {
    /// A new instance of a random name (or of `name`), following the log.
    pub(crate) fn spawn_consumer(
        &mut self,
        name: Option<&str>,
        follow: bool,
    ) -> Result<usize, String> {
        let name = match name {
            Some(n) => n.to_string(),
            None => NAMES[self.rng.range(0, NAMES.len() as u64 - 1) as usize].to_string(),
        };
        let mut cfg = ConsumerConfig::new("log", &name);
        cfg.reader = ReaderConfig {
            prefix: "log".into(),
            follow,
            poll_interval: Duration::from_millis(20),
            read_ahead: self.rng.range(1, 8) as u32,
            // As a reader's: its host releases lazily, so a consumer that forgets to pass
            // releases on to its reader stalls.
            read_ahead_bytes: self.rng.range(1, 600),
            retry: self.wcfg.retry.clone(),
            ..ReaderConfig::default()
        };
        let read_bound = cfg.reader.read_ahead_bytes;
        cfg.keep_versions = self.rng.range(2, 4) as u32;
        cfg.claim_attempts = 50;
        let seed = self.rng.u64();
        let client = self.clients.len();
        let consumer = Consumer::new(cfg, Box::new(self.codec.clone()), seed, self.now)
            .map_err(|e| format!("a valid consumer refused: {e}"))?;
        self.note(format_args!(
            "c{client} spawn consumer {name} follow={follow}"
        ));
        let slowness = if self.rng.chance(0.3) {
            self.rng.range(2, 12)
        } else {
            1
        };
        self.clients.push(Client {
            slowness,
            machine: Some(Machine::Consumer(Box::new(consumer))),
            consumer: Some(name),
            // Nothing may be read before the claim says where.
            range: (u64::MAX, None),
            read_bound,
            restores_at_spawn: self.model.restores.committed,
            ..Client::default()
        });
        self.drain(client)?;
        if follow {
            let at = self.now + Duration::from_millis(self.rng.range(1, 20));
            self.schedule(at, Ev::Act { client });
        }
        Ok(client)
    }

    /// A consumer's caller: commits what it has read (or part of it), sometimes asks for a
    /// commit it must be refused, crashes, closes.
    pub(crate) fn act_consumer(&mut self, client: usize) -> Result<(), String> {
        let roll = self.rng.range(0, 999);
        let name = self.clients[client].consumer.clone().unwrap_or_default();
        if roll < 40 {
            self.note(format_args!("c{client} consumer CRASH"));
            self.clients[client].machine = None;
            return Ok(());
        }
        let Some(Machine::Consumer(c)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        if c.is_fenced() && roll < 300 {
            // Its caller learned it lost the name and lets it go (it kept reading meanwhile).
            self.note(format_args!("c{client} lets its fenced consumer go"));
            self.clients[client].machine = None;
            return Ok(());
        }
        if roll < 50 {
            c.close();
            self.note(format_args!("c{client} consumer close"));
            return self.drain(client);
        }
        if roll < 600 {
            let asked = self.clients[client].asked;
            let Some(Machine::Consumer(c)) = &mut self.clients[client].machine else {
                return Ok(());
            };
            let delivered = c.delivered();
            let floor = asked.max(c.committed());
            let position = if roll < 80 && floor > 0 {
                floor - 1 // must be refused
            } else {
                self.rng.range(floor.min(delivered), delivered)
            };
            let result = c.commit(position);
            self.note(format_args!("c{client} commit {position}: {result:?}"));
            match result {
                Ok(()) => {
                    self.clients[client].asked = position;
                    let first = self.model.high.as_ref().map_or(0, |m| m.dropped_before);
                    if position < first {
                        self.consumers.below_first.insert((name.clone(), position));
                    }
                    self.model_consumers()
                        .asked
                        .entry(name)
                        .or_default()
                        .insert(position);
                }
                Err(ConsumerError::CommitBelow { .. }) if position < floor => {}
                Err(
                    ConsumerError::NotClaimed
                    | ConsumerError::Fenced { .. }
                    | ConsumerError::Closed,
                ) => {}
                Err(e) => {
                    return Err(format!(
                        "c{client}: a valid commit of {position} refused: {e}"
                    ))
                }
            }
            self.drain(client)?;
        }
        if self.clients[client].machine.is_some() {
            let at = self.now + Duration::from_millis(self.rng.range(1, 30));
            self.schedule(at, Ev::Act { client });
        }
        Ok(())
    }

    fn model_consumers(&mut self) -> &mut Consumers {
        &mut self.consumers
    }

    pub(crate) fn consumer_event(&mut self, client: usize, e: ConsumerEvent) -> Result<(), String> {
        let name = self.clients[client].consumer.clone().unwrap_or_default();
        match e {
            ConsumerEvent::Read(read) => {
                let caught_up = matches!(read, tidewal_core::ReadEvent::CaughtUp { .. });
                self.reader_event(client, read)?;
                self.clients[client].caught_up |= caught_up;
            }
            ConsumerEvent::Claimed { version, position } => {
                self.note(format_args!(
                    "c{client} consumer {name} claimed v{version} at {position}"
                ));
                let highest = self.consumers.highest_acked(&name);
                // A slow instance's claim may be overtaken before its answer arrives: a newer
                // version of the name exists, the claim held when its LIST ran, and the
                // instance is fenced at its first commit. Only a claim still the newest must
                // resume at or past every acknowledged commit.
                let folder = format!("log/consumers/{name}/");
                let overtaken = self.net.store.paths().any(|p| {
                    p.strip_prefix(&folder)
                        .and_then(|v| v.strip_suffix(".json"))
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|v| v > version)
                });
                if position < highest && !overtaken {
                    return Err(format!(
                        "c{client}: consumer {name} resumed at {position}, below the acknowledged commit at {highest}"
                    ));
                }
                let asked = self.consumers.asked.get(&name);
                if position != 0 && !asked.is_some_and(|a| a.contains(&position)) {
                    return Err(format!(
                        "c{client}: consumer {name} resumed at {position}, which no instance committed"
                    ));
                }
                self.consumers.resumes += u64::from(position > 0);
                self.consumers
                    .acknowledge(&name, version, version, position)?;
                let c = &mut self.clients[client];
                c.claim = version;
                c.asked = position;
                c.range = (position, None);
            }
            ConsumerEvent::Committed { position, version } => {
                self.note(format_args!(
                    "c{client} consumer {name} committed {position} as v{version}"
                ));
                let claim = self.clients[client].claim;
                self.consumers.commits += 1;
                self.consumers
                    .acknowledge(&name, version, claim, position)?;
            }
            ConsumerEvent::CommitFailed { position, error } => {
                self.note(format_args!(
                    "c{client} consumer {name} commit {position} failed: {error}"
                ));
                if !matches!(
                    error,
                    ConsumerError::Fenced { .. } | ConsumerError::Failed(_)
                ) {
                    return Err(format!("c{client}: commit of {position} failed: {error}"));
                }
            }
            ConsumerEvent::Fenced => {
                self.note(format_args!("c{client} consumer {name} fenced"));
                self.consumers.fenced += 1;
            }
            ConsumerEvent::Fatal(f) => {
                self.note(format_args!("c{client} consumer {name} failed: {f}"));
                // A committed position the log no longer holds is refused, as a reader's start
                // is: only a forced drop (or truncate) may pass a consumer (`retention.rs`).
                let resumed = (name.clone(), self.clients[client].range.0);
                let truncated = matches!(f, FatalError::Truncated { first_available }
                    if first_available <= self.model.retention.forced_to
                        || self.consumers.below_first.contains(&resumed));
                if !matches!(f, FatalError::Store { .. } | FatalError::Contended) && !truncated {
                    return Err(format!("c{client}: consumer {name} failed: {f}"));
                }
                self.clients[client].machine = None;
            }
            ConsumerEvent::Closed => {
                self.note(format_args!("c{client} consumer {name} closed"));
                self.clients[client].machine = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// The finale's check: a fresh instance of every name resumes at or past its last
    /// acknowledged commit and reads exactly the acknowledged entries from there.
    pub(crate) fn resume_every_consumer(&mut self, deadline: Duration) -> Result<(), String> {
        for name in NAMES {
            if !self.consumers.asked.contains_key(name) {
                continue;
            }
            let c = self.spawn_consumer(Some(name), false)?;
            let finished = self.run_until(deadline, |w| {
                let client = &w.clients[c];
                client.machine.is_none() || client.caught_up
            })?;
            if !finished {
                return Err(format!("final consumer {name} did not catch up"));
            }
            self.clients[c].machine = None;
        }
        Ok(())
    }
}
