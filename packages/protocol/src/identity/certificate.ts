/**
 * Device certificates and revocations, both signed by the party's root key.
 * A certificate binds {party, device public key, member name, role, validity window}.
 */
import { z } from 'zod';
import { isBytes } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail, type ProtocolErrorCode } from '../errors.ts';
import { type DeviceId, deviceIdFromKey, type PartyId, partyIdFromKey } from '../ids.ts';
import { nobleEd25519, type SignatureSuite, signWithLabel, verifyWithLabel } from './keys.ts';

export const ROLES = ['principal', 'negotiator', 'staff', 'observer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const bytes = (n?: number) =>
  z.custom<Uint8Array>((x) => isBytes(x) && (n === undefined || x.length === n), {
    message: n === undefined ? 'expected bytes' : `expected ${n} bytes`,
  });
const partyId = z.string().regex(/^p_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<PartyId>;
const deviceId = z.string().regex(/^d_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<DeviceId>;
const timestamp = z.number().int().nonnegative();

export const deviceCertBodySchema = z.strictObject({
  v: z.literal(1),
  party: partyId,
  device: deviceId,
  devicePublicKey: bytes(32),
  name: z.string().min(1).max(200),
  role: z.enum(ROLES),
  notBefore: timestamp,
  notAfter: timestamp,
});
export type DeviceCertBody = z.infer<typeof deviceCertBodySchema>;

export interface DeviceCertificate {
  readonly body: DeviceCertBody;
  readonly sig: Uint8Array;
}

export const revocationBodySchema = z.strictObject({
  v: z.literal(1),
  party: partyId,
  device: deviceId,
  revokedAt: timestamp,
  reason: z.string().max(500),
});
export type RevocationBody = z.infer<typeof revocationBodySchema>;
export interface Revocation {
  readonly body: RevocationBody;
  readonly sig: Uint8Array;
}

export interface IssueCertificateInput {
  readonly rootSecretKey: Uint8Array;
  readonly rootPublicKey: Uint8Array;
  readonly devicePublicKey: Uint8Array;
  readonly name: string;
  readonly role: Role;
  readonly notBefore: number;
  readonly notAfter: number;
}

export function issueDeviceCertificate(input: IssueCertificateInput): DeviceCertificate {
  const body = deviceCertBodySchema.parse({
    v: 1,
    party: partyIdFromKey(input.rootPublicKey),
    device: deviceIdFromKey(input.devicePublicKey),
    devicePublicKey: input.devicePublicKey,
    name: input.name,
    role: input.role,
    notBefore: input.notBefore,
    notAfter: input.notAfter,
  });
  return { body, sig: signWithLabel(input.rootSecretKey, 'device-certificate', encodeCanonical(body)) };
}

export function encodeDeviceCertificate(cert: DeviceCertificate): Uint8Array {
  return encodeCanonical({ body: cert.body, sig: cert.sig });
}

const signedSchema = z.strictObject({ body: z.unknown(), sig: bytes(64) });

function decodeSigned<T>(
  bytesIn: unknown,
  bodySchema: z.ZodType<T>,
  at: string,
): Decoded<{ body: T; sig: Uint8Array }> {
  const d = decodeCanonical(bytesIn, 16 * 1024);
  if (!d.ok) return d;
  const outer = signedSchema.safeParse(d.value);
  if (!outer.success) return fail('SCHEMA_INVALID', at, 'expected {body, sig}');
  const body = bodySchema.safeParse(outer.data.body);
  if (!body.success) {
    const issue = body.error.issues[0];
    return fail('SCHEMA_INVALID', `${at}.body.${issue?.path.join('.') ?? ''}`, issue?.message ?? 'invalid');
  }
  return { ok: true, value: { body: body.data, sig: outer.data.sig } };
}

export function decodeDeviceCertificate(b: unknown): Decoded<DeviceCertificate> {
  const d = decodeSigned(b, deviceCertBodySchema, 'certificate');
  if (!d.ok) return d;
  if (deviceIdFromKey(d.value.body.devicePublicKey) !== d.value.body.device) {
    return fail('CERT_WRONG_PARTY', 'certificate.body.device', 'device id does not match its public key');
  }
  return d;
}

export function issueRevocation(
  rootSecretKey: Uint8Array,
  rootPublicKey: Uint8Array,
  device: DeviceId,
  revokedAt: number,
  reason: string,
): Revocation {
  const body = revocationBodySchema.parse({
    v: 1,
    party: partyIdFromKey(rootPublicKey),
    device,
    revokedAt,
    reason,
  });
  return { body, sig: signWithLabel(rootSecretKey, 'revocation', encodeCanonical(body)) };
}

export function encodeRevocation(r: Revocation): Uint8Array {
  return encodeCanonical({ body: r.body, sig: r.sig });
}

export function decodeRevocation(b: unknown): Decoded<Revocation> {
  return decodeSigned(b, revocationBodySchema, 'revocation');
}

/**
 * Proof that whoever registers a device certificate holds the device's private key: the device
 * key's signature over the certificate's encoding, labelled 'device-key-proof' (PROTOCOL.md §4).
 * A root can certify any public key it has seen; without this proof another party could register
 * your device's key under its own party first, and your device would be refused at that relay.
 */
export function proveDeviceKey(
  deviceSecretKey: Uint8Array,
  certificate: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): Uint8Array {
  return signWithLabel(deviceSecretKey, 'device-key-proof', certificate, suite);
}

/** Does `proof` show possession of the key `certificate` certifies? A bad proof is false, not thrown. */
export function verifyDeviceKeyProof(
  cert: DeviceCertificate,
  certificate: Uint8Array,
  proof: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): boolean {
  return verifyWithLabel(cert.body.devicePublicKey, 'device-key-proof', certificate, proof, suite);
}

export function verifyRevocation(r: Revocation, rootPublicKey: Uint8Array): boolean {
  return (
    r.body.party === partyIdFromKey(rootPublicKey) &&
    verifyWithLabel(rootPublicKey, 'revocation', encodeCanonical(r.body), r.sig)
  );
}

export type CertificateCheck =
  | { readonly ok: true; readonly party: PartyId; readonly device: DeviceId; readonly role: Role }
  | { readonly ok: false; readonly code: ProtocolErrorCode; readonly reason: string };

export interface VerifyCertificateOptions {
  readonly rootPublicKey: Uint8Array;
  readonly now: number;
  readonly revocations?: readonly Revocation[];
  /** When given, the certificate's role must be one of these. */
  readonly allowedRoles?: readonly Role[];
  readonly suite?: SignatureSuite;
}

/** Checks signature, party, validity window, revocation and role — in that order. */
export function verifyDeviceCertificate(
  cert: DeviceCertificate,
  opts: VerifyCertificateOptions,
): CertificateCheck {
  const { body } = cert;
  if (body.party !== partyIdFromKey(opts.rootPublicKey)) {
    return { ok: false, code: 'CERT_WRONG_PARTY', reason: 'certificate names another party' };
  }
  const suite = opts.suite ?? nobleEd25519;
  if (!verifyWithLabel(opts.rootPublicKey, 'device-certificate', encodeCanonical(body), cert.sig, suite)) {
    return {
      ok: false,
      code: 'SIG_INVALID',
      reason: 'certificate signature does not verify under the party root key',
    };
  }
  if (opts.now < body.notBefore)
    return { ok: false, code: 'CERT_NOT_YET_VALID', reason: 'certificate not yet valid' };
  if (opts.now > body.notAfter) return { ok: false, code: 'CERT_EXPIRED', reason: 'certificate expired' };
  for (const r of opts.revocations ?? []) {
    if (
      r.body.device === body.device &&
      r.body.revokedAt <= opts.now &&
      verifyRevocation(r, opts.rootPublicKey)
    ) {
      return { ok: false, code: 'CERT_REVOKED', reason: 'device revoked by its party' };
    }
  }
  if (opts.allowedRoles !== undefined && !opts.allowedRoles.includes(body.role)) {
    return { ok: false, code: 'ROLE_FORBIDDEN', reason: `role ${body.role} may not do this` };
  }
  return { ok: true, party: body.party, device: body.device, role: body.role };
}

/** A role with its article, for refusals: "an admin", "a negotiator". */
export function aRole(role: Role): string {
  return `${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}`;
}
