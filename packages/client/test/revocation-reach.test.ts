/**
 * A revocation reaches every channel of the party: an admin or principal device removes from the
 * channels it is in the devices its party's root revoked, including channels the revoking admin
 * is not in; and a revocation once verified is kept, whatever the relay answers later.
 */
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { inProcessRelay, RELAY_URL } from './in-process.ts';

describe('a revoked device', () => {
  it('is removed from a channel the revoking admin is not in, by the party principal that is; a relay that later hides the revocation changes nothing', {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-revoke-reach-');
    // The relay may hide the party's revocations from the minister's device (a lying relay).
    let hideRevocations = false;
    // The minister's clock, moved on past the device-list cache (60 s; within the relay's skew window).
    let offset = 0;
    const a = await r.device('a');
    const b = await r.device('b');
    await a.createParty({ partyName: 'A', deviceName: 'admin', relays: [RELAY_URL] });
    const B = await b.createParty({
      partyName: 'B',
      deviceName: 'b',
      role: 'principal',
      relays: [RELAY_URL],
    });
    const minister = await a.addDevice('minister', 'principal');
    const m = await r.device('m', {
      now: () => Date.now() + offset,
      wrap: async (input, _init, res) => {
        if (!hideRevocations || !/\/v1\/parties\/[^/]+\/devices$/.test(input)) return res;
        const body = (await res.json()) as { certificates: string[]; revocations: string[] };
        return new Response(JSON.stringify({ ...body, revocations: [] }), {
          status: res.status,
          headers: { 'content-type': 'application/json' },
        });
      },
    });
    await m.enroll(minister);
    const staff = await a.addDevice('staff', 'staff');
    const s = await r.device('s');
    await s.enroll(staff);

    // The minister opens a channel with B (with every device of A in the group). The admin's desk
    // has not synced since: it holds no record of the channel, so its revocation cannot reach it.
    const chM = await m.outreach(B.party, 'hello from the minister');
    await b.checkInbox();
    const chB = await b.channel(chM.id);
    await chB.sync();
    await chB.send({ kind: 'channel.accept' } as DraftEvent);
    await b.outbox.flush();
    await chM.sync();
    await m.syncAll();
    await s.syncAll();
    const chS = await s.channel(chM.id);
    const members = (ch: typeof chM) => ch.group?.members().map((x) => x.device) ?? [];
    expect(members(chM)).toContain(staff.device);

    // The admin revokes the laptop: it is in none of the channels the admin's device holds.
    expect(await a.channelIds()).toEqual([]);
    await a.revokeDevice(staff.device, 'left the delegation');
    expect(members(chM)).toContain(staff.device);
    // A running loop reads the party's device list again once it is a minute old.
    offset = 61_000;
    await m.syncAll();
    expect(m.removed).toEqual([{ channel: chM.id, devices: [staff.device] }]);
    expect(members(chM)).not.toContain(staff.device);
    await chB.sync();
    expect(members(chB)).not.toContain(staff.device);
    expect(members(chB)).toContain(minister.device);
    // Each member's timeline says which device the commit removed (the remover's own included).
    const removal = (ch: typeof chM) =>
      ch.view.changes?.find((t) => !('event' in t) && t.devicesRemoved !== undefined);
    await chM.sync();
    expect(removal(chB)).toMatchObject({
      status: 'handshake',
      code: 'COMMIT_APPLIED',
      devicesRemoved: [staff.device],
    });
    expect(removal(chM)).toMatchObject({
      status: 'handshake',
      code: 'OWN_COMMIT',
      devicesRemoved: [staff.device],
    });

    // What B sends now, the laptop can neither fetch (the relay refuses it) nor read.
    await chB.send({ kind: 'message', text: 'after the revocation' } as DraftEvent);
    await b.outbox.flush();
    await expect(chS.sync()).rejects.toBeDefined();
    const texts = chS.view.timeline.flatMap((t) =>
      'event' in t && t.event.kind === 'message' ? [t.event.text] : [],
    );
    expect(texts).not.toContain('after the revocation');

    // A relay that now leaves the revocation out of its answer cannot bring the laptop back: the
    // minister's device kept the revocation its root signed, on disk (a new process reads it).
    hideRevocations = true;
    m.close();
    const m2 = await r.device('m', {
      wrap: async (input, _init, res) => {
        if (!/\/v1\/parties\/[^/]+\/devices$/.test(input)) return res;
        const body = (await res.json()) as { certificates: string[]; revocations: string[] };
        return new Response(JSON.stringify({ ...body, revocations: [] }), {
          status: res.status,
          headers: { 'content-type': 'application/json' },
        });
      },
    });
    await m2.syncAll();
    const party = minister.party;
    expect(m2.certificates.isRevoked(party, staff.device, Date.now())).toBe(true);
    expect(m2.certificates.validDevices(party, Date.now()).map((c) => c.body.device)).not.toContain(
      staff.device,
    );
    expect(m2.added).toEqual([]);
    const chM2 = await m2.channel(chM.id);
    expect(members(chM2)).not.toContain(staff.device);
    for (const d of [a, b, m2, s]) d.close();
  });
});
