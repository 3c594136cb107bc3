/**
 * Ed25519 keys and domain-separated signatures (RFC 8032 via @noble/curves).
 * Every signature covers encodeCanonical(['backchannel/v1 <label>', body]) so a signature
 * made for one purpose can never be replayed as another.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { assertBytes, constantTimeEqual, toHex } from '../bytes/index.ts';
import { encodeCanonical } from '../codec/cbor.ts';

export type SignatureLabel =
  | 'device-certificate'
  | 'device-key-proof'
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

/**
 * One acceptance rule for every suite, so that no signature verifies in one place and not in
 * another: RFC 8032 with canonical encodings, and neither the key nor R may be of small order or
 * carry a torsion component (libsodium's rule; with both in the prime-order subgroup the cofactored
 * check noble makes and the cofactorless one of libsodium and OpenSSL agree). Each suite adds what
 * its library does not check itself.
 */
export const nobleEd25519: SignatureSuite = {
  sign: (message, secretKey) => ed25519.sign(message, secretKey),
  verify: (signature, message, publicKey) => {
    try {
      if (signature.length !== 64 || isWeakEd25519Key(publicKey)) return false;
      const r = ed25519.Point.fromBytes(signature.subarray(0, 32), false);
      if (r.isSmallOrder() || !r.isTorsionFree()) return false;
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};

/**
 * The three libsodium calls a native suite needs, with sodium-native's names and argument order
 * (output buffers first). The protocol package stays free of native code: a Node process loads
 * the binding and hands it here.
 */
export interface SodiumSign {
  crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void;
  crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void;
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/**
 * Ed25519 on libsodium: the same RFC 8032 signatures as noble, about 2× faster than OpenSSL's on
 * the machines measured (docs/PERFORMANCE.md). libsodium itself refuses small-order R and keys and
 * checks cofactorless; keys with a torsion component are refused here, as in every suite. Expanded
 * secret keys (seed ‖ public key) are cached per seed (keyed by its SHA-256, not its bytes).
 */
export function sodiumEd25519(sodium: SodiumSign, maxCachedSecrets = 64): SignatureSuite {
  const expanded = new Map<string, Uint8Array>();
  // The same seed array signs again and again (a device's key): found by identity, no hash. The
  // expanded key begins with the seed, so a seed array changed since is seen and looked up anew.
  // An expanded key stays reachable while its seed array lives (as the seed itself does), beyond
  // the bounded map below; a changed array's old entry is dropped at once.
  const bySeedArray = new WeakMap<Uint8Array, Uint8Array>();
  const expand = (seed: Uint8Array): Uint8Array => {
    assertBytes(seed, 32, 'secretKey');
    const known = bySeedArray.get(seed);
    if (known !== undefined) {
      if (constantTimeEqual(known.subarray(0, 32), seed)) return known;
      bySeedArray.delete(seed);
    }
    // Keyed by a hash of the seed: no string of secret bytes is kept in the map.
    const id = toHex(sha256(seed));
    let sk = expanded.get(id);
    if (sk === undefined) {
      sk = new Uint8Array(64);
      sodium.crypto_sign_seed_keypair(new Uint8Array(32), sk, seed);
      if (expanded.size >= maxCachedSecrets) expanded.delete(expanded.keys().next().value as string);
      expanded.set(id, sk);
    }
    bySeedArray.set(seed, sk);
    return sk;
  };
  return {
    sign: (message, secretKey) => {
      const signature = new Uint8Array(64);
      sodium.crypto_sign_detached(signature, message, expand(secretKey));
      return signature;
    },
    verify: (signature, message, publicKey) => {
      if (signature.length !== 64 || isWeakEd25519Key(publicKey)) return false;
      try {
        return sodium.crypto_sign_verify_detached(signature, message, publicKey);
      } catch {
        return false;
      }
    },
  };
}

/**
 * Whether a public key is unusable for signatures: not a canonical point encoding, a point of
 * small order (an all-identity "signature" verifies on any message under ZIP-215 or OpenSSL
 * rules), or a point with a torsion component (cofactored and cofactorless checks disagree on
 * its signatures). Every suite refuses such keys; each key is judged once (bounded memo).
 */
export function isWeakEd25519Key(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return true;
  // The key judged last (a busy sender's, usually) is answered without building the memo's key.
  if (lastJudged !== undefined && sameBytes(lastJudged.key, publicKey)) return lastJudged.weak;
  const id = toHex(publicKey);
  let weak = judgedKeys.get(id);
  if (weak === undefined) {
    try {
      const p = ed25519.Point.fromBytes(publicKey, false);
      weak = p.isSmallOrder() || !p.isTorsionFree();
    } catch {
      weak = true;
    }
    if (judgedKeys.size >= 10_000) judgedKeys.delete(judgedKeys.keys().next().value as string);
    judgedKeys.set(id, weak);
  }
  lastJudged = { key: publicKey.slice(), weak };
  return weak;
}
const judgedKeys = new Map<string, boolean>();
let lastJudged: { readonly key: Uint8Array; readonly weak: boolean } | undefined;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The canonical encodings of the 8 points of small order: multiples of a point of order 8. */
const SMALL_ORDER = (() => {
  const t = ed25519.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const out: Uint8Array[] = [];
  for (let i = 0, p = ed25519.Point.ZERO; i < 8; i++, p = p.add(t)) out.push(p.toBytes());
  return out;
})();

/**
 * Whether a signature's R is (the canonical encoding of) a point of small order: OpenSSL accepts
 * such an R where libsodium refuses it, so the OpenSSL paths refuse it first. Cheap: a lookup.
 */
export function hasSmallOrderR(signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const r = signature.subarray(0, 32);
  for (const p of SMALL_ORDER) if (p[0] === r[0] && sameBytes(p, r)) return true;
  return false;
}

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
