/**
 * base64url on Node's Buffer: the relay's hot paths (every envelope in, every entry out) cannot
 * afford a generic radix conversion. Decoding stays strict: the text must be the canonical
 * unpadded base64url of the bytes it decodes to.
 */
export function toB64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Decodes canonical unpadded base64url; undefined when the text is not that. */
export function fromB64u(s: string): Uint8Array | undefined {
  if (s.length % 4 === 1 || !/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64url');
  if (buf.toString('base64url') !== s) return undefined;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
