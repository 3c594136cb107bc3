/**
 * The witness's decision, pure: given the last checkpoint it co-signed for a channel and the
 * relay's newest one (with the RFC 9162 consistency proof between them), either co-sign the new
 * one (C2SP tlog-cosignature/v1) or refuse and keep evidence.
 *
 * Evidence of a fork is "conclusive" when it holds two checkpoints signed by the same relay key,
 * for the same log and the same size, with different roots: no honest log can produce that, and
 * anyone can check it with the relay's public key alone. When the relay merely fails to prove
 * consistency (or shrinks its log), the evidence records both signed checkpoints and the proof it
 * served; it is an alarm, not a proof, and says so.
 */
import { fromBase64url, toBase64url } from '../bytes/index.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import { type Checkpoint, parseCheckpoint } from '../transcript/checkpoint.ts';
import { cosign } from '../transcript/cosignature.ts';
import {
  consistencyProof,
  MemoryNodeStore,
  rootAt,
  treeRoot,
  verifyConsistency,
} from '../transcript/merkle.ts';
import {
  ALG_ED25519,
  encodeVerifierKey,
  type NoteVerifierKey,
  parseNote,
  parseVerifierKey,
  verifyNote,
} from '../transcript/note.ts';
import type { SignatureSuite } from '../identity/keys.ts';

export const FORK_EVIDENCE_TYPE = 'backchannel/fork-evidence';

export interface ForkEvidence {
  readonly type: typeof FORK_EVIDENCE_TYPE;
  readonly v: 1;
  /**
   * same-size: two signed roots for one size (conclusive); prefix-mismatch: the longer signed tree
   * provably has another root at the shorter one's size (conclusive); inconsistent / rollback:
   * an alarm the relay has not answered with a valid proof.
   */
  readonly kind: 'same-size' | 'prefix-mismatch' | 'inconsistent' | 'rollback';
  readonly origin: string;
  /** The relay's checkpoint key (C2SP verifier key string). */
  readonly relayKey: string;
  /**
   * After a relay key rotation (transcript/rotation.ts): all of the relay's keys the witness
   * trusted, the current one first — the checkpoint co-signed before may carry a retired one.
   */
  readonly relayKeys?: readonly string[];
  /** The two relay-signed checkpoint notes, older (co-signed) first. */
  readonly checkpoints: readonly [string, string];
  /** The consistency proof between them (base64url): served by the relay, or (prefix-mismatch) computed from the longer tree's leaves. */
  readonly proof: readonly string[];
  /** prefix-mismatch: the longer tree's root at the shorter size (base64url), which the proof ties to it. */
  readonly prefixRoot?: string;
  readonly witness: string;
  readonly detectedAt: number;
  readonly reason: string;
}

/** What the witness last co-signed for one log. */
export interface WitnessedCheckpoint {
  readonly size: number;
  /** The relay-signed note (without cosignature lines). */
  readonly note: string;
}

export type WitnessDecision =
  | { readonly kind: 'cosign'; readonly size: number; readonly line: string; readonly note: string }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'refuse'; readonly code: ProtocolErrorCode; readonly reason: string }
  | { readonly kind: 'fork'; readonly evidence: ForkEvidence };

/** Only the relay's own signature line: what the witness stores and compares. */
export function relayOnlyNote(note: string, relayKey: NoteVerifierKey): string | undefined {
  const p = parseNote(note);
  if (!p.ok) return undefined;
  const sigs = p.value.signatures.filter((s) => s.name === relayKey.name);
  if (sigs.length === 0) return undefined;
  const lines = note
    .slice(p.value.text.length + 1)
    .split('\n')
    .filter((l) => l.startsWith(`\u2014 ${relayKey.name} `));
  return `${p.value.text}\n${lines.map((l) => `${l}\n`).join('')}`;
}

function signedCheckpoint(
  note: string,
  relayKeys: readonly NoteVerifierKey[],
  suite: SignatureSuite | undefined,
): { ok: true; cp: Checkpoint; text: string } | { ok: false; reason: string } {
  const p = parseNote(note);
  if (!p.ok) return { ok: false, reason: `malformed checkpoint note: ${p.message}` };
  if (!verifyNote(p.value, relayKeys, suite).ok)
    return { ok: false, reason: 'checkpoint not signed by the relay key' };
  const cp = parseCheckpoint(p.value.text);
  if (!cp.ok) return { ok: false, reason: `malformed checkpoint: ${cp.message}` };
  return { ok: true, cp: cp.value, text: p.value.text };
}

export interface WitnessInput {
  readonly origin: string;
  /**
   * The relay's key; across a key rotation (transcript/rotation.ts) its keys, the current one
   * first: the checkpoint co-signed last may carry the retired one.
   */
  readonly relayKey: NoteVerifierKey | readonly NoteVerifierKey[];
  readonly last: WitnessedCheckpoint | undefined;
  /** The relay's newest checkpoint note. */
  readonly latest: string;
  /** Consistency proof from last.size to the latest size (empty when there is no last). */
  readonly proof: readonly Uint8Array[];
  /** The relay's checkpoint at last.size as it serves it now (asked for when the proof fails). */
  readonly replayedAtLastSize?: string;
  readonly witness: { readonly name: string; readonly seed: Uint8Array };
  readonly now: number;
  readonly suite?: SignatureSuite;
}

