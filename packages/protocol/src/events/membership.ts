/**
 * join.context: what a device added to a channel after it opened needs to take part. MLS gives a
 * new member no keys for earlier epochs (RFC 9420 §16.6), so it cannot read what came before; the
 * member that added it discloses the channel's lifecycle, track and document events to it, and the
 * proposals and notices its party has still to answer, each as its sender committed to it (the
 * event and its salt: the receiver checks them against the sender's signed commitment in the
 * transcript it holds, §5). Other earlier events stay unreadable to it.
 */
import { z } from 'zod';
import { isBytes } from '../bytes/index.ts';
import type { DeviceId } from '../ids.ts';
import { baseFields } from './common.ts';

const deviceIdSchema = z.string().regex(/^d_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<DeviceId>;

/** At most this many disclosures per event (a longer history goes in several). */
export const MAX_JOIN_DISCLOSURES = 100;

export const joinContextEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('join.context'),
  /** The devices this context is for (just added by the sender, of the sender's party). */
  devices: z.array(deviceIdSchema).min(1).max(100),
  /** Earlier events: the log entry, the event's canonical CBOR, the salt its sender committed with. */
  disclosures: z
    .array(
      z.strictObject({
        seq: z.number().int().nonnegative(),
        // Up to one event's size (MAX_EVENT_BYTES; the join.context itself is bounded by it too).
        event: z.custom<Uint8Array>((x) => isBytes(x) && x.length > 0 && x.length <= 64 * 1024, {
          message: 'expected event bytes',
        }),
        salt: z.custom<Uint8Array>((x) => isBytes(x) && x.length === 16, { message: 'expected 16 bytes' }),
      }),
    )
    .max(MAX_JOIN_DISCLOSURES),
});
