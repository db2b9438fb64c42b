//! The scenarios every JS context runs (`web.rs`: a page, `worker.rs`: a dedicated Web
//! Worker), each on `MemoryStore` and on `OpfsStore` (the Origin Private File System,
//! `js/opfs_store.js`).

use std::cell::Cell;
use std::io::Cursor;
use std::rc::Rc;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use js_sys::{Object, Promise, Reflect, Uint8Array};
use tidewal_wasm::{consumers, history, inspect, verify, Consumer, LogReader, MemoryStore, Wal};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[wasm_bindgen(module = "/js/opfs_store.js")]
extern "C" {
    type OpfsStore;
    #[wasm_bindgen(static_method_of = OpfsStore, js_name = open)]
    fn open_folder(folder: &str) -> Promise;
    #[wasm_bindgen(method)]
    fn clear(this: &OpfsStore) -> Promise;
}

/// The stores every scenario runs on: a fresh `MemoryStore` and an emptied OPFS folder.
async fn stores(test: &str) -> Vec<(&'static str, JsValue)> {
    let opfs: OpfsStore = wait(OpfsStore::open_folder(&format!("tidewal-test-{test}")))
        .await
        .unwrap()
        .unchecked_into();
    wait(opfs.clear()).await.unwrap();
    vec![("memory", MemoryStore::new().into()), ("opfs", opfs.into())]
}

/// Calls a store method by name and waits for its Promise.
async fn call(store: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: js_sys::Function = get(store, method).unchecked_into();
    let args: js_sys::Array = args.iter().collect();
    wait(Promise::resolve(&f.apply(store, &args)?)).await
}

