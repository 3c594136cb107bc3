/**
 * A device enrolled after a channel opened joins it, through the real `backchannel` binary: A's
 * first device adds it when it syncs (MLS Add, Welcome through the inbox, the channel's lifecycle
 * disclosed to it); the new device reads and posts from its join on, earlier messages stay
 * unreadable on it (and it says so); B sees it as a member of A; a revoked device is never added
 * again; two of A's devices adding at once make one Add.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-join-'));
const { ok, start } = cliRunner(root);

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
}, 60_000);
afterAll(async () => {
  await relay?.stop();
});

type Row = {
  seq: number;
  status: string;
  sender: string;
  event?: { kind: string; text?: string; devices?: string[] };
};
const rows = async (home: string, ch: string): Promise<Row[]> =>
  Object.values(await ok(home, ['log', ch, '--limit', '1000'])) as Row[];
const texts = (log: Row[]) => log.flatMap((r) => (r.event?.kind === 'message' ? [r.event.text] : []));

/** Without --json: what the person at the terminal reads. */
const humanOut = (home: string, args: string[]): string =>
  execFileSync(process.execPath, [join(import.meta.dirname, '..', 'bin', 'backchannel.mjs'), ...args], {
    env: {
      ...process.env,
      BACKCHANNEL_HOME: join(root, home),
      BACKCHANNEL_PASSPHRASE: `passphrase of ${home}`,
      BACKCHANNEL_KDF_N: '1024',
    },
  }).toString();

/** Enrolls a new device of A from an invite made by A's admin; returns its device id. */
async function enroll(home: string, name: string, role: string): Promise<string> {
  const invite = await ok('a-admin', [
    'device',
    'add',
    '--name',
    name,
    '--role',
    role,
    '--out',
    join(root, `${home}.invite`),
  ]);
  const init = await ok(home, [
    'init',
    'device',
    '--invite',
    join(root, `${home}.invite`),
    '--code',
    String(invite.code),
  ]);
  return String(init.device);
}

