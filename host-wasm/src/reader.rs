//! Reading a log from JS: `Reader`, the core's reader machine on the one drive loop, read-only
//! (it never fences anyone), iterated with `for await (const ipc of reader)`. Each item is
//! one WAL position's rows as an Arrow IPC stream; its bytes are released to the reader's
//! flow control when JS pulls it (PROTOCOL.md §5 "Flow control"), so a page that stops
//! pulling stops the reader after about `readAheadBytes`. `Wal.tail` and `Wal.scan` use it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Object, Promise, Reflect, Symbol, Uint8Array};
use tidewal_core::arrow::{ArrowCodec, Projection};
use tidewal_core::{Error, ReadEvent, Reader, ReaderConfig, Record};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::clock::now_ms;
use crate::driver::{pump, Driver, Handler, Shared};
use crate::error::to_js;
use crate::store::{set, Store};

/// What the reader reported and JS has not pulled yet.
#[derive(Default)]
struct Queue {
    items: VecDeque<(u64, Vec<Record>)>,
    failed: Option<Error>,
    ended: bool,
    /// A `next()` waiting for the next item.
    waiter: Option<oneshot::Sender<()>>,
}

impl Queue {
    fn wake(&mut self) {
        if let Some(w) = self.waiter.take() {
            let _ = w.send(());
        }
    }
}

/// The reader's handler: events into the queue.
struct Feed(Rc<RefCell<Queue>>);

impl Handler<ReadEvent> for Feed {
    fn event(&self, event: ReadEvent) {
        let mut q = self.0.borrow_mut();
        match event {
            ReadEvent::Records { position, records } => q.items.push_back((position, records)),
            ReadEvent::Fatal(f) => q.failed = Some(f.into()),
            _ => return,
        }
        q.wake();
    }

    fn done(&self) {
        let mut q = self.0.borrow_mut();
        q.ended = true;
        q.wake();
    }
}

/// A running read: the driver and the queue it fills.
#[derive(Clone)]
pub(crate) struct Reading {
    driver: Shared<Reader>,
    queue: Rc<RefCell<Queue>>,
}

impl Reading {
    /// Starts reading `cfg` on `store`.
    pub(crate) fn start(cfg: ReaderConfig, codec: &ArrowCodec, store: Store, seed: u64) -> Self {
        let reader = Reader::new(cfg, Box::new(codec.clone()), seed, Default::default());
        let queue = Rc::new(RefCell::new(Queue::default()));
        let driver = Driver::start(reader, store, now_ms(), Rc::new(Feed(queue.clone())));
        Reading { driver, queue }
    }

    /// The next position's records, in log order; `None` once the read ended. Pulling an
    /// item releases its bytes to the reader.
    pub(crate) async fn next(&self) -> Result<Option<(u64, Vec<Record>)>, Error> {
        loop {
            let waiting = {
                let mut q = self.queue.borrow_mut();
                if let Some(item) = q.items.pop_front() {
                    drop(q);
                    let bytes = item.1.iter().map(|r| r.payload.len() as u64).sum();
                    self.driver.borrow_mut().machine.release(bytes);
                    pump(&self.driver);
                    return Ok(Some(item));
                }
                if let Some(e) = q.failed.take() {
                    q.ended = true;
                    return Err(e);
                }
                if q.ended {
                    return Ok(None);
                }
                let (tx, rx) = oneshot::channel();
                q.waiter = Some(tx);
                rx
            };
            // A dropped sender (the read was stopped) just looks again.
            let _ = waiting.await;
        }
    }

    /// Stops the reader: no request after this; items already pulled stay valid.
    pub(crate) fn stop(&self) {
        self.driver.borrow_mut().machine.stop();
        pump(&self.driver);
        let mut q = self.queue.borrow_mut();
        q.items.clear();
        q.ended = true;
        q.wake();
    }
}

/// A read-only reader of one log: it never writes, so it never fences a writer. Iterate it
/// with `for await (const ipc of reader)`; each item is a `Uint8Array` holding one WAL
/// position's rows as an Arrow IPC stream (`tableFromIPC(ipc)`), with that position as
/// `ipc.position`.
#[wasm_bindgen(js_name = Reader)]
pub struct LogReader {
    reading: Reading,
    codec: ArrowCodec,
    projection: Option<Projection>,
}

