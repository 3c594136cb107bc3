/**
 * Step 9 of the reference scenario: A and B draft a joint statement in two equally authentic
 * languages, with bracketed alternatives resolved clause by clause; it is initialled by each
 * side's negotiator, then signed by each side's principal, and exported with its signature bundle.
 */
import { join } from 'node:path';
import { verifyDocumentBundle } from '@backchannel/protocol';
import type { Backchannel } from '../sdk/client.ts';
import { Documents, type NewDocument } from '../sdk/documents.ts';
import { verifyBundleFile, writeExport } from './commands/doc-io.ts';

export interface StatementStep {
  readonly say: (s: string) => void;
  readonly channel: string;
  /** A's drafter and signatory (its minister, a principal). */
  readonly aPrincipal: Backchannel;
  /** B's drafter (its negotiator) and signatory (its envoy, a principal). */
  readonly bNegotiator: Backchannel;
  readonly bPrincipal: Backchannel;
  readonly outDir?: string | undefined;
}

/** Runs `fn` on a device's documents in the channel: synced first, its outbox flushed after. */
export async function onDocuments<T>(
  bc: Backchannel,
  channel: string,
  fn: (d: Documents) => Promise<T>,
): Promise<T> {
  const ch = await bc.channel(channel);
  await ch.sync();
  const r = await fn(new Documents(bc, ch));
  await bc.outbox.flush();
  return r;
}

/** Revision 0 of the joint statement: a signed text in en + fr, the verb bracketed [welcome] / [note]. */
export const JOINT_STATEMENT: NewDocument = {
  type: 'signed-text',
  title: 'Joint statement on the resumption of contact',
  languages: ['en', 'fr'],
  clauses: [
    {
      id: 'resume',
      text: {
        en: 'The parties {{welcome | note}} the resumption of direct contact.',
        fr: 'Les parties {{se félicitent de | prennent acte de}} la reprise du contact direct.',
      },
    },
    {
      id: 'talks',
      text: { en: 'Talks will continue in Geneva.', fr: 'Les pourparlers se poursuivront à Genève.' },
    },
    {
      id: 'inspectors',
      text: { en: 'Inspectors return within 30 days.', fr: 'Les inspecteurs reviennent sous 30 jours.' },
    },
  ],
};

export async function jointStatementStep(s: StatementStep): Promise<Record<string, boolean>> {
  const act = <T>(bc: Backchannel, fn: (d: Documents) => Promise<T>): Promise<T> =>
    onDocuments(bc, s.channel, fn);
  const A = s.aPrincipal;
  const doc = await act(A, (d) => d.create(JOINT_STATEMENT));
  s.say(`  revision 0 by A: a signed text in en + fr, "resume" bracketed [welcome] / [note]`);
  await act(s.bNegotiator, (d) =>
    d.edit(doc, [
      { op: 'bracket', clause: 'talks', lang: 'en', phrase: 'Geneva', alternatives: ['Muscat'] },
      { op: 'bracket', clause: 'talks', lang: 'fr', phrase: 'Genève', alternatives: ['Mascate'] },
    ]),
  );
  s.say('  revision 1 by B: the venue bracketed [Geneva] / [Muscat]');
  await act(A, (d) =>
    d.edit(doc, [
      { op: 'resolve', clause: 'resume', lang: 'en', bracket: 0, choose: 1 },
      { op: 'resolve', clause: 'resume', lang: 'fr', bracket: 0, choose: 1 },
    ]),
  );
  s.say('  revision 2 by A: "note" accepted');
  await act(s.bNegotiator, (d) =>
    d.edit(doc, [
      { op: 'resolve', clause: 'talks', lang: 'en', bracket: 0, choose: 0 },
      { op: 'resolve', clause: 'talks', lang: 'fr', bracket: 0, choose: 0 },
    ]),
  );
  s.say('  revision 3 by B: Geneva accepted');
  await act(A, (d) =>
    d.edit(doc, [
      { op: 'set', clause: 'inspectors', lang: 'en', segments: ['Inspectors return within thirty days.'] },
      {
        op: 'set',
        clause: 'inspectors',
        lang: 'fr',
        segments: ['Les inspecteurs reviennent sous trente jours.'],
      },
    ]),
  );
  s.say('  revision 4 by A: "thirty days" spelled out');
  for (const bc of [A, s.bNegotiator]) {
    await act(bc, async (d) => {
      const v = d.show(doc);
      return d.agree(
        doc,
        v.clauses.flatMap((c) => v.languages.map((lang) => ({ id: c.id, lang }))),
      );
    });
  }
  s.say('  every clause agreed by both parties, in both languages');
  for (const bc of [A, s.bNegotiator]) await act(bc, (d) => d.signRevision(doc, 'initial'));
  const initialled = await act(s.bPrincipal, async (d) => d.show(doc).status.initialled);
  s.say(`  initialled ad referendum by A's minister and B's negotiator: ${initialled}`);
  for (const bc of [A, s.bPrincipal]) await act(bc, (d) => d.signRevision(doc, 'sign'));
  const view = await act(A, async (d) => d.show(doc));
  s.say(
    `  signed by both principals over revision ${view.head.n} (${view.head.hash.slice(0, 16)}…): agreed=${view.status.agreed}`,
  );
  const exported = await act(A, async (d) => d.export(doc, { base: 'joint-statement' }));
  let verified = verifyDocumentBundle(JSON.parse(JSON.stringify(exported.bundle)), exported.files).ok;
  if (s.outDir !== undefined) {
    const dir = join(s.outDir, 'joint-statement');
    // A demo run replaces the files of an earlier run in its --out directory.
    writeExport(dir, exported, true);
    verified = verifyBundleFile(join(dir, 'joint-statement.bundle.json')).ok;
    s.say(
      `  exported to ${dir} (Markdown, Akoma Ntoso en + fr, signature bundle); offline verification: ${verified}`,
    );
  }
  const tampered = {
    ...exported.files,
    'joint-statement.md': (exported.files['joint-statement.md'] ?? '').replace('Geneva', 'Vienna'),
  };
  const tamperFails = !verifyDocumentBundle(JSON.parse(JSON.stringify(exported.bundle)), tampered).ok;
  s.say(`  one changed word ("Geneva" → "Vienna") fails verification: ${tamperFails}`);
  return {
    statementInitialled: initialled,
    statementSigned: view.status.agreed,
    statementVerifies: verified && tamperFails,
  };
}
