// Cross-host test: a log written by the native host (the `tidewal` CLI on a directory) is read
// and extended by the wasm host (running in Node.js on FsStore), then read back natively.
//   node cross_host.mjs <path to the tidewal binary> <wasm-bindgen --target nodejs package dir>
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { FsStore } from '../js/fs_store.mjs';

const [tidewal, pkg] = process.argv.slice(2);
const { Wal } = createRequire(import.meta.url)(path.resolve(pkg, 'tidewal_wasm.js'));
const run = (...args) => execFileSync(tidewal, args, { maxBuffer: 1 << 28 });
const csv = (dir) => run('cat', dir, '--format', 'csv').toString().trim().split('\n');
const work = mkdtempSync(path.join(tmpdir(), 'tidewal-cross-'));
const log = path.join(work, 'log');

// 1. Native writes 50 rows.
const appended = JSON.parse(run('append', log, '--generate', '50').toString());
assert.equal(appended.rows, 50);
const native = run('cat', log, '--format', 'ipc');
const rows = csv(log);
assert.equal(rows.length, 51, 'a header and 50 rows');

// 2. Wasm opens the same directory (fencing the native writer), reads it, appends to it.
const wal = await Wal.open(new FsStore(log), { schema: new Uint8Array(native) });
const scanned = await wal.scan();
writeFileSync(path.join(work, 'scan.arrows'), scanned);
run('append', path.join(work, 'copy'), '--ipc', path.join(work, 'scan.arrows'));
assert.deepEqual(csv(path.join(work, 'copy')), rows, 'wasm scan = native cat');
const ack = await wal.append(new Uint8Array(native));
assert.equal(ack.rows, 50);
await wal.flushMemtable();
await wal.append(new Uint8Array(native));
await wal.close();

// 3. Native reads what wasm wrote (a generation and WAL entries), verifies every checksum,
//    and appends again; wasm reads that.
const after = csv(log);
assert.equal(after.length, 151);
assert.deepEqual(after.slice(51, 101), rows.slice(1));
run('verify', log);
run('append', log, '--generate', '5');
const again = await Wal.open(new FsStore(log), { schema: new Uint8Array(native) });
writeFileSync(path.join(work, 'scan2.arrows'), await again.scan());
await again.close();
run('append', path.join(work, 'copy2'), '--ipc', path.join(work, 'scan2.arrows'));
assert.deepEqual(csv(path.join(work, 'copy2')), csv(log));
assert.equal(csv(log).length, 156);
// 4. FsStore's ranged get (what a reader starting inside a generation asks): only the bytes
//    asked for, at their offset; past the end is InvalidRange.
const fs = new FsStore(log);
const [generation] = (await fs.list('gen/')).map((m) => m.path);
const whole = (await fs.get(generation)).body;
const part = await fs.get(generation, { range: { offset: 8, length: 16 } });
assert.equal(part.offset, 8);
assert.deepEqual(part.body, whole.subarray(8, 24));
await assert.rejects(
  fs.get(generation, { range: { offset: whole.length - 4, length: 8 } }),
  (e) => e.name === 'InvalidRange',
);
console.log(`cross-host ok: native -> wasm (Node) -> native, ${csv(log).length - 1} rows`);
rmSync(work, { recursive: true, force: true });
