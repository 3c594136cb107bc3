/**
 * Document events: negotiated texts carried in the channel like any other event.
 *   doc.revision — a whole revision of a document (full text, every language), chained to its parent
 *   doc.comment  — a comment on one clause (not part of the text: it never clears agreement)
 *   doc.sign     — a sign-off: a clause agreed in one language, or a revision initialled or signed,
 *                  with an Ed25519 device signature over the revision hash (see documents/signoff.ts)
 */
import { z } from 'zod';
import { isBytes } from '../bytes/index.ts';
import { baseFields, eventIdSchema, partyIdSchema, textSchema, timestampSchema } from './common.ts';

export const DOCUMENT_TYPES = [
  'non-paper',
  'aide-memoire',
  'agreed-minutes',
  'ad-referendum',
  'signed-text',
] as const;
export type DocumentType = (typeof DOCUMENT_TYPES)[number];

export const SIGNOFF_LEVELS = ['agree', 'initial', 'sign'] as const;
export type SignoffLevel = (typeof SIGNOFF_LEVELS)[number];

const bytes = (n: number) =>
  z.custom<Uint8Array>((x) => isBytes(x) && x.length === n, { message: `expected ${n} bytes` });

/** A language tag (BCP 47 shape: `en`, `fr`, `zh-Hans`). */
export const languageSchema = z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/);
/** A clause id: stable across revisions so sign-offs and diffs can follow the clause. */
export const clauseIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/);

/** One alternative of a bracketed passage; `by` is the party that proposed it (never in a non-paper). */
export const alternativeSchema = z.strictObject({ text: textSchema(10_000), by: partyIdSchema.optional() });
/** A bracketed passage: two or more alternative wordings, none agreed yet. */
export const bracketSchema = z.strictObject({ alts: z.array(alternativeSchema).min(2).max(8) });
/** A clause's text in one language: plain wording and bracketed passages, in order. */
export const segmentSchema = z.union([textSchema(10_000), bracketSchema]);
export const clauseSchema = z.strictObject({
  id: clauseIdSchema,
  text: z.record(languageSchema, z.array(segmentSchema).max(200)),
});

export const documentRevisionEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('doc.revision'),
  /**
   * The document: derived from its header and the channel (documents/model.ts `documentId`), so
   * the id names one header in one channel; same shape as event ids.
   */
  doc: eventIdSchema,
  /** Position in the chain (0 for the first revision). */
  n: z.number().int().nonnegative().max(100_000),
  /** Hash of the previous revision; null for the first. */
  parent: bytes(32).nullable(),
  docType: z.enum(DOCUMENT_TYPES),
  /** Fixed for the document's life, like the type, languages, parties and nonce (its header). */
  title: textSchema(500),
  /** Language versions, all equally authentic. */
  languages: z.array(languageSchema).min(1).max(8),
  /** The parties whose sign-off the type requires (empty for a non-paper). */
  parties: z.array(partyIdSchema).max(16),
  /** The party that wrote this revision; absent in a non-paper (unattributed). */
  author: partyIdSchema.optional(),
  clauses: z.array(clauseSchema).max(500),
  /** 16 random bytes chosen by the document's creator: two documents never share a header. */
  nonce: bytes(16),
});

export const documentCommentEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('doc.comment'),
  doc: eventIdSchema,
  clause: clauseIdSchema,
  lang: languageSchema.optional(),
  text: textSchema(5_000),
});

export const documentSignEvent = z.strictObject({
  ...baseFields,
  kind: z.literal('doc.sign'),
  doc: eventIdSchema,
  /** The revision hash signed. */
  revision: bytes(32),
  level: z.enum(SIGNOFF_LEVELS),
  /** For level `agree`: the clause, its language and the hash of its text at that revision. */
  clause: z.strictObject({ id: clauseIdSchema, lang: languageSchema, hash: bytes(32) }).optional(),
  signedAt: timestampSchema,
  /** The signer's device certificate (encoded), so the sign-off verifies offline. */
  cert: z.custom<Uint8Array>((x) => isBytes(x) && x.length > 0 && x.length <= 4096, {
    message: 'expected certificate bytes',
  }),
  sig: bytes(64),
});
