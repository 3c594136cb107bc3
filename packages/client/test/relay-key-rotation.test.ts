/**
 * The relay rotates its checkpoint key (transcript/rotation.ts): started with its previous key
 * too, it serves a rotation statement signed by both at /v1/relay. Devices that pinned the old
 * key move to the new one when they first meet a checkpoint or receipt signed by it; the old key
 * stays trusted for what it signed. A new key with no statement from the pinned key is a fork.
 */
import { join } from 'node:path';
import { createRelay, openSqliteStore, resolveConfig } from '@backchannel/server';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { checkRelayReceipt, publicKeysDocument } from '../src/sdk/proofs.ts';
import { inProcessRelay, messageTexts, openChannel, random } from './in-process.ts';

/** An in-process relay whose process can be replaced (same store), as an operator restarts it. */
function replaceableRelay() {
  const w = inProcessRelay('bc-rotation-');
  const config = resolveConfig({ dataDir: w.dir, verifyThreads: 0, relayName: 'relay.test' });
  let app = w.relay.app;
  /** While set, GET /v1/relay fails as a network error would. */
  const cut = { info: false };
  const fetch = async (input: string, init: RequestInit) => {
    if (cut.info && input.endsWith('/v1/relay')) throw new TypeError('fetch failed');
    return app.request(input, init);
  };
  const store = openSqliteStore({ path: join(w.dir, 'relay.db') });
  /** Restarts the relay with `seed`, and the retiring key's seed when it is a rotation. */
  const restart = (seed: Uint8Array, previousSeed?: Uint8Array | Uint8Array[]) => {
    const core = createRelay({
      config,
      store,
      seed,
      ...(previousSeed === undefined ? {} : { previousSeed }),
    });
    app = core.app;
    return core;
  };
  return { ...w, device: (name: string) => w.device(name, { fetch }), restart, cut };
}

/** A and B with a channel open, on a relay that can be restarted with other keys. */
async function openedOnReplaceableRelay() {
  const r = replaceableRelay();
  const a = await r.device('a');
  const b = await r.device('b');
  return { r, a, b, ...(await openChannel(a, b)) };
}

describe('relay checkpoint key rotation', () => {
  it('devices move to the new key by the statement signed by both; what the old key signed still verifies', {
    timeout: 60_000,
  }, async () => {
    const { r, a, b, chA, chB } = await openedOnReplaceableRelay();
    const oldKey = a.relayKey as string;
    const before = await chA.send({ kind: 'message', text: 'before the rotation' } as DraftEvent);
    await a.outbox.flush();
    await chB.sync();

    const seed = random(32);
    const core = r.restart(seed, r.seed);
    const newKey = core.signer.vkey;
    expect(newKey).not.toBe(oldKey);

    // A's next receipt is signed by the new key: A asks for the statement, moves, and keeps the
    // receipt as valid (not as evidence against the relay).
    await chA.send({ kind: 'message', text: 'after the rotation' } as DraftEvent);
    await a.outbox.flush();
    expect(a.relayKey).toBe(newKey);
    expect(a.relayKeys).toEqual([newKey, oldKey]);
    expect(await a.store.keys('rr-invalid:')).toEqual([]);
    // B meets the new key on a checkpoint: it moves too, and reads on.
    await chB.sync();
    expect(b.relayKey).toBe(newKey);
    expect(chB.record.checkpointSize).toBe(chB.record.nextSeq);
    expect(messageTexts(chB)).toEqual(['before the rotation', 'after the rotation']);
    // Reopened, the device still trusts both (on disk).
    b.close();
    const b2 = await r.device('b');
    expect(b2.relayKeys).toEqual([newKey, oldKey]);

    // A receipt signed by the old key checks against a checkpoint signed by the new one.
    await chA.sync();
    expect((await checkRelayReceipt(a, chA.id, before)).check).toMatchObject({ kind: 'delivered' });
    // A verifier is handed both keys.
    expect(publicKeysDocument(a, chA.view.state.parties).relayKeys).toEqual([newKey, oldKey]);
    a.close();
    b2.close();
  });

  it('a device two rotations behind follows the chain of statements, oldest first', {
    timeout: 60_000,
  }, async () => {
    const { r, a, b, chA, chB } = await openedOnReplaceableRelay();
    const key1 = a.relayKey as string;
    const seed2 = random(32);
    const key2 = r.restart(seed2, r.seed).signer.vkey;
    await chA.send({ kind: 'message', text: 'under the second key' } as DraftEvent);
    await a.outbox.flush();
    await chA.sync();
    expect(a.relayKeys).toEqual([key2, key1]);
    // B was away for both rotations.
    const key3 = r.restart(random(32), [r.seed, seed2]).signer.vkey;
    await chA.send({ kind: 'message', text: 'under the third key' } as DraftEvent);
    await a.outbox.flush();
    expect(a.relayKeys).toEqual([key3, key2, key1]);
    await chB.sync();
    expect(b.relayKeys).toEqual([key3, key2, key1]);
    expect(chB.record.checkpointSize).toBe(chB.record.nextSeq);
    expect(messageTexts(chB)).toEqual(['under the second key', 'under the third key']);
    a.close();
    b.close();
  });

  it('a receipt by the new key waits in the outbox while the statement cannot be fetched, and is not kept as evidence', {
    timeout: 60_000,
  }, async () => {
    const { r, a, b, chA } = await openedOnReplaceableRelay();
    const core = r.restart(random(32), r.seed);
    r.cut.info = true;
    const sent = await chA.send({ kind: 'message', text: 'during the outage of /v1/relay' } as DraftEvent);
    await a.outbox.flush().catch(() => undefined);
    // The relay took it, but its receipt could not be checked: nothing is put on record, and the
    // item waits to be posted again (the answer, receipt included, comes again: idempotent).
    expect(await a.outbox.pending()).toBe(1);
    expect(await a.store.keys('rr-invalid:')).toEqual([]);
    r.cut.info = false;
    await a.outbox.flush();
    expect(await a.outbox.pending()).toBe(0);
    expect(a.relayKey).toBe(core.signer.vkey);
    expect(await a.store.keys('rr-invalid:')).toEqual([]);
    expect(await a.store.get(`rr:${chA.id}:${sent}`)).toBeDefined();
    a.close();
    b.close();
  });

  it('a new key without a statement from the pinned key is a fork, and so is a statement from another key', {
    timeout: 60_000,
  }, async () => {
    const { r, a, b, chA } = await openedOnReplaceableRelay();
    const pinned = a.relayKey;
    // Another key, no statement: a relay (or whoever holds its database) signing as someone else.
    r.restart(random(32));
    await chA.send({ kind: 'message', text: 'one' } as DraftEvent);
    await a.outbox.flush();
    await expect(chA.sync()).rejects.toMatchObject({ code: 'FORK_DETECTED' });
    expect(a.relayKey).toBe(pinned);
    // A statement signed by both of its keys, but the old one is not the key this device pinned.
    r.restart(random(32), random(32));
    const chB = await b.channel(chA.id);
    const refused = await chB.sync().catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'FORK_DETECTED' });
    expect(String((refused as Error).message)).toContain('no rotation statement from the pinned key');
    expect(b.relayKey).toBe(pinned);
    a.close();
    b.close();
  });
});
