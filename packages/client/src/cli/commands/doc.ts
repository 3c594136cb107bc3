/** `backchannel doc …`: negotiated documents — draft, bracket, resolve, comment, sign off, diff, export, verify. */

import {
  DOCUMENT_TYPES,
  type DocumentType,
  type EditStep,
  type PartyId,
  renderDiff,
} from '@backchannel/protocol';
import { type Command, Option } from 'commander';
import { type DocumentView, Documents } from '../../sdk/documents.ts';
import { ClientError } from '../../sdk/errors.ts';
import type { GlobalOptions } from '../device.node.ts';
import { EXIT, type Out, examples, readTextFile } from '../output.ts';
import { inline, namedParty, partyLabels, quoteBlock } from '../text.ts';
import type { Runner } from './identity.ts';
import { withChannel } from './talk.ts';
import {
  collect,
  LANG_SEP,
  parseClauseArg,
  renderView,
  splitLanguages,
  verifyBundleFile,
  writeExport,
} from './doc-io.ts';

async function withDocs<T>(o: GlobalOptions, channel: string, fn: (d: Documents) => Promise<T>): Promise<T> {
  return withChannel(o, channel, (ch, bc) => fn(new Documents(bc, ch)));
}

export function docCommands(program: Command, run: Runner): void {
  const doc = program
    .command('doc')
    .description('negotiated documents: non-paper, aide-mémoire, agreed minutes, ad referendum, signed text')
    .addHelpText(
      'after',
      examples(
        'backchannel doc new c_… --type non-paper --title "Ideas" --clause "one=We keep talking."',
        'backchannel doc list c_…',
      ),
    );

  doc
    .command('new <channel>')
    .description('start a document (revision 0); `{{a | b}}` in a clause marks bracketed alternatives')
    .addOption(
      new Option('--type <type>', 'document type').choices([...DOCUMENT_TYPES]).default('signed-text'),
    )
    .requiredOption('--title <title>', 'title')
    .option('--lang <lang>', 'a language version (repeat: all equally authentic)', collect)
    .option(
      '--clause <ID=TEXT>',
      `a clause: ID=text, one text per language separated by "${LANG_SEP.trim()}" (repeat)`,
      collect,
    )
    .option('--file <json>', 'or a JSON file {"languages": [...], "clauses": [{"id", "text": {lang: text}}]}')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel doc new c_… --type signed-text --title "Joint statement" --lang en --lang fr \\\n' +
        '    --clause "resume=The parties {{welcome | note}} the talks. || Les parties {{saluent | notent}} les pourparlers."',
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          opts: { type: DocumentType; title: string; lang?: string[]; clause?: string[]; file?: string },
        ) => {
          let languages = opts.lang ?? [];
          let clauses: Array<{ id: string; text: Record<string, string> }> = [];
          if (opts.file !== undefined) {
            const spec = JSON.parse(readTextFile(opts.file)) as {
              languages?: string[];
              clauses?: Array<{ id: string; text: Record<string, string> }>;
            };
            languages = spec.languages ?? languages;
            clauses = spec.clauses ?? [];
          }
          if (languages.length === 0) languages = ['en'];
          clauses = [...clauses, ...(opts.clause ?? []).map((c) => parseClauseArg(c, languages))];
          const id = await withDocs(o, channel, (d) =>
            d.create({ type: opts.type, title: opts.title, languages, clauses }),
          );
          out.result({ channel, doc: id }, () => `document ${id} started on ${channel}`);
        },
      ),
    );

  doc
    .command('edit <channel> <doc> [clause]')
    .description('a new revision: set, add or remove a clause (the title is fixed: it is part of the id)')
    .option(
      '--text <text>',
      `the clause text (all languages separated by "${LANG_SEP.trim()}", or one with --lang)`,
    )
    .option('--lang <lang>', 'only this language version')
    .option('--add', 'add the clause (at the end, or --after)')
    .option('--after <clause>', 'with --add: insert after this clause')
    .option('--remove', 'remove the clause')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel doc edit c_… e_… talks --lang en --text "Talks will continue in Geneva."',
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          docId: string,
          clause: string | undefined,
          opts: {
            text?: string;
            lang?: string;
            add?: boolean;
            after?: string;
            remove?: boolean;
          },
        ) => {
          const id = await withDocs(o, channel, async (d) => {
            const steps: EditStep[] = [];
            const langs = d.show(docId).languages;
            if (clause !== undefined) {
              if (opts.remove === true) steps.push({ op: 'remove', clause });
              else {
                if (opts.text === undefined)
                  throw new ClientError('INVALID_ARGUMENT', 'give the clause --text');
                const texts =
                  opts.lang === undefined ? splitLanguages(opts.text, langs) : { [opts.lang]: opts.text };
                const segs = Object.fromEntries(
                  Object.entries(texts).map(([l, t]) => [l, d.segments(docId, t)]),
                );
                if (opts.add === true)
                  steps.push({
                    op: 'add',
                    clause,
                    text: segs,
                    ...(opts.after === undefined ? {} : { after: opts.after }),
                  });
                else
                  for (const [lang, segments] of Object.entries(segs))
                    steps.push({ op: 'set', clause, lang, segments });
              }
            }
            if (steps.length === 0)
              throw new ClientError('INVALID_ARGUMENT', 'nothing to change (see --help)');
            return d.edit(docId, steps);
          });
          out.result({ channel, doc: docId, event: id }, () => `revision ${id} sent`);
        },
      ),
    );

  doc
    .command('bracket <channel> <doc> <clause>')
    .description('bracket a phrase (or the whole clause) against alternative wordings')
    .requiredOption('--lang <lang>', 'language version')
    .requiredOption('--alt <text>', 'an alternative wording (repeat)', collect)
    .option('--phrase <text>', 'the phrase to bracket (default: the whole text)')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel doc bracket c_… e_… talks --lang en --phrase Geneva --alt Muscat',
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          docId: string,
          clause: string,
          opts: { lang: string; alt: string[]; phrase?: string },
        ) => {
          const id = await withDocs(o, channel, (d) =>
            d.edit(docId, [
              {
                op: 'bracket',
                clause,
                lang: opts.lang,
                alternatives: opts.alt,
                ...(opts.phrase === undefined ? {} : { phrase: opts.phrase }),
              },
            ]),
          );
          out.result(
            { channel, doc: docId, event: id },
            () => `revision ${id} sent (clause ${clause} bracketed)`,
          );
        },
      ),
    );

  doc
    .command('resolve <channel> <doc> <clause>')
    .description('resolve a bracket by choosing one alternative (0 = first)')
    .requiredOption('--choose <n>', 'the alternative to keep')
    .option('--bracket <n>', 'which bracket in the clause (0 = first)', '0')
    .option('--lang <lang>', 'only this language version (default: every language)')
    .addHelpText('after', '\nExample:\n  backchannel doc resolve c_… e_… talks --choose 0')
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          docId: string,
          clause: string,
          opts: { choose: string; bracket: string; lang?: string },
        ) => {
          const id = await withDocs(o, channel, (d) => {
            const langs = opts.lang === undefined ? d.show(docId).languages : [opts.lang];
            return d.edit(
              docId,
              langs.map((lang) => ({
                op: 'resolve',
                clause,
                lang,
                bracket: Number(opts.bracket),
                choose: Number(opts.choose),
              })),
            );
          });
          out.result({ channel, doc: docId, event: id }, () => `revision ${id} sent (bracket resolved)`);
        },
      ),
    );

  doc
    .command('comment <channel> <doc> <clause> <text>')
    .description('comment on a clause (comments are not part of the text: they never clear agreement)')
    .option('--lang <lang>', 'the language version commented on')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel doc comment c_… e_… talks "Muscat is acceptable to us as a fallback."',
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          docId: string,
          clause: string,
          text: string,
          opts: { lang?: string },
        ) => {
          const id = await withDocs(o, channel, (d) => d.comment(docId, clause, text, opts.lang));
          out.result({ channel, doc: docId, event: id }, () => `comment ${id} sent`);
        },
      ),
    );

  doc
    .command('initial <channel> <doc>')
    .description("initial the head revision (ad referendum: pending confirmation by the parties' capitals)")
    .addHelpText('after', '\nExample:\n  backchannel doc initial c_… e_…')
    .action(
      run(async (o, out, channel: string, docId: string) => {
        const id = await withDocs(o, channel, (d) => d.signRevision(docId, 'initial'));
        out.result({ channel, doc: docId, event: id }, () => `initials ${id} sent`);
      }),
    );

  doc
    .command('sign <channel> <doc>')
    .description('sign the head revision; with --clause, agree one clause (in --lang, or in every language)')
    .option('--clause <id>', 'agree this clause only (repeat)', collect)
    .option('--all-clauses', 'agree every clause, in every language')
    .option('--lang <lang>', 'with --clause: only this language version')
    .addHelpText(
      'after',
      '\nExamples:\n  backchannel doc sign c_… e_… --clause talks --lang fr\n  backchannel doc sign c_… e_…',
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          docId: string,
          opts: { clause?: string[]; allClauses?: boolean; lang?: string },
        ) => {
          const r = await withDocs(o, channel, async (d) => {
            const v = d.show(docId);
            if (opts.clause === undefined && opts.allClauses !== true)
              return [await d.signRevision(docId, 'sign')];
            const ids = opts.allClauses === true ? v.clauses.map((c) => c.id) : (opts.clause ?? []);
            const langs = opts.lang === undefined ? v.languages : [opts.lang];
            return d.agree(
              docId,
              ids.flatMap((id) => langs.map((lang) => ({ id, lang }))),
            );
          });
          out.result({ channel, doc: docId, events: r }, () => `${r.length} sign-off(s) sent`);
        },
      ),
    );

  doc
    .command('show <channel> <doc>')
    .description(
      'the document: type, clauses per language with per-party status, comments, sign-offs, revisions',
    )
    .addHelpText('after', '\nExample:\n  backchannel doc show c_… e_…')
    .action(
      run(async (o, out, channel: string, docId: string) => {
        const { v, labels } = await withChannel(o, channel, async (ch, bc) => ({
          v: await new Documents(bc, ch).show(docId),
          labels: partyLabels(ch.view.state.parties, (p) => bc.partyName(p as PartyId)),
        }));
        out.result(v, (x: DocumentView) => renderView(x, (p) => namedParty(labels, p)));
      }),
    );

  doc
    .command('list <channel>')
    .description('the documents of a channel, with their type and stage')
    .addHelpText('after', '\nExample:\n  backchannel doc list c_…')
    .action(
      run(async (o, out, channel: string) => {
        const vs = await withDocs(o, channel, async (d) => d.list());
        const rows = vs.map((v) => ({
          doc: v.id,
          type: v.type,
          title: v.title,
          revision: v.head.n,
          stage: v.status.stage,
        }));
        out.result({ channel, documents: rows }, () =>
          rows.length === 0
            ? 'no documents'
            : vs
                .map(
                  (v) =>
                    `${v.id}  ${v.typeName}  "${inline(v.title)}"  revision ${v.head.n}  ${v.status.stage}`,
                )
                .join('\n'),
        );
      }),
    );

  doc
    .command('diff <channel> <doc> [from] [to]')
    .description('word-by-word changes between two revisions (default: the last edit)')
    .addHelpText('after', '\nExample:\n  backchannel doc diff c_… e_… 0 4')
    .action(
      run(async (o, out, channel: string, docId: string, from?: string, to?: string) => {
        const r = await withDocs(o, channel, async (d) =>
          d.diff(
            docId,
            from === undefined ? undefined : Number(from),
            to === undefined ? undefined : Number(to),
          ),
        );
        out.result(r, () =>
          [
            `revision ${r.from} → ${r.to}`,
            ...r.clauses
              .filter((c) => c.change !== 'unchanged')
              .map(
                (c) => `  ${c.clause} [${c.lang}] ${c.change}: ${quoteBlock(renderDiff(c.parts), '    ')}`,
              ),
          ].join('\n'),
        );
      }),
    );

  doc
    .command('export <channel> <doc>')
    .description(
      'write the agreed text as Markdown and Akoma Ntoso XML, with a signature bundle that verifies offline',
    )
    .requiredOption('--out <dir>', 'directory to write to')
    .option('--draft', 'export even if not agreed (the bundle then does not verify as agreed)')
    .option(
      '--revision <n>',
      'export this revision (default: the latest), e.g. the one signed before a later edit',
    )
    .option('--force', 'replace files of an earlier export there')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel doc export c_… e_… --out ./statement && backchannel doc verify ./statement/*.bundle.json',
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string,
          docId: string,
          opts: { out: string; draft?: boolean; revision?: string; force?: boolean },
        ) => {
          const revision = opts.revision === undefined ? undefined : Number(opts.revision);
          if (revision !== undefined && !/^\d+$/.test(opts.revision ?? ''))
            throw new ClientError(
              'INVALID_ARGUMENT',
              `--revision is a revision number (not ${opts.revision})`,
            );
          const ex = await withDocs(o, channel, async (d) =>
            d.export(docId, { draft: opts.draft === true, ...(revision === undefined ? {} : { revision }) }),
          );
          const written = writeExport(opts.out, ex, opts.force === true);
          out.result(
            { channel, doc: docId, files: written },
            () => `written:\n${written.map((f) => `  ${f}`).join('\n')}`,
          );
        },
      ),
    );

  doc
    .command('verify <bundle>')
    .description('verify an exported document offline: texts, hash, certificates, signatures, agreement')
    .option('--allow-unagreed', 'accept valid signatures that do not (yet) make the document agreed')
    .addHelpText('after', '\nExample:\n  backchannel doc verify ./statement/joint-statement.bundle.json')
    .action(
      run(async (_o, out: Out, file: string, opts: { allowUnagreed?: boolean }) => {
        const r = verifyBundleFile(file, opts.allowUnagreed === true);
        if (!r.ok) {
          out.result(
            { ok: false, code: r.code, reason: r.reason },
            () => `NOT VERIFIED (${r.code}): ${r.reason}`,
          );
          // As `verify`: the document's claim does not hold.
          process.exitCode = EXIT.security;
          return;
        }
        out.result(r, () =>
          [
            `VERIFIED: "${inline(r.document.title)}" (${r.document.type}), revision ${r.revision.n}, hash ${r.revision.hash}`,
            `  agreed: ${r.agreed}`,
            ...r.signers.map(
              (s) =>
                `  ${s.level} by ${s.party} (${s.role}, device ${s.device}) at ${new Date(s.signedAt).toISOString()}`,
            ),
          ].join('\n'),
        );
      }),
    );
}
