import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyDiff,
  clauseStatus,
  channelIdFrom,
  decodeCanonical,
  diffWords,
  documentId,
  documentStatus,
  encodeRevisionBody,
  parseSegments,
  renderSegments,
  revisionBody,
  type RevisionBody,
  revisionHash,
  toHex,
} from '../../src/index.ts';
import { World } from './helpers.ts';

const word = fc.stringMatching(/^[A-Za-zàé0-9.,;]{1,8}$/);
const space = fc.constantFrom(' ', '  ', '\n', ' \t');
const text = fc
  .array(fc.tuple(word, space), { maxLength: 30 })
  .map((ps) => ps.map(([w, s]) => w + s).join(''));

const body = fc.record({ title: text, clauses: fc.array(text, { minLength: 1, maxLength: 6 }) }).map(
  ({ title, clauses }): RevisionBody => ({
    doc: 'e_AAAAAAAAAAAAAAAAAAAAAA' as never,
    n: 0,
    parent: null,
    docType: 'agreed-minutes',
    title,
    languages: ['en'],
    parties: ['p_AAAAAAAAAAAAAAAAAAAAAA' as never, 'p_BBBBBBBBBBBBBBBBBBBBBB' as never],
    author: 'p_AAAAAAAAAAAAAAAAAAAAAA' as never,
    clauses: clauses.map((t, i) => ({ id: `c${i}`, text: { en: parseSegments(t) } })),
    nonce: new Uint8Array(16),
  }),
);

