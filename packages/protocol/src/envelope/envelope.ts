/**
 * Envelope: what the relay sees and stores. The body is canonical CBOR, signed by the
 * sender's device key; the MLS bytes inside are opaque to the relay.
 *
 *   wire = CBOR({ body: bstr(CBOR(EnvelopeBody)), sig: bstr(64) })
 *   sig  = Ed25519(deviceKey, CBOR(['backchannel/v1 envelope', body]))
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { isBytes } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import { channelIdSchema, eventIdSchema, partyIdSchema, timestampSchema } from '../events/common.ts';
import {
  labelledMessage,
  nobleEd25519,
  type SignatureSuite,
  signWithLabel,
  verifyWithLabel,
} from '../identity/keys.ts';
import type { DeviceId } from '../ids.ts';

export const MLS_KINDS = ['application', 'commit', 'welcome', 'proposal'] as const;
export type MlsKind = (typeof MLS_KINDS)[number];

/** Upper bound on one envelope on the wire: a Welcome to 128 post-quantum members is ~0.5 MiB. */
export const MAX_ENVELOPE_BYTES = 2 * 1024 * 1024 + 4096;

const bytes = (n?: number) =>
  z.custom<Uint8Array>((x) => isBytes(x) && (n === undefined || x.length === n), {
    message: 'expected bytes',
  });

export const envelopeBodySchema = z.strictObject({
  v: z.literal(1),
  channel: channelIdSchema,
  sender: z.string().regex(/^d_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<DeviceId>,
  /** Client-chosen message id: the idempotency key of the write. */
  msgId: eventIdSchema,
  epoch: z.number().int().nonnegative(),
  kind: z.enum(MLS_KINDS),
  mls: bytes(),
  /** Salted commitment to the plaintext event (application messages only). */
  commitment: bytes(32).optional(),
  /** Sender's clock when sealed (informative; the relay's time is what the log records). */
  sentAt: timestampSchema,
  /** Welcome and outreach envelopes name the parties whose inbox should receive them. */
  to: z.array(partyIdSchema).max(16).optional(),
  /**
   * Commits declare, in the clear, which devices they add and remove, so the relay can keep the
   * channel's access list. Members check the declaration against the MLS commit itself and
   * refuse a commit whose declaration lies (MLS_COMMIT_REJECTED).
   */
  members: z
    .strictObject({
      add: z.array(z.string().regex(/^d_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<DeviceId>).max(1_000),
      remove: z.array(z.string().regex(/^d_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<DeviceId>).max(1_000),
    })
    .optional(),
});
export type EnvelopeBody = z.infer<typeof envelopeBodySchema>;

export interface SignedEnvelope {
  readonly body: EnvelopeBody;
  /** The exact signed bytes of the body. */
  readonly bodyBytes: Uint8Array;
  readonly sig: Uint8Array;
  /** The exact wire bytes (what the log stores and hashes). */
  readonly wire: Uint8Array;
}

export function signEnvelope(
  body: EnvelopeBody,
  deviceSecretKey: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): SignedEnvelope {
  const parsed = envelopeBodySchema.parse(body);
  const bodyBytes = encodeCanonical(parsed);
  const sig = signWithLabel(deviceSecretKey, 'envelope', bodyBytes, suite);
  const wire = encodeCanonical({ body: bodyBytes, sig });
  return { body: parsed, bodyBytes, sig, wire };
}

const wireSchema = z.strictObject({ body: bytes(), sig: bytes(64) });

/**
 * Decodes wire bytes (structure only; the signature is checked by verifyEnvelope). The byte
 * fields of the result (bodyBytes, sig, mls, commitment) are views of `wire`, not copies: the
 * envelope keeps `wire` anyway, and a caller must not write to it afterwards.
 */
export function decodeEnvelope(wire: unknown): Decoded<SignedEnvelope> {
  const views = { views: true } as const;
  const outer = decodeCanonical(wire, MAX_ENVELOPE_BYTES, views);
  if (!outer.ok) return outer;
  const w = wireSchema.safeParse(outer.value);
  if (!w.success) return fail('ENVELOPE_INVALID', 'envelope', 'expected {body, sig}');
  const inner = decodeCanonical(w.data.body, MAX_ENVELOPE_BYTES, views);
  if (!inner.ok) return fail(inner.code, `envelope.body${inner.at.slice(1)}`, inner.message);
  const b = envelopeBodySchema.safeParse(inner.value);
  if (!b.success) {
    const issue = b.error.issues[0];
    return fail(
      'ENVELOPE_INVALID',
      `envelope.body.${issue?.path.join('.') ?? ''}`,
      issue?.message ?? 'invalid',
    );
  }
  if (b.data.kind === 'application' && b.data.commitment === undefined) {
    return fail('ENVELOPE_INVALID', 'envelope.body.commitment', 'application envelopes carry a commitment');
  }
  return {
    ok: true,
    value: { body: b.data, bodyBytes: w.data.body, sig: w.data.sig, wire: wire as Uint8Array },
  };
}

export function verifyEnvelope(
  env: SignedEnvelope,
  devicePublicKey: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): boolean {
  return verifyWithLabel(devicePublicKey, 'envelope', env.bodyBytes, env.sig, suite);
}

/**
 * The exact message an envelope's signature covers, for a caller that verifies many signatures
 * at once (say, on another thread): Ed25519(sig, envelopeSignedMessage(env), key) is the same
 * check as verifyEnvelope(env, key).
 */
export function envelopeSignedMessage(env: SignedEnvelope): Uint8Array {
  return labelledMessage('envelope', env.bodyBytes);
}

/** A stable content hash of the wire bytes (used in relay receipts and evidence). */
export function envelopeHash(wire: Uint8Array): Uint8Array {
  return sha256(wire);
}
