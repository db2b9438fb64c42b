//! Retention from JS (PROTOCOL.md §4 "Retention"): `Wal.dropBefore` and `Wal.dropOlderThan`,
//! the native host's `truncate_before` and `drop_older_than`: the memtable is flushed first,
//! the named consumers are listed so the core's `drop_point` refuses early, then the writer
//! runs its round (intent, its own listing, the drop) unless forced.

use js_sys::{Object, Promise};
use tidewal_core::writer::Dropped;
use tidewal_core::{Error, Manifest};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::driver::{pump, Shared};
use crate::error::{invalid, to_js};
use crate::store::{set, Store};
use crate::wal::{answer, channel, Wal};
use tidewal_core::Session;

/// Runs a session command on `driver` and waits for its reply (for the `Wal` methods whose
/// futures run several commands in turn).
pub(crate) async fn command<T: Send + 'static>(
    driver: &Shared<Session>,
    run: impl FnOnce(&mut Session, tidewal_core::Reply<T>, core::time::Duration),
) -> Result<T, JsValue> {
    let (reply, rx) = channel();
    {
        let mut d = driver.borrow_mut();
        let now = d.now();
        run(&mut d.machine, reply, now);
    }
    pump(driver);
    answer(rx).await
}

/// What the drop needs of the `Wal`, owned by its future.
struct Dropper {
    driver: Shared<Session>,
    store: Store,
    prefix: String,
}

impl Dropper {
    async fn command<T: Send + 'static>(
        &self,
        run: impl FnOnce(&mut Session, tidewal_core::Reply<T>, core::time::Duration),
    ) -> Result<T, JsValue> {
        command(&self.driver, run).await
    }

    async fn manifest(&self) -> Result<Manifest, JsValue> {
        let i = crate::admin::inspection(self.store.clone(), &self.prefix)
            .await
            .map_err(|e| to_js(&e))?;
        i.manifest.ok_or_else(|| invalid("no log here"))
    }

    /// The committed manifest once every durable entry is in a generation (WAL-only: as is).
    async fn flushed_manifest(&self) -> Result<Manifest, JsValue> {
        let m = self.manifest().await?;
        if m.wal_only {
            return Ok(m);
        }
        self.command(|s, r, now| s.flush_memtable(r, now)).await?;
        self.manifest().await
    }

    async fn drop_before(&self, position: u64, force: bool) -> Result<Dropped, JsValue> {
        let m = self.flushed_manifest().await?;
        let end = if m.wal_only {
            let durable = self.driver.borrow().machine.stats().writer.durable_position;
            durable
                .map_or(m.replay_cursor, |d| d + 1)
                .max(m.replay_cursor)
        } else {
            m.replay_cursor
        };
        if position > end {
            return Err(invalid(format!(
                "position {position} is past the log's end {end}"
            )));
        }
        let unchanged = Dropped {
            first_position: m.dropped_before,
            ..Dropped::default()
        };
        if position <= m.dropped_before {
            return Ok(unchanged);
        }
        // Refused before anything is written when a listing now already says so; the
        // writer checks again after announcing the drop (a consumer created meanwhile).
        let listed = crate::admin::list_consumers(self.store.clone(), &self.prefix)
            .await
            .map_err(|e| to_js(&e))?;
        let named = listed.iter().map(|c| (c.name.as_str(), c.position));
        let point = tidewal_core::retention::drop_point(position, named, force)
            .map_err(|held| to_js(&Error::from(held)))?;
        if m.wal_only {
            if point <= m.replay_cursor {
                // Everything below a WAL-only cursor is dropped already (or a fence window).
                return Ok(unchanged);
            }
            self.command(move |s, r, now| s.truncate(point, force, r, now))
                .await?;
            return Ok(Dropped {
                first_position: point,
                ..Dropped::default()
            });
        }
        self.command(move |s, r, now| s.drop_before(point, force, r, now))
            .await
    }

    async fn drop_older_than(&self, age_ms: u64, force: bool) -> Result<Dropped, JsValue> {
        let m = self.flushed_manifest().await?;
        if m.wal_only {
            return Err(invalid(
                "a WAL-only log keeps no generations: drop it before a position",
            ));
        }
        let cutoff = (js_sys::Date::now() as u64).saturating_sub(age_ms);
        let old = m
            .generations
            .iter()
            .take_while(|g| g.untimed == 0 && g.max_time.is_some_and(|t| t < cutoff))
            .last();
        let point = old.map_or(m.dropped_before, |g| g.last_position + 1);
        self.drop_before(point.max(m.dropped_before), force).await
    }
}

fn dropped(d: Dropped) -> JsValue {
    let o = Object::new();
    set(&o, "generations", d.generations as f64);
    set(&o, "bytes", d.bytes as f64);
    set(&o, "firstPosition", d.first_position as f64);
    o.into()
}

fn whole(what: &str, n: f64) -> Result<u64, JsValue> {
    if n >= 0.0 && n.fract() == 0.0 && n <= 2f64.powi(53) {
        Ok(n as u64)
    } else {
        Err(invalid(format!(
            "{what} must be a whole number from 0, not {n}"
        )))
    }
}

#[wasm_bindgen]
impl Wal {
    fn dropper(&self) -> Dropper {
        Dropper {
            driver: self.driver.clone(),
            store: self.store.clone(),
            prefix: self.prefix.clone(),
        }
    }

    /// Retention: drops every entry below `position`, whole leading generations first (the
    /// memtable is flushed first; WAL-only, the cursor moves as `truncate` does), and
    /// resolves to `{ generations, bytes, firstPosition }`. Rejects, nothing written, past
    /// the log's end (`InvalidInputError`) or past a named consumer's committed position
    /// (`HeldBackError` with its `consumer` and `position`) unless `force`.
    #[wasm_bindgen(js_name = dropBefore, unchecked_return_type = "Promise<Dropped>")]
    pub fn drop_before(&self, position: f64, force: Option<bool>) -> Promise {
        let position = match whole("dropBefore: position", position) {
            Ok(p) => p,
            Err(e) => return Promise::reject(&e),
        };
        let d = self.dropper();
        future_to_promise(async move {
            d.drop_before(position, force.unwrap_or(false))
                .await
                .map(dropped)
        })
    }

    /// Retention by age: drops the leading generations whose entries all carry a time older
    /// than `ageMs` by this host's clock (an untimed one stops it), as `dropBefore` does.
    /// Rejects for a WAL-only log (`InvalidInputError`).
    #[wasm_bindgen(js_name = dropOlderThan, unchecked_return_type = "Promise<Dropped>")]
    pub fn drop_older_than(&self, age_ms: f64, force: Option<bool>) -> Promise {
        let age = match whole("dropOlderThan: ageMs", age_ms) {
            Ok(a) => a,
            Err(e) => return Promise::reject(&e),
        };
        let d = self.dropper();
        future_to_promise(async move {
            d.drop_older_than(age, force.unwrap_or(false))
                .await
                .map(dropped)
        })
    }
}
