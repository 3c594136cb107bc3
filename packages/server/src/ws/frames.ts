/**
 * WebSocket frames (JSON text). Client → relay:
 *   {type:'auth', device, time, sig}      first frame; sig as a signed request ('WS', '/v1/ws', time, empty body)
 *   {type:'subscribe', channel, from}     stream entries with seq ≥ from (catch-up, then live)
 *   {type:'unsubscribe', channel}
 *   {type:'send', id, envelope}           append an envelope (base64url wire) as this device
 *   {type:'ping'}
 * Relay → client:
 *   {type:'ready', device}  {type:'subscribed', channel, from}  {type:'unsubscribed', channel, code}
 *   {type:'entry', channel, seq, entry}  {type:'checkpoint', channel, size, checkpoint}
 *   {type:'inbox', item:{cursor, channel, seq, entry}}  {type:'pong'}
 *   {type:'ack', id, seq, leafIndex, receivedAt, inclusionProof, checkpoint, size, duplicate}
 *   {type:'error', code, message[, channel][, id]}
 */
import type { ChannelId } from '@backchannel/protocol';
import { z } from 'zod';
import { toB64u } from '../bytes.node.ts';
import { type RelayErrorCode, RelayError } from '../errors.ts';
import { parseJsonSafe } from '../http/body.ts';
import type { AppendAnswer } from '../channels/accept.ts';

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
  error: (code: RelayErrorCode, message: string, channel?: ChannelId, id?: string | number) =>
    JSON.stringify({
      type: 'error',
      code,
      message,
      ...(channel === undefined ? {} : { channel }),
      ...(id === undefined ? {} : { id }),
    }),
  ack: (id: string | number, answer: AppendAnswer) => JSON.stringify({ type: 'ack', id, ...answer }),
  pong: () => '{"type":"pong"}',
};

/** Close codes (4000–4999 are the application's). */
export const CLOSE = {
  GOING_AWAY: 1001,
  AUTH_FAILED: 4401,
  REVOKED: 4403,
  AUTH_TIMEOUT: 4408,
  SLOW_CONSUMER: 4429,
  TOO_MANY_ERRORS: 4400,
} as const;
