// R2Store: a tidewal store on a Cloudflare R2 bucket binding (in a Worker, or workerd through
// miniflare). Create-if-absent is R2's own conditional put (`onlyIf: { etagDoesNotMatch: '*' }`),
// atomic on the bucket; `put` without `mode: 'create'` overwrites (tidewal never asks for it).

function storeError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

export class R2Store {
  /** Wraps `bucket`, an R2Bucket binding (`env.MY_BUCKET`). */
  constructor(bucket) {
    this.bucket = bucket;
  }

  // With `opts.range`, R2 reads only those bytes (a range past the end comes back short,
  // which the log reads as InvalidRange).
  async get(path, opts = {}) {
    const range = opts.range;
    const obj = await this.bucket.get(path, range ? { range: { offset: range.offset, length: range.length } } : undefined);
    if (obj === null) throw storeError('NotFound', `${path} not found`);
    const body = new Uint8Array(await obj.arrayBuffer());
    return range ? { body, offset: range.offset } : { body };
  }

  async put(path, bytes, opts = {}) {
    const create = opts.mode === 'create';
    const obj = await this.bucket.put(path, bytes, create ? { onlyIf: { etagDoesNotMatch: '*' } } : undefined);
    // R2 answers a failed condition with null, not an error.
    if (obj === null) throw storeError('AlreadyExists', `${path} already exists`);
  }

  async list(prefix, after) {
    const out = [];
    let cursor;
    do {
      const page = await this.bucket.list({ prefix, startAfter: after ?? undefined, cursor });
      for (const o of page.objects) out.push({ path: o.key, size: o.size });
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out;
  }

  async delete(path) {
    await this.bucket.delete(path);
  }
}
