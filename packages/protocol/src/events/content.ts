/** Substantive events: what the parties say to each other. */
import { z } from 'zod';
import { baseFields, eventIdSchema, textSchema, timestampSchema } from './common.ts';

export const messageEvent = z.strictObject({ ...baseFields, kind: z.literal('message'), text: textSchema() });

export const pointsEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('points'),
  title: textSchema(500),
  items: z.array(textSchema(5_000)).min(1).max(200),
});

export const proposalEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('proposal'),
  title: textSchema(500),
  text: textSchema(),
});

export const responseEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('response'),
  to: eventIdSchema,
  stance: z.enum(['accept', 'reject', 'counter', 'note']),
  text: textSchema(),
});

/** A public read-out, or (commit-then-reveal) the salted hash of one not yet published. */
export const readoutEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('readout'),
  round: textSchema(200),
  text: textSchema().optional(),
  commitment: z.custom<Uint8Array>((x) => x instanceof Uint8Array && x.length === 32).optional(),
  /** On a reveal: the 16-byte salt of the earlier commitment (see attest/readout.ts). */
  salt: z.custom<Uint8Array>((x) => x instanceof Uint8Array && x.length === 16).optional(),
});

/** A pre-formatted notification that must be acknowledged (by a `response` or a read receipt) before `ackBy`. */
export const noticeEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('notice'),
  title: textSchema(500),
  text: textSchema(),
  ackBy: timestampSchema,
});
