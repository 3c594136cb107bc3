import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/bytes/index.ts';
import { hasSmallOrderR, isWeakEd25519Key } from '../../src/identity/keys.ts';
import edgeVectors from '../vectors/ed25519-edge.json' with { type: 'json' };
import { decodeCanonical, encodeCanonical } from '../../src/codec/cbor.ts';
import { decodeEntry, encodeEntry } from '../../src/envelope/entry.ts';
import {
  decodeEnvelope,
  type EnvelopeBody,
  envelopeSignedMessage,
  signEnvelope,
  verifyEnvelope,
} from '../../src/envelope/envelope.ts';
import { type Decoded, isProtocolError } from '../../src/errors.ts';
import {
  commitEvent,
  encodeSealedEvent,
  openSealedEvent,
  sealEvent,
  verifyCommitment,
} from '../../src/events/commitment.ts';
import { type ChannelEvent, decodeEvent, encodeEvent } from '../../src/events/event.ts';
import {
  decodeDeviceCertificate,
  encodeDeviceCertificate,
  issueDeviceCertificate,
  issueRevocation,
  proveDeviceKey,
  verifyDeviceCertificate,
  verifyDeviceKeyProof,
} from '../../src/identity/certificate.ts';
import {
  decodeContactCard,
  encodeContactCard,
  fingerprint,
  makeContactCard,
  safetyNumber,
} from '../../src/identity/contact-card.ts';
import { keyPairFromSeed, nobleEd25519, signWithLabel, verifyWithLabel } from '../../src/identity/keys.ts';
import {
  type ChannelId,
  channelIdFrom,
  type EventId,
  eventIdFrom,
  parseDeviceId,
  parsePartyId,
  partyIdFromKey,
} from '../../src/ids.ts';

const seed = (n: number) => new Uint8Array(32).fill(n);
const rootA = keyPairFromSeed(seed(1));
const rootB = keyPairFromSeed(seed(2));
const devA = keyPairFromSeed(seed(3));
const devB = keyPairFromSeed(seed(4));
const DAY = 86_400_000;
const NOW = 1_800_000_000_000;
const CH = channelIdFrom(new Uint8Array(16).fill(7)) as ChannelId;
const eid = (n: number) => eventIdFrom(new Uint8Array(16).fill(n)) as EventId;

const certA = issueDeviceCertificate({
  rootSecretKey: rootA.secretKey,
  rootPublicKey: rootA.publicKey,
  devicePublicKey: devA.publicKey,
  name: 'A minister laptop',
  role: 'principal',
  notBefore: NOW - DAY,
  notAfter: NOW + 365 * DAY,
});

function body(over: Partial<EnvelopeBody> = {}): EnvelopeBody {
  return {
    v: 1,
    channel: CH,
    sender: certA.body.device,
    msgId: eid(9),
    epoch: 3,
    kind: 'application',
    mls: new Uint8Array(64).fill(5),
    commitment: new Uint8Array(32).fill(6),
    sentAt: NOW,
    ...over,
  } as EnvelopeBody;
}

const message = (text: string): ChannelEvent =>
  ({ v: 1, kind: 'message', id: eid(1), at: NOW, text }) as ChannelEvent;

