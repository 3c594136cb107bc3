import { afterAll, describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors.ts';
import { latestVersion } from '../../src/store/migration-files.ts';
import { loadPgMigrations, migratePostgres } from '../../src/store/postgres/pg-migrate.ts';
import { openPostgresStore } from '../../src/store/postgres/pg-store.ts';
import { dropSchema, PG_URL, servicesUp, uniqueName } from '../services.ts';
import { storeContract } from './store.contract.ts';
import postgres from 'postgres';
import type { ChannelId } from '@backchannel/protocol';

const up = await servicesUp('contract/postgres.test.ts', ['postgres']);
const schemas: string[] = [];

afterAll(async () => {
  for (const s of schemas) await dropSchema(s);
});

describe.skipIf(!up)('postgres', () => {
  storeContract('postgres', {
    async open() {
      const schema = uniqueName('bc_contract');
      schemas.push(schema);
      const store = await openPostgresStore({ url: PG_URL, schema, max: 4 });
      return {
        store,
        async cleanup() {
          await store.close();
          await dropSchema(schema);
        },
      };
    },
  });

  describe('postgres specifics', () => {
    it('applies numbered migrations once, even with two nodes starting at the same time', async () => {
      const schema = uniqueName('bc_migrate');
      schemas.push(schema);
      const [a, b] = await Promise.all([
        openPostgresStore({ url: PG_URL, schema, max: 2 }),
        openPostgresStore({ url: `${PG_URL}?schema=${schema}`, max: 2 }),
      ]);
      expect(b.schema).toBe(schema);
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      const rows = await sql.unsafe(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
      expect(rows.map((r) => Number(r.version))).toEqual(loadPgMigrations().map((m) => m.version));
      expect(await migratePostgres(sql, schema)).toBe(latestVersion(loadPgMigrations()));
      await sql.end({ timeout: 1 });
      await Promise.all([a.close(), b.close()]);
    });

    it('refuses a database from a newer relay', async () => {
      const schema = uniqueName('bc_newer');
      schemas.push(schema);
      const s = await openPostgresStore({ url: PG_URL, schema, max: 1 });
      await s.close();
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      await sql.unsafe(`INSERT INTO "${schema}".schema_migrations (version, name) VALUES (99, 'future')`);
      await sql.end({ timeout: 1 });
      await expect(openPostgresStore({ url: PG_URL, schema, max: 1 })).rejects.toThrow(/newer/);
    });

    it('serializes writers of one channel across connections (lockChannels)', async () => {
      const schema = uniqueName('bc_lock');
      schemas.push(schema);
      const [a, b] = await Promise.all([
        openPostgresStore({ url: PG_URL, schema, max: 2 }),
        openPostgresStore({ url: PG_URL, schema, max: 2 }),
      ]);
      const channel = 'c_lock' as ChannelId;
      const order: string[] = [];
      let inside!: () => void;
      const entered = new Promise<void>((r) => {
        inside = r;
      });
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const first = a.write(async (tx) => {
        await tx.lockChannels([channel]);
        order.push('a in');
        inside();
        await gate;
        order.push('a out');
      });
      await entered;
      const second = b.write(async (tx) => {
        await tx.lockChannels([channel, 'c_other' as ChannelId]);
        order.push('b in');
      });
      // b is blocked on the lock until a commits: let a run to its end first.
      const other = b.write(async (tx) => {
        await tx.lockChannels(['c_unrelated' as ChannelId]);
        order.push('unrelated');
      });
      await other;
      release();
      await Promise.all([first, second]);
      expect(order).toEqual(['a in', 'unrelated', 'a out', 'b in']);
      await Promise.all([a.close(), b.close()]);
    });

    it('turns an unreachable database into STORE_UNAVAILABLE', async () => {
      const err = await openPostgresStore({
        url: 'postgres://postgres@127.0.0.1:1/test',
        connectTimeoutS: 2,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RelayError);
      expect((err as RelayError).code).toBe('STORE_UNAVAILABLE');
      expect((err as RelayError).status).toBe(503);
      expect((err as RelayError).retryAfterMs).toBeGreaterThan(0);
    });
  });
});
