//! A log's manifest history (`tidewal history`): LIST the manifest versions, GET every kept
//! one (a bounded number at once) and describe each (PROTOCOL.md §3 "History"). A version
//! collected between the LIST and its GET is skipped and said so, not an error: GC may run
//! meanwhile. No retries, like the [`crate::Inspector`]: a failed read is reported as it is.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::config::RetryPolicy;
use crate::error::FatalError;
use crate::inspect::decode_manifest;
use crate::io::{Op, RequestId, Response, StoreErrorKind};
use crate::machine::{Machine, Output};
use crate::manifest::Manifest;
use crate::paths::Paths;
use crate::requests::{Pending, Requests};

/// GETs of manifest versions in flight at once.
pub const HISTORY_PARALLEL_GETS: usize = 8;

/// What a version changed, from the version before it (when that one was read too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Version 1: the log was created.
    Create,
    /// A writer claimed a new epoch.
    Claim,
    /// Generations were committed (a memtable flush): the cursor moved.
    Flush,
    /// A WAL-only truncate moved the cursor (PROTOCOL.md §4 "Retention").
    Truncate,
    /// A restore committed it (its `restored` field, PROTOCOL.md §4 "Restore").
    Restore,
    /// Retention dropped the leading generations below a point (`dropped_before` rose).
    Drop,
    /// A compaction replaced adjacent generations by one (PROTOCOL.md §4 "Compaction").
    Compact,
    /// A drop's intent: `dropping` set before the consumers are listed.
    Intent,
    /// A drop's intent cleared with nothing dropped (held back by a consumer, or refused).
    Settle,
    /// Something else, or the version before it is not known (collected, skipped).
    Unknown,
}

impl Change {
    /// The change's name, as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Claim => "claim",
            Change::Flush => "flush",
            Change::Truncate => "truncate",
            Change::Restore => "restore",
            Change::Drop => "drop",
            Change::Compact => "compact",
            Change::Intent => "intent",
            Change::Settle => "settle",
            Change::Unknown => "?",
        }
    }

    /// What `m` changed from `before` (the version below it, if read).
    pub fn between(before: Option<&Manifest>, m: &Manifest) -> Change {
        // The version says so itself, whether or not the one below it was read.
        if m.restored.is_some() {
            return Change::Restore;
        }
        let Some(b) = before.filter(|b| b.version + 1 == m.version) else {
            return if m.version == 1 {
                Change::Create
            } else {
                Change::Unknown
            };
        };
        if m.epoch > b.epoch {
            Change::Claim
        } else if m.replay_cursor > b.replay_cursor && !m.wal_only {
            Change::Flush
        } else if m.replay_cursor > b.replay_cursor {
            Change::Truncate
        } else if m.dropped_before > b.dropped_before {
            Change::Drop
        } else if m.dropping.is_some() && b.dropping.is_none() {
            Change::Intent
        } else if m.generations.len() < b.generations.len() {
            Change::Compact
        } else if m.dropping.is_none() && b.dropping.is_some() {
            Change::Settle
        } else {
            Change::Unknown
        }
    }
}

/// One manifest version, as [`History`] read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version.
    pub version: u64,
    /// Its commit time (unix ms), if its writer recorded one.
    pub committed_at: Option<u64>,
    /// The owning writer's epoch.
    pub epoch: u64,
    /// Its replay cursor: the rows of this version lie below it.
    pub cursor: u64,
    /// Every position below this was dropped.
    pub dropped_before: u64,
    /// Generations it lists.
    pub generations: usize,
    /// Rows in those generations.
    pub rows: u64,
    /// Bytes of those generations.
    pub bytes: u64,
    /// What it changed from the version before.
    pub change: Change,
}

impl VersionInfo {
    fn of(m: &Manifest, change: Change) -> VersionInfo {
        VersionInfo {
            version: m.version,
            committed_at: m.committed_at,
            epoch: m.epoch,
            cursor: m.replay_cursor,
            dropped_before: m.dropped_before,
            generations: m.generations.len(),
            rows: m.generations.iter().map(|g| g.rows).sum(),
            bytes: m.generations.iter().map(|g| g.bytes).sum(),
            change,
        }
    }
}

/// A log's manifest history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestHistory {
    /// The versions read, ascending.
    pub versions: Vec<VersionInfo>,
    /// Versions listed and gone by their GET (collected meanwhile), ascending.
    pub skipped: Vec<u64>,
}

/// Lists a log's manifest versions and reads each: one event, the [`ManifestHistory`], or
/// the first problem (an object in the manifest folder that is not a manifest, a manifest
/// that does not decode or holds another version, a failed request).
pub struct History {
    paths: Paths,
    io: Requests<Option<u64>>,
    todo: VecDeque<u64>,
    read: BTreeMap<u64, Manifest>,
    skipped: Vec<u64>,
    result: Option<Result<ManifestHistory, FatalError>>,
    done: bool,
}

