/**
 * The WebSocket a Node device uses (`ws`), with the frames sent in one turn of the event loop
 * written to the socket at once: a batch of posts (`sendMany`) leaves in one write instead of
 * one system call per frame, as the relay's own frames do. Nothing is held past the turn.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';

export class CorkedWebSocket extends WebSocket {
  #socket: Socket | undefined;
  #corked = false;

  constructor(url: string) {
    super(url);
    this.once('upgrade', (res: IncomingMessage) => {
      this.#socket = res.socket;
    });
  }

  override send(data: string | Uint8Array): void {
    const socket = this.#socket;
    if (socket !== undefined && !this.#corked && this.readyState === WebSocket.OPEN) {
      this.#corked = true;
      socket.cork();
      queueMicrotask(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    super.send(data);
  }
}
