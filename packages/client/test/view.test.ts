/**
 * The view of a device that joined a channel late (sdk/view.ts): an event that answers one from
 * before its join (which it cannot read) is not a refusal, while a reference to an event no entry
 * carries still is; and how `backchannel log` words each.
 */
import type { ChannelEvent, ChannelId, DeviceId, EventId, PartyId, Role } from '@backchannel/protocol';
import { describe as suite, expect, it } from 'vitest';
import type { EventRecord } from '../src/sdk/channel-record.ts';
import { foldRecords } from '../src/sdk/view.ts';
import { describe } from '../src/cli/commands/watch.ts';

const id = (c: string) => `e_${c.repeat(22)}` as EventId;
const A = `p_${'A'.repeat(22)}` as PartyId;
const B = `p_${'B'.repeat(22)}` as PartyId;
const channel = `c_${'C'.repeat(22)}` as ChannelId;
const JOINED = 3;

const at = 1_800_000_000_000;
function rec(
  seq: number,
  party: PartyId,
  event: Record<string, unknown>,
  role: Role = 'principal',
): EventRecord {
  return {
    seq,
    receivedAt: at + seq,
    sender: `d_${party.slice(2)}` as DeviceId,
    party,
    role,
    status: 'ok',
    event: { v: 1, at: at + seq, ...event } as ChannelEvent,
    salt: new Uint8Array(16),
  };
}
const unreadable = (seq: number, eventId: EventId): EventRecord => ({
  seq,
  receivedAt: at + seq,
  sender: `d_${'B'.repeat(22)}` as DeviceId,
  status: 'unreadable',
  code: 'BEFORE_JOIN',
  id: eventId,
});

// What a device of A added at epoch 3 holds: the lifecycle (disclosed), B's proposal and message
// before its join (unreadable), then what follows.
const records: EventRecord[] = [
  rec(0, A, { kind: 'outreach', id: id('o'), from: A, to: B, note: 'hello' }),
  rec(1, B, { kind: 'channel.accept', id: id('a') }),
  unreadable(2, id('p')),
  unreadable(3, id('m')),
  rec(4, A, { kind: 'response', id: id('r'), to: id('p'), stance: 'accept', text: 'Agreed.' }),
  rec(5, A, { kind: 'response', id: id('x'), to: id('z'), stance: 'accept', text: 'To nothing.' }),
  rec(6, A, { kind: 'response', id: id('y'), to: id('p'), stance: 'note', text: 'An observer.' }, 'observer'),
  rec(7, A, { kind: 'receipt', id: id('c'), type: 'delivered', of: [id('m'), id('z')] }),
  // B acknowledges A's response: readable here, though not counted.
  rec(8, B, { kind: 'receipt', id: id('d'), type: 'delivered', of: [id('r')] }),
];

suite('a device that joined late', () => {
  it('shows answers to events from before its join as such, and invalid references as refused', () => {
    const view = foldRecords(channel, records, JOINED).view;
    const bySeq = new Map(view.timeline.map((r) => [r.seq, r]));
    expect(view.beforeJoin).toBe(2);
    expect(bySeq.get(4)).toMatchObject({
      status: 'unchecked',
      code: 'REFERS_BEFORE_JOIN',
      refs: { beforeJoin: [2], joinedEpoch: JOINED, unknown: 0 },
    });
    // A response to an event no entry carries is refused, as on every device.
    expect(bySeq.get(5)).toMatchObject({ status: 'rejected', code: 'EVENT_INVALID' });
    // Refused for another reason than its reference: still refused.
    expect(bySeq.get(6)).toMatchObject({ status: 'rejected', code: 'ROLE_FORBIDDEN' });
    // Receipts for unknown events are ignored by the rules; the view says which were which.
    expect(bySeq.get(7)).toMatchObject({
      status: 'ok',
      refs: { beforeJoin: [3], joinedEpoch: JOINED, unknown: 1 },
    });
    expect(bySeq.get(8)).toMatchObject({ status: 'ok' });
    expect(bySeq.get(8)).not.toHaveProperty('refs');
    // The state counts none of it: a response it could not check is not folded.
    expect(view.state.receipts.has(id('r'))).toBe(false);

    const line = (seq: number) => describe(bySeq.get(seq) as EventRecord);
    expect(line(4)).toContain(
      '[refers to #2 before this device joined (epoch 3)] (not checked on this device)',
    );
    expect(line(4)).not.toContain('REJECTED');
    expect(line(5)).toContain('[REJECTED EVENT_INVALID] [refers to 1 unknown event(s)]');
    expect(line(6)).toContain('[REJECTED ROLE_FORBIDDEN]');
    expect(line(7)).toContain(
      '[refers to #3 before this device joined (epoch 3); 1 unknown event(s)] delivered receipt for 2 event(s)',
    );
  });

  it('a device there from the start sees the same responses accepted', () => {
    const full = foldRecords(
      channel,
      records.map((r) =>
        r.seq === 2
          ? rec(2, B, { kind: 'proposal', id: id('p'), title: 'Venue', text: 'Muscat.' })
          : r.seq === 3
            ? rec(3, B, { kind: 'message', id: id('m'), text: 'hi' })
            : r,
      ),
      0,
    ).view;
    const bySeq = new Map(full.timeline.map((r) => [r.seq, r]));
    expect(bySeq.get(4)).toMatchObject({ status: 'ok' });
    expect(bySeq.get(4)).not.toHaveProperty('refs');
    expect(bySeq.get(5)).toMatchObject({ status: 'rejected', code: 'EVENT_INVALID' });
    expect(describe(bySeq.get(4) as EventRecord)).not.toContain('before this device joined');
  });
});
