/**
 * Signed requests: how a device authenticates to a relay without passwords or tokens.
 *   sig = Ed25519(deviceKey, CBOR(['backchannel/v1 request', CBOR([method, pathWithQuery, time, SHA-256(body)])]))
 * The relay checks the time window and refuses a signature it has already seen.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { toBase64url } from '../bytes/index.ts';
import { encodeCanonical } from '../codec/cbor.ts';
import type { DeviceId } from '../ids.ts';
import { nobleEd25519, type SignatureSuite, signWithLabel, verifyWithLabel } from './keys.ts';

export const REQUEST_HEADERS = { device: 'x-bc-device', time: 'x-bc-time', sig: 'x-bc-sig' } as const;

export function requestSigningBody(
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
): Uint8Array {
  return encodeCanonical([method.toUpperCase(), pathWithQuery, time, sha256(body)]);
}

export function signRequest(
  deviceSecretKey: Uint8Array,
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): Uint8Array {
  return signWithLabel(
    deviceSecretKey,
    'request',
    requestSigningBody(method, pathWithQuery, time, body),
    suite,
  );
}

export function verifyRequest(
  devicePublicKey: Uint8Array,
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  sig: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): boolean {
  return verifyWithLabel(
    devicePublicKey,
    'request',
    requestSigningBody(method, pathWithQuery, time, body),
    sig,
    suite,
  );
}

/** The three headers of a signed request. */
export function requestHeaders(
  device: DeviceId,
  deviceSecretKey: Uint8Array,
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  suite?: SignatureSuite,
): Record<string, string> {
  return {
    [REQUEST_HEADERS.device]: device,
    [REQUEST_HEADERS.time]: String(time),
    [REQUEST_HEADERS.sig]: toBase64url(
      signRequest(deviceSecretKey, method, pathWithQuery, time, body, suite),
    ),
  };
}
