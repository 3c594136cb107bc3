/**
 * The relay's times on the log (PROTOCOL.md §7): they never go back along a channel, and a sender
 * checks the time on each receipt against its own clock. Together they stop a relay from dating
 * what it logs now (say, an envelope of a device revoked meanwhile) before what it already logged.
 */
import { decodeEntry, encodeEntry, fromBase64url, toBase64url } from '@backchannel/protocol';
import { decodeRelayReceipt, encodeRelayReceipt, signRelayReceipt } from '@backchannel/protocol/attest';
import { ed25519Node } from '../src/sdk/mls-crypto.node.ts';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { encodeChannelRecord, keys } from '../src/sdk/channel-record.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

/** Dates the entry at `seq` of an entries page `by` ms before the entry ahead of it. */
async function backdate(res: Response, seq: number, by: number): Promise<Response> {
  const body = (await res.json()) as { entries: { seq: number; entry: string }[] };
  let previous: number | undefined;
  for (const e of body.entries) {
    const d = decodeEntry(fromBase64url(e.entry));
    if (!d.ok) throw new Error('entry does not decode');
    if (e.seq === seq && previous !== undefined)
      e.entry = toBase64url(encodeEntry({ ...d.value.entry, receivedAt: previous - by }));
    previous = d.value.entry.receivedAt;
  }
  return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
}

/** Dates every entry of an entries page `at`. */
async function redateAll(res: Response, at: number): Promise<Response> {
  const body = (await res.json()) as { entries: { seq: number; entry: string }[] };
  for (const e of body.entries) {
    const d = decodeEntry(fromBase64url(e.entry));
    if (!d.ok) throw new Error('entry does not decode');
    e.entry = toBase64url(encodeEntry({ ...d.value.entry, receivedAt: at }));
  }
  return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
}

