import {
  decodeContactCard,
  decodeDeviceCertificate,
  encodeCanonical,
  encodeContactCard,
  encodeDeviceCertificate,
  issueDeviceCertificate,
  fromBase64url,
  signWithLabel,
  toBase64url,
  unwrap,
} from '@backchannel/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cardOf,
  makeDevice,
  makeParty,
  registration,
  revocationOf,
  type TestDevice,
  type TestParty,
  type TestRelay,
  testRelay,
} from './helpers.ts';

let r: TestRelay;
let A: TestParty;
let B: TestParty;
let a: TestDevice;
let b1: TestDevice;
let b2: TestDevice;

beforeAll(async () => {
  r = await testRelay();
  A = makeParty('A');
  B = makeParty('B');
  a = makeDevice(A, 'a', 'admin');
  b1 = makeDevice(B, 'b1', 'principal');
  b2 = makeDevice(B, 'b2', 'staff');
  await r.caller.publishParty(A, [a]);
  await r.caller.publishParty(B, [b1, b2]);
});
afterAll(() => r.close());

const putCard = (card: Uint8Array) =>
  r.caller.call('PUT', '/v1/cards', { json: { card: toBase64url(card) } });

describe('contact cards', () => {
  it('publishes, serves, replaces with a newer card, refuses an older one', async () => {
    const P = makeParty('P');
    const t = Date.now();
    expect((await putCard(cardOf(P, t))).status).toBe(200);
    expect((await putCard(cardOf(P, t))).status).toBe(200);
    const sameTimeOtherCard = await putCard(cardOf(P, t, [makeDevice(P, 'x')]));
    expect(sameTimeOtherCard.body).toMatchObject({ error: { code: 'CARD_STALE' } });
    const got = await r.caller.get(`/v1/cards/${P.party}`);
    expect(got.status).toBe(200);
    const d = decodeContactCard(fromBase64url(got.body.card as string));
    expect(d.ok && d.value.body.party === P.party).toBe(true);
    expect((await putCard(cardOf(P, t + 10))).status).toBe(200);
    const older = await putCard(cardOf(P, t + 5));
    expect(older.status).toBe(409);
    expect(older.body).toMatchObject({ error: { code: 'CARD_STALE' } });
    expect((await r.caller.get(`/v1/cards/${P.party}`)).body.issuedAt).toBe(t + 10);
  });

  it('renews the certificates a card carries for registered devices, and registers no new one', async () => {
    const P = makeParty('P2');
    const d = makeDevice(P, 'in-card', 'admin');
    const t = Date.now();
    // A card alone does not register a device: it carries no proof of possession of its key.
    expect((await putCard(cardOf(P, t, [d]))).body).toMatchObject({ party: P.party, devices: 0 });
    expect((await r.caller.get(`/v1/parties/${P.party}/devices`, d)).status).toBe(401);
    expect((await r.caller.post('/v1/devices', undefined, registration(d))).status).toBe(200);
    // A later card with a renewed certificate for the same key renews it.
    const cert = unwrap(decodeDeviceCertificate(d.certificate)).body;
    const renewed = encodeDeviceCertificate(
      issueDeviceCertificate({
        rootSecretKey: P.root.secretKey,
        rootPublicKey: P.root.publicKey,
        devicePublicKey: d.kp.publicKey,
        name: cert.name,
        role: cert.role,
        notBefore: cert.notBefore + 1,
        notAfter: cert.notAfter + 86_400_000,
      }),
    );
    const res = await putCard(cardOf(P, t + 1, [{ ...d, certificate: renewed }]));
    expect(res.body).toMatchObject({ party: P.party, devices: 1 });
    const list = await r.caller.get(`/v1/parties/${P.party}/devices`, d);
    expect(list.body.certificates).toEqual([toBase64url(renewed)]);
    // A registration is public and can be replayed: replaying the older one rolls nothing back.
    const replay = await r.caller.post('/v1/devices', undefined, registration(d));
    expect(replay.body).toMatchObject({ error: { code: 'CERT_STALE' } });
    const after = await r.caller.get(`/v1/parties/${P.party}/devices`, d);
    expect(after.body.certificates).toEqual([toBase64url(renewed)]);
  });

  it('refuses a card whose signature does not verify and answers 404 for an unknown party', async () => {
    const P = makeParty('P3');
    const good = unwrap(decodeContactCard(cardOf(P)));
    const sig = good.sig.slice();
    sig[0] = (sig[0] as number) ^ 1;
    const res = await putCard(encodeContactCard({ body: good.body, sig }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: 'SIG_INVALID' } });
    const unknown = await r.caller.get(`/v1/cards/${makeParty('nobody').party}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ error: { code: 'PARTY_UNKNOWN' } });
  });
});

describe('devices and revocations', () => {
  const postCert = (d: TestDevice) => r.caller.post('/v1/devices', undefined, registration(d));

  it('registers a root-signed certificate only for a party with a card', async () => {
    const P = makeParty('no card');
    const res = await postCert(makeDevice(P, 'x'));
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: { code: 'PARTY_UNKNOWN' } });
  });

  it('refuses a certificate not signed by the party root, an expired one and one not yet valid', async () => {
    const forger = makeParty('forger');
    const forged = makeDevice(forger, 'fake');
    const real = unwrap(decodeDeviceCertificate(forged.certificate));
    const body = { ...real.body, party: A.party };
    const fake = encodeCanonical({
      body,
      sig: signWithLabel(forger.root.secretKey, 'device-certificate', encodeCanonical(body)),
    });
    const res = await r.caller.post('/v1/devices', undefined, registration(forged, fake));
    expect(res.body).toMatchObject({ error: { code: 'SIG_INVALID' } });
    const expired = makeDevice(A, 'old', 'staff', { notBefore: 1, notAfter: 2 });
    expect((await postCert(expired)).body).toMatchObject({ error: { code: 'CERT_EXPIRED' } });
    const future = makeDevice(A, 'future', 'staff', { notBefore: Date.now() + 86_400_000 });
    expect((await postCert(future)).body).toMatchObject({ error: { code: 'CERT_NOT_YET_VALID' } });
  });

  it("registers a device only with its key's proof of possession", async () => {
    const P = makeParty('pop');
    await r.caller.publishParty(P, []);
    const d = makeDevice(P, 'laptop', 'staff');
    const other = makeDevice(P, 'other', 'staff');
    const bad = [
      { certificate: toBase64url(d.certificate) }, // no proof
      registration(other, d.certificate), // signed by another device's key
      { ...registration(d, other.certificate), certificate: toBase64url(d.certificate) }, // over other bytes
      { certificate: toBase64url(d.certificate), proof: toBase64url(new Uint8Array(64)) },
    ];
    const codes = [];
    for (const json of bad) {
      const res = await r.caller.post('/v1/devices', undefined, json);
      expect(res.status).toBe(400);
      codes.push((res.body as { error: { code: string } }).error.code);
    }
    expect(codes).toEqual(['REQUEST_INVALID', 'SIG_INVALID', 'SIG_INVALID', 'SIG_INVALID']);
    // Nothing was registered: the device cannot authenticate yet.
    expect((await r.caller.get(`/v1/parties/${P.party}/devices`, d)).status).toBe(401);
    expect((await postCert(d)).status).toBe(200);
    expect((await r.caller.get(`/v1/parties/${P.party}/devices`, d)).status).toBe(200);
  });

  it("another party cannot squat a device's key, by a registration or by its card", async () => {
    const X = makeParty('X');
    const Y = makeParty('Y');
    await r.caller.publishParty(X, []);
    const dev = makeDevice(X, 'phone', 'principal');
    // Y has seen dev's public key and certifies it in its own name, before X registers it.
    const squat = makeDevice(Y, 'phone', 'principal');
    const ycert = issueDeviceCertificate({
      rootSecretKey: Y.root.secretKey,
      rootPublicKey: Y.root.publicKey,
      devicePublicKey: dev.kp.publicKey,
      name: 'phone',
      role: 'principal',
      notBefore: Date.now() - 60_000,
      notAfter: Date.now() + 86_400_000,
    });
    const ybytes = encodeDeviceCertificate(ycert);
    // Y's card carries the certificate: the card is published, the device is not registered.
    const card = cardOf(Y, Date.now(), [{ ...squat, certificate: ybytes }]);
    expect((await r.caller.call('PUT', '/v1/cards', { json: { card: toBase64url(card) } })).status).toBe(200);
    // Y cannot prove the key (it signs with a key of its own).
    const res = await r.caller.post('/v1/devices', undefined, registration(squat, ybytes));
    expect(res.body).toMatchObject({ error: { code: 'SIG_INVALID' } });
    // X registers its device, and it is X's.
    expect((await postCert(dev)).status).toBe(200);
    const listed = await r.caller.get(`/v1/parties/${X.party}/devices`, dev);
    expect(listed.body.certificates).toEqual([toBase64url(dev.certificate)]);
    expect((await r.caller.get(`/v1/parties/${Y.party}/devices`, dev)).body.certificates).toEqual([]);
  });

  it('lists certificates and revocations to registered devices only', async () => {
    const anon = await r.caller.get(`/v1/parties/${B.party}/devices`);
    expect(anon.status).toBe(401);
    expect(anon.body).toMatchObject({ error: { code: 'AUTH_MISSING' } });
    const list = await r.caller.get(`/v1/parties/${B.party}/devices`, a);
    expect((list.body.certificates as string[]).length).toBe(2);
    expect(list.body.revocations).toEqual([]);
  });

  it('revokes a device: it can no longer authenticate, and the revocation is listed', async () => {
    const P = makeParty('R');
    const admin = makeDevice(P, 'admin', 'admin');
    const leaver = makeDevice(P, 'leaver', 'staff');
    await r.caller.publishParty(P, [admin, leaver]);
    expect((await r.caller.get(`/v1/parties/${P.party}/devices`, leaver)).status).toBe(200);
    const at = Date.now() - 1000;
    const rev = await r.caller.post('/v1/revocations', undefined, {
      revocation: toBase64url(revocationOf(leaver, at)),
    });
    expect(rev.status).toBe(200);
    expect(rev.body).toEqual({ device: leaver.device, revokedAt: at });
    // A later revocation of the same device changes nothing, and the answer says what is in force.
    const later = await r.caller.post('/v1/revocations', undefined, {
      revocation: toBase64url(revocationOf(leaver, at + 500)),
    });
    expect(later.body).toEqual({ device: leaver.device, revokedAt: at });
    const denied = await r.caller.get(`/v1/parties/${P.party}/devices`, leaver);
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ error: { code: 'CERT_REVOKED' } });
    const list = await r.caller.get(`/v1/parties/${P.party}/devices`, admin);
    expect((list.body.revocations as string[]).length).toBe(1);
    expect((await postCert(leaver)).body).toMatchObject({ error: { code: 'CERT_REVOKED' } });
    // A revocation signed by someone else's root is refused.
    const rbody = { v: 1, party: A.party, device: a.device, revokedAt: Date.now() - 1000, reason: 'forged' };
    const forged = encodeCanonical({
      body: rbody,
      sig: signWithLabel(B.root.secretKey, 'revocation', encodeCanonical(rbody)),
    });
    expect(
      (await r.caller.post('/v1/revocations', undefined, { revocation: toBase64url(forged) })).body,
    ).toMatchObject({
      error: { code: 'SIG_INVALID' },
    });
  });
});

describe('key packages', () => {
  it('lets one installation redeem a device invite: a retry is answered the same, another is refused', async () => {
    const P = makeParty('ENR');
    const d = makeDevice(P, 'aide', 'staff');
    await r.caller.publishParty(P, [d]);
    const first = toBase64url(new Uint8Array(16).fill(7));
    const once = await r.caller.post('/v1/devices/enrollment', d, { installation: first });
    expect(once.status).toBe(200);
    const at = (once.body as { enrolledAt: number }).enrolledAt;
    expect(typeof at).toBe('number');
    // The same installation again (an answer that never came): the same answer.
    expect(await r.caller.post('/v1/devices/enrollment', d, { installation: first })).toMatchObject({
      status: 200,
      body: { enrolledAt: at },
    });
    const other = await r.caller.post('/v1/devices/enrollment', d, {
      installation: toBase64url(new Uint8Array(16).fill(8)),
    });
    expect(other).toMatchObject({ status: 409, body: { error: { code: 'INVITE_USED' } } });
    expect((other.body as { error: { message: string } }).error.message).toContain(
      new Date(at).toISOString(),
    );
    const short = await r.caller.post('/v1/devices/enrollment', d, {
      installation: toBase64url(new Uint8Array(4)),
    });
    expect(short).toMatchObject({ status: 400, body: { error: { code: 'SCHEMA_INVALID' } } });
  });

  it('hands each one-time key package out exactly once, then the last-resort one', async () => {
    const up = await r.caller.post('/v1/key-packages', b1, {
      keyPackages: [toBase64url(Uint8Array.of(1, 1)), toBase64url(Uint8Array.of(1, 2))],
      lastResort: toBase64url(Uint8Array.of(1, 9)),
    });
    expect(up.body).toEqual({ available: 2, lastResort: true });
    await r.caller.post('/v1/key-packages', b2, { keyPackages: [toBase64url(Uint8Array.of(2, 1))] });
    const claim = async () =>
      (await r.caller.post('/v1/key-packages/claim', a, { party: B.party })).body as {
        keyPackages?: { device: string; keyPackage: string; lastResort: boolean; certificate: string }[];
        error?: { code: string };
      };
    const first = await claim();
    expect(first.keyPackages?.map((k) => [k.device, k.keyPackage]).sort()).toEqual(
      [
        [b1.device, toBase64url(Uint8Array.of(1, 1))],
        [b2.device, toBase64url(Uint8Array.of(2, 1))],
      ].sort(),
    );
    expect(first.keyPackages?.find((k) => k.device === b1.device)?.certificate).toBe(
      toBase64url(b1.certificate),
    );
    const second = await claim();
    expect(second.keyPackages?.map((k) => k.keyPackage)).toEqual([toBase64url(Uint8Array.of(1, 2))]);
    const third = await claim();
    expect(third.keyPackages).toEqual([
      {
        device: b1.device,
        certificate: toBase64url(b1.certificate),
        keyPackage: toBase64url(Uint8Array.of(1, 9)),
        lastResort: true,
      },
    ]);
  });

  it('never hands the same one-time package to two concurrent claims', async () => {
    const P = makeParty('KP');
    const d = makeDevice(P, 'd', 'admin');
    await r.caller.publishParty(P, [d]);
    const kps = Array.from({ length: 10 }, (_, i) => toBase64url(Uint8Array.of(7, i)));
    await r.caller.post('/v1/key-packages', d, { keyPackages: kps });
    const now = Date.now();
    const claims = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        r.caller.call('POST', '/v1/key-packages/claim', { as: a, json: { party: P.party }, time: now + i }),
      ),
    );
    const got = claims.flatMap((c) =>
      ((c.body.keyPackages as { keyPackage: string }[] | undefined) ?? []).map((k) => k.keyPackage),
    );
    expect(got.sort()).toEqual([...kps].sort());
    expect(
      claims.filter((c) => (c.body as { error?: { code: string } }).error?.code === 'KEY_PACKAGES_EXHAUSTED'),
    ).toHaveLength(2);
  });

  it('claims for one named device of the party only', async () => {
    const P = makeParty('KD');
    const d1 = makeDevice(P, 'd1', 'admin');
    const d2 = makeDevice(P, 'd2', 'staff');
    await r.caller.publishParty(P, [d1, d2]);
    await r.caller.post('/v1/key-packages', d1, { keyPackages: [toBase64url(Uint8Array.of(8, 1))] });
    await r.caller.post('/v1/key-packages', d2, { keyPackages: [toBase64url(Uint8Array.of(8, 2))] });
    const one = await r.caller.post('/v1/key-packages/claim', a, { party: P.party, device: d2.device });
    expect((one.body.keyPackages as { device: string }[]).map((k) => k.device)).toEqual([d2.device]);
    // d1's package is still there; a device of another party names nothing, nor does a device of
    // the party that has none yet (an empty answer: "not yet", not a refusal).
    const other = await r.caller.post('/v1/key-packages/claim', a, { party: P.party, device: b1.device });
    expect(other.status).toBe(200);
    expect(other.body).toEqual({ keyPackages: [] });
    const again = await r.caller.post('/v1/key-packages/claim', a, { party: P.party, device: d2.device });
    expect(again.body).toEqual({ keyPackages: [] });
    const rest = await r.caller.post('/v1/key-packages/claim', a, { party: P.party });
    expect((rest.body.keyPackages as { device: string }[]).map((k) => k.device)).toEqual([d1.device]);
  });

  it('refuses empty or oversized key packages', async () => {
    const empty = await r.caller.post('/v1/key-packages', a, { keyPackages: [''] });
    expect(empty.body).toMatchObject({ error: { code: 'KEY_PACKAGE_INVALID' } });
    const big = await r.caller.post('/v1/key-packages', a, {
      keyPackages: [toBase64url(new Uint8Array(17 * 1024))],
    });
    expect(big.status).toBe(400);
  });
});
