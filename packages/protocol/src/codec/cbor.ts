/**
 * Canonical binary encoding for everything Backchannel signs or hashes:
 * deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding).
 *
 * Allowed values: unsigned/negative integers (safe range), UTF-8 text, byte strings,
 * arrays, maps with text keys, true/false/null. No floats, no tags, no undefined,
 * no indefinite lengths. Decoding accepts only the one canonical encoding of a value
 * (anything else is DECODE_NOT_CANONICAL or DECODE_MALFORMED): one value, one byte string.
 *
 * The encoder and strict decoder of this small subset are written here for speed (the hot path
 * of every signature and hash); cborg is the reference they are held to by property tests:
 * byte-equal encodings, and acceptance equal to cborg's decode-then-re-encode check.
 */
import { decode as cborDecode, encode as cborEncode, rfc8949EncodeOptions } from 'cborg';
import { constantTimeEqual, isBytes } from '../bytes/index.ts';
import { type Decoded, fail, ProtocolError, type ProtocolErrorCode } from '../errors.ts';

export type CborValue =
  | number
  | string
  | boolean
  | null
  | Uint8Array
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

/** Default cap on untrusted input (1 MiB); callers pass a tighter one where they know better. */
export const DEFAULT_MAX_DECODE_BYTES = 1 << 20;

const decodeOptions = {
  strict: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  useMaps: false,
  tags: [],
} as const;

/** Checks a value is in the allowed subset; returns a copy without undefined map fields. */
function clean(v: unknown, at: string): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v))
      throw new ProtocolError('DECODE_MALFORMED', 'only safe integers are allowed', at);
    return v;
  }
  if (isBytes(v)) return v;
  if (Array.isArray(v)) return v.map((x, i) => clean(x, `${at}[${i}]`));
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      throw new ProtocolError('DECODE_MALFORMED', 'only plain maps are allowed', at);
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      if (k === '__proto__') throw new ProtocolError('DECODE_MALFORMED', 'forbidden key', at);
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = clean(x, at);
    }
    return out;
  }
  throw new ProtocolError('DECODE_MALFORMED', `unsupported value of type ${typeof v}`, at);
}

/** Orders text keys as RFC 8949 §4.2.1 does (bytewise on their encodings: length first). */
const utf8 = new TextEncoder();
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Whether a string is well-formed UTF-16 (String.prototype.isWellFormed where the runtime has it). */
const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !loneSurrogate.test(s);
function keyBytes(k: string): Uint8Array | string {
  // ASCII keys (all of ours) compare as JS strings; others by their UTF-8 bytes.
  for (let i = 0; i < k.length; i++) if (k.charCodeAt(i) > 0x7f) return utf8.encode(k);
  return k;
}
function keyBefore(a: string, b: string): boolean {
  const x = keyBytes(a);
  const y = keyBytes(b);
  if (x.length !== y.length) return x.length < y.length;
  if (typeof x === 'string' && typeof y === 'string') return x < y;
  const xb = typeof x === 'string' ? utf8.encode(x) : x;
  const yb = typeof y === 'string' ? utf8.encode(y) : y;
  for (let i = 0; i < xb.length; i++) if (xb[i] !== yb[i]) return (xb[i] as number) < (yb[i] as number);
  return false;
}

/** Encodes a value canonically. Optional (undefined) map fields are omitted. Misuse throws. */
export function encodeCanonical(value: unknown): Uint8Array {
  const w = new Writer();
  w.value(value, '$');
  return w.out.slice(0, w.pos);
}

/**
 * The deterministic encoder for our subset (RFC 8949 §4.2.1: shortest heads, definite lengths,
 * map keys ordered by their encodings). cborg builds a token tree and sorts encoded keys per
 * map; this writes once into a growing buffer. Property tests hold it byte-equal to cborg's
 * rfc8949 encoder on every value of the subset (test/core/codec.test.ts).
 */
