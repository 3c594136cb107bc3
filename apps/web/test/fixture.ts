/** Channels folded by the SDK's reducer from synthetic events (no MLS, no store), for the model tests. */
import {
  type ChannelEvent,
  channelIdFrom,
  type DeviceId,
  type EventRecord,
  eventIdFrom,
  foldRecords,
  type PartyId,
} from '@backchannel/client/browser';

export const A = 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId;
export const B = 'p_BBBBBBBBBBBBBBBBBBBBBB' as PartyId;
export const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
export const T0 = 1_700_000_000_000;

/** One event by a party; an `id` in the event replaces the random one. */
export type Step = [PartyId, Record<string, unknown>];

/** The channel's view after the steps, one second apart from T0, each sent by a principal device. */
export function channel(steps: readonly Step[]): ReturnType<typeof foldRecords>['view'] {
  const records: EventRecord[] = steps.map(([party, e], seq) => {
    const event = { v: 1, id: eventIdFrom(rnd(16)), at: T0 + seq * 1000, ...e } as ChannelEvent;
    return {
      seq,
      receivedAt: event.at,
      sender: `d_${party.slice(2)}` as DeviceId,
      party,
      role: 'principal', // closing a channel takes a principal or admin
      status: 'ok',
      event,
      salt: rnd(16),
    };
  });
  return foldRecords(channelIdFrom(rnd(16)), records).view;
}
