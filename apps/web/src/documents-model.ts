/** Pure derivations for the document screens (no React, no I/O): markup, statuses, edit steps. */
import {
  type ClauseStatus,
  DOCUMENT_TYPE_NAMES,
  type DocumentType,
  type EditStep,
  isBracket,
  type Role,
  rolesFor,
  type Segment,
} from '@backchannel/client/browser';

export const LANGUAGE_RE = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/;
export const CLAUSE_ID_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

export function typeName(t: DocumentType): string {
  return DOCUMENT_TYPE_NAMES[t];
}

/** What agreement a type needs, in one sentence for the screen. */
export function typeRule(t: DocumentType): string {
  switch (t) {
    case 'non-paper':
      return 'Unattributed and never signed.';
    case 'aide-memoire':
      return 'Signed by its author party.';
    case 'agreed-minutes':
      return 'Signed by every party.';
    case 'ad-referendum':
      return "Initialled by every party's negotiator, pending capitals.";
    case 'signed-text':
      return "Signed by every party's principal.";
  }
}

/** "en, fr" → ['en', 'fr'], or the reason it is not a list of language tags. */
export function parseLanguages(input: string): { ok: true; langs: string[] } | { ok: false; reason: string } {
  const langs = input
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (langs.length === 0) return { ok: false, reason: 'Give at least one language, e.g. "en, fr".' };
  if (langs.length > 8) return { ok: false, reason: 'At most 8 languages.' };
  const bad = langs.find((l) => !LANGUAGE_RE.test(l));
  if (bad !== undefined)
    return { ok: false, reason: `"${bad}" is not a language tag like "en" or "zh-Hans".` };
  if (new Set(langs).size !== langs.length) return { ok: false, reason: 'A language is listed twice.' };
  return { ok: true, langs };
}

/** A clause's text in the editing markup: plain wording and `{{first | second}}` for a bracket. */
export function toMarkup(segments: readonly Segment[]): string {
  return segments.map((s) => (isBracket(s) ? `{{${s.alts.map((a) => a.text).join(' | ')}}}` : s)).join('');
}

const sameAlts = (a: Segment, b: Segment) =>
  isBracket(a) &&
  isBracket(b) &&
  a.alts.length === b.alts.length &&
  a.alts.every((x, i) => x.text === b.alts[i]?.text);

/**
 * After re-parsing edited markup (which names this party as proposer of every alternative), a
 * bracket whose wordings are unchanged keeps its original proposers.
 */
export function keepProposers(parsed: readonly Segment[], before: readonly Segment[]): Segment[] {
  const old = before.filter(isBracket);
  return parsed.map((s) => old.find((o) => sameAlts(o, s)) ?? s);
}

export function sameSegments(a: readonly Segment[], b: readonly Segment[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Edit steps for one clause: a `set` for each language whose text changed (none if nothing did). */
export function clauseEditSteps(
  clause: string,
  before: Readonly<Record<string, readonly Segment[]>>,
  after: Readonly<Record<string, readonly Segment[]>>,
): EditStep[] {
  const steps: EditStep[] = [];
  for (const [lang, segs] of Object.entries(after)) {
    const old = before[lang] ?? [];
    const kept = keepProposers(segs, old);
    if (!sameSegments(kept, old)) steps.push({ op: 'set', clause, lang, segments: kept });
  }
  return steps;
}

/** The brackets of a clause text, in reading order (as the `resolve` step numbers them). */
export function bracketsOf(
  segments: readonly Segment[],
): Array<{ index: number; alts: Array<{ choose: number; text: string }> }> {
  return segments
    .filter(isBracket)
    .map((b, index) => ({ index, alts: b.alts.map((a, choose) => ({ choose, text: a.text })) }));
}

/** The status of one clause in one language, as read out: open, bracketed, agreed by X, agreed by all. */
export function statusText(
  s: { status: ClauseStatus; agreedBy: readonly string[] },
  name: (party: string) => string,
): string {
  switch (s.status) {
    case 'open':
      return 'open';
    case 'bracketed':
      return 'bracketed';
    case 'agreed':
      return 'agreed by all';
    case 'agreed-by-some':
      return `agreed by ${s.agreedBy.map(name).join(', ')}`;
  }
}

/** Per party: has it agreed this clause in this language (at a revision since it last changed)? */
export function perParty(
  parties: readonly string[],
  s: { status: ClauseStatus; agreedBy: readonly string[] },
): Array<{ party: string; agreed: boolean }> {
  return parties.map((party) => ({ party, agreed: s.agreedBy.includes(party) }));
}

/** Whether a device of this role may give this level of sign-off on this type. */
export function mayGive(type: DocumentType, role: Role, level: 'agree' | 'initial' | 'sign'): boolean {
  return rolesFor(type, level).includes(role);
}

export function stageText(stage: string): string {
  switch (stage) {
    case 'draft':
      return 'draft';
    case 'bracketed':
      return 'brackets open';
    case 'clauses-agreed':
      return 'every clause agreed';
    case 'initialled':
      return 'initialled';
    case 'agreed':
      return 'agreed';
    default:
      return stage;
  }
}

/** A fresh clause id not yet used: c1, c2, … */
export function nextClauseId(used: readonly string[]): string {
  for (let i = used.length + 1; ; i++) if (!used.includes(`c${i}`)) return `c${i}`;
}
