//! `Wal`, the class JS code uses: open, append, flush, flushMemtable, compact,
//! collectGarbage, truncate, close, scan, stats (retention: `drop.rs`).

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use futures::channel::oneshot;
use js_sys::{Function, Object, Promise, Uint8Array};
use tidewal_core::arrow::{stream_schema, ArrowCodec};
use tidewal_core::{Error, ReaderConfig, Session, SessionEvent};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::clock::now_ms;
use crate::driver::{pump, Driver, Handler, Shared};
use crate::error::{invalid, to_js};
use crate::reader::Reading;
use crate::store::{set, Store};

/// A writer of one log. Opening it fences every older writer of the log; a newer writer
/// opening fences this one (pending and later calls reject with a `FencedError`).
#[wasm_bindgen]
pub struct Wal {
    pub(crate) driver: Shared<Session>,
    /// JS callback fired once when the writer is fenced.
    onfenced: Rc<RefCell<Option<Function>>>,
    codec: ArrowCodec,
    pub(crate) store: Store,
    pub(crate) prefix: String,
    epoch: u64,
}

pub(crate) fn random_seed() -> u64 {
    let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (half() << 32) | half()
}

/// A reply for the session and the receiver to await it on.
pub(crate) fn channel<T: Send + 'static>(
) -> (tidewal_core::Reply<T>, oneshot::Receiver<Result<T, Error>>) {
    let (tx, rx) = oneshot::channel();
    (Box::new(move |r| drop(tx.send(r))), rx)
}

/// Waits for a session reply; a dropped reply means the writer is gone.
pub(crate) async fn answer<T>(rx: oneshot::Receiver<Result<T, Error>>) -> Result<T, JsValue> {
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_js(&e)),
        Err(_) => Err(to_js(&Error::Closed)),
    }
}

