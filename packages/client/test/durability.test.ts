/**
 * Local-store durability (storage.ts Durability): what the relay serves again is committed
 * without waiting for the disk, yet survives kill -9; sends, checkpoints and evidence are on disk.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { describe as describeRecord, statusOf } from '../src/cli/commands/watch.ts';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { keys } from '../src/sdk/channel-record.ts';
import { ClientError } from '../src/sdk/errors.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';
import { inlineWrites, threadWrites } from '../src/sdk/sqlite-writes.node.ts';
import type { Durability, LocalStore } from '../src/sdk/storage.ts';
import { inProcessRelay, messageTexts, openChannel, RELAY_URL } from './in-process.ts';

const kdf = { N: 1 << 10, r: 8, p: 1 };
const tmp = () => join(mkdtempSync(join(tmpdir(), 'bc-durable-')), 'device.db');
const bytes = (...b: number[]) => new Uint8Array(b);

describe.each([
  ['on the event loop', false],
  ['on a writer thread', true],
])('local store durability, writes %s', (_, writerThread) => {
  it('round-trips records, entries and outbox items across a reopen', async () => {
    const path = tmp();
    const s = SqliteLocalStore.open({ path, passphrase: 'pw', kdf, writerThread });
    await s.put([
      ['a', bytes(1, 2, 3)],
      ['b', bytes(4)],
    ]);
    await s.appendEntries('c_x', [
      { seq: 0, entry: bytes(9) },
      { seq: 1, entry: bytes(8) },
    ]);
    await s.put([], [], { channel: 'c_x', entries: [{ seq: 2, entry: bytes(6) }] }, 'process');
    await s.outboxAdd({ id: 'e_1', channel: 'c_x', createdAt: 5, wire: bytes(7, 7) });
    // The same id again keeps its first row (INSERT OR IGNORE).
    await s.outboxAdd({ id: 'e_1', channel: 'c_x', createdAt: 6, wire: bytes(1) });
    expect((await s.outboxList()).map((o) => [...o.wire])).toEqual([[7, 7]]);
    s.close();
    const r = SqliteLocalStore.open({ path, passphrase: 'pw', writerThread });
    expect(await r.get('a')).toEqual(bytes(1, 2, 3));
    expect((await r.entries('c_x', 0, 10)).map((e) => e.seq)).toEqual([0, 1, 2]);
    expect((await r.outboxList()).map((o) => [...o.wire])).toEqual([[7, 7]]);
    await r.outboxRemove(['e_1'], [['rr:c_x:e_1', bytes(9)]]);
    expect(await r.outboxList()).toEqual([]);
    expect(await r.get('rr:c_x:e_1')).toEqual(bytes(9));
    await r.put([['a', undefined]]);
    expect(await r.get('a')).toBeUndefined();
    r.close();
  });

  it("commits 'process' writes with synchronous=NORMAL, everything else (and any send) with FULL", async () => {
    const s = SqliteLocalStore.open({ path: tmp(), passphrase: 'pw', kdf, writerThread });
    await s.put([['a', bytes(1)]], [], undefined, 'process');
    expect(s.synchronous).toBe('NORMAL');
    await s.put([['b', bytes(2)]]);
    expect(s.synchronous).toBe('FULL');
    // An outbox item is a send: on disk even when the caller asked for less.
    await s.put(
      [['c', bytes(3)]],
      [{ id: 'e_1', channel: 'c_x', createdAt: 1, wire: bytes(7) }],
      undefined,
      'process',
    );
    expect(s.synchronous).toBe('FULL');
    await s.outboxRemove(['e_1'], [['rr:c_x:e_1', bytes(9)]]);
    expect(s.synchronous).toBe('NORMAL');
    await s.appendEntries('c_x', [{ seq: 0, entry: bytes(5) }]);
    expect(s.synchronous).toBe('FULL');
    s.close();
  });

  it("keeps a 'process' write when its process is killed with SIGKILL right after it", () => {
    const path = tmp();
    const script = join(mkdtempSync(join(tmpdir(), 'bc-durable-child-')), 'child.mts');
    const store = fileURLToPath(new URL('../src/sdk/sqlite.node.ts', import.meta.url));
    writeFileSync(
      script,
      `import { SqliteLocalStore } from ${JSON.stringify(store)};
const s = SqliteLocalStore.open({ path: ${JSON.stringify(path)}, passphrase: 'pw', kdf: ${JSON.stringify(kdf)}, writerThread: ${writerThread} });
await s.put([['before', new Uint8Array([1])]]);
await s.put([['page', new Uint8Array([2, 3])]], [], { channel: 'c_x', entries: [{ seq: 0, entry: new Uint8Array([4]) }] }, 'process');
await s.outboxRemove([], [['rr:c_x:e_1', new Uint8Array([5])]]);
process.kill(process.pid, 'SIGKILL');
`,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.signal).toBe('SIGKILL');
    const s = SqliteLocalStore.open({ path, passphrase: 'pw', writerThread });
    return (async () => {
      expect(await s.get('before')).toEqual(bytes(1));
      expect(await s.get('page')).toEqual(bytes(2, 3));
      expect((await s.entries('c_x', 0, 10)).map((e) => [...e.entry])).toEqual([[4]]);
      expect(await s.get('rr:c_x:e_1')).toEqual(bytes(5));
      s.close();
    })();
  });
});

describe('channel writes', () => {
  it('writes received pages for the relay to serve again, and sends and checked checkpoints on disk', async () => {
    const w = inProcessRelay('bc-durable-relay-');
    const seen: Array<{ durability: Durability; outbox: number; entries: number; keys: string[] }> = [];
    const recording = (inner: LocalStore): LocalStore =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop !== 'put') {
            const v = Reflect.get(target, prop, receiver);
            return typeof v === 'function' ? v.bind(target) : v;
          }
          return (
            records: Parameters<LocalStore['put']>[0],
            outbox: Parameters<LocalStore['put']>[1] = [],
            entries?: Parameters<LocalStore['put']>[2],
            durability: Durability = 'disk',
          ) => {
            seen.push({
              durability,
              outbox: outbox.length,
              entries: entries?.entries.length ?? 0,
              keys: records.map(([k]) => k.split(':')[0] as string),
            });
            return target.put(records, outbox, entries, durability);
          };
        },
      });
    const store = recording(
      SqliteLocalStore.open({ path: join(w.dir, 'b', 'device.db'), passphrase: 'b', kdf }),
    );
    const a = await w.device('a');
    const b = await w.device('b', { store });
    const { chA, chB } = await openChannel(a, b);
    seen.length = 0;
    await chA.send({ kind: 'message', text: 'one' } as DraftEvent);
    await chA.send({ kind: 'message', text: 'two' } as DraftEvent);
    await a.outbox.flush();
    await chB.sync();
    const pages = seen.filter((s) => s.entries > 0);
    expect(pages.length).toBeGreaterThan(0);
    for (const p of pages) expect(p.durability).toBe('process');
    // The checkpoint the page was checked against is recorded on disk once verified.
    const checkpointWrites = seen.filter((s) => s.entries === 0 && s.outbox === 0 && s.keys.includes('ch'));
    expect(checkpointWrites.map((s) => s.durability)).toContain('disk');
    // B's own sends (its delivery receipts) carry outbox items: on disk.
    await chB.send({ kind: 'message', text: 'back' } as DraftEvent);
    const sends = seen.filter((s) => s.outbox > 0);
    expect(sends.length).toBeGreaterThan(0);
    for (const s of sends) expect(s.durability).toBe('disk');
    a.close();
    b.close();
  });
});

describe('sendMany on a writer-thread store', () => {
  it("keeps the last batch's MLS state on disk when batches overlap their commits", async () => {
    const w = inProcessRelay('bc-durable-batches-');
    const path = join(w.dir, 'a', 'device.db');
    const a = await w.device('a', {
      store: SqliteLocalStore.open({ path, passphrase: 'a', kdf, writerThread: true }),
    });
    const b = await w.device('b');
    const { chA } = await openChannel(a, b);
    // Not awaited one by one: each frees the channel once its write is made.
    const batches = [0, 1, 2, 3].map((n) =>
      chA.sendMany([
        { kind: 'message', text: `m${n}a` } as DraftEvent,
        { kind: 'message', text: `m${n}b` } as DraftEvent,
      ]),
    );
    await Promise.all(batches);
    const inMemory = chA.group?.exportState();
    expect(await a.store.get(keys.mls(chA.id))).toEqual(inMemory);
    expect((await a.store.outboxList()).length).toBeGreaterThanOrEqual(8);
    a.close();
    b.close();
  });
});

describe('a failed write', () => {
  it('of a received page leaves the channel refusing to go on; reopened, it fetches the page again', async () => {
    const w = inProcessRelay('bc-durable-failed-');
    const path = join(w.dir, 'b', 'device.db');
    let failPages = false;
    // The store refuses writes that carry transcript entries (a full disk, a dead writer thread).
    const failing = (inner: LocalStore): LocalStore =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop === 'put') {
            return (...args: Parameters<LocalStore['put']>) =>
              failPages && args[2] !== undefined
                ? Promise.reject(new ClientError('STORE_FAILED', 'disk full'))
                : target.put(...args);
          }
          const v = Reflect.get(target, prop, receiver);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    const a = await w.device('a');
    const b = await w.device('b', { store: failing(SqliteLocalStore.open({ path, passphrase: 'b', kdf })) });
    const { chA, chB } = await openChannel(a, b);
    await chA.send({ kind: 'message', text: 'kept' } as DraftEvent);
    await a.outbox.flush();
    failPages = true;
    await expect(chB.sync()).rejects.toMatchObject({ code: 'STORE_FAILED' });
    failPages = false;
    // Going on would write the channel record past the page that was never stored (the next
    // sync starts after it; a send writes the record): both are refused.
    await expect(chB.sync()).rejects.toMatchObject({ code: 'STORE_FAILED' });
    await expect(chB.send({ kind: 'message', text: 'after' } as DraftEvent)).rejects.toMatchObject({
      code: 'STORE_FAILED',
    });
    b.close();
    const again = await w.device('b', { store: SqliteLocalStore.open({ path, passphrase: 'b', kdf }) });
    const ch = await again.channel(chB.id);
    await ch.sync();
    const texts = messageTexts(ch);
    expect(texts).toContain('kept');
    expect(await again.store.entryCount(ch.id)).toBe(ch.record.nextSeq);
    a.close();
    again.close();
  });
  it('of a verified checkpoint leaves it out of the channel record (a later page write, without an fsync, would carry it)', async () => {
    const w = inProcessRelay('bc-durable-failed-cp-');
    let failCheckpoint = false;
    const failing = (inner: LocalStore): LocalStore =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop === 'put') {
            return (...args: Parameters<LocalStore['put']>) =>
              failCheckpoint && args[2] === undefined && args[0].some(([k]) => k.startsWith('ch:'))
                ? Promise.reject(new ClientError('STORE_FAILED', 'disk full'))
                : target.put(...args);
          }
          const v = Reflect.get(target, prop, receiver);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    const a = await w.device('a');
    const b = await w.device('b', {
      store: failing(SqliteLocalStore.open({ path: join(w.dir, 'b', 'device.db'), passphrase: 'b', kdf })),
    });
    const { chA, chB } = await openChannel(a, b);
    await chA.send({ kind: 'message', text: 'one' } as DraftEvent);
    await a.outbox.flush();
    const before = chB.record.checkpointSize;
    failCheckpoint = true;
    await expect(chB.sync()).rejects.toMatchObject({ code: 'STORE_FAILED' });
    expect(chB.record.checkpointSize).toBe(before);
    failCheckpoint = false;
    await chB.sync();
    expect(chB.record.checkpointSize).toBe(chB.record.nextSeq);
    a.close();
    b.close();
  });
});

describe('writes on the event loop', () => {
  it('answer a failed write with STORE_FAILED (as the writer thread does) and go on with the next', async () => {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'pw', kdf }).close();
    const db = new Database(path);
    const w = inlineWrites(db);
    const bad = [['kvPut', ['k', {} as unknown as Uint8Array]]] as const;
    await expect(w.run(bad, 'FULL')).rejects.toMatchObject({ code: 'STORE_FAILED' });
    await expect(w.run([['kvDelete', ['k']]], 'NORMAL')).resolves.toEqual({
      changes: [0],
      synchronous: 'NORMAL',
    });
    db.close();
  });
});

describe('writer thread', () => {
  it('answers a failed write with STORE_FAILED and goes on with the next', async () => {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'pw', kdf }).close();
    const w = threadWrites(path);
    // An object cannot be bound to a statement parameter: this transaction fails on the thread.
    const bad = [['kvPut', ['k', {} as unknown as Uint8Array]]] as const;
    await expect(w.run(bad, 'FULL')).rejects.toMatchObject({ code: 'STORE_FAILED' });
    await expect(w.run([['kvDelete', ['k']]], 'NORMAL')).resolves.toEqual({
      changes: [0],
      synchronous: 'NORMAL',
    });
    w.close();
    await expect(w.run([['kvDelete', ['k']]], 'FULL')).rejects.toMatchObject({ code: 'STORE_FAILED' });
  });
});

describe('a device store restored from an older copy', () => {
  it('does not send with a sender ratchet it already used: it refreshes its leaf first, and the message is readable', async () => {
    const w = inProcessRelay('bc-durable-restored-');
    const a = await w.device('a');
    const b = await w.device('b');
    const { chA, chB } = await openChannel(a, b);
    const id = chB.id;
    b.close();
    const home = join(w.dir, 'b');
    const copy = join(w.dir, 'b-copy');
    cpSync(home, copy, { recursive: true });
    // B sends twice after the copy was taken...
    const b2 = await w.device('b');
    const ch2 = await b2.channel(id);
    await ch2.sync();
    await ch2.send({ kind: 'message', text: 'sent after the copy, 1' } as DraftEvent);
    await ch2.send({ kind: 'message', text: 'sent after the copy, 2' } as DraftEvent);
    await b2.outbox.flush();
    b2.close();
    // ...then its home is restored from the copy: its MLS state is back before those two sends.
    rmSync(home, { recursive: true });
    cpSync(copy, home, { recursive: true });
    const b3 = await w.device('b');
    const ch3 = await b3.channel(id);
    const synced = await ch3.sync();
    // Its own two sends come back, and it holds no record of either.
    const lost = synced.filter((r) => r.status === 'unreadable' && r.code === 'OWN_MESSAGE_LOST');
    expect(lost).toHaveLength(2);
    await ch3.send({ kind: 'message', text: 'sent after the restore' } as DraftEvent);
    await b3.outbox.flush();
    await chA.sync();
    const texts = messageTexts(chA);
    // Encrypted with the ratchet generation the first send after the copy used, the message
    // would reuse its key and nonce, and A could not read it.
    expect(texts).toEqual(['sent after the copy, 1', 'sent after the copy, 2', 'sent after the restore']);
    a.close();
    b3.close();
  });

  it('that lost its own commit says so, refuses to send with CHANNEL_STATE_LOST, and is replaced by a new device', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-restored-');
    const a = await w.device('a', { now: () => Date.now() + offset });
    let offset = 0;
    const b = await w.device('b');
    const { chA, chB } = await openChannel(a, b);
    const id = chB.id;
    b.close();
    const home = join(w.dir, 'b');
    const copy = join(w.dir, 'b-copy');
    cpSync(home, copy, { recursive: true });
    // After the copy, B refreshes its leaf (a commit of its own) and sends in the new epoch.
    const b2 = await w.device('b');
    const ch2 = await b2.channel(id);
    await ch2.sync();
    const epoch = ch2.group?.epoch as number;
    await ch2.selfUpdate();
    await ch2.send({ kind: 'message', text: 'after the leaf refresh' } as DraftEvent);
    await b2.outbox.flush();
    b2.close();
    rmSync(home, { recursive: true });
    cpSync(copy, home, { recursive: true });
    const b3 = await w.device('b');
    const ch3 = await b3.channel(id);
    const synced = await ch3.sync();
    const lostCommit = synced.filter((r) => r.status === 'handshake');
    expect(lostCommit.map((r) => r.code)).toEqual(['OWN_COMMIT_LOST']);
    expect(ch3.record.lostAtEpoch).toBe(epoch);
    // `log` and `watch` say what the code means.
    expect(describeRecord(lostCommit[0] as (typeof synced)[number])).toContain(
      'it can no longer read or post here',
    );
    // It says what happened and what to do, instead of the relay's EPOCH_STALE.
    const refused = await ch3.send({ kind: 'message', text: 'x' } as DraftEvent).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ClientError);
    expect(refused).toMatchObject({ code: 'CHANNEL_STATE_LOST' });
    expect((refused as ClientError).message).toContain(`older than its own commit there (epoch ${epoch})`);
    expect((refused as ClientError).message).toContain(`backchannel device revoke ${b3.identity.device}`);
    // `backchannel status` says it too.
    expect(statusOf(ch3, Date.now()).stateLost).toBe((refused as ClientError).message);
    // Reopened, it still knows (the record is on disk).
    b3.close();
    const b4 = await w.device('b');
    await expect(
      (await b4.channel(id)).send({ kind: 'message', text: 'x' } as DraftEvent),
    ).rejects.toMatchObject({
      code: 'CHANNEL_STATE_LOST',
    });

    // What the message advises: a new device for the party, and this one revoked. B has no other
    // device in the channel, so A's next device-list read re-seats B onto the new one.
    const desk = await b4.addDevice('desk 2', 'principal');
    const n = await w.device('n');
    await n.enroll(desk);
    await b4.revokeDevice(b4.identity.device, 'store restored from an older copy');
    offset = 61_000;
    await a.syncAll();
    expect(a.added).toEqual([{ channel: id, devices: [desk.device] }]);
    expect(await n.checkInbox()).toEqual([id]);
    const chN = await n.channel(id);
    await chN.sync();
    await chN.send({ kind: 'message', text: 'the new desk is on the line' } as DraftEvent);
    await n.outbox.flush();
    await chA.sync();
    expect(messageTexts(chA)).toEqual(['after the leaf refresh', 'the new desk is on the line']);
    a.close();
    b4.close();
    n.close();
  });
});

/** A device whose envelope posts fail before they reach the relay while `cut.on`. */
const postsCut = (w: ReturnType<typeof inProcessRelay>, cut: { on: boolean }) => ({
  fetch: async (input: string, init: RequestInit) => {
    if (cut.on && init.method === 'POST' && input.endsWith('/envelopes')) throw new TypeError('fetch failed');
    return w.fetch(input, init);
  },
});

