//! Looking at a log without writing: what it holds ([`Inspector`]) and a check of every
//! object's name, checksum and encoding ([`Verifier`]). Both are [`Machine`]s, so every host
//! offers them with its one drive loop; the rules they check are the ones the writer and the
//! reader rely on (PROTOCOL.md §1 names, §2 encodings, §3 manifest). One request at a time,
//! in log order, so the first problem found is the one reported; no retries (a failed read
//! is reported as it is).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use crate::codec::{Codec, EntryKind, Generation};
use crate::config::RetryPolicy;
use crate::error::FatalError;
use crate::io::{ObjectMeta, Op, RequestId, Response, StoreError};
use crate::machine::{Machine, Output};
use crate::manifest::{GenerationRecord, Manifest, ManifestError};
use crate::paths::Paths;
use crate::requests::{Pending, Requests};
use crate::walk::decode_slot;

/// What a log holds, from its objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The current (newest) manifest, if the log exists.
    pub manifest: Option<Manifest>,
    /// Manifest versions present, ascending.
    pub manifest_versions: Vec<u64>,
    /// WAL objects present, ascending: (position, size in bytes).
    pub wal: Vec<(u64, u64)>,
    /// Fence intents present, ascending: (position, epoch) (PROTOCOL.md §1).
    pub fence_intents: Vec<(u64, u64)>,
}

#[cfg(feature = "arrow")]
impl Inspection {
    /// The log's Arrow schema, from its current manifest (what a host builds the codec of a
    /// [`Verifier`] or a reader from). `prefix` names the log in the error.
    pub fn arrow_schema(&self, prefix: &str) -> Result<arrow_schema::SchemaRef, crate::Error> {
        let m = self
            .manifest
            .as_ref()
            .ok_or_else(|| crate::Error::Invalid(format!("no log under '{prefix}'")))?;
        let bytes = m
            .schema_bytes()
            .ok_or_else(|| crate::Error::Invalid("manifest schema is not hex".into()))?;
        Ok(crate::arrow::decode_schema(&bytes)?)
    }
}

/// The manifest at `path` (the object of `version`), or why it cannot be read.
pub(crate) fn decode_manifest(
    path: &str,
    body: &[u8],
    version: u64,
) -> Result<Manifest, FatalError> {
    match Manifest::decode_version(body, version) {
        Ok(m) => Ok(m),
        Err(ManifestError::Corrupt(reason)) => Err(FatalError::Corrupt {
            path: path.into(),
            reason,
        }),
        Err(ManifestError::UnsupportedFormat(format)) => Err(FatalError::UnsupportedFormat {
            path: path.into(),
            format,
        }),
    }
}

fn store_fatal(path: &str, e: StoreError) -> FatalError {
    FatalError::Store {
        path: path.into(),
        message: e.message,
    }
}

/// The path a request was about (a list's prefix).
fn path_of(op: &Op) -> &str {
    match op {
        Op::Put { path, .. }
        | Op::Get { path }
        | Op::GetRange { path, .. }
        | Op::Delete { path } => path,
        Op::List { prefix, .. } => prefix,
    }
}

/// Which step of an inspection a request is.
#[derive(Clone, Copy, Debug)]
enum Look {
    ManifestFolder,
    Manifest(u64),
    WalFolder,
    FencesFolder,
}

/// Lists a log's manifests, WAL objects and fence intents and reads its newest manifest. Reports one event:
/// the [`Inspection`], or the first problem (an object in the manifest, WAL or fences folder
/// that is not one of its kind, a manifest that does not decode, a failed request).
pub struct Inspector {
    paths: Paths,
    io: Requests<Look>,
    found: Inspection,
    result: Option<Result<Inspection, FatalError>>,
    done: bool,
}

impl Inspector {
    /// Starts inspecting the log under `prefix`.
    pub fn new(prefix: &str) -> Self {
        let paths = Paths::new(prefix);
        // Never retried: a failed read is reported as it is.
        let mut io = Requests::new(0, RetryPolicy::default());
        let folder = paths.manifest_dir();
        io.send(list(folder), Look::ManifestFolder);
        Inspector {
            paths,
            io,
            found: Inspection {
                manifest: None,
                manifest_versions: Vec::new(),
                wal: Vec::new(),
                fence_intents: Vec::new(),
            },
            result: None,
            done: false,
        }
    }

