/**
 * The channel and transcript findings of the relay's security review, each as the attack it
 * stops, against a real relay (helpers' testRelay: createRelay + app.request) on SQLite and,
 * when it is up, on PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { type ChannelId, type SignedEnvelope, decodeEntry, fromBase64url } from '@backchannel/protocol';
import { decodeRelayReceipt, verifyRelayReceipt } from '@backchannel/protocol/attest';
import { cosign } from '@backchannel/protocol/transcript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../src/config.ts';
import {
  type AppendBody,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  type StoreKind,
  suite,
  type TestDevice,
  type TestParty,
  type TestRelay,
  testRelay,
  verifyAppend,
} from './helpers.ts';
import { servicesUp } from './services.ts';

const pgUp = await servicesUp('security-channels.test.ts', ['postgres']);

/** Signatures are checked inline (no worker thread per relay). */
const inline = { verifyThreads: 0 };

/** The raw text of an append answer (for byte comparisons) and its parsed body. */
async function appendRaw(r: TestRelay, env: SignedEnvelope): Promise<{ status: number; text: string }> {
  const res = await r.core.app.request(`/v1/channels/${env.body.channel}/envelopes`, {
    method: 'POST',
    headers: { 'content-type': 'application/cbor' },
    body: env.wire as Uint8Array<ArrayBuffer>,
  });
  return { status: res.status, text: await res.text() };
}

const kinds: StoreKind[] = pgUp ? ['sqlite', 'postgres'] : ['sqlite'];

