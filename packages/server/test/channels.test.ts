import { randomBytes } from 'node:crypto';
import { type ChannelId, decodeEntry, fromBase64url, toBase64url } from '@backchannel/protocol';
import {
  leafHash,
  parseNote,
  verifyConsistency,
  verifyInclusion,
  verifyNote,
} from '@backchannel/protocol/transcript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AppendBody,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  registration,
  revocationOf,
  suite,
  type TestDevice,
  type TestParty,
  type TestRelay,
  testRelay,
  verifyAppend,
} from './helpers.ts';
import type { Verifier } from '../src/verify-pool.node.ts';

let r: TestRelay;
let A: TestParty;
let B: TestParty;
let aAdmin: TestDevice;
let aStaff: TestDevice;
let aStaff2: TestDevice;
let bPrincipal: TestDevice;
let bNegotiator: TestDevice;

beforeAll(async () => {
  r = await testRelay();
  A = makeParty('A');
  B = makeParty('B');
  aAdmin = makeDevice(A, 'a-admin', 'admin');
  aStaff = makeDevice(A, 'a-staff', 'staff');
  aStaff2 = makeDevice(A, 'a-staff-2', 'staff');
  bPrincipal = makeDevice(B, 'b-principal', 'principal');
  bNegotiator = makeDevice(B, 'b-negotiator', 'negotiator');
  await r.caller.publishParty(A, [aAdmin, aStaff, aStaff2]);
  await r.caller.publishParty(B, [bPrincipal, bNegotiator]);
});
afterAll(() => r.close());

function entryOf(rows: { seq: number; entry: string }[], seq: number): Uint8Array {
  const row = rows.find((x) => x.seq === seq);
  if (row === undefined) throw new Error(`no entry ${seq}`);
  return fromBase64url(row.entry);
}

async function entries(ch: ChannelId, as: TestDevice, from = 0) {
  return r.caller.get(`/v1/channels/${ch}/entries?from=${from}`, as) as unknown as Promise<{
    status: number;
    body: {
      entries: { seq: number; entry: string }[];
      checkpoint: string;
      size: number;
      error?: { code: string };
    };
  }>;
}

/** A channel opened by A's admin with A's staff and B's principal. */
async function openChannel(): Promise<ChannelId> {
  const ch = newChannel();
  const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [aStaff, bPrincipal], [], [B.party]));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return ch;
}

