import { z } from 'zod';
import type { ChannelId, EventId, PartyId, TrackId } from '../ids.ts';

export const eventIdSchema = z.string().regex(/^e_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<EventId>;
export const trackIdSchema = z.string().regex(/^t_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<TrackId>;
export const partyIdSchema = z.string().regex(/^p_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<PartyId>;
export const channelIdSchema = z.string().regex(/^c_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<ChannelId>;
export const timestampSchema = z.number().int().nonnegative();
/** Free text that another party wrote: bounded, never interpreted as markup anywhere. */
export const textSchema = (max = 20_000) => z.string().max(max);
export const reasonSchema = z.string().min(1).max(2_000);

/** Fields every event carries. `track` scopes the event to a topic inside the channel. */
export const baseFields = {
  v: z.literal(1),
  id: eventIdSchema,
  at: timestampSchema,
  track: trackIdSchema.optional(),
};
