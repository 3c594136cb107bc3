/**
 * Numbered SQL migration files (NNNN-name.sql) in one directory, checked to be in increasing
 * order, each number once. A number may be missing — migrations are numbered on parallel
 * branches, so a branch may hold 0003 before 0002 is merged — and a database records the highest
 * version it applied (latestVersion).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export function loadMigrationFiles(dir: URL): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = /^(\d{4})-([a-z0-9-]+)\.sql$/.exec(file);
    if (m === null) continue;
    out.push({ version: Number(m[1]), name: m[2] as string, sql: readFileSync(new URL(file, dir), 'utf8') });
  }
  out.forEach((m, i) => {
    const before = i === 0 ? 0 : (out[i - 1] as Migration).version;
    if (m.version <= before) throw new Error(`migration ${m.version}-${m.name} is out of sequence`);
  });
  return out;
}

/** The schema version a database has once every migration is applied. */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.at(-1)?.version ?? 0;
}
