import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fromBase64url,
  fromBase64urlPortable,
  fromHex,
  toBase64url,
  toBase64urlPortable,
  toHex,
} from '../../src/bytes/index.ts';
import { isProtocolError } from '../../src/errors.ts';
import { encode as cborgEncode, rfc8949EncodeOptions } from 'cborg';
import { decodeByReencoding, decodeCanonical, encodeCanonical } from '../../src/codec/cbor.ts';

// RFC 8949 Appendix A examples that are in our subset (no floats, no tags, no undefined) and
// already in deterministic form (§4.2.1).
const APPENDIX_A: ReadonlyArray<readonly [unknown, string]> = [
  [0, '00'],
  [1, '01'],
  [10, '0a'],
  [23, '17'],
  [24, '1818'],
  [25, '1819'],
  [100, '1864'],
  [1000, '1903e8'],
  [1000000, '1a000f4240'],
  [1000000000000, '1b000000e8d4a51000'],
  [-1, '20'],
  [-10, '29'],
  [-100, '3863'],
  [-1000, '3903e7'],
  [false, 'f4'],
  [true, 'f5'],
  [null, 'f6'],
  [new Uint8Array(0), '40'],
  [fromHex('01020304'), '4401020304'],
  ['', '60'],
  ['a', '6161'],
  ['IETF', '6449455446'],
  ['"\\', '62225c'],
  ['\u00fc', '62c3bc'],
  ['\u6c34', '63e6b0b4'],
  ['\ud800\udd51', '64f0908591'],
  [[], '80'],
  [[1, 2, 3], '83010203'],
  [[1, [2, 3], [4, 5]], '8301820203820405'],
  [Array.from({ length: 25 }, (_, i) => i + 1), '98190102030405060708090a0b0c0d0e0f101112131415161718181819'],
  [{}, 'a0'],
  [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
  [['a', { b: 'c' }], '826161a161626163'],
  [{ a: 'A', b: 'B', c: 'C', d: 'D', e: 'E' }, 'a56161614161626142616361436164614461656145'],
];

// Well-formed CBOR that is not the one canonical encoding of its value, or outside our subset.
const REFUSED: ReadonlyArray<readonly [string, string, string]> = [
  ['1 with a one-byte argument', '1801', 'DECODE_MALFORMED'],
  ['text length not minimal', '780161', 'DECODE_MALFORMED'],
  ['1.0 as a half float', 'f93c00', 'DECODE_NOT_CANONICAL'],
  ['1.5 as a half float', 'f93e00', 'DECODE_NOT_CANONICAL'],
  ['indefinite-length array', '9f01ff', 'DECODE_MALFORMED'],
  ['keys out of order', 'a2616201616102', 'DECODE_NOT_CANONICAL'],
  ['longer key before shorter', 'a262616101616202', 'DECODE_NOT_CANONICAL'],
  ['duplicate key', 'a2616101616102', 'DECODE_MALFORMED'],
  ['tagged value', 'c11a514b67b0', 'DECODE_MALFORMED'],
  ['integer key', 'a10102', 'DECODE_MALFORMED'],
  ['invalid UTF-8', '6180', 'DECODE_NOT_CANONICAL'],
  ['undefined', 'f7', 'DECODE_MALFORMED'],
  ['2^53, beyond safe integers', '1b0020000000000000', 'DECODE_MALFORMED'],
  ['trailing bytes', '0101', 'DECODE_MALFORMED'],
  ['truncated', '1a000f42', 'DECODE_MALFORMED'],
];

/** Values of our subset: safe integers, text, bytes, booleans, null, arrays, text-keyed maps. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.maxSafeInteger(),
    fc.integer({ min: -1_000, max: 1_000 }),
    fc.string({ unit: 'binary' }),
    fc.uint8Array({ maxLength: 40 }),
    fc.boolean(),
    fc.constant(null),
  ),
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('leaf'), tie('array'), tie('map')),
  array: fc.array(tie('node'), { maxLength: 5 }),
  map: fc
    .dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('node'), { maxKeys: 5 })
    .filter((m) => !Object.keys(m).includes('__proto__')),
})).node;

describe('canonical CBOR', () => {
  it.each(APPENDIX_A)('RFC 8949 Appendix A: %j ↔ %s', (v, hex) => {
    expect(toHex(encodeCanonical(v))).toBe(hex);
    const d = decodeCanonical(fromHex(hex));
    expect(d.ok).toBe(true);
    if (d.ok) expect(d.value).toEqual(v);
  });

  it.each(REFUSED)('refuses %s (%s) with %s', (_name, hex, code) => {
    const d = decodeCanonical(fromHex(hex));
    expect(d).toMatchObject({ ok: false, code });
  });

  it('sorts map keys by their encoding (length first), whatever the insertion order', () => {
    expect(toHex(encodeCanonical({ aa: 1, b: 2 }))).toBe('a261620262616101');
    expect(toHex(encodeCanonical({ 10: 1, 9: 2 }))).toBe('a261390262313001');
  });

  it('orders integer-like keys as text, which JS objects do not', () => {
    const d = decodeCanonical(fromHex('a261390262313001'));
    expect(d.ok).toBe(true);
    expect(decodeCanonical(fromHex('a262313001613902'))).toMatchObject({
      ok: false,
      code: 'DECODE_NOT_CANONICAL',
    });
  });

  it('refuses oversize and non-byte input before decoding', () => {
    expect(decodeCanonical(new Uint8Array(10), 5)).toMatchObject({ ok: false, code: 'DECODE_TOO_LARGE' });
    expect(decodeCanonical('00')).toMatchObject({ ok: false, code: 'DECODE_MALFORMED' });
    expect(decodeCanonical(new Uint8Array(0))).toMatchObject({ ok: false, code: 'DECODE_MALFORMED' });
  });

  it('round-trips every value of the subset', () => {
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encodeCanonical(v);
        const d = decodeCanonical(bytes);
        expect(d.ok).toBe(true);
        if (d.ok) expect(encodeCanonical(d.value)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it("encodes byte for byte as cborg's RFC 8949 deterministic encoder (the reference)", () => {
    const anyText = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme', maxLength: 80 }));
    fc.assert(
      fc.property(
        fc.oneof(
          value,
          fc.dictionary(
            anyText.filter((k) => k !== '__proto__'),
            value,
            { maxKeys: 4 },
          ),
        ),
        (v) => {
          expect(toHex(encodeCanonical(v))).toBe(toHex(cborgEncode(v, rfc8949EncodeOptions)));
        },
      ),
      { numRuns: 1_000 },
    );
    // Lengths at every head size.
    for (const n of [23, 24, 255, 256, 65_535, 65_536, 70_000]) {
      const v = {
        s: 'é'.repeat(n >> 1),
        b: new Uint8Array(n),
        a: Array.from({ length: n % 300 }, (_, i) => i),
      };
      expect(encodeCanonical(v)).toEqual(cborgEncode(v, rfc8949EncodeOptions));
    }
    expect(toHex(encodeCanonical(2 ** 53 - 1))).toBe('1b001fffffffffffff');
    expect(toHex(encodeCanonical(-(2 ** 53) + 1))).toBe('3b001ffffffffffffe');
  });

  it('refuses impossible lengths and deep nesting without allocating or overflowing the stack', () => {
    expect(decodeCanonical(fromHex('9b001fffffffffffff'))).toMatchObject({
      ok: false,
      code: 'DECODE_MALFORMED',
    });
    expect(decodeCanonical(fromHex('bb001fffffffffffff'))).toMatchObject({
      ok: false,
      code: 'DECODE_MALFORMED',
    });
    expect(decodeCanonical(fromHex('5a0000ffff00'))).toMatchObject({ ok: false, code: 'DECODE_MALFORMED' });
    expect(decodeCanonical(new Uint8Array(100_000).fill(0x81))).toMatchObject({
      ok: false,
      code: 'DECODE_MALFORMED',
    });
    const nested = new Uint8Array(66).fill(0x81);
    nested[65] = 0x00;
    expect(decodeCanonical(nested.subarray(1)).ok).toBe(true); // 64 arrays deep: fine, 65 refused
    expect(decodeCanonical(nested)).toMatchObject({ ok: false, code: 'DECODE_MALFORMED' });
  });

  it('refuses to encode a value nested deeper than it would decode, or a cyclic one', () => {
    let deep: unknown = 0;
    for (let i = 0; i < 64; i++) deep = [deep];
    expect(decodeCanonical(encodeCanonical(deep)).ok).toBe(true);
    expect(() => encodeCanonical([deep])).toThrow(/nesting too deep/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeCanonical(cyclic)).toThrow(expect.objectContaining({ code: 'DECODE_MALFORMED' }));
  });

  it('refuses a lone surrogate rather than writing U+FFFD for it (two strings, one encoding)', () => {
    for (const s of ['a\ud800', '\udc00', `${'é'.repeat(30)}\ud83d`, '\udc00\ud800', { k: ['x\udfff'] }]) {
      expect(() => encodeCanonical(s)).toThrow(expect.objectContaining({ code: 'DECODE_MALFORMED' }));
    }
    expect(toHex(encodeCanonical('a\ud83d\ude00'))).toBe('6561f09f9880'); // a paired surrogate is one code point
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0xd800, max: 0xdfff }),
        (s, at, unit) => {
          const i = Math.min(at, s.length);
          const t = s.slice(0, i) + String.fromCharCode(unit) + s.slice(i);
          const pairs = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;
          if (t.replace(pairs, '').match(/[\uD800-\uDFFF]/))
            expect(() => encodeCanonical(t)).toThrow(/lone UTF-16 surrogate/);
          else expect(decodeCanonical(encodeCanonical(t))).toEqual({ ok: true, value: t });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps a byte-order mark and U+FFFD that are really in the text', () => {
    for (const s of ['\ufeffabc', '\ufffd', `${'x'.repeat(40)}\ufeff`]) {
      const d = decodeCanonical(encodeCanonical(s));
      expect(d).toEqual({ ok: true, value: s });
    }
  });

  it('accepts exactly what re-encoding accepts, on mutated and random bytes', () => {
    const mutated = fc
      .tuple(value, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }))
      .map(([v, edits]) => {
        const b = encodeCanonical(v).slice();
        for (const [at, byte] of edits) if (b.length > 0) b[at % b.length] = byte;
        return b;
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ minLength: 1, maxLength: 30 })), (bytes) => {
        const fast = decodeCanonical(bytes);
        const reference = decodeByReencoding(bytes);
        expect(fast.ok).toBe(reference.ok);
        if (fast.ok && reference.ok) expect(fast.value).toEqual(reference.value);
      }),
      { numRuns: 10_000 },
    );
  });
});

describe('base64url (native fast path vs the portable @scure/base decoder)', () => {
  it('encodes identically', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(toBase64url(b)).toBe(toBase64urlPortable(b));
        expect(fromBase64url(toBase64url(b))).toEqual(b);
      }),
      { numRuns: 1_000 },
    );
  });

  it('accepts and refuses exactly the same strings', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ ';
    const text = fc.array(fc.constantFrom(...alphabet), { maxLength: 12 }).map((cs) => cs.join(''));
    const outcome = (f: () => Uint8Array) => {
      try {
        return toHex(f());
      } catch (e) {
        return isProtocolError(e) ? e.code : 'THREW';
      }
    };
    fc.assert(
      fc.property(text, (s) => {
        const portable = /^[A-Za-z0-9_-]*$/.test(s)
          ? outcome(() => fromBase64urlPortable(s))
          : 'DECODE_MALFORMED';
        expect(outcome(() => fromBase64url(s))).toBe(portable);
      }),
      { numRuns: 5_000 },
    );
    expect(fromBase64url('AQ')).toEqual(new Uint8Array([1]));
    expect(() => fromBase64url('AR')).toThrow(/not base64url/); // stray low bits
    expect(() => fromBase64url('A')).toThrow(/not base64url/); // impossible length
  });
});
