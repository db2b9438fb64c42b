//! Reading a log with the core's reader machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::ObjectStore;
use tidewal_core::arrow_codec::ArrowCodec;
use tidewal_core::{ReadEvent, Reader, ReaderConfig, RequestId, Response};

use crate::error::Error;
use crate::store::execute;

/// Reads every durable record of the log under `prefix`, in order.
pub async fn read_log(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    codec: &ArrowCodec,
) -> Result<Vec<RecordBatch>, Error> {
    let cfg = ReaderConfig {
        prefix: prefix.to_string(),
        follow: false,
        ..ReaderConfig::default()
    };
    let origin = Instant::now();
    let mut reader = Reader::new(cfg, Box::new(codec.clone()), rand::random(), Duration::ZERO);
    let mut in_flight: FuturesUnordered<BoxFuture<'static, (RequestId, Response)>> =
        FuturesUnordered::new();
    let mut out = Vec::new();
    loop {
        while let Some(request) = reader.poll_request() {
            let store = store.clone();
            in_flight.push(Box::pin(async move {
                (request.id, execute(store, request.op).await)
            }));
        }
        while let Some(event) = reader.poll_event() {
            match event {
                ReadEvent::Records { records, .. } => {
                    for record in &records {
                        out.push(codec.decode_record(record)?);
                    }
                }
                ReadEvent::Fatal(e) => return Err(e.into()),
                _ => {}
            }
        }
        if reader.is_done() {
            return Ok(out);
        }
        let wake = reader.poll_timeout().map(|(at, _)| origin + at);
        tokio::select! {
            Some((id, response)) = in_flight.next(), if !in_flight.is_empty() => {
                reader.handle_response(id, response, origin.elapsed());
            }
            _ = sleep_until(wake), if wake.is_some() => reader.handle_timeout(origin.elapsed()),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}
