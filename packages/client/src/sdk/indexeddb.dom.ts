/**
 * LocalStore on IndexedDB for browsers, every value sealed at rest.
 *
 * Key: PBKDF2-HMAC-SHA-256 over the NFKC-normalized passphrase with a random 16-byte salt,
 * 600,000 iterations by default (OWASP 2023 guidance for PBKDF2-SHA-256), derived by WebCrypto
 * straight into a non-extractable AES-256-GCM CryptoKey: page script can use the key but never
 * read it. Values: AES-256-GCM under a fresh 12-byte nonce, stored as nonce ‖ ciphertext ‖ tag,
 * with the record's name bound as associated data so a value cannot be moved to another record
 * (same layout as the Node store, sealed-box.node.ts). Keys (record names, channel ids,
 * sequence numbers) stay in clear: they are identifiers, not content.
 *
 * IndexedDB transactions commit as soon as the event loop is idle, and WebCrypto is
 * asynchronous, so every value is sealed before its transaction opens; each `put` is then
 * one readwrite transaction over all the stores it touches: all or nothing.
 */
import { ClientError } from './errors.ts';
import type { ChannelEntries, Durability, LocalStore, OutboxItem, StoredEntry } from './storage.ts';

export interface Pbkdf2Params {
  readonly kdf: 'PBKDF2-SHA-256';
  readonly iterations: number;
}

export const DEFAULT_PBKDF2: Pbkdf2Params = { kdf: 'PBKDF2-SHA-256', iterations: 600_000 };

export interface OpenIndexedDbStoreOptions {
  /** IndexedDB database name: one per device profile. */
  readonly name: string;
  readonly passphrase: string;
  /** Only for a new store; an existing store keeps the parameters it was created with. */
  readonly kdf?: Pbkdf2Params;
  /** Defaults to the global `indexedDB` (tests pass fake-indexeddb's factory). */
  readonly indexedDB?: IDBFactory;
  /** Defaults to the global `crypto` (WebCrypto). */
  readonly crypto?: Crypto;
}

const VERSION = 1;
const CHECK = new TextEncoder().encode('backchannel local store v1');
const enc = new TextEncoder();

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

function openDb(factory: IDBFactory, name: string): Promise<IDBDatabase> {
  const r = factory.open(name, VERSION);
  r.onupgradeneeded = () => {
    const db = r.result;
    db.createObjectStore('meta');
    db.createObjectStore('kv');
    db.createObjectStore('entries'); // key: [channel, seq]
    const ob = db.createObjectStore('outbox', { keyPath: 'id' });
    ob.createIndex('order', ['createdAt', 'id']);
  };
  return req(r);
}

/** INSERT OR IGNORE: a duplicate key neither fails the request's transaction nor reaches `done`. */
function ignoreDuplicate(e: Event): void {
  e.preventDefault();
  e.stopPropagation();
}

interface OutboxRow {
  readonly id: string;
  readonly channel: string;
  readonly createdAt: number;
  /** Order among the rows of one millisecond (one batch of a sendMany): written by this store. */
  readonly n?: number;
  readonly value: Uint8Array;
}

/** AES-256-GCM with a non-extractable key; the record name is the associated data. */
class WebSealedBox {
  readonly #key: CryptoKey;
  readonly #crypto: Crypto;

  constructor(key: CryptoKey, crypto: Crypto) {
    this.#key = key;
    this.#crypto = crypto;
  }

