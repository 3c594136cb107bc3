/**
 * channelMembers (sdk/members.ts): a channel's members as each device's MLS group has them,
 * followed through an Add (a device enrolled after the channel opened) and a Remove (the admin
 * revokes it: step 8 of the reference scenario), in process.
 */
import { describe, expect, it } from 'vitest';
import { channelMembers } from '../src/sdk/members.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

describe('channel members', () => {
  it('both parties see every device of the channel, a device added later, and its removal', {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-members-');
    const a = await r.device('a');
    const b = await r.device('b');
    const { chA, chB } = await openChannel(a, b);
    const A = a.identity.party;
    const B = b.identity.party;
    const opening = [
      { party: A, device: a.identity.device, name: 'a', role: 'admin' },
      { party: B, device: b.identity.device, name: 'b', role: 'principal' },
    ];
    expect(channelMembers(chA)).toEqual(expect.arrayContaining(opening));
    expect(channelMembers(chA)).toHaveLength(2);
    expect(channelMembers(chB)).toEqual(channelMembers(chA));

    // A staff laptop enrolled after the channel opened: A's admin adds it (an MLS Add).
    const staff = await a.addDevice('staff laptop', 'staff');
    const s = await r.device('s');
    await s.enroll(staff);
    expect(await a.addNewDevices()).toEqual([{ channel: chA.id, devices: [staff.device] }]);
    await chB.sync();
    const laptop = { party: A, device: staff.device, name: 'staff laptop', role: 'staff' };
    expect(channelMembers(chB)).toEqual(expect.arrayContaining([...opening, laptop]));
    expect(channelMembers(chB)).toHaveLength(3);
    expect(await s.checkInbox()).toEqual([chA.id]);
    const chS = await s.channel(chA.id);
    await chS.sync();
    expect(channelMembers(chS)).toEqual(channelMembers(chB));

    // The staff member leaves: A's admin revokes the laptop, which removes it from the channel.
    await a.revokeDevice(staff.device, 'left the delegation');
    await chB.sync();
    expect(channelMembers(chB)).toEqual(expect.arrayContaining(opening));
    expect(channelMembers(chB)).toHaveLength(2);
    expect(channelMembers(chA)).toEqual(channelMembers(chB));
    // No group, no members (a channel object without MLS state).
    expect(channelMembers({ group: undefined })).toEqual([]);
  });
});
