/**
 * Starting a relay process (demo, end-to-end tests) on a port something else holds fails at once
 * with a clear error: neither waiting on a silent server, nor taking another relay that answers
 * there for the one it started. A relay that has exited is crashed or stopped at once.
 */
import { mkdtempSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startRelayProcess } from '../src/cli/relay-process.node.ts';

const dataDir = () => join(mkdtempSync(join(tmpdir(), 'bc-rp-')), 'relay');

async function listening(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

describe('startRelayProcess', () => {
  it('refuses a port held by a silent server instead of waiting on it', { timeout: 60_000 }, async () => {
    const conns = new Set<Socket>();
    const silent = createServer((c) => {
      conns.add(c);
      c.on('error', () => undefined);
    });
    const port = await listening(silent);
    try {
      await expect(startRelayProcess(dataDir(), port)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringContaining(`port ${port} is already in use`),
      });
    } finally {
      for (const c of conns) c.destroy();
      silent.close();
    }
  });

  it('refuses a port where another relay answers, instead of taking it for its own', {
    timeout: 60_000,
  }, async () => {
    // Answers /readyz as a relay does: before, the demo ran its steps against it.
    const other = createHttpServer((_req, res) => res.end('{"ready":true}'));
    const port = await listening(other);
    try {
      await expect(startRelayProcess(dataDir(), port)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    } finally {
      other.close();
    }
  });

  it('crashes and stops a relay that already exited at once', { timeout: 60_000 }, async () => {
    const relay = await startRelayProcess(dataDir());
    await relay.crash();
    // Before, a second crash waited for an exit that had already happened.
    await relay.crash();
    await relay.stop();
    expect(relay.child.signalCode).toBe('SIGKILL');
  });
});
