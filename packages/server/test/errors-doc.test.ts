import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RELAY_ERROR_CODES, RELAY_ERROR_STATUS, RelayError } from '../src/errors.ts';

const doc = readFileSync(new URL('../ERRORS.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|\s*(.+?)\s*\|\s*(.+?)\s*\|$/gm)].map(
  (m) => ({
    code: m[1] as string,
    status: Number(m[2]),
    meaning: m[3] as string,
    action: m[4] as string,
  }),
);

describe('ERRORS.md', () => {
  it('lists every relay error code exactly once, with its HTTP status', () => {
    expect(rows.map((r) => r.code).sort()).toEqual([...RELAY_ERROR_CODES].sort());
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length);
    for (const r of rows)
      expect(r.status, r.code).toBe(RELAY_ERROR_STATUS[r.code as keyof typeof RELAY_ERROR_STATUS]);
  });

  it('says what each code means and what to do', () => {
    for (const r of rows) {
      expect(r.meaning.length, r.code).toBeGreaterThan(10);
      expect(r.action.length, r.code).toBeGreaterThan(3);
    }
  });

  it('serializes errors as {error: {code, message}} without a stack', () => {
    const e = new RelayError('RATE_LIMITED', 'slow down', { retryAfterMs: 250 });
    expect(JSON.parse(JSON.stringify(e))).toEqual({
      error: { code: 'RATE_LIMITED', message: 'slow down', retryAfterMs: 250 },
    });
    expect(e.status).toBe(429);
  });
});
