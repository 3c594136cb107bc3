/**
 * The relay's WebSocket side under attack, against a real relay process: resets mid-handshake,
 * devices removed or revoked while subscribed, frame floods and clients that never read, and
 * sockets piled up by one device.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChannelId, signRequest, toBase64url } from '@backchannel/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RelayConfigInput } from '../src/config.ts';
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
import { type Frame, type RelayProcess, startRelayProcess, WsClient } from './process.ts';

let relay: RelayProcess | undefined;
let inproc: TestRelay | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
  await inproc?.close();
  inproc = undefined;
  for (const c of cleanups.splice(0)) c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await sleep(10);
  }
}

/** A relay process with a config file (BACKCHANNEL_CONFIG). */
async function relayWith(config: RelayConfigInput): Promise<RelayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-sec-ws-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return startRelayProcess({ BACKCHANNEL_CONFIG: file });
}

/** An auth frame signed for the relay named `relay`. */
function authFrame(dev: TestDevice, time: number, relay: string): string {
  return JSON.stringify({
    type: 'auth',
    device: dev.device,
    time,
    sig: toBase64url(signRequest(dev.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), relay, suite)),
  });
}

/** A raw `ws` client that can stop reading (ws.pause()): what a client that never reads looks like. */
class RawClient {
  readonly text: Frame[] = [];
  binary = 0;
  closeCode: number | undefined;
  closeReason = '';
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d, isBinary) => {
      if (isBinary) this.binary++;
      else this.text.push(JSON.parse(d.toString()) as Frame);
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
    ws.on('error', () => undefined);
  }
  static async connect(url: string, dev: TestDevice): Promise<RawClient> {
    const relay = ((await (await fetch(`${url}/v1/relay`)).json()) as { name: string }).name;
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const c = new RawClient(ws);
    ws.send(authFrame(dev, Date.now(), relay));
    await until(() => c.text.some((f) => f.type === 'ready'));
    return c;
  }
  entries(channel: ChannelId): number[] {
    return this.text.filter((f) => f.type === 'entry' && f.channel === channel).map((f) => f.seq as number);
  }
}

/** A two-member channel: `a` (admin) opens it with `a2` (staff) in it. */
async function channelOf(caller: RelayProcess['caller']) {
  const A = makeParty('A');
  const a = makeDevice(A, 'a', 'admin');
  const a2 = makeDevice(A, 'a2', 'staff');
  await caller.publishParty(A, [a, a2]);
  const ch = newChannel();
  expect((await caller.append(a, commit(a, ch, 0, [a2]))).status).toBe(201);
  return { A, a, a2, ch };
}

/** Opens a TCP connection, writes `bytes`, waits, then resets it (RST, not FIN). */
async function resetAfter(port: number, bytes: string, waitMs = 30): Promise<void> {
  const s = tcpConnect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  s.write(bytes);
  await sleep(waitMs);
  s.resetAndDestroy();
}

const upgrade = (path: string, key = 'dGhlIHNhbXBsZSBub25jZQ==') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

describe('upgrade handshake', () => {
  it('a client that resets its socket mid-handshake does not take the relay down', async () => {
    relay = await startRelayProcess();
    const port = Number(new URL(relay.url).port);
    const partial = upgrade('/v1/ws').slice(0, 60);
    for (let i = 0; i < 20; i++) {
      await resetAfter(port, partial, 5);
      await resetAfter(port, upgrade('/v1/ws'), 0);
      await resetAfter(port, upgrade('/nowhere'), 0);
      await resetAfter(port, upgrade('/v1/ws', 'bad'), 0);
    }
    await sleep(200);
    expect(relay.child.exitCode).toBeNull();
    expect((await fetch(`${relay.url}/readyz`)).ok).toBe(true);
  });
});

