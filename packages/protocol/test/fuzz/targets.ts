/**
 * Fuzz targets over every protocol decoder of untrusted input. Each target pairs an input
 * generator (random input, and mutations of valid seeds) with a check that throws on a bug:
 *   - the decoder returns a typed result, or throws a ProtocolError, with a documented code
 *     (PROTOCOL_ERROR_CODES, kept equal to docs/ERRORS.md by errors-doc.test.ts);
 *   - never a raw TypeError/RangeError, never an undocumented code;
 *   - what decodes re-encodes to the very same input (canonical formats: one value, one encoding).
 * Shared by fuzz.test.ts (a short deterministic run in `npm test`) and scripts/fuzz.ts (`npm run fuzz`).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { createAttestation } from '../../src/attest/create.ts';
import {
  ATTESTATION_KINDS,
  type AttestationPlan,
  type ClaimKind,
  decodeRelayReceipt,
  encodeAttestation,
  encodeRelayReceipt,
  FORK_EVIDENCE_TYPE,
  parseAttestation,
  planAgreed,
  planDelivery,
  planDisclosure,
  planLiveness,
  planOutreach,
  planReadouts,
  signRelayReceipt,
  verifyAttestation,
  verifyForkEvidence,
  verifyRelayReceipt,
} from '../../src/attest/index.ts';
import {
  decodeKeyPackage,
  decodePrivateKeyPackage,
  encodePrivateKeyPackage,
} from '../../src/group/key-package.ts';
import { decodeMls, peekMlsHeader } from '../../src/group/header.ts';
import {
  type Decoded,
  decodeCanonical,
  decodeContactCard,
  decodeDeviceCertificate,
  decodeEntry,
  decodeEnvelope,
  decodeEvent,
  decodeRevocation,
  encodeCanonical,
  encodeContactCard,
  encodeDeviceCertificate,
  encodeEntry,
  encodeEvent,
  encodeRevocation,
  encodeSealedEvent,
  exportDocument,
  fromBase64url,
  fromHex,
  issueRevocation,
  keyPairFromSeed,
  makeContactCard,
  openSealedEvent,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  parseChannelId,
  parseDeviceId,
  parseEventId,
  parsePartyId,
  parseSegments,
  parseTrackId,
  renderSegments,
  signWithLabel,
  toBase64url,
  verifyDeviceCertificate,
  verifyDocumentBundle,
  verifyEnvelope,
} from '../../src/index.ts';
import {
  encodeCheckpoint,
  encodeNote,
  encodeVerifierKey,
  makeVerifierKey,
  parseCheckpoint,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyCosignatures,
  verifyNote,
} from '../../src/transcript/index.ts';
import { buildFixture } from '../attest/fixture.ts';
import { plain, World } from '../documents/helpers.ts';
import { cborInputs, MAX_FUZZ_BYTES, mutatedCbor, mutatedJson, mutatedText, textInputs } from './mutate.ts';

/** One fuzz target: an input generator and a check that throws a FuzzBug on a property violation. */
export interface FuzzTarget {
  readonly name: string;
  /** Share of the cases in a run (relative to the other targets of its suite). */
  readonly weight: number;
  readonly input: fc.Arbitrary<unknown>;
  readonly check: (input: unknown) => void | Promise<void>;
}

export function defineTarget<T>(t: {
  name: string;
  weight: number;
  input: fc.Arbitrary<T>;
  check: (input: T) => void | Promise<void>;
}): FuzzTarget {
  return t as unknown as FuzzTarget;
}

/** A property violation found by a target (the message says which and how). */
export class FuzzBug extends Error {
  override readonly name = 'FuzzBug';
}

const CODES = new Set<string>(PROTOCOL_ERROR_CODES);

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, 300);
  return `non-error ${typeof e}`;
}

/** Runs a decoder: a throw must be a ProtocolError with a documented code (then undefined). */
export function typed<R>(what: string, f: () => R): R | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof ProtocolError && CODES.has(e.code) && typeof e.at !== 'object') return undefined;
    throw new FuzzBug(`${what} threw ${describe(e)}`);
  }
}

