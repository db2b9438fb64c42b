import type { ObjectMeta, Store } from '../tidewal_wasm.js';

/** A store in the Origin Private File System; conditional puts atomic across tabs (Web Locks). */
export declare class OpfsStore implements Store {
  constructor(root: FileSystemDirectoryHandle);
  /** The store at the OPFS root, or a folder under it (created if missing). */
  static open(folder?: string): Promise<OpfsStore>;
  get(
    path: string,
    opts?: { range?: { offset: number; length: number } },
  ): Promise<{ body: Uint8Array; offset?: number }>;
  /** `mode: 'create'` is create-if-absent (all tidewal asks for); otherwise it overwrites. */
  put(path: string, body: Uint8Array, opts?: { mode?: 'create' | 'overwrite' }): Promise<void>;
  list(prefix: string, after?: string): Promise<ObjectMeta[]>;
  delete(path: string): Promise<void>;
  /** Removes everything under this store's root. */
  clear(): Promise<void>;
}