/**
 * A device's store, opened again, that refuses the writes `stops` picks as a stopped process
 * would not have made them (every other write goes through).
 */
function storeThatStops(
  w: ReturnType<typeof inProcessRelay>,
  name: string,
  stops: (...args: Parameters<LocalStore['put']>) => boolean,
): LocalStore {
  const store = SqliteLocalStore.open({
    path: join(w.dir, name, 'device.db'),
    passphrase: name,
    kdf: { N: 1 << 10, r: 8, p: 1 },
  });
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'put')
        return (...args: Parameters<LocalStore['put']>) => {
          if (stops(...args)) throw new Error('the process stopped');
          return target.put(...args);
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/**
 * A later process of device a sends the join.context an earlier one owed the minister: it is
 * no longer owed, and the minister joins, knows the channel is open, and got it once.
 */
async function laterProcessDiscloses(
  w: ReturnType<typeof inProcessRelay>,
  m: Awaited<ReturnType<ReturnType<typeof inProcessRelay>['device']>>,
  channel: string,
): Promise<void> {
  const a3 = await w.device('a');
  await a3.syncAll();
  expect(await a3.store.keys('owed:')).toEqual([]);
  await a3.outbox.flush();
  expect(await m.checkInbox()).toEqual([channel]);
  const chM = await m.channel(channel);
  await chM.sync();
  expect(chM.view.state.lifecycle).toBe('open');
  expect(chM.view.timeline.filter((r) => 'event' in r && r.event.kind === 'join.context')).toHaveLength(1);
  a3.close();
}

describe('a commit the relay accepted whose answer never came', () => {
  const dropping = (state: { on: boolean }) => ({
    wrap: async (input: string, init: RequestInit, res: Response) => {
      if (state.on && init.method === 'POST' && input.endsWith('/envelopes'))
        throw new TypeError('fetch failed');
      return res;
    },
  });

  it('is adopted by the next sync, after a restart too: the device does not fall behind its own commit', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const a = await w.device('a');
    const drop = { on: false };
    const b = await w.device('b', dropping(drop));
    const { chA, chB } = await openChannel(a, b);
    const epoch = chB.group?.epoch as number;
    drop.on = true;
    await expect(chB.selfUpdate()).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    drop.on = false;
    // The relay took it: the channel is at the next epoch.
    b.close();
    const b2 = await w.device('b');
    const ch2 = await b2.channel(chB.id);
    expect(ch2.group?.epoch).toBe(epoch);
    const synced = await ch2.sync();
    expect(synced.filter((r) => r.status === 'handshake').map((r) => r.code)).toEqual(['COMMIT_APPLIED']);
    expect(ch2.group?.epoch).toBe(epoch + 1);
    expect(await b2.store.keys('pending:')).toEqual([]);
    await ch2.send({ kind: 'message', text: 'after the unanswered commit' } as DraftEvent);
    await b2.outbox.flush();
    await chA.sync();
    expect(messageTexts(chA)).toEqual(['after the unanswered commit']);
    a.close();
    b2.close();
  });

  it('is adopted in the same process, even when the endpoint failed over to refused it (a refusal need not mean it is not in the log)', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const a = await w.device('a');
    const drop = { on: false };
    // The first endpoint takes the commit and loses the answer; the second one refuses (429).
    const b = await w.device('b', {
      relays: [RELAY_URL, 'http://relay-2.test'],
      wrap: async (input, init, res) => {
        if (drop.on && init.method === 'POST' && input.endsWith('/envelopes')) {
          if (input.startsWith(RELAY_URL)) throw new TypeError('fetch failed');
          return new Response(JSON.stringify({ error: { code: 'RATE_LIMITED', message: 'slow down' } }), {
            status: 429,
            headers: { 'content-type': 'application/json', 'retry-after': '1' },
          });
        }
        return res;
      },
    });
    const { chA, chB } = await openChannel(a, b);
    const epoch = chB.group?.epoch as number;
    drop.on = true;
    await expect(chB.selfUpdate()).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    drop.on = false;
    expect(chB.group?.epoch).toBe(epoch);
    const synced = await chB.sync();
    expect(synced.filter((r) => r.status === 'handshake').map((r) => r.code)).toEqual(['COMMIT_APPLIED']);
    expect(chB.record.lostAtEpoch).toBe(-1);
    expect(await b.store.keys('pending:')).toEqual([]);
    await chB.send({ kind: 'message', text: 'after the refused retry' } as DraftEvent);
    await b.outbox.flush();
    await chA.sync();
    expect(messageTexts(chA)).toEqual(['after the refused retry']);
    a.close();
    b.close();
  });

  it('that never reached the relay is deleted once another commit takes its epoch', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const a = await w.device('a');
    const cut = { on: false };
    const b = await w.device('b', postsCut(w, cut));
    const { chA, chB } = await openChannel(a, b);
    cut.on = true;
    await expect(chB.selfUpdate()).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    cut.on = false;
    // Its state (the next epoch's secrets) waits on disk for the commit to show up...
    expect(await b.store.keys('pending:')).toHaveLength(1);
    await chA.selfUpdate();
    await chB.sync();
    // ...and goes once A's commit took that epoch.
    expect(await b.store.keys('pending:')).toEqual([]);
    expect(chB.group?.epoch).toBe(chA.group?.epoch);
    a.close();
    b.close();
  });

  it('that never reached the relay is settled by a leaf refresh after the next sync, found by a later process', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const a = await w.device('a');
    const cut = { on: false };
    const b = await w.device('b', postsCut(w, cut));
    const { chA, chB } = await openChannel(a, b);
    const epoch = chB.group?.epoch as number;
    cut.on = true;
    await expect(chB.selfUpdate()).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    b.close();
    // A later process: the sync finds no such commit in the log, so a refresh moves the group on
    // and the stored state (next-epoch secrets of a commit nobody has) goes with it.
    const b2 = await w.device('b');
    expect(await b2.store.keys('pending:')).toHaveLength(1);
    await b2.syncAll();
    expect(await b2.store.keys('pending:')).toEqual([]);
    const ch2 = await b2.channel(chB.id);
    expect(ch2.group?.epoch).toBe(epoch + 1);
    await ch2.send({ kind: 'message', text: 'after the settled commit' } as DraftEvent);
    await b2.outbox.flush();
    await chA.sync();
    expect(messageTexts(chA)).toEqual(['after the settled commit']);
    a.close();
    b2.close();
  });

  it('that opened an outreach is adopted without welcoming the other party to a channel with no outreach', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const drop = { on: false };
    const a = await w.device('a', dropping(drop));
    const b = await w.device('b');
    await a.createParty({ partyName: 'A', deviceName: 'a', relays: [RELAY_URL] });
    const B = await b.createParty({
      partyName: 'B',
      deviceName: 'b',
      role: 'principal',
      relays: [RELAY_URL],
    });
    drop.on = true;
    await expect(a.outreach(B.party, 'hello')).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    drop.on = false;
    const [id] = await a.channelIds();
    const ch = await a.channel(id as string);
    const synced = await ch.sync();
    expect(synced.map((r) => r.code)).toEqual(['COMMIT_APPLIED']);
    await a.outbox.flush();
    expect(await b.checkInbox()).toEqual([]);
    a.close();
    b.close();
  });

  it('that opened an outreach and never reached the relay is dropped by a later sync, and the outreach can be made again', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const cut = { on: false };
    const a = await w.device('a', postsCut(w, cut));
    const b = await w.device('b');
    await a.createParty({ partyName: 'A', deviceName: 'a', relays: [RELAY_URL] });
    const B = await b.createParty({
      partyName: 'B',
      deviceName: 'b',
      role: 'principal',
      relays: [RELAY_URL],
    });
    cut.on = true;
    await expect(a.outreach(B.party, 'hello')).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    cut.on = false;
    const [id] = await a.channelIds();
    // In this process its answer may still come: the channel is left alone, and the rest syncs.
    await a.syncAll();
    expect(a.dropped).toEqual([]);
    expect(await a.channelIds()).toEqual([id]);
    a.close();
    // A later process at once: the answer may still be on its way (a process killed right after
    // posting); the channel is left alone.
    const soon = await w.device('a');
    await soon.syncAll();
    expect(soon.dropped).toEqual([]);
    expect(await soon.channelIds()).toEqual([id]);
    soon.close();
    // A minute later, the relay has no such channel: nothing was sent; it is dropped.
    const a2 = await w.device('a', { now: () => Date.now() + 61_000 });
    await a2.syncAll();
    expect(a2.dropped).toEqual([id]);
    expect(await a2.channelIds()).toEqual([]);
    expect(await a2.store.keys(`pending:${id}`)).toEqual([]);
    await a2.syncAll();
    const again = await a2.outreach(B.party, 'hello again');
    expect(await b.checkInbox()).toEqual([again.id]);
    a2.close();
    b.close();
  });

  it('refused for the role of the device is refused before anything is claimed, and leaves no channel behind', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const a = await w.device('a');
    const b = await w.device('b');
    await a.createParty({ partyName: 'A', deviceName: 'a', relays: [RELAY_URL] });
    const B = await b.createParty({
      partyName: 'B',
      deviceName: 'b',
      role: 'principal',
      relays: [RELAY_URL],
    });
    const invite = await a.addDevice('staff', 'staff');
    const claims: string[] = [];
    const staff = await w.device('staff', {
      wrap: async (input, _init, res) => {
        if (input.includes('/claim')) claims.push(input);
        return res;
      },
    });
    await staff.enroll(invite);
    await expect(staff.outreach(B.party, 'hello')).rejects.toMatchObject({
      code: 'EVENT_REJECTED',
      cause_code: 'ROLE_FORBIDDEN',
      message: expect.stringContaining('admin or principal'),
    });
    expect(claims).toEqual([]);
    expect(await staff.channelIds()).toEqual([]);
    await staff.syncAll();
    a.close();
    b.close();
    staff.close();
  });

  it('that adds a device: its Welcome is sent once the commit is adopted, and the device joins', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const drop = { on: false };
    const a = await w.device('a', dropping(drop));
    const b = await w.device('b');
    const { chA } = await openChannel(a, b);
    const minister = await a.addDevice('minister', 'principal');
    const m = await w.device('m');
    await m.enroll(minister);
    drop.on = true;
    await expect(a.syncAll()).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    drop.on = false;
    a.close();
    const a2 = await w.device('a');
    await a2.syncAll();
    // The commit that added the minister was adopted, not made again.
    expect(a2.added).toEqual([]);
    await a2.outbox.flush();
    expect(await m.checkInbox()).toEqual([chA.id]);
    const chM = await m.channel(chA.id);
    await chM.sync();
    // The adder's join.context came too: the minister knows the channel is open.
    expect(chM.view.state.lifecycle).toBe('open');
    await chM.send({ kind: 'message', text: 'the minister is on the line' } as DraftEvent);
    await m.outbox.flush();
    const chB = await b.channel(chA.id);
    await chB.sync();
    expect(messageTexts(chB)).toEqual(['the minister is on the line']);
    a2.close();
    b.close();
    m.close();
  });

  it('answered, that adds a device: the join.context it owes is sent by a later process when the first stopped before sending it', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    // The adding process stops right after the commit's answer is written: every later write
    // that queues a send (the join.context) fails as the stop would.
    const stop = { on: false };
    const a = await w.device('a');
    const b = await w.device('b');
    const { chA } = await openChannel(a, b);
    const minister = await a.addDevice('minister', 'principal');
    const m = await w.device('m');
    await m.enroll(minister);
    a.close();
    // The commit's own write (the Welcome, with the MLS state) goes; the join.context's not.
    const stopping = storeThatStops(
      w,
      'a',
      (records, outbox, entries) =>
        stop.on &&
        entries === undefined &&
        (outbox?.length ?? 0) > 0 &&
        records.some(([k]) => k.startsWith('own:')),
    );
    const a2 = await w.device('a', { store: stopping });
    stop.on = true;
    await expect(a2.syncAll()).rejects.toThrow('the process stopped');
    expect(a2.added).toEqual([]);
    expect(await a2.store.keys('owed:')).toHaveLength(1);
    a2.close();
    await laterProcessDiscloses(w, m, chA.id);
    b.close();
    m.close();
  });

  it('that adds a device: the join.context it owes is sent by a later process when the one that adopted it stopped first', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-durable-pending-');
    const drop = { on: false };
    const a = await w.device('a', dropping(drop));
    const b = await w.device('b');
    const { chA } = await openChannel(a, b);
    const minister = await a.addDevice('minister', 'principal');
    const m = await w.device('m');
    await m.enroll(minister);
    drop.on = true;
    await expect(a.syncAll()).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    drop.on = false;
    a.close();
    // The next process adopts the commit (page written, Welcome queued) and stops before the
    // join.context is queued: its store refuses every later write that queues a send.
    const stopping = storeThatStops(
      w,
      'a',
      (_records, outbox, entries) => entries === undefined && (outbox?.length ?? 0) > 0,
    );
    const a2 = await w.device('a', { store: stopping });
    await expect(a2.syncAll()).rejects.toThrow('the process stopped');
    expect(await a2.store.keys('owed:')).toHaveLength(1);
    a2.close();
    await laterProcessDiscloses(w, m, chA.id);
    b.close();
    m.close();
  });
});
