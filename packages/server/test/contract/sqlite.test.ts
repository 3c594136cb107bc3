import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { latestVersion } from '../../src/store/migration-files.ts';
import { loadMigrations } from '../../src/store/sqlite/migrate.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { storeContract } from './store.contract.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'bc-sqlite-'));
}

storeContract('sqlite', {
  async open() {
    const dir = tempDir();
    const store = openSqliteStore({ path: join(dir, 'relay.db') });
    return {
      store,
      async cleanup() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});

// The same contract with the writer connection on the event loop's thread (writerThread: false).
storeContract('sqlite, writer on this thread', {
  async open() {
    const dir = tempDir();
    const store = openSqliteStore({ path: join(dir, 'relay.db'), writerThread: false });
    return {
      store,
      async cleanup() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});

const card = (party: string) => ({
  party: party as PartyId,
  rootPublicKey: new Uint8Array(32).fill(1),
  card: new Uint8Array([1, 2, 3]),
  issuedAt: 1,
});

describe('sqlite specifics', () => {
  it('a statement that fails on the writer thread fails its transaction, and none of it is committed', async () => {
    const dir = tempDir();
    const store = openSqliteStore({ path: join(dir, 'relay.db') });
    const channel = 'c_thread' as ChannelId;
    const head = { channel, epoch: 0, size: 0, frontier: [], lastAt: 0, createdAt: 0 };
    await store.write(async (tx) => tx.putChannel(head));
    const entry = (seq: number) => ({
      seq,
      msgId: `m${seq}`,
      sender: 'd_x' as DeviceId,
      envelopeHash: new Uint8Array(32),
      receivedAt: 1,
      entry: new Uint8Array([seq]),
    });
    // The duplicate (chan, seq) fails on the thread after the card was queued in the same transaction.
    await expect(
      store.write(async (tx) => {
        await tx.putCard(card('p_lost'));
        await tx.appendEntry(channel, entry(0));
        await tx.appendEntry(channel, entry(0));
      }),
    ).rejects.toThrow(/UNIQUE/);
    // The thread takes the next transaction as usual, and the failed one left nothing behind.
    await store.write(async (tx) => {
      await tx.putCard(card('p_kept'));
      await tx.appendEntry(channel, entry(0));
    });
    await store.read(async (tx) => {
      expect(await tx.getCard('p_lost' as PartyId)).toBeUndefined();
      expect((await tx.getCard('p_kept' as PartyId))?.party).toBe('p_kept');
      expect((await tx.getEntries(channel, 0, 10)).map((e) => e.msgId)).toEqual(['m0']);
    });
    // A write transaction reads its own writes (they run on the thread, in order).
    await store.write(async (tx) => {
      await tx.appendEntry(channel, entry(1));
      expect((await tx.findMessages(channel, ['m0', 'm1', 'm9'])).size).toBe(2);
    });
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies the WAL into the database file on its own thread, not in the commits', async () => {
    const dir = tempDir();
    const path = join(dir, 'relay.db');
    const store = openSqliteStore({ path });
    const channel = 'c_ckpt' as ChannelId;
    await store.write(async (tx) =>
      tx.putChannel({ channel, epoch: 0, size: 0, frontier: [], lastAt: 0, createdAt: 0 }),
    );
    const before = statSync(path).size;
    // ~1 MB of entries: far below the writer's own backstop (~40 MB), so only the checkpointer
    // moves them into the database file.
    for (let b = 0; b < 10; b++) {
      await store.write(async (tx) => {
        for (let i = 0; i < 100; i++) {
          const seq = b * 100 + i;
          await tx.appendEntry(channel, {
            seq,
            msgId: `m${seq}`,
            sender: 'd_x' as DeviceId,
            envelopeHash: new Uint8Array(32),
            receivedAt: 1,
            entry: new Uint8Array(1024).fill(seq % 251),
          });
        }
      });
    }
    const deadline = Date.now() + 10_000;
    while (statSync(path).size < before + 1_000_000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(statSync(path).size).toBeGreaterThan(before + 1_000_000);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pipelines transactions: the next is written while one commits, and fails if that one fails', async () => {
    const dir = tempDir();
    const store = openSqliteStore({ path: join(dir, 'relay.db') });
    expect(store.pipelined).toBe(true);
    const memory = openSqliteStore({ path: ':memory:' });
    expect(memory.pipelined).toBe(false);
    await memory.close();
    const channel = 'c_pipe' as ChannelId;
    await store.write(async (tx) =>
      tx.putChannel({ channel, epoch: 0, size: 0, frontier: [], lastAt: 0, createdAt: 0 }),
    );
    const entry = (seq: number) => ({
      seq,
      msgId: `m${seq}`,
      sender: 'd_x' as DeviceId,
      envelopeHash: new Uint8Array(32),
      receivedAt: 1,
      entry: new Uint8Array([seq]),
    });
    // Both are written before the first one's commit is known: the second begins as soon as the
    // first has queued its COMMIT. The first fails on the thread (duplicate seq), so the second,
    // built on top of it, is refused unrun.
    let secondBegan = false;
    const first = store.write(async (tx) => {
      await tx.appendEntry(channel, entry(0));
      await tx.appendEntry(channel, entry(0));
    });
    const second = store.write(async (tx) => {
      secondBegan = true;
      await tx.appendEntry(channel, entry(1));
      await tx.putCard(card('p_behind'));
    });
    await expect(first).rejects.toThrow(/UNIQUE/);
    expect(secondBegan).toBe(true);
    // Told as STORE_UNAVAILABLE (503, retry): nothing of it was written.
    await expect(second).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    // Later transactions run as usual; nothing of the two failed ones is there.
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2].map((i) =>
        store.write(async (tx) => {
          await tx.appendEntry(channel, entry(i));
          order.push(i);
        }),
      ),
    );
    expect(order).toEqual([0, 1, 2]);
    await store.read(async (tx) => {
      expect(await tx.getCard('p_behind' as PartyId)).toBeUndefined();
      expect((await tx.getEntries(channel, 0, 10)).map((e) => e.seq)).toEqual([0, 1, 2]);
    });
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs in WAL mode with synchronous=FULL and STRICT tables from numbered migrations', async () => {
    const dir = tempDir();
    const path = join(dir, 'relay.db');
    const store = openSqliteStore({ path });
    await store.close();
    const db = new BetterSqlite3(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(latestVersion(loadMigrations()));
    const tables = db
      .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all() as {
      name: string;
      sql: string;
    }[];
    expect(tables.length).toBeGreaterThan(5);
    for (const t of tables) expect(t.sql, t.name).toMatch(/\)\s*STRICT/);
    expect(() => db.prepare("INSERT INTO parties VALUES ('p', 'not bytes', x'00', 'later')").run()).toThrow();
    db.close();
    // Reopening applies nothing new and keeps the data.
    const again = openSqliteStore({ path });
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits with synchronous=FULL on the WAL (durability is not configurable)', async () => {
    for (const writerThread of [true, false]) {
      const dir = tempDir();
      const store = openSqliteStore({ path: join(dir, 'relay.db'), writerThread });
      expect(await store.durability()).toEqual({ journalMode: 'wal', synchronous: 'FULL' });
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a database from a newer relay', async () => {
    const dir = tempDir();
    const path = join(dir, 'relay.db');
    const db = new BetterSqlite3(path);
    db.pragma('user_version = 99');
    db.close();
    expect(() => openSqliteStore({ path })).toThrow(/newer/);
    rmSync(dir, { recursive: true, force: true });
  });
});