#[wasm_bindgen]
impl Wal {
    /// Opens (or creates) the log under `options.prefix` of `store`: claims a new epoch,
    /// fences older writers and replays what they left. `options.schema` is an Arrow IPC
    /// stream whose schema is the log's (e.g. `tableToIPC(emptyTable, 'stream')`); the other
    /// options are in DESIGN.md.
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WalOptions")] options: JsValue,
    ) -> Result<Wal, JsValue> {
        let store = Store::new(store)?;
        let opts = crate::options::parse(&options)?;
        let schema = stream_schema(&opts.schema).map_err(|e| to_js(&e.into()))?;
        let codec = ArrowCodec::new(schema).map_err(|e| to_js(&e.into()))?;
        let prefix = opts.writer.prefix.clone();
        let origin_ms = now_ms();
        // Entry times (PROTOCOL.md §2): the wall clock now plus the monotonic time since.
        let mut writer = opts.writer;
        writer.unix_ms_at_origin = Some(js_sys::Date::now() as u64);
        let (ready, opened) = channel();
        let timeout = opts.backpressure_timeout;
        let session = Session::open(
            writer,
            Box::new(codec.clone()),
            random_seed(),
            timeout,
            ready,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let onfenced = Rc::new(RefCell::new(None));
        let driver = Driver::start(
            session,
            store.clone(),
            origin_ms,
            Rc::new(OnFenced(onfenced.clone())),
        );
        let epoch = answer(opened).await?;
        Ok(Wal {
            driver,
            onfenced,
            codec,
            store,
            prefix,
            epoch,
        })
    }

    /// The epoch this writer claimed.
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> f64 {
        self.epoch as f64
    }

    /// The log's prefix in its store.
    #[wasm_bindgen(getter)]
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// Called once, with the `FencedError`, when a newer writer takes the log over.
    #[wasm_bindgen(setter)]
    pub fn set_onfenced(
        &self,
        #[wasm_bindgen(unchecked_param_type = "((error: WalError) => void) | null")]
        callback: Option<Function>,
    ) {
        *self.onfenced.borrow_mut() = callback;
    }

    /// Appends an Arrow IPC stream of the log schema (e.g. `tableToIPC(table, 'stream')`).
    /// Resolves to `{ position, append, rows }` once durable. All its batches go into one
    /// entry. Bad input rejects (`InvalidInputError`, `SchemaMismatchError`) with nothing
    /// queued.
    #[wasm_bindgen(unchecked_return_type = "Promise<AppendAck>")]
    pub fn append(&self, ipc: &Uint8Array) -> Promise {
        let records = match self.codec.split_stream(Bytes::from(ipc.to_vec())) {
            Ok(records) => records,
            Err(e) => return Promise::reject(&to_js(&e.into())),
        };
        let rows: u64 = records.iter().map(|r| r.rows).sum();
        let (reply, rx) = channel();
        {
            let mut d = self.driver.borrow_mut();
            let now = d.now();
            d.machine.append(records, reply, now);
        }
        pump(&self.driver);
        future_to_promise(async move {
            let ack = answer(rx).await?;
            let o = Object::new();
            set(&o, "position", ack.position as f64);
            set(&o, "append", ack.append.0 as f64);
            set(&o, "rows", rows as f64);
            Ok(o.into())
        })
    }

    /// Seals pending appends into an entry now and resolves once all of them are durable.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> Promise {
        self.command(|s, r, now| s.flush(r, now), |()| JsValue::UNDEFINED)
    }

    /// Writes every durable entry not yet in a generation as a generation file and commits
    /// it; resolves to its id, or `null` if there was nothing to flush.
    #[wasm_bindgen(js_name = flushMemtable, unchecked_return_type = "Promise<number | null>")]
    pub fn flush_memtable(&self) -> Promise {
        self.command(
            |s, r, now| s.flush_memtable(r, now),
            |id| id.map_or(JsValue::NULL, |id| JsValue::from(id as f64)),
        )
    }

    /// WAL-only logs (`walOnly: true`): drops every entry below `position` (the replay cursor
    /// moves there, or to the first entry past it; dropped entries are deleted) and resolves
    /// to the committed cursor. Rejects (`InvalidInputError`) with a memtable, or past the
    /// last durable entry; `HeldBackError` past a named consumer's committed position (the
    /// writer checks them; `dropBefore(position, true)` passes them).
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn truncate(&self, position: f64) -> Promise {
        if !(position >= 0.0 && position.fract() == 0.0 && position <= u64::MAX as f64) {
            return Promise::reject(&invalid(format!("truncate: bad position {position}")));
        }
        self.command(
            move |s, r, now| s.truncate(position as u64, false, r, now),
            |cursor| JsValue::from(cursor as f64),
        )
    }

    /// Runs one full compaction pass (runs of adjacent generations below the target merged
    /// while any is left) and resolves to what it merged. Rejects for a WAL-only log.
    #[wasm_bindgen(unchecked_return_type = "Promise<CompactionPass>")]
    pub fn compact(&self) -> Promise {
        self.command(
            |s, r, now| s.compact(r, now),
            |p| {
                let o = Object::new();
                set(&o, "runs", p.runs as f64);
                set(&o, "replaced", p.replaced as f64);
                set(&o, "generations", p.generations as f64);
                o.into()
            },
        )
    }

    /// Runs a collection round of fences, window orphans and fence intents as soon as the
    /// writer lease allows, and resolves to what it deleted.
    #[wasm_bindgen(js_name = collectGarbage, unchecked_return_type = "Promise<Collected>")]
    pub fn collect_garbage(&self) -> Promise {
        self.command(
            |s, r, now| s.collect_garbage(r, now),
            |c| {
                let o = Object::new();
                set(&o, "fences", c.fences as f64);
                set(&o, "orphans", c.orphans as f64);
                set(&o, "intents", c.intents as f64);
                o.into()
            },
        )
    }

    /// Drains: pending appends become durable, the memtable is flushed, the writer stops.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        self.command(|s, r, now| s.close(r, now), |()| JsValue::UNDEFINED)
    }

    /// Counters and gauges: appends, bytes, entries, generations, requests, in flight,
    /// unflushed bytes, epoch, positions, and acknowledgement latency p50/p99 in ms.
    #[wasm_bindgen(unchecked_return_type = "WalStats")]
    pub fn stats(&self) -> Object {
        let s = self.driver.borrow().machine.stats();
        let w = &s.writer;
        let o = Object::new();
        set(&o, "appends", w.appends as f64);
        set(&o, "appendedBytes", w.appended_bytes as f64);
        set(&o, "entriesWritten", w.entries_written as f64);
        set(&o, "generationsCommitted", w.generations_committed as f64);
        set(&o, "puts", w.io.puts as f64);
        set(&o, "gets", w.io.gets as f64);
        set(&o, "lists", w.io.lists as f64);
        set(&o, "deletes", w.io.deletes as f64);
        set(&o, "requestsInFlight", w.requests_in_flight as f64);
        set(&o, "entriesInFlight", w.entries_in_flight as f64);
        set(&o, "unflushedBytes", w.unflushed_bytes as f64);
        set(&o, "epoch", w.epoch as f64);
        set(&o, "nextPosition", w.next_position as f64);
        let durable = w
            .durable_position
            .map_or(JsValue::NULL, |p| JsValue::from(p as f64));
        set(&o, "durablePosition", durable);
        set(&o, "replayCursor", w.replay_cursor as f64);
        set(&o, "generationsLive", w.generations_live as f64);
        set(&o, "compactions", w.compactions as f64);
        set(&o, "generationsCompacted", w.generations_compacted as f64);
        set(&o, "compactionsFailed", w.compactions_failed as f64);
        let error = w
            .compaction_error
            .as_ref()
            .map_or(JsValue::NULL, |e| JsValue::from(e.to_string()));
        set(&o, "compactionError", error);
        set(&o, "bytesReclaimed", w.bytes_reclaimed as f64);
        set(&o, "leaseRenewals", w.lease_renewals as f64);
        set(&o, "collectedFences", w.collected.fences as f64);
        set(&o, "collectedOrphans", w.collected.orphans as f64);
        set(&o, "collectedIntents", w.collected.intents as f64);
        set(&o, "generationsDropped", w.generations_dropped as f64);
        set(&o, "bytesDropped", w.bytes_dropped as f64);
        set(&o, "retentionRounds", w.retention_rounds as f64);
        set(&o, "retentionHeldBack", w.retention_held_back as f64);
        let held = w.retention_held_by.as_ref().map_or(JsValue::NULL, |h| {
            let o = Object::new();
            set(&o, "name", JsValue::from(h.name.as_str()));
            set(&o, "position", h.position as f64);
            o.into()
        });
        set(&o, "retentionHeldBy", held);
        let ms = |v: Option<core::time::Duration>| {
            v.map_or(JsValue::NULL, |d| JsValue::from(d.as_secs_f64() * 1000.0))
        };
        set(&o, "ackP50Ms", ms(s.ack_p50));
        set(&o, "ackP99Ms", ms(s.ack_p99));
        o
    }

    /// Every durable row of the log, in order (generations, then the WAL), as one Arrow IPC
    /// stream (`tableFromIPC(bytes)` reads it).
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn scan(&self) -> Promise {
        let store = self.store.clone();
        let codec = self.codec.clone();
        let prefix = self.prefix.clone();
        future_to_promise(async move {
            let stream = scan_log(store, codec, prefix)
                .await
                .map_err(|e| to_js(&e))?;
            Ok(Uint8Array::from(&stream[..]).into())
        })
    }

    /// Follows the log: calls `callback(ipc, position)` for every durable position in order
    /// (from the start of the log, then each new entry as it lands, checking every
    /// `pollMs`, default 100), with that position's rows as an Arrow IPC stream. Returns a
    /// handle whose `stop()` ends it; `handle.done` settles when it ends (rejects on error).
    /// (A loop over a `Reader` of this log, pulling as soon as the callback returns.)
    pub fn tail(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(ipc: Uint8Array, position: number) => void")]
        callback: Function,
        #[wasm_bindgen(js_name = pollMs)] poll_ms: Option<f64>,
    ) -> Tail {
        let cfg = ReaderConfig {
            prefix: self.prefix.clone(),
            follow: true,
            poll_interval: core::time::Duration::from_millis(
                poll_ms.unwrap_or(100.0).max(1.0) as u64
            ),
            ..ReaderConfig::default()
        };
        let reading = Reading::start(cfg, &self.codec, self.store.clone(), random_seed());
        let (codec, pulling) = (self.codec.clone(), reading.clone());
        let done = future_to_promise(async move {
            while let Some((position, records)) = pulling.next().await.map_err(|e| to_js(&e))? {
                let ipc = Uint8Array::from(&codec.join_stream(&records)[..]);
                let _ = callback.call2(&JsValue::NULL, &ipc, &JsValue::from(position as f64));
            }
            Ok(JsValue::UNDEFINED)
        });
        Tail { reading, done }
    }

    /// Runs a driver command whose reply maps to a JS value.
    fn command<T: Send + 'static>(
        &self,
        run: impl FnOnce(&mut Session, tidewal_core::Reply<T>, core::time::Duration),
        to_value: impl FnOnce(T) -> JsValue + 'static,
    ) -> Promise {
        let (reply, rx) = channel();
        {
            let mut d = self.driver.borrow_mut();
            let now = d.now();
            run(&mut d.machine, reply, now);
        }
        pump(&self.driver);
        future_to_promise(async move { answer(rx).await.map(to_value) })
    }
}

