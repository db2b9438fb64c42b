//! GC (PROTOCOL.md §4 "GC"): after a commit passed its post-check, delete the WAL data slots
//! below the new cursor that this writer read or wrote, and manifest versions no longer kept
//! (older than the newest `keep_manifests` and than `keep_manifests_for`). A fence is never deleted. A delete that keeps failing leaves
//! garbage behind and is counted (`gc_failures`); it never fails the writer.

use alloc::string::String;

use super::{Purpose, Writer};
use crate::io::{Op, Response, StoreErrorKind};
use crate::requests::Pending;
use crate::retention::{oldest_kept_version, Retention};

impl Writer {
    /// Deletes the data slots below the committed cursor. Fences are never deleted.
    pub(super) fn collect_wal(&mut self) {
        let cursor = self.manifest.as_ref().map_or(0, |m| m.replay_cursor);
        while let Some(&p) = self.live_positions.front() {
            if p >= cursor {
                break;
            }
            self.live_positions.pop_front();
            let path = self.paths.wal(p);
            self.delete(path);
        }
    }

    fn delete(&mut self, path: String) {
        self.io.send(Op::Delete { path }, Purpose::Delete);
    }

    /// A delete that keeps failing leaves garbage behind (counted), never fails the writer.
    pub(super) fn on_delete(&mut self, request: Pending<Purpose>, resp: Response) {
        match resp.into_delete() {
            Ok(()) => {}
            Err(e) if e.kind == StoreErrorKind::NotFound => {}
            Err(_) => {
                if self.io.retry(self.now, request).is_err() {
                    self.counters.gc_failures += 1;
                }
            }
        }
    }

    /// Deletes the manifest versions it knows of below the oldest one kept
    /// ([`crate::retention::oldest_kept_version`]: older than the newest `keep_manifests`
    /// and committed longer than `keep_manifests_for` ago).
    pub(super) fn collect_manifests(&mut self) {
        let retention = Retention {
            keep: self.cfg.keep_manifests,
            keep_for: self.cfg.keep_manifests_for,
        };
        let Some(oldest) = oldest_kept_version(&self.manifest_versions, retention, self.wall_now())
        else {
            return;
        };
        while let Some((&old, _)) = self.manifest_versions.first_key_value() {
            if old >= oldest {
                break;
            }
            self.manifest_versions.remove(&old);
            // Kept (it may be read) until its delete is confirmed: a retired file waits.
            self.manifest_deleting.insert(old);
            let path = self.paths.manifest(old);
            self.io.send(
                Op::Delete { path },
                Purpose::DeleteManifest { version: old },
            );
        }
    }

    /// A manifest version's delete: confirmed (or found nothing), or left behind.
    pub(super) fn on_delete_manifest(
        &mut self,
        version: u64,
        request: Pending<Purpose>,
        resp: Response,
    ) {
        match resp.into_delete() {
            Ok(()) => {}
            Err(e) if e.kind == StoreErrorKind::NotFound => {}
            Err(_) => {
                if self.io.retry(self.now, request).is_err() {
                    // Still in the store: it stays in `manifest_deleting` for good, so the
                    // files it names are never deleted by this writer.
                    self.counters.gc_failures += 1;
                }
                return;
            }
        }
        self.manifest_deleting.remove(&version);
    }
}