describe('channel creation and the access list', () => {
  it('creates an unknown channel with a commit at epoch 0; the creator and the added devices are members', async () => {
    const ch = newChannel();
    const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [bPrincipal]));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ seq: 0, leafIndex: 0, size: 1, duplicate: false });
    expect((await entries(ch, bPrincipal)).status).toBe(200);
    expect((await entries(ch, aStaff)).body.error?.code).toBe('NOT_A_MEMBER');
  });

  it('refuses to create a channel with anything but a commit at epoch 0', async () => {
    const ch = newChannel();
    expect((await r.caller.append(aAdmin, envelope(aAdmin, ch, { epoch: 0 }))).body.error?.code).toBe(
      'NOT_A_MEMBER',
    );
    expect((await r.caller.append(aAdmin, commit(aAdmin, ch, 1))).body.error?.code).toBe('NOT_A_MEMBER');
  });

  it('refuses an append whose sender is revoked while its signature is checked, and logs nothing of it', async () => {
    // Envelope signatures wait at a gate until the revocation is in.
    let gated = false;
    let release: (() => void) | undefined;
    const verifier: Verifier = {
      verify: async (sig, msg, pk) => {
        if (gated) {
          gated = false;
          await new Promise<void>((r) => {
            release = r;
          });
        }
        return suite.verify(sig, msg, pk);
      },
      close: async () => {},
    };
    const rr = await testRelay('sqlite', {}, { verifier });
    try {
      const P = makeParty('P');
      const admin = makeDevice(P, 'p-admin', 'admin');
      const aide = makeDevice(P, 'p-aide', 'staff');
      await rr.caller.publishParty(P, [admin, aide]);
      const ch = newChannel();
      expect((await rr.caller.append(admin, commit(admin, ch, 0, [aide]))).status).toBe(201);
      gated = true;
      const posting = rr.caller.append(aide, envelope(aide, ch, { epoch: 1 }));
      for (let i = 0; release === undefined && i < 500; i++) await new Promise((r) => setTimeout(r, 5));
      expect(release).toBeDefined();
      const revoked = await rr.caller.post('/v1/revocations', undefined, {
        revocation: toBase64url(revocationOf(aide)),
      });
      expect(revoked.status).toBeLessThan(300);
      release?.();
      const res = await posting;
      expect(res.status).toBe(403);
      expect(res.body.error?.code).toBe('CERT_REVOKED');
      const log = await rr.caller.get(`/v1/channels/${ch}/entries`, admin);
      expect((log.body.entries as unknown[]).length).toBe(1); // the opening commit only
    } finally {
      await rr.close();
    }
  });

  it("refuses a staff device's opening commit, whoever it adds", async () => {
    for (const added of [bNegotiator, aStaff2]) {
      const no = await r.caller.append(aStaff, commit(aStaff, newChannel(), 0, [added]));
      expect(no.status).toBe(403);
      expect(no.body.error?.code).toBe('ROLE_FORBIDDEN');
    }
    // A negotiator reaches out (it adds another party's device), as an admin or principal does.
    expect((await r.caller.append(bNegotiator, commit(bNegotiator, newChannel(), 0, [aStaff]))).status).toBe(
      201,
    );
  });

  it("adds another party's devices only while that party has none in the channel (the outreach)", async () => {
    const ch = await openChannel();
    const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 1, [bNegotiator]));
    expect(res.body.error?.code).toBe('ROLE_FORBIDDEN');
    // B's principal adds its own colleague.
    const ok = await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [bNegotiator]));
    expect(ok.status).toBe(201);
    expect((await entries(ch, bNegotiator)).status).toBe(200);
  });

  it('removes devices only within the committer party (admin/principal) or itself', async () => {
    const ch = await openChannel();
    expect(
      (await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [], [aStaff]))).body.error?.code,
    ).toBe('ROLE_FORBIDDEN');
    expect((await r.caller.append(aStaff, commit(aStaff, ch, 1, [], [aAdmin]))).body.error?.code).toBe(
      'ROLE_FORBIDDEN',
    );
    expect((await r.caller.append(aStaff, commit(aStaff, ch, 1, [], [aStaff]))).status).toBe(201);
    expect((await r.caller.append(aAdmin, commit(aAdmin, ch, 2, [], [bPrincipal]))).body.error?.code).toBe(
      'ROLE_FORBIDDEN',
    );
  });

  it("removes another party's devices once its root revoked them, and re-seats that party once it has none left", async () => {
    // Party C's only device in the channel is lost; C recovers onto a new device and revokes it.
    const C = makeParty('C');
    const cLost = makeDevice(C, 'c-lost', 'admin');
    const cNew = makeDevice(C, 'c-new', 'admin');
    await r.caller.publishParty(C, [cLost]);
    await r.caller.post('/v1/devices', undefined, registration(cNew));
    const ch = newChannel();
    expect((await r.caller.append(bPrincipal, commit(bPrincipal, ch, 0, [cLost, bNegotiator]))).status).toBe(
      201,
    );
    // Not revoked yet: no one else may remove it, nor add another device of C beside it.
    const early = await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [cNew], [cLost]));
    expect(early.body.error?.code).toBe('ROLE_FORBIDDEN');
    expect((await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [cNew]))).body.error?.code).toBe(
      'ROLE_FORBIDDEN',
    );
    expect(
      (await r.caller.post('/v1/revocations', undefined, { revocation: toBase64url(revocationOf(cLost)) }))
        .status,
    ).toBe(200);
    // Revoked: a manager of B may remove it, but a negotiator may not; adding C's new device
    // alone is still refused while the revoked one is a member.
    expect(
      (await r.caller.append(bNegotiator, commit(bNegotiator, ch, 1, [], [cLost]))).body.error?.code,
    ).toBe('ROLE_FORBIDDEN');
    expect((await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [cNew]))).body.error?.code).toBe(
      'ROLE_FORBIDDEN',
    );
    const reseat = await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1, [cNew], [cLost]));
    expect(reseat.status, JSON.stringify(reseat.body)).toBe(201);
    expect((await entries(ch, cNew)).status).toBe(200);
    expect((await r.caller.append(cLost, envelope(cLost, ch, { epoch: 2 }))).status).toBe(403);
    // A device of B that is present and not revoked stays out of another party's reach.
    expect((await r.caller.append(cNew, commit(cNew, ch, 2, [], [bNegotiator]))).body.error?.code).toBe(
      'ROLE_FORBIDDEN',
    );
  });

  it('refuses to add an unregistered, a revoked or an already present device, and to remove a non-member', async () => {
    const ch = await openChannel();
    const stranger = makeDevice(A, 'never-registered', 'staff');
    const add = (d: TestDevice) => r.caller.append(aAdmin, commit(aAdmin, ch, 1, [d]));
    expect((await add(stranger)).body.error?.code).toBe('MEMBER_INVALID');
    expect((await add(aStaff)).body.error?.code).toBe('MEMBER_INVALID');
    expect((await r.caller.append(aAdmin, commit(aAdmin, ch, 1, [], [aStaff2]))).body.error?.code).toBe(
      'MEMBER_INVALID',
    );
    const gone = makeDevice(A, 'gone', 'staff');
    await r.caller.post('/v1/devices', undefined, registration(gone));
    expect(
      (await r.caller.post('/v1/revocations', undefined, { revocation: toBase64url(revocationOf(gone)) }))
        .status,
    ).toBe(200);
    expect((await add(gone)).body.error?.code).toBe('MEMBER_INVALID');
  });

  it('answers NOT_A_MEMBER alike for an unknown channel and for a channel of others', async () => {
    const ch = await openChannel();
    const unknown = await entries(newChannel(), bNegotiator);
    const others = await entries(ch, bNegotiator);
    expect(unknown.status).toBe(403);
    expect(others.status).toBe(403);
    expect(unknown.body).toEqual(others.body);
    const post = await r.caller.append(bNegotiator, envelope(bNegotiator, ch));
    expect(post.body.error?.code).toBe('NOT_A_MEMBER');
  });

  it('a removed device reads up to its removal, gets the checkpoint signed there, and cannot post', async () => {
    const ch = await openChannel();
    await r.caller.append(aAdmin, envelope(aAdmin, ch));
    const removal = await r.caller.append(aAdmin, commit(aAdmin, ch, 1, [], [aStaff]));
    expect(removal.status).toBe(201);
    const after = await r.caller.append(aAdmin, envelope(aAdmin, ch, { epoch: 2 }));
    expect(after.body.seq).toBe(3);
    const page = await entries(ch, aStaff);
    expect(page.status).toBe(200);
    expect(page.body.entries.map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(page.body.size).toBe(3);
    const note = parseNote(page.body.checkpoint);
    expect(note.ok && verifyNote(note.value, [r.core.signer.verifier]).ok).toBe(true);
    expect((await r.caller.get(`/v1/channels/${ch}/checkpoint`, aStaff)).body.size).toBe(3);
    expect(
      (await r.caller.get(`/v1/channels/${ch}/proof/inclusion?index=3&size=4`, aStaff)).body,
    ).toMatchObject({
      error: { code: 'RANGE_INVALID' },
    });
    expect((await r.caller.append(aStaff, envelope(aStaff, ch, { epoch: 2 }))).body.error?.code).toBe(
      'NOT_A_MEMBER',
    );
  });
});

