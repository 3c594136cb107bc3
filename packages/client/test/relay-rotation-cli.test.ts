/**
 * A relay key rotation end to end: a real relay process restarted with a new checkpoint key and
 * `--previous-checkpoint-key`, and the real CLI of two parties on either side. They go on
 * sending and syncing (moving to the new key by the rotation statement), and an attestation
 * made after the rotation verifies with the keys file they write.
 */
import { mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-rotation-cli-'));
const { cli, ok } = cliRunner(root);
let relay: RelayProcess | undefined;
afterAll(async () => {
  await relay?.stop();
});

describe('a relay key rotation, through the CLI', () => {
  it('the parties move to the new key and go on; an attestation after it verifies', {
    timeout: 180_000,
  }, async () => {
    const dataDir = join(root, 'relay');
    relay = await startRelayProcess(dataDir);
    await ok('a', ['init', 'party', '--name', 'Foreign Ministry', '--device', 'desk'], relay.url);
    const b = await ok(
      'b',
      ['init', 'party', '--name', 'Special Envoy', '--device', 'envoy', '--role', 'principal'],
      relay.url,
    );
    const ch = String(
      (await ok('a', ['outreach', String(b.party), '--note', 'We propose to resume contact.'])).channel,
    );
    await ok('b', ['inbox']);
    await ok('b', ['accept', ch]);
    await ok('a', ['send', ch, 'Before the rotation.']);
    const before = (await (await fetch(`${relay.url}/v1/relay`)).json()) as { vkey: string };

    // The operator rotates: the old key file aside, a new one made at start.
    await relay.stop();
    const oldKey = join(dataDir, 'checkpoint-key.old');
    renameSync(join(dataDir, 'checkpoint-key'), oldKey);
    relay = await startRelayProcess(dataDir, relay.port, {
      BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE: oldKey,
    });
    const after = (await (await fetch(`${relay.url}/v1/relay`)).json()) as {
      vkey: string;
      rotation?: string;
    };
    expect(after.vkey).not.toBe(before.vkey);
    expect(after.rotation).toBeDefined();

    await ok('a', ['send', ch, 'After the rotation.']);
    await ok('b', ['sync']);
    const log = Object.values(await ok('b', ['log', ch])) as Array<{
      status?: string;
      event?: { text?: string };
    }>;
    expect(log.flatMap((r) => (r.event?.text === undefined ? [] : [r.event.text]))).toEqual([
      'Before the rotation.',
      'After the rotation.',
    ]);
    const status = await ok('b', ['status', ch]);
    // B verified the log to its end under the new key.
    expect(status.verifiedCheckpoint).toBe(status.size);

    // An attestation made now rests on a checkpoint signed by the new key; the keys file lists both.
    const file = join(root, 'outreach.json');
    const keys = join(root, 'keys.json');
    expect(await ok('a', ['attest', 'outreach', ch, '--out', file, '--keys-out', keys])).toMatchObject({
      file,
      keys,
    });
    const relayKeys = (JSON.parse(readFileSync(keys, 'utf8')) as { relayKeys: string[] }).relayKeys;
    expect(relayKeys).toEqual([after.vkey, before.vkey]);
    const verified = await cli('a', ['verify', file, '--keys', keys]);
    expect(verified.code, verified.stderr).toBe(0);
  });
});
