/**
 * The relay's authentication, directory and rate-limit defences, each shown against a real relay
 * (createRelay on a SQLite file, driven through app.request()).
 */
import {
  decodeDeviceCertificate,
  encodeDeviceCertificate,
  issueDeviceCertificate,
  requestHeaders,
  signRequest,
  toBase64url,
  unwrap,
} from '@backchannel/protocol';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RelayConfigInput, resolveConfig } from '../src/config.ts';
import { createRelay, type RelayCore } from '../src/relay.ts';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import {
  Caller,
  cardOf,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  registration,
  revocationOf,
  seedOf,
  suite,
  type TestDevice,
  type TestParty,
  type TestRelay,
  testRelay,
} from './helpers.ts';

const HOUR = 3_600_000;
const relays: TestRelay[] = [];

afterEach(async () => {
  for (const r of relays.splice(0)) await r.close();
});

async function relay(config: Parameters<typeof testRelay>[1] = {}): Promise<TestRelay> {
  const r = await testRelay('sqlite', config);
  relays.push(r);
  return r;
}

/** The same device key, certified by another party's root (what the attacker can do with a public key). */
function certifiedBy(other: TestParty, dev: TestDevice, notBefore = Date.now() - HOUR / 2): Uint8Array {
  return encodeDeviceCertificate(
    issueDeviceCertificate({
      rootSecretKey: other.root.secretKey,
      rootPublicKey: other.root.publicKey,
      devicePublicKey: dev.kp.publicKey,
      name: 'taken',
      role: 'observer',
      notBefore,
      notAfter: notBefore + HOUR,
    }),
  );
}

describe('device certificates are bound to their party', () => {
  it('refuses a certificate from another party for a registered device (CERT_WRONG_PARTY)', async () => {
    const r = await relay();
    const X = makeParty('X');
    const Y = makeParty('Y');
    const dev = makeDevice(X, 'laptop', 'admin');
    await r.caller.publishParty(X, [dev]);
    await r.caller.publishParty(Y, []);

    // With the device key's proof, as if its holder colluded: the first party still keeps it.
    const res = await r.caller.post('/v1/devices', undefined, registration(dev, certifiedBy(Y, dev)));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: 'CERT_WRONG_PARTY' } });

    // X's device keeps X's certificate, role and validity; Y's listing does not show it.
    const listed = await r.caller.get(`/v1/parties/${X.party}/devices`, dev);
    expect(listed.status).toBe(200);
    const certs = (listed.body.certificates as string[]).map((c) =>
      unwrap(decodeDeviceCertificate(Buffer.from(c, 'base64url'))),
    );
    expect(certs.map((c) => [c.body.party, c.body.role])).toEqual([[X.party, 'admin']]);
    const ys = await r.caller.get(`/v1/parties/${Y.party}/devices`, dev);
    expect(ys.body.certificates).toEqual([]);
  });

  it('skips such a certificate carried in another party’s contact card', async () => {
    const r = await relay();
    const X = makeParty('X');
    const Y = makeParty('Y');
    const dev = makeDevice(X, 'laptop', 'admin');
    await r.caller.publishParty(X, [dev]);
    const stolen: TestDevice = { ...dev, party: Y, role: 'observer', certificate: certifiedBy(Y, dev) };
    const put = await r.caller.call('PUT', '/v1/cards', {
      json: { card: toBase64url(cardOf(Y, Date.now(), [stolen])) },
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ devices: 0 });
    const me = await r.core.store.read((tx) => tx.getDevice(dev.device));
    expect(me?.party).toBe(X.party);
    expect(me?.role).toBe('admin');
  });
});

describe('replay protection is per device', () => {
  it("one device's fast clock and traffic neither refuse another's requests nor let its own replays through", async () => {
    const r = await relay({ auth: { replayCacheEntries: 8 } });
    const P = makeParty('P');
    const a = makeDevice(P, 'a');
    const b = makeDevice(P, 'b');
    await r.caller.publishParty(P, [a, b]);
    const path = `/v1/parties/${P.party}/devices`;
    const now = Date.now();
    // Device a's clock runs a minute fast (inside the window) and it sends more than the cache holds.
    for (let i = 0; i < 12; i++) {
      expect((await r.caller.call('GET', `${path}?i=${i}`, { as: a, time: now + 60_000 + i })).status).toBe(
        200,
      );
    }
    // b signs with the right time: accepted.
    const tB = Date.now();
    const fresh = await r.caller.call('GET', path, { as: b, time: tB });
    expect(fresh.status).toBe(200);
    // b's traffic does not reopen a's requests: replays stay refused.
    for (let i = 0; i < 12; i++) {
      expect((await r.caller.call('GET', `${path}?j=${i}`, { as: b })).status).toBe(200);
    }
    for (const i of [0, 11]) {
      const again = await r.caller.call('GET', `${path}?i=${i}`, { as: a, time: now + 60_000 + i });
      expect(again.status).toBe(401);
      expect(['AUTH_REPLAY', 'AUTH_EXPIRED']).toContain(
        (again.body as { error: { code: string } }).error.code,
      );
    }
    expect((await r.caller.call('GET', path, { as: b, time: tB })).status).toBe(401);
  });
});

