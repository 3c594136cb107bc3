/**
 * The witness: co-signs checkpoints that extend what it co-signed before, and catches a relay
 * that serves a forked log, leaving evidence anyone can check with the relay's public key alone.
 */
import { keyPairFromSeed, utf8 } from '@backchannel/protocol';
import { verifyForkEvidence } from '@backchannel/protocol/attest';
import {
  consistencyProof,
  cosignatureKey,
  encodeCheckpoint,
  encodeVerifierKey,
  leafHash,
  MemoryNodeStore,
  makeVerifierKey,
  type NoteVerifierKey,
  parseNote,
  signNote,
  treeRoot,
  verifyCosignatures,
} from '@backchannel/protocol/transcript';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keepEvidence } from '../src/cli/commands/witness.ts';
import { newWitnessState, type WitnessSource, witnessRound } from '../src/sdk/witness.ts';

const CHANNEL = 'c_AAAAAAAAAAAAAAAAAAAAAA';
const relaySeed = new Uint8Array(32).fill(3);
const relayKey: NoteVerifierKey = makeVerifierKey('relay.test', keyPairFromSeed(relaySeed).publicKey);
const origin = `relay.test/${CHANNEL}`;

/** A log the (possibly dishonest) relay keeps; it signs a checkpoint at every size. */
class Log {
  readonly tree = new MemoryNodeStore();
  readonly notes = new Map<number, string>();
  readonly leaves: Uint8Array[] = [];
  /** The relay's signing key (a key rotation changes it). */
  seed = relaySeed;
  constructor(entries: readonly string[]) {
    for (const e of entries) this.append(e);
  }
  append(e: string): void {
    this.leaves.push(leafHash(utf8(e)));
    this.tree.append(leafHash(utf8(e)));
    const size = this.tree.state.size;
    this.notes.set(
      size,
      signNote(encodeCheckpoint({ origin, size, root: treeRoot(this.tree.state), extensions: [] }), [
        { name: 'relay.test', seed: this.seed },
      ]),
    );
  }
  get size(): number {
    return this.tree.state.size;
  }
}

/** A relay that serves `current()`; cosignatures are kept as posted. */
function source(
  current: () => Log,
  opts: { local?: Log; noHistory?: boolean } = {},
): WitnessSource & { posted: Array<{ size: number; line: string }> } {
  const posted: Array<{ size: number; line: string }> = [];
  const hashes = (log: Log, size: number) =>
    log.leaves.length >= size ? log.leaves.slice(0, size) : undefined;
  return {
    posted,
    checkpoint: async () => current().notes.get(current().size) as string,
    checkpointAt: async (_c, size) => (opts.noHistory === true ? undefined : current().notes.get(size)),
    leafHashes: async (_c, size, which) =>
      which === 'served'
        ? hashes(current(), size)
        : opts.local === undefined
          ? undefined
          : hashes(opts.local, size),
    consistency: async (_c, from, to) => consistencyProof(from, to, current().tree.read),
    postCosignature: async (_c, size, line) => {
      posted.push({ size, line });
    },
  };
}

