import { randomNode } from '../src/sdk/random.node.ts';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientError } from '../src/sdk/errors.ts';
import { newParty } from '../src/sdk/identity.ts';
import { newInviteCode, openInvite, sealInvite } from '../src/sdk/invite.node.ts';
import { deriveKey, SealedBox } from '../src/sdk/sealed-box.node.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';

const kdf = { N: 1 << 10, r: 8, p: 1 };
const tmp = () => join(mkdtempSync(join(tmpdir(), 'bc-store-')), 'device.db');

describe('sealed local store', () => {
  it('round-trips records, entries and outbox items across a reopen', async () => {
    const path = tmp();
    const s = SqliteLocalStore.open({ path, passphrase: 'correct horse', kdf });
    await s.put([
      ['a', new Uint8Array([1, 2, 3])],
      ['b', new Uint8Array([4])],
    ]);
    await s.appendEntries('c_x', [
      { seq: 0, entry: new Uint8Array([9]) },
      { seq: 1, entry: new Uint8Array([8]) },
    ]);
    await s.outboxAdd({ id: 'e_1', channel: 'c_x', createdAt: 5, wire: new Uint8Array([7, 7]) });
    s.close();
    const r = SqliteLocalStore.open({ path, passphrase: 'correct horse' });
    expect(await r.get('a')).toEqual(new Uint8Array([1, 2, 3]));
    expect(await r.keys('')).toEqual(['a', 'b']);
    expect((await r.entries('c_x', 1, 10)).map((e) => e.seq)).toEqual([1]);
    expect((await r.outboxList())[0]?.wire).toEqual(new Uint8Array([7, 7]));
    await r.outboxRemove(['e_1'], [['rr:c_x:e_1', new Uint8Array([9])]]);
    expect(await r.outboxList()).toEqual([]);
    expect(await r.get('rr:c_x:e_1')).toEqual(new Uint8Array([9]));
    await r.put([['a', undefined]]);
    expect(await r.get('a')).toBeUndefined();
    r.close();
  });

  it("keeps the store's files to their owner (0600), a store made wider before included", async () => {
    const path = tmp();
    const s = SqliteLocalStore.open({ path, passphrase: 'owner only', kdf });
    await s.put([['a', new Uint8Array([1])]]);
    const mode = (f: string) => statSync(f).mode & 0o777;
    expect(mode(path)).toBe(0o600);
    expect(mode(`${path}-wal`)).toBe(0o600);
    s.close();
    chmodSync(path, 0o644);
    const again = SqliteLocalStore.open({ path, passphrase: 'owner only' });
    expect(mode(path)).toBe(0o600);
    again.close();
  });

  it('lists the outbox in the order items were queued, also within one millisecond (property)', async () => {
    // A sendMany queues its batch in one write at one time: their ids are random, the order is not.
    const batches = fc.array(
      fc.record({
        at: fc.integer({ min: 0, max: 3 }),
        ids: fc.uniqueArray(fc.integer(), { minLength: 1, maxLength: 6 }),
      }),
      { minLength: 1, maxLength: 5 },
    );
    const s = SqliteLocalStore.open({ path: tmp(), passphrase: 'order', kdf });
    try {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(batches, async (bs) => {
          run++;
          const queued: string[] = [];
          let at = 1_000;
          for (const [i, b] of bs.entries()) {
            at += b.at;
            const items = b.ids.map((n) => ({
              id: `e_${run}_${i}_${n}`,
              channel: 'c_x',
              createdAt: at,
              wire: new Uint8Array([1]),
            }));
            queued.push(...items.map((x) => x.id));
            if (i % 2 === 0) await s.put([], items);
            else for (const x of items) await s.outboxAdd(x);
          }
          const listed = (await s.outboxList()).map((o) => o.id);
          await s.outboxRemove(listed);
          expect(listed).toEqual(queued);
        }),
        { numRuns: 50 },
      );
    } finally {
      s.close();
    }
  });

  it('refuses a wrong passphrase with PASSPHRASE_WRONG', () => {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'right', kdf }).close();
    expect(() => SqliteLocalStore.open({ path, passphrase: 'wrong' })).toThrow(
      expect.objectContaining({ code: 'PASSPHRASE_WRONG' }),
    );
  });

  it('never writes a secret in plaintext to disk', async () => {
    const path = tmp();
    const s = SqliteLocalStore.open({ path, passphrase: 'pw', kdf });
    const secret = new TextEncoder().encode('TOP-SECRET-FALLBACK-POSITION-B');
    await s.put([['secret', secret]]);
    await s.appendEntries('c_y', [{ seq: 0, entry: secret }]);
    s.close();
    for (const f of [path, `${path}-wal`]) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(f);
      } catch {
        continue;
      }
      expect(bytes.includes(Buffer.from('TOP-SECRET'))).toBe(false);
    }
  });
});

