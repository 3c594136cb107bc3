import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
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

describe('sqlite specifics', () => {
  it('runs in WAL mode with synchronous=FULL and STRICT tables from numbered migrations', async () => {
    const dir = tempDir();
    const path = join(dir, 'relay.db');
    const store = openSqliteStore({ path });
    await store.close();
    const db = new BetterSqlite3(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(loadMigrations().length);
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
    const dir = tempDir();
    const store = openSqliteStore({ path: join(dir, 'relay.db') });
    expect(store.durability()).toEqual({ journalMode: 'wal', synchronous: 'FULL' });
    await store.close();
    rmSync(dir, { recursive: true, force: true });
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
