/**
 * The embedded store: SQLite through better-sqlite3, WAL journal, synchronous=FULL (a commit
 * returns only once the WAL is fsynced). One connection writes, on a thread of its own
 * (writer-thread.node.ts); a second one, on this thread, reads committed snapshots, so a reader
 * never sees a write transaction that is still open.
 */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import type { NodeRef, StoredNode } from '@backchannel/protocol/transcript';
import { chmodSync, closeSync, existsSync, openSync, statSync } from 'node:fs';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { Mutex } from '../mutex.ts';
import type {
  CardRecord,
  ChannelHead,
  CheckpointRecord,
  ClaimedPackage,
  DeviceRecord,
  EntryRecord,
  InboxItemRecord,
  MemberRecord,
  MessageRef,
  ReadTx,
  RevocationRecord,
  Store,
  WriteTx,
} from '../store.ts';
import { migrate } from './migrate.ts';
import { entriesThatFit } from '../store.ts';
import { type Executor, LocalExecutor } from './statements.ts';
import { WriterError, WriterThread } from './writer-thread.node.ts';
import { RelayError } from '../../errors.ts';
import { STORE_RETRY_AFTER_MS } from '../postgres/pg-errors.ts';
import {
  bytes,
  type DeviceRow,
  decodeFrontier,
  type EntryRow,
  encodeFrontier,
  type MemberRow,
  toDevice,
  toEntry,
} from '../rows.ts';

export interface SqliteStoreOptions {
  /** Database file, or ':memory:' (one connection; for tests). */
  readonly path: string;
  /**
   * The writer connection on a thread of its own (default), so commits and their fsyncs never
   * block the event loop; false keeps it on this thread.
   */
  readonly writerThread?: boolean;
  /** Called once if the writer thread dies on its own: the store can no longer write. */
  readonly onFatal?: (e: Error) => void;
}

class SqliteTx implements WriteTx {
  readonly #x: Executor;
  readonly #ids: Map<ChannelId, number>;
  /** Channel ids created in this transaction (forgotten again if it rolls back). */
  readonly created: ChannelId[] = [];

  constructor(x: Executor, ids: Map<ChannelId, number>) {
    this.#x = x;
    this.#ids = ids;
  }

  async #chan(channel: ChannelId): Promise<number | undefined> {
    let id = this.#ids.get(channel);
    if (id === undefined) {
      id = (await this.#x.get('chanId', channel)) as number | undefined;
      if (id !== undefined) this.#ids.set(channel, id);
    }
    return id;
  }

