/**
 * Backup while the relay runs and writes, and restore into a new folder: the restored relay holds
 * every envelope acknowledged before the backup began, at its seq, as a prefix of the live log,
 * signed by the same key and consistent with a checkpoint a client saw before. And a backup
 * that was altered, a folder in use or already holding a database, are refused with their codes.
 */
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64url } from '@backchannel/protocol';
import { verifyConsistency } from '@backchannel/protocol/transcript';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupError, backupRelay, checkBackup, restoreRelay } from '../src/backup.node.ts';
import { commit, envelope, newChannel, readLog, type TestDevice } from './helpers.ts';
import { type RelayProcess, startRelayProcess, writerRelay } from './process.ts';

let relay: RelayProcess;
let a: TestDevice;
let b: TestDevice;
const tmp = mkdtempSync(join(tmpdir(), 'bc-backup-'));

beforeAll(async () => {
  ({ relay, a, b } = await writerRelay());
});
afterAll(async () => {
  await relay.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

const rootOf = (note: string) => Buffer.from(note.split('\n')[2] as string, 'base64');
const sizeOf = (note: string) => Number(note.split('\n')[1]);

/** Expects `f` to throw a BackupError with `code` and a message matching `says`. */
function refused(f: () => unknown, code: BackupError['code'], says: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BackupError);
    expect((e as BackupError).code).toBe(code);
    expect((e as BackupError).message).toMatch(says);
    return;
  }
  throw new Error('expected a BackupError');
}