describe('sealed transcript entries', () => {
  const e = (seq: number, byte = seq) => ({ seq, entry: new Uint8Array([byte, byte]) });

  /**
   * A store in the earlier format: entries sealed one row each under 'entry:<channel>:<seq>'
   * (`sealedAs`: under another seq, so that the row does not authenticate).
   */
  function oldFormatStore(rows: ReadonlyArray<{ channel: string; seq: number; sealedAs?: number }>): string {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'pw', kdf }).close();
    const db = new Database(path);
    const meta = (k: string) =>
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: Buffer }).value;
    const box = new SealedBox(deriveKey('pw', meta('salt'), JSON.parse(String(meta('kdf')))));
    const ins = db.prepare('INSERT INTO entries (channel, seq, value) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (const r of rows)
        ins.run(r.channel, r.seq, box.seal(`entry:${r.channel}:${r.sealedAs ?? r.seq}`, e(r.seq).entry));
    })();
    db.close();
    return path;
  }

  it('reads runs in seq order across gaps; a seq stored twice keeps its first bytes', async () => {
    const s = SqliteLocalStore.open({ path: tmp(), passphrase: 'pw', kdf });
    await s.appendEntries('c_x', [e(0), e(1), e(2)]);
    await s.appendEntries('c_x', [e(1, 99), e(2, 99), e(3), e(4)]); // overlaps: 1 and 2 ignored
    await s.appendEntries('c_x', [e(7), e(8)]); // after a gap
    await s.appendEntries('c_y', [e(0, 50)]);
    const all = await s.entries('c_x', 0, 100);
    expect(all.map((x) => x.seq)).toEqual([0, 1, 2, 3, 4, 7, 8]);
    expect(all.map((x) => x.entry[0])).toEqual([0, 1, 2, 3, 4, 7, 8]);
    expect((await s.entries('c_x', 2, 3)).map((x) => x.seq)).toEqual([2, 3, 4]);
    expect((await s.entries('c_x', 5, 10)).map((x) => x.seq)).toEqual([7, 8]);
    expect(await s.entryCount('c_x')).toBe(7);
    expect(await s.entryCount('c_y')).toBe(1);
    // A page and the record that counts it, in one write.
    await s.put([['ch:c_z', new Uint8Array([2])]], [], { channel: 'c_z', entries: [e(0), e(1)] });
    expect(await s.get('ch:c_z')).toEqual(new Uint8Array([2]));
    expect((await s.entries('c_z', 0, 10)).map((x) => x.seq)).toEqual([0, 1]);
    s.close();
  });

  it('converts a store that sealed one row per entry, and refuses a run moved to another place', async () => {
    const path = oldFormatStore([0, 1, 2, 5].map((seq) => ({ channel: 'c_old', seq })));
    const s = SqliteLocalStore.open({ path, passphrase: 'pw' });
    expect((await s.entries('c_old', 0, 10)).map((x) => [x.seq, x.entry[0]])).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
      [5, 5],
    ]);
    s.close();
    const raw = new Database(path);
    expect((raw.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n).toBe(0);
    // A sealed run moved to another position does not authenticate.
    raw.prepare("UPDATE entry_runs SET first = 10 WHERE channel = 'c_old' AND first = 5").run();
    raw.close();
    const moved = SqliteLocalStore.open({ path, passphrase: 'pw' });
    await expect(moved.entries('c_old', 6, 10)).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    moved.close();
  });

  it('converts long channels page by page, and leaves a store with an unreadable old row as it was', async () => {
    const path = oldFormatStore([
      ...Array.from({ length: 2_500 }, (_, seq) => ({ channel: 'c_long', seq })),
      // One old row sealed under the wrong place: it does not authenticate.
      ...[0, 1, 2].map((seq) => ({ channel: 'c_bad', seq, ...(seq === 1 ? { sealedAs: 7 } : {}) })),
    ]);
    expect(() => SqliteLocalStore.open({ path, passphrase: 'pw' })).toThrow(
      expect.objectContaining({ code: 'STORE_CORRUPT' }),
    );
    const raw = new Database(path); // not left locked by the failed open
    const left = raw
      .prepare('SELECT channel, count(*) AS n FROM entries GROUP BY channel ORDER BY channel')
      .all();
    raw.close();
    // The bad channel's rows stay as they were (its transaction rolled back); a channel converted
    // before it may have moved already, which is what its own transaction is for.
    expect(left.find((r) => (r as { channel: string }).channel === 'c_bad')).toEqual({
      channel: 'c_bad',
      n: 3,
    });
    // Without the bad row, the long channel converts whole, in pages of 1,000 rows.
    const fix = new Database(path);
    fix.prepare("DELETE FROM entries WHERE channel = 'c_bad'").run();
    fix.close();
    const s = SqliteLocalStore.open({ path, passphrase: 'pw' });
    const all = await s.entries('c_long', 0, 5_000);
    expect(all.map((x) => x.seq)).toEqual(Array.from({ length: 2_500 }, (_, i) => i));
    expect(all.every((x) => x.entry[0] === x.seq % 256)).toBe(true);
    s.close();
  });
});

