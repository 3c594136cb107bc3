/**
 * The event union: every typed, versioned item a channel carries. New kinds (documents,
 * signatures) are added to EVENT_SCHEMAS; decoders refuse kinds they do not know.
 */
import { z } from 'zod';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { type Decoded, fail } from '../errors.ts';
import {
  messageEvent,
  noticeEvent,
  pointsEvent,
  proposalEvent,
  readoutEvent,
  responseEvent,
} from './content.ts';
import {
  channelAcceptEvent,
  channelCloseEvent,
  channelDeclineEvent,
  channelReopenEvent,
  channelSuspendEvent,
  outreachEvent,
  trackConcludeEvent,
  trackOpenEvent,
  trackReviveEvent,
  trackSuspendEvent,
} from './lifecycle.ts';
import { documentCommentEvent, documentRevisionEvent, documentSignEvent } from './documents.ts';
import { heartbeatEvent, receiptEvent } from './signals.ts';
import { joinContextEvent } from './membership.ts';

export const eventSchema = z.discriminatedUnion('kind', [
  messageEvent,
  pointsEvent,
  proposalEvent,
  responseEvent,
  readoutEvent,
  noticeEvent,
  receiptEvent,
  heartbeatEvent,
  outreachEvent,
  channelAcceptEvent,
  channelDeclineEvent,
  channelSuspendEvent,
  channelReopenEvent,
  channelCloseEvent,
  trackOpenEvent,
  trackSuspendEvent,
  trackReviveEvent,
  trackConcludeEvent,
  documentRevisionEvent,
  documentCommentEvent,
  documentSignEvent,
  joinContextEvent,
]);

export type ChannelEvent = z.infer<typeof eventSchema>;
export type EventKind = ChannelEvent['kind'];
export type EventOf<K extends EventKind> = Extract<ChannelEvent, { kind: K }>;

export const EVENT_KINDS: readonly EventKind[] = eventSchema.options.map((o) => o.shape.kind.value);

/** Maximum encoded size of one event (the MLS ciphertext adds its own overhead). */
export const MAX_EVENT_BYTES = 64 * 1024;

export function parseEvent(x: unknown): Decoded<ChannelEvent> {
  const r = eventSchema.safeParse(x);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  return fail('EVENT_INVALID', `event.${issue?.path.join('.') ?? ''}`, issue?.message ?? 'invalid event');
}

/** Canonical bytes of an event (typed input: validation happens when untrusted bytes are decoded). */
export function encodeEvent(e: ChannelEvent): Uint8Array {
  return encodeCanonical(e);
}

export function decodeEvent(b: unknown): Decoded<ChannelEvent> {
  const d = decodeCanonical(b, MAX_EVENT_BYTES);
  if (!d.ok) return d;
  return parseEvent(d.value);
}
