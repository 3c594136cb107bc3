/**
 * Negotiated documents from a terminal: two parties draft a two-language text with brackets
 * through `backchannel doc …`, each device its own process, against a real relay process.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docCommands } from '../src/cli/commands/doc.ts';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-doc-cli-'));
const { cli, ok, human } = cliRunner(root);

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
}, 60_000);
afterAll(async () => {
  await relay?.stop();
});

describe('backchannel doc', () => {
  it('drafts, brackets, resolves, agrees clause by clause, initials, signs, diffs, exports and verifies', {
    timeout: 600_000,
  }, async () => {
    await ok(
      'a',
      ['init', 'party', '--name', 'Ministry', '--device', 'minister', '--role', 'principal'],
      relay.url,
    );
    const b = await ok(
      'b',
      ['init', 'party', '--name', 'Envoy', '--device', 'envoy', '--role', 'principal'],
      relay.url,
    );
    const ch = String((await ok('a', ['outreach', String(b.party), '--note', 'Shall we talk?'])).channel);
    await ok('b', ['inbox']);
    await ok('b', ['accept', ch]);
    const doc = String(
      (
        await ok('a', [
          'doc',
          'new',
          ch,
          '--type',
          'ad-referendum',
          '--title',
          'Joint statement',
          '--lang',
          'en',
          '--lang',
          'fr',
          '--clause',
          'resume=The parties {{welcome | note}} the talks. || Les parties {{saluent | notent}} les pourparlers.',
          '--clause',
          'venue=Talks continue in Geneva. || Les pourparlers continuent à Genève.',
        ])
      ).doc,
    );
    await ok('b', [
      'doc',
      'bracket',
      ch,
      doc,
      'venue',
      '--lang',
      'en',
      '--phrase',
      'Geneva',
      '--alt',
      'Muscat',
    ]);
    await ok('a', ['doc', 'resolve', ch, doc, 'resume', '--choose', '1']);
    await ok('b', ['doc', 'resolve', ch, doc, 'venue', '--lang', 'en', '--choose', '0']);
    await ok('b', ['doc', 'comment', ch, doc, 'venue', 'Geneva is fine.']);
    await ok('a', ['doc', 'sign', ch, doc, '--all-clauses']);
    await ok('b', ['doc', 'sign', ch, doc, '--all-clauses']);
    // A principal's full signature does not count for a text initialled ad referendum: initials do.
    expect(await cli('a', ['doc', 'sign', ch, doc])).toMatchObject({
      code: 2,
      json: { error: { code: 'EVENT_REJECTED' } },
    });
    await ok('a', ['doc', 'initial', ch, doc]);
    // Initialling the same revision twice from one device adds nothing: refused, in words.
    expect(await cli('a', ['doc', 'initial', ch, doc])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT', message: 'this device has already initialled revision 3' } },
    });
    await ok('b', ['doc', 'initial', ch, doc]);
    let show = await ok('a', ['doc', 'show', ch, doc]);
    expect(show).toMatchObject({
      type: 'ad-referendum',
      typeName: 'Text initialled ad referendum',
      head: { n: 3 },
    });
    expect(show).toMatchObject({ status: { agreed: true, stage: 'agreed', clausesAgreed: true } });
    const list = await ok('b', ['doc', 'list', ch]);
    expect(list.documents).toEqual([
      { doc, type: 'ad-referendum', title: 'Joint statement', revision: 3, stage: 'agreed' },
    ]);
    const diff = await ok('a', ['doc', 'diff', ch, doc, '0', '3']);
    const changed = (diff.clauses as Array<{ clause: string; lang: string; change: string }>).filter(
      (c) => c.change === 'changed',
    );
    expect(changed.map((c) => `${c.clause}/${c.lang}`)).toEqual(['resume/en', 'resume/fr']);
    const out = join(root, 'export');
    const ex = await ok('b', ['doc', 'export', ch, doc, '--out', out]);
    expect((ex.files as string[]).map((f) => f.slice(out.length + 1)).sort()).toEqual([
      'joint-statement.bundle.json',
      'joint-statement.en.akn.xml',
      'joint-statement.fr.akn.xml',
      'joint-statement.md',
    ]);
    expect(readFileSync(join(out, 'joint-statement.md'), 'utf8')).toContain('2. Talks continue in Geneva.');
    const v = await ok('x', ['doc', 'verify', join(out, 'joint-statement.bundle.json')]);
    expect(v).toMatchObject({ ok: true, agreed: true, revision: { n: 3 } });
    // A later edit clears agreement on the touched clause only; the export is then refused.
    await ok('b', [
      'doc',
      'edit',
      ch,
      doc,
      'venue',
      '--lang',
      'fr',
      '--text',
      'Les pourparlers continuent à Genève en mai.',
    ]);
    show = await ok('a', ['doc', 'show', ch, doc]);
    // At the terminal, parties by their card's name with their id.
    const shown = await human('a', ['doc', 'show', ch, doc]);
    expect(shown.stdout).toMatch(/parties: “(Ministry|Envoy)” p_\S+…, “(Ministry|Envoy)” p_\S+…/);
    expect(shown.stdout).toMatch(/revision \d+ by “Envoy” p_/);
    const after = show.clauses as Array<{ id: string; status: Record<string, { status: string }> }>;
    expect(after.map((c) => [c.id, c.status.en?.status, c.status.fr?.status])).toEqual([
      ['resume', 'agreed', 'agreed'],
      ['venue', 'agreed', 'open'],
    ]);
    expect(await cli('a', ['doc', 'export', ch, doc, '--out', out])).toMatchObject({
      code: 2,
      json: {
        error: {
          code: 'DOCUMENT_NOT_AGREED',
          message: expect.stringMatching(/revision 3 is agreed: export it with --revision 3$/),
        },
      },
    });
    // What was signed before the edit stays exportable, and verifies as agreed.
    const signed = join(root, 'export-signed');
    await ok('a', ['doc', 'export', ch, doc, '--out', signed, '--revision', '3']);
    expect(await ok('x', ['doc', 'verify', join(signed, 'joint-statement.bundle.json')])).toMatchObject({
      ok: true,
      agreed: true,
      revision: { n: 3 },
    });
    expect(await cli('a', ['doc', 'export', ch, doc, '--out', signed, '--revision', '9'])).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT', message: 'revisions run from 0 to 4' } },
    });
  });

  it('every doc command has an example in its --help', () => {
    const program = new Command('backchannel');
    docCommands(program, () => async () => undefined);
    const doc = program.commands.find((c) => c.name() === 'doc');
    const names = doc?.commands.map((c) => c.name()) ?? [];
    expect(names.sort()).toEqual(
      [
        'bracket',
        'comment',
        'diff',
        'edit',
        'export',
        'initial',
        'list',
        'new',
        'resolve',
        'show',
        'sign',
        'verify',
      ].sort(),
    );
    for (const c of doc?.commands ?? []) {
      let help = '';
      c.configureOutput({ writeOut: (t) => (help += t), writeErr: (t) => (help += t) });
      c.outputHelp();
      expect(help, c.name()).toMatch(/Examples?:\n\s+backchannel doc /);
    }
  });
});
