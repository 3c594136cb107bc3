/**
 * LocalStore on SQLite (better-sqlite3), every value sealed with the passphrase-derived key.
 *
 * Transcript entries are sealed a run at a time: one row per run of consecutive entries (a synced
 * page is one run), value = seal(AAD 'entries:<channel>:<first>:<count>', n × (u32 length ‖ entry)).
 * One AES-GCM seal and one insert per page instead of per entry; the AAD binds the run's place.
 * Stores written before this format (one sealed row per entry in `entries`) are converted on open.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ClientError } from './errors.ts';
import { DEFAULT_KDF, deriveKey, type KdfParams, SealedBox } from './sealed-box.node.ts';
import {
  inlineWrites,
  type Synchronous,
  threadWrites,
  WRITE_SQL,
  type WriteOp,
  type Writes,
} from './sqlite-writes.node.ts';
import type { ChannelEntries, Durability, LocalStore, OutboxItem, StoredEntry } from './storage.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS entries (channel TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY (channel, seq)) STRICT;
CREATE TABLE IF NOT EXISTS entry_runs (channel TEXT NOT NULL, first INTEGER NOT NULL, count INTEGER NOT NULL,
  value BLOB NOT NULL, PRIMARY KEY (channel, first, count)) STRICT;
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, channel TEXT NOT NULL, created_at INTEGER NOT NULL,
  value BLOB NOT NULL) STRICT;
`;
const CHECK = new TextEncoder().encode('backchannel local store v1');
/** Entries per sealed run (a sync page). */
const RUN = 1000;

const runAad = (channel: string, first: number, count: number) => `entries:${channel}:${first}:${count}`;

function packRun(run: readonly StoredEntry[]): Uint8Array {
  let size = 0;
  for (const e of run) size += 4 + e.entry.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const e of run) {
    view.setUint32(off, e.entry.length);
    out.set(e.entry, off + 4);
    off += 4 + e.entry.length;
  }
  return out;
}

