import { describe, expect, it } from 'vitest';
import { decodeEvent, encodeCanonical, verifyDocumentBundle } from '../../src/index.ts';

const junk: unknown[] = [
  undefined,
  null,
  0,
  'bundle',
  [],
  {},
  { kind: 'backchannel-document-bundle' },
  { kind: 'backchannel-document-bundle', v: 2 },
  new Uint8Array(10),
  { __proto__: { kind: 'backchannel-document-bundle' } },
];

describe('junk input to the document decoders', () => {
  it.each(junk.map((j, i) => [i, j]))('bundle verifier refuses junk #%s with a reason', (_i, j) => {
    const r = verifyDocumentBundle(j, {});
    expect(r).toMatchObject({ ok: false, code: 'BUNDLE_INVALID' });
  });

  it('refuses document events that are malformed, with the field named', () => {
    const base = { v: 1, id: 'e_AAAAAAAAAAAAAAAAAAAAAA', at: 1 };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...base, kind: 'doc.revision' }, 'event.doc'],
      [
        {
          ...base,
          kind: 'doc.sign',
          doc: base.id,
          revision: new Uint8Array(31),
          level: 'sign',
          signedAt: 1,
          cert: new Uint8Array(1),
          sig: new Uint8Array(64),
        },
        'event.revision',
      ],
      [
        {
          ...base,
          kind: 'doc.sign',
          doc: base.id,
          revision: new Uint8Array(32),
          level: 'ratify',
          signedAt: 1,
          cert: new Uint8Array(1),
          sig: new Uint8Array(64),
        },
        'event.level',
      ],
      [{ ...base, kind: 'doc.comment', doc: base.id, clause: 'Not An Id', text: 'x' }, 'event.clause'],
    ];
    for (const [e, at] of cases) {
      const d = decodeEvent(encodeCanonical(e));
      expect(d.ok ? 'accepted' : `${d.code} ${d.at}`).toBe(`EVENT_INVALID ${at}`);
    }
  });
});
