/**
 * Documents as a pure fold over doc.* events, called by the channel reducer.
 *
 * Agreement rules (docs/DOCUMENTS.md):
 * - revisions form one chain: a revision must name the current head as its parent;
 * - a clause is agreed by a party in one language when that party agreed it (level `agree`) or
 *   initialled/signed a whole revision, at a revision from which the clause's text has not changed
 *   since — so an edit clears agreement on exactly the clauses (and languages) it touches;
 * - a document is agreed when every party it names signed the SAME head revision hash at the level
 *   its type requires; a signature over any other revision never counts.
 */
import { constantTimeEqual } from '../bytes/index.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import type {
  DocumentType,
  SignoffLevel,
  documentCommentEvent,
  documentSignEvent,
} from '../events/documents.ts';
import { aRole, type Role } from '../identity/certificate.ts';
import type { ChannelId, DeviceId, EventId, PartyId } from '../ids.ts';
import type { z } from 'zod';
import {
  checkRevisionBody,
  clauseHash,
  documentId,
  hasBrackets,
  type RevisionBody,
  type RevisionEvent,
  requiredSignoff,
  revisionBody,
  revisionHash,
  rolesFor,
  sameHeader,
} from './model.ts';
import { type ClauseRef, verifySignoff } from './signoff.ts';

type CommentEvent = z.infer<typeof documentCommentEvent>;
type SignEvent = z.infer<typeof documentSignEvent>;
export type DocumentEvent = RevisionEvent | CommentEvent | SignEvent;

export interface ClauseLang {
  readonly clause: string;
  readonly lang: string;
}

export interface RevisionRecord {
  readonly hash: Uint8Array;
  readonly body: RevisionBody;
  readonly event: EventId;
  readonly seq: number;
  readonly at: number;
  /** Clauses (per language) this revision added, changed or removed relative to its parent. */
  readonly touched: readonly ClauseLang[];
  /** Agreements this revision cleared, shown to everyone: which parties had agreed each touched clause. */
  readonly cleared: ReadonlyArray<ClauseLang & { readonly parties: readonly PartyId[] }>;
}

export interface SignoffRecord {
  readonly party: PartyId;
  readonly device: DeviceId;
  readonly role: Role;
  readonly level: SignoffLevel;
  readonly revision: Uint8Array;
  /** Index of the signed revision in the chain. */
  readonly n: number;
  readonly clause?: ClauseRef;
  readonly signedAt: number;
  readonly seq: number;
  readonly cert: Uint8Array;
  readonly sig: Uint8Array;
}

export interface CommentRecord {
  readonly clause: string;
  readonly lang?: string;
  readonly text: string;
  /** The commenting party; absent on a non-paper. */
  readonly by?: PartyId;
  readonly n: number;
  readonly seq: number;
  readonly at: number;
}

