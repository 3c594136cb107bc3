/**
 * Batched relay receipts: one relay signature over the Merkle root of a group commit's receipt
 * bodies proves each body exactly as a receipt of its own does — and nothing else.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkReceiptAgainstLog,
  decodeRelayReceipt,
  encodeRelayReceipt,
  type RelayReceipt,
  type RelayReceiptBody,
  signRelayReceipts,
  verifyRelayReceipt,
} from '../../src/attest/relay-receipt.ts';
import {
  channelIdFrom,
  encodeCanonical,
  eventIdFrom,
  keyPairFromSeed,
  signWithLabel,
} from '../../src/index.ts';
import { inclusionRoot, leafHash, makeVerifierKey, verifyInclusion } from '../../src/transcript/index.ts';
import { RELAY_SEED } from './fixture.ts';

const relayPub = keyPairFromSeed(RELAY_SEED).publicKey;
const otherSeed = new Uint8Array(32).fill(9);

function bodies(n: number, seq0 = 0): RelayReceiptBody[] {
  return Array.from({ length: n }, (_, i) => ({
    v: 1 as const,
    channel: channelIdFrom(new Uint8Array(16).fill(1 + (i % 3))),
    msgId: eventIdFrom(new Uint8Array(16).fill(i % 256)),
    envelopeHash: new Uint8Array(32).fill(i % 251),
    seq: seq0 + i,
    receivedAt: 1_700_000_000_000 + i,
  }));
}

describe('batched relay receipts', () => {
  it.each([1, 2, 3, 7, 64, 65])('every receipt of a batch of %i verifies and round-trips', (n) => {
    const rs = signRelayReceipts(bodies(n), RELAY_SEED);
    expect(new Set(rs.map((r) => r.sig.join())).size).toBe(1);
    rs.forEach((r, i) => {
      expect(r.batch === undefined).toBe(n === 1);
      expect(r.batch?.index ?? 0).toBe(i);
      expect(verifyRelayReceipt(r, relayPub)).toBe(true);
      const d = decodeRelayReceipt(encodeRelayReceipt(r));
      expect(d.ok && encodeRelayReceipt(d.value)).toBe(encodeRelayReceipt(r));
      expect(d.ok && verifyRelayReceipt(d.value, relayPub)).toBe(true);
    });
  });

  it('a body, index, size or path that was not signed does not verify', () => {
    const rs = signRelayReceipts(bodies(9), RELAY_SEED);
    const r = rs[4] as RelayReceipt & { batch: NonNullable<RelayReceipt['batch']> };
    const other = rs[5] as RelayReceipt;
    const variants: RelayReceipt[] = [
      { ...r, body: { ...r.body, seq: r.body.seq + 1 } },
      { ...r, body: { ...r.body, receivedAt: r.body.receivedAt - 1 } },
      { ...r, body: other.body },
      { ...r, batch: { ...r.batch, index: 5 } },
      { ...r, batch: { ...r.batch, size: 10 } },
      { ...r, batch: { ...r.batch, size: 8 } },
      { ...r, batch: { ...r.batch, path: r.batch.path.slice(1) } },
      { ...r, batch: { ...r.batch, path: [...r.batch.path, new Uint8Array(32)] } },
      { ...r, batch: { ...r.batch, path: r.batch.path.map((p, i) => (i === 0 ? p.map((x) => x ^ 1) : p)) } },
      // the batch signature presented as a single receipt's, and the other way round
      { body: r.body, sig: r.sig },
      { ...signRelayReceipts(bodies(1), RELAY_SEED)[0]!, batch: r.batch },
      // another key
      signRelayReceipts(bodies(9), otherSeed)[4] as RelayReceipt,
      // a "batch" of one, even when the relay's key signed its root: the batch form covers ≥ 2
      {
        body: r.body,
        sig: signWithLabel(
          RELAY_SEED,
          'relay-receipt-batch',
          encodeCanonical({ root: leafHash(encodeCanonical(r.body)), size: 1 }),
        ),
        batch: { index: 0, size: 1, path: [] },
      },
    ];
    for (const v of variants) expect(verifyRelayReceipt(v, relayPub)).toBe(false);
  });

  it('with node:crypto for the path hashing, every verdict is the same as with the default', () => {
    let calls = 0;
    const nodeSha256 = (data: Uint8Array) => {
      calls++;
      return new Uint8Array(createHash('sha256').update(data).digest());
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 40 }),
        fc.nat(),
        fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { nil: undefined }),
        (n, pick, flip) => {
          const rs = signRelayReceipts(bodies(n), RELAY_SEED);
          const r = rs[pick % n] as RelayReceipt & { batch: NonNullable<RelayReceipt['batch']> };
          const path = r.batch.path.map((p) => p.slice());
          if (flip !== undefined && path.length > 0) {
            const p = path[flip[0] % path.length] as Uint8Array;
            p[flip[0] % 32] = (p[flip[0] % 32] as number) ^ (1 << flip[1]);
          }
          const v: RelayReceipt = { ...r, batch: { ...r.batch, path } };
          const before = calls;
          const verdict = verifyRelayReceipt(v, relayPub, undefined, nodeSha256);
          expect(calls).toBeGreaterThan(before);
          expect(verdict).toBe(verifyRelayReceipt(v, relayPub));
          expect(verdict).toBe(flip === undefined || path.length === 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('an internal node of the batch tree cannot pass as a body (leaf and node hashes differ)', () => {
    const rs = signRelayReceipts(bodies(4), RELAY_SEED);
    const r = rs[0] as RelayReceipt & { batch: NonNullable<RelayReceipt['batch']> };
    // The path of leaf 0 in a tree of 4 is [leaf 1, node(2,3)]; a "leaf" at level 1 would need
    // leafHash(body) = node(0,1), which the 0x00 / 0x01 prefixes of RFC 9162 rule out.
    const root = inclusionRoot(leafHash(new Uint8Array(0)), 0, 2, [r.batch.path[1] as Uint8Array]);
    expect(root).toBeDefined();
    expect(
      verifyRelayReceipt({ ...r, batch: { index: 0, size: 2, path: [r.batch.path[1]!] } }, relayPub),
    ).toBe(false);
  });

  it('every path of a batch leads to one root, which verifyInclusion accepts', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 40 }), (n) => {
        const rs = signRelayReceipts(bodies(n), RELAY_SEED);
        const leaves = rs.map((r) => leafHash(encodeCanonical(r.body)));
        const roots = rs.map((r, i) => {
          const b = r.batch as NonNullable<RelayReceipt['batch']>;
          return inclusionRoot(leaves[i] as Uint8Array, b.index, b.size, b.path);
        });
        const root = roots[0] as Uint8Array;
        return rs.every((r, i) => {
          const b = r.batch as NonNullable<RelayReceipt['batch']>;
          return (
            roots[i]?.join() === root.join() &&
            verifyInclusion(leaves[i] as Uint8Array, b.index, b.size, b.path, root)
          );
        });
      }),
      { numRuns: 30 },
    );
  });

  it('decoding refuses malformed batches', () => {
    const r = signRelayReceipts(bodies(3), RELAY_SEED)[1] as RelayReceipt & {
      batch: NonNullable<RelayReceipt['batch']>;
    };
    const bad = [
      { ...r, batch: { ...r.batch, index: 3 } },
      { ...r, batch: { ...r.batch, size: 1, index: 0 } },
      { ...r, batch: { ...r.batch, path: [new Uint8Array(31)] } },
      { ...r, batch: { ...r.batch, path: Array.from({ length: 33 }, () => new Uint8Array(32)) } },
    ];
    for (const b of bad) expect(decodeRelayReceipt(encodeRelayReceipt(b)).ok).toBe(false);
  });

  it('checkReceiptAgainstLog takes a batched receipt like a single one', () => {
    const relayKey = makeVerifierKey('relay.test', relayPub);
    const r = signRelayReceipts(bodies(5), RELAY_SEED)[2] as RelayReceipt;
    const forged = signRelayReceipts(bodies(5), otherSeed)[2] as RelayReceipt;
    // Both reach the signature check first; only the forged one is refused there.
    expect(checkReceiptAgainstLog({ receipt: forged, relayKey, checkpoint: '' })).toMatchObject({
      kind: 'invalid',
      code: 'RELAY_RECEIPT_INVALID',
    });
    expect(checkReceiptAgainstLog({ receipt: r, relayKey, checkpoint: '' }).kind).toBe('invalid');
    expect(checkReceiptAgainstLog({ receipt: r, relayKey, checkpoint: '' })).not.toMatchObject({
      code: 'RELAY_RECEIPT_INVALID',
    });
  });
});
