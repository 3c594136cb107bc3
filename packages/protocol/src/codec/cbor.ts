/**
 * Canonical binary encoding for everything Backchannel signs or hashes:
 * deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding) via cborg.
 *
 * Allowed values: unsigned/negative integers (safe range), UTF-8 text, byte strings,
 * arrays, maps with text keys, true/false/null. No floats, no tags, no undefined,
 * no indefinite lengths. Decoding re-encodes and compares, so a non-canonical
 * encoding of the same value is refused (DECODE_NOT_CANONICAL): one value, one byte string.
 */
import { decode as cborDecode, encode as cborEncode, rfc8949EncodeOptions } from 'cborg';
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

/** Encodes a value canonically. Optional (undefined) map fields are omitted. Misuse throws. */
export function encodeCanonical(value: unknown): Uint8Array {
  return cborEncode(clean(value, '$'), rfc8949EncodeOptions);
}

/** Decodes untrusted bytes; refuses oversize, malformed and non-canonical input with a reason. */
export function decodeCanonical(bytes: unknown, maxBytes = DEFAULT_MAX_DECODE_BYTES): Decoded<CborValue> {
  if (!isBytes(bytes)) return fail('DECODE_MALFORMED', '$', 'input must be bytes');
  if (bytes.length > maxBytes) return fail('DECODE_TOO_LARGE', '$', `input exceeds ${maxBytes} bytes`);
  if (bytes.length === 0) return fail('DECODE_MALFORMED', '$', 'empty input');
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
