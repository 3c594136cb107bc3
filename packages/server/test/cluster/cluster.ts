/**
 * Helpers for the scale-out tests: in-process relay nodes on one PostgreSQL schema and one NATS
 * subject, a WebSocket subscriber driving a node's hub without a port, a fan-out that can be made
 * to lose messages, and a TCP proxy that can cut a node off from a service.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { type ChannelId, signRequest, toBase64url } from '@backchannel/protocol';
import { type RelayConfigInput, resolveConfig } from '../../src/config.ts';
import type { Fanout, FanoutMessage } from '../../src/fanout/fanout.ts';
import { NatsFanout } from '../../src/fanout/nats.ts';
import { createRelay, type RelayCore } from '../../src/relay.ts';
import { openPostgresStore } from '../../src/store/postgres/pg-store.ts';
import type { HubConnection } from '../../src/ws/hub.ts';
import { Caller, suite, type TestDevice } from '../helpers.ts';
import type { Frame } from '../process.ts';
import { NATS_URL, PG_URL } from '../services.ts';

/** Wraps a fan-out; while `lossy` is set, this node's batches reach its own hub but not the others. */
export class LossyFanout implements Fanout {
  readonly inner: Fanout;
  lossy = false;
  readonly #local = new Set<(m: FanoutMessage) => void>();

  constructor(inner: Fanout) {
    this.inner = inner;
  }

