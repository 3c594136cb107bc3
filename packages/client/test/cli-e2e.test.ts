/**
 * The reference scenario driven through the real `backchannel` binary, each device a separate
 * process with its own encrypted home, against a real relay process (killed with SIGKILL mid-way).
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-cli-e2e-'));
const { cli, ok } = cliRunner(root);

let relay: RelayProcess;

beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
}, 60_000);
afterAll(async () => {
  await relay?.stop();
});

describe('the reference scenario from a terminal', () => {
  it('outreach, points with receipts, an offline device, a relay crash, a removed device, a forked relay', {
    timeout: 900_000,
  }, async () => {
    // Step 1 — parties and devices.
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
    const invite1 = await ok('a-admin', [
      'device',
      'add',
      '--name',
      'staff-1',
      '--role',
      'staff',
      '--out',
      join(root, 's1.invite'),
    ]);
    const invite2 = await ok('a-admin', [
      'device',
      'add',
      '--name',
      'staff-2',
      '--role',
      'staff',
      '--out',
      join(root, 's2.invite'),
    ]);
    expect(
      await cli('a-staff1', ['init', 'device', '--invite', join(root, 's1.invite'), '--code', 'WRONG-CODE']),
    ).toMatchObject({
      code: 2,
      json: { error: { code: 'INVITE_INVALID' } },
    });
    await ok('a-staff1', [
      'init',
      'device',
      '--invite',
      join(root, 's1.invite'),
      '--code',
      String(invite1.code),
    ]);
    await ok('a-staff2', [
      'init',
      'device',
      '--invite',
      join(root, 's2.invite'),
      '--code',
      String(invite2.code),
    ]);
    const fp = await ok('a-admin', ['card', 'fingerprint', String(b.party)]);
    expect(fp.fingerprint).toBe(b.fingerprint);

    // Step 3 — A reaches out; B sees it in its inbox and accepts.
    const out = await ok('a-admin', [
      'outreach',
      String(b.party),
      '--note',
      'We propose to resume contact.',
      '--mediator',
      'blind',
      '--delivery-bound',
      '1h',
    ]);
    const ch = String(out.channel);
    const inbox = (await cli('b-envoy', ['inbox'])).stdout;
    expect(inbox).toContain(ch);
    expect(inbox).toContain('proposed');
    await ok('b-envoy', ['accept', ch]);
    const track = await ok('b-envoy', ['track', 'open', ch, 'nuclear']);
    // Staff may not close a channel: refused locally with the rule's code, nothing sent.
    expect(await cli('a-staff1', ['channel', 'close', ch])).toMatchObject({
      code: 2,
      json: { error: { code: 'EVENT_REJECTED' } },
    });

    // Step 4 — B conveys points while A-staff-2 is offline; the relay is killed mid-way.
    const points = await ok('b-envoy', [
      'points',
      ch,
      'Halt enrichment above 5%',
      'Inspectors return',
      '--title',
      'Conditions',
      '--track',
      'nuclear',
    ]);
    await relay.crash();
    const down = await cli('b-envoy', ['send', ch, 'Details follow.', '--track', String(track.track)]);
    expect(down.code).toBe(3); // relay unreachable: the send waits in the outbox
    await relay.restart();
    await ok('b-envoy', ['sync']);
    await ok('a-staff1', ['sync']);
    await ok('a-admin', ['read', ch]);
    await ok('b-envoy', ['sync']);
    // Two endpoints for one relay (say, direct and through a mediator's forwarding address):
    // the first is down, the client fails over to the second.
    const status = await ok('b-envoy', ['--relay', 'http://127.0.0.1:9', '--relay', relay.url, 'status', ch]);
    expect(status, JSON.stringify(status)).toMatchObject({ lifecycle: 'open', outstandingReceipts: 0 });
    const log = (await ok('b-envoy', ['log', ch, '--limit', '100'])) as unknown as Array<{
      status: string;
      event?: { kind: string; text?: string; id?: string };
    }>;
    const bLog = Object.values(log);
    expect(bLog.filter((r) => r.event?.text === 'Details follow.')).toHaveLength(1);

    // Step 7 — A-staff-2 was offline for all of it, and catches up.
    const s2log = Object.values(await ok('a-staff2', ['log', ch, '--limit', '100'])) as Array<{
      event?: { id?: string; kind: string };
    }>;
    expect(s2log.filter((r) => r.event?.id === points.event)).toHaveLength(1);
    const s2status = await ok('a-staff2', ['status', ch]);
    expect(s2status.verifiedCheckpoint).toBe(s2status.size);

    // Step 8 — A's admin revokes staff-1: it can no longer read or post.
    const s1 = await ok('a-staff1', ['status', ch]);
    await ok('a-admin', ['device', 'revoke', String(invite1.device), '--reason', 'left the delegation']);
    await ok('a-admin', ['send', ch, 'New instructions.']);
    const s1read = await cli('a-staff1', ['log', ch]);
    expect(s1read.code).toBe(2);
    expect(s1read.json.error?.message).toContain('CERT_REVOKED');
    expect((await cli('a-staff1', ['send', ch, 'still here?'])).code).not.toBe(0);
    expect(s1.size).toBeGreaterThan(0);
    // The other side's log shows the commit that removed it.
    await ok('b-envoy', ['sync']);
    const bAfter = Object.values(await ok('b-envoy', ['log', ch, '--limit', '100'])) as Array<{
      status: string;
      devicesRemoved?: string[];
    }>;
    expect(bAfter.filter((r) => r.devicesRemoved?.includes(String(invite1.device)))).toMatchObject([
      { status: 'handshake', code: 'COMMIT_APPLIED' },
    ]);

    // Step 6 — B attests "A reached out to us"; anyone verifies it offline with the public keys.
    const att = join(root, 'outreach.json');
    const keys = join(root, 'keys.json');
    await ok('b-envoy', ['attest', 'outreach', ch, '--which', 'first', '--out', att, '--keys-out', keys]);
    expect(await cli('journalist', ['verify', att, '--keys', keys])).toMatchObject({
      code: 0,
      json: { valid: true, kind: 'outreach' },
    });
    // The accountable mediator: B's receipt for its points checks against the verified log.
    // The bound comes from the channel (stated at outreach): no --bound needed.
    expect(await cli('b-envoy', ['receipt-check', ch, String(points.event)])).toMatchObject({
      code: 0,
      json: { check: { kind: 'delivered' } },
    });

    // A relay that rewrites history: a copy of the relay's data continues differently.
    await ok('a-admin', ['sync']);
    const wState = join(root, 'witness-a.json');
    const evidence = join(root, 'evidence');
    const witness = (url?: string) =>
      cli('a-admin', ['witness', '--once', '--state', wState, '--evidence-dir', evidence], url);
    expect(await witness()).toMatchObject({ code: 0, json: { kind: 'cosigned' } });
    await relay.stop();
    const forkDir = join(root, 'relay-fork');
    cpSync(relay.dataDir, forkDir, { recursive: true });
    await relay.restart();
    await ok('b-envoy', ['send', ch, 'What really happened.']);
    await ok('a-admin', ['sync']);
    expect(await witness()).toMatchObject({ code: 0, json: { kind: 'cosigned' } });
    const fork = await startRelayProcess(forkDir);
    try {
      await ok('b-envoy', ['send', ch, 'A different history.'], fork.url);
      const detected = await cli('a-admin', ['sync'], fork.url);
      expect(detected.code).toBe(4);
      expect(detected.json.error?.code).toBe('FORK_DETECTED');
      // A's witness co-signed the honest log; shown the fork, it refuses, exits 4 and writes
      // evidence that verifies on its own.
      const caught = await witness(fork.url);
      expect(caught.code).toBe(4);
      expect(caught.stderr).toContain('ALARM');
      const file = String((caught.json as { file?: string }).file);
      expect(await cli('journalist', ['verify', file])).toMatchObject({
        code: 0,
        json: { valid: true, conclusive: true },
      });
    } finally {
      await fork.stop();
    }
    expect(a.party).not.toBe(b.party);
  });
});
