/**
 * Losing the admin device, through the real `backchannel` binary: the admin wrote the party's
 * recovery kit; a new desk restores the party from the kit and its code (`init recover`), revokes
 * the lost desk, and the minister's next sync removes the lost desk from the channel and adds the
 * new one, which then talks to B. A wrong code is refused with RECOVERY_INVALID.
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-recovery-cli-'));
const { cli, ok, human } = cliRunner(root);

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
}, 60_000);
afterAll(async () => {
  await relay?.stop();
});

describe('a party whose admin desk is lost', () => {
  it('is recovered onto a new desk from its recovery kit, which revokes the lost desk', {
    timeout: 600_000,
  }, async () => {
    const a = await ok(
      'a-admin',
      ['init', 'party', '--name', 'Foreign Ministry', '--device', 'admin desk'],
      relay.url,
    );
    const b = await ok(
      'b-envoy',
      ['init', 'party', '--name', 'Special Envoy', '--device', 'envoy', '--role', 'principal'],
      relay.url,
    );
    const invite = await ok('a-admin', [
      'device',
      'add',
      '--name',
      'minister phone',
      '--role',
      'principal',
      '--out',
      join(root, 'minister.invite'),
    ]);
    await ok('a-minister', [
      'init',
      'device',
      '--invite',
      join(root, 'minister.invite'),
      '--code',
      String(invite.code),
    ]);
    const ch = String(
      (await ok('a-admin', ['outreach', String(b.party), '--note', 'Resume contact.'])).channel,
    );
    await ok('b-envoy', ['inbox']);
    await ok('b-envoy', ['accept', ch]);
    await ok('a-minister', ['sync']);

    // The admin writes the kit: a file only the owner may read, and a code shown once.
    const kitPath = join(root, 'party.recovery.json');
    const kit = await ok('a-admin', ['recovery-kit', '--out', kitPath]);
    expect(String(kit.code)).toMatch(/^([A-Z2-9]{4}-){6}[A-Z2-9]{4}$/);
    expect(statSync(kitPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(kitPath, 'utf8')).not.toContain(String(kit.code));
    // Never over an existing file (whose permissions would stay what they were).
    const again = await cli('a-admin', ['recovery-kit', '--out', kitPath]);
    expect(again.code).toBe(1);
    expect(again.json.error?.code).toBe('INVALID_ARGUMENT');
    const fingerprint = (await ok('a-admin', ['card', 'fingerprint'])).fingerprint;

    // The desk is lost. A wrong code opens nothing; the right one restores the party (the relay
    // comes from the kit), under the same fingerprint.
    const wrong = await cli('a-new', [
      'init',
      'recover',
      '--kit',
      kitPath,
      '--code',
      'AAAA-BBBB-CCCC',
      '--device',
      'x',
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.json.error?.code).toBe('RECOVERY_INVALID');
    // The code kept off the command line: from the environment (lower case, spaces: the same code).
    const recovering = await human(
      'a-new',
      ['--json', 'init', 'recover', '--kit', kitPath, '--device', 'admin desk 2'],
      { BACKCHANNEL_RECOVERY_CODE: String(kit.code).toLowerCase().replaceAll('-', ' ') },
    );
    expect(recovering.code).toBe(0);
    const restored = JSON.parse(recovering.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(restored).toMatchObject({ party: a.party, role: 'admin', fingerprint });
    const said = await human('a-new', ['card', 'fingerprint']);
    expect(said.stdout.trim()).toBe(fingerprint);
    await ok('a-new', ['device', 'revoke', 'admin desk', '--reason', 'desk lost']);
    const list = (await ok('a-new', ['device', 'list'])) as unknown as Record<
      string,
      { name: string; revoked: boolean }
    >;
    expect(Object.values(list).map((d) => [d.name, d.revoked])).toEqual(
      expect.arrayContaining([
        ['admin desk', true],
        ['admin desk 2', false],
      ]),
    );

    // The minister's next sync swaps the desks in the channel; the new desk joins and talks.
    const synced = await ok('a-minister', ['sync']);
    expect(synced.removed).toEqual([{ channel: ch, devices: [a.device] }]);
    expect(synced.added).toEqual([{ channel: ch, devices: [restored.device] }]);
    await ok('a-new', ['sync']);
    await ok('a-new', ['send', ch, 'the new desk is on the line']);
    await ok('b-envoy', ['sync']);
    const log = Object.values(await ok('b-envoy', ['log', ch, '--limit', '100'])) as Array<{
      sender: string;
      event?: { kind: string; text?: string };
    }>;
    expect(log.filter((r) => r.event?.kind === 'message').map((r) => [r.sender, r.event?.text])).toEqual([
      [restored.device, 'the new desk is on the line'],
    ]);
    // The lost desk, if found, can no longer post.
    const lost = await cli('a-admin', ['send', ch, 'from the lost desk']);
    expect(lost.code).toBe(2);
    expect(lost.json.error).toMatchObject({ code: 'RELAY_REFUSED', cause: 'CERT_REVOKED' });
  });
});