describe('epochs (the relay as MLS Delivery Service)', () => {
  it('takes one commit per epoch and advances it; refuses stale and future commits', async () => {
    const ch = await openChannel();
    expect((await r.caller.append(aAdmin, commit(aAdmin, ch, 1))).status).toBe(201);
    const stale = await r.caller.append(bPrincipal, commit(bPrincipal, ch, 1));
    expect(stale.status).toBe(409);
    expect(stale.body.error?.code).toBe('EPOCH_STALE');
    expect((await r.caller.append(bPrincipal, commit(bPrincipal, ch, 5))).body.error?.code).toBe(
      'EPOCH_FUTURE',
    );
    expect((await r.caller.append(bPrincipal, commit(bPrincipal, ch, 2))).status).toBe(201);
  });

  it('accepts application messages of the current or an older epoch, refuses a future one', async () => {
    const ch = await openChannel();
    await r.caller.append(aAdmin, commit(aAdmin, ch, 1));
    expect((await r.caller.append(bPrincipal, envelope(bPrincipal, ch, { epoch: 1 }))).status).toBe(201);
    expect((await r.caller.append(bPrincipal, envelope(bPrincipal, ch, { epoch: 2 }))).status).toBe(201);
    const future = await r.caller.append(bPrincipal, envelope(bPrincipal, ch, { epoch: 3 }));
    expect(future.status).toBe(409);
    expect(future.body.error?.code).toBe('EPOCH_FUTURE');
  });

  it('orders concurrent commits: exactly one per epoch wins', async () => {
    const ch = await openChannel();
    const results = await Promise.all([
      r.caller.append(aAdmin, commit(aAdmin, ch, 1)),
      r.caller.append(bPrincipal, commit(bPrincipal, ch, 1)),
      r.caller.append(aStaff, commit(aStaff, ch, 1)),
    ]);
    expect(results.filter((x) => x.status === 201)).toHaveLength(1);
    expect(results.filter((x) => x.body.error?.code === 'EPOCH_STALE')).toHaveLength(2);
  });
});