describe('signed requests name the relay they are for', () => {
  const errorCode = (a: { body: unknown }) => (a.body as { error?: { code: string } }).error?.code;

  /** Two relays (different names) where the same device is registered. */
  async function twoRelays() {
    const x = await relay({ relayName: 'relay-x.example' });
    const y = await relay({ relayName: 'relay-y.example' });
    const P = makeParty('P');
    const a = makeDevice(P, 'a');
    await x.caller.publishParty(P, [a]);
    await y.caller.publishParty(P, [a]);
    return { x, y, P, a };
  }

  it('refuses at relay Y, with AUTH_INVALID, a request correctly signed for relay X (captured or fresh)', async () => {
    const { x, y, P, a } = await twoRelays();
    expect(await y.caller.relayName()).toBe('relay-y.example');
    const path = `/v1/parties/${P.party}/devices`;
    const signedForX = requestHeaders(
      a.device,
      a.kp.secretKey,
      'GET',
      path,
      Date.now(),
      new Uint8Array(0),
      'relay-x.example',
      suite,
    );
    // Relay X accepts it; relay X's operator (or anyone who saw it) replays it to relay Y: refused.
    expect((await x.caller.call('GET', path, { headers: signedForX })).status).toBe(200);
    const replayed = await y.caller.call('GET', path, { headers: signedForX });
    expect(replayed.status).toBe(401);
    expect(errorCode(replayed)).toBe('AUTH_INVALID');
    // A request signed for X that X never saw is refused at Y too, whatever its method.
    const fresh = await y.caller.call('POST', '/v1/key-packages/claim', {
      as: a,
      relay: 'relay-x.example',
      json: { party: P.party },
    });
    expect(fresh.status).toBe(401);
    expect(errorCode(fresh)).toBe('AUTH_INVALID');
    // The same device signing for Y is accepted there.
    expect((await y.caller.call('GET', path, { as: a })).status).toBe(200);
  });

  it('accepts a request signed for the relay name at every node that serves that name', async () => {
    const { x, P, a } = await twoRelays();
    // Another node of relay X (same name, its own store and replay cache): a client failing over
    // between endpoints of one relay signs for the same name and is accepted at each.
    const x2 = await relay({ relayName: 'relay-x.example' });
    await x2.caller.publishParty(P, [a]);
    const path = `/v1/parties/${P.party}/devices`;
    for (const node of [x, x2]) expect((await node.caller.call('GET', path, { as: a })).status).toBe(200);
  });

  it('refuses at relay Y a WebSocket auth frame signed for relay X, and closes the socket (4401)', async () => {
    const { x, y, a } = await twoRelays();
    const connect = (r: TestRelay) => {
      const frames: { type: string; code?: string }[] = [];
      const sock = { closed: undefined as number | undefined };
      const conn = r.core.hub.attach({
        send: (d) => {
          if (typeof d === 'string') frames.push(JSON.parse(d) as { type: string; code?: string });
        },
        bufferedAmount: 0,
        close: (code) => {
          sock.closed = code;
        },
      });
      return { conn, frames, sock };
    };
    const authFor = (relayName: string, time = Date.now()) =>
      JSON.stringify({
        type: 'auth',
        device: a.device,
        time,
        sig: toBase64url(
          signRequest(a.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), relayName, suite),
        ),
      });
    const settled = async (frames: { type: string }[]) => {
      for (let i = 0; i < 200 && !frames.some((f) => f.type === 'ready' || f.type === 'error'); i++)
        await new Promise((r) => setTimeout(r, 10));
      return frames.find((f) => f.type === 'ready' || f.type === 'error');
    };
    // The frame relay X accepts…
    const frame = authFor('relay-x.example');
    const atX = connect(x);
    atX.conn.onMessage(frame);
    expect(await settled(atX.frames)).toMatchObject({ type: 'ready' });
    // …replayed to relay Y: refused with the typed code, the socket closed.
    const atY = connect(y);
    atY.conn.onMessage(frame);
    expect(await settled(atY.frames)).toMatchObject({ type: 'error', code: 'AUTH_INVALID' });
    expect(atY.sock.closed).toBe(4401);
    // Signed for Y, the same device is accepted at Y.
    const ok = connect(y);
    ok.conn.onMessage(authFor('relay-y.example'));
    expect(await settled(ok.frames)).toMatchObject({ type: 'ready' });
  });
});

