/**
 * Backup and restore of an embedded (SQLite) relay's data folder, while it runs.
 *
 * A backup is a folder: `relay.db`, a consistent snapshot of the database taken with
 * `VACUUM INTO` on a read-only connection (one read transaction: the relay keeps writing, the
 * snapshot is the log as of one commit); `checkpoint-key`, the relay's signing key; and
 * `backup.json`, which names each file with its size and SHA-256, and what the snapshot holds.
 * Everything is written 0600 in a 0700 folder that must not exist yet: the backup holds who
 * talks to whom and the key that signs in the relay's name.
 *
 * A restore checks the backup first (digests, SQLite's integrity check), then takes the data
 * folder's relay lock (so no relay runs on it meanwhile) and puts the files in place, each
 * written under a temporary name, fsynced and renamed. It refuses a folder that already holds a
 * database or another key: moving the old one aside is the operator's decision, not ours.
 * PostgreSQL has its own tools (pg_dump, docs/OPERATIONS.md).
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { ConfigError } from './config.ts';
import { lockDataDir } from './data-lock.node.ts';
import { CHECKPOINT_KEY_FILE, loadCheckpointKey } from './relay-key.node.ts';

export const BACKUP_FORMAT = 'backchannel-relay-backup/1';
const DB_FILE = 'relay.db';
const MANIFEST = 'backup.json';

/** Why a backup or a restore did not happen: `code` is one of docs/ERRORS.md's CLI codes. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
  readonly code: 'INVALID_ARGUMENT' | 'BACKUP_INVALID';
  constructor(code: 'INVALID_ARGUMENT' | 'BACKUP_INVALID', message: string) {
    super(message);
    this.code = code;
  }
}

const fileSchema = z.strictObject({
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
const manifestSchema = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  createdAt: z.number().int().nonnegative(),
  channels: z.number().int().nonnegative(),
  entries: z.number().int().nonnegative(),
  files: z.strictObject({ [DB_FILE]: fileSchema, [CHECKPOINT_KEY_FILE]: fileSchema }),
});
export type BackupManifest = z.infer<typeof manifestSchema>;

export interface BackupOptions {
  /** The relay's data folder (it may be running). */
  readonly dataDir: string;
  /** The checkpoint key file, when not `<dataDir>/checkpoint-key`. */
  readonly checkpointKeyFile?: string;
  /** The backup folder to create (must not exist, or be empty). */
  readonly out: string;
  readonly now?: () => number;
}

export function backupRelay(opts: BackupOptions): BackupManifest {
  const dbPath = join(opts.dataDir, DB_FILE);
  if (!existsSync(dbPath))
    throw new BackupError(
      'INVALID_ARGUMENT',
      `${resolve(opts.dataDir)} holds no relay database (${DB_FILE}); give the relay's data folder (--data)`,
    );
  const keyPath = opts.checkpointKeyFile ?? join(opts.dataDir, CHECKPOINT_KEY_FILE);
  if (!existsSync(keyPath))
    throw new BackupError(
      'INVALID_ARGUMENT',
      `no checkpoint key at ${resolve(keyPath)}; give its file with --checkpoint-key`,
    );
  loadCheckpointKey(keyPath); // a file that is not a signer key is refused before anything is written
  makeEmptyFolder(opts.out);
  const createdAt = (opts.now ?? Date.now)();
  try {
    const target = join(opts.out, DB_FILE);
    // The file exists (empty, 0600) before SQLite writes into it, so it is never readable by others.
    closeSync(openSync(target, 'wx', 0o600));
    const src = new Database(dbPath, { readonly: true, fileMustExist: true, timeout: 10_000 });
    try {
      // VACUUM INTO writes only into an empty or absent file; an empty one keeps our mode.
      src.prepare('VACUUM INTO ?').run(target);
    } finally {
      src.close();
    }
    fsyncPath(target);
    const { channels, entries } = countLog(target);
    copyPrivate(keyPath, join(opts.out, CHECKPOINT_KEY_FILE));
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      createdAt,
      channels,
      entries,
      files: {
        [DB_FILE]: describe(target),
        [CHECKPOINT_KEY_FILE]: describe(join(opts.out, CHECKPOINT_KEY_FILE)),
      },
    };
    const text = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    writePrivate(join(opts.out, MANIFEST), (fd) => writeAll(fd, text));
    fsyncPath(opts.out);
    return manifest;
  } catch (e) {
    // Half a backup is no backup: nothing is left that could be taken for one.
    rmSync(opts.out, { recursive: true, force: true });
    throw e;
  }
}

export interface RestoreOptions {
  /** A folder `backupRelay` wrote. */
  readonly from: string;
  /** The data folder to restore into: no relay may run on it, and it may hold no database yet. */
  readonly dataDir: string;
  /** Where the relay reads its checkpoint key, when not `<dataDir>/checkpoint-key`. */
  readonly checkpointKeyFile?: string;
}

