/**
 * A ts-mls CryptoProvider on node:crypto with cached key objects. ts-mls's default backend
 * re-imports the Ed25519 key on every signature (~2.3 ms per 1 KiB encrypt); this one keeps
 * KeyObjects and calls node:crypto synchronously (~0.4 ms). Same algorithms, same encodings:
 * Ed25519 private keys are 32-byte seeds (what the default backend also accepts), so members
 * on this backend and on the browser's interoperate. Every primitive of the application-message
 * path is node:crypto (hash, HMAC, HKDF, AES-GCM, Ed25519, random), tested byte-equal to the
 * default backend; HPKE (X-Wing / DHKEM, commits and Welcomes only) stays the library's.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hash,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
  timingSafeEqual,
} from 'node:crypto';
import { createRequire } from 'node:module';
import { randomNode } from './random.node.ts';
import {
  hasSmallOrderR,
  isWeakEd25519Key,
  type SignatureSuite,
  type SodiumSign,
  sodiumEd25519,
} from '@backchannel/protocol';
import { type CiphersuiteImpl, type CryptoProvider, defaultCryptoProvider } from 'ts-mls';

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const u8 = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

class KeyCache<V> {
  readonly #map = new Map<string, V>();
  readonly #max: number;
  readonly #secret: boolean;
  /** `secret`: keyed by a hash of the key, so no string of secret bytes is kept. */
  constructor(max: number, secret = false) {
    this.#max = max;
    this.#secret = secret;
  }
  get(raw: Uint8Array, make: () => V): V {
    // Keyed by content (a JS string of the bytes: no native call, no base64 on the hot path).
    const id = this.#secret
      ? hash('sha256', raw, 'base64')
      : String.fromCharCode.apply(null, raw as unknown as number[]);
    let k = this.#map.get(id);
    if (k === undefined && !this.#map.has(id)) {
      k = make();
      if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value as string);
      this.#map.set(id, k);
    }
    return k as V;
  }
}

const privKeys = new KeyCache<KeyObject>(256, true);
const pubKeys = new KeyCache<KeyObject | null>(10_000);

function privateKey(k: Uint8Array): KeyObject {
  return privKeys.get(k, () => {
    const der = k.length === 32 ? Buffer.concat([PKCS8_ED25519, k]) : Buffer.from(k);
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  });
}

/** The key object, or null for a small-order or invalid key (nothing verifies under it). */
function publicKey(k: Uint8Array): KeyObject | null {
  return pubKeys.get(k, () =>
    isWeakEd25519Key(k)
      ? null
      : createPublicKey({ key: Buffer.concat([SPKI_ED25519, k]), format: 'der', type: 'spki' }),
  );
}

/** Ed25519 on OpenSSL (node:crypto): the fallback where libsodium's binary does not load. */
export const opensslEd25519: SignatureSuite = {
  sign: (message: Uint8Array, secretKey: Uint8Array): Uint8Array =>
    u8(nodeSign(null, message, privateKey(secretKey))),
  verify: (signature: Uint8Array, message: Uint8Array, pk: Uint8Array): boolean => {
    // OpenSSL accepts a small-order R that libsodium refuses: refused here too (one rule).
    if (pk.length !== 32 || signature.length !== 64 || hasSmallOrderR(signature)) return false;
    try {
      const key = publicKey(pk);
      return key !== null && nodeVerify(null, message, key, signature);
    } catch {
      return false;
    }
  },
};

/** libsodium through sodium-native, when its prebuilt binary loads on this machine. */
function loadSodium(): SodiumSign | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as SodiumSign;
  } catch {
    return undefined;
  }
}

const sodium = loadSodium();

/**
 * The device's Ed25519: libsodium (~2× OpenSSL's speed on the machines measured, and it refuses
 * small-order keys itself), else OpenSSL. Both sign byte-identically to noble (RFC 8032).
 */
export const ed25519Node: SignatureSuite = sodium === undefined ? opensslEd25519 : sodiumEd25519(sodium, 256);
export const ed25519Backend: 'libsodium' | 'openssl' = sodium === undefined ? 'openssl' : 'libsodium';

/** SHA-256 on node:crypto for event commitments (the protocol's default is noble's). */
export const sha256Node = (data: Uint8Array): Uint8Array => u8(hash('sha256', data, 'buffer'));

