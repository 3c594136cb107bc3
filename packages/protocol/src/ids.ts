/**
 * Branded identifiers. Each is a prefix plus 22 base64url characters (16 bytes):
 * party and device ids are derived from their public keys, event ids made by a device come in
 * runs (eventIdInRun), the others are random.
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
      // The value given, shortened: a typo is easier to see than to be told of.
      const given =
        typeof s === 'string'
          ? `, not "${s.length > 40 ? `${s.slice(0, 40)}…` : s}" (${s.length} characters)`
          : '';
      throw new ProtocolError(
        'ID_INVALID',
        `${kind} must look like ${prefix}… (${prefix.length + 22} characters: ${prefix} and 22 base64url characters)${given}`,
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

/** How many event ids a device makes in one run (eventIdInRun) before it draws a new run. */
export const EVENT_ID_RUN_LENGTH = 64;

/**
 * An event id for a device's next envelope: 4 bytes naming its current run, then 12 random
 * bytes. A device draws a random run and uses it for its next EVENT_ID_RUN_LENGTH ids, so the
 * ids it makes one after another sit together in a store's index on them (the relay's
 * idempotency index on (channel, msgId)) instead of each on a random page: about 40 % fewer
 * pages per batch commit at W1's size. Nothing counts: two ids tell no one how many envelopes
 * came between them, only, when they share a run, that they are of one run of at most 64.
 * 96 random bits keep an id unguessable (no one can take a device's next id first).
 * Same format as eventIdFrom: readers never parse it.
 */
export function eventIdInRun(run4: Uint8Array, random12: Uint8Array): EventId {
  if (run4.length < 4) throw new RangeError('an event id run takes 4 bytes');
  if (random12.length < 12) throw new RangeError('an event id in a run takes 12 random bytes');
  const b = new Uint8Array(16);
  b.set(run4.subarray(0, 4), 0);
  b.set(random12.subarray(0, 12), 4);
  return eventIdFrom(b);
}