  async #mustChan(channel: ChannelId): Promise<number> {
    const id = await this.#chan(channel);
    if (id === undefined) throw new Error(`unknown channel ${channel}`);
    return id;
  }

  async getCard(party: PartyId): Promise<CardRecord | undefined> {
    const r = (await this.#x.get('getCard', party)) as
      | { party: string; root_public_key: Buffer; card: Buffer; issued_at: number }
      | undefined;
    if (r === undefined) return undefined;
    return {
      party: r.party as PartyId,
      rootPublicKey: bytes(r.root_public_key),
      card: bytes(r.card),
      issuedAt: r.issued_at,
    };
  }

  async getDevice(device: DeviceId): Promise<DeviceRecord | undefined> {
    const r = (await this.#x.get('getDevice', device)) as DeviceRow | undefined;
    return r === undefined ? undefined : toDevice(r);
  }

  async listDevices(party: PartyId): Promise<DeviceRecord[]> {
    return ((await this.#x.all('listDevices', party)) as DeviceRow[]).map(toDevice);
  }

  async listRevocations(party: PartyId): Promise<RevocationRecord[]> {
    const rows = (await this.#x.all('listRevocations', party)) as {
      device: string;
      party: string;
      revoked_at: number;
      revocation: Buffer;
    }[];
    return rows.map((r) => ({
      device: r.device as DeviceId,
      party: r.party as PartyId,
      revokedAt: r.revoked_at,
      revocation: bytes(r.revocation),
    }));
  }

  async countKeyPackages(device: DeviceId): Promise<{ oneTime: number; lastResort: boolean }> {
    const r = (await this.#x.get('countKeyPackages', device)) as { one_time: number; last_resort: number };
    return { oneTime: r.one_time, lastResort: r.last_resort === 1 };
  }

  async getChannel(channel: ChannelId): Promise<ChannelHead | undefined> {
    const r = (await this.#x.get('getChannel', channel)) as
      | {
          id: number;
          channel: string;
          epoch: number;
          size: number;
          frontier: Buffer;
          last_at: number;
          created_at: number;
        }
      | undefined;
    if (r === undefined) return undefined;
    this.#ids.set(channel, r.id);
    return {
      channel,
      epoch: r.epoch,
      size: r.size,
      frontier: decodeFrontier(bytes(r.frontier)),
      lastAt: r.last_at,
      createdAt: r.created_at,
    };
  }

  async getMember(channel: ChannelId, device: DeviceId): Promise<MemberRecord | undefined> {
    const chan = await this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = (await this.#x.get('getMember', chan, device)) as MemberRow | undefined;
    return r === undefined ? undefined : toMember(channel, r);
  }

  async listMembers(channel: ChannelId): Promise<MemberRecord[]> {
    const chan = await this.#chan(channel);
    if (chan === undefined) return [];
    return ((await this.#x.all('listMembers', chan)) as MemberRow[]).map((r) => toMember(channel, r));
  }

  async findMessage(channel: ChannelId, msgId: string): Promise<MessageRef | undefined> {
    const chan = await this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = (await this.#x.get('findMessage', chan, msgId)) as
      | { seq: number; envelope_hash: Buffer; received_at: number }
      | undefined;
    return r === undefined
      ? undefined
      : { seq: r.seq, envelopeHash: bytes(r.envelope_hash), receivedAt: r.received_at };
  }

  async findMessages(channel: ChannelId, msgIds: readonly string[]): Promise<Map<string, MessageRef>> {
    const out = new Map<string, MessageRef>();
    const chan = await this.#chan(channel);
    if (chan === undefined) return out;
    if (msgIds.length === 0) return out;
    const rows = (await this.#x.all('findMessagesIn', chan, JSON.stringify(msgIds))) as {
      msg_id: string;
      seq: number;
      envelope_hash: Uint8Array;
      received_at: number;
    }[];
    for (const m of rows) {
      out.set(m.msg_id, { seq: m.seq, envelopeHash: bytes(m.envelope_hash), receivedAt: m.received_at });
    }
    return out;
  }

  async getEntries(
    channel: ChannelId,
    from: number,
    limit: number,
    until?: number,
    maxBytes?: number,
  ): Promise<EntryRecord[]> {
    const chan = await this.#chan(channel);
    if (chan === undefined || limit <= 0) return [];
    const end = until ?? Number.MAX_SAFE_INTEGER;
    let n = limit;
    if (maxBytes !== undefined) {
      n = entriesThatFit((await this.#x.all('getEntrySizes', chan, from, end, limit)) as number[], maxBytes);
      if (n === 0) return [];
    }
    const rows = (await this.#x.all('getEntries', chan, from, end, n)) as EntryRow[];
    return rows.map(toEntry);
  }

  async readNodes(channel: ChannelId, refs: readonly NodeRef[]): Promise<Uint8Array[]> {
    const chan = await this.#mustChan(channel);
    // Asked all at once: the writer thread answers them in one round trip.
    const found = await Promise.all(refs.map((r) => this.#x.get('getNode', chan, r.level, r.index)));
    return found.map((h, i) => {
      if (h === undefined) {
        const r = refs[i] as NodeRef;
        throw new Error(`missing node ${r.level}/${r.index} of ${channel}`);
      }
      return bytes(h as Uint8Array);
    });
  }

  async getCheckpoint(channel: ChannelId, size?: number): Promise<CheckpointRecord | undefined> {
    const chan = await this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = (
      size === undefined
        ? await this.#x.get('getLatestCheckpoint', chan)
        : await this.#x.get('getCheckpointAt', chan, size)
    ) as { size: number; note: string; issued_at: number } | undefined;
    if (r === undefined) return undefined;
    const cosignatures = (await this.#x.all('getCosignatures', chan, r.size)) as string[];
    return { size: r.size, note: r.note, issuedAt: r.issued_at, cosignatures };
  }

  async getCheckpointAfter(
    channel: ChannelId,
    seq: number,
  ): Promise<Omit<CheckpointRecord, 'cosignatures'> | undefined> {
    const chan = await this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = (await this.#x.get('getCheckpointAfter', chan, seq)) as
      | { size: number; note: string; issued_at: number }
      | undefined;
    return r === undefined ? undefined : { size: r.size, note: r.note, issuedAt: r.issued_at };
  }

  async getInbox(
    party: PartyId,
    after: number,
    limit: number,
    device?: DeviceId,
  ): Promise<InboxItemRecord[]> {
    const rows = (await this.#x.all('getInbox', device ?? null, party, after, limit)) as {
      cursor: number;
      channel: string;
      seq: number;
      entry: Buffer;
    }[];
    return rows.map((r) => ({
      cursor: r.cursor,
      channel: r.channel as ChannelId,
      seq: r.seq,
      entry: bytes(r.entry),
    }));
  }

  // --- writes

  async lockChannels(
    _channels: readonly ChannelId[],
    _readAhead?: ReadonlyMap<ChannelId, readonly string[]>,
  ): Promise<void> {
    // BEGIN IMMEDIATE: this connection is the database's only writer already.
  }

  async lockDevices(_devices: readonly DeviceId[]): Promise<void> {
    // The only writer: nothing else changes a record before this transaction ends.
  }

  async shareDevices(devices: readonly DeviceId[]): Promise<Map<DeviceId, DeviceRecord>> {
    // The only writer: nothing can change these records before this transaction ends.
    if (devices.length === 0) return new Map();
    const rows = (await this.#x.all('getDevicesIn', JSON.stringify(devices))) as DeviceRow[];
    return new Map(rows.map((r) => [r.device as DeviceId, toDevice(r)] as const));
  }

  async putCard(rec: CardRecord): Promise<void> {
    this.#x.run('putCard', rec.party, rec.rootPublicKey, rec.card, rec.issuedAt);
  }

  async putDevice(rec: Omit<DeviceRecord, 'revokedAt'>): Promise<void> {
    this.#x.run('putDevice', {
      device: rec.device,
      party: rec.party,
      publicKey: rec.publicKey,
      role: rec.role,
      notBefore: rec.notBefore,
      notAfter: rec.notAfter,
      certificate: rec.certificate,
    });
  }

  async putRevocation(rec: RevocationRecord): Promise<void> {
    this.#x.run('putRevocation', rec.device, rec.party, rec.revokedAt, rec.revocation);
    this.#x.run('markRevoked', rec.revokedAt, rec.device, rec.party, rec.revokedAt);
  }

  async addKeyPackages(
    device: DeviceId,
    oneTime: readonly Uint8Array[],
    lastResort?: Uint8Array,
  ): Promise<void> {
    for (const kp of oneTime) this.#x.run('addKeyPackage', device, 0, kp);
    if (lastResort !== undefined) {
      this.#x.run('deleteLastResort', device);
      this.#x.run('addKeyPackage', device, 1, lastResort);
    }
  }

  async takeKeyPackage(device: DeviceId): Promise<ClaimedPackage | undefined> {
    const one = (await this.#x.get('takeOneTime', device)) as { id: number; key_package: Buffer } | undefined;
    if (one !== undefined) {
      this.#x.run('deleteKeyPackage', one.id);
      return { keyPackage: bytes(one.key_package), lastResort: false };
    }
    const last = (await this.#x.get('takeLastResort', device)) as Buffer | undefined;
    return last === undefined ? undefined : { keyPackage: bytes(last), lastResort: true };
  }

  async claimEnrollment(
    device: DeviceId,
    installation: Uint8Array,
    at: number,
  ): Promise<{ installation: Uint8Array; at: number }> {
    this.#x.run('claimEnrollment', device, installation, at);
    const r = (await this.#x.get('getEnrollment', device)) as { installation: Buffer; enrolled_at: number };
    return { installation: bytes(r.installation), at: r.enrolled_at };
  }

  async putChannel(head: ChannelHead): Promise<void> {
    const frontier = encodeFrontier(head.frontier);
    const id = await this.#chan(head.channel);
    if (id === undefined) {
      const r = await this.#x.result('insertChannel', {
        channel: head.channel,
        epoch: head.epoch,
        size: head.size,
        frontier,
        lastAt: head.lastAt,
        createdAt: head.createdAt,
      });
      this.#ids.set(head.channel, r.lastInsertRowid);
      this.created.push(head.channel);
    } else {
      this.#x.run('updateChannel', { id, epoch: head.epoch, size: head.size, frontier, lastAt: head.lastAt });
    }
  }

  async putMember(rec: MemberRecord): Promise<void> {
    this.#x.run(
      'putMember',
      await this.#mustChan(rec.channel),
      rec.device,
      rec.party,
      rec.addedSeq,
      rec.removedSeq ?? null,
    );
  }

  async appendEntry(channel: ChannelId, rec: EntryRecord): Promise<void> {
    this.#x.run(
      'appendEntry',
      await this.#mustChan(channel),
      rec.seq,
      rec.msgId,
      rec.sender,
      rec.envelopeHash,
      rec.receivedAt,
      rec.entry,
    );
  }

  async putNodes(channel: ChannelId, nodes: readonly StoredNode[]): Promise<void> {
    const chan = await this.#mustChan(channel);
    for (const n of nodes) this.#x.run('putNode', chan, n.level, n.index, n.hash);
  }

  async putCheckpoint(channel: ChannelId, rec: Omit<CheckpointRecord, 'cosignatures'>): Promise<void> {
    this.#x.run('putCheckpoint', await this.#mustChan(channel), rec.size, rec.note, rec.issuedAt);
  }

  async lockCheckpoint(_channel: ChannelId, _size: number): Promise<void> {
    // BEGIN IMMEDIATE: this connection is the database's only writer already.
  }

  async countCosignatures(channel: ChannelId, size: number, party: PartyId): Promise<number> {
    const chan = await this.#chan(channel);
    if (chan === undefined) return 0;
    return (await this.#x.get('countCosignatures', chan, size, party)) as number;
  }

  async addCosignature(channel: ChannelId, size: number, line: string, party: PartyId): Promise<boolean> {
    const chan = await this.#mustChan(channel);
    return (await this.#x.result('addCosignature', chan, size, line, party)).changes === 1;
  }

  async addInboxItem(party: PartyId, channel: ChannelId, seq: number): Promise<number> {
    return (await this.#x.result('addInbox', party, await this.#mustChan(channel), seq)).lastInsertRowid;
  }
}

function toMember(channel: ChannelId, r: MemberRow): MemberRecord {
  return {
    channel,
    device: r.device as DeviceId,
    party: r.party as PartyId,
    addedSeq: r.added_seq,
    removedSeq: r.removed_seq ?? undefined,
  };
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly shared = false;
  /** The writer on this thread (':memory:', or writerThread: false), else undefined. */
  readonly #local: Database | undefined;
  readonly #thread: WriterThread | undefined;
  readonly #writeExec: Executor;
  readonly #reader: Database;
  readonly #readExec: Executor;
  readonly #writeLock = new Mutex();
  readonly #readLock: Mutex;
  readonly #ids = new Map<ChannelId, number>();
  #closed = false;
  #broken = false;

  constructor(opts: SqliteStoreOptions) {
    const memory = opts.path === ':memory:';
    if (!memory) ownerOnly(opts.path);
    const setup = new BetterSqlite3(opts.path);
    setup.pragma('journal_mode = WAL');
    // Durability: a commit returns only after the WAL is fsynced. Never weaken this.
    setup.pragma('synchronous = FULL');
    setup.pragma('foreign_keys = ON');
    setup.pragma('busy_timeout = 5000');
    migrate(setup);
    if (memory || opts.writerThread === false) {
      this.#local = setup;
      this.#thread = undefined;
      this.#writeExec = new LocalExecutor(setup);
    } else {
      // The writer connection lives on its own thread (same pragmas); this one only migrated.
      setup.close();
      this.#local = undefined;
      this.#thread = new WriterThread(opts.path, (e) => {
        this.#broken = true;
        opts.onFatal?.(e);
      });
      this.#writeExec = this.#thread;
    }
    if (memory) {
      this.#reader = setup;
      this.#readExec = this.#writeExec;
      this.#readLock = this.#writeLock;
    } else {
      this.#reader = new BetterSqlite3(opts.path);
      this.#reader.pragma('busy_timeout = 5000');
      this.#reader.pragma('query_only = ON');
      this.#readExec = new LocalExecutor(this.#reader);
      this.#readLock = new Mutex();
    }
  }

  read<T>(fn: (tx: ReadTx) => Promise<T>): Promise<T> {
    return this.#readLock.run(async () => {
      if (this.#closed) throw new Error('store is closed');
      const tx = new SqliteTx(this.#readExec, this.#ids);
      this.#reader.exec('BEGIN');
      try {
        return await fn(tx);
      } finally {
        this.#reader.exec('COMMIT');
      }
    });
  }

  /** False once the writer thread died: nothing can be written (readiness reports it). */
  get healthy(): boolean {
    return !this.#broken;
  }

  /** True with the writer thread: see Store.pipelined. */
  get pipelined(): boolean {
    return this.#thread !== undefined;
  }

  write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> {
    const thread = this.#thread;
    if (thread === undefined) {
      return this.#writeLock.run(async () => {
        if (this.#closed) throw new Error('store is closed');
        const tx = new SqliteTx(this.#writeExec, this.#ids);
        this.#local?.exec('BEGIN IMMEDIATE');
        try {
          const r = await fn(tx);
          this.#local?.exec('COMMIT');
          return r;
        } catch (e) {
          if (this.#local?.inTransaction === true) this.#local.exec('ROLLBACK');
          for (const c of tx.created) this.#ids.delete(c);
          throw e;
        }
      });
    }
    // The turn ends once fn has returned and its COMMIT is queued on the thread: the next
    // transaction's statements queue behind it. This one still resolves only once it is durable.
    let tx: SqliteTx | undefined;
    let commit: Promise<void> | undefined;
    const built = this.#writeLock.run(async () => {
      if (this.#closed) throw new Error('store is closed');
      tx = new SqliteTx(thread, this.#ids);
      thread.begin();
      try {
        const r = await fn(tx);
        commit = thread.end('COMMIT');
        return r;
      } catch (e) {
        // Waited for: the next transaction begins in the generation the rollback moved to.
        await thread.end('ROLLBACK').catch(() => {});
        throw e;
      }
    });
    return built.then(
      async (r) => {
        try {
          await commit;
        } catch (e) {
          for (const c of tx?.created ?? []) this.#ids.delete(c);
          throw writeError(e);
        }
        return r;
      },
      (e: unknown) => {
        for (const c of tx?.created ?? []) this.#ids.delete(c);
        throw writeError(e);
      },
    );
  }

  /** The writer connection's durability settings (for health checks and tests). */
  async durability(): Promise<{ journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA' }> {
    // Under the write lock: between transactions (see WriterThread.pragma).
    return this.#writeLock.run(async () => {
      const pragma = (name: string) =>
        this.#thread !== undefined ? this.#thread.pragma(name) : this.#local?.pragma(name, { simple: true });
      const sync = (await pragma('synchronous')) as number;
      return {
        journalMode: (await pragma('journal_mode')) as string,
        synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[sync] ?? 'OFF',
      };
    });
  }

  async close(): Promise<void> {
    const shut = async () => {
      if (this.#closed) return;
      this.#closed = true;
      if (this.#reader !== this.#local) this.#reader.close();
      this.#local?.close();
      await this.#thread?.close();
    };
    // ':memory:' has one lock for both (taking it twice would wait forever).
    await this.#writeLock.run(() => (this.#readLock === this.#writeLock ? shut() : this.#readLock.run(shut)));
  }
}

/**
 * What a client is told when the writer thread refused a transaction because one before it failed
 * (nothing of it was written), or is gone: STORE_UNAVAILABLE (503, retry), not an internal error.
 */
function writeError(e: unknown): unknown {
  if (e instanceof WriterError && e.code === 'BC_EARLIER_FAILED') {
    return new RelayError('STORE_UNAVAILABLE', 'an earlier write failed and this one was not made; retry', {
      retryAfterMs: STORE_RETRY_AFTER_MS,
    });
  }
  return e;
}

export function openSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(opts);
}

/**
 * The database's files are the relay operator's alone (0600), even in a data folder made wider
 * than the relay would make it (0700): they hold who talks to whom and when. SQLite gives the WAL
 * and shared-memory files the database file's mode; files made wider before are tightened.
 */
function ownerOnly(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    if (!existsSync(f) || (statSync(f).mode & 0o077) === 0) continue;
    try {
      chmodSync(f, 0o600);
    } catch {
      // Another user's file this process may use but not chmod (EPERM): it keeps its mode.
    }
  }
}
