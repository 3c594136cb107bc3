/**
 * Devices enrolled after a channel opened (sdk/join.ts), in process: the race of two adding
 * devices, forced (the loser's commit reaches the relay after the winner's), and the checks the
 * new device makes on what is disclosed to it.
 */
import { encodeDeviceCertificate, encodeEvent } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { devicePolicy } from '../src/sdk/mls-factory.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

describe('adding a device enrolled after the channel opened', () => {
  it('two devices adding at once: the relay refuses the stale commit, the loser finds the device added', {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-join-race-');
    let winnerPosted: () => void = () => undefined;
    const winnerDone = new Promise<void>((res) => {
      winnerPosted = res;
    });
    const refusals: string[] = [];
    let race = false;
    const a = await r.device('a', {
      wrap: async (input, _init, res) => {
        if (race && input.includes('/envelopes')) winnerPosted();
        return res;
      },
    });
    const b = await r.device('b');
    const { chA, chB } = await openChannel(a, b);
    const minister = await a.addDevice('minister', 'principal');
    const m = await r.device('m', {
      // The minister's commit waits until the admin's is in: it is for a stale epoch.
      wrap: async (input, _init, res) => {
        if (race && input.includes('/envelopes')) {
          const body = (await res.clone().text()) as string;
          if (body.includes('EPOCH_STALE')) refusals.push('EPOCH_STALE');
        }
        return res;
      },
    });
    await m.enroll(minister);
    expect(await a.addNewDevices()).toEqual([{ channel: chA.id, devices: [minister.device] }]);
    expect(await m.checkInbox()).toEqual([chA.id]);
    await (await m.channel(chA.id)).sync();

    const staff = await a.addDevice('staff', 'staff');
    const s = await r.device('s');
    await s.enroll(staff);
    race = true;
    const mCh = await m.channel(chA.id);
    const origPost = mCh.commit.bind(mCh);
    // Hold the minister's commit until the admin's has been posted.
    mCh.commit = async (...args: Parameters<typeof mCh.commit>) => {
      await winnerDone;
      return origPost(...args);
    };
    const [x, y] = await Promise.all([a.addNewDevices(), m.addNewDevices()]);
    race = false;
    expect([...x, ...y]).toEqual([{ channel: chA.id, devices: [staff.device] }]);
    expect(y).toEqual([]);
    expect(refusals).toEqual(['EPOCH_STALE']);
    expect(mCh.group?.members().map((mm) => mm.device)).toContain(staff.device);

    // The new device joins, reads what follows, and its view of the channel is B's.
    expect(await s.checkInbox()).toEqual([chA.id]);
    const sCh = await s.channel(chA.id);
    await sCh.sync();
    await chB.sync();
    await chB.send({ kind: 'message', text: 'welcome, staff' } as DraftEvent);
    await b.outbox.flush();
    await sCh.sync();
    expect(sCh.view.state.lifecycle).toBe('open');
    expect(sCh.view.state.parties).toEqual(chB.view.state.parties);
    expect(
      sCh.view.timeline.flatMap((t) => ('event' in t && t.event.kind === 'message' ? [t.event.text] : [])),
    ).toEqual(['welcome, staff']);
    expect(
      sCh.view.timeline.filter((t) => 'disclosedBy' in t && t.disclosedBy === a.identity.device).length,
    ).toBe(2);
    // A disclosure that does not match what its sender committed to is ignored.
    await chA.sync();
    const outreach = chA.view.timeline.find((t) => 'event' in t && t.event.kind === 'outreach');
    if (outreach === undefined || !('event' in outreach) || outreach.event.kind !== 'outreach')
      throw new Error('no outreach');
    const forged = encodeEvent({ ...outreach.event, note: 'a forged note' });
    await chA.send({
      kind: 'join.context',
      devices: [staff.device],
      disclosures: [{ seq: outreach.seq, event: forged, salt: outreach.salt }],
    });
    await a.outbox.flush();
    await sCh.sync();
    const seen = sCh.view.timeline.find((t) => 'event' in t && t.event.kind === 'outreach');
    expect(seen !== undefined && 'event' in seen && seen.event.kind === 'outreach' && seen.event.note).toBe(
      'hello',
    );
    // Every member's commit policy, as the relay's rule: a party adds its own devices, another
    // party's only while that party has none in the group (the outreach).
    const policy = devicePolicy(a.certificates, Date.now);
    const cert = (d: typeof a) => encodeDeviceCertificate(d.identity.certificate);
    expect(policy.commit(cert(a), [cert(s)], [], [cert(a), cert(b)])).toBe(true);
    expect(policy.commit(cert(a), [cert(b)], [], [cert(a)])).toBe(true);
    expect(policy.commit(cert(a), [cert(b)], [], [cert(a), cert(b)])).toBe(false);
    expect(policy.commit(cert(s), [cert(m)], [], [cert(a)])).toBe(false); // staff adds no one
    for (const d of [a, b, m, s]) d.close();
  });

  it('a quiet sync loop reads the device list once a minute; a device with no key package is claimed again only after a backoff', {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-join-backoff-');
    // The adding device's clock (the relay's stays real: the offsets stay within its skew window).
    let offset = 0;
    const requests: string[] = [];
    const a = await r.device('a', {
      now: () => Date.now() + offset,
      wrap: async (input, _init, res) => {
        requests.push(input);
        return res;
      },
    });
    const b = await r.device('b');
    const { chA } = await openChannel(a, b);
    /** The claims and device-list reads of one syncAll of A at `at` ms on its clock. */
    const syncAt = async (at: number) => {
      offset = at;
      requests.length = 0;
      await a.syncAll();
      expect(a.joinProblems).toEqual([]);
      return {
        claims: requests.filter((u) => u.endsWith('/v1/key-packages/claim')).length,
        lists: requests.filter((u) => u.endsWith(`/v1/parties/${a.identity.party}/devices`)).length,
        added: a.added,
      };
    };
    // Registered by A's admin, not enrolled yet: it has no key package to claim.
    const minister = await a.addDevice('minister', 'principal');
    expect(await syncAt(0)).toEqual({ claims: 1, lists: 1, added: [] });
    // Within the backoff (5 s): no claim; the device list is read again after a failed attempt.
    expect(await syncAt(4_000)).toEqual({ claims: 0, lists: 1, added: [] });
    expect(await syncAt(4_500)).toEqual({ claims: 0, lists: 0, added: [] });
    // After it: one claim, empty again; the next wait is 10 s.
    expect(await syncAt(5_500)).toEqual({ claims: 1, lists: 0, added: [] });
    const m = await r.device('m');
    await m.enroll(minister);
    expect(await syncAt(15_000)).toEqual({ claims: 0, lists: 1, added: [] });
    expect(await syncAt(16_000)).toEqual({
      claims: 1,
      lists: 0,
      added: [{ channel: chA.id, devices: [minister.device] }],
    });
    // A quiet loop: nothing to add, the device list read again once it is a minute old.
    for (const at of [20_000, 40_000, 74_000])
      expect(await syncAt(at)).toEqual({ claims: 0, lists: 0, added: [] });
    expect(await syncAt(75_500)).toEqual({ claims: 0, lists: 1, added: [] });
    // The same read takes the other party's list too (its revocations: a party whose every device
    // in a channel was revoked is re-seated).
    expect(requests.filter((u) => u.endsWith(`/v1/parties/${b.identity.party}/devices`))).toHaveLength(1);
    expect(await syncAt(80_000)).toEqual({ claims: 0, lists: 0, added: [] });
    // Devices added on this device make the next sync read the list (and claim at once). Their
    // certificates are issued on the relay's time (one from A's clock would not be valid yet).
    offset = 0;
    await a.addDevice('staff', 'staff');
    const staff2 = await a.addDevice('staff-2', 'staff');
    expect(await syncAt(81_000)).toEqual({ claims: 2, lists: 1, added: [] });
    expect(await syncAt(81_500)).toEqual({ claims: 0, lists: 1, added: [] });
    expect(await syncAt(81_600)).toEqual({ claims: 0, lists: 0, added: [] });
    // Another device's Welcome in the party inbox is a hint: A reads the list again (unchanged,
    // so the backoffs go on).
    expect(await m.checkInbox()).toEqual([chA.id]);
    await (await m.channel(chA.id)).sync();
    const s2 = await r.device('s2');
    await s2.enroll(staff2);
    expect(await m.addNewDevices()).toEqual([{ channel: chA.id, devices: [staff2.device] }]);
    expect(await syncAt(82_000)).toEqual({ claims: 0, lists: 1, added: [] });
    expect(await syncAt(82_100)).toEqual({ claims: 0, lists: 0, added: [] });
    // A changed list ends every backoff: staff is claimed again before its 5 s are up.
    offset = 0;
    await a.addDevice('staff-3', 'staff');
    expect(await syncAt(83_000)).toEqual({ claims: 2, lists: 1, added: [] });
    for (const d of [a, b, m, s2]) d.close();
  });
});
