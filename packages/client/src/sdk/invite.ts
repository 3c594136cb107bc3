/**
 * Invites without node: (browsers): the same format as invite.node.ts — scrypt-stretched
 * one-time code, identity sealed with AES-256-GCM as nonce ‖ ciphertext ‖ tag under the
 * associated data "invite" — built on @noble/hashes and @noble/ciphers, so an invite written
 * by the CLI opens in the web app and the reverse.
 */
import { fromBase64url, toBase64url } from '@backchannel/protocol';
import { gcm } from '@noble/ciphers/aes.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { ClientError } from './errors.ts';
import { decodeIdentity, type DeviceIdentity, encodeIdentity } from './identity.ts';

const ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789'; // no 0/O, 1/I/L, U
const AAD = new TextEncoder().encode('invite');

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}
/** Same default as the CLI: N = 2^15, r = 8, p = 1. */
export const INVITE_KDF: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

export interface PortableInviteFile {
  readonly v: 1;
  readonly kind: 'backchannel-invite';
  readonly party: string;
  readonly device: string;
  readonly salt: string;
  readonly kdf: ScryptParams;
  readonly box: string;
}

/**
 * The scrypt parameters an invite file may ask for. The file is input: unbounded r or p would
 * make opening it allocate or compute without end, and parameters scrypt refuses would throw
 * its own error rather than INVITE_INVALID. N a power of two up to 2^20, r ≤ 32, p ≤ 16.
 */
export function isInviteKdf(k: unknown): k is ScryptParams {
  if (k === null || typeof k !== 'object') return false;
  const { N, r, p } = k as Record<string, unknown>;
  return (
    Number.isSafeInteger(N) &&
    Number.isSafeInteger(r) &&
    Number.isSafeInteger(p) &&
    (N as number) >= 2 &&
    (N as number) <= 1 << 20 &&
    ((N as number) & ((N as number) - 1)) === 0 &&
    (r as number) >= 1 &&
    (r as number) <= 32 &&
    (p as number) >= 1 &&
    (p as number) <= 16
  );
}

/** 16 characters from a 30-letter alphabet (~78 bits), grouped by four. */
export function newInviteCodeWith(random: (n: number) => Uint8Array): string {
  return newCodeWith(random, 16);
}

/** `length` characters from a 30-letter alphabet (log2 30 ≈ 4.9 bits each), grouped by four. */
export function newCodeWith(random: (n: number) => Uint8Array, length: number): string {
  let s = '';
  // Rejection sampling keeps every letter equally likely (256 is not a multiple of 30).
  while (s.length < length) {
    for (const b of random(32)) {
      if (b < 240 && s.length < length) s += ALPHABET[b % ALPHABET.length];
    }
  }
  return (s.match(/.{1,4}/g) ?? []).join('-');
}

/** NFKC first (a full-width letter typed on some keyboards is the letter), then case and separators. */
function normalizeCode(code: string): string {
  return code
    .normalize('NFKC')
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '');
}

/** The AES-256 key a code opens: scrypt over the normalized code (case, dashes and spaces ignored). */
async function keyFor(code: string, salt: Uint8Array, kdf: ScryptParams): Promise<Uint8Array> {
  return scryptAsync(normalizeCode(code), salt, {
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    dkLen: 32,
    maxmem: 256 * kdf.N * kdf.r + 1024 * 1024,
  });
}

/**
 * Seals `plain` under a code: a fresh salt, and the box nonce(12) ‖ AES-256-GCM(keyFor(code),
 * plain) with the associated data `aad`, both base64url (invites and recovery kits).
 */
export async function sealWithCode(
  code: string,
  plain: Uint8Array,
  aad: Uint8Array,
  random: (n: number) => Uint8Array,
  kdf: ScryptParams,
): Promise<{ salt: string; box: string }> {
  const salt = random(16);
  const nonce = random(12);
  const ct = gcm(await keyFor(code, salt, kdf), nonce, aad).encrypt(plain);
  const box = new Uint8Array(12 + ct.length);
  box.set(nonce, 0);
  box.set(ct, 12);
  return { salt: toBase64url(salt), box: toBase64url(box) };
}

/** What sealWithCode sealed; undefined when the code does not open it (or salt or box is malformed). */
export async function openWithCode(
  code: string,
  sealed: { readonly salt: string; readonly box: string },
  aad: Uint8Array,
  kdf: ScryptParams,
): Promise<Uint8Array | undefined> {
  try {
    const box = fromBase64url(sealed.box);
    if (box.length < 28) return undefined;
    const key = await keyFor(code, fromBase64url(sealed.salt), kdf);
    return gcm(key, box.subarray(0, 12), aad).decrypt(box.subarray(12));
  } catch {
    return undefined;
  }
}

export async function sealInviteWith(
  identity: DeviceIdentity,
  code: string,
  random: (n: number) => Uint8Array,
  kdf: ScryptParams = INVITE_KDF,
): Promise<PortableInviteFile> {
  const { salt, box } = await sealWithCode(code, encodeIdentity(identity), AAD, random, kdf);
  return { v: 1, kind: 'backchannel-invite', party: identity.party, device: identity.device, salt, kdf, box };
}

export async function openInviteWith(file: unknown, code: string): Promise<DeviceIdentity> {
  const f = (typeof file === 'object' && file !== null ? file : {}) as Partial<PortableInviteFile>;
  const kdf = f.kdf;
  if (
    f.kind !== 'backchannel-invite' ||
    typeof f.salt !== 'string' ||
    typeof f.box !== 'string' ||
    !isInviteKdf(kdf)
  ) {
    throw new ClientError('INVITE_INVALID', 'this is not a Backchannel invite');
  }
  const plain = await openWithCode(code, { salt: f.salt, box: f.box }, AAD, kdf);
  if (plain === undefined)
    throw new ClientError(
      'INVITE_INVALID',
      'the invite code does not open this invite: check it against the one your admin gave you (four groups of four letters, e.g. ABCD-EFGH-JKMN-PQRS), or ask for a new invite (`backchannel device add`)',
    );
  return decodeIdentity(plain);
}
