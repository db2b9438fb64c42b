// Compiled (never run) against the generated typings by `wasm_types`: the API as a user
// writes it must type-check, and misuse must not (each @ts-expect-error line must be an error).
import init, { Consumer, MemoryStore, Reader, Wal, consumers, history, inspect, verify } from './tidewal_wasm.js';
import type { AppendAck, Collected, CompactionPass, ConsumerInfo, Dropped, Inspection, LogHistory, ReaderItem, ReaderOptions, Restored, Store, Verified, WalError, WalOptions, WalStats } from './tidewal_wasm.js';
import { OpfsStore } from './js/opfs_store.js';
import { R2Store } from './js/r2_store.js';

declare const ipc: Uint8Array;

export async function usage(): Promise<number> {
  await init();
  const stores: Store[] = [new MemoryStore(), await OpfsStore.open('x'), new R2Store({})];
  const options: WalOptions = { schema: ipc, prefix: 'logs/a', groupCommitIntervalMs: 5 };
  const wal: Wal = await Wal.open(stores[0], options);
  wal.onfenced = (e: WalError) => console.log(e.name === 'FencedError', e.epoch);
  const ack: AppendAck = await wal.append(ipc);
  const generation: number | null = await wal.flushMemtable();
  const rows: Uint8Array = await wal.scan();
  const stats: WalStats = wal.stats();
  const tail = wal.tail((bytes: Uint8Array, position: number) => console.log(bytes.length, position), 50);
  tail.stop();
  await tail.done;
  const readerOptions: ReaderOptions = { prefix: 'logs/a', from: 0, follow: true, columns: ['id'] };
  const reader: Reader = await Reader.open(stores[0], readerOptions);
  for await (const item of reader) {
    const bytes: Uint8Array = item;
    const at: number = item.position;
    console.log(bytes.length, at);
    break;
  }
  const next: IteratorResult<ReaderItem, undefined> = await reader.next();
  console.log(next.done);
  reader.stop();
  // @ts-expect-error columns are names
  await Reader.open(stores[0], { columns: [1] });
  await wal.flush();
  const retaining: WalOptions = { schema: ipc, keepBytes: 1 << 30, keepForMs: 86_400_000, retentionIntervalMs: 60_000 };
  console.log(retaining.keepBytes);
  const pass: CompactionPass = await wal.compact();
  const collected: Collected = await wal.collectGarbage();
  const dropped: Dropped = await wal.dropBefore(ack.position);
  const aged: Dropped = await wal.dropOlderThan(3_600_000, true);
  console.log(pass.runs, collected.fences, dropped.firstPosition, aged.generations);
  try {
    await wal.dropBefore(ack.position, false);
  } catch (e) {
    const held = e as WalError;
    console.log(held.name === 'HeldBackError', held.consumer, held.position);
  }
  const heldBy: { name: string; position: number } | null = stats.retentionHeldBy;
  console.log(stats.generationsLive, stats.bytesReclaimed, stats.collectedIntents, stats.leaseRenewals, heldBy);
  const past: LogHistory = await history(stores[0], 'logs/a');
  const v = past.versions[0];
  const when: number | null = v?.committedAt ?? null;
  console.log(v?.change, v?.generations, v?.rows, v?.cursor, when, past.skipped.length);
  const asOf: ReaderOptions = { asOfVersion: 3, untilTime: Date.now(), fromTime: 0 };
  await Reader.open(stores[0], asOf);
  // @ts-expect-error dropBefore takes a position
  await wal.dropBefore('p');
  // @ts-expect-error a history entry's change is one of a few names
  const change: 'merge' = v!.change;
  console.log(change);
  const back: Restored = await wal.restore({ toPosition: ack.position });
  const undone: Restored = await wal.restore({ toVersion: back.fromVersion });
  console.log(back.rows, undone.asOfVersion, (await wal.restore({ toTime: Date.now() })).to);
  // @ts-expect-error a restore takes one target object
  await wal.restore(3);
  const cursor: number = await wal.truncate(ack.position);
  await wal.close();
  const found: Inspection = await inspect(stores[0], 'logs/a');
  const checked: Verified = await verify(stores[0], 'logs/a');
  console.log(found.manifest === null, found.wal[0]?.position, checked.rows);
  const etl: Consumer = await Consumer.open(stores[0], { name: 'etl', schema: ipc, prefix: 'logs/a' },
    (bytes: Uint8Array, position: number) => console.log(bytes.length, position));
  const version: number = await etl.commit(await etl.caughtUp());
  await etl.close();
  console.log(etl.position, version);
  const names: ConsumerInfo[] = await consumers(stores[0], 'logs/a');
  console.log(names[0]?.name, names[0]?.lagEntries, names[0]?.lagBytes);
  // @ts-expect-error append takes Arrow IPC bytes, not a string
  await wal.append('rows');
  // @ts-expect-error the schema option is required
  await Wal.open(stores[0], { prefix: 'p' });
  // @ts-expect-error a store needs all four methods
  await Wal.open({ get: async () => ({ body: ipc }) }, options);
  // @ts-expect-error inspect names a prefix, not options
  await inspect(stores[0], { prefix: 'logs/a' });
  // @ts-expect-error stats are numbers
  const wrong: string = stats.appends;
  return ack.position + (generation ?? 0) + rows.length + stats.epoch + wrong.length + cursor;
}