describe("the relay's times", () => {
  it('an entry dated before the one ahead of it is refused with nothing applied; the true log then syncs whole', async () => {
    const w = inProcessRelay('bc-times-');
    let tamper: number | undefined;
    const a = await w.device('A');
    const b = await w.device('B', {
      wrap: async (input, _init, res) =>
        tamper !== undefined && input.includes('/entries?') ? backdate(res, tamper, 1) : res,
    });
    try {
      const { chA, chB } = await openChannel(a, b);
      await chA.sendMany(
        Array.from({ length: 6 }, (_, i) => ({ kind: 'message', text: `m${i}` }) as DraftEvent),
      );
      await a.outbox.flush();
      const before = chB.record;
      const viewBefore = chB.view;
      tamper = before.nextSeq + 3;
      const err = await chB.sync().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'TRANSCRIPT_INVALID' });
      expect((err as Error).message).toMatch(new RegExp(`dated entry ${tamper} .* before the entry`));
      // Nothing of the page was applied: same position, same time, same events.
      expect(chB.record.nextSeq).toBe(before.nextSeq);
      expect(chB.record.lastAt).toBe(before.lastAt);
      expect(chB.view.state).toBe(viewBefore.state);
      tamper = undefined;
      const records = await chB.sync();
      expect(
        records.flatMap((r) => (r.status === 'ok' && r.event.kind === 'message' ? [r.event.text] : [])),
      ).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
      // The record keeps the last entry's time: the next page is checked against it.
      expect(chB.record.lastAt).toBe(records.at(-1)?.receivedAt);
    } finally {
      a.close();
      b.close();
    }
  });

  it('an entry dated before the last one applied, on the next page, is refused', async () => {
    const w = inProcessRelay('bc-times-next-');
    let rewrite: ((res: Response) => Promise<Response>) | undefined;
    const a = await w.device('A');
    const b = await w.device('B', {
      wrap: async (input, _init, res) =>
        rewrite !== undefined && input.includes('/entries?') ? rewrite(res) : res,
    });
    try {
      const { chA, chB } = await openChannel(a, b);
      const lastAt = chB.record.lastAt;
      expect(lastAt).toBeGreaterThan(0);
      await chA.send({ kind: 'message', text: 'next' } as DraftEvent);
      await a.outbox.flush();
      // The relay dates the new entry a second before the last one B applied.
      rewrite = (res) => redateAll(res, lastAt - 1000);
      const next = chB.record.nextSeq;
      await expect(chB.sync()).rejects.toMatchObject({ code: 'TRANSCRIPT_INVALID' });
      expect(chB.record.nextSeq).toBe(next);
      rewrite = undefined;
      const records = await chB.sync();
      expect(
        records.flatMap((r) => (r.status === 'ok' && r.event.kind === 'message' ? [r.event.text] : [])),
      ).toEqual(['next']);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a channel record kept before it held the last entry time takes it from the last stored entry', async () => {
    const w = inProcessRelay('bc-times-upgrade-');
    let rewrite = false;
    const a = await w.device('A');
    let b = await w.device('B');
    try {
      const { chA, chB } = await openChannel(a, b);
      const lastAt = chB.record.lastAt;
      // As a device that last wrote the record before `lastAt` existed (it decodes as 0).
      await b.store.put([[keys.channel(chB.id), encodeChannelRecord({ ...chB.record, lastAt: 0 })]]);
      b.close();
      b = await w.device('B', {
        wrap: async (input, _init, res) =>
          rewrite && input.includes('/entries?') ? redateAll(res, lastAt - 1000) : res,
      });
      const ch = await b.channel(chB.id);
      expect(ch.record.lastAt).toBe(lastAt);
      await chA.send({ kind: 'message', text: 'next' } as DraftEvent);
      await a.outbox.flush();
      rewrite = true;
      await expect(ch.sync()).rejects.toMatchObject({ code: 'TRANSCRIPT_INVALID' });
    } finally {
      a.close();
      b.close();
    }
  });

  it("a receipt dated outside the sender's clock is kept apart as evidence, not as a receipt", async () => {
    const w = inProcessRelay('bc-times-receipt-');
    let offset = 0;
    const a = await w.device('A', { now: () => Date.now() + offset });
    const b = await w.device('B');
    try {
      const { chA } = await openChannel(a, b);
      // Queued while A's clock ran 10 minutes ahead; posted once it is set right (the relay takes
      // the post: its signature is dated within the relay's window). The relay's time for it is
      // before A queued it by more than the skew: A keeps that receipt apart.
      offset = 10 * 60_000;
      const [early] = await chA.sendMany([{ kind: 'message', text: 'queued ahead' } as DraftEvent]);
      offset = 0;
      const [onTime] = await chA.sendMany([{ kind: 'message', text: 'on time' } as DraftEvent]);
      expect(await a.outbox.flush()).toMatchObject({ pending: 0 });
      const why = await a.store.get(`rr-invalid:${chA.id}:${early}`);
      expect(why).toBeDefined();
      expect(JSON.parse(new TextDecoder().decode(why)).problem).toMatch(/outside this device's clock/);
      expect(await a.store.get(`rr:${chA.id}:${early}`)).toBeUndefined();
      expect(await a.store.get(`rr:${chA.id}:${onTime}`)).toBeDefined();
      expect(await a.store.get(`rr-invalid:${chA.id}:${onTime}`)).toBeUndefined();
    } finally {
      a.close();
      b.close();
    }
  });

  it('a relay that logs an envelope dated before its own receipt is caught by the sender, whichever arrives first', async () => {
    for (const order of ['receipt first', 'entry first'] as const) {
      const w = inProcessRelay('bc-times-backdated-');
      let lie = false;
      let held: (() => void) | undefined;
      const a = await w.device('A', {
        wrap: async (input, init, res) => {
          if (!lie || init.method !== 'POST' || !input.endsWith('/envelopes')) return res;
          // The relay logs the envelope at its true time but signs a receipt a second later.
          const body = (await res.json()) as { receipt: string };
          const r = decodeRelayReceipt(body.receipt);
          if (!r.ok) throw new Error('receipt does not decode');
          const moved = { ...r.value.body, receivedAt: r.value.body.receivedAt + 1000 };
          body.receipt = encodeRelayReceipt(signRelayReceipt(moved, w.seed, ed25519Node));
          if (order === 'entry first') await new Promise<void>((resolve) => (held = resolve));
          return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
        },
      });
      const b = await w.device('B');
      try {
        const { chA } = await openChannel(a, b);
        lie = true;
        const [id] = await chA.sendMany([{ kind: 'message', text: 'dated' } as DraftEvent]);
        let flushed: Promise<unknown>;
        if (order === 'receipt first') {
          await a.outbox.flush();
          await chA.sync();
        } else {
          flushed = a.outbox.flush();
          // The post reached the relay; its answer is held while A syncs the logged entry.
          while (held === undefined) await new Promise((r) => setTimeout(r, 5));
          const seen = await chA.sync();
          expect(seen.map((r) => r.status === 'ok' && r.event.kind === 'message' && r.event.text)).toContain(
            'dated',
          );
          expect(await a.store.get(`rr-contradicted:${chA.id}:${id}`)).toBeUndefined();
          held();
          await flushed;
        }
        const why = await a.store.get(`rr-contradicted:${chA.id}:${id}`);
        expect(why, order).toBeDefined();
        const evidence = JSON.parse(new TextDecoder().decode(why));
        expect(evidence.problem).toMatch(/logged it dated .*, earlier/);
        // The evidence holds both relay-signed statements: the receipt and the entry as logged.
        const r = decodeRelayReceipt(evidence.receipt);
        const e = decodeEntry(fromBase64url(evidence.entry));
        expect(r.ok && e.ok && e.value.entry.receivedAt < r.value.body.receivedAt).toBe(true);
        // The receipt is kept as well: it is valid in itself.
        expect(await a.store.get(`rr:${chA.id}:${id}`)).toBeDefined();
        // An honest receipt leaves no evidence.
        lie = false;
        const [fair] = await chA.sendMany([{ kind: 'message', text: 'fair' } as DraftEvent]);
        await a.outbox.flush();
        await chA.sync();
        expect(await a.store.get(`rr-contradicted:${chA.id}:${fair}`)).toBeUndefined();
      } finally {
        a.close();
        b.close();
      }
    }
  });
});
