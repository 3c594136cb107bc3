/** Channel and track lifecycle events. */
import { z } from 'zod';
import { baseFields, partyIdSchema, reasonSchema, textSchema, trackIdSchema } from './common.ts';

export const outreachEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('outreach'),
  from: partyIdSchema,
  to: partyIdSchema,
  note: textSchema(2_000),
  /** A mediator relays blind (relay only) or reads as a member. */
  mediator: z.enum(['none', 'blind', 'member']).optional(),
  /**
   * The channel's delivery bound (ms): the relay must log every envelope it receipts within this
   * long, or its receipt and the log prove it delayed it (attest/relay-receipt.ts).
   */
  deliveryBoundMs: z
    .number()
    .int()
    .min(1_000)
    .max(7 * 86_400_000)
    .optional(),
});

const channelChange = <K extends string>(kind: K) =>
  z.strictObject({ ...baseFields, kind: z.literal(kind), reason: reasonSchema.optional() });

export const channelAcceptEvent = channelChange('channel.accept');
export const channelDeclineEvent = channelChange('channel.decline');
export const channelSuspendEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('channel.suspend'),
  reason: reasonSchema,
});
export const channelReopenEvent = channelChange('channel.reopen');
export const channelCloseEvent = channelChange('channel.close');

export const trackOpenEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('track.open'),
  trackId: trackIdSchema,
  name: z.string().min(1).max(200),
});
export const trackSuspendEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('track.suspend'),
  trackId: trackIdSchema,
  reason: reasonSchema,
});
export const trackReviveEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('track.revive'),
  trackId: trackIdSchema,
  reason: reasonSchema.optional(),
});
export const trackConcludeEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('track.conclude'),
  trackId: trackIdSchema,
  reason: reasonSchema.optional(),
});