describe('Ed25519 (RFC 8032 §7.1)', () => {
  it('test 1 and test 2: key, signature, verification', () => {
    const vectors = [
      {
        sk: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
        pk: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
        msg: '',
        sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
      },
      {
        sk: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
        pk: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
        msg: '72',
        sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
      },
    ];
    for (const v of vectors) {
      const kp = keyPairFromSeed(fromHex(v.sk));
      expect(toHex(kp.publicKey)).toBe(v.pk);
      expect(toHex(nobleEd25519.sign(fromHex(v.msg), kp.secretKey))).toBe(v.sig);
      expect(nobleEd25519.verify(fromHex(v.sig), fromHex(v.msg), kp.publicKey)).toBe(true);
      expect(nobleEd25519.verify(fromHex(v.sig), fromHex('00'), kp.publicKey)).toBe(false);
    }
  });

  it('refuses every signature libraries disagree on (test/vectors/ed25519-edge.json), accepts the honest one', () => {
    for (const r of edgeVectors.refused) {
      expect(nobleEd25519.verify(fromHex(r.signature), fromHex(r.message), fromHex(r.publicKey)), r.why).toBe(
        false,
      );
    }
    const kp = keyPairFromSeed(new Uint8Array(32).fill(7));
    expect(toHex(kp.publicKey)).toBe(edgeVectors.publicKey);
    const msg = fromHex(edgeVectors.message);
    expect(nobleEd25519.verify(nobleEd25519.sign(msg, kp.secretKey), msg, kp.publicKey)).toBe(true);
    expect(isWeakEd25519Key(kp.publicKey)).toBe(false);
    expect(isWeakEd25519Key(fromHex((edgeVectors.refused[2] as { publicKey: string }).publicKey))).toBe(true);
    expect(hasSmallOrderR(fromHex((edgeVectors.refused[1] as { signature: string }).signature))).toBe(true);
    expect(hasSmallOrderR(nobleEd25519.sign(msg, kp.secretKey))).toBe(false);
  });

  it('separates signatures by label: a certificate signature is not an envelope signature', () => {
    const b = new Uint8Array([1, 2, 3]);
    const sig = signWithLabel(rootA.secretKey, 'device-certificate', b);
    expect(verifyWithLabel(rootA.publicKey, 'device-certificate', b, sig)).toBe(true);
    expect(verifyWithLabel(rootA.publicKey, 'envelope', b, sig)).toBe(false);
  });
});

describe('device certificates', () => {
  const check = (over: Partial<Parameters<typeof verifyDeviceCertificate>[1]> = {}) =>
    verifyDeviceCertificate(certA, { rootPublicKey: rootA.publicKey, now: NOW, ...over });

  it('verify for the issuing party, inside the window, with the role', () => {
    expect(check()).toEqual({
      ok: true,
      party: partyIdFromKey(rootA.publicKey),
      device: certA.body.device,
      role: 'principal',
    });
    const again = decodeDeviceCertificate(encodeDeviceCertificate(certA));
    expect(again.ok && again.value.body).toEqual(certA.body);
  });

  it('refuse another party, a bad signature, outside the window, revoked, wrong role — each with its code', () => {
    expect(check({ rootPublicKey: rootB.publicKey })).toMatchObject({ ok: false, code: 'CERT_WRONG_PARTY' });
    const forged = { ...certA, sig: signWithLabel(rootB.secretKey, 'device-certificate', new Uint8Array(1)) };
    expect(verifyDeviceCertificate(forged, { rootPublicKey: rootA.publicKey, now: NOW })).toMatchObject({
      ok: false,
      code: 'SIG_INVALID',
    });
    expect(check({ now: NOW - 2 * DAY })).toMatchObject({ ok: false, code: 'CERT_NOT_YET_VALID' });
    expect(check({ now: NOW + 366 * DAY })).toMatchObject({ ok: false, code: 'CERT_EXPIRED' });
    const rev = issueRevocation(rootA.secretKey, rootA.publicKey, certA.body.device, NOW - 1, 'laptop lost');
    expect(check({ revocations: [rev] })).toMatchObject({ ok: false, code: 'CERT_REVOKED' });
    // A revocation that takes effect later, or signed by another party, does not count.
    const later = issueRevocation(rootA.secretKey, rootA.publicKey, certA.body.device, NOW + DAY, 'later');
    expect(check({ revocations: [later] }).ok).toBe(true);
    const foreign = { ...rev, sig: signWithLabel(rootB.secretKey, 'revocation', encodeCanonical(rev.body)) };
    expect(check({ revocations: [foreign] }).ok).toBe(true);
    expect(check({ allowedRoles: ['admin'] })).toMatchObject({ ok: false, code: 'ROLE_FORBIDDEN' });
  });
});

