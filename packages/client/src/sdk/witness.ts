/**
 * The witness service, one round at a time: for each watched channel, fetch the relay's newest
 * checkpoint, check it extends the last one this witness co-signed (RFC 9162 consistency proof),
 * co-sign it (C2SP tlog-cosignature/v1) and post the cosignature to the relay. On a fork it
 * refuses and returns evidence; the caller raises the alarm and writes the evidence file.
 */
import { constantTimeEqual, fromBase64url, keyPairFromSeed, toBase64url } from '@backchannel/protocol';
import {
  type ForkEvidence,
  prefixMismatchEvidence,
  type WitnessedCheckpoint,
  witnessDecide,
} from '@backchannel/protocol/attest';
import {
  cosignatureKey,
  encodeVerifierKey,
  leafHash,
  type NoteVerifierKey,
  parseCheckpoint,
  parseNote,
} from '@backchannel/protocol/transcript';
import type { RelayClient } from './relay-client.ts';
import type { LocalStore } from './storage.ts';

/** Where the witness reads checkpoints and posts cosignatures (the relay, or a test double). */
export interface WitnessSource {
  checkpoint(channel: string): Promise<string>;
  checkpointAt(channel: string, size: number): Promise<string | undefined>;
  consistency(channel: string, from: number, to: number): Promise<Uint8Array[]>;
  postCosignature(channel: string, size: number, line: string): Promise<void>;
  /**
   * Leaf hashes of the first `size` entries: as the relay serves them now ('served'), or as this
   * device verified them earlier ('local'). Used to turn a fork alarm into proof.
   */
  leafHashes?(channel: string, size: number, which: 'served' | 'local'): Promise<Uint8Array[] | undefined>;
}

export function relaySource(relay: RelayClient, store?: LocalStore): WitnessSource {
  return {
    leafHashes: async (c, size, which) => {
      if (which === 'local') {
        const local = store === undefined ? [] : await store.entries(c, 0, size);
        return local.length >= size ? local.slice(0, size).map((e) => leafHash(e.entry)) : undefined;
      }
      const out: Uint8Array[] = [];
      try {
        while (out.length < size) {
          const page = await relay.getEntries(c, out.length, Math.min(1000, size - out.length));
          if (page.entries.length === 0) break;
          for (const e of page.entries) out.push(leafHash(e.entry));
        }
      } catch {
        return undefined;
      }
      return out.length >= size ? out.slice(0, size) : undefined;
    },
    checkpoint: async (c) => (await relay.getCheckpoint(c)).checkpoint,
    checkpointAt: async (c, size) => {
      try {
        return (await relay.getCheckpointAt(c, size)).checkpoint;
      } catch {
        return undefined;
      }
    },
    consistency: async (c, from, to) =>
      (await relay.getConsistency(c, from, to)).map((p) => fromBase64url(p)),
    postCosignature: async (c, size, line) => {
      await relay.postCosignature(c, size, line);
    },
  };
}

/** The witness's persistent state: its key and, per channel, the last checkpoint it co-signed. */
export interface WitnessState {
  readonly name: string;
  readonly seed: string;
  readonly relayKey: string;
  readonly channels: Record<string, WitnessedCheckpoint>;
  /** Channels this witness refuses to co-sign any more (a fork was seen). */
  readonly alarmed: Record<string, string>;
}

export function newWitnessState(name: string, seed: Uint8Array, relayKey: string): WitnessState {
  return { name, seed: toBase64url(seed), relayKey, channels: {}, alarmed: {} };
}

/** The C2SP verifier key of this witness ("<name>+<key id>+<base64(0x04 || key)>"). */
export function witnessVerifierKey(s: Pick<WitnessState, 'name' | 'seed'>): string {
  return encodeVerifierKey(cosignatureKey(s.name, keyPairFromSeed(fromBase64url(s.seed)).publicKey));
}

export type WitnessEvent =
  | { readonly channel: string; readonly kind: 'cosigned'; readonly size: number }
  | { readonly channel: string; readonly kind: 'unchanged'; readonly size: number }
  | { readonly channel: string; readonly kind: 'refused'; readonly reason: string }
  | { readonly channel: string; readonly kind: 'fork'; readonly evidence: ForkEvidence };

function sizeOf(note: string): number {
  const p = parseNote(note);
  if (!p.ok) return -1;
  const cp = parseCheckpoint(p.value.text);
  return cp.ok ? cp.value.size : -1;
}

function originOf(note: string): string | undefined {
  const p = parseNote(note);
  if (!p.ok) return undefined;
  const cp = parseCheckpoint(p.value.text);
  return cp.ok ? cp.value.origin : undefined;
}

