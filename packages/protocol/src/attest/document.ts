/**
 * The attestation document: a portable JSON file making one claim about a channel, signed by a
 * device of the claiming party and carrying everything needed to check it offline.
 *
 *   {
 *     type: "backchannel/attestation", v: 1,
 *     claim:        what is claimed (kind + the minimum plaintext facts),
 *     issuer:       the signing device's certificate (chains to the party root key),
 *     issuedAt:     ms since the Unix epoch,
 *     checkpoint:   the relay-signed C2SP checkpoint note, with witness cosignature lines,
 *     entries:      the log entries used, each with its RFC 9162 inclusion proof,
 *     certificates: the device certificates of those entries' senders,
 *     disclosures:  the plaintext events (with their salts) the claim needs, nothing else,
 *     signature:    Ed25519 over CBOR(['backchannel/v1 attestation', CBOR(document − signature)])
 *   }
 *
 * Bytes are base64url (no padding). The signature covers the deterministic CBOR encoding of
 * the JSON value, so whitespace and key order in the file do not matter: one meaning, one
 * signed byte string.
 */
import { z } from 'zod';
import { fromBase64url, isBytes, toBase64url } from '../bytes/index.ts';
import { encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import { channelIdSchema, eventIdSchema, partyIdSchema, timestampSchema } from '../events/common.ts';
import { DOCUMENT_TYPES } from '../events/documents.ts';
import type { ChannelEvent } from '../events/event.ts';
import { parseEvent } from '../events/event.ts';

export const ATTESTATION_TYPE = 'backchannel/attestation';
/** Cap on an attestation file (characters of JSON). */
export const MAX_ATTESTATION_CHARS = 1 << 20;
const MAX_ITEMS = 64;

const b64u = z
  .string()
  .max(200_000)
  .regex(/^[A-Za-z0-9_-]*$/, 'expected base64url');

export const outreachClaimSchema = z.strictObject({
  kind: z.literal('outreach'),
  channel: channelIdSchema,
  from: partyIdSchema,
  to: partyIdSchema,
  /** The relay's time for the outreach entry. */
  at: timestampSchema,
  /** True when the outreach opened the channel: only handshake entries precede it. */
  opening: z.boolean(),
});

export const livenessClaimSchema = z.strictObject({
  kind: z.literal('liveness'),
  channel: channelIdSchema,
  parties: z.array(partyIdSchema).min(2).max(16),
  asOf: timestampSchema,
  withinHours: z
    .number()
    .int()
    .min(1)
    .max(24 * 366),
});

export const deliveryClaimSchema = z.strictObject({
  kind: z.literal('delivery'),
  channel: channelIdSchema,
  event: eventIdSchema,
  from: partyIdSchema,
  at: timestampSchema,
  by: partyIdSchema,
  acknowledgedAt: timestampSchema,
  receipt: z.enum(['delivered', 'read']),
});

export const disclosureClaimSchema = z.strictObject({
  kind: z.literal('disclosure'),
  channel: channelIdSchema,
  event: eventIdSchema,
  from: partyIdSchema,
  at: timestampSchema,
});

export const readoutsClaimSchema = z.strictObject({
  kind: z.literal('readouts'),
  channel: channelIdSchema,
  round: z.string().min(1).max(200),
  parties: z.array(partyIdSchema).min(2).max(16),
});

/**
 * Agreed text: every party a negotiated document names signed revision `revision` (hash `hash`)
 * at the level its type requires. The revision's doc.revision event (its whole text) and each
 * party's doc.sign event are disclosed; nothing else.
 */
export const agreedClaimSchema = z.strictObject({
  kind: z.literal('agreed'),
  channel: channelIdSchema,
  doc: eventIdSchema,
  docType: z.enum(DOCUMENT_TYPES),
  revision: z.number().int().nonnegative().max(100_000),
  /** The revision hash (base64url of 32 bytes), recomputed by the verifier from the disclosed text. */
  hash: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected a base64url SHA-256 hash'),
  parties: z.array(partyIdSchema).min(1).max(16),
  /** The relay's time for the last required signature: when the text became agreed. */
  agreedAt: timestampSchema,
});

export const claimSchema = z.discriminatedUnion('kind', [
  outreachClaimSchema,
  livenessClaimSchema,
  deliveryClaimSchema,
  disclosureClaimSchema,
  readoutsClaimSchema,
  agreedClaimSchema,
]);
export type Claim = z.infer<typeof claimSchema>;
export type ClaimKind = Claim['kind'];
export type ClaimOf<K extends ClaimKind> = Extract<Claim, { kind: K }>;
export const ATTESTATION_KINDS: readonly ClaimKind[] = claimSchema.options.map((o) => o.shape.kind.value);

/** A JSON value (the shape of a disclosed event in the file). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const jsonValue: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    // safe integers only: the document is signed as canonical CBOR, which has no other numbers
    z.number().int(),
    z.boolean(),
    z.null(),
    z.array(jsonValue),
    z.record(z.string(), jsonValue),
  ]),
);

export const attestationSchema = z.strictObject({
  type: z.literal(ATTESTATION_TYPE),
  v: z.literal(1),
  claim: claimSchema,
  issuer: b64u,
  issuedAt: timestampSchema,
  checkpoint: z.string().max(64 * 1024),
  entries: z
    .array(
      z.strictObject({
        index: z.number().int().nonnegative(),
        entry: b64u,
        proof: z.array(b64u).max(64),
      }),
    )
    .min(1)
    .max(MAX_ITEMS),
  certificates: z.array(b64u).max(MAX_ITEMS),
  disclosures: z
    .array(z.strictObject({ index: z.number().int().nonnegative(), event: jsonValue, salt: b64u }))
    .max(MAX_ITEMS),
  signature: b64u,
});
export type Attestation = z.infer<typeof attestationSchema>;
export type UnsignedAttestation = Omit<Attestation, 'signature'>;

/** The bytes the issuer signs (label 'attestation'): canonical CBOR of the document without its signature. */
export function attestationSigningBody(doc: UnsignedAttestation): Uint8Array {
  const { type, v, claim, issuer, issuedAt, checkpoint, entries, certificates, disclosures } = doc;
  return encodeCanonical({
    type,
    v,
    claim,
    issuer,
    issuedAt,
    checkpoint,
    entries,
    certificates,
    disclosures,
  });
}

/** Nesting cap of an attestation's JSON: the document nests 5 levels and an event 9 more. */
const MAX_JSON_NESTING = 64;

function tooDeep(v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (depth >= MAX_JSON_NESTING) return true;
  return (Array.isArray(v) ? v : Object.values(v)).some((x) => tooDeep(x, depth + 1));
}

/** Parses an attestation file (JSON text or an already parsed value), structure only. */
export function parseAttestation(input: unknown): Decoded<Attestation> {
  let value = input;
  if (typeof input === 'string') {
    if (input.length > MAX_ATTESTATION_CHARS)
      return fail('DECODE_TOO_LARGE', 'attestation', 'file too large');
    try {
      value = JSON.parse(input);
    } catch {
      return fail('ATTESTATION_INVALID', 'attestation', 'not JSON');
    }
  }
  // The schema recurses into disclosed events: refuse deep nesting before it does (a RangeError).
  if (tooDeep(value, 0))
    return fail('ATTESTATION_INVALID', 'attestation', `nesting deeper than ${MAX_JSON_NESTING} levels`);
  const r = attestationSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    return fail(
      'ATTESTATION_INVALID',
      `attestation.${issue?.path.join('.') ?? ''}`,
      issue?.message ?? 'not an attestation',
    );
  }
  return { ok: true, value: r.data };
}

