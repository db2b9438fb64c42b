//! Readers' flow control (PROTOCOL.md §5 "Flow control"): each reader's host takes events and
//! releases their bytes lazily, at random later times and in random amounts; the check is that
//! no reader asks for more data while its host holds its whole bound, and (through the
//! liveness check and the final read) that a reader waiting for release resumes once released.

use std::time::Duration;

use tidewal_core::{Op, RequestId, Response, StartPath, StoreErrorKind, TimeStart};

use crate::actors::Machine;
use crate::world::{Ev, World};

/// Whether `op` fetches log data a reader holds (a WAL slot or a generation).
fn data_path(op: &Op) -> Option<&str> {
    match op {
        Op::Get { path } if path.contains("/wal/") || path.contains("/gen/") => Some(path),
        // A generation's index or a run of its records.
        Op::GetRange { path, .. } if path.contains("/gen/") => Some(path),
        _ => None,
    }
}

impl World {
    /// A reader's host took an event of `bytes`: it holds them until a later release.
    pub(crate) fn took(&mut self, client: usize, bytes: u64) {
        self.clients[client].held.push_back(bytes);
        self.schedule_release(client);
    }

    fn schedule_release(&mut self, client: usize) {
        let c = &self.clients[client];
        if c.release_due || c.held.is_empty() {
            return;
        }
        self.clients[client].release_due = true;
        let at = self.now + Duration::from_millis(self.rng.range(0, 60)) + self.slow_host();
        self.schedule(at, Ev::Release { client });
    }

    /// Releases the oldest few events the host holds (one to all), then drains the reader.
    pub(crate) fn release(&mut self, client: usize) -> Result<(), String> {
        let c = &mut self.clients[client];
        c.release_due = false;
        let n = self.rng.range(1, c.held.len().max(1) as u64) as usize;
        let bytes: u64 = c.held.drain(..n.min(c.held.len())).sum();
        match &mut c.machine {
            Some(Machine::Reader(r)) => r.release(bytes),
            Some(Machine::Consumer(k)) => k.release(bytes),
            _ => return Ok(()),
        }
        self.note(format_args!("c{client} releases {bytes} bytes"));
        self.drain(client)?;
        self.schedule_release(client);
        Ok(())
    }

    /// A reader sent `op`: a data GET that is not a retry must find its host holding less than
    /// the bound (or nothing at all).
    pub(crate) fn data_get_sent(
        &mut self,
        client: usize,
        id: RequestId,
        op: &Op,
    ) -> Result<(), String> {
        let c = &mut self.clients[client];
        let reads = matches!(c.machine, Some(Machine::Reader(_) | Machine::Consumer(_)));
        let (true, Some(path)) = (reads, data_path(op)) else {
            return Ok(());
        };
        let retry = c.retried_paths.remove(path) || c.data_gets.values().any(|p| p == path);
        c.data_gets.insert(id, path.to_string());
        let held: u64 = c.held.iter().sum();
        if !retry && held > 0 && held >= c.read_bound {
            return Err(format!(
                "reader c{client} asked for {path} while its host holds {held} bytes (bound {})",
                c.read_bound
            ));
        }
        Ok(())
    }

    /// The answer to a reader's data GET: a failed one may be sent again.
    pub(crate) fn data_get_answered(&mut self, client: usize, id: RequestId, resp: &Response) {
        let c = &mut self.clients[client];
        let Some(path) = c.data_gets.remove(&id) else {
            return;
        };
        if let Response::Get(Err(e)) = resp {
            if e.kind != StoreErrorKind::NotFound {
                c.retried_paths.insert(path);
            }
        }
    }

    /// Counts a reader's start past the cursor once it is known how it was found.
    pub(crate) fn count_start(&mut self, client: usize) {
        self.count_time_start(client);
        let c = &mut self.clients[client];
        let Some(Machine::Reader(r)) = &c.machine else {
            return;
        };
        if c.start_counted {
            return;
        }
        match r.start_path() {
            StartPath::Shortcut => self.shortcut_starts += 1,
            StartPath::Fallback => self.shortcut_fallbacks += 1,
            _ => return,
        }
        c.start_counted = true;
        let path = r.start_path();
        self.note(format_args!("c{client} start: {path:?}"));
    }

    /// Counts a reader's start at a time past the generations once it searched or fell back.
    fn count_time_start(&mut self, client: usize) {
        let c = &mut self.clients[client];
        let Some(Machine::Reader(r)) = &c.machine else {
            return;
        };
        if c.time_start_counted {
            return;
        }
        let how = r.time_start();
        match how {
            TimeStart::Searched { .. } => self.time_searches += 1,
            TimeStart::Fallback => self.time_fallbacks += 1,
            TimeStart::NotSearched => return,
        }
        c.time_start_counted = true;
        self.note(format_args!("c{client} time start: {how:?}"));
    }
}
