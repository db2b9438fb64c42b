//! Reading a log from JS: the core's `Reader` driven on one task (requests run concurrently,
//! retries wait on the clock). Used by `scan`.

use futures::future::{select, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use tidewal_core::{Error, ReadEvent, Reader, Record};

use crate::clock::{now_ms, since, sleep};
use crate::store::Store;

/// Runs `reader` to its end (or until `stopped()`), handing each position's records to
/// `on_records` in log order.
pub(crate) async fn drive(
    mut reader: Reader,
    store: Store,
    origin_ms: f64,
    stopped: impl Fn() -> bool,
    mut on_records: impl FnMut(u64, Vec<Record>),
) -> Result<(), Error> {
    let mut in_flight = FuturesUnordered::new();
    loop {
        if stopped() {
            reader.stop();
            return Ok(());
        }
        while let Some(r) = reader.poll_request() {
            let store = store.clone();
            in_flight.push(async move { (r.id, store.execute(r.op).await) });
        }
        while let Some(event) = reader.poll_event() {
            match event {
                ReadEvent::Records { position, records } => on_records(position, records),
                ReadEvent::CaughtUp { .. } => {}
                ReadEvent::Fatal(f) => return Err(f.into()),
                _ => {}
            }
        }
        if reader.is_done() {
            return Ok(());
        }
        let deadline = reader
            .poll_timeout()
            .map(|(at, _)| origin_ms + at.as_secs_f64() * 1000.0);
        match (in_flight.is_empty(), deadline) {
            (true, None) => {
                return Err(Error::Invalid(
                    "the reader stalled with nothing to wait for".into(),
                ))
            }
            (true, Some(at)) => sleep(at - now_ms()).await,
            (false, None) => {
                if let Some((id, response)) = in_flight.next().await {
                    reader.handle_response(id, response, since(origin_ms));
                }
            }
            (false, Some(at)) => {
                let timer = Box::pin(sleep(at - now_ms()));
                if let Either::Left((Some((id, response)), _)) =
                    select(in_flight.next(), timer).await
                {
                    reader.handle_response(id, response, since(origin_ms));
                }
            }
        }
        reader.handle_timeout(since(origin_ms));
    }
}
