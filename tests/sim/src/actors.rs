//! The workload: writer clients (each a [`Session`], some a bare [`Writer`]), readers,
//! crashes, and the random commands writers issue. Writers collect garbage themselves; old
//! writers keep running as zombies until a crash or their own failure ends them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tidewal_core::{
    Consumer, ConsumerEvent, Event, FatalError, ReadEvent, Reader, ReaderConfig, Record, Request,
    RequestId, Session, SessionEvent, Start, Writer,
};

use crate::replies::{Cmd, Ledger, Outcome};
use crate::world::{Ev, World};

pub(crate) enum Machine {
    Session(Box<Session>),
    /// A writer driven without a session: the host retries refused appends at `Writable`
    /// itself, and only these truncate (`Session` has no truncate).
    Writer(Box<Writer>),
    Reader(Box<Reader>),
    /// A named consumer's instance.
    Consumer(Box<Consumer>),
}

/// One output of any machine.
pub(crate) enum Out {
    Request(Request),
    Session(SessionEvent),
    Writer(Event),
    Reader(ReadEvent),
    Consumer(ConsumerEvent),
    Wait(Option<Duration>),
}

#[derive(Default)]
pub(crate) struct Client {
    pub machine: Option<Machine>,
    pub epoch: u64,
    pub ready: bool,
    /// Payloads of the log when this writer opened.
    pub view: BTreeSet<u64>,
    pub view_cursor: u64,
    /// A session's callers.
    pub ledger: Ledger,
    /// Commands a stopped session still gets (each answered at once) before it is let go.
    pub last_words: u32,
    /// A bare writer: payload ids of each accepted append (a group holds several).
    pub appends: Vec<Vec<u64>>,
    pub acked: usize,
    /// A bare writer: an append refused for backpressure (payload ids, records), retried at
    /// `Writable` as hosts do; the client appends nothing else meanwhile.
    pub refused: Option<(Vec<u64>, Vec<Record>)>,
    /// A bare writer's append was refused and `Writable` has not come yet.
    pub blocked: bool,
    /// A reader's range: where it started (0: the beginning) and where it stops.
    pub range: (u64, Option<u64>),
    /// A reader's start path was counted (a shortcut start or a fallback).
    pub start_counted: bool,
    /// A reader's start at a time was counted (searched or fallen back).
    pub time_start_counted: bool,
    /// A reader started at a time: it reports the acknowledged entries from the first whose
    /// time is at or past this one, or unknown.
    pub since: Option<u64>,
    /// A reader as of this manifest version, or until this time (`history.rs`).
    pub as_of: Option<u64>,
    pub until_time: Option<u64>,
    /// A writer's wall clock at the sim clock's zero (`None`: it has none).
    pub wall_origin: Option<u64>,
    /// Its writer runs a retention policy (`retention.rs`).
    pub retains: bool,
    /// A reader's output.
    pub read: Vec<(u64, u64)>,
    /// FNV-1a over every (position, payload byte) a reader reported.
    pub read_digest: u64,
    /// A reader's read-ahead bound in bytes.
    pub read_bound: u64,
    /// Bytes of each event the reader's host took and has not released yet, oldest first.
    pub held: VecDeque<u64>,
    /// A release of held bytes is scheduled.
    pub release_due: bool,
    /// A reader's data GETs (slots, generations) out, by request, with their paths.
    pub data_gets: BTreeMap<RequestId, String>,
    /// Paths whose data GET failed: the reader may send them again (a retry, not read-ahead).
    pub retried_paths: BTreeSet<String>,
    pub timer_at: Option<Duration>,
    /// The instant of the latest timer wake, and how many came at it.
    pub wakes: (Duration, u32),
    /// Latency multiplier of this client's requests.
    pub slowness: u64,
    /// A reader expected to fail (the corruption check).
    pub tolerate_failure: bool,
    pub closed: bool,
    pub failure: Option<FatalError>,
    /// A consumer instance: its name, its claim's version, the highest position it asked
    /// to commit, and whether its reader caught up.
    pub consumer: Option<String>,
    pub claim: u64,
    pub asked: u64,
    pub caught_up: bool,
    /// A reader's (or consumer's) count of generations met gone, as last seen.
    pub gone_seen: u64,
    /// A writer's own clock and pause (clocks.rs); readers and consumers keep the default.
    pub clock: crate::clocks::Clock,
    /// A writer's acks held for the lease so far.
    pub acks_held: u64,
    /// A reader: the newest manifest's `dropped_before` when it started (it reads that
    /// manifest or a newer one, so it never reports below it: `retention.rs`).
    pub dropped_at_spawn: u64,
    /// A restorer (a bare writer that only restores, `restore.rs`): where it stands.
    pub restorer: Option<crate::restore::Restorer>,
    /// A reader's (or consumer's): restores committed when it started. It may have read a
    /// restored version, so it does not owe what a later restore brings back.
    pub restores_at_spawn: u64,
}

