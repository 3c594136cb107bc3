/**
 * Ed25519 keys and domain-separated signatures (RFC 8032 via @noble/curves).
 * Every signature covers encodeCanonical(['backchannel/v1 <label>', body]) so a signature
 * made for one purpose can never be replayed as another.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { assertBytes } from '../bytes/index.ts';
import { encodeCanonical } from '../codec/cbor.ts';

export type SignatureLabel =
  | 'device-certificate'
  | 'revocation'
  | 'contact-card'
  | 'envelope'
  | 'invite'
  | 'request'
  | 'attestation'
  | 'relay-receipt'
  | 'relay-receipt-batch'
  | 'document-signature';

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/**
 * A signature backend. The default is pure (noble); a Node process may inject a faster one
 * (node:crypto with cached key objects) that must produce identical, RFC 8032 signatures.
 */
export interface SignatureSuite {
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

export const nobleEd25519: SignatureSuite = {
  sign: (message, secretKey) => ed25519.sign(message, secretKey),
  verify: (signature, message, publicKey) => {
    try {
      return ed25519.verify(signature, message, publicKey);
    } catch {
      return false;
    }
  },
};

/** Derives a key pair from a 32-byte seed supplied by the caller (no ambient randomness). */
export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  assertBytes(seed, 32, 'seed');
  return { secretKey: seed.slice(), publicKey: ed25519.getPublicKey(seed) };
}

export function labelledMessage(label: SignatureLabel, body: Uint8Array): Uint8Array {
  return encodeCanonical([`backchannel/v1 ${label}`, body]);
}

export function signWithLabel(
  secretKey: Uint8Array,
  label: SignatureLabel,
  body: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): Uint8Array {
  assertBytes(secretKey, 32, 'secretKey');
  return suite.sign(labelledMessage(label, body), secretKey);
}

/** A forged signature is a result (false), not an exception. */
export function verifyWithLabel(
  publicKey: Uint8Array,
  label: SignatureLabel,
  body: Uint8Array,
  signature: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  return suite.verify(signature, labelledMessage(label, body), publicKey);
}
