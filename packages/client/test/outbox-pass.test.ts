/**
 * One outbox pass posts what is queued while it runs (a steady sender is not held up by the end
 * of each pass), removes what the relay acknowledged, and loses or repeats nothing.
 */
import { fromBase64url } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

describe('outbox pass', () => {
  it('posts the sends queued while it runs, each once', async () => {
    const world = inProcessRelay('bc-outbox-pass-');
    // Envelope posts wait until the test lets them through (the pass is then surely running).
    let hold: Promise<void> | undefined;
    let release: () => void = () => undefined;
    let posts = 0;
    const a = await world.device('A', {
      wrap: async (input, init, res) => {
        if (init.method === 'POST' && input.includes('/envelopes')) {
          posts++;
          await hold;
        }
        return res;
      },
    });
    const b = await world.device('B');
    try {
      const { chA, chB } = await openChannel(a, b);
      const postsBefore = posts;
      const from = chB.record.nextSeq;
      hold = new Promise((r) => {
        release = r;
      });
      await chA.sendMany([0, 1, 2].map((i) => ({ kind: 'message', text: `m${i}` }) as DraftEvent));
      const pass = a.outbox.flush(4);
      // Queued while the pass waits for the relay: durable first, then handed to the pass.
      await chA.sendMany([3, 4, 5, 6].map((i) => ({ kind: 'message', text: `m${i}` }) as DraftEvent));
      release();
      const r = await pass;
      expect(r).toEqual({ sent: 7, rejected: 0, pending: 0 });
      expect(posts - postsBefore).toBe(7);
      expect(a.outbox.finished).toBeGreaterThanOrEqual(7);
      expect(await a.store.outboxList()).toEqual([]);
      // Every message in B's copy of the log once; every receipt kept.
      await chB.sync();
      const got = chB.view.timeline.flatMap((e) =>
        e.seq >= from && 'event' in e && e.event.kind === 'message'
          ? [(e.event as { text: string }).text]
          : [],
      );
      expect(got.sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
      expect(await a.store.keys(`rr-invalid:${chA.id}:`)).toEqual([]);
      // A later send with no pass running waits for the next one.
      await chA.send({ kind: 'message', text: 'm7' } as DraftEvent);
      expect(await a.outbox.pending()).toBe(1);
      expect(await a.outbox.flush()).toEqual({ sent: 1, rejected: 0, pending: 0 });
    } finally {
      a.close();
      b.close();
    }
  });

  it("makes a device's msgIds in a channel in runs: a shared random prefix, the rest random", async () => {
    const world = inProcessRelay('bc-outbox-ids-');
    const a = await world.device('A');
    const b = await world.device('B');
    try {
      const { chA, chB } = await openChannel(a, b);
      const from = chB.record.nextSeq;
      await chA.sendMany([0, 1, 2, 3, 4].map((i) => ({ kind: 'message', text: `m${i}` }) as DraftEvent));
      await a.outbox.flush();
      await chB.sync();
      const ids = chB.view.timeline.flatMap((e) =>
        e.seq >= from && 'event' in e && e.event.kind === 'message' ? [e.event.id as string] : [],
      );
      expect(ids).toHaveLength(5);
      const bytes = ids.map((id) => fromBase64url(id.slice(2)));
      const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
      // One run (64 ids long) covers them: the same first 4 bytes, unless a run ended among them.
      const runs = new Set(bytes.map((b) => hex(b.subarray(0, 4))));
      expect(runs.size).toBeLessThanOrEqual(2);
      // The last 12 bytes are fresh randomness for each id.
      expect(new Set(bytes.map((b) => hex(b.subarray(4)))).size).toBe(5);
      // Another device draws runs of its own.
      await chB.send({ kind: 'message', text: 'from b' } as DraftEvent);
      await b.outbox.flush();
      await chA.sync();
      const theirs = chA.view.timeline.flatMap((e) =>
        'event' in e && e.event.kind === 'message' && (e.event as { text: string }).text === 'from b'
          ? [hex(fromBase64url((e.event.id as string).slice(2)).subarray(0, 4))]
          : [],
      );
      expect(theirs).toHaveLength(1);
      expect(runs.has(theirs[0] as string)).toBe(false);
    } finally {
      a.close();
      b.close();
    }
  });
});
