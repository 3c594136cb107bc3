/**
 * The canonical bytes of a LogEntry without a general-purpose encoder: the map's key order and
 * every length are fixed by RFC 8949 §4.2.1 (shorter keys first), so the relay writes them
 * directly. A test checks byte equality with protocol's encodeEntry for edge values.
 */
import type { LogEntry } from '@backchannel/protocol';
import { CborOut } from './cbor-out.ts';

/** Same bytes as protocol's encodeEntry (canonical CBOR), for already-validated fields. */
export function encodeEntryFast(e: LogEntry): Uint8Array {
  if (!Number.isSafeInteger(e.seq) || e.seq < 0 || !Number.isSafeInteger(e.receivedAt) || e.receivedAt < 0) {
    throw new RangeError('seq and receivedAt must be non-negative safe integers');
  }
  const o = new CborOut(e.envelope.length + 160);
  o.head(5, 6);
  o.key('v');
  o.head(0, e.v);
  o.key('seq');
  o.head(0, e.seq);
  o.key('sender');
  o.text(e.sender);
  o.key('channel');
  o.text(e.channel);
  o.key('envelope');
  o.bytes(e.envelope);
  o.key('receivedAt');
  o.head(0, e.receivedAt);
  return o.done();
}
