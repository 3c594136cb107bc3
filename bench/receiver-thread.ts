/**
 * W1's receiving devices (B) on a thread of their own. B is another party on another machine:
 * run on the sender's event loop, B's signature checks would hold back A's sends (each verified
 * entry delays the acknowledgements queued behind it), which a real sender never pays for. The
 * thread is in the load's process, so the load's CPU still counts it, and its receipt times are on
 * the host clock (performance.timeOrigin + performance.now()), comparable with A's send times.
 *
 * The parent posts {connect}; the thread answers {connected} once subscribed, then streams the
 * entries it verified as batches {entries: [channelIndex, seq, msgId, at][]}, and {bad} counts.
 */
import { parentPort, Worker } from 'node:worker_threads';
import type { ChannelId } from '@backchannel/protocol';
import { type Device, type Received, receiver } from './relay-harness.ts';

export interface ConnectRequest {
  readonly url: string;
  readonly me: Device;
  readonly channel: ChannelId;
  readonly from: number;
  readonly senderKeys: ReadonlyMap<string, Uint8Array>;
  readonly binary: boolean;
}

type Row = readonly [index: number, seq: number, msgId: string, at: number];

type ToThread = { type: 'connect'; index: number; req: ConnectRequest } | { type: 'close' };
type FromThread =
  | { type: 'ready' }
  | { type: 'connected'; index: number }
  | { type: 'failed'; index: number; message: string }
  | { type: 'entries'; rows: Row[] }
  | { type: 'closed'; bad: number };

/** The parent's handle: connects receivers on the thread and hands their entries to `onEntry`. */
export class ReceiverThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  readonly #onEntry: Array<(r: Received) => void> = [];
  #closed: { resolve: (bad: number) => void; reject: (e: Error) => void } | undefined;
  #ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Why the thread is gone, once it is: every call after that fails with it. */
  #dead: Error | undefined;

  private constructor() {
    // tsx's loader is registered in the thread first (`--import tsx` does not reach a worker's entry).
    const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    this.#worker = new Worker(boot, { eval: true });
    // A run that fails leaves no thread keeping the bench alive.
    this.#worker.unref();
    // A thread that fails (it cannot load, or a receiver throws) fails every call waiting on it
    // and every later one: a run stops with the error rather than waiting for entries for ever.
    const die = (e: Error) => {
      this.#dead ??= e;
      for (const w of this.#waiting.values()) w.reject(this.#dead);
      this.#waiting.clear();
      this.#ready?.reject(this.#dead);
      this.#closed?.reject(this.#dead);
      for (const f of this.#onDeath) f(this.#dead);
    };
    this.#worker.on('error', die);
    this.#worker.on('exit', (code) => die(new Error(`the receiver thread exited (${code})`)));
    this.#worker.on('message', (m: FromThread) => {
      if (m.type === 'ready') {
        this.#ready?.resolve();
      } else if (m.type === 'entries') {
        for (const [i, seq, msgId, at] of m.rows) this.#onEntry[i]?.({ seq, msgId, at });
      } else if (m.type === 'connected') {
        this.#waiting.get(m.index)?.resolve();
        this.#waiting.delete(m.index);
      } else if (m.type === 'failed') {
        this.#waiting.get(m.index)?.reject(new Error(m.message));
        this.#waiting.delete(m.index);
      } else {
        this.#closed?.resolve(m.bad);
      }
    });
  }

  readonly #onDeath: Array<(e: Error) => void> = [];

  /** Starts the thread and waits until it has loaded (before a run's clock starts). */
  static async start(): Promise<ReceiverThread> {
    const t = new ReceiverThread();
    await new Promise<void>((resolve, reject) => {
      t.#ready = { resolve, reject };
    });
    return t;
  }

  /** Resolves never; rejects when the thread dies (race it against what waits for entries). */
  failure(): Promise<never> {
    return new Promise<never>((_, reject) => {
      if (this.#dead !== undefined) reject(this.#dead);
      else this.#onDeath.push(reject);
    });
  }

  /** Subscribes B's device to its channel on the thread; resolves once the relay confirmed it. */
  connect(req: ConnectRequest, onEntry: (r: Received) => void): Promise<void> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    const index = this.#onEntry.length;
    this.#onEntry.push(onEntry);
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(index, { resolve, reject });
      this.#worker.postMessage({ type: 'connect', index, req } satisfies ToThread);
    });
  }

  /** Closes every receiver and the thread; resolves with the entries that failed verification. */
  async close(): Promise<number> {
    if (this.#dead !== undefined) throw this.#dead;
    try {
      return await new Promise<number>((resolve, reject) => {
        this.#closed = { resolve, reject };
        this.#worker.postMessage({ type: 'close' } satisfies ToThread);
        setTimeout(() => reject(new Error('the receiver thread did not close within 10 s')), 10_000).unref();
      });
    } finally {
      this.#onDeath.length = 0;
      this.#dead ??= new Error('closed');
      await this.#worker.terminate();
    }
  }
}

if (parentPort !== null) {
  const port = parentPort;
  port.postMessage({ type: 'ready' } satisfies FromThread);
  const open: Array<{ close(): void; bad(): number }> = [];
  let rows: Row[] = [];
  let flushing = false;
  const flush = () => {
    flushing = false;
    port.postMessage({ type: 'entries', rows } satisfies FromThread);
    rows = [];
  };
  port.on('message', (m: ToThread) => {
    if (m.type === 'close') {
      if (rows.length > 0) flush();
      for (const r of open) r.close();
      port.postMessage({ type: 'closed', bad: open.reduce((s, r) => s + r.bad(), 0) } satisfies FromThread);
      return;
    }
    const { index, req } = m;
    receiver(
      req.url,
      req.me,
      req.channel,
      req.from,
      req.senderKeys,
      (r) => {
        rows.push([index, r.seq, r.msgId, r.at]);
        if (!flushing) {
          flushing = true;
          setImmediate(flush);
        }
      },
      req.binary,
    ).then(
      (r) => {
        open.push(r);
        port.postMessage({ type: 'connected', index } satisfies FromThread);
      },
      (e: unknown) => port.postMessage({ type: 'failed', index, message: String(e) } satisfies FromThread),
    );
  });
}
