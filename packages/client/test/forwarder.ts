/**
 * A second endpoint of the same relay, as a mediator's forwarding address would be: a TCP
 * forwarder on its own port. With `webSocket: false` it refuses WebSocket upgrades (a proxy that
 * carries HTTP only). `kill` closes it and every connection through it (the endpoint is lost).
 */
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

export interface Forwarder {
  readonly url: string;
  kill(): Promise<void>;
}

export async function forwarder(port: number, opts: { webSocket?: boolean } = {}): Promise<Forwarder> {
  const conns = new Set<Socket>();
  const server = createServer((c) => {
    conns.add(c);
    c.on('error', () => c.destroy());
    c.on('close', () => conns.delete(c));
    c.once('data', (first: Buffer) => {
      if (opts.webSocket === false && /\r\nupgrade:\s*websocket/i.test(first.toString('latin1'))) {
        c.destroy();
        return;
      }
      const up = connect(port, '127.0.0.1');
      conns.add(up);
      up.write(first);
      c.pipe(up);
      up.pipe(c);
      const end = () => {
        c.destroy();
        up.destroy();
        conns.delete(up);
      };
      up.on('error', end);
      up.on('close', end);
      c.on('close', end);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    kill: async () => {
      const closed = new Promise((r) => server.close(r));
      for (const c of conns) c.destroy();
      await closed;
    },
  };
}
