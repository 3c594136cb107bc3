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

export function toBase64url(b: Uint8Array): string {
  return base64urlnopad.encode(b);
}

export function fromBase64url(s: string, at = 'base64url'): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) {
    throw new ProtocolError('DECODE_MALFORMED', 'not base64url', at);
  }
  try {
    return base64urlnopad.decode(s);
  } catch {
    throw new ProtocolError('DECODE_MALFORMED', 'not base64url', at);
  }
}

export function toHex(b: Uint8Array): string {
  return hex.encode(b);
}

export function fromHex(s: string, at = 'hex'): Uint8Array {
  try {
    return hex.decode(s);
  } catch {
    throw new ProtocolError('DECODE_MALFORMED', 'not hex', at);
  }
}