impl History {
    /// Starts reading the history of the log under `prefix`.
    pub fn new(prefix: &str) -> Self {
        let paths = Paths::new(prefix);
        // Never retried: a failed read is reported as it is.
        let mut io = Requests::new(0, RetryPolicy::default());
        let prefix = paths.manifest_dir();
        io.send(
            Op::List {
                prefix,
                after: None,
            },
            None,
        );
        History {
            paths,
            io,
            todo: VecDeque::new(),
            read: BTreeMap::new(),
            skipped: Vec::new(),
            result: None,
            done: false,
        }
    }

    fn send_gets(&mut self) {
        while self.io.in_flight() < HISTORY_PARALLEL_GETS {
            let Some(version) = self.todo.pop_front() else {
                break;
            };
            let path = self.paths.manifest(version);
            self.io.send(Op::Get { path }, Some(version));
        }
        if self.io.in_flight() == 0 && self.result.is_none() {
            self.result = Some(Ok(self.finish()));
        }
    }

    fn finish(&mut self) -> ManifestHistory {
        let mut before: Option<&Manifest> = None;
        let mut versions = Vec::with_capacity(self.read.len());
        for m in self.read.values() {
            versions.push(VersionInfo::of(m, Change::between(before, m)));
            before = Some(m);
        }
        ManifestHistory {
            versions,
            skipped: core::mem::take(&mut self.skipped),
        }
    }

    fn step(&mut self, version: Option<u64>, response: Response) -> Result<(), FatalError> {
        let dir = self.paths.manifest_dir();
        let Some(version) = version else {
            let items = response.into_list().map_err(|e| FatalError::Store {
                path: dir,
                message: e.message,
            })?;
            for item in items {
                let v =
                    self.paths
                        .manifest_version(&item.path)
                        .ok_or_else(|| FatalError::Corrupt {
                            path: item.path.clone(),
                            reason: "unexpected object in the manifest folder".into(),
                        })?;
                self.todo.push_back(v);
            }
            self.send_gets();
            return Ok(());
        };
        let path = self.paths.manifest(version);
        match response.into_get() {
            Ok(body) => {
                let m = decode_manifest(&path, &body, version)?;
                self.read.insert(version, m);
            }
            // Collected after the LIST: skipped, and said so.
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                let at = self.skipped.partition_point(|&s| s < version);
                self.skipped.insert(at, version);
            }
            Err(e) => {
                return Err(FatalError::Store {
                    path,
                    message: e.message,
                })
            }
        }
        self.send_gets();
        Ok(())
    }
}

impl Machine for History {
    type Event = Result<ManifestHistory, FatalError>;

    fn handle_response(&mut self, id: RequestId, response: Response, _now: core::time::Duration) {
        let Some((Pending { purpose, .. }, response)) = self.io.take(id, response) else {
            return;
        };
        if self.result.is_some() {
            return;
        }
        if let Err(e) = self.step(purpose, response) {
            self.io.shut();
            self.result = Some(Err(e));
        }
    }

    /// Nothing here waits on time.
    fn handle_timeout(&mut self, _now: core::time::Duration) {}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StoreError;
    use crate::manifest::FORMAT;
    use crate::mem::MemStore;
    use alloc::string::ToString;

    fn manifest(version: u64, epoch: u64, cursor: u64, gens: usize) -> Manifest {
        let generations = (0..gens as u64)
            .map(|id| crate::manifest::GenerationRecord {
                id,
                path: alloc::format!("p/gen/{id}"),
                first_position: id,
                last_position: id,
                entries: 1,
                records: 1,
                rows: 10,
                bytes: 100,
                crc32c: "00000000".into(),
                index: None,
                min_time: None,
                max_time: None,
                untimed: 0,
            })
            .collect();
        Manifest {
            format: FORMAT,
            codec: "raw".into(),
            version,
            epoch,
            writer_nonce: 1,
            fence_window: 4,
            replay_cursor: cursor,
            cursor_epoch: 0,
            wal_only: false,
            schema: "00".into(),
            next_generation: gens as u64,
            generations,
            dropped_before: 0,
            committed_at: Some(1_000 + version),
            retired: Vec::new(),
            lease_ms: None,
            lease_epoch: None,
            restored: None,
            time_floor: None,
            dropping: None,
        }
    }

