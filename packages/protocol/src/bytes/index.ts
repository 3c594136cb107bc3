import { base64urlnopad, hex } from '@scure/base';
import { ProtocolError } from '../errors.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Decodes UTF-8, refusing invalid sequences with DECODE_MALFORMED. */
export function fromUtf8(b: Uint8Array, at = 'text'): string {
  try {
    return decoder.decode(b);
  } catch {
    throw new ProtocolError('DECODE_MALFORMED', 'invalid UTF-8', at);
  }
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Constant-time equality (for MACs, hashes and commitments). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

export function isBytes(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array || (ArrayBuffer.isView(x) && x.constructor.name === 'Uint8Array');
}

/** Asserts a Uint8Array (optionally of an exact length); names the field, never prints it. */
export function assertBytes(x: unknown, length: number | undefined, field: string): asserts x is Uint8Array {
  if (!isBytes(x)) throw new ProtocolError('DECODE_MALFORMED', `${field} must be bytes`, field);
  if (length !== undefined && x.length !== length) {
    throw new ProtocolError('DECODE_MALFORMED', `${field} must be ${length} bytes, got ${x.length}`, field);
  }
}

/**
 * Node's Buffer, when the platform has one: base64url in native code, ~20× faster than the
 * portable @scure/base path on a 1 KiB envelope. Only a global is read — no import, no I/O — and
 * both paths give identical results (a property test checks it).
 */
interface NativeBase64 {
  from(b: ArrayBuffer, offset: number, length: number): { toString(enc: 'base64url'): string };
  from(s: string, enc: 'base64url'): Uint8Array;
}
const native = (globalThis as { Buffer?: NativeBase64 }).Buffer;

export function toBase64url(b: Uint8Array): string {
  if (native !== undefined && isBytes(b))
    return native.from(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength).toString('base64url');
  return base64urlnopad.encode(b);
}

export function fromBase64url(s: string, at = 'base64url'): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) {
    throw new ProtocolError('DECODE_MALFORMED', 'not base64url', at);
  }
  if (native !== undefined) {
    // Node's decoder is lenient about impossible lengths and stray low bits: accept only what
    // encodes back to the same text, as the strict portable decoder does.
    const buf = native.from(s, 'base64url');
    const out = new Uint8Array(buf); // a copy: small Buffers share a pool
    if (toBase64url(out) !== s) throw new ProtocolError('DECODE_MALFORMED', 'not base64url', at);
    return out;
  }
  return fromBase64urlPortable(s, at);
}

/** The portable decoder (@scure/base): what browsers use, and the reference in tests. */
export function fromBase64urlPortable(s: string, at = 'base64url'): Uint8Array {
  try {
    return base64urlnopad.decode(s);
  } catch {
    throw new ProtocolError('DECODE_MALFORMED', 'not base64url', at);
  }
}

/** The portable encoder (@scure/base). */
export function toBase64urlPortable(b: Uint8Array): string {
  return base64urlnopad.encode(b);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex (a table lookup per byte: it keys the hot memo maps of signature checks). */
export function toHex(b: Uint8Array): string {
  if (!isBytes(b)) return hex.encode(b); // throws as it always did
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i] as number];
  return s;
}

export function fromHex(s: string, at = 'hex'): Uint8Array {
  try {
    return hex.decode(s);
  } catch {
    throw new ProtocolError('DECODE_MALFORMED', 'not hex', at);
  }
}
