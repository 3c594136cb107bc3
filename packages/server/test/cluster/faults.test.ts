/**
 * Reliability of a two-node cluster, as real processes on the real PostgreSQL and a NATS server
 * of their own (so it can be stopped without disturbing anyone else's tests): clients write
 * through both nodes while node 1 is killed with SIGKILL and NATS is stopped, and fail over to
 * the surviving node. Afterwards every acknowledged message is in the log exactly once at its
 * acknowledged seq, a WebSocket subscriber on node 2 saw every entry once and in order, and the
 * transcript verifies against every checkpoint a client was given.
 *
 * `npm test` runs a short form (one crash, a 2 s NATS outage); `npm run test:faults` sets
 * BACKCHANNEL_FAULTS=full: five crashes and a 10 s NATS outage.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { loadOrCreateCheckpointKey } from '../../src/relay-key.node.ts';
import {
  commit,
  envelope,
  expectAckedOnce,
  makeDevice,
  makeParty,
  newChannel,
  readLog,
  type TestDevice,
} from '../helpers.ts';
import { freePort, type RelayProcess, startRelayProcess, WsClient } from '../process.ts';
import { dropSchema, PG_URL, servicesUp, uniqueName } from '../services.ts';

const FULL = process.env.BACKCHANNEL_FAULTS === 'full';
const CRASHES = FULL ? 5 : 1;
const NATS_OUTAGE_MS = FULL ? 10_000 : 2_000;

const natsBinary = spawnSync('nats-server', ['--version']).status === 0;
const up = await servicesUp('cluster/faults.test.ts', ['postgres']);
if (up && !natsBinary) {
  const why = 'cluster/faults.test.ts: the nats-server binary is not installed';
  if (process.env.BACKCHANNEL_REQUIRE_SERVICES === '1') throw new Error(why);
  process.stderr.write(`\n*** SKIPPING ${why}.\n\n`);
}

const rootOf = (note: string) => Buffer.from(note.split('\n')[2] as string, 'base64');
const sizeOf = (note: string) => Number(note.split('\n')[1]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A NATS server of this test's own, on a fixed port so it can be stopped and started again. */
class PrivateNats {
  readonly port: number;
  #child: ChildProcess | undefined;

  constructor(port: number) {
    this.port = port;
  }

