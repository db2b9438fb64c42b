//! The consumer's own requests: claiming the name, committing positions, collecting old
//! versions (PROTOCOL.md §5, "Named consumers"). Every put is read back unless it plainly
//! succeeded, and every successful create is followed by a LIST after it.

use bytes::Bytes;

use crate::error::FatalError;
use crate::io::{Body, Op, Response, StoreError, StoreErrorKind};
use crate::manifest::FORMAT;
use crate::requests::Pending;

use super::record::ConsumerVersion;
use super::{Consumer, ConsumerEvent, Phase};

/// What a create is: the claim or a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    Claim,
    Commit,
}

/// What each of the consumer's own requests was for.
#[derive(Clone, Debug)]
pub(super) enum Purpose {
    /// The name's folder, to find the newest version.
    List,
    /// The newest version, for its position.
    Newest { version: u64 },
    /// A create of `version` carrying `position`.
    Put {
        write: Write,
        version: u64,
        position: u64,
    },
    /// Reading back a put whose answer was not a plain success.
    ReadBack {
        write: Write,
        version: u64,
        position: u64,
    },
    /// After a successful create: anything after it?
    PostCheck {
        write: Write,
        version: u64,
        position: u64,
    },
    /// Collecting an old version (the outcome does not matter).
    Delete,
}

impl Consumer {
    /// Starts (or starts over) a claim: list the name's versions.
    pub(super) fn list_for_claim(&mut self) {
        let prefix = self.paths.dir(&self.cfg.name);
        self.io.send(
            Op::List {
                prefix,
                after: None,
            },
            Purpose::List,
        );
    }

    /// A claim lost to another instance (or raced GC): try again, or give up `Contended`.
    fn claim_lost(&mut self) {
        self.claim_losses += 1;
        if self.claim_losses >= self.cfg.claim_attempts.max(1) {
            return self.fail(FatalError::Contended);
        }
        self.list_for_claim();
    }

    fn body(&self, version: u64, position: u64, claim: u64) -> Bytes {
        ConsumerVersion {
            format: FORMAT,
            name: self.cfg.name.clone(),
            version,
            position,
            nonce: self.nonce,
            claim,
        }
        .encode()
    }

    fn put(&mut self, write: Write, version: u64, position: u64) {
        let op = self.put_op(write, version, position);
        self.io.send(
            op,
            Purpose::Put {
                write,
                version,
                position,
            },
        );
    }

    fn put_op(&self, write: Write, version: u64, position: u64) -> Op {
        let claim = match write {
            Write::Claim => version,
            Write::Commit => self.claim,
        };
        Op::Put {
            path: self.paths.version(&self.cfg.name, version),
            body: Body::from(self.body(version, position, claim)),
        }
    }

    /// Writes the next queued commit, if none is in flight.
    pub(super) fn next_commit(&mut self) {
        if self.writing.is_some() || self.phase != Phase::Reading {
            return;
        }
        let Some(position) = self.queued.pop_front() else {
            return self.finish_close();
        };
        self.writing = Some(position);
        let version = self.own + 1;
        self.put(Write::Commit, version, position);
    }

    /// Re-sends after a backoff, or fails once the retry budget is spent.
    fn retry(&mut self, request: Pending<Purpose>, last: &StoreError) {
        let Err(request) = self.io.retry(self.now, request) else {
            return;
        };
        let path = match &request.op {
            Op::Put { path, .. }
            | Op::Get { path }
            | Op::GetRange { path, .. }
            | Op::Delete { path } => path.clone(),
            Op::List { prefix, .. } => prefix.clone(),
        };
        self.fail(FatalError::Store {
            path,
            message: last.message.clone(),
        });
    }

    pub(super) fn on_response(&mut self, request: Pending<Purpose>, response: Response) {
        // A fenced instance still reads, but its own requests are over (GC deletes aside).
        if self.phase == Phase::Fenced && !matches!(request.purpose, Purpose::Delete) {
            return;
        }
        match request.purpose.clone() {
            Purpose::List => self.on_list(request, response),
            Purpose::Newest { version } => self.on_newest(version, request, response),
            Purpose::Put {
                write,
                version,
                position,
            } => match response.into_put() {
                Ok(()) => self.post_check(&request, write, version, position),
                Err(e) if e.kind == StoreErrorKind::NotSupported => {
                    let path = self.paths.version(&self.cfg.name, version);
                    self.fail(FatalError::Unsupported {
                        path,
                        message: e.message,
                    })
                }
                // AlreadyExists included: a store that retried our lost create meets itself.
                Err(_) => {
                    let path = self.paths.version(&self.cfg.name, version);
                    let back = request.same_attempt(
                        Op::Get { path },
                        Purpose::ReadBack {
                            write,
                            version,
                            position,
                        },
                    );
                    self.io.send_pending(back);
                }
            },
            Purpose::ReadBack {
                write,
                version,
                position,
            } => self.on_read_back(request, response, write, version, position),
            Purpose::PostCheck {
                write,
                version,
                position,
            } => self.on_post_check(request, response, write, version, position),
            Purpose::Delete => {}
        }
    }

