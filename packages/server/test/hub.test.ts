/** The WebSocket hub with fake sockets: backpressure, catch-up from the store, dropping slow subscribers. */
import { type ChannelId, signRequest, toBase64url } from '@backchannel/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { HubSocket } from '../src/ws/hub.ts';
import {
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  suite,
  type TestDevice,
  type TestRelay,
  testRelay,
} from './helpers.ts';

class FakeSocket implements HubSocket {
  readonly sent: Array<{ type: string; seq?: number; code?: string; channel?: string }> = [];
  bufferedAmount = 0;
  closed: { code: number; reason: string } | undefined;
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }
  seqs(): number[] {
    return this.sent.filter((f) => f.type === 'entry').map((f) => f.seq as number);
  }
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await tick(5);
  }
}

let r: TestRelay;
afterEach(() => r.close());

async function setup(ws: Partial<{ highWaterBytes: number; maxBufferedBytes: number; dropAfterMs: number }>) {
  r = await testRelay('sqlite', { ws });
  const A = makeParty('A');
  const a = makeDevice(A, 'a', 'admin');
  const a2 = makeDevice(A, 'a2', 'staff');
  await r.caller.publishParty(A, [a, a2]);
  const ch = newChannel();
  await r.caller.append(a, commit(a, ch, 0, [a2]));
  return { a, a2, ch };
}

/** A socket authenticated as `dev`, subscribed to nothing yet. */
async function authed(dev: TestDevice) {
  const sock = new FakeSocket();
  const conn = r.core.hub.attach(sock);
  const time = Date.now();
  conn.onMessage(
    JSON.stringify({
      type: 'auth',
      device: dev.device,
      time,
      sig: toBase64url(
        signRequest(dev.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), r.core.signer.name, suite),
      ),
    }),
  );
  await until(() => sock.sent.some((f) => f.type === 'ready'));
  return { sock, conn };
}

async function connect(dev: TestDevice, channel: ChannelId, from = 0) {
  const { sock, conn } = await authed(dev);
  conn.onMessage(JSON.stringify({ type: 'subscribe', channel, from }));
  await until(() => sock.sent.some((f) => f.type === 'subscribed'));
  return { sock, conn };
}

