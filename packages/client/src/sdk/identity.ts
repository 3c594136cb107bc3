/**
 * This device's identity: its signing key and certificate, and — on an admin device — the
 * party's root key. Stored only inside the sealed local store.
 */
import {
  type DeviceCertificate,
  type DeviceId,
  decodeCanonical,
  decodeDeviceCertificate,
  deviceIdFromKey,
  encodeCanonical,
  encodeDeviceCertificate,
  isBytes,
  issueDeviceCertificate,
  keyPairFromSeed,
  type PartyId,
  partyIdFromKey,
  type Role,
  unwrap,
} from '@backchannel/protocol';
import { ClientError } from './errors.ts';

export interface DeviceIdentity {
  readonly party: PartyId;
  readonly partyName: string;
  readonly rootPublicKey: Uint8Array;
  /** Present only on the device that holds the party's root key (the admin device). */
  readonly rootSecretKey: Uint8Array | undefined;
  readonly device: DeviceId;
  readonly deviceName: string;
  readonly deviceSecretKey: Uint8Array;
  readonly devicePublicKey: Uint8Array;
  readonly certificate: DeviceCertificate;
  readonly relays: readonly string[];
}

/** Ten years: certificates are re-issued on rotation, revoked on departure. */
export const DEFAULT_CERT_LIFETIME_MS = 10 * 365 * 24 * 3600 * 1000;

export function newParty(opts: {
  rootSeed: Uint8Array;
  deviceSeed: Uint8Array;
  partyName: string;
  deviceName: string;
  role: Role;
  relays: readonly string[];
  now: number;
}): DeviceIdentity {
  const root = keyPairFromSeed(opts.rootSeed);
  const dev = keyPairFromSeed(opts.deviceSeed);
  const certificate = issueDeviceCertificate({
    rootSecretKey: root.secretKey,
    rootPublicKey: root.publicKey,
    devicePublicKey: dev.publicKey,
    name: opts.deviceName,
    role: opts.role,
    notBefore: opts.now - 60_000,
    notAfter: opts.now + DEFAULT_CERT_LIFETIME_MS,
  });
  return {
    party: partyIdFromKey(root.publicKey),
    partyName: opts.partyName,
    rootPublicKey: root.publicKey,
    rootSecretKey: root.secretKey,
    device: deviceIdFromKey(dev.publicKey),
    deviceName: opts.deviceName,
    deviceSecretKey: dev.secretKey,
    devicePublicKey: dev.publicKey,
    certificate,
    relays: [...opts.relays],
  };
}

/** An admin issues a certificate for a new member device (whose key it generates for the invite). */
export function issueMemberDevice(
  admin: DeviceIdentity,
  deviceSeed: Uint8Array,
  name: string,
  role: Role,
  now: number,
): { certificate: DeviceCertificate; identity: DeviceIdentity } {
  if (admin.rootSecretKey === undefined) {
    throw new ClientError('NOT_ADMIN', 'only the device holding the party root key can add devices');
  }
  const dev = keyPairFromSeed(deviceSeed);
  const certificate = issueDeviceCertificate({
    rootSecretKey: admin.rootSecretKey,
    rootPublicKey: admin.rootPublicKey,
    devicePublicKey: dev.publicKey,
    name,
    role,
    notBefore: now - 60_000,
    notAfter: now + DEFAULT_CERT_LIFETIME_MS,
  });
  return {
    certificate,
    identity: {
      party: admin.party,
      partyName: admin.partyName,
      rootPublicKey: admin.rootPublicKey,
      rootSecretKey: undefined,
      device: certificate.body.device,
      deviceName: name,
      deviceSecretKey: dev.secretKey,
      devicePublicKey: dev.publicKey,
      certificate,
      relays: admin.relays,
    },
  };
}

export function encodeIdentity(id: DeviceIdentity): Uint8Array {
  return encodeCanonical({
    v: 1,
    partyName: id.partyName,
    rootPublicKey: id.rootPublicKey,
    rootSecretKey: id.rootSecretKey,
    deviceName: id.deviceName,
    deviceSecretKey: id.deviceSecretKey,
    certificate: encodeDeviceCertificate(id.certificate),
    relays: [...id.relays],
  });
}

export function decodeIdentity(b: Uint8Array): DeviceIdentity {
  const v = unwrap(decodeCanonical(b)) as Record<string, unknown>;
  const rootPublicKey = v.rootPublicKey;
  const deviceSecretKey = v.deviceSecretKey;
  if (!isBytes(rootPublicKey) || !isBytes(deviceSecretKey) || !isBytes(v.certificate)) {
    throw new ClientError('STORE_CORRUPT', 'identity record is malformed');
  }
  const certificate = unwrap(decodeDeviceCertificate(v.certificate));
  const dev = keyPairFromSeed(deviceSecretKey);
  return {
    party: partyIdFromKey(rootPublicKey),
    partyName: String(v.partyName),
    rootPublicKey,
    rootSecretKey: isBytes(v.rootSecretKey) ? v.rootSecretKey : undefined,
    device: deviceIdFromKey(dev.publicKey),
    deviceName: String(v.deviceName),
    deviceSecretKey,
    devicePublicKey: dev.publicKey,
    certificate,
    relays: Array.isArray(v.relays) ? v.relays.map(String) : [],
  };
}
