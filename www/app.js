// The demo: one tidewal log in this origin's OPFS, driven by the wasm package.
import init, { Reader, Wal } from './pkg/tidewal_wasm.js';
import { OpfsStore } from './pkg/opfs_store.js';

const A = globalThis.Arrow;
const PREFIX = 'demo';
const $ = (id) => document.getElementById(id);
const latencies = [];
let store;
let wal;
let total = 0;
let nextId = 0;

function log(line) {
  $('log').textContent = `${new Date().toISOString().slice(11, 23)} ${line}\n` + $('log').textContent;
}

function status(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

// The log's rows: an id, a timestamp and a label. Types are explicit: apache-arrow would
// otherwise dictionary-encode strings, which a log refuses.
function batch(n) {
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(nextId + i));
  const now = Date.now();
  const table = new A.Table({
    id: A.vectorFromArray(ids, new A.Int64()),
    at_ms: A.vectorFromArray(Float64Array.from({ length: n }, () => now), new A.Float64()),
    label: A.vectorFromArray(Array.from({ length: n }, (_, i) => `row ${nextId + i}`), new A.Utf8()),
  });
  nextId += n;
  return A.tableToIPC(table, 'stream');
}
const SCHEMA = (() => {
  const saved = nextId;
  const s = batch(0);
  nextId = saved;
  return s;
})();

function onError(e) {
  // `onfenced` and the refused call both report the fence: say it once.
  if (e.name === 'FencedError' && $('status').dataset.state === 'fenced') return;
  if (e.name === 'FencedError') {
    status('fenced', `Fenced: a newer writer (another tab?) owns the log. This tab had epoch ${e.epoch}. Reopen to take it back.`);
  } else {
    status('error', `${e.name}: ${e.message}`);
  }
  log(`${e.name}: ${e.message}`);
}

async function open() {
  status('opening', 'opening (claiming a new epoch, fencing older writers, replaying)…');
  if (wal) {
    await wal.close().catch(() => {});
    wal.free();
  }
  const started = performance.now();
  wal = await Wal.open(store, { prefix: PREFIX, schema: SCHEMA, groupCommitIntervalMs: 2 });
  wal.onfenced = onError;
  const table = A.tableFromIPC(await wal.scan());
  total = table.numRows;
  nextId = total ? Number(table.getChild('id').get(total - 1)) + 1 : 0;
  const ms = (performance.now() - started).toFixed(1);
  status('ready', `ready: epoch ${wal.epoch}, ${total} rows replayed in ${ms} ms`);
  log(`opened epoch ${wal.epoch}, replayed ${total} rows`);
  await render();
}

async function append(times) {
  const n = Math.max(1, Math.min(100000, Number($('rows').value) || 1));
  const started = performance.now();
  const acks = await Promise.all(
    Array.from({ length: times }, async () => {
      const t = performance.now();
      const ack = await wal.append(batch(n));
      latencies.push(performance.now() - t);
      return ack;
    }),
  );
  total += n * times;
  const last = acks[acks.length - 1];
  log(`appended ${n * times} rows, durable at position ${last.position} in ${(performance.now() - started).toFixed(1)} ms`);
  await render();
}

async function render() {
  const s = wal.stats();
  $('total').textContent = total;
  $('epoch').textContent = s.epoch;
  $('p50').textContent = s.ackP50Ms === null ? '–' : s.ackP50Ms.toFixed(1);
  const listed = await store.list(`${PREFIX}/gen/`);
  $('generations').textContent = listed.length;
  drawChart();
  await drawEntries();
}

function drawChart() {
  const recent = latencies.slice(-100);
  const max = Math.max(1, ...recent);
  const points = recent.map((v, i) => `${(i / 99) * 400},${80 - (v / max) * 75}`).join(' ');
  $('chart').innerHTML = `<polyline points="${points}"></polyline>`;
}

// The newest 20 WAL entries, each read back and decoded with apache-arrow.
async function drawEntries() {
  const entries = (await store.list(`${PREFIX}/wal/`)).slice(-20).reverse();
  const rows = await Promise.all(
    entries.map(async (m) => {
      const { body } = await store.get(m.path);
      const table = A.tableFromIPC(body);
      const md = table.schema.metadata;
      return { position: Number(md.get('tidewal.position')), kind: md.get('tidewal.kind'), epoch: md.get('tidewal.epoch'), rows: table.numRows, bytes: m.size };
    }),
  );
  $('entries').tBodies[0].innerHTML = rows
    .map((r) => `<tr><td>${r.position}</td><td class="${r.kind}">${r.kind}</td><td>${r.epoch}</td><td>${r.rows}</td><td>${r.bytes}</td></tr>`)
    .join('');
}

const guard = (f) => () => f().catch(onError);
$('append').onclick = guard(() => append(1));
$('append10').onclick = guard(() => append(10));
$('flush').onclick = guard(async () => {
  const id = await wal.flushMemtable();
  log(id === null ? 'nothing to flush' : `generation ${id} committed`);
  await render();
});
$('reopen').onclick = guard(open);
$('reset').onclick = guard(async () => {
  if (wal) await wal.close().catch(() => {});
  wal = undefined;
  await store.clear();
  latencies.length = 0;
  log('log removed');
  await open();
});

// `?follow`: a read-only page. It follows the log with a `Reader`, which never writes, so the
// writer in another tab is never fenced; it shows every row as it becomes durable.
async function follow() {
  for (const b of document.querySelectorAll('.controls button')) b.disabled = true;
  status('opening', 'waiting for a log to follow…');
  let reader;
  while (!reader) {
    // Rejects while there is no log yet (no manifest): look again shortly.
    reader = await Reader.open(store, { prefix: PREFIX, follow: true, pollMs: 50 }).catch(
      () => new Promise((resolve) => setTimeout(resolve, 200)),
    );
  }
  status('following', 'following (read-only: this tab never fences the writer)');
  let rows = 0;
  for await (const ipc of reader) {
    const n = A.tableFromIPC(ipc).numRows;
    rows += n;
    $('total').textContent = rows;
    log(`read position ${ipc.position}: ${n} rows`);
  }
}

await init();
store = await OpfsStore.open('tidewal-demo');
if (new URLSearchParams(location.search).has('follow')) {
  await follow().catch(onError);
} else {
  await open().catch(onError);
}
