/**
 * The embedded store's writer connection, on a worker thread of its own. A commit with
 * synchronous=FULL waits for the disk's fsync; on the relay's event loop that wait stopped every
 * request, subscriber and answer for as long as it lasted. Here the event loop keeps working
 * while the writer thread commits, and a transaction still resolves only once its COMMIT has
 * returned, so durability is what it was.
 *
 * Statements run in order, one transaction at a time (the store's write lock). Calls that need no
 * answer are queued and go with the next call that does, so a batch of appends crosses to the
 * thread in a couple of messages: its idempotency lookups, then its writes with the COMMIT.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { type Executor, PLUCKED, type RunResult, SQL, type StatementName } from './statements.ts';

const DRIVER_PATH = createRequire(import.meta.url).resolve('better-sqlite3');

// Plain JavaScript (eval'd): the thread needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.pragma('foreign_keys = ON');
db.pragma('busy_timeout = 5000');
// WAL checkpoints run on a thread of their own (CHECKPOINT_SOURCE), not inside this thread's
// commits; this is only a backstop should that thread fall behind (~40 MB of WAL).
db.pragma('wal_autocheckpoint = 10000');
// When the WAL starts over after a checkpoint, a file grown past 8 MB is cut back to it.
db.pragma('journal_size_limit = 8388608');
const stmts = workerData.names.map((name) => {
  const s = db.prepare(workerData.sql[name]);
  return workerData.plucked.includes(name) ? s.pluck() : s;
});
// Ops arrive packed in one transferred buffer (see OpBuffer).
const utf8 = new TextDecoder();
function decode(buf, length) {
  const view = new DataView(buf);
  const bytes = new Uint8Array(buf);
  let off = 0;
  const str = () => {
    const n = view.getUint32(off);
    off += 4;
    const v = utf8.decode(bytes.subarray(off, off + n));
    off += n;
    return v;
  };
  const value = () => {
    const tag = bytes[off++];
    if (tag === 0) return null;
    if (tag === 1) { const v = view.getFloat64(off); off += 8; return v; }
    if (tag === 2) return str();
    if (tag === 3) {
      const n = view.getUint32(off);
      off += 4;
      const v = Buffer.from(buf, off, n);
      off += n;
      return v;
    }
    const o = {};
    const count = bytes[off++];
    for (let i = 0; i < count; i++) { const k = str(); o[k] = value(); }
    return o;
  };
  const ops = [];
  while (off < length) {
    const kind = KINDS[bytes[off++]];
    if (kind === 'exec' || kind === 'execWait' || kind === 'pragma') {
      ops.push([kind === 'execWait' ? 'exec' : kind, str(), kind === 'execWait']);
      continue;
    }
    const stmt = bytes[off++];
    const n = bytes[off++];
    const params = [];
    for (let i = 0; i < n; i++) params.push(value());
    ops.push([kind, stmt, params]);
  }
  return ops;
}
const KINDS = ['run', 'result', 'get', 'all', 'exec', 'execWait', 'pragma'];
// A failed statement ends its transaction (rolled back at once) and moves to a new generation:
// every message of an older generation is refused unrun. The transactions queued behind the
// failed one were built on its writes (the relay pipelines its batches), so they must fail too.
let gen = 0;
function one(op) {
  const kind = op[0];
  if (kind === 'exec') {
    const sql = op[1];
    if (sql === 'ROLLBACK') {
      // Undone on purpose, but a transaction queued behind may have been built on it: it fails too.
      if (db.inTransaction) {
        db.exec('ROLLBACK');
        gen++;
      }
      return null;
    }
    db.exec(sql);
    return null;
  }
  if (kind === 'pragma') return db.pragma(op[1], { simple: true });
  const s = stmts[op[1]];
  const params = op[2];
  if (kind === 'run') { s.run(...params); return undefined; }
  if (kind === 'result') {
    const r = s.run(...params);
    return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
  }
  if (kind === 'get') return s.get(...params);
  return s.all(...params);
}
parentPort.on('message', (m) => {
  if (m.close) {
    db.close();
    parentPort.postMessage({ id: m.id, results: [] });
    return;
  }
  if (m.gen < gen) {
    parentPort.postMessage({ id: m.id, gen, error: { message: 'an earlier transaction failed; this one was not run', code: 'BC_EARLIER_FAILED' } });
    return;
  }
  const results = [];
  for (const op of decode(m.buf, m.length)) {
    let r;
    try {
      r = one(op);
    } catch (e) {
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } catch {}
      gen++;
      parentPort.postMessage({ id: m.id, gen, error: { message: String(e && e.message), code: e && e.code } });
      return;
    }
    // Answers only for the calls that wait for one (run and a queued BEGIN do not).
    if (op[0] !== 'run' && !(op[0] === 'exec' && op[2] !== true)) results.push(r);
  }
  parentPort.postMessage({ id: m.id, gen, results });
});
`;

// The checkpointer: copies the WAL into the database every interval (PASSIVE: it never waits for
// the writer or readers, and the writer goes on appending meanwhile). synchronous=FULL on this
// connection too: the database file is fsynced before the WAL may be reused.
const CHECKPOINT_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('synchronous = FULL');
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {}
}, workerData.everyMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.postMessage('closed');
});
`;

/** How often the checkpointer copies the WAL into the database file. */
const CHECKPOINT_EVERY_MS = 500;