describe('appends: idempotency, proofs, formats', () => {
  it('answers a retry as of its first acceptance (seq, checkpoint, proof); other bytes under the same msgId are refused', async () => {
    const ch = await openChannel();
    const m = envelope(bPrincipal, ch);
    const first = await r.caller.append(bPrincipal, m);
    await r.caller.append(aAdmin, envelope(aAdmin, ch));
    const retry = await r.caller.append(bPrincipal, m);
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({
      seq: first.body.seq,
      receivedAt: first.body.receivedAt,
      duplicate: true,
    });
    expect(retry.body.size).toBe(2);
    expect(retry.body.checkpoint).toBe(first.body.checkpoint);
    const e = entryOf((await entries(ch, aAdmin)).body.entries, first.body.seq);
    expect(verifyAppend(r.core, retry.body, e)).toBe(true);
    const other = envelope(bPrincipal, ch, { msgId: m.body.msgId });
    const dup = await r.caller.append(bPrincipal, other);
    expect(dup.status).toBe(409);
    expect(dup.body.error?.code).toBe('DUPLICATE_MESSAGE_ID');
    // To a non-member the taken msgId says nothing: the answer any envelope of it gets.
    const C = makeParty('C');
    const outsider = makeDevice(C, 'c-outsider', 'admin');
    await r.caller.publishParty(C, [outsider]);
    const probe = await r.caller.append(outsider, envelope(outsider, ch, { msgId: m.body.msgId }));
    expect(probe.status).toBe(403);
    expect(probe.body.error?.code).toBe('NOT_A_MEMBER');
    // A retry of a commit after the epoch moved on still gets its original answer.
    const c = commit(aAdmin, ch, 1);
    const c1 = await r.caller.append(aAdmin, c);
    await r.caller.append(aAdmin, commit(aAdmin, ch, 2));
    const c2 = await r.caller.append(aAdmin, c);
    expect(c2.body).toMatchObject({ seq: c1.body.seq, duplicate: true });
  });

  it('dedups two identical envelopes sent at once (same batch)', async () => {
    const ch = await openChannel();
    const m = envelope(bPrincipal, ch);
    // Two separately signed requests (an identical signature would be a replay).
    const post = (time: number) =>
      r.caller.call<AppendBody>('POST', `/v1/channels/${ch}/envelopes`, {
        as: bPrincipal,
        json: { envelope: toBase64url(m.wire) },
        time,
      });
    const now = Date.now();
    const [x, y] = await Promise.all([post(now), post(now + 1)]);
    expect(x.body.seq).toBe(y.body.seq);
    expect([x.body.duplicate, y.body.duplicate].sort()).toEqual([false, true]);
  });

  it('accepts raw CBOR envelopes (application/cbor)', async () => {
    const ch = await openChannel();
    const m = envelope(bPrincipal, ch);
    const res = await r.caller.call<AppendBody>('POST', `/v1/channels/${ch}/envelopes`, {
      as: bPrincipal,
      raw: m.wire,
      contentType: 'application/cbor',
    });
    expect(res.status).toBe(201);
    expect(res.body.seq).toBe(1);
  });

  it('accepts an unsigned post authenticated by the envelope signature alone (PROTOCOL.md §11)', async () => {
    const ch = await openChannel();
    const m = envelope(bPrincipal, ch);
    const res = await r.caller.call<AppendBody>('POST', `/v1/channels/${ch}/envelopes`, {
      json: { envelope: toBase64url(m.wire) },
    });
    expect(res.status).toBe(201);
    const forged = envelope(bPrincipal, ch, { sender: aAdmin.device });
    const bad = await r.caller.call<AppendBody>('POST', `/v1/channels/${ch}/envelopes`, {
      json: { envelope: toBase64url(forged.wire) },
    });
    expect(bad.body.error?.code).toBe('SIG_INVALID');
  });

  it('proves every answer: inclusion in the signed checkpoint, consistency between checkpoints', async () => {
    const ch = await openChannel();
    const answers: AppendBody[] = [];
    for (let i = 0; i < 20; i++) answers.push((await r.caller.append(aAdmin, envelope(aAdmin, ch))).body);
    const rows = (await entries(ch, bPrincipal)).body.entries;
    for (const a of answers) expect(verifyAppend(r.core, a, entryOf(rows, a.seq))).toBe(true);
    const cp = await r.caller.get(`/v1/channels/${ch}/checkpoint`, bPrincipal);
    expect(cp.body.size).toBe(21);
    const rootOf = (note: string) => Buffer.from(note.split('\n')[2] as string, 'base64');
    const first = answers[3] as AppendBody;
    const proof = await r.caller.get(
      `/v1/channels/${ch}/proof/consistency?from=${first.size}&to=21`,
      bPrincipal,
    );
    expect(proof.status).toBe(200);
    expect(
      verifyConsistency(
        first.size,
        21,
        (proof.body.proof as string[]).map((p) => fromBase64url(p)),
        rootOf(first.checkpoint),
        rootOf(cp.body.checkpoint as string),
      ),
    ).toBe(true);
    const inc = await r.caller.get(`/v1/channels/${ch}/proof/inclusion?index=7&size=15`, bPrincipal);
    const at15 = await r.caller.get(`/v1/channels/${ch}/checkpoints/15`, bPrincipal);
    expect(at15.status).toBe(200);
    expect(
      verifyInclusion(
        leafHash(entryOf(rows, 7)),
        7,
        15,
        (inc.body.proof as string[]).map((p) => fromBase64url(p)),
        rootOf(at15.body.checkpoint as string),
      ),
    ).toBe(true);
    expect((await r.caller.get(`/v1/channels/${ch}/checkpoints/99`, bPrincipal)).body).toMatchObject({
      error: { code: 'CHECKPOINT_NOT_FOUND' },
    });
    expect((await r.caller.get(`/v1/channels/${ch}/proof/consistency?from=5&to=99`, bPrincipal)).status).toBe(
      400,
    );
  });

  it('pages entries with from and limit, each a canonical LogEntry of this channel', async () => {
    const ch = await openChannel();
    for (let i = 0; i < 5; i++) await r.caller.append(aAdmin, envelope(aAdmin, ch));
    const page = await r.caller.get(`/v1/channels/${ch}/entries?from=2&limit=2`, aStaff);
    const rows = page.body.entries as { seq: number; entry: string }[];
    expect(rows.map((x) => x.seq)).toEqual([2, 3]);
    const d = decodeEntry(fromBase64url(rows[0]?.entry as string));
    expect(d.ok && d.value.entry.channel === ch && d.value.entry.seq === 2).toBe(true);
    expect((await r.caller.get(`/v1/channels/${ch}/entries?limit=5000`, aStaff)).status).toBe(200);
    expect((await r.caller.get(`/v1/channels/${ch}/entries?from=-1`, aStaff)).body).toMatchObject({
      error: { code: 'REQUEST_INVALID' },
    });
  });

  it('keeps the log clock monotonic and in receivedAt order', async () => {
    const ch = await openChannel();
    const times: number[] = [];
    for (let i = 0; i < 5; i++)
      times.push((await r.caller.append(aAdmin, envelope(aAdmin, ch))).body.receivedAt);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
  });
});

