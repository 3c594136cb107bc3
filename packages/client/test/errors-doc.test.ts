import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '@backchannel/protocol';
import { describeError } from '../src/cli/output.ts';
import { CLIENT_ERROR_CODES, ClientError } from '../src/sdk/errors.ts';

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

describe('docs/ERRORS.md, from the command line', () => {
  it('the exit code of each error code is the one the table says', () => {
    const start = doc.indexOf('## From the command line');
    const body = doc.slice(start, doc.indexOf('\n## ', start + 1));
    const listed = new Map<string, number>();
    for (const m of body.matchAll(/^\|\s*(\d)\s*\|[^|]*\|([^|]*)\|$/gm))
      for (const c of (m[2] as string).matchAll(/`([A-Z_]+)`/g)) listed.set(c[1] as string, Number(m[1]));
    expect(listed.size).toBeGreaterThan(5);
    const error = (code: string) =>
      code === 'ID_INVALID' ? new ProtocolError('ID_INVALID', 'x') : new ClientError(code as never, 'x');
    for (const [code, exit] of listed) expect(describeError(error(code)).exit, code).toBe(exit);
    // "every other code" is 2.
    for (const code of CLIENT_ERROR_CODES.filter((c) => !listed.has(c)))
      expect(describeError(new ClientError(code, 'x')).exit, code).toBe(2);
  });
});
