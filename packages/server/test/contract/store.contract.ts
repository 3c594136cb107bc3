/**
 * The storage contract: every Store implementation (SQLite now, PostgreSQL later) runs this
 * suite. Call storeContract() from a *.test.ts with a factory for a fresh, empty store.
 */
import { randomBytes } from 'node:crypto';
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import {
  appendLeaf,
  EMPTY_TREE,
  leafHash,
  type TreeState,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
} from '@backchannel/protocol/transcript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeCache, ProofBuilder } from '../../src/channels/node-cache.ts';
import type { ChannelHead, DeviceRecord, Store } from '../../src/store/store.ts';

export interface StoreFactory {
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

const id = (prefix: string) => `${prefix}${randomBytes(16).toString('base64url')}`;
const bytes = (n: number) => new Uint8Array(randomBytes(n));

function deviceRec(party: PartyId, over: Partial<DeviceRecord> = {}): Omit<DeviceRecord, 'revokedAt'> {
  return {
    device: id('d_') as DeviceId,
    party,
    publicKey: bytes(32),
    role: 'staff',
    notBefore: 1,
    notAfter: 10_000,
    certificate: bytes(100),
    ...over,
  };
}

function head(channel: ChannelId, over: Partial<ChannelHead> = {}): ChannelHead {
  return { channel, epoch: 0, size: 0, frontier: [], lastAt: 5, createdAt: 5, ...over };
}

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory.open());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('keeps contact cards and replaces them', async () => {
      const party = id('p_') as PartyId;
      await store.write((tx) =>
        tx.putCard({ party, rootPublicKey: bytes(32), card: Uint8Array.of(1), issuedAt: 10 }),
      );
      await store.write((tx) =>
        tx.putCard({ party, rootPublicKey: bytes(32), card: Uint8Array.of(2), issuedAt: 20 }),
      );
      const c = await store.read((tx) => tx.getCard(party));
      expect(c?.issuedAt).toBe(20);
      expect([...(c?.card ?? [])]).toEqual([2]);
      expect(await store.read((tx) => tx.getCard(id('p_') as PartyId))).toBeUndefined();
    });

    it('registers devices, lists them by party, and keeps a revocation even across re-registration', async () => {
      const party = id('p_') as PartyId;
      const d1 = deviceRec(party);
      const d2 = deviceRec(party, { role: 'admin' });
      await store.write(async (tx) => {
        await tx.putDevice(d1);
        await tx.putDevice(d2);
      });
      expect((await store.read((tx) => tx.listDevices(party))).map((d) => d.device).sort()).toEqual(
        [d1.device, d2.device].sort(),
      );
      const got = await store.read((tx) => tx.getDevice(d2.device));
      expect(got?.role).toBe('admin');
      expect([...(got?.publicKey ?? [])]).toEqual([...d2.publicKey]);
      expect(got?.revokedAt).toBeUndefined();
      await store.write((tx) =>
        tx.putRevocation({ party, device: d1.device, revokedAt: 500, revocation: bytes(80) }),
      );
      await store.write((tx) =>
        tx.putRevocation({ party, device: d1.device, revokedAt: 900, revocation: bytes(80) }),
      );
      expect((await store.read((tx) => tx.getDevice(d1.device)))?.revokedAt).toBe(500);
      await store.write((tx) => tx.putDevice({ ...d1, notBefore: 2 }));
      expect((await store.read((tx) => tx.getDevice(d1.device)))?.revokedAt).toBe(500);
      expect(await store.read((tx) => tx.listRevocations(party))).toHaveLength(1);
    });

    it('reads many devices in a write transaction at once, leaving out unknown ones (shareDevices)', async () => {
      const party = id('p_') as PartyId;
      const d1 = deviceRec(party);
      const d2 = deviceRec(party, { role: 'admin' });
      await store.write(async (tx) => {
        await tx.putDevice(d1);
        await tx.putDevice(d2);
        await tx.putRevocation({ party, device: d2.device, revokedAt: 40, revocation: bytes(80) });
      });
      const unknown = id('d_') as DeviceId;
      const got = await store.write((tx) => tx.shareDevices([d1.device, unknown, d2.device]));
      expect([...got.keys()].sort()).toEqual([d1.device, d2.device].sort());
      expect(got.get(d1.device)?.revokedAt).toBeUndefined();
      expect(got.get(d2.device)?.revokedAt).toBe(40);
      expect([...(got.get(d1.device)?.publicKey ?? [])]).toEqual([...d1.publicKey]);
      expect((await store.write((tx) => tx.shareDevices([]))).size).toBe(0);
    });

    it('marks a device revoked before it registers', async () => {
      const party = id('p_') as PartyId;
      const d = deviceRec(party);
      await store.write((tx) =>
        tx.putRevocation({ party, device: d.device, revokedAt: 7, revocation: bytes(80) }),
      );
      await store.write((tx) => tx.putDevice(d));
      expect((await store.read((tx) => tx.getDevice(d.device)))?.revokedAt).toBe(7);
    });

    it('keys revocations by (device, party): another party revoking the same id marks nothing of ours', async () => {
      const mine = id('p_') as PartyId;
      const theirs = id('p_') as PartyId;
      const d = deviceRec(mine);
      const ownBytes = bytes(80);
      await store.write((tx) =>
        tx.putRevocation({ party: theirs, device: d.device, revokedAt: 3, revocation: bytes(80) }),
      );
      await store.write((tx) => tx.putDevice(d));
      expect((await store.read((tx) => tx.getDevice(d.device)))?.revokedAt).toBeUndefined();
      await store.write((tx) =>
        tx.putRevocation({ party: theirs, device: d.device, revokedAt: 2, revocation: bytes(80) }),
      );
      expect((await store.read((tx) => tx.getDevice(d.device)))?.revokedAt).toBeUndefined();
      await store.write((tx) =>
        tx.putRevocation({ party: mine, device: d.device, revokedAt: 9, revocation: ownBytes }),
      );
      expect((await store.read((tx) => tx.getDevice(d.device)))?.revokedAt).toBe(9);
      const listed = await store.read((tx) => tx.listRevocations(mine));
      expect(listed.map((r) => [r.party, r.revokedAt, r.revocation])).toEqual([[mine, 9, ownBytes]]);
      const other = await store.read((tx) => tx.listRevocations(theirs));
      expect(other.map((r) => r.revokedAt)).toEqual([2]);
    });

    it('hands out one-time key packages once, oldest first, then the last-resort one', async () => {
      const device = id('d_') as DeviceId;
      await store.write((tx) =>
        tx.addKeyPackages(device, [Uint8Array.of(1), Uint8Array.of(2)], Uint8Array.of(9)),
      );
      expect(await store.read((tx) => tx.countKeyPackages(device))).toEqual({ oneTime: 2, lastResort: true });
      const take = () => store.write((tx) => tx.takeKeyPackage(device));
      expect(await take()).toEqual({ keyPackage: Uint8Array.of(1), lastResort: false });
      expect(await take()).toEqual({ keyPackage: Uint8Array.of(2), lastResort: false });
      expect(await take()).toEqual({ keyPackage: Uint8Array.of(9), lastResort: true });
      expect(await take()).toEqual({ keyPackage: Uint8Array.of(9), lastResort: true });
      await store.write((tx) => tx.addKeyPackages(device, [], Uint8Array.of(8)));
      expect(await take()).toEqual({ keyPackage: Uint8Array.of(8), lastResort: true });
      expect(await store.write((tx) => tx.takeKeyPackage(id('d_') as DeviceId))).toBeUndefined();
    });

    it('records the first installation to redeem a device invite, and answers every later claim with it', async () => {
      const device = id('d_') as DeviceId;
      const first = new Uint8Array(16).fill(1);
      const second = new Uint8Array(16).fill(2);
      const claim = (inst: Uint8Array, at: number) =>
        store.write((tx) => tx.claimEnrollment(device, inst, at));
      expect(await claim(first, 1_000)).toEqual({ installation: first, at: 1_000 });
      expect(await claim(first, 2_000)).toEqual({ installation: first, at: 1_000 });
      expect(await claim(second, 3_000)).toEqual({ installation: first, at: 1_000 });
      // Another device's invite is its own.
      expect(await store.write((tx) => tx.claimEnrollment(id('d_') as DeviceId, second, 4_000))).toEqual({
        installation: second,
        at: 4_000,
      });
    });

    it('stores channel heads, members, entries, and finds a message by id', async () => {
      const channel = id('c_') as ChannelId;
      const party = id('p_') as PartyId;
      const dev = id('d_') as DeviceId;
      const frontier = [bytes(32), bytes(32)];
      await store.write(async (tx) => {
        await tx.putChannel(head(channel));
        await tx.putMember({ channel, device: dev, party, addedSeq: 0, removedSeq: undefined });
        for (let seq = 0; seq < 5; seq++) {
          await tx.appendEntry(channel, {
            seq,
            msgId: `e_${seq}`,
            sender: dev,
            envelopeHash: Uint8Array.of(seq),
            receivedAt: 100 + seq,
            entry: Uint8Array.of(seq, seq),
          });
        }
        await tx.putChannel(head(channel, { epoch: 3, size: 5, frontier, lastAt: 104 }));
      });
      const h = await store.read((tx) => tx.getChannel(channel));
      expect(h).toMatchObject({ channel, epoch: 3, size: 5, lastAt: 104, createdAt: 5 });
      expect(h?.frontier.map((f) => [...f])).toEqual(frontier.map((f) => [...f]));
      expect(await store.read((tx) => tx.getMember(channel, dev))).toEqual({
        channel,
        device: dev,
        party,
        addedSeq: 0,
        removedSeq: undefined,
      });
      await store.write((tx) => tx.putMember({ channel, device: dev, party, addedSeq: 0, removedSeq: 3 }));
      expect((await store.read((tx) => tx.listMembers(channel)))[0]?.removedSeq).toBe(3);
      const page = await store.read((tx) => tx.getEntries(channel, 1, 10, 4));
      expect(page.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(page[0]).toMatchObject({ msgId: 'e_1', sender: dev, receivedAt: 101 });
      expect((await store.read((tx) => tx.getEntries(channel, 0, 2))).map((e) => e.seq)).toEqual([0, 1]);
      expect(await store.read((tx) => tx.findMessage(channel, 'e_4'))).toEqual({
        seq: 4,
        envelopeHash: Uint8Array.of(4),
        receivedAt: 104,
      });
      expect(await store.read((tx) => tx.findMessage(channel, 'e_9'))).toBeUndefined();
      const many = await store.read((tx) => tx.findMessages(channel, ['e_1', 'e_9', 'e_3']));
      expect([...many.keys()].sort()).toEqual(['e_1', 'e_3']);
      expect(many.get('e_3')).toEqual({ seq: 3, envelopeHash: Uint8Array.of(3), receivedAt: 103 });
      // Inside a write, entries appended earlier in the same transaction are found too.
      const inTx = await store.write(async (tx) => {
        await tx.appendEntry(channel, {
          seq: 5,
          msgId: 'e_5',
          sender: dev,
          envelopeHash: Uint8Array.of(5),
          receivedAt: 105,
          entry: Uint8Array.of(5),
        });
        return tx.findMessages(channel, ['e_5', 'e_4']);
      });
      expect([...inTx.keys()].sort()).toEqual(['e_4', 'e_5']);
      // Locking with read-ahead answers the next reads as the database has them, and a write
      // in the same transaction is seen by the reads after it.
      const locked = await store.write(async (tx) => {
        await tx.lockChannels([channel], new Map([[channel, ['e_1', 'e_6']]]));
        const before = await tx.getChannel(channel);
        const found = await tx.findMessages(channel, ['e_1', 'e_6', 'e_2']);
        await tx.putChannel(head(channel, { epoch: 4, size: 6, frontier, lastAt: 105 }));
        return { before, found, after: await tx.getChannel(channel) };
      });
      expect(locked.before?.epoch).toBe(3);
      expect([...locked.found.keys()].sort()).toEqual(['e_1', 'e_2']);
      expect(locked.after?.epoch).toBe(4);
      expect(await store.read((tx) => tx.getChannel(id('c_') as ChannelId))).toBeUndefined();
      expect(await store.read((tx) => tx.getEntries(id('c_') as ChannelId, 0, 10))).toEqual([]);
    });

    it('refuses a second entry at the same seq or with the same msgId, and rolls the transaction back', async () => {
      const channel = id('c_') as ChannelId;
      const dev = id('d_') as DeviceId;
      const entry = (seq: number, msgId: string) => ({
        seq,
        msgId,
        sender: dev,
        envelopeHash: bytes(32),
        receivedAt: 1,
        entry: bytes(10),
      });
      await store.write(async (tx) => {
        await tx.putChannel(head(channel));
        await tx.appendEntry(channel, entry(0, 'a'));
      });
      await expect(
        store.write(async (tx) => {
          await tx.appendEntry(channel, entry(1, 'b'));
          await tx.appendEntry(channel, entry(1, 'c'));
        }),
      ).rejects.toThrow();
      await expect(store.write((tx) => tx.appendEntry(channel, entry(2, 'a')))).rejects.toThrow();
      expect((await store.read((tx) => tx.getEntries(channel, 0, 10))).map((e) => e.msgId)).toEqual(['a']);
    });

    it('rolls back everything a failed write did, including a channel it created', async () => {
      const channel = id('c_') as ChannelId;
      await expect(
        store.write(async (tx) => {
          await tx.putChannel(head(channel));
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await store.read((tx) => tx.getChannel(channel))).toBeUndefined();
      await store.write((tx) => tx.putChannel(head(channel, { epoch: 1 })));
      expect((await store.read((tx) => tx.getChannel(channel)))?.epoch).toBe(1);
    });

    it('does not show an open write transaction to readers', async () => {
      const channel = id('c_') as ChannelId;
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      let inside!: () => void;
      const entered = new Promise<void>((r) => {
        inside = r;
      });
      const w = store.write(async (tx) => {
        await tx.putChannel(head(channel));
        inside();
        await gate;
      });
      await entered;
      expect(await store.read((tx) => tx.getChannel(channel))).toBeUndefined();
      release();
      await w;
      expect(await store.read((tx) => tx.getChannel(channel))).toBeDefined();
    });

    it('keeps checkpoints by size and their cosignatures once each', async () => {
      const channel = id('c_') as ChannelId;
      await store.write(async (tx) => {
        await tx.putChannel(head(channel));
        await tx.putCheckpoint(channel, { size: 3, note: 'n3', issuedAt: 1 });
        await tx.putCheckpoint(channel, { size: 7, note: 'n7', issuedAt: 2 });
      });
      expect((await store.read((tx) => tx.getCheckpoint(channel)))?.size).toBe(7);
      expect((await store.read((tx) => tx.getCheckpoint(channel, 3)))?.note).toBe('n3');
      expect(await store.read((tx) => tx.getCheckpoint(channel, 4))).toBeUndefined();
      // The checkpoint that first covered an entry: the first one above its seq.
      expect((await store.read((tx) => tx.getCheckpointAfter(channel, 0)))?.size).toBe(3);
      expect((await store.read((tx) => tx.getCheckpointAfter(channel, 2)))?.note).toBe('n3');
      expect((await store.read((tx) => tx.getCheckpointAfter(channel, 3)))?.size).toBe(7);
      expect(await store.read((tx) => tx.getCheckpointAfter(channel, 7))).toBeUndefined();
      const [pa, pb] = [id('p_') as PartyId, id('p_') as PartyId];
      expect(await store.write((tx) => tx.addCosignature(channel, 3, '— w1 AAAA\n', pa))).toBe(true);
      expect(await store.write((tx) => tx.addCosignature(channel, 3, '— w1 AAAA\n', pb))).toBe(false);
      // Counted per party and per checkpoint (a line stored once counts for the party that stored it).
      await store.write(async (tx) => {
        await tx.lockCheckpoint(channel, 3);
        expect(await tx.countCosignatures(channel, 3, pa)).toBe(1);
        expect(await tx.countCosignatures(channel, 3, pb)).toBe(0);
        expect(await tx.countCosignatures(channel, 7, pa)).toBe(0);
      });
      expect((await store.read((tx) => tx.getCheckpoint(channel, 3)))?.cosignatures).toEqual(['— w1 AAAA\n']);
      expect((await store.read((tx) => tx.getCheckpoint(channel)))?.cosignatures).toEqual([]);
    });

    it('keeps party inboxes in cursor order with the entry bytes', async () => {
      const channel = id('c_') as ChannelId;
      const dev = id('d_') as DeviceId;
      const p1 = id('p_') as PartyId;
      const p2 = id('p_') as PartyId;
      const cursors = await store.write(async (tx) => {
        await tx.putChannel(head(channel));
        const out: number[] = [];
        for (let seq = 0; seq < 3; seq++) {
          await tx.appendEntry(channel, {
            seq,
            msgId: `m${seq}`,
            sender: dev,
            envelopeHash: bytes(32),
            receivedAt: 1,
            entry: Uint8Array.of(seq),
          });
          out.push(await tx.addInboxItem(seq === 1 ? p2 : p1, channel, seq));
        }
        return out;
      });
      expect(cursors[0]).toBeLessThan(cursors[1] as number);
      expect(cursors[1]).toBeLessThan(cursors[2] as number);
      const items = await store.read((tx) => tx.getInbox(p1, 0, 10));
      expect(items.map((i) => [i.seq, [...i.entry]])).toEqual([
        [0, [0]],
        [2, [2]],
      ]);
      expect(await store.read((tx) => tx.getInbox(p1, cursors[0] as number, 10))).toHaveLength(1);
      expect(await store.read((tx) => tx.getInbox(p1, 0, 1))).toHaveLength(1);
      expect(await store.read((tx) => tx.getInbox(id('p_') as PartyId, 0, 10))).toEqual([]);
      // For a device removed from the channel at seq 1: nothing logged after its removal.
      const former = id('d_') as DeviceId;
      await store.write(async (tx) => {
        await tx.putMember({ channel, device: former, party: p1, addedSeq: 0, removedSeq: 1 });
        await tx.putMember({ channel, device: dev, party: p1, addedSeq: 0, removedSeq: undefined });
      });
      expect((await store.read((tx) => tx.getInbox(p1, 0, 10, former))).map((i) => i.seq)).toEqual([0]);
      // A current member, or a device never in the channel (a new one, whose Welcome it is): all.
      expect((await store.read((tx) => tx.getInbox(p1, 0, 10, dev))).map((i) => i.seq)).toEqual([0, 2]);
      expect(
        (await store.read((tx) => tx.getInbox(p1, 0, 10, id('d_') as DeviceId))).map((i) => i.seq),
      ).toEqual([0, 2]);
    });

    it('stores perfect subtrees so RFC 9162 proofs come from O(log n) node reads', async () => {
      const channel = id('c_') as ChannelId;
      const leaves: Uint8Array[] = [];
      let state: TreeState = EMPTY_TREE;
      const roots: Uint8Array[] = [];
      await store.write(async (tx) => {
        await tx.putChannel(head(channel));
        for (let i = 0; i < 77; i++) {
          const leaf = leafHash(Uint8Array.of(i));
          leaves.push(leaf);
          const r = appendLeaf(state, leaf);
          state = r.state;
          roots.push(treeRoot(state));
          await tx.putNodes(channel, r.nodes);
        }
      });
      await expect(store.read((tx) => tx.readNodes(channel, [{ level: 0, index: 77 }]))).rejects.toThrow();
      for (const [m, n] of [
        [0, 1],
        [5, 6],
        [13, 64],
        [63, 64],
        [64, 77],
        [76, 77],
        [30, 50],
      ] as const) {
        const b = new ProofBuilder(channel, new NodeCache(0));
        b.needInclusion(m, n);
        await store.read((tx) => b.load(tx));
        expect(
          verifyInclusion(leaves[m] as Uint8Array, m, n, b.inclusion(m, n), roots[n - 1] as Uint8Array),
        ).toBe(true);
      }
      for (const [m, n] of [
        [1, 77],
        [32, 64],
        [7, 8],
        [50, 77],
        [64, 77],
      ] as const) {
        const b = new ProofBuilder(channel, new NodeCache(0));
        b.needConsistency(m, n);
        await store.read((tx) => b.load(tx));
        const p = b.consistency(m, n);
        expect(verifyConsistency(m, n, p, roots[m - 1] as Uint8Array, roots[n - 1] as Uint8Array)).toBe(true);
      }
    });
  });
}
