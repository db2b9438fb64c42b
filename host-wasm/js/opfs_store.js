// OpfsStore: a tidewal store in the Origin Private File System of a page or worker.
//
// Paths map to nested directories ("logs/a/wal/0001.arrows" -> logs/ a/ wal/ 0001.arrows).
// Conditional puts are atomic across the tabs and workers of one origin: each put holds a Web
// Lock named after its path while it checks and writes, and the bytes are written under a
// temporary name and moved into place, so nobody sees a half-written object.
// The methods are the store contract (get, put, list, delete); `put` without `mode: 'create'`
// overwrites, which tidewal never asks for (tests use it to damage objects).

function storeError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

function parts(path) {
  const p = path.split('/').filter((s) => s.length > 0);
  if (p.length === 0 || p.some((s) => s === '.' || s === '..' || s === TMP)) {
    throw storeError('InvalidPath', `bad object path ${JSON.stringify(path)}`);
  }
  return p;
}

const TMP = '.tidewal-tmp';

export class OpfsStore {
  /** A store rooted at `root` (a FileSystemDirectoryHandle; default: the OPFS root). */
  constructor(root) {
    this.root = root;
    this.lockPrefix = 'tidewal-opfs:';
  }

  /** The store at `navigator.storage.getDirectory()`, or a folder under it. */
  static async open(folder) {
    let dir = await navigator.storage.getDirectory();
    for (const p of folder ? parts(folder) : []) {
      dir = await dir.getDirectoryHandle(p, { create: true });
    }
    return new OpfsStore(dir);
  }

  async dir(names, create) {
    let dir = this.root;
    for (const n of names) {
      try {
        dir = await dir.getDirectoryHandle(n, { create });
      } catch (e) {
        if (e.name === 'NotFoundError' || e.name === 'TypeMismatchError') return null;
        throw e;
      }
    }
    return dir;
  }

  async file(path) {
    const p = parts(path);
    const dir = await this.dir(p.slice(0, -1), false);
    if (!dir) return null;
    try {
      return await dir.getFileHandle(p[p.length - 1]);
    } catch (e) {
      if (e.name === 'NotFoundError' || e.name === 'TypeMismatchError') return null;
      throw e;
    }
  }

  // With `opts.range`, reads only those bytes (`File.slice`).
  async get(path, opts = {}) {
    const handle = await this.file(path);
    if (!handle) throw storeError('NotFound', `${path} not found`);
    const file = await handle.getFile();
    const range = opts.range;
    if (!range) return { body: new Uint8Array(await file.arrayBuffer()) };
    if (range.offset + range.length > file.size) {
      throw storeError('InvalidRange', `${path}: bytes ${range.offset}..${range.offset + range.length} of ${file.size}`);
    }
    const part = file.slice(range.offset, range.offset + range.length);
    return { body: new Uint8Array(await part.arrayBuffer()), offset: range.offset };
  }

  async put(path, bytes, opts = {}) {
    const mode = opts.mode || 'overwrite';
    const p = parts(path);
    return navigator.locks.request(this.lockPrefix + p.join('/'), async () => {
      const existing = await this.file(path);
      if (mode === 'create' && existing) {
        throw storeError('AlreadyExists', `${path} already exists`);
      }
      // Written under a temporary name, then moved into place: a reader never sees the
      // empty file that creating a handle leaves before the bytes arrive.
      const dir = await this.dir(p.slice(0, -1), true);
      const tmpDir = await this.root.getDirectoryHandle(TMP, { create: true });
      const tmp = await tmpDir.getFileHandle(crypto.randomUUID(), { create: true });
      const writable = await tmp.createWritable();
      try {
        await writable.write(bytes);
        await writable.close();
      } catch (e) {
        await writable.abort().catch(() => {});
        await tmpDir.removeEntry(tmp.name).catch(() => {});
        throw e;
      }
      if (existing) await dir.removeEntry(p[p.length - 1]);
      await tmp.move(dir, p[p.length - 1]);
    });
  }

  async list(prefix, after) {
    // Walk from the deepest folder the prefix names completely.
    const all = prefix.split('/');
    const folders = all.slice(0, -1).filter((s) => s.length > 0);
    const start = await this.dir(folders, false);
    const out = [];
    // Objects deleted while the walk runs (GC by a writer) are left out, not an error.
    const gone = (e) => {
      if (e.name !== 'NotFoundError') throw e;
    };
    const walk = async (dir, base) => {
      const entries = [];
      try {
        for await (const entry of dir.entries()) entries.push(entry);
      } catch (e) {
        return gone(e);
      }
      for (const [name, handle] of entries) {
        if (name === TMP) continue;
        const path = base + name;
        if (handle.kind === 'directory') {
          if ((path + '/').startsWith(prefix) || prefix.startsWith(path + '/')) {
            await walk(handle, path + '/');
          }
        } else if (path.startsWith(prefix) && (after === undefined || after === null || path > after)) {
          try {
            const file = await handle.getFile();
            out.push({ path, size: file.size });
          } catch (e) {
            gone(e);
          }
        }
      }
    };
    if (start) await walk(start, folders.length ? folders.join('/') + '/' : '');
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return out;
  }

  async delete(path) {
    const p = parts(path);
    const dir = await this.dir(p.slice(0, -1), false);
    if (!dir) return;
    try {
      await dir.removeEntry(p[p.length - 1]);
    } catch (e) {
      if (e.name !== 'NotFoundError') throw e;
    }
  }

  /** Removes everything under this store's root (for tests and the demo's reset). */
  async clear() {
    const names = [];
    for await (const [name] of this.root.entries()) names.push(name);
    for (const name of names) {
      await this.root.removeEntry(name, { recursive: true }).catch((e) => {
        if (e.name !== 'NotFoundError') throw e;
      });
    }
  }
}
