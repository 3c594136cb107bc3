/** Numbered SQL migrations (store/migrations/NNNN-name.sql), tracked in PRAGMA user_version. */
import { latestVersion, loadMigrationFiles, type Migration } from '../migration-files.ts';

export type { Migration };
import type { Database } from 'better-sqlite3';

const MIGRATIONS_DIR = new URL('../migrations/', import.meta.url);

export function loadMigrations(): Migration[] {
  return loadMigrationFiles(MIGRATIONS_DIR);
}

/** Applies the migrations newer than the database, each in its own transaction. Returns the version. */
export function migrate(db: Database, migrations: readonly Migration[] = loadMigrations()): number {
  let version = db.pragma('user_version', { simple: true }) as number;
  const latest = latestVersion(migrations);
  if (version > latest) {
    throw new Error(`database schema ${version} is newer than this relay (${latest}); refusing to start`);
  }
  for (const m of migrations) {
    if (m.version <= version) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
    version = m.version;
  }
  return version;
}
