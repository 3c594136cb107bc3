/**
 * The canonical bytes of a LogEntry without a general-purpose encoder: the map's key order and
 * every length are fixed by RFC 8949 §4.2.1 (shorter keys first), so the relay writes them
 * directly. A test checks byte equality with protocol's encodeEntry for edge values.
 */
import type { LogEntry } from '@backchannel/protocol';

const te = new TextEncoder();

function head(major: number, n: number, out: number[]): void {
  const m = major << 5;
  if (n < 24) out.push(m | n);
  else if (n <= 0xff) out.push(m | 24, n);
  else if (n <= 0xffff) out.push(m | 25, n >>> 8, n & 0xff);
  else if (n <= 0xffffffff) out.push(m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  else {
    const hi = Math.floor(n / 2 ** 32);
    const lo = n >>> 0;
    out.push(m | 27, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff);
    out.push(lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
  }
}

function text(s: string, out: number[]): void {
  const b = te.encode(s);
  head(3, b.length, out);
  for (const x of b) out.push(x);
}

/** Same bytes as protocol's encodeEntry (canonical CBOR), for already-validated fields. */
export function encodeEntryFast(e: LogEntry): Uint8Array {
  if (!Number.isSafeInteger(e.seq) || e.seq < 0 || !Number.isSafeInteger(e.receivedAt) || e.receivedAt < 0) {
    throw new RangeError('seq and receivedAt must be non-negative safe integers');
  }
  const pre: number[] = [0xa6];
  text('v', pre);
  head(0, e.v, pre);
  text('seq', pre);
  head(0, e.seq, pre);
  text('sender', pre);
  text(e.sender, pre);
  text('channel', pre);
  text(e.channel, pre);
  text('envelope', pre);
  head(2, e.envelope.length, pre);
  const post: number[] = [];
  text('receivedAt', post);
  head(0, e.receivedAt, post);
  const out = new Uint8Array(pre.length + e.envelope.length + post.length);
  out.set(pre, 0);
  out.set(e.envelope, pre.length);
  out.set(post, pre.length + e.envelope.length);
  return out;
}
