// R2Store: a tidewal store on a Cloudflare R2 bucket binding (in a Worker, or workerd through
// miniflare). Create-if-absent and if-match are R2's own conditional puts
// (`onlyIf: { etagDoesNotMatch: '*' }` / `{ etagMatches }`), atomic on the bucket.

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

  async get(path, range) {
    const options = range ? { range: { offset: range.start, length: range.end - range.start } } : undefined;
    const obj = await this.bucket.get(path, options);
    if (obj === null) throw storeError('NotFound', `${path} not found`);
    return { body: new Uint8Array(await obj.arrayBuffer()), size: obj.size, etag: obj.etag };
  }

  async head(path) {
    const obj = await this.bucket.head(path);
    if (obj === null) throw storeError('NotFound', `${path} not found`);
    return { path, size: obj.size, etag: obj.etag };
  }

  async put(path, bytes, opts = {}) {
    const mode = opts.mode || 'overwrite';
    let onlyIf;
    if (mode === 'create') onlyIf = { etagDoesNotMatch: '*' };
    else if (mode === 'ifMatch') onlyIf = { etagMatches: opts.etag };
    const obj = await this.bucket.put(path, bytes, onlyIf ? { onlyIf } : undefined);
    // R2 answers a failed condition with null, not an error.
    if (obj === null) {
      throw mode === 'create'
        ? storeError('AlreadyExists', `${path} already exists`)
        : storeError('PreconditionFailed', `${path} does not have etag ${opts.etag}`);
    }
    return { etag: obj.etag };
  }

  async list(prefix, after) {
    const out = [];
    let cursor;
    do {
      const page = await this.bucket.list({ prefix, startAfter: after ?? undefined, cursor });
      for (const o of page.objects) out.push({ path: o.key, size: o.size, etag: o.etag });
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out;
  }

  async delete(path) {
    await this.bucket.delete(path);
  }
}
