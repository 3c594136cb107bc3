/**
 * Salted commitments for selective disclosure: C = SHA-256(CBOR(['backchannel/v1 commitment', salt, event])).
 * The sender signs C in the envelope; the event and its 16-byte salt travel only inside the
 * MLS ciphertext. Revealing (event, salt) later proves that one event without revealing any other.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { constantTimeEqual, isBytes } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import { type ChannelEvent, encodeEvent, MAX_EVENT_BYTES, parseEvent } from './event.ts';

export const SALT_BYTES = 16;

export function commitEvent(event: ChannelEvent, salt: Uint8Array): Uint8Array {
  if (!isBytes(salt) || salt.length !== SALT_BYTES) throw new TypeError('salt must be 16 bytes');
  return sha256(encodeCanonical(['backchannel/v1 commitment', salt, encodeEvent(event)]));
}

export function verifyCommitment(event: ChannelEvent, salt: Uint8Array, commitment: Uint8Array): boolean {
  if (!isBytes(salt) || salt.length !== SALT_BYTES || !isBytes(commitment) || commitment.length !== 32)
    return false;
  return constantTimeEqual(commitEvent(event, salt), commitment);
}

/** The plaintext sealed inside MLS: the event plus its salt. */
export interface SealedEvent {
  readonly event: ChannelEvent;
  readonly salt: Uint8Array;
}

export function encodeSealedEvent(s: SealedEvent): Uint8Array {
  return encodeCanonical({ event: s.event, salt: s.salt });
}

const sealedSchema = z.strictObject({
  event: z.unknown(),
  salt: z.custom<Uint8Array>((x) => isBytes(x) && x.length === SALT_BYTES),
});

/** Decodes an MLS plaintext and checks it against the commitment the sender signed. */
export function openSealedEvent(plaintext: Uint8Array, commitment: Uint8Array): Decoded<SealedEvent> {
  const d = decodeCanonical(plaintext, MAX_EVENT_BYTES + 64);
  if (!d.ok) return d;
  const s = sealedSchema.safeParse(d.value);
  if (!s.success) return fail('EVENT_INVALID', 'sealed', 'expected {event, salt}');
  const e = parseEvent(s.data.event);
  if (!e.ok) return e;
  if (!verifyCommitment(e.value, s.data.salt, commitment)) {
    return fail('COMMITMENT_MISMATCH', 'sealed', 'plaintext does not match the signed commitment');
  }
  return { ok: true, value: { event: e.value, salt: s.data.salt } };
}
