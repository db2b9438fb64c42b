//! The workload: writer and reader clients, crashes, and the random commands writers issue.
//! Writers collect garbage themselves; old writers keep running as zombies until a crash or
//! their own failure ends them.

use std::collections::BTreeSet;
use std::time::Duration;

use tidewal_core::{Event, FatalError, ReadEvent, Reader, ReaderConfig, Record, Request, Writer};

use crate::world::{Ev, World};

pub(crate) enum Machine {
    Writer(Box<Writer>),
    Reader(Box<Reader>),
}

/// One output of either machine.
pub(crate) enum Out {
    Request(Request),
    Writer(Event),
    Reader(ReadEvent),
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
    /// Payload ids of each accepted append (a group holds several).
    pub appends: Vec<Vec<u64>>,
    pub acked: usize,
    /// An append refused for backpressure (payload ids, records), retried at `Writable` as
    /// hosts do; the client appends nothing else meanwhile.
    pub refused: Option<(Vec<u64>, Vec<Record>)>,
    /// An append was refused with backpressure and `Writable` has not come yet.
    pub blocked: bool,
    /// A reader's output.
    pub read: Vec<(u64, u64)>,
    /// FNV-1a over every (position, payload byte) a reader reported.
    pub read_digest: u64,
    pub timer_at: Option<Duration>,
    /// The instant of the latest timer wake, and how many came at it.
    pub wakes: (Duration, u32),
    /// Latency multiplier of this client's requests.
    pub slowness: u64,
    /// A reader expected to fail (the corruption check).
    pub tolerate_failure: bool,
    pub closed: bool,
    pub failure: Option<FatalError>,
}

impl Client {
    /// A writer that has not stopped (what the spawner counts).
    pub fn is_live_writer(&self) -> bool {
        matches!(self.machine, Some(Machine::Writer(_)))
    }

    /// Whether it still owes something (then it must have a request out or a timer).
    pub fn owes(&self) -> bool {
        match &self.machine {
            Some(Machine::Writer(_)) => {
                !self.ready || self.blocked || self.appends.len() > self.acked
            }
            Some(Machine::Reader(r)) => !r.is_done(),
            None => false,
        }
    }
}

/// The records of payloads `ids` (the first 8 bytes are the id).
fn records(ids: &[u64]) -> Vec<Record> {
    ids.iter()
        .map(|&id| {
            let filler = (id % 97) as usize;
            let mut payload = id.to_le_bytes().to_vec();
            payload.resize(8 + filler, (id % 251) as u8);
            Record::new(payload, 1 + id % 4)
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

    pub(crate) fn spawn_writer(&mut self) {
        let seed = self.rng.u64();
        let machine = Writer::new(
            self.wcfg.clone(),
            Box::new(self.codec.clone()),
            seed,
            self.now,
        );
        let Ok(machine) = machine else { return };
        let client = self.clients.len();
        self.note(format_args!("c{client} spawn writer"));
        let slowness = self.slowness();
        self.clients.push(Client {
            machine: Some(Machine::Writer(Box::new(machine))),
            slowness,
            ..Client::default()
        });
        let _ = self.drain(client);
        let at = self.now + Duration::from_millis(self.rng.range(1, 5));
        self.schedule(at, Ev::Act { client });
    }

    pub(crate) fn spawn_reader(&mut self, follow: bool) -> usize {
        let cfg = ReaderConfig {
            prefix: "log".into(),
            follow,
            poll_interval: Duration::from_millis(20),
            read_ahead: self.rng.range(1, 8) as u32,
            retry: self.wcfg.retry.clone(),
        };
        let seed = self.rng.u64();
        let client = self.clients.len();
        self.note(format_args!("c{client} spawn reader follow={follow}"));
        let slowness = self.slowness();
        let reader = Reader::new(cfg, Box::new(self.codec.clone()), seed, self.now);
        self.clients.push(Client {
            slowness,
            machine: Some(Machine::Reader(Box::new(reader))),
            ..Client::default()
        });
        let _ = self.drain(client);
        client
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
        let roll = self.rng.range(0, 999);
        if !matches!(self.clients[client].machine, Some(Machine::Writer(_))) {
            return Ok(());
        }
        if roll < 12 {
            self.clients[client].machine = None;
            self.note(format_args!("c{client} CRASH"));
            return Ok(());
        }
        self.act_writer(client, roll)?;
        if self.clients[client].machine.is_some() {
            let at = self.now + Duration::from_millis(self.rng.range(1, 8));
            self.schedule(at, Ev::Act { client });
        }
        Ok(())
    }

    /// A writer's caller: retries a refused append at `Writable` and appends nothing else
    /// meanwhile; truncates WAL-only logs.
    fn act_writer(&mut self, client: usize, roll: u64) -> Result<(), String> {
        let now = self.now;
        let waiting = self.clients[client].refused.is_some();
        if roll < 750 && !waiting {
            // One in five appends is a group of 2-3 records that must share an entry.
            let count = if roll.is_multiple_of(5) {
                2 + roll % 2
            } else {
                1
            };
            let ids = self.payloads(client, count);
            let records = records(&ids);
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
        let Some(Machine::Writer(w)) = &mut self.clients[client].machine else {
            return Ok(());
        };
        if roll < 750 {
            // Waiting for `Writable`.
        } else if roll < 850 {
            let _ = w.flush(now);
        } else if roll < 900 {
            if self.wcfg.wal_only {
                if let Some(m) = w.manifest().cloned() {
                    let target = w
                        .stats()
                        .durable_position
                        .map_or(m.replay_cursor, |d| d + 1);
                    let to = self.rng.range(m.replay_cursor, target.max(m.replay_cursor));
                    if w.truncate(to, now).is_ok() {
                        self.model.truncated_to = self.model.truncated_to.max(to);
                    }
                }
            } else if self.manual_flushes {
                let _ = w.flush_memtable(now);
            }
        } else if roll < 905 {
            let _ = w.close(now);
        }
        self.drain(client)
    }
}
