import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64url } from '../../src/bytes/index.ts';
import { eventIdSchema } from '../../src/events/common.ts';
import { EVENT_ID_COUNTER_SPAN, eventIdFrom, parseEventId, sequencedEventId } from '../../src/ids.ts';

const counter = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const random10 = fc.uint8Array({ minLength: 10, maxLength: 10 });

/** The 16 bytes behind an event id. */
const body = (id: string) => fromBase64url(id.slice(2));
const counterOf = (id: string) =>
  body(id)
    .subarray(0, 6)
    .reduce((n, b) => n * 256 + b, 0);

describe('sequenced event ids', () => {
  it('are event ids like any other: the same format, accepted by the parser and the event schema', () => {
    fc.assert(
      fc.property(counter, random10, (n, r) => {
        const id = sequencedEventId(n, r);
        expect(id).toMatch(/^e_[A-Za-z0-9_-]{22}$/);
        expect(parseEventId(id)).toBe(id);
        expect(eventIdSchema.safeParse(id).success).toBe(true);
      }),
    );
  });

  it('carry the counter modulo 2^48, big-endian, then the 10 random bytes unchanged', () => {
    fc.assert(
      fc.property(counter, random10, (n, r) => {
        const id = sequencedEventId(n, r);
        expect(counterOf(id)).toBe(n % EVENT_ID_COUNTER_SPAN);
        expect([...body(id).subarray(6)]).toEqual([...r]);
        expect(id).toBe(eventIdFrom(Uint8Array.from([...body(id).subarray(0, 6), ...r])));
      }),
    );
    expect(counterOf(sequencedEventId(0x0102_0304_0506, new Uint8Array(10)))).toBe(0x0102_0304_0506);
    expect([...body(sequencedEventId(0x0102_0304_0506, new Uint8Array(10))).subarray(0, 6)]).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    expect(counterOf(sequencedEventId(EVENT_ID_COUNTER_SPAN + 7, new Uint8Array(10)))).toBe(7);
  });

  it('made one after another share their first 7 characters within each run of 64 (index locality)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: EVENT_ID_COUNTER_SPAN / 64 - 1 }),
        random10,
        random10,
        (k, r1, r2) => {
          const a = sequencedEventId(k * 64, r1);
          const b = sequencedEventId(k * 64 + 63, r2);
          expect(a.slice(0, 9)).toBe(b.slice(0, 9));
        },
      ),
    );
  });

  it('refuses a counter that is not a non-negative safe integer, and fewer than 10 random bytes', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])
      expect(() => sequencedEventId(bad, new Uint8Array(10))).toThrow(RangeError);
    expect(() => sequencedEventId(1, new Uint8Array(9))).toThrow(RangeError);
  });
});