/**
 * A note that carries a signature in the relay's name by none of `keys`: the relay may have
 * rotated its key since.
 */
function signedByUnknownKey(note: string, keys: readonly NoteVerifierKey[]): boolean {
  const p = parseNote(note);
  const name = keys[0]?.name;
  if (!p.ok || name === undefined) return false;
  const sigs = p.value.signatures;
  return (
    sigs.some((s) => s.name === name) &&
    !sigs.some((s) => keys.some((k) => constantTimeEqual(k.keyId, s.keyId)))
  );
}

/** One round over the channels; returns the new state and what happened. */
export async function witnessRound(opts: {
  readonly source: WitnessSource;
  readonly state: WitnessState;
  /** The relay's key, or its keys across a rotation (the current one first). */
  readonly relayKey: NoteVerifierKey | readonly NoteVerifierKey[];
  readonly channels: readonly string[];
  readonly now: number;
  /**
   * Asked when a checkpoint is signed in the relay's name by a key not given: follows the relay's
   * rotation statements (Backchannel.learnRelayRotation) and returns the keys trusted then. The
   * witness's own device may not have met the new key: its sync of the channel failed, or cannot
   * run (a store that lost the channel's state).
   */
  readonly rotated?: () => Promise<readonly NoteVerifierKey[]>;
}): Promise<{ state: WitnessState; events: WitnessEvent[] }> {
  const { source } = opts;
  let relayKey: readonly NoteVerifierKey[] = Array.isArray(opts.relayKey)
    ? (opts.relayKey as readonly NoteVerifierKey[])
    : [opts.relayKey as NoteVerifierKey];
  let state = opts.state;
  const events: WitnessEvent[] = [];
  const seed = fromBase64url(state.seed);
  for (const channel of opts.channels) {
    const alarm = state.alarmed[channel];
    if (alarm !== undefined) {
      events.push({ channel, kind: 'refused', reason: `a fork was seen earlier: ${alarm}` });
      continue;
    }
    const latest = await source.checkpoint(channel);
    if (opts.rotated !== undefined && signedByUnknownKey(latest, relayKey)) relayKey = await opts.rotated();
    const last = state.channels[channel];
    const size = sizeOf(latest);
    const origin = originOf(latest) ?? '';
    if (!origin.endsWith(`/${channel}`)) {
      events.push({ channel, kind: 'refused', reason: 'the relay served a checkpoint of another log' });
      continue;
    }
    const proof =
      last !== undefined && size > last.size && last.size > 0
        ? await source.consistency(channel, last.size, size)
        : [];
    const base = {
      origin,
      relayKey,
      last,
      latest,
      proof,
      witness: { name: state.name, seed },
      now: opts.now,
    };
    let d = witnessDecide(base);
    if (d.kind === 'fork' && d.evidence.kind === 'inconsistent' && last !== undefined) {
      // Ask the relay for the checkpoint it now holds at the co-signed size: two roots for one
      // size are proof anyone can check.
      const replayed = await source.checkpointAt(channel, last.size);
      if (replayed !== undefined) d = witnessDecide({ ...base, replayedAtLastSize: replayed });
    }
    if (
      d.kind === 'fork' &&
      d.evidence.kind !== 'same-size' &&
      last !== undefined &&
      source.leafHashes !== undefined
    ) {
      // Proof instead of an alarm: the leaves of the longer tree show its root at the shorter size.
      const longerIsServed = size > last.size;
      const leaves = await source.leafHashes(
        channel,
        Math.max(size, last.size),
        longerIsServed ? 'served' : 'local',
      );
      const proven = leaves === undefined ? undefined : prefixMismatchEvidence(d.evidence, leaves);
      if (proven !== undefined) d = { kind: 'fork', evidence: proven };
    }
    switch (d.kind) {
      case 'cosign':
        await source.postCosignature(channel, d.size, d.line);
        state = { ...state, channels: { ...state.channels, [channel]: { size: d.size, note: d.note } } };
        events.push({ channel, kind: 'cosigned', size: d.size });
        break;
      case 'unchanged':
        events.push({ channel, kind: 'unchanged', size });
        break;
      case 'refuse':
        events.push({ channel, kind: 'refused', reason: d.reason });
        break;
      case 'fork':
        state = { ...state, alarmed: { ...state.alarmed, [channel]: d.evidence.reason } };
        events.push({ channel, kind: 'fork', evidence: d.evidence });
        break;
    }
  }
  return { state, events };
}
