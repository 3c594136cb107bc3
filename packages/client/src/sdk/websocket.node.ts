/**
 * The WebSocket a Node device uses (`ws`), with the frames sent in one turn of the event loop
 * written to the socket at once: a batch of posts (`sendMany`) leaves in one write instead of
 * one system call per frame, as the relay's own frames do. Nothing is held past the turn: the
 * socket is uncorked in a microtask (on setImmediate, frames waited behind the sender's next
 * batch of synchronous work). No compression is offered (the relay refuses it anyway).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type ClientOptions, WebSocket } from 'ws';

type SendData = Parameters<WebSocket['send']>[0];
type SendOptions = Parameters<WebSocket['send']>[1];
type SendCallback = (err?: Error) => void;

export class CorkedWebSocket extends WebSocket {
  #socket: Socket | undefined;
  #corked = false;

  constructor(url: string, options?: ClientOptions) {
    super(url, { perMessageDeflate: false, ...options });
    this.once('upgrade', (res: IncomingMessage) => {
      this.#socket = res.socket;
    });
  }

  override send(data: SendData, cb?: SendCallback): void;
  override send(data: SendData, options: SendOptions, cb?: SendCallback): void;
  override send(data: SendData, a?: SendOptions | SendCallback, b?: SendCallback): void {
    const socket = this.#socket;
    if (socket !== undefined && !this.#corked && this.readyState === WebSocket.OPEN) {
      this.#corked = true;
      socket.cork();
      queueMicrotask(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    if (typeof a === 'object') super.send(data, a, b);
    else super.send(data, a);
  }
}
