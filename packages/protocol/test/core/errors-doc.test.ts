import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_ERROR_CODES } from '../../src/errors.ts';

const doc = readFileSync(join(import.meta.dirname, '../../../../docs/ERRORS.md'), 'utf8');

function tableCodes(section: string): string[] {
  const start = doc.indexOf(`## ${section}`);
  const end = doc.indexOf('\n## ', start + 1);
  const body = doc.slice(start, end < 0 ? undefined : end);
  return [...body.matchAll(/^\|\s*([A-Z][A-Z0-9_]+)\s*\|\s*(\S.*?)\s*\|\s*(\S.*?)\s*\|$/gm)].map(
    (m) => m[1] as string,
  );
}

describe('docs/ERRORS.md', () => {
  it('lists every protocol error code, with a meaning and what to do, and nothing else', () => {
    expect([...tableCodes('Protocol')].sort()).toEqual([...PROTOCOL_ERROR_CODES].sort());
  });
});
