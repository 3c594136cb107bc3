/**
 * Input generators for the fuzz targets: arbitrary bytes and text, and — since random bytes rarely
 * pass a decoder's first check — mutations of valid inputs at three levels: raw bytes (flip,
 * truncate, extend, splice, huge CBOR lengths), CBOR structure (decode, change one node, re-encode
 * canonically, descending into embedded CBOR byte strings), and text/JSON (lines, characters,
 * JSON value trees). Everything is bounded in size so that no case can run long by construction.
 */
import fc from 'fast-check';
import { decodeCanonical, encodeCanonical } from '../../src/index.ts';

/** Upper bound on generated inputs (bytes or characters), well under every decoder's cap. */
export const MAX_FUZZ_BYTES = 64 * 1024;

/* ------------------------------------------------------------------ bytes */

/** CBOR heads that announce huge or impossible lengths, and other hostile fragments. */
const HOSTILE_FRAGMENTS: readonly Uint8Array[] = [
  Uint8Array.of(0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // bstr of 2^64-1 bytes
  Uint8Array.of(0x7a, 0x7f, 0xff, 0xff, 0xff), // tstr of 2^31-1 bytes
  Uint8Array.of(0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00), // array of 2^32 items
  Uint8Array.of(0xba, 0xff, 0xff, 0xff, 0xff), // map of 2^32-1 pairs
  Uint8Array.of(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // uint 2^64-1
  Uint8Array.of(0x3b, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), // nint beyond 2^53
  Uint8Array.of(0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), // float 1.0
  Uint8Array.of(0xf9, 0x7e, 0x00), // half NaN
  Uint8Array.of(0xc1, 0x00), // tag 1
  Uint8Array.of(0x5f, 0x41, 0x00, 0xff), // indefinite bstr
  Uint8Array.of(0x9f, 0x00, 0xff), // indefinite array
  Uint8Array.of(0xf7), // undefined
  Uint8Array.of(0xff), // break
  Uint8Array.of(0x1c), // reserved additional info
  Uint8Array.of(0x62, 0xc3, 0x28), // invalid UTF-8 text
  Uint8Array.of(0x18, 0x01), // non-minimal integer
  Uint8Array.of(0xa2, 0x61, 0x61, 0x00, 0x61, 0x61, 0x00), // duplicate key
  Uint8Array.of(0xa1, 0x69, ...new TextEncoder().encode('__proto__'), 0xa0), // __proto__ key
];

/** n nested CBOR arrays around 0 (deep nesting). */
export function nestedCbor(depth: number): Uint8Array {
  const out = new Uint8Array(depth + 1).fill(0x81);
  out[depth] = 0x00;
  return out;
}

type ByteOp =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; extra: Uint8Array }
  | { op: 'insert'; at: number; extra: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'duplicate'; at: number; n: number }
  | { op: 'hostile'; at: number; fragment: number }
  | { op: 'nest'; depth: number };

const pos = fc.nat({ max: 1 << 20 });
const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('flip' as const), at: pos, bit: fc.nat({ max: 7 }) }), weight: 4 },
  {
    arbitrary: fc.record({ op: fc.constant('set' as const), at: pos, value: fc.nat({ max: 255 }) }),
    weight: 3,
  },
  { arbitrary: fc.record({ op: fc.constant('truncate' as const), at: pos }), weight: 2 },
  {
    arbitrary: fc.record({ op: fc.constant('extend' as const), extra: fc.uint8Array({ maxLength: 16 }) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      at: pos,
      extra: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant('delete' as const), at: pos, n: fc.integer({ min: 1, max: 16 }) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('duplicate' as const),
      at: pos,
      n: fc.integer({ min: 1, max: 64 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('hostile' as const),
      at: pos,
      fragment: fc.nat({ max: HOSTILE_FRAGMENTS.length - 1 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant('nest' as const), depth: fc.integer({ min: 1, max: 20_000 }) }),
    weight: 1,
  },
);

function applyByteOp(b: Uint8Array, m: ByteOp): Uint8Array {
  const at = (x: number, len = b.length) => (len === 0 ? 0 : x % (len + 1));
  const cat = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  switch (m.op) {
    case 'flip': {
      if (b.length === 0) return b;
      const out = b.slice();
      const i = m.at % b.length;
      out[i] = (out[i] as number) ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      if (b.length === 0) return Uint8Array.of(m.value);
      const out = b.slice();
      out[m.at % b.length] = m.value;
      return out;
    }
    case 'truncate':
      return b.slice(0, at(m.at));
    case 'extend':
      return cat(b, m.extra);
    case 'insert': {
      const i = at(m.at);
      return cat(b.subarray(0, i), m.extra, b.subarray(i));
    }
    case 'delete': {
      const i = at(m.at);
      return cat(b.subarray(0, i), b.subarray(i + m.n));
    }
    case 'duplicate': {
      const i = at(m.at);
      return cat(b.subarray(0, i + m.n), b.subarray(i));
    }
    case 'hostile': {
      const i = at(m.at);
      return cat(b.subarray(0, i), HOSTILE_FRAGMENTS[m.fragment] as Uint8Array, b.subarray(i));
    }
    case 'nest':
      // wrap the whole input in `depth` one-element arrays
      return cat(new Uint8Array(m.depth).fill(0x81), b);
  }
}

/** Byte-level mutations (1–4 at once) of one of the seeds. */
export function mutatedBytes(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(byteOp, { minLength: 1, maxLength: 4 }))
    .map(([b, ops]) => ops.reduce(applyByteOp, b).slice(0, MAX_FUZZ_BYTES));
}

/* ------------------------------------------------------------------ CBOR structure */

type Tree = unknown;

/** Values a mutation may put in place of a node: every CBOR type we allow, plus look-alikes. */
export const cborReplacement: fc.Arbitrary<Tree> = fc.letrec<{ v: Tree }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
    fc.constantFrom(0, 1, -1, 2 ** 32, 2 ** 53 - 1, -(2 ** 53) + 1, 64, 65, 255, 256),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 10 }),
    fc.constantFrom('', 'v', 'kind', 'body', 'sig', '__proto__x', 'c_AAAAAAAAAAAAAAAAAAAAAA', 'application'),
    fc.uint8Array({ maxLength: 80 }),
    fc.constantFrom(new Uint8Array(32), new Uint8Array(64), new Uint8Array(16)),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('v'), { maxKeys: 4 }),
  ),
})).v;

