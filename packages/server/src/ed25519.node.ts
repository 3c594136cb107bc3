/**
 * The relay's native Ed25519: libsodium (sodium-native) when it loads, else node:crypto (OpenSSL)
 * with cached KeyObjects — ~50 / ~106 µs per verify on the CI machine against ~1.5 ms for the
 * pure-JS default. Signatures are RFC 8032 Ed25519, byte-identical to noble's. Also SHA-256 and
 * the RFC 9162 leaf hash on node:crypto.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  hasSmallOrderR,
  isWeakEd25519Key,
  type SignatureSuite,
  type SodiumSign,
  sodiumEd25519,
} from '@backchannel/protocol';

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A bounded cache (oldest-inserted out first); a hit is re-inserted so hot keys stay. */
class KeyCache {
  readonly #max: number;
  readonly #secret: boolean;
  readonly #map = new Map<string, KeyObject | null>();

  /** `secret`: keyed by a hash of the key, so no string of secret bytes is kept. */
  constructor(max: number, secret = false) {
    this.#max = max;
    this.#secret = secret;
  }

  get(raw: Uint8Array, make: (raw: Uint8Array) => KeyObject | null): KeyObject | null {
    const k = this.#secret
      ? createHash('sha256').update(raw).digest('base64')
      : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
    const hit = this.#map.get(k);
    if (hit !== undefined) return hit;
    const ko = make(raw);
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
    this.#map.set(k, ko);
    return ko;
  }
}

export function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function privateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of a seed. */
export function publicKeyOfSeed(seed: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** libsodium through sodium-native, when its prebuilt binary loads on this machine. */
export function loadSodium(): SodiumSign | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as SodiumSign;
  } catch {
    return undefined;
  }
}

const sodium = loadSodium();
/** The Ed25519 implementation nodeEd25519() uses by default here. */
export const ed25519Backend: 'libsodium' | 'openssl' = sodium === undefined ? 'openssl' : 'libsodium';

/**
 * The relay's Ed25519: libsodium (~2× OpenSSL's verification speed on the machines measured; it
 * refuses small-order keys itself) unless `backend: 'openssl'` or the binary did not load. On
 * OpenSSL a small-order or invalid public key is refused before verification (cached per key).
 */
export function nodeEd25519(
  opts: { maxCachedKeys?: number; backend?: 'libsodium' | 'openssl' } = {},
): SignatureSuite {
  if (sodium !== undefined && opts.backend !== 'openssl') return sodiumEd25519(sodium);
  const publicKeys = new KeyCache(opts.maxCachedKeys ?? 10_000);
  const secretKeys = new KeyCache(64, true);
  const strongKey = (raw: Uint8Array): KeyObject | null =>
    isWeakEd25519Key(raw) ? null : publicKeyObject(raw);
  return {
    sign: (message, secretKey) =>
      new Uint8Array(sign(null, message, secretKeys.get(secretKey, privateKeyObject) as KeyObject)),
    verify: (signature, message, publicKey) => {
      // OpenSSL accepts a small-order R that libsodium refuses: refused here too (one rule).
      if (signature.length !== 64 || publicKey.length !== 32 || hasSmallOrderR(signature)) return false;
      try {
        const key = publicKeys.get(publicKey, strongKey);
        return key !== null && verify(null, message, key, signature);
      } catch {
        return false;
      }
    },
  };
}

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/** RFC 9162 §2.1.1 leaf hash SHA-256(0x00 || data) on node:crypto (same bytes as protocol's leafHash). */
export function leafHashNode(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(Uint8Array.of(0)).update(data).digest());
}
