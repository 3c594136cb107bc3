/**
 * The relay's WebSocket side under attack, against a real relay process: resets mid-handshake,
 * devices removed or revoked while subscribed, frame floods and clients that never read, and
 * sockets piled up by one device.
 */
import { connect as tcpConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from './process.ts';

let relay: RelayProcess | undefined;
afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a TCP connection, writes `bytes`, waits, then resets it (RST, not FIN). */
async function resetAfter(port: number, bytes: string, waitMs = 30): Promise<void> {
  const s = tcpConnect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  s.write(bytes);
  await sleep(waitMs);
  s.resetAndDestroy();
}

const upgrade = (path: string, key = 'dGhlIHNhbXBsZSBub25jZQ==') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

describe('upgrade handshake', () => {
  it('a client that resets its socket mid-handshake does not take the relay down', async () => {
    relay = await startRelayProcess();
    const port = Number(new URL(relay.url).port);
    const partial = upgrade('/v1/ws').slice(0, 60);
    for (let i = 0; i < 20; i++) {
      await resetAfter(port, partial, 5);
      await resetAfter(port, upgrade('/v1/ws'), 0);
      await resetAfter(port, upgrade('/nowhere'), 0);
      await resetAfter(port, upgrade('/v1/ws', 'bad'), 0);
    }
    await sleep(200);
    expect(relay.child.exitCode).toBeNull();
    expect((await fetch(`${relay.url}/readyz`)).ok).toBe(true);
  });
});