type TreeOp =
  | { op: 'replace'; pick: number; value: Tree }
  | { op: 'delete'; pick: number }
  | { op: 'add'; pick: number; key: string; value: Tree }
  | { op: 'swap'; pick: number; other: number }
  | { op: 'copy'; pick: number; other: number }
  | { op: 'wrap'; pick: number; depth: number };

/** Structural edits of a decoded tree: the same six operations for CBOR values and for JSON. */
function treeOps(opts: {
  readonly value: fc.Arbitrary<Tree>;
  readonly keys: readonly string[];
  readonly maxWrap: number;
}): fc.Arbitrary<TreeOp> {
  const pair = (op: 'swap' | 'copy') => fc.record({ op: fc.constant(op), pick: fc.nat(), other: fc.nat() });
  return fc.oneof(
    {
      arbitrary: fc.record({ op: fc.constant('replace' as const), pick: fc.nat(), value: opts.value }),
      weight: 5,
    },
    { arbitrary: fc.record({ op: fc.constant('delete' as const), pick: fc.nat() }), weight: 2 },
    {
      arbitrary: fc.record({
        op: fc.constant('add' as const),
        pick: fc.nat(),
        key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...opts.keys)),
        value: opts.value,
      }),
      weight: 2,
    },
    { arbitrary: pair('swap'), weight: 2 },
    { arbitrary: pair('copy'), weight: 1 },
    {
      arbitrary: fc.record({
        op: fc.constant('wrap' as const),
        pick: fc.nat(),
        depth: fc.integer({ min: 1, max: opts.maxWrap }),
      }),
      weight: 1,
    },
  );
}

