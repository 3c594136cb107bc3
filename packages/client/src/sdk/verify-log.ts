/**
 * The device's own copy of the transcript's Merkle tree, and the check of each relay
 * checkpoint against it: signature by the pinned relay key, the right origin, and — at the
 * same size — the same root. A checkpoint whose root differs from what this device computed
 * from the entries it was served is a forked history; the evidence is kept.
 */
import type { ChannelId } from '@backchannel/protocol';
import {
  appendLeaf as appendTreeLeaf,
  parseCheckpoint,
  parseNote,
  parseVerifierKey,
  treeRoot,
  verifyNote,
} from '@backchannel/protocol/transcript';
import type { ChannelRecord } from './channel-record.ts';
import type { EngineContext } from './context.ts';

/** The pinned relay key, parsed once (it is checked against every checkpoint and receipt). */
let lastKey: { readonly text: string; readonly parsed: ReturnType<typeof parseVerifierKey> } | undefined;
export function relayVerifierKey(vkey: string): ReturnType<typeof parseVerifierKey> {
  if (lastKey?.text !== vkey) lastKey = { text: vkey, parsed: parseVerifierKey(vkey) };
  return lastKey.parsed;
}

/** The frontier after appending the leaf hash of entry `seq` (RFC 9162 §2.1.1). */
export function appendLeaf(frontier: readonly Uint8Array[], seq: number, leaf: Uint8Array): Uint8Array[] {
  return [...appendTreeLeaf({ size: seq, frontier }, leaf).state.frontier];
}

export type CheckpointCheck =
  | { readonly kind: 'verified'; readonly size: number }
  | { readonly kind: 'pending' }
  | { readonly kind: 'fork'; readonly reason: string; readonly evidence: string };

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
  const vkey = ctx.relayKey();
  if (vkey !== undefined) {
    const k = relayVerifierKey(vkey);
    if (k.ok && !verifyNote(parsed.value, [k.value], ctx.suite).ok)
      return fork('the checkpoint is not signed by the relay key this device pinned');
  }
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
