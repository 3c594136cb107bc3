/**
 * WebSocket frames (JSON text). Client → relay:
 *   {type:'auth', device, time, sig}      first frame; sig as a signed request ('WS', '/v1/ws', time, empty body)
 *   {type:'subscribe', channel, from[, binary]}  stream entries with seq ≥ from (catch-up, then live);
 *                                         binary: true → entries as binary frames (below)
 *   {type:'unsubscribe', channel}
 *   {type:'send', id, envelope}           append an envelope (base64url wire) as this device
 *   {type:'ping'}
 * Relay → client:
 *   {type:'ready', device}  {type:'subscribed', channel, from}  {type:'unsubscribed', channel, code}
 *   {type:'entry', channel, seq, entry}  {type:'checkpoint', channel, size, checkpoint}
 *   {type:'inbox', item:{cursor, channel, seq, entry}}  {type:'pong'}
 *   {type:'ack', id, seq, leafIndex, receivedAt, inclusionProof, checkpoint, size, duplicate, receipt}
 *   {type:'error', code, message[, channel][, id][, retryAfterMs]}   (RATE_LIMITED: every frame takes a token)
 * Binary frames (after auth; the envelope's bytes as they are, no base64 and no JSON):
 *   send  0x01 | id u32 | envelope wire bytes
 *   ack   0x02 | id u32 | flags u8 (bit 0: duplicate) | seq u64 | receivedAt u64 | size u64
 *         | n u8 | n × 32-byte inclusion proof hashes | checkpoint length u16 | checkpoint UTF-8
 *         | receipt length u16 | receipt CBOR({body, [batch,] sig})
 *   entry 0x03 | channel id (24 ASCII bytes) | seq u64 | entry bytes   (to a `binary` subscription)
 *   (integers big-endian; leafIndex = seq.) A refused binary send is answered with the text
 *   frame {type:'error', code, message, id} — the same codes as HTTP and `send`.
 */
import type { ChannelId } from '@backchannel/protocol';
import { z } from 'zod';
import { toB64u } from '../bytes.node.ts';
import { type RelayErrorCode, RelayError } from '../errors.ts';
import { parseJsonSafe } from '../http/body.ts';
import { type AppendOutcome, appendAnswerJson } from '../channels/accept.ts';

const channelId = z.string().regex(/^c_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<ChannelId>;

const clientFrameSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('auth'),
    device: z.string().max(64),
    time: z.number().int().nonnegative(),
    sig: z.string().max(128),
  }),
  z.strictObject({
    type: z.literal('subscribe'),
    channel: channelId,
    from: z.number().int().nonnegative().default(0),
    /** Entries as binary frames (0x03 | channel | seq | entry) instead of JSON text. */
    binary: z.boolean().default(false),
  }),
  z.strictObject({ type: z.literal('unsubscribe'), channel: channelId }),
  z.strictObject({
    type: z.literal('send'),
    id: z.union([z.string().max(64), z.number().int()]),
    envelope: z.string(),
  }),
  z.strictObject({ type: z.literal('ping') }),
]);

export type ClientFrame = z.infer<typeof clientFrameSchema>;

