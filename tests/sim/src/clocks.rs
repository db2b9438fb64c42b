//! Writers' own clocks and pauses (PROTOCOL.md §4 "The writer lease"): every `now` handed to
//! a writer runs at a rate of its own in `[1, 1 + rho]` of the simulation's clock, and a
//! writer may pause for 2-5 leases (no answer, timer or command reaches it; then everything
//! queued arrives at once), so leases run out and collectors delete what zombies still put.

use std::time::Duration;

use tidewal_core::{RHO_DEN, RHO_NUM};

use crate::actors::Machine;
use crate::world::World;

const PPM: u128 = 1_000_000;

/// A client's clock: its rate (parts per million of the simulation's) and its pause.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    ppm: u128,
    paused_until: Option<Duration>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            ppm: PPM,
            paused_until: None,
        }
    }
}

impl Clock {
    /// The client's reading at simulation time `t`.
    pub(crate) fn local(&self, t: Duration) -> Duration {
        let nanos = t.as_nanos() * self.ppm / PPM;
        Duration::from_nanos(nanos as u64)
    }

    /// The first simulation time at which the client reads at least `local`.
    pub(crate) fn sim_at(&self, local: Duration) -> Duration {
        let mut t = Duration::from_nanos((local.as_nanos() * PPM).div_ceil(self.ppm) as u64);
        while self.local(t) < local {
            t += Duration::from_nanos(1);
        }
        t
    }
}

impl World {
    /// A writer's clock: one in three runs at the simulation's rate, the others faster, up to
    /// `1 + rho`.
    pub(crate) fn draw_clock(&mut self) -> Clock {
        let fastest = u64::from(RHO_NUM) * 1_000_000 / u64::from(RHO_DEN);
        let extra = match self.rng.chance(0.33) {
            true => 0,
            false => self.rng.range(0, fastest),
        };
        Clock {
            ppm: PPM + u128::from(extra),
            paused_until: None,
        }
    }

    /// What `client` reads on its clock now.
    pub(crate) fn local_now(&self, client: usize) -> Duration {
        self.clients[client].clock.local(self.now)
    }

    /// Until when `client` is paused, if it is.
    pub(crate) fn paused(&self, client: usize) -> Option<Duration> {
        self.clients[client]
            .clock
            .paused_until
            .filter(|&until| until > self.now)
    }

    /// Sometimes pauses a writer for 2-5 leases: whatever it has in flight lands meanwhile.
    pub(crate) fn maybe_pause(&mut self, client: usize) -> bool {
        let writer = matches!(
            self.clients[client].machine,
            Some(Machine::Session(_) | Machine::Writer(_))
        );
        if !writer || !self.rng.chance(0.006) {
            return false;
        }
        let lease = self.wcfg.lease.as_millis() as u64;
        let until = self.now + Duration::from_millis(self.rng.range(2 * lease, 8 * lease));
        self.clients[client].clock.paused_until = Some(until);
        self.pauses += 1;
        self.note(format_args!("c{client} pauses until {until:?}"));
        true
    }

    /// Sometimes a writer's request is stuck on the way (a stalled connection) for up to two
    /// leases while the writer runs on: its lease must not outlive what a collector waits.
    pub(crate) fn stall(&mut self, client: usize) -> Duration {
        let writer = matches!(
            self.clients[client].machine,
            Some(Machine::Session(_) | Machine::Writer(_))
        );
        if !writer || !self.rng.chance(0.003) {
            return Duration::ZERO;
        }
        self.stalls += 1;
        let lease = self.wcfg.lease.as_millis() as u64;
        Duration::from_millis(self.rng.range(lease / 4, 2 * lease))
    }

    /// Sometimes a reader's host holds what it was handed for 2-5 leases: the reader's
    /// manifest grows stale while collectors run (PROTOCOL.md §5, "A stale manifest and
    /// collected fences").
    pub(crate) fn slow_host(&mut self) -> Duration {
        if !self.rng.chance(0.01) {
            return Duration::ZERO;
        }
        let lease = self.wcfg.lease.as_millis() as u64;
        Duration::from_millis(self.rng.range(2 * lease, 5 * lease))
    }

    /// The in-flight window never leaves `1 ..= max_in_flight`, and the entry puts a writer
    /// has in flight never exceed `max_in_flight` (PROTOCOL.md §4 "The in-flight window").
    pub(crate) fn check_window(&self, client: usize) -> Result<(), String> {
        let stats = match &self.clients[client].machine {
            Some(Machine::Session(s)) => s.stats().writer,
            Some(Machine::Writer(w)) => w.stats(),
            _ => return Ok(()),
        };
        let cap = self.wcfg.max_in_flight as usize;
        let window = stats.window.window as usize;
        if window == 0 || window > cap || stats.entries_in_flight > cap {
            return Err(format!(
                "c{client}: window {window}, {} entry puts in flight, max_in_flight {cap}",
                stats.entries_in_flight
            ));
        }
        Ok(())
    }

    /// Reads a writer's count of acks held for the lease (kept when it crashes).
    pub(crate) fn note_lease_stats(&mut self, client: usize) {
        let held = match &self.clients[client].machine {
            Some(Machine::Session(s)) => s.stats().writer.acks_held,
            Some(Machine::Writer(w)) => w.stats().acks_held,
            _ => return,
        };
        self.clients[client].acks_held = held;
    }
}