describe("a device key's proof of possession", () => {
  const bytes = encodeDeviceCertificate(certA);

  it('is the device key signing the certificate bytes under its own label', () => {
    const proof = proveDeviceKey(devA.secretKey, bytes);
    expect(verifyDeviceKeyProof(certA, bytes, proof)).toBe(true);
    // Exactly signWithLabel(device key, 'device-key-proof', certificate): RFC 8032 is deterministic.
    expect(toHex(proof)).toBe(toHex(signWithLabel(devA.secretKey, 'device-key-proof', bytes)));
    // Another label's signature over the same bytes (e.g. a certificate signature) is no proof.
    expect(
      verifyDeviceKeyProof(certA, bytes, signWithLabel(devA.secretKey, 'device-certificate', bytes)),
    ).toBe(false);
    // Nor is the proof of another key, nor the root's signature.
    expect(verifyDeviceKeyProof(certA, bytes, proveDeviceKey(devB.secretKey, bytes))).toBe(false);
    expect(verifyDeviceKeyProof(certA, bytes, proveDeviceKey(rootA.secretKey, bytes))).toBe(false);
  });

  it('fails for any change to the certificate bytes or the proof (property)', () => {
    const proof = proveDeviceKey(devA.secretKey, bytes);
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (inProof, at, flip) => {
        const c = bytes.slice();
        const p = proof.slice();
        const target = inProof ? p : c;
        const i = at % target.length;
        target[i] = (target[i] as number) ^ flip;
        expect(verifyDeviceKeyProof(certA, c, p)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

describe('contact cards and fingerprints', () => {
  const card = makeContactCard({
    rootSecretKey: rootA.secretKey,
    rootPublicKey: rootA.publicKey,
    displayName: 'Party A — Foreign Ministry',
    relays: ['https://relay.example.org'],
    devices: [certA],
    issuedAt: NOW,
  });

  it('round-trip, verified', () => {
    const d = decodeContactCard(encodeContactCard(card));
    expect(d.ok && d.value.body).toEqual(card.body);
  });

  it('a changed field, or a device of another party, is refused', () => {
    const edited = { ...card, body: { ...card.body, displayName: 'Party A (evil twin)' } };
    expect(decodeContactCard(encodeContactCard(edited))).toMatchObject({ ok: false, code: 'SIG_INVALID' });
    const bCert = issueDeviceCertificate({
      rootSecretKey: rootB.secretKey,
      rootPublicKey: rootB.publicKey,
      devicePublicKey: devB.publicKey,
      name: 'B envoy',
      role: 'principal',
      notBefore: NOW,
      notAfter: NOW + DAY,
    });
    const mixed = makeContactCard({
      rootSecretKey: rootA.secretKey,
      rootPublicKey: rootA.publicKey,
      displayName: 'A',
      relays: [],
      devices: [bCert],
      issuedAt: NOW,
    });
    expect(decodeContactCard(encodeContactCard(mixed))).toMatchObject({ ok: false, code: 'CARD_INVALID' });
  });

  it('fingerprints: 6 groups of 5 digits, stable, different per key; the safety number is symmetric', () => {
    expect(fingerprint(rootA.publicKey)).toMatch(/^\d{5}( \d{5}){5}$/);
    expect(fingerprint(rootA.publicKey)).toBe(fingerprint(rootA.publicKey));
    expect(fingerprint(rootA.publicKey)).not.toBe(fingerprint(rootB.publicKey));
    expect(safetyNumber(rootA.publicKey, rootB.publicKey)).toBe(
      safetyNumber(rootB.publicKey, rootA.publicKey),
    );
  });
});

describe('envelopes', () => {
  it('sign, decode, verify; any change to the body breaks the signature', () => {
    const env = signEnvelope(body(), devA.secretKey);
    const d = decodeEnvelope(env.wire);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value.body).toEqual(env.body);
    expect(verifyEnvelope(d.value, devA.publicKey)).toBe(true);
    expect(verifyEnvelope(d.value, devB.publicKey)).toBe(false);
    // The sender id swapped for another device's: the bytes differ, the signature fails.
    const swapped = signEnvelope(body({ sender: parseDeviceId('d_BBBBBBBBBBBBBBBBBBBBBB') }), devA.secretKey);
    expect(verifyEnvelope({ ...d.value, bodyBytes: swapped.bodyBytes }, devA.publicKey)).toBe(false);
  });

  it('decodes without copying: the byte fields are views of the wire bytes (a Buffer too)', () => {
    const env = signEnvelope(body(), devA.secretKey);
    for (const wire of [env.wire, Buffer.from(env.wire)]) {
      const d = decodeEnvelope(wire);
      if (!d.ok) throw new Error(d.message);
      for (const b of [d.value.bodyBytes, d.value.sig, d.value.body.mls]) {
        expect(b.buffer).toBe(wire.buffer);
        expect(b.constructor).toBe(Uint8Array); // never a Buffer
      }
      expect(toHex(d.value.body.mls)).toBe(toHex(env.body.mls));
      expect(verifyEnvelope(d.value, devA.publicKey)).toBe(true);
    }
    // The general decoder still copies.
    const bytes = encodeCanonical({ b: new Uint8Array(100).fill(1) });
    const d = decodeCanonical(bytes);
    expect(d.ok && (d.value as { b: Uint8Array }).b.buffer).not.toBe(bytes.buffer);
  });

  it('envelopeSignedMessage is exactly what verifyEnvelope checks (for batch verifiers)', () => {
    const env = signEnvelope(body(), devA.secretKey);
    const m = envelopeSignedMessage(env);
    expect(nobleEd25519.verify(env.sig, m, devA.publicKey)).toBe(true);
    expect(m).toEqual(encodeCanonical(['backchannel/v1 envelope', env.bodyBytes]));
    const other = signEnvelope(body({ sentAt: 1 }), devA.secretKey);
    expect(nobleEd25519.verify(env.sig, envelopeSignedMessage(other), devA.publicKey)).toBe(false);
  });

  it('log entries carry the envelope and decode back to it', () => {
    const env = signEnvelope(body(), devA.secretKey);
    const entry = encodeEntry({
      v: 1,
      seq: 4,
      channel: CH,
      sender: certA.body.device,
      receivedAt: NOW,
      envelope: env.wire,
    });
    const d = decodeEntry(entry);
    expect(d.ok && d.value.envelope.body.msgId).toBe(env.body.msgId);
  });
});

describe('selective disclosure (salted commitments)', () => {
  const salt = new Uint8Array(16).fill(9);

  it('verifies the committed plaintext and nothing else', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 200 }),
        fc.string({ maxLength: 200 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (a, b, otherSalt) => {
          const c = commitEvent(message(a), salt);
          expect(verifyCommitment(message(a), salt, c)).toBe(true);
          if (a !== b) expect(verifyCommitment(message(b), salt, c)).toBe(false);
          if (toHex(otherSalt) !== toHex(salt))
            expect(verifyCommitment(message(a), otherSalt, c)).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('opens a sealed event only against its own commitment', () => {
    const ev = message('We can meet in Muscat on the 14th.');
    const sealed = encodeSealedEvent({ event: ev, salt });
    const c = commitEvent(ev, salt);
    const ok = openSealedEvent(sealed, c);
    expect(ok.ok && ok.value.event).toEqual(ev);
    expect(openSealedEvent(sealed, commitEvent(message('other'), salt))).toMatchObject({
      ok: false,
      code: 'COMMITMENT_MISMATCH',
    });
  });

  it('uses an injected SHA-256 backend, with the same commitments as the default', () => {
    const ev = message('Sealed with an injected hash.');
    let calls = 0;
    const counting = (d: Uint8Array) => {
      calls++;
      return sha256(d);
    };
    const sealed = sealEvent(ev, salt, counting);
    expect(calls).toBe(1);
    expect(toHex(sealed.commitment)).toBe(toHex(sealEvent(ev, salt).commitment));
    expect(toHex(sealed.commitment)).toBe(toHex(commitEvent(ev, salt, counting)));
    expect(openSealedEvent(sealed.plaintext, sealed.commitment, counting).ok).toBe(true);
    expect(verifyCommitment(ev, salt, sealed.commitment, counting)).toBe(true);
    // A backend that hashes differently cannot open what the default sealed.
    const wrong = (d: Uint8Array) => sha256(new Uint8Array([...d, 0]));
    expect(openSealedEvent(sealed.plaintext, sealed.commitment, wrong)).toMatchObject({
      ok: false,
      code: 'COMMITMENT_MISMATCH',
    });
  });
});

/** Parsers of trusted-looking strings throw a ProtocolError; as a result for the table. */
function attempt(f: () => unknown): Decoded<unknown> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (isProtocolError(e)) return { ok: false, code: e.code, at: e.at ?? '$', message: e.message };
    throw e;
  }
}

describe('rejected inputs, each with its stable code', () => {
  const env = signEnvelope(body(), devA.secretKey);
  const table: ReadonlyArray<readonly [string, () => Decoded<unknown>, string]> = [
    ['envelope: not bytes', () => decodeEnvelope('hello'), 'DECODE_MALFORMED'],
    ['envelope: random bytes', () => decodeEnvelope(new Uint8Array([0xff, 0x00, 0x12])), 'DECODE_MALFORMED'],
    [
      'envelope: truncated',
      () => decodeEnvelope(env.wire.subarray(0, env.wire.length - 5)),
      'DECODE_MALFORMED',
    ],
    ['envelope: oversize', () => decodeEnvelope(new Uint8Array(3 * 1024 * 1024)), 'DECODE_TOO_LARGE'],
    ['envelope: wrong shape', () => decodeEnvelope(encodeCanonical({ body: 1 })), 'ENVELOPE_INVALID'],
    [
      'envelope: application message without commitment',
      () => decodeEnvelope(signEnvelope(body({ commitment: undefined }), devA.secretKey).wire),
      'ENVELOPE_INVALID',
    ],
    [
      'envelope: unknown MLS kind',
      () => {
        const b = encodeCanonical({ ...body(), kind: 'gossip' });
        return decodeEnvelope(encodeCanonical({ body: b, sig: new Uint8Array(64) }));
      },
      'ENVELOPE_INVALID',
    ],
    [
      'envelope: body not canonical (keys out of order)',
      () => {
        const b = fromHex('a2616201616102');
        return decodeEnvelope(encodeCanonical({ body: b, sig: new Uint8Array(64) }));
      },
      'DECODE_NOT_CANONICAL',
    ],
    [
      'event: unknown kind',
      () => decodeEvent(encodeCanonical({ v: 1, kind: 'poke', id: eid(1), at: NOW })),
      'EVENT_INVALID',
    ],
    [
      'event: extra field',
      () => decodeEvent(encodeCanonical({ ...message('x'), extra: 1 })),
      'EVENT_INVALID',
    ],
    ['event: float time', () => decodeEvent(fromHex('fb3ff8000000000000')), 'DECODE_NOT_CANONICAL'],
    [
      'certificate: device id not of its key',
      () =>
        decodeDeviceCertificate(
          encodeCanonical({ body: { ...certA.body, devicePublicKey: devB.publicKey }, sig: certA.sig }),
        ),
      'CERT_WRONG_PARTY',
    ],
    ['certificate: garbage', () => decodeDeviceCertificate(new Uint8Array([1])), 'SCHEMA_INVALID'],
    [
      'contact card: not a card',
      () => decodeContactCard(encodeCanonical({ body: {}, sig: new Uint8Array(64) })),
      'CARD_INVALID',
    ],
    ['party id: wrong prefix', () => attempt(() => parsePartyId('d_AAAAAAAAAAAAAAAAAAAAAA')), 'ID_INVALID'],
    ['party id: too short', () => attempt(() => parsePartyId('p_AAAA')), 'ID_INVALID'],
    [
      'sealed event: salt missing',
      () => openSealedEvent(encodeCanonical({ event: message('x') }), new Uint8Array(32)),
      'EVENT_INVALID',
    ],
  ];

  it.each(table.map(([name, run, code]) => ({ name, run, code })))('$name → $code', ({ run, code }) => {
    const r = run();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
  });

  it('the encoding of an event is canonical and round-trips', () => {
    const ev = message('Points: 1) ceasefire 2) prisoners');
    const d = decodeEvent(encodeEvent(ev));
    expect(d.ok && d.value).toEqual(ev);
  });
});