impl Client {
    /// A writer that has not stopped (what the spawner counts).
    pub fn is_live_writer(&self) -> bool {
        match &self.machine {
            Some(Machine::Session(_)) => self.ledger.terminal.is_none(),
            Some(Machine::Writer(_)) => true,
            _ => false,
        }
    }

    /// Whether it still owes something (then it must have a request out or a timer).
    pub fn owes(&self) -> bool {
        match &self.machine {
            Some(Machine::Session(_)) => self.ledger.owes(),
            Some(Machine::Writer(_)) => {
                !self.ready
                    || self.blocked
                    || self.appends.len() > self.acked
                    || self.restorer == Some(crate::restore::Restorer::Asked)
            }
            Some(Machine::Reader(r)) => !r.is_done(),
            Some(Machine::Consumer(c)) => !c.is_done(),
            None => false,
        }
    }
}

/// The records of payloads `ids` (the first 8 bytes are the id); `zero` gives the first no
/// rows (a session leaves it out, or refuses the append if it is alone).
fn records(ids: &[u64], zero: bool) -> Vec<Record> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            let filler = (id % 97) as usize;
            let mut payload = id.to_le_bytes().to_vec();
            payload.resize(8 + filler, (id % 251) as u8);
            Record::new(payload, if zero && i == 0 { 0 } else { 1 + id % 4 })
        })
        .collect()
}

impl World {
    fn slowness(&mut self) -> u64 {
        if self.rng.chance(0.3) {
            self.rng.range(2, 12)
        } else {
            1
        }
    }

    /// A new writer: a session (opened either way), or a bare writer (always for `bare`, the
    /// finale's, which must expose what it replayed).
    pub(crate) fn spawn_writer(&mut self, bare: bool) -> Result<usize, String> {
        self.spawn_writer_as(bare, bare)
    }

