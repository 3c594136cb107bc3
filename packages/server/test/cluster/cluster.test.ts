/**
 * Two relay nodes on one PostgreSQL schema and one NATS subject (the real services of this
 * machine), in process: cross-node live delivery, one total order per channel under concurrent
 * writers on both nodes, consistent checkpoints, and catch-up from the store when NATS loses
 * messages.
 */
import {
  type ChannelId,
  decodeEntry,
  encodeDeviceCertificate,
  fromBase64url,
  issueDeviceCertificate,
  toBase64url,
} from '@backchannel/protocol';
import { leafHash, rootOfLeaves, verifyConsistency } from '@backchannel/protocol/transcript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFanout, encodeFanout } from '../../src/fanout/fanout-codec.ts';
import { openPostgresStore } from '../../src/store/postgres/pg-store.ts';
import type { WriteTx } from '../../src/store/store.ts';
import {
  type AppendBody,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  revocationOf,
  seedOf,
  type TestDevice,
  verifyAppend,
} from '../helpers.ts';
import { dropSchema, PG_URL, servicesUp, uniqueName } from '../services.ts';
import { CuttableProxy, HubClient, type Node, startNode } from './cluster.ts';

const up = await servicesUp('cluster/cluster.test.ts', ['postgres', 'nats']);
const schema = uniqueName('bc_cluster');
const subject = `bctest.${uniqueName('cluster')}`;
const seed = seedOf('cluster relay key');

const rootOf = (note: string) => Buffer.from(note.split('\n')[2] as string, 'base64');
const sizeOf = (note: string) => Number(note.split('\n')[1]);

/** A write made straight into PostgreSQL, as another relay node whose fan-out message is lost. */
async function throughAnotherNode(fn: (tx: WriteTx) => Promise<unknown>): Promise<void> {
  const other = await openPostgresStore({ url: PG_URL, schema, max: 1 });
  try {
    await other.write(fn);
  } finally {
    await other.close();
  }
}

