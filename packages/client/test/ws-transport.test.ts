/**
 * Envelope posts over the relay's WebSocket (transport: 'ws'), against a real listening relay:
 * the same answers as over HTTP, nothing lost or duplicated across a relay restart mid-flight,
 * and a refused envelope gets its typed error.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer as httpServer } from 'node:http';
import { type AddressInfo, connect, createServer as tcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeEnvelope,
  fromBase64url,
  keyPairFromSeed,
  toBase64url,
  verifyRequest,
} from '@backchannel/protocol';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocketServer } from 'ws';
import { CorkedWebSocket } from '../src/sdk/websocket.node.ts';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import type { Channel, DraftEvent } from '../src/sdk/channel.ts';
import { Backchannel } from '../src/sdk/client.ts';
import { ClientError } from '../src/sdk/errors.ts';
import { RelayClient } from '../src/sdk/relay-client.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../src/sdk/mls-crypto.node.ts';
import { createMlsFactory } from '../src/sdk/mls-factory.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';
import {
  decodeAck,
  STABLE_MS,
  type WebSocketConstructor,
  type WebSocketLike,
  WsEnvelopeTransport,
} from '../src/sdk/ws-transport.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
let dir: string;
let relay: RelayProcess;
/** Envelope posts made over HTTP, per device. */
const httpPosts = new Map<string, number>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bc-ws-'));
  relay = await startRelayProcess(join(dir, 'relay'));
}, 30_000);
afterAll(async () => {
  await relay.stop();
});

const device = (name: string, transport: 'ws' | 'http') =>
  Backchannel.open({
    store: SqliteLocalStore.open({
      path: join(dir, name, 'device.db'),
      passphrase: name,
      kdf: { N: 1 << 10, r: 8, p: 1 },
    }),
    mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
    relays: [relay.url],
    random,
    signatures: ed25519Node,
    sha256: sha256Node,
    updateEveryMessages: 1_000_000,
    transport,
    webSocket: CorkedWebSocket,
    fetch: (input, init) => {
      if (init.method === 'POST' && input.includes('/envelopes'))
        httpPosts.set(name, (httpPosts.get(name) ?? 0) + 1);
      return fetch(input, init);
    },
  });

/** A (over WS) and B (over HTTP) in an accepted channel. */
async function pair(tag: string) {
  const a = await device(`A${tag}`, 'ws');
  const b = await device(`B${tag}`, 'http');
  await a.createParty({ partyName: 'A', deviceName: 'a', relays: [relay.url] });
  const B = await b.createParty({ partyName: 'B', deviceName: 'b', role: 'principal', relays: [relay.url] });
  const chA = await a.outreach(B.party, 'hello');
  await b.checkInbox();
  const chB = await b.channel(chA.id);
  await chB.sync();
  await chB.send({ kind: 'channel.accept' } as DraftEvent);
  await b.outbox.flush();
  await chA.sync();
  return { a, b, chA, chB };
}

/** The texts of the channel's messages, in transcript order, one per log position. */
const texts = async (ch: Channel) => {
  await ch.sync();
  return ch.view.timeline.flatMap((r) =>
    'event' in r && r.event.kind === 'message' ? [(r.event as { text?: string }).text] : [],
  );
};

