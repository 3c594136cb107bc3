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

async function connect(dev: TestDevice, channel: ChannelId, from = 0) {
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
