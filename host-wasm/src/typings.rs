//! TypeScript declarations wasm-bindgen cannot infer (the shapes of plain JS objects); the
//! exported functions name them with `unchecked_param_type` / `unchecked_return_type`.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** An object's metadata, as a store reports it. */
export interface ObjectMeta { path: string; size: number; etag?: string }

/**
 * Any object with these five methods is a store. Rejections carry an error `name`:
 * `NotFound` (get, head), `AlreadyExists` (put create), `PreconditionFailed` (put ifMatch),
 * `NotSupported`; any other rejection of a put means "may or may not have landed".
 */
export interface Store {
  get(path: string, range?: { start: number; end: number }): Promise<{ body: Uint8Array; size?: number; etag?: string }>;
  put(path: string, body: Uint8Array, opts: { mode: 'create' | 'ifMatch' | 'overwrite'; etag?: string }): Promise<{ etag?: string } | void>;
  head(path: string): Promise<ObjectMeta>;
  /** Every object under `prefix` sorting after `after`. */
  list(prefix: string, after?: string): Promise<ObjectMeta[]>;
  /** Deleting a missing object is a success. */
  delete(path: string): Promise<unknown>;
}

/** `Wal.open` options: `schema` is an Arrow IPC stream whose schema is the log's. */
export interface WalOptions {
  schema: Uint8Array;
  prefix?: string;
  window?: number;
  maxInFlight?: number;
  groupCommitBytes?: number;
  groupCommitRecords?: number;
  groupCommitIntervalMs?: number;
  maxEntryBytes?: number;
  memtableBytes?: number;
  maxUnflushedBytes?: number;
  keepManifests?: number;
  walOnly?: boolean;
  backpressureTimeoutMs?: number;
}

/** What `inspect` found: the current manifest as stored (null: no log), the manifest
 * versions present and the WAL objects. */
export interface Inspection {
  manifest: Record<string, unknown> | null;
  manifestVersions: number[];
  wal: { position: number; bytes: number }[];
}

/** What `verify` checked: every object of the log passed. */
export interface Verified {
  manifests: number; generations: number; walEntries: number; fences: number;
  rows: number; bytes: number;
}

/** A durable append. */
export interface AppendAck { position: number; append: number; rows: number }

export interface WalStats {
  appends: number; appendedBytes: number; entriesWritten: number; generationsCommitted: number;
  puts: number; gets: number; lists: number; deletes: number;
  requestsInFlight: number; entriesInFlight: number; unflushedBytes: number;
  epoch: number; nextPosition: number; durablePosition: number | null; replayCursor: number;
  ackP50Ms: number | null; ackP99Ms: number | null;
}

/** The `name` of every error a `Wal` rejects with. */
export type WalErrorName = 'FencedError' | 'CorruptError' | 'SchemaMismatchError'
  | 'BackpressureTimeoutError' | 'StoreError' | 'UnsupportedError' | 'InvalidInputError'
  | 'ClosedError' | 'WalError';
export interface WalError extends Error { name: WalErrorName; epoch?: number; path?: string }
"#;