    fn step(&mut self, look: Look, response: Response) -> Result<(), FatalError> {
        match look {
            Look::ManifestFolder => {
                let items = self.listed(response, &self.paths.manifest_dir())?;
                for item in items {
                    let version = self.paths.manifest_version(&item.path).ok_or_else(|| {
                        FatalError::Corrupt {
                            path: item.path.clone(),
                            reason: "unexpected object in the manifest folder".into(),
                        }
                    })?;
                    self.found.manifest_versions.push(version);
                }
                self.found.manifest_versions.sort_unstable();
                match self.found.manifest_versions.last() {
                    Some(&v) => self.io.send(get(self.paths.manifest(v)), Look::Manifest(v)),
                    None => self.io.send(list(self.paths.wal_dir()), Look::WalFolder),
                };
            }
            Look::Manifest(version) => {
                let path = self.paths.manifest(version);
                let body = response.into_get().map_err(|e| store_fatal(&path, e))?;
                self.found.manifest = Some(decode_manifest(&path, &body, version)?);
                self.io.send(list(self.paths.wal_dir()), Look::WalFolder);
            }
            Look::WalFolder => {
                let items = self.listed(response, &self.paths.wal_dir())?;
                for item in items {
                    let position =
                        self.paths
                            .wal_position(&item.path)
                            .ok_or_else(|| FatalError::Corrupt {
                                path: item.path.clone(),
                                reason: "unexpected object in the WAL folder".into(),
                            })?;
                    self.found.wal.push((position, item.size));
                }
                self.found.wal.sort_unstable();
                self.io
                    .send(list(self.paths.fences_dir()), Look::FencesFolder);
            }
            Look::FencesFolder => {
                let items = self.listed(response, &self.paths.fences_dir())?;
                for item in items {
                    let intent = self.paths.fence_intent_parts(&item.path).ok_or_else(|| {
                        FatalError::Corrupt {
                            path: item.path.clone(),
                            reason: "unexpected object in the fences folder".into(),
                        }
                    })?;
                    self.found.fence_intents.push(intent);
                }
                self.found.fence_intents.sort_unstable();
                let found = core::mem::replace(
                    &mut self.found,
                    Inspection {
                        manifest: None,
                        manifest_versions: Vec::new(),
                        wal: Vec::new(),
                        fence_intents: Vec::new(),
                    },
                );
                self.result = Some(Ok(found));
            }
        }
        Ok(())
    }

    fn listed(&self, response: Response, folder: &str) -> Result<Vec<ObjectMeta>, FatalError> {
        response.into_list().map_err(|e| store_fatal(folder, e))
    }
}

impl Machine for Inspector {
    type Event = Result<Inspection, FatalError>;