/** A Decoded answer must be {ok:true,value} or {ok:false} with a documented code, a path and a message. */
export function decoded<T>(what: string, f: () => Decoded<T>): T | undefined {
  const r = typed(what, f);
  if (r === undefined) return undefined;
  if (r.ok === true) return r.value;
  if (r.ok === false && CODES.has(r.code) && typeof r.at === 'string' && typeof r.message === 'string')
    return undefined;
  throw new FuzzBug(`${what} returned a malformed answer: ${JSON.stringify(r).slice(0, 200)}`);
}

export function sameBytes(what: string, a: Uint8Array, b: Uint8Array): void {
  if (a.length !== b.length || a.some((x, i) => x !== b[i]))
    throw new FuzzBug(`${what}: decoded value does not re-encode to the input`);
}

function same(what: string, a: unknown, b: unknown): void {
  if (a !== b) throw new FuzzBug(`${what}: decoded value does not re-encode to the input`);
}

/* ------------------------------------------------------------------ seeds */

const f = buildFixture();
const records = f.snap.records;
const relaySeed = new Uint8Array(32).fill(7);
const relayKey = f.relayKey;
const witnessKeys = f.witnessKeys.map((k) => {
  const d = parseVerifierKey(k);
  if (!d.ok) throw new Error(d.message);
  return d.value;
});
const relayVerifier = parseVerifierKey(relayKey);
if (!relayVerifier.ok) throw new Error(relayVerifier.message);

const entries = records.slice(0, 14).map((r) => r.entry);
const envelopes = records.slice(0, 14).map((r) => r.decoded.envelope.wire);
const envelopeBodies = records.slice(0, 14).map((r) => r.decoded.envelope.bodyBytes);
const events = records.flatMap((r) => (r.event === undefined ? [] : [encodeEvent(r.event)])).slice(0, 14);
const sealed = records.flatMap((r) =>
  r.event === undefined || r.salt === undefined ? [] : [encodeSealedEvent({ event: r.event, salt: r.salt })],
);
const certs = [f.issuerA.certificate, f.issuerB.certificate].map(encodeDeviceCertificate);
const rootA = keyPairFromSeed(new Uint8Array(32).fill(1));
const revocations = [
  encodeRevocation(
    issueRevocation(rootA.secretKey, rootA.publicKey, f.issuerA.certificate.body.device, 5, 'lost'),
  ),
];
const cardBody = (devices: number) =>
  makeContactCard({
    rootSecretKey: rootA.secretKey,
    rootPublicKey: rootA.publicKey,
    displayName: 'Ministry A',
    relays: ['https://relay.example/'],
    devices: [f.issuerA.certificate].slice(0, devices),
    keyPackages: [new Uint8Array(40).fill(3)],
    issuedAt: 1_800_000_000_000,
  });
const cards = [cardBody(1), cardBody(0)].map(encodeContactCard);
const cardBodies = [cardBody(1), cardBody(0)].map((c) => encodeCanonical(c.body));
const privateKeyPackages = [
  encodePrivateKeyPackage({
    initPrivateKey: new Uint8Array(32).fill(1),
    hpkePrivateKey: new Uint8Array(32).fill(2),
    signaturePrivateKey: new Uint8Array(32).fill(3),
  }),
];
/** MLS messages from the RFC 9420 test vectors (key packages, welcomes, public/private messages). */
const mlsSeeds: Uint8Array[] = await (async () => {
  const { readFile } = await import('node:fs/promises');
  const dir = new URL('../vectors/mls/', import.meta.url);
  const out: Uint8Array[] = [];
  for (const name of ['welcome.json', 'passive-client-welcome.json', 'message-protection.json']) {
    const vs = JSON.parse(await readFile(new URL(name, dir), 'utf8')) as Record<string, unknown>[];
    for (const v of vs.slice(0, 2))
      for (const k of ['key_package', 'welcome', 'public', 'private', 'commit_pub', 'application_priv'])
        if (typeof v[k] === 'string' && (v[k] as string).length > 0) out.push(fromHex(v[k] as string));
  }
  return out;
})();
const checkpointNote = f.snap.checkpoint;
const checkpointText = checkpointNote.slice(0, checkpointNote.indexOf('\n\n') + 1);
const receipts = [0, 5].map((seq) =>
  encodeRelayReceipt(
    signRelayReceipt(
      {
        v: 1,
        channel: f.channel,
        msgId: records[seq]?.decoded.envelope.body.msgId ?? f.ids.points,
        envelopeHash: sha256(envelopes[seq] ?? new Uint8Array()),
        seq,
        receivedAt: 1_800_000_000_000,
      },
      relaySeed,
    ),
  ),
);

