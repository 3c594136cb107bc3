/**
 * Hand-written canonical CBOR (RFC 8949 §4.2.1: shortest heads, definite lengths) for the relay's
 * hot paths: log entries and receipts, whose map layouts are fixed. Tests check byte equality
 * with protocol's general encoder.
 */
const te = new TextEncoder();

/** A growable writer of the few canonical CBOR items the relay writes by hand. */
export class CborOut {
  buf: Uint8Array;
  off = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  #room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.off + n));
    next.set(this.buf.subarray(0, this.off));
    this.buf = next;
  }

  head(major: number, n: number): void {
    this.#room(9);
    const b = this.buf;
    const m = major << 5;
    if (n < 24) b[this.off++] = m | n;
    else if (n <= 0xff) {
      b[this.off++] = m | 24;
      b[this.off++] = n;
    } else if (n <= 0xffff) {
      b[this.off++] = m | 25;
      b[this.off++] = n >>> 8;
      b[this.off++] = n & 0xff;
    } else if (n <= 0xffffffff) {
      b[this.off++] = m | 26;
      new DataView(b.buffer, b.byteOffset).setUint32(this.off, n);
      this.off += 4;
    } else {
      b[this.off++] = m | 27;
      const v = new DataView(b.buffer, b.byteOffset);
      v.setUint32(this.off, Math.floor(n / 2 ** 32));
      v.setUint32(this.off + 4, n >>> 0);
      this.off += 8;
    }
  }

  bytes(x: Uint8Array): void {
    this.head(2, x.length);
    this.raw(x);
  }

  raw(x: Uint8Array): void {
    this.#room(x.length);
    this.buf.set(x, this.off);
    this.off += x.length;
  }

  text(s: string): void {
    const b = te.encode(s);
    this.head(3, b.length);
    this.raw(b);
  }

  /** A key known to be ASCII (its length is its byte length). */
  key(s: string): void {
    this.#room(1 + s.length);
    this.buf[this.off++] = 0x60 | s.length;
    for (let i = 0; i < s.length; i++) this.buf[this.off++] = s.charCodeAt(i);
  }

  done(): Uint8Array {
    return this.buf.slice(0, this.off);
  }
}