describe.each(kinds)('%s', (kind) => {
  let r: TestRelay;
  let A: TestParty;
  let B: TestParty;
  let aAdmin: TestDevice;
  let aStaff: TestDevice;
  let bPrincipal: TestDevice;
  let bNegotiator: TestDevice;

  beforeAll(async () => {
    r = await testRelay(kind, inline);
    A = makeParty('A');
    B = makeParty('B');
    aAdmin = makeDevice(A, 'a-admin', 'admin');
    aStaff = makeDevice(A, 'a-staff', 'staff');
    bPrincipal = makeDevice(B, 'b-principal', 'principal');
    bNegotiator = makeDevice(B, 'b-negotiator', 'negotiator');
    await r.caller.publishParty(A, [aAdmin, aStaff]);
    await r.caller.publishParty(B, [bPrincipal, bNegotiator]);
  });
  afterAll(() => r.close());

  async function openChannel(): Promise<ChannelId> {
    const ch = newChannel();
    const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [aStaff, bPrincipal], [], [B.party]));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return ch;
  }

  describe('an opening commit cannot leave a membership the rules forbid', () => {
    it('refuses an opening commit that removes its creator, and the channel is not created', async () => {
      const ch = newChannel();
      const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [bPrincipal], [aAdmin]));
      expect(res.status).toBe(422);
      expect(res.body.error?.code).toBe('MEMBER_INVALID');
      // Nothing was logged: B's principal, which the commit would have left alone in it, is no member.
      const read = await r.caller.get(`/v1/channels/${ch}/entries`, bPrincipal);
      expect(read.body).toMatchObject({ error: { code: 'NOT_A_MEMBER' } });
      // The channel id is still free for a valid opening.
      expect((await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [bPrincipal]))).status).toBe(201);
    });

    it('refuses an opening commit whose only change is removing its creator', async () => {
      const ch = newChannel();
      const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [], [aAdmin]));
      expect(res.body.error?.code).toBe('MEMBER_INVALID');
    });

    it('a member may still remove itself later (the rule is about the opening only)', async () => {
      const ch = await openChannel();
      const res = await r.caller.append(aStaff, commit(aStaff, ch, 1, [], [aStaff]));
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    });
  });

  describe("staff and observers add no device, another party's neither", () => {
    it("refuses a staff member's commit that adds a third party's device, which then reads nothing", async () => {
      const ch = await openChannel();
      const C = makeParty('C');
      const c = makeDevice(C, 'c-admin', 'admin');
      await r.caller.publishParty(C, [c]);
      const res = await r.caller.append(aStaff, commit(aStaff, ch, 1, [c]));
      expect(res.status).toBe(403);
      expect(res.body.error?.code).toBe('ROLE_FORBIDDEN');
      expect((await r.caller.get(`/v1/channels/${ch}/entries`, c)).body).toMatchObject({
        error: { code: 'NOT_A_MEMBER' },
      });
      // A principal may (C has no device in the channel); then C's device reads.
      expect((await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [c]))).status).toBe(201);
      expect((await r.caller.get(`/v1/channels/${ch}/entries`, c)).status).toBe(200);
    });
  });

  describe('an idempotent retry is answered as of its first acceptance', () => {
    it('a retry after many later appends is byte-identical, with the first checkpoint and a proof that verifies', async () => {
      const ch = await openChannel();
      const env = envelope(aAdmin, ch);
      const first = await appendRaw(r, env);
      expect(first.status).toBe(201);
      const a1 = JSON.parse(first.text) as AppendBody;
      // Later appends: one at a time and in concurrent bursts (several batches, several checkpoints).
      for (let i = 0; i < 5; i++)
        expect((await r.caller.append(aStaff, envelope(aStaff, ch))).status).toBe(201);
      await Promise.all(Array.from({ length: 30 }, () => r.caller.append(aStaff, envelope(aStaff, ch))));

      const retry1 = await appendRaw(r, env);
      await Promise.all(Array.from({ length: 10 }, () => r.caller.append(aStaff, envelope(aStaff, ch))));
      const retry2 = await appendRaw(r, env);
      expect(retry1.status).toBe(200);
      expect(retry2.status).toBe(200);
      expect(retry2.text).toBe(retry1.text);
      const d = JSON.parse(retry1.text) as AppendBody;
      expect(d.duplicate).toBe(true);
      // Alone in its batch, the first answer differs from the retry's only in `duplicate`.
      expect(JSON.stringify({ ...d, duplicate: false })).toBe(first.text);
      expect(d).toMatchObject({
        seq: a1.seq,
        leafIndex: a1.seq,
        size: a1.seq + 1,
        checkpoint: a1.checkpoint,
      });
      const entries = (await r.caller.get(`/v1/channels/${ch}/entries?from=${d.seq}&limit=1`, aAdmin)).body
        .entries as { entry: string }[];
      expect(verifyAppend(r.core, d, fromBase64url((entries[0] as { entry: string }).entry))).toBe(true);
    });

    it('a retry of an append that was batched gets the batch checkpoint and a receipt signed alone', async () => {
      const ch = await openChannel();
      const envs = Array.from({ length: 8 }, () => envelope(aAdmin, ch));
      const firsts = await Promise.all(envs.map((e) => appendRaw(r, e)));
      const batched = firsts
        .map((f, i) => ({ a: JSON.parse(f.text) as AppendBody, env: envs[i] as SignedEnvelope }))
        .filter(({ a }) => {
          const rc = decodeRelayReceipt(a.receipt as string);
          return rc.ok && rc.value.batch !== undefined;
        });
      expect(batched.length).toBeGreaterThan(0);
      await Promise.all(Array.from({ length: 20 }, () => r.caller.append(aStaff, envelope(aStaff, ch))));
      for (const { a, env } of batched) {
        const again = await appendRaw(r, env);
        const d = JSON.parse(again.text) as AppendBody;
        expect(d).toMatchObject({ seq: a.seq, size: a.size, checkpoint: a.checkpoint, duplicate: true });
        expect(d.inclusionProof).toEqual(a.inclusionProof);
        const rc = decodeRelayReceipt(d.receipt as string);
        if (!rc.ok) throw new Error(rc.message);
        expect(rc.value.batch).toBeUndefined();
        expect(rc.value.body.seq).toBe(a.seq);
        expect(verifyRelayReceipt(rc.value, r.core.signer.publicKey, suite)).toBe(true);
        expect((await appendRaw(r, env)).text).toBe(again.text);
      }
    });

    it('retries in the same batch as the original get the same answer as the original', async () => {
      const ch = await openChannel();
      const env = envelope(aAdmin, ch);
      const [x, y] = await Promise.all([appendRaw(r, env), appendRaw(r, env)]);
      const [ax, ay] = [JSON.parse(x?.text ?? '{}') as AppendBody, JSON.parse(y?.text ?? '{}') as AppendBody];
      expect(ax.seq).toBe(ay.seq);
      expect([ax.duplicate, ay.duplicate].sort()).toEqual([false, true]);
      const later = await appendRaw(r, env);
      expect(later.text).toBe((ax.duplicate ? x : y)?.text);
    });
    it('retries racing their original through pipelined batches all get one answer', async () => {
      const ch = await openChannel();
      const env = envelope(aAdmin, ch);
      const load = Array.from({ length: 100 }, () => r.caller.append(aStaff, envelope(aStaff, ch)));
      const tries: Array<Promise<{ status: number; text: string }>> = [];
      for (let i = 0; i < 6; i++) {
        tries.push(appendRaw(r, env));
        await new Promise((res) => setImmediate(res));
      }
      await Promise.all(load);
      const got = await Promise.all(tries);
      const firsts = got.filter((g) => g.status === 201);
      const retries = got.filter((g) => g.status === 200);
      expect(firsts).toHaveLength(1);
      expect(retries).toHaveLength(5);
      for (const g of retries) expect(g.text).toBe(retries[0]?.text);
      const a = JSON.parse(firsts[0]?.text ?? '{}') as AppendBody;
      const d = JSON.parse(retries[0]?.text ?? '{}') as AppendBody;
      expect({ ...d, duplicate: false, receipt: '' }).toEqual({ ...a, receipt: '' });
      expect((await appendRaw(r, env)).text).toBe(retries[0]?.text);
    });
  });

  describe('witness cosignatures are capped per party per checkpoint', () => {
    it('refuses a fifth cosignature from one party with COSIGNATURES_PARTY_FULL; other parties keep theirs', async () => {
      const ch = await openChannel();
      const cp = await r.caller.get(`/v1/channels/${ch}/checkpoint`, aAdmin);
      const note = cp.body.checkpoint as string;
      const text = note.slice(0, note.indexOf('\n\n') + 1);
      const line = (i: number) => cosign(text, { name: `w${i}`, seed: randomBytes(32) }, 1_700_000_000);
      const post = (as: TestDevice, cosignature: string) =>
        r.caller.post(`/v1/channels/${ch}/cosignatures`, as, { size: 1, cosignature });
      const mine = [line(1), line(2), line(3), line(4)];
      // From two devices of one party: the cap is the party's.
      for (const [i, l] of mine.entries()) {
        const res = await post(i % 2 === 0 ? aAdmin : aStaff, l);
        expect(res.body).toEqual({ size: 1, cosignatures: i + 1 });
      }
      const fifth = await post(aStaff, line(5));
      expect(fifth.status).toBe(409);
      expect(fifth.body).toMatchObject({ error: { code: 'COSIGNATURES_PARTY_FULL' } });
      // Re-posting a stored line is still idempotent.
      expect((await post(aAdmin, mine[0] as string)).body).toEqual({ size: 1, cosignatures: 4 });
      // Another party is not crowded out.
      for (let i = 0; i < 4; i++) expect((await post(bPrincipal, line(10 + i))).status).toBe(200);
      expect((await post(bPrincipal, line(20))).body).toMatchObject({
        error: { code: 'COSIGNATURES_PARTY_FULL' },
      });
      const served = await r.caller.get(`/v1/channels/${ch}/checkpoint`, bPrincipal);
      expect(served.body.cosignatures as string[]).toHaveLength(8);
    });

    it('holds the cap under concurrent posts', async () => {
      const ch = await openChannel();
      const cp = await r.caller.get(`/v1/channels/${ch}/checkpoint`, aAdmin);
      const note = cp.body.checkpoint as string;
      const text = note.slice(0, note.indexOf('\n\n') + 1);
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          r.caller.post(`/v1/channels/${ch}/cosignatures`, i % 2 === 0 ? aAdmin : aStaff, {
            size: 1,
            cosignature: cosign(text, { name: `c${i}`, seed: randomBytes(32) }, 1_700_000_000),
          }),
        ),
      );
      expect(answers.filter((a) => a.status === 200)).toHaveLength(4);
      expect(answers.filter((a) => a.status === 409)).toHaveLength(8);
      const served = await r.caller.get(`/v1/channels/${ch}/checkpoint`, aAdmin);
      expect(served.body.cosignatures as string[]).toHaveLength(4);
    });
  });

  describe('entry pages are capped in bytes', () => {
    let small: TestRelay;
    beforeAll(async () => {
      small = await testRelay(kind, { ...inline, limits: { pageBytes: 6000 } });
      await small.caller.publishParty(A, [aAdmin, aStaff]);
      await small.caller.publishParty(B, [bPrincipal, bNegotiator]);
    });
    afterAll(() => small.close());

    it('cuts a page at limits.pageBytes, says where to resume, and always serves at least one entry', async () => {
      const ch = newChannel();
      expect((await small.caller.append(aAdmin, commit(aAdmin, ch, 0, [aStaff]))).status).toBe(201);
      for (let i = 0; i < 12; i++) {
        const res = await small.caller.append(aAdmin, envelope(aAdmin, ch, { mls: randomBytes(1500) }));
        expect(res.status).toBe(201);
      }
      // One entry larger than the whole page cap.
      const big = envelope(aAdmin, ch, { mls: randomBytes(20_000) });
      expect((await small.caller.append(aAdmin, big)).status).toBe(201);
      expect((await small.caller.append(aAdmin, envelope(aAdmin, ch))).status).toBe(201);

      const seen: number[] = [];
      let from = 0;
      let pages = 0;
      for (;;) {
        const page = await small.caller.get(`/v1/channels/${ch}/entries?from=${from}`, aStaff);
        expect(page.status).toBe(200);
        const rows = page.body.entries as { seq: number; entry: string }[];
        const next = page.body.next as number;
        if (rows.length === 0) {
          expect(next).toBe(from);
          break;
        }
        pages++;
        const bytes = rows.reduce((n, e) => n + e.entry.length, 0);
        if (rows.length > 1) expect(bytes).toBeLessThanOrEqual(6000);
        for (const e of rows) {
          expect(decodeEntry(fromBase64url(e.entry)).ok).toBe(true);
          seen.push(e.seq);
        }
        expect(next).toBe((rows.at(-1) as { seq: number }).seq + 1);
        from = next;
      }
      expect(seen).toEqual(Array.from({ length: 15 }, (_, i) => i));
      expect(pages).toBeGreaterThan(3);
      // The oversized entry came alone.
      const alone = await small.caller.get(`/v1/channels/${ch}/entries?from=13`, aStaff);
      expect((alone.body.entries as unknown[]).length).toBe(1);
      expect(alone.body.next).toBe(14);
    });

    it('a former member’s pages stop at its removal, and say so', async () => {
      const ch = newChannel();
      expect((await small.caller.append(aAdmin, commit(aAdmin, ch, 0, [aStaff]))).status).toBe(201);
      expect((await small.caller.append(aAdmin, commit(aAdmin, ch, 1, [], [aStaff]))).status).toBe(201);
      expect((await small.caller.append(aAdmin, envelope(aAdmin, ch, { epoch: 2 }))).status).toBe(201);
      const page = await small.caller.get(`/v1/channels/${ch}/entries?from=0`, aStaff);
      expect((page.body.entries as unknown[]).length).toBe(2);
      expect(page.body.next).toBe(2);
    });
  });

  describe('in-flight envelope bytes are capped', () => {
    it('answers 503 RELAY_BUSY (retryable) beyond limits.inFlightBytes, and loses no accepted append', async () => {
      const busy = await testRelay(kind, { ...inline, limits: { inFlightBytes: 64 * 1024 } });
      try {
        await busy.caller.publishParty(A, [aAdmin, aStaff]);
        const ch = newChannel();
        expect((await busy.caller.append(aAdmin, commit(aAdmin, ch, 0, [aStaff]))).status).toBe(201);
        const envs = Array.from({ length: 60 }, () => envelope(aAdmin, ch, { mls: randomBytes(8000) }));
        const answers = await Promise.all(envs.map((e) => busy.caller.append(aAdmin, e)));
        const refused = answers.filter((a) => a.status === 503);
        const accepted = answers.filter((a) => a.status === 201);
        expect(refused.length).toBeGreaterThan(0);
        expect(accepted.length).toBeGreaterThan(0);
        expect(accepted.length + refused.length).toBe(envs.length);
        for (const a of refused) {
          expect(a.body.error?.code).toBe('RELAY_BUSY');
          expect(a.headers.get('retry-after')).not.toBeNull();
          expect((a.body.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
        }
        // Every acknowledged append is in the log at its seq; the refused ones are not.
        const log = await readAll(busy, ch);
        const bySeq = new Map(log.map((e, seq) => [entryMsgId(e), seq] as const));
        envs.forEach((e, i) => {
          const a = answers[i] as { status: number; body: AppendBody };
          if (a.status === 201) expect(bySeq.get(e.body.msgId)).toBe(a.body.seq);
          else expect(bySeq.has(e.body.msgId)).toBe(false);
        });
        expect(log.length).toBe(1 + accepted.length);
        // Retried one at a time, the refused appends go through.
        for (const [i, e] of envs.entries()) {
          if ((answers[i] as { status: number }).status !== 503) continue;
          expect((await busy.caller.append(aAdmin, e)).status).toBe(201);
        }
        expect(busy.core.appender.queued).toBe(0);
        // Nothing stays counted once every append was answered: a burst below the cap goes through.
        const after = await Promise.all(
          Array.from({ length: 4 }, () =>
            busy.caller.append(aAdmin, envelope(aAdmin, ch, { mls: randomBytes(8000) })),
          ),
        );
        expect(after.map((a) => a.status)).toEqual([201, 201, 201, 201]);
      } finally {
        await busy.close();
      }
    });
  });
});

async function readAll(r: TestRelay, ch: ChannelId): Promise<Uint8Array[]> {
  const rows = await r.core.store.read((tx) => tx.getEntries(ch, 0, 100_000));
  return rows.map((row) => row.entry);
}

function entryMsgId(e: Uint8Array): string {
  const d = decodeEntry(e);
  if (!d.ok) throw new Error(d.message);
  return d.value.envelope.body.msgId;
}

describe('config', () => {
  it('validates limits.pageBytes and gives it a default', () => {
    expect(resolveConfig({}).limits.pageBytes).toBe(8 * 1024 * 1024);
    expect(() => resolveConfig({ limits: { pageBytes: 0 } })).toThrow(ConfigError);
    expect(() => resolveConfig({ limits: { pageBytes: 1.5 } })).toThrow(/limits\.pageBytes/);
  });

  it('validates limits.inFlightBytes and gives it a default', () => {
    expect(resolveConfig({}).limits.inFlightBytes).toBe(256 * 1024 * 1024);
    expect(() => resolveConfig({ limits: { inFlightBytes: -1 } })).toThrow(ConfigError);
    expect(() => resolveConfig({ limits: { inFlightBytes: 'lots' } as never })).toThrow(
      /limits\.inFlightBytes/,
    );
  });
});
