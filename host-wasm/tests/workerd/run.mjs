// The wasm module inside workerd (miniflare) on an R2 bucket binding: append, reopen and
// replay, and a second writer fencing the first. Rows are built with apache-arrow JS.
//   node run.mjs <wasm-bindgen --target web package dir> <node_modules dir>
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [pkg, nodeModules] = process.argv.slice(2).map((p) => path.resolve(p));
const require = createRequire(path.join(nodeModules, 'x.js'));
const { Miniflare } = require('miniflare');
const arrow = await import(path.join(nodeModules, 'apache-arrow/Arrow.node.mjs'));

// workerd loads modules from one folder.
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'tidewal-workerd-'));
for (const f of ['tidewal_wasm.js', 'tidewal_wasm_bg.wasm']) copyFileSync(path.join(pkg, f), path.join(dir, f));
copyFileSync(path.join(here, '../../js/r2_store.js'), path.join(dir, 'r2_store.js'));
copyFileSync(path.join(here, 'worker.mjs'), path.join(dir, 'worker.mjs'));

const mf = new Miniflare({
  modules: [
    { type: 'ESModule', path: path.join(dir, 'worker.mjs') },
    { type: 'ESModule', path: path.join(dir, 'tidewal_wasm.js') },
    { type: 'ESModule', path: path.join(dir, 'r2_store.js') },
    { type: 'CompiledWasm', path: path.join(dir, 'tidewal_wasm_bg.wasm') },
  ],
  modulesRoot: dir,
  r2Buckets: ['BUCKET'],
  compatibilityDate: '2025-01-01',
});

// Explicit types: left to itself apache-arrow makes strings dictionary-encoded (which logs
// refuse) and infers nullability from the data.
const rows = (from, n) =>
  arrow.tableToIPC(
    new arrow.Table({
      id: arrow.vectorFromArray(Int32Array.from({ length: n }, (_, i) => from + i), new arrow.Int32()),
      name: arrow.vectorFromArray(Array.from({ length: n }, (_, i) => `row-${from + i}`), new arrow.Utf8()),
    }),
    'stream',
  );
const schema = rows(0, 0);
const call = async (step, body = schema) => {
  const res = await mf.dispatchFetch(`http://tidewal/${step}`, { method: 'POST', body });
  return res.json();
};

try {
  const first = await call('open');
  assert.ok(first.epoch >= 1, JSON.stringify(first));
  for (let k = 0; k < 3; k++) {
    const ack = await call(`append/${first.id}`, rows(k * 10, 10));
    assert.equal(ack.rows, 10, JSON.stringify(ack));
  }
  // A second writer (another "request" of the edge) fences the first.
  const second = await call('open');
  assert.ok(second.epoch > first.epoch);
  const refused = await call(`append/${first.id}`, rows(100, 1));
  assert.equal(refused.error?.name, 'FencedError', JSON.stringify(refused));
  assert.equal((await call(`fenced/${first.id}`)).fenced, 'FencedError');
  assert.equal((await call(`append/${second.id}`, rows(30, 5))).rows, 5);
  // A Reader in another request follows the log without fencing the live writer.
  const { batches } = await call('read');
  const tables = batches.map((b) => arrow.tableFromIPC(Uint8Array.from(b.ipc)));
  assert.ok(tables.every((t) => t.schema.fields.length === 1), 'only the projected column');
  const readIds = tables.flatMap((t) => Array.from(t.getChild('id').toArray()));
  assert.deepEqual(readIds, Array.from({ length: 35 }, (_, i) => i));
  const positions = batches.map((b) => b.position);
  assert.ok(positions.every((p, i) => i === 0 || positions[i - 1] < p), JSON.stringify(positions));
  assert.equal((await call(`append/${second.id}`, rows(35, 1))).rows, 1, 'the writer is not fenced');
  assert.equal((await call(`fenced/${second.id}`)).fenced, null);
  await call(`close/${second.id}`);
  // Reopen and replay: every acknowledged row, in order, none from the fenced append.
  const { scan } = await call('scan');
  const table = arrow.tableFromIPC(Uint8Array.from(scan));
  const ids = Array.from(table.getChild('id').toArray());
  assert.deepEqual(ids, Array.from({ length: 36 }, (_, i) => i));
  assert.equal(table.getChild('name').get(35), 'row-35');
  const range = await call('range');
  assert.equal(range.part, '234', JSON.stringify(range));
  assert.equal(range.offset, 2);
  assert.notEqual(range.past, 4, JSON.stringify(range));
  console.log(`workerd + R2 ok: a one-column Reader read 35 rows without fencing the writer, 36 rows replayed, epochs ${first.epoch} -> ${second.epoch}, fenced writer refused`);
} finally {
  await mf.dispose();
  rmSync(dir, { recursive: true, force: true });
}
