import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64url } from '../../src/bytes/index.ts';
import { eventIdSchema } from '../../src/events/common.ts';
import { eventIdFrom, eventIdInRun, parseEventId } from '../../src/ids.ts';

const run4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const random12 = fc.uint8Array({ minLength: 12, maxLength: 12 });

/** The 16 bytes behind an event id. */
const body = (id: string) => fromBase64url(id.slice(2));

describe('event ids in runs', () => {
  it('are event ids like any other: the same format, accepted by the parser and the event schema', () => {
    fc.assert(
      fc.property(run4, random12, (run, r) => {
        const id = eventIdInRun(run, r);
        expect(id).toMatch(/^e_[A-Za-z0-9_-]{22}$/);
        expect(parseEventId(id)).toBe(id);
        expect(eventIdSchema.safeParse(id).success).toBe(true);
      }),
    );
  });

  it('are the run’s 4 bytes and then the 12 random bytes, unchanged', () => {
    fc.assert(
      fc.property(run4, random12, (run, r) => {
        const id = eventIdInRun(run, r);
        expect([...body(id).subarray(0, 4)]).toEqual([...run]);
        expect([...body(id).subarray(4)]).toEqual([...r]);
        expect(id).toBe(eventIdFrom(Uint8Array.from([...run, ...r])));
      }),
    );
    expect(eventIdInRun(Uint8Array.of(0, 0, 0, 0), new Uint8Array(12).fill(255))).toBe(
      'e_AAAAAP_______________w',
    );
  });

  it('of one run share their first 5 characters (they sit together in an index sorted by id)', () => {
    fc.assert(
      fc.property(run4, random12, random12, (run, r1, r2) => {
        expect(eventIdInRun(run, r1).slice(0, 7)).toBe(eventIdInRun(run, r2).slice(0, 7));
      }),
    );
  });

  it('refuses a run of fewer than 4 bytes and fewer than 12 random bytes', () => {
    expect(() => eventIdInRun(new Uint8Array(3), new Uint8Array(12))).toThrow(RangeError);
    expect(() => eventIdInRun(new Uint8Array(4), new Uint8Array(11))).toThrow(RangeError);
  });
});
