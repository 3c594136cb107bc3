/**
 * A transcript entry: the relay's record of one accepted envelope. Its canonical encoding is
 * the Merkle leaf (RFC 9162 leaf hash = SHA-256(0x00 || entry)).
 *
 *   entry = CBOR({ v: 1, seq, channel, sender, receivedAt, envelope: bstr(wire) })
 */
import { z } from 'zod';
import { isBytes } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import { channelIdSchema, timestampSchema } from '../events/common.ts';
import type { ChannelId, DeviceId } from '../ids.ts';
import { decodeEnvelope, MAX_ENVELOPE_BYTES, type SignedEnvelope } from './envelope.ts';

export interface LogEntry {
  readonly v: 1;
  /** 0-based position in the channel log (= Merkle leaf index). */
  readonly seq: number;
  readonly channel: ChannelId;
  readonly sender: DeviceId;
  /** The relay's clock when it made the entry durable (ms since the Unix epoch). */
  readonly receivedAt: number;
  readonly envelope: Uint8Array;
}

const entrySchema = z.strictObject({
  v: z.literal(1),
  seq: z.number().int().nonnegative(),
  channel: channelIdSchema,
  sender: z.string().regex(/^d_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<DeviceId>,
  receivedAt: timestampSchema,
  envelope: z.custom<Uint8Array>((x) => isBytes(x)),
});

export function encodeEntry(e: LogEntry): Uint8Array {
  return encodeCanonical(e);
}

export interface DecodedEntry {
  readonly entry: LogEntry;
  readonly envelope: SignedEnvelope;
}

/** Decodes an entry and its envelope, checking that the two agree on channel and sender. */
export function decodeEntry(b: unknown): Decoded<DecodedEntry> {
  const d = decodeCanonical(b, MAX_ENVELOPE_BYTES + 1024);
  if (!d.ok) return d;
  const e = entrySchema.safeParse(d.value);
  if (!e.success) return fail('SCHEMA_INVALID', 'entry', e.error.issues[0]?.message ?? 'invalid entry');
  const env = decodeEnvelope(e.data.envelope);
  if (!env.ok) return env;
  if (env.value.body.channel !== e.data.channel || env.value.body.sender !== e.data.sender) {
    return fail('ENVELOPE_INVALID', 'entry.envelope', 'entry and envelope disagree on channel or sender');
  }
  return { ok: true, value: { entry: e.data as LogEntry, envelope: env.value } };
}
