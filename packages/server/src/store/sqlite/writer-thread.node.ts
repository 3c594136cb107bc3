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
const stmts = new Map();
for (const [name, sql] of Object.entries(workerData.sql)) {
  const s = db.prepare(sql);
  stmts.set(name, workerData.plucked.includes(name) ? s.pluck() : s);
}
// A failed statement ends its transaction (rolled back at once) and moves to a new generation:
// every message of an older generation is refused unrun. The transactions queued behind the
// failed one were built on its writes (the relay pipelines its batches), so they must fail too.
let gen = 0;
function one(op) {
  const kind = op[0];
  if (kind === 'exec') {
    const sql = op[1];
    if (sql === 'ROLLBACK') {
      if (db.inTransaction) db.exec('ROLLBACK');
      return null;
    }
    db.exec(sql);
    return null;
  }
  if (kind === 'pragma') return db.pragma(op[1], { simple: true });
  const s = stmts.get(op[1]);
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
  for (const op of m.ops) {
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
  parentPort.postMessage({ id: m.id, results });
});
`;

type Op =
  | readonly ['run' | 'result' | 'get' | 'all', StatementName, unknown[]]
  | readonly ['exec', string, boolean]
  | readonly ['pragma', string];

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
  readonly #sent = new Map<number, Sent>();
  #ops: Op[] = [];
  #waiters: Waiter[] = [];
  #flushScheduled = false;
  #nextId = 1;
  #dead: Error | undefined;
  /** The writer's generation as last heard, and the one the open transaction began in. */
  #gen = 0;
  #txGen = 0;

  constructor(path: string) {
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver: DRIVER_PATH, path, sql: SQL, plucked: PLUCKED },
    });
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
      this.#dead ??= e;
      for (const s of this.#sent.values()) for (const w of s.waiters) w.reject(e);
      this.#sent.clear();
      for (const w of this.#waiters) w.reject(e);
      this.#waiters = [];
      this.#ops = [];
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`the store's writer thread exited (${code})`)));
  }

  run(name: StatementName, ...params: unknown[]): void {
    this.#ops.push(['run', name, params.map(own)]);
  }

  result(name: StatementName, ...params: unknown[]): Promise<RunResult> {
    return this.#ask(['result', name, params.map(own)]) as Promise<RunResult>;
  }

  get(name: StatementName, ...params: unknown[]): Promise<unknown> {
    return this.#ask(['get', name, params.map(own)]);
  }

  all(name: StatementName, ...params: unknown[]): Promise<unknown[]> {
    return this.#ask(['all', name, params.map(own)]) as Promise<unknown[]>;
  }

  /**
   * Queues BEGIN (sent with the transaction's first call that waits). A transaction belongs to
   * the generation it began in: if any earlier one fails before it runs, it is refused
   * (BC_EARLIER_FAILED) instead of committing on top of what was undone.
   */
  begin(): void {
    this.#txGen = this.#gen;
    this.#ops.push(['exec', 'BEGIN IMMEDIATE', false]);
  }

  /** Sends COMMIT or ROLLBACK; resolves once the thread has run it. */
  end(sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    return this.#ask(['exec', sql, true]) as Promise<void>;
  }

  /** Reads a pragma of the writer connection (outside any transaction). */
  pragma(name: string): Promise<unknown> {
    this.#txGen = this.#gen;
    return this.#ask(['pragma', name]);
  }

  #ask(op: Op): Promise<unknown> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      this.#ops.push(op);
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
    this.#worker.postMessage({ id, gen: this.#txGen, ops: this.#ops });
    this.#ops = [];
    this.#waiters = [];
  }

  async close(): Promise<void> {
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

/** A view into a larger buffer is copied, so only its own bytes cross to the thread. */
function own(p: unknown): unknown {
  return p instanceof Uint8Array && (p.byteOffset !== 0 || p.byteLength !== p.buffer.byteLength)
    ? p.slice()
    : p;
}
