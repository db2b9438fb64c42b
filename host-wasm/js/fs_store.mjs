// FsStore: a tidewal store in a directory, for Node.js (the same layout as the native host's
// LocalFileSystem, so both hosts can open one log). Create-if-absent is atomic: the bytes go to
// a temporary file that is then hard-linked into place (link fails if the name exists), so no
// reader sees a half-written object. `put` without `mode: 'create'` overwrites (tidewal never
// asks for it).
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

const TMP = '.tidewal-tmp';

function storeError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

export class FsStore {
  constructor(root) {
    this.root = path.resolve(root);
  }

  file(p) {
    const parts = p.split('/').filter((s) => s.length > 0);
    if (parts.length === 0 || parts.some((s) => s === '.' || s === '..' || s === TMP)) {
      throw storeError('InvalidPath', `bad object path ${JSON.stringify(p)}`);
    }
    return path.join(this.root, ...parts);
  }

  // With `opts.range`, reads only those bytes (at their offset in the file).
  async get(p, opts = {}) {
    try {
      const range = opts.range;
      if (!range) return { body: new Uint8Array(await fs.readFile(this.file(p))) };
      const f = await fs.open(this.file(p), 'r');
      try {
        const body = new Uint8Array(range.length);
        const { bytesRead } = await f.read(body, 0, range.length, range.offset);
        if (bytesRead !== range.length) {
          throw storeError('InvalidRange', `${p}: bytes ${range.offset}..${range.offset + range.length} past its end`);
        }
        return { body, offset: range.offset };
      } finally {
        await f.close();
      }
    } catch (e) {
      if (e.code === 'ENOENT') throw storeError('NotFound', `${p} not found`);
      throw e;
    }
  }

  async put(p, bytes, opts = {}) {
    const mode = opts.mode || 'overwrite';
    const f = this.file(p);
    await fs.mkdir(path.dirname(f), { recursive: true });
    await fs.mkdir(path.join(this.root, TMP), { recursive: true });
    const tmp = path.join(this.root, TMP, randomBytes(8).toString('hex'));
    await fs.writeFile(tmp, bytes);
    try {
      if (mode === 'create') {
        try {
          await fs.link(tmp, f);
        } catch (e) {
          if (e.code === 'EEXIST') throw storeError('AlreadyExists', `${p} already exists`);
          throw e;
        }
      } else {
        await fs.rename(tmp, f);
      }
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async list(prefix, after) {
    const out = [];
    const walk = async (dir, base) => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (e.code === 'ENOENT') return;
        throw e;
      }
      for (const ent of entries) {
        if (ent.name === TMP) continue;
        const p = base + ent.name;
        if (ent.isDirectory()) {
          if ((p + '/').startsWith(prefix) || prefix.startsWith(p + '/')) {
            await walk(path.join(dir, ent.name), p + '/');
          }
        } else if (p.startsWith(prefix) && (after == null || p > after)) {
          // An object deleted while the walk runs is left out, not an error.
          const st = await fs.stat(path.join(dir, ent.name)).catch((e) => {
            if (e.code !== 'ENOENT') throw e;
          });
          if (st) out.push({ path: p, size: st.size });
        }
      }
    };
    await walk(this.root, '');
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return out;
  }

  async delete(p) {
    await fs.rm(this.file(p), { force: true });
  }
}