class Writer {
  out: Uint8Array = scratch;
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.out.length) return;
    const bigger = new Uint8Array(Math.max(this.out.length * 2, this.pos + n));
    bigger.set(this.out.subarray(0, this.pos));
    this.out = bigger;
  }

  private head(major: number, n: number): void {
    this.room(9);
    this.pos = writeHead(this.out, this.pos, major, n);
  }

  private text(s: string): void {
    const len = s.length;
    if (len < 24 && isAscii(s)) {
      this.room(1 + len);
      const o = this.out;
      o[this.pos++] = 0x60 | len;
      for (let i = 0; i < len; i++) o[this.pos++] = s.charCodeAt(i);
      return;
    }
    // A lone surrogate has no UTF-8 form: TextEncoder would write U+FFFD, so two different
    // strings would sign and hash the same. Refuse it instead.
    if (!isWellFormed(s))
      throw new ProtocolError('DECODE_MALFORMED', 'text holds a lone UTF-16 surrogate', '$');
    // Write the UTF-8 after room for the longest head it could need, then close the gap.
    const gap = headSize(len * 3);
    this.room(gap + len * 3);
    const { written } = utf8.encodeInto(s, this.out.subarray(this.pos + gap));
    const size = headSize(written);
    if (size !== gap) this.out.copyWithin(this.pos + size, this.pos + gap, this.pos + gap + written);
    this.pos = writeHead(this.out, this.pos, 3, written) + written;
  }

  value(v: unknown, at: string, depth = 0): void {
    if (typeof v === 'string') {
      this.text(v);
      return;
    }
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v))
        throw new ProtocolError('DECODE_MALFORMED', 'only safe integers are allowed', at);
      if (v >= 0) this.head(0, v);
      else this.head(1, -1 - v);
      return;
    }
    if (v === null || typeof v === 'boolean') {
      this.room(1);
      this.out[this.pos++] = v === null ? 0xf6 : v ? 0xf5 : 0xf4;
      return;
    }
    if (isBytes(v)) {
      this.head(2, v.length);
      this.room(v.length);
      this.out.set(v, this.pos);
      this.pos += v.length;
      return;
    }
    if (Array.isArray(v)) {
      this.head(4, v.length);
      if (depth >= MAX_DEPTH) throw new ProtocolError('DECODE_MALFORMED', 'nesting too deep', at);
      for (let i = 0; i < v.length; i++) this.value(v[i], `${at}[${i}]`, depth + 1);
      return;
    }
    if (typeof v === 'object') {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new ProtocolError('DECODE_MALFORMED', 'only plain maps are allowed', at);
      }
      if (depth >= MAX_DEPTH) throw new ProtocolError('DECODE_MALFORMED', 'nesting too deep', at);
      const map = v as Record<string, unknown>;
      const keys: string[] = [];
      for (const k of Object.keys(map)) {
        if (k === '__proto__') throw new ProtocolError('DECODE_MALFORMED', 'forbidden key', at);
        if (map[k] !== undefined) keys.push(k);
      }
      keys.sort(keyOrder);
      this.head(5, keys.length);
      for (const k of keys) {
        this.text(k);
        this.value(map[k], at, depth + 1);
      }
      return;
    }
    throw new ProtocolError('DECODE_MALFORMED', `unsupported value of type ${typeof v}`, at);
  }
}
/** Reused between calls: one copy out per encoding, no allocation for the common sizes. */
const scratch = new Uint8Array(64 * 1024);

function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

/** Writes the shortest head for `major` and argument `n` at `at`; returns the position after it. */
function writeHead(o: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    o[at] = m | n;
    return at + 1;
  }
  if (n < 0x100) {
    o[at] = m | 24;
    o[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    o[at] = m | 25;
    o[at + 1] = n >>> 8;
    o[at + 2] = n & 0xff;
    return at + 3;
  }
  if (n < 0x100000000) {
    o[at] = m | 26;
    writeUint32(o, at + 1, n);
    return at + 5;
  }
  o[at] = m | 27;
  writeUint32(o, at + 1, Math.floor(n / 0x100000000));
  writeUint32(o, at + 5, n >>> 0);
  return at + 9;
}

