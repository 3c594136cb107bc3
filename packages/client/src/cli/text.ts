/**
 * Text from other parties on a terminal. Message bodies, titles, notes, reasons, device and party
 * names are written by the other side, who may be hostile: raw, an escape sequence could rewrite
 * the screen (clear it, move the cursor over an earlier line, set the clipboard with OSC 52), a
 * newline could print a line that looks like the CLI's own ("#12 … VALID …"), and Unicode
 * direction overrides could make text read differently from what was signed (Trojan Source,
 * CVE-2021-42574). Everything the CLI prints for a human goes through `terminalSafe`; fields that
 * may span lines go through `quoteBlock` so every continuation line is indented under the event.
 * JSON output (--json) is left as signed: JSON escapes control characters itself.
 */

/**
 * C0 controls except tab and newline, DEL, C1 controls, and the bidirectional embedding,
 * override and isolate characters (U+202A–U+202E, U+2066–U+2069).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Replaces every unsafe character with a visible `\u{…}` so that nothing is silently hidden. */
export function terminalSafe(s: string): string {
  return s.replace(UNSAFE, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}}`);
}

/**
 * A field written by another party that may hold several lines: made terminal-safe, with each
 * line after the first indented by `indent`, so it cannot pass for a line of the CLI's own.
 */
export function quoteBlock(s: string, indent = '       '): string {
  return terminalSafe(s).replace(/\r\n?|\n/g, `\n${indent}`);
}

/**
 * How a party is named on screen: the name its signed contact card claims, quoted (a claim, not
 * an identity), or its id when this device has no card for it or when another of `parties`
 * claims the same name (so one party cannot pass for another by taking its name).
 */
export function partyLabels(
  parties: readonly string[],
  nameOf: (party: string) => string | undefined,
): Map<string, string> {
  const names = new Map<string, string>();
  const count = new Map<string, number>();
  for (const p of new Set(parties)) {
    const n = nameOf(p)?.trim();
    if (n === undefined || n === '') continue;
    const key = n.normalize('NFKC').toLowerCase();
    names.set(p, n);
    count.set(key, (count.get(key) ?? 0) + 1);
  }
  const labels = new Map<string, string>();
  for (const p of parties) {
    const n = names.get(p);
    const unique = n !== undefined && count.get(n.normalize('NFKC').toLowerCase()) === 1;
    labels.set(p, unique ? `“${terminalSafe(n).replace(/[\r\n]+/g, ' ')}”` : p);
  }
  return labels;
}