export function witnessDecide(input: WitnessInput): WitnessDecision {
  const { last } = input;
  const relayKeys = Array.isArray(input.relayKey) ? input.relayKey : [input.relayKey as NoteVerifierKey];
  const relayKey = relayKeys[0] as NoteVerifierKey;
  const latest = signedCheckpoint(input.latest, relayKeys, input.suite);
  if (!latest.ok) return { kind: 'refuse', code: 'NOTE_UNVERIFIED', reason: latest.reason };
  if (latest.cp.origin !== input.origin)
    return {
      kind: 'refuse',
      code: 'CHECKPOINT_INVALID',
      reason: `checkpoint of another log (${latest.cp.origin})`,
    };
  const note = relayOnlyNote(input.latest, relayKey) as string;
  const cosignIt = (): WitnessDecision => ({
    kind: 'cosign',
    size: latest.cp.size,
    note,
    line: cosign(latest.text, input.witness, Math.floor(input.now / 1000)),
  });
  if (last === undefined) return latest.cp.size === 0 ? { kind: 'unchanged' } : cosignIt();
  const prev = signedCheckpoint(last.note, relayKeys, input.suite);
  if (!prev.ok)
    return { kind: 'refuse', code: 'NOTE_UNVERIFIED', reason: `the stored checkpoint: ${prev.reason}` };
  const evidence = (kind: ForkEvidence['kind'], other: string, reason: string): WitnessDecision => ({
    kind: 'fork',
    evidence: {
      type: FORK_EVIDENCE_TYPE,
      v: 1,
      kind,
      origin: input.origin,
      relayKey: encodeVerifierKey(relayKey),
      ...(relayKeys.length > 1 ? { relayKeys: relayKeys.map(encodeVerifierKey) } : {}),
      checkpoints: [last.note, relayOnlyNote(other, relayKey) ?? other],
      proof: input.proof.map(toBase64url),
      witness: input.witness.name,
      detectedAt: input.now,
      reason,
    },
  });
  if (latest.cp.size === prev.cp.size) {
    if (toBase64url(latest.cp.root) === toBase64url(prev.cp.root)) return { kind: 'unchanged' };
    return evidence(
      'same-size',
      input.latest,
      `the relay signed two different roots for size ${prev.cp.size}`,
    );
  }
  if (latest.cp.size < prev.cp.size)
    return evidence(
      'rollback',
      input.latest,
      `the log shrank from ${prev.cp.size} to ${latest.cp.size} entries`,
    );
  // RFC 9162 §2.1.4.2: the new tree must extend the one already co-signed.
  if (verifyConsistency(prev.cp.size, latest.cp.size, input.proof, prev.cp.root, latest.cp.root))
    return cosignIt();
  if (input.replayedAtLastSize !== undefined) {
    const again = signedCheckpoint(input.replayedAtLastSize, relayKeys, input.suite);
    if (
      again.ok &&
      again.cp.origin === input.origin &&
      again.cp.size === prev.cp.size &&
      toBase64url(again.cp.root) !== toBase64url(prev.cp.root)
    ) {
      return evidence(
        'same-size',
        input.replayedAtLastSize,
        `the relay now serves a different root for size ${prev.cp.size} than the one co-signed: two histories`,
      );
    }
  }
  return evidence(
    'inconsistent',
    input.latest,
    `the relay's checkpoint at size ${latest.cp.size} does not extend the co-signed one at size ${prev.cp.size}`,
  );
}

export type ForkEvidenceCheck =
  | { readonly valid: true; readonly conclusive: boolean; readonly reason: string }
  | { readonly valid: false; readonly code: 'FORK_EVIDENCE_INVALID'; readonly reason: string };

/**
 * Checks an evidence file on its own: both checkpoints signed by the relay key it names (or the
 * keys given, which a reader should prefer; across a key rotation, the relay's keys), same
 * origin, and the conflict it claims.
 */
