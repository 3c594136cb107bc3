/**
 * The device's own copy of the transcript's Merkle tree, and the check of each relay
 * checkpoint against it: signature by the pinned relay key, the right origin, and — at the
 * same size — the same root. A checkpoint whose root differs from what this device computed
 * from the entries it was served is a forked history; the evidence is kept.
 */
import { type ChannelId, constantTimeEqual } from '@backchannel/protocol';
import {
  appendLeaf as appendTreeLeaf,
  type NoteVerifierKey,
  parseCheckpoint,
  parseNote,
  parseVerifierKey,
  treeRoot,
  verifyNote,
} from '@backchannel/protocol/transcript';
import type { ChannelRecord } from './channel-record.ts';
import type { EngineContext } from './context.ts';

/** Relay keys, parsed once (they are checked against every checkpoint and receipt). */
const parsedKeys = new Map<string, ReturnType<typeof parseVerifierKey>>();
export function relayVerifierKey(vkey: string): ReturnType<typeof parseVerifierKey> {
  let k = parsedKeys.get(vkey);
  if (k === undefined) {
    if (parsedKeys.size > 64) parsedKeys.clear();
    k = parseVerifierKey(vkey);
    parsedKeys.set(vkey, k);
  }
  return k;
}

/** The relay keys a device trusts, parsed (the pinned one first). */
export function trustedRelayKeys(ctx: Pick<EngineContext, 'relayKeys'>): NoteVerifierKey[] {
  return ctx.relayKeys().flatMap((v) => {
    const k = relayVerifierKey(v);
    return k.ok ? [k.value] : [];
  });
}

/** The frontier after appending the leaf hash of entry `seq` (RFC 9162 §2.1.1). */
export function appendLeaf(frontier: readonly Uint8Array[], seq: number, leaf: Uint8Array): Uint8Array[] {
  return [...appendTreeLeaf({ size: seq, frontier }, leaf).state.frontier];
}

export type CheckpointCheck =
  | { readonly kind: 'verified'; readonly size: number }
  | { readonly kind: 'pending' }
  | { readonly kind: 'fork'; readonly reason: string; readonly evidence: string };

/**
 * Whether a note is signed in the pinned relay key's name by none of the keys this device trusts
 * (no signature check: the key ids only): perhaps a key rotation it has not learnt yet.
 */
export function signedByUnknownRelayKey(note: string, ctx: Pick<EngineContext, 'relayKeys'>): boolean {
  const trusted = trustedRelayKeys(ctx);
  const pinned = trusted[0];
  if (pinned === undefined) return false;
  const parsed = parseNote(note);
  if (!parsed.ok) return false;
  const known = (id: Uint8Array) => trusted.some((k) => constantTimeEqual(k.keyId, id));
  const sigs = parsed.value.signatures;
  return !sigs.some((s) => known(s.keyId)) && sigs.some((s) => s.name === pinned.name);
}

export function checkCheckpoint(
  channel: ChannelId,
  note: string,
  rec: ChannelRecord,
  ctx: EngineContext,
): CheckpointCheck {
  if (note === '') return { kind: 'pending' };
  const fork = (reason: string): CheckpointCheck => ({
    kind: 'fork',
    reason,
    evidence: JSON.stringify({
      channel,
      reason,
      checkpoint: note,
      previous: rec.checkpoint ?? null,
      localSize: rec.nextSeq,
    }),
  });
  const parsed = parseNote(note);
  if (!parsed.ok) return fork(`the relay served a malformed checkpoint (${parsed.message})`);
  const trusted = trustedRelayKeys(ctx);
  if (trusted.length > 0 && !verifyNote(parsed.value, trusted, ctx.suite).ok)
    return fork(
      signedByUnknownRelayKey(note, ctx)
        ? "the checkpoint is signed in the relay's name by a key this device does not trust, and the relay shows no rotation statement from the pinned key to it"
        : 'the checkpoint is not signed by the relay key this device pinned',
    );
  const cp = parseCheckpoint(parsed.value.text);
  if (!cp.ok) return fork(`the relay served a malformed checkpoint body (${cp.message})`);
  if (!cp.value.origin.endsWith(`/${channel}`)) return fork('the checkpoint is for another log');
  if (cp.value.size < rec.checkpointSize)
    return fork(`the log shrank from ${rec.checkpointSize} to ${cp.value.size} entries`);
  if (cp.value.size !== rec.nextSeq) return { kind: 'pending' };
  const mine = treeRoot({ size: rec.nextSeq, frontier: rec.frontier });
  const same = mine.length === cp.value.root.length && mine.every((b, i) => b === cp.value.root[i]);
  if (!same) return fork('the relay signed a root that differs from the entries it served: two histories');
  return { kind: 'verified', size: cp.value.size };
}