describe('document properties', () => {
  it('a document id changes with every header field and with the channel, and with nothing else', () => {
    const header = fc.record({
      docType: fc.constantFrom('aide-memoire', 'agreed-minutes', 'ad-referendum', 'signed-text' as const),
      title: text,
      languages: fc.uniqueArray(fc.constantFrom('en', 'fr', 'ar', 'zh-Hans'), { minLength: 1, maxLength: 4 }),
      parties: fc.uniqueArray(fc.constantFrom('p_AAAAAAAAAAAAAAAAAAAAAA', 'p_BBBBBBBBBBBBBBBBBBBBBB'), {
        minLength: 1,
      }),
      nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    });
    const channel = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(channelIdFrom);
    fc.assert(
      fc.property(header, header, channel, channel, (h1, h2, c1, c2) => {
        const a = { ...h1, parties: h1.parties as never[] };
        const b = { ...h2, parties: h2.parties as never[] };
        const same =
          a.docType === b.docType &&
          a.title === b.title &&
          a.languages.join() === b.languages.join() &&
          [...a.parties].sort().join() === [...b.parties].sort().join() &&
          toHex(a.nonce) === toHex(b.nonce);
        const id = documentId(c1, a);
        expect(id).toMatch(/^e_[A-Za-z0-9_-]{22}$/);
        // Party order is not part of the header; everything else is.
        expect(documentId(c1, { ...a, parties: [...a.parties].reverse() })).toBe(id);
        expect(documentId(c2, b) === id).toBe(same && c1 === c2);
      }),
      { numRuns: 300 },
    );
  });

  it('a word diff rebuilds both texts exactly', () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const d = diffWords(a, b);
        expect(applyDiff(d, 'before')).toBe(a);
        expect(applyDiff(d, 'after')).toBe(b);
        if (a === b) expect(d.every((p) => p.op === 'equal')).toBe(true);
      }),
    );
  });

  it('inline bracket markup survives parse and render', () => {
    fc.assert(
      fc.property(
        text,
        fc.array(
          text.filter((t) => !t.includes('|')),
          { minLength: 2, maxLength: 3 },
        ),
        text,
        (pre, alts, post) => {
          const segs = parseSegments(`${pre}{{${alts.join('|')}}}${post}`);
          const rendered = renderSegments(segs);
          for (const a of alts) expect(rendered).toContain(`[${a.trim()}]`);
        },
      ),
    );
  });

  it('a revision hash is stable through encoding and changes with any word', () => {
    fc.assert(
      fc.property(body, word, (b, w) => {
        const h = revisionHash(b);
        const again = decodeCanonical(encodeRevisionBody(b));
        expect(again.ok).toBe(true);
        if (again.ok)
          expect(toHex(revisionHash(revisionBody(again.value as unknown as RevisionBody)))).toBe(toHex(h));
        const first = b.clauses[0];
        if (first === undefined) return;
        const changed = {
          ...b,
          clauses: [{ ...first, text: { en: [...(first.text.en ?? []), ` ${w}`] } }, ...b.clauses.slice(1)],
        };
        expect(toHex(revisionHash(changed))).not.toBe(toHex(h));
      }),
    );
  });

  it('a document is agreed exactly when every party signed the same head revision hash', () => {
    // Each step: who edits (or nobody), then which revision A and B sign (relative to head).
    const step = fc.record({ edit: fc.boolean(), a: fc.option(fc.nat(2)), b: fc.option(fc.nat(2)) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 5 }), (steps) => {
        const w = new World();
        const doc = w.create(
          w.aNegotiator,
          'agreed-minutes',
          ['en'],
          [{ id: 'p1', text: { en: ['We met.'] } }],
        );
        let k = 0;
        for (const s of steps) {
          if (s.edit)
            w.edit(w.bNegotiator, doc, [
              { op: 'set', clause: 'p1', lang: 'en', segments: [`We met ${k++} times.`] },
            ]);
          const n = w.doc(doc).revisions.length;
          if (s.a !== null) w.signoff(w.aNegotiator, doc, 'sign', undefined, Math.max(0, n - 1 - s.a));
          if (s.b !== null) w.signoff(w.bNegotiator, doc, 'sign', undefined, Math.max(0, n - 1 - s.b));
        }
        const d = w.doc(doc);
        const head = d.revisions[d.revisions.length - 1];
        const signedHead = (p: string) =>
          d.signoffs.some(
            (x) =>
              x.party === p &&
              x.level === 'sign' &&
              head !== undefined &&
              toHex(x.revision) === toHex(head.hash),
          );
        expect(documentStatus(d).agreed).toBe(signedHead(w.A.id) && signedHead(w.B.id));
      }),
      { numRuns: 25 },
    );
  });

  it('after initialling, an edit clears agreement on exactly the clause/language pairs it touches', () => {
    const edit = fc.record({ clause: fc.nat(3), lang: fc.constantFrom('en', 'fr'), word: word });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const w = new World();
        const ids = ['c0', 'c1', 'c2', 'c3'];
        const doc = w.create(
          w.aNegotiator,
          'ad-referendum',
          ['en', 'fr'],
          ids.map((id) => ({ id, text: { en: [`Clause ${id}.`], fr: [`Article ${id}.`] } })),
        );
        w.signoff(w.aNegotiator, doc, 'initial');
        w.signoff(w.bNegotiator, doc, 'initial');
        expect(documentStatus(w.doc(doc)).agreed).toBe(true);
        const touched = new Set<string>();
        for (const e of edits) {
          const id = ids[e.clause] as string;
          const before = w.head(doc).clauses.find((c) => c.id === id)?.text[e.lang]?.[0] as string;
          const r = w.edit(w.bNegotiator, doc, [
            { op: 'set', clause: id, lang: e.lang, segments: [`${before} ${e.word}`] },
          ]);
          expect(r.ok).toBe(true);
          touched.add(`${id}/${e.lang}`);
        }
        const d = w.doc(doc);
        for (const id of ids)
          for (const lang of ['en', 'fr']) {
            const want = touched.has(`${id}/${lang}`) ? 'open' : 'agreed';
            expect(clauseStatus(d, id, lang).status, `${id}/${lang}`).toBe(want);
          }
        expect(documentStatus(d).agreed).toBe(false);
      }),
      { numRuns: 25 },
    );
  });
});