  publish(m: FanoutMessage): void {
    if (!this.lossy) {
      this.inner.publish(m);
      return;
    }
    for (const l of this.#local) l(m);
  }

  subscribe(listener: (m: FanoutMessage) => void): () => void {
    this.#local.add(listener);
    const off = this.inner.subscribe(listener);
    return () => {
      this.#local.delete(listener);
      off();
    };
  }

  onResync(listener: () => void): () => void {
    return this.inner.onResync?.(listener) ?? (() => {});
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface Node {
  readonly core: RelayCore;
  readonly caller: Caller;
  readonly fanout: LossyFanout;
  readonly nats: NatsFanout;
  close(): Promise<void>;
}

export async function startNode(opts: {
  schema: string;
  subject: string;
  seed: Uint8Array;
  pgUrl?: string;
  natsUrl?: string;
  /** Seconds a statement may wait for a connection (PostgresStoreOptions.connectTimeoutS). */
  connectTimeoutS?: number;
  /** Seconds a transaction may take (PostgresStoreOptions.transactionTimeoutS). */
  transactionTimeoutS?: number;
  /** Settings on top of the cluster's (resolveConfig's input). */
  config?: RelayConfigInput;
}): Promise<Node> {
  const store = await openPostgresStore({
    url: opts.pgUrl ?? PG_URL,
    schema: opts.schema,
    max: 4,
    ...(opts.connectTimeoutS === undefined ? {} : { connectTimeoutS: opts.connectTimeoutS }),
    ...(opts.transactionTimeoutS === undefined ? {} : { transactionTimeoutS: opts.transactionTimeoutS }),
  });
  const nats = await NatsFanout.connect({ url: opts.natsUrl ?? NATS_URL, subject: opts.subject });
  const fanout = new LossyFanout(nats);
  const core = createRelay({
    config: resolveConfig({ verifyThreads: 0, relayName: 'cluster.test' }, opts.config),
    store,
    seed: opts.seed,
    fanout,
  });
  return {
    core,
    caller: new Caller(async (path, init) => core.app.request(path, init)),
    fanout,
    nats,
    close: () => core.close(),
  };
}

/** A WebSocket client attached straight to a node's hub (no port). */
export class HubClient {
  readonly frames: Frame[] = [];
  readonly #conn: HubConnection;
  /** The relay's name, which the auth frame is signed for. */
  readonly #relayName: string;
  #waiters: Array<() => void> = [];
  closed: number | undefined;

  constructor(core: RelayCore) {
    this.#relayName = core.signer.name;
    this.#conn = core.hub.attach({
      send: (data) => {
        if (typeof data !== 'string') throw new Error('this client sends text frames only');
        this.frames.push(JSON.parse(data) as Frame);
        this.#wake();
      },
      bufferedAmount: 0,
      close: (code) => {
        this.closed = code;
        this.#wake();
      },
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.#conn.onMessage(JSON.stringify(frame));
  }

  async waitFor(pred: (f: Frame) => boolean, what: string, timeoutMs = 15_000): Promise<Frame> {
    const until = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.frames.length; seen++) {
        const f = this.frames[seen] as Frame;
        if (pred(f)) return f;
      }
      if (this.closed !== undefined) throw new Error(`socket closed (${this.closed}) waiting for ${what}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Authenticates the socket as `dev` with an auth frame signed at `time`. */
  async auth(dev: TestDevice, time = Date.now()): Promise<void> {
    const f = await this.#authFrame(dev, time);
    if (f.type !== 'ready') throw new Error(`auth failed: ${f.code}`);
  }

  /** The error frame an auth frame signed at `time` gets (throws if it is accepted instead). */
  async authFails(dev: TestDevice, time: number): Promise<Frame> {
    const f = await this.#authFrame(dev, time);
    if (f.type !== 'error') throw new Error('auth was accepted');
    return f;
  }

  async #authFrame(dev: TestDevice, time: number): Promise<Frame> {
    this.send({
      type: 'auth',
      device: dev.device,
      time,
      sig: toBase64url(
        signRequest(dev.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), this.#relayName, suite),
      ),
    });
    return this.waitFor((x) => x.type === 'ready' || x.type === 'error', 'ready');
  }

  async subscribe(channel: ChannelId, from: number): Promise<void> {
    this.send({ type: 'subscribe', channel, from });
    await this.waitFor((f) => f.type === 'subscribed' && f.channel === channel, 'subscribed');
  }

  entries(channel: ChannelId): number[] {
    return this.frames.filter((f) => f.type === 'entry' && f.channel === channel).map((f) => f.seq as number);
  }

  /** Waits until `count` entries of the channel have arrived (they are checked by the caller). */
  async waitForEntries(channel: ChannelId, count: number): Promise<number[]> {
    let n = 0;
    await this.waitFor(
      (f) => f.type === 'entry' && f.channel === channel && ++n >= count,
      `${count} entries of ${channel}`,
    );
    return this.entries(channel);
  }

  close(): void {
    this.#conn.onClose();
  }
}

/**
 * A TCP proxy in front of a service; cut() drops every connection and refuses new ones until
 * heal(). freezeOn(text) makes the next connection that sends `text` go silent instead: what it
 * sent is delivered, then nothing more passes either way, not even the service closing it (a
 * network path that drops packets), until the client closes it or cut().
 */
export class CuttableProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #cut = false;
  #freezeOn: { text: string; then: number } | undefined;
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((client) => {
      if (this.#cut) {
        client.destroy();
        return;
      }
      const upstream = tcpConnect(this.#target);
      this.#sockets.add(client);
      this.#sockets.add(upstream);
      let frozen = false;
      /** Chunks still to pass once `freezeOn` was seen on this connection (-1: not seen). */
      let passing = -1;
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      // Silent, the client does not hear the service close either (until cut() or close()).
      const upstreamGone = () => (frozen ? upstream.destroy() : drop());
      upstream.on('error', upstreamGone).on('close', upstreamGone);
      client.on('data', (d: Buffer) => {
        if (frozen) return;
        upstream.write(d);
        if (passing < 0 && this.#freezeOn !== undefined && d.includes(this.#freezeOn.text)) {
          passing = this.#freezeOn.then;
          this.#freezeOn = undefined;
        } else if (passing > 0) passing--;
        if (passing === 0) frozen = true;
      });
      upstream.on('data', (d: Buffer) => {
        if (!frozen) client.write(d);
      });
    });
  }

  /** `then`: how many more chunks that connection sends before it goes silent. */
  freezeOn(text: string, then = 0): void {
    this.#freezeOn = { text, then };
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    const a = this.#server.address();
    this.port = typeof a === 'object' && a !== null ? a.port : 0;
    return this.port;
  }

  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  heal(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
