/**
 * Sync verifies every envelope signature whether pages go through the batch verifier (a worker
 * thread, helped by the main thread) or one by one: a relay that serves an entry whose signature
 * was altered gets that entry marked SIG_INVALID and, since the altered bytes no longer match
 * the root it signed, a fork reported.
 */
import { decodeEntry, fromBase64url, toBase64url } from '@backchannel/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { decodeEventRecords, type EventRecord, keys } from '../src/sdk/channel-record.ts';
import type { BatchVerifier } from '../src/sdk/context.ts';
import { ed25519Node } from '../src/sdk/mls-crypto.node.ts';
import { leafHashNode, SignatureWorkers } from '../src/sdk/sync-crypto.node.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

const workers = new SignatureWorkers({ threads: 1, inline: ed25519Node });
afterAll(() => workers.close());
let batched = 0;
const counted: BatchVerifier = {
  verifyAll: (checks) => {
    batched += checks.length;
    return workers.verifyAll(checks);
  },
};

/** Flips one byte of the envelope signature inside the entry at `seq` of every entries page. */
async function forgeSignature(res: Response, seq: number): Promise<Response> {
  const body = (await res.json()) as { entries: { seq: number; entry: string }[] };
  for (const e of body.entries) {
    if (e.seq !== seq) continue;
    const bytes = fromBase64url(e.entry);
    const d = decodeEntry(bytes);
    if (!d.ok) throw new Error('entry does not decode');
    const sig = d.value.envelope.sig;
    const at = Buffer.from(bytes).indexOf(Buffer.from(sig));
    bytes[at + 5] = (bytes[at + 5] as number) ^ 1;
    e.entry = toBase64url(bytes);
  }
  return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
}

async function world(verifier: BatchVerifier | undefined) {
  const w = inProcessRelay('bc-syncverify-');
  let forge: number | undefined;
  const opts = verifier === undefined ? {} : { verifier, leafHash: leafHashNode };
  const a = await w.device('A', opts);
  const b = await w.device('B', {
    ...opts,
    wrap: async (input, _init, res) =>
      forge !== undefined && input.includes('/entries?') ? forgeSignature(res, forge) : res,
  });
  const { chA, chB } = await openChannel(a, b);
  await chA.sendMany(
    Array.from({ length: 40 }, (_, i) => ({ kind: 'message', text: `m${i}` }) as DraftEvent),
  );
  await a.outbox.flush();
  return {
    b,
    chB,
    forgeAt: (seq: number) => {
      forge = seq;
    },
    close: () => {
      a.close();
      b.close();
    },
  };
}

describe('sync verifies every signature', () => {
  const failing: BatchVerifier = {
    verifyAll: async () => {
      throw new Error('the verify worker died');
    },
  };
  it.each([
    ['on the batch verifier', counted, 41],
    ['one by one', undefined, 0],
    ['one by one when the batch verifier fails', failing, 0],
  ] as const)(
    '%s: a forged signature is SIG_INVALID and the altered log a fork',
    async (_, verifier, inBatch) => {
      const w = await world(verifier);
      const first = w.chB.record.nextSeq;
      const before = batched;
      const forged = first + 17;
      w.forgeAt(forged);
      await expect(w.chB.sync()).rejects.toMatchObject({ code: 'FORK_DETECTED' });
      // What B stored for the page it applied before the checkpoint check failed.
      const fresh: EventRecord[] = [];
      for (const k of await w.b.store.keys(keys.eventPrefix(w.chB.id))) {
        const v = await w.b.store.get(k);
        if (v !== undefined) fresh.push(...decodeEventRecords(v).filter((r) => r.seq >= first));
      }
      // B's own accept, then A's 40 messages.
      expect(fresh.map((r) => r.seq)).toEqual(Array.from({ length: 41 }, (_, i) => first + i));
      expect(fresh.filter((r) => r.status !== 'ok').map((r) => [r.seq, r.status, r.code])).toEqual([
        [forged, 'unreadable', 'SIG_INVALID'],
      ]);
      // On the batch path, every signature of the page went to the batch verifier.
      expect(batched - before).toBe(inBatch);
      // The view folds only what verified.
      expect(w.chB.view.timeline.filter((r) => r.seq >= first).length).toBe(40);
      w.close();
    },
  );
});
