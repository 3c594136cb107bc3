/**
 * `backchannel watch` against a real relay process: events arrive by push on the relay's
 * WebSocket (with a poll interval of an hour, nothing else could bring them), channels joined
 * while watching are followed, and through an endpoint that carries no WebSocket it falls back
 * to polling.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { type AddressInfo, createServer as tcpServer } from 'node:net';
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

  it('acknowledges delivery of what came before it started, and of what it receives', {
    timeout: 120_000,
  }, async () => {
    await ok('b', ['sync']);
    await ok('a', ['send', ch, 'Sent before the watch.']);
    const w = start('b', ['watch', ch, '--every', '1s', '--for', '1h']);
    try {
      await w.waitFor('the message', (j) => j.channel === ch && text(j) === 'Sent before the watch.');
      const acknowledged = async () => {
        let status: Record<string, unknown> = {};
        for (let i = 0; i < 50; i++) {
          status = await ok('a', ['status', ch]);
          if (Array.isArray(status.awaitingDelivery) && status.awaitingDelivery.length === 0) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        return status;
      };
      // B's receipt went out without a sync of B's: A sees nothing of its own unacknowledged.
      expect(await acknowledged()).toMatchObject({ awaitingDelivery: [] });
      await ok('a', ['send', ch, 'Sent during the watch.']);
      await w.waitFor('the second', (j) => j.channel === ch && text(j) === 'Sent during the watch.');
      expect(await acknowledged()).toMatchObject({ awaitingDelivery: [] });
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

  it('keeps running through answers cut off mid-body, and receives once they come whole', {
    timeout: 120_000,
  }, async () => {
    // An HTTP-only endpoint (a proxy) that, while `cut`, sends each answer's headers and half its
    // body, then drops the connection. Before, the SDK let fetch's TypeError through untyped and
    // watch stopped (exit 2, INTERNAL) at the first one.
    let cut = false;
    let cutOff = 0;
    const proxy = createServer((req, res) => {
      const up = request(
        { host: '127.0.0.1', port: relay.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => {
            const body = Buffer.concat(chunks);
            res.writeHead(r.statusCode ?? 502, { ...r.headers, 'content-length': String(body.length) });
            if (!cut || body.length < 2) {
              res.end(body);
              return;
            }
            cutOff++;
            res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
          });
        },
      );
      up.on('error', () => res.socket?.destroy());
      req.pipe(up);
    });
    proxy.on('upgrade', (_req, socket) => socket.destroy());
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const w = start('b', ['watch', ch, '--every', '300ms', '--for', '1h'], url);
    try {
      await w.waitFor('poll delivery', (j) => j.channel === ch && j.delivery === 'poll');
      cut = true;
      while (cutOff < 3 && w.child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      cut = false;
      await ok('a', ['send', ch, 'After the cut-off answers.']);
      const got = await w.waitFor(
        'the message',
        (j) => j.channel === ch && text(j) === 'After the cut-off answers.',
      );
      expect(got).toMatchObject({ status: 'ok' });
    } finally {
      await w.stop();
      proxy.close();
      proxy.closeAllConnections();
    }
  });

  it('refuses an interval of 0 and a malformed channel id, with their codes', async () => {
    expect(await cli('b', ['watch', ch, '--every', '0'])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT' } },
    });
    expect(await cli('b', ['watch', ch, '--heartbeat', '0'])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT' } },
    });
    const bad = await cli('b', ['watch', 'not-a-channel', '--for', '1s']);
    expect(bad.code).not.toBe(0);
    expect(bad.json.error?.code).toBeDefined();
  });

  it('witness refuses an interval under 1s, a state file that is not one, and a --name that is not its own', async () => {
    const state = join(root, 'witness-checks.json');
    expect(await cli('a', ['witness', '--state', state, '--interval', '0'])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT', message: '--interval must be at least 1s (not 0)' } },
    });
    const made = await cli('a', ['witness', '--state', state, '--name', 'w.one', '--print-key']);
    expect(made.code).toBe(0);
    // Written whole, readable by this user only, and no temporary file left beside it.
    expect(statSync(state).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(state, 'utf8'))).toMatchObject({ name: 'w.one' });
    expect(readdirSync(root).filter((f) => f.startsWith('.witness-checks'))).toEqual([]);
    expect(await cli('a', ['witness', '--state', state, '--name', 'w.two', '--print-key'])).toMatchObject({
      code: 1,
      json: {
        error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('holds the witness “w.one”') },
      },
    });
    const garbage = join(root, 'witness-garbage.json');
    writeFileSync(garbage, 'garbage\n');
    expect(await cli('a', ['witness', '--state', garbage, '--once'])).toMatchObject({
      code: 1,
      json: {
        error: { code: 'INVALID_ARGUMENT', message: `${garbage} is not a witness state file (not JSON)` },
      },
    });
    // Refused, not replaced: the file is as it was.
    expect(readFileSync(garbage, 'utf8')).toBe('garbage\n');
    // A channel id that is not one is a usage error (it reached the relay as REQUEST_INVALID).
    expect(await cli('a', ['witness', '--state', state, '--channel', 'bad', '--once'])).toMatchObject({
      code: 1,
      json: { error: { code: 'ID_INVALID' } },
    });
  });

  it('a track name, or a notice title or text, of only spaces is refused in words', async () => {
    expect(await cli('a', ['track', 'open', ch, '   '])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT', message: 'a track needs a name (not only spaces)' } },
    });
    for (const [text, title] of [
      ['Exercises start Monday.', ' '],
      ['  ', 'Exercises'],
    ])
      expect(await cli('a', ['notice', ch, text as string, '--title', title as string])).toMatchObject({
        code: 1,
        json: {
          error: {
            code: 'INVALID_ARGUMENT',
            message: 'a notice needs a --title and a text (not only spaces)',
          },
        },
      });
  });

  it('with --heartbeat, is the duty device too: it beats every interval in the channel it follows', {
    timeout: 120_000,
  }, async () => {
    // A heartbeat daemon of the same device could not run beside watch (one process per device).
    const w = start('b', ['watch', ch, '--every', '1h', '--for', '1h', '--heartbeat', '1s']);
    const beats: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const got = await w.waitFor(
          `heartbeat ${i + 1}`,
          (j) => j.channel === ch && typeof j.heartbeat === 'string' && !beats.includes(j.heartbeat),
        );
        beats.push(String(got.heartbeat));
      }
    } finally {
      await w.stop();
    }
    // A beat is reported once queued: the last may still be in B's outbox, delivered by B's next command.
    await ok('b', ['sync']);
    await ok('a', ['sync']);
    const log = Object.values(await ok('a', ['log', ch, '--limit', '100'])) as Array<{
      status?: string;
      event?: { id?: string; kind?: string; intervalMs?: number };
    }>;
    const heard = log.filter((r) => r.event?.kind === 'heartbeat' && beats.includes(String(r.event.id)));
    expect(heard).toHaveLength(3);
    for (const r of heard) expect(r).toMatchObject({ status: 'ok', event: { intervalMs: 1000 } });
  });

  it('alerts a notice that passes its deadline unacknowledged, once', { timeout: 150_000 }, async () => {
    const sent = await ok('b', [
      'notice',
      ch,
      'Exercises start Monday.',
      '--title',
      'Exercises',
      '--ack-within',
      '1m',
    ]);
    const notice = String(sent.event ?? sent.id);
    // A watches (and sends delivery receipts, which acknowledge nothing); the minute passes.
    const w = start('a', ['watch', ch, '--every', '1s', '--for', '100s']);
    try {
      const alert = await w.waitFor('the overdue alert', (j) => {
        const a = j.alert as { notice?: unknown } | undefined;
        return a?.notice === notice;
      });
      expect(alert.alert).toMatchObject({
        channel: ch,
        notice,
        title: 'Exercises',
        unanswered: [expect.any(String)],
      });
      await new Promise((r) => setTimeout(r, 3_000));
      const said = w.lines.filter((l) => l.includes('"alert"') && l.includes(notice));
      expect(said).toHaveLength(1);
    } finally {
      await w.stop();
    }
    // Acknowledged now (a read receipt), so that later tests see no overdue notice; a second
    // `read` of it sends nothing more.
    expect(await ok('a', ['read', ch, notice])).toMatchObject({ read: [notice] });
    expect(await ok('a', ['read', ch, notice])).toMatchObject({ read: [] });
  });

  it('stops by itself after --for, exit 0', { timeout: 120_000 }, async () => {
    const w = start('b', ['watch', ch, '--every', '100ms', '--for', '1s']);
    await new Promise((r) => w.child.once('exit', r));
    expect(w.child.exitCode).toBe(0);
  });
});

describe('one device, several commands at once', () => {
  it('sends from concurrent processes of one device take turns: every message is readable', {
    timeout: 120_000,
  }, async () => {
    // Before the device lock, each process loaded the same MLS state and encrypted with the same
    // ratchet generation (the same key and nonce for different messages): the relay took them
    // all, and the other party could read only one of each such pair.
    const texts = [1, 2, 3, 4].map((i) => `Concurrent message ${i}.`);
    const sent = await Promise.all(texts.map((t) => cli('b', ['send', ch, t])));
    for (const r of sent) expect(r.code, r.stderr).toBe(0);
    await ok('a', ['sync']);
    const log = Object.values(await ok('a', ['log', ch, '--limit', '100'])) as Array<{
      event?: { text?: string };
    }>;
    for (const t of texts) expect(log.filter((r) => r.event?.text === t)).toHaveLength(1);
  });
});

/**
 * Commands and daemons against a relay that cannot be reached: one that accepts connections and
 * drops them at once (a forwarder whose backend is down), or a port nobody listens on.
 */