/// A running `tail`.
#[wasm_bindgen]
pub struct Tail {
    reading: Reading,
    done: Promise,
}

#[wasm_bindgen]
impl Tail {
    /// Stops following: no request is sent after this, and `done` resolves.
    pub fn stop(&self) {
        self.reading.stop();
    }

    /// Settles when the tail ends: resolves after `stop()`, rejects if reading failed.
    #[wasm_bindgen(getter, unchecked_return_type = "Promise<void>")]
    pub fn done(&self) -> Promise {
        self.done.clone()
    }
}

/// Reads every durable record of the log into one IPC stream (pulling each position as it
/// comes, so the reader's read-ahead stays bounded; the result is the whole log).
async fn scan_log(store: Store, codec: ArrowCodec, prefix: String) -> Result<Vec<u8>, Error> {
    let cfg = ReaderConfig {
        prefix,
        ..ReaderConfig::default()
    };
    let reading = Reading::start(cfg, &codec, store, random_seed());
    let mut records = Vec::new();
    while let Some((_, mut r)) = reading.next().await? {
        records.append(&mut r);
    }
    Ok(codec.join_stream(records.iter()))
}

/// Tells the page, once, that a newer writer took the log over.
struct OnFenced(Rc<RefCell<Option<Function>>>);

impl Handler<SessionEvent> for OnFenced {
    fn event(&self, event: SessionEvent) {
        let SessionEvent::Fenced(error) = event else {
            return;
        };
        // Cloned out first: the callback may set a new one.
        let callback = self.0.borrow().clone();
        if let Some(callback) = callback {
            let _ = callback.call1(&JsValue::NULL, &to_js(&error));
        }
    }
}
