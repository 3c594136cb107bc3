/**
 * The document model: revisions, clauses, bracketed alternatives, and their hashes.
 *
 *   revision hash = SHA-256(CBOR(['backchannel/v1 document-revision', body]))
 *   clause hash   = SHA-256(CBOR(['backchannel/v1 document-clause', doc, clause id, lang, segments]))
 *   document id   = 'e_' + base64url(first 16 bytes of
 *                     SHA-256(CBOR(['backchannel/v1 document-id', channel, header])))
 *   header        = { docType, title, languages, parties (sorted), nonce }
 *
 * The body is the doc.revision event without its transport fields (v, id, at, track, kind), so a
 * revision hashes the same wherever it travels, and every party computes it from the text itself.
 * The header is fixed for the document's life and every revision carries it, so any one revision
 * shows which document it belongs to: its id is recomputed from its own fields and the channel.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { constantTimeEqual } from '../bytes/index.ts';
import type { z } from 'zod';
import { encodeCanonical } from '../codec/cbor.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import type {
  bracketSchema,
  clauseSchema,
  DocumentType,
  documentRevisionEvent,
  segmentSchema,
} from '../events/documents.ts';
import { type ChannelId, type EventId, eventIdFrom, type PartyId } from '../ids.ts';

export type Bracket = z.infer<typeof bracketSchema>;
export type Segment = z.infer<typeof segmentSchema>;
export type Clause = z.infer<typeof clauseSchema>;
export type RevisionEvent = z.infer<typeof documentRevisionEvent>;
/** What a revision hash covers. */
export type RevisionBody = Omit<RevisionEvent, 'v' | 'id' | 'at' | 'track' | 'kind'>;

export const DOCUMENT_TYPE_NAMES: Readonly<Record<DocumentType, string>> = {
  'non-paper': 'Non-paper',
  'aide-memoire': 'Aide-mémoire',
  'agreed-minutes': 'Agreed minutes',
  'ad-referendum': 'Text initialled ad referendum',
  'signed-text': 'Signed text',
};

export function revisionBody(e: RevisionEvent | RevisionBody): RevisionBody {
  return {
    doc: e.doc,
    n: e.n,
    parent: e.parent,
    docType: e.docType,
    title: e.title,
    languages: e.languages,
    parties: e.parties,
    ...(e.author === undefined ? {} : { author: e.author }),
    clauses: e.clauses,
    nonce: e.nonce,
  };
}

/** What a document id is derived from: the fields fixed for the document's life. */
export interface DocumentHeader {
  readonly docType: DocumentType;
  readonly title: string;
  readonly languages: readonly string[];
  readonly parties: readonly PartyId[];
  readonly nonce: Uint8Array;
}

export function documentHeader(b: DocumentHeader): DocumentHeader {
  return {
    docType: b.docType,
    title: b.title,
    languages: [...b.languages],
    parties: [...b.parties].sort(),
    nonce: b.nonce,
  };
}

/**
 * The id of the document with this header in this channel. The channel is hashed in, so the same
 * header in two channels gives two ids; the label keeps the hash apart from every other one.
 */
export function documentId(channel: ChannelId, header: DocumentHeader): EventId {
  const h = documentHeader(header);
  const digest = sha256(
    encodeCanonical([
      'backchannel/v1 document-id',
      channel,
      {
        docType: h.docType,
        title: h.title,
        languages: [...h.languages],
        parties: [...h.parties],
        nonce: h.nonce,
      },
    ]),
  );
  return eventIdFrom(digest.subarray(0, 16));
}

/** Whether two revisions carry the same header (type, title, languages in order, parties, nonce). */
export function sameHeader(a: DocumentHeader, b: DocumentHeader): boolean {
  const x = documentHeader(a);
  const y = documentHeader(b);
  return (
    x.docType === y.docType &&
    x.title === y.title &&
    x.languages.join() === y.languages.join() &&
    x.parties.join() === y.parties.join() &&
    constantTimeEqual(x.nonce, y.nonce)
  );
}

export function encodeRevisionBody(b: RevisionBody): Uint8Array {
  return encodeCanonical(revisionBody(b));
}

export function revisionHash(b: RevisionBody): Uint8Array {
  return sha256(encodeCanonical(['backchannel/v1 document-revision', encodeRevisionBody(b)]));
}

export function clauseHash(
  doc: string,
  clauseId: string,
  lang: string,
  segments: readonly Segment[],
): Uint8Array {
  return sha256(encodeCanonical(['backchannel/v1 document-clause', doc, clauseId, lang, [...segments]]));
}

export const isBracket = (s: Segment): s is Bracket => typeof s !== 'string';

