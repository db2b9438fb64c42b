//! Reading a log from JS: the core's `Reader` on the one drive loop, its records handed to a
//! callback in log order. Used by `scan` and `tail`.

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::oneshot;
use tidewal_core::{Error, ReadEvent, Reader, Record};

use crate::clock::now_ms;
use crate::driver::{Driver, Handler, Shared};
use crate::store::Store;

/// Hands each position's records on and settles `finish` when the reader is done.
struct Reading<F> {
    deliver: F,
    failed: RefCell<Option<Error>>,
    finish: RefCell<Option<oneshot::Sender<Result<(), Error>>>>,
}

impl<F: Fn(u64, Vec<Record>)> Handler<ReadEvent> for Reading<F> {
    fn event(&self, event: ReadEvent) {
        match event {
            ReadEvent::Records { position, records } => (self.deliver)(position, records),
            ReadEvent::Fatal(f) => *self.failed.borrow_mut() = Some(f.into()),
            _ => {}
        }
    }

    fn done(&self) {
        if let Some(finish) = self.finish.borrow_mut().take() {
            let result = self.failed.borrow_mut().take().map_or(Ok(()), Err);
            let _ = finish.send(result);
        }
    }
}

/// A running reader: stop it through `driver`, await `finished` for how it ended.
pub(crate) struct Running {
    pub(crate) driver: Shared<Reader>,
    pub(crate) finished: oneshot::Receiver<Result<(), Error>>,
}

/// Starts `reader` on `store`; `deliver` gets each position's records in log order.
pub(crate) fn start(
    reader: Reader,
    store: Store,
    deliver: impl Fn(u64, Vec<Record>) + 'static,
) -> Running {
    let (tx, finished) = oneshot::channel();
    let handler = Rc::new(Reading {
        deliver,
        failed: RefCell::new(None),
        finish: RefCell::new(Some(tx)),
    });
    let driver = Driver::start(reader, store, now_ms(), handler);
    Running { driver, finished }
}

impl Running {
    /// Waits until the reader is done; the driver lives until then.
    pub(crate) async fn finished(self) -> Result<(), Error> {
        let Running { driver, finished } = self;
        let result = finished.await.unwrap_or(Err(Error::Closed));
        drop(driver);
        result
    }
}
