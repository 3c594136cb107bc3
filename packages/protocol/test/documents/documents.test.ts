import { describe, expect, it } from 'vitest';
import {
  clauseStatus,
  decodeCanonical,
  documentStatus,
  type EventId,
  encodeEvent,
  exportDocument,
  headOf,
  parseSegments,
  signEnvelope,
  commitEvent,
  verifyDocumentBundle,
  type ChannelEvent,
  diffRevisions,
  renderDiff,
  channelIdFrom,
  documentId,
  firstRevision,
} from '../../src/index.ts';
import { plain, World } from './helpers.ts';

/** Step 9 of the reference scenario: a joint statement in English and French. */
function draftJointStatement(w: World): EventId {
  const { A, B } = w;
  // Revision 0 — A's first draft, with its own wording bracketed against a softer one.
  const doc = w.create(
    w.aNegotiator,
    'signed-text',
    ['en', 'fr'],
    [
      {
        id: 'resume',
        text: {
          en: parseSegments('The parties {{welcome | note}} the resumption of direct contact.', A.id),
          fr: parseSegments(
            'Les parties {{se félicitent de | prennent acte de}} la reprise du contact direct.',
            A.id,
          ),
        },
      },
      {
        id: 'talks',
        text: {
          en: plain('Talks will continue in Geneva.'),
          fr: plain('Les pourparlers se poursuivront à Genève.'),
        },
      },
      {
        id: 'inspectors',
        text: {
          en: plain('Inspectors return within 30 days.'),
          fr: plain('Les inspecteurs reviennent sous 30 jours.'),
        },
      },
    ],
  );
  // Revision 1 — B brackets the venue against its own.
  expect(
    w.edit(w.bNegotiator, doc, [
      { op: 'bracket', clause: 'talks', lang: 'en', phrase: 'Geneva', alternatives: ['Muscat'] },
      { op: 'bracket', clause: 'talks', lang: 'fr', phrase: 'Genève', alternatives: ['Mascate'] },
    ]).ok,
  ).toBe(true);
  // Revision 2 — A accepts B's softer verb in both languages.
  expect(
    w.edit(w.aNegotiator, doc, [
      { op: 'resolve', clause: 'resume', lang: 'en', bracket: 0, choose: 1 },
      { op: 'resolve', clause: 'resume', lang: 'fr', bracket: 0, choose: 1 },
    ]).ok,
  ).toBe(true);
  // Revision 3 — B accepts Geneva.
  expect(
    w.edit(w.bNegotiator, doc, [
      { op: 'resolve', clause: 'talks', lang: 'en', bracket: 0, choose: 0 },
      { op: 'resolve', clause: 'talks', lang: 'fr', bracket: 0, choose: 0 },
    ]).ok,
  ).toBe(true);
  // Revision 4 — A tightens the deadline wording.
  expect(
    w.edit(w.aNegotiator, doc, [
      {
        op: 'set',
        clause: 'inspectors',
        lang: 'en',
        segments: plain('Inspectors return within thirty days.'),
      },
      {
        op: 'set',
        clause: 'inspectors',
        lang: 'fr',
        segments: plain('Les inspecteurs reviennent sous trente jours.'),
      },
    ]).ok,
  ).toBe(true);
  expect(B.id).not.toBe(A.id);
  return doc;
}

describe('a document with no clause', () => {
  it('is never clauses-agreed, initialled or agreed, whoever signs it', () => {
    const w = new World();
    const doc = w.create(w.aPrincipal, 'signed-text', ['en'], []);
    for (const dev of [w.aNegotiator, w.bNegotiator]) expect(w.signoff(dev, doc, 'initial').ok).toBe(true);
    for (const dev of [w.aPrincipal, w.bPrincipal]) expect(w.signoff(dev, doc, 'sign').ok).toBe(true);
    expect(documentStatus(w.doc(doc))).toMatchObject({
      clausesAgreed: false,
      initialled: false,
      agreed: false,
      stage: 'draft',
    });
    // Its export, signatures and all, does not verify as agreed either (a bundle any client made).
    const rootKeys = { [w.A.id]: w.A.root.publicKey, [w.B.id]: w.B.root.publicKey };
    const { bundle, files } = exportDocument(w.doc(doc), { rootKeys, base: 'empty' });
    expect(verifyDocumentBundle(JSON.parse(JSON.stringify(bundle)), files)).toMatchObject({
      ok: false,
      code: 'DOC_NOT_AGREED',
    });
  });
});

