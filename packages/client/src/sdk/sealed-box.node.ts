/**
 * Encryption at rest for the local store: a key derived from the passphrase with scrypt
 * (N = 2^15, r = 8, p = 1 by default — ~100 ms and 32 MiB on a laptop), values sealed with
 * AES-256-GCM under a fresh 12-byte nonce, the record's name bound as associated data so a
 * value cannot be moved to another record.
 */
import { createCipheriv, createDecipheriv, scryptSync } from 'node:crypto';
import { randomNode } from './random.node.ts';

export interface KdfParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}
export const DEFAULT_KDF: KdfParams = { N: 1 << 15, r: 8, p: 1 };

export function deriveKey(passphrase: string, salt: Uint8Array, params: KdfParams): Uint8Array {
  return new Uint8Array(
    scryptSync(passphrase.normalize('NFKC'), salt, 32, {
      N: params.N,
      r: params.r,
      p: params.p,
      maxmem: 256 * params.N * params.r + 1024 * 1024,
    }),
  );
}

export class SealedBox {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  seal(aad: string, plaintext: Uint8Array): Uint8Array {
    const nonce = randomNode(12);
    const c = createCipheriv('aes-256-gcm', this.#key, nonce);
    c.setAAD(Buffer.from(aad, 'utf8'));
    const body = c.update(plaintext);
    const fin = c.final();
    const out = new Uint8Array(12 + body.length + fin.length + 16);
    out.set(nonce, 0);
    out.set(body, 12);
    out.set(fin, 12 + body.length);
    out.set(c.getAuthTag(), 12 + body.length + fin.length);
    return out;
  }

  /** Returns undefined when the value does not authenticate (wrong key, tampered, moved). */
  open(aad: string, sealed: Uint8Array): Uint8Array | undefined {
    if (sealed.length < 28) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.#key, sealed.subarray(0, 12));
      d.setAAD(Buffer.from(aad, 'utf8'));
      d.setAuthTag(sealed.subarray(sealed.length - 16));
      return new Uint8Array(Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]));
    } catch {
      return undefined;
    }
  }
}
