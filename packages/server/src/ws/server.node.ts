/** Attaches the `ws` WebSocket server to the Node HTTP server (upgrade event, path /v1/ws). */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { RelayError } from '../errors.ts';
import { rateLimited } from '../http/guards.ts';
import { answerRaw } from '../http/raw-answer.node.ts';
import type { RateLimiter } from '../http/rate-limit.ts';
import type { Hub } from './hub.ts';
import type { RelayMetrics } from '../metrics.ts';

export interface WsAttachOptions {
  readonly hub: Hub;
  readonly metrics: RelayMetrics;
  readonly ipLimiter: RateLimiter;
  readonly now: () => number;
  /** Hard cap per frame; the hub refuses frames above its own (lower) cap with FRAME_TOO_LARGE. */
  readonly maxPayload: number;
}

export function attachWebSocket(server: Server, o: WsAttachOptions): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayload, perMessageDeflate: false });
  // A handshake `ws` refuses (not GET, no `Upgrade: websocket`, a bad key or version) is answered
  // in the relay's JSON, with ws's reason as the message, instead of ws's text/html page.
  const refuse = (socket: Duplex, e: RelayError, headers?: Record<string, string>) => {
    o.metrics.refused(e.code, 'ws');
    answerRaw(socket, e, headers);
  };
  wss.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
    if (!socket.writable) return socket.destroy();
    if (req.method !== 'GET') {
      return refuse(socket, new RelayError('METHOD_NOT_ALLOWED', 'a WebSocket upgrade is a GET'), {
        allow: 'GET',
      });
    }
    // RFC 6455 §4.4: a version the server does not speak is answered with those it does.
    const versions = /Sec-WebSocket-Version/.test(err.message) ? { 'sec-websocket-version': '13, 8' } : {};
    refuse(socket, new RelayError('REQUEST_INVALID', `not a WebSocket handshake: ${err.message}`), versions);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node hands the raw socket over with no 'error' listener: a client that resets mid-handshake
    // (or while a refusal is written) would otherwise raise an unhandled 'error' and end the process.
    // `ws` adds its own listener once the handshake completes; this one stays harmless after that.
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/ws') return refuse(socket, new RelayError('NOT_FOUND', 'no such route'));
    const wait = o.ipLimiter.take(req.socket.remoteAddress ?? 'unknown', o.now());
    if (wait > 0) return refuse(socket, rateLimited(wait));
    wss.handleUpgrade(req, socket, head, (ws) => {
      // Frames sent in one turn of the event loop (a batch's acks and entries) leave in one write:
      // the socket is corked at the first and uncorked on the next turn.
      let corked = false;
      const conn = o.hub.attach(
        {
          send: (data) => {
            if (!corked) {
              corked = true;
              socket.cork();
              setImmediate(() => {
                corked = false;
                socket.uncork();
              });
            }
            ws.send(data);
          },
          get bufferedAmount() {
            return ws.bufferedAmount;
          },
          close: (code, reason) => ws.close(code, reason),
        },
        req.socket.remoteAddress ?? 'unknown',
      );
      ws.on('message', (data, isBinary) => {
        // Binary frames arrive as one Buffer (the default binaryType); text frames are UTF-8.
        if (!isBinary) conn.onMessage(data.toString());
        else if (Buffer.isBuffer(data)) conn.onMessage(data);
        else conn.onMessage(Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]));
      });
      ws.on('close', () => conn.onClose());
      ws.on('error', () => conn.onClose());
    });
  });
  return wss;
}
