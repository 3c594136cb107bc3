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
});
