/** Durations on the command line: a number and its unit; a bare number is refused but for 0. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientError } from '../src/sdk/errors.ts';
import { parseDuration } from '../src/cli/output.ts';

const refused = (s: string): string => {
  try {
    parseDuration(s);
  } catch (e) {
    if (e instanceof ClientError) return `${e.code}: ${e.message}`;
    throw e;
  }
  throw new Error(`${s} was accepted`);
};

describe('parseDuration', () => {
  it('reads each unit', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration(' 60s ')).toBe(60_000);
    expect(parseDuration('0')).toBe(0);
  });

  it('refuses a bare number, naming the units to choose from', () => {
    expect(refused('60')).toBe('INVALID_ARGUMENT: 60 has no unit: write 60s, 60m, 60h or 60d');
  });

  it('refuses what is not a duration', () => {
    for (const s of ['', 'soon', '1.5h', '-5m', '5 m', '5w', 'h'])
      expect(refused(s)).toMatch(/^INVALID_ARGUMENT: not a duration/);
  });

  it('any whole number with a unit reads back as that many units (property)', () => {
    const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
    fc.assert(
      fc.property(
        fc.nat(1_000_000),
        fc.constantFrom(...(Object.keys(units) as Array<keyof typeof units>)),
        (n, u) => {
          expect(parseDuration(`${n}${u}`)).toBe(n * units[u]);
        },
      ),
    );
  });
});
