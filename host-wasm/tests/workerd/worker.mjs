// A Worker that drives tidewal on its R2 binding, one step per request (run.mjs walks the
// scenario): POST /open, /append/<id>, /close/<id>, /fenced/<id>, /scan, with Arrow IPC bodies.
// Answers JSON; a failure answers {error: {name, message}}.
import init, { Wal } from './tidewal_wasm.js';
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
