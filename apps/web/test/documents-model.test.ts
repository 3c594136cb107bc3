/** The document screens' pure helpers: markup round trip, proposer keeping, edit steps, statuses. */
import type { Segment } from '@backchannel/client/browser';
import { describe, expect, it } from 'vitest';
import {
  bracketsOf,
  clauseEditSteps,
  keepProposers,
  mayGive,
  nextClauseId,
  parseLanguages,
  perParty,
  statusText,
  toMarkup,
} from '../src/documents-model.ts';
import { A, B } from './fixture.ts';

const segs: Segment[] = [
  'The parties ',
  {
    alts: [
      { text: 'welcome', by: A },
      { text: 'note', by: B },
    ],
  },
  ' the talks.',
];

describe('document screen model', () => {
  it('writes a clause in the editing markup', () => {
    expect(toMarkup(segs)).toBe('The parties {{welcome | note}} the talks.');
    expect(bracketsOf(segs)).toEqual([
      {
        index: 0,
        alts: [
          { choose: 0, text: 'welcome' },
          { choose: 1, text: 'note' },
        ],
      },
    ]);
  });

  it('keeps the proposers of an unchanged bracket and emits steps only for changed languages', () => {
    // Re-parsed markup names the editing party (B) as proposer of every alternative.
    const reparsed: Segment[] = [
      'The parties ',
      {
        alts: [
          { text: 'welcome', by: B },
          { text: 'note', by: B },
        ],
      },
      ' the talks.',
    ];
    expect(keepProposers(reparsed, segs)).toEqual(segs);
    expect(clauseEditSteps('c1', { en: segs, fr: ['Texte.'] }, { en: reparsed, fr: ['Texte.'] })).toEqual([]);
    const edited: Segment[] = [...reparsed.slice(0, 2), ' the resumed talks.'];
    expect(clauseEditSteps('c1', { en: segs, fr: ['Texte.'] }, { en: edited, fr: ['Texte.'] })).toEqual([
      { op: 'set', clause: 'c1', lang: 'en', segments: [...segs.slice(0, 2), ' the resumed talks.'] },
    ]);
    // A bracket whose wordings changed is the editor's own.
    const other: Segment[] = [
      {
        alts: [
          { text: 'welcome', by: B },
          { text: 'hail', by: B },
        ],
      },
    ];
    expect(keepProposers(other, segs)).toEqual(other);
  });

  it('parses language lists and refuses bad ones', () => {
    expect(parseLanguages('en, fr')).toEqual({ ok: true, langs: ['en', 'fr'] });
    expect(parseLanguages('en zh-Hans')).toEqual({ ok: true, langs: ['en', 'zh-Hans'] });
    expect(parseLanguages('').ok).toBe(false);
    expect(parseLanguages('en, en').ok).toBe(false);
    expect(parseLanguages('English').ok).toBe(false);
  });

  it('reads out per-clause status per party', () => {
    const name = (p: string) => (p === A ? 'Foreign Ministry' : 'Envoy');
    expect(statusText({ status: 'open', agreedBy: [] }, name)).toBe('open');
    expect(statusText({ status: 'bracketed', agreedBy: [] }, name)).toBe('bracketed');
    expect(statusText({ status: 'agreed-by-some', agreedBy: [A] }, name)).toBe('agreed by Foreign Ministry');
    expect(statusText({ status: 'agreed', agreedBy: [A, B] }, name)).toBe('agreed by all');
    expect(perParty([A, B], { status: 'agreed-by-some', agreedBy: [B] })).toEqual([
      { party: A, agreed: false },
      { party: B, agreed: true },
    ]);
  });

  it('knows which roles may initial and sign which types', () => {
    expect(mayGive('signed-text', 'principal', 'sign')).toBe(true);
    expect(mayGive('signed-text', 'negotiator', 'sign')).toBe(false);
    expect(mayGive('signed-text', 'admin', 'initial')).toBe(false);
    expect(mayGive('ad-referendum', 'negotiator', 'initial')).toBe(true);
    expect(mayGive('non-paper', 'principal', 'agree')).toBe(false);
    expect(nextClauseId(['c1', 'c3'])).toBe('c4');
    expect(nextClauseId(['c1', 'c2', 'c4'])).toBe('c5');
  });
});
