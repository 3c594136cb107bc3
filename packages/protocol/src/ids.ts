/**
 * Branded identifiers. Each is a prefix plus 22 base64url characters (16 bytes):
 * party and device ids are derived from their public keys, the others are random.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, toBase64url, utf8 } from './bytes/index.ts';
import { ProtocolError } from './errors.ts';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type PartyId = Brand<string, 'PartyId'>;
export type DeviceId = Brand<string, 'DeviceId'>;
export type ChannelId = Brand<string, 'ChannelId'>;
export type TrackId = Brand<string, 'TrackId'>;
export type EventId = Brand<string, 'EventId'>;

const ID_BODY = /^[A-Za-z0-9_-]{22}$/;

function parser<T extends string>(prefix: string, kind: string) {
  return (s: unknown, at: string = kind): T => {
    if (typeof s !== 'string' || !s.startsWith(prefix) || !ID_BODY.test(s.slice(prefix.length))) {
      throw new ProtocolError(
        'ID_INVALID',
        `${kind} must look like ${prefix}… (22 base64url characters)`,
        at,
      );
    }
    return s as T;
  };
}

export const parsePartyId = parser<PartyId>('p_', 'partyId');
export const parseDeviceId = parser<DeviceId>('d_', 'deviceId');
export const parseChannelId = parser<ChannelId>('c_', 'channelId');
export const parseTrackId = parser<TrackId>('t_', 'trackId');
export const parseEventId = parser<EventId>('e_', 'eventId');

export function isId(s: unknown, prefix: 'p_' | 'd_' | 'c_' | 't_' | 'e_'): boolean {
  return typeof s === 'string' && s.startsWith(prefix) && ID_BODY.test(s.slice(2));
}

function keyDerived(label: string, publicKey: Uint8Array): string {
  return toBase64url(sha256(concatBytes(utf8(`backchannel/v1 ${label}`), publicKey)).subarray(0, 16));
}

export function partyIdFromKey(rootPublicKey: Uint8Array): PartyId {
  return `p_${keyDerived('party-id', rootPublicKey)}` as PartyId;
}

export function deviceIdFromKey(devicePublicKey: Uint8Array): DeviceId {
  return `d_${keyDerived('device-id', devicePublicKey)}` as DeviceId;
}

/** Random ids take their 16 bytes from the caller (no ambient randomness in protocol). */
export function channelIdFrom(random16: Uint8Array): ChannelId {
  return `c_${toBase64url(random16.subarray(0, 16))}` as ChannelId;
}
export function trackIdFrom(random16: Uint8Array): TrackId {
  return `t_${toBase64url(random16.subarray(0, 16))}` as TrackId;
}
export function eventIdFrom(random16: Uint8Array): EventId {
  return `e_${toBase64url(random16.subarray(0, 16))}` as EventId;
}
