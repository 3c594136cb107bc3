/**
 * An error answer written straight to a socket, for the requests that never reach the app:
 * those Node's HTTP parser refuses, and WebSocket upgrades refused before the handshake. The
 * body is the same `{error: {code, message}}` JSON as every other refusal, and the connection
 * closes after it.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RelayError } from '../errors.ts';

export function answerRaw(socket: Duplex, e: RelayError, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(e.toJSON());
  const retry =
    e.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.ceil(e.retryAfterMs / 1000)) };
  const lines = Object.entries({ ...headers, ...retry }).map(([k, v]) => `${k}: ${v}\r\n`);
  // Destroyed once written: a client that keeps its side open must not hold the socket.
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n${lines.join('')}connection: close\r\n\r\n${body}`,
  );
}
