/** Attaches the `ws` WebSocket server to the Node HTTP server (upgrade event, path /v1/ws). */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { RateLimiter } from '../http/rate-limit.ts';
import type { Hub } from './hub.ts';

export interface WsAttachOptions {
  readonly hub: Hub;
  readonly ipLimiter: RateLimiter;
  readonly now: () => number;
  /** Hard cap per frame; the hub refuses frames above its own (lower) cap with FRAME_TOO_LARGE. */
  readonly maxPayload: number;
}

function refuse(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export function attachWebSocket(server: Server, o: WsAttachOptions): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayload, perMessageDeflate: false });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node hands the raw socket over with no 'error' listener: a client that resets mid-handshake
    // (or while a refusal is written) would otherwise raise an unhandled 'error' and end the process.
    // `ws` adds its own listener once the handshake completes; this one stays harmless after that.
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/ws') return refuse(socket, '404 Not Found');
    if (o.ipLimiter.take(req.socket.remoteAddress ?? 'unknown', o.now()) > 0) {
      return refuse(socket, '429 Too Many Requests');
    }
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
