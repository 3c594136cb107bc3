/**
 * Fan-out between relay nodes over NATS core subjects. A node delivers its own batches to its
 * listeners at once (no round trip) and publishes them on one subject; every other node delivers
 * what it receives to its own WebSocket subscribers. NATS is never the source of truth: delivery
 * over it is at most once, and the hub notices a gap (an entry ahead of a subscriber's next seq)
 * and reads the missing ones from the store. After a disconnect, listeners are told to resync
 * (every live subscription re-reads the store), so a batch lost while NATS was away is not
 * waiting for the channel's next message.
 */
import { randomBytes } from 'node:crypto';
import { connect, Events, type NatsConnection, type Subscription } from 'nats';
import type { Log } from '../http/context.ts';
import { decodeFanout, encodeFanout } from './fanout-codec.ts';
import type { Fanout, FanoutMessage } from './fanout.ts';

export interface NatsFanoutOptions {
  /** nats://host:port (several comma-separated); a `subject` query parameter overrides the subject. */
  readonly url: string;
  /** Subject every node of one cluster publishes on and listens to (the URL's `subject` wins). */
  readonly subject?: string;
  readonly log?: Log;
  /** Identifies this node's own messages (default: random). */
  readonly nodeId?: string;
}

/** After a reconnect, subscribers are resynced at once and again this much later. */
const RESYNC_AGAIN_MS = 2_000;

const SUBJECT_TOKEN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function natsSubjectFor(relayName: string): string {
  return `backchannel.fanout.${relayName.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export class NatsFanout implements Fanout {
  readonly nodeId: string;
  readonly subject: string;
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  readonly #log: Log | undefined;
  readonly #listeners = new Set<(m: FanoutMessage) => void>();
  readonly #resync = new Set<() => void>();
  #closed = false;
  #received = 0;
  #malformed = 0;

  private constructor(nc: NatsConnection, subject: string, nodeId: string, log: Log | undefined) {
    this.#nc = nc;
    this.subject = subject;
    this.nodeId = nodeId;
    this.#log = log;
    this.#sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) {
          this.#log?.warn({ err: { message: err.message } }, 'fan-out subscription error');
          return;
        }
        this.#receive(msg.data);
      },
    });
    void this.#watch();
  }

  static async connect(o: NatsFanoutOptions): Promise<NatsFanout> {
    const u = new URL(o.url.split(',')[0] ?? o.url);
    const subject = u.searchParams.get('subject') ?? o.subject ?? 'backchannel.fanout.default';
    if (!SUBJECT_TOKEN.test(subject)) throw new Error('fan-out subject must be dot-separated tokens');
    const servers = o.url.split(',').map((s) => {
      const x = new URL(s);
      return `${x.hostname}:${x.port === '' ? '4222' : x.port}`;
    });
    const nc = await connect({
      servers,
      name: 'backchannel-relay',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      pingInterval: 5_000,
      waitOnFirstConnect: false,
    });
    await nc.flush();
    return new NatsFanout(nc, subject, o.nodeId ?? randomBytes(8).toString('hex'), o.log);
  }

  /** Messages from other nodes delivered, and malformed ones dropped (for tests and metrics). */
  get stats(): { received: number; malformed: number } {
    return { received: this.#received, malformed: this.#malformed };
  }

  #receive(data: Uint8Array): void {
    let decoded: ReturnType<typeof decodeFanout>;
    try {
      decoded = decodeFanout(data);
    } catch (e) {
      this.#malformed++;
      this.#log?.warn({ err: { message: (e as Error).message } }, 'dropping a malformed fan-out message');
      return;
    }
    if (decoded.origin === this.nodeId) return;
    this.#received++;
    this.#emit(decoded.message);
  }

  #emit(m: FanoutMessage): void {
    for (const l of this.#listeners) {
      try {
        l(m);
      } catch (e) {
        this.#log?.error({ err: { message: (e as Error).message } }, 'fan-out listener failed');
      }
    }
  }

  async #watch(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === Events.Disconnect) this.#log?.warn({}, 'fan-out: NATS disconnected');
      if (s.type === Events.Reconnect) {
        this.#log?.info({}, 'fan-out: NATS reconnected; resyncing subscribers from the store');
        for (const r of this.#resync) r();
        // Once more when the other nodes are back too: a batch another node published while this
        // one's subscription was being restored, and committed after the read above, would
        // otherwise wait for the channel's next message.
        setTimeout(() => {
          if (!this.#closed) for (const r of this.#resync) r();
        }, RESYNC_AGAIN_MS).unref();
      }
    }
  }

  publish(m: FanoutMessage): void {
    this.#emit(m);
    if (this.#closed) return;
    try {
      for (const payload of encodeFanout(this.nodeId, m, this.#nc.info?.max_payload ?? 1 << 20)) {
        this.#nc.publish(this.subject, payload);
      }
    } catch (e) {
      // Other nodes catch up from the store when they see the gap or when NATS comes back.
      this.#log?.warn({ err: { message: (e as Error).message } }, 'fan-out publish failed');
    }
  }

  subscribe(listener: (m: FanoutMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  onResync(listener: () => void): () => void {
    this.#resync.add(listener);
    return () => {
      this.#resync.delete(listener);
    };
  }

  /** Waits until everything published so far has reached the NATS server. */
  async flush(): Promise<void> {
    if (!this.#closed) await this.#nc.flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#resync.clear();
    this.#sub.unsubscribe();
    await this.#nc.drain().catch(() => this.#nc.close());
  }
}