    /// A new writer; `finale` (the finale's, or a restorer) runs no retention policy.
    pub(crate) fn spawn_writer_as(&mut self, bare: bool, finale: bool) -> Result<usize, String> {
        let seed = self.rng.u64();
        let client = self.clients.len();
        let bare = bare || self.rng.chance(self.bare_writers);
        // Some writers record generations as writers before ranged reads did (no index in
        // the manifest): readers must read those whole and the others with ranges.
        let codec = match self.rng.chance(0.3) {
            true => self.codec.clone().unindexed(),
            false => self.codec.clone(),
        };
        let mut cfg = self.wcfg.clone();
        // A wall clock: the sim's clock plus this writer's skew, or (an older writer) none.
        cfg.unix_ms_at_origin = match self.rng.chance(0.1) {
            true => None,
            false => Some(crate::world::WALL_CLOCK_BASE - 300 + self.rng.range(0, 600)),
        };
        // Not the finale's: what it replayed is what the final reader must read.
        if !cfg.wal_only && !finale {
            cfg.retention = crate::retention::policy(&mut self.rng);
        }
        let wall_origin = cfg.unix_ms_at_origin;
        let retains = cfg.retention.is_some();
        let (cfg, codec) = (cfg, Box::new(codec));
        let clock = self.draw_clock();
        let now = clock.local(self.now);
        let mut ledger = Ledger::default();
        let machine = if bare {
            Writer::new(cfg, codec, seed, now).map(|w| Machine::Writer(Box::new(w)))
        } else {
            let ticket = ledger.issue(Cmd::Ready);
            let ready = self.log.reply(client, ticket, Outcome::Ready);
            let timeout = self.backpressure_timeout;
            let session = if self.rng.chance(0.5) {
                Session::open(cfg, codec, seed, timeout, ready)
            } else {
                Writer::new(cfg, codec, seed, now).map(|w| Session::new(w, ready, timeout))
            };
            session.map(|s| Machine::Session(Box::new(s)))
        };
        let machine = machine.map_err(|e| format!("a valid writer config refused: {e:?}"))?;
        let kind = if bare { "writer" } else { "session" };
        self.note(format_args!("c{client} spawn {kind}"));
        let slowness = self.slowness();
        self.clients.push(Client {
            machine: Some(machine),
            wall_origin,
            retains,
            slowness,
            ledger,
            last_words: self.rng.range(1, 4) as u32,
            clock,
            ..Client::default()
        });
        self.drain(client)?;
        let at = self.now + Duration::from_millis(self.rng.range(1, 5));
        self.schedule(at, Ev::Act { client });
        Ok(client)
    }

    pub(crate) fn spawn_reader(&mut self, follow: bool) -> usize {
        self.spawn_range_reader(follow, Start::Beginning, None)
    }

    /// A follower that starts at the beginning, or at a random position up to a little past
    /// the log's end, and stops at a random position past that, or never.
    pub(crate) fn spawn_random_reader(&mut self) -> usize {
        let end = self.model.landed.values().max().map_or(0, |p| p + 1);
        let wall = crate::world::WALL_CLOCK_BASE + self.now.as_millis() as u64;
        let from = match self.rng.range(0, 4) {
            0 => Start::Beginning,
            1 => Start::Position(self.rng.range(0, end + 8)),
            // Far enough past the cursor for the shortcut (PROTOCOL.md §5 "Start past the
            // cursor"), up to a little past the end.
            2 => {
                let cursor = self.model.high.as_ref().map_or(0, |m| m.replay_cursor);
                let w = u64::from(self.wcfg.fence_window);
                let past = cursor + w + 1;
                // Often near the end, where puts in flight leave holes.
                let low = if self.rng.chance(0.5) {
                    past.max(end.saturating_sub(2 * w))
                } else {
                    past
                };
                Start::Position(self.rng.range(low, low.max(end) + 1))
            }
            _ => {
                let back = self
                    .rng
                    .range(0, wall - crate::world::WALL_CLOCK_BASE + 500);
                let jitter = self.rng.range(0, 1000);
                // Half the time, at (or just past) an acknowledged entry's time: a start in
                // the middle of the log, where a time search must stop at the right entry
                // (PROTOCOL.md §5 "Start at a time"). The same draws either way.
                let times: Vec<u64> = self.model.time.values().filter_map(|&t| t).collect();
                match times.len() as u64 {
                    n if n > 0 && jitter < 500 => {
                        Start::Time(times[(back % n) as usize] + jitter % 2)
                    }
                    _ => Start::Time(wall - 500 - back + jitter),
                }
            }
        };
        let start = match from {
            Start::Position(p) => p,
            _ => 0,
        };
        let until = self.rng.chance(0.5).then(|| start + self.rng.range(0, 24));
        self.spawn_range_reader(true, from, until)
    }

    /// A reader of `from .. until` (the model checks it reports exactly that part of the log).
    pub(crate) fn spawn_range_reader(
        &mut self,
        follow: bool,
        from: Start,
        until: Option<u64>,
    ) -> usize {
        self.spawn_configured_reader(follow, from, until, |_| {})
    }