const treeOp = treeOps({
  value: cborReplacement,
  keys: ['v', 'kind', 'sig', 'body', 'extra'],
  maxWrap: 3000,
});

/** A node of a plain-data tree: where it sits, so it can be replaced. */
interface Slot {
  get(): Tree;
  set(v: Tree): void;
  remove(): void;
  /** A map node: where a key can be added. */
  readonly map?: Record<string, Tree>;
}

function isMap(v: Tree): v is Record<string, Tree> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Every node of the tree, including the insides of byte strings that hold canonical CBOR
 * (an envelope's body, an entry's envelope, a sealed event): mutating there and re-encoding
 * up the chain reaches the inner decoders with well-formed outer layers.
 */
function slots(root: { v: Tree }, embedded: boolean): Slot[] {
  const out: Slot[] = [];
  const visit = (get: () => Tree, set: (v: Tree) => void, remove: () => void, depth: number) => {
    const v = get();
    const slot: Slot = isMap(v) ? { get, set, remove, map: v } : { get, set, remove };
    out.push(slot);
    if (depth > 50) return;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++)
        visit(
          () => v[i],
          (x) => {
            v[i] = x;
          },
          () => {
            v.splice(i, 1);
          },
          depth + 1,
        );
    } else if (isMap(v)) {
      for (const k of Object.keys(v))
        visit(
          () => v[k],
          (x) => {
            v[k] = x;
          },
          () => {
            delete v[k];
          },
          depth + 1,
        );
    } else if (embedded && v instanceof Uint8Array && v.length > 0) {
      const inner = decodeCanonical(v);
      if (
        inner.ok &&
        typeof inner.value === 'object' &&
        inner.value !== null &&
        !(inner.value instanceof Uint8Array)
      ) {
        const box = { v: structuredClone(inner.value) as Tree };
        for (const s of slots(box, true)) {
          out.push({
            get: s.get,
            set: (x) => {
              s.set(x);
              set(encodeCanonical(box.v));
            },
            remove: () => {
              s.remove();
              set(encodeCanonical(box.v));
            },
            ...(s.map === undefined ? {} : { map: s.map }),
          });
        }
      }
    }
  };
  visit(
    () => root.v,
    (x) => {
      root.v = x;
    },
    () => {
      root.v = null;
    },
    0,
  );
  return out;
}

function wrap(v: Tree, depth: number): Tree {
  let x = v;
  for (let i = 0; i < depth; i++) x = [x];
  return x;
}

function applyTreeOp(root: { v: Tree }, m: TreeOp): void {
  const all = slots(root, true);
  const s = all[m.pick % all.length] as Slot;
  switch (m.op) {
    case 'replace':
      s.set(structuredClone(m.value));
      return;
    case 'delete':
      s.remove();
      return;
    case 'add': {
      const maps = all.filter((x) => x.map !== undefined);
      const target = maps[m.pick % Math.max(1, maps.length)];
      if (target?.map !== undefined) {
        target.map[m.key] = structuredClone(m.value);
        target.set(target.map);
      }
      return;
    }
    case 'swap': {
      const o = all[m.other % all.length] as Slot;
      const a = s.get();
      const b = o.get();
      s.set(structuredClone(b));
      o.set(structuredClone(a));
      return;
    }
    case 'copy':
      s.set(structuredClone((all[m.other % all.length] as Slot).get()));
      return;
    case 'wrap':
      s.set(wrap(s.get(), m.depth));
      return;
  }
}