    fn on_list(&mut self, request: Pending<Purpose>, response: Response) {
        let items = match response.into_list() {
            Ok(items) => items,
            Err(e) => return self.retry(request, &e),
        };
        let name = self.cfg.name.clone();
        let versions = items
            .iter()
            .filter_map(|m| self.paths.parse(&m.path))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v);
        self.known = versions.collect();
        match self.known.last().copied() {
            Some(version) => {
                let path = self.paths.version(&name, version);
                self.io.send(Op::Get { path }, Purpose::Newest { version });
            }
            None => self.put(Write::Claim, 1, 0),
        }
    }

    fn on_newest(&mut self, version: u64, request: Pending<Purpose>, response: Response) {
        let path = self.paths.version(&self.cfg.name, version);
        let body = match response.into_get() {
            Ok(body) => body,
            // Collected after the list: a newer version exists.
            Err(e) if e.kind == StoreErrorKind::NotFound => return self.claim_lost(),
            Err(e) => return self.retry(request, &e),
        };
        match ConsumerVersion::decode(&path, &self.cfg.name, version, &body) {
            Ok(newest) => self.put(Write::Claim, version + 1, newest.position),
            Err(e) => self.fail(e),
        }
    }

    fn post_check(
        &mut self,
        request: &Pending<Purpose>,
        write: Write,
        version: u64,
        position: u64,
    ) {
        let check = request.same_attempt(
            Op::List {
                prefix: self.paths.dir(&self.cfg.name),
                after: Some(self.paths.version(&self.cfg.name, version)),
            },
            Purpose::PostCheck {
                write,
                version,
                position,
            },
        );
        self.io.send_pending(check);
    }

    fn on_read_back(
        &mut self,
        request: Pending<Purpose>,
        response: Response,
        write: Write,
        version: u64,
        position: u64,
    ) {
        let path = self.paths.version(&self.cfg.name, version);
        let body = match response.into_get() {
            Ok(body) => body,
            // It did not land: put the same bytes again after a backoff.
            Err(e) if e.kind == StoreErrorKind::NotFound => {
                let again = request.same_attempt(
                    self.put_op(write, version, position),
                    Purpose::Put {
                        write,
                        version,
                        position,
                    },
                );
                return self.retry(again, &e);
            }
            Err(e) => return self.retry(request, &e),
        };
        let ours = match ConsumerVersion::decode(&path, &self.cfg.name, version, &body) {
            Ok(v) => v.nonce == self.nonce,
            Err(e) => return self.fail(e),
        };
        match (ours, write) {
            (true, _) => self.post_check(&request, write, version, position),
            (false, Write::Claim) => self.claim_lost(),
            (false, Write::Commit) => self.fence(),
        }
    }

    fn on_post_check(
        &mut self,
        request: Pending<Purpose>,
        response: Response,
        write: Write,
        version: u64,
        position: u64,
    ) {
        let items = match response.into_list() {
            Ok(items) => items,
            Err(e) => return self.retry(request, &e),
        };
        let name = self.cfg.name.clone();
        let newer = items
            .iter()
            .filter_map(|m| self.paths.parse(&m.path))
            .any(|(n, v)| n == name && v > version);
        match (newer, write) {
            (true, Write::Claim) => self.claim_lost(),
            (true, Write::Commit) => self.fence(),
            (false, Write::Claim) => self.claimed(version, position),
            (false, Write::Commit) => {
                self.writing = None;
                self.own = version;
                self.committed = position;
                self.known.insert(version);
                self.events
                    .push_back(ConsumerEvent::Committed { position, version });
                self.collect(version);
                self.next_commit();
            }
        }
    }

    /// Deletes the versions this instance knows of that are older than the newest
    /// `keep_versions` (never the newest: a LIST must always find the committed position).
    fn collect(&mut self, newest: u64) {
        let keep = u64::from(self.cfg.keep_versions.max(2));
        let Some(below) = newest.checked_sub(keep - 1) else {
            return;
        };
        let old: alloc::vec::Vec<u64> = self.known.range(..below).copied().collect();
        for version in old {
            self.known.remove(&version);
            let path = self.paths.version(&self.cfg.name, version);
            self.io.send(Op::Delete { path }, Purpose::Delete);
        }
    }
}
