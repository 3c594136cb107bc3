/**
 * Numbered PostgreSQL migrations (store/postgres/migrations/NNNN-name.sql), recorded in
 * schema_migrations. Several nodes may start at once: one transaction-scoped advisory lock per
 * schema makes them apply each migration once, in order.
 */
import { latestVersion, loadMigrationFiles, type Migration } from '../migration-files.ts';
import type postgres from 'postgres';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

export type PgMigration = Migration;

export function loadPgMigrations(): PgMigration[] {
  return loadMigrationFiles(MIGRATIONS_DIR);
}

/**
 * Creates the schema if needed and applies the migrations it lacks. Returns the version.
 * `begun` runs first inside the transaction (a connection was made); if it throws, nothing runs.
 */
export async function migratePostgres<T extends Record<string, unknown>>(
  sql: postgres.Sql<T>,
  schema: string,
  migrations: readonly PgMigration[] = loadPgMigrations(),
  begun: () => void = () => {},
): Promise<number> {
  return (await sql.begin(async (tx) => {
    begun();
    await tx`SELECT pg_advisory_xact_lock(hashtext(${schema} || ':migrate'), 0)`;
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await tx.unsafe(`SET LOCAL search_path TO "${schema}"`);
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    const [row] = await tx<{ v: number | null }[]>`SELECT max(version) AS v FROM schema_migrations`;
    let version = row?.v ?? 0;
    const latest = latestVersion(migrations);
    if (version > latest) {
      throw new Error(`database schema ${version} is newer than this relay (${latest}); refusing to start`);
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
