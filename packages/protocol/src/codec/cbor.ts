/**
 * Canonical binary encoding for everything Backchannel signs or hashes:
 * deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding) via cborg.
 *
 * Allowed values: unsigned/negative integers (safe range), UTF-8 text, byte strings,
 * arrays, maps with text keys, true/false/null. No floats, no tags, no undefined,
 * no indefinite lengths. Decoding re-encodes and compares, so a non-canonical
 * encoding of the same value is refused (DECODE_NOT_CANONICAL): one value, one byte string.
 */
import {
  decode as cborDecode,
  encode as cborEncode,
  encodeInto,
  type Token,
  Tokenizer,
  Type,
  rfc8949EncodeOptions,
} from 'cborg';
import { constantTimeEqual, isBytes } from '../bytes/index.ts';
import { type Decoded, fail, ProtocolError } from '../errors.ts';

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

/**
 * RFC 8949 §4.2.1 orders keys by their encodings; cborg's sorter encodes every key to compare.
 * Our keys are always text (clean() guarantees it), whose encodings order by UTF-8 length then
 * bytes — compared here without encoding.
 */
const encodeOptions = {
  ...rfc8949EncodeOptions,
  mapSorter: (a: (Token | Token[])[], b: (Token | Token[])[]): number => {
    const x = (a[0] as Token).value as string;
    const y = (b[0] as Token).value as string;
    return keyBefore(x, y) ? -1 : keyBefore(y, x) ? 1 : 0;
  },
};

/** Encodes a value canonically. Optional (undefined) map fields are omitted. Misuse throws. */
export function encodeCanonical(value: unknown): Uint8Array {
  const v = clean(value, '$');
  // Most values fit the scratch buffer: one copy out, no chunk allocations.
  try {
    const { written } = encodeInto(v, scratch, encodeOptions);
    return scratch.slice(0, written);
  } catch {
    return cborEncode(v, encodeOptions);
  }
}
const scratch = new Uint8Array(64 * 1024);

/**
 * Wraps cborg's tokenizer to refuse floats at the token level: a float that holds an integer
 * (1.0) decodes to the same JS number as the integer 1, so only the token tells them apart.
 */
class NoFloatTokenizer extends Tokenizer {
  override next(): Token {
    const t = super.next();
    if (t.type === Type.float) throw new ProtocolError('DECODE_NOT_CANONICAL', 'floats are not allowed', '$');
    return t;
  }
}

/** Thrown inside `canonical` when a string may hold replaced invalid UTF-8: take the slow path. */
const MAYBE_BAD_UTF8 = Symbol('maybe-bad-utf8');

/**
 * Converts a decoded value (maps as Map, in wire order) to plain data, checking what strict
 * decoding does not: text keys in canonical order, safe integers only.
 */
function canonical(v: unknown, at: string): unknown {
  if (typeof v === 'string') {
    if (v.includes('\uFFFD')) throw MAYBE_BAD_UTF8;
    return v;
  }
  if (v === null || typeof v === 'boolean' || isBytes(v)) return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v))
      throw new ProtocolError('DECODE_MALFORMED', 'only safe integers are allowed', at);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => canonical(x, `${at}[${i}]`));
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    let prev: string | undefined;
    for (const [k, x] of v) {
      if (typeof k !== 'string') throw new ProtocolError('DECODE_MALFORMED', 'map keys must be text', at);
      if (k.includes('\uFFFD')) throw MAYBE_BAD_UTF8;
      if (k === '__proto__') throw new ProtocolError('DECODE_MALFORMED', 'forbidden key', at);
      if (prev !== undefined && !keyBefore(prev, k)) {
        throw new ProtocolError('DECODE_NOT_CANONICAL', 'map keys are not in canonical order', at);
      }
      prev = k;
      out[k] = canonical(x, at);
    }
    return out;
  }
  throw new ProtocolError('DECODE_MALFORMED', `unsupported value of type ${typeof v}`, at);
}

/**
 * Decodes untrusted bytes; refuses oversize, malformed and non-canonical input with a reason.
 * Strict decoding refuses non-minimal integers and lengths, indefinite lengths, tags and
 * duplicate keys; floats are refused per token and key order is checked on the way out. A text
 * with U+FFFD (possibly replaced invalid UTF-8) is checked the slow way: re-encode and compare.
 */
export function decodeCanonical(bytes: unknown, maxBytes = DEFAULT_MAX_DECODE_BYTES): Decoded<CborValue> {
  if (!isBytes(bytes)) return fail('DECODE_MALFORMED', '$', 'input must be bytes');
  if (bytes.length > maxBytes) return fail('DECODE_TOO_LARGE', '$', `input exceeds ${maxBytes} bytes`);
  if (bytes.length === 0) return fail('DECODE_MALFORMED', '$', 'empty input');
  let raw: unknown;
  try {
    // A plain Uint8Array view, as cborg makes itself: decoded byte strings are never Buffers.
    const data =
      bytes.constructor === Uint8Array
        ? bytes
        : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const tokenizer = new NoFloatTokenizer(data, decodeOptions);
    raw = cborDecode(data, { ...decodeOptions, useMaps: true, tokenizer });
  } catch (e) {
    if (e instanceof ProtocolError) return fail(e.code, e.at ?? '$', e.message);
    const reason = e instanceof Error ? e.message.replace(/^CBOR decode error: /, '') : 'invalid CBOR';
    return fail('DECODE_MALFORMED', '$', `invalid CBOR: ${reason.slice(0, 120)}`);
  }
  try {
    return { ok: true, value: canonical(raw, '$') as CborValue };
  } catch (e) {
    if (e instanceof ProtocolError) return fail(e.code, e.at ?? '$', e.message);
    if (e !== MAYBE_BAD_UTF8) return fail('DECODE_MALFORMED', '$', 'invalid CBOR value');
  }
  return decodeByReencoding(bytes);
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
