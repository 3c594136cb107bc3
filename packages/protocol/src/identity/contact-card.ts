/**
 * Contact card: a party's public, signed description — what an outreach is sent to.
 * The fingerprint is a safety-number: digits humans read aloud to compare out of band.
 */
import { sha512 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { concatBytes, isBytes, utf8 } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import { type PartyId, partyIdFromKey } from '../ids.ts';
import { type DeviceCertificate, decodeDeviceCertificate, encodeDeviceCertificate } from './certificate.ts';
import { signWithLabel, verifyWithLabel } from './keys.ts';

const bytes = (n?: number) =>
  z.custom<Uint8Array>((x) => isBytes(x) && (n === undefined || x.length === n), {
    message: 'expected bytes',
  });

export const contactCardBodySchema = z.strictObject({
  v: z.literal(1),
  party: z.string().regex(/^p_[A-Za-z0-9_-]{22}$/),
  rootPublicKey: bytes(32),
  displayName: z.string().min(1).max(200),
  relays: z.array(z.string().url().max(500)).max(8),
  /** Encoded device certificates of the devices an outreach should reach. */
  devices: z.array(bytes()).max(64),
  /** MLS key packages (encoded) for those devices; the relay also hands out fresh ones. */
  keyPackages: z.array(bytes()).max(256),
  issuedAt: z.number().int().nonnegative(),
});
export type ContactCardBody = z.infer<typeof contactCardBodySchema>;

export interface ContactCard {
  readonly body: ContactCardBody;
  readonly sig: Uint8Array;
}

export interface MakeContactCardInput {
  readonly rootSecretKey: Uint8Array;
  readonly rootPublicKey: Uint8Array;
  readonly displayName: string;
  readonly relays: readonly string[];
  readonly devices: readonly DeviceCertificate[];
  readonly keyPackages?: readonly Uint8Array[];
  readonly issuedAt: number;
}

export function makeContactCard(input: MakeContactCardInput): ContactCard {
  const body = contactCardBodySchema.parse({
    v: 1,
    party: partyIdFromKey(input.rootPublicKey),
    rootPublicKey: input.rootPublicKey,
    displayName: input.displayName,
    relays: [...input.relays],
    devices: input.devices.map(encodeDeviceCertificate),
    keyPackages: [...(input.keyPackages ?? [])],
    issuedAt: input.issuedAt,
  });
  return { body, sig: signWithLabel(input.rootSecretKey, 'contact-card', encodeCanonical(body)) };
}

export function encodeContactCard(card: ContactCard): Uint8Array {
  return encodeCanonical({ body: card.body, sig: card.sig });
}

/** Decodes and verifies a card: schema, party id derived from the root key, self-signature. */
export function decodeContactCard(b: unknown): Decoded<ContactCard> {
  const d = decodeCanonical(b, 512 * 1024);
  if (!d.ok) return d;
  const outer = z.strictObject({ body: z.unknown(), sig: bytes(64) }).safeParse(d.value);
  if (!outer.success) return fail('CARD_INVALID', 'card', 'expected {body, sig}');
  const body = contactCardBodySchema.safeParse(outer.data.body);
  if (!body.success) {
    const issue = body.error.issues[0];
    return fail('CARD_INVALID', `card.body.${issue?.path.join('.') ?? ''}`, issue?.message ?? 'invalid');
  }
  if (body.data.party !== partyIdFromKey(body.data.rootPublicKey)) {
    return fail('CARD_INVALID', 'card.body.party', 'party id does not match the root key');
  }
  if (!verifyWithLabel(body.data.rootPublicKey, 'contact-card', encodeCanonical(body.data), outer.data.sig)) {
    return fail('SIG_INVALID', 'card.sig', 'contact card signature does not verify');
  }
  for (const [i, c] of body.data.devices.entries()) {
    const cert = decodeDeviceCertificate(c);
    if (!cert.ok) return fail(cert.code, `card.body.devices[${i}]`, cert.message);
    if (cert.value.body.party !== body.data.party) {
      return fail('CARD_INVALID', `card.body.devices[${i}]`, 'device certificate of another party');
    }
  }
  return { ok: true, value: { body: body.data, sig: outer.data.sig } };
}

export function cardParty(card: ContactCard): PartyId {
  return card.body.party as PartyId;
}

/**
 * Safety-number fingerprint of a root key: 30 digits in 6 groups of 5, derived by
 * 1024 iterations of SHA-512 (as Signal's safety numbers, so guessing a colliding key is costly).
 */
export function fingerprint(rootPublicKey: Uint8Array): string {
  let h = sha512(concatBytes(utf8('backchannel/v1 fingerprint'), rootPublicKey));
  for (let i = 0; i < 1024; i++) h = sha512(concatBytes(h, rootPublicKey));
  const groups: string[] = [];
  for (let g = 0; g < 6; g++) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + (h[g * 5 + j] as number);
    groups.push(String(n % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}

/** The channel safety number both sides compare: the two fingerprints, in a fixed order. */
export function safetyNumber(rootKeyA: Uint8Array, rootKeyB: Uint8Array): string {
  const [x, y] = [fingerprint(rootKeyA), fingerprint(rootKeyB)].sort();
  return `${x} ${y}`;
}