/**
 * One seed attestation per claim kind. A new kind (e.g. "agreed") adds its plan here; fuzz.test.ts
 * checks that every kind in ATTESTATION_KINDS has one.
 */
const asOf = records[5]?.decoded.entry.receivedAt ?? 0;
const issuedAt = (records.at(-1)?.decoded.entry.receivedAt ?? 0) + 1;
export const ATTESTATION_SEED_PLANS: Partial<Record<ClaimKind, () => AttestationPlan>> = {
  outreach: () => planOutreach(f.snap),
  liveness: () => planLiveness(f.snap, { parties: [f.A, f.B], asOf, withinHours: 1 }),
  delivery: () => planDelivery(f.snap, { event: f.ids.points, receipt: 'read' }),
  disclosure: () => planDisclosure(f.snap, { event: f.ids.message }),
  readouts: () => planReadouts(f.snap, { round: 'r1', parties: [f.A, f.B] }),
  agreed: () => planAgreed(f.snap, { doc: f.ids.doc }),
};
export const ATTESTATION_KINDS_WITHOUT_SEED = ATTESTATION_KINDS.filter(
  (k) => ATTESTATION_SEED_PLANS[k] === undefined,
);
const attestations = Object.values(ATTESTATION_SEED_PLANS).map((plan) =>
  JSON.parse(encodeAttestation(createAttestation(f.snap, plan(), f.issuerA, issuedAt))),
) as unknown[];
const attestOpts = {
  parties: f.roots,
  relayKeys: [relayKey],
  witnesses: f.witnessKeys,
  now: f.now,
  maxAgeMs: 10 * 365 * 86_400_000,
};

/** Fork evidence: two relay-signed checkpoints of one origin with different roots at one size. */
const forkEvidence = (() => {
  const origin = `relay.test/${f.channel}`;
  const cp = (size: number, fill: number) =>
    signNote(encodeCheckpoint({ origin, size, root: new Uint8Array(32).fill(fill), extensions: [] }), [
      { name: 'relay.test', seed: relaySeed },
    ]);
  const base = {
    type: FORK_EVIDENCE_TYPE,
    v: 1,
    origin,
    relayKey,
    witness: 'witness.a.example',
    detectedAt: 1,
  };
  return [
    { ...base, kind: 'same-size', checkpoints: [cp(5, 1), cp(5, 2)], proof: [], reason: 'two roots' },
    {
      ...base,
      kind: 'inconsistent',
      checkpoints: [cp(4, 1), cp(6, 2)],
      proof: [toBase64url(new Uint8Array(32))],
      reason: 'x',
    },
    { ...base, kind: 'rollback', checkpoints: [cp(6, 1), cp(4, 2)], proof: [], reason: 'shrank' },
    {
      ...base,
      kind: 'prefix-mismatch',
      checkpoints: [cp(2, 1), cp(3, 2)],
      prefixRoot: toBase64url(new Uint8Array(32).fill(9)),
      proof: [toBase64url(new Uint8Array(32).fill(8))],
      reason: 'prefix',
    },
  ];
})();