describe('revocations belong to the party that signed them', () => {
  it("another party's revocation of a device id does not revoke the device its own party registers", async () => {
    const r = await relay();
    const X = makeParty('X');
    const Y = makeParty('Y');
    const dev = makeDevice(X, 'laptop', 'admin');
    await r.caller.publishParty(X, []);
    await r.caller.publishParty(Y, []);
    // Y revokes X's device id before X registers it (the id is public once the key is).
    const early = await r.caller.post('/v1/revocations', undefined, {
      revocation: toBase64url(revocationOf({ ...dev, party: Y }, Date.now() - 5000)),
    });
    expect(early.status).toBe(200);
    const reg = await r.caller.post('/v1/devices', undefined, registration(dev));
    expect(reg.status).toBe(200);
    expect((await r.caller.get(`/v1/parties/${X.party}/devices`, dev)).status).toBe(200);
    // Once registered, Y cannot revoke it at all; X's own revocation still works.
    const late = await r.caller.post('/v1/revocations', undefined, {
      revocation: toBase64url(revocationOf({ ...dev, party: Y })),
    });
    expect(late.status).toBe(400);
    expect(late.body).toMatchObject({ error: { code: 'CERT_WRONG_PARTY' } });
    expect((await r.caller.get(`/v1/parties/${X.party}/devices`, dev)).status).toBe(200);
    const own = await r.caller.post('/v1/revocations', undefined, {
      revocation: toBase64url(revocationOf(dev)),
    });
    expect(own.status).toBe(200);
    const after = await r.caller.get(`/v1/parties/${X.party}/devices`, dev);
    expect(after.body).toMatchObject({ error: { code: 'CERT_REVOKED' } });
  });

  it("a party's revocation list holds only its own revocations", async () => {
    const r = await relay();
    const X = makeParty('X');
    const Y = makeParty('Y');
    const dev = makeDevice(X, 'laptop', 'admin');
    const reader = makeDevice(Y, 'reader');
    await r.caller.publishParty(X, []);
    await r.caller.publishParty(Y, [reader]);
    const mine = revocationOf(dev, Date.now() - 1000);
    expect(
      (await r.caller.post('/v1/revocations', undefined, { revocation: toBase64url(mine) })).status,
    ).toBe(200);
    // An earlier revocation by Y of the same id must not replace X's record.
    const theirs = revocationOf({ ...dev, party: Y }, Date.now() - 9000);
    expect(
      (await r.caller.post('/v1/revocations', undefined, { revocation: toBase64url(theirs) })).status,
    ).toBe(200);
    const xs = await r.caller.get(`/v1/parties/${X.party}/devices`, reader);
    expect(xs.body.revocations).toEqual([toBase64url(mine)]);
    const ys = await r.caller.get(`/v1/parties/${Y.party}/devices`, reader);
    expect(ys.body.revocations).toEqual([toBase64url(theirs)]);
  });
});