/// Every path in the store, in order.
async fn paths(store: &JsValue) -> Vec<String> {
    let listed = call(store, "list", &["".into()]).await.unwrap();
    js_sys::Array::from(&listed)
        .iter()
        .map(|m| get(&m, "path").as_string().unwrap())
        .collect()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let names: Vec<String> = ids.clone().map(|i| format!("row-{i}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

fn ipc(schema: &Schema, batches: &[RecordBatch]) -> Uint8Array {
    let mut w = StreamWriter::try_new(Vec::new(), schema).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    Uint8Array::from(&w.into_inner().unwrap()[..])
}

fn options(prefix: &str, extra: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"prefix".into(), &prefix.into()).unwrap();
    Reflect::set(&o, &"schema".into(), &ipc(&schema(), &[])).unwrap();
    for (k, v) in extra {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

async fn open(store: &JsValue, prefix: &str) -> Wal {
    Wal::open(store.clone(), options(prefix, &[]))
        .await
        .unwrap()
}

async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn num(v: &JsValue, key: &str) -> f64 {
    get(v, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} of {v:?}"))
}

fn name(e: &JsValue) -> String {
    get(e, "name").as_string().unwrap_or_default()
}

/// Every id the log holds, in order, read back through `scan`.
async fn scanned_ids(wal: &Wal) -> Vec<i64> {
    let bytes = Uint8Array::new(&wait(wal.scan()).await.unwrap()).to_vec();
    let reader = StreamReader::try_new(Cursor::new(bytes), None).unwrap();
    let mut ids = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        ids.extend(col.values().iter().copied());
    }
    ids
}

#[wasm_bindgen_test]
async fn append_is_durable_and_replays_after_reopen() {
    for (kind, store) in stores("append_is_durable_and_replays_after_reopen").await {
        console_log!("store: {kind}");
        let wal = open(&store, "logs/a").await;
        assert_eq!(wal.prefix(), "logs/a/");
        let mut last = -1.0;
        for k in 0..5 {
            let ack = wait(wal.append(&ipc(&schema(), &[batch(k * 10..k * 10 + 10)])))
                .await
                .unwrap();
            assert!(num(&ack, "position") > last, "positions grow");
            assert_eq!(num(&ack, "rows"), 10.0);
            last = num(&ack, "position");
        }
        assert_eq!(scanned_ids(&wal).await, (0..50).collect::<Vec<_>>());
        // A second log in the same store stays apart.
        let other = open(&store, "logs/b").await;
        wait(other.append(&ipc(&schema(), &[batch(100..101)])))
            .await
            .unwrap();
        wait(wal.close()).await.unwrap();

        let again = open(&store, "logs/a").await;
        assert!(again.epoch() > wal.epoch());
        assert_eq!(scanned_ids(&again).await, (0..50).collect::<Vec<_>>());
        wait(again.append(&ipc(&schema(), &[batch(50..51)])))
            .await
            .unwrap();
        assert_eq!(scanned_ids(&again).await, (0..51).collect::<Vec<_>>());
        assert_eq!(scanned_ids(&other).await, vec![100]);
    }
}

#[wasm_bindgen_test]
async fn one_append_of_many_batches_lands_in_one_entry() {
    for (kind, store) in stores("one_append_of_many_batches_lands_in_one_entry").await {
        console_log!("store: {kind}");
        let wal = open(&store, "multi").await;
        let stream = ipc(&schema(), &[batch(0..3), batch(3..3), batch(3..9)]);
        let ack = wait(wal.append(&stream)).await.unwrap();
        assert_eq!(num(&ack, "rows"), 9.0);
        assert_eq!(num(&wal.stats().into(), "entriesWritten"), 1.0);
        assert_eq!(scanned_ids(&wal).await, (0..9).collect::<Vec<_>>());
    }
}

#[wasm_bindgen_test]
async fn concurrent_appends_share_entries_by_group_commit() {
    for (kind, store) in stores("concurrent_appends_share_entries_by_group_commit").await {
        console_log!("store: {kind}");
        let extra = [("groupCommitIntervalMs", JsValue::from(20))];
        let wal = Wal::open(store.clone(), options("gc", &extra))
            .await
            .unwrap();
        let pending: Vec<Promise> = (0..40)
            .map(|k| wal.append(&ipc(&schema(), &[batch(k..k + 1)])))
            .collect();
        let mut positions = Vec::new();
        for p in pending {
            positions.push(num(&wait(p).await.unwrap(), "position"));
        }
        assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
        let stats: JsValue = wal.stats().into();
        assert_eq!(num(&stats, "appends"), 40.0);
        let entries = num(&stats, "entriesWritten");
        assert!(entries < 40.0, "40 appends in {entries} entries");
        assert!(get(&stats, "ackP50Ms").as_f64().is_some());
        assert_eq!(scanned_ids(&wal).await, (0..40).collect::<Vec<_>>());
    }
}

#[wasm_bindgen_test]
async fn a_second_writer_fences_the_first() {
    for (kind, store) in stores("a_second_writer_fences_the_first").await {
        console_log!("store: {kind}");
        let first = open(&store, "fence").await;
        wait(first.append(&ipc(&schema(), &[batch(0..1)])))
            .await
            .unwrap();
        let fired = Rc::new(Cell::new(0));
        let seen = fired.clone();
        let callback = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
            assert_eq!(name(&e), "FencedError");
            seen.set(seen.get() + 1);
        });
        first.set_onfenced(Some(
            callback
                .as_ref()
                .unchecked_ref::<js_sys::Function>()
                .clone(),
        ));

        let second = open(&store, "fence").await;
        assert!(second.epoch() > first.epoch());
        let e = wait(first.append(&ipc(&schema(), &[batch(1..2)])))
            .await
            .unwrap_err();
        assert_eq!(name(&e), "FencedError", "{e:?}");
        assert_eq!(num(&e, "epoch"), first.epoch());
        assert_eq!(fired.get(), 1);
        // Later calls reject the same way; the callback fires once.
        let e = wait(first.flush()).await.unwrap_err();
        assert_eq!(name(&e), "FencedError");
        assert_eq!(fired.get(), 1);

        wait(second.append(&ipc(&schema(), &[batch(2..3)])))
            .await
            .unwrap();
        assert_eq!(scanned_ids(&second).await, vec![0, 2]);
    }
}

#[wasm_bindgen_test]
async fn flush_memtable_writes_a_generation_that_replays() {
    for (kind, store) in stores("flush_memtable_writes_a_generation_that_replays").await {
        console_log!("store: {kind}");
        let wal = open(&store, "flush").await;
        for k in 0..4 {
            wait(wal.append(&ipc(&schema(), &[batch(k * 5..k * 5 + 5)])))
                .await
                .unwrap();
        }
        let id = wait(wal.flush_memtable()).await.unwrap();
        assert!(id.as_f64().is_some(), "a generation id, got {id:?}");
        let generations = paths(&store)
            .await
            .into_iter()
            .filter(|p| p.starts_with("flush/gen/"));
        assert_eq!(generations.count(), 1, "{:?}", paths(&store).await);
        assert!(
            wait(wal.flush_memtable()).await.unwrap().is_null(),
            "nothing left to flush"
        );
        wait(wal.append(&ipc(&schema(), &[batch(20..22)])))
            .await
            .unwrap();
        wait(wal.close()).await.unwrap();
        let again = open(&store, "flush").await;
        assert_eq!(scanned_ids(&again).await, (0..22).collect::<Vec<_>>());
        assert_eq!(num(&again.stats().into(), "generationsCommitted"), 0.0);
    }
}

#[wasm_bindgen_test]
async fn bad_input_is_refused_with_nothing_written() {
    for (kind, store) in stores("bad_input_is_refused_with_nothing_written").await {
        console_log!("store: {kind}");
        let wal = open(&store, "bad").await;
        wait(wal.append(&ipc(&schema(), &[batch(0..2)])))
            .await
            .unwrap();
        let before = paths(&store).await;

        let other = Schema::new(vec![Field::new("id", DataType::Int32, false)]);
        let drift = RecordBatch::try_new(
            Arc::new(other.clone()),
            vec![Arc::new(arrow_array::Int32Array::from(vec![1]))],
        )
        .unwrap();
        let cases: [(Uint8Array, &str, &str); 5] = [
            (
                Uint8Array::new_with_length(0),
                "InvalidInputError",
                "empty input",
            ),
            (
                Uint8Array::from(&b"not arrow at all"[..]),
                "InvalidInputError",
                "Arrow IPC",
            ),
            (ipc(&other, &[drift]), "SchemaMismatchError", "field"),
            (ipc(&schema(), &[]), "InvalidInputError", "no rows"),
            (
                ipc(&schema(), &[batch(0..0)]),
                "InvalidInputError",
                "no rows",
            ),
        ];
        for (bytes, want, words) in cases {
            let e = wait(wal.append(&bytes)).await.unwrap_err();
            assert_eq!(name(&e), want, "{e:?}");
            let message = get(&e, "message").as_string().unwrap();
            assert!(message.contains(words), "{message:?} lacks {words:?}");
        }
        wait(wal.flush()).await.unwrap();
        assert_eq!(paths(&store).await, before, "bad input wrote something");
        assert_eq!(num(&wal.stats().into(), "appends"), 1.0);
        assert_eq!(scanned_ids(&wal).await, vec![0, 1]);

        // Bad options and stores.
        let e = Wal::open(store.clone(), JsValue::from(3))
            .await
            .err()
            .unwrap();
        assert_eq!(name(&e), "InvalidInputError");
        let no_schema = Object::new();
        let e = Wal::open(store.clone(), no_schema.into())
            .await
            .err()
            .unwrap();
        assert!(get(&e, "message").as_string().unwrap().contains("schema"));
        let e = Wal::open(Object::new().into(), options("x", &[]))
            .await
            .err()
            .unwrap();
        assert!(get(&e, "message").as_string().unwrap().contains("`get`"));
        let e = Wal::open(
            store.clone(),
            options("x", &[("maxInFlight", JsValue::from(-1))]),
        )
        .await
        .err()
        .unwrap();
        assert!(get(&e, "message")
            .as_string()
            .unwrap()
            .contains("maxInFlight"));
    }
}

#[wasm_bindgen_test]
async fn a_damaged_entry_is_reported_with_its_path() {
    for (kind, store) in stores("a_damaged_entry_is_reported_with_its_path").await {
        console_log!("store: {kind}");
        let wal = open(&store, "bits").await;
        wait(wal.append(&ipc(&schema(), &[batch(0..4)])))
            .await
            .unwrap();
        // Before the damage: inspect sees the fence and the entry, verify passes every object.
        let found = wait(inspect(store.clone(), "bits".into())).await.unwrap();
        assert_eq!(num(&get(&found, "manifest"), "epoch"), 1.0);
        assert_eq!(js_sys::Array::from(&get(&found, "wal")).length(), 2);
        let checked = wait(verify(store.clone(), "bits".into())).await.unwrap();
        assert_eq!(
            (num(&checked, "rows"), num(&checked, "walEntries")),
            (4.0, 2.0)
        );
        assert_eq!(num(&checked, "fences"), 1.0);
        let entries: Vec<String> = paths(&store)
            .await
            .into_iter()
            .filter(|p| p.contains("/wal/"))
            .collect();
        // The data entry is the newest slot (the oldest is this writer's fence).
        let data = entries.last().unwrap().clone();
        let got = call(&store, "get", &[data.clone().into()]).await.unwrap();
        let mut bytes = Uint8Array::new(&get(&got, "body")).to_vec();
        let n = bytes.len();
        bytes[n - 20] ^= 0x40;
        call(
            &store,
            "put",
            &[data.clone().into(), Uint8Array::from(&bytes[..]).into()],
        )
        .await
        .unwrap();
        let e = wait(wal.scan()).await.unwrap_err();
        assert_eq!(name(&e), "CorruptError", "{e:?}");
        assert_eq!(get(&e, "path").as_string().unwrap(), data);
        let e = wait(verify(store.clone(), "bits".into()))
            .await
            .unwrap_err();
        assert_eq!(name(&e), "CorruptError", "{e:?}");
        assert_eq!(get(&e, "path").as_string().unwrap(), data);
        // No log under another prefix: inspect says so, verify refuses.
        let none = wait(inspect(store.clone(), "absent".into())).await.unwrap();
        assert!(get(&none, "manifest").is_null());
        let e = wait(verify(store.clone(), "absent".into()))
            .await
            .unwrap_err();
        assert_eq!(name(&e), "InvalidInputError", "{e:?}");
    }
}

#[wasm_bindgen_test]
async fn conditional_puts_are_atomic_between_store_instances() {
    // Two OpfsStore objects on one folder stand in for two tabs: Web Locks serialize them.
    for (kind, store) in stores("conditional_puts").await {
        console_log!("store: {kind}");
        let twin = match kind {
            "opfs" => wait(OpfsStore::open_folder("tidewal-test-conditional_puts"))
                .await
                .unwrap(),
            _ => store.clone(),
        };
        let create = || {
            let o = Object::new();
            Reflect::set(&o, &"mode".into(), &"create".into()).unwrap();
            JsValue::from(o)
        };
        let mut racing = Vec::new();
        for i in 0..16u8 {
            let s = if i % 2 == 0 { &store } else { &twin };
            let body = Uint8Array::from(&[i; 64][..]);
            let f: js_sys::Function = get(s, "put").unchecked_into();
            let args: js_sys::Array = [JsValue::from("race/obj"), body.into(), create()]
                .iter()
                .collect();
            racing.push(wait(Promise::resolve(&f.apply(s, &args).unwrap())));
        }
        let (mut won, mut lost) = (0, 0);
        for r in racing {
            match r.await {
                Ok(_) => won += 1,
                Err(e) => {
                    assert_eq!(name(&e), "AlreadyExists", "{e:?}");
                    lost += 1;
                }
            }
        }
        assert_eq!((won, lost), (1, 15));
        let got = call(&store, "get", &["race/obj".into()]).await.unwrap();
        let body = Uint8Array::new(&get(&got, "body")).to_vec();
        assert_eq!(body.len(), 64);
        assert!(
            body.iter().all(|b| *b == body[0]),
            "one writer's bytes, whole"
        );
        let missing = call(&store, "get", &["race/none".into()])
            .await
            .unwrap_err();
        assert_eq!(name(&missing), "NotFound");
    }
}

#[wasm_bindgen_test]
async fn tail_delivers_every_position_in_order_then_stops() {
    for (kind, store) in stores("tail").await {
        console_log!("store: {kind}");
        let wal = open(&store, "tail").await;
        wait(wal.append(&ipc(&schema(), &[batch(0..2)])))
            .await
            .unwrap();
        let seen: Rc<std::cell::RefCell<Vec<(f64, usize)>>> = Rc::default();
        let sink = seen.clone();
        let callback = Closure::<dyn Fn(Uint8Array, f64)>::new(move |ipc: Uint8Array, pos| {
            let reader = StreamReader::try_new(Cursor::new(ipc.to_vec()), None).unwrap();
            let rows = reader.map(|b| b.unwrap().num_rows()).sum();
            sink.borrow_mut().push((pos, rows));
        });
        let tail = wal.tail(
            callback
                .as_ref()
                .unchecked_ref::<js_sys::Function>()
                .clone(),
            Some(5.0),
        );
        for k in 1..4 {
            let rows = (k * 10)..(k * 10 + k);
            wait(wal.append(&ipc(&schema(), &[batch(rows)])))
                .await
                .unwrap();
        }
        // Wait (bounded) for the follower to see all four entries.
        for _ in 0..400 {
            if seen.borrow().len() >= 4 {
                break;
            }
            wait(Promise::new(&mut |resolve, _| {
                let global = js_sys::global();
                let set_timeout: js_sys::Function = get(&global, "setTimeout").unchecked_into();
                set_timeout
                    .call2(&global, &resolve, &JsValue::from(5))
                    .unwrap();
            }))
            .await
            .unwrap();
        }
        tail.stop();
        wait(tail.done()).await.unwrap();
        let seen = seen.borrow().clone();
        let rows: Vec<usize> = seen.iter().map(|&(_, r)| r).collect();
        assert_eq!(rows, vec![2, 1, 2, 3], "{seen:?}");
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0),
            "positions grow: {seen:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn a_wal_only_log_truncates_from_js() {
    for (kind, store) in stores("a_wal_only_log_truncates_from_js").await {
        console_log!("store: {kind}");
        let opts = options("t", &[("walOnly", JsValue::TRUE)]);
        let wal = Wal::open(store.clone(), opts).await.unwrap();
        let mut positions = Vec::new();
        for i in 0..3 {
            let ack = wait(wal.append(&ipc(&schema(), &[batch(i * 10..i * 10 + 10)])))
                .await
                .unwrap();
            positions.push(num(&ack, "position"));
        }
        let cursor = wait(wal.truncate(positions[2])).await.unwrap();
        assert_eq!(cursor.as_f64(), Some(positions[2]));
        assert_eq!(scanned_ids(&wal).await, (20..30).collect::<Vec<_>>());
        let e = wait(wal.truncate(-1.0)).await.unwrap_err();
        assert_eq!(name(&e), "InvalidInputError", "{e:?}");
        let e = wait(wal.truncate(positions[2] + 9.0)).await.unwrap_err();
        assert_eq!(name(&e), "InvalidInputError", "{e:?}");
        wait(wal.close()).await.unwrap();
    }
}

/// Reader options as a JS object.
fn reader_options(prefix: &str, follow: bool, columns: Option<&[&str]>) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"prefix".into(), &prefix.into()).unwrap();
    Reflect::set(&o, &"follow".into(), &follow.into()).unwrap();
    Reflect::set(&o, &"pollMs".into(), &JsValue::from(5)).unwrap();
    Reflect::set(&o, &"readAheadBytes".into(), &JsValue::from(1)).unwrap();
    if let Some(columns) = columns {
        let names: js_sys::Array = columns.iter().map(|c| JsValue::from(*c)).collect();
        Reflect::set(&o, &"columns".into(), &names).unwrap();
    }
    o.into()
}