function writeUint32(o: Uint8Array, at: number, n: number): void {
  o[at] = n >>> 24;
  o[at + 1] = (n >>> 16) & 0xff;
  o[at + 2] = (n >>> 8) & 0xff;
  o[at + 3] = n & 0xff;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

const keyOrder = (a: string, b: string): number => (keyBefore(a, b) ? -1 : keyBefore(b, a) ? 1 : 0);

/** Deeper nesting than any message of ours is refused rather than risk the stack. */
const MAX_DEPTH = 64;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The strict decoder for our subset. Refuses, with a reason: truncation and trailing bytes,
 * non-shortest heads, indefinite lengths, tags, undefined and other simple values (MALFORMED);
 * floats, map keys out of canonical order and invalid UTF-8 (NOT_CANONICAL: no canonical
 * encoding of ours produces them); duplicate or non-text keys, integers beyond 2^53 − 1.
 * Property tests hold it to accept exactly what decode-then-re-encode (cborg) accepts.
 */
class Reader {
  pos = 0;
  constructor(
    private readonly b: Uint8Array,
    private readonly views: boolean,
  ) {}

  private bad(message: string, code: ProtocolErrorCode = 'DECODE_MALFORMED'): never {
    throw new ProtocolError(code, message, '$');
  }

  private need(n: number): void {
    if (this.pos + n > this.b.length) this.bad('invalid CBOR: unexpected end of data');
  }

  /** Reads a head's argument for additional info `ai`; returns -1 for indefinite lengths. */
  private arg(ai: number): number {
    const b = this.b;
    if (ai < 24) return ai;
    if (ai === 24) {
      this.need(1);
      const n = b[this.pos++] as number;
      if (n < 24) this.bad('invalid CBOR: integer encoded in more bytes than necessary');
      return n;
    }
    if (ai === 25) {
      this.need(2);
      const n = ((b[this.pos] as number) << 8) | (b[this.pos + 1] as number);
      this.pos += 2;
      if (n < 0x100) this.bad('invalid CBOR: integer encoded in more bytes than necessary');
      return n;
    }
    if (ai === 26) {
      this.need(4);
      const n = readUint32(b, this.pos);
      this.pos += 4;
      if (n < 0x10000) this.bad('invalid CBOR: integer encoded in more bytes than necessary');
      return n;
    }
    if (ai === 27) {
      this.need(8);
      const hi = readUint32(b, this.pos);
      const lo = readUint32(b, this.pos + 4);
      this.pos += 8;
      if (hi === 0) this.bad('invalid CBOR: integer encoded in more bytes than necessary');
      if (hi > 0x1fffff) this.bad('only safe integers are allowed');
      return hi * 0x100000000 + lo;
    }
    if (ai === 31) this.bad('invalid CBOR: indefinite lengths are not allowed');
    return this.bad('invalid CBOR: reserved additional information');
  }

  private text(n: number): string {
    this.need(n);
    const b = this.b;
    const start = this.pos;
    this.pos += n;
    if (n < 32) {
      let s = '';
      for (let i = start; i < start + n; i++) {
        const c = b[i] as number;
        if (c & 0x80) return this.utf8(start, n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.utf8(start, n);
  }

  private utf8(start: number, n: number): string {
    try {
      return strictUtf8.decode(this.b.subarray(start, start + n));
    } catch {
      return this.bad('invalid UTF-8 in a text string', 'DECODE_NOT_CANONICAL');
    }
  }

  value(depth: number): unknown {
    this.need(1);
    const ib = this.b[this.pos++] as number;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    switch (major) {
      case 0:
        return this.arg(ai);
      case 1: {
        const n = -1 - this.arg(ai);
        if (!Number.isSafeInteger(n)) this.bad('only safe integers are allowed');
        return n;
      }
      case 2: {
        const n = this.arg(ai);
        this.need(n);
        this.pos += n;
        return this.views ? this.b.subarray(this.pos - n, this.pos) : this.b.slice(this.pos - n, this.pos);
      }
      case 3:
        return this.text(this.arg(ai));
      case 4: {
        const n = this.arg(ai);
        if (depth >= MAX_DEPTH) this.bad('nesting too deep');
        this.need(n); // each item takes at least a byte: refuse impossible lengths before allocating
        const out: unknown[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
        return out;
      }
      case 5: {
        const n = this.arg(ai);
        if (depth >= MAX_DEPTH) this.bad('nesting too deep');
        this.need(2 * n);
        const out: Record<string, unknown> = {};
        let prev: string | undefined;
        for (let i = 0; i < n; i++) {
          this.need(1);
          const kb = this.b[this.pos++] as number;
          if (kb >> 5 !== 3) this.bad('map keys must be text');
          const k = this.text(this.arg(kb & 0x1f));
          if (prev !== undefined) {
            if (k === prev) this.bad('duplicate map key');
            if (!keyBefore(prev, k)) this.bad('map keys are not in canonical order', 'DECODE_NOT_CANONICAL');
          }
          if (k === '__proto__') this.bad('forbidden key');
          prev = k;
          out[k] = this.value(depth + 1);
        }
        return out;
      }
      case 6:
        return this.bad('invalid CBOR: tags are not allowed');
      default:
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        if (ai >= 25 && ai <= 27) this.bad('floats are not allowed', 'DECODE_NOT_CANONICAL');
        return this.bad('invalid CBOR: unsupported simple value');
    }
  }
}

function readUint32(b: Uint8Array, at: number): number {
  return (
    (b[at] as number) * 0x1000000 +
    (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number))
  );
}

/**
 * Decodes untrusted bytes; refuses oversize, malformed and non-canonical input with a reason.
 * Byte strings are copies, unless `views`: then they are views of `bytes` (no allocation; for
 * hot paths whose input is never written again, e.g. an envelope's wire bytes).
 */
export function decodeCanonical(
  bytes: unknown,
  maxBytes = DEFAULT_MAX_DECODE_BYTES,
  opts: { readonly views?: boolean } = {},
): Decoded<CborValue> {
  if (!isBytes(bytes)) return fail('DECODE_MALFORMED', '$', 'input must be bytes');
  if (bytes.length > maxBytes) return fail('DECODE_TOO_LARGE', '$', `input exceeds ${maxBytes} bytes`);
  if (bytes.length === 0) return fail('DECODE_MALFORMED', '$', 'empty input');
  // A plain Uint8Array view: decoded byte strings are never Buffers.
  const data =
    bytes.constructor === Uint8Array
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(data, opts.views === true);
  try {
    const value = r.value(0) as CborValue;
    if (r.pos !== data.length)
      return fail('DECODE_MALFORMED', '$', 'invalid CBOR: too many terminals, data makes no sense');
    return { ok: true, value };
  } catch (e) {
    if (e instanceof ProtocolError) return fail(e.code, e.at ?? '$', e.message);
    return fail('DECODE_MALFORMED', '$', 'invalid CBOR');
  }
}

/** The reference check: decode, re-encode canonically, compare the bytes. */
export function decodeByReencoding(bytes: Uint8Array): Decoded<CborValue> {
  let value: unknown;
  try {
    value = cborDecode(bytes, decodeOptions);
  } catch (e) {
    const reason = e instanceof Error ? e.message.replace(/^CBOR decode error: /, '') : 'invalid CBOR';
    return fail('DECODE_MALFORMED', '$', `invalid CBOR: ${reason.slice(0, 120)}`);
  }
  try {
    const again = cborEncode(clean(value, '$'), rfc8949EncodeOptions);
    if (!constantTimeEqual(again, bytes))
      return fail('DECODE_NOT_CANONICAL', '$', 'not the canonical encoding');
  } catch (e) {
    if (e instanceof ProtocolError) return fail(e.code, e.at ?? '$', e.message);
    return fail('DECODE_MALFORMED', '$', 'invalid CBOR value');
  }
  return { ok: true, value: value as CborValue };
}
