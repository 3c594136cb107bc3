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

/** 2^48: the counter of a sequenced event id wraps here. */
export const EVENT_ID_COUNTER_SPAN = 2 ** 48;

/**
 * An event id for a device's next message: 6 bytes of a counter (`n` modulo 2^48, big-endian)
 * and then 10 random bytes. Ids a device makes one after another share their first characters,
 * so a store's index on them (the relay's idempotency index on (channel, msgId)) takes each new
 * one beside the last instead of on a random page: about half of the pages a batch commit
 * writes, at W1's size. 80 random bits keep an id unguessable (no one can take a device's next
 * id first). Start the counter at a random value: it then tells no one anything (the relay
 * sees the messages arrive in order anyway). Same format as eventIdFrom: readers never parse it.
 */
export function sequencedEventId(n: number, random10: Uint8Array): EventId {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError('event id counter must be a non-negative integer');
  if (random10.length < 10) throw new RangeError('a sequenced event id takes 10 random bytes');
  const b = new Uint8Array(16);
  let c = n % EVENT_ID_COUNTER_SPAN;
  for (let i = 5; i >= 0; i--) {
    b[i] = c % 256;
    c = Math.floor(c / 256);
  }
  b.set(random10.subarray(0, 10), 6);
  return eventIdFrom(b);
}
