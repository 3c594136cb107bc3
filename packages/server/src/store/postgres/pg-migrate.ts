/**
 * Numbered PostgreSQL migrations (store/postgres/migrations/NNNN-name.sql), recorded in
 * schema_migrations. Several nodes may start at once: one transaction-scoped advisory lock per
 * schema makes them apply each migration once, in order.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type postgres from 'postgres';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

export interface PgMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export function loadPgMigrations(): PgMigration[] {
  const out: PgMigration[] = [];
  for (const file of readdirSync(MIGRATIONS_DIR).sort()) {
    const m = /^(\d{4})-([a-z0-9-]+)\.sql$/.exec(file);
    if (m === null) continue;
    out.push({
      version: Number(m[1]),
      name: m[2] as string,
      sql: readFileSync(new URL(file, MIGRATIONS_DIR), 'utf8'),
    });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.version}-${m.name} is out of sequence`);
  });
  return out;
}

/** Creates the schema if needed and applies the migrations it lacks. Returns the version. */
export async function migratePostgres<T extends Record<string, unknown>>(
  sql: postgres.Sql<T>,
  schema: string,
  migrations: readonly PgMigration[] = loadPgMigrations(),
): Promise<number> {
  return (await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${schema} || ':migrate'), 0)`;
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await tx.unsafe(`SET LOCAL search_path TO "${schema}"`);
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    const [row] = await tx<{ v: number | null }[]>`SELECT max(version) AS v FROM schema_migrations`;
    let version = row?.v ?? 0;
    if (version > migrations.length) {
      throw new Error(
        `database schema ${version} is newer than this relay (${migrations.length}); refusing to start`,
      );
    }
    for (const m of migrations) {
      if (m.version <= version) continue;
      await tx.unsafe(m.sql);
      await tx`INSERT INTO schema_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      version = m.version;
    }
    return version;
  })) as number;
}
