/**
 * The binary form of a FanoutMessage between relay nodes: a magic byte, a version, the sending
 * node's id, then length-prefixed fields (numbers as float64, safe integers only). A message too
 * large for the transport is split by channel; a channel still too large travels without its
 * entries (a hint: receivers catch up from the store). Decoding checks every length.
 */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import type { FanoutMessage, PublishedChannel, PublishedEntry, PublishedInboxItem } from './fanout.ts';

const MAGIC = 0xbc;
const VERSION = 1;

class Writer {
  #buf: Uint8Array;
  #view: DataView;
  #at = 0;

  constructor(size = 1024) {
    this.#buf = new Uint8Array(size);
    this.#view = new DataView(this.#buf.buffer);
  }

  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#at));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(x: number): void {
    this.#room(1);
    this.#buf[this.#at++] = x;
  }

  u32(x: number): void {
    this.#room(4);
    this.#view.setUint32(this.#at, x);
    this.#at += 4;
  }

  num(x: number): void {
    this.#room(8);
    this.#view.setFloat64(this.#at, x);
    this.#at += 8;
  }

  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.#room(b.length);
    this.#buf.set(b, this.#at);
    this.#at += b.length;
  }

  str(s: string): void {
    this.bytes(new TextEncoder().encode(s));
  }

  get length(): number {
    return this.#at;
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#at);
  }
}

export class FanoutDecodeError extends Error {
  override readonly name = 'FanoutDecodeError';
  readonly code = 'FANOUT_MALFORMED' as const;
}

class Reader {
  readonly #b: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(b: Uint8Array) {
    this.#b = b;
    this.#view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  #need(n: number, what: string): void {
    if (this.#at + n > this.#b.length) throw new FanoutDecodeError(`truncated at ${what}`);
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#b[this.#at++] as number;
  }

  u32(what: string): number {
    this.#need(4, what);
    const x = this.#view.getUint32(this.#at);
    this.#at += 4;
    return x;
  }

  num(what: string): number {
    this.#need(8, what);
    const x = this.#view.getFloat64(this.#at);
    this.#at += 8;
    if (!Number.isSafeInteger(x) || x < 0) throw new FanoutDecodeError(`${what} is not a count`);
    return x;
  }

