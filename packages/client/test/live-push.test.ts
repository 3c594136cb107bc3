/**
 * Live delivery (Backchannel.live) against a real listening relay: entries pushed on the
 * WebSocket as binary frames are folded with the checks of sync; a forged entry is refused with
 * the evidence sync keeps; a lost frame is fetched as a range; a lost socket resumes from the
 * last folded seq; a lost endpoint's streams move to the next endpoint; channels joined while
 * live are followed without a call to follow. Nothing is lost or folded twice.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEntry } from '@backchannel/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import type { Channel, DraftEvent } from '../src/sdk/channel.ts';
import { decodeEventRecords, type EventRecord } from '../src/sdk/channel-record.ts';
import { Backchannel } from '../src/sdk/client.ts';
import { ClientError } from '../src/sdk/errors.ts';
import type { Live } from '../src/sdk/live.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../src/sdk/mls-crypto.node.ts';
import { createMlsFactory } from '../src/sdk/mls-factory.ts';
import { openRecoveryKit } from '../src/sdk/recovery.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';
import { decodeEntryFrame, type WebSocketConstructor } from '../src/sdk/ws-transport.ts';
import { forwarder } from './forwarder.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
let dir: string;
let relay: RelayProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bc-live-'));
  relay = await startRelayProcess(join(dir, 'relay'));
}, 30_000);
afterAll(async () => {
  await relay.stop();
});

/** What B's socket saw and did; `tamper` may change, drop or hold back each binary frame. */
interface Wire {
  tamper: (frame: Uint8Array) => Uint8Array[];
  readonly sockets: WebSocket[];
  /** The URL each socket was opened to. */
  readonly urls: string[];
  readonly subscribes: Array<{ channel: string; from: number }>;
  /** GET …/entries requests (range fetches and polls). */
  fetches: number;
  /** While set, B's reads of a party's devices fail as a lost network does (counted). */
  directoryDown: boolean;
  directoryFailures: number;
}

function wire(): Wire {
  return {
    tamper: (f) => [f],
    sockets: [],
    urls: [],
    subscribes: [],
    fetches: 0,
    directoryDown: false,
    directoryFailures: 0,
  };
}

/** The `ws` WebSocket, with B's incoming binary frames passed through `w.tamper`. */
function tapped(w: Wire): WebSocketConstructor {
  const handler = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage') as PropertyDescriptor;
  return class extends WebSocket {
    constructor(url: string) {
      super(url);
      w.sockets.push(this);
      w.urls.push(url);
      Object.defineProperty(this, 'onmessage', {
        configurable: true,
        get: () => handler.get?.call(this),
        set: (f: ((ev: { data: unknown }) => void) | null) =>
          handler.set?.call(
            this,
            f === null
              ? null
              : (ev: { data: unknown }) => {
                  if (!(ev.data instanceof ArrayBuffer)) return f(ev);
                  for (const out of w.tamper(new Uint8Array(ev.data))) f({ data: out.slice().buffer });
                },
          ),
      });
    }
    override send(data: string | Uint8Array): void {
      if (typeof data === 'string') {
        const f = JSON.parse(data) as { type: string; channel: string; from: number };
        if (f.type === 'subscribe') w.subscribes.push({ channel: f.channel, from: f.from });
      }
      super.send(data);
    }
  } as unknown as WebSocketConstructor;
}

const device = (
  name: string,
  transport: 'ws' | 'http',
  w?: Wire,
  relays: string[] = [relay.url],
  now: () => number = Date.now,
) =>
  Backchannel.open({
    now,
    store: SqliteLocalStore.open({
      path: join(dir, name, 'device.db'),
      passphrase: name,
      kdf: { N: 1 << 10, r: 8, p: 1 },
    }),
    mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
    relays,
    random,
    signatures: ed25519Node,
    sha256: sha256Node,
    updateEveryMessages: 1_000_000,
    transport,
    webSocket: w === undefined ? WebSocket : tapped(w),
    fetch: (input, init) => {
      if (w !== undefined && init.method === 'GET' && input.includes('/entries')) w.fetches++;
      if (w?.directoryDown === true && input.endsWith('/devices')) {
        w.directoryFailures++;
        return Promise.reject(new TypeError('fetch failed'));
      }
      return fetch(input, init);
    },
  });

/**
 * A (posting over HTTP) and B (receiving on its tapped socket, through `relays`) in an accepted
 * channel.
 */