/** Checks a backup folder: its manifest, each file's digest, and the database's integrity. */
export function checkBackup(from: string): BackupManifest {
  const manifestPath = join(from, MANIFEST);
  if (!existsSync(manifestPath))
    throw new BackupError('INVALID_ARGUMENT', `${resolve(from)} is not a relay backup (no ${MANIFEST})`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    throw new BackupError('BACKUP_INVALID', `${MANIFEST} in ${resolve(from)} is not JSON`);
  }
  const m = manifestSchema.safeParse(parsed);
  if (!m.success)
    throw new BackupError(
      'BACKUP_INVALID',
      `${MANIFEST} in ${resolve(from)} is not a ${BACKUP_FORMAT} manifest`,
    );
  for (const [name, want] of Object.entries(m.data.files)) {
    const path = join(from, name);
    if (!existsSync(path)) throw new BackupError('BACKUP_INVALID', `the backup lacks ${name}`);
    const got = describe(path);
    if (got.bytes !== want.bytes || got.sha256 !== want.sha256)
      throw new BackupError(
        'BACKUP_INVALID',
        `${name} in the backup is not the file its manifest names (altered or damaged)`,
      );
  }
  const db = new Database(join(from, DB_FILE), { readonly: true, fileMustExist: true });
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok')
      throw new BackupError(
        'BACKUP_INVALID',
        `the backup's database fails SQLite's integrity check: ${String(check)}`,
      );
  } finally {
    db.close();
  }
  return m.data;
}

export function restoreRelay(opts: RestoreOptions): BackupManifest {
  const manifest = checkBackup(opts.from);
  if (!existsSync(opts.dataDir)) mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const dbPath = join(opts.dataDir, DB_FILE);
  const keyPath = opts.checkpointKeyFile ?? join(opts.dataDir, CHECKPOINT_KEY_FILE);
  // While restoring, no relay may start on this folder (and none may be running on it now).
  let lock: ReturnType<typeof lockDataDir>;
  try {
    lock = lockDataDir(opts.dataDir);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new BackupError(
      'INVALID_ARGUMENT',
      `a relay is running on ${resolve(opts.dataDir)}: stop it before restoring into its folder`,
    );
  }
  try {
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`])
      if (existsSync(f))
        throw new BackupError(
          'INVALID_ARGUMENT',
          `${resolve(opts.dataDir)} already holds a relay database (${basename(f)}); move it aside, or restore into a new folder`,
        );
    const backupKey = readFileSync(join(opts.from, CHECKPOINT_KEY_FILE));
    const keyPresent = existsSync(keyPath);
    if (keyPresent && !readFileSync(keyPath).equals(backupKey))
      throw new BackupError(
        'INVALID_ARGUMENT',
        `${resolve(keyPath)} holds another checkpoint key than the backup's; move it aside (devices pinned the backup's key)`,
      );
    // The key first: a database without its key would make the relay create a new one and sign
    // the restored log with a key no device pinned. A database that fails takes the key back out.
    if (!keyPresent) copyPrivate(join(opts.from, CHECKPOINT_KEY_FILE), keyPath);
    try {
      copyPrivate(join(opts.from, DB_FILE), dbPath);
    } catch (e) {
      if (!keyPresent) rmSync(keyPath, { force: true });
      throw e;
    }
    fsyncPath(opts.dataDir);
  } finally {
    lock.release();
  }
  return manifest;
}

/** Creates `dir` (0700), or accepts it empty; anything in it is refused. */
function makeEmptyFolder(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)
      throw new BackupError(
        'INVALID_ARGUMENT',
        `${resolve(dir)} already exists and is not an empty folder; choose a new one`,
      );
    chmodSync(dir, 0o700);
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

function countLog(dbFile: string): { channels: number; entries: number } {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const channels = db.prepare('SELECT count(*) FROM channels').pluck().get() as number;
    const entries = db.prepare('SELECT COALESCE(SUM(size), 0) FROM channels').pluck().get() as number;
    return { channels, entries };
  } finally {
    db.close();
  }
}

const CHUNK = 1 << 20;

/** Calls `each` with the file's bytes, a chunk at a time (a database may be larger than memory). */
function eachChunk(path: string, each: (chunk: Uint8Array) => void): void {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let n = readSync(fd, buf, 0, CHUNK, null); n > 0; n = readSync(fd, buf, 0, CHUNK, null))
      each(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

function describe(path: string): { bytes: number; sha256: string } {
  const h = createHash('sha256');
  let bytes = 0;
  eachChunk(path, (c) => {
    h.update(c);
    bytes += c.length;
  });
  return { bytes, sha256: h.digest('hex') };
}

/** Writes `to` (0600) with `from`'s bytes. */
function copyPrivate(from: string, to: string): void {
  writePrivate(to, (fd) => eachChunk(from, (c) => writeAll(fd, c)));
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
}

/** Writes `path` (0600) through `fill`: under a temporary name, fsynced, then renamed. */
function writePrivate(path: string, fill: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    try {
      fill(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** fsync of a file or a folder (a folder: the names written in it). */
function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
