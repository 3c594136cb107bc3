/**
 * A send the relay refuses for good leaves the outbox, and the device keeps it on record
 * (Backchannel.refusedSends) with the relay's code, the event's kind and its words, until the
 * user dismisses it: the composer had shown it as sent.
 */
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { inProcessRelay, RELAY_URL, reachOutAndAccept } from './in-process.ts';

describe('a send refused for good', () => {
  it('is kept on record with its code, kind and words, until dismissed', { timeout: 120_000 }, async () => {
    const r = inProcessRelay('bc-refused-');
    const a = await r.device('a');
    const b = await r.device('b');
    await a.createParty({ partyName: 'A', deviceName: 'admin', relays: [RELAY_URL] });
    const B = await b.createParty({
      partyName: 'B',
      deviceName: 'b',
      role: 'principal',
      relays: [RELAY_URL],
    });
    const staff = await a.addDevice('staff', 'staff');
    const s = await r.device('s');
    await s.enroll(staff);

    const { chA, chB } = await reachOutAndAccept(a, b, B.party);
    await s.syncAll();
    const chS = await s.channel(chA.id);
    await chS.sync();

    // Queued on the staff laptop; before it goes out, the party revokes the laptop.
    await chS.send({ kind: 'message', text: 'for the record: we agree to meet' } as DraftEvent);
    await chS.send({ kind: 'proposal', title: 'A ceasefire at noon', text: 'details' } as DraftEvent);
    expect(await s.refusedSends()).toEqual([]);
    await a.revokeDevice(staff.device, 'laptop lost');
    const flushed = await s.outbox.flush();
    expect(flushed).toMatchObject({ sent: 0, rejected: 2, pending: 0 });

    const refused = await s.refusedSends();
    expect(refused.map((x) => [x.channel, x.code, x.kind, x.summary])).toEqual(
      expect.arrayContaining([
        [chA.id, 'CERT_REVOKED', 'message', 'for the record: we agree to meet'],
        [chA.id, 'CERT_REVOKED', 'proposal', 'A ceasefire at noon'],
      ]),
    );
    expect(refused).toHaveLength(2);
    for (const x of refused) {
      expect(x.message).toMatch(/^CERT_REVOKED: ./);
      expect(x.at).toBeGreaterThan(0);
    }
    // Nothing of it reached the log.
    await chB.sync();
    expect(chB.view.timeline.some((e) => e.sender === staff.device)).toBe(false);

    await s.dismissRefusedSend(chA.id, (refused[0] as (typeof refused)[0]).msgId);
    expect(await s.refusedSends()).toHaveLength(1);
  });
});
