//! Reads `Wal.open`'s options object into the core's settings.

use core::time::Duration;

use js_sys::{Reflect, Uint8Array};
use tidewal_core::{Session, WriterConfig};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::invalid;

/// What `Wal.open` was given.
pub(crate) struct OpenOptions {
    pub(crate) writer: WriterConfig,
    pub(crate) schema: Vec<u8>,
    pub(crate) backpressure_timeout: Duration,
}

fn field(obj: &JsValue, key: &str) -> Result<Option<JsValue>, JsValue> {
    let v = Reflect::get(obj, &key.into())?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

/// A whole number option within `min..=max`.
fn number(obj: &JsValue, key: &str, min: f64, max: f64) -> Result<Option<f64>, JsValue> {
    let Some(v) = field(obj, key)? else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(format!(
            "option {key} must be a whole number from {min} to {max}"
        ))),
    }
}

fn set_usize(target: &mut usize, obj: &JsValue, key: &str) -> Result<(), JsValue> {
    if let Some(n) = number(obj, key, 1.0, 2f64.powi(52))? {
        *target = n as usize;
    }
    Ok(())
}

fn set_u32(target: &mut u32, obj: &JsValue, key: &str) -> Result<(), JsValue> {
    if let Some(n) = number(obj, key, 1.0, u32::MAX as f64)? {
        *target = n as u32;
    }
    Ok(())
}

/// Parses the options object (every field but `schema` is optional).
pub(crate) fn parse(options: &JsValue) -> Result<OpenOptions, JsValue> {
    if !options.is_object() {
        return Err(invalid("options must be an object with at least `schema`"));
    }
    let mut w = WriterConfig::default();
    if let Some(p) = field(options, "prefix")? {
        let p = p
            .as_string()
            .ok_or_else(|| invalid("option prefix must be a string"))?;
        w.prefix = if p.is_empty() || p.ends_with('/') {
            p
        } else {
            format!("{p}/")
        };
    }
    set_u32(&mut w.fence_window, options, "window")?;
    set_u32(&mut w.max_in_flight, options, "maxInFlight")?;
    set_usize(&mut w.group_commit.max_bytes, options, "groupCommitBytes")?;
    set_usize(
        &mut w.group_commit.max_records,
        options,
        "groupCommitRecords",
    )?;
    if let Some(ms) = number(options, "groupCommitIntervalMs", 0.0, 3.6e6)? {
        w.group_commit.interval = Duration::from_millis(ms as u64);
    }
    set_usize(&mut w.max_entry_bytes, options, "maxEntryBytes")?;
    set_usize(&mut w.memtable_bytes, options, "memtableBytes")?;
    set_usize(&mut w.unflushed_budget, options, "maxUnflushedBytes")?;
    set_u32(&mut w.keep_manifests, options, "keepManifests")?;
    if let Some(v) = field(options, "walOnly")? {
        w.wal_only = v
            .as_bool()
            .ok_or_else(|| invalid("option walOnly must be a boolean"))?;
    }
    let keep_for = number(options, "keepForMs", 1.0, 2f64.powi(52))?;
    let keep_bytes = number(options, "keepBytes", 1.0, 2f64.powi(52))?;
    let interval = number(options, "retentionIntervalMs", 1.0, 2f64.powi(52))?;
    if keep_for.is_some() || keep_bytes.is_some() {
        w.retention = Some(tidewal_core::RetentionPolicy {
            keep_for: keep_for.map(|ms| Duration::from_millis(ms as u64)),
            keep_bytes: keep_bytes.map(|b| b as u64),
            interval: interval.map_or(tidewal_core::RetentionPolicy::DEFAULT_INTERVAL, |ms| {
                Duration::from_millis(ms as u64)
            }),
        });
    } else if interval.is_some() {
        return Err(invalid(
            "option retentionIntervalMs needs keepForMs or keepBytes",
        ));
    }
    let backpressure_timeout = number(options, "backpressureTimeoutMs", 0.0, 8.64e7)?
        .map_or(Session::DEFAULT_BACKPRESSURE_TIMEOUT, |ms| {
            Duration::from_secs_f64(ms / 1000.0)
        });
    w.validate().map_err(|e| invalid(e.to_string()))?;
    let schema = field(options, "schema")?
        .and_then(|s| s.dyn_into::<Uint8Array>().ok())
        .ok_or_else(|| {
            invalid("option schema must be a Uint8Array holding an Arrow IPC stream (its schema is the log's)")
        })?;
    Ok(OpenOptions {
        writer: w,
        schema: schema.to_vec(),
        backpressure_timeout,
    })
}

/// What `Reader.open` was given.
pub(crate) struct ReaderOptions {
    pub(crate) reader: tidewal_core::ReaderConfig,
    pub(crate) columns: Option<Vec<String>>,
}

/// A position option (`from`, `until`): a whole number.
fn position(obj: &JsValue, key: &str) -> Result<Option<u64>, JsValue> {
    Ok(number(obj, key, 0.0, 2f64.powi(53))?.map(|n| n as u64))
}

/// Parses `Reader.open`'s options object (every field is optional).
pub(crate) fn parse_reader(options: &JsValue) -> Result<ReaderOptions, JsValue> {
    use tidewal_core::{ReaderConfig, Start};
    let mut r = ReaderConfig::default();
    if options.is_undefined() || options.is_null() {
        return Ok(ReaderOptions {
            reader: r,
            columns: None,
        });
    }
    if !options.is_object() {
        return Err(invalid("options must be an object"));
    }
    if let Some(p) = field(options, "prefix")? {
        let p = p
            .as_string()
            .ok_or_else(|| invalid("option prefix must be a string"))?;
        r.prefix = if p.is_empty() || p.ends_with('/') {
            p
        } else {
            format!("{p}/")
        };
    }
    r.from = position(options, "from")?.map_or(Start::Beginning, Start::Position);
    r.until = position(options, "until")?;
    if let Some(t) = position(options, "fromTime")? {
        if r.from != Start::Beginning {
            return Err(invalid("options from and fromTime exclude each other"));
        }
        r.from = Start::Time(t);
    }
    r.as_of_version = number(options, "asOfVersion", 1.0, 2f64.powi(53))?.map(|v| v as u64);
    r.until_time = position(options, "untilTime")?;
    if let Some(v) = field(options, "follow")? {
        r.follow = v
            .as_bool()
            .ok_or_else(|| invalid("option follow must be a boolean"))?;
    }
    if let Some(ms) = number(options, "pollMs", 1.0, 3.6e6)? {
        r.poll_interval = Duration::from_millis(ms as u64);
    }
    if let Some(n) = number(options, "readAheadBytes", 1.0, 2f64.powi(53))? {
        r.read_ahead_bytes = n as u64;
    }
    let columns = match field(options, "columns")? {
        None => None,
        Some(v) => {
            let names: Option<Vec<String>> = js_sys::Array::is_array(&v)
                .then(|| {
                    js_sys::Array::from(&v)
                        .iter()
                        .map(|n| n.as_string())
                        .collect()
                })
                .flatten();
            Some(names.ok_or_else(|| invalid("option columns must be an array of strings"))?)
        }
    };
    Ok(ReaderOptions { reader: r, columns })
}