describe('relay backup and restore', () => {
  it('backs up a relay under writes and restores every entry acknowledged before, verifiably', async () => {
    const ch = newChannel();
    expect((await relay.caller.append(a, commit(a, ch, 0, [b]))).status).toBe(201);
    const acked = new Map<string, number>();
    let stop = false;
    const writer = async () => {
      while (!stop) {
        const env = envelope(a, ch);
        const r = await relay.caller.append(a, env);
        expect(r.status).toBe(201);
        acked.set(env.body.msgId, r.body.seq as number);
      }
    };
    const writers = Array.from({ length: 4 }, writer);
    while (acked.size < 200) await new Promise((r) => setTimeout(r, 10));

    // What a client holds when the backup starts: its acknowledgements and a checkpoint.
    const before = new Map(acked);
    const seen = (await relay.caller.get(`/v1/channels/${ch}/checkpoint`, b)).body.checkpoint as string;
    const out = join(tmp, 'backup');
    const manifest = backupRelay({ dataDir: relay.dataDir, out });
    const ackedDuring = acked.size - before.size;
    while (acked.size < before.size + ackedDuring + 50) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(writers);

    // The backup: 0700 folder, 0600 files, a manifest that names what it holds.
    expect(statSync(out).mode & 0o777).toBe(0o700);
    for (const f of ['relay.db', 'checkpoint-key', 'backup.json'])
      expect(statSync(join(out, f)).mode & 0o777).toBe(0o600);
    expect(manifest.channels).toBe(1);
    expect(manifest.entries).toBeGreaterThanOrEqual(1 + before.size);
    expect(manifest.entries).toBeLessThan(1 + acked.size);
    expect(checkBackup(out)).toEqual(manifest);

    // Restored into a new folder, served by a new relay process.
    const data = join(tmp, 'restored');
    restoreRelay({ from: out, dataDir: data });
    const live = await readLog(relay.caller, ch, b);
    const restored = await startRelayProcess({ BACKCHANNEL_DATA: data });
    try {
      expect((await restored.caller.get('/v1/relay')).body.vkey).toBe(
        (await relay.caller.get('/v1/relay')).body.vkey,
      );
      const entries = await readLog(restored.caller, ch, b);
      expect(entries.length).toBe(manifest.entries);
      // A prefix of the live log, byte for byte, holding every envelope acknowledged before.
      for (const [i, e] of entries.entries())
        expect(Buffer.from(e).equals(Buffer.from(live[i] as Uint8Array)), `entry ${i}`).toBe(true);
      for (const seq of before.values()) expect(seq).toBeLessThan(entries.length);
      // Its checkpoint extends the one the client saw before the backup.
      const now = (await restored.caller.get(`/v1/channels/${ch}/checkpoint`, b)).body.checkpoint as string;
      expect(sizeOf(now)).toBe(entries.length);
      const proof = await restored.caller.get(
        `/v1/channels/${ch}/proof/consistency?from=${sizeOf(seen)}&to=${entries.length}`,
        b,
      );
      const hashes = (proof.body.proof as string[]).map((p) => fromBase64url(p));
      expect(verifyConsistency(sizeOf(seen), entries.length, hashes, rootOf(seen), rootOf(now))).toBe(true);
      // And it takes new writes after the restored head.
      const next = await restored.caller.append(a, envelope(a, ch));
      expect(next.status).toBe(201);
      expect(next.body.seq).toBe(entries.length);
    } finally {
      await restored.cleanup();
    }
  }, 120_000);

  it('refuses a folder in use, a folder with a database, an altered backup, and an existing target', async () => {
    const out = join(tmp, 'backup-2');
    backupRelay({ dataDir: relay.dataDir, out });
    // The running relay holds its folder: no restore into it.
    refused(
      () => restoreRelay({ from: out, dataDir: relay.dataDir }),
      'INVALID_ARGUMENT',
      /a relay is running on/,
    );
    // A stopped relay's folder still holds its database: moved aside first, by the operator.
    const stopped = join(tmp, 'stopped');
    restoreRelay({ from: out, dataDir: stopped });
    refused(
      () => restoreRelay({ from: out, dataDir: stopped }),
      'INVALID_ARGUMENT',
      /already holds a relay database/,
    );
    // A backup target that exists and is not empty.
    refused(() => backupRelay({ dataDir: relay.dataDir, out }), 'INVALID_ARGUMENT', /not an empty folder/);
    // Not a relay folder, and not a backup.
    refused(
      () => backupRelay({ dataDir: join(tmp, 'nothing'), out: join(tmp, 'b3') }),
      'INVALID_ARGUMENT',
      /holds no relay database/,
    );
    refused(
      () => restoreRelay({ from: join(tmp, 'nothing'), dataDir: join(tmp, 'r3') }),
      'INVALID_ARGUMENT',
      /not a relay backup/,
    );
    // Another checkpoint key where the restored relay will read its key.
    const otherKey = join(tmp, 'other-key');
    const key = readFileSync(join(out, 'checkpoint-key'), 'utf8');
    writeFileSync(otherKey, `${key.trimEnd().slice(0, -2)}AA\n`);
    expect(readFileSync(otherKey, 'utf8')).not.toBe(key);
    refused(
      () => restoreRelay({ from: out, dataDir: join(tmp, 'r4'), checkpointKeyFile: otherKey }),
      'INVALID_ARGUMENT',
      /another checkpoint key/,
    );

    // A key that cannot be written: nothing is left in the folder, so the restore can be run again
    // (before, the database was in place without its key, and the relay would have made a new one).
    const r6 = join(tmp, 'r6');
    expect(() =>
      restoreRelay({ from: out, dataDir: r6, checkpointKeyFile: join(tmp, 'no-such-dir', 'key') }),
    ).toThrow(/ENOENT/);
    expect(existsSync(join(r6, 'relay.db'))).toBe(false);
    restoreRelay({ from: out, dataDir: r6 });
    expect(existsSync(join(r6, 'relay.db')) && existsSync(join(r6, 'checkpoint-key'))).toBe(true);

    // Altered after it was written: a byte of the database, the key, the manifest.
    const db = new Database(join(out, 'relay.db'));
    db.exec('UPDATE channels SET last_at = last_at + 1');
    db.close();
    refused(
      () => restoreRelay({ from: out, dataDir: join(tmp, 'r5') }),
      'BACKUP_INVALID',
      /relay\.db in the backup is not the file/,
    );
    const out2 = join(tmp, 'backup-3');
    backupRelay({ dataDir: relay.dataDir, out: out2 });
    appendFileSync(join(out2, 'checkpoint-key'), ' ');
    refused(() => checkBackup(out2), 'BACKUP_INVALID', /checkpoint-key in the backup/);
    writeFileSync(join(out2, 'backup.json'), '{"format":"something else"}');
    refused(() => checkBackup(out2), 'BACKUP_INVALID', /not a backchannel-relay-backup\/1 manifest/);
    writeFileSync(join(out2, 'backup.json'), '{');
    refused(() => checkBackup(out2), 'BACKUP_INVALID', /is not JSON/);
  }, 60_000);
});
