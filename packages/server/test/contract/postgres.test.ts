import { afterAll, describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors.ts';
import { latestVersion } from '../../src/store/migration-files.ts';
import { loadPgMigrations, migratePostgres } from '../../src/store/postgres/pg-migrate.ts';
import { openPostgresStore } from '../../src/store/postgres/pg-store.ts';
import { dropSchema, PG_URL, servicesUp, uniqueName } from '../services.ts';
import { storeContract } from './store.contract.ts';
import postgres from 'postgres';
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import type { CardRecord } from '../../src/store/store.ts';

/** A transaction that signals once it is inside (`inside` → `entered`) and waits for `release`. */
function latch() {
  let inside!: () => void;
  const entered = new Promise<void>((r) => {
    inside = r;
  });
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return { entered, inside, gate, release };
}

const up = await servicesUp('contract/postgres.test.ts', ['postgres']);
const schemas: string[] = [];

afterAll(async () => {
  for (const s of schemas) await dropSchema(s);
});

/** Two stores (as two relay nodes) on one new schema. */
async function twoNodes(prefix: string) {
  const schema = uniqueName(prefix);
  schemas.push(schema);
  return Promise.all([
    openPostgresStore({ url: PG_URL, schema, max: 2 }),
    openPostgresStore({ url: PG_URL, schema, max: 2 }),
  ]);
}

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

    it('records each signed request once for every node, and forgets those past the window', async () => {
      const [a, b] = await twoNodes('bc_claims');
      const d = 'd_claims' as DeviceId;
      expect(await a.claimRequest(d, 'sig-old', 1_000, 0)).toBe(true);
      expect(await b.claimRequest(d, 'sig-old', 1_000, 0)).toBe(false);
      expect(await a.claimRequest(d, 'sig-old', 1_000, 0)).toBe(false);
      // Another device's identical signature prefix is its own.
      expect(await b.claimRequest('d_other' as DeviceId, 'sig-old', 1_000, 0)).toBe(true);
      // Every 1,000 claims a node deletes what was signed before the window (in the background:
      // the old signature becomes claimable again once that delete has run).
      const claims = Array.from({ length: 1_000 }, (_, i) => a.claimRequest(d, `sig-${i}`, 5_000 + i, 2_000));
      expect((await Promise.all(claims)).every((ok) => ok)).toBe(true);
      let again = await b.claimRequest(d, 'sig-old', 1_000, 0);
      for (let i = 0; i < 100 && !again; i++) {
        await new Promise((r) => setTimeout(r, 20));
        again = await b.claimRequest(d, 'sig-old', 1_000, 0);
      }
      expect(again).toBe(true);
      expect(await b.claimRequest(d, 'sig-5', 5_005, 0)).toBe(false);
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
      const [a, b] = await twoNodes('bc_lock');
      const channel = 'c_lock' as ChannelId;
      const order: string[] = [];
      const { entered, inside, gate, release } = latch();
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

    it('holds the devices an append batch read until it ends: a revocation waits, then is seen (shareDevices)', async () => {
      const [a, b] = await twoNodes('bc_share');
      const party = 'p_share' as PartyId;
      const device = 'd_share' as DeviceId;
      await a.write((tx) =>
        tx.putDevice({
          device,
          party,
          publicKey: new Uint8Array(32),
          role: 'staff',
          notBefore: 1,
          notAfter: 10_000,
          certificate: new Uint8Array(100),
        }),
      );
      const order: string[] = [];
      const { entered, inside, gate, release } = latch();
      const batch = a.write(async (tx) => {
        const got = await tx.shareDevices([device]);
        order.push(`batch read revokedAt=${got.get(device)?.revokedAt}`);
        inside();
        await gate;
        order.push('batch commits');
      });
      await entered;
      const revoke = b
        .write((tx) => tx.putRevocation({ party, device, revokedAt: 50, revocation: new Uint8Array(80) }))
        .then(() => order.push('revocation committed'));
      // Give the revocation every chance to commit first: it must not, while the batch holds the row.
      await new Promise((r) => setTimeout(r, 300));
      order.push('released');
      release();
      await Promise.all([batch, revoke]);
      expect(order).toEqual([
        'batch read revokedAt=undefined',
        'released',
        'batch commits',
        'revocation committed',
      ]);
      // The next batch sees it.
      const after = await a.write((tx) => tx.shareDevices([device]));
      expect(after.get(device)?.revokedAt).toBe(50);
      await Promise.all([a.close(), b.close()]);
    });

    it('holds several devices for a change at once (lockDevices): a batch waits and sees the whole change', async () => {
      const [a, b] = await twoNodes('bc_lockdev');
      const party = 'p_lockdev' as PartyId;
      const rec = (device: DeviceId, role: 'staff' | 'admin') => ({
        device,
        party,
        publicKey: new Uint8Array(32),
        role,
        notBefore: 1,
        notAfter: 10_000,
        certificate: new Uint8Array(100),
      });
      const d1 = 'd_lockdev1' as DeviceId;
      const d2 = 'd_lockdev2' as DeviceId;
      await a.write(async (tx) => {
        await tx.putDevice(rec(d1, 'staff'));
        await tx.putDevice(rec(d2, 'staff'));
      });
      const order: string[] = [];
      const { entered, inside, gate, release } = latch();
      // A card's renewal: both devices held first (given in either order), then changed one by one.
      const change = a.write(async (tx) => {
        await tx.lockDevices([d2, d1]);
        inside();
        await gate;
        await tx.putDevice(rec(d2, 'admin'));
        await tx.putDevice(rec(d1, 'admin'));
        order.push('change commits');
      });
      await entered;
      const batch = b
        .write((tx) => tx.shareDevices([d1, d2]))
        .then((got) => {
          order.push(`batch read ${got.get(d1)?.role}/${got.get(d2)?.role}`);
        });
      await new Promise((r) => setTimeout(r, 300));
      order.push('released');
      release();
      await Promise.all([change, batch]);
      expect(order).toEqual(['released', 'change commits', 'batch read admin/admin']);
      await Promise.all([a.close(), b.close()]);
    });

    describe('a transaction whose connection is lost', () => {
      /** A trigger that ends its own connection (as a crash or restart of PostgreSQL would) when `when` holds. */
      async function killConnectionOn(schema: string, table: string, when: string): Promise<void> {
        const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
        await sql.unsafe(`
          CREATE FUNCTION "${schema}".kill_connection() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF ${when} THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
            RETURN NEW;
          END $$;
          CREATE TRIGGER kill_connection BEFORE INSERT ON "${schema}".${table}
            FOR EACH ROW EXECUTE FUNCTION "${schema}".kill_connection();`);
        await sql.end({ timeout: 1 });
      }

      const card = (party: string): CardRecord => ({
        party: party as PartyId,
        rootPublicKey: new Uint8Array(32),
        card: new Uint8Array(8),
        issuedAt: 1,
      });

      async function until(done: () => boolean, what: string): Promise<void> {
        const limit = Date.now() + 3_000;
        while (!done()) {
          if (Date.now() > limit) throw new Error(`${what} within 3 s`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }

      it('ends: fn’s later statements are refused and never sent, on that connection or its next session', async () => {
        const schema = uniqueName('bc_lost');
        schemas.push(schema);
        // One connection: the one lost is the one the next transaction reconnects.
        const store = await openPostgresStore({ url: PG_URL, schema, max: 1 });
        await killConnectionOn(schema, 'parties', "NEW.party = 'p_kill'");
        let later: unknown;
        let ended = false;
        const write = store.write(async (tx) => {
          try {
            await tx.putCard(card('p_kill'));
          } catch {
            // Going on regardless, as a callback that handles its errors would.
          }
          await new Promise((r) => setTimeout(r, 200));
          later = await tx.putCard(card('p_after_loss')).then(
            () => 'sent',
            (e: unknown) => e,
          );
          ended = true;
        });
        await expect(write).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await until(() => ended, 'fn did not end');
        expect(later).toBeInstanceOf(Error);
        // The store goes on, and nothing fn asked for after the loss was written anywhere.
        await store.write((tx) => tx.putCard(card('p_next')));
        expect(await store.read((tx) => tx.getCard('p_next' as PartyId))).toBeDefined();
        expect(await store.read((tx) => tx.getCard('p_after_loss' as PartyId))).toBeUndefined();
        await store.close();
      });

      it('lost mid-pipeline: fn ends, and the next transaction on the reopened connection goes through', async () => {
        const schema = uniqueName('bc_lost');
        schemas.push(schema);
        const store = await openPostgresStore({ url: PG_URL, schema, max: 1 });
        await killConnectionOn(schema, 'checkpoints', 'NEW.size = 0');
        const channel = 'c_lost' as ChannelId;
        let ended = false;
        const write = store.write(async (tx) => {
          try {
            await tx.lockChannels([channel]);
            // More statements than postgres.js pipelines at once: the rest wait in its queue.
            for (let size = 0; size < 300; size++)
              await tx.putCheckpoint(channel, { size, note: 'n', issuedAt: 1 });
            await tx.getChannel(channel);
          } finally {
            ended = true;
          }
        });
        await expect(write).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await until(() => ended, 'fn did not end');
        // Its only connection is reopened for this one (postgres.js reports the lost session's error there).
        await store.write((tx) => tx.putCheckpoint(channel, { size: 1, note: 'after', issuedAt: 2 }));
        const kept = await store.read((tx) => tx.getCheckpoint(channel));
        expect(kept).toMatchObject({ size: 1, note: 'after' });
        await store.close();
      });
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