  async seal(aad: string, plaintext: Uint8Array): Promise<Uint8Array> {
    const iv = this.#crypto.getRandomValues(new Uint8Array(12));
    const ct = await this.#crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: enc.encode(aad) },
      this.#key,
      plaintext as Uint8Array<ArrayBuffer>,
    );
    const out = new Uint8Array(12 + ct.byteLength);
    out.set(iv, 0);
    out.set(new Uint8Array(ct), 12);
    return out;
  }

  /** Returns undefined when the value does not authenticate (wrong key, tampered, moved). */
  async open(aad: string, sealed: Uint8Array): Promise<Uint8Array | undefined> {
    if (sealed.length < 28) return undefined;
    try {
      const pt = await this.#crypto.subtle.decrypt(
        {
          name: 'AES-GCM',
          iv: sealed.subarray(0, 12) as Uint8Array<ArrayBuffer>,
          additionalData: enc.encode(aad),
        },
        this.#key,
        sealed.subarray(12) as Uint8Array<ArrayBuffer>,
      );
      return new Uint8Array(pt);
    } catch {
      return undefined;
    }
  }
}

export async function deriveStoreKey(
  crypto: Crypto,
  passphrase: string,
  salt: Uint8Array,
  params: Pbkdf2Params,
): Promise<CryptoKey> {
  if (params.kdf !== 'PBKDF2-SHA-256' || !Number.isSafeInteger(params.iterations) || params.iterations < 1) {
    throw new ClientError('STORE_CORRUPT', 'the store names an unknown key derivation');
  }
  const base = await crypto.subtle.importKey(
    'raw',
    enc.encode(passphrase.normalize('NFKC')),
    'PBKDF2',
    false,
    ['deriveKey'],
  );
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: salt as Uint8Array<ArrayBuffer>, iterations: params.iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

export class IndexedDbLocalStore implements LocalStore {
  readonly #db: IDBDatabase;
  readonly #box: WebSealedBox;
  /** Numbers the outbox rows this store writes (OutboxRow.n). */
  #outboxN = 0;
  /**
   * Resolves once every write called so far has created its transaction (or failed before it).
   * A write's values are sealed (WebCrypto, asynchronous) before its transaction is created, and
   * one write's seals can outlast a later one's: each write waits for its turn before creating its
   * transaction, so transactions (which IndexedDB runs in creation order) follow the call order,
   * as LocalStore promises (Channel.sendMany frees the channel before its write commits).
   */
  #created: Promise<void> = Promise.resolve();

  private constructor(db: IDBDatabase, box: WebSealedBox) {
    this.#db = db;
    this.#box = box;
  }

  /** Whether a store was already created under this name (without unlocking it). */
  static async exists(name: string, factory: IDBFactory = indexedDB): Promise<boolean> {
    const db = await openDb(factory, name);
    try {
      const tx = db.transaction('meta', 'readonly');
      return (await req(tx.objectStore('meta').get('salt'))) !== undefined;
    } finally {
      db.close();
    }
  }

  /** Opens (or creates) the store; a wrong passphrase is PASSPHRASE_WRONG. */
  static async open(opts: OpenIndexedDbStoreOptions): Promise<IndexedDbLocalStore> {
    const factory = opts.indexedDB ?? indexedDB;
    const crypto = opts.crypto ?? globalThis.crypto;
    const db = await openDb(factory, opts.name);
    const meta = db.transaction('meta', 'readonly').objectStore('meta');
    const [salt, kdf, check] = await Promise.all([
      req(meta.get('salt')) as Promise<Uint8Array | undefined>,
      req(meta.get('kdf')) as Promise<Pbkdf2Params | undefined>,
      req(meta.get('check')) as Promise<Uint8Array | undefined>,
    ]);
    if (salt === undefined) {
      const params = opts.kdf ?? DEFAULT_PBKDF2;
      const fresh = crypto.getRandomValues(new Uint8Array(16));
      const box = new WebSealedBox(await deriveStoreKey(crypto, opts.passphrase, fresh, params), crypto);
      const sealedCheck = await box.seal('check', CHECK);
      const tx = db.transaction('meta', 'readwrite');
      const m = tx.objectStore('meta');
      m.put(fresh, 'salt');
      m.put({ kdf: params.kdf, iterations: params.iterations }, 'kdf');
      m.put(sealedCheck, 'check');
      await done(tx);
      return new IndexedDbLocalStore(db, box);
    }
    if (kdf === undefined || check === undefined) {
      db.close();
      throw new ClientError('STORE_CORRUPT', 'the device store is missing its key parameters');
    }
    const box = new WebSealedBox(await deriveStoreKey(crypto, opts.passphrase, salt, kdf), crypto);
    if ((await box.open('check', check)) === undefined) {
      db.close();
      throw new ClientError('PASSPHRASE_WRONG', 'the passphrase does not unlock this device store');
    }
    return new IndexedDbLocalStore(db, box);
  }

  /** Deletes a device store entirely (used by "forget this browser"). */
  static async destroy(name: string, factory: IDBFactory = indexedDB): Promise<void> {
    await req(factory.deleteDatabase(name) as IDBRequest<unknown>);
  }

  /** Takes this write's place in call order (synchronously, when the write is called). */
  #turn(): { readonly ready: Promise<void>; readonly release: () => void } {
    const ready = this.#created;
    let release: () => void = () => {};
    this.#created = new Promise<void>((resolve) => {
      release = resolve;
    });
    return { ready, release };
  }

  /** Seals, waits for the writes called earlier to create their transactions, then writes. */
  async #inOrder<T>(seal: () => Promise<T>, write: (sealed: T) => Promise<void>): Promise<void> {
    const turn = this.#turn();
    let committed: Promise<void>;
    try {
      const sealed = seal();
      // Sealing runs alongside the earlier writes'; a failure waits its turn too (then throws).
      sealed.catch(() => undefined);
      await turn.ready;
      committed = write(await sealed);
    } finally {
      // `write` creates its transaction synchronously: the next write may create its own.
      turn.release();
    }
    await committed;
  }

  async #open(aad: string, v: Uint8Array): Promise<Uint8Array> {
    const out = await this.#box.open(aad, v);
    if (out === undefined) throw new ClientError('STORE_CORRUPT', `record ${aad} does not authenticate`);
    return out;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = (await req(this.#db.transaction('kv', 'readonly').objectStore('kv').get(key))) as
      | Uint8Array
      | undefined;
    return v === undefined ? undefined : this.#open(`kv:${key}`, v);
  }

  async put(
    records: ReadonlyArray<readonly [string, Uint8Array | undefined]>,
    outbox: readonly OutboxItem[] = [],
    entries?: ChannelEntries,
    durability: Durability = 'disk',
  ): Promise<void> {
    const seal = async () => ({
      sealed: await Promise.all(
        records.map(
          async ([k, v]) => [k, v === undefined ? undefined : await this.#box.seal(`kv:${k}`, v)] as const,
        ),
      ),
      rows: await Promise.all(outbox.map((item) => this.#outboxRow(item))),
      logged: entries === undefined ? [] : await this.#sealEntries(entries.channel, entries.entries),
    });
    await this.#inOrder(seal, ({ sealed, rows, logged }) => {
      const stores = [
        'kv',
        ...(rows.length > 0 ? ['outbox'] : []),
        ...(logged.length > 0 ? ['entries'] : []),
      ];
      // Outbox items are sends: always 'strict' (flushed to disk before complete).
      const tx = this.#db.transaction(stores, 'readwrite', {
        durability: durability === 'disk' || rows.length > 0 ? 'strict' : 'relaxed',
      });
      const kv = tx.objectStore('kv');
      for (const [k, v] of sealed) {
        if (v === undefined) kv.delete(k);
        else kv.put(v, k);
      }
      if (rows.length > 0) {
        const ob = tx.objectStore('outbox');
        for (const row of rows) ob.add(row).onerror = (e) => ignoreDuplicate(e); // INSERT OR IGNORE
      }
      if (entries !== undefined && logged.length > 0) this.#addEntries(tx, entries.channel, logged);
      return done(tx);
    });
  }

  async keys(prefix: string): Promise<string[]> {
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const ks = await req(this.#db.transaction('kv', 'readonly').objectStore('kv').getAllKeys(range));
    return (ks as string[]).filter((k) => k.startsWith(prefix)).sort();
  }

  async appendEntries(channel: string, entries: readonly StoredEntry[]): Promise<void> {
    await this.#inOrder(
      () => this.#sealEntries(channel, entries),
      (sealed) => {
        const tx = this.#db.transaction('entries', 'readwrite', { durability: 'strict' });
        this.#addEntries(tx, channel, sealed);
        return done(tx);
      },
    );
  }

  #sealEntries(channel: string, entries: readonly StoredEntry[]): Promise<(readonly [number, Uint8Array])[]> {
    return Promise.all(
      entries.map(async (e) => [e.seq, await this.#box.seal(`entry:${channel}:${e.seq}`, e.entry)] as const),
    );
  }

  #addEntries(tx: IDBTransaction, channel: string, sealed: readonly (readonly [number, Uint8Array])[]): void {
    const st = tx.objectStore('entries');
    for (const [seq, v] of sealed) st.add(v, [channel, seq]).onerror = (e) => ignoreDuplicate(e);
  }

  async entries(channel: string, fromSeq: number, limit: number): Promise<StoredEntry[]> {
    const range = IDBKeyRange.bound([channel, fromSeq], [channel, Number.MAX_SAFE_INTEGER]);
    const st = this.#db.transaction('entries', 'readonly').objectStore('entries');
    const [ks, vs] = await Promise.all([req(st.getAllKeys(range, limit)), req(st.getAll(range, limit))]);
    return Promise.all(
      (ks as [string, number][]).map(async ([, seq], i) => ({
        seq,
        entry: await this.#open(`entry:${channel}:${seq}`, vs[i] as Uint8Array),
      })),
    );
  }

  async entryCount(channel: string): Promise<number> {
    const range = IDBKeyRange.bound([channel, 0], [channel, Number.MAX_SAFE_INTEGER]);
    return req(this.#db.transaction('entries', 'readonly').objectStore('entries').count(range));
  }

  async #outboxRow(item: OutboxItem): Promise<OutboxRow> {
    return {
      id: item.id,
      channel: item.channel,
      createdAt: item.createdAt,
      n: this.#outboxN++,
      value: await this.#box.seal(`outbox:${item.id}`, item.wire),
    };
  }

  async outboxAdd(item: OutboxItem): Promise<void> {
    await this.#inOrder(
      () => this.#outboxRow(item),
      (row) => {
        const tx = this.#db.transaction('outbox', 'readwrite', { durability: 'strict' });
        tx.objectStore('outbox').add(row).onerror = (e) => ignoreDuplicate(e);
        return done(tx);
      },
    );
  }

  async outboxList(): Promise<OutboxItem[]> {
    const st = this.#db.transaction('outbox', 'readonly').objectStore('outbox');
    const rows = (await req(st.index('order').getAll())) as OutboxRow[];
    // In the order they were queued: the index orders by time, then by (random) id.
    rows.sort((x, y) => x.createdAt - y.createdAt || (x.n ?? 0) - (y.n ?? 0));
    return Promise.all(
      rows.map(async (r) => ({
        id: r.id,
        channel: r.channel,
        createdAt: r.createdAt,
        wire: await this.#open(`outbox:${r.id}`, r.value),
      })),
    );
  }

  async outboxRemove(
    ids: readonly string[],
    records: ReadonlyArray<readonly [string, Uint8Array]> = [],
  ): Promise<void> {
    if (ids.length === 0 && records.length === 0) return;
    await this.#inOrder(
      () => Promise.all(records.map(async ([k, v]) => [k, await this.#box.seal(`kv:${k}`, v)] as const)),
      (sealed) => {
        const tx = this.#db.transaction(['kv', 'outbox'], 'readwrite', { durability: 'relaxed' });
        const kv = tx.objectStore('kv');
        for (const [k, v] of sealed) kv.put(v, k);
        const st = tx.objectStore('outbox');
        for (const id of ids) st.delete(id);
        return done(tx);
      },
    );
  }

  close(): void {
    this.#db.close();
  }
}