/// The batches of one reader item (an IPC stream) and its position.
fn item_batches(item: &JsValue) -> (f64, Vec<RecordBatch>) {
    let value = get(item, "value");
    let bytes = Uint8Array::new(&value).to_vec();
    let reader = StreamReader::try_new(Cursor::new(bytes), None).unwrap();
    (
        num(&value, "position"),
        reader.map(|b| b.unwrap()).collect(),
    )
}

#[wasm_bindgen_test]
async fn a_reader_follows_a_log_while_its_writer_appends_and_never_fences_it() {
    for (kind, store) in stores("reader").await {
        console_log!("store: {kind}");
        let wal = open(&store, "reader").await;
        wait(wal.append(&ipc(&schema(), &[batch(0..2)])))
            .await
            .unwrap();
        let fenced = Rc::new(Cell::new(false));
        let told = fenced.clone();
        let onfenced = Closure::<dyn Fn(JsValue)>::new(move |_| told.set(true));
        wal.set_onfenced(Some(
            onfenced
                .as_ref()
                .unchecked_ref::<js_sys::Function>()
                .clone(),
        ));
        let options = reader_options("reader", true, Some(&["name"]));
        let reader = wait(LogReader::open(store.clone(), options)).await.unwrap();
        // `for await` finds the reader its own async iterator.
        let iterator: js_sys::Function = Reflect::get(&reader, &js_sys::Symbol::async_iterator())
            .unwrap()
            .unchecked_into();
        assert_eq!(iterator.call0(&reader).unwrap(), reader);
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        for k in 1..5i64 {
            let item = call(&reader, "next", &[]).await.unwrap();
            assert_eq!(get(&item, "done"), JsValue::FALSE);
            let (position, batches) = item_batches(&item);
            positions.push(position);
            for b in batches {
                // Only the projected column, decoded.
                assert_eq!(b.num_columns(), 1);
                let names = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                ids.extend(names.iter().map(|n| n.unwrap().to_string()));
            }
            // The writer goes on appending while the reader follows it.
            let rows = (k * 10)..(k * 10 + 1);
            wait(wal.append(&ipc(&schema(), &[batch(rows)])))
                .await
                .unwrap();
        }
        assert_eq!(ids, ["row-0", "row-1", "row-10", "row-20", "row-30"]);
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        // Leaving the loop early (`return`) stops it: iteration ends.
        let ended = call(&reader, "return", &[]).await.unwrap();
        assert_eq!(get(&ended, "done"), JsValue::TRUE);
        let after = call(&reader, "next", &[]).await.unwrap();
        assert_eq!(get(&after, "done"), JsValue::TRUE);
        // The writer was never fenced: it still appends.
        wait(wal.append(&ipc(&schema(), &[batch(50..51)])))
            .await
            .unwrap();
        assert!(!fenced.get(), "a reader must not fence the writer");
        // Unknown columns reject, naming the log's columns.
        let bad = reader_options("reader", false, Some(&["nope"]));
        let e = wait(LogReader::open(store.clone(), bad)).await.unwrap_err();
        let message = get(&e, "message").as_string().unwrap();
        assert!(
            message.contains("\"nope\"") && message.contains("id, name"),
            "{message}"
        );
        wait(wal.close()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn consumers_are_listed_with_their_lag() {
    for (kind, store) in stores("consumers_are_listed_with_their_lag").await {
        console_log!("store: {kind}");
        let wal = open(&store, "cons").await;
        for i in 0..3 {
            wait(wal.append(&ipc(&schema(), &[batch(i * 2..i * 2 + 2)])))
                .await
                .unwrap();
        }
        let none = wait(consumers(store.clone(), "cons".into())).await.unwrap();
        assert_eq!(js_sys::Array::from(&none).length(), 0);
        // A version as a native consumer writes it: "etl" consumed everything below the
        // last entry's position (slots: the fence at 0, the window, then entries).
        let wal_slots: Vec<String> = paths(&store)
            .await
            .into_iter()
            .filter(|p| p.contains("/wal/"))
            .collect();
        let last = wal_slots.last().unwrap();
        let last: u64 = last[last.len() - 27..last.len() - 7].parse().unwrap();
        let version = tidewal_core::consumer::ConsumerVersion {
            format: 1,
            name: "etl".into(),
            version: 3,
            position: last,
            nonce: 7,
            claim: 2,
        };
        let path = "cons/consumers/etl/00000000000000000003.json";
        let body = Uint8Array::from(&version.encode()[..]);
        call(&store, "put", &[path.into(), body.into()])
            .await
            .unwrap();
        let listed =
            js_sys::Array::from(&wait(consumers(store.clone(), "cons".into())).await.unwrap());
        assert_eq!(listed.length(), 1);
        let etl = listed.get(0);
        assert_eq!(get(&etl, "name").as_string().unwrap(), "etl");
        assert_eq!(
            (num(&etl, "position"), num(&etl, "version")),
            (last as f64, 3.0)
        );
        assert_eq!(num(&etl, "lagEntries"), 1.0);
        assert!(num(&etl, "lagBytes") > 0.0);
        // A damaged version is reported with its path.
        let mut bytes = version.encode().to_vec();
        bytes[30] ^= 1;
        call(&store, "delete", &[path.into()]).await.unwrap();
        let damaged = Uint8Array::from(&bytes[..]);
        call(&store, "put", &[path.into(), damaged.into()])
            .await
            .unwrap();
        let e = wait(consumers(store.clone(), "cons".into()))
            .await
            .unwrap_err();
        assert_eq!(name(&e), "CorruptError", "{e:?}");
        assert_eq!(get(&e, "path").as_string().unwrap(), path);
        wait(wal.close()).await.unwrap();
    }
}

/// A consumer named `name` of the log under `prefix` whose batches go to `seen` as
/// (position, first id of the batch's rows, row count).
async fn consumer(
    store: &JsValue,
    prefix: &str,
    name: &str,
    seen: Rc<std::cell::RefCell<Vec<(u64, i64, usize)>>>,
) -> Result<Consumer, JsValue> {
    let o = Object::new();
    Reflect::set(&o, &"prefix".into(), &prefix.into()).unwrap();
    Reflect::set(&o, &"name".into(), &name.into()).unwrap();
    Reflect::set(&o, &"schema".into(), &ipc(&schema(), &[])).unwrap();
    let onbatch = Closure::<dyn FnMut(Uint8Array, f64)>::new(move |bytes: Uint8Array, at: f64| {
        let reader = StreamReader::try_new(Cursor::new(bytes.to_vec()), None).unwrap();
        for b in reader {
            let b = b.unwrap();
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            seen.borrow_mut()
                .push((at as u64, col.value(0), b.num_rows()));
        }
    });
    let f: js_sys::Function = onbatch.as_ref().unchecked_ref::<js_sys::Function>().clone();
    onbatch.forget();
    Consumer::open(store.clone(), o.into(), f).await
}

#[wasm_bindgen_test]
async fn a_consumer_resumes_after_its_commit_and_fences_an_older_instance() {
    let tag = "a_consumer_resumes_after_its_commit_and_fences_an_older_instance";
    for (kind, store) in stores(tag).await {
        console_log!("store: {kind}");
        let wal = open(&store, "c").await;
        for i in 0..3 {
            wait(wal.append(&ipc(&schema(), &[batch(i * 2..i * 2 + 2)])))
                .await
                .unwrap();
        }
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let a = consumer(&store, "c", "etl", seen.clone()).await.unwrap();
        assert_eq!(a.position(), 0.0);
        let end = wait(a.caught_up()).await.unwrap().as_f64().unwrap();
        let firsts: Vec<i64> = seen.borrow().iter().map(|s| s.1).collect();
        assert_eq!(firsts, [0, 2, 4]);
        let version = wait(a.commit(end)).await.unwrap().as_f64().unwrap();
        assert_eq!(version, 2.0);
        // Below what is committed, past what was read: refused by name.
        let e = wait(a.commit(end - 1.0)).await.unwrap_err();
        assert_eq!(name(&e), "ConsumerError", "{e:?}");
        let e = wait(a.commit(end + 1.0)).await.unwrap_err();
        assert_eq!(name(&e), "ConsumerError", "{e:?}");

        wait(wal.append(&ipc(&schema(), &[batch(6..8)])))
            .await
            .unwrap();
        let later = Rc::new(std::cell::RefCell::new(Vec::new()));
        let b = consumer(&store, "c", "etl", later.clone()).await.unwrap();
        assert_eq!(b.position(), end);
        wait(b.caught_up()).await.unwrap();
        let firsts: Vec<i64> = later.borrow().iter().map(|s| s.1).collect();
        assert_eq!(firsts, [6], "only what follows the commit");
        // The older instance lost the name: its next commit is refused, for good.
        let e = wait(a.commit(end)).await.unwrap_err();
        assert_eq!(name(&e), "ConsumerError", "{e:?}");
        let message = get(&e, "message").as_string().unwrap();
        assert!(message.contains("fenced"), "{message}");
        wait(a.close()).await.unwrap();
        wait(b.close()).await.unwrap();
        // A bad name is refused before anything is written.
        let e = consumer(&store, "c", "a/b", Rc::default())
            .await
            .err()
            .unwrap();
        assert_eq!(name(&e), "ConsumerError", "{e:?}");
        assert!(!paths(&store).await.iter().any(|p| p.contains("a/b")));
        wait(wal.close()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn a_ranged_get_reads_only_its_bytes_and_a_range_past_the_end_is_invalid_range() {
    for (kind, store) in stores("ranged_get").await {
        console_log!("store: {kind}");
        let body = Uint8Array::from(&b"0123456789"[..]);
        let create = Object::new();
        Reflect::set(&create, &"mode".into(), &"create".into()).unwrap();
        call(&store, "put", &["r/obj".into(), body.into(), create.into()])
            .await
            .unwrap();
        let range = |offset: f64, length: f64| {
            let (opts, r) = (Object::new(), Object::new());
            Reflect::set(&r, &"offset".into(), &offset.into()).unwrap();
            Reflect::set(&r, &"length".into(), &length.into()).unwrap();
            Reflect::set(&opts, &"range".into(), &r.into()).unwrap();
            JsValue::from(opts)
        };
        let got = call(&store, "get", &["r/obj".into(), range(2.0, 3.0)])
            .await
            .unwrap();
        let bytes: Uint8Array = get(&got, "body").unchecked_into();
        assert_eq!(bytes.to_vec(), b"234");
        assert_eq!(get(&got, "offset").as_f64(), Some(2.0));
        // Without a range: the whole object, no offset.
        let whole = call(&store, "get", &["r/obj".into()]).await.unwrap();
        assert_eq!(num(&get(&whole, "body"), "length"), 10.0);
        assert!(get(&whole, "offset").is_undefined());
        let past = call(&store, "get", &["r/obj".into(), range(8.0, 4.0)]).await;
        assert_eq!(name(&past.unwrap_err()), "InvalidRange", "{kind}");
    }
}

#[wasm_bindgen_test]
async fn a_retention_policy_drops_flushed_generations_and_compact_answers_from_js() {
    for (kind, store) in stores("a_retention_policy_drops_flushed_generations").await {
        console_log!("store: {kind}");
        let bad = [
            vec![("keepBytes", JsValue::from(0))],
            vec![("retentionIntervalMs", JsValue::from(5))],
            vec![("keepForMs", JsValue::from(-1))],
            vec![("keepBytes", JsValue::from(1)), ("walOnly", JsValue::TRUE)],
        ];
        for extra in bad {
            let Err(e) = Wal::open(store.clone(), options("t", &extra)).await else {
                panic!("{extra:?} accepted");
            };
            assert_eq!(name(&e), "InvalidInputError", "{extra:?}: {e:?}");
        }
        let extra = [
            ("keepBytes", JsValue::from(1)),
            ("retentionIntervalMs", JsValue::from(1)),
        ];
        let wal = Wal::open(store.clone(), options("t", &extra))
            .await
            .unwrap();
        for i in 0..3 {
            wait(wal.append(&ipc(&schema(), &[batch(i * 10..i * 10 + 10)])))
                .await
                .unwrap();
            wait(wal.flush_memtable()).await.unwrap();
        }
        // The rounds follow the flushes' commits: let the writer run until they landed.
        for _ in 0..500 {
            if num(&wal.stats(), "generationsDropped") >= 3.0 {
                break;
            }
            pause(10).await;
        }
        let stats = wal.stats();
        assert_eq!(num(&stats, "generationsDropped"), 3.0, "{stats:?}");
        assert!(num(&stats, "bytesDropped") > 0.0);
        assert!(num(&stats, "retentionRounds") >= 1.0);
        assert_eq!(num(&stats, "retentionHeldBack"), 0.0);
        assert!(get(&stats, "retentionHeldBy").is_null());
        assert_eq!(num(&stats, "generationsLive"), 0.0);
        assert!(scanned_ids(&wal).await.is_empty());
        let pass = wait(wal.compact()).await.unwrap();
        assert_eq!(num(&pass, "runs"), 0.0, "nothing left to merge");
        wait(wal.close()).await.unwrap();
        let e = wait(wal.collect_garbage()).await.unwrap_err();
        assert_eq!(name(&e), "ClosedError", "{e:?}");
    }
}

/// Lets the event loop run for `ms` (the global `setTimeout`).
async fn pause(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        let set: js_sys::Function = Reflect::get(&js_sys::global(), &"setTimeout".into())
            .unwrap()
            .unchecked_into();
        set.call2(&JsValue::NULL, &resolve, &JsValue::from(ms))
            .unwrap();
    });
    wait(p).await.unwrap();
}

/// Every id a reader of `options` reports, until it is done.
async fn reader_ids(store: &JsValue, options: JsValue) -> Result<Vec<i64>, JsValue> {
    let reader = wait(LogReader::open(store.clone(), options)).await?;
    let mut ids = Vec::new();
    loop {
        let item = call(&reader, "next", &[]).await?;
        if get(&item, "done") == JsValue::TRUE {
            return Ok(ids);
        }
        for b in item_batches(&item).1 {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            ids.extend(col.values().iter().copied());
        }
    }
}

fn with(options: JsValue, extra: &[(&str, JsValue)]) -> JsValue {
    for (k, v) in extra {
        Reflect::set(&options, &(*k).into(), v).unwrap();
    }
    options
}

#[wasm_bindgen_test]
async fn drops_are_held_back_by_a_consumer_unless_forced_and_history_and_as_of_reads_see_them() {
    let tag = "drops_are_held_back_by_a_consumer_unless_forced";
    for (kind, store) in stores(tag).await {
        console_log!("store: {kind}");
        let wal = open(&store, "d").await;
        let mut firsts = Vec::new();
        for i in 0..3 {
            let ack = wait(wal.append(&ipc(&schema(), &[batch(i * 10..i * 10 + 10)])))
                .await
                .unwrap();
            firsts.push(num(&ack, "position"));
            wait(wal.flush_memtable()).await.unwrap();
        }
        let before = history(store.clone(), "d".into());
        let before = wait(before).await.unwrap();
        let versions = js_sys::Array::from(&get(&before, "versions"));
        let flushed = versions.get(versions.length() - 1);
        assert_eq!(get(&flushed, "change"), JsValue::from("flush"));
        assert_eq!(num(&flushed, "generations"), 3.0);
        assert!(num(&flushed, "committedAt") > 0.0);
        assert_eq!(num(&flushed, "rows"), 30.0);
        let as_of = num(&flushed, "version");
        // A consumer that consumed nothing holds every entry back.
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let etl = consumer(&store, "d", "etl", seen).await.unwrap();
        let e = wait(wal.drop_before(firsts[1], None)).await.unwrap_err();
        assert_eq!(name(&e), "HeldBackError", "{e:?}");
        assert_eq!(get(&e, "consumer"), JsValue::from("etl"));
        assert_eq!(num(&e, "position"), 0.0);
        for bad in [-1.0, 0.5, firsts[2] + 99.0] {
            let e = wait(wal.drop_before(bad, Some(true))).await.unwrap_err();
            assert_eq!(name(&e), "InvalidInputError", "{bad}: {e:?}");
        }
        let d = wait(wal.drop_before(firsts[1], Some(true))).await.unwrap();
        assert_eq!(num(&d, "generations"), 1.0);
        assert_eq!(num(&d, "firstPosition"), firsts[1]);
        assert!(num(&d, "bytes") > 0.0);
        // Nothing is a day old.
        let none = wait(wal.drop_older_than(86_400_000.0, Some(true)))
            .await
            .unwrap();
        assert_eq!(num(&none, "generations"), 0.0);
        assert_eq!(scanned_ids(&wal).await, (10..30).collect::<Vec<_>>());
        let stats = wal.stats();
        assert_eq!(num(&stats, "generationsDropped"), 1.0);
        assert_eq!(num(&stats, "generationsLive"), 2.0);
        let after = wait(history(store.clone(), "d".into())).await.unwrap();
        let versions = js_sys::Array::from(&get(&after, "versions"));
        let dropped = versions.get(versions.length() - 1);
        assert_eq!(get(&dropped, "change"), JsValue::from("drop"));
        assert_eq!(num(&dropped, "droppedBefore"), firsts[1]);
        // As of the version before the drop: all of it (its files are kept); until a time
        // before the log: nothing.
        let old = with(
            reader_options("d", false, None),
            &[("asOfVersion", as_of.into())],
        );
        assert_eq!(
            reader_ids(&store, old).await.unwrap(),
            (0..30).collect::<Vec<_>>()
        );
        let early = with(reader_options("d", false, None), &[("untilTime", 1.into())]);
        assert!(reader_ids(&store, early).await.unwrap().is_empty());
        let both = with(
            reader_options("d", false, None),
            &[("from", 1.into()), ("fromTime", 1.into())],
        );
        let e = reader_ids(&store, both).await.unwrap_err();
        assert_eq!(name(&e), "InvalidInputError", "{e:?}");
        let e = wait(wal.drop_before(firsts[1], None)).await.unwrap();
        assert_eq!(
            num(&e, "generations"),
            0.0,
            "at or below dropped_before: nothing"
        );
        drop(etl);
        wait(wal.close()).await.unwrap();
    }
}

fn restore_to(key: &str, value: f64) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &key.into(), &value.into()).unwrap();
    o.into()
}

#[wasm_bindgen_test]
async fn a_restore_from_js_keeps_exactly_the_rows_below_its_point_and_is_undone_by_its_version_below(
) {
    let tag = "a_restore_from_js";
    for (kind, store) in stores(tag).await {
        console_log!("store: {kind}");
        let wal = open(&store, "r").await;
        let mut firsts = Vec::new();
        for i in 0..3 {
            let ack = wait(wal.append(&ipc(&schema(), &[batch(i * 10..i * 10 + 10)])))
                .await
                .unwrap();
            firsts.push(num(&ack, "position"));
        }
        // Restore to the second append's position: only the first stays (the restore
        // flushes what is still in the memtable first).
        let r = wait(wal.restore(restore_to("toPosition", firsts[1])))
            .await
            .unwrap();
        assert_eq!(num(&r, "to"), firsts[1]);
        assert_eq!(num(&r, "rows"), 10.0);
        assert_eq!(scanned_ids(&wal).await, (0..10).collect::<Vec<_>>());
        // New appends land past the old cursor and stay.
        wait(wal.append(&ipc(&schema(), &[batch(100..105)])))
            .await
            .unwrap();
        // The version below the restore undoes it, keeping what came after.
        let undo = wait(wal.restore(restore_to("toVersion", num(&r, "fromVersion"))))
            .await
            .unwrap();
        assert_eq!(num(&undo, "asOfVersion"), num(&r, "fromVersion"));
        let mut all: Vec<i64> = (0..30).collect();
        all.extend(100..105);
        assert_eq!(scanned_ids(&wal).await, all);
        // Bad input: no target, two targets, not a number, past the end.
        for bad in [
            JsValue::from(Object::new()),
            JsValue::from("toPosition"),
            restore_to("toPosition", -1.0),
        ] {
            let e = wait(wal.restore(bad.clone())).await.unwrap_err();
            assert_eq!(name(&e), "InvalidInputError", "{bad:?}: {e:?}");
        }
        let two = restore_to("toPosition", 1.0);
        Reflect::set(&two, &"toVersion".into(), &1.into()).unwrap();
        let e = wait(wal.restore(two)).await.unwrap_err();
        assert_eq!(name(&e), "InvalidInputError", "{e:?}");
        let e = wait(wal.restore(restore_to("toPosition", 1e9)))
            .await
            .unwrap_err();
        assert_eq!(name(&e), "RestoreError", "{e:?}");
        assert_eq!(scanned_ids(&wal).await, all, "a refusal writes nothing");
        wait(wal.close()).await.unwrap();
    }
}
