/**
 * The browser store and invites under Node: fake-indexeddb stands in for the browser's
 * IndexedDB (same API, in memory) and WebCrypto is Node's own. The web app's browser test
 * exercises the real IndexedDB in Chromium.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { newParty } from '../src/sdk/identity.ts';
import { IndexedDbLocalStore } from '../src/sdk/indexeddb.dom.ts';
import { newInviteCodeWith, openInviteWith, sealInviteWith } from '../src/sdk/invite.ts';
import { newInviteCode, openInvite, sealInvite } from '../src/sdk/invite.node.ts';

const kdf = { kdf: 'PBKDF2-SHA-256', iterations: 1000 } as const;
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** Every raw value IndexedDB holds for this database, as seen without the passphrase. */
async function rawValues(factory: IDBFactory, name: string): Promise<Uint8Array[]> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const r = factory.open(name);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const out: Uint8Array[] = [];
  for (const store of ['kv', 'entries', 'outbox']) {
    const all = await new Promise<unknown[]>((resolve, reject) => {
      const r = db.transaction(store, 'readonly').objectStore(store).getAll();
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    for (const v of all) out.push(v instanceof Uint8Array ? v : (v as { value: Uint8Array }).value);
  }
  db.close();
  return out;
}

const contains = (hay: Uint8Array, needle: Uint8Array) => Buffer.from(hay).includes(Buffer.from(needle));

describe('IndexedDB local store', () => {
  it('round-trips records, entries and outbox items across a reopen', async () => {
    const indexedDB = new IDBFactory();
    const s = await IndexedDbLocalStore.open({ name: 'd1', passphrase: 'correct horse', kdf, indexedDB });
    await s.put(
      [
        ['a', new Uint8Array([1, 2, 3])],
        ['b', new Uint8Array([4])],
        ['ab', new Uint8Array([5])],
      ],
      [{ id: 'e_2', channel: 'c_x', createdAt: 6, wire: new Uint8Array([2]) }],
    );
    await s.appendEntries('c_x', [
      { seq: 0, entry: new Uint8Array([9]) },
      { seq: 1, entry: new Uint8Array([8]) },
    ]);
    await s.appendEntries('c_x', [{ seq: 1, entry: new Uint8Array([7]) }]); // duplicate ignored
    await s.appendEntries('c_y', [{ seq: 0, entry: new Uint8Array([6]) }]);
    // A page and the record that counts it, in one write.
    await s.put([['ch:c_z', new Uint8Array([3])]], [], {
      channel: 'c_z',
      entries: [{ seq: 0, entry: new Uint8Array([5]) }],
    });
    await s.outboxAdd({ id: 'e_1', channel: 'c_x', createdAt: 5, wire: new Uint8Array([7, 7]) });
    await s.outboxAdd({ id: 'e_1', channel: 'c_x', createdAt: 5, wire: new Uint8Array([0]) }); // ignored
    s.close();

    expect(await IndexedDbLocalStore.exists('d1', indexedDB)).toBe(true);
    const r = await IndexedDbLocalStore.open({ name: 'd1', passphrase: 'correct horse', indexedDB });
    expect(await r.get('a')).toEqual(new Uint8Array([1, 2, 3]));
    expect(await r.keys('a')).toEqual(['a', 'ab']);
    expect(await r.keys('')).toEqual(['a', 'ab', 'b', 'ch:c_z']);
    expect(await r.entries('c_z', 0, 10)).toEqual([{ seq: 0, entry: new Uint8Array([5]) }]);
    expect(await r.entries('c_x', 0, 10)).toEqual([
      { seq: 0, entry: new Uint8Array([9]) },
      { seq: 1, entry: new Uint8Array([8]) },
    ]);
    expect((await r.entries('c_x', 1, 10)).map((e) => e.seq)).toEqual([1]);
    expect(await r.entryCount('c_x')).toBe(2);
    expect(await r.entryCount('c_y')).toBe(1);
    expect((await r.outboxList()).map((o) => [o.id, [...o.wire]])).toEqual([
      ['e_1', [7, 7]],
      ['e_2', [2]],
    ]);
    await r.outboxRemove(['e_1'], [['rr:c_x:e_1', new Uint8Array([9])]]);
    expect((await r.outboxList()).map((o) => o.id)).toEqual(['e_2']);
    expect(await r.get('rr:c_x:e_1')).toEqual(new Uint8Array([9]));
    await r.put([['a', undefined]]);
    expect(await r.get('a')).toBeUndefined();
    r.close();
  });

  it('lists the outbox in the order items were queued, also within one millisecond (property)', async () => {
    // A sendMany queues its batch in one write at one time: their ids are random, the order is not.
    const batches = fc.array(
      fc.record({
        at: fc.integer({ min: 0, max: 3 }),
        ids: fc.uniqueArray(fc.integer(), { minLength: 1, maxLength: 6 }),
      }),
      { minLength: 1, maxLength: 5 },
    );
    const s = await IndexedDbLocalStore.open({
      name: 'order',
      passphrase: 'order',
      kdf,
      indexedDB: new IDBFactory(),
    });
    try {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(batches, async (bs) => {
          run++;
          const queued: string[] = [];
          let at = 1_000;
          for (const [i, b] of bs.entries()) {
            at += b.at;
            const items = b.ids.map((n) => ({
              id: `e_${run}_${i}_${n}`,
              channel: 'c_x',
              createdAt: at,
              wire: new Uint8Array([1]),
            }));
            queued.push(...items.map((x) => x.id));
            if (i % 2 === 0) await s.put([], items);
            else for (const x of items) await s.outboxAdd(x);
          }
          const listed = (await s.outboxList()).map((o) => o.id);
          await s.outboxRemove(listed);
          expect(listed).toEqual(queued);
        }),
        { numRuns: 50 },
      );
    } finally {
      s.close();
    }
  });

  it('refuses a wrong passphrase with PASSPHRASE_WRONG', async () => {
    const indexedDB = new IDBFactory();
    (await IndexedDbLocalStore.open({ name: 'd2', passphrase: 'right', kdf, indexedDB })).close();
    await expect(
      IndexedDbLocalStore.open({ name: 'd2', passphrase: 'wrong', indexedDB }),
    ).rejects.toMatchObject({
      code: 'PASSPHRASE_WRONG',
    });
  });

  it('keeps no secret in clear and refuses a value moved to another record', async () => {
    const indexedDB = new IDBFactory();
    const s = await IndexedDbLocalStore.open({ name: 'd3', passphrase: 'pw', kdf, indexedDB });
    const secret = new TextEncoder().encode('TOP-SECRET-FALLBACK-POSITION-B');
    await s.put([['secret', secret]], [{ id: 'e_9', channel: 'c_z', createdAt: 1, wire: secret }]);
    await s.appendEntries('c_z', [{ seq: 0, entry: secret }]);
    const raw = await rawValues(indexedDB, 'd3');
    expect(raw.length).toBe(3);
    for (const v of raw) expect(contains(v, new TextEncoder().encode('TOP-SECRET'))).toBe(false);

    // Copy the sealed 'secret' value under another name: it must not open there.
    const db = await new Promise<IDBDatabase>((resolve) => {
      const r = indexedDB.open('d3');
      r.onsuccess = () => resolve(r.result);
    });
    await new Promise<void>((resolve) => {
      const tx = db.transaction('kv', 'readwrite');
      tx.objectStore('kv').put(raw[0], 'moved');
      tx.oncomplete = () => resolve();
    });
    db.close();
    await expect(s.get('moved')).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    s.close();
  });

  it('a failed put writes nothing (all or nothing)', async () => {
    const indexedDB = new IDBFactory();
    const s = await IndexedDbLocalStore.open({ name: 'd4', passphrase: 'pw', kdf, indexedDB });
    await expect(
      s.put([
        ['ok', new Uint8Array([1])],
        ['bad', { not: 'bytes' } as unknown as Uint8Array],
      ]),
    ).rejects.toBeDefined();
    expect(await s.get('ok')).toBeUndefined();
    s.close();
  });
});