describe.skipIf(!up)('two relay nodes on PostgreSQL + NATS', () => {
  let n1: Node;
  let n2: Node;
  const A = makeParty('A');
  const B = makeParty('B');
  const a = makeDevice(A, 'a', 'admin');
  const b = makeDevice(B, 'b', 'principal');

  beforeAll(async () => {
    n1 = await startNode({ schema, subject, seed });
    n2 = await startNode({ schema, subject, seed });
    await n1.caller.publishParty(A, [a]);
    await n2.caller.publishParty(B, [b]);
  });

  afterAll(async () => {
    await n1?.close();
    await n2?.close();
    if (up) await dropSchema(schema);
  });

  async function openChannel(): Promise<ChannelId> {
    const ch = newChannel();
    const r = await n1.caller.append(a, commit(a, ch, 0, [b]));
    expect(r.status).toBe(201);
    return ch;
  }

  async function entriesOf(node: Node, ch: ChannelId, dev: TestDevice) {
    const r = await node.caller.get(`/v1/channels/${ch}/entries?from=0`, dev);
    expect(r.status).toBe(200);
    return r.body as { entries: Array<{ seq: number; entry: string }>; checkpoint: string; size: number };
  }

  it('a message posted to node 1 is delivered live to a WebSocket subscriber on node 2', async () => {
    const ch = await openChannel();
    const ws = new HubClient(n2.core);
    await ws.auth(b);
    await ws.subscribe(ch, 0);
    await ws.waitForEntries(ch, 1);
    const posted = await n1.caller.append(a, envelope(a, ch));
    expect(posted.body.seq).toBe(1);
    expect(await ws.waitForEntries(ch, 2)).toEqual([0, 1]);
    // The entry came over NATS (node 2 did not write it), with the checkpoint node 1 signed.
    expect(n2.nats.stats.received).toBeGreaterThan(0);
    const cp = await ws.waitFor((f) => f.type === 'checkpoint' && f.size === 2, 'checkpoint at 2');
    expect(cp.checkpoint).toBe(posted.body.checkpoint);
    ws.close();
  });

  it('concurrent posts to one channel through both nodes form one gap-free order with consistent checkpoints', async () => {
    const ch = await openChannel();
    const w1 = new HubClient(n1.core);
    const w2 = new HubClient(n2.core);
    await w1.auth(a);
    await w2.auth(b);
    await w1.subscribe(ch, 0);
    await w2.subscribe(ch, 0);
    const perNode = 60;
    const sends: Array<Promise<{ node: 1 | 2; body: AppendBody; msgId: string }>> = [];
    for (let i = 0; i < perNode; i++) {
      const e1 = envelope(a, ch);
      const e2 = envelope(b, ch);
      sends.push(n1.caller.append(a, e1).then((r) => ({ node: 1, body: r.body, msgId: e1.body.msgId })));
      sends.push(n2.caller.append(b, e2).then((r) => ({ node: 2, body: r.body, msgId: e2.body.msgId })));
    }
    const answers = await Promise.all(sends);
    for (const x of answers) expect(x.body.error, JSON.stringify(x.body)).toBeUndefined();
    const total = 1 + 2 * perNode;
    // One total order: every seq from 1 to total-1 exactly once, across both nodes' answers.
    expect(answers.map((x) => x.body.seq).sort((p, q) => p - q)).toEqual(
      Array.from({ length: total - 1 }, (_, i) => i + 1),
    );
    expect(new Set(answers.map((x) => x.node)).size).toBe(2);
    // Both nodes read the same log; every answer's proof verifies against the checkpoint it got.
    const l1 = await entriesOf(n1, ch, a);
    const l2 = await entriesOf(n2, ch, b);
    expect(l1.size).toBe(total);
    expect(l2.entries).toEqual(l1.entries);
    const rows = l1.entries.map((e) => fromBase64url(e.entry));
    rows.forEach((row, i) => {
      const d = decodeEntry(row);
      expect(d.ok && d.value.entry.seq).toBe(i);
    });
    for (const x of answers) {
      const core = x.node === 1 ? n1.core : n2.core;
      expect(verifyAppend(core, x.body, rows[x.body.seq] as Uint8Array)).toBe(true);
    }
    // Checkpoints signed by either node are consistent with each other and with the final root.
    const finalRoot = rootOfLeaves(rows.map((r) => leafHash(r)));
    expect(rootOf(l1.checkpoint).equals(Buffer.from(finalRoot))).toBe(true);
    const notes = [...new Set(answers.map((x) => x.body.checkpoint))];
    for (const note of notes) {
      const from = sizeOf(note);
      const p = await n2.caller.get(`/v1/channels/${ch}/proof/consistency?from=${from}&to=${total}`, b);
      expect(p.status).toBe(200);
      const proof = (p.body.proof as string[]).map((h) => fromBase64url(h));
      expect(verifyConsistency(from, total, proof, rootOf(note), finalRoot)).toBe(true);
    }
    // Live subscribers on both nodes saw every entry once, in order.
    const all = Array.from({ length: total }, (_, i) => i);
    expect(await w1.waitForEntries(ch, total)).toEqual(all);
    expect(await w2.waitForEntries(ch, total)).toEqual(all);
    w1.close();
    w2.close();
  }, 60_000);

  it('a retry through the other node gets the original answer (idempotent across nodes)', async () => {
    const ch = await openChannel();
    const env = envelope(a, ch);
    const first = await n1.caller.append(a, env);
    const again = await n2.caller.append(a, env);
    expect(first.status).toBe(201);
    expect(again.body).toMatchObject({ seq: first.body.seq, duplicate: true });
    expect((await entriesOf(n2, ch, b)).size).toBe(2);
  });

  it('an access-list change committed on one node is enforced at once by the other', async () => {
    const ch = await openChannel();
    // Node 2 has the channel's members cached after this append.
    expect((await n2.caller.append(b, envelope(b, ch))).status).toBe(201);
    // b leaves through node 1 (a commit: epoch 1 → 2).
    expect((await n1.caller.append(b, commit(b, ch, 1, [], [b]))).status).toBe(201);
    const refused = await n2.caller.append(b, envelope(b, ch, { epoch: 2 }));
    expect(refused.body.error?.code).toBe('NOT_A_MEMBER');
    // a's next message through node 2 gets the next seq after node 1's commit.
    expect((await n2.caller.append(a, envelope(a, ch, { epoch: 2 }))).body.seq).toBe(3);
  });

  it('a node that missed NATS messages catches up from the store, on the next message or on resync', async () => {
    const ch = await openChannel();
    const ws = new HubClient(n2.core);
    await ws.auth(b);
    await ws.subscribe(ch, 0);
    await ws.waitForEntries(ch, 1);
    // Node 1's next three batches never reach NATS.
    n1.fanout.lossy = true;
    for (let i = 0; i < 3; i++) expect((await n1.caller.append(a, envelope(a, ch))).status).toBe(201);
    n1.fanout.lossy = false;
    // The next one does: node 2 sees seq 4 while its subscriber waits for 1, and reads 1..3 from PostgreSQL.
    await n1.caller.append(a, envelope(a, ch));
    expect(await ws.waitForEntries(ch, 5)).toEqual([0, 1, 2, 3, 4]);
    // Lost again, and nothing follows: a resync (what a NATS reconnect triggers) fills the gap.
    n1.fanout.lossy = true;
    await n1.caller.append(a, envelope(a, ch));
    await n1.caller.append(a, envelope(a, ch));
    n1.fanout.lossy = false;
    n2.core.hub.resync();
    expect(await ws.waitForEntries(ch, 7)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    ws.close();
  });

  it('a batch too large for one NATS message arrives as a hint and the subscriber reads it from the store', async () => {
    const ch = await openChannel();
    const ws = new HubClient(n2.core);
    await ws.auth(b);
    await ws.subscribe(ch, 0);
    await ws.waitForEntries(ch, 1);
    n1.fanout.lossy = true;
    const posted = await n1.caller.append(a, envelope(a, ch));
    const posted2 = await n1.caller.append(a, envelope(a, ch));
    n1.fanout.lossy = false;
    // What encodeFanout sends for a channel over the transport's limit: the checkpoint, no entries.
    const [hint] = encodeFanout(
      'node-1',
      {
        channels: [{ channel: ch, entries: [], checkpoint: { size: 3, note: posted2.body.checkpoint } }],
        inbox: [],
      },
      1 << 20,
    );
    n2.core.hub.publish(decodeFanout(hint as Uint8Array).message);
    expect(await ws.waitForEntries(ch, 3)).toEqual([0, 1, 2]);
    expect(posted.body.seq).toBe(1);
    ws.close();
  });

  it('a device revoked through node 1 is cut off on node 2 at once (sockets closed, requests refused)', async () => {
    const C = makeParty('C');
    const c1 = makeDevice(C, 'c1', 'staff');
    await n1.caller.publishParty(C, [c1]);
    const ws = new HubClient(n2.core);
    await ws.auth(c1);
    // Node 2 has c1's record cached now (authentication read it).
    expect((await n2.caller.get('/v1/inbox', c1)).status).toBe(200);
    const r = await n1.caller.post('/v1/revocations', undefined, {
      revocation: toBase64url(revocationOf(c1)),
    });
    expect(r.status).toBe(200);
    const closed = await ws.waitFor(
      (f) => f.type === 'error' && f.code === 'CERT_REVOKED',
      'revocation notice',
    );
    expect(closed.code).toBe('CERT_REVOKED');
    const refused = await n2.caller.get('/v1/inbox', c1);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { code: 'CERT_REVOKED' } });
  });

  it("a revocation another node wrote, its fan-out lost, still stops the device's appends here", async () => {
    const C = makeParty('C2');
    const c = makeDevice(C, 'c', 'admin');
    await n1.caller.publishParty(C, [c]);
    const ch = newChannel();
    // Node 2 authenticates c for this post: it holds c's record now (for its directory's TTL).
    expect((await n2.caller.append(c, commit(c, ch, 0, [b]))).status).toBe(201);
    // c also reads the channel live on node 2 (its socket re-reads c's record every 15 s only).
    const ws = new HubClient(n2.core);
    await ws.auth(c);
    await ws.subscribe(ch, 0);
    await ws.waitForEntries(ch, 1);
    // Another node records the revocation, and its fan-out message never reaches node 2.
    await throughAnotherNode((tx) =>
      tx.putRevocation({
        party: C.party,
        device: c.device,
        revokedAt: Date.now() - 1_000,
        revocation: revocationOf(c),
      }),
    );
    const refused = await n2.caller.append(c, envelope(c, ch));
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { code: 'CERT_REVOKED' } });
    // Nothing of it was logged: the channel holds its opening commit only.
    const log = await entriesOf(n2, ch, b);
    expect(log.size).toBe(1);
    // What the batch read, node 2 now acts on: c's socket is closed at once, not 15 s later.
    const deadline = Date.now() + 3_000;
    while (ws.closed === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(ws.closed).toBe(4403);
  });

  it("a revocation another node wrote, its fan-out lost, ends the device's requests here within auth.deviceCacheMs", async () => {
    const n3 = await startNode({ schema, subject, seed, config: { auth: { deviceCacheMs: 300 } } });
    try {
      const F = makeParty('F2');
      const f = makeDevice(F, 'f', 'admin');
      await n1.caller.publishParty(F, [f]);
      // Node 3 authenticates f and keeps its record (for 300 ms here; 5 s by default on a cluster).
      expect((await n3.caller.get('/v1/inbox', f)).status).toBe(200);
      await throughAnotherNode((tx) =>
        tx.putRevocation({
          party: F.party,
          device: f.device,
          revokedAt: Date.now() - 1_000,
          revocation: revocationOf(f),
        }),
      );
      await new Promise((r) => setTimeout(r, 400));
      const refused = await n3.caller.get('/v1/inbox', f);
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ error: { code: 'CERT_REVOKED' } });
    } finally {
      await n3.close();
    }
  });

  it("a role changed through another node, its fan-out lost, is the role this node's append batch goes by", async () => {
    const E = makeParty('E2');
    const e = makeDevice(E, 'e', 'admin');
    const e2 = makeDevice(E, 'e2', 'staff');
    await n1.caller.publishParty(E, [e, e2]);
    const ch = newChannel();
    // Node 2 authenticates e as an admin for this post, and keeps that record (its directory's TTL).
    expect((await n2.caller.append(e, commit(e, ch, 0, [e2]))).status).toBe(201);
    // E's root demotes e to staff (a new certificate for the same key), written through another
    // node whose fan-out message never reaches node 2.
    const now = Date.now();
    const demoted = issueDeviceCertificate({
      rootSecretKey: E.root.secretKey,
      rootPublicKey: E.root.publicKey,
      devicePublicKey: e.kp.publicKey,
      name: 'e',
      role: 'staff',
      notBefore: now,
      notAfter: now + 3_600_000,
    });
    await throughAnotherNode((tx) =>
      tx.putDevice({
        device: e.device,
        party: E.party,
        publicKey: e.kp.publicKey,
        role: 'staff',
        notBefore: now,
        notAfter: now + 3_600_000,
        certificate: encodeDeviceCertificate(demoted),
      }),
    );
    // Removing a device takes a manager: staff may not, whatever node 2's directory still holds.
    const refused = await n2.caller.append(e, commit(e, ch, 1, [], [e2]));
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { code: 'ROLE_FORBIDDEN' } });
    expect((refused.body as { error: { message: string } }).error.message).toContain('staff');
    expect((await entriesOf(n2, ch, e)).size).toBe(1);
  });

  it('a signed request used on one node is a replay on the other (the cluster shares its replay record)', async () => {
    const D = makeParty('D');
    const d = makeDevice(D, 'd', 'staff');
    await n1.caller.publishParty(D, [d]);
    // The same request, signed once: both nodes go by one relay name and one clock window.
    const time = Date.now();
    const first = await n1.caller.call('GET', '/v1/inbox', { as: d, time });
    expect(first.status).toBe(200);
    const replayed = await n2.caller.call('GET', '/v1/inbox', { as: d, time });
    expect(replayed.status).toBe(401);
    expect(replayed.body).toMatchObject({ error: { code: 'AUTH_REPLAY' } });
    // The other way round, and for a WebSocket session's authentication too.
    const t2 = time + 1;
    expect((await n2.caller.call('GET', '/v1/inbox', { as: d, time: t2 })).status).toBe(200);
    expect((await n1.caller.call('GET', '/v1/inbox', { as: d, time: t2 })).status).toBe(401);
    const t3 = time + 2;
    const ws1 = new HubClient(n1.core);
    await ws1.auth(d, t3);
    const ws2 = new HubClient(n2.core);
    const refused = await ws2.authFails(d, t3);
    expect(refused.code).toBe('AUTH_REPLAY');
    // Fresh signatures still pass on either node.
    expect((await n2.caller.get('/v1/inbox', d)).status).toBe(200);
    // An envelope post is idempotent: its byte-identical replay on the other node gets the
    // original answer (it skips the cluster-wide record: no database round trip per post).
    const ch = await openChannel();
    const env = envelope(a, ch);
    const path = `/v1/channels/${ch}/envelopes`;
    const json = { envelope: toBase64url(env.wire) };
    const t4 = Date.now();
    const posted = await n1.caller.call<AppendBody>('POST', path, { as: a, json, time: t4 });
    expect(posted.status).toBe(201);
    const again = await n2.caller.call<AppendBody>('POST', path, { as: a, json, time: t4 });
    expect(again.body).toMatchObject({ seq: posted.body.seq, duplicate: true });
  });

  it('a request refused for its rate limit is not recorded as used (the limit is checked before the shared record)', async () => {
    const limited = await startNode({
      schema,
      subject,
      seed,
      config: { rateLimits: { device: { perSecond: 0.001, burst: 1 } } },
    });
    try {
      const E = makeParty('E');
      const e = makeDevice(E, 'e', 'staff');
      await n1.caller.publishParty(E, [e]);
      expect((await limited.caller.get('/v1/inbox', e)).status).toBe(200);
      const time = Date.now() + 1;
      const over = await limited.caller.call('GET', '/v1/inbox', { as: e, time });
      expect(over.status).toBe(429);
      expect(over.body).toMatchObject({ error: { code: 'RATE_LIMITED' } });
      // Refused before it was served, so it wrote nothing to the cluster's record: the same signed
      // request is served once by a node with room, and only once.
      expect((await n2.caller.call('GET', '/v1/inbox', { as: e, time })).status).toBe(200);
      expect((await n1.caller.call('GET', '/v1/inbox', { as: e, time })).status).toBe(401);
    } finally {
      await limited.close();
    }
  });

  it('refuses to join a node whose checkpoint key differs from the cluster’s, unless it rotates from it', async () => {
    const store = await openPostgresStore({ url: PG_URL, schema, max: 1 });
    try {
      expect(await store.claimCheckpointKey(n1.core.signer.vkey)).toEqual({ ok: true });
      const other = await store.claimCheckpointKey('other+00000000+AAAA');
      expect(other).toEqual({ ok: false, recorded: n1.core.signer.vkey });
      // A node started for a key rotation (with the recorded key as its previous one) moves the
      // record; a node still on the old key then refuses to join, until rotated back the same way.
      expect(await store.claimCheckpointKey('other+00000000+AAAA', n1.core.signer.vkey)).toEqual({
        ok: true,
      });
      expect(await store.claimCheckpointKey(n1.core.signer.vkey)).toEqual({
        ok: false,
        recorded: 'other+00000000+AAAA',
      });
      // Only from the recorded key: a claim naming another previous key moves nothing.
      expect(await store.claimCheckpointKey('third+00000000+AAAA', 'fourth+00000000+AAAA')).toEqual({
        ok: false,
        recorded: 'other+00000000+AAAA',
      });
      expect(await store.claimCheckpointKey(n1.core.signer.vkey, 'other+00000000+AAAA')).toEqual({
        ok: true,
      });
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(!up)('a node cut off from PostgreSQL', () => {
  /** A proxy in front of the test database, and the database's URL through it. */
  async function proxiedPg(): Promise<{ proxy: CuttableProxy; pg: URL }> {
    const pg = new URL(PG_URL);
    const proxy = new CuttableProxy({ host: pg.hostname, port: Number(pg.port) });
    pg.host = `127.0.0.1:${await proxy.listen()}`;
    return { proxy, pg };
  }

  /** The request, retried every 250 ms (at most `tries` more times) while it answers 503. */
  async function untilAvailable<T extends { status: number }>(
    request: () => Promise<T>,
    tries: number,
  ): Promise<T> {
    let r = await request();
    for (let i = 0; i < tries && r.status === 503; i++) {
      await new Promise((done) => setTimeout(done, 250));
      r = await request();
    }
    return r;
  }

  it('answers writes with STORE_UNAVAILABLE (503, Retry-After) and resumes when the database is back', async () => {
    const s = uniqueName('bc_cut');
    const { proxy, pg } = await proxiedPg();
    const node = await startNode({
      schema: s,
      subject: `bctest.${uniqueName('cut')}`,
      seed,
      pgUrl: pg.toString(),
      connectTimeoutS: 1,
    });
    try {
      const P = makeParty('P');
      const d = makeDevice(P, 'd', 'admin');
      await node.caller.publishParty(P, [d]);
      const ch = newChannel();
      expect((await node.caller.append(d, commit(d, ch, 0))).status).toBe(201);
      proxy.cut();
      const env = envelope(d, ch);
      const failed = await node.caller.append(d, env);
      expect(failed.status).toBe(503);
      expect(failed.body.error?.code).toBe('STORE_UNAVAILABLE');
      expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(JSON.stringify(failed.body)).not.toMatch(/127\.0\.0\.1|postgres|stack/i);
      // While the proxy accepts connections and drops them, postgres.js would retry without end:
      // every later request fails within the connect timeout instead of waiting for the outage.
      for (let i = 0; i < 2; i++) {
        const next = await node.caller.append(d, envelope(d, ch));
        expect(next.body.error?.code).toBe('STORE_UNAVAILABLE');
      }
      // A WebSocket session cannot be authenticated either (its signature is recorded for the
      // whole cluster): the socket closes with 1013, try again later, not as a failed login.
      const ws = new HubClient(node.core);
      const wsRefused = await ws.authFails(d, Date.now());
      expect(wsRefused.code).toBe('STORE_UNAVAILABLE');
      await ws.waitFor(() => false, 'the close').catch(() => undefined);
      expect(ws.closed).toBe(1013);
      proxy.heal();
      // The client retries the same envelope: it lands once, right after the commit.
      const again = await untilAvailable(() => node.caller.append(d, env), 20);
      expect(again.status).toBe(201);
      expect(again.body.seq).toBe(1);
      expect((await node.caller.append(d, envelope(d, ch))).body.seq).toBe(2);
      const reads = await node.caller.get(`/v1/channels/${ch}/entries?from=0`, d);
      expect(reads.body.size).toBe(3);
    } finally {
      await node.close();
      await proxy.close();
      await dropSchema(s);
    }
  }, 60_000);

  it('a node whose database connection goes silent inside a transaction gives it up, and the channel stays writable', async () => {
    const s = uniqueName('bc_silent');
    const { proxy, pg } = await proxiedPg();
    const sub = `bctest.${uniqueName('silent')}`;
    const node1 = await startNode({
      schema: s,
      subject: sub,
      seed,
      pgUrl: pg.toString(),
      connectTimeoutS: 1,
      transactionTimeoutS: 2,
    });
    const node2 = await startNode({ schema: s, subject: sub, seed, transactionTimeoutS: 2 });
    try {
      const P = makeParty('P');
      const d = makeDevice(P, 'd', 'admin');
      await node2.caller.publishParty(P, [d]);
      const ch = newChannel();
      const first = commit(d, ch, 0);
      // Node 1 takes the channel's lock (its statement is prepared, then run: two writes), and
      // then its connection goes silent: the database's answers are lost, nothing is reset.
      // TCP would report it lost after ~15 min; the database keeps the lock for as long.
      proxy.freezeOn('pg_advisory_xact_lock', 1);
      const given = await Promise.race([
        node1.caller.append(d, first).then((r) => r.body.error?.code ?? r.status),
        new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000)),
      ]);
      expect(given).toBe('STORE_UNAVAILABLE');
      // The database ends the silent session (idle in its transaction): its channel lock is
      // released and node 2 writes the channel, instead of waiting for the server's TCP keepalive.
      const other = await untilAvailable(() => node2.caller.append(d, first), 10);
      expect(other.status).toBe(201);
      expect(other.body.seq).toBe(0);
      // Node 1 works again, and its retry of the envelope gets the original answer.
      const again = await untilAvailable(() => node1.caller.append(d, first), 20);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ seq: 0, duplicate: true });
      expect((await node1.caller.append(d, envelope(d, ch))).body.seq).toBe(1);
    } finally {
      // The proxy first: it ends the silent connection, whatever still waits on it.
      await proxy.close();
      await node1.close();
      await node2.close();
      await dropSchema(s);
    }
  }, 90_000);

  it('a node started while the database is cut off fails to start with STORE_UNAVAILABLE instead of waiting', async () => {
    const s = uniqueName('bc_cut_start');
    const { proxy, pg } = await proxiedPg();
    // The proxy accepts every connection and drops it: postgres.js retries such a connection
    // without end, so the migrations at start would wait for as long as the outage lasts.
    proxy.cut();
    try {
      const opened = openPostgresStore({ url: pg.toString(), schema: s, max: 1, connectTimeoutS: 1 });
      const outcome = await Promise.race([
        opened.then(
          async (store) => {
            await store.close();
            return 'opened';
          },
          (e: { code?: string }) => e.code,
        ),
        new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000)),
      ]);
      expect(outcome).toBe('STORE_UNAVAILABLE');
      // Back: the same store opens (nothing was left half-done by the attempt that gave up).
      proxy.heal();
      const store = await openPostgresStore({ url: pg.toString(), schema: s, max: 1, connectTimeoutS: 1 });
      await store.ping();
      await store.close();
    } finally {
      await proxy.close();
      await dropSchema(s);
    }
  }, 60_000);
});
