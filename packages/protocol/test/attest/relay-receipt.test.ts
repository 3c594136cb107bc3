/**
 * The accountable mediator's delivery bound: a relay that receipts an envelope and then logs it
 * later than the channel's stated bound — or shows a witness a log without it past the bound — is
 * proven to have delayed it; one that logs within the bound is not accused; a forged receipt
 * proves nothing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkReceiptAgainstLog,
  RECEIPT_SKEW_MS,
  type RelayReceipt,
  receiptDisagreement,
  signRelayReceipt,
} from '../../src/attest/relay-receipt.ts';
import { decodeEntry, encodeEntry, envelopeHash, keyPairFromSeed } from '../../src/index.ts';
import {
  cosignatureKey,
  inclusionProof,
  leafHash,
  MemoryNodeStore,
  makeVerifierKey,
} from '../../src/transcript/index.ts';
import { buildFixture, RELAY_SEED, relayCheckpoint, WITNESSES } from './fixture.ts';

const f = buildFixture();
const relayKey = makeVerifierKey('relay.test', keyPairFromSeed(RELAY_SEED).publicKey);
const witness = WITNESSES[0]!;
const witnessKey = cosignatureKey(witness.name, keyPairFromSeed(witness.seed).publicKey);
const BOUND = 5 * 60_000;
const SEQ = 8;

/** The relay's log, with the entry at SEQ logged at `loggedAt` (the rest as in the fixture). */
function relayLog(loggedAt?: number) {
  const entries = f.snap.records.map((r) => {
    if (r.index !== SEQ || loggedAt === undefined) return r.entry;
    return encodeEntry({ ...r.decoded.entry, receivedAt: loggedAt });
  });
  const tree = new MemoryNodeStore();
  for (const e of entries) tree.append(leafHash(e));
  return { entries, tree };
}

function checkpointOf(size: number, tree: MemoryNodeStore, cosignedAt?: number): string {
  const leaves = Array.from({ length: size }, (_, i) => tree.read(0, i) as Uint8Array);
  return cosignedAt === undefined
    ? relayCheckpoint(f.channel, leaves)
    : relayCheckpoint(f.channel, leaves, [witness], Math.floor(cosignedAt / 1000));
}

const rec = f.snap.records[SEQ]!;
const receivedAt = rec.decoded.entry.receivedAt;
const receipt: RelayReceipt = signRelayReceipt(
  {
    v: 1,
    channel: f.channel,
    msgId: rec.decoded.envelope.body.msgId,
    envelopeHash: envelopeHash(rec.decoded.entry.envelope),
    seq: SEQ,
    receivedAt,
  },
  RELAY_SEED,
);

function check(loggedAt: number, opts: { boundMs?: number; r?: RelayReceipt } = {}) {
  const { entries, tree } = relayLog(loggedAt);
  const size = entries.length;
  return checkReceiptAgainstLog({
    receipt: opts.r ?? receipt,
    relayKey,
    checkpoint: checkpointOf(size, tree),
    entry: { bytes: entries[SEQ]!, proof: inclusionProof(SEQ, size, tree.read) },
    ...(opts.boundMs === undefined ? {} : { boundMs: opts.boundMs }),
  });
}