describe('invites', () => {
  const id = newParty({
    rootSeed: new Uint8Array(32).fill(1),
    deviceSeed: new Uint8Array(32).fill(2),
    partyName: 'A',
    deviceName: 'staff',
    role: 'staff',
    relays: ['http://127.0.0.1:1'],
    now: 1_700_000_000_000,
  });

  it('opens with the right code (case and dashes do not matter)', () => {
    const code = newInviteCode();
    const file = JSON.parse(JSON.stringify(sealInvite(id, code, kdf)));
    const opened = openInvite(file, code.toLowerCase().replaceAll('-', ' '));
    expect(opened.device).toBe(id.device);
    expect(opened.deviceSecretKey).toEqual(id.deviceSecretKey);
  });

  it('refuses a wrong code and a file that is not an invite with INVITE_INVALID', () => {
    const file = sealInvite(id, newInviteCode(), kdf);
    expect(() => openInvite(file, 'AAAA-AAAA-AAAA-AAAA')).toThrow(ClientError);
    expect(() => openInvite({ kind: 'other' }, 'x')).toThrow(
      expect.objectContaining({ code: 'INVITE_INVALID' }),
    );
  });
});

describe('pooled randomness', () => {
  it('hands out fresh bytes of the asked length, never the same bytes twice', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const n = 1 + (i % 40);
      const b = randomNode(n);
      expect(b.length).toBe(n);
      if (n >= 8) {
        const k = Buffer.from(b).toString('hex');
        expect(seen.has(k)).toBe(false);
        seen.add(k);
      }
    }
    expect(randomNode(5_000).length).toBe(5_000);
    for (const bad of [-1, Number.NaN, 1.5]) expect(() => randomNode(bad)).toThrow(RangeError);
    // Not all zeros (the pool is wiped behind what it hands out, never before).
    expect(randomNode(32).some((x) => x !== 0)).toBe(true);
  });
});

/**
 * One process at a time per device store: two that both sent would encrypt with the same MLS
 * ratchet generation (the same AES-GCM key and nonce for two messages). The lock is the
 * operating system's, so it ends with its holder, kill -9 included.
 */
describe('one process per device store', () => {
  it('a second opener says it waits, then gets STORE_LOCKED naming the holder; it opens once the first closes', async () => {
    const path = tmp();
    const first = SqliteLocalStore.open({ path, passphrase: 'pw', kdf, holder: 'backchannel watch' });
    const waited: string[] = [];
    let refused: unknown;
    try {
      SqliteLocalStore.open({
        path,
        passphrase: 'pw',
        lockWaitMs: 100,
        onLockWait: (holder) => waited.push(holder),
      });
    } catch (e) {
      refused = e;
    }
    expect(waited).toEqual([`backchannel watch (pid ${process.pid})`]);
    expect(refused).toBeInstanceOf(ClientError);
    expect(refused).toMatchObject({ code: 'STORE_LOCKED', retryable: true });
    expect((refused as Error).message).toContain(`backchannel watch (pid ${process.pid})`);
    await first.put([['k', new Uint8Array([1])]]);
    first.close();
    const second = SqliteLocalStore.open({ path, passphrase: 'pw', lockWaitMs: 100 });
    expect(await second.get('k')).toEqual(new Uint8Array([1]));
    second.close();
  });

  it('a wrong passphrase leaves the store unlocked for the next opener', () => {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'right', kdf }).close();
    expect(() => SqliteLocalStore.open({ path, passphrase: 'wrong' })).toThrow(ClientError);
    SqliteLocalStore.open({ path, passphrase: 'right', lockWaitMs: 100 }).close();
  });

  it('the lock of a process killed with SIGKILL is gone with it', async () => {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'pw', kdf }).close();
    const source = join(import.meta.dirname, '..', 'src', 'sdk', 'sqlite.node.ts');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { SqliteLocalStore } = await import(${JSON.stringify(source)});
         SqliteLocalStore.open({ path: ${JSON.stringify(path)}, passphrase: 'pw', holder: 'the child' });
         process.stdout.write('open\\n');
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('open') && resolve());
        child.once('exit', (code) => reject(new Error(`child exited (${code})`)));
      });
      expect(() => SqliteLocalStore.open({ path, passphrase: 'pw', lockWaitMs: 100 })).toThrow(
        /in use by the child/,
      );
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      SqliteLocalStore.open({ path, passphrase: 'pw', lockWaitMs: 2_000 }).close();
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