    /// A reader of `from .. until`, its config changed by `tweak` (`as_of_version`,
    /// `until_time`: `history.rs`).
    pub(crate) fn spawn_configured_reader(
        &mut self,
        follow: bool,
        from: Start,
        until: Option<u64>,
        tweak: impl FnOnce(&mut ReaderConfig),
    ) -> usize {
        let mut cfg = ReaderConfig {
            prefix: "log".into(),
            from,
            until,
            follow,
            poll_interval: Duration::from_millis(20),
            read_ahead: self.rng.range(1, 8) as u32,
            // Records are 8..105 bytes: from below one record to a few entries.
            read_ahead_bytes: self.rng.range(1, 600),
            retry: self.wcfg.retry.clone(),
            ..ReaderConfig::default()
        };
        tweak(&mut cfg);
        let (as_of, until_time) = (cfg.as_of_version, cfg.until_time);
        let read_bound = cfg.read_ahead_bytes;
        let seed = self.rng.u64();
        let client = self.clients.len();
        self.note(format_args!(
            "c{client} spawn reader follow={follow} from={from:?} until={until:?} as_of={as_of:?} until_time={until_time:?}"
        ));
        let slowness = self.slowness();
        let reader = Reader::new(cfg, Box::new(self.codec.clone()), seed, self.now);
        let start = match from {
            Start::Position(p) => p,
            _ => 0,
        };
        let since = match from {
            Start::Time(t) => Some(t),
            _ => None,
        };
        self.clients.push(Client {
            slowness,
            machine: Some(Machine::Reader(Box::new(reader))),
            range: (start, until),
            read_bound,
            since,
            as_of,
            until_time,
            restores_at_spawn: self.model.restores.committed,
            // (A reader as of a version reads that older one.)
            dropped_at_spawn: match as_of {
                None => self.model.high.as_ref().map_or(0, |m| m.dropped_before),
                Some(_) => 0,
            },
            ..Client::default()
        });
        let _ = self.drain(client);
        client
    }

    /// The process dies: its machine is gone, and the replies its session held with it.
    pub(crate) fn crash(&mut self, client: usize) -> Result<(), String> {
        let c = &mut self.clients[client];
        if c.machine.take().is_some() {
            c.ledger.crashed = true;
        }
        self.settle_replies(client)
    }

    /// The next payload ids, owned by `client`.
    fn payloads(&mut self, client: usize, count: u64) -> Vec<u64> {
        let ids: Vec<u64> = (self.next_payload..self.next_payload + count).collect();
        self.next_payload += count;
        for _ in &ids {
            self.model.owner.push(client);
        }
        ids
    }

    /// A random command from a writer (or a crash).
    pub(crate) fn act(&mut self, client: usize) -> Result<(), String> {
        if matches!(self.clients[client].machine, Some(Machine::Consumer(_))) {
            return self.act_consumer(client);
        }
        if let Some(until) = self.paused(client) {
            self.schedule(until, Ev::Act { client });
            return Ok(());
        }
        if self.maybe_pause(client) {
            self.schedule(self.now + Duration::from_millis(1), Ev::Act { client });
            return Ok(());
        }
        let roll = self.rng.range(0, 999);
        if !matches!(
            self.clients[client].machine,
            Some(Machine::Session(_) | Machine::Writer(_))
        ) {
            return Ok(());
        }
        if roll < 12 {
            self.note(format_args!("c{client} CRASH"));
            return self.crash(client);
        }
        match self.clients[client].machine {
            _ if self.clients[client].restorer.is_some() => self.act_restorer(client)?,
            Some(Machine::Session(_)) => self.act_session(client, roll)?,
            _ => self.act_bare(client, roll)?,
        }
        if self.clients[client].machine.is_some() {
            let at = self.now + Duration::from_millis(self.rng.range(1, 8));
            self.schedule(at, Ev::Act { client });
        }
        Ok(())
    }