export interface DocumentState {
  readonly id: EventId;
  readonly type: DocumentType;
  readonly revisions: readonly RevisionRecord[];
  readonly signoffs: readonly SignoffRecord[];
  readonly comments: readonly CommentRecord[];
  /** Per clause, per language: the revision index from which its current text is unchanged. */
  readonly stableSince: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

export interface DocumentContext {
  /** The channel: a document's id is derived from its header and the channel. */
  readonly channel: ChannelId;
  /** The channel's parties. */
  readonly parties: readonly PartyId[];
  readonly sender: { readonly device: DeviceId; readonly party: PartyId; readonly role: Role };
  readonly seq: number;
  readonly receivedAt: number;
}

export type DocumentFold =
  | { readonly ok: true; readonly doc: DocumentState }
  | { readonly ok: false; readonly code: ProtocolErrorCode; readonly reason: string };

const no = (code: ProtocolErrorCode, reason: string): DocumentFold => ({ ok: false, code, reason });

export function headOf(d: DocumentState): RevisionRecord {
  return d.revisions[d.revisions.length - 1] as RevisionRecord;
}

/** Folds one document event into the document it names (`doc` undefined: not seen yet). */
export function foldDocument(
  doc: DocumentState | undefined,
  e: DocumentEvent,
  ctx: DocumentContext,
): DocumentFold {
  if (e.kind === 'doc.revision') return applyRevision(doc, e, ctx);
  if (doc === undefined) return no('DOC_UNKNOWN', `no document ${e.doc}`);
  if (e.kind === 'doc.comment') return applyComment(doc, e, ctx);
  return applySignoff(doc, e, ctx);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

function applyRevision(doc: DocumentState | undefined, e: RevisionEvent, ctx: DocumentContext): DocumentFold {
  const body = revisionBody(e);
  const checked = checkRevisionBody(body);
  if (!checked.ok) return no(checked.code, checked.reason);
  const party = ctx.sender.party;
  if (body.docType !== 'non-paper' && body.author !== party)
    return no('DOC_INVALID', 'the author of a revision is the party that sends it');
  const hash = revisionHash(body);
  if (doc === undefined) {
    if (body.n !== 0) return no('DOC_UNKNOWN', `no document ${e.doc}`);
    // The id is the header's hash in this channel: a creator cannot name a document at will.
    if (documentId(ctx.channel, body) !== e.doc)
      return no('DOC_ID_MISMATCH', 'a document id is derived from its header and the channel');
    const want: readonly PartyId[] =
      body.docType === 'non-paper' ? [] : body.docType === 'aide-memoire' ? [party] : ctx.parties;
    if (!sameSet(body.parties, want))
      return no(
        'DOC_INVALID',
        `a ${body.docType} in this channel names the parties ${want.join(', ') || '(none)'}`,
      );
    const stableSince: Record<string, Record<string, number>> = {};
    const touched: ClauseLang[] = [];
    for (const c of body.clauses) {
      stableSince[c.id] = Object.fromEntries(body.languages.map((l) => [l, 0]));
      for (const lang of body.languages) touched.push({ clause: c.id, lang });
    }
    const rec: RevisionRecord = {
      hash,
      body,
      event: e.id,
      seq: ctx.seq,
      at: ctx.receivedAt,
      touched,
      cleared: [],
    };
    return {
      ok: true,
      doc: { id: e.doc, type: body.docType, revisions: [rec], signoffs: [], comments: [], stableSince },
    };
  }
  if (body.n === 0) return no('DOC_INVALID', `document ${e.doc} already exists`);
  const head = headOf(doc);
  if (body.n !== head.body.n + 1 || body.parent === null || !constantTimeEqual(body.parent, head.hash)) {
    return no(
      'DOC_REVISION_STALE',
      `revision ${body.n} does not build on the current head (revision ${head.body.n})`,
    );
  }
  if (body.docType !== doc.type || !sameSet(body.parties, head.body.parties))
    return no('DOC_INVALID', 'a revision cannot change the document type or its parties');
  if (body.languages.join() !== head.body.languages.join())
    return no('DOC_INVALID', 'a revision cannot change the language versions');
  if (!sameHeader(body, head.body))
    return no(
      'DOC_INVALID',
      'a revision cannot change the document header (title, nonce): the id is its hash',
    );
  if (doc.type === 'aide-memoire' && !head.body.parties.includes(party))
    return no('ROLE_FORBIDDEN', 'only its author party revises an aide-mémoire');
  const old = new Map(head.body.clauses.map((c) => [c.id, c]));
  const stableSince: Record<string, Record<string, number>> = {};
  const touched: ClauseLang[] = [];
  const cleared: Array<ClauseLang & { parties: PartyId[] }> = [];
  const clearedOf = (clause: string, lang: string) => {
    const parties = clauseAgreedBy(doc, clause, lang);
    if (parties.length > 0) cleared.push({ clause, lang, parties: [...parties] });
  };
  for (const c of body.clauses) {
    const before = old.get(c.id);
    const since: Record<string, number> = {};
    for (const lang of body.languages) {
      const segs = c.text[lang] ?? [];
      const prev = before?.text[lang];
      const same =
        prev !== undefined &&
        constantTimeEqual(clauseHash(e.doc, c.id, lang, prev), clauseHash(e.doc, c.id, lang, segs));
      if (same) since[lang] = doc.stableSince[c.id]?.[lang] ?? body.n;
      else {
        since[lang] = body.n;
        touched.push({ clause: c.id, lang });
        if (before !== undefined) clearedOf(c.id, lang);
      }
    }
    stableSince[c.id] = since;
  }
  for (const c of head.body.clauses) {
    if (stableSince[c.id] !== undefined) continue;
    for (const lang of head.body.languages) {
      touched.push({ clause: c.id, lang });
      clearedOf(c.id, lang);
    }
  }
  const rec: RevisionRecord = { hash, body, event: e.id, seq: ctx.seq, at: ctx.receivedAt, touched, cleared };
  return { ok: true, doc: { ...doc, revisions: [...doc.revisions, rec], stableSince } };
}

function applyComment(doc: DocumentState, e: CommentEvent, ctx: DocumentContext): DocumentFold {
  const head = headOf(doc);
  if (!head.body.clauses.some((c) => c.id === e.clause)) return no('DOC_INVALID', `no clause ${e.clause}`);
  if (e.lang !== undefined && !head.body.languages.includes(e.lang))
    return no('DOC_INVALID', `the document has no ${e.lang} version`);
  const rec: CommentRecord = {
    clause: e.clause,
    ...(e.lang === undefined ? {} : { lang: e.lang }),
    text: e.text,
    ...(doc.type === 'non-paper' ? {} : { by: ctx.sender.party }),
    n: head.body.n,
    seq: ctx.seq,
    at: ctx.receivedAt,
  };
  return { ok: true, doc: { ...doc, comments: [...doc.comments, rec] } };
}

function applySignoff(doc: DocumentState, e: SignEvent, ctx: DocumentContext): DocumentFold {
  if (doc.type === 'non-paper') return no('DOC_SIGNATURE_FORBIDDEN', 'a non-paper is never signed');
  const rev = doc.revisions.find((r) => constantTimeEqual(r.hash, e.revision));
  if (rev === undefined) return no('DOC_REVISION_UNKNOWN', `no revision of ${doc.id} has that hash`);
  const checked = verifySignoff(e);
  if (!checked.ok) return no(checked.code, checked.reason);
  const cert = checked.certificate.body;
  const { sender } = ctx;
  // Device ids are hashes of their public keys: a matching id binds the certificate to the sender.
  if (cert.device !== sender.device || cert.party !== sender.party || cert.role !== sender.role)
    return no('CERT_WRONG_PARTY', 'a sign-off carries the certificate of the device that sends it');
  if (!rev.body.parties.includes(sender.party))
    return no('DOC_SIGNATURE_FORBIDDEN', `party ${sender.party} is not a signatory of this ${doc.type}`);
  if (!rolesFor(doc.type, e.level).includes(sender.role))
    return no('ROLE_FORBIDDEN', `${aRole(sender.role)} may not ${e.level} a ${doc.type}`);
  if (e.level === 'agree') {
    if (e.clause === undefined) return no('DOC_INVALID', 'agreeing names the clause and its language');
    const c = rev.body.clauses.find((x) => x.id === e.clause?.id);
    const segs = c?.text[e.clause.lang];
    if (segs === undefined)
      return no('DOC_INVALID', `revision ${rev.body.n} has no clause ${e.clause.id} in ${e.clause.lang}`);
    if (!constantTimeEqual(clauseHash(doc.id, e.clause.id, e.clause.lang, segs), e.clause.hash))
      return no('DOC_INVALID', 'the clause hash does not match the clause at that revision');
    if (hasBrackets(segs))
      return no('DOC_BRACKETS_OPEN', `clause ${e.clause.id} (${e.clause.lang}) is still bracketed`);
  } else {
    if (e.clause !== undefined)
      return no('DOC_INVALID', `to ${e.level} is for a whole revision, not one clause`);
    const open = openBrackets(rev.body);
    if (open.length > 0)
      return no(
        'DOC_BRACKETS_OPEN',
        `brackets remain in ${open.map((o) => `${o.clause} (${o.lang})`).join(', ')}`,
      );
  }
  const rec: SignoffRecord = {
    party: sender.party,
    device: sender.device,
    role: sender.role,
    level: e.level,
    revision: rev.hash,
    n: rev.body.n,
    ...(e.clause === undefined ? {} : { clause: e.clause }),
    signedAt: e.signedAt,
    seq: ctx.seq,
    cert: e.cert,
    sig: e.sig,
  };
  return { ok: true, doc: { ...doc, signoffs: [...doc.signoffs, rec] } };
}

export function openBrackets(b: RevisionBody): ClauseLang[] {
  const out: ClauseLang[] = [];
  for (const c of b.clauses)
    for (const lang of b.languages) if (hasBrackets(c.text[lang] ?? [])) out.push({ clause: c.id, lang });
  return out;
}

/** Parties whose agreement to this clause, in this language, still stands at the head. */
export function clauseAgreedBy(doc: DocumentState, clause: string, lang: string): PartyId[] {
  const since = doc.stableSince[clause]?.[lang];
  if (since === undefined) return [];
  const parties = headOf(doc).body.parties;
  const by = new Set<PartyId>();
  for (const s of doc.signoffs) {
    if (s.n < since) continue;
    if (s.level === 'agree' ? s.clause?.id === clause && s.clause.lang === lang : true) by.add(s.party);
  }
  return parties.filter((p) => by.has(p));
}

export type ClauseStatus = 'open' | 'bracketed' | 'agreed-by-some' | 'agreed';

export function clauseStatus(
  doc: DocumentState,
  clause: string,
  lang: string,
): { status: ClauseStatus; agreedBy: PartyId[] } {
  const head = headOf(doc);
  const c = head.body.clauses.find((x) => x.id === clause);
  const segs = c?.text[lang] ?? [];
  if (hasBrackets(segs)) return { status: 'bracketed', agreedBy: [] };
  const agreedBy = clauseAgreedBy(doc, clause, lang);
  const all = head.body.parties.length > 0 && agreedBy.length === head.body.parties.length;
  return { status: all ? 'agreed' : agreedBy.length > 0 ? 'agreed-by-some' : 'open', agreedBy };
}

export interface DocumentStatus {
  readonly type: DocumentType;
  readonly head: { readonly n: number; readonly hash: Uint8Array };
  /** Per party, the levels at which it signed the head revision. */
  readonly byParty: Readonly<Record<string, readonly SignoffLevel[]>>;
  readonly clausesAgreed: boolean;
  readonly initialled: boolean;
  /** Every party named signed the same head revision hash at the level the type requires. */
  readonly agreed: boolean;
  readonly stage: 'draft' | 'bracketed' | 'clauses-agreed' | 'initialled' | 'agreed';
}

export function documentStatus(doc: DocumentState): DocumentStatus {
  const head = headOf(doc);
  const need = requiredSignoff(doc.type);
  const byParty: Record<string, SignoffLevel[]> = {};
  for (const p of head.body.parties) byParty[p] = [];
  for (const s of doc.signoffs) {
    if (s.level === 'agree' || !constantTimeEqual(s.revision, head.hash)) continue;
    const levels = byParty[s.party];
    if (levels !== undefined && !levels.includes(s.level)) levels.push(s.level);
  }
  const parties = head.body.parties;
  // A revision without a clause has no text to agree on: never agreed, initialled or signed.
  const hasText = head.body.clauses.length > 0;
  const every = (level: SignoffLevel) =>
    hasText && parties.length > 0 && parties.every((p) => byParty[p]?.includes(level) === true);
  const agreed = need !== undefined && every(need.level);
  const initialled = every('initial');
  const clausesAgreed =
    hasText &&
    parties.length > 0 &&
    head.body.clauses.every((c) =>
      head.body.languages.every((l) => clauseStatus(doc, c.id, l).status === 'agreed'),
    );
  const bracketed = openBrackets(head.body).length > 0;
  const stage = agreed
    ? 'agreed'
    : initialled
      ? 'initialled'
      : clausesAgreed
        ? 'clauses-agreed'
        : bracketed
          ? 'bracketed'
          : 'draft';
  return {
    type: doc.type,
    head: { n: head.body.n, hash: head.hash },
    byParty,
    clausesAgreed,
    initialled,
    agreed,
    stage,
  };
}
