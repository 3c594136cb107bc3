/**
 * The local store's writes: a transaction of prepared statements, run either on the store's own
 * connection (inline, synchronously inside the call) or on a writer thread with a connection of
 * its own. A commit with synchronous=FULL waits for the disk's fsync; inline, that wait stops the
 * device's event loop (a sender encrypting its next messages, a receiver folding what arrived).
 * On the thread the event loop goes on, and a write still resolves only once its COMMIT returned.
 *
 * Only sealed values cross to the thread: the store key stays with the store. Writes run in the
 * order they were made, one transaction each; reads stay on the store's connection (WAL: a read
 * after a write resolved sees it).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { ClientError } from './errors.ts';

export const WRITE_SQL = {
  kvPut: 'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  kvDelete: 'DELETE FROM kv WHERE key = ?',
  outboxAdd: 'INSERT OR IGNORE INTO outbox (id, channel, created_at, value) VALUES (?, ?, ?, ?)',
  outboxDelete: 'DELETE FROM outbox WHERE id = ?',
  runAdd: 'INSERT OR IGNORE INTO entry_runs (channel, first, count, value) VALUES (?, ?, ?, ?)',
} as const;
export type WriteStatement = keyof typeof WRITE_SQL;
export type WriteOp = readonly [WriteStatement, readonly (string | number | Uint8Array)[]];
export type Synchronous = 'FULL' | 'NORMAL';

/** Each op's row changes, and the synchronous level the connection committed with (read back). */
export interface WriteResult {
  readonly changes: number[];
  readonly synchronous: Synchronous;
}

/** PRAGMA synchronous as the connection reports it (2 FULL, 1 NORMAL). */
const LEVELS: Record<number, Synchronous> = { 1: 'NORMAL', 2: 'FULL' };

export interface Writes {
  /** Runs the ops in one transaction committed with `sync`. */
  run(ops: readonly WriteOp[], sync: Synchronous): Promise<WriteResult>;
  /**
   * Stops taking writes; those already made still commit. `done` runs once they have and the
   * connection is closed (what was written is then all another process can see).
   */
  close(done?: () => void): void;
}

/** On the store's own connection. */
export function inlineWrites(db: Database.Database): Writes {
  const stmts = new Map<WriteStatement, Database.Statement>();
  for (const name of Object.keys(WRITE_SQL) as WriteStatement[]) stmts.set(name, db.prepare(WRITE_SQL[name]));
  let current: Synchronous = 'FULL';
  db.pragma('synchronous = FULL');
  const tx = db.transaction((ops: readonly WriteOp[]) =>
    ops.map(([name, params]) => (stmts.get(name) as Database.Statement).run(...params).changes),
  );
  return {
    run: async (ops, sync) => {
      try {
        if (sync !== current) {
          db.pragma(`synchronous = ${sync}`);
          current = sync;
        }
        const changes = tx(ops);
        return { changes, synchronous: LEVELS[db.pragma('synchronous', { simple: true }) as number] ?? sync };
      } catch (e) {
        // As on the thread: the transaction was rolled back; the caller gets the store's code.
        throw new ClientError('STORE_FAILED', `a write failed: ${(e as Error).message}`);
      }
    },
    close: (done) => done?.(),
  };
}

const DRIVER_PATH = createRequire(import.meta.url).resolve('better-sqlite3');

// Plain JavaScript (eval'd): the thread needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.pragma('busy_timeout = 5000');
let current = 'FULL';
const stmts = {};
for (const [name, sql] of Object.entries(workerData.sql)) stmts[name] = db.prepare(sql);
const tx = db.transaction((ops) => ops.map(([name, params]) => stmts[name].run(...params).changes));
parentPort.on('message', (m) => {
  if (m.close) {
    db.close();
    Atomics.store(workerData.closed, 0, 1);
    Atomics.notify(workerData.closed, 0);
    parentPort.postMessage({ closed: true });
    return;
  }
  try {
    if (m.sync !== current) {
      db.pragma('synchronous = ' + m.sync);
      current = m.sync;
    }
    const changes = tx(m.ops);
    parentPort.postMessage({ id: m.id, changes, level: db.pragma('synchronous', { simple: true }) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message) });
  }
});
`;

interface Pending {
  readonly resolve: (result: WriteResult) => void;
  readonly reject: (e: unknown) => void;
}

/** On a writer thread with its own connection to the database at `path`. */
export function threadWrites(path: string): Writes {
  // Set by the thread once its connection is closed (close() waits for it).
  const closedFlag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver: DRIVER_PATH, path, sql: WRITE_SQL, closed: closedFlag },
  });
  let exited = false;
  // The thread keeps the process alive only while a write is under way.
  worker.unref();
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let failed: ClientError | undefined;
  let closed = false;
  const fail = (why: string) => {
    failed ??= new ClientError('STORE_FAILED', `the device store cannot write: ${why}`);
    for (const p of pending.values()) p.reject(failed);
    pending.clear();
    worker.unref();
  };
  worker.on(
    'message',
    (m: { id?: number; changes?: number[]; level?: number; error?: string; closed?: boolean }) => {
      if (m.closed === true) {
        void worker.terminate();
        return;
      }
      if (m.id === undefined) return;
      const p = pending.get(m.id);
      if (p === undefined) return;
      pending.delete(m.id);
      if (pending.size === 0) worker.unref();
      if (m.error !== undefined) p.reject(new ClientError('STORE_FAILED', `a write failed: ${m.error}`));
      else p.resolve({ changes: m.changes ?? [], synchronous: LEVELS[m.level ?? 0] ?? 'FULL' });
    },
  );
  worker.on('error', (e) => fail(e.message));
  worker.on('exit', (code) => {
    exited = true;
    if (!closed || pending.size > 0) fail(`its writer thread exited (${code})`);
  });
  return {
    run: (ops, sync) => {
      if (failed !== undefined) return Promise.reject(failed);
      if (closed) return Promise.reject(new ClientError('STORE_FAILED', 'the device store is closed'));
      return new Promise<WriteResult>((resolve, reject) => {
        const id = nextId++;
        if (pending.size === 0) worker.ref();
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, ops, sync });
      });
    },
    close: (done) => {
      if (closed) return;
      closed = true;
      // Queued writes run first (messages are handled in order), then the connection closes.
      worker.ref();
      worker.postMessage({ close: true });
      // Waited for here, so that `done` (the device lock's release) follows the last commit, and
      // a reopen in this same process finds the lock free (a wait on the event loop could not
      // see the thread's answer). Bounded: a thread that died answers nothing.
      if (!exited && failed === undefined) Atomics.wait(closedFlag, 0, 0, 30_000);
      done?.();
    },
  };
}