function agreeAllClauses(w: World, doc: EventId): void {
  for (const dev of [w.aNegotiator, w.bNegotiator])
    for (const c of w.head(doc).clauses)
      for (const lang of w.head(doc).languages) {
        const r = w.signoff(dev, doc, 'agree', { id: c.id, lang });
        expect(r.ok, r.ok ? '' : r.reason).toBe(true);
      }
}

describe('negotiated documents', () => {
  it('a document id is its header’s hash in its channel: a chosen id, or a header changed later, is refused', () => {
    const w = new World();
    const clauses = [{ id: 'p1', text: { en: plain('We met.') } }];
    const input = {
      channel: w.state.channel,
      nonce: new Uint8Array(16).fill(5),
      type: 'agreed-minutes' as const,
      title: 'Minutes',
      languages: ['en'],
      clauses,
      author: w.A.id,
      channelParties: w.state.parties,
    };
    const body = firstRevision(input);
    expect(body.doc).toBe(documentId(w.state.channel, body));
    // A creator naming the document at will (here: another document's id) is refused.
    const chosen = w.send(w.aNegotiator, { kind: 'doc.revision', ...body, doc: w.newId() });
    expect(chosen.ok ? '' : chosen.code).toBe('DOC_ID_MISMATCH');
    // The same header in another channel has another id, so it is refused here too.
    const elsewhere = firstRevision({ ...input, channel: channelIdFrom(new Uint8Array(16).fill(0xab)) });
    expect(elsewhere.doc).not.toBe(body.doc);
    const moved = w.send(w.aNegotiator, { kind: 'doc.revision', ...elsewhere });
    expect(moved.ok ? '' : moved.code).toBe('DOC_ID_MISMATCH');
    expect(w.state.documents).toEqual({});
    expect(w.send(w.aNegotiator, { kind: 'doc.revision', ...body }).ok).toBe(true);
    // Every later revision carries the same header: a new title (or nonce) is refused.
    const head = headOf(w.doc(body.doc));
    const next = { ...head.body, n: 1, parent: head.hash, author: w.B.id };
    const retitled = w.send(w.bNegotiator, { kind: 'doc.revision', ...next, title: 'Other minutes' });
    expect(retitled.ok ? '' : retitled.code).toBe('DOC_INVALID');
    const renonced = w.send(w.bNegotiator, {
      kind: 'doc.revision',
      ...next,
      nonce: new Uint8Array(16).fill(6),
    });
    expect(renonced.ok ? '' : renonced.code).toBe('DOC_INVALID');
    expect(w.send(w.bNegotiator, { kind: 'doc.revision', ...next }).ok).toBe(true);
  });

  it('a two-language joint statement is drafted through five revisions, resolved clause by clause, initialled, then signed', () => {
    const w = new World();
    const doc = draftJointStatement(w);
    const d0 = w.doc(doc);
    expect(d0.revisions).toHaveLength(5);
    // Each revision's parent is the previous revision's hash; authors alternate A, B, A, B, A.
    for (let i = 1; i < 5; i++) expect(d0.revisions[i]?.body.parent).toEqual(d0.revisions[i - 1]?.hash);
    expect(d0.revisions.map((r) => r.body.author)).toEqual([w.A.id, w.B.id, w.A.id, w.B.id, w.A.id]);
    // Brackets were there and are gone.
    expect(clauseStatus({ ...d0, revisions: d0.revisions.slice(0, 2) }, 'talks', 'en').status).toBe(
      'bracketed',
    );
    expect(w.head(doc).clauses.map((c) => c.text.en)).toEqual([
      ['The parties note the resumption of direct contact.'],
      ['Talks will continue in Geneva.'],
      ['Inspectors return within thirty days.'],
    ]);
    // Clause by clause, language by language: A agrees first, then B.
    const first = w.head(doc).clauses[0];
    expect(w.signoff(w.aNegotiator, doc, 'agree', { id: 'resume', lang: 'en' }).ok).toBe(true);
    expect(clauseStatus(w.doc(doc), 'resume', 'en')).toEqual({
      status: 'agreed-by-some',
      agreedBy: [w.A.id],
    });
    expect(clauseStatus(w.doc(doc), 'resume', 'fr').status).toBe('open');
    expect(first?.id).toBe('resume');
    agreeAllClauses(w, doc);
    expect(documentStatus(w.doc(doc))).toMatchObject({
      clausesAgreed: true,
      initialled: false,
      agreed: false,
      stage: 'clauses-agreed',
    });
    // Initialled by each party's negotiator: initialled, not yet agreed (a signed text needs principals).
    expect(w.signoff(w.aNegotiator, doc, 'initial').ok).toBe(true);
    expect(documentStatus(w.doc(doc)).initialled).toBe(false);
    expect(w.signoff(w.bNegotiator, doc, 'initial').ok).toBe(true);
    expect(documentStatus(w.doc(doc))).toMatchObject({
      initialled: true,
      agreed: false,
      stage: 'initialled',
    });
    // A negotiator may not sign a signed text; a principal may.
    const refused = w.signoff(w.bNegotiator, doc, 'sign');
    expect(refused.ok ? '' : refused.code).toBe('ROLE_FORBIDDEN');
    expect(w.signoff(w.aPrincipal, doc, 'sign').ok).toBe(true);
    expect(documentStatus(w.doc(doc)).agreed).toBe(false);
    expect(w.signoff(w.bPrincipal, doc, 'sign').ok).toBe(true);
    const st = documentStatus(w.doc(doc));
    expect(st).toMatchObject({ agreed: true, stage: 'agreed', head: { n: 4 } });
    expect(st.byParty[w.A.id]).toEqual(['initial', 'sign']);
  });

  it('an edit after initialling clears exactly the touched clauses, visibly', () => {
    const w = new World();
    const doc = draftJointStatement(w);
    agreeAllClauses(w, doc);
    w.signoff(w.aNegotiator, doc, 'initial');
    w.signoff(w.bNegotiator, doc, 'initial');
    expect(documentStatus(w.doc(doc)).initialled).toBe(true);
    const r = w.edit(w.bNegotiator, doc, [
      {
        op: 'set',
        clause: 'talks',
        lang: 'en',
        segments: plain('Talks will continue in Geneva next month.'),
      },
    ]);
    expect(r.ok).toBe(true);
    const d = w.doc(doc);
    const head = headOf(d);
    expect(head.touched).toEqual([{ clause: 'talks', lang: 'en' }]);
    expect(head.cleared).toEqual([{ clause: 'talks', lang: 'en', parties: [...w.head(doc).parties] }]);
    expect(clauseStatus(d, 'talks', 'en')).toEqual({ status: 'open', agreedBy: [] });
    for (const [c, l] of [
      ['talks', 'fr'],
      ['resume', 'en'],
      ['resume', 'fr'],
      ['inspectors', 'en'],
      ['inspectors', 'fr'],
    ] as const)
      expect(clauseStatus(d, c, l).status).toBe('agreed');
    expect(documentStatus(d)).toMatchObject({ initialled: false, clausesAgreed: false, head: { n: 5 } });
    // The word diff between the initialled revision and the edit shows just the new words.
    const diff = diffRevisions(d.revisions[4]?.body as never, head.body).filter(
      (x) => x.change !== 'unchanged',
    );
    expect(diff.map((x) => [x.clause, x.lang, renderDiff(x.parts)])).toEqual([
      ['talks', 'en', 'Talks will continue in [-Geneva.-]{+Geneva next month.+}'],
    ]);
  });

  it('a signature over a different revision never counts', () => {
    const w = new World();
    const doc = draftJointStatement(w);
    expect(w.signoff(w.aPrincipal, doc, 'sign').ok).toBe(true); // over revision 4
    w.edit(w.bNegotiator, doc, [
      { op: 'set', clause: 'talks', lang: 'en', segments: ['Talks will continue.'] },
    ]);
    expect(w.signoff(w.bPrincipal, doc, 'sign').ok).toBe(true); // over revision 5
    expect(documentStatus(w.doc(doc)).agreed).toBe(false);
    // A signs revision 4 again, after the edit: still not the head, still no agreement.
    expect(w.signoff(w.aPrincipal, doc, 'sign', undefined, 4).ok).toBe(true);
    expect(documentStatus(w.doc(doc)).agreed).toBe(false);
    // A signature made over revision 4 but presented as one over revision 5 does not verify.
    const d = w.doc(doc);
    const old = d.signoffs.find((s) => s.party === w.A.id && s.level === 'sign');
    const forged = w.send(w.aPrincipal, {
      kind: 'doc.sign',
      doc,
      revision: headOf(d).hash,
      level: 'sign',
      signedAt: old?.signedAt ?? 0,
      cert: old?.cert ?? new Uint8Array(1),
      sig: old?.sig ?? new Uint8Array(64),
    });
    expect(forged.ok ? '' : forged.code).toBe('SIG_INVALID');
    // A revision hash no revision has is refused.
    const unknown = w.signoff(w.aPrincipal, doc, 'sign');
    expect(unknown.ok).toBe(true);
    expect(documentStatus(w.doc(doc)).agreed).toBe(true);
  });

  it('refuses a revision that does not build on the head, a bracketed sign-off and another device’s certificate', () => {
    const w = new World();
    const doc = w.create(
      w.aNegotiator,
      'agreed-minutes',
      ['en'],
      [{ id: 'p1', text: { en: parseSegments('We met on {{Monday | Tuesday}}.', w.A.id) } }],
    );
    const stale = w.head(doc);
    expect(
      w.edit(w.bNegotiator, doc, [{ op: 'add', clause: 'p2', text: { en: ['Next meeting in June.'] } }]).ok,
    ).toBe(true);
    const r = w.send(w.aNegotiator, {
      kind: 'doc.revision',
      ...{ ...stale, n: 1, parent: new Uint8Array(32) },
    });
    expect(r.ok ? '' : r.code).toBe('DOC_REVISION_STALE');
    const bracketed = w.signoff(w.aNegotiator, doc, 'sign');
    expect(bracketed.ok ? '' : bracketed.code).toBe('DOC_BRACKETS_OPEN');
    const clause = w.signoff(w.aNegotiator, doc, 'agree', { id: 'p1', lang: 'en' });
    expect(clause.ok ? '' : clause.code).toBe('DOC_BRACKETS_OPEN');
    w.edit(w.aNegotiator, doc, [{ op: 'resolve', clause: 'p1', lang: 'en', bracket: 0, choose: 0 }]);
    // Staff may agree a clause but never initial or sign; nobody initials agreed minutes.
    expect(w.signoff(w.aStaff, doc, 'agree', { id: 'p1', lang: 'en' }).ok).toBe(true);
    for (const [dev, level] of [
      [w.aStaff, 'sign'],
      [w.aNegotiator, 'initial'],
    ] as const) {
      const r2 = w.signoff(dev, doc, level);
      expect(r2.ok ? '' : r2.code).toBe('ROLE_FORBIDDEN');
    }
    // B's principal sends a sign-off made (and certified) by A's negotiator.
    const d = w.doc(doc);
    const mine = w.signoff(w.aNegotiator, doc, 'sign');
    expect(mine.ok).toBe(true);
    const s = w.doc(doc).signoffs.at(-1);
    const replay = w.send(w.bPrincipal, {
      kind: 'doc.sign',
      doc,
      revision: headOf(d).hash,
      level: 'sign',
      signedAt: s?.signedAt ?? 0,
      cert: s?.cert ?? new Uint8Array(1),
      sig: s?.sig ?? new Uint8Array(64),
    });
    expect(replay.ok ? '' : replay.code).toBe('CERT_WRONG_PARTY');
    expect(w.signoff(w.bNegotiator, doc, 'sign').ok).toBe(true);
    expect(documentStatus(w.doc(doc)).agreed).toBe(true);
  });

  it('a non-paper carries no signature, and nothing in it or its envelope attributes it beyond what the relay sees', () => {
    const w = new World();
    const doc = w.create(
      w.aStaff,
      'non-paper',
      ['en'],
      [{ id: 'idea', text: { en: parseSegments('One could {{pause | slow}} enrichment.', w.A.id) } }],
    );
    const d = w.doc(doc);
    const body = headOf(d).body;
    expect(body.author).toBeUndefined();
    expect(body.parties).toEqual([]);
    // Alternatives lose their proposer in a non-paper.
    expect(body.clauses[0]?.text.en).toEqual([
      'One could ',
      { alts: [{ text: 'pause' }, { text: 'slow' }] },
      ' enrichment.',
    ]);
    // No sign-off of any level is accepted, and comments stay unattributed.
    for (const level of ['agree', 'initial', 'sign'] as const) {
      const r = w.signoff(
        w.aPrincipal,
        doc,
        level,
        level === 'agree' ? { id: 'idea', lang: 'en' } : undefined,
      );
      expect(r.ok ? '' : r.code).toBe('DOC_SIGNATURE_FORBIDDEN');
    }
    expect(
      w.send(w.bNegotiator, { kind: 'doc.comment', doc, clause: 'idea', text: 'Worth exploring.' }).ok,
    ).toBe(true);
    expect(w.doc(doc).comments[0]?.by).toBeUndefined();
    expect(w.doc(doc).signoffs).toEqual([]);
    // An attributed revision of a non-paper is refused.
    const attributed = w.send(w.bNegotiator, {
      kind: 'doc.revision',
      ...{ ...body, n: 1, parent: headOf(d).hash, author: w.B.id },
    });
    expect(attributed.ok ? '' : attributed.code).toBe('DOC_INVALID');
    // The event names no party or device and carries no bytes but its random 16-byte nonce.
    const event = { kind: 'doc.revision', ...body, v: 1, id: doc, at: 1 } as ChannelEvent;
    const strings: string[] = [];
    const blobs: Uint8Array[] = [];
    const walk = (x: unknown): void => {
      if (typeof x === 'string') strings.push(x);
      else if (x instanceof Uint8Array) blobs.push(x);
      else if (Array.isArray(x)) x.forEach(walk);
      else if (x !== null && typeof x === 'object') Object.values(x).forEach(walk);
    };
    const decoded = decodeCanonical(encodeEvent(event));
    expect(decoded.ok).toBe(true);
    if (decoded.ok) walk(decoded.value);
    expect(strings.filter((s) => /^[pd]_/.test(s) || s.includes(w.A.id))).toEqual([]);
    expect(blobs.map((b) => b.length)).toEqual([16]);
    // Its envelope has exactly the fields any application message has: what the relay sees anyway.
    const envelopeOf = (e: ChannelEvent) =>
      signEnvelope(
        {
          v: 1,
          channel: w.state.channel,
          sender: w.aStaff.cert.body.device,
          msgId: e.id,
          epoch: 3,
          kind: 'application',
          mls: new Uint8Array(40),
          commitment: commitEvent(e, new Uint8Array(16)),
          sentAt: 1,
        },
        w.aStaff.key.secretKey,
      ).body;
    const message = { kind: 'message', text: 'hi', v: 1, id: w.newId(), at: 1 } as ChannelEvent;
    expect(Object.keys(envelopeOf(event)).sort()).toEqual(Object.keys(envelopeOf(message)).sort());
  });

  it('the exported bundle verifies offline, and one changed word fails', () => {
    const w = new World();
    const doc = draftJointStatement(w);
    agreeAllClauses(w, doc);
    for (const dev of [w.aNegotiator, w.bNegotiator]) w.signoff(dev, doc, 'initial');
    for (const dev of [w.aPrincipal, w.bPrincipal]) w.signoff(dev, doc, 'sign');
    const rootKeys = { [w.A.id]: w.A.root.publicKey, [w.B.id]: w.B.root.publicKey };
    const { bundle, files } = exportDocument(w.doc(doc), { rootKeys, base: 'joint-statement' });
    expect(Object.keys(files).sort()).toEqual([
      'joint-statement.en.akn.xml',
      'joint-statement.fr.akn.xml',
      'joint-statement.md',
    ]);
    const md = files['joint-statement.md'] as string;
    expect(md).toContain('1. The parties note the resumption of direct contact.');
    expect(md).toContain('1. Les parties prennent acte de la reprise du contact direct.');
    expect(files['joint-statement.fr.akn.xml']).toContain('<FRBRlanguage language="fr"/>');
    const json = JSON.parse(JSON.stringify(bundle)) as unknown;
    const ok = verifyDocumentBundle(json, files, { trustedRoots: rootKeys });
    expect(ok.ok ? ok.signers.map((s) => s.level) : ok.reason).toEqual([
      'initial',
      'initial',
      'sign',
      'sign',
    ]);
    expect(ok.ok && ok.agreed).toBe(true);
    // One changed word in the Markdown, in the XML, or in the signed body: each fails.
    const md2 = { ...files, 'joint-statement.md': md.replace('Geneva', 'Vienna') };
    expect(verifyDocumentBundle(json, md2)).toMatchObject({ ok: false, code: 'DOC_TEXT_MISMATCH' });
    const xml = files['joint-statement.en.akn.xml'] as string;
    const xml2 = { ...files, 'joint-statement.en.akn.xml': xml.replace('thirty', 'sixty') };
    expect(verifyDocumentBundle(json, xml2)).toMatchObject({ ok: false, code: 'DOC_TEXT_MISMATCH' });
    // Re-exporting a changed revision under the old signatures: the re-hashed body no longer matches them.
    const b = JSON.parse(JSON.stringify(bundle)) as typeof bundle;
    b.document.title = 'Joint statement (amended)';
    expect(verifyDocumentBundle(b, files)).toMatchObject({ ok: false, code: 'BUNDLE_INVALID' });
    // A signature that is not all there, or a missing party, fails too.
    const files3 = exportDocument(
      {
        ...w.doc(doc),
        signoffs: w.doc(doc).signoffs.filter((s) => !(s.party === w.B.id && s.level === 'sign')),
      },
      { rootKeys, base: 'joint-statement' },
    );
    expect(verifyDocumentBundle(JSON.parse(JSON.stringify(files3.bundle)), files3.files)).toMatchObject({
      ok: false,
      code: 'DOC_NOT_AGREED',
    });
    // One flipped bit in a signature (the texts are untouched): the signature no longer verifies.
    const t = JSON.parse(JSON.stringify(bundle)) as typeof bundle;
    const s0 = t.signatures[0];
    if (s0 !== undefined)
      s0.sig = `${s0.sig.slice(0, 10)}${s0.sig[10] === 'A' ? 'B' : 'A'}${s0.sig.slice(11)}`;
    expect(verifyDocumentBundle(t, files)).toMatchObject({ ok: false, code: 'SIG_INVALID' });
    // A pinned root key that differs is refused.
    expect(
      verifyDocumentBundle(json, files, { trustedRoots: { [w.A.id]: w.B.root.publicKey } }),
    ).toMatchObject({
      ok: false,
      code: 'CERT_WRONG_PARTY',
    });
  });

  it('an aide-mémoire is its author party’s alone: only it revises and signs it, and its signature alone agrees it', () => {
    const w = new World();
    const doc = w.create(
      w.aNegotiator,
      'aide-memoire',
      ['en'],
      [{ id: 'm1', text: { en: ['A recalls the understanding reached on 3 May.'] } }],
    );
    expect(w.head(doc).parties).toEqual([w.A.id]);
    const edit = w.edit(w.bNegotiator, doc, [
      { op: 'set', clause: 'm1', lang: 'en', segments: ['B’s version.'] },
    ]);
    expect(edit.ok ? '' : edit.code).toBe('ROLE_FORBIDDEN');
    const bSign = w.signoff(w.bPrincipal, doc, 'sign');
    expect(bSign.ok ? '' : bSign.code).toBe('DOC_SIGNATURE_FORBIDDEN');
    expect(w.signoff(w.aNegotiator, doc, 'sign').ok).toBe(true);
    expect(documentStatus(w.doc(doc)).agreed).toBe(true);
    const { bundle, files } = exportDocument(w.doc(doc), {
      rootKeys: { [w.A.id]: w.A.root.publicKey },
      base: 'aide-memoire',
    });
    expect(files['aide-memoire.md']).toContain('**Aide-mémoire**');
    expect(verifyDocumentBundle(JSON.parse(JSON.stringify(bundle)), files)).toMatchObject({
      ok: true,
      agreed: true,
    });
  });
});
