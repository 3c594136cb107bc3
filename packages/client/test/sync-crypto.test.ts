import { keyPairFromSeed, nobleEd25519 } from '@backchannel/protocol';
import { leafHash } from '@backchannel/protocol/transcript';
import { afterAll, describe, expect, it } from 'vitest';
import edgeVectors from '../../protocol/test/vectors/ed25519-edge.json' with { type: 'json' };
import { leafHashNode, SignatureWorkers } from '../src/sdk/sync-crypto.node.ts';

const kp = keyPairFromSeed(new Uint8Array(32).fill(3));
const other = keyPairFromSeed(new Uint8Array(32).fill(4));
const msg = (i: number) => new TextEncoder().encode(`message ${i} `.repeat(i % 7));
const signed = (i: number) => ({
  signature: nobleEd25519.sign(msg(i), kp.secretKey),
  message: msg(i),
  publicKey: kp.publicKey,
});

describe('sync on Node: batch signature verification and leaf hashes', () => {
  const workers = new SignatureWorkers({ threads: 2 });
  const helped = new SignatureWorkers({ threads: 1, inline: nobleEd25519 });
  afterAll(async () => {
    await workers.close();
    await helped.close();
  });

  it('answers each check as the signature suite does: valid, forged, wrong key, malformed', async () => {
    const good = Array.from({ length: 50 }, (_, i) => signed(i));
    const forged = { ...signed(1), message: msg(2) };
    const wrongKey = { ...signed(3), publicKey: other.publicKey };
    const flipped = signed(4);
    const sig = flipped.signature.slice();
    sig[10] = (sig[10] as number) ^ 1;
    const shortSig = { ...signed(5), signature: signed(5).signature.subarray(0, 63) };
    const shortKey = { ...signed(6), publicKey: kp.publicKey.subarray(0, 31) };
    const checks = [...good, forged, wrongKey, { ...flipped, signature: sig }, shortSig, shortKey];
    const ok = await workers.verifyAll(checks);
    expect([...ok]).toEqual(
      checks.map((c) => (nobleEd25519.verify(c.signature, c.message, c.publicKey) ? 1 : 0)),
    );
    expect([...ok.subarray(0, 50)].every((v) => v === 1)).toBe(true);
    expect([...ok.subarray(50)]).toEqual([0, 0, 0, 0, 0]);
  });

  it('refuses every signature libraries disagree on, on workers and inline', async () => {
    const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
    const checks = edgeVectors.refused.map((r) => ({
      signature: hex(r.signature),
      message: hex(r.message),
      publicKey: hex(r.publicKey),
    }));
    expect([...(await workers.verifyAll(checks))]).toEqual(checks.map(() => 0));
    expect([...(await helped.verifyAll([...checks, signed(1)]))]).toEqual([...checks.map(() => 0), 1]);
  });

  it('keeps batches apart when several are in flight, and answers an empty batch', async () => {
    const batches = [0, 1, 2, 3].map((b) =>
      Array.from({ length: 20 }, (_, i) => (i === b ? { ...signed(i), message: msg(i + 1) } : signed(i))),
    );
    const answers = await Promise.all([
      ...batches.map((b) => workers.verifyAll(b)),
      ...batches.map((b) => helped.verifyAll(b)),
    ]);
    answers.forEach((a, k) => {
      expect(a.indexOf(0)).toBe(k % 4);
      expect(a.filter((v) => v === 0).length).toBe(1);
    });
    expect((await workers.verifyAll([])).length).toBe(0);
  });

  it('fails the batches still waiting when closed, and refuses new ones', async () => {
    const v = new SignatureWorkers({ threads: 1 });
    const failed = expect(v.verifyAll(Array.from({ length: 200 }, (_, i) => signed(i)))).rejects.toThrow(
      'closed',
    );
    await v.close();
    await failed;
    await expect(v.verifyAll([signed(1)])).rejects.toThrow('closed');
  });

  it('hashes leaves exactly as the protocol does (RFC 9162 §2.1.1)', () => {
    for (const n of [0, 1, 63, 64, 1500]) {
      const data = new Uint8Array(n).map((_, i) => i * 7);
      expect(leafHashNode(data)).toEqual(leafHash(data));
    }
  });
});