const NAMES = Object.keys(SQL) as StatementName[];
const INDEX = new Map(NAMES.map((n, i) => [n, i] as const));
const KIND = { run: 0, result: 1, get: 2, all: 3, exec: 4, execWait: 5, pragma: 6 } as const;

/**
 * Ops packed into one buffer that is transferred, not cloned: structured clone of a batch's
 * nested arrays and byte arrays cost more than the statements themselves. Per op: kind (u8), then
 * statement index (u8), parameter count (u8) and parameters, or for exec/pragma a string.
 * Parameters: 0 null, 1 float64, 2 string (u32 length + UTF-8), 3 bytes (u32 length + bytes),
 * 4 named parameters (u8 count, then name string and value each).
 */
class OpBuffer {
  #buf = new ArrayBuffer(64 * 1024);
  #bytes = new Uint8Array(this.#buf);
  #view = new DataView(this.#buf);
  #off = 0;
  static readonly #utf8 = new TextEncoder();

  get length(): number {
    return this.#off;
  }

  #room(n: number): void {
    if (this.#off + n <= this.#buf.byteLength) return;
    let size = this.#buf.byteLength * 2;
    while (size < this.#off + n) size *= 2;
    const next = new ArrayBuffer(size);
    new Uint8Array(next).set(this.#bytes.subarray(0, this.#off));
    this.#buf = next;
    this.#bytes = new Uint8Array(next);
    this.#view = new DataView(next);
  }

  #u8(v: number): void {
    this.#room(1);
    this.#bytes[this.#off++] = v;
  }

  #str(v: string): void {
    this.#room(4 + v.length * 3);
    const { written } = OpBuffer.#utf8.encodeInto(v, this.#bytes.subarray(this.#off + 4));
    this.#view.setUint32(this.#off, written);
    this.#off += 4 + written;
  }

  #value(v: unknown): void {
    if (v === null || v === undefined) this.#u8(0);
    else if (typeof v === 'number') {
      this.#u8(1);
      this.#room(8);
      this.#view.setFloat64(this.#off, v);
      this.#off += 8;
    } else if (typeof v === 'string') {
      this.#u8(2);
      this.#str(v);
    } else if (v instanceof Uint8Array) {
      this.#u8(3);
      this.#room(4 + v.length);
      this.#view.setUint32(this.#off, v.length);
      this.#bytes.set(v, this.#off + 4);
      this.#off += 4 + v.length;
    } else if (typeof v === 'object') {
      const entries = Object.entries(v);
      this.#u8(4);
      this.#u8(entries.length);
      for (const [k, x] of entries) {
        this.#str(k);
        this.#value(x);
      }
    } else throw new TypeError(`cannot bind a ${typeof v}`);
  }

  statement(kind: 'run' | 'result' | 'get' | 'all', name: StatementName, params: readonly unknown[]): void {
    this.#u8(KIND[kind]);
    this.#u8(INDEX.get(name) as number);
    this.#u8(params.length);
    for (const p of params) this.#value(p);
  }

  text(kind: 'exec' | 'execWait' | 'pragma', sql: string): void {
    this.#u8(KIND[kind]);
    this.#str(sql);
  }

  /** The packed ops so far (the buffer is handed over; this one starts afresh). */
  take(): { buf: ArrayBuffer; length: number } {
    const out = { buf: this.#buf, length: this.#off };
    this.#buf = new ArrayBuffer(64 * 1024);
    this.#bytes = new Uint8Array(this.#buf);
    this.#view = new DataView(this.#buf);
    this.#off = 0;
    return out;
  }
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

interface Reply {
  readonly id: number;
  readonly gen?: number;
  readonly results?: unknown[];
  readonly error?: { message: string; code?: string };
}

interface Sent {
  readonly waiters: Waiter[];
}

/** An error the writer thread reported (SQLite's code kept, e.g. SQLITE_CONSTRAINT_UNIQUE). */
export class WriterError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'WriterError';
    this.code = code;
  }
}

export class WriterThread implements Executor {
  readonly #worker: Worker;
  readonly #checkpointer: Worker;
  readonly #sent = new Map<number, Sent>();
  #ops = new OpBuffer();
  #waiters: Waiter[] = [];
  #flushScheduled = false;
  #nextId = 1;
  #dead: Error | undefined;
  /** The writer's generation as last heard, and the one the open transaction began in. */
  #gen = 0;
  #txGen = 0;
  #closing = false;
  #checkpointerExited = false;
  /** Set when the writer thread died on its own (not closed): the store can no longer write. */
  #onFatal: ((e: Error) => void) | undefined;

