/**
 * The SDK checks each relay receipt before keeping it as proof of acceptance: an answer whose
 * receipt names another envelope is no acknowledgement (the item is posted again), and a receipt
 * that does not verify under the pinned relay key is kept apart (rr-invalid:…) as evidence,
 * never as a receipt the accountable-mediator checks would rely on.
 */
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

describe('relay receipts', () => {
  it('keeps the receipts that vouch for what was sent, and sets apart those that do not', async () => {
    const world = inProcessRelay('bc-receipts-');
    let tamper: 'swap' | 'garble' | undefined;
    let previous: string | undefined;
    const a = await world.device('A', {
      wrap: async (input, init, res) => {
        if (init.method !== 'POST' || !input.includes('/envelopes')) return res;
        const body = (await res.json()) as { receipt?: string };
        const own = body.receipt;
        // Another envelope's receipt, or a garbled one, when the test asks for it.
        if (tamper === 'swap' && previous !== undefined) body.receipt = previous;
        if (tamper === 'garble' && own !== undefined) body.receipt = `${own.slice(0, -6)}AAAAAA`;
        if (own !== undefined) previous = own;
        return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
      },
    });
    const b = await world.device('B');
    try {
      const { chA } = await openChannel(a, b);
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        ids.push(...(await chA.sendMany([{ kind: 'message', text: `m${i}` } as DraftEvent])));
        tamper = i === 2 ? 'swap' : i === 4 ? 'garble' : undefined;
        const r = await a.outbox.flush();
        // The misrouted answer is not taken: the item stays queued for the next flush.
        if (i === 2) expect(r).toMatchObject({ sent: 0, pending: 1 });
      }
      tamper = undefined;
      expect(await a.outbox.flush()).toMatchObject({ pending: 0 });
      const kept = (await a.store.keys(`rr:${chA.id}:`)).map((k) => k.split(':')[2]);
      const apart = (await a.store.keys(`rr-invalid:${chA.id}:`)).map((k) => k.split(':')[2]);
      expect(apart).toEqual([ids[4]]);
      // (A's outreach has its receipt kept too.) The re-posted item got its own receipt.
      expect(ids.filter((id) => kept.includes(id))).toEqual(ids.filter((_, i) => i !== 4));
      const why = await a.store.get(`rr-invalid:${chA.id}:${ids[4]}`);
      expect(JSON.parse(new TextDecoder().decode(why)).problem).toMatch(
        /malformed|not signed|other envelope bytes/,
      );
    } finally {
      a.close();
      b.close();
    }
  });
});