/** Sends raw bytes and returns the status, headers and JSON body of the answer (the relay closes after it). */
async function rawAnswer(
  port: number,
  bytes: string,
): Promise<{ status: number; headers: string; body: unknown }> {
  const s = tcpConnect(port, '127.0.0.1');
  let got = '';
  s.on('data', (d: Buffer) => {
    got += d.toString('latin1');
  });
  s.write(bytes);
  await new Promise<void>((resolve) => {
    s.once('close', () => resolve());
    s.once('error', () => resolve());
  });
  const [head = '', body = ''] = got.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), headers: head.toLowerCase(), body: JSON.parse(body) };
}

describe('refused upgrades', () => {
  it('are answered in JSON with a code, like every other refusal', async () => {
    relay = await relayWith({ rateLimits: { ip: { perSecond: 1, burst: 7 } } });
    const port = Number(new URL(relay.url).port);
    const noWhere = await rawAnswer(port, upgrade('/nowhere'));
    expect(noWhere.status).toBe(404);
    expect(noWhere.headers).toContain('content-type: application/json');
    expect(noWhere.body).toEqual({ error: { code: 'NOT_FOUND', message: 'no such route' } });

    const badKey = await rawAnswer(port, upgrade('/v1/ws', 'bad'));
    expect(badKey.status).toBe(400);
    expect(badKey.headers).toContain('content-type: application/json');
    expect(badKey.body).toEqual({
      error: {
        code: 'REQUEST_INVALID',
        message: 'not a WebSocket handshake: Missing or invalid Sec-WebSocket-Key header',
      },
    });

    const notWebSocket = await rawAnswer(
      port,
      upgrade('/v1/ws').replace('Upgrade: websocket', 'Upgrade: h2c'),
    );
    expect(notWebSocket.status).toBe(400);
    expect(notWebSocket.body).toMatchObject({ error: { code: 'REQUEST_INVALID' } });

    const version = await rawAnswer(port, upgrade('/v1/ws').replace('Version: 13', 'Version: 99'));
    expect(version.status).toBe(400);
    expect(version.headers).toContain('\r\nsec-websocket-version: 13, 8');

    const post = await rawAnswer(port, upgrade('/v1/ws').replace('GET', 'POST'));
    expect(post.status).toBe(405);
    expect(post.headers).toContain('allow: get');
    expect(post.body).toEqual({
      error: { code: 'METHOD_NOT_ALLOWED', message: 'a WebSocket upgrade is a GET' },
    });

    // Past the address's burst: RATE_LIMITED with the wait, in the body and in Retry-After.
    let limited: Awaited<ReturnType<typeof rawAnswer>> | undefined;
    for (let i = 0; i < 10 && limited === undefined; i++) {
      const a = await rawAnswer(port, upgrade('/v1/ws', 'bad'));
      if (a.status === 429) limited = a;
    }
    if (limited === undefined) throw new Error('never rate limited');
    expect(limited.body).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    expect((limited.body as { error: { retryAfterMs: number } }).error.retryAfterMs).toBeGreaterThan(0);
    expect(limited.headers).toMatch(/\r\nretry-after: \d+/);
    // Each is counted by its code for the operator (/metrics is not under /v1: no rate limit).
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    const count = (code: string) =>
      Number(
        new RegExp(`^bc_refusals_total\\{code="${code}",via="ws"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0,
      );
    expect(count('NOT_FOUND')).toBe(1);
    expect(count('METHOD_NOT_ALLOWED')).toBe(1);
    expect(count('REQUEST_INVALID')).toBeGreaterThanOrEqual(3);
    expect(count('RATE_LIMITED')).toBe(1);
    expect((await fetch(`${relay.url}/healthz`)).ok).toBe(true);
  });
});

describe('membership and device status are re-checked while subscribed', () => {
  it('a device removed while its catch-up is paused gets nothing past its removal', async () => {
    // A small high-water mark: the subscriber's catch-up pauses after its first page.
    relay = await relayWith({ ws: { highWaterBytes: 64 * 1024 } });
    const { a, a2, ch } = await channelOf(relay.caller);
    const big = () => envelope(a, ch, { mls: randomBytes(20_000) });
    const posts: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) {
      posts.push(relay.caller.append(a, big()));
      if (posts.length === 32) await Promise.all(posts.splice(0));
    }
    await Promise.all(posts);
    const c = await RawClient.connect(relay.url, a2);
    c.ws.send(JSON.stringify({ type: 'subscribe', channel: ch, from: 0 }));
    c.ws.pause(); // stops reading: the relay's send buffer fills and the catch-up pauses
    await sleep(500);
    const removal = await relay.caller.append(a, commit(a, ch, 1, [], [a2]));
    expect(removal.status).toBe(201);
    const removedAt = removal.body.seq;
    for (let i = 0; i < 5; i++)
      expect((await relay.caller.append(a, envelope(a, ch, { epoch: 2 }))).status).toBe(201);
    c.ws.resume();
    await until(() => c.text.some((f) => f.type === 'unsubscribed'), 20_000);
    const seen = c.entries(ch);
    expect(Math.max(...seen)).toBe(removedAt);
    expect(c.text.find((f) => f.type === 'unsubscribed')?.code).toBe('NOT_A_MEMBER');
    c.ws.close();
  });

  it('a device whose certificate expires while subscribed gets CERT_EXPIRED and its socket closed', async () => {
    relay = await relayWith({ ws: { revalidateMs: 200 } });
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const short = makeDevice(A, 'short', 'staff', { notAfter: Date.now() + 3_000 });
    await relay.caller.publishParty(A, [a, short]);
    const ch = newChannel();
    expect((await relay.caller.append(a, commit(a, ch, 0, [short]))).status).toBe(201);
    const c = await WsClient.connect(relay.url, short);
    await c.subscribe(ch, 0);
    await c.waitForEntries(ch, 1);
    await sleep(3_500);
    expect((await relay.caller.append(a, envelope(a, ch))).status).toBe(201);
    await until(() => c.closeCode !== undefined);
    expect(c.closeCode).toBe(4403);
    expect(c.frames.some((f) => f.type === 'error' && f.code === 'CERT_EXPIRED')).toBe(true);
    expect(c.entries(ch)).toEqual([0]);
  });

  it('a revocation this hub never heard of (another node wrote it) ends delivery within ws.revalidateMs', async () => {
    inproc = await testRelay('sqlite', { ws: { revalidateMs: 100 } });
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const a2 = makeDevice(A, 'a2', 'staff');
    await inproc.caller.publishParty(A, [a, a2]);
    const ch = newChannel();
    await inproc.caller.append(a, commit(a, ch, 0, [a2]));
    const sent: Frame[] = [];
    let closed: number | undefined;
    const sock: HubSocket = {
      send: (d) => {
        if (typeof d === 'string') sent.push(JSON.parse(d) as Frame);
      },
      bufferedAmount: 0,
      close: (code) => {
        closed = code;
      },
    };
    const conn = inproc.core.hub.attach(sock);
    conn.onMessage(authFrame(a2, Date.now(), inproc.core.signer.name));
    await until(() => sent.some((f) => f.type === 'ready'));
    conn.onMessage(JSON.stringify({ type: 'subscribe', channel: ch, from: 0 }));
    await until(() => sent.some((f) => f.type === 'entry'));
    // Written straight to the store, as another relay node would: no local revocation event.
    await inproc.core.store.write((tx) =>
      tx.putRevocation({
        party: A.party,
        device: a2.device,
        revokedAt: Date.now() - 1,
        revocation: new Uint8Array(8),
      }),
    );
    await sleep(150);
    await inproc.caller.append(a, envelope(a, ch));
    await until(() => closed !== undefined);
    expect(closed).toBe(4403);
    expect(sent.some((f) => f.type === 'error' && f.code === 'CERT_REVOKED')).toBe(true);
    expect(sent.filter((f) => f.type === 'entry').map((f) => f.seq)).toEqual([0]);
  });
});

describe('inbound frames are rate limited and the send buffer is capped', () => {
  it('every frame takes a token from the device bucket; over it, RATE_LIMITED', async () => {
    relay = await relayWith({ rateLimits: { device: { perSecond: 1, burst: 10 } } });
    const { a } = await channelOf(relay.caller);
    // The channel's commit (HTTP) took one of a's 10 tokens; auth took the address's, not a's.
    const c = await WsClient.connect(relay.url, a);
    for (let i = 0; i < 40; i++) c.send({ type: 'ping' });
    await until(() => c.frames.filter((f) => f.type === 'pong' || f.type === 'error').length >= 40);
    const pongs = c.frames.filter((f) => f.type === 'pong').length;
    expect(pongs).toBeLessThanOrEqual(10);
    expect(c.frames.filter((f) => f.type === 'error' && f.code === 'RATE_LIMITED').length).toBe(40 - pongs);
    c.close();
    // Each refused frame is counted for the operator.
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).toContain(`bc_refusals_total{code="RATE_LIMITED",via="ws"} ${40 - pongs}`);
  });

  it('a send frame is also a write: past rateLimits.writes it is refused RATE_LIMITED, and nothing refused is appended', async () => {
    relay = await relayWith({
      rateLimits: { device: { perSecond: 1e6, burst: 1e6 }, writes: { perSecond: 0.001, burst: 5 } },
    });
    const { a, ch } = await channelOf(relay.caller);
    // The channel's opening commit (HTTP) took one of a's 5 writes.
    const c = await RawClient.connect(relay.url, a);
    for (let i = 0; i < 8; i++) {
      const wire = envelope(a, ch).wire;
      const f = new Uint8Array(5 + wire.length);
      f[0] = 0x01;
      new DataView(f.buffer).setUint32(1, i);
      f.set(wire, 5);
      c.ws.send(f);
    }
    await until(() => c.binary + c.text.filter((f) => f.type === 'error').length >= 8);
    expect(c.binary).toBe(4);
    expect(c.text.filter((f) => f.type === 'error' && f.code === 'RATE_LIMITED')).toHaveLength(4);
    const page = await relay.caller.get(`/v1/channels/${ch}/entries?from=0`, a);
    expect(page.body.entries as unknown[]).toHaveLength(5);
    c.ws.close();
  });

  it('a client that sends but never reads is closed once its buffered answers pass ws.maxBufferedBytes', async () => {
    relay = await relayWith({
      ws: { maxBufferedBytes: 256 * 1024, highWaterBytes: 64 * 1024 },
      rateLimits: { device: { perSecond: 1e6, burst: 1e6 }, writes: { perSecond: 1e6, burst: 1e6 } },
    });
    const { a, ch } = await channelOf(relay.caller);
    const c = await RawClient.connect(relay.url, a);
    c.ws.pause();
    const N = 12_000;
    for (let i = 0; i < N; i++) {
      const wire = envelope(a, ch, { mls: randomBytes(16) }).wire;
      const f = new Uint8Array(5 + wire.length);
      f[0] = 0x01;
      new DataView(f.buffer).setUint32(1, i);
      f.set(wire, 5);
      c.ws.send(f);
    }
    // The acks (≈1 KB each) pile up in the relay's send buffer while nothing reads them.
    await until(() => c.ws.readyState !== WebSocket.OPEN || c.ws.bufferedAmount === 0, 30_000);
    await sleep(3_000);
    c.ws.resume();
    await until(() => c.closeCode !== undefined, 20_000);
    expect(c.closeCode).toBe(4429);
    expect(c.closeReason).toMatch(/^SEND_BUFFER_FULL/);
    expect(c.binary).toBeLessThan(N);
  });
});

describe('sockets per device', () => {
  it('refuses a device its 17th socket with TOO_MANY_CONNECTIONS (default ws.maxConnectionsPerDevice)', async () => {
    relay = await startRelayProcess();
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    await relay.caller.publishParty(A, [a]);
    const t0 = Date.now();
    const open: WsClient[] = [];
    for (let i = 0; i < 16; i++) {
      const c = await WsClient.open(relay.url);
      expect((await c.auth(a, t0 - i)).type).toBe('ready');
      open.push(c);
    }
    const extra = await WsClient.open(relay.url);
    const refused = await extra.auth(a, t0 - 16);
    expect(refused).toMatchObject({ type: 'error', code: 'TOO_MANY_CONNECTIONS' });
    await until(() => extra.closeCode !== undefined);
    expect(extra.closeCode).toBe(4409);
    // A closed socket frees its slot.
    open[0]?.close();
    await sleep(200);
    const again = await WsClient.open(relay.url);
    expect((await again.auth(a, t0 - 17)).type).toBe('ready');
    for (const c of [...open, again]) c.close();
  });
});

describe('frames pipelined on one socket are taken in the order sent', () => {
  it('a send and a subscribe right after auth, an unsubscribe right after its subscribe, and the subscription cap', {
    timeout: 60_000,
  }, async () => {
    relay = await relayWith({ ws: { maxSubscriptions: 3 } });
    const { a, a2, ch } = await channelOf(relay.caller);
    const others: ChannelId[] = [];
    for (let i = 0; i < 4; i++) {
      const c = newChannel();
      expect((await relay.caller.append(a, commit(a, c, 0, [a2]))).status).toBe(201);
      others.push(c);
    }
    const c = await WsClient.open(relay.url);
    // All at once, none waiting for an answer: auth, a send, subscribe and unsubscribe, four subscribes.
    const env = envelope(a, ch);
    c.send(authFrame(a, Date.now(), c.relayName));
    c.send({ type: 'send', id: 7, envelope: toBase64url(env.wire) });
    c.send({ type: 'subscribe', channel: ch, from: 0 });
    c.send({ type: 'unsubscribe', channel: ch });
    for (const o of others) c.send({ type: 'subscribe', channel: o, from: 0 });

    // Before: the send and the subscribe were refused AUTH_MISSING (the auth still being checked).
    const ack = await c.waitFor(
      (f) => (f.type === 'ack' || f.type === 'error') && (f as { id?: number }).id === 7,
    );
    expect(ack.type).toBe('ack');
    await c.waitFor((f) => f.type === 'unsubscribed' && f.channel === ch);
    // Before: all four subscribed (the cap was checked before the store read, for each at once).
    await until(() => c.frames.filter((f) => f.type === 'subscribed' || f.type === 'error').length >= 5);
    expect(c.frames.filter((f) => f.type === 'subscribed' && f.channel !== ch).map((f) => f.channel)).toEqual(
      others.slice(0, 3),
    );
    const refused = c.frames.filter((f) => f.type === 'error');
    expect(refused.map((f) => [f.code, f.channel])).toEqual([['FRAME_INVALID', others[3]]]);

    // Before: the unsubscribe came before the subscription existed, and the stream went on.
    const next = await relay.caller.append(a, envelope(a, ch));
    expect(next.status).toBe(201);
    const seq = next.body.seq as number;
    c.send({ type: 'ping' });
    await c.waitFor((f) => f.type === 'pong');
    await sleep(300);
    expect(c.frames.some((f) => f.type === 'entry' && f.channel === ch && f.seq === seq)).toBe(false);
    // An unsubscribe for a channel not subscribed is answered too (the same answer for any channel).
    c.send({ type: 'unsubscribe', channel: newChannel() });
    await c.waitFor((f) => f.type === 'unsubscribed' && f.channel !== ch);
    // A refused text send names its id.
    c.send({ type: 'send', id: 9, envelope: toBase64url(envelope(a, newChannel()).wire) });
    const no = await c.waitFor((f) => f.type === 'error' && (f as { id?: number }).id === 9);
    expect(no.code).toBe('NOT_A_MEMBER');
  });
});