describe("transport: 'ws'", () => {
  it('posts over the socket with the answers HTTP gives, receipts kept', async () => {
    const { a, b, chA, chB } = await pair('1');
    try {
      const ids = await chA.sendMany(
        Array.from({ length: 40 }, (_, i) => ({ kind: 'message', text: `m${i}` }) as DraftEvent),
      );
      const wires = (await a.store.outboxList()).filter((i) => (ids as string[]).includes(i.id));
      expect(wires).toHaveLength(40);
      const r = await a.outbox.flush(16);
      expect(r).toMatchObject({ sent: 40, rejected: 0, pending: 0 });
      // All of A's posts went over the socket; B's over HTTP.
      expect(httpPosts.get('A1')).toBeUndefined();
      expect(httpPosts.get('B1')).toBeGreaterThan(0);
      // Every receipt checked and kept (none set apart).
      const kept = (await a.store.keys(`rr:${chA.id}:`)).map((k) => k.split(':')[2]);
      expect(ids.every((id) => kept.includes(id))).toBe(true);
      expect(await a.store.keys(`rr-invalid:${chA.id}:`)).toEqual([]);
      // The same envelope re-posted over HTTP and over WS: the same (duplicate) answer.
      const item = wires[7] as (typeof wires)[number];
      const overWs = await a.relay.postEnvelope(chA.id, item.wire);
      const http = await fetch(`${relay.url}/v1/channels/${chA.id}/envelopes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ envelope: toBase64url(item.wire) }),
      });
      const overHttp = (await http.json()) as Record<string, unknown>;
      expect(overWs).toEqual({
        seq: overHttp.seq,
        leafIndex: overHttp.leafIndex,
        receivedAt: overHttp.receivedAt,
        inclusionProof: overHttp.inclusionProof,
        checkpoint: overHttp.checkpoint,
        receipt: overHttp.receipt,
      });
      const got = (await texts(chB)).filter((t) => t?.startsWith('m'));
      expect(got).toHaveLength(40);
      expect([...got].sort()).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`).sort());
    } finally {
      a.close();
      b.close();
    }
  }, 60_000);

  it('a refused envelope gets its typed error, as over HTTP', async () => {
    const { a, b, chA } = await pair('2');
    try {
      const [id] = await chA.sendMany([{ kind: 'message', text: 'x' } as DraftEvent]);
      const item = (await a.store.outboxList()).find((i) => i.id === id);
      if (item === undefined) throw new Error('the message is not in the outbox');
      const forged = item.wire.slice();
      forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1;
      const refusal = (p: Promise<unknown>) =>
        p.then(
          () => undefined,
          (e: unknown) => e as ClientError,
        );
      const ws = await refusal(a.relay.postEnvelope(chA.id, forged));
      const http = await refusal(b.relay.postEnvelope(chA.id, forged));
      expect(ws).toBeInstanceOf(ClientError);
      expect(ws).toMatchObject({ code: 'RELAY_REFUSED', cause_code: 'SIG_INVALID', retryable: false });
      expect({ code: ws?.code, cause: ws?.cause_code, retryable: ws?.retryable }).toEqual({
        code: http?.code,
        cause: http?.cause_code,
        retryable: http?.retryable,
      });
      // Not decodable at all.
      const junk = await refusal(a.relay.postEnvelope(chA.id, Uint8Array.of(1, 2, 3)));
      expect(junk?.code).toBe('RELAY_REFUSED');
      expect(junk?.cause_code).toMatch(/^DECODE_|ENVELOPE_INVALID/);
      expect(decodeEnvelope(item.wire).ok).toBe(true);
    } finally {
      a.close();
      b.close();
    }
  }, 60_000);

  it('loses and duplicates nothing when the relay restarts with posts in flight', async () => {
    const { a, b, chA, chB } = await pair('3');
    try {
      const N = 300;
      const ids = await chA.sendMany(
        Array.from({ length: N }, (_, i) => ({ kind: 'message', text: `r${i}` }) as DraftEvent),
      );
      expect(ids).toHaveLength(N);
      const flushing = a.outbox.flush(64);
      // Crash the relay (kill -9) while the posts are in flight, then start it again.
      await new Promise((r) => setTimeout(r, 30));
      await relay.crash();
      const first = await flushing;
      expect(first.pending).toBeGreaterThan(0);
      expect(first.retryAfterMs).toBeDefined();
      await relay.restart();
      const rest = await a.outbox.drain(Date.now() + 30_000);
      expect(rest.pending).toBe(0);
      expect(await a.store.outboxList()).toEqual([]);
      const got = (await texts(chB)).filter((t) => t?.startsWith('r'));
      // Concurrent posts land in any order (as over HTTP); each exactly once.
      expect(got).toHaveLength(N);
      expect([...got].sort()).toEqual(Array.from({ length: N }, (_, i) => `r${i}`).sort());
    } finally {
      a.close();
      b.close();
    }
  }, 90_000);
});

