/**
 * Text from other parties on a terminal. Message bodies, titles, notes, reasons, device and party
 * names are written by the other side, who may be hostile: raw, an escape sequence could rewrite
 * the screen (clear it, move the cursor over an earlier line, set the clipboard with OSC 52), a
 * line break could print a line that looks like the CLI's own ("#12 … VALID …"), and Unicode
 * direction overrides could make text read differently from what was signed (Trojan Source,
 * CVE-2021-42574).
 *
 * Two layers. Every string printed for a human goes through `terminalSafe` at the sink (`Out`,
 * `reportError`), so a field forgotten at a call site still cannot drive the terminal. And every
 * field the other side wrote is quoted where it is interpolated: `inline` for one-line fields
 * (names, titles, reasons: a line break shows as ⏎) and `quoteBlock` for bodies (each further
 * line starts with a visible ┆ under the event), so it cannot pass for a line of the CLI's own.
 * JSON output goes through `jsonSafe`, which escapes what JSON.stringify leaves raw.
 */

/**
 * Control characters (C0 except tab and newline, DEL, C1), format characters (direction marks,
 * embeddings, overrides and isolates, zero-width characters, soft hyphen, tag characters) and
 * the line and paragraph separators U+2028/U+2029 — except the zero-width joiner, which emoji
 * sequences need.
 */
const UNSAFE = /(?!\u200d)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
const ALLOWED = new Set(['\t', '\n']);
/** What JSON output must escape: as UNSAFE, but JSON's own layout whitespace stays. */
const JSON_UNSAFE = /(?![\t\n\r\u200d])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

const codePoint = (c: string) => `\\u{${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}}`;

/** Replaces every unsafe character with a visible `\u{…}` so that nothing is silently hidden. */
export function terminalSafe(s: string): string {
  return s.replace(/\r\n/g, '\n').replace(UNSAFE, (c) => (ALLOWED.has(c) ? c : codePoint(c)));
}

/** A one-line field from the other side (a name, a title, a reason): line breaks show as ⏎. */
export function inline(s: string): string {
  return terminalSafe(s).replace(/\n/g, ' ⏎ ');
}

/** The mark that starts each further line of a quoted body: never at the start of a CLI line. */
export const CONTINUATION = '┆ ';

/**
 * A body from the other side that may hold several lines: made terminal-safe, each line after
 * the first starting with `indent` and a visible ┆, so no line of it passes for one of the CLI's.
 */
export function quoteBlock(s: string, indent = '       '): string {
  return terminalSafe(s).replace(/\n/g, `\n${indent}${CONTINUATION}`);
}

/** JSON for output: also escapes C1 controls, format characters and U+2028/9 (still valid JSON). */
export function jsonSafe(json: string): string {
  // JSON.stringify escapes C0 inside strings: a raw tab, newline or carriage return is layout.
  // One \uXXXX per UTF-16 unit: a character beyond U+FFFF (a tag character) is a surrogate pair.
  return json.replace(JSON_UNSAFE, (c) =>
    Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(
      '',
    ),
  );
}

/** How names are compared for a clash: what a reader cannot tell apart counts as the same. */
function nameKey(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Mn}]/gu, '')
    .replace(/\s+/gu, ' ')
    .trim()
    .toLowerCase();
}

/**
 * How a party is named on screen: the name its signed contact card claims, quoted (a claim, not
 * an identity), or its id when this device has no card for it or when another of `parties`
 * claims the same name (compared without case, width, invisible characters or accents). Callers
 * print the id next to a name (`status` and `inbox` in full, `log` and `watch` its start, see
 * `namedParty`): a look-alike name (a homoglyph) still comes with an id it cannot copy.
 */
export function partyLabels(
  parties: readonly string[],
  nameOf: (party: string) => string | undefined,
): Map<string, string> {
  const names = new Map<string, string>();
  const count = new Map<string, number>();
  for (const p of new Set(parties)) {
    const n = nameOf(p);
    if (n === undefined || nameKey(n) === '') continue;
    names.set(p, n);
    count.set(nameKey(n), (count.get(nameKey(n)) ?? 0) + 1);
  }
  const labels = new Map<string, string>();
  for (const p of parties) {
    const n = names.get(p);
    const unique = n !== undefined && count.get(nameKey(n)) === 1;
    labels.set(p, unique ? `“${inline(n.trim())}”` : p);
  }
  return labels;
}

/**
 * A party as `log` and `watch` name it: its label and the first 8 characters of its id after
 * `p_` (48 bits of its key's hash, which another party cannot match by choosing a key), or the
 * id alone when it has no label.
 */
export function namedParty(labels: ReadonlyMap<string, string>, p: string): string {
  const label = labels.get(p);
  return label === undefined || label === p ? p : `${label} ${p.slice(0, 10)}…`;
}

/** A party as `status` and `inbox` name it: its label and its whole id. */
export function namedPartyInFull(labels: ReadonlyMap<string, string>, p: string): string {
  const label = labels.get(p);
  return label === undefined || label === p ? p : `${label} (${p})`;
}
