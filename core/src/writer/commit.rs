//! Manifest commits (claim, generation, truncate): create-if-absent at `version` (the put and
//! its read-back are in `put.rs`), then the post-commit check (PROTOCOL.md §3).

use super::{Purpose, PutTarget, Writer};
use crate::io::{Body, Op, Response};
use crate::manifest::Manifest;
use crate::requests::Pending;

pub(super) struct Commit {
    pub(super) manifest: Manifest,
    body: Body,
    pub(super) kind: CommitKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CommitKind {
    /// A new epoch (or the log's creation).
    Claim,
    /// The oldest frozen generation.
    Generation,
    /// A WAL-only cursor move.
    Truncate,
    /// A merged generation replacing a run (never moves the cursor).
    Compaction,
    /// Leading generations dropped by retention (`drop.rs`).
    Drop,
    /// A restore (`restore.rs`): the only commit that writes `restored`.
    Restore,
    /// A checked drop's intent: `dropping` set, before the consumers are listed
    /// (`retain.rs`).
    Intent,
    /// A checked drop that dropped nothing: `dropping` cleared.
    Settle,
}

impl Writer {
    pub(super) fn start_commit(&mut self, mut manifest: Manifest, kind: CommitKind) {
        let version = manifest.version;
        if kind != CommitKind::Restore {
            manifest.restored = None;
        }
        // The version built on passed its time on: never below it (GC bounds a version's
        // time by a later one's, `retention.rs`). Without a clock: none.
        let floor = manifest.committed_at.unwrap_or(0);
        manifest.committed_at = self.wall_now().map(|now| now.max(floor));
        let body = manifest.encode().into();
        self.commit = Some(Commit {
            manifest,
            body,
            kind,
        });
        self.put(PutTarget::Manifest { version });
    }

    /// The bytes of the commit at `version`, while it runs.
    pub(super) fn commit_body(&self, version: u64) -> Option<&Body> {
        self.commit
            .as_ref()
            .filter(|c| c.manifest.version == version)
            .map(|c| &c.body)
    }

    /// Another writer's version is there: a claim starts over, anything else means fenced.
    pub(super) fn lost_race(&mut self) {
        match self.commit.take().map(|c| c.kind) {
            Some(CommitKind::Claim) => self.start_open(),
            _ => self.fenced(),
        }
    }

    pub(super) fn post_check(&mut self, version: u64) {
        let op = Op::List {
            prefix: self.paths.manifest_dir(),
            after: Some(self.paths.manifest(version)),
        };
        self.io.send(op, Purpose::PostCheck { version });
    }

    pub(super) fn on_post_check(
        &mut self,
        version: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        match resp.into_list() {
            Ok(items) => {
                let newer = items.iter().any(|m| {
                    self.paths
                        .manifest_version(&m.path)
                        .is_some_and(|v| v > version)
                });
                if newer {
                    // Someone claimed after us, or our create filled a collected hole.
                    self.commit = None;
                    self.fenced();
                } else {
                    // A clean ownership check: the lease runs from its send.
                    self.clean_check(request.sent_at);
                    self.committed(version);
                }
            }
            Err(e) => self.retry(request, &e),
        }
    }

    fn committed(&mut self, version: u64) {
        let Some(commit) = self.commit.take() else {
            return;
        };
        self.manifest_versions
            .insert(version, commit.manifest.committed_at);
        let cursor = commit.manifest.replay_cursor;
        if self.cursor_times.back().is_none_or(|&(c, _)| c < cursor) {
            self.cursor_times.push_back((cursor, self.now));
        }
        self.manifest = Some(commit.manifest);
        if matches!(commit.kind, CommitKind::Generation | CommitKind::Compaction) {
            self.want_retention();
        }
        match commit.kind {
            CommitKind::Claim => {
                self.claimed_at = Some(self.now);
                self.on_claimed()
            }
            CommitKind::Generation => self.on_generation_committed(),
            CommitKind::Truncate => self.on_truncated(),
            CommitKind::Compaction => self.on_compacted(),
            CommitKind::Drop => self.on_dropped(),
            CommitKind::Restore => self.on_restored(),
            CommitKind::Intent => self.on_intent_committed(),
            CommitKind::Settle => self.on_round_closed(None),
        }
        self.sync_retiring();
        self.collect_manifests();
    }
}
