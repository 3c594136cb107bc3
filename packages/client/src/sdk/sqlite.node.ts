/** LocalStore on SQLite (better-sqlite3), every value sealed with the passphrase-derived key. */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ClientError } from './errors.ts';
import { DEFAULT_KDF, deriveKey, type KdfParams, SealedBox } from './sealed-box.node.ts';
import type { LocalStore, OutboxItem, StoredEntry } from './storage.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS entries (channel TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY (channel, seq)) STRICT;
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, channel TEXT NOT NULL, created_at INTEGER NOT NULL,
  value BLOB NOT NULL) STRICT;
`;
const CHECK = new TextEncoder().encode('backchannel local store v1');

export interface OpenSqliteStoreOptions {
  readonly path: string;
  readonly passphrase: string;
  /** Only for a new store; an existing store keeps the parameters it was created with. */
  readonly kdf?: KdfParams;
}

export class SqliteLocalStore implements LocalStore {
  readonly #db: Database.Database;
  readonly #box: SealedBox;

  private constructor(db: Database.Database, box: SealedBox) {
    this.#db = db;
    this.#box = box;
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
      return new SqliteLocalStore(db, box);
    }
    params = JSON.parse(String(meta('kdf'))) as KdfParams;
    const box = new SealedBox(deriveKey(opts.passphrase, salt, params));
    const check = meta('check');
    if (check === undefined || box.open('check', check) === undefined) {
      db.close();
      throw new ClientError('PASSPHRASE_WRONG', 'the passphrase does not unlock this device store');
    }
    return new SqliteLocalStore(db, box);
  }

  #open(aad: string, v: Uint8Array): Uint8Array {
    const out = this.#box.open(aad, v);
    if (out === undefined) throw new ClientError('STORE_CORRUPT', `record ${aad} does not authenticate`);
    return out;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const row = this.#db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as
      | { value: Buffer }
      | undefined;
    return row === undefined ? undefined : this.#open(`kv:${key}`, row.value);
  }

  async put(
    records: ReadonlyArray<readonly [string, Uint8Array | undefined]>,
    outbox: readonly OutboxItem[] = [],
  ): Promise<void> {
    const ob = this.#db.prepare(
      'INSERT OR IGNORE INTO outbox (id, channel, created_at, value) VALUES (?, ?, ?, ?)',
    );
    const up = this.#db.prepare(
      'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    );
    const del = this.#db.prepare('DELETE FROM kv WHERE key = ?');
    this.#db.transaction(() => {
      for (const [k, v] of records) {
        if (v === undefined) del.run(k);
        else up.run(k, this.#box.seal(`kv:${k}`, v));
      }
      for (const item of outbox)
        ob.run(item.id, item.channel, item.createdAt, this.#box.seal(`outbox:${item.id}`, item.wire));
    })();
  }

  async keys(prefix: string): Promise<string[]> {
    const rows = this.#db
      .prepare('SELECT key FROM kv WHERE key >= ? AND key < ? || char(1114111) ORDER BY key')
      .all(prefix, prefix) as { key: string }[];
    return rows.map((r) => r.key);
  }

  async appendEntries(channel: string, entries: readonly StoredEntry[]): Promise<void> {
    const ins = this.#db.prepare('INSERT OR IGNORE INTO entries (channel, seq, value) VALUES (?, ?, ?)');
    this.#db.transaction(() => {
      for (const e of entries) ins.run(channel, e.seq, this.#box.seal(`entry:${channel}:${e.seq}`, e.entry));
    })();
  }

  async entries(channel: string, fromSeq: number, limit: number): Promise<StoredEntry[]> {
    const rows = this.#db
      .prepare('SELECT seq, value FROM entries WHERE channel = ? AND seq >= ? ORDER BY seq LIMIT ?')
      .all(channel, fromSeq, limit) as { seq: number; value: Buffer }[];
    return rows.map((r) => ({ seq: r.seq, entry: this.#open(`entry:${channel}:${r.seq}`, r.value) }));
  }

  async entryCount(channel: string): Promise<number> {
    return (
      this.#db.prepare('SELECT count(*) AS n FROM entries WHERE channel = ?').get(channel) as { n: number }
    ).n;
  }

  async outboxAdd(item: OutboxItem): Promise<void> {
    this.#db
      .prepare('INSERT OR IGNORE INTO outbox (id, channel, created_at, value) VALUES (?, ?, ?, ?)')
      .run(item.id, item.channel, item.createdAt, this.#box.seal(`outbox:${item.id}`, item.wire));
  }

  async outboxList(): Promise<OutboxItem[]> {
    const rows = this.#db
      .prepare('SELECT id, channel, created_at, value FROM outbox ORDER BY created_at, id')
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
      wire: this.#open(`outbox:${r.id}`, r.value),
    }));
  }

  async outboxRemove(ids: readonly string[]): Promise<void> {
    const del = this.#db.prepare('DELETE FROM outbox WHERE id = ?');
    this.#db.transaction(() => {
      for (const id of ids) del.run(id);
    })();
  }

  close(): void {
    this.#db.close();
  }
}