/** A relay that takes the client's address from a test header (the Node server passes the socket's). */
function relayWithAddresses(config: RelayConfigInput): { core: RelayCore; caller: Caller } {
  const dir = mkdtempSync(join(tmpdir(), 'bc-relay-'));
  const core = createRelay({
    config: resolveConfig({ dataDir: dir, ...config }),
    store: openSqliteStore({ path: join(dir, 'relay.db') }),
    seed: seedOf(`relay ${dir}`),
    clientAddress: (c) => c.req.header('x-test-address') ?? 'unknown',
  });
  relays.push({
    core,
    caller: new Caller(async (path, init) => core.app.request(path, init)),
    dir,
    async close() {
      await core.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
  return { core, caller: new Caller(async (path, init) => core.app.request(path, init)) };
}

const from = (address: string) => ({ headers: { 'x-test-address': address } });
const code = (a: { body: unknown }) => (a.body as { error?: { code: string } }).error?.code;

describe('unsigned posts have their own bucket per address', () => {
  it('limits card, device and revocation posts per address, apart from signed traffic', async () => {
    const { caller } = relayWithAddresses({ rateLimits: { unsigned: { perSecond: 0.001, burst: 3 } } });
    const P = makeParty('P');
    const dev = makeDevice(P, 'd');
    const card = { card: toBase64url(cardOf(P)) };
    expect((await caller.call('PUT', '/v1/cards', { json: card, ...from('10.0.0.1') })).status).toBe(200);
    const cert = registration(dev);
    expect((await caller.call('POST', '/v1/devices', { json: cert, ...from('10.0.0.1') })).status).toBe(200);
    const junk = { revocation: toBase64url(new Uint8Array(8)) };
    expect((await caller.call('POST', '/v1/revocations', { json: junk, ...from('10.0.0.1') })).status).toBe(
      400,
    );
    const fourth = await caller.call('PUT', '/v1/cards', { json: card, ...from('10.0.0.1') });
    expect(fourth.status).toBe(429);
    expect(code(fourth)).toBe('RATE_LIMITED');
    expect(Number(fourth.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another address still may; and signed requests from the same address are not counted here.
    expect((await caller.call('PUT', '/v1/cards', { json: card, ...from('10.0.0.2') })).status).toBe(200);
    const signed = await caller.call('GET', `/v1/parties/${P.party}/devices`, {
      as: dev,
      ...from('10.0.0.1'),
    });
    expect(signed.status).toBe(200);
  });
});
describe('key-package claims have a budget per claiming device', () => {
  it("refuses a device that claims too often (RATE_LIMITED) before it drains a party's packages", async () => {
    const r = await relay({ rateLimits: { keyPackageClaims: { perSecond: 0.001, burst: 2 } } });
    const A = makeParty('A');
    const B = makeParty('B');
    const a1 = makeDevice(A, 'a1');
    const a2 = makeDevice(A, 'a2');
    const b = makeDevice(B, 'b');
    await r.caller.publishParty(A, [a1, a2]);
    await r.caller.publishParty(B, [b]);
    const packages = Array.from({ length: 10 }, (_, i) => toBase64url(Uint8Array.of(i + 1)));
    expect((await r.caller.post('/v1/key-packages', b, { keyPackages: packages })).status).toBe(200);
    const claim = (as: TestDevice) => r.caller.post('/v1/key-packages/claim', as, { party: B.party });
    expect((await claim(a1)).status).toBe(200);
    expect((await claim(a1)).status).toBe(200);
    const third = await claim(a1);
    expect(third.status).toBe(429);
    expect(code(third)).toBe('RATE_LIMITED');
    expect(await r.core.store.read((tx) => tx.countKeyPackages(b.device))).toMatchObject({ oneTime: 8 });
    // Another claiming device has its own budget.
    expect((await claim(a2)).status).toBe(200);
  });

  it('defaults to a budget a person opening channels never meets', () => {
    expect(resolveConfig({}).rateLimits.keyPackageClaims).toEqual({ perSecond: 0.2, burst: 20 });
  });
});
describe('writes have their own bucket per device', () => {
  it('refuses state-changing requests past the write budget, but not reads or other devices', async () => {
    const r = await relay({ rateLimits: { writes: { perSecond: 0.001, burst: 3 } } });
    const P = makeParty('P');
    const d = makeDevice(P, 'd');
    const e = makeDevice(P, 'e');
    await r.caller.publishParty(P, [d, e]);
    const upload = (as: TestDevice, i: number) =>
      r.caller.post('/v1/key-packages', as, { keyPackages: [toBase64url(Uint8Array.of(i))] });
    for (let i = 1; i <= 3; i++) expect((await upload(d, i)).status).toBe(200);
    const refused = await upload(d, 4);
    expect(refused.status).toBe(429);
    expect(code(refused)).toBe('RATE_LIMITED');
    expect((await r.caller.get(`/v1/parties/${P.party}/devices`, d)).status).toBe(200);
    expect((await upload(e, 1)).status).toBe(200);
  });

  it('counts envelope posts, signed or not, as writes of their sender (after the envelope verifies)', async () => {
    const r = await relay({ rateLimits: { writes: { perSecond: 0.001, burst: 2 } } });
    const P = makeParty('P');
    const d = makeDevice(P, 'd', 'admin');
    await r.caller.publishParty(P, [d]);
    const ch = newChannel();
    expect((await r.caller.append(d, commit(d, ch, 0))).status).toBe(201);
    // Forged unsigned posts naming d as sender do not spend d's budget.
    for (let i = 0; i < 3; i++) {
      const forged = envelope(makeDevice(P, 'x'), ch, { sender: d.device });
      const res = await r.caller.call('POST', `/v1/channels/${ch}/envelopes`, {
        json: { envelope: toBase64url(forged.wire) },
      });
      expect(code(res)).toBe('SIG_INVALID');
    }
    const unsigned = await r.caller.call('POST', `/v1/channels/${ch}/envelopes`, {
      json: { envelope: toBase64url(envelope(d, ch).wire) },
    });
    expect(unsigned.status).toBe(201);
    const over = await r.caller.append(d, envelope(d, ch));
    expect(over.status).toBe(429);
  });

  it('defaults to 20 writes a second, bursts of 200, per device', () => {
    expect(resolveConfig({}).rateLimits.writes).toEqual({ perSecond: 20, burst: 200 });
  });
});