  bytes(what: string): Uint8Array {
    const n = this.u32(what);
    this.#need(n, what);
    const out = this.#b.slice(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  str(what: string): string {
    const b = this.bytes(what);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw new FanoutDecodeError(`${what} is not UTF-8`);
    }
  }

  count(what: string): number {
    const n = this.u32(what);
    // Every element takes at least one byte: a count beyond the rest is a lie.
    if (n > this.#b.length - this.#at) throw new FanoutDecodeError(`${what} count exceeds the message`);
    return n;
  }

  end(): void {
    if (this.#at !== this.#b.length) throw new FanoutDecodeError('trailing bytes');
  }
}

function writeChannel(w: Writer, ch: PublishedChannel, withEntries: boolean): void {
  w.str(ch.channel);
  w.num(ch.checkpoint.size);
  w.str(ch.checkpoint.note);
  const entries = withEntries ? ch.entries : [];
  w.u32(entries.length);
  for (const e of entries) {
    w.num(e.seq);
    w.bytes(e.entry);
    w.u32(e.removed.length);
    for (const d of e.removed) w.str(d);
  }
}

function writeInbox(w: Writer, i: PublishedInboxItem): void {
  w.str(i.party);
  w.num(i.cursor);
  w.str(i.channel);
  w.num(i.seq);
  w.bytes(i.entry);
}

function header(origin: string): Writer {
  const w = new Writer();
  w.u8(MAGIC);
  w.u8(VERSION);
  w.str(origin);
  return w;
}

/** Replaces the empty revoked list at the end of an assembled payload (device ids are short). */
function assembleWithRevoked(payload: Uint8Array, revoked: readonly DeviceId[]): Uint8Array {
  const w = new Writer();
  w.u32(revoked.length);
  for (const d of revoked) w.str(d);
  const tail = w.finish();
  const out = new Uint8Array(payload.length - 4 + tail.length);
  out.set(payload.subarray(0, payload.length - 4), 0);
  out.set(tail, payload.length - 4);
  return out;
}

function assemble(
  origin: string,
  channels: readonly Uint8Array[],
  inbox: readonly Uint8Array[],
  revoked: readonly DeviceId[] = [],
): Uint8Array {
  const w = new Writer();
  w.u32(revoked.length);
  for (const d of revoked) w.str(d);
  const tail = w.finish();
  return assembleParts(origin, channels, inbox, tail);
}

function assembleParts(
  origin: string,
  channels: readonly Uint8Array[],
  inbox: readonly Uint8Array[],
  tail: Uint8Array,
): Uint8Array {
  const w = header(origin);
  const head = w.finish();
  let n = head.length + 8 + tail.length;
  for (const c of channels) n += c.length;
  for (const i of inbox) n += i.length;
  const out = new Uint8Array(n);
  const view = new DataView(out.buffer);
  out.set(head, 0);
  let at = head.length;
  view.setUint32(at, channels.length);
  at += 4;
  for (const c of channels) {
    out.set(c, at);
    at += c.length;
  }
  view.setUint32(at, inbox.length);
  at += 4;
  for (const i of inbox) {
    out.set(i, at);
    at += i.length;
  }
  out.set(tail, at);
  return out;
}

/**
 * Encodes a message as one or more payloads of at most maxBytes each (a channel whose entries
 * alone exceed it goes without them; an inbox item that does is left out: inbox pushes are hints).
 */
export function encodeFanout(origin: string, m: FanoutMessage, maxBytes: number): Uint8Array[] {
  const overhead = header(origin).length + 12;
  const budget = maxBytes - overhead;
  const parts: Uint8Array[] = [];
  for (const ch of m.channels) {
    let w = new Writer();
    writeChannel(w, ch, true);
    if (w.length > budget) {
      w = new Writer();
      writeChannel(w, ch, false);
    }
    parts.push(w.finish());
  }
  const items: Uint8Array[] = [];
  for (const i of m.inbox) {
    const w = new Writer();
    writeInbox(w, i);
    if (w.length <= budget) items.push(w.finish());
  }
  const out: Uint8Array[] = [];
  let chans: Uint8Array[] = [];
  let inbox: Uint8Array[] = [];
  let used = 0;
  const flush = () => {
    if (chans.length > 0 || inbox.length > 0) out.push(assemble(origin, chans, inbox));
    chans = [];
    inbox = [];
    used = 0;
  };
  for (const p of parts) {
    if (used + p.length > budget) flush();
    chans.push(p);
    used += p.length;
  }
  for (const p of items) {
    if (used + p.length > budget) flush();
    inbox.push(p);
    used += p.length;
  }
  flush();
  const revoked = m.revoked ?? [];
  if (revoked.length > 0) {
    if (out.length === 0) out.push(assemble(origin, [], [], revoked));
    else out[out.length - 1] = assembleWithRevoked(out[out.length - 1] as Uint8Array, revoked);
  }
  return out;
}

export function decodeFanout(b: Uint8Array): { origin: string; message: FanoutMessage } {
  const r = new Reader(b);
  if (r.u8('magic') !== MAGIC) throw new FanoutDecodeError('not a fan-out message');
  if (r.u8('version') !== VERSION) throw new FanoutDecodeError('unknown fan-out version');
  const origin = r.str('origin');
  const channels: PublishedChannel[] = [];
  const nc = r.count('channels');
  for (let c = 0; c < nc; c++) {
    const channel = r.str('channel') as ChannelId;
    const size = r.num('size');
    const note = r.str('note');
    const entries: PublishedEntry[] = [];
    const ne = r.count('entries');
    for (let e = 0; e < ne; e++) {
      const seq = r.num('seq');
      const entry = r.bytes('entry');
      const removed: DeviceId[] = [];
      const nr = r.count('removed');
      for (let k = 0; k < nr; k++) removed.push(r.str('removed') as DeviceId);
      entries.push({ seq, entry, removed });
    }
    channels.push({ channel, entries, checkpoint: { size, note } });
  }
  const inbox: PublishedInboxItem[] = [];
  const ni = r.count('inbox');
  for (let i = 0; i < ni; i++) {
    inbox.push({
      party: r.str('party') as PartyId,
      cursor: r.num('cursor'),
      channel: r.str('channel') as ChannelId,
      seq: r.num('seq'),
      entry: r.bytes('entry'),
    });
  }
  const revoked: DeviceId[] = [];
  const nr = r.count('revoked');
  for (let i = 0; i < nr; i++) revoked.push(r.str('revoked') as DeviceId);
  r.end();
  return { origin, message: revoked.length === 0 ? { channels, inbox } : { channels, inbox, revoked } };
}
