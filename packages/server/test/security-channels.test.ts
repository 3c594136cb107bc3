/**
 * The channel and transcript findings of the relay's security review, each as the attack it
 * stops, against a real relay (createRelay + app.request) on SQLite and, when it is up, on
 * PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChannelId, SignedEnvelope } from '@backchannel/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayConfigInput, resolveConfig } from '../src/config.ts';
import { createRelay } from '../src/relay.ts';
import { openPostgresStore } from '../src/store/postgres/pg-store.ts';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import {
  Caller,
  commit,
  makeDevice,
  makeParty,
  newChannel,
  seedOf,
  type TestDevice,
  type TestParty,
  type TestRelay,
} from './helpers.ts';
import { dropSchema, PG_URL, servicesUp, uniqueName } from './services.ts';

const pgUp = await servicesUp('security-channels.test.ts', ['postgres']);

type StoreKind = 'sqlite' | 'postgres';

async function relayOn(kind: StoreKind, config: RelayConfigInput = {}): Promise<TestRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-sec-'));
  const schema = uniqueName('bc_sec');
  const store: Store =
    kind === 'sqlite'
      ? openSqliteStore({ path: join(dir, 'relay.db') })
      : await openPostgresStore({ url: PG_URL, schema, max: 4 });
  const core = createRelay({
    config: resolveConfig({ dataDir: dir, verifyThreads: 0, ...config }),
    store,
    seed: seedOf(`relay ${dir}`),
  });
  const caller = new Caller(async (path, init) => core.app.request(path, init));
  return {
    core,
    caller,
    dir,
    async close() {
      await core.close();
      if (kind === 'postgres') await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The raw text of an append answer (for byte comparisons) and its parsed body. */
async function _appendRaw(r: TestRelay, env: SignedEnvelope): Promise<{ status: number; text: string }> {
  const res = await r.core.app.request(`/v1/channels/${env.body.channel}/envelopes`, {
    method: 'POST',
    headers: { 'content-type': 'application/cbor' },
    body: env.wire as Uint8Array<ArrayBuffer>,
  });
  return { status: res.status, text: await res.text() };
}

const kinds: StoreKind[] = pgUp ? ['sqlite', 'postgres'] : ['sqlite'];

describe.each(kinds)('%s', (kind) => {
  let r: TestRelay;
  let A: TestParty;
  let B: TestParty;
  let aAdmin: TestDevice;
  let aStaff: TestDevice;
  let bPrincipal: TestDevice;
  let bNegotiator: TestDevice;

  beforeAll(async () => {
    r = await relayOn(kind);
    A = makeParty('A');
    B = makeParty('B');
    aAdmin = makeDevice(A, 'a-admin', 'admin');
    aStaff = makeDevice(A, 'a-staff', 'staff');
    bPrincipal = makeDevice(B, 'b-principal', 'principal');
    bNegotiator = makeDevice(B, 'b-negotiator', 'negotiator');
    await r.caller.publishParty(A, [aAdmin, aStaff]);
    await r.caller.publishParty(B, [bPrincipal, bNegotiator]);
  });
  afterAll(() => r.close());

  async function openChannel(): Promise<ChannelId> {
    const ch = newChannel();
    const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [aStaff, bPrincipal], [], [B.party]));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return ch;
  }

  describe('an opening commit cannot leave a membership the rules forbid', () => {
    it('refuses an opening commit that removes its creator, and the channel is not created', async () => {
      const ch = newChannel();
      const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [bPrincipal], [aAdmin]));
      expect(res.status).toBe(422);
      expect(res.body.error?.code).toBe('MEMBER_INVALID');
      // Nothing was logged: B's principal, which the commit would have left alone in it, is no member.
      const read = await r.caller.get(`/v1/channels/${ch}/entries`, bPrincipal);
      expect(read.body).toMatchObject({ error: { code: 'NOT_A_MEMBER' } });
      // The channel id is still free for a valid opening.
      expect((await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [bPrincipal]))).status).toBe(201);
    });

    it('refuses an opening commit whose only change is removing its creator', async () => {
      const ch = newChannel();
      const res = await r.caller.append(aAdmin, commit(aAdmin, ch, 0, [], [aAdmin]));
      expect(res.body.error?.code).toBe('MEMBER_INVALID');
    });

    it('a member may still remove itself later (the rule is about the opening only)', async () => {
      const ch = await openChannel();
      const res = await r.caller.append(aStaff, commit(aStaff, ch, 1, [], [aStaff]));
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    });
  });
});