describe('a device enrolled after the channel opened', () => {
  it('is added by a device of its party, reads and posts from its join on, and B sees it', {
    timeout: 600_000,
  }, async () => {
    await ok('a-admin', ['init', 'party', '--name', 'Foreign Ministry', '--device', 'admin desk'], relay.url);
    const b = await ok(
      'b-envoy',
      ['init', 'party', '--name', 'Special Envoy', '--device', 'envoy', '--role', 'principal'],
      relay.url,
    );
    const ch = String(
      (await ok('a-admin', ['outreach', String(b.party), '--note', 'Resume contact.'])).channel,
    );
    await ok('b-envoy', ['inbox']);
    await ok('b-envoy', ['accept', ch]);
    await ok('b-envoy', ['track', 'open', ch, 'nuclear']);
    await ok('b-envoy', ['send', ch, 'before the laptop: from B']);
    const proposal = String(
      (await ok('b-envoy', ['propose', ch, 'Talks resume in Muscat.', '--title', 'Venue'])).event,
    );
    await ok('a-admin', ['send', ch, 'before the laptop: from A']);

    // A enrolls a staff laptop mid-negotiation: it is in no channel yet.
    const laptop = await enroll('a-laptop', 'staff laptop', 'staff');
    expect(await ok('a-laptop', ['sync'])).toMatchObject({ channels: 0 });

    // A's first device syncs and adds it (one MLS Add, the Welcome through A's inbox).
    const synced = await ok('a-admin', ['sync']);
    expect(synced.added).toEqual([{ channel: ch, devices: [laptop] }]);
    expect((await ok('a-admin', ['sync'])).added).toEqual([]);
    // A answers B's proposal from before the laptop joined; B's sync acknowledges delivery of A's
    // events, the earlier message among them.
    await ok('a-admin', ['respond', ch, proposal, 'Muscat suits us.', '--stance', 'accept']);
    await ok('b-envoy', ['sync']);

    await ok('b-envoy', ['send', ch, 'after the laptop joined: from B']);
    const joined = await ok('a-laptop', ['sync']);
    expect(joined).toMatchObject({ channels: 1, joined: [{ channel: ch }] });
    expect(
      (joined.joined as Array<{ unreadableBeforeJoin: number }>)[0]?.unreadableBeforeJoin,
    ).toBeGreaterThan(0);
    const lap = await rows('a-laptop', ch);
    expect(texts(lap)).toEqual(['after the laptop joined: from B']);
    // The channel's lifecycle and tracks were disclosed to it: it knows the channel is open.
    const st = await ok('a-laptop', ['status', ch]);
    expect(st).toMatchObject({ lifecycle: 'open', tracks: [{ name: 'nuclear', status: 'active' }] });
    expect(Number(st.joinedEpoch)).toBeGreaterThan(1);
    expect(Number(st.unreadableBeforeJoin)).toBeGreaterThanOrEqual(2);
    const human = humanOut('a-laptop', ['status', ch]);
    expect(human).toContain(
      `joined at epoch ${String(st.joinedEpoch)}; earlier messages are not readable on this device`,
    );
    expect(human).toContain('staff laptop (staff');
    // B's proposal, unanswered when the laptop was added, was disclosed to it: A's answer to it
    // is checked there. What refers to an undisclosed event from before its join (B's receipt
    // for A's earlier message) is shown as such, not as refused.
    expect(lap.find((r) => r.event?.kind === 'proposal')).toMatchObject({ status: 'ok' });
    expect(lap.find((r) => r.event?.kind === 'response')).toMatchObject({ status: 'ok' });
    const log = humanOut('a-laptop', ['log', ch, '--limit', '1000']);
    const responseLine = log.split('\n').find((l) => l.includes(`response (accept) to ${proposal}`));
    expect(responseLine).toBeDefined();
    expect(responseLine).not.toContain('before this device joined');
    const receiptLine = log.split('\n').find((l) => l.includes('delivered receipt for'));
    expect(receiptLine).toMatch(/\[refers to #\d+ before this device joined \(epoch \d+\)\]/);
    expect(log).not.toContain('REJECTED');

    // The laptop posts; B reads it, and sees the laptop as a member of A.
    await ok('a-laptop', ['send', ch, 'from the staff laptop', '--track', 'nuclear']);
    await ok('b-envoy', ['sync']);
    expect(texts(await rows('b-envoy', ch))).toContain('from the staff laptop');
    const bStatus = await ok('b-envoy', ['status', ch]);
    const members = bStatus.members as Array<{ party: string; device: string; role: string }>;
    const aParty = (bStatus.parties as Array<{ party: string }>)
      .map((p) => p.party)
      .find((p) => p !== b.party);
    expect(members).toContainEqual(expect.objectContaining({ party: aParty, device: laptop, role: 'staff' }));
    expect(bStatus.unreadableBeforeJoin).toBe(0);
    // The transcript still verifies on every device.
    for (const home of ['a-admin', 'a-laptop', 'b-envoy']) {
      const s = await ok(home, ['status', ch]);
      expect(s.verifiedCheckpoint, home).toBe(s.size);
    }

    // A revoked device is removed, and never added again.
    await ok('a-admin', ['device', 'revoke', 'staff laptop', '--reason', 'laptop lost']);
    expect((await ok('a-admin', ['sync'])).added).toEqual([]);
    const after = (await ok('b-envoy', ['status', ch])).members as Array<{ device: string }>;
    expect(after.map((m) => m.device)).not.toContain(laptop);

    // Two of A's devices that may add devices sync at once: one Add, the other finds it done.
    const minister = await enroll('a-minister', 'minister', 'principal');
    expect((await ok('a-admin', ['sync'])).added).toEqual([{ channel: ch, devices: [minister] }]);
    await ok('a-minister', ['sync']);
    const staff2 = await enroll('a-staff2', 'staff-2', 'staff');
    const [x, y] = await Promise.all([ok('a-admin', ['sync']), ok('a-minister', ['sync'])]);
    const adds = [...(x.added as unknown[]), ...(y.added as unknown[])];
    expect(adds).toEqual([{ channel: ch, devices: [staff2] }]);
    await ok('a-staff2', ['sync']);
    await ok('b-envoy', ['sync']);
    const contexts = (await rows('b-envoy', ch)).filter(
      (r) => r.event?.kind === 'join.context' && r.event.devices?.includes(staff2),
    );
    expect(contexts).toHaveLength(1);
    await ok('a-staff2', ['send', ch, 'staff-2 here']);
    await ok('b-envoy', ['sync']);
    expect(texts(await rows('b-envoy', ch))).toContain('staff-2 here');

    // A's minister following the channel with `watch` adds a device enrolled meanwhile.
    const watch = start('a-minister', ['watch', '--every', '1s', '--for', '60s']);
    try {
      await watch.waitFor('live', (j) => j.delivery === 'push');
      const staff3 = await enroll('a-staff3', 'staff-3', 'staff');
      const added = await watch.waitFor('added', (j) => j.added !== undefined);
      expect(added.added).toEqual({ channel: ch, devices: [staff3] });
    } finally {
      await watch.stop();
    }
    expect(await ok('a-staff3', ['sync'])).toMatchObject({ channels: 1 });
  });
});