describe('binary acks', () => {
  it('refuses a malformed ack', () => {
    const ok = new Uint8Array(31 + 32 + 2 + 3 + 2);
    ok[0] = 2;
    ok[30] = 1;
    new DataView(ok.buffer).setUint16(63, 3);
    ok.set([0x61, 0x62, 0x63], 65);
    expect(decodeAck(ok).answer).toMatchObject({
      seq: 0,
      checkpoint: 'abc',
      inclusionProof: [expect.any(String)],
    });
    expect(() => decodeAck(ok.subarray(0, ok.length - 1))).toThrow(/malformed/);
    expect(() => decodeAck(Uint8Array.of(...ok, 0))).toThrow(/malformed/);
    const flags = ok.slice();
    flags[5] = 2;
    expect(() => decodeAck(flags)).toThrow(/malformed/);
    const big = ok.slice();
    big[6] = 0xff;
    expect(() => decodeAck(big)).toThrow(/malformed/);
    const utf = ok.slice();
    utf[65] = 0xff;
    expect(() => decodeAck(utf)).toThrow(/malformed/);
  });
});

/** A socket driven by the test: it opens when told, records frames, answers what it is told. */
class FakeSocket implements WebSocketLike {
  static last: FakeSocket | undefined;
  binaryType = 'blob';
  readyState = 0;
  onopen: ((ev: never) => void) | null = null;
  onmessage: ((ev: never) => void) | null = null;
  onclose: ((ev: never) => void) | null = null;
  onerror: ((ev: never) => void) | null = null;
  readonly sent: Array<string | Uint8Array> = [];
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.last = this;
  }
  send(data: string | Uint8Array): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
  }
  emit(kind: 'open' | 'close' | 'error'): void {
    const h = { open: this.onopen, close: this.onclose, error: this.onerror }[kind] as
      | ((ev: unknown) => void)
      | null;
    h?.({});
  }
  receive(data: string | Uint8Array): void {
    const d = typeof data === 'string' ? data : data.slice().buffer;
    (this.onmessage as ((ev: { data: unknown }) => void) | null)?.({ data: d });
  }
}

const tick = () => new Promise((r) => setTimeout(r, 1));

function transport(timeoutMs = 10_000, keepAliveMs?: number, onLost?: () => void) {
  return new WsEnvelopeTransport({
    endpoint: 'https://relay.example/',
    device: 'd_x' as never,
    secretKey: new Uint8Array(randomBytes(32)),
    suite: ed25519Node,
    relayName: () => 'relay.example',
    WebSocket: FakeSocket,
    now: Date.now,
    timeoutMs,
    ...(keepAliveMs === undefined ? {} : { keepAliveMs }),
    ...(onLost === undefined ? {} : { onLost }),
  });
}

/** A channel listener that logs what happens to it (`from` is what it would resume from). */
function logListener(events: string[], from = () => 0) {
  return {
    from,
    up: (f: number) => events.push(`up ${f}`),
    entry: (seq: number) => events.push(`entry ${seq}`),
    checkpoint: () => {},
    down: (code?: string) => events.push(code === undefined ? 'down' : `down ${code}`),
  };
}