export function parseClientFrame(text: string, maxChars: number): ClientFrame {
  if (text.length > maxChars)
    throw new RelayError('FRAME_TOO_LARGE', `frames are at most ${maxChars} characters`);
  let v: unknown;
  try {
    v = parseJsonSafe(text);
  } catch {
    throw new RelayError('FRAME_INVALID', 'frame is not valid JSON');
  }
  const r = clientFrameSchema.safeParse(v);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new RelayError(
      'FRAME_INVALID',
      `frame ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return r.data;
}

export const frames = {
  ready: (device: string) => JSON.stringify({ type: 'ready', device }),
  subscribed: (channel: ChannelId, from: number) => JSON.stringify({ type: 'subscribed', channel, from }),
  unsubscribed: (channel: ChannelId, code: RelayErrorCode | undefined) =>
    JSON.stringify({ type: 'unsubscribed', channel, ...(code === undefined ? {} : { code }) }),
  entry: (channel: ChannelId, seq: number, entry: Uint8Array) =>
    `{"type":"entry","channel":"${channel}","seq":${seq},"entry":"${toB64u(entry)}"}`,
  checkpoint: (channel: ChannelId, size: number, checkpoint: string) =>
    JSON.stringify({ type: 'checkpoint', channel, size, checkpoint }),
  inbox: (item: { cursor: number; channel: ChannelId; seq: number; entry: Uint8Array }) =>
    JSON.stringify({
      type: 'inbox',
      item: { cursor: item.cursor, channel: item.channel, seq: item.seq, entry: toB64u(item.entry) },
    }),
  error: (
    code: RelayErrorCode,
    message: string,
    channel?: ChannelId,
    id?: string | number,
    retryAfterMs?: number,
  ) =>
    JSON.stringify({
      type: 'error',
      code,
      message,
      ...(channel === undefined ? {} : { channel }),
      ...(id === undefined ? {} : { id }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    }),
  ack: (id: string | number, answer: AppendOutcome) =>
    JSON.stringify({ type: 'ack', id, ...appendAnswerJson(answer) }),
  pong: () => '{"type":"pong"}',
};

/** Close codes (4000–4999 are the application's). */
export const CLOSE = {
  GOING_AWAY: 1001,
  /** The relay could not check the auth frame now (its database is unreachable): try again later. */
  TRY_AGAIN_LATER: 1013,
  AUTH_FAILED: 4401,
  REVOKED: 4403,
  AUTH_TIMEOUT: 4408,
  SLOW_CONSUMER: 4429,
  TOO_MANY_ERRORS: 4400,
  TOO_MANY_CONNECTIONS: 4409,
} as const;

/** Kind bytes of binary frames. */
export const BINARY = { SEND: 0x01, ACK: 0x02, ENTRY: 0x03 } as const;

/** A log entry as a binary frame: 0x03 | channel id (24 ASCII bytes) | seq u64 | entry bytes. */
export function binaryEntry(channel: ChannelId, seq: number, entry: Uint8Array): Uint8Array {
  if (channel.length !== 24) throw new Error('channel ids are 24 characters');
  const out = new Uint8Array(33 + entry.length);
  out[0] = BINARY.ENTRY;
  for (let i = 0; i < 24; i++) out[1 + i] = channel.charCodeAt(i);
  setU64(new DataView(out.buffer), 25, seq);
  out.set(entry, 33);
  return out;
}

/** A binary `send` frame: its id and a copy of the envelope bytes. */
export function parseBinaryFrame(
  data: Uint8Array,
  maxBytes: number,
): { readonly type: 'send'; readonly id: number; readonly envelope: Uint8Array } {
  if (data.length > maxBytes) throw new RelayError('FRAME_TOO_LARGE', `frames are at most ${maxBytes} bytes`);
  if (data.length < 5 || data[0] !== BINARY.SEND) {
    throw new RelayError('FRAME_INVALID', 'a binary frame is 0x01 | id u32 | envelope bytes');
  }
  const id = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
  // A copy: the socket's buffer is not kept alive by the queued append.
  return { type: 'send', id, envelope: data.slice(5) };
}

const te = new TextEncoder();

function setU64(v: DataView, at: number, n: number): void {
  v.setUint32(at, Math.floor(n / 2 ** 32));
  v.setUint32(at + 4, n >>> 0);
}

/** The last checkpoint note encoded: a batch's acks share one (no re-encoding per ack). */
let lastNote: { text: string; bytes: Uint8Array } = { text: '', bytes: new Uint8Array(0) };

/** The binary `ack` of a binary send: the same answer as the JSON one (see the header). */
export function binaryAck(id: number, a: AppendOutcome): Uint8Array {
  if (lastNote.text !== a.checkpoint) lastNote = { text: a.checkpoint, bytes: te.encode(a.checkpoint) };
  const note = lastNote.bytes;
  const receipt = a.receipt;
  const n = a.inclusionProof.length;
  if (n > 255 || note.length > 0xffff || receipt.length > 0xffff)
    throw new Error('answer too large for a binary ack');
  const out = new Uint8Array(31 + n * 32 + 2 + note.length + 2 + receipt.length);
  const v = new DataView(out.buffer);
  out[0] = BINARY.ACK;
  v.setUint32(1, id);
  out[5] = a.duplicate ? 1 : 0;
  setU64(v, 6, a.seq);
  setU64(v, 14, a.receivedAt);
  setU64(v, 22, a.size);
  out[30] = n;
  let at = 31;
  for (const h of a.inclusionProof) {
    out.set(h, at);
    at += 32;
  }
  v.setUint16(at, note.length);
  out.set(note, at + 2);
  at += 2 + note.length;
  v.setUint16(at, receipt.length);
  out.set(receipt, at + 2);
  return out;
}
