/**
 * Word-level comparison of two revisions. Texts are split into words and the whitespace between
 * them; the diff is a shortest edit script over those tokens (longest common subsequence), so
 * joining the `equal` and `delete` parts gives the old text and the `equal` and `insert` parts
 * give the new one, exactly.
 */
import type { Clause, RevisionBody } from './model.ts';
import { renderSegments } from './model.ts';

export interface DiffPart {
  readonly op: 'equal' | 'insert' | 'delete';
  readonly text: string;
}

/** Above this many token pairs the diff falls back to "all deleted, all inserted" (still exact). */
const MAX_CELLS = 4_000_000;

export function tokenize(text: string): string[] {
  return text.match(/\s+|[^\s]+/g) ?? [];
}

export function diffWords(before: string, after: string): DiffPart[] {
  const a = tokenize(before);
  const b = tokenize(after);
  // Common prefix and suffix first: most edits touch a few words.
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf])
    suf++;
  const am = a.slice(pre, a.length - suf);
  const bm = b.slice(pre, b.length - suf);
  const parts: DiffPart[] = [];
  push(parts, 'equal', a.slice(0, pre).join(''));
  if (am.length * bm.length > MAX_CELLS) {
    push(parts, 'delete', am.join(''));
    push(parts, 'insert', bm.join(''));
  } else {
    for (const p of lcsScript(am, bm)) push(parts, p.op, p.text);
  }
  push(parts, 'equal', a.slice(a.length - suf).join(''));
  return parts;
}

function lcsScript(a: readonly string[], b: readonly string[]): DiffPart[] {
  const n = a.length;
  const m = b.length;
  // lcs[i][j] = length of the LCS of a[i..] and b[j..], in one flat array.
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] =
        a[i] === b[j]
          ? (lcs[(i + 1) * w + j + 1] as number) + 1
          : Math.max(lcs[(i + 1) * w + j] as number, lcs[i * w + j + 1] as number);
    }
  }
  const out: DiffPart[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      push(out, 'equal', a[i] as string);
      i++;
      j++;
    } else if ((lcs[(i + 1) * w + j] as number) >= (lcs[i * w + j + 1] as number)) {
      push(out, 'delete', a[i] as string);
      i++;
    } else {
      push(out, 'insert', b[j] as string);
      j++;
    }
  }
  while (i < n) push(out, 'delete', a[i++] as string);
  while (j < m) push(out, 'insert', b[j++] as string);
  return out;
}

function push(parts: DiffPart[], op: DiffPart['op'], text: string): void {
  if (text === '') return;
  const last = parts.at(-1);
  if (last !== undefined && last.op === op) parts[parts.length - 1] = { op, text: last.text + text };
  else parts.push({ op, text });
}

/** The old text (`which: 'before'`) or the new one, rebuilt from a diff. */
export function applyDiff(parts: readonly DiffPart[], which: 'before' | 'after'): string {
  const skip = which === 'before' ? 'insert' : 'delete';
  return parts
    .filter((p) => p.op !== skip)
    .map((p) => p.text)
    .join('');
}

export interface ClauseDiff {
  readonly clause: string;
  readonly lang: string;
  readonly change: 'added' | 'removed' | 'changed' | 'unchanged';
  readonly parts: readonly DiffPart[];
}

/** Clause by clause, language by language (clauses matched by id, in the newer order). */
export function diffRevisions(before: RevisionBody, after: RevisionBody): ClauseDiff[] {
  const old = new Map<string, Clause>(before.clauses.map((c) => [c.id, c]));
  const langs = [...new Set([...after.languages, ...before.languages])];
  const out: ClauseDiff[] = [];
  const seen = new Set<string>();
  const text = (c: Clause | undefined, lang: string) => {
    const segs = c?.text[lang];
    return segs === undefined ? undefined : renderSegments(segs);
  };
  for (const c of after.clauses) {
    seen.add(c.id);
    for (const lang of langs) {
      const a = text(old.get(c.id), lang);
      const b = text(c, lang);
      if (b === undefined && a === undefined) continue;
      const change =
        a === undefined ? 'added' : b === undefined ? 'removed' : a === b ? 'unchanged' : 'changed';
      out.push({ clause: c.id, lang, change, parts: diffWords(a ?? '', b ?? '') });
    }
  }
  for (const c of before.clauses) {
    if (seen.has(c.id)) continue;
    for (const lang of langs) {
      const a = text(c, lang);
      if (a !== undefined) out.push({ clause: c.id, lang, change: 'removed', parts: diffWords(a, '') });
    }
  }
  return out;
}

/** A diff for terminals and Markdown: `[-deleted-]{+inserted+}` (wdiff's notation). */
export function renderDiff(parts: readonly DiffPart[]): string {
  return parts
    .map((p) => (p.op === 'equal' ? p.text : p.op === 'delete' ? `[-${p.text}-]` : `{+${p.text}+}`))
    .join('');
}