describe('a relay outage', () => {
  /** A relay endpoint that accepts each connection and drops it at once. */
  const acceptAndDrop = async () => {
    const server = tcpServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
  };
  /** A relay endpoint where nothing listens (connections refused). */
  const nobody = async () => {
    const server = tcpServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await new Promise((r) => server.close(r));
    return url;
  };
  /** Waits until `n` lines match (true), or the process exits first (false). */
  const lines = async (
    w: ReturnType<typeof start>,
    n: number,
    match: (j: Record<string, unknown>) => boolean,
  ) => {
    const count = () =>
      w.lines.filter((l) => {
        try {
          return match(JSON.parse(l) as Record<string, unknown>);
        } catch {
          return false;
        }
      }).length;
    while (count() < n && w.child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    return count() >= n;
  };

  it('a send through an endpoint that accepts and drops connections exits 3 with RELAY_UNREACHABLE', {
    timeout: 120_000,
  }, async () => {
    const relayDown = await acceptAndDrop();
    try {
      // Before, Node's fetch could wait on such a connection with nothing holding the process:
      // it ended mid-command with exit 13 and said nothing.
      const r = await cli('a', ['send', ch, 'Kept for later.'], relayDown.url);
      expect(r).toMatchObject({ code: 3, json: { error: { code: 'RELAY_UNREACHABLE' } } });
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      relayDown.close();
    }
    // Kept in the outbox, sent by the next command that reaches the relay.
    expect(await ok('a', ['sync'])).toMatchObject({ outboxPending: 0 });
  });

  it('heartbeat --daemon beats at a fixed rate, ahead of its interval: the line never shows quiet between beats', {
    timeout: 120_000,
  }, async () => {
    const w = start('b', ['heartbeat', ch, '--interval', '2s', '--daemon']);
    const beats: string[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const got = await w.waitFor(
          `heartbeat ${i + 1}`,
          (j) => typeof j.heartbeat === 'string' && !beats.includes(j.heartbeat),
        );
        beats.push(String(got.heartbeat));
      }
    } finally {
      await w.stop();
    }
    await ok('b', ['sync']);
    await ok('a', ['sync']);
    const log = Object.values(await ok('a', ['log', ch, '--limit', '200'])) as Array<{
      receivedAt?: number;
      event?: { id?: string; kind?: string };
    }>;
    const at = log
      .filter((r) => r.event?.kind === 'heartbeat' && beats.includes(String(r.event.id)))
      .map((r) => Number(r.receivedAt));
    expect(at).toHaveLength(5);
    // The relay's times: on average a beat every 1.8 s (a tenth ahead of 2 s). Before, each beat
    // waited a full interval after the last had finished, ~2.3 s apart: quiet at every beat.
    const mean = ((at.at(-1) as number) - (at[0] as number)) / (at.length - 1);
    expect(mean).toBeLessThan(1_950);
    expect(mean).toBeGreaterThan(1_500);
  });

  it('heartbeat --daemon started during the outage reports each failed beat and goes on', {
    timeout: 120_000,
  }, async () => {
    const w = start('a', ['heartbeat', ch, '--interval', '1s', '--daemon'], await nobody());
    try {
      // Before, the first failed beat ended the daemon (exit 3).
      const failed = (j: Record<string, unknown>) =>
        j.heartbeat === null && (j.failed as { code?: unknown } | undefined)?.code === 'RELAY_UNREACHABLE';
      expect(await lines(w, 3, failed)).toBe(true);
      expect(w.child.exitCode).toBeNull();
      // One beat waits in the outbox, not one per interval of the outage.
      const messages = w.lines
        .map((l) => JSON.parse(l) as { failed?: { message?: string } })
        .flatMap((j) => (j.failed?.message === undefined ? [] : [j.failed.message]));
      expect(messages.length).toBeGreaterThanOrEqual(3);
      for (const m of messages) expect(m).toMatch(/\b1 message\(s\)/);
    } finally {
      await w.stop();
    }
    // The beat waited in the outbox: the next command that reaches the relay sends it.
    expect(await ok('a', ['sync'])).toMatchObject({ outboxPending: 0 });
  });

  it('heartbeat --daemon stops, with the reason, once the channel is closed', {
    timeout: 120_000,
  }, async () => {
    const closing = String((await ok('a', ['outreach', bParty, '--note', 'A line to close.'])).channel);
    await ok('b', ['inbox']);
    await ok('b', ['accept', closing]);
    const w = start('a', ['heartbeat', closing, '--interval', '1s', '--daemon']);
    try {
      await w.waitFor('the first beat', (j) => j.channel === closing && typeof j.heartbeat === 'string');
      await ok('b', ['channel', 'close', closing, '--reason', 'talks concluded']);
      // Before, it reported the refusal every interval and never ended.
      const end = await w.waitFor('the refusal', (j) => j.error !== undefined);
      expect(end).toMatchObject({ error: { code: 'EVENT_REJECTED', cause: 'CHANNEL_CLOSED' } });
      if (w.child.exitCode === null) await new Promise((r) => w.child.once('exit', r));
      expect(w.child.exitCode).toBe(2);
    } finally {
      await w.stop();
    }
  });

  it('witness (left running) reports each round it cannot make and goes on; --once exits 3', {
    timeout: 120_000,
  }, async () => {
    const url = await nobody();
    const state = join(root, 'witness-outage.json');
    const w = start('a', ['witness', '--state', state, '--interval', '1s'], url);
    try {
      // Before, the first unreachable round ended the witness (exit 3).
      const failed = (j: Record<string, unknown>) =>
        j.kind === 'round-failed' && j.code === 'RELAY_UNREACHABLE';
      expect(await lines(w, 2, failed)).toBe(true);
      expect(w.child.exitCode).toBeNull();
    } finally {
      await w.stop();
    }
    expect(await cli('a', ['witness', '--state', state, '--once'], url)).toMatchObject({
      code: 3,
      json: { error: { code: 'RELAY_UNREACHABLE' } },
    });
  });
});
