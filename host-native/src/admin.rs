//! Looking at a log without writing: its schema, its objects, and a full verification. The
//! checks are the core's `Inspector` and `Verifier` machines on this host's drive loop.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::SchemaRef;
use object_store::ObjectStore;
use tidewal_core::{Error, FatalError, History, Inspector, Verifier, VerifyEvent};

pub use tidewal_core::{Change, Inspection, ManifestHistory, Verified, VersionInfo};

use crate::driver::{drive, Role};

/// Lists the log's objects and reads its current manifest.
pub async fn inspect(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Inspection, Error> {
    let found = drive(Inspector::new(prefix), store, Instant::now(), Gather(None)).await;
    Ok(found.0.ok_or(Error::Closed)??)
}

/// Lists the log's manifest versions and reads each one kept (PROTOCOL.md §3 "History"): a
/// version collected between the list and its read is skipped and named.
pub async fn history(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<ManifestHistory, Error> {
    let found = drive(History::new(prefix), store, Instant::now(), Keep(None)).await;
    Ok(found.0.ok_or(Error::Closed)??)
}

/// The log's schema, from its current manifest.
pub async fn log_schema(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<SchemaRef, Error> {
    inspect(store, prefix).await?.arrow_schema(prefix)
}

/// Reads every object of the log and checks every checksum and name: the first problem is
/// returned as `Corrupt { path }`.
pub async fn verify(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Verified, Error> {
    verify_with(store, prefix, |_| {}).await
}

/// [`verify`], calling `progress` with the bytes of each object once it is checked.
pub async fn verify_with(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    progress: impl FnMut(u64) + Send,
) -> Result<Verified, Error> {
    let inspection = inspect(store.clone(), prefix).await?;
    let codec = crate::codec(inspection.arrow_schema(prefix)?)?;
    let verifier = Verifier::new(prefix, inspection, Box::new(codec))?;
    let role = Progress {
        progress,
        result: None,
    };
    let done = drive(verifier, store, Instant::now(), role).await;
    Ok(done.result.ok_or(Error::Closed)??)
}

/// Keeps the inspector's one result.
struct Gather(Option<Result<Inspection, FatalError>>);

impl Role for Gather {
    type Machine = Inspector;
    type Command = Infallible;

    async fn event(&mut self, event: Result<Inspection, FatalError>) -> ControlFlow<()> {
        self.0 = Some(event);
        ControlFlow::Continue(())
    }
}

/// Keeps the history's one result.
struct Keep(Option<Result<ManifestHistory, FatalError>>);

impl Role for Keep {
    type Machine = History;
    type Command = Infallible;

    async fn event(&mut self, event: Result<ManifestHistory, FatalError>) -> ControlFlow<()> {
        self.0 = Some(event);
        ControlFlow::Continue(())
    }
}

/// Hands each checked object's size to `progress` and keeps the verdict.
struct Progress<F> {
    progress: F,
    result: Option<Result<Verified, FatalError>>,
}

impl<F: FnMut(u64) + Send> Role for Progress<F> {
    type Machine = Verifier;
    type Command = Infallible;

    async fn event(&mut self, event: VerifyEvent) -> ControlFlow<()> {
        match event {
            VerifyEvent::Checked { bytes, .. } => (self.progress)(bytes),
            VerifyEvent::Verified(v) => self.result = Some(Ok(v)),
            VerifyEvent::Fatal(e) => self.result = Some(Err(e)),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