export function verifyForkEvidence(
  input: unknown,
  opts: { relayKey?: string | readonly string[]; suite?: SignatureSuite } = {},
): ForkEvidenceCheck {
  const bad = (reason: string): ForkEvidenceCheck => ({
    valid: false,
    code: 'FORK_EVIDENCE_INVALID',
    reason,
  });
  let ev: unknown = input;
  if (typeof input === 'string') {
    try {
      ev = JSON.parse(input);
    } catch {
      return bad('not JSON');
    }
  }
  const e = ev as Partial<ForkEvidence> | null;
  if (e === null || typeof e !== 'object' || e.type !== FORK_EVIDENCE_TYPE || e.v !== 1)
    return bad('not fork evidence');
  if (
    !Array.isArray(e.checkpoints) ||
    e.checkpoints.length !== 2 ||
    !e.checkpoints.every((c) => typeof c === 'string')
  )
    return bad('two checkpoints are needed');
  const given = typeof opts.relayKey === 'string' ? [opts.relayKey] : opts.relayKey;
  const named = Array.isArray(e.relayKeys) ? e.relayKeys : [e.relayKey];
  const keyStrings: readonly unknown[] = given !== undefined && given.length > 0 ? given : named;
  if (keyStrings.length === 0 || !keyStrings.every((k) => typeof k === 'string')) return bad('no relay key');
  const keys: NoteVerifierKey[] = [];
  for (const s of keyStrings as string[]) {
    const key = parseVerifierKey(s);
    if (!key.ok || key.value.alg !== ALG_ED25519) return bad('the relay key is not an Ed25519 note key');
    keys.push(key.value);
  }
  const [a, b] = e.checkpoints.map((c) => signedCheckpoint(c, keys, opts.suite));
  if (a === undefined || b === undefined || !a.ok || !b.ok)
    return bad('a checkpoint is not signed by the relay key');
  if (a.cp.origin !== b.cp.origin) return bad('the checkpoints are of different logs');
  if (a.cp.size === b.cp.size) {
    if (toBase64url(a.cp.root) === toBase64url(b.cp.root)) return bad('the two checkpoints agree');
    return {
      valid: true,
      conclusive: true,
      reason: `the relay signed two different roots for ${a.cp.origin} at size ${a.cp.size}: it showed two histories`,
    };
  }
  if (e.kind === 'prefix-mismatch') {
    const [short, long] = a.cp.size < b.cp.size ? [a, b] : [b, a];
    let prefix: Uint8Array;
    let proof: Uint8Array[];
    try {
      prefix = fromBase64url(e.prefixRoot ?? '', 'prefixRoot');
      proof = (e.proof ?? []).map((p) => fromBase64url(p, 'proof'));
    } catch {
      return bad('the prefix root or proof is not base64url');
    }
    // RFC 9162 §2.1.4.2: a valid proof ties `prefix` to the longer signed root as the root of its
    // first short.size leaves; by collision resistance that tree has no other root at that size.
    if (!verifyConsistency(short.cp.size, long.cp.size, proof, prefix, long.cp.root))
      return bad('the proof does not tie the prefix root to the longer checkpoint');
    if (toBase64url(prefix) === toBase64url(short.cp.root)) return bad('the checkpoints are consistent');
    return {
      valid: true,
      conclusive: true,
      reason: `the relay signed ${a.cp.origin} at size ${long.cp.size} with a history whose first ${short.cp.size} entries differ from the ones it signed at size ${short.cp.size}: two histories`,
    };
  }
  if (b.cp.size < a.cp.size)
    return {
      valid: true,
      conclusive: false,
      reason: `the relay signed a shorter log (${b.cp.size} < ${a.cp.size}) after a longer one`,
    };
  let proof: Uint8Array[];
  try {
    proof = (e.proof ?? []).map((p) => fromBase64url(p, 'proof'));
  } catch {
    return bad('the proof is not base64url');
  }
  if (verifyConsistency(a.cp.size, b.cp.size, proof, a.cp.root, b.cp.root))
    return bad('the checkpoints are consistent');
  return {
    valid: true,
    conclusive: false,
    reason: `the relay did not prove that size ${b.cp.size} extends size ${a.cp.size} (the proof it served fails)`,
  };
}

/**
 * Turns an alarm into proof: given the leaf hashes of the longer of the two signed trees (the
 * witness's device has them, or fetches them from the relay that serves that tree), shows that
 * tree's root at the shorter size differs from the shorter signed root. Undefined when the leaves
 * do not reproduce the longer root, or when the two are in fact consistent.
 */
export function prefixMismatchEvidence(
  ev: ForkEvidence,
  longerLeafHashes: readonly Uint8Array[],
): ForkEvidence | undefined {
  const notes = ev.checkpoints.map((c) => {
    const p = parseNote(c);
    return p.ok ? parseCheckpoint(p.value.text) : undefined;
  });
  const [x, y] = notes;
  if (x === undefined || y === undefined || !x.ok || !y.ok || x.value.size === y.value.size) return undefined;
  const [short, long] = x.value.size < y.value.size ? [x.value, y.value] : [y.value, x.value];
  if (longerLeafHashes.length < long.size) return undefined;
  const tree = new MemoryNodeStore();
  for (let i = 0; i < long.size; i++) tree.append(longerLeafHashes[i] as Uint8Array);
  if (toBase64url(treeRoot(tree.state)) !== toBase64url(long.root)) return undefined;
  const prefix = rootAt(short.size, tree.read);
  if (toBase64url(prefix) === toBase64url(short.root)) return undefined;
  return {
    ...ev,
    kind: 'prefix-mismatch',
    prefixRoot: toBase64url(prefix),
    proof: consistencyProof(short.size, long.size, tree.read).map(toBase64url),
    reason: `the relay's log of ${long.size} entries has a different history for its first ${short.size} entries than the checkpoint co-signed at size ${short.size}`,
  };
}
