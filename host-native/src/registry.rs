//! The logs this process has a writer of: a second `Wal` on the same log would fence the
//! first on its next write, which in one process is almost always a mistake, so it is
//! refused at open (`Error::AlreadyOpen`) unless asked for (`Options::take_over`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use tidewal_core::Error;

/// Which log a writer holds: a URL's canonical form, or a store (by its address, stable
/// while a writer holds it) and a prefix.
pub(crate) fn store_key(store: &Arc<dyn ObjectStore>, prefix: &str) -> String {
    let address = Arc::as_ptr(store) as *const () as usize;
    format!("store@{address:x}/{}", prefix.trim_matches('/'))
}

/// Every log with a writer, and the registration that holds it.
fn open_logs() -> &'static Mutex<HashMap<String, u64>> {
    static OPEN: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// One writer's hold on a log; released (once) by [`Registration::release`] or on drop.
pub(crate) struct Registration {
    key: String,
    id: u64,
}

impl Registration {
    /// Holds `key` for a new writer: `AlreadyOpen` naming `log` if another holds it, unless
    /// `take_over` (the new writer then holds it, and fences the other).
    pub(crate) fn claim(key: String, log: &str, take_over: bool) -> Result<Registration, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut open = open_logs().lock().unwrap_or_else(|e| e.into_inner());
        if open.contains_key(&key) && !take_over {
            return Err(Error::AlreadyOpen { log: log.into() });
        }
        open.insert(key.clone(), id);
        Ok(Registration { key, id })
    }

    /// Lets another writer open the log (this one closed, was fenced, or failed to open).
    pub(crate) fn release(&self) {
        let mut open = open_logs().lock().unwrap_or_else(|e| e.into_inner());
        if open.get(&self.key) == Some(&self.id) {
            open.remove(&self.key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
    }
}
