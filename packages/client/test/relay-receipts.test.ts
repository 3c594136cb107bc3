/**
 * The SDK checks each relay receipt before keeping it as proof of acceptance: one that names
 * another envelope or does not verify under the pinned relay key is kept apart (rr-invalid:…)
 * as evidence, never as a receipt the accountable-mediator checks would rely on.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRelay, openSqliteStore, resolveConfig } from '@backchannel/server';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../src/sdk/channel.ts';
import { Backchannel } from '../src/sdk/client.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../src/sdk/mls-crypto.node.ts';
import { createMlsFactory } from '../src/sdk/mls-factory.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';

const URL = 'http://relay.test';
const random = (n: number) => new Uint8Array(randomBytes(n));

describe('relay receipts', () => {
  it('keeps the receipts that vouch for what was sent, and sets apart those that do not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-receipts-'));
    const relay = createRelay({
      config: resolveConfig({ dataDir: dir, verifyThreads: 0, relayName: 'relay.test' }),
      store: openSqliteStore({ path: join(dir, 'relay.db') }),
      seed: random(32),
    });
    let tamper: 'swap' | 'garble' | undefined;
    let previous: string | undefined;
    const device = (name: string) =>
      Backchannel.open({
        store: SqliteLocalStore.open({
          path: join(dir, name, 'device.db'),
          passphrase: name,
          kdf: { N: 1 << 10, r: 8, p: 1 },
        }),
        mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
        relays: [URL],
        random,
        signatures: ed25519Node,
        sha256: sha256Node,
        fetch: async (input, init) => {
          const res = await relay.app.request(input, init);
          if (name !== 'A' || init?.method !== 'POST' || !input.includes('/envelopes')) return res;
          const body = (await res.json()) as { receipt?: string };
          const own = body.receipt;
          // Another envelope's receipt, or a garbled one, when the test asks for it.
          if (tamper === 'swap' && previous !== undefined) body.receipt = previous;
          if (tamper === 'garble' && own !== undefined) body.receipt = `${own.slice(0, -6)}AAAAAA`;
          if (own !== undefined) previous = own;
          return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
        },
        updateEveryMessages: 1_000_000,
      });
    const a = await device('A');
    const b = await device('B');
    try {
      await a.createParty({ partyName: 'A', deviceName: 'a', relays: [URL] });
      const B = await b.createParty({ partyName: 'B', deviceName: 'b', role: 'principal', relays: [URL] });
      const chA = await a.outreach(B.party, 'hello');
      await b.checkInbox();
      const chB = await b.channel(chA.id);
      await chB.sync();
      await chB.send({ kind: 'channel.accept' } as DraftEvent);
      await b.outbox.flush();
      await chA.sync();
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        ids.push(...(await chA.sendMany([{ kind: 'message', text: `m${i}` } as DraftEvent])));
        tamper = i === 2 ? 'swap' : i === 4 ? 'garble' : undefined;
        await a.outbox.flush();
      }
      const kept = (await a.store.keys(`rr:${chA.id}:`)).map((k) => k.split(':')[2]);
      const apart = (await a.store.keys(`rr-invalid:${chA.id}:`)).map((k) => k.split(':')[2]);
      expect(apart.sort()).toEqual([ids[2], ids[4]].sort());
      // (A's outreach has its receipt kept too.)
      expect(ids.filter((id) => kept.includes(id))).toEqual(ids.filter((_, i) => i !== 2 && i !== 4));
      const why = await a.store.get(`rr-invalid:${chA.id}:${ids[2]}`);
      expect(JSON.parse(new TextDecoder().decode(why))).toMatchObject({
        problem: 'the receipt names another envelope',
      });
    } finally {
      a.close();
      b.close();
    }
  });
});
