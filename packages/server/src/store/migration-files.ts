/** Numbered SQL migration files (NNNN-name.sql) in one directory, checked to be in sequence. */
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
    if (m.version !== i + 1) throw new Error(`migration ${m.version}-${m.name} is out of sequence`);
  });
  return out;
}
