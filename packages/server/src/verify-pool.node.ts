/**
 * Ed25519 verification off the event loop: a small pool of worker threads verifies batches of
 * (signature, message, public key). The main thread keeps parsing requests while a worker
 * verifies; with zero threads verification runs inline. Same node:crypto verify either way.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { hasSmallOrderR, isWeakEd25519Key, type SignatureSuite } from '@backchannel/protocol';

export interface Verifier {
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean>;
  close(): Promise<void>;
}

export function inlineVerifier(suite: SignatureSuite): Verifier {
  return {
    verify: async (s, m, pk) => s.length === 64 && pk.length === 32 && suite.verify(s, m, pk),
    close: async () => {},
  };
}

/** Where sodium-native's loader lives, for the workers to require (undefined: OpenSSL). */
const SODIUM_PATH = (() => {
  try {
    return createRequire(import.meta.url).resolve('sodium-native');
  } catch {
    return undefined;
  }
})();

// Plain JavaScript (eval'd): the worker needs no TypeScript loader. It verifies with libsodium
// when the main thread found it (as nodeEd25519 does), else with node:crypto.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
let sodium = null;
try {
  if (workerData && workerData.sodium) sodium = require(workerData.sodium);
} catch {}
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(pk) {
  const k = Buffer.from(pk.buffer, pk.byteOffset, pk.byteLength).toString('base64');
  let ko = keys.get(k);
  if (ko === undefined) {
    ko = createPublicKey({ key: Buffer.concat([SPKI, pk]), format: 'der', type: 'spki' });
    if (keys.size > 10000) keys.clear();
    keys.set(k, ko);
  }
  return ko;
}
// A batch is one transferred buffer: n × [u32 message length, 64-byte sig, 32-byte key, message].
parentPort.on('message', ({ id, n, buf }) => {
  const bytes = new Uint8Array(buf);
  const view = new DataView(buf);
  const out = new Uint8Array(n);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const len = view.getUint32(off);
    const sig = bytes.subarray(off + 4, off + 68);
    const pk = bytes.subarray(off + 68, off + 100);
    const msg = bytes.subarray(off + 100, off + 100 + len);
    off += 100 + len;
    try {
      out[i] = (sodium ? sodium.crypto_sign_verify_detached(sig, msg, pk) : verify(null, msg, keyOf(pk), sig)) ? 1 : 0;
    } catch {
      out[i] = 0;
    }
  }
  parentPort.postMessage({ id, out }, [out.buffer]);
});
`;

/**
 * Signatures per message to a worker. A sender's whole window (W1: 64) arriving at once is then
 * verified in two halves: the appender builds and commits the first while the worker verifies
 * the second, instead of every stage waiting for all 64 (W1-relay +12–50 %, docs/PERFORMANCE.md).
 */
const DEFAULT_BATCH = 32;

interface Job {
  readonly sig: Uint8Array;
  readonly msg: Uint8Array;
  readonly pk: Uint8Array;
  readonly resolve: (ok: boolean) => void;
  readonly reject: (e: unknown) => void;
}

interface Lane {
  worker: Worker;
  inFlight: Map<number, Job[]>;
  load: number;
}

export class VerifyPool implements Verifier {
  readonly #lanes: Lane[] = [];
  readonly #maxBatch: number;
  #queue: Job[] = [];
  #scheduled = false;
  #nextId = 1;
  #closed = false;

  constructor(threads: number, opts: { maxBatch?: number } = {}) {
    this.#maxBatch = opts.maxBatch ?? DEFAULT_BATCH;
    for (let i = 0; i < threads; i++) this.#lanes.push(this.#spawn());
  }

  #spawn(): Lane {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sodium: SODIUM_PATH } });
    worker.unref();
    const lane: Lane = { worker, inFlight: new Map(), load: 0 };
    worker.on('message', ({ id, out }: { id: number; out: Uint8Array }) => {
      const jobs = lane.inFlight.get(id);
      if (jobs === undefined) return;
      lane.inFlight.delete(id);
      lane.load -= jobs.length;
      jobs.forEach((j, i) => {
        j.resolve(out[i] === 1);
      });
      // What queued while this lane was busy goes out now, as one batch.
      if (this.#queue.length > 0) this.#flush();
    });
    const fail = (e: unknown) => {
      for (const jobs of lane.inFlight.values()) for (const j of jobs) j.reject(e);
      lane.inFlight.clear();
      lane.load = 0;
      if (!this.#closed) {
        const idx = this.#lanes.indexOf(lane);
        if (idx >= 0) this.#lanes[idx] = this.#spawn();
        if (this.#queue.length > 0) this.#flush();
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`verify worker exited (${code})`));
    });
    return lane;
  }

  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
    if (this.#closed) return Promise.reject(new Error('verify pool is closed'));
    if (
      signature.length !== 64 ||
      publicKey.length !== 32 ||
      isWeakEd25519Key(publicKey) ||
      hasSmallOrderR(signature)
    )
      return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({ sig: signature, msg: message, pk: publicKey, resolve, reject });
      if (this.#queue.length >= this.#maxBatch) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /**
   * Posts queued jobs to idle lanes only: while every lane is verifying, jobs accumulate and
   * go out as one batch when a lane finishes (one message per batch instead of one per job).
   */
  #flush(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    while (this.#queue.length > 0) {
      let lane: Lane | undefined;
      for (const l of this.#lanes)
        if (l.inFlight.size === 0 && (lane === undefined || l.load < lane.load)) lane = l;
      if (lane === undefined) return;
      const batch = this.#queue.splice(0, this.#maxBatch);
      const id = this.#nextId++;
      lane.inFlight.set(id, batch);
      lane.load += batch.length;
      // Pack the batch into one buffer and transfer it: cloning views would copy whole backing buffers.
      let size = 0;
      for (const j of batch) size += 100 + j.msg.length;
      const buf = new ArrayBuffer(size);
      const bytes = new Uint8Array(buf);
      const view = new DataView(buf);
      let off = 0;
      for (const j of batch) {
        view.setUint32(off, j.msg.length);
        bytes.set(j.sig, off + 4);
        bytes.set(j.pk, off + 68);
        bytes.set(j.msg, off + 100);
        off += 100 + j.msg.length;
      }
      lane.worker.postMessage({ id, n: batch.length, buf }, [buf]);
    }
  }

  /** Stops the workers; jobs still queued or in flight fail (nothing waits forever). */
  async close(): Promise<void> {
    this.#closed = true;
    const closed = new Error('verify pool is closed');
    for (const j of this.#queue.splice(0)) j.reject(closed);
    for (const l of this.#lanes) {
      for (const jobs of l.inFlight.values()) for (const j of jobs) j.reject(closed);
      l.inFlight.clear();
    }
    await Promise.all(this.#lanes.map((l) => l.worker.terminate()));
  }
}