export const nodeMlsCrypto: CryptoProvider = {
  async getCiphersuiteImpl(cs): Promise<CiphersuiteImpl> {
    const base = await defaultCryptoProvider.getCiphersuiteImpl(cs);
    if (cs.signature !== 'Ed25519') return base;
    const hashAlg = cs.hash === 'SHA-512' ? 'sha512' : cs.hash === 'SHA-384' ? 'sha384' : 'sha256';
    const hashLen = hashAlg === 'sha512' ? 64 : hashAlg === 'sha384' ? 48 : 32;
    const aead = cs.hpke.aead;
    const cipher = aead === 'AES128GCM' ? 'aes-128-gcm' : aead === 'AES256GCM' ? 'aes-256-gcm' : undefined;
    const hmac = (key: Uint8Array, data: Uint8Array) => u8(createHmac(hashAlg, key).update(data).digest());
    return {
      ...base,
      hash: {
        async digest(d) {
          return u8(hash(hashAlg, d, 'buffer'));
        },
        async mac(k, d) {
          return hmac(k, d);
        },
        async verifyMac(k, m, d) {
          const x = hmac(k, d);
          return x.length === m.length && timingSafeEqual(x, m);
        },
      },
      kdf: {
        size: hashLen,
        async extract(salt, ikm) {
          return hmac(salt.length > 0 ? salt : new Uint8Array(hashLen), ikm);
        },
        async expand(prk, info, len) {
          // RFC 5869 §2.3. Every MLS derivation but the exporter fits one block: one HMAC over
          // info ‖ 0x01, one native call (no intermediate buffers).
          if (len > 255 * hashLen) throw new RangeError('HKDF-Expand: length too large');
          if (len <= hashLen) {
            const block = new Uint8Array(info.length + 1);
            block.set(info);
            block[info.length] = 1;
            const t = u8(createHmac(hashAlg, prk).update(block).digest());
            if (len === hashLen) return t;
            t.fill(0, len); // the unused tail of T(1) is key material too
            return t.subarray(0, len);
          }
          const out = new Uint8Array(len);
          let t: Uint8Array = new Uint8Array(0);
          for (let i = 1, off = 0; off < len; i++) {
            t = u8(createHmac(hashAlg, prk).update(t).update(info).update(Uint8Array.of(i)).digest());
            out.set(t.subarray(0, Math.min(t.length, len - off)), off);
            off += t.length;
          }
          return out;
        },
      },
      signature: {
        async sign(sk, m) {
          return ed25519Node.sign(m, sk);
        },
        async verify(pk, m, sig) {
          return ed25519Node.verify(sig, m, pk);
        },
        async keygen() {
          const { privateKey: sk, publicKey: pk } = generateKeyPairSync('ed25519');
          return {
            signKey: u8(sk.export({ format: 'der', type: 'pkcs8' }).subarray(16)),
            publicKey: u8(pk.export({ format: 'der', type: 'spki' }).subarray(12)),
          };
        },
      },
      // node:crypto's CSPRNG directly (the default goes through WebCrypto's getRandomValues).
      rng: { randomBytes: (n) => randomNode(n) },
      hpke:
        cipher === undefined
          ? base.hpke
          : {
              ...base.hpke,
              async encryptAead(key, nonce, aad, pt) {
                const c = createCipheriv(cipher, key, nonce);
                if (aad !== undefined && aad.length > 0) c.setAAD(aad);
                const body = c.update(pt);
                c.final(); // GCM is a stream mode: final() adds no bytes, it computes the tag
                return u8(Buffer.concat([body, c.getAuthTag()]));
              },
              async decryptAead(key, nonce, aad, ct) {
                if (ct.length < 16) throw new Error('AEAD ciphertext shorter than its tag');
                const d = createDecipheriv(cipher, key, nonce);
                if (aad !== undefined && aad.length > 0) d.setAAD(aad);
                d.setAuthTag(ct.subarray(ct.length - 16));
                const body = d.update(ct.subarray(0, ct.length - 16));
                d.final(); // throws unless the tag verifies; adds no bytes in GCM
                return u8(body);
              },
            },
    };
  },
};
