/**
 * The Node device's WebSocket (CorkedWebSocket): frames sent in one turn of the event loop leave
 * in one write, in order, and nothing is held back past the turn.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { CorkedWebSocket } from '../src/sdk/websocket.node.ts';

let server: WebSocketServer | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

/** A server that records each frame and, per connection, the size of every chunk read off TCP. */
async function listen(): Promise<{ url: string; frames: string[]; reads: number[] }> {
  const frames: string[] = [];
  const reads: number[] = [];
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  server.on('connection', (ws, req) => {
    req.socket.on('data', (d: Buffer) => reads.push(d.length));
    ws.on('message', (d) => frames.push(d.toString()));
  });
  await new Promise((r) => server?.once('listening', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `ws://127.0.0.1:${port}`, frames, reads };
}

async function open(url: string): Promise<CorkedWebSocket> {
  const ws = new CorkedWebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe('CorkedWebSocket', () => {
  it('writes the frames of one turn at once, in order', async () => {
    const s = await listen();
    const ws = await open(s.url);
    await new Promise((r) => setTimeout(r, 20)); // the handshake's reads are done
    const before = s.reads.length;
    const sent = Array.from({ length: 20 }, (_, i) => `frame ${i} ${'x'.repeat(40)}`);
    for (const f of sent) ws.send(f);
    await until(() => s.frames.length === 20);
    expect(s.frames).toEqual(sent);
    // One write of ~1 KB on loopback is read as one chunk (twenty writes would be up to twenty).
    expect(s.reads.length - before).toBe(1);
    ws.close();
  });

  it('sends what a later turn (or a promise continuation) sends without waiting for more', async () => {
    const s = await listen();
    const ws = await open(s.url);
    ws.send('first');
    await until(() => s.frames.length === 1);
    await Promise.resolve();
    ws.send('second');
    await new Promise((r) => setImmediate(r));
    ws.send(new TextEncoder().encode('third'));
    await until(() => s.frames.length === 3);
    expect(s.frames).toEqual(['first', 'second', 'third']);
    ws.close();
  });
});
