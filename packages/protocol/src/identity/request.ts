/**
 * Signed requests: how a device authenticates to a relay without passwords or tokens.
 *   sig = Ed25519(deviceKey, CBOR(['backchannel/v1 request',
 *                                  CBOR([method, pathWithQuery, time, SHA-256(body), relay])]))
 * `relay` is the relay's name (GET /v1/relay `name`, the checkpoint signer's name): a signature
 * made for one relay does not verify at another, so a request captured by, or sent to, one relay
 * cannot be replayed to another within the time window (each relay has its own replay cache).
 * The relay checks the time window and refuses a signature it has already seen.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { toBase64url } from '../bytes/index.ts';
import { encodeCanonical } from '../codec/cbor.ts';
import { ProtocolError } from '../errors.ts';
import type { DeviceId } from '../ids.ts';
import { isValidKeyName } from '../transcript/note.ts';
import { nobleEd25519, type SignatureSuite, signWithLabel, verifyWithLabel } from './keys.ts';

export const REQUEST_HEADERS = { device: 'x-bc-device', time: 'x-bc-time', sig: 'x-bc-sig' } as const;

/** What a device signs for one request to the relay named `relay` (PROTOCOL.md §11). */
export function requestSigningBody(
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  relay: string,
): Uint8Array {
  // A relay name is a note key name (C2SP signed-note): never empty, no whitespace or '+'.
  if (typeof relay !== 'string' || !isValidKeyName(relay))
    throw new ProtocolError('KEY_INVALID', 'invalid relay name', 'relay');
  return encodeCanonical([method.toUpperCase(), pathWithQuery, time, sha256(body), relay]);
}

export function signRequest(
  deviceSecretKey: Uint8Array,
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  relay: string,
  suite: SignatureSuite = nobleEd25519,
): Uint8Array {
  return signWithLabel(
    deviceSecretKey,
    'request',
    requestSigningBody(method, pathWithQuery, time, body, relay),
    suite,
  );
}

/** A signature made for another relay (another `relay` name) is a forgery here: false. */
export function verifyRequest(
  devicePublicKey: Uint8Array,
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  relay: string,
  sig: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): boolean {
  return verifyWithLabel(
    devicePublicKey,
    'request',
    requestSigningBody(method, pathWithQuery, time, body, relay),
    sig,
    suite,
  );
}

/** The three headers of a request signed for the relay named `relay`. */
export function requestHeaders(
  device: DeviceId,
  deviceSecretKey: Uint8Array,
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  relay: string,
  suite?: SignatureSuite,
): Record<string, string> {
  return {
    [REQUEST_HEADERS.device]: device,
    [REQUEST_HEADERS.time]: String(time),
    [REQUEST_HEADERS.sig]: toBase64url(
      signRequest(deviceSecretKey, method, pathWithQuery, time, body, relay, suite),
    ),
  };
}
