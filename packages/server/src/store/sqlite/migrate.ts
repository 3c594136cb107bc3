/** Numbered SQL migrations (store/migrations/NNNN-name.sql), tracked in PRAGMA user_version. */
import { readdirSync, readFileSync } from 'node:fs';
import type { Database } from 'better-sqlite3';

const MIGRATIONS_DIR = new URL('../migrations/', import.meta.url);

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export function loadMigrations(): Migration[] {
  const out: Migration[] = [];
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

/** Applies the migrations newer than the database, each in its own transaction. Returns the version. */
export function migrate(db: Database, migrations: readonly Migration[] = loadMigrations()): number {
  let version = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.length;
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