const until = async (cond: () => boolean) => {
  const deadline = Date.now() + 5_000;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

/** Opens and authenticates a transport's socket, with one post in flight. */
async function ready(t: WsEnvelopeTransport, wire = Uint8Array.of(9, 9)) {
  const post = t.post(wire).then(
    (a) => ({ a }),
    (e: unknown) => ({ e: e as ClientError }),
  );
  const s = FakeSocket.last as FakeSocket;
  expect(s.url).toBe('wss://relay.example/v1/ws');
  s.emit('open');
  expect(JSON.parse(s.sent[0] as string)).toMatchObject({ type: 'auth', device: 'd_x' });
  s.receive('{"type":"ready","device":"d_x"}');
  await tick();
  return { s, post };
}

describe('WsEnvelopeTransport (a scripted socket)', () => {
  it('answers undefined (post over HTTP) when the socket cannot be opened', async () => {
    const t = transport();
    const post = t.post(Uint8Array.of(1));
    (FakeSocket.last as FakeSocket).emit('error');
    expect(await post).toBeUndefined();
    // and for a while does not try again
    FakeSocket.last = undefined;
    expect(await t.post(Uint8Array.of(1))).toBeUndefined();
    expect(FakeSocket.last).toBeUndefined();
  });

  it('sends 0x01 ‖ id ‖ wire and maps error frames by id to the HTTP ClientErrors', async () => {
    const t = transport();
    const { s, post } = await ready(t);
    expect([...(s.sent[1] as Uint8Array)]).toEqual([1, 0, 0, 0, 0, 9, 9]);
    const p2 = t.post(Uint8Array.of(8)).catch((e: unknown) => e as ClientError);
    const p3 = t.post(Uint8Array.of(7)).catch((e: unknown) => e as ClientError);
    const p4 = t.post(Uint8Array.of(6));
    await tick();
    s.receive('{"type":"error","code":"NOT_A_MEMBER","message":"no","id":1}');
    s.receive('{"type":"error","code":"RATE_LIMITED","message":"slow down","id":2}');
    s.receive('{"type":"error","code":"FRAME_TOO_LARGE","message":"big","id":3}');
    s.receive('{"type":"error","code":"STORE_UNAVAILABLE","message":"later","id":0}');
    expect(await p2).toMatchObject({ code: 'RELAY_REFUSED', cause_code: 'NOT_A_MEMBER', retryable: false });
    expect(await p3).toMatchObject({ code: 'RATE_LIMITED', retryable: true, retryAfterMs: 1000 });
    expect(await p4).toBeUndefined(); // FRAME_*: not a refusal of the envelope, HTTP takes it
    expect(await post).toMatchObject({ e: { code: 'RELAY_ERROR', retryable: true } });
  });

  it('rejects the posts in flight as retryable when the socket closes, and reopens on the next post', async () => {
    const t = transport();
    const { s, post } = await ready(t);
    const p2 = t.post(Uint8Array.of(8)).catch((e: unknown) => e as ClientError);
    await tick();
    s.emit('close');
    expect(await post).toMatchObject({ e: { code: 'RELAY_UNREACHABLE', retryable: true } });
    expect(await p2).toMatchObject({ code: 'RELAY_UNREACHABLE', retryable: true });
    const again = await ready(t);
    expect(again.s).not.toBe(s);
  });

  it('sends an envelope larger than a frame over HTTP, without touching the socket', async () => {
    FakeSocket.last = undefined;
    const t = transport();
    expect(await t.post(new Uint8Array(400 * 1024))).toBeUndefined();
    expect(FakeSocket.last).toBeUndefined();
  });

  it('gives up on a socket that never gets ready: the waiting post goes over HTTP', async () => {
    const t = transport(50);
    const post = t.post(Uint8Array.of(1));
    const s = FakeSocket.last as FakeSocket;
    s.emit('open'); // authenticates, but the relay never answers `ready`
    expect(await post).toBeUndefined();
    expect(s.closed).toBe(true);
  });

  it('counts only answers to posts as signs of life, not other frames (inbox pushes)', async () => {
    const t = transport(80);
    const { s, post } = await ready(t);
    const chatter = setInterval(() => s.receive('{"type":"inbox","cursor":1}'), 10);
    try {
      expect(await post).toMatchObject({ e: { code: 'RELAY_UNREACHABLE', retryable: true } });
    } finally {
      clearInterval(chatter);
    }
  });

  it('drops a socket that goes silent with posts in flight, and one that sends a malformed ack', async () => {
    const t = transport(50);
    const { s, post } = await ready(t);
    expect(await post).toMatchObject({ e: { code: 'RELAY_UNREACHABLE', retryable: true } });
    expect(s.closed).toBe(true);
    const second = await ready(t);
    second.s.receive(Uint8Array.of(2, 0, 0, 0, 0));
    expect(await second.post).toMatchObject({ e: { code: 'RELAY_ERROR', retryable: true } });
    expect(second.s.closed).toBe(true);
  });

  it('keeps a subscribed socket alive with pings, and drops it when a ping goes unanswered', async () => {
    const t = transport(300, 30);
    const events: string[] = [];
    const listener = {
      from: () => 0,
      up: () => events.push('up'),
      entry: () => {},
      checkpoint: () => {},
      down: () => events.push('down'),
    };
    t.subscribe(`c_${'A'.repeat(22)}`, listener);
    const s = FakeSocket.last as FakeSocket;
    s.emit('open');
    s.receive('{"type":"ready","device":"d_x"}');
    await tick();
    const pings = () => s.sent.filter((f) => f === '{"type":"ping"}').length;
    const until = async (cond: () => boolean) => {
      const deadline = Date.now() + 5_000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      return cond();
    };
    // A relay that answers: pings go on, the socket stays.
    for (let i = 0; i < 4; i++) {
      const before = pings();
      expect(await until(() => pings() > before)).toBe(true);
      expect(s.closed).toBe(false);
      s.receive('{"type":"pong"}');
    }
    expect(events).not.toContain('down');
    // A relay gone silent (no close, no pong): dropped after the timeout, the stream goes down.
    expect(await until(() => s.closed)).toBe(true);
    expect(events).toContain('down');
    t.close();
  });

  it('with onLost, reports a subscribed socket gone silent instead of reconnecting', async () => {
    let lost = 0;
    const t = transport(100, 20, () => lost++);
    const events: string[] = [];
    t.subscribe(`c_${'A'.repeat(22)}`, logListener(events));
    const s = FakeSocket.last as FakeSocket;
    s.emit('open');
    s.receive('{"type":"ready","device":"d_x"}');
    // No pong: the keep-alive drops the socket; the owner is told, and no new socket opens.
    expect(await until(() => lost === 1)).toBe(true);
    expect(s.closed).toBe(true);
    expect(events).toEqual(['down']);
    await new Promise((r) => setTimeout(r, 400)); // longer than the reconnect backoff
    expect(FakeSocket.last).toBe(s);
    t.close();
  });

  it('hands inbox hints to inbox listeners, keeps the socket open for them, and says when it goes', async () => {
    const t = transport(10_000, 10_000);
    const events: string[] = [];
    const stop = t.subscribeInbox({
      up: () => events.push('up'),
      hint: () => events.push('hint'),
      down: () => events.push('down'),
    });
    const s = FakeSocket.last as FakeSocket;
    s.emit('open');
    s.receive('{"type":"ready","device":"d_x"}');
    s.receive('{"type":"inbox","item":{"cursor":3}}');
    s.emit('close');
    expect(events).toEqual(['up', 'hint', 'down']);
    // Reopened for the listener after the backoff; up again once ready.
    expect(await until(() => FakeSocket.last !== s)).toBe(true);
    const again = FakeSocket.last as FakeSocket;
    again.emit('open');
    again.receive('{"type":"ready","device":"d_x"}');
    expect(events).toEqual(['up', 'hint', 'down', 'up']);
    stop();
    again.receive('{"type":"inbox","item":{"cursor":4}}');
    expect(events).toHaveLength(4);
    t.close();
  });

  it('signs the auth frame for the relay named, waiting for the name when it is not known yet', async () => {
    const kp = keyPairFromSeed(new Uint8Array(32).fill(3));
    let give: (name: string) => void = () => undefined;
    const name = new Promise<string>((r) => {
      give = r;
    });
    const t = new WsEnvelopeTransport({
      endpoint: 'https://relay.example',
      device: 'd_x' as never,
      secretKey: kp.secretKey,
      suite: ed25519Node,
      relayName: () => name,
      WebSocket: FakeSocket,
      now: () => 1_234,
      timeoutMs: 10_000,
    });
    const post = t.post(Uint8Array.of(1)).catch(() => undefined);
    const s = FakeSocket.last as FakeSocket;
    s.emit('open');
    await tick();
    expect(s.sent).toEqual([]);
    give('relay.example');
    await tick();
    const f = JSON.parse(s.sent[0] as string) as { type: string; time: number; sig: string };
    expect(f).toMatchObject({ type: 'auth', device: 'd_x', time: 1_234 });
    const sig = fromBase64url(f.sig);
    const empty = new Uint8Array(0);
    expect(verifyRequest(kp.publicKey, 'WS', '/v1/ws', 1_234, empty, 'relay.example', sig)).toBe(true);
    expect(verifyRequest(kp.publicKey, 'WS', '/v1/ws', 1_234, empty, 'other.example', sig)).toBe(false);
    t.close();
    await post;
  });

  it('gives up on a socket whose relay name cannot be learnt: the post goes over HTTP', async () => {
    const t = new WsEnvelopeTransport({
      endpoint: 'https://relay.example',
      device: 'd_x' as never,
      secretKey: new Uint8Array(randomBytes(32)),
      suite: ed25519Node,
      relayName: () => Promise.reject(new ClientError('RELAY_UNREACHABLE', 'down', { retryable: true })),
      WebSocket: FakeSocket,
      now: Date.now,
      timeoutMs: 10_000,
    });
    const post = t.post(Uint8Array.of(1));
    const s = FakeSocket.last as FakeSocket;
    s.emit('open');
    expect(await post).toBeUndefined();
    expect(s.sent).toEqual([]);
  });

  it('sends no pings without subscriptions', async () => {
    const t = transport(10_000, 10);
    const { s, post } = await ready(t);
    await new Promise((r) => setTimeout(r, 60));
    expect(s.sent.filter((f) => f === '{"type":"ping"}')).toEqual([]);
    t.close();
    await post;
  });
});

/** A RelayClient whose envelopes and streams go over `WebSocket` only (no HTTP in these tests). */
function socketsOnlyClient(endpoints: string[], WebSocket: WebSocketConstructor): RelayClient {
  return new RelayClient({
    endpoints,
    auth: { device: 'd_x' as never, secretKey: new Uint8Array(randomBytes(32)), suite: ed25519Node },
    relayName: () => 'relay.example',
    timeoutMs: 10_000,
    fetch: () => Promise.reject(new Error('no HTTP in this test')),
    envelopeTransport: (endpoint, auth, timeoutMs, onLost) =>
      new WsEnvelopeTransport({
        endpoint,
        device: auth.device,
        secretKey: auth.secretKey,
        suite: ed25519Node,
        relayName: auth.relayName,
        WebSocket,
        now: Date.now,
        timeoutMs,
        ...(onLost === undefined ? {} : { onLost }),
      }),
  });
}

describe('RelayClient: subscriptions follow endpoint failover (scripted sockets)', () => {
  const ch = `c_${'B'.repeat(22)}`;
  const client = () => socketsOnlyClient(['https://one.example', 'https://two.example'], FakeSocket);
  const readySocket = (url: string) => {
    const s = FakeSocket.last as FakeSocket;
    expect(s.url).toBe(url);
    s.emit('open');
    s.receive('{"type":"ready","device":"d_x"}');
    return s;
  };
  const subscribes = (s: FakeSocket) =>
    s.sent.flatMap((f) => {
      if (typeof f !== 'string') return [];
      const j = JSON.parse(f) as { type: string; from?: number };
      return j.type === 'subscribe' ? [j.from] : [];
    });

  it('moves the streams to the next endpoint when the socket closes, and back when that one cannot be opened', async () => {
    const rc = client();
    const events: string[] = [];
    let folded = 5;
    const inbox: string[] = [];
    rc.subscribe(
      ch,
      logListener(events, () => folded),
    );
    rc.subscribeInbox({
      up: () => inbox.push('up'),
      hint: () => inbox.push('hint'),
      down: () => inbox.push('down'),
    });
    const one = readySocket('wss://one.example/v1/ws');
    expect(subscribes(one)).toEqual([5]);
    one.receive(`{"type":"subscribed","channel":"${ch}","from":5}`);
    folded = 9;
    // The first endpoint's socket closes: the streams move to the second, from the last folded seq.
    one.emit('close');
    expect(await until(() => FakeSocket.last !== one)).toBe(true);
    expect(rc.endpoint).toBe('https://two.example');
    const two = readySocket('wss://two.example/v1/ws');
    expect(subscribes(two)).toEqual([9]);
    two.receive(`{"type":"subscribed","channel":"${ch}","from":9}`);
    expect(events).toEqual(['up 5', 'down', 'down', 'up 9']);
    expect(inbox).toEqual(['up', 'down', 'down', 'up']);
    // The second endpoint is lost and cannot be opened again: back to the first.
    two.emit('close');
    expect(await until(() => FakeSocket.last !== two)).toBe(true);
    const three = FakeSocket.last as FakeSocket;
    expect(three.url).toBe('wss://one.example/v1/ws');
    three.emit('error');
    expect(await until(() => FakeSocket.last !== three)).toBe(true);
    const four = readySocket('wss://two.example/v1/ws');
    expect(subscribes(four)).toEqual([9]);
    rc.close();
  });

  it('with one endpoint, keeps reconnecting to it', async () => {
    const rc = new RelayClient({
      endpoints: ['https://one.example'],
      auth: { device: 'd_x' as never, secretKey: new Uint8Array(randomBytes(32)), suite: ed25519Node },
      relayName: () => 'relay.example',
      envelopeTransport: (endpoint, auth, timeoutMs, onLost) => {
        expect(onLost).toBeUndefined();
        return new WsEnvelopeTransport({
          endpoint,
          device: auth.device,
          secretKey: auth.secretKey,
          suite: ed25519Node,
          relayName: auth.relayName,
          WebSocket: FakeSocket,
          now: Date.now,
          timeoutMs,
        });
      },
    });
    const events: string[] = [];
    rc.subscribe(ch, logListener(events));
    const one = readySocket('wss://one.example/v1/ws');
    one.emit('close');
    expect(await until(() => FakeSocket.last !== one)).toBe(true);
    readySocket('wss://one.example/v1/ws');
    expect(events).toEqual(['down']);
    rc.close();
  });
});

/**
 * A relay (or a proxy in front of it) that authenticates every socket and then drops it at once:
 * `ready` is no proof the socket works, so the reconnects back off instead of looping.
 */
describe('a relay that drops every socket right after `ready`', () => {
  /** Sockets opened, each one made to open, get ready and (unless `keep`) close at once. */
  const opened: FakeSocket[] = [];
  let keep = false;
  class ReadyThenDrop extends FakeSocket {
    constructor(url: string) {
      super(url);
      opened.push(this);
      queueMicrotask(() => {
        this.emit('open');
        this.receive('{"type":"ready","device":"d_x"}');
        if (!keep) this.emit('close');
      });
    }
  }
  const relayClient = (endpoints: string[]) => socketsOnlyClient(endpoints, ReadyThenDrop);
  /** Inbox hints (up at `ready`, as on the relay) and a channel stream that the relay confirms. */
  const follow = (rc: RelayClient) => {
    rc.subscribeInbox({ up: () => undefined, hint: () => undefined, down: () => undefined });
    rc.subscribe(`c_${'C'.repeat(22)}`, logListener([]));
  };

  for (const endpoints of [['https://one.example'], ['https://one.example', 'https://two.example']]) {
    it(`backs off between reconnects (${endpoints.length} endpoint(s)), and starts again after a socket that lasted`, async () => {
      vi.useFakeTimers();
      opened.length = 0;
      keep = false;
      const rc = relayClient(endpoints);
      try {
        follow(rc);
        await vi.advanceTimersByTimeAsync(2_000);
        // Before: a reconnect every 0.25 s with one endpoint (9 sockets in 2 s), and a loop as fast
        // as sockets open with two. Now the waits double (0.25, 0.5, 1 s…) once every endpoint
        // was tried.
        expect(opened.length).toBeGreaterThanOrEqual(3);
        expect(opened.length).toBeLessThanOrEqual(endpoints.length + 4);
        // It keeps trying (at most 5 s apart), and a socket that lasts resets the backoff.
        keep = true;
        await vi.advanceTimersByTimeAsync(6_000);
        const stable = opened.at(-1) as FakeSocket;
        expect(stable.closed).toBe(false);
        await vi.advanceTimersByTimeAsync(STABLE_MS);
        keep = false;
        const before = opened.length;
        stable.emit('close');
        await vi.advanceTimersByTimeAsync(300);
        expect(opened.length).toBeGreaterThan(before);
      } finally {
        rc.close();
        vi.useRealTimers();
      }
    });
  }
});

/**
 * A relay that goes silent (a network path that stops carrying anything, the socket still open):
 * the socket the transport gives up on is closed at once, not held for `ws`'s 30 s closing
 * handshake (which kept a finished CLI process alive that long).
 */
describe('a relay gone silent (real sockets)', () => {
  it('closes the connection at once when a post times out, and when the transport is closed', {
    timeout: 30_000,
  }, async () => {
    // A relay that authenticates every socket, behind a TCP hop that can stop carrying anything.
    const http = httpServer();
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (ws) => ws.on('message', (_d, binary) => !binary && ws.send('{"type":"ready"}')));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    let silent = false;
    const closed: number[] = [];
    const conns = new Set<Socket>();
    const hop = tcpServer((c) => {
      const up = connect((http.address() as AddressInfo).port, '127.0.0.1');
      for (const x of [c, up]) {
        conns.add(x);
        x.on('error', () => undefined);
      }
      c.on('data', (d) => silent || up.write(d));
      up.on('data', (d) => silent || c.write(d));
      c.on('close', () => {
        closed.push(Date.now());
        up.destroy();
      });
    });
    await new Promise<void>((r) => hop.listen(0, '127.0.0.1', r));
    const t = new WsEnvelopeTransport({
      endpoint: `http://127.0.0.1:${(hop.address() as AddressInfo).port}`,
      device: 'd_x' as never,
      secretKey: new Uint8Array(randomBytes(32)),
      suite: ed25519Node,
      relayName: () => 'relay.example',
      WebSocket: CorkedWebSocket,
      now: Date.now,
      timeoutMs: 300,
    });
    /** Whether the hop saw the client's side close within 5 s (`ws`'s close() takes 30). */
    const closesSoon = async (n: number) => {
      const deadline = Date.now() + 5_000;
      while (closed.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return closed.length >= n;
    };
    try {
      // 1. A post with no answer: dropped as timed out, the connection closed.
      const first = t.post(Uint8Array.of(1, 2, 3));
      await until(() => t.ready);
      silent = true;
      await expect(first).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE', retryable: true });
      expect(await closesSoon(1)).toBe(true);
      // 2. A socket open when the transport is closed (the end of `watch --for`).
      silent = false;
      t.subscribeInbox({ up: () => undefined, hint: () => undefined, down: () => undefined });
      await until(() => t.ready);
      silent = true;
      t.close();
      expect(await closesSoon(2)).toBe(true);
    } finally {
      t.close();
      for (const c of conns) c.destroy();
      hop.close();
      wss.close();
      http.close();
    }
  });
});