/** Structural mutations of canonical CBOR seeds, re-encoded canonically (so they pass the codec). */
export function mutatedCbor(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const trees = seeds.map((s) => {
    const d = decodeCanonical(s);
    if (!d.ok) throw new Error(`fuzz seed is not canonical CBOR: ${d.message}`);
    return d.value;
  });
  if (trees.length === 0) throw new Error('mutatedCbor needs at least one seed');
  return fc
    .tuple(fc.nat({ max: trees.length - 1 }), fc.array(treeOp, { minLength: 1, maxLength: 3 }))
    .map(([i, ops]) => {
      const root = { v: structuredClone(trees[i]) as Tree };
      for (const op of ops) {
        try {
          applyTreeOp(root, op);
        } catch {
          // an op that cannot be re-encoded (e.g. too deep) leaves the tree as it was
        }
      }
      try {
        const out = encodeCanonical(root.v);
        return out.length > MAX_FUZZ_BYTES ? out.slice(0, MAX_FUZZ_BYTES) : out;
      } catch {
        return seeds[i] as Uint8Array;
      }
    });
}

/** Bytes for a CBOR decoder: random, byte-mutated and structure-mutated, and deep nesting. */
export function cborInputs(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const cbor = seeds.filter((s) => decodeCanonical(s).ok);
  return fc.oneof(
    { arbitrary: fc.uint8Array({ maxLength: 256 }), weight: 2 },
    { arbitrary: mutatedBytes(seeds), weight: 4 },
    // (seeds that are not CBOR — MLS, the fan-out form — get byte-level mutations only)
    { arbitrary: cbor.length > 0 ? mutatedCbor(cbor) : mutatedBytes(seeds), weight: 4 },
    { arbitrary: fc.integer({ min: 1, max: 60_000 }).map(nestedCbor), weight: 1 },
    { arbitrary: fc.constantFrom(...seeds), weight: 1 },
  );
}

/* ------------------------------------------------------------------ text and JSON */

type TextOp =
  | { op: 'insert'; at: number; s: string }
  | { op: 'delete'; at: number; n: number }
  | { op: 'replace'; at: number; s: string }
  | { op: 'truncate'; at: number }
  | { op: 'dupLine'; line: number }
  | { op: 'dropLine'; line: number }
  | { op: 'swapLines'; a: number; b: number }
  | { op: 'repeat'; at: number; n: number };

const SPECIAL_TEXT = [
  '\n',
  '\n\n',
  '\r\n',
  '\u2014 ',
  '\u2014',
  '+',
  ' ',
  '\t',
  '\u0000',
  '\u007f',
  '\uFFFD',
  '\uD800',
  '=',
  '==',
  '9007199254740993',
  '-1',
  '00',
  '{',
  '}',
  '[',
  ']',
  '"',
  '\\u0000',
  '\\u005f_proto__',
  '"__proto__":',
  'null',
  '1e400',
  '-0',
  '0.5',
];
const textPiece = fc.oneof(
  fc.constantFrom(...SPECIAL_TEXT),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
);
const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), at: pos, s: textPiece }),
  fc.record({ op: fc.constant('delete' as const), at: pos, n: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ op: fc.constant('replace' as const), at: pos, s: textPiece }),
  fc.record({ op: fc.constant('truncate' as const), at: pos }),
  fc.record({ op: fc.constant('dupLine' as const), line: fc.nat() }),
  fc.record({ op: fc.constant('dropLine' as const), line: fc.nat() }),
  fc.record({ op: fc.constant('swapLines' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant('repeat' as const), at: pos, n: fc.integer({ min: 2, max: 5000 }) }),
);

function applyTextOp(t: string, m: TextOp): string {
  const at = (x: number) => (t.length === 0 ? 0 : x % (t.length + 1));
  const lines = () => t.split('\n');
  switch (m.op) {
    case 'insert':
      return t.slice(0, at(m.at)) + m.s + t.slice(at(m.at));
    case 'delete':
      return t.slice(0, at(m.at)) + t.slice(at(m.at) + m.n);
    case 'replace':
      return t.slice(0, at(m.at)) + m.s + t.slice(at(m.at) + m.s.length);
    case 'truncate':
      return t.slice(0, at(m.at));
    case 'dupLine': {
      const l = lines();
      const i = m.line % l.length;
      l.splice(i, 0, l[i] as string);
      return l.join('\n');
    }
    case 'dropLine': {
      const l = lines();
      l.splice(m.line % l.length, 1);
      return l.join('\n');
    }
    case 'swapLines': {
      const l = lines();
      const i = m.a % l.length;
      const j = m.b % l.length;
      [l[i], l[j]] = [l[j] as string, l[i] as string];
      return l.join('\n');
    }
    case 'repeat': {
      const i = at(m.at);
      return t.slice(0, i) + t.slice(i, i + 4).repeat(m.n) + t.slice(i);
    }
  }
}

