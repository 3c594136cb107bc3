/**
 * `backchannel watch` against a real relay process: events arrive by push on the relay's
 * WebSocket (with a poll interval of an hour, nothing else could bring them), channels joined
 * while watching are followed, and through an endpoint that carries no WebSocket it falls back
 * to polling.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';
import { forwarder } from './forwarder.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-watch-'));
const { cli, ok, start } = cliRunner(root);

let relay: RelayProcess;
let ch: string;
let bParty: string;

beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
  await ok('a', ['init', 'party', '--name', 'Foreign Ministry', '--device', 'desk'], relay.url);
  const b = await ok(
    'b',
    ['init', 'party', '--name', 'Special Envoy', '--device', 'envoy', '--role', 'principal'],
    relay.url,
  );
  bParty = String(b.party);
  ch = String((await ok('a', ['outreach', bParty, '--note', 'We propose to resume contact.'])).channel);
  await ok('b', ['inbox']);
  await ok('b', ['accept', ch]);
  await ok('a', ['sync']);
}, 120_000);
afterAll(async () => {
  await relay?.stop();
});

const text = (j: Record<string, unknown>) => (j.event as { text?: unknown } | undefined)?.text;

describe('backchannel watch', () => {
  it('receives events by push on the WebSocket (polling every hour could not)', {
    timeout: 120_000,
  }, async () => {
    const w = start('b', ['watch', ch, '--every', '1h', '--for', '1h']);
    try {
      await w.waitFor('push delivery', (j) => j.channel === ch && j.delivery === 'push');
      await ok('a', ['send', ch, 'Pushed to the watcher.']);
      const got = await w.waitFor(
        'the message',
        (j) => j.channel === ch && text(j) === 'Pushed to the watcher.',
      );
      expect(got).toMatchObject({ channel: ch, status: 'ok', event: { kind: 'message' } });
      expect(w.lines.some((l) => l.includes('"delivery":"poll"'))).toBe(false);
    } finally {
      await w.stop();
    }
  });

  it('follows a channel joined while watching, by push', { timeout: 120_000 }, async () => {
    const w = start('b', ['watch', '--every', '1h', '--for', '1h']);
    try {
      await w.waitFor('push delivery', (j) => j.channel === ch && j.delivery === 'push');
      const second = String((await ok('a', ['outreach', bParty, '--note', 'A second line.'])).channel);
      const got = await w.waitFor(
        'the new channel',
        (j) => j.channel === second && (j.event as { kind?: unknown } | undefined)?.kind === 'outreach',
      );
      expect(got).toMatchObject({ status: 'ok', event: { note: 'A second line.' } });
      await w.waitFor('push delivery on it', (j) => j.channel === second && j.delivery === 'push');
    } finally {
      await w.stop();
    }
  });

  it('polls when the endpoint carries no WebSocket, and still receives', { timeout: 120_000 }, async () => {
    const httpOnly = await forwarder(relay.port, { webSocket: false });
    const w = start('b', ['watch', ch, '--every', '300ms', '--for', '1h'], httpOnly.url);
    try {
      await w.waitFor('poll delivery', (j) => j.channel === ch && j.delivery === 'poll');
      await ok('a', ['send', ch, 'Polled by the watcher.']);
      const got = await w.waitFor(
        'the message',
        (j) => j.channel === ch && text(j) === 'Polled by the watcher.',
      );
      expect(got).toMatchObject({ status: 'ok' });
      expect(w.lines.some((l) => l.includes('"delivery":"push"'))).toBe(false);
    } finally {
      await w.stop();
      await httpOnly.kill();
    }
  });

  it('refuses an interval of 0 and a malformed channel id, with their codes', async () => {
    expect(await cli('b', ['watch', ch, '--every', '0'])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT' } },
    });
    const bad = await cli('b', ['watch', 'not-a-channel', '--for', '1s']);
    expect(bad.code).not.toBe(0);
    expect(bad.json.error?.code).toBeDefined();
  });

  it('stops by itself after --for, exit 0', { timeout: 120_000 }, async () => {
    const w = start('b', ['watch', ch, '--every', '100ms', '--for', '1s']);
    await new Promise((r) => w.child.once('exit', r));
    expect(w.child.exitCode).toBe(0);
  });
});
