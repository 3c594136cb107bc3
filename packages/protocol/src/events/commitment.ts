/**
 * Salted commitments for selective disclosure:
 * C = SHA-256(CBOR(['backchannel/v1 commitment', salt, CBOR(event)])).
 * The sender signs C in the envelope; the event and its 16-byte salt travel only inside the
 * MLS ciphertext. Revealing (event, salt) later proves that one event without revealing any other.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { constantTimeEqual, isBytes } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import { type ChannelEvent, decodeEvent, encodeEvent, MAX_EVENT_BYTES } from './event.ts';

export const SALT_BYTES = 16;

/**
 * A SHA-256 backend. The default is pure (noble); a Node process may inject node:crypto's
 * (about 5× faster on a 1 KiB event), which must return the same FIPS 180-4 digest.
 */
export type Sha256 = (data: Uint8Array) => Uint8Array;

export function commitEvent(event: ChannelEvent, salt: Uint8Array, hash: Sha256 = sha256): Uint8Array {
  return commitEncoded(encodeEvent(event), salt, hash);
}

/** The commitment over an event's canonical bytes (what sealing and opening hash). */
function commitEncoded(eventBytes: Uint8Array, salt: Uint8Array, hash: Sha256): Uint8Array {
  if (!isBytes(salt) || salt.length !== SALT_BYTES) throw new TypeError('salt must be 16 bytes');
  return hash(encodeCanonical(['backchannel/v1 commitment', salt, eventBytes]));
}

export function verifyCommitment(
  event: ChannelEvent,
  salt: Uint8Array,
  commitment: Uint8Array,
  hash: Sha256 = sha256,
): boolean {
  if (!isBytes(salt) || salt.length !== SALT_BYTES || !isBytes(commitment) || commitment.length !== 32)
    return false;
  return constantTimeEqual(commitEvent(event, salt, hash), commitment);
}

/** The plaintext sealed inside MLS: the event plus its salt. */
export interface SealedEvent {
  readonly event: ChannelEvent;
  readonly salt: Uint8Array;
}

/**
 * The MLS plaintext is CBOR {event: <the event's canonical bytes>, salt}: the receiver hashes
 * the embedded bytes for the commitment and decodes them once, with no re-encoding.
 */
export function encodeSealedEvent(s: SealedEvent): Uint8Array {
  return sealEvent(s.event, s.salt).plaintext;
}

/** Seals an event: the MLS plaintext and the commitment the envelope carries, one encoding. */
export function sealEvent(
  event: ChannelEvent,
  salt: Uint8Array,
  hash: Sha256 = sha256,
): { plaintext: Uint8Array; commitment: Uint8Array } {
  const eventBytes = encodeEvent(event);
  return {
    plaintext: encodeCanonical({ event: eventBytes, salt }),
    commitment: commitEncoded(eventBytes, salt, hash),
  };
}

const sealedSchema = z.strictObject({
  event: z.custom<Uint8Array>((x) => isBytes(x)),
  salt: z.custom<Uint8Array>((x) => isBytes(x) && x.length === SALT_BYTES),
});

/**
 * Decodes an MLS plaintext and checks it against the commitment the sender signed. The salt
 * returned is a view of `plaintext` (not a copy): a caller must not write to it afterwards.
 */
export function openSealedEvent(
  plaintext: Uint8Array,
  commitment: Uint8Array,
  hash: Sha256 = sha256,
): Decoded<SealedEvent> {
  const d = decodeCanonical(plaintext, MAX_EVENT_BYTES + 64, { views: true });
  if (!d.ok) return d;
  const s = sealedSchema.safeParse(d.value);
  if (!s.success) return fail('EVENT_INVALID', 'sealed', 'expected {event: bytes, salt}');
  const { event, salt } = s.data;
  if (
    !isBytes(commitment) ||
    commitment.length !== 32 ||
    !constantTimeEqual(commitEncoded(event, salt, hash), commitment)
  ) {
    return fail('COMMITMENT_MISMATCH', 'sealed', 'plaintext does not match the signed commitment');
  }
  const e = decodeEvent(event);
  if (!e.ok) return e;
  return { ok: true, value: { event: e.value, salt } };
}
