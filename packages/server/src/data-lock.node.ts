/**
 * One relay per data folder. Two relays on one SQLite store would each number entries from their
 * own cached head: the second one's batches fail (UNIQUE seq) and its clients see errors. The lock
 * is an exclusive transaction held open on `<data>/relay.lock` for the life of the process: the OS
 * drops it when the process ends, however it ends (`kill -9` included), so no stale lock is left.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from './config.ts';

export interface DataLock {
  release(): void;
}

export function lockDataDir(dir: string): DataLock {
  const file = join(dir, 'relay.lock');
  const db = new Database(file, { timeout: 0 });
  try {
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    if ((e as { code?: unknown }).code !== 'SQLITE_BUSY') throw e;
    throw new ConfigError(
      `the data folder ${dir} is in use by another relay: stop it first, or give this one its own folder (--data)`,
    );
  }
  // Who holds it, for an operator looking at the folder (not read by the lock).
  writeFileSync(`${file}.holder`, `pid ${process.pid}, since ${new Date().toISOString()}\n`);
  return { release: () => db.close() };
}