/** The file text: JSON with a fixed key order, two-space indented, ending in a newline. */
export function encodeAttestation(doc: Attestation): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** An event as JSON: byte fields become {"$b64u": "…"} so the file stays plain JSON. */
export function eventToJson(e: ChannelEvent): JsonValue {
  const conv = (x: unknown): JsonValue => {
    if (isBytes(x)) return { $b64u: toBase64url(x) };
    if (Array.isArray(x)) return x.map(conv);
    if (x !== null && typeof x === 'object') {
      const out: { [k: string]: JsonValue } = {};
      for (const [k, v] of Object.entries(x)) if (v !== undefined) out[k] = conv(v);
      return out;
    }
    return x as JsonValue;
  };
  return conv(e);
}

export function eventFromJson(j: JsonValue, at: string): Decoded<ChannelEvent> {
  const conv = (x: JsonValue): unknown => {
    if (Array.isArray(x)) return x.map(conv);
    if (x !== null && typeof x === 'object') {
      const keys = Object.keys(x);
      const b = x.$b64u;
      if (keys.length === 1 && typeof b === 'string') return fromBase64url(b, at);
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        if (k === '__proto__') throw new TypeError('forbidden key');
        out[k] = conv(x[k] as JsonValue);
      }
      return out;
    }
    return x;
  };
  try {
    const e = parseEvent(conv(j));
    return e.ok ? e : fail('ATTESTATION_INVALID', at, e.message);
  } catch {
    return fail('ATTESTATION_INVALID', at, 'malformed event');
  }
}