  constructor(path: string, onFatal?: (e: Error) => void) {
    this.#onFatal = onFatal;
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Short-lived op buffers and rows: a small young generation keeps the thread's memory low.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
      workerData: { driver: DRIVER_PATH, path, sql: SQL, names: NAMES, plucked: PLUCKED },
    });
    this.#checkpointer = new Worker(CHECKPOINT_SOURCE, {
      eval: true,
      // A few pragmas a second: the smallest heap V8 allows is plenty.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
      workerData: { driver: DRIVER_PATH, path, everyMs: CHECKPOINT_EVERY_MS },
    });
    // A checkpointer that fails leaves the writer's own (backstop) checkpoints; nothing is lost.
    this.#checkpointer.on('error', () => {});
    this.#checkpointer.on('exit', () => {
      this.#checkpointerExited = true;
    });
    this.#checkpointer.unref();
    this.#worker.on('message', (m: Reply) => {
      const sent = this.#sent.get(m.id);
      if (sent === undefined) return;
      this.#sent.delete(m.id);
      if (m.gen !== undefined && m.gen > this.#gen) this.#gen = m.gen;
      if (m.error !== undefined) {
        const e = new WriterError(m.error.message, m.error.code);
        for (const w of sent.waiters) w.reject(e);
        return;
      }
      const results = m.results ?? [];
      sent.waiters.forEach((w, i) => {
        w.resolve(results[i]);
      });
    });
    const fail = (e: Error) => {
      if (this.#dead === undefined && !this.#closing) this.#onFatal?.(e);
      this.#dead ??= e;
      for (const s of this.#sent.values()) for (const w of s.waiters) w.reject(e);
      this.#sent.clear();
      for (const w of this.#waiters) w.reject(e);
      this.#waiters = [];
      this.#ops.take();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`the store's writer thread exited (${code})`)));
  }

  run(name: StatementName, ...params: unknown[]): void {
    // Once the thread is gone nothing is queued: the transaction's next awaited call rejects.
    if (this.#dead === undefined) this.#ops.statement('run', name, params);
  }

  result(name: StatementName, ...params: unknown[]): Promise<RunResult> {
    return this.#ask(() => this.#ops.statement('result', name, params)) as Promise<RunResult>;
  }

  get(name: StatementName, ...params: unknown[]): Promise<unknown> {
    return this.#ask(() => this.#ops.statement('get', name, params));
  }

  all(name: StatementName, ...params: unknown[]): Promise<unknown[]> {
    return this.#ask(() => this.#ops.statement('all', name, params)) as Promise<unknown[]>;
  }

  /**
   * Queues BEGIN (sent with the transaction's first call that waits). A transaction belongs to
   * the generation it began in: if any earlier one fails before it runs, it is refused
   * (BC_EARLIER_FAILED) instead of committing on top of what was undone.
   */
  begin(): void {
    this.#txGen = this.#gen;
    if (this.#dead === undefined) this.#ops.text('exec', 'BEGIN IMMEDIATE');
  }

  /** Sends COMMIT or ROLLBACK; resolves once the thread has run it. */
  end(sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    return this.#ask(() => this.#ops.text('execWait', sql)) as Promise<void>;
  }

  /**
   * Reads a pragma of the writer connection. Only under the store's write lock, between
   * transactions: it takes the current generation, which must not carry a half-built transaction.
   */
  pragma(name: string): Promise<unknown> {
    this.#txGen = this.#gen;
    return this.#ask(() => this.#ops.text('pragma', name));
  }

  #ask(write: () => void): Promise<unknown> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      write();
      this.#waiters.push({ resolve, reject });
      // Every call made in this turn goes in one message.
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#waiters.length === 0) return;
    const id = this.#nextId++;
    this.#sent.set(id, { waiters: this.#waiters });
    const { buf, length } = this.#ops.take();
    this.#worker.postMessage({ id, gen: this.#txGen, buf, length }, [buf]);
    this.#waiters = [];
  }

  async close(): Promise<void> {
    this.#closing = true;
    // The checkpointer first: the writer's connection, closed last, checkpoints what remains.
    // (One that already exited, or does not answer within 2 s, is just terminated.)
    if (!this.#checkpointerExited) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 2_000);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#checkpointer.once('message', done);
        this.#checkpointer.once('exit', done);
        this.#checkpointer.postMessage('close');
      });
    }
    this.#checkpointer.removeAllListeners('message');
    await this.#checkpointer.terminate();
    if (this.#dead === undefined) {
      const id = this.#nextId++;
      await new Promise<unknown>((resolve, reject) => {
        this.#sent.set(id, { waiters: [{ resolve, reject }] });
        this.#worker.postMessage({ id, close: true });
      });
      this.#dead = new Error('store is closed');
    }
    await this.#worker.terminate();
  }
}
