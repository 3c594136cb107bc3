/**
 * Starting a relay process (demo, end-to-end tests) ends in bounded time even when its port is
 * held by something that accepts connections and never answers.
 */
import { mkdtempSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startRelayProcess } from '../src/cli/relay-process.node.ts';

describe('startRelayProcess', () => {
  it('fails (the relay cannot listen) instead of waiting forever on a port held by a silent server', {
    timeout: 60_000,
  }, async () => {
    const conns = new Set<Socket>();
    const silent = createServer((c) => {
      conns.add(c);
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    try {
      // Before, the readiness probe's fetch waited on the silent server forever (no timeout).
      await expect(
        startRelayProcess(join(mkdtempSync(join(tmpdir(), 'bc-rp-')), 'relay'), port),
      ).rejects.toThrow(/relay exited/);
    } finally {
      for (const c of conns) c.destroy();
      silent.close();
    }
  });
});
