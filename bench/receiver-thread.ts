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
  | { type: 'connected'; index: number }
  | { type: 'failed'; index: number; message: string }
  | { type: 'entries'; rows: Row[] }
  | { type: 'closed'; bad: number };

/** The parent's handle: connects receivers on the thread and hands their entries to `onEntry`. */
export class ReceiverThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  readonly #onEntry: Array<(r: Received) => void> = [];
  #closed: ((bad: number) => void) | undefined;

  private constructor() {
    // tsx's loader is registered in the thread first (`--import tsx` does not reach a worker's entry).
    const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    this.#worker = new Worker(boot, { eval: true });
    // A run that fails leaves no thread keeping the bench alive.
    this.#worker.unref();
    // A thread that fails (say, it cannot load) fails the receivers waiting to connect.
    this.#worker.on('error', (e) => {
      for (const w of this.#waiting.values()) w.reject(e);
      this.#waiting.clear();
    });
    this.#worker.on('message', (m: FromThread) => {
      if (m.type === 'entries') {
        for (const [i, seq, msgId, at] of m.rows) this.#onEntry[i]?.({ seq, msgId, at });
      } else if (m.type === 'connected') {
        this.#waiting.get(m.index)?.resolve();
        this.#waiting.delete(m.index);
      } else if (m.type === 'failed') {
        this.#waiting.get(m.index)?.reject(new Error(m.message));
        this.#waiting.delete(m.index);
      } else {
        this.#closed?.(m.bad);
      }
    });
  }

  static start(): ReceiverThread {
    return new ReceiverThread();
  }

  /** Subscribes B's device to its channel on the thread; resolves once the relay confirmed it. */
  connect(req: ConnectRequest, onEntry: (r: Received) => void): Promise<void> {
    const index = this.#onEntry.length;
    this.#onEntry.push(onEntry);
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(index, { resolve, reject });
      this.#worker.postMessage({ type: 'connect', index, req } satisfies ToThread);
    });
  }

  /** Closes every receiver and the thread; resolves with the entries that failed verification. */
  async close(): Promise<number> {
    const bad = await new Promise<number>((resolve) => {
      this.#closed = resolve;
      this.#worker.postMessage({ type: 'close' } satisfies ToThread);
    });
    await this.#worker.terminate();
    return bad;
  }
}

if (parentPort !== null) {
  const port = parentPort;
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
