/** Receipts and heartbeats: the record of delivery and the pulse of the line. */
import { z } from 'zod';
import { baseFields, eventIdSchema } from './common.ts';

export const receiptEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('receipt'),
  type: z.enum(['delivered', 'read']),
  of: z.array(eventIdSchema).min(1).max(1_000),
});

export const heartbeatEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('heartbeat'),
  /** The sender's heartbeat interval: peers judge quiet/silent against it. */
  intervalMs: z
    .number()
    .int()
    .min(1_000)
    .max(7 * 24 * 3600 * 1000),
  /**
   * The sending device's view of the channel's lifecycle: `seen` is the last log entry it had
   * folded, `lifecycle` the entry of the last lifecycle change (outreach, channel.*) accepted at or
   * before it. Every member's reducer checks it against the transcript; an agreed-text attestation
   * uses it to show the channel was open when each signature was logged (attest/claims.ts).
   */
  view: z
    .strictObject({
      seen: z.number().int().nonnegative(),
      lifecycle: z.number().int().nonnegative(),
    })
    .optional(),
});
