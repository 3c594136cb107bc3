/**
 * Node backends for sync: Ed25519 verification of whole pages on worker threads (the main thread
 * decodes and stores one page while a worker verifies the next), and RFC 9162 leaf hashes on
 * node:crypto. Same OpenSSL verify as ed25519Node, same SHA-256 bytes as the protocol's leafHash.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { BatchVerifier, SignatureCheck } from './context.ts';

/** RFC 9162 §2.1.1: SHA-256(0x00 || entry), the protocol's leafHash on node:crypto. */
export function leafHashNode(entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(Uint8Array.of(0)).update(entry).digest());
}

// Plain JavaScript (eval'd): the worker needs no TypeScript loader. A batch arrives as one
// transferred buffer: a header of n u32 message ends, then n 64-byte signatures, n 32-byte keys,
// and the messages back to back; the answer is one byte per check (1 = valid).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
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
      out[i] = verify(null, bytes.subarray(msgs + start, msgs + ends[i]), keyOf(pk), sig) ? 1 : 0;
    } catch {
      out[i] = 0;
    }
  }
  parentPort.postMessage({ id, out }, [out.buffer]);
});
`;

interface Pending {
  readonly resolve: (out: Uint8Array) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Verifies batches of signatures on `threads` worker threads (default 1: on a 2-core machine the
 * main thread keeps the other). Workers are started on first use and do not keep the process
 * alive while idle.
 */
export class SignatureWorkers implements BatchVerifier {
  readonly #threads: number;
  readonly #workers: (Worker | undefined)[];
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #closed = false;

  constructor(threads = 1) {
    this.#threads = Math.max(1, threads);
    this.#workers = new Array<Worker | undefined>(this.#threads).fill(undefined);
  }

  async verifyAll(checks: readonly SignatureCheck[]): Promise<Uint8Array> {
    if (this.#closed) throw new Error('signature workers are closed');
    const out = new Uint8Array(checks.length);
    const per = Math.ceil(checks.length / this.#threads);
    const parts: Promise<void>[] = [];
    for (let t = 0; t * per < checks.length; t++) {
      const from = t * per;
      const part = checks.slice(from, from + per);
      parts.push(this.#send(t, part).then((r) => out.set(r, from)));
    }
    await Promise.all(parts);
    return out;
  }

  #send(lane: number, checks: readonly SignatureCheck[]): Promise<Uint8Array> {
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
      // A key or signature of the wrong length is left as zeros and answered invalid below.
      if (c.signature.length === 64 && c.publicKey.length === 32) {
        bytes.set(c.signature, sigs + 64 * i);
        bytes.set(c.publicKey, pks + 32 * i);
      }
      bytes.set(c.message, pks + 32 * n + end);
      end += c.message.length;
      ends[i] = end;
    });
    const worker = this.#worker(lane);
    const id = this.#next++;
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.#pending.size === 0) for (const w of this.#workers) w?.ref();
      this.#pending.set(id, {
        resolve: (r) => {
          // A check with a malformed key or signature is invalid whatever the worker answered.
          checks.forEach((c, i) => {
            if (c.signature.length !== 64 || c.publicKey.length !== 32) r[i] = 0;
          });
          resolve(r);
        },
        reject,
      });
      worker.postMessage({ id, n, buf }, [buf]);
    });
  }

  #worker(lane: number): Worker {
    const existing = this.#workers[lane];
    if (existing !== undefined) return existing;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    if (this.#pending.size === 0) w.unref();
    w.on('message', ({ id, out }: { id: number; out: Uint8Array }) =>
      this.#settle(id, (p) => p.resolve(out)),
    );
    const fail = (e: unknown) => {
      this.#workers[lane] = undefined;
      // Every batch in flight fails (a lane's batches cannot be told apart here): sync retries.
      for (const id of [...this.#pending.keys()]) this.#settle(id, (p) => p.reject(e));
    };
    w.on('error', fail);
    w.on('exit', (code) => {
      if (!this.#closed && this.#workers[lane] === w) fail(new Error(`signature worker exited (${code})`));
    });
    this.#workers[lane] = w;
    return w;
  }

  #settle(id: number, f: (p: Pending) => void): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    if (this.#pending.size === 0) for (const w of this.#workers) w?.unref();
    f(p);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#workers.map((w) => w?.terminate()));
    this.#workers.fill(undefined);
  }
}