function unpackRun(bytes: Uint8Array, count: number): Uint8Array[] | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > bytes.length) return undefined;
    const len = view.getUint32(off);
    if (off + 4 + len > bytes.length) return undefined;
    out.push(bytes.slice(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return off === bytes.length ? out : undefined;
}

function statements(db: Database.Database) {
  return {
    get: db.prepare('SELECT value FROM kv WHERE key = ?'),
  };
}

export interface OpenSqliteStoreOptions {
  readonly path: string;
  readonly passphrase: string;
  /** Only for a new store; an existing store keeps the parameters it was created with. */
  readonly kdf?: KdfParams;
  /**
   * Commit on a writer thread (sqlite-writes.node.ts), so that fsyncs do not stop the event loop:
   * for long-running processes that send or receive steadily. Default: on this thread.
   */
  readonly writerThread?: boolean;
  /**
   * How long to wait for another process that holds this device store (default 30 s) before
   * failing with STORE_LOCKED.
   */
  readonly lockWaitMs?: number;
  /** What this process is, for the message another one gets while it holds the store. */
  readonly holder?: string;
  /** Called (with the holder) when another process holds the store and this one starts waiting. */
  readonly onLockWait?: (holder: string) => void;
}

/**
 * One process at a time per device store. Two that both sent from it would both load the same
 * MLS state and encrypt with the same ratchet generation: the same key and nonce for two
 * different messages (AES-GCM's worst case), and the second message undecryptable for everyone
 * else. An exclusive lock on a side file (a SQLite database held in an open EXCLUSIVE
 * transaction): the operating system drops it when the process ends, kill -9 included, so no
 * stale lock outlives its holder. Who holds it is written beside it, for the message.
 */
/** Longer than a relay request's timeout (15 s): a daemon's beat during an outage ends within it. */
const DEFAULT_LOCK_WAIT_MS = 30_000;

class DeviceLock {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  static acquire(
    storePath: string,
    waitMs: number,
    holder: string,
    onWait: ((holder: string) => void) | undefined,
  ): DeviceLock {
    const file = `${storePath}.lock`;
    let db: Database.Database;
    try {
      db = new Database(file, { timeout: 0 });
      // Only this user may take it (a shared lock by anyone else would hold the device).
      chmodSync(file, 0o600);
    } catch (e) {
      throw new ClientError(
        'STORE_FAILED',
        `cannot open the device's lock file ${file}: ${(e as Error).message}`,
      );
    }
    const held = () => {
      try {
        return readFileSync(`${storePath}.lock.holder`, 'utf8').trim() || 'another process';
      } catch {
        return 'another process'; // not written (yet): the generic wording
      }
    };
    try {
      try {
        db.exec('BEGIN EXCLUSIVE');
      } catch (e) {
        if ((e as { code?: unknown }).code !== 'SQLITE_BUSY' || waitMs <= 0) throw e;
        onWait?.(held());
        db.pragma(`busy_timeout = ${waitMs}`);
        db.exec('BEGIN EXCLUSIVE');
      }
    } catch (e) {
      db.close();
      if ((e as { code?: unknown }).code !== 'SQLITE_BUSY')
        throw new ClientError('STORE_FAILED', `cannot lock the device (${file}): ${(e as Error).message}`);
      throw new ClientError(
        'STORE_LOCKED',
        `this device is in use by ${held()}: one process at a time may use a device (waited ${Math.round(waitMs / 1000)} s); stop it or wait until it ends`,
        { retryable: true },
      );
    }
    try {
      writeFileSync(`${storePath}.lock.holder`, `${holder} (pid ${process.pid})\n`, { mode: 0o600 });
    } catch {
      // only the message's wording depends on it
    }
    return new DeviceLock(db);
  }

  release(): void {
    if (this.#db.open) this.#db.close(); // closing ends the transaction: the lock is released
  }
}

export class SqliteLocalStore implements LocalStore {
  readonly #db: Database.Database;
  readonly #box: SealedBox;
  /** Prepared once (every send and every applied page runs them). */
  readonly #sql: ReturnType<typeof statements>;
  /**
   * The wire bytes of the outbox items this process wrote and has not removed: listing the
   * outbox (each flush) reads these instead of opening their sealed copies again. The sealed
   * rows stay the record: after a restart they are opened as before.
   */
  readonly #outboxWires = new Map<string, Uint8Array>();
  /** How the last write was committed: FULL for 'disk' writes, NORMAL for 'process' ones. */
  #synchronous: Synchronous = 'FULL';
  readonly #writes: Writes;

  readonly #lock: DeviceLock;

  private constructor(db: Database.Database, box: SealedBox, writes: Writes, lock: DeviceLock) {
    this.#db = db;
    this.#box = box;
    this.#sql = statements(db);
    this.#writes = writes;
    this.#lock = lock;
  }

  static exists(path: string): boolean {
    try {
      const db = new Database(path, { fileMustExist: true, readonly: true });
      const row = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'meta'").get();
      db.close();
      return row !== undefined;
    } catch {
      return false;
    }
  }

  static open(opts: OpenSqliteStoreOptions): SqliteLocalStore {
    mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
    const lock = DeviceLock.acquire(
      opts.path,
      opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS,
      opts.holder ?? `a backchannel process (${process.argv.slice(2, 4).join(' ') || 'node'})`,
      opts.onLockWait,
    );
    try {
      return SqliteLocalStore.#openLocked(opts, lock);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  static #openLocked(opts: OpenSqliteStoreOptions, lock: DeviceLock): SqliteLocalStore {
    ownerOnly(opts.path);
    const db = new Database(opts.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA);
    const meta = (k: string) =>
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: Buffer } | undefined)?.value;
    let salt = meta('salt');
    let params: KdfParams;
    if (salt === undefined) {
      params = opts.kdf ?? DEFAULT_KDF;
      salt = randomBytes(16);
      const box = new SealedBox(deriveKey(opts.passphrase, salt, params));
      const ins = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      db.transaction(() => {
        ins.run('salt', salt);
        ins.run('kdf', Buffer.from(JSON.stringify(params)));
        ins.run('check', box.seal('check', CHECK));
      })();
      return new SqliteLocalStore(db, box, SqliteLocalStore.#writesFor(db, opts), lock);
    }
    params = JSON.parse(String(meta('kdf'))) as KdfParams;
    const box = new SealedBox(deriveKey(opts.passphrase, salt, params));
    const check = meta('check');
    if (check === undefined || box.open('check', check) === undefined) {
      db.close();
      throw new ClientError('PASSPHRASE_WRONG', 'the passphrase does not unlock this device store');
    }
    try {
      convertEntryRows(db, box);
    } catch (e) {
      db.close(); // an unreadable old row: the store stays as it was, and no handle is left open
      throw e;
    }
    return new SqliteLocalStore(db, box, SqliteLocalStore.#writesFor(db, opts), lock);
  }

  static #writesFor(db: Database.Database, opts: OpenSqliteStoreOptions): Writes {
    return opts.writerThread === true ? threadWrites(opts.path) : inlineWrites(db);
  }

  #open(aad: string, v: Uint8Array): Uint8Array {
    const out = this.#box.open(aad, v);
    if (out === undefined) throw new ClientError('STORE_CORRUPT', `record ${aad} does not authenticate`);
    return out;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const row = this.#sql.get.get(key) as { value: Buffer } | undefined;
    return row === undefined ? undefined : this.#open(`kv:${key}`, row.value);
  }

  /** How the last write was committed: FULL ('disk') or NORMAL ('process'). */
  get synchronous(): 'FULL' | 'NORMAL' {
    return this.#synchronous;
  }

  /**
   * Runs sealed writes in one transaction. In WAL mode FULL syncs the log at its commit; NORMAL
   * leaves it to the OS (and to the next FULL commit, which syncs what came before it).
   */
  async #write(ops: readonly WriteOp[], d: Durability): Promise<number[]> {
    const { changes, synchronous } = await this.#writes.run(ops, d === 'disk' ? 'FULL' : 'NORMAL');
    // As the connection that committed reports it (the writer thread's, when there is one).
    this.#synchronous = synchronous;
    return changes;
  }

  async put(
    records: ReadonlyArray<readonly [string, Uint8Array | undefined]>,
    outbox: readonly OutboxItem[] = [],
    entries?: ChannelEntries,
    durability: Durability = 'disk',
  ): Promise<void> {
    const ops: WriteOp[] = [];
    for (const [k, v] of records) {
      if (v === undefined) ops.push(['kvDelete', [k]]);
      else ops.push(['kvPut', [k, this.#box.seal(`kv:${k}`, v)]]);
    }
    const first = ops.length;
    for (const item of outbox) {
      const sealed = this.#box.seal(`outbox:${item.id}`, item.wire);
      ops.push(['outboxAdd', [item.id, item.channel, item.createdAt, sealed]]);
    }
    if (entries !== undefined) ops.push(...runOps(this.#box, entries.channel, entries.entries));
    // Outbox items are sends: always on disk.
    const changes = await this.#write(ops, outbox.length > 0 ? 'disk' : durability);
    // Committed: these rows hold exactly these bytes (an id already queued kept its first row).
    outbox.forEach((item, i) => {
      if (changes[first + i] === 1) this.#outboxWires.set(item.id, item.wire.slice());
    });
  }

  async keys(prefix: string): Promise<string[]> {
    const rows = this.#db
      .prepare('SELECT key FROM kv WHERE key >= ? AND key < ? || char(1114111) ORDER BY key')
      .all(prefix, prefix) as { key: string }[];
    return rows.map((r) => r.key);
  }

  async appendEntries(channel: string, entries: readonly StoredEntry[]): Promise<void> {
    await this.#write(runOps(this.#box, channel, entries), 'disk');
  }

  /** Runs overlapping [fromSeq, …) in order; where two runs hold a seq, the one stored first wins. */
  async entries(channel: string, fromSeq: number, limit: number): Promise<StoredEntry[]> {
    const out: StoredEntry[] = [];
    let next = fromSeq;
    for (const r of this.#runs(channel, fromSeq)) {
      if (out.length >= limit) break;
      if (r.first + r.count <= next) continue;
      const entries = unpackRun(this.#open(runAad(channel, r.first, r.count), r.value), r.count);
      if (entries === undefined)
        throw new ClientError('STORE_CORRUPT', `entries ${channel}:${r.first} do not unpack`);
      for (let k = Math.max(0, next - r.first); k < r.count && out.length < limit; k++) {
        out.push({ seq: r.first + k, entry: entries[k] as Uint8Array });
        next = r.first + k + 1;
      }
    }
    return out;
  }

  async entryCount(channel: string): Promise<number> {
    let n = 0;
    let next = 0;
    for (const r of this.#db
      .prepare('SELECT first, count FROM entry_runs WHERE channel = ? ORDER BY first, rowid')
      .all(channel) as { first: number; count: number }[]) {
      const from = Math.max(next, r.first);
      if (r.first + r.count > from) {
        n += r.first + r.count - from;
        next = r.first + r.count;
      }
    }
    return n;
  }

  #runs(channel: string, fromSeq: number): { first: number; count: number; value: Buffer }[] {
    return this.#db
      .prepare(
        'SELECT first, count, value FROM entry_runs WHERE channel = ? AND first + count > ? ORDER BY first, rowid',
      )
      .all(channel, fromSeq) as { first: number; count: number; value: Buffer }[];
  }

  async outboxAdd(item: OutboxItem): Promise<void> {
    await this.put([], [item]);
  }

  async outboxList(): Promise<OutboxItem[]> {
    const rows = this.#db
      .prepare('SELECT id, channel, created_at, value FROM outbox ORDER BY created_at, rowid')
      .all() as {
      id: string;
      channel: string;
      created_at: number;
      value: Buffer;
    }[];
    return rows.map((r) => ({
      id: r.id,
      channel: r.channel,
      createdAt: r.created_at,
      wire: this.#outboxWires.get(r.id) ?? this.#open(`outbox:${r.id}`, r.value),
    }));
  }

  async outboxRemove(
    ids: readonly string[],
    records: ReadonlyArray<readonly [string, Uint8Array]> = [],
  ): Promise<void> {
    if (ids.length === 0 && records.length === 0) return;
    const ops: WriteOp[] = [];
    for (const [k, v] of records) ops.push(['kvPut', [k, this.#box.seal(`kv:${k}`, v)]]);
    for (const id of ids) ops.push(['outboxDelete', [id]]);
    await this.#write(ops, 'process');
    for (const id of ids) this.#outboxWires.delete(id);
  }

  close(): void {
    this.#db.close();
    // Released once the writes already made have committed: a process waiting for this device
    // must not load the state they are still writing.
    this.#writes.close(() => this.#lock.release());
  }
}

/**
 * Moves entries sealed one per row (the earlier format) into sealed runs: one transaction per
 * channel, reading 1,000 rows at a time (memory stays bounded however long the channel).
 */
function convertEntryRows(db: Database.Database, box: SealedBox): void {
  const channels = db.prepare('SELECT DISTINCT channel FROM entries').all() as { channel: string }[];
  const page = db.prepare(
    'SELECT seq, value FROM entries WHERE channel = ? AND seq >= ? ORDER BY seq LIMIT 1000',
  );
  const drop = db.prepare('DELETE FROM entries WHERE channel = ?');
  const insert = db.prepare(WRITE_SQL.runAdd);
  for (const { channel } of channels) {
    db.transaction(() => {
      for (let from = 0; ; ) {
        const rows = page.all(channel, from) as { seq: number; value: Buffer }[];
        if (rows.length === 0) break;
        for (const [, params] of runOps(
          box,
          channel,
          rows.map((r) => ({ seq: r.seq, entry: openOrThrow(box, `entry:${channel}:${r.seq}`, r.value) })),
        ))
          insert.run(...params);
        from = (rows[rows.length - 1] as { seq: number }).seq + 1;
      }
      drop.run(channel);
    })();
  }
}

/** Seals runs of consecutive entries (at most RUN each) as inserts; a run already stored is kept. */
function runOps(box: SealedBox, channel: string, entries: readonly StoredEntry[]): WriteOp[] {
  const ops: WriteOp[] = [];
  let i = 0;
  while (i < entries.length) {
    const first = (entries[i] as StoredEntry).seq;
    let j = i + 1;
    while (j < entries.length && j - i < RUN && (entries[j] as StoredEntry).seq === first + (j - i)) j++;
    const run = entries.slice(i, j);
    ops.push([
      'runAdd',
      [channel, first, run.length, box.seal(runAad(channel, first, run.length), packRun(run))],
    ]);
    i = j;
  }
  return ops;
}

function openOrThrow(box: SealedBox, aad: string, v: Uint8Array): Uint8Array {
  const out = box.open(aad, v);
  if (out === undefined) throw new ClientError('STORE_CORRUPT', `record ${aad} does not authenticate`);
  return out;
}

/**
 * The store's files are the owner's alone (0600), as its directory is (0700): sealed or not,
 * nobody else reads them. SQLite gives the WAL and shared-memory files the database file's mode,
 * so creating that file 0600 covers them; a store made before this (0644) is tightened.
 */
function ownerOnly(path: string): void {
  if (path === ':memory:' || path === '') return;
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
