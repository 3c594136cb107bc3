/**
 * Commit-then-reveal read-outs. After a round of talks each party posts a `readout` event that
 * carries only C = SHA-256(CBOR(['backchannel/v1 readout', salt, round, text])); once every party
 * has committed, each posts a second `readout` with the text and the salt. Anyone shown both
 * events (with their inclusion proofs) can check that each published text is the one committed
 * to, and that every commitment precedes every reveal in the log: neither side wrote its read-out
 * after seeing the other's.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { assertBytes, constantTimeEqual, isBytes } from '../bytes/index.ts';
import { encodeCanonical } from '../codec/cbor.ts';

export const READOUT_SALT_BYTES = 16;

export function readoutCommitment(round: string, text: string, salt: Uint8Array): Uint8Array {
  assertBytes(salt, READOUT_SALT_BYTES, 'salt');
  return sha256(encodeCanonical(['backchannel/v1 readout', salt, round, text]));
}

export function verifyReadoutCommitment(
  round: string,
  text: string,
  salt: Uint8Array,
  commitment: Uint8Array,
): boolean {
  if (!isBytes(salt) || salt.length !== READOUT_SALT_BYTES || !isBytes(commitment)) return false;
  return constantTimeEqual(readoutCommitment(round, text, salt), commitment);
}

export type DiffPart =
  | { readonly op: 'same'; readonly text: string }
  | { readonly op: 'only-a'; readonly text: string }
  | { readonly op: 'only-b'; readonly text: string };

/** Longest read-outs compared word by word (beyond this the tail is compared as a block). */
const MAX_WORDS = 3_000;

/** A word-level diff (longest common subsequence of whitespace-separated words). */
export function wordDiff(a: string, b: string): DiffPart[] {
  const wa = a.split(/\s+/).filter((w) => w.length > 0);
  const wb = b.split(/\s+/).filter((w) => w.length > 0);
  const headA = wa.slice(0, MAX_WORDS);
  const headB = wb.slice(0, MAX_WORDS);
  const n = headA.length;
  const m = headB.length;
  // lcs[i][j] = LCS length of headA[i:] and headB[j:], in one flat array.
  const lcs = new Uint16Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] =
        headA[i] === headB[j]
          ? (lcs[(i + 1) * (m + 1) + j + 1] as number) + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j] as number, lcs[i * (m + 1) + j + 1] as number);
    }
  }
  const parts: DiffPart[] = [];
  const push = (op: DiffPart['op'], w: string) => {
    const last = parts.at(-1);
    if (last !== undefined && last.op === op) parts[parts.length - 1] = { op, text: `${last.text} ${w}` };
    else parts.push({ op, text: w });
  };
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (headA[i] === headB[j]) {
      push('same', headA[i] as string);
      i++;
      j++;
    } else if ((lcs[(i + 1) * (m + 1) + j] as number) >= (lcs[i * (m + 1) + j + 1] as number)) {
      push('only-a', headA[i++] as string);
    } else {
      push('only-b', headB[j++] as string);
    }
  }
  while (i < n) push('only-a', headA[i++] as string);
  while (j < m) push('only-b', headB[j++] as string);
  if (wa.length > MAX_WORDS) push('only-a', wa.slice(MAX_WORDS).join(' '));
  if (wb.length > MAX_WORDS) push('only-b', wb.slice(MAX_WORDS).join(' '));
  return parts;
}

/** The diff as one line of text: [-only in a-] {+only in b+}. */
export function renderWordDiff(parts: readonly DiffPart[]): string {
  return parts
    .map((p) => (p.op === 'same' ? p.text : p.op === 'only-a' ? `[-${p.text}-]` : `{+${p.text}+}`))
    .join(' ');
}
