/**
 * The real PostgreSQL and NATS of this machine, for the scale-out tests. When one is absent the
 * tests that need it print why and skip — unless BACKCHANNEL_REQUIRE_SERVICES=1 (CI), where its
 * absence fails them. Each test file gets its own schema and NATS subject prefix, dropped at the
 * end, because other runs share the same servers.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import postgres from 'postgres';

export const PG_URL = process.env.BACKCHANNEL_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.BACKCHANNEL_TEST_NATS ?? 'nats://127.0.0.1:4222';
const REQUIRED = process.env.BACKCHANNEL_REQUIRE_SERVICES === '1';

async function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = netConnect({ host: u.hostname, port: Number(u.port) });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1_000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function pgWorks(): Promise<boolean> {
  if (!(await reachable(PG_URL))) return false;
  const sql = postgres(PG_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * Whether the named services are up. Absent: prints a notice (and skips) or, when they are
 * required, throws so the suite fails.
 */
export async function servicesUp(file: string, need: ReadonlyArray<'postgres' | 'nats'>): Promise<boolean> {
  const missing: string[] = [];
  if (need.includes('postgres') && !(await pgWorks())) missing.push(`PostgreSQL at ${PG_URL}`);
  if (need.includes('nats') && !(await reachable(NATS_URL))) missing.push(`NATS at ${NATS_URL}`);
  if (missing.length === 0) return true;
  const why = `${file}: ${missing.join(' and ')} not reachable`;
  if (REQUIRED) throw new Error(`${why} (BACKCHANNEL_REQUIRE_SERVICES=1)`);
  process.stderr.write(
    `\n*** SKIPPING ${why}. Start them, or set BACKCHANNEL_REQUIRE_SERVICES=1 to fail instead.\n\n`,
  );
  return false;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Drops a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}
