//! TypeScript declarations wasm-bindgen cannot infer (the shapes of plain JS objects); the
//! exported functions name them with `unchecked_param_type` / `unchecked_return_type`.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A listed object, as a store reports it (other fields are ignored). */
export interface ObjectMeta { path: string; size: number }

/**
 * Any object with these four methods is a store: what the log's rules use, no more.
 * Rejections carry an error `name`: `NotFound` (get), `AlreadyExists` (put create),
 * `InvalidRange` (a ranged get past the end), `NotSupported`; any other rejection of a put means "may or may not have landed" (the log
 * reads the object back to decide).
 */
export interface Store {
  /**
   * With `opts.range`, a store may read only those bytes and answer with their `offset`
   * (`InvalidRange` if they are not all there); a store that ignores it answers the whole
   * object, which the log cuts itself.
   */
  get(
    path: string,
    opts?: { range?: { offset: number; length: number } },
  ): Promise<{ body: Uint8Array; offset?: number }>;
  /** Create-if-absent: tidewal always passes `{ mode: 'create' }`. */
  put(path: string, body: Uint8Array, opts: { mode: 'create' }): Promise<unknown>;
  /** The objects under `prefix` sorting after `after`, in any order (the log sorts). */
  list(prefix: string, after?: string): Promise<ObjectMeta[]>;
  /** Deleting a missing object may succeed or reject with `NotFound`. */
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
  /** Retention policy (off unless one is set): keep entries younger than this by the
   * writer's clock, keep at most this many bytes in generations; rounds at most this often
   * (default 30 000 ms). A named consumer holds it back; a WAL-only log refuses it. */
  keepForMs?: number;
  keepBytes?: number;
  retentionIntervalMs?: number;
}

/** What `Wal.compact` merged. */
export interface CompactionPass { runs: number; replaced: number; generations: number }

/** What `Wal.collectGarbage` deleted. */
export interface Collected { fences: number; orphans: number; intents: number }

/** `Reader.open` options (all optional): where to start and stop (positions), whether to
 * follow new entries, which columns to decode, how many bytes to read ahead of what was
 * pulled (default 16 MiB). */
export interface ReaderOptions {
  prefix?: string;
  from?: number;
  until?: number;
  follow?: boolean;
  pollMs?: number;
  columns?: string[];
  readAheadBytes?: number;
  /** Start at the first entry whose time (unix ms) is at or after this (excludes `from`). */
  fromTime?: number;
  /** Read exactly this kept manifest version: its generations, below its cursor, no WAL,
   * no follow (`VersionNotKept`, `NoSuchVersion`, `GenerationCollected` otherwise). */
  asOfVersion?: number;
  /** Stop at the first entry whose known time (unix ms) is past this. */
  untilTime?: number;
}

/** Where `Wal.restore` takes the log: exactly one of a position, a time (unix ms) or a version. */
export type RestoreTo = { toPosition: number } | { toTime: number } | { toVersion: number };
/** What `Wal.restore` committed. */
export interface Restored {
  to: number; version: number; fromVersion: number; asOfVersion: number | null;
  generationsKept: number; generationsRewritten: number; generationsCopied: number;
  generationsRetired: number; rows: number;
}
/** What `Wal.dropBefore` / `Wal.dropOlderThan` dropped, and the log's first position now. */
export interface Dropped { generations: number; bytes: number; firstPosition: number }

/** One kept manifest version, as `history` read it. */
export interface VersionInfo {
  version: number; committedAt: number | null; epoch: number; cursor: number;
  droppedBefore: number; generations: number; rows: number; bytes: number;
  change: 'create' | 'claim' | 'flush' | 'truncate' | 'drop' | 'compact' | 'intent' | 'settle' | 'restore' | '?';
}

/** What `history` read: the kept versions, ascending, and those collected under it. */
export interface LogHistory { versions: VersionInfo[]; skipped: number[] }

/** `for await (const ipc of reader)`: a `Reader` is its own async iterator. */
export interface Reader { [Symbol.asyncIterator](): AsyncIterator<ReaderItem, undefined> }

/** One item of a `Reader`: a WAL position's rows as an Arrow IPC stream, and that position. */
export type ReaderItem = Uint8Array & { readonly position: number };

/** What `inspect` found: the current manifest as stored (null: no log), the manifest
 * versions present and the WAL objects. */
export interface Inspection {
  manifest: Record<string, unknown> | null;
  manifestVersions: number[];
  wal: { position: number; bytes: number }[];
}

/** A named consumer as `consumers` lists it: its committed position, the version holding
 * it, and how far it is behind the log's end (entries: an upper bound; bytes: what a resume
 * reads). */
export interface ConsumerInfo {
  name: string; position: number; version: number; lagEntries: number; lagBytes: number;
}

/** `Consumer.open`'s options: the name (1 to 64 of `A-Za-z0-9._-`), the log's prefix and
 * schema (an Arrow IPC stream), and whether to keep following the log. */
export interface ConsumerOptions {
  name: string;
  schema: Uint8Array;
  prefix?: string;
  follow?: boolean;
  pollMs?: number;
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
  generationsLive: number; compactions: number; generationsCompacted: number;
  compactionsFailed: number; compactionError: string | null;
  bytesReclaimed: number; leaseRenewals: number;
  collectedFences: number; collectedOrphans: number; collectedIntents: number;
  generationsDropped: number; bytesDropped: number;
  retentionRounds: number; retentionHeldBack: number;
  retentionHeldBy: { name: string; position: number } | null;
}

/** The `name` of every error a `Wal` rejects with. */
export type WalErrorName = 'FencedError' | 'CorruptError' | 'SchemaMismatchError'
  | 'BackpressureTimeoutError' | 'StoreError' | 'UnsupportedError' | 'InvalidInputError'
  | 'ClosedError' | 'ConsumerError' | 'HeldBackError' | 'WalError';
/** `consumer` and `position`: a `HeldBackError`'s consumer, the lowest named one. */
export interface WalError extends Error {
  name: WalErrorName; epoch?: number; path?: string; consumer?: string; position?: number;
}
"#;