describe('relay receipts: the delivery bound', () => {
  it('a mediator that logs a receipted envelope past the bound is proven to have delayed it', () => {
    const late = receivedAt + BOUND + 1;
    const r = check(late, { boundMs: BOUND });
    expect(r).toMatchObject({ kind: 'delayed', seq: SEQ, boundMs: BOUND, loggedAt: late });
    expect(r.kind === 'delayed' && r.reason).toMatch(
      /logged it only at .* past the channel's 300 s delivery bound/,
    );
    // The entry really is the receipted envelope: this is delay, not a drop.
    expect(decodeEntry(relayLog(late).entries[SEQ]).ok).toBe(true);
  });

  it('one that logs within the bound (or on its very edge) is not accused', () => {
    expect(check(receivedAt, { boundMs: BOUND })).toMatchObject({ kind: 'delivered', seq: SEQ });
    expect(check(receivedAt + BOUND, { boundMs: BOUND })).toMatchObject({ kind: 'delivered' });
    // Without a stated bound, lateness is not judged.
    expect(check(receivedAt + 10 * BOUND)).toMatchObject({ kind: 'delivered' });
  });

  it('a relay that logs a receipted envelope dated before its receipt is proven to have backdated it', () => {
    const early = receivedAt - 1;
    const r = check(early, { boundMs: BOUND });
    expect(r).toMatchObject({ kind: 'backdated', seq: SEQ, receivedAt, loggedAt: early });
    expect(r.kind === 'backdated' && r.reason).toMatch(/then signed a log that dates it earlier/);
    // Without a stated bound too: the receipt's time is a floor, whatever the channel's bound.
    expect(check(receivedAt - 60 * 60_000)).toMatchObject({ kind: 'backdated' });
  });

  it('receiptDisagreement: the same entry at the receipt time or later agrees; earlier, or other bytes or position, does not', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 0, max: 3 }), (dt, change) => {
        const entry = {
          seq: change === 1 ? SEQ + 1 : SEQ,
          receivedAt: receivedAt + dt,
          envelope:
            change === 2 ? new Uint8Array([...rec.decoded.entry.envelope, 0]) : rec.decoded.entry.envelope,
        };
        const d = receiptDisagreement(receipt.body, entry);
        if (change === 1 || change === 2) return d === 'another-entry';
        return d === (dt < 0 ? 'earlier' : undefined);
      }),
    );
  });

  it('a witness-dated checkpoint past the bound that still lacks the entry proves the delay', () => {
    const { tree } = relayLog();
    const held = (cosignedAt: number | undefined, witnesses = [witnessKey]) =>
      checkReceiptAgainstLog({
        receipt,
        relayKey,
        checkpoint: checkpointOf(SEQ, tree, cosignedAt),
        boundMs: BOUND,
        witnesses,
      });
    const late = receivedAt + BOUND + RECEIPT_SKEW_MS + 60_000;
    const r = held(late);
    expect(r).toMatchObject({
      kind: 'delayed',
      witnessed: { name: witness.name, size: SEQ },
    });
    expect(r.kind === 'delayed' && r.reason).toContain('still did not hold it');
    // Co-signed within the bound: the envelope may still be on its way.
    expect(held(receivedAt + 60_000)).toMatchObject({ kind: 'not-yet-logged', size: SEQ });
    // Past the bound but within the clock skew allowed between relay and witness: no accusation.
    expect(held(receivedAt + BOUND + 60_000)).toMatchObject({ kind: 'not-yet-logged', size: SEQ });
    // Not dated by a witness the checker trusts: no proof of time, so no accusation.
    expect(held(late, [])).toMatchObject({ kind: 'not-yet-logged' });
    // Every witness the checker names must have dated it: one witness (perhaps the accuser's
    // own) co-signing an old checkpoint late proves nothing about the relay.
    const other = WITNESSES[1]!;
    const otherKey = cosignatureKey(other.name, keyPairFromSeed(other.seed).publicKey);
    expect(held(late, [witnessKey, otherKey])).toMatchObject({ kind: 'not-yet-logged' });
    expect(held(undefined)).toMatchObject({ kind: 'not-yet-logged' });
  });

  it('a forged receipt stays invalid, bound or not', () => {
    const moved: RelayReceipt = {
      ...receipt,
      body: { ...receipt.body, receivedAt: receivedAt - BOUND * 10 },
    };
    expect(check(receivedAt, { boundMs: BOUND, r: moved })).toMatchObject({
      kind: 'invalid',
      code: 'RELAY_RECEIPT_INVALID',
    });
    const otherRelay = signRelayReceipt(
      { ...receipt.body, receivedAt: receivedAt - BOUND * 10 },
      new Uint8Array(32).fill(8),
    );
    expect(check(receivedAt, { boundMs: BOUND, r: otherRelay })).toMatchObject({ kind: 'invalid' });
    // A witness cosignature that does not verify is no evidence either.
    const { tree } = relayLog();
    const good = checkpointOf(SEQ, tree, receivedAt + BOUND + 60_000);
    const lines = good.split('\n');
    const last = lines.findLastIndex((l) => l.startsWith('— witness.a.example '));
    const sig = lines[last] as string;
    lines[last] = `${sig.slice(0, -4)}${sig.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    expect(
      checkReceiptAgainstLog({
        receipt,
        relayKey,
        checkpoint: lines.join('\n'),
        boundMs: BOUND,
        witnesses: [witnessKey],
      }).kind,
    ).toBe('invalid');
  });
});