export function hasBrackets(segments: readonly Segment[]): boolean {
  return segments.some(isBracket);
}

/** A clause's text in one language as people read it: `[first wording] / [second wording]`. */
export function renderSegments(segments: readonly Segment[]): string {
  return segments.map((s) => (isBracket(s) ? s.alts.map((a) => `[${a.text}]`).join(' / ') : s)).join('');
}

/**
 * Parses the CLI's inline markup: `{{first wording | second wording}}` is a bracketed passage.
 * Plain text stays as it is. `by` tags the alternatives (omitted for a non-paper).
 */
export function parseSegments(text: string, by?: PartyId): Segment[] {
  const out: Segment[] = [];
  const re = /\{\{([^{}]*)\}\}/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    const idx = m.index;
    if (idx > last) out.push(text.slice(last, idx));
    const alts = (m[1] ?? '').split('|').map((t) => t.trim());
    if (alts.length >= 2)
      out.push({ alts: alts.map((t) => (by === undefined ? { text: t } : { text: t, by })) });
    else out.push(alts[0] ?? '');
    last = idx + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return mergePlain(out);
}

/** Adjacent plain strings merge and empty ones drop, so one text has one segment list. */
export function mergePlain(segments: readonly Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) {
    const prev = out.at(-1);
    if (!isBracket(s)) {
      if (s === '') continue;
      if (prev !== undefined && !isBracket(prev)) out[out.length - 1] = prev + s;
      else out.push(s);
    } else out.push(s);
  }
  return out;
}

/** Checks what a schema cannot: unique clause ids, every clause in every language, type rules. */
export function checkRevisionBody(
  b: RevisionBody,
): { ok: true } | { ok: false; code: ProtocolErrorCode; reason: string } {
  const bad = (reason: string) => ({ ok: false as const, code: 'DOC_INVALID' as const, reason });
  if (new Set(b.languages).size !== b.languages.length) return bad('a language is listed twice');
  const ids = new Set<string>();
  for (const c of b.clauses) {
    if (ids.has(c.id)) return bad(`clause ${c.id} appears twice`);
    ids.add(c.id);
    const langs = Object.keys(c.text).sort();
    if (langs.join() !== [...b.languages].sort().join())
      return bad(`clause ${c.id} must have exactly the languages ${b.languages.join(', ')}`);
  }
  if (new Set(b.parties).size !== b.parties.length) return bad('a party is listed twice');
  if (b.docType === 'non-paper') {
    if (b.author !== undefined) return bad('a non-paper is unattributed: it has no author');
    if (b.parties.length > 0) return bad('a non-paper names no parties');
    const attributed = b.clauses.some((c) =>
      Object.values(c.text).some((segs) =>
        segs.some((s) => isBracket(s) && s.alts.some((a) => a.by !== undefined)),
      ),
    );
    if (attributed) return bad('a non-paper is unattributed: its alternatives carry no party');
  } else {
    if (b.author === undefined) return bad(`a ${b.docType} names the author of each revision`);
    if (b.docType === 'aide-memoire' && b.parties.length !== 1)
      return bad('an aide-mémoire is signed by exactly one party, its author');
    if (b.docType !== 'aide-memoire' && b.parties.length < 2)
      return bad(`a ${b.docType} is signed by every party (two or more)`);
  }
  if ((b.n === 0) !== (b.parent === null)) return bad('only the first revision (n = 0) has no parent');
  return { ok: true };
}

/** The required sign-off for a type to be agreed: the level and the roles that may give it. */
export function requiredSignoff(
  type: DocumentType,
): { level: 'initial' | 'sign'; roles: readonly string[] } | undefined {
  switch (type) {
    case 'non-paper':
      return undefined;
    case 'aide-memoire':
    case 'agreed-minutes':
      return { level: 'sign', roles: ['principal', 'negotiator'] };
    case 'ad-referendum':
      return { level: 'initial', roles: ['negotiator', 'principal'] };
    case 'signed-text':
      return { level: 'sign', roles: ['principal'] };
  }
}

/** Which roles may give a sign-off of `level` on a document of `type` (empty: not allowed). */
export function rolesFor(type: DocumentType, level: 'agree' | 'initial' | 'sign'): readonly string[] {
  if (type === 'non-paper') return [];
  if (level === 'agree') return ['principal', 'negotiator', 'staff', 'admin'];
  if (level === 'initial')
    return type === 'ad-referendum' || type === 'signed-text' ? ['negotiator', 'principal'] : [];
  return requiredSignoff(type)?.level === 'sign' ? (requiredSignoff(type)?.roles ?? []) : [];
}
