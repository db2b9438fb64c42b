// A Worker that drives tidewal on its R2 binding, one step per request (run.mjs walks the
// scenario): POST /open, /append/<id>, /close/<id>, /fenced/<id>, /scan, with Arrow IPC bodies,
// /read (a read-only Reader of one column) and /range (R2Store's ranged get).
// Answers JSON; a failure answers {error: {name, message}}.
import init, { Reader, Wal } from './tidewal_wasm.js';
import wasmModule from './tidewal_wasm_bg.wasm';
import { R2Store } from './r2_store.js';

const PREFIX = 'edge/log';
let ready;
// Writers kept across requests of one isolate (the fencing step needs the first one alive).
const writers = {};

async function step(name, id, env, body) {
  const store = new R2Store(env.BUCKET);
  switch (name) {
    case 'open': {
      const wal = await Wal.open(store, { prefix: PREFIX, schema: body });
      const id = crypto.randomUUID();
      writers[id] = { wal, fenced: null };
      wal.onfenced = (e) => (writers[id].fenced = e.name);
      return { id, epoch: wal.epoch };
    }
    case 'append':
      return writers[id].wal.append(body);
    case 'close':
      await writers[id].wal.close();
      return {};
    case 'fenced':
      return { fenced: writers[id].fenced };
    case 'scan': {
      const wal = await Wal.open(store, { prefix: PREFIX, schema: body });
      const bytes = await wal.scan();
      await wal.close();
      return { scan: Array.from(bytes) };
    }
    case 'read': {
      // Read-only: a Reader writes nothing, so it fences nobody. Only the `id` column.
      const reader = await Reader.open(store, { prefix: PREFIX, columns: ['id'] });
      const batches = [];
      for await (const ipc of reader) batches.push({ position: ipc.position, ipc: Array.from(ipc) });
      return { batches };
    }
    case 'range': {
      // R2Store's ranged get: bytes 2..5 of a 10-byte object, and one past its end (R2
      // answers it short or refuses it: either way not the 4 bytes asked for).
      await store.put('edge/range', new TextEncoder().encode('0123456789'), { mode: 'create' });
      const part = await store.get('edge/range', { range: { offset: 2, length: 3 } });
      let past;
      try {
        past = (await store.get('edge/range', { range: { offset: 8, length: 4 } })).body.length;
      } catch (e) {
        past = e.name;
      }
      return { part: new TextDecoder().decode(part.body), offset: part.offset, past };
    }
    default:
      throw new Error(`unknown step ${name}`);
  }
}

export default {
  async fetch(request, env) {
    ready ??= init({ module_or_path: wasmModule });
    await ready;
    const [, name, id] = new URL(request.url).pathname.split('/');
    const body = new Uint8Array(await request.arrayBuffer());
    try {
      return Response.json(await step(name, id, env, body));
    } catch (e) {
      return Response.json({ error: { name: e.name, message: e.message } });
    }
  },
};