describe('IndexedDB local store write order', () => {
  // WebCrypto seals a write's values before its transaction is created; the seals of one write
  // can take longer than those of a later one. Channel.sendMany frees the channel once its write
  // is made (not committed): the MLS state written next must not be overwritten by this one.
  it('commits writes in the order they were called, whatever their sealing takes', async () => {
    let delayMs = 0;
    const subtle = globalThis.crypto.subtle;
    const slow = {
      getRandomValues: <T extends ArrayBufferView>(a: T) => globalThis.crypto.getRandomValues(a),
      subtle: new Proxy(subtle, {
        get(target, prop) {
          if (prop === 'encrypt') {
            return async (...args: Parameters<SubtleCrypto['encrypt']>) => {
              const d = delayMs;
              if (d > 0) await new Promise((r) => setTimeout(r, d));
              return target.encrypt(...args);
            };
          }
          const v = Reflect.get(target, prop, target);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
    } as unknown as Crypto;
    const indexedDB = new IDBFactory();
    const s = await IndexedDbLocalStore.open({
      name: 'order',
      passphrase: 'pw',
      kdf,
      indexedDB,
      crypto: slow,
    });
    const item = (id: string) => ({ id, channel: 'c_x', createdAt: 1, wire: new Uint8Array([1]) });
    // A send (MLS state with its outbox item) whose seals are slow, then the next write of the
    // same key (the next batch, or a page folded meanwhile) whose seals are quick.
    delayMs = 50;
    const first = s.put([['mls:c_x', new Uint8Array([1])]], [item('e_1')]);
    delayMs = 0;
    const second = s.put([['mls:c_x', new Uint8Array([2])]], [], undefined, 'process');
    const third = s.outboxRemove(['e_1'], [['rr:c_x:e_1', new Uint8Array([3])]]);
    await Promise.all([first, second, third]);
    expect(await s.get('mls:c_x')).toEqual(new Uint8Array([2]));
    expect(await s.outboxList()).toEqual([]);
    // A write that fails while sealing does not hold up the writes after it.
    delayMs = 20;
    const bad = s.put([['bad', { not: 'bytes' } as unknown as Uint8Array]]);
    delayMs = 0;
    const after = s.put([['mls:c_x', new Uint8Array([4])]]);
    await expect(bad).rejects.toBeDefined();
    await after;
    expect(await s.get('mls:c_x')).toEqual(new Uint8Array([4]));
    s.close();
  });
});

describe('IndexedDB local store durability', () => {
  it("asks for 'relaxed' only for what the relay serves again, 'strict' for anything with a send", async () => {
    const indexedDB = new IDBFactory();
    const s = await IndexedDbLocalStore.open({ name: 'durable', passphrase: 'pw', kdf, indexedDB });
    const asked: string[] = [];
    const transaction = IDBDatabase.prototype.transaction;
    const spy = vi.spyOn(IDBDatabase.prototype, 'transaction').mockImplementation(function (
      this: IDBDatabase,
      ...args: Parameters<IDBDatabase['transaction']>
    ) {
      if (args[1] === 'readwrite') asked.push(args[2]?.durability ?? 'default');
      return transaction.apply(this, args);
    });
    try {
      const item = { id: 'e_1', channel: 'c_x', createdAt: 1, wire: new Uint8Array([1]) };
      const page = { channel: 'c_x', entries: [{ seq: 0, entry: new Uint8Array([2]) }] };
      await s.put([['ch:c_x', new Uint8Array([1])]], [], page, 'process');
      await s.put([['ch:c_x', new Uint8Array([2])]]);
      await s.put([['mls:c_x', new Uint8Array([3])]], [item], undefined, 'process');
      await s.outboxAdd({ ...item, id: 'e_2' });
      await s.appendEntries('c_x', [{ seq: 1, entry: new Uint8Array([4]) }]);
      await s.outboxRemove(['e_1'], [['rr:c_x:e_1', new Uint8Array([5])]]);
    } finally {
      spy.mockRestore();
    }
    expect(asked).toEqual(['relaxed', 'strict', 'strict', 'strict', 'strict', 'relaxed']);
    s.close();
  });
});

describe('portable invites', () => {
  const admin = newParty({
    rootSeed: random(32),
    deviceSeed: random(32),
    partyName: 'Foreign Ministry',
    deviceName: 'admin',
    role: 'admin',
    relays: ['http://127.0.0.1:8787'],
    now: Date.now(),
  });
  const small = { N: 1 << 10, r: 8, p: 1 };

  it('opens a CLI invite in the browser format and the reverse', async () => {
    const code = newInviteCode();
    const fromCli = await openInviteWith(JSON.parse(JSON.stringify(sealInvite(admin, code, small))), code);
    expect(fromCli.device).toBe(admin.device);
    const code2 = newInviteCodeWith(random);
    expect(code2).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    const file = await sealInviteWith(admin, code2, random, small);
    expect(openInvite(JSON.parse(JSON.stringify(file)), code2.toLowerCase()).party).toBe(admin.party);
  });

  it('refuses a wrong code and a non-invite with INVITE_INVALID', async () => {
    const file = await sealInviteWith(admin, 'AAAA-BBBB-CCCC-DDDD', random, small);
    await expect(openInviteWith(file, 'AAAA-BBBB-CCCC-DDDE')).rejects.toMatchObject({
      code: 'INVITE_INVALID',
    });
    await expect(openInviteWith({ kind: 'x' }, 'A')).rejects.toMatchObject({ code: 'INVITE_INVALID' });
    await expect(openInviteWith(null, 'A')).rejects.toMatchObject({ code: 'INVITE_INVALID' });
  });
});
