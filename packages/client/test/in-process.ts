/**
 * An in-process relay (its Hono app on a SQLite store) and SDK devices that reach it through a
 * fetch the test may wrap: the shared set-up of the SDK tests that need no real sockets.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRelay, openSqliteStore, resolveConfig } from '@backchannel/server';
import type { PartyId } from '@backchannel/protocol';
import type { Channel, DraftEvent } from '../src/sdk/channel.ts';
import { Backchannel, type BackchannelOptions } from '../src/sdk/client.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../src/sdk/mls-crypto.node.ts';
import { createMlsFactory } from '../src/sdk/mls-factory.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';

export const RELAY_URL = 'http://relay.test';
export const random = (n: number) => new Uint8Array(randomBytes(n));
type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export function inProcessRelay(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  /** The relay's signing seed: tests play a relay that signs what it should not. */
  const seed = random(32);
  const relay = createRelay({
    config: resolveConfig({ dataDir: dir, verifyThreads: 0, relayName: 'relay.test' }),
    store: openSqliteStore({ path: join(dir, 'relay.db') }),
    seed,
  });
  const fetch: Fetch = async (input, init) => relay.app.request(input, init);
  /** A device with its own encrypted store; `wrap` sees every request and answer of this device. */
  const device = (
    name: string,
    opts: {
      wrap?: (input: string, init: RequestInit, res: Response) => Promise<Response>;
    } & Partial<BackchannelOptions> = {},
  ) => {
    const { wrap, ...rest } = opts;
    return Backchannel.open({
      // Only when the test gives none: a second handle would wait for the first (one process per
      // device store at a time).
      store:
        rest.store ??
        SqliteLocalStore.open({
          path: join(dir, name, 'device.db'),
          passphrase: name,
          kdf: { N: 1 << 10, r: 8, p: 1 },
        }),
      mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
      relays: [RELAY_URL],
      random,
      signatures: ed25519Node,
      sha256: sha256Node,
      fetch:
        wrap === undefined
          ? fetch
          : async (input: string, init: RequestInit) => wrap(input, init, await fetch(input, init)),
      updateEveryMessages: 1_000_000,
      ...rest,
    });
  };
  return { dir, relay, seed, fetch, device };
}

/** The texts of the messages in a channel's timeline, in order. */
export function messageTexts(ch: Pick<Channel, 'view'>): string[] {
  return ch.view.timeline.flatMap((r) => ('event' in r && r.event.kind === 'message' ? [r.event.text] : []));
}

/** Parties A and B with one device each; A reaches out, B accepts, both have synced. */
export async function openChannel(a: Backchannel, b: Backchannel) {
  await a.createParty({ partyName: 'A', deviceName: 'a', relays: [RELAY_URL] });
  const B = await b.createParty({ partyName: 'B', deviceName: 'b', role: 'principal', relays: [RELAY_URL] });
  return reachOutAndAccept(a, b, B.party);
}

/** A reaches out to party `to`, whose device `b` accepts; both have synced. */
export async function reachOutAndAccept(a: Backchannel, b: Backchannel, to: PartyId) {
  const chA = await a.outreach(to, 'hello');
  await b.checkInbox();
  const chB = await b.channel(chA.id);
  await chB.sync();
  await chB.send({ kind: 'channel.accept' } as DraftEvent);
  await b.outbox.flush();
  await chA.sync();
  return { chA, chB };
}
