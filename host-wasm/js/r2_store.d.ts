import type { ObjectMeta, Store } from '../tidewal_wasm.js';

/** A store on a Cloudflare R2 bucket binding (conditional puts by R2's `onlyIf`). */
export declare class R2Store implements Store {
  /** `bucket`: an R2Bucket binding (`env.MY_BUCKET`). */
  constructor(bucket: unknown);
  get(
    path: string,
    opts?: { range?: { offset: number; length: number } },
  ): Promise<{ body: Uint8Array; offset?: number }>;
  /** `mode: 'create'` is create-if-absent (all tidewal asks for); otherwise it overwrites. */
  put(path: string, body: Uint8Array, opts?: { mode?: 'create' | 'overwrite' }): Promise<void>;
  list(prefix: string, after?: string): Promise<ObjectMeta[]>;
  delete(path: string): Promise<void>;
}