describe('witness', () => {
  it('co-signs checkpoints that extend the last co-signed one (C2SP cosignature/v1)', async () => {
    const log = new Log(['e0', 'e1', 'e2']);
    const src = source(() => log);
    const seed = new Uint8Array(32).fill(5);
    let state = newWitnessState('witness.a.example', seed, 'unused');
    const r1 = await witnessRound({
      source: src,
      state,
      relayKey,
      channels: [CHANNEL],
      now: 1_800_000_000_000,
    });
    state = r1.state;
    expect(r1.events).toEqual([{ channel: CHANNEL, kind: 'cosigned', size: 3 }]);
    log.append('e3');
    log.append('e4');
    const r2 = await witnessRound({
      source: src,
      state,
      relayKey,
      channels: [CHANNEL],
      now: 1_800_000_060_000,
    });
    expect(r2.events).toEqual([{ channel: CHANNEL, kind: 'cosigned', size: 5 }]);
    const again = await witnessRound({
      source: src,
      state: r2.state,
      relayKey,
      channels: [CHANNEL],
      now: 1_800_000_120_000,
    });
    expect(again.events).toEqual([{ channel: CHANNEL, kind: 'unchanged', size: 5 }]);
    // The posted line is a valid cosignature of the relay's note.
    const last = src.posted.at(-1)!;
    const note = parseNote(`${log.notes.get(5)}${last.line}`);
    expect(note.ok).toBe(true);
    if (!note.ok) return;
    const v = verifyCosignatures(note.value, [
      cosignatureKey('witness.a.example', keyPairFromSeed(seed).publicKey),
    ]);
    expect(v.ok && v.value.map((c) => c.timeSeconds)).toEqual([1_800_000_060]);
  });

  it('co-signs across a relay key rotation given both keys (the last co-signed note carries the old one)', async () => {
    const log = new Log(['e0', 'e1']);
    const src = source(() => log);
    const round = (state: ReturnType<typeof newWitnessState>, keys: NoteVerifierKey | NoteVerifierKey[]) =>
      witnessRound({ source: src, state, relayKey: keys, channels: [CHANNEL], now: 1_800_000_000_000 });
    const first = await round(
      newWitnessState('witness.a.example', new Uint8Array(32).fill(5), 'unused'),
      relayKey,
    );
    expect(first.events).toEqual([{ channel: CHANNEL, kind: 'cosigned', size: 2 }]);
    log.seed = new Uint8Array(32).fill(4);
    log.append('e2');
    const newKey = makeVerifierKey('relay.test', keyPairFromSeed(log.seed).publicKey);
    // With the old key alone, the new checkpoint is not the relay's.
    expect((await round(first.state, relayKey)).events).toMatchObject([{ kind: 'refused' }]);
    // With the new key alone, the checkpoint it co-signed before is not.
    expect((await round(first.state, newKey)).events).toMatchObject([{ kind: 'refused' }]);
    expect((await round(first.state, [newKey, relayKey])).events).toEqual([
      { channel: CHANNEL, kind: 'cosigned', size: 3 },
    ]);
  });

  it('given only the old key, follows a rotation through the hook it is handed, and only when the key is unknown', async () => {
    const log = new Log(['e0', 'e1']);
    const src = source(() => log);
    let asked = 0;
    let statement = false;
    const newSeed = new Uint8Array(32).fill(4);
    const newKey = makeVerifierKey('relay.test', keyPairFromSeed(newSeed).publicKey);
    const round = (state: ReturnType<typeof newWitnessState>) =>
      witnessRound({
        source: src,
        state,
        relayKey,
        channels: [CHANNEL],
        now: 1_800_000_000_000,
        // Plays Backchannel.learnRelayRotation: the new key once the relay serves its statement.
        rotated: async () => {
          asked++;
          return statement ? [newKey, relayKey] : [relayKey];
        },
      });
    const first = await round(newWitnessState('witness.a.example', new Uint8Array(32).fill(5), 'unused'));
    expect(first.events).toEqual([{ channel: CHANNEL, kind: 'cosigned', size: 2 }]);
    expect(asked).toBe(0);
    log.seed = newSeed;
    log.append('e2');
    // No statement: the new key is not the relay's.
    expect((await round(first.state)).events).toMatchObject([{ kind: 'refused' }]);
    expect(asked).toBe(1);
    statement = true;
    expect((await round(first.state)).events).toEqual([{ channel: CHANNEL, kind: 'cosigned', size: 3 }]);
    expect(asked).toBe(2);
  });

  it('a fork across a relay key rotation leaves evidence that names both keys and verifies', async () => {
    const honest = new Log(['e0', 'e1']);
    let served = honest;
    const src = source(() => served, { local: honest });
    const round = (state: ReturnType<typeof newWitnessState>, keys: NoteVerifierKey | NoteVerifierKey[]) =>
      witnessRound({ source: src, state, relayKey: keys, channels: [CHANNEL], now: 1_800_000_000_000 });
    const first = await round(
      newWitnessState('witness.a.example', new Uint8Array(32).fill(5), 'unused'),
      relayKey,
    );
    // After the rotation, the relay (new key) serves a rewritten history.
    const newSeed = new Uint8Array(32).fill(4);
    served = new Log([]);
    served.seed = newSeed;
    for (const e of ['e0', 'e1-rewritten', 'e2']) served.append(e);
    const newKey = makeVerifierKey('relay.test', keyPairFromSeed(newSeed).publicKey);
    const r = await round(first.state, [newKey, relayKey]);
    const ev = r.events[0];
    expect(ev?.kind).toBe('fork');
    if (ev?.kind !== 'fork') return;
    expect(ev.evidence.relayKeys).toEqual([encodeVerifierKey(newKey), encodeVerifierKey(relayKey)]);
    // It verifies on its own (the keys it names), and with both keys given; not with one alone.
    expect(verifyForkEvidence(JSON.stringify(ev.evidence))).toMatchObject({ valid: true });
    expect(
      verifyForkEvidence(ev.evidence, { relayKey: [encodeVerifierKey(newKey), encodeVerifierKey(relayKey)] }),
    ).toMatchObject({ valid: true });
    expect(verifyForkEvidence(ev.evidence, { relayKey: encodeVerifierKey(newKey) })).toMatchObject({
      valid: false,
      code: 'FORK_EVIDENCE_INVALID',
    });
  });

  it('a relay serving a forked log is caught, and the evidence file verifies on its own', async () => {
    const honest = new Log(['e0', 'e1', 'e2']);
    let served = honest;
    const src = source(() => served);
    let state = newWitnessState('witness.a.example', new Uint8Array(32).fill(6), 'unused');
    state = (
      await witnessRound({ source: src, state, relayKey, channels: [CHANNEL], now: 1_800_000_000_000 })
    ).state;
    // The relay now shows this party another history: entry 1 dropped and replaced.
    served = new Log(['e0', 'e1-rewritten', 'e2', 'e3']);
    const r = await witnessRound({
      source: src,
      state,
      relayKey,
      channels: [CHANNEL],
      now: 1_800_000_060_000,
    });
    const ev = r.events[0];
    expect(ev?.kind).toBe('fork');
    if (ev?.kind !== 'fork') return;
    expect(ev.evidence.kind).toBe('same-size');
    expect(src.posted.map((p) => p.size)).toEqual([3]); // nothing co-signed after the fork
    // The evidence is checked with nothing but itself (and, preferably, the relay's published key).
    const file = JSON.stringify(ev.evidence, null, 2);
    expect(verifyForkEvidence(file)).toMatchObject({ valid: true, conclusive: true });
    expect(verifyForkEvidence(file, { relayKey: ev.evidence.relayKey })).toMatchObject({
      valid: true,
      conclusive: true,
    });
    // The witness stays alarmed for that channel.
    const later = await witnessRound({
      source: src,
      state: r.state,
      relayKey,
      channels: [CHANNEL],
      now: 1_800_000_120_000,
    });
    expect(later.events[0]?.kind).toBe('refused');
  });

  it.each([
    [
      'a longer forked log (leaves fetched from the relay)',
      ['e0', 'e1', 'e2'],
      ['e0', 'e1-rewritten', 'e2', 'e3', 'e4'],
    ],
    [
      'a shorter forked log (leaves from the device)',
      ['e0', 'e1', 'e2', 'e3', 'e4'],
      ['e0', 'e1', 'e2-rewritten', 'e3'],
    ],
  ])('%s without same-size checkpoints is still proven', async (_name, honestEntries, forkEntries) => {
    const honest = new Log(honestEntries);
    let served = honest;
    const src = source(() => served, { local: honest, noHistory: true });
    let state = newWitnessState('witness.a.example', new Uint8Array(32).fill(7), 'unused');
    state = (
      await witnessRound({ source: src, state, relayKey, channels: [CHANNEL], now: 1_800_000_000_000 })
    ).state;
    served = new Log(forkEntries);
    const r = await witnessRound({
      source: src,
      state,
      relayKey,
      channels: [CHANNEL],
      now: 1_800_000_060_000,
    });
    const ev = r.events[0];
    expect(ev?.kind).toBe('fork');
    if (ev?.kind !== 'fork') return;
    expect(ev.evidence.kind).toBe('prefix-mismatch');
    expect(verifyForkEvidence(JSON.stringify(ev.evidence))).toMatchObject({ valid: true, conclusive: true });
    // Tampering with the prefix root breaks it.
    const bad = {
      ...ev.evidence,
      prefixRoot: ev.evidence.checkpoints[0]
        .split('\n')[2]
        ?.replace(/\+/g, '-')
        .replace(/\//g, '_')
        .replace(/=+$/, ''),
    };
    expect(verifyForkEvidence(bad)).toMatchObject({ valid: false });
  });

  it('refuses fork evidence that is altered or shows no conflict', () => {
    const a = new Log(['x0', 'x1']);
    const b = new Log(['x0', 'y1']);
    const good = {
      type: 'backchannel/fork-evidence',
      v: 1,
      kind: 'same-size',
      origin,
      relayKey: encodeVerifierKey(relayKey),
      checkpoints: [a.notes.get(2), b.notes.get(2)],
      proof: [],
      witness: 'w',
      detectedAt: 0,
      reason: 'test',
    };
    expect(verifyForkEvidence(good)).toMatchObject({ valid: true, conclusive: true });
    expect(verifyForkEvidence({ ...good, checkpoints: [a.notes.get(2), a.notes.get(2)] })).toMatchObject({
      valid: false,
      code: 'FORK_EVIDENCE_INVALID',
    });
    const forged = (b.notes.get(2) as string).replace(/\n2\n/, '\n2\n').replace(/^(.*\n.*\n)(.)/, '$1A');
    expect(verifyForkEvidence({ ...good, checkpoints: [a.notes.get(2), forged] })).toMatchObject({
      valid: false,
    });
    const otherKey = makeVerifierKey('relay.test', keyPairFromSeed(new Uint8Array(32).fill(8)).publicKey);
    expect(
      verifyForkEvidence(good, {
        relayKey: encodeVerifierKey(otherKey),
      }),
    ).toMatchObject({ valid: false });
    // Consistent checkpoints are no evidence.
    const c = new Log(['x0', 'x1', 'x2']);
    expect(
      verifyForkEvidence({
        ...good,
        kind: 'inconsistent',
        checkpoints: [a.notes.get(2), c.notes.get(3)],
        proof: consistencyProof(2, 3, c.tree.read).map((p) => Buffer.from(p).toString('base64url')),
      }),
    ).toMatchObject({ valid: false });
  });
});

describe('witness fork evidence files', () => {
  it('never replace an earlier one of the same name, and are this user’s only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-evidence-'));
    const first = keepEvidence(dir, 'fork-c_x-1', 'first\n');
    const second = keepEvidence(dir, 'fork-c_x-1', 'second\n');
    expect(second).not.toBe(first);
    expect(readFileSync(first, 'utf8')).toBe('first\n');
    expect(readFileSync(second, 'utf8')).toBe('second\n');
    expect(statSync(first).mode & 0o777).toBe(0o600);
    rmSync(dir, { recursive: true, force: true });
  });
});
