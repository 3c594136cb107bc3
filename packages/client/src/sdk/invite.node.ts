/**
 * Invites: how an admin enrolls a new device. The admin issues the device's certificate and
 * seals the new identity under a one-time code (80 random bits, scrypt-stretched); the file
 * and the code travel by different routes (file by courier/e-mail, code read aloud).
 */
import { randomBytes } from 'node:crypto';
import { fromBase64url, toBase64url } from '@backchannel/protocol';
import { ClientError } from './errors.ts';
import { decodeIdentity, type DeviceIdentity, encodeIdentity } from './identity.ts';
import { isInviteKdf } from './invite.ts';
import { DEFAULT_KDF, deriveKey, type KdfParams, SealedBox } from './sealed-box.node.ts';

const ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789'; // no 0/O, 1/I/L, U

export interface InviteFile {
  readonly v: 1;
  readonly kind: 'backchannel-invite';
  readonly party: string;
  readonly device: string;
  readonly salt: string;
  readonly kdf: KdfParams;
  readonly box: string;
}

export function newInviteCode(): string {
  const bytes = randomBytes(16);
  let s = '';
  for (let i = 0; i < 16; i++) s += ALPHABET[(bytes[i] as number) % ALPHABET.length];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}`;
}

/** As invite.ts: NFKC first, then case and separators (the same key from the same code). */
function normalizeCode(code: string): string {
  return code
    .normalize('NFKC')
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '');
}

export function sealInvite(identity: DeviceIdentity, code: string, kdf: KdfParams = DEFAULT_KDF): InviteFile {
  const salt = randomBytes(16);
  const box = new SealedBox(deriveKey(normalizeCode(code), salt, kdf));
  return {
    v: 1,
    kind: 'backchannel-invite',
    party: identity.party,
    device: identity.device,
    salt: toBase64url(salt),
    kdf,
    box: toBase64url(box.seal('invite', encodeIdentity(identity))),
  };
}

export function openInvite(file: unknown, code: string): DeviceIdentity {
  const f = (typeof file === 'object' && file !== null ? file : {}) as Partial<InviteFile>;
  if (
    f.kind !== 'backchannel-invite' ||
    typeof f.salt !== 'string' ||
    typeof f.box !== 'string' ||
    !isInviteKdf(f.kdf)
  ) {
    throw new ClientError('INVITE_INVALID', 'this is not a Backchannel invite file');
  }
  let plain: Uint8Array | undefined;
  try {
    const box = new SealedBox(deriveKey(normalizeCode(code), fromBase64url(f.salt), f.kdf));
    plain = box.open('invite', fromBase64url(f.box));
  } catch {
    plain = undefined; // salt or box not base64url, or a box too short to open
  }
  if (plain === undefined)
    throw new ClientError(
      'INVITE_INVALID',
      'the invite code does not open this invite: check it against the one your admin gave you (four groups of four letters, e.g. ABCD-EFGH-JKMN-PQRS), or ask for a new invite (`backchannel device add`)',
    );
  return decodeIdentity(plain);
}