/** Character- and line-level mutations of text seeds. */
export function mutatedText(seeds: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(textOp, { minLength: 1, maxLength: 4 }))
    .map(([t, ops]) => ops.reduce(applyTextOp, t).slice(0, MAX_FUZZ_BYTES));
}

/** JSON-level replacements: any JSON value, and look-alikes of our fields. */
export const jsonReplacement: fc.Arbitrary<Tree> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    '',
    'A',
    'AAAA',
    'c_AAAAAAAAAAAAAAAAAAAAAA',
    'p_AAAAAAAAAAAAAAAAAAAAAA',
    'd_AAAAAAAAAAAAAAAAAAAAAA',
    'e_AAAAAAAAAAAAAAAAAAAAAA',
    -1,
    2 ** 53,
    1.5,
    1e308,
    null,
    [],
    {},
    { $b64u: 'AA' },
    { $b64u: '!' },
  ),
);

const jsonOp = treeOps({
  value: jsonReplacement,
  keys: ['kind', 'type', 'v', '__proto__', 'constructor'],
  maxWrap: 5000,
});

function applyJsonOp(root: { v: Tree }, m: TreeOp): void {
  const all = slots(root, false);
  const s = all[m.pick % all.length] as Slot;
  if (m.op === 'add') {
    const maps = all.filter((x) => x.map !== undefined);
    const target = maps[m.pick % Math.max(1, maps.length)];
    // defineProperty: a "__proto__" key becomes an own property, as JSON.parse makes it
    if (target?.map !== undefined)
      Object.defineProperty(target.map, m.key, {
        value: structuredClone(m.value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return;
  }
  if (m.op === 'wrap') {
    s.set(wrap(s.get(), m.depth));
    return;
  }
  switch (m.op) {
    case 'replace':
      s.set(structuredClone(m.value));
      return;
    case 'delete':
      s.remove();
      return;
    case 'swap': {
      const o = all[m.other % all.length] as Slot;
      const a = s.get();
      s.set(structuredClone(o.get()));
      o.set(structuredClone(a));
      return;
    }
    case 'copy':
      s.set(structuredClone((all[m.other % all.length] as Slot).get()));
      return;
  }
}

/** Structural mutations of JSON documents (as text), plus text mutations of the JSON. */
export function mutatedJson(seeds: readonly unknown[]): fc.Arbitrary<string> {
  const texts = seeds.map((s) => JSON.stringify(s));
  const structural = fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(jsonOp, { minLength: 1, maxLength: 3 }))
    .map(([i, ops]) => {
      const root = { v: JSON.parse(texts[i] as string) as Tree };
      try {
        for (const op of ops) applyJsonOp(root, op);
        return JSON.stringify(root.v).slice(0, MAX_FUZZ_BYTES * 4);
      } catch {
        return texts[i] as string; // too deep to handle here (deep text comes from the generators below)
      }
    });
  return fc.oneof(
    { arbitrary: structural, weight: 5 },
    { arbitrary: mutatedText(texts), weight: 3 },
    { arbitrary: fc.json({ maxDepth: 4 }), weight: 1 },
    {
      arbitrary: fc.integer({ min: 1, max: 200_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
      weight: 1,
    },
    {
      arbitrary: fc.integer({ min: 1, max: 100_000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
      weight: 1,
    },
  );
}

/** Text for a text decoder: random strings, mutations of seeds, and the seeds. */
export function textInputs(seeds: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 1 },
    { arbitrary: mutatedText(seeds), weight: 6 },
    { arbitrary: fc.constantFrom(...seeds), weight: 1 },
  );
}
