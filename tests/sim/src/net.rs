//! The network and the store behind it: latency, and the faults injected before and after the
//! store applies a request, plus what real stores do within the contract (lists in any order
//! with stray objects, `NotFound` for a missing delete).

use std::time::Duration;

use tidewal_core::{
    Codec as _, EntryKind, MemStore, ObjectMeta, Op, RawCodec, Response, StoreError, StoreErrorKind,
};

use crate::model::Model;
use crate::rng::Rng;

/// How often each fault strikes (per request) and how slow a hop may be.
#[derive(Clone, Copy)]
pub struct Faults {
    pub fail_before: f64,
    pub fail_after: f64,
    pub exists_after: f64,
    pub max_latency_ms: u64,
}

impl Faults {
    /// One seed's faults: heavy or light.
    pub fn draw(rng: &mut Rng) -> Self {
        let heavy = rng.chance(0.5);
        Faults {
            fail_before: if heavy { 0.05 } else { 0.01 },
            fail_after: if heavy { 0.05 } else { 0.01 },
            exists_after: if heavy { 0.03 } else { 0.0 },
            max_latency_ms: rng.range(2, 40),
        }
    }
}

/// The store and the faulty network in front of it.
pub struct Net {
    pub store: MemStore,
    pub faults: Faults,
}

impl Net {
    pub fn new(faults: Faults) -> Self {
        Net {
            store: MemStore::new(),
            faults,
        }
    }

    /// No more injected failures (latency and the real-store behaviours stay).
    pub fn calm(&mut self) {
        self.faults = Faults {
            fail_before: 0.0,
            fail_after: 0.0,
            exists_after: 0.0,
            ..self.faults
        };
    }

    /// One network hop of a client with this latency multiplier (slow clients make the races
    /// between zombies and newer writers that a uniform network rarely produces).
    pub fn latency(&self, rng: &mut Rng, slowness: u64) -> Duration {
        let hop = rng.range(100, self.faults.max_latency_ms * 1000);
        Duration::from_micros(hop * slowness)
    }

    /// A request reaches the store: maybe fail before applying, apply (the model checks what
    /// lands and what is deleted), maybe lose the answer. Returns the answer and a trace note.
    pub fn arrive(
        &mut self,
        rng: &mut Rng,
        model: &mut Model,
        codec: &RawCodec,
        op: Op,
    ) -> Result<(Response, String), String> {
        let f = self.faults;
        if rng.chance(f.fail_before) {
            let resp = op.failed(StoreError::new(
                StoreErrorKind::Unknown,
                "injected: failed before apply",
            ));
            return Ok((resp, "dropped before apply".into()));
        }
        let missing = matches!(&op, Op::Delete { path } if self.store.object(path).is_none());
        if let Op::Delete { path } = &op {
            model.on_delete(&self.store, path)?;
            let fence = self
                .store
                .object(path)
                .and_then(|b| codec.decode_entry(b.clone()).ok());
            if fence.is_some_and(|e| matches!(e.header.kind, EntryKind::Fence { .. })) {
                model.fences_collected += 1;
            }
            if path.contains("/fences/") && !missing {
                model.intents_collected += 1;
            }
        }
        let resp = self.store.execute(&op);
        if let (Op::Put { path, body, .. }, Response::Put(Ok(_))) = (&op, &resp) {
            model.on_put(&self.store, path, &body.to_bytes(), codec)?;
        }
        let note = format!("applied {}", describe(&op, &resp));
        let created = matches!((&op, &resp), (Op::Put { .. }, Response::Put(Ok(_))));
        let resp = if created && rng.chance(f.exists_after) {
            // object_store retries a create whose answer was lost and sees its own object.
            op.failed(StoreError::new(
                StoreErrorKind::AlreadyExists,
                "injected: retried create",
            ))
        } else if rng.chance(f.fail_after) {
            op.failed(StoreError::new(
                StoreErrorKind::Unknown,
                "injected: answer lost",
            ))
        } else {
            self.as_a_real_store_answers(rng, &op, resp, missing)
        };
        Ok((resp, note))
    }

    /// What real stores do within the contract and the core must handle itself: lists in
    /// any order, with objects outside the asked range (an S3 listing from a start key, a
    /// prefix that matches more than the folder), and `NotFound` for a missing delete.
    fn as_a_real_store_answers(
        &self,
        rng: &mut Rng,
        op: &Op,
        resp: Response,
        missing: bool,
    ) -> Response {
        match (op, resp) {
            (Op::List { prefix, .. }, Response::List(Ok(mut items))) => {
                if rng.chance(0.3) {
                    // Below the bound (when there is one) and outside the folder.
                    let stray: Vec<_> = self.store.paths().take(2).map(String::from).collect();
                    let beside = format!("{}-beside/x", prefix.trim_end_matches('/'));
                    for path in stray.into_iter().chain([beside]) {
                        items.push(ObjectMeta { path, size: 1 });
                    }
                }
                for i in (1..items.len()).rev() {
                    let j = rng.range(0, i as u64) as usize;
                    items.swap(i, j);
                }
                Response::List(Ok(items))
            }
            (Op::Delete { path }, Response::Delete(Ok(()))) if missing && rng.chance(0.5) => {
                Response::Delete(Err(StoreError::new(
                    StoreErrorKind::NotFound,
                    format!("injected: {path} was not there"),
                )))
            }
            (_, resp) => resp,
        }
    }
}

/// Whether a response reports success.
pub fn is_ok(resp: &Response) -> bool {
    matches!(
        resp,
        Response::Put(Ok(_))
            | Response::Get(Ok(_))
            | Response::List(Ok(_))
            | Response::Delete(Ok(_))
    )
}

pub fn op_name(op: &Op) -> String {
    match op {
        Op::Put { path, .. } => format!("PUT {path}"),
        Op::Get { path, .. } => format!("GET {path}"),
        Op::GetRange { path, range } => format!("GET {path} bytes {}..{}", range.start, range.end),
        Op::List { prefix, after } => format!("LIST {prefix} after {after:?}"),
        Op::Delete { path } => format!("DELETE {path}"),
        _ => "?".into(),
    }
}

fn describe(op: &Op, resp: &Response) -> String {
    let outcome = match resp {
        Response::Put(r) => r
            .as_ref()
            .map(|_| "ok".to_string())
            .unwrap_or_else(|e| format!("{:?}", e.kind)),
        Response::Get(r) => r
            .as_ref()
            .map(|g| format!("{} bytes", g.len()))
            .unwrap_or_else(|e| format!("{:?}", e.kind)),
        Response::List(r) => r
            .as_ref()
            .map(|l| format!("{} items", l.len()))
            .unwrap_or_else(|e| format!("{:?}", e.kind)),
        Response::Delete(_) => "ok".into(),
        _ => "?".into(),
    };
    format!("{} -> {outcome}", op_name(op))
}
