/**
 * The party's recovery kit: its root key sealed under a long recovery code, so that losing the
 * admin device does not lose the party. Without the root key nobody can add a device, revoke one
 * (a lost laptop stays a member) or publish the contact card. The admin writes the kit once
 * (`backchannel recovery-kit`), keeps the file and the code apart (the code on paper in a safe,
 * the file on a drive in another); a new device restores the root key from both
 * (`backchannel init recover`) and becomes the party's admin device, then revokes the lost one.
 *
 * Format: JSON {v: 1, kind: 'backchannel-recovery-kit', party, partyName, createdAt, salt, kdf,
 * box}; box = nonce(12) ‖ AES-256-GCM(scrypt(code, salt), CBOR {v: 1, rootSeed, partyName,
 * relays}) with the associated data "backchannel recovery-kit <party>" (a box cannot be moved
 * under another party's header). The code: 28 letters of a 30-letter alphabet (≈137 bits), so
 * the kit resists offline guessing on its own; scrypt (N = 2^15 by default) adds to that.
 * Built on @noble (no node:), so a kit written by the CLI opens in a browser and the reverse.
 */
import {
  decodeCanonical,
  encodeCanonical,
  isBytes,
  keyPairFromSeed,
  type PartyId,
  partyIdFromKey,
} from '@backchannel/protocol';
import { ClientError } from './errors.ts';
import {
  INVITE_KDF,
  isInviteKdf,
  newCodeWith,
  openWithCode,
  type ScryptParams,
  sealWithCode,
} from './invite.ts';

export const RECOVERY_CODE_LENGTH = 28;

export interface RecoveryKitFile {
  readonly v: 1;
  readonly kind: 'backchannel-recovery-kit';
  readonly party: string;
  readonly partyName: string;
  readonly createdAt: string;
  readonly salt: string;
  readonly kdf: ScryptParams;
  readonly box: string;
}

/** What a kit restores: the party's root key and what its contact card says. */
export interface RecoveredParty {
  readonly party: PartyId;
  readonly partyName: string;
  readonly rootSecretKey: Uint8Array;
  readonly relays: readonly string[];
}

export function newRecoveryCodeWith(random: (n: number) => Uint8Array): string {
  return newCodeWith(random, RECOVERY_CODE_LENGTH);
}

const aad = (party: string) => new TextEncoder().encode(`backchannel recovery-kit ${party}`);

/**
 * The scrypt parameters a kit may carry: an invite's bounds (isInviteKdf), and at most 256 MiB of
 * memory (128·N·r) and p ≤ 4 — a kit file is input, and opening it must not exhaust a browser tab.
 */
export function isRecoveryKdf(k: unknown): k is ScryptParams {
  return isInviteKdf(k) && 128 * k.N * k.r <= 256 * 1024 * 1024 && k.p <= 4;
}

export async function sealRecoveryKit(
  party: RecoveredParty,
  code: string,
  random: (n: number) => Uint8Array,
  now: number,
  kdf: ScryptParams = INVITE_KDF,
): Promise<RecoveryKitFile> {
  // A kit whose parameters openRecoveryKit refuses could never be opened: refuse to write it.
  if (!isRecoveryKdf(kdf))
    throw new ClientError(
      'INVALID_ARGUMENT',
      'scrypt parameters out of bounds for a recovery kit (N ≤ 2^20, 128·N·r ≤ 256 MiB, p ≤ 4)',
    );
  const plain = encodeCanonical({
    v: 1,
    rootSeed: party.rootSecretKey,
    partyName: party.partyName,
    relays: [...party.relays],
  });
  const { salt, box } = await sealWithCode(code, plain, aad(party.party), random, kdf);
  return {
    v: 1,
    kind: 'backchannel-recovery-kit',
    party: party.party,
    partyName: party.partyName,
    createdAt: new Date(now).toISOString(),
    salt,
    kdf,
    box,
  };
}

/**
 * Opens a kit with its code. RECOVERY_INVALID when the file is not a kit, the code does not open
 * it, or what it holds is not the root key of the party it names.
 */
export async function openRecoveryKit(file: unknown, code: string): Promise<RecoveredParty> {
  const f = (typeof file === 'object' && file !== null ? file : {}) as Partial<RecoveryKitFile>;
  if (
    f.kind !== 'backchannel-recovery-kit' ||
    typeof f.party !== 'string' ||
    typeof f.salt !== 'string' ||
    typeof f.box !== 'string' ||
    !isRecoveryKdf(f.kdf)
  ) {
    throw new ClientError('RECOVERY_INVALID', 'this is not a Backchannel recovery kit');
  }
  const plain = await openWithCode(code, { salt: f.salt, box: f.box }, aad(f.party), f.kdf);
  if (plain === undefined)
    throw new ClientError('RECOVERY_INVALID', 'the recovery code does not open this recovery kit');
  const d = decodeCanonical(plain);
  const v = (d.ok ? d.value : {}) as Record<string, unknown>;
  const relays = v.relays;
  if (
    !isBytes(v.rootSeed) ||
    v.rootSeed.length !== 32 ||
    typeof v.partyName !== 'string' ||
    !Array.isArray(relays) ||
    !relays.every((r) => typeof r === 'string')
  ) {
    throw new ClientError('RECOVERY_INVALID', 'the recovery kit is malformed');
  }
  const root = keyPairFromSeed(v.rootSeed);
  const party = partyIdFromKey(root.publicKey);
  if (party !== f.party)
    throw new ClientError(
      'RECOVERY_INVALID',
      `the recovery kit holds the key of another party than ${f.party}`,
    );
  return { party, partyName: v.partyName, rootSecretKey: root.secretKey, relays: relays as string[] };
}
