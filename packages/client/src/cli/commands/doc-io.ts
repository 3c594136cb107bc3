/** Helpers of `backchannel doc`: argument parsing, rendering, writing and verifying exports. */
import { mkdirSync } from 'node:fs';
import { readTextFile } from '../output.ts';
import { dirname, join } from 'node:path';
import { verifyDocumentBundle } from '@backchannel/protocol';
import type { DocumentView } from '../../sdk/documents.ts';
import { ClientError } from '../../sdk/errors.ts';
import { refuseExisting, writeOutFile } from '../out-file.node.ts';
import { inline, quoteBlock } from '../text.ts';

export const LANG_SEP = ' || ';

/** `ID=text in language 1 || text in language 2` → clause id and text per language. */
export function parseClauseArg(
  arg: string,
  languages: readonly string[],
): { id: string; text: Record<string, string> } {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new ClientError('INVALID_ARGUMENT', `a clause is ID=TEXT (got "${arg.slice(0, 40)}")`);
  return { id: arg.slice(0, eq).trim(), text: splitLanguages(arg.slice(eq + 1), languages) };
}

export function splitLanguages(text: string, languages: readonly string[]): Record<string, string> {
  const parts = text.split(LANG_SEP);
  if (parts.length !== languages.length)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `give one text per language (${languages.join(', ')}), separated by "${LANG_SEP.trim()}"`,
    );
  return Object.fromEntries(languages.map((l, i) => [l, (parts[i] ?? '').trim()]));
}

export const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** `named`: how a party is shown (doc show: its card's name and its id). */
export function renderView(v: DocumentView, named: (party: string) => string = (p) => p): string {
  const who = (ps: readonly string[]) => (ps.length === 0 ? '' : ` (${ps.map(named).join(', ')})`);
  const lines = [
    `${v.typeName} "${inline(v.title)}" — ${v.id}`,
    `  revision ${v.head.n}${v.head.author === null ? ' (unattributed)' : ` by ${named(v.head.author)}`}, hash ${v.head.hash.slice(0, 16)}…`,
    `  stage: ${v.status.stage}${v.status.agreed ? ' — AGREED' : ''}`,
    `  languages: ${v.languages.join(', ')}${v.languages.length > 1 ? ' (equally authentic)' : ''}`,
    ...(v.parties.length === 0
      ? ['  parties: none (a non-paper is never signed)']
      : [`  parties: ${v.parties.map(named).join(', ')}`]),
  ];
  v.clauses.forEach((c, i) => {
    lines.push(`  ${i + 1}. [${c.id}]`);
    for (const l of v.languages) {
      const st = c.status[l];
      const status = st === undefined ? '' : `${st.status}${who(st.agreedBy)}`;
      lines.push(`     ${l}: ${quoteBlock(c.text[l] ?? '', '         ')}   — ${status}`);
    }
    for (const m of c.comments)
      lines.push(
        `     comment${m.by === null ? '' : ` by ${named(m.by)}`}${m.lang === null ? '' : ` (${m.lang})`} at revision ${m.n}: ${quoteBlock(m.text, '         ')}`,
      );
  });
  const signed = Object.entries(v.status.byParty).map(
    ([p, ls]) => `${named(p)}: ${ls.length === 0 ? '—' : ls.join(', ')}`,
  );
  if (signed.length > 0) lines.push(`  sign-offs on revision ${v.head.n}: ${signed.join('; ')}`);
  for (const r of v.revisions.slice(1)) {
    const touched = r.touched.map((t) => `${t.clause}/${t.lang}`).join(', ');
    const cleared = r.cleared
      .map((t) => `${t.clause}/${t.lang} (had: ${t.parties.map(named).join(', ')})`)
      .join(', ');
    lines.push(
      `  revision ${r.n}${r.author === null ? '' : ` by ${named(r.author)}`}: changed ${touched || 'title only'}${cleared === '' ? '' : `; CLEARED agreement on ${cleared}`}`,
    );
  }
  return lines.join('\n');
}

/**
 * Writes an export's files and its bundle in `dir`, each readable by this user only. Files there
 * already are refused, before any is written, unless `force`.
 */
export function writeExport(
  dir: string,
  ex: { bundle: { files: ReadonlyArray<{ name: string }> }; files: Readonly<Record<string, string>> },
  force: boolean,
): string[] {
  const first = ex.bundle.files[0]?.name ?? 'document.md';
  const base = first.replace(/\.md$|\.[a-z-]+\.akn\.xml$/i, '');
  const texts: Array<[string, string]> = [
    ...Object.entries(ex.files).map(([name, text]): [string, string] => [join(dir, name), text]),
    [join(dir, `${base}.bundle.json`), `${JSON.stringify(ex.bundle, null, 1)}\n`],
  ];
  refuseExisting(
    texts.map(([path]) => path),
    force,
  );
  mkdirSync(dir, { recursive: true });
  for (const [path, text] of texts) writeOutFile(path, text, force);
  return texts.map(([path]) => path);
}

/** Reads a bundle and the files it lists (next to it) and verifies them. */
export function verifyBundleFile(file: string, allowUnagreed = false) {
  let bundle: unknown;
  try {
    bundle = JSON.parse(readTextFile(file));
  } catch {
    throw new ClientError('INVALID_ARGUMENT', `${file} is not a readable JSON bundle`);
  }
  // Another kind of file is a mistake of the command line (exit 1), not a bundle that failed (exit 4).
  const o = (typeof bundle === 'object' && bundle !== null ? bundle : {}) as {
    kind?: unknown;
    type?: unknown;
  };
  if (o.kind !== 'backchannel-document-bundle') {
    const what =
      o.type === 'backchannel/attestation' || o.type === 'backchannel/fork-evidence'
        ? 'an attestation: check it with `backchannel verify`'
        : o.kind === 'backchannel-transcript'
          ? 'a transcript export'
          : 'not a document bundle (`backchannel doc export` writes one)';
    throw new ClientError('INVALID_ARGUMENT', `${file} is ${what}`);
  }
  const files: Record<string, string> = {};
  const listed = (bundle as { files?: unknown }).files;
  if (Array.isArray(listed)) {
    for (const f of listed) {
      const name = (f as { name?: unknown }).name;
      if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(name)) continue;
      try {
        files[name] = readTextFile(join(dirname(file), name));
      } catch {
        // missing file: the verifier reports it
      }
    }
  }
  return verifyDocumentBundle(bundle, files, { allowUnagreed });
}
