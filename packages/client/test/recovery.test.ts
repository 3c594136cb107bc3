/**
 * The party's recovery kit (sdk/recovery.ts): losing the admin device does not lose the party. A
 * new device restores the root key from the kit and its code, revokes the lost device, and the
 * party's principal removes the lost device from the channel and adds the new one.
 */
import { randomBytes } from 'node:crypto';
import { encodeEvent } from '@backchannel/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { newRecoveryCodeWith, openRecoveryKit, sealRecoveryKit } from '../src/sdk/recovery.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
const FAST = { N: 1 << 10, r: 8, p: 1 };

describe('the recovery kit', () => {
  it('restores the party onto a new device, which revokes the lost one; the principal swaps them in the channel', {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-recovery-');
    const a = await r.device('a');
    const b = await r.device('b');
    const { chA, chB } = await openChannel(a, b);
    // The minister's phone, a principal, is in the channel too.
    const minister = await a.addDevice('minister', 'principal');
    let offset = 0;
    const m = await r.device('m', { now: () => Date.now() + offset });
    await m.enroll(minister);
    await a.syncAll();
    expect(a.added).toEqual([{ channel: chA.id, devices: [minister.device] }]);
    await m.syncAll();
    const chM = await m.channel(chA.id);

    const { kit, code } = await a.recoveryKit(FAST);
    expect(code).toMatch(/^([A-Z2-9]{4}-){6}[A-Z2-9]{4}$/);
    expect(JSON.stringify(kit)).not.toContain(
      Buffer.from(a.identity.rootSecretKey as Uint8Array).toString('base64url'),
    );
    const lost = a.identity.device;
    const fingerprint = a.fingerprint();
    a.close(); // the admin desk is lost

    // A new desk restores the party: same party, same root key, a new admin device.
    const n = await r.device('n');
    await expect(openRecoveryKit(kit, 'AAAA-BBBB')).rejects.toMatchObject({ code: 'RECOVERY_INVALID' });
    const id = await n.recoverParty({
      recovered: await openRecoveryKit(kit, code.toLowerCase().replaceAll('-', ' ')),
      deviceName: 'admin desk 2',
    });
    expect(id.party).toBe(minister.party);
    expect(id.certificate.body.role).toBe('admin');
    expect(n.fingerprint()).toBe(fingerprint);
    await n.revokeDevice(lost, 'admin desk lost');

    // The minister's next device-list read: the lost desk leaves the channel, the new one joins.
    offset = 61_000;
    await m.syncAll();
    expect(m.removed).toEqual([{ channel: chA.id, devices: [lost] }]);
    expect(m.added).toEqual([{ channel: chA.id, devices: [id.device] }]);
    expect(await n.checkInbox()).toEqual([chA.id]);
    const chN = await n.channel(chA.id);
    await chN.sync();
    // What the lost desk sent before its revocation (the outreach, disclosed to the new desk) still
    // verifies on a device that first saw the party after the revocation.
    expect(chN.view.state.lifecycle).toBe('open');
    const outreach = chN.view.timeline.find((t) => 'event' in t && t.event.kind === 'outreach');
    expect(outreach).toMatchObject({ status: 'ok', sender: lost });
    await chN.send({ kind: 'message', text: 'the new desk is here' } as DraftEvent);
    await n.outbox.flush();
    await chB.sync();
    const membersB = chB.group?.members().map((x) => x.device) ?? [];
    expect(membersB).toContain(id.device);
    expect(membersB).not.toContain(lost);
    expect(
      chB.view.timeline.flatMap((t) =>
        'event' in t && t.event.kind === 'message' && t.sender === id.device ? [t.event.text] : [],
      ),
    ).toEqual(['the new desk is here']);
    await chM.sync();
    for (const d of [b, m, n]) d.close();
  });

  it("re-seats a party whose only device in a channel was lost: the other party's principal swaps it for the recovered one", {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-reseat-');
    const a = await r.device('a');
    let offset = 0;
    const b = await r.device('b', { now: () => Date.now() + offset });
    const { chA, chB } = await openChannel(a, b);
    // B's second principal's laptop is in the channel too: it must accept B's commit removing
    // A's device.
    const laptop = await b.addDevice('laptop', 'principal');
    const s = await r.device('s');
    await s.enroll(laptop);
    await b.syncAll();
    expect(b.added).toEqual([{ channel: chB.id, devices: [laptop.device] }]);
    await s.syncAll();
    const chS = await s.channel(chB.id);
    // A proposal A has not answered: the re-seated device is told of it. One A answered: it is not.
    await chB.send({ kind: 'proposal', title: 'Ceasefire', text: 'From Monday.' } as DraftEvent);
    const [answered] = await chB.sendMany([
      { kind: 'proposal', title: 'Venue', text: 'Muscat.' } as DraftEvent,
    ]);
    await b.outbox.flush();
    await chA.sync();
    await chA.send({
      kind: 'response',
      to: answered,
      stance: 'accept',
      text: 'Muscat suits us.',
    } as DraftEvent);
    await a.outbox.flush();

    const { kit, code } = await a.recoveryKit(FAST);
    const lost = a.identity.device;
    a.close(); // A's only device, the one in the channel, is lost

    let nOffset = 0;
    const n = await r.device('n', { now: () => Date.now() + nOffset });
    const id = await n.recoverParty({
      recovered: await openRecoveryKit(kit, code),
      deviceName: 'admin desk 2',
    });
    // Not revoked yet: B leaves A's seat alone.
    offset = 61_000;
    await b.syncAll();
    expect(b.added).toEqual([]);
    // Revoked on a clock two minutes ahead of the laptop's: the laptop takes the revocation
    // as A's root signed it, whatever its date, and accepts the re-seating commit.
    nOffset = 120_000;
    await n.revokeDevice(lost, 'admin desk lost');
    nOffset = 0;
    expect(await n.channelIds()).toEqual([]);

    // B's next read of A's directory: A's revoked device leaves, A's recovered device joins.
    offset = 122_000;
    await b.syncAll();
    expect(b.added).toEqual([{ channel: chB.id, devices: [id.device] }]);
    const members = (ch: typeof chB) => ch.group?.members().map((x) => x.device) ?? [];
    expect(members(chB)).toContain(id.device);
    expect(members(chB)).not.toContain(lost);
    await chS.sync();
    expect(members(chS)).toContain(id.device);
    expect(members(chS)).not.toContain(lost);

    expect(await n.checkInbox()).toEqual([chB.id]);
    const chN = await n.channel(chB.id);
    await chN.sync();
    expect(chN.view.state.lifecycle).toBe('open');
    const proposal = chN.view.timeline.find((t) => 'event' in t && t.event.kind === 'proposal');
    expect(proposal).toMatchObject({ status: 'ok', sender: b.identity.device });
    const venue = chB.view.timeline.find((t) => 'event' in t && t.event.id === answered);
    if (venue === undefined || !('event' in venue) || venue.status !== 'ok')
      throw new Error('venue not seen');
    expect(chN.view.timeline.some((t) => 'event' in t && t.event.id === answered)).toBe(false);
    // B's laptop did not re-seat A: a join.context it sends N shows N nothing (it could pick
    // what to show: only the device that re-seated A discloses).
    await chS.sync();
    await chS.send({
      kind: 'join.context',
      devices: [id.device],
      disclosures: [{ seq: venue.seq, event: encodeEvent(venue.event), salt: venue.salt }],
    } as DraftEvent);
    await s.outbox.flush();
    await chN.sync();
    expect(chN.view.timeline.some((t) => 'event' in t && t.event.id === answered)).toBe(false);
    await chN.send({ kind: 'message', text: 'A is back' } as DraftEvent);
    await n.outbox.flush();
    await chB.sync();
    await chS.sync();
    for (const ch of [chB, chS])
      expect(
        ch.view.timeline.flatMap((t) =>
          'event' in t && t.event.kind === 'message' && t.sender === id.device ? [t.event.text] : [],
        ),
      ).toEqual(['A is back']);
    for (const d of [b, s, n]) d.close();
  });

  it('opens only with its code, only as the party it names, and not as anything else', async () => {
    const party = {
      party: '' as never,
      partyName: 'Foreign Ministry',
      rootSecretKey: random(32),
      relays: ['https://relay.example'],
    };
    const { partyIdFromKey, keyPairFromSeed } = await import('@backchannel/protocol');
    const p = { ...party, party: partyIdFromKey(keyPairFromSeed(party.rootSecretKey).publicKey) };
    const code = newRecoveryCodeWith(random);
    const kit = await sealRecoveryKit(p, code, random, Date.now(), FAST);
    const opened = await openRecoveryKit(JSON.parse(JSON.stringify(kit)), code);
    expect(opened).toEqual({ ...p, rootSecretKey: p.rootSecretKey });
    // Typed on a keyboard that gives full-width letters (NFKC), in lower case, with spaces: the same code.
    const fullWidth = code.replace(/[A-Z0-9]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
    expect((await openRecoveryKit(kit, fullWidth)).party).toBe(p.party);
    expect((await openRecoveryKit(kit, code.toLowerCase().replaceAll('-', ' '))).party).toBe(p.party);
    // Another code, a box moved under another party's header, a changed byte, not a kit at all.
    await expect(openRecoveryKit(kit, newRecoveryCodeWith(random))).rejects.toMatchObject({
      code: 'RECOVERY_INVALID',
    });
    const other = await sealRecoveryKit(
      { ...p, party: partyIdFromKey(keyPairFromSeed(random(32)).publicKey) },
      code,
      random,
      Date.now(),
      FAST,
    );
    // The party is bound as associated data: the box does not even open under another header.
    await expect(openRecoveryKit({ ...other, box: kit.box, salt: kit.salt }, code)).rejects.toMatchObject({
      code: 'RECOVERY_INVALID',
      message: expect.stringContaining('does not open'),
    });
    // Parameters a kit may not ask for (memory beyond 256 MiB), nor be written with.
    await expect(openRecoveryKit({ ...kit, kdf: { N: 1 << 20, r: 8, p: 1 } }, code)).rejects.toMatchObject({
      code: 'RECOVERY_INVALID',
    });
    await expect(
      sealRecoveryKit(p, code, random, Date.now(), { N: 1 << 21, r: 8, p: 1 }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    for (const x of [
      undefined,
      null,
      'kit',
      { ...kit, kind: 'backchannel-invite' },
      { ...kit, kdf: { N: 3, r: 8, p: 1 } },
    ])
      await expect(openRecoveryKit(x, code)).rejects.toMatchObject({ code: 'RECOVERY_INVALID' });
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 255 }), async (at, mask) => {
        const box = Buffer.from(kit.box, 'base64url');
        const i = at % box.length;
        box[i] = (box[i] as number) ^ mask;
        await expect(openRecoveryKit({ ...kit, box: box.toString('base64url') }, code)).rejects.toMatchObject(
          {
            code: 'RECOVERY_INVALID',
          },
        );
      }),
      { numRuns: 25 },
    );
    // Codes: 28 letters of the 30-letter alphabet, every letter reachable.
    const codes = Array.from({ length: 200 }, () => newRecoveryCodeWith(random).replaceAll('-', ''));
    expect(codes.every((c) => c.length === 28)).toBe(true);
    expect(new Set(codes.join('')).size).toBe(30);
  });
});
