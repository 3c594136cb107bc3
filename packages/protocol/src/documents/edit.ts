/**
 * Building revisions: pure helpers that turn the head revision and one editing step into the
 * next revision body (n + 1, parent = head hash, author = the editing party).
 */
import { ProtocolError } from '../errors.ts';
import type { DocumentType } from '../events/documents.ts';
import type { ChannelId, PartyId } from '../ids.ts';
import {
  type Clause,
  documentId,
  isBracket,
  mergePlain,
  type RevisionBody,
  revisionHash,
  type Segment,
} from './model.ts';

export interface NewDocumentInput {
  /** The channel the document is created in: its id is derived from the header and the channel. */
  readonly channel: ChannelId;
  /** 16 random bytes (the caller's randomness: protocol has none of its own). */
  readonly nonce: Uint8Array;
  readonly type: DocumentType;
  readonly title: string;
  readonly languages: readonly string[];
  /** Clause id → language → text (inline `{{a | b}}` markup already parsed into segments). */
  readonly clauses: ReadonlyArray<{
    readonly id: string;
    readonly text: Readonly<Record<string, readonly Segment[]>>;
  }>;
  /** The author party (ignored for a non-paper, which is unattributed). */
  readonly author: PartyId;
  /** The channel's parties. */
  readonly channelParties: readonly PartyId[];
}

/** Revision 0 of a new document; its id is derived from its header and the channel. */
export function firstRevision(i: NewDocumentInput): RevisionBody {
  const nonPaper = i.type === 'non-paper';
  if (!(i.nonce instanceof Uint8Array) || i.nonce.length !== 16)
    throw new ProtocolError('DOC_INVALID', 'a document nonce is 16 random bytes', 'nonce');
  const header = {
    docType: i.type,
    title: i.title,
    languages: [...i.languages],
    parties: nonPaper ? [] : i.type === 'aide-memoire' ? [i.author] : [...i.channelParties].sort(),
    nonce: i.nonce.slice(),
  };
  return {
    doc: documentId(i.channel, header),
    n: 0,
    parent: null,
    ...header,
    ...(nonPaper ? {} : { author: i.author }),
    clauses: i.clauses.map((c) => ({ id: c.id, text: cloneText(c.text, nonPaper) })),
  };
}

function cloneText(t: Readonly<Record<string, readonly Segment[]>>, unattributed: boolean): Clause['text'] {
  const out: Record<string, Segment[]> = {};
  for (const [lang, segs] of Object.entries(t)) {
    out[lang] = mergePlain(
      segs.map((s) => (isBracket(s) && unattributed ? { alts: s.alts.map((a) => ({ text: a.text })) } : s)),
    );
  }
  return out;
}

export type EditStep =
  | {
      readonly op: 'set';
      readonly clause: string;
      readonly lang: string;
      readonly segments: readonly Segment[];
    }
  | {
      readonly op: 'add';
      readonly clause: string;
      readonly text: Readonly<Record<string, readonly Segment[]>>;
      /** Insert after this clause (default: at the end). */
      readonly after?: string;
    }
  | { readonly op: 'remove'; readonly clause: string }
  /** Brackets a phrase of a clause (or the whole clause) against alternative wordings. */
  | {
      readonly op: 'bracket';
      readonly clause: string;
      readonly lang: string;
      readonly alternatives: readonly string[];
      readonly phrase?: string;
    }
  /** Resolves bracket number `bracket` (0-based, in reading order) to alternative `choose`. */
  | {
      readonly op: 'resolve';
      readonly clause: string;
      readonly lang: string;
      readonly bracket: number;
      readonly choose: number;
    };

const misuse = (msg: string, at: string) => new ProtocolError('DOC_INVALID', msg, at);

/** The next revision: applies the steps to `head` in order. Misuse (unknown clause…) throws DOC_INVALID. */
export function nextRevision(head: RevisionBody, author: PartyId, steps: readonly EditStep[]): RevisionBody {
  const unattributed = head.docType === 'non-paper';
  const by = unattributed ? {} : { by: author };
  let clauses: Clause[] = head.clauses.map((c) => ({ id: c.id, text: { ...c.text } }));
  const find = (id: string): Clause => {
    const c = clauses.find((x) => x.id === id);
    if (c === undefined) throw misuse(`no clause ${id}`, 'clause');
    return c;
  };
  const segsOf = (c: Clause, lang: string): Segment[] => {
    const s = c.text[lang];
    if (s === undefined) throw misuse(`no ${lang} version`, 'lang');
    return [...s];
  };
  for (const step of steps) {
    switch (step.op) {
      case 'set': {
        const c = find(step.clause);
        segsOf(c, step.lang);
        c.text = { ...c.text, [step.lang]: cloneText({ x: step.segments }, unattributed).x ?? [] };
        break;
      }
      case 'add': {
        if (clauses.some((x) => x.id === step.clause)) throw misuse(`clause ${step.clause} exists`, 'clause');
        const c: Clause = { id: step.clause, text: cloneText(step.text, unattributed) };
        const at =
          step.after === undefined ? clauses.length : clauses.findIndex((x) => x.id === step.after) + 1;
        if (at === 0) throw misuse(`no clause ${step.after}`, 'after');
        clauses = [...clauses.slice(0, at), c, ...clauses.slice(at)];
        break;
      }
      case 'remove':
        find(step.clause);
        clauses = clauses.filter((x) => x.id !== step.clause);
        break;
      case 'bracket': {
        const c = find(step.clause);
        const segs = segsOf(c, step.lang);
        const alts = step.alternatives.map((text) => ({ text, ...by }));
        let placed = false;
        const out: Segment[] = [];
        for (const s of segs) {
          if (placed || isBracket(s)) {
            out.push(s);
            continue;
          }
          const phrase = step.phrase ?? s;
          const i = s.indexOf(phrase);
          if (phrase === '' || i < 0) {
            out.push(s);
            continue;
          }
          out.push(s.slice(0, i), { alts: [{ text: phrase }, ...alts] }, s.slice(i + phrase.length));
          placed = true;
        }
        if (!placed)
          throw misuse(`the ${step.lang} text of ${step.clause} does not contain that phrase`, 'phrase');
        if (alts.length === 0)
          throw misuse('a bracket needs at least one alternative wording', 'alternatives');
        c.text = { ...c.text, [step.lang]: mergePlain(out) };
        break;
      }
      case 'resolve': {
        const c = find(step.clause);
        const segs = segsOf(c, step.lang);
        let k = -1;
        const out = segs.map((s) => {
          if (!isBracket(s)) return s;
          k++;
          if (k !== step.bracket) return s;
          const alt = s.alts[step.choose];
          if (alt === undefined)
            throw misuse(`bracket ${step.bracket} has no alternative ${step.choose}`, 'choose');
          return alt.text;
        });
        if (k < step.bracket)
          throw misuse(`clause ${step.clause} (${step.lang}) has no bracket ${step.bracket}`, 'bracket');
        c.text = { ...c.text, [step.lang]: mergePlain(out) };
        break;
      }
    }
  }
  return {
    doc: head.doc,
    n: head.n + 1,
    parent: revisionHash(head),
    docType: head.docType,
    title: head.title,
    languages: [...head.languages],
    parties: [...head.parties],
    ...(unattributed ? {} : { author }),
    clauses,
    nonce: head.nonce,
  };
}