#[wasm_bindgen(js_class = Reader)]
impl LogReader {
    /// Opens a reader of the log under `options.prefix` of `store`: from `options.from` (a
    /// position; default the beginning), stopping before `options.until`, following new
    /// entries if `options.follow` (checking every `pollMs`, default 100), decoding only
    /// `options.columns` if given (an unknown name rejects, naming the log's columns), reading
    /// at most `readAheadBytes` (default 16 MiB) ahead of what was pulled. Reads the log's
    /// schema from its manifest; rejects if there is no log.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reader>")]
    pub fn open(
        #[wasm_bindgen(unchecked_param_type = "Store")] store: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ReaderOptions")] options: JsValue,
    ) -> Promise {
        future_to_promise(async move {
            let store = Store::new(store)?;
            let opts = crate::options::parse_reader(&options)?;
            let codec = crate::admin::log_codec(store.clone(), &opts.reader.prefix)
                .await
                .map_err(|e| to_js(&e))?;
            let reader = LogReader::start(store, codec, opts.reader, opts.columns.as_deref())
                .map_err(|e| to_js(&e))?;
            let this = JsValue::from(reader);
            make_async_iterable(&this)?;
            Ok(this)
        })
    }

    /// The next item: `{ value: ipc, done: false }`, or `{ value: undefined, done: true }`
    /// once the read ended (caught up without `follow`, reached `until`, or stopped); rejects
    /// if reading failed.
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<ReaderItem, undefined>>")]
    pub fn next(&self) -> Promise {
        let reading = self.reading.clone();
        let (codec, projection) = (self.codec.clone(), self.projection.clone());
        future_to_promise(async move {
            let item = reading.next().await.map_err(|e| to_js(&e))?;
            let result = Object::new();
            match item {
                Some((position, records)) => {
                    let ipc = codec
                        .join_projected(&records, projection.as_ref())
                        .map_err(|e| to_js(&e.into()))?;
                    let ipc = Uint8Array::from(&ipc[..]);
                    set(&ipc, "position", position as f64);
                    set(&result, "value", ipc);
                    set(&result, "done", false);
                }
                None => {
                    set(&result, "value", JsValue::UNDEFINED);
                    set(&result, "done", true);
                }
            }
            Ok(result.into())
        })
    }

    /// Stops reading: no request is sent after this, and iteration ends.
    pub fn stop(&self) {
        self.reading.stop();
    }

    /// What `for await` calls when the loop is left early (`break`, `return`, a throw):
    /// stops the reader.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<ReaderItem, undefined>>"
    )]
    pub fn finish(&self) -> Promise {
        self.reading.stop();
        let result = Object::new();
        set(&result, "value", JsValue::UNDEFINED);
        set(&result, "done", true);
        Promise::resolve(&JsValue::from(result))
    }
}

impl LogReader {
    /// A reader of `cfg` with `codec`, decoding onto `columns` if given.
    pub(crate) fn start(
        store: Store,
        codec: ArrowCodec,
        cfg: ReaderConfig,
        columns: Option<&[String]>,
    ) -> Result<LogReader, Error> {
        let projection = columns.map(|c| codec.projection(c)).transpose()?;
        let reading = Reading::start(cfg, &codec, store, crate::wal::random_seed());
        Ok(LogReader {
            reading,
            codec,
            projection,
        })
    }
}

/// Gives the class `[Symbol.asyncIterator]() { return this }`, once, without eval:
/// `Object.prototype.valueOf` is a built-in that returns its receiver.
fn make_async_iterable(reader: &JsValue) -> Result<(), JsValue> {
    let proto = Object::get_prototype_of(reader);
    let key = Symbol::async_iterator();
    if !Reflect::has(&proto, &key)? {
        let value_of = Reflect::get(&Object::new(), &"valueOf".into())?;
        Reflect::set(&proto, &key, &value_of)?;
    }
    Ok(())
}