/** A document bundle: a two-clause non-paper, exported with its files. */
const bundleSeed = (() => {
  const w = new World();
  const doc = w.create(
    w.aPrincipal,
    'non-paper',
    ['en', 'fr'],
    [
      { id: '1', text: { en: plain('The parties met.'), fr: plain('Les parties se sont réunies.') } },
      { id: '2', text: { en: plain('They will meet again.'), fr: plain('Elles se reverront.') } },
    ],
  );
  const rootKeys = { [w.A.id]: w.A.root.publicKey, [w.B.id]: w.B.root.publicKey };
  const { bundle, files } = exportDocument(w.doc(doc), { rootKeys, base: 'np' });
  return { bundle: JSON.parse(JSON.stringify(bundle)) as unknown, files };
})();

const signerKeys = [
  `PRIVATE+KEY+relay.test+${encodeVerifierKey(makeVerifierKey('relay.test', keyPairFromSeed(relaySeed).publicKey)).split('+')[1]}+${Buffer.from([1, ...relaySeed]).toString('base64')}`,
];

/* ------------------------------------------------------------------ targets */

const someKey = keyPairFromSeed(new Uint8Array(32).fill(3)).publicKey;

/** Signs a (possibly mutated) body as its issuer would, so checks past the signature are reached. */
function signedWrap(label: 'contact-card' | 'envelope', secretKey: Uint8Array) {
  return (bodyBytes: Uint8Array): Uint8Array => {
    const body = decodeCanonical(bodyBytes);
    if (!body.ok) return bodyBytes;
    const sig = signWithLabel(secretKey, label, bodyBytes);
    return encodeCanonical(label === 'envelope' ? { body: bodyBytes, sig } : { body: body.value, sig });
  };
}

