//! Listing a log's consumers with their committed positions and how far behind the writer's
//! durable end they are (PROTOCOL.md §5, "Lag"). A [`Machine`] that needs what an
//! [`crate::Inspector`] found (the manifest and the WAL slots with their sizes).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::config::RetryPolicy;
use crate::error::FatalError;
use crate::inspect::Inspection;
use crate::io::{Op, RequestId, Response, StoreErrorKind};
use crate::machine::{Machine, Output};
use crate::paths::Paths;
use crate::requests::{Pending, Requests};

use super::record::{ConsumerPaths, ConsumerVersion};

/// One consumer of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// Its name.
    pub name: String,
    /// Its committed position: every entry below it was consumed.
    pub position: u64,
    /// Its newest version.
    pub version: u64,
    /// Entries at or past the position (an upper bound: fences and orphans count, and a
    /// generation holding the position counts all its entries past it).
    pub lag_entries: u64,
    /// Bytes a resume reads: the WAL slots and the generations (whole) at or past it.
    pub lag_bytes: u64,
}

/// How many times a name whose newest version was collected under us is listed again.
const RELISTS: u32 = 8;

#[derive(Clone, Debug)]
enum Step {
    Root,
    Name {
        name: String,
        relists: u32,
    },
    Newest {
        name: String,
        version: u64,
        relists: u32,
    },
}

/// Lists `P/consumers/`, reads each name's newest version and reports one event: every
/// consumer, by name, or the first problem.
pub struct ConsumerLister {
    paths: ConsumerPaths,
    inspection: Inspection,
    io: Requests<Step>,
    todo: VecDeque<(String, u64)>,
    found: Vec<ConsumerInfo>,
    result: Option<Result<Vec<ConsumerInfo>, FatalError>>,
    done: bool,
}

impl ConsumerLister {
    /// Lists the consumers of the log under `prefix`, which `inspection` describes.
    pub fn new(prefix: &str, inspection: Inspection) -> Self {
        let paths = ConsumerPaths::new(&Paths::new(prefix));
        let mut io = Requests::new(0, RetryPolicy::default());
        io.send(
            Op::List {
                prefix: paths.root().into(),
                after: None,
            },
            Step::Root,
        );
        ConsumerLister {
            paths,
            inspection,
            io,
            todo: VecDeque::new(),
            found: Vec::new(),
            result: None,
            done: false,
        }
    }

    fn step(&mut self, step: Step, response: Response) -> Result<(), FatalError> {
        let store = |path: &str, e: crate::io::StoreError| FatalError::Store {
            path: path.into(),
            message: e.message,
        };
        match step {
            Step::Root => {
                let root = String::from(self.paths.root());
                let items = response.into_list().map_err(|e| store(&root, e))?;
                let mut newest: BTreeMap<String, u64> = BTreeMap::new();
                for (name, version) in items.iter().filter_map(|m| self.paths.parse(&m.path)) {
                    let v = newest.entry(name.into()).or_default();
                    *v = (*v).max(version);
                }
                self.todo = newest.into_iter().collect();
                self.next();
            }
            Step::Name { name, relists } => {
                let dir = self.paths.dir(&name);
                let items = response.into_list().map_err(|e| store(&dir, e))?;
                let newest = items
                    .iter()
                    .filter_map(|m| self.paths.parse(&m.path))
                    .filter(|(n, _)| *n == name)
                    .map(|(_, v)| v)
                    .max();
                // Every version gone: the name is no more (nothing else deletes all of them).
                match newest {
                    Some(version) => self.get(name, version, relists),
                    None => self.next(),
                }
            }
            Step::Newest {
                name,
                version,
                relists,
            } => {
                let path = self.paths.version(&name, version);
                let body = match response.into_get() {
                    Ok(body) => body,
                    // Collected after the list by a commit: list the name again.
                    Err(e) if e.kind == StoreErrorKind::NotFound && relists < RELISTS => {
                        let prefix = self.paths.dir(&name);
                        let step = Step::Name {
                            name,
                            relists: relists + 1,
                        };
                        self.io.send(
                            Op::List {
                                prefix,
                                after: None,
                            },
                            step,
                        );
                        return Ok(());
                    }
                    Err(e) => return Err(store(&path, e)),
                };
                let v = ConsumerVersion::decode(&path, &name, version, &body)?;
                let (lag_entries, lag_bytes) = lag(&self.inspection, v.position);
                self.found.push(ConsumerInfo {
                    name,
                    position: v.position,
                    version,
                    lag_entries,
                    lag_bytes,
                });
                self.next();
            }
        }
        Ok(())
    }

    fn get(&mut self, name: String, version: u64, relists: u32) {
        let path = self.paths.version(&name, version);
        let step = Step::Newest {
            name,
            version,
            relists,
        };
        self.io.send(Op::Get { path }, step);
    }

    fn next(&mut self) {
        match self.todo.pop_front() {
            Some((name, version)) => self.get(name, version, 0),
            None => self.result = Some(Ok(core::mem::take(&mut self.found))),
        }
    }
}

/// (entries, bytes) at or past `position` in what the inspection found: the generations that
/// hold positions at or past it, whole, and the WAL slots at or past both it and the cursor.
pub(crate) fn lag(inspection: &Inspection, position: u64) -> (u64, u64) {
    let cursor = inspection.manifest.as_ref().map_or(0, |m| m.replay_cursor);
    let generations = inspection
        .manifest
        .iter()
        .flat_map(|m| &m.generations)
        .filter(|g| g.last_position >= position);
    let (mut entries, mut bytes) = (0, 0);
    for g in generations {
        let past = g.last_position - position.max(g.first_position) + 1;
        entries += g.entries.min(past);
        bytes += g.bytes;
    }
    for &(_, size) in inspection
        .wal
        .iter()
        .filter(|(p, _)| *p >= position && *p >= cursor)
    {
        entries += 1;
        bytes += size;
    }
    (entries, bytes)
}

impl Machine for ConsumerLister {
    type Event = Result<Vec<ConsumerInfo>, FatalError>;

    fn handle_response(&mut self, id: RequestId, response: Response, _now: Duration) {
        let Some((Pending { purpose, .. }, response)) = self.io.take(id, response) else {
            return;
        };
        if let Err(e) = self.step(purpose, response) {
            self.io.shut();
            self.result = Some(Err(e));
        }
    }

    /// Nothing here waits on time.
    fn handle_timeout(&mut self, _now: Duration) {}

    fn poll_output(&mut self) -> Output<Self::Event> {
        if let Some(request) = self.io.poll_request() {
            return Output::Request(request);
        }
        if let Some(result) = self.result.take() {
            self.done = true;
            return Output::Event(result);
        }
        if self.done {
            Output::Done
        } else {
            Output::Wait(None)
        }
    }
}