    fn handle_response(&mut self, id: RequestId, response: Response, _now: core::time::Duration) {
        let Some((Pending { purpose: look, .. }, response)) = self.io.take(id, response) else {
            return;
        };
        if let Err(e) = self.step(look, response) {
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

/// What a [`Verifier`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Manifest versions decoded.
    pub manifests: usize,
    /// Generations checked against the manifest and decoded.
    pub generations: usize,
    /// WAL objects decoded (data and fences).
    pub wal_entries: usize,
    /// Fences among them.
    pub fences: usize,
    /// Rows in generations and WAL data entries.
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// What a verifier reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyEvent {
    /// One object passed (for progress): its path and size.
    Checked {
        /// The object.
        path: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// Every object passed.
    Verified(Verified),
    /// The first object that failed, or the request that did.
    Fatal(FatalError),
}

/// One object to check.
#[derive(Clone, Debug)]
enum Check {
    Manifest(u64),
    /// Index into the current manifest's generations.
    Generation(usize),
    Wal(u64),
}

/// Reads every object of a log and checks it: each manifest version decodes, each
/// generation of the current manifest has the size and checksum the manifest records and
/// decodes, each WAL object decodes (checksum included) and holds the position its name says.
pub struct Verifier {
    paths: Paths,
    codec: alloc::boxed::Box<dyn Codec>,
    manifest: Manifest,
    todo: alloc::collections::VecDeque<Check>,
    io: Requests<Check>,
    out: Verified,
    events: alloc::collections::VecDeque<VerifyEvent>,
    done: bool,
}

/// A generation's index, if the manifest names one, says what a whole read finds: checked
/// against the manifest, and every record it places is the one the file holds, with its
/// checksum (what a reader starting inside the generation relies on, PROTOCOL.md §5).
fn check_index(
    codec: &dyn Codec,
    record: &GenerationRecord,
    file: &Bytes,
    generation: &Generation,
) -> Result<(), FatalError> {
    let Some(index) = &record.index else {
        return Ok(());
    };
    let corrupt = |reason: &str| FatalError::Corrupt {
        path: record.path.clone(),
        reason: reason.into(),
    };
    let bytes = &file[index.offset as usize..(index.offset + index.length) as usize];
    index.verify(codec, &record.path, bytes)?;
    let decoded = codec
        .decode_generation_index(bytes, file.len() as u64)
        .map_err(|e| FatalError::from_codec(record.path.clone(), e))?;
    if decoded.entries.len() != generation.entries.len() {
        return Err(corrupt("the index and the file hold different positions"));
    }
    for (indexed, whole) in decoded.entries.iter().zip(&generation.entries) {
        let same = indexed.position == whole.position
            && indexed.time == whole.time
            && indexed.records.len() == whole.records.len();
        if !same {
            return Err(corrupt("the index and the file hold different positions"));
        }
        for (r, w) in indexed.records.iter().zip(&whole.records) {
            let at = &file[r.range.start as usize..r.range.end as usize];
            if codec.checksum(at) != r.crc32c || *at != w.payload.to_bytes()[..] {
                return Err(corrupt(
                    "a record differs from its place and checksum in the index",
                ));
            }
        }
    }
    Ok(())
}

impl Verifier {
    /// Checks what `inspection` found under `prefix` with `codec` (made from the current
    /// manifest's schema). Refused when the inspection found no log.
    pub fn new(
        prefix: &str,
        inspection: Inspection,
        codec: alloc::boxed::Box<dyn Codec>,
    ) -> Result<Self, FatalError> {
        let Some(manifest) = inspection.manifest else {
            return Err(FatalError::ConfigConflict {
                reason: format!("no log under '{prefix}'"),
            });
        };
        let todo = inspection
            .manifest_versions
            .iter()
            .map(|&v| Check::Manifest(v))
            .chain((0..manifest.generations.len()).map(Check::Generation))
            .chain(inspection.wal.iter().map(|&(p, _)| Check::Wal(p)))
            .collect();
        let mut v = Verifier {
            paths: Paths::new(prefix),
            codec,
            manifest,
            todo,
            io: Requests::new(0, RetryPolicy::default()),
            out: Verified::default(),
            events: alloc::collections::VecDeque::new(),
            done: false,
        };
        v.next();
        Ok(v)
    }

    fn path(&self, check: &Check) -> String {
        match check {
            Check::Manifest(v) => self.paths.manifest(*v),
            Check::Generation(i) => self.manifest.generations[*i].path.clone(),
            Check::Wal(p) => self.paths.wal(*p),
        }
    }

    fn next(&mut self) {
        match self.todo.pop_front() {
            Some(check) => {
                let path = self.path(&check);
                self.io.send(get(path), check);
            }
            None => {
                self.done = true;
                self.events
                    .push_back(VerifyEvent::Verified(core::mem::take(&mut self.out)));
            }
        }
    }

    fn check(&mut self, check: &Check, path: &str, body: Bytes) -> Result<(), FatalError> {
        match check {
            Check::Manifest(version) => {
                decode_manifest(path, &body, *version)?;
                self.out.manifests += 1;
            }
            Check::Generation(i) => {
                let record = &self.manifest.generations[*i];
                record.verify(self.codec.as_ref(), &body)?;
                let generation = self
                    .codec
                    .decode_generation(body.clone())
                    .map_err(|e| FatalError::from_codec(path.into(), e))?;
                check_index(self.codec.as_ref(), record, &body, &generation)?;
                let records = generation.entries.iter().flat_map(|e| &e.records);
                self.out.rows += records.map(|r| r.rows).sum::<u64>();
                self.out.generations += 1;
            }
            Check::Wal(position) => {
                let entry = decode_slot(self.codec.as_ref(), path.into(), *position, body)?;
                match entry.header.kind {
                    EntryKind::Fence { .. } => self.out.fences += 1,
                    EntryKind::Data => {
                        self.out.rows += entry.records.iter().map(|r| r.rows).sum::<u64>()
                    }
                }
                self.out.wal_entries += 1;
            }
        }
        Ok(())
    }
}

impl Machine for Verifier {
    type Event = VerifyEvent;

    fn handle_response(&mut self, id: RequestId, response: Response, _now: core::time::Duration) {
        let Some((
            Pending {
                purpose: check, op, ..
            },
            response,
        )) = self.io.take(id, response)
        else {
            return;
        };
        let path = String::from(path_of(&op));
        let checked = response
            .into_get()
            .map_err(|e| store_fatal(&path, e))
            .and_then(|body| {
                let bytes = body.len() as u64;
                self.check(&check, &path, body).map(|()| bytes)
            });
        match checked {
            Ok(bytes) => {
                self.out.bytes += bytes;
                self.events.push_back(VerifyEvent::Checked { path, bytes });
                self.next();
            }
            Err(e) => {
                self.io.shut();
                self.done = true;
                self.events.push_back(VerifyEvent::Fatal(e));
            }
        }
    }

    /// Nothing here waits on time.
    fn handle_timeout(&mut self, _now: core::time::Duration) {}

    fn poll_output(&mut self) -> Output<VerifyEvent> {
        if let Some(request) = self.io.poll_request() {
            Output::Request(request)
        } else if let Some(event) = self.events.pop_front() {
            Output::Event(event)
        } else if self.done {
            Output::Done
        } else {
            Output::Wait(None)
        }
    }
}

fn list(prefix: String) -> Op {
    Op::List {
        prefix,
        after: None,
    }
}

fn get(path: String) -> Op {
    Op::Get { path }
}