    /// Drives `h` against `store`; `gone` objects vanish between the LIST and their GET.
    fn run(
        mut h: History,
        store: &mut MemStore,
        gone: &[u64],
    ) -> Result<ManifestHistory, FatalError> {
        let mut most_in_flight = 0;
        let mut out = VecDeque::new();
        loop {
            match h.poll_output() {
                Output::Request(r) => out.push_back(r),
                Output::Event(e) => return e,
                _ => {
                    most_in_flight = most_in_flight.max(out.len());
                    assert!(most_in_flight <= HISTORY_PARALLEL_GETS);
                    let r = out.pop_front().expect("waits with nothing out");
                    let resp = match &r.op {
                        Op::Get { path }
                            if gone.iter().any(|&v| *path == Paths::new("p").manifest(v)) =>
                        {
                            Response::Get(Err(StoreError::new(
                                StoreErrorKind::NotFound,
                                "gone".to_string(),
                            )))
                        }
                        _ => store.execute(&r.op),
                    };
                    h.handle_response(r.id, resp, core::time::Duration::ZERO);
                }
            }
        }
    }

    #[test]
    fn every_version_is_described_and_a_collected_one_skipped() {
        let mut store = MemStore::new();
        let paths = Paths::new("p");
        let ms = [
            manifest(1, 1, 0, 0),
            manifest(2, 2, 0, 0),
            manifest(3, 2, 5, 1),
            manifest(4, 2, 9, 2),
            manifest(5, 3, 9, 2),
        ];
        for m in &ms {
            store.overwrite(&paths.manifest(m.version), m.encode());
        }
        let h = run(History::new("p"), &mut store, &[2]).unwrap();
        assert_eq!(h.skipped, [2]);
        let got: Vec<(u64, Change, usize, u64)> = h
            .versions
            .iter()
            .map(|v| (v.version, v.change, v.generations, v.rows))
            .collect();
        assert_eq!(
            got,
            [
                (1, Change::Create, 0, 0),
                // Its predecessor was skipped: unknown.
                (3, Change::Unknown, 1, 10),
                (4, Change::Flush, 2, 20),
                (5, Change::Claim, 2, 20),
            ]
        );
        assert_eq!(h.versions[1].committed_at, Some(1_003));
        assert_eq!(h.versions[2].bytes, 200);
    }

    fn intent_at(version: u64) -> crate::manifest::Dropping {
        crate::manifest::Dropping { to: 2, version }
    }

    #[test]
    fn each_kind_of_commit_is_named() {
        let base = manifest(4, 2, 9, 3);
        let next = |f: &dyn Fn(&mut Manifest)| {
            let mut m = base.clone();
            m.version = 5;
            f(&mut m);
            Change::between(Some(&base), &m)
        };
        assert_eq!(next(&|m| m.epoch = 3), Change::Claim);
        assert_eq!(next(&|m| m.replay_cursor = 12), Change::Flush);
        let truncate = |m: &mut Manifest| {
            m.wal_only = true;
            m.replay_cursor = 12;
            m.dropped_before = 11;
        };
        assert_eq!(next(&truncate), Change::Truncate);
        let drop_first = |m: &mut Manifest| {
            m.generations.remove(0);
            m.dropped_before = 1;
        };
        assert_eq!(next(&drop_first), Change::Drop);
        let intent_of = |m: &mut Manifest| {
            m.dropping = Some(intent_at(m.version));
        };
        assert_eq!(next(&intent_of), Change::Intent);
        // A merge of the last two: fewer generations, the same entries.
        assert_eq!(next(&|m| drop(m.generations.pop())), Change::Compact);
        let mut intent = base.clone();
        intent.dropping = Some(intent_at(4));
        let mut settled = base.clone();
        settled.version = 5;
        assert_eq!(Change::between(Some(&intent), &settled), Change::Settle);
        assert_eq!(next(&|_| {}), Change::Unknown);
    }

    #[test]
    fn the_gets_go_out_eight_at_a_time() {
        let mut store = MemStore::new();
        let paths = Paths::new("p");
        for v in 1..=20 {
            store.overwrite(&paths.manifest(v), manifest(v, 1, 0, 0).encode());
        }
        let mut h = History::new("p");
        let mut most = 0;
        let mut out = VecDeque::new();
        let history = loop {
            match h.poll_output() {
                Output::Request(r) => out.push_back(r),
                Output::Event(e) => break e.unwrap(),
                _ => {
                    most = most.max(out.len());
                    let r = out.pop_front().expect("waits with nothing out");
                    let resp = store.execute(&r.op);
                    h.handle_response(r.id, resp, core::time::Duration::ZERO);
                }
            }
        };
        assert_eq!(most, HISTORY_PARALLEL_GETS);
        let versions: Vec<u64> = history.versions.iter().map(|v| v.version).collect();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn a_stray_object_is_refused_by_name() {
        let mut store = MemStore::new();
        store.overwrite("p/manifest/stray", bytes::Bytes::from_static(b"x"));
        match run(History::new("p"), &mut store, &[]) {
            Err(FatalError::Corrupt { path, .. }) => assert_eq!(path, "p/manifest/stray"),
            other => panic!("{other:?}"),
        }
    }
}