async function pair(tag: string, relays: string[] = [relay.url]) {
  const w = wire();
  const a = await device(`A${tag}`, 'http');
  const b = await device(`B${tag}`, 'ws', w, relays);
  await a.createParty({ partyName: 'A', deviceName: 'a', relays: [relay.url] });
  const B = await b.createParty({ partyName: 'B', deviceName: 'b', role: 'principal', relays: [relay.url] });
  const chA = await a.outreach(B.party, 'hello');
  await b.checkInbox();
  const chB = await b.channel(chA.id);
  await chB.sync();
  await chB.send({ kind: 'channel.accept' } as DraftEvent);
  await b.outbox.flush();
  await chA.sync();
  await chB.sync();
  return { a, b, chA, chB, w };
}

/**
 * B follows live; every record it is handed is kept, with the errors. A long `pollMs` makes
 * polling unable to deliver within a test's waits: what arrives was pushed. B sends no delivered
 * receipts unless `receipts` (these tests count the entries of the log).
 */
async function follow(b: Backchannel, pollMs = 200, receipts = false) {
  const got: EventRecord[] = [];
  const errors: unknown[] = [];
  const live = await b.live({
    onRecords: (_ch, records) => got.push(...records),
    onError: (_ch, e) => errors.push(e),
    pollMs,
    acknowledgeDelivery: receipts,
  });
  return { live, got, errors };
}

/** B accepts the channel (live folds it, as anything else B posts). */
async function accept(b: Backchannel, id: string): Promise<void> {
  const ch = await b.channel(id);
  await ch.send({ kind: 'channel.accept' } as DraftEvent);
  await b.outbox.flush();
}

/** No HTTP poll within a test: whatever arrives was pushed on the socket. */
const NEVER_POLL = 600_000;

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`never happened: ${what}`);
}

async function send(a: Backchannel, ch: Channel, texts: string[]): Promise<void> {
  await ch.sendMany(texts.map((text) => ({ kind: 'message', text }) as DraftEvent));
  while ((await a.outbox.flush()).sent > 0) {}
}

/** The message texts among the records, sorted (the outbox posts in no particular order). */
const messages = (records: readonly EventRecord[]) =>
  records
    .flatMap((r) => ('event' in r && r.event.kind === 'message' ? [(r.event as { text: string }).text] : []))
    .sort();

/** The records' seqs are consecutive from `from`: nothing skipped, nothing twice. */
function expectConsecutive(records: readonly EventRecord[], from: number): void {
  expect(records.map((r) => r.seq)).toEqual(Array.from({ length: records.length }, (_, i) => from + i));
}

const texts = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const sorted = (xs: string[]) => [...xs].sort();