export const protocolTargets: readonly FuzzTarget[] = [
  defineTarget({
    name: 'cbor',
    weight: 3,
    input: cborInputs([...entries.slice(0, 4), ...events, ...certs, ...cards, ...revocations]),
    check: (b) => {
      const v = decoded('decodeCanonical', () => decodeCanonical(b));
      if (v !== undefined) sameBytes('cbor', encodeCanonical(v), b);
    },
  }),
  defineTarget({
    name: 'envelope',
    weight: 3,
    input: fc.oneof(
      { arbitrary: cborInputs(envelopes), weight: 3 },
      { arbitrary: mutatedCbor(envelopeBodies).map(signedWrap('envelope', f.issuerA.secretKey)), weight: 2 },
    ),
    check: (b) => {
      const env = decoded('decodeEnvelope', () => decodeEnvelope(b));
      if (env === undefined) return;
      sameBytes('envelope', encodeCanonical({ body: env.bodyBytes, sig: env.sig }), b);
      sameBytes('envelope body', encodeCanonical(env.body), env.bodyBytes);
      typed('verifyEnvelope', () => verifyEnvelope(env, someKey));
    },
  }),
  defineTarget({
    name: 'entry',
    weight: 3,
    input: cborInputs(entries),
    check: (b) => {
      const e = decoded('decodeEntry', () => decodeEntry(b));
      if (e !== undefined) sameBytes('entry', encodeEntry(e.entry), b);
    },
  }),
  defineTarget({
    name: 'event',
    weight: 4,
    input: cborInputs(events),
    check: (b) => {
      const e = decoded('decodeEvent', () => decodeEvent(b));
      if (e !== undefined) sameBytes('event', encodeEvent(e), b);
    },
  }),
  defineTarget({
    name: 'sealed-event',
    weight: 2,
    input: fc.tuple(cborInputs(sealed), fc.boolean()),
    check: ([pt, honest]) => {
      // honest: the commitment the sender would have signed for these bytes (reaches the event decoder)
      let commitment: Uint8Array = new Uint8Array(32);
      const d = decodeCanonical(pt);
      if (honest && d.ok) {
        const v = d.value as Record<string, unknown> | null;
        if (
          v !== null &&
          typeof v === 'object' &&
          v.event instanceof Uint8Array &&
          v.salt instanceof Uint8Array
        )
          commitment = sha256(encodeCanonical(['backchannel/v1 commitment', v.salt, v.event]));
      }
      const s = decoded('openSealedEvent', () => openSealedEvent(pt, commitment));
      if (s !== undefined) sameBytes('sealed event', encodeSealedEvent(s), pt);
    },
  }),
  defineTarget({
    name: 'certificate',
    weight: 2,
    input: cborInputs(certs),
    check: (b) => {
      const c = decoded('decodeDeviceCertificate', () => decodeDeviceCertificate(b));
      if (c === undefined) return;
      sameBytes('certificate', encodeDeviceCertificate(c), b);
      const v = typed('verifyDeviceCertificate', () =>
        verifyDeviceCertificate(c, { rootPublicKey: rootA.publicKey, now: 1_800_000_000_000 }),
      );
      if (v !== undefined && !v.ok && !CODES.has(v.code)) throw new FuzzBug(`undocumented code ${v.code}`);
    },
  }),
  defineTarget({
    name: 'revocation',
    weight: 1,
    input: cborInputs(revocations),
    check: (b) => {
      const r = decoded('decodeRevocation', () => decodeRevocation(b));
      if (r !== undefined) sameBytes('revocation', encodeRevocation(r), b);
    },
  }),
  defineTarget({
    name: 'contact-card',
    weight: 2,
    input: fc.oneof(
      { arbitrary: cborInputs(cards), weight: 2 },
      { arbitrary: mutatedCbor(cardBodies).map(signedWrap('contact-card', rootA.secretKey)), weight: 2 },
    ),
    check: (b) => {
      const c = decoded('decodeContactCard', () => decodeContactCard(b));
      if (c !== undefined) sameBytes('contact card', encodeContactCard(c), b);
    },
  }),
  defineTarget({
    name: 'private-key-package',
    weight: 1,
    input: cborInputs(privateKeyPackages),
    check: (b) => {
      const p = decoded('decodePrivateKeyPackage', () => decodePrivateKeyPackage(b));
      if (p !== undefined)
        decoded('decodePrivateKeyPackage again', () => decodePrivateKeyPackage(encodePrivateKeyPackage(p)));
    },
  }),
  defineTarget({
    name: 'mls',
    weight: 2,
    input: fc.oneof(cborInputs(mlsSeeds), fc.uint8Array({ maxLength: 64 })),
    check: (b) => {
      decoded('decodeMls', () => decodeMls(b));
      decoded('peekMlsHeader', () => peekMlsHeader(b));
      decoded('decodeKeyPackage', () => decodeKeyPackage(b));
    },
  }),
  defineTarget({
    name: 'checkpoint',
    weight: 2,
    input: textInputs([checkpointText, `${checkpointText}ext one\n`]),
    check: (t) => {
      const c = decoded('parseCheckpoint', () => parseCheckpoint(t));
      if (c !== undefined) same('checkpoint', encodeCheckpoint(c), t);
    },
  }),
  defineTarget({
    name: 'note',
    weight: 3,
    input: fc.oneof(
      {
        arbitrary: textInputs([checkpointNote, signNote('hello\n', [{ name: 'a', seed: relaySeed }])]),
        weight: 4,
      },
      {
        arbitrary: mutatedText([checkpointNote]).map((t) => new TextEncoder().encode(t)),
        weight: 1,
      },
      { arbitrary: fc.uint8Array({ maxLength: 200 }), weight: 1 },
    ),
    check: (t) => {
      const n = decoded('parseNote', () => parseNote(t));
      if (n === undefined) return;
      const again = decoded('parseNote(encodeNote)', () => parseNote(encodeNote(n)));
      if (again === undefined || again.text !== n.text || again.signatures.length !== n.signatures.length)
        throw new FuzzBug('note: encodeNote(parseNote(x)) does not parse back to the same note');
      decoded('verifyNote', () => verifyNote(n, [relayVerifier.value]));
      decoded('verifyCosignatures', () => verifyCosignatures(n, witnessKeys));
    },
  }),
  defineTarget({
    name: 'note-keys',
    weight: 1,
    input: fc.oneof(textInputs([relayKey, ...f.witnessKeys]), textInputs(signerKeys)),
    check: (s) => {
      const k = decoded('parseVerifierKey', () => parseVerifierKey(s));
      if (k !== undefined) decoded('parseVerifierKey again', () => parseVerifierKey(encodeVerifierKey(k)));
      decoded('parseSignerKey', () => parseSignerKey(s));
    },
  }),
  defineTarget({
    name: 'relay-receipt',
    weight: 2,
    input: fc.oneof(textInputs(receipts), cborInputs(receipts.map((r) => fromBase64url(r))).map(toBase64url)),
    check: (s) => {
      const r = decoded('decodeRelayReceipt', () => decodeRelayReceipt(s));
      if (r === undefined) return;
      same('relay receipt', encodeRelayReceipt(r), s);
      typed('verifyRelayReceipt', () => verifyRelayReceipt(r, someKey));
    },
  }),
  defineTarget({
    name: 'attestation-parse',
    weight: 2,
    input: mutatedJson(attestations),
    check: (s) => {
      const a = decoded('parseAttestation', () => parseAttestation(s));
      if (a === undefined) return;
      const again = decoded('parseAttestation(encodeAttestation)', () =>
        parseAttestation(encodeAttestation(a)),
      );
      if (again === undefined || encodeAttestation(again) !== encodeAttestation(a))
        throw new FuzzBug('attestation: does not round-trip through its file form');
    },
  }),
  defineTarget({
    name: 'attestation-verify',
    weight: 1,
    input: mutatedJson(attestations),
    check: (s) => {
      const v = typed('verifyAttestation', () => verifyAttestation(s, attestOpts));
      if (v === undefined) throw new FuzzBug('verifyAttestation threw instead of giving a verdict');
      if (!v.valid && !CODES.has(v.code)) throw new FuzzBug(`verifyAttestation: undocumented code ${v.code}`);
    },
  }),
  defineTarget({
    name: 'fork-evidence',
    weight: 1,
    input: mutatedJson(forkEvidence),
    check: (s) => {
      const v = typed('verifyForkEvidence', () => verifyForkEvidence(s));
      if (v === undefined) throw new FuzzBug('verifyForkEvidence threw instead of giving a verdict');
      if (!v.valid && v.code !== 'FORK_EVIDENCE_INVALID') throw new FuzzBug(`unexpected code ${v.code}`);
    },
  }),
  defineTarget({
    name: 'document-bundle',
    weight: 1,
    input: mutatedJson([bundleSeed.bundle]),
    check: (s) => {
      let json: unknown = s;
      try {
        json = JSON.parse(s);
      } catch {
        // not JSON: hand the text itself to the verifier
      }
      const v = typed('verifyDocumentBundle', () =>
        verifyDocumentBundle(json, bundleSeed.files, { allowUnagreed: true }),
      );
      if (v === undefined) throw new FuzzBug('verifyDocumentBundle threw instead of giving a check');
      if (!v.ok && !CODES.has(v.code)) throw new FuzzBug(`verifyDocumentBundle: undocumented code ${v.code}`);
    },
  }),
  defineTarget({
    name: 'ids-and-base64url',
    weight: 1,
    input: fc.oneof(
      textInputs([
        f.channel,
        f.A,
        f.ids.points,
        f.issuerA.certificate.body.device,
        't_AAAAAAAAAAAAAAAAAAAAAA',
      ]),
      textInputs(receipts),
    ),
    check: (s) => {
      for (const [name, p] of [
        ['parseChannelId', parseChannelId],
        ['parsePartyId', parsePartyId],
        ['parseDeviceId', parseDeviceId],
        ['parseEventId', parseEventId],
        ['parseTrackId', parseTrackId],
      ] as const) {
        const id = typed(name, () => p(s));
        if (id !== undefined) same(name, id, s);
      }
      const b = typed('fromBase64url', () => fromBase64url(s));
      if (b !== undefined) same('base64url', toBase64url(b), s);
    },
  }),
  defineTarget({
    name: 'document-segments',
    weight: 1,
    input: textInputs(['The {{first | second}} wording.', '{{a|b|c}}{{x}}', 'plain text']),
    check: (s) => {
      const segs = typed('parseSegments', () => parseSegments(s.slice(0, MAX_FUZZ_BYTES)));
      if (segs !== undefined) typed('renderSegments', () => renderSegments(segs));
    },
  }),
];
