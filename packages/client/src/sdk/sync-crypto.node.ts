/**
 * Node backends for sync: Ed25519 verification of whole pages on worker threads (the main thread
 * decodes and stores one page while a worker verifies the next), and RFC 9162 leaf hashes on
 * node:crypto. Workers verify as ed25519Node does (libsodium when it loads, else OpenSSL; a
 * small-order key is refused either way); same SHA-256 bytes as the protocol's leafHash.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { hasSmallOrderR, isWeakEd25519Key, type SignatureSuite } from '@backchannel/protocol';
import type { BatchVerifier, SignatureCheck } from './context.ts';

/** RFC 9162 §2.1.1: SHA-256(0x00 || entry), the protocol's leafHash on node:crypto. */
export function leafHashNode(entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(Uint8Array.of(0)).update(entry).digest());
}

// Plain JavaScript (eval'd): the worker needs no TypeScript loader. A batch arrives as one
// transferred buffer: a header of n u32 message ends, then n 64-byte signatures, n 32-byte keys,
// and the messages back to back; the answer is one byte per check (1 = valid).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
let sodium = null;
try {
  if (workerData && workerData.sodium) sodium = require(workerData.sodium);
} catch {}
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(raw) {
  const id = Buffer.from(raw).toString('base64');
  let k = keys.get(id);
  if (k === undefined) {
    k = createPublicKey({ key: Buffer.concat([SPKI, raw]), format: 'der', type: 'spki' });
    if (keys.size >= 10000) keys.delete(keys.keys().next().value);
    keys.set(id, k);
  }
  return k;
}
parentPort.on('message', ({ id, n, buf }) => {
  const ends = new Uint32Array(buf, 0, n);
  const bytes = new Uint8Array(buf);
  const sigs = 4 * n, pks = sigs + 64 * n, msgs = pks + 32 * n;
  const out = new Uint8Array(n);
  for (let i = 0, start = 0; i < n; start = ends[i], i++) {
    try {
      const pk = bytes.subarray(pks + 32 * i, pks + 32 * i + 32);
      const sig = bytes.subarray(sigs + 64 * i, sigs + 64 * i + 64);
      const msg = bytes.subarray(msgs + start, msgs + ends[i]);
      out[i] = (sodium ? sodium.crypto_sign_verify_detached(sig, msg, pk) : verify(null, msg, keyOf(pk), sig)) ? 1 : 0;
    } catch {
      out[i] = 0;
    }
  }
  parentPort.postMessage({ id, out }, [out.buffer]);
});
`;

/** A slice of one verifyAll call, verified by a worker or, while the main thread waits, inline. */
interface Chunk {
  readonly checks: readonly SignatureCheck[];
  readonly settle: (out: Uint8Array) => void;
  readonly fail: (e: unknown) => void;
}

interface Lane {
  worker: Worker | undefined;
  readonly inFlight: Map<number, Chunk>;
}

/** Checks per message to a worker (~3 ms of work) and messages a worker holds at once. */
const CHUNK = 32;
const DEPTH = 2;

/** Where sodium-native's loader lives, for the workers to require (undefined: OpenSSL). */
const SODIUM_PATH = (() => {
  try {
    return createRequire(import.meta.url).resolve('sodium-native');
  } catch {
    return undefined;
  }
})();

const wellFormed = (c: SignatureCheck) =>
  c.signature.length === 64 &&
  c.publicKey.length === 32 &&
  !isWeakEd25519Key(c.publicKey) &&
  !hasSmallOrderR(c.signature);

/**
 * Verifies batches of signatures on `threads` worker threads (default 1: on a 2-core machine the
 * main thread keeps the other). With `inline`, the calling thread takes queued chunks itself
 * whenever its event loop comes round with nothing else to do (waiting on the workers, the
 * relay), so no core idles while signatures wait. Workers start on first use and do not keep
 * the process alive while idle.
 */
export class SignatureWorkers implements BatchVerifier {
  readonly #lanes: Lane[];
  readonly #inline: SignatureSuite | undefined;
  readonly #queue: Chunk[] = [];
  #next = 0;
  #helping = false;
  #closed = false;

  /** `inline` must be the device's own suite (it answers as the workers' node:crypto does). */
  constructor(opts: { threads?: number; inline?: SignatureSuite } = {}) {
    this.#lanes = Array.from({ length: Math.max(1, opts.threads ?? 1) }, () => ({
      worker: undefined,
      inFlight: new Map(),
    }));
    this.#inline = opts.inline;
  }

  async verifyAll(checks: readonly SignatureCheck[]): Promise<Uint8Array> {
    if (this.#closed) throw new Error('signature workers are closed');
    const out = new Uint8Array(checks.length);
    const parts: Promise<void>[] = [];
    for (let from = 0; from < checks.length; from += CHUNK) {
      const part = checks.slice(from, from + CHUNK);
      parts.push(
        new Promise<void>((resolve, reject) => {
          this.#queue.push({
            checks: part,
            settle: (r) => {
              // A check with a malformed key or signature is invalid whatever the worker answered.
              part.forEach((c, i) => {
                out[from + i] = wellFormed(c) && r[i] === 1 ? 1 : 0;
              });
              resolve();
            },
            fail: reject,
          });
        }),
      );
    }
    this.#pump();
    await Promise.all(parts);
    return out;
  }

  #pump(): void {
    for (const lane of this.#lanes) {
      while (lane.inFlight.size < DEPTH && this.#queue.length > 0)
        this.#send(lane, this.#queue.shift() as Chunk);
    }
    // A worker holds the process open only while it has work (the caller awaits its answer).
    for (const lane of this.#lanes) {
      if (lane.inFlight.size > 0) lane.worker?.ref();
      else lane.worker?.unref();
    }
    if (this.#inline !== undefined && this.#queue.length > 0 && !this.#helping) {
      this.#helping = true;
      setImmediate(() => this.#help());
    }
  }

  /** One queued chunk on this thread (runs from setImmediate: only once pending I/O is handled). */
  #help(): void {
    this.#helping = false;
    const chunk = this.#queue.shift();
    const suite = this.#inline;
    if (chunk === undefined || suite === undefined) return;
    const out = new Uint8Array(chunk.checks.length);
    chunk.checks.forEach((c, i) => {
      out[i] = wellFormed(c) && suite.verify(c.signature, c.message, c.publicKey) ? 1 : 0;
    });
    chunk.settle(out);
    this.#pump();
  }

  #send(lane: Lane, chunk: Chunk): void {
    const { checks } = chunk;
    const n = checks.length;
    let size = 100 * n;
    for (const c of checks) size += c.message.length;
    const buf = new ArrayBuffer(size);
    const ends = new Uint32Array(buf, 0, n);
    const bytes = new Uint8Array(buf);
    const sigs = 4 * n;
    const pks = sigs + 64 * n;
    let end = 0;
    checks.forEach((c, i) => {
      // A key or signature of the wrong length is left as zeros (and answered invalid).
      if (wellFormed(c)) {
        bytes.set(c.signature, sigs + 64 * i);
        bytes.set(c.publicKey, pks + 32 * i);
      }
      bytes.set(c.message, pks + 32 * n + end);
      end += c.message.length;
      ends[i] = end;
    });
    const id = this.#next++;
    lane.inFlight.set(id, chunk);
    this.#worker(lane).postMessage({ id, n, buf }, [buf]);
  }

  #worker(lane: Lane): Worker {
    if (lane.worker !== undefined) return lane.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sodium: SODIUM_PATH } });
    w.on('message', ({ id, out }: { id: number; out: Uint8Array }) => {
      const chunk = lane.inFlight.get(id);
      if (chunk === undefined) return;
      lane.inFlight.delete(id);
      chunk.settle(out);
      this.#pump();
    });
    const fail = (e: unknown) => {
      if (lane.worker !== w) return;
      lane.worker = undefined;
      const lost = [...lane.inFlight.values()];
      lane.inFlight.clear();
      for (const chunk of lost) chunk.fail(e);
      if (!this.#closed) this.#pump();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`signature worker exited (${code})`)));
    lane.worker = w;
    return w;
  }

  /** Stops the workers; batches still waiting fail (a syncing channel then checks one by one). */
  async close(): Promise<void> {
    this.#closed = true;
    const workers = this.#lanes.map((l) => l.worker);
    const closed = new Error('signature workers are closed');
    for (const chunk of this.#queue.splice(0)) chunk.fail(closed);
    for (const l of this.#lanes) {
      l.worker = undefined;
      for (const chunk of l.inFlight.values()) chunk.fail(closed);
      l.inFlight.clear();
    }
    await Promise.all(workers.map((w) => w?.terminate()));
  }
}
