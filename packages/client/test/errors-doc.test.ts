import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIENT_ERROR_CODES } from '../src/sdk/errors.ts';

const doc = readFileSync(join(import.meta.dirname, '../../../docs/ERRORS.md'), 'utf8');

describe('docs/ERRORS.md', () => {
  it('lists every SDK error code and nothing else', () => {
    const start = doc.indexOf('## SDK');
    const codes = [
      ...doc.slice(start).matchAll(/^\|\s*([A-Z][A-Z0-9_]+)\s*\|\s*(\S.*?)\s*\|\s*(\S.*?)\s*\|$/gm),
    ].map((m) => m[1]);
    expect(codes.sort()).toEqual([...CLIENT_ERROR_CODES].sort());
  });
});
