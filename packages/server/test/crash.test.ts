/**
 * Durability under kill -9: a client writes with several requests in flight while the relay is
 * killed and restarted five times. Afterwards every acknowledged message is in the log exactly
 * once at its acknowledged seq, retries of unacknowledged ones are idempotent, and the log
 * verifies against the last checkpoint the client saw (consistency proof) and its own root.
 */
import { fromBase64url, type SignedEnvelope } from '@backchannel/protocol';
import {
  leafHash,
  parseNote,
  parseVerifierKey,
  rootOfLeaves,
  verifyConsistency,
  verifyNote,
} from '@backchannel/protocol/transcript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commit, envelope, expectAckedOnce, newChannel, readLog, type TestDevice } from './helpers.ts';
import { type RelayProcess, writerRelay } from './process.ts';

let relay: RelayProcess;
let a: TestDevice;
let b: TestDevice;

beforeAll(async () => {
  ({ relay, a, b } = await writerRelay());
});
afterAll(() => relay.cleanup());

/** `npm run test:faults` (BACKCHANNEL_FAULTS=full): the power-cut simulation 50 times instead of 5. */
const CRASHES = process.env.BACKCHANNEL_FAULTS === 'full' ? 50 : 5;

const rootOf = (note: string) => Buffer.from(note.split('\n')[2] as string, 'base64');
const sizeOf = (note: string) => Number(note.split('\n')[1]);

describe('crash: kill -9 while a client writes', () => {
  it('keeps every acknowledged message exactly once, and the transcript verifies', async () => {
    const ch = newChannel();
    expect((await relay.caller.append(a, commit(a, ch, 0, [b]))).status).toBe(201);
    const acked = new Map<string, number>();
    const unacked = new Map<string, SignedEnvelope>();
    let lastCheckpoint = '';
    let stop = false;
    let sent = 0;
    const writer = async () => {
      while (!stop) {
        const env = envelope(a, ch);
        sent++;
        try {
          const r = await relay.caller.append(a, env);
          if (r.status === 201 || r.status === 200) {
            acked.set(env.body.msgId, r.body.seq);
            if (sizeOf(r.body.checkpoint) > sizeOf(lastCheckpoint || '\n0\n'))
              lastCheckpoint = r.body.checkpoint;
          } else unacked.set(env.body.msgId, env);
        } catch {
          unacked.set(env.body.msgId, env); // connection reset by the crash: outcome unknown
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    // Each crash comes after at least 10 more acknowledgements (whatever the machine's load),
    // then at a random moment within the next 250 ms, so it lands in the middle of writes.
    const ackedAtLeast = async (n: number) => {
      while (acked.size < n) await new Promise((r) => setTimeout(r, 10));
    };
    for (let i = 0; i < CRASHES; i++) {
      await ackedAtLeast(acked.size + 10);
      await new Promise((r) => setTimeout(r, Math.random() * 250));
      await relay.crash();
      await new Promise((r) => setTimeout(r, 50));
      await relay.restart();
    }
    await ackedAtLeast(acked.size + 10);
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThanOrEqual(10 * (CRASHES + 1));

    // Retry every message whose outcome the client did not learn: idempotent by msgId.
    for (const [msgId, env] of unacked) {
      const r = await relay.caller.append(a, env);
      expect([200, 201], JSON.stringify(r.body)).toContain(r.status);
      acked.set(msgId, r.body.seq);
    }

    const entries = await readLog(relay.caller, ch, b);
    expectAckedOnce(entries, acked);
    expect(sent).toBeGreaterThanOrEqual(acked.size);

    // The final checkpoint is the root of exactly these entries, signed by the same key as before the crashes…
    const final = await relay.caller.get(`/v1/channels/${ch}/checkpoint`, b);
    const finalNote = final.body.checkpoint as string;
    expect(final.body.size).toBe(entries.length);
    expect(rootOf(finalNote).equals(Buffer.from(rootOfLeaves(entries.map(leafHash))))).toBe(true);
    const vkey = parseVerifierKey((await relay.caller.get('/v1/relay')).body.vkey as string);
    if (!vkey.ok) throw new Error('vkey');
    for (const n of [finalNote, lastCheckpoint]) {
      const parsed = parseNote(n);
      expect(parsed.ok && verifyNote(parsed.value, [vkey.value]).ok).toBe(true);
    }
    // …and consistent with the last checkpoint the client saw before and between crashes.
    const from = sizeOf(lastCheckpoint);
    expect(from).toBeLessThanOrEqual(entries.length);
    const proof = await relay.caller.get(
      `/v1/channels/${ch}/proof/consistency?from=${from}&to=${entries.length}`,
      b,
    );
    const hashes = (proof.body.proof as string[]).map((p) => fromBase64url(p));
    expect(verifyConsistency(from, entries.length, hashes, rootOf(lastCheckpoint), rootOf(finalNote))).toBe(
      true,
    );
  }, 900_000);
});