describe('live delivery on the WebSocket', () => {
  it('folds pushed entries with the checks of sync, and verifies the pushed checkpoint', async () => {
    const { a, b, chA, chB, w } = await pair('1');
    let live: Live | undefined;
    try {
      const from = chB.record.nextSeq;
      const f = await follow(b);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      const fetchesBefore = w.fetches;
      await send(a, chA, texts('p', 30));
      await until('30 messages', () => messages(f.got).length === 30);
      await live.idle();
      expect(messages(f.got)).toEqual(sorted(texts('p', 30)));
      expectConsecutive(f.got, from);
      expect(f.got.every((r) => r.status === 'ok')).toBe(true);
      expect(f.errors).toEqual([]);
      // Pushed, not fetched; the relay's checkpoint was checked against B's own root.
      expect(w.fetches).toBe(fetchesBefore);
      expect(w.subscribes).toEqual([{ channel: chB.id, from }]);
      expect(chB.record.nextSeq).toBe(chA.record.nextSeq + 30);
      await until('checkpoint verified', () => chB.record.checkpointSize === chB.record.nextSeq);
      // The folded view is the one sync builds.
      expect(messages(chB.view.timeline)).toEqual(sorted(texts('p', 30)));
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('sends the delivered receipt of what it folds, as syncAll does, without a sync', async () => {
    const { a, b, chA, chB } = await pair('r');
    let live: Live | undefined;
    try {
      const f = await follow(b, NEVER_POLL, true);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      const [sent] = await chA.sendMany([{ kind: 'message', text: 'did this arrive?' } as DraftEvent]);
      await a.outbox.flush();
      await until('the message', () => messages(f.got).length === 1);
      await live.idle();
      // B's receipt went out by itself; A reads it.
      for (let i = 0; i < 100; i++) {
        await chA.sync();
        if (chA.view.state.receipts.get(sent as string)?.delivered[b.identity.party] !== undefined) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(chA.view.state.receipts.get(sent as string)?.delivered[b.identity.party]).toBeDefined();
      expect(f.errors).toEqual([]);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('refuses a forged pushed entry: unreadable, and the checkpoint kept as fork evidence', async () => {
    const { a, b, chA, chB, w } = await pair('2');
    let live: Live | undefined;
    try {
      const f = await follow(b);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      // The relay (or something on the way) alters one bit of the 3rd entry's device signature.
      let n = 0;
      let forgedSeq = -1;
      w.tamper = (frame) => {
        const e = decodeEntryFrame(frame);
        if (e === undefined || ++n !== 3) return [frame];
        const d = decodeEntry(e.entry);
        if (!d.ok) return [frame];
        forgedSeq = e.seq;
        const sig = d.value.envelope.sig;
        const out = frame.slice();
        const at = indexOf(out, sig);
        out[at + 10] = (out[at + 10] as number) ^ 1;
        return [out];
      };
      await send(a, chA, texts('f', 6));
      await until('an error', () => f.errors.length > 0);
      expect(f.errors[0]).toBeInstanceOf(ClientError);
      expect((f.errors[0] as ClientError).code).toBe('FORK_DETECTED');
      // As sync keeps a forged entry: stored, as unreadable for its signature.
      const stored: EventRecord[] = [];
      for (const k of await b.store.keys(`ev:${chB.id}:`))
        stored.push(...decodeEventRecords((await b.store.get(k)) as Uint8Array));
      const forged = stored.find((r) => r.seq === forgedSeq);
      expect(forged).toMatchObject({ status: 'unreadable', code: 'SIG_INVALID' });
      const evidence = await b.store.keys(`fork:${chB.id}:`);
      expect(evidence).toHaveLength(1);
      const kept = JSON.parse(new TextDecoder().decode(await b.store.get(evidence[0] as string))) as Record<
        string,
        unknown
      >;
      expect(kept).toMatchObject({ channel: chB.id, localSize: chB.record.nextSeq });
      expect(String(kept.checkpoint)).toContain(`\n${chB.record.nextSeq}\n`);
      // The checkpoint that did not match was not taken as verified.
      expect(chB.record.checkpointSize).toBeLessThan(chB.record.nextSeq);
      expect(live.isLive(chB.id)).toBe(false);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('fetches the range when a pushed entry goes missing: no gap, no duplicate', async () => {
    const { a, b, chA, chB, w } = await pair('3');
    let live: Live | undefined;
    try {
      const from = chB.record.nextSeq;
      const f = await follow(b);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      const fetchesBefore = w.fetches;
      let n = 0;
      w.tamper = (frame) => (decodeEntryFrame(frame) !== undefined && ++n === 4 ? [] : [frame]);
      await send(a, chA, texts('g', 12));
      await until('12 messages', () => messages(f.got).length === 12);
      await live.idle();
      expect(n).toBeGreaterThanOrEqual(4);
      expect(w.fetches).toBeGreaterThan(fetchesBefore);
      expect(messages(f.got)).toEqual(sorted(texts('g', 12)));
      expectConsecutive(f.got, from);
      expect(f.errors).toEqual([]);
      expect(live.isLive(chB.id)).toBe(true);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('fetches the range when pushed entries arrive out of order: no gap, no duplicate', async () => {
    const { a, b, chA, chB, w } = await pair('5');
    let live: Live | undefined;
    try {
      const from = chB.record.nextSeq;
      const f = await follow(b);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      const fetchesBefore = w.fetches;
      // The 3rd entry frame is held back and delivered after the 4th.
      let n = 0;
      let held: Uint8Array | undefined;
      w.tamper = (frame) => {
        if (decodeEntryFrame(frame) === undefined) return [frame];
        n++;
        if (n === 3) {
          held = frame;
          return [];
        }
        if (n === 4 && held !== undefined) return [frame, held];
        return [frame];
      };
      await send(a, chA, texts('o', 10));
      await until('10 messages', () => messages(f.got).length === 10);
      await live.idle();
      expect(n).toBeGreaterThanOrEqual(4);
      expect(w.fetches).toBeGreaterThan(fetchesBefore);
      expect(messages(f.got)).toEqual(sorted(texts('o', 10)));
      expectConsecutive(f.got, from);
      expect(f.errors).toEqual([]);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('resumes from the last folded seq after the socket is lost: no gap, no duplicate', async () => {
    const { a, b, chA, chB, w } = await pair('4');
    let live: Live | undefined;
    try {
      const from = chB.record.nextSeq;
      const f = await follow(b);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      await send(a, chA, texts('r', 10));
      await until('10 messages', () => messages(f.got).length === 10);
      await live.idle();
      const folded = chB.record.nextSeq;
      // The connection drops (no close handshake); A goes on sending meanwhile.
      (w.sockets.at(-1) as WebSocket).terminate();
      await send(a, chA, texts('s', 10));
      await until('20 messages', () => messages(f.got).length === 20);
      await until('B is live again', () => live?.isLive(chB.id) === true);
      await send(a, chA, texts('t', 5));
      await until('25 messages', () => messages(f.got).length === 25);
      await live.idle();
      expect(messages(f.got)).toEqual(sorted([...texts('r', 10), ...texts('s', 10), ...texts('t', 5)]));
      expectConsecutive(f.got, from);
      expect(f.errors).toEqual([]);
      expect(w.sockets.length).toBeGreaterThanOrEqual(2);
      // The new socket subscribed from the seq after the last one B had folded (or later, when
      // a poll over HTTP folded more while the socket was down).
      const again = w.subscribes.at(-1) as { from: number };
      expect(w.subscribes[0]).toEqual({ channel: chB.id, from });
      expect(again.from).toBeGreaterThanOrEqual(folded);
      expect(again.from).toBeLessThanOrEqual(folded + 10);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });
});

describe('live delivery across relay endpoints', () => {
  it("moves to the next endpoint when the live socket's endpoint is lost: pushed, no gap, no duplicate", async () => {
    // B reaches the relay first through a forwarding address, then directly.
    const fwd = await forwarder(relay.port);
    const { a, b, chA, chB, w } = await pair('6', [fwd.url, relay.url]);
    let live: Live | undefined;
    try {
      const from = chB.record.nextSeq;
      const f = await follow(b, NEVER_POLL);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      expect(w.urls).toHaveLength(1);
      expect(w.urls[0]?.startsWith(fwd.url.replace(/^http/, 'ws'))).toBe(true);
      await send(a, chA, texts('r', 10));
      await until('10 messages', () => messages(f.got).length === 10);
      await live.idle();
      const folded = chB.record.nextSeq;
      const fetchesBefore = w.fetches;
      // The forwarding address goes away (its connections with it); A goes on sending.
      await fwd.kill();
      await send(a, chA, texts('s', 10));
      await until('20 messages', () => messages(f.got).length === 20);
      await until('B is live again', () => live?.isLive(chB.id) === true);
      await send(a, chA, texts('t', 5));
      await until('25 messages', () => messages(f.got).length === 25);
      await live.idle();
      expect(messages(f.got)).toEqual(sorted([...texts('r', 10), ...texts('s', 10), ...texts('t', 5)]));
      expectConsecutive(f.got, from);
      expect(f.errors).toEqual([]);
      // The stream moved to the direct endpoint and resumed from the seq after the last folded
      // one; it was pushed there (no HTTP fetch: polling is off for this test).
      expect(w.urls.at(-1)?.startsWith(relay.url.replace(/^http/, 'ws'))).toBe(true);
      expect(w.subscribes.at(-1)).toEqual({ channel: chB.id, from: folded });
      expect(w.fetches).toBe(fetchesBefore);
      // Posts follow too: B's next send goes over the direct endpoint's socket.
      await chB.send({ kind: 'message', text: 'from B' } as DraftEvent);
      expect(await b.outbox.flush()).toMatchObject({ sent: 1, pending: 0 });
      expect(b.relay.endpoint).toBe(relay.url);
    } finally {
      live?.stop();
      a.close();
      b.close();
      await fwd.kill();
    }
  });
  it('moves on when the socket cannot be opened on the current endpoint at all', async () => {
    const fwd = await forwarder(relay.port);
    const { a, b, chA, chB, w } = await pair('10', [fwd.url, relay.url]);
    let live: Live | undefined;
    try {
      expect(b.relay.endpoint).toBe(fwd.url);
      await fwd.kill(); // gone before B goes live: its first socket cannot be opened
      const from = chB.record.nextSeq;
      const f = await follow(b, NEVER_POLL);
      live = f.live;
      await until('B is live', () => live?.isLive(chB.id) === true);
      expect(w.urls[0]?.startsWith(fwd.url.replace(/^http/, 'ws'))).toBe(true);
      expect(w.urls.at(-1)?.startsWith(relay.url.replace(/^http/, 'ws'))).toBe(true);
      await send(a, chA, texts('u', 6));
      await until('6 messages', () => messages(f.got).length === 6);
      await live.idle();
      expectConsecutive(f.got, from);
      expect(messages(f.got)).toEqual(sorted(texts('u', 6)));
      expect(f.errors).toEqual([]);
    } finally {
      live?.stop();
      a.close();
      b.close();
      await fwd.kill();
    }
  });
});

describe('channels joined while live', () => {
  it('follows a channel joined from a pushed inbox hint, and one this device opens, without follow()', async () => {
    const w = wire();
    const a = await device('A7', 'http');
    const b = await device('B7', 'ws', w);
    let live: Live | undefined;
    try {
      await a.createParty({ partyName: 'A', deviceName: 'a', relays: [relay.url] });
      const B = await b.createParty({
        partyName: 'B',
        deviceName: 'b',
        role: 'principal',
        relays: [relay.url],
      });
      // B follows live with no channel yet, and no polling: only the socket can tell it anything.
      const f = await follow(b, NEVER_POLL);
      live = f.live;
      expect(live.channels).toEqual([]);
      await until('B has a socket', () => b.relay.endpoint === relay.url && w.sockets.length === 1);
      const chA = await a.outreach(B.party, 'hello');
      await until('B joined and follows', () => live?.isLive(chA.id) === true);
      expect(live.channels).toEqual([chA.id]);
      await until('B folded the outreach', () =>
        f.got.some((r) => 'event' in r && r.event.kind === 'outreach'),
      );
      await accept(b, chA.id);
      await chA.sync();
      await send(a, chA, texts('j', 8));
      await until('8 messages', () => messages(f.got).length === 8);
      await live.idle();
      // Everything from the channel's first entry, pushed: the outreach, B's acceptance, the messages.
      expectConsecutive(f.got, 0);
      expect(f.got.some((r) => 'event' in r && r.event.kind === 'outreach')).toBe(true);
      expect(messages(f.got)).toEqual(sorted(texts('j', 8)));
      expect(w.fetches).toBe(0);
      expect(f.errors).toEqual([]);
      // A channel B opens itself is followed as well.
      const chB2 = await b.outreach(a.identity.party, 'and another');
      await until('B follows its own channel', () => live?.isLive(chB2.id) === true);
      expect([...live.channels].sort()).toEqual([chA.id, chB2.id].sort());
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('without a socket, joins by polling the inbox and follows by polling the channel', async () => {
    const a = await device('A8', 'http');
    const b = await device('B8', 'http');
    let live: Live | undefined;
    try {
      await a.createParty({ partyName: 'A', deviceName: 'a', relays: [relay.url] });
      const B = await b.createParty({
        partyName: 'B',
        deviceName: 'b',
        role: 'principal',
        relays: [relay.url],
      });
      const f = await follow(b, 100);
      live = f.live;
      const chA = await a.outreach(B.party, 'hello');
      await until('B follows', () => live?.channels.includes(chA.id) === true);
      await until('B folded the outreach', () =>
        f.got.some((r) => 'event' in r && r.event.kind === 'outreach'),
      );
      await accept(b, chA.id);
      await chA.sync();
      await send(a, chA, texts('q', 5));
      await until('5 messages', () => messages(f.got).length === 5);
      await live.idle();
      expectConsecutive(f.got, 0);
      expect(live.isLive(chA.id)).toBe(false);
      expect(f.errors).toEqual([]);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });

  it('a pushed page that needs the directory while it cannot be read is fetched again once it can: the channel is still followed', async () => {
    const { a, b, chB, w } = await pair('-dir');
    let offset = 0;
    const l = await device('L-dir', 'http', undefined, [relay.url], () => Date.now() + offset);
    const n = await device('N-dir', 'http');
    let live: Live | undefined;
    try {
      // B's second principal, on a laptop, is in the channel too.
      const laptop = await b.addDevice('laptop', 'principal');
      await l.enroll(laptop);
      await b.syncAll();
      await l.checkInbox();
      const chL = await l.channel(chB.id);
      await chL.sync();
      const f = await follow(b, 200);
      live = f.live;
      // A loses its only device, recovers the party onto a new one and revokes the lost one;
      // B cannot reach the directory meanwhile, so it does not know of the revocation.
      const { kit, code } = await a.recoveryKit({ N: 1 << 10, r: 8, p: 1 });
      const lost = a.identity.device;
      w.directoryDown = true;
      const id = await n.recoverParty({ recovered: await openRecoveryKit(kit, code), deviceName: 'desk 2' });
      await n.revokeDevice(lost, 'lost');
      // The laptop re-seats A (its next read of A's directory, past the read interval). B's
      // follower is pushed a commit removing another party's device: it needs that party's
      // revocations, and cannot read them.
      offset = 122_000;
      await l.syncAll();
      expect(l.added).toEqual([{ channel: chB.id, devices: [id.device] }]);
      await until('B tried the directory', () => w.directoryFailures > 0);
      await new Promise((r) => setTimeout(r, 300));
      expect(f.errors).toEqual([]);
      expect((chB.group?.members() ?? []).map((m) => m.device)).toContain(lost);
      w.directoryDown = false;
      await until('B applied the re-seating', () =>
        (chB.group?.members() ?? []).some((m) => m.device === id.device),
      );
      expect((chB.group?.members() ?? []).map((m) => m.device)).not.toContain(lost);
      // Still followed live: what the laptop sends next is pushed.
      await send(l, chL, ['after']);
      await until('pushed after', () => messages(f.got).includes('after'));
      expect(f.errors).toEqual([]);
      expect(f.got.some((r) => r.status === 'unreadable')).toBe(false);
    } finally {
      live?.stop();
      for (const d of [a, b, l, n]) d.close();
    }
  });

  it('limited to named channels, it follows nothing else', async () => {
    const { a, b, chA, chB } = await pair('9');
    let live: Live | undefined;
    try {
      live = await b.live({ channels: [chB.id], pollMs: NEVER_POLL });
      const other = await a.outreach(b.identity.party, 'another');
      await b.checkInbox();
      expect((await b.channelIds()).includes(other.id)).toBe(true);
      expect(live.channels).toEqual([chB.id]);
      await expect(b.live({ channels: [`c_${'x'.repeat(22)}` as never] })).rejects.toMatchObject({
        code: 'CHANNEL_UNKNOWN',
      });
      expect(chA.id).toBe(chB.id);
    } finally {
      live?.stop();
      a.close();
      b.close();
    }
  });
});

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error('not found');
}

describe('entry frames', () => {
  const channel = `c_${'A'.repeat(22)}`;
  const frame = (seqHi: number, seqLo: number, entry: number[], kind = 0x03, ch = channel) => {
    const b = new Uint8Array(33 + entry.length);
    b[0] = kind;
    for (let i = 0; i < 24; i++) b[1 + i] = ch.charCodeAt(i);
    const v = new DataView(b.buffer);
    v.setUint32(25, seqHi);
    v.setUint32(29, seqLo);
    b.set(entry, 33);
    return b;
  };

  it('decodes 0x03 ‖ channel ‖ seq ‖ entry, the entry as a view', () => {
    const b = frame(1, 5, [9, 8, 7]);
    const e = decodeEntryFrame(b);
    expect(e).toEqual({ channel, seq: 2 ** 32 + 5, entry: new Uint8Array([9, 8, 7]) });
    expect(e?.entry.buffer).toBe(b.buffer);
  });

  it('refuses another kind, a short frame, a malformed channel id, an unsafe seq', () => {
    expect(decodeEntryFrame(frame(0, 1, [1], 0x02))).toBeUndefined();
    expect(decodeEntryFrame(frame(0, 1, []))).toBeUndefined();
    expect(decodeEntryFrame(frame(0, 1, [1]).subarray(0, 20))).toBeUndefined();
    expect(decodeEntryFrame(frame(0, 1, [1], 0x03, `c_${'A'.repeat(21)}/`))).toBeUndefined();
    expect(decodeEntryFrame(frame(2 ** 21, 0, [1]))).toBeUndefined();
  });
});