    /// A session's caller: appends (also while others wait for room: the session queues them),
    /// flushes, memtable flushes, close. Once the session stopped, a few more commands that
    /// must each be answered at once with its error, then the caller lets it go.
    fn act_session(&mut self, client: usize, roll: u64) -> Result<(), String> {
        let now = self.local_now(client);
        let stopped = self.clients[client].ledger.terminal.clone();
        if stopped.is_some() {
            let c = &mut self.clients[client];
            if c.last_words == 0 {
                c.machine = None;
                self.note(format_args!("c{client} lets its stopped session go"));
                return self.settle_replies(client);
            }
            c.last_words -= 1;
        }
        let zero = self.rng.chance(0.02);
        let ids = if roll < 750 {
            // One in five appends is a group of 2-3 records that must share an entry.
            let count = if roll.is_multiple_of(5) {
                2 + roll % 2
            } else {
                1
            };
            self.payloads(client, count)
        } else {
            Vec::new()
        };
        if zero && !ids.is_empty() {
            let why = format!("c{client} gave it no rows");
            self.model.never.insert(ids[0], why);
        }
        let (log, c) = (self.log.clone(), &mut self.clients[client]);
        let Some(Machine::Session(s)) = &mut c.machine else {
            return Ok(());
        };
        let memtable = if self.wcfg.wal_only {
            roll < 860 // refused (there is no memtable), and answered so
        } else {
            self.manual_flushes
        };
        let (ticket, what) = if roll < 750 {
            let records = records(&ids, zero);
            let kept = ids.iter().skip(usize::from(zero)).copied().collect();
            let cmd = Cmd::Append {
                ids: ids.clone(),
                kept,
                issued: now,
                accepted: None,
            };
            let ticket = c.ledger.issue(cmd);
            s.append(records, log.reply(client, ticket, Outcome::Append), now);
            (ticket, "append")
        } else if roll < 850 {
            let ticket = c.ledger.issue(Cmd::Flush);
            s.flush(log.reply(client, ticket, Outcome::Flush), now);
            (ticket, "flush")
        } else if roll < 900 && memtable {
            let ticket = c.ledger.issue(Cmd::Memtable);
            s.flush_memtable(log.reply(client, ticket, Outcome::Memtable), now);
            (ticket, "flush_memtable")
        } else if (900..905).contains(&roll) || stopped.is_some() && roll >= 850 {
            let ticket = c.ledger.issue(Cmd::Close);
            s.close(log.reply(client, ticket, Outcome::Close), now);
            (ticket, "close")
        } else {
            return Ok(());
        };
        self.note(format_args!("c{client} asks t{ticket}: {what} {ids:?}"));
        self.drain(client)?;
        match stopped {
            Some(e) if self.clients[client].ledger.pending.contains_key(&ticket) => Err(format!(
                "c{client}: t{ticket}, asked after the session stopped with {e:?}, not answered at once"
            )),
            _ => Ok(()),
        }
    }

    /// A bare writer's caller, as hosts did before sessions: retries a refused append at
    /// `Writable` and appends nothing else meanwhile; truncates WAL-only logs.
    fn act_bare(&mut self, client: usize, roll: u64) -> Result<(), String> {
        let now = self.local_now(client);
        let waiting = self.clients[client].refused.is_some();
        if roll < 750 && !waiting {
            let count = if roll.is_multiple_of(5) {
                2 + roll % 2
            } else {
                1
            };
            let ids = self.payloads(client, count);
            let records = records(&ids, false);
            let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
                return Ok(());
            };
            let result = if count == 1 {
                w.append(records[0].clone(), now)
            } else {
                w.append_group(records.clone(), now)
            };
            self.appended(client, ids, records, result, false)?;
            return self.drain(client);
        }
        // Retention beside the flushes and compactions (`retention.rs`); WAL-only logs
        // truncate where the others flush.
        let wal_only = self.wcfg.wal_only;
        if (850..900).contains(&roll) && wal_only || (905..940).contains(&roll) {
            self.act_retention(client)?;
            return self.drain(client);
        }
        let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        if roll < 750 {
            // Waiting for `Writable`.
        } else if roll < 850 {
            let _ = w.flush(now);
        } else if roll < 900 {
            if self.manual_flushes {
                let _ = w.flush_memtable(now);
            }
        } else if roll < 905 {
            let _ = w.close(now);
        }
        self.drain(client)
    }
}