describe('inboxes and cosignatures', () => {
  it("records envelopes addressed to a party in that party's inbox", async () => {
    const ch = newChannel();
    await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [bPrincipal], [], [B.party]));
    const welcome = envelope(aAdmin, ch, { kind: 'welcome', epoch: 1, to: [B.party, B.party] });
    expect((await r.caller.append(aAdmin, welcome)).status).toBe(201);
    const inbox = await r.caller.get('/v1/inbox?after=0', bNegotiator);
    const items = inbox.body.items as { cursor: number; channel: string; seq: number; entry: string }[];
    const mine = items.filter((i) => i.channel === ch);
    expect(mine.map((i) => i.seq)).toEqual([0, 1]);
    const last = mine[1]?.cursor as number;
    const later = await r.caller.get(`/v1/inbox?after=${last}`, bNegotiator);
    expect((later.body.items as { channel: string }[]).filter((i) => i.channel === ch)).toEqual([]);
    const aInbox = await r.caller.get('/v1/inbox', aStaff);
    expect((aInbox.body.items as { channel: string }[]).filter((i) => i.channel === ch)).toEqual([]);
  });

  it('stores syntactically valid cosignature lines for an issued checkpoint and serves them', async () => {
    const ch = await openChannel();
    const cp = await r.caller.get(`/v1/channels/${ch}/checkpoint`, aAdmin);
    const { cosign } = await import('@backchannel/protocol/transcript');
    const note = cp.body.checkpoint as string;
    const text = note.slice(0, note.indexOf('\n\n') + 1);
    const line = cosign(text, { name: 'witness.a', seed: randomBytes(32) }, 1_700_000_000);
    const put = await r.caller.post(`/v1/channels/${ch}/cosignatures`, aAdmin, {
      size: 1,
      cosignature: line,
    });
    expect(put.body).toEqual({ size: 1, cosignatures: 1 });
    expect(
      (await r.caller.post(`/v1/channels/${ch}/cosignatures`, aAdmin, { size: 1, cosignature: line })).body,
    ).toEqual({
      size: 1,
      cosignatures: 1,
    });
    expect((await r.caller.get(`/v1/channels/${ch}/checkpoint`, bPrincipal)).body.cosignatures).toEqual([
      line,
    ]);
    expect(
      (await r.caller.post(`/v1/channels/${ch}/cosignatures`, aAdmin, { size: 1, cosignature: 'nonsense' }))
        .body,
    ).toMatchObject({ error: { code: 'COSIGNATURE_INVALID' } });
    expect(
      (await r.caller.post(`/v1/channels/${ch}/cosignatures`, aAdmin, { size: 5, cosignature: line })).body,
    ).toMatchObject({ error: { code: 'CHECKPOINT_NOT_FOUND' } });
    expect(
      (await r.caller.post(`/v1/channels/${ch}/cosignatures`, bNegotiator, { size: 1, cosignature: line }))
        .body,
    ).toMatchObject({ error: { code: 'NOT_A_MEMBER' } });
  });
});
