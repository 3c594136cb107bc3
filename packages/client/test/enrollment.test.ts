/**
 * An invite is redeemed by one installation (POST /v1/devices/enrollment): a second store
 * enrolling with the same invite is refused and keeps no identity; an enrollment that failed on
 * the way is finished with the same invite, or by the next syncAll.
 */
import { describe, expect, it } from 'vitest';
import { keys } from '../src/sdk/channel-record.ts';
import { inProcessRelay, RELAY_URL } from './in-process.ts';

describe('enrollment from an invite', () => {
  it('is redeemed by one installation: another store is refused and keeps no identity', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-enroll-');
    const admin = await w.device('admin');
    await admin.createParty({ partyName: 'A', deviceName: 'desk', relays: [RELAY_URL] });
    const invite = await admin.addDevice('aide', 'staff');
    const first = await w.device('first');
    await first.enroll(invite);
    const second = await w.device('second');
    await expect(second.enroll(invite)).rejects.toMatchObject({
      code: 'INVITE_INVALID',
      cause_code: 'INVITE_USED',
      message: expect.stringContaining('already redeemed'),
    });
    expect(second.initialized).toBe(false);
    expect(await second.store.get(keys.identity)).toBeUndefined();
    // The first one works on.
    await first.syncAll();
    admin.close();
    first.close();
    second.close();
  });

  it('that failed on the way is finished with the same invite, or by the next syncAll', {
    timeout: 60_000,
  }, async () => {
    const w = inProcessRelay('bc-enroll-');
    const admin = await w.device('admin');
    await admin.createParty({ partyName: 'A', deviceName: 'desk', relays: [RELAY_URL] });
    const cut = { on: true };
    const wrap = async (input: string, _init: RequestInit, res: Response) => {
      if (cut.on && input.endsWith('/v1/devices/enrollment')) throw new TypeError('fetch failed');
      return res;
    };
    // The same invite again, in the same store.
    const one = await admin.addDevice('aide', 'staff');
    const d1 = await w.device('d1', { wrap });
    await expect(d1.enroll(one)).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    cut.on = false;
    await d1.enroll(one);
    expect(await d1.store.get(keys.enrollmentPending)).toBeUndefined();
    // The next syncAll, in a later process.
    cut.on = true;
    const two = await admin.addDevice('aide-2', 'staff');
    const d2 = await w.device('d2', { wrap });
    await expect(d2.enroll(two)).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    d2.close();
    cut.on = false;
    const d2again = await w.device('d2');
    await d2again.syncAll();
    expect(await d2again.store.get(keys.enrollmentPending)).toBeUndefined();
    // Redeemed by d2: another installation is refused.
    const d3 = await w.device('d3');
    await expect(d3.enroll(two)).rejects.toMatchObject({ code: 'INVITE_INVALID' });
    admin.close();
    d1.close();
    d2again.close();
    d3.close();
  });
});