describe('hub backpressure', () => {
  it('pauses a subscriber whose socket is backed up, then catches it up from the store with no gap', async () => {
    const { a, a2, ch } = await setup({ highWaterBytes: 10_000 });
    const { sock } = await connect(a2, ch);
    await until(() => sock.seqs().length === 1);
    sock.bufferedAmount = 50_000;
    for (let i = 0; i < 20; i++) expect((await r.caller.append(a, envelope(a, ch))).status).toBe(201);
    await tick(50);
    expect(sock.seqs()).toEqual([0]);
    sock.bufferedAmount = 0;
    await until(() => sock.seqs().length === 21);
    expect(sock.seqs()).toEqual(Array.from({ length: 21 }, (_, i) => i));
    // and it is live again
    await r.caller.append(a, envelope(a, ch));
    await until(() => sock.seqs().length === 22);
    expect(sock.closed).toBeUndefined();
  });

  it('drops a subscriber whose buffer passes the hard cap (close 4429), without slowing writers', async () => {
    const { a, a2, ch } = await setup({ highWaterBytes: 10_000, maxBufferedBytes: 100_000 });
    const { sock } = await connect(a2, ch);
    sock.bufferedAmount = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) expect((await r.caller.append(a, envelope(a, ch))).status).toBe(201);
    expect(performance.now() - t0).toBeLessThan(2_000);
    await until(() => sock.closed !== undefined);
    expect(sock.closed?.code).toBe(4429);
    const metrics = await r.core.metrics.registry.getSingleMetricAsString('bc_ws_dropped_slow_total');
    expect(metrics).toMatch(/bc_ws_dropped_slow_total 1/);
  });

  it('drops a subscriber that stays behind longer than dropAfterMs', async () => {
    const { a, a2, ch } = await setup({ highWaterBytes: 10_000, dropAfterMs: 100 });
    const { sock } = await connect(a2, ch);
    sock.bufferedAmount = 20_000;
    await r.caller.append(a, envelope(a, ch));
    await until(() => sock.closed !== undefined);
    expect(sock.closed?.code).toBe(4429);
  });

  it('subscribing from the future waits for the log to get there', async () => {
    const { a, a2, ch } = await setup({});
    const { sock } = await connect(a2, ch, 3);
    for (let i = 0; i < 4; i++) await r.caller.append(a, envelope(a, ch));
    await until(() => sock.seqs().length === 2);
    expect(sock.seqs()).toEqual([3, 4]);
  });

  it('a member subscribed from the future is ended by its removal, below where it asked to start', async () => {
    const { a, a2, ch } = await setup({});
    // The log holds 1 entry; a2 asks to start at 3, then is removed at seq 1.
    const { sock } = await connect(a2, ch, 3);
    const removal = await r.caller.append(a, commit(a, ch, 1, [], [a2]));
    expect(removal.body.seq).toBe(1);
    for (let i = 0; i < 4; i++)
      expect((await r.caller.append(a, envelope(a, ch, { epoch: 2 }))).status).toBe(201);
    await until(() => sock.sent.some((f) => f.type === 'unsubscribed'));
    expect(sock.sent.find((f) => f.type === 'unsubscribed')?.code).toBe('NOT_A_MEMBER');
    await tick(50);
    // Nothing past the removal: no entry, no checkpoint (the log reached 6).
    expect(sock.seqs()).toEqual([]);
    expect(sock.sent.filter((f) => f.type === 'checkpoint')).toEqual([]);
  });

  it('a removal logged while the catch-up of a subscriber from the future reads its page still ends it', async () => {
    const { a, a2, ch } = await setup({});
    // The hub's second read (the subscription's first catch-up page) is held until a2 is removed.
    const store = r.core.store;
    const read = store.read.bind(store);
    let reads = 0;
    let release: (() => void) | undefined;
    const held = new Promise<void>((res) => {
      release = res;
    });
    let holding = false;
    store.read = (async (fn: Parameters<typeof store.read>[0]) => {
      const out = await read(fn);
      if (++reads === 2) {
        holding = true;
        await held;
      }
      return out;
    }) as typeof store.read;
    const { sock, conn } = await authed(a2);
    reads = 0;
    conn.onMessage(JSON.stringify({ type: 'subscribe', channel: ch, from: 3 }));
    await until(() => holding);
    expect((await r.caller.append(a, commit(a, ch, 1, [], [a2]))).body.seq).toBe(1);
    release?.();
    for (let i = 0; i < 4; i++)
      expect((await r.caller.append(a, envelope(a, ch, { epoch: 2 }))).status).toBe(201);
    await until(() => sock.sent.some((f) => f.type === 'unsubscribed'));
    expect(sock.sent.find((f) => f.type === 'unsubscribed')?.code).toBe('NOT_A_MEMBER');
    expect(sock.seqs()).toEqual([]);
  });

  it('a removal that reaches the hub without its entries (too large for the fan-out) still ends a subscriber from the future', async () => {
    const { a, a2, ch } = await setup({});
    const { sock } = await connect(a2, ch, 3);
    const hub = r.core.hub;
    const publish = hub.publish.bind(hub);
    let strip = true;
    hub.publish = (m) =>
      publish(strip ? { ...m, channels: m.channels.map((c) => ({ ...c, entries: [] })) } : m);
    expect((await r.caller.append(a, commit(a, ch, 1, [], [a2]))).body.seq).toBe(1);
    await until(() => sock.sent.some((f) => f.type === 'unsubscribed'));
    strip = false;
    for (let i = 0; i < 4; i++)
      expect((await r.caller.append(a, envelope(a, ch, { epoch: 2 }))).status).toBe(201);
    await tick(50);
    expect(sock.sent.find((f) => f.type === 'unsubscribed')?.code).toBe('NOT_A_MEMBER');
    expect(sock.seqs()).toEqual([]);
  });

  it('catch-up reads pages of at most highWaterBytes (and limits.pageBytes), as GET …/entries does', async () => {
    r = await testRelay('sqlite', { ws: { highWaterBytes: 50_000 } });
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const a2 = makeDevice(A, 'a2', 'staff');
    await r.caller.publishParty(A, [a, a2]);
    const ch = newChannel();
    await r.caller.append(a, commit(a, ch, 0, [a2]));
    for (let i = 0; i < 20; i++)
      expect((await r.caller.append(a, envelope(a, ch, { mls: new Uint8Array(20_000) }))).status).toBe(201);
    // What the hub's reads hand back, page by page.
    const store = r.core.store;
    const read = store.read.bind(store);
    const pages: number[] = [];
    store.read = ((fn: Parameters<typeof store.read>[0]) =>
      read((tx) =>
        fn(
          new Proxy(tx, {
            get(t, k) {
              const v = Reflect.get(t, k) as unknown;
              if (k !== 'getEntries' || typeof v !== 'function')
                return typeof v === 'function' ? v.bind(t) : v;
              return async (...args: unknown[]) => {
                const rows = (await v.apply(t, args)) as Array<{ entry: Uint8Array }>;
                pages.push(rows.reduce((n, e) => n + e.entry.length, 0));
                return rows;
              };
            },
          }),
        ),
      )) as typeof store.read;
    const { sock } = await connect(a2, ch);
    await until(() => sock.seqs().length === 21);
    expect(sock.seqs()).toEqual(Array.from({ length: 21 }, (_, i) => i));
    // 21 entries of ~20 KB: several pages, none beyond 50,000 bytes (as base64url text) but for a lone entry.
    expect(pages.length).toBeGreaterThan(5);
    for (const bytes of pages) expect(bytes).toBeLessThanOrEqual(50_000);
  });

  it('a device removed from a channel is pushed no inbox item of it logged later, nor served one', async () => {
    r = await testRelay('sqlite');
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const a2 = makeDevice(A, 'a2', 'staff');
    const a3 = makeDevice(A, 'a3', 'staff');
    await r.caller.publishParty(A, [a, a2, a3]);
    const ch = newChannel();
    await r.caller.append(a, commit(a, ch, 0, [a2]));
    const early = await r.caller.append(a, envelope(a, ch, { kind: 'welcome', epoch: 1, to: [A.party] }));
    expect((await r.caller.append(a, commit(a, ch, 1, [], [a2]))).status).toBe(201);
    // Both of A's other devices listen for inbox pushes.
    const sockets = new Map<TestDevice, FakeSocket>();
    for (const d of [a2, a3]) sockets.set(d, (await authed(d)).sock);
    await r.caller.append(a, commit(a, ch, 2, [a3]));
    const late = await r.caller.append(a, envelope(a, ch, { kind: 'welcome', epoch: 3, to: [A.party] }));
    const pushed = (d: TestDevice) =>
      sockets
        .get(d)
        ?.sent.filter((f) => f.type === 'inbox')
        .map((f) => (f as { item?: { seq: number } }).item?.seq);
    await until(() => (pushed(a3) ?? []).length === 1);
    await tick(50);
    expect(pushed(a3)).toEqual([late.body.seq]);
    expect(pushed(a2)).toEqual([]);
    const served = async (d: TestDevice) =>
      ((await r.caller.get('/v1/inbox?after=0', d)).body.items as Array<{ seq: number }>).map((i) => i.seq);
    expect(await served(a3)).toEqual([early.body.seq, late.body.seq]);
    expect(await served(a2)).toEqual([early.body.seq]);
  });

  it('closes the connections of a device when it is revoked', async () => {
    const { a2, ch } = await setup({});
    const { sock } = await connect(a2, ch);
    const { revocationOf } = await import('./helpers.ts');
    await r.caller.post('/v1/revocations', undefined, { revocation: toBase64url(revocationOf(a2)) });
    await until(() => sock.closed !== undefined);
    expect(sock.closed?.code).toBe(4403);
    expect(sock.sent.some((f) => f.type === 'error' && f.code === 'CERT_REVOKED')).toBe(true);
  });
});
