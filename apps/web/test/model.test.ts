/** The channel list's badges and unread counts, from states folded by the SDK's reducer. */
import {
  type ChannelEvent,
  channelIdFrom,
  type DeviceId,
  type EventRecord,
  eventIdFrom,
  foldRecords,
  type PartyId,
} from '@backchannel/client/browser';
import { describe, expect, it } from 'vitest';
import { badgeOf, unreadIds } from '../src/model.ts';

const A = 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId;
const B = 'p_BBBBBBBBBBBBBBBBBBBBBB' as PartyId;
const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const T0 = 1_700_000_000_000;

function channel(steps: Array<[PartyId, Record<string, unknown>]>) {
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

const outreach: [PartyId, Record<string, unknown>] = [A, { kind: 'outreach', from: A, to: B, note: 'hello' }];
const accept: [PartyId, Record<string, unknown>] = [B, { kind: 'channel.accept' }];

describe('channel badges', () => {
  it('an outreach waits for the party it was sent to, and is "proposed" for its sender', () => {
    const v = channel([outreach]);
    expect(badgeOf(v.state, B, T0)).toBe('outreach waiting');
    expect(badgeOf(v.state, A, T0)).toBe('proposed');
  });

  it('an open channel is open, then quiet, then silent as the other party stays unheard', () => {
    const v = channel([outreach, accept, [B, { kind: 'heartbeat', intervalMs: 60_000 }]]);
    const heard = v.state.lastHeard[B] as number;
    expect(badgeOf(v.state, A, heard + 30_000)).toBe('open');
    expect(badgeOf(v.state, A, heard + 90_000)).toBe('quiet');
    expect(badgeOf(v.state, A, heard + 10 * 60_000)).toBe('silent');
  });

  it('suspended and closed channels say so', () => {
    const suspended = channel([outreach, accept, [A, { kind: 'channel.suspend', reason: 'strike' }]]);
    expect(badgeOf(suspended.state, A, T0)).toBe('suspended');
    const closed = channel([outreach, accept, [A, { kind: 'channel.close' }]]);
    expect(badgeOf(closed.state, B, T0)).toBe('closed');
  });

  it('counts what the other party said until this party reads it', () => {
    const one = eventIdFrom(rnd(16));
    const two = eventIdFrom(rnd(16));
    const said: Array<[PartyId, Record<string, unknown>]> = [
      outreach,
      accept,
      [B, { kind: 'message', text: 'one', id: one }],
      [B, { kind: 'message', text: 'two', id: two }],
    ];
    const v = channel(said);
    expect(unreadIds(v.state, A).sort()).toEqual([one, two].sort());
    expect(unreadIds(v.state, B)).toEqual([]);
    const read = channel([...said, [A, { kind: 'receipt', type: 'read', of: [one] }]]);
    expect(unreadIds(read.state, A)).toEqual([two]);
  });
});