  async start(): Promise<void> {
    this.#child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port)], { stdio: 'ignore' });
    const until = Date.now() + 10_000;
    while (!(await this.#listening())) {
      if (Date.now() > until) throw new Error('nats-server did not start');
      await sleep(50);
    }
  }

  #listening(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: this.port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  }

  async kill(): Promise<void> {
    const c = this.#child;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }
}

describe.skipIf(!up || !natsBinary)('faults: two nodes, kill -9 and a NATS outage under load', () => {
  const schema = uniqueName('bc_faults');
  const keyDir = mkdtempSync(join(tmpdir(), 'bc-cluster-key-'));
  const keyFile = join(keyDir, 'checkpoint-key');
  let nats: PrivateNats;
  let n1: RelayProcess;
  let n2: RelayProcess;
  let a: TestDevice;
  let b: TestDevice;

  beforeAll(async () => {
    loadOrCreateCheckpointKey(keyDir, 'faults.test');
    nats = new PrivateNats(await freePort());
    await nats.start();
    const env = {
      BACKCHANNEL_STORE: `${PG_URL}?schema=${schema}`,
      BACKCHANNEL_FANOUT: `nats://127.0.0.1:${nats.port}`,
      BACKCHANNEL_CHECKPOINT_KEY_FILE: keyFile,
      BACKCHANNEL_RELAY_NAME: 'faults.test',
    };
    n1 = await startRelayProcess(env);
    n2 = await startRelayProcess(env);
    const A = makeParty('A');
    const B = makeParty('B');
    a = makeDevice(A, 'a', 'admin');
    b = makeDevice(B, 'b', 'principal');
    await n1.caller.publishParty(A, [a]);
    await n2.caller.publishParty(B, [b]);
  }, 60_000);

  afterAll(async () => {
    await n1?.cleanup();
    await n2?.cleanup();
    await nats?.kill();
    await dropSchema(schema);
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('loses nothing acknowledged, delivers nothing twice, and every transcript verifies', async () => {
    const ch = newChannel();
    expect((await n1.caller.append(a, commit(a, ch, 0, [b]))).status).toBe(201);
    const ws = await WsClient.connect(n2.url, b);
    await ws.subscribe(ch, 0);

    const acked = new Map<string, number>();
    const checkpoints = new Set<string>();
    let stop = false;
    let failovers = 0;
    /** A client of one node: each envelope is retried until acknowledged, on the other node if its own is down. */
    const writer = async (home: RelayProcess, other: RelayProcess, dev: TestDevice) => {
      while (!stop) {
        const env: SignedEnvelope = envelope(dev, ch);
        let target = home;
        for (let attempt = 0; ; attempt++) {
          try {
            const r = await target.caller.append(dev, env);
            if (r.status === 201 || r.status === 200) {
              acked.set(env.body.msgId, r.body.seq);
              checkpoints.add(r.body.checkpoint);
              break;
            }
            expect([503], JSON.stringify(r.body)).toContain(r.status);
          } catch {
            // Connection refused or reset: the node is down; the outcome is unknown, so retry.
          }
          if (attempt > 200) throw new Error('no node took the envelope');
          target = target === home ? other : home;
          if (target !== home) failovers++;
          await sleep(20);
        }
      }
    };
    const writers = [
      ...Array.from({ length: 3 }, () => writer(n1, n2, a)),
      ...Array.from({ length: 3 }, () => writer(n2, n1, b)),
    ];
    for (let i = 0; i < CRASHES; i++) {
      await sleep(300 + Math.random() * 300);
      await n1.crash();
      await sleep(200);
      await n1.restart();
    }
    // NATS goes away while both nodes keep taking writes, then comes back.
    await nats.kill();
    await sleep(NATS_OUTAGE_MS);
    await nats.start();
    await sleep(500);
    stop = true;
    await Promise.all(writers);
    expect(failovers).toBeGreaterThan(0);
    expect(acked.size).toBeGreaterThan(20);

    // One log, read from either node: each msgId once, at the seq its client was told.
    const entries = await readLog(n1.caller, ch, a);
    expectAckedOnce(entries, acked);

    // The subscriber on node 2 got every entry once, in order (NATS outage healed from PostgreSQL).
    const seqs = await ws.waitForEntries(ch, entries.length, 30_000);
    expect(seqs).toEqual(entries.map((_, i) => i));
    ws.close();

    // The final checkpoint is the root of exactly these entries, under the cluster's one key, and
    // consistent with every checkpoint either node handed out.
    const final = await n2.caller.get(`/v1/channels/${ch}/checkpoint`, b);
    const finalNote = final.body.checkpoint as string;
    expect(final.body.size).toBe(entries.length);
    const root = Buffer.from(rootOfLeaves(entries.map(leafHash)));
    expect(rootOf(finalNote).equals(root)).toBe(true);
    const vkey = parseVerifierKey((await n1.caller.get('/v1/relay')).body.vkey as string);
    if (!vkey.ok) throw new Error('vkey');
    expect((await n2.caller.get('/v1/relay')).body.vkey).toBe((await n1.caller.get('/v1/relay')).body.vkey);
    for (const note of [finalNote, ...checkpoints]) {
      const parsed = parseNote(note);
      expect(parsed.ok && verifyNote(parsed.value, [vkey.value]).ok).toBe(true);
      const from = sizeOf(note);
      const p = await n1.caller.get(
        `/v1/channels/${ch}/proof/consistency?from=${from}&to=${entries.length}`,
        a,
      );
      const hashes = (p.body.proof as string[]).map((h) => fromBase64url(h));
      expect(verifyConsistency(from, entries.length, hashes, rootOf(note), root)).toBe(true);
    }
  }, 180_000);
});
