/**
 * MLS key packages (RFC 9420 §10) for Backchannel devices. The credential is an MLS basic
 * credential whose identity is the device's encoded certificate, and the MLS signature key
 * IS the device's Ed25519 key (32-byte seed), so a member's leaf, certificate and envelope
 * signatures all name one key. (MLS signs with "MLS 1.0 <label>", Backchannel with
 * CBOR(['backchannel/v1 <label>', …]): the domains cannot collide.)
 */
import {
  type CiphersuiteImpl,
  type Credential,
  decodeMlsMessage,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  type KeyPackage,
  type PrivateKeyPackage,
} from 'ts-mls';
import { isBytes } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';

/** Lifetime of a key package: 90 days (one-time packages are normally used long before). */
export const KEY_PACKAGE_LIFETIME_S = 90 * 24 * 3600;

export interface KeyPackageBundle {
  readonly publicPackage: KeyPackage;
  readonly privatePackage: PrivateKeyPackage;
}

export async function generateDeviceKeyPackage(opts: {
  certificate: Uint8Array;
  deviceSecretKey: Uint8Array;
  devicePublicKey: Uint8Array;
  nowSeconds: number;
  impl: CiphersuiteImpl;
}): Promise<KeyPackageBundle> {
  const credential: Credential = { credentialType: 'basic', identity: opts.certificate };
  const lifetime = {
    notBefore: BigInt(opts.nowSeconds - 3600),
    notAfter: BigInt(opts.nowSeconds + KEY_PACKAGE_LIFETIME_S),
  };
  const r = await generateKeyPackageWithKey(
    credential,
    defaultCapabilities(),
    lifetime,
    [],
    { signKey: opts.deviceSecretKey, publicKey: opts.devicePublicKey },
    opts.impl,
  );
  return { publicPackage: r.publicPackage, privatePackage: r.privatePackage };
}

export function encodeKeyPackage(kp: KeyPackage): Uint8Array {
  return encodeMlsMessage({ keyPackage: kp, wireformat: 'mls_key_package', version: 'mls10' });
}

export function decodeKeyPackage(bytes: Uint8Array): Decoded<KeyPackage> {
  if (!isBytes(bytes) || bytes.length > 64 * 1024)
    return fail('KEY_PACKAGE_INVALID', 'keyPackage', 'bad size');
  try {
    const m = decodeMlsMessage(bytes, 0)?.[0];
    if (m === undefined || m.wireformat !== 'mls_key_package') {
      return fail('KEY_PACKAGE_INVALID', 'keyPackage', 'not an MLS key package');
    }
    return { ok: true, value: m.keyPackage };
  } catch {
    return fail('KEY_PACKAGE_INVALID', 'keyPackage', 'not an MLS key package');
  }
}

export function encodePrivateKeyPackage(p: PrivateKeyPackage): Uint8Array {
  return encodeCanonical({
    init: p.initPrivateKey,
    hpke: p.hpkePrivateKey,
    sig: p.signaturePrivateKey,
  });
}

export function decodePrivateKeyPackage(b: Uint8Array): Decoded<PrivateKeyPackage> {
  const d = decodeCanonical(b);
  if (!d.ok) return d;
  const v = d.value as Record<string, unknown> | null;
  // null, a number or a string decodes too: only a map can hold the keys
  if (v === null || typeof v !== 'object' || !isBytes(v.init) || !isBytes(v.hpke) || !isBytes(v.sig)) {
    return fail('KEY_PACKAGE_INVALID', 'privateKeyPackage', 'missing keys');
  }
  return { ok: true, value: { initPrivateKey: v.init, hpkePrivateKey: v.hpke, signaturePrivateKey: v.sig } };
}

/** The credential identity (our encoded certificate) carried by a key package. */
export function keyPackageIdentity(kp: KeyPackage): Uint8Array | undefined {
  const c = kp.leafNode.credential;
  return c.credentialType === 'basic' ? c.identity : undefined;
}
