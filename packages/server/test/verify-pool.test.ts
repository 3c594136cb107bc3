/** The verify pool: every job gets its own answer, whether it went out alone or in a batch. */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import edgeVectors from '../../protocol/test/vectors/ed25519-edge.json' with { type: 'json' };
import { nodeEd25519, publicKeyOfSeed } from '../src/ed25519.node.ts';

// Every Worker the pool makes, in order (to end one under it, as a crash would).
const workers = vi.hoisted(() => [] as Array<{ terminate(): Promise<number> }>);
vi.mock('node:worker_threads', async (original) => {
  const m = await original<typeof import('node:worker_threads')>();
  class Recorded extends m.Worker {
    constructor(...args: ConstructorParameters<typeof m.Worker>) {
      super(...args);
      workers.push(this);
    }
  }
  return { ...m, Worker: Recorded, default: { ...m, Worker: Recorded } };
});

const { VerifyPool } = await import('../src/verify-pool.node.ts');
type VerifyPool = InstanceType<typeof VerifyPool>;

const suite = nodeEd25519();
let pool: VerifyPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function jobs(n: number) {
  const seed = new Uint8Array(randomBytes(32));
  const pk = publicKeyOfSeed(seed);
  return Array.from({ length: n }, (_, i) => {
    const msg = new Uint8Array(randomBytes(100 + (i % 50)));
    const sig = suite.sign(msg, seed);
    // every third job is forged (one bit of the signature flipped)
    if (i % 3 === 0) sig[i % 64] = (sig[i % 64] as number) ^ 1;
    return { msg, sig, pk, valid: i % 3 !== 0 };
  });
}

describe('VerifyPool', () => {
  it.each([1, 2])('answers each of many concurrent jobs correctly (%i threads)', async (threads) => {
    pool = new VerifyPool(threads, { maxBatch: 16 });
    const js = jobs(300);
    const out = await Promise.all(js.map((j) => (pool as VerifyPool).verify(j.sig, j.msg, j.pk)));
    expect(out).toEqual(js.map((j) => j.valid));
  });

  it('refuses every signature libraries disagree on, and still answers the rest', async () => {
    pool = new VerifyPool(1);
    const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
    const js = jobs(6);
    const out = await Promise.all([
      ...edgeVectors.refused.map((r) =>
        (pool as VerifyPool).verify(hex(r.signature), hex(r.message), hex(r.publicKey)),
      ),
      ...js.map((j) => (pool as VerifyPool).verify(j.sig, j.msg, j.pk)),
    ]);
    expect(out).toEqual([...edgeVectors.refused.map(() => false), ...js.map((j) => j.valid)]);
  });

  it('settles every job when closed: queued and in-flight jobs fail, none is left waiting', async () => {
    const p = new VerifyPool(1, { maxBatch: 8 });
    const js = jobs(200);
    // Settled handlers are attached before closing: the rejections are awaited, not unhandled.
    const answers = Promise.allSettled(js.map((j) => p.verify(j.sig, j.msg, j.pk)));
    await p.close();
    const settled = await answers;
    expect(settled.filter((x) => x.status === 'rejected').length).toBeGreaterThan(0);
    settled.forEach((x, i) => {
      if (x.status === 'fulfilled') expect(x.value).toBe(js[i]?.valid);
      else expect(String(x.reason)).toMatch(/closed/);
    });
    await expect(
      p.verify(js[1]?.sig as Uint8Array, js[1]?.msg as Uint8Array, js[1]?.pk as Uint8Array),
    ).rejects.toThrow(/closed/);
  });

  it('answers jobs that arrive one at a time and while a batch is in flight', async () => {
    pool = new VerifyPool(1);
    const js = jobs(40);
    const answers: Promise<boolean>[] = [];
    for (const [i, j] of js.entries()) {
      answers.push(pool.verify(j.sig, j.msg, j.pk));
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    expect(await Promise.all(answers)).toEqual(js.map((j) => j.valid));
  });

  it('a worker that dies: its jobs in flight fail, the rest are answered by a new one, none waits forever', async () => {
    workers.length = 0;
    pool = new VerifyPool(1, { maxBatch: 4 });
    const js = jobs(100);
    const answers = Promise.allSettled(js.map((j) => (pool as VerifyPool).verify(j.sig, j.msg, j.pk)));
    await new Promise((r) => setImmediate(r));
    await workers[0]?.terminate();
    const settled = await Promise.race([
      answers,
      new Promise<'timed out'>((r) => setTimeout(() => r('timed out'), 5_000)),
    ]);
    if (settled === 'timed out') throw new Error('verifications still waiting 5 s after their worker died');
    const failed = settled.filter((x) => x.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThan(js.length);
    settled.forEach((x, i) => {
      if (x.status === 'fulfilled') expect(x.value).toBe(js[i]?.valid);
      else expect(String(x.reason)).toMatch(/verify worker exited/);
    });
    // The pool goes on with the new worker.
    expect(workers.length).toBe(2);
    const [j] = jobs(2);
    if (j === undefined) throw new Error('no job');
    expect(await pool.verify(j.sig, j.msg, j.pk)).toBe(j.valid);
  });

  it('refuses malformed lengths without a worker round trip', async () => {
    pool = new VerifyPool(1);
    const [j] = jobs(2);
    if (j === undefined) throw new Error('no job');
    expect(await pool.verify(j.sig.subarray(1), j.msg, j.pk)).toBe(false);
    expect(await pool.verify(j.sig, j.msg, j.pk.subarray(1))).toBe(false);
  });
});
