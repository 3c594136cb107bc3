/**
 * Unit tests: config layering, request signing bytes, the replay cache, node crypto, group commit,
 * the PostgreSQL store's start deadline.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type DeviceId,
  type PartyId,
  encodeEntry,
  keyPairFromSeed,
  nobleEd25519,
  requestSigningBody,
  labelledMessage,
  signWithLabel,
} from '@backchannel/protocol';
import { encodeRelayReceiptBytes, signRelayReceipts } from '@backchannel/protocol/attest';
import { leafHash } from '@backchannel/protocol/transcript';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEntryFast } from '../src/channels/entry-codec.ts';
import { isTransientPgError } from '../src/store/postgres/pg-errors.ts';
import { signReceipts } from '../src/channels/receipt-codec.ts';
import {
  ConfigError,
  configFromEnv,
  DEFAULT_RELAY_NAME,
  parseConfigFile,
  relayNameWarning,
  resolveConfig,
} from '../src/config.ts';
import edgeVectors from '../../protocol/test/vectors/ed25519-edge.json' with { type: 'json' };
import { ed25519Backend, leafHashNode, nodeEd25519, sha256 } from '../src/ed25519.node.ts';
import { fromB64u, toB64u } from '../src/bytes.node.ts';
import { withStartDeadline } from '../src/store/postgres/pg-store.ts';
import { ReplayCache, requestMessage } from '../src/http/auth.ts';
import { RateLimiter } from '../src/http/rate-limit.ts';
import type { RelayError } from '../src/errors.ts';
import { DeviceDirectory } from '../src/directory/devices.ts';
import { createRelay } from '../src/relay.ts';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import {
  Caller,
  commit,
  envelope,
  expectAckedOnce,
  makeDevice,
  makeParty,
  newChannel,
  readLog,
  seedOf,
  testRelay,
} from './helpers.ts';

describe('config', () => {
  it('layers defaults < file < environment < flags and validates', () => {
    const c = resolveConfig(
      parseConfigFile(
        '{"port": 1000, "relayName": "file.example", "rateLimits": {"device": {"perSecond": 5, "burst": 9}}}',
        'f',
      ),
      configFromEnv({ PORT: '2000', BACKCHANNEL_DATA: '/tmp/x', LOG_LEVEL: 'warn' }),
      { host: '0.0.0.0' },
    );
    expect(c).toMatchObject({
      port: 2000,
      host: '0.0.0.0',
      dataDir: '/tmp/x',
      relayName: 'file.example',
      logLevel: 'warn',
      rateLimits: { device: { perSecond: 5, burst: 9 }, ip: { perSecond: 2000, burst: 4000 } },
    });
    expect(resolveConfig().port).toBe(8787);
    // A chain of key rotations: several previous key files, oldest first, separated as in PATH.
    expect(
      configFromEnv({ BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE: '/k/one' }).previousCheckpointKeyFile,
    ).toBe('/k/one');
    expect(
      resolveConfig(configFromEnv({ BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE: '/k/one:/k/two' }))
        .previousCheckpointKeyFile,
    ).toEqual(['/k/one', '/k/two']);
  });

  it('refuses invalid values, unknown keys, __proto__ and unavailable stores with the field named', () => {
    expect(() => resolveConfig({ port: 70_000 })).toThrow(/port/);
    expect(() => resolveConfig({ nope: 1 } as never)).toThrow(ConfigError);
    expect(() => resolveConfig({ relayName: 'has space' })).toThrow(/relayName/);
    expect(() => parseConfigFile('{"__proto__": {"port": 1}}', 'f')).toThrow(/__proto__/);
    expect(() => parseConfigFile('[1]', 'f')).toThrow(ConfigError);
    expect(() => configFromEnv({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => resolveConfig({ store: 'mysql://x' })).toThrow(/store/);
    expect(() => resolveConfig({ fanout: 'kafka://x' })).toThrow(/fanout/);
    expect(() => resolveConfig({ fanout: 'nats://127.0.0.1:4222' })).toThrow(/shared store/);
    const cluster = resolveConfig({ store: 'postgres://u@db:5432/relay', fanout: 'nats://mq:4222' });
    expect([cluster.store, cluster.fanout]).toEqual(['postgres://u@db:5432/relay', 'nats://mq:4222']);
    expect(configFromEnv({ BACKCHANNEL_STORE: 'postgres://db/x', BACKCHANNEL_FANOUT: 'nats://mq' })).toEqual({
      store: 'postgres://db/x',
      fanout: 'nats://mq',
    });
  });
});

describe('the default relay name', () => {
  it('is warned about only when the relay is reachable beyond this machine', () => {
    const at = (host: string, relayName = DEFAULT_RELAY_NAME) => relayNameWarning({ host, relayName });
    for (const host of ['127.0.0.1', '127.0.0.53', '::1', 'localhost'])
      expect(at(host), host).toBeUndefined();
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'relay.example.org'])
      expect(at(host), host).toContain('give it a name of its own');
    expect(at('0.0.0.0', 'relay.ministry.example')).toBeUndefined();
    // What resolveConfig gives without a name is the default the warning is about.
    expect(resolveConfig({ host: '0.0.0.0' }).relayName).toBe(DEFAULT_RELAY_NAME);
  });
});

describe('signing and hashing on native code', () => {
  it('uses libsodium on this machine', () => {
    expect(ed25519Backend).toBe('libsodium');
  });

  it.each(['libsodium', 'openssl'] as const)(
    '%s: refuses every signature libraries disagree on',
    (backend) => {
      const suite = nodeEd25519({ backend });
      const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
      for (const r of edgeVectors.refused)
        expect(suite.verify(hex(r.signature), hex(r.message), hex(r.publicKey)), r.why).toBe(false);
    },
  );

  it.each(['libsodium', 'openssl'] as const)(
    '%s: verifies exactly what protocol signs, and signs byte-identically to noble',
    (backend) => {
      const suite = nodeEd25519({ backend });
      const kp = keyPairFromSeed(seedOf('k'));
      const msg = randomBytes(100);
      const sig = signWithLabel(kp.secretKey, 'envelope', msg, suite);
      expect(
        Buffer.from(sig).equals(Buffer.from(signWithLabel(kp.secretKey, 'envelope', msg, nobleEd25519))),
      ).toBe(true);
      expect(suite.verify(sig, labelledMessage('envelope', msg), kp.publicKey)).toBe(true);
      sig[0] = (sig[0] as number) ^ 1;
      expect(suite.verify(sig, labelledMessage('envelope', msg), kp.publicKey)).toBe(false);
      expect(suite.verify(new Uint8Array(10), msg, kp.publicKey)).toBe(false);
      expect(suite.verify(sig, msg, new Uint8Array(32))).toBe(false);
    },
  );

  it('builds the request message exactly as protocol requestSigningBody, relay name included', () => {
    const body = randomBytes(300);
    const msg = Buffer.from(requestMessage('post', '/v1/x?y=1', 123, body, 'relay.example'));
    expect(
      msg.equals(
        Buffer.from(
          labelledMessage('request', requestSigningBody('POST', '/v1/x?y=1', 123, body, 'relay.example')),
        ),
      ),
    ).toBe(true);
    expect(msg.equals(Buffer.from(requestMessage('post', '/v1/x?y=1', 123, body, 'other.example')))).toBe(
      false,
    );
  });

  it('hashes leaves like protocol and codes base64url strictly', () => {
    const e = encodeEntry({
      v: 1,
      seq: 3,
      channel: newChannel(),
      sender: `d_${'A'.repeat(22)}` as never,
      receivedAt: 5,
      envelope: randomBytes(40),
    });
    expect(Buffer.from(leafHashNode(e)).equals(Buffer.from(leafHash(e)))).toBe(true);
    const b = randomBytes(31);
    expect(Buffer.from(fromB64u(toB64u(b)) as Uint8Array).equals(b)).toBe(true);
    expect(fromB64u('A')).toBeUndefined();
    expect(fromB64u('AB')).toBeUndefined(); // non-canonical trailing bits
    expect(fromB64u('AA==')).toBeUndefined();
    expect(fromB64u('a+b/')).toBeUndefined();
  });
});

describe('entry encoding', () => {
  it.each([0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER])(
    'writes the same canonical bytes as protocol encodeEntry (seq/receivedAt %d)',
    (n) => {
      for (const len of [0, 1, 23, 24, 255, 256, 70_000]) {
        const e = {
          v: 1 as const,
          seq: n,
          channel: newChannel(),
          sender: `d_${randomBytes(16).toString('base64url')}` as never,
          receivedAt: n,
          envelope: new Uint8Array(randomBytes(len)),
        };
        expect(Buffer.from(encodeEntryFast(e)).equals(Buffer.from(encodeEntry(e)))).toBe(true);
      }
    },
  );
});

describe('group commit, pipelined', () => {
  // readDelayMs: reads answered a macrotask later, so a batch is still being built (waiting on a
  // read) when the one before it fails (review finding: it must not cache state built on it).
  it.each([0, 150])(
    'a commit that fails fails the batches built behind it; retries then land once each, with no gap (reads after %i ms)',
    async (readDelayMs) => {
      const dir = mkdtempSync(join(tmpdir(), 'bc-pipe-'));
      const inner = openSqliteStore({ path: join(dir, 'relay.db') });
      expect(inner.pipelined).toBe(true);
      const ch = newChannel();
      let poison = false;
      // Poisons one batch: a statement that fails on the writer thread, at its COMMIT, after the
      // appender has already built the next batch on top of it.
      const store: Store = {
        kind: 'sqlite',
        shared: false,
        pipelined: true,
        read: async (fn) => {
          if (readDelayMs > 0) await new Promise((r) => setTimeout(r, readDelayMs));
          return inner.read(fn);
        },
        write: (fn) =>
          inner.write(async (tx) => {
            const out = await fn(tx);
            if (poison) {
              poison = false;
              // Slow work first, so the next batch is surely built before this commit fails.
              const slow = Array.from({ length: 20_000 }, (_, index) => ({
                level: 99,
                index,
                hash: new Uint8Array(32),
              }));
              await tx.putNodes(ch, slow);
              await tx.appendEntry(ch, {
                seq: 0,
                msgId: 'poison',
                sender: 'd_x' as never,
                envelopeHash: new Uint8Array(32),
                receivedAt: 0,
                entry: new Uint8Array(1),
              });
            }
            return out;
          }),
        close: () => inner.close(),
      };
      const core = createRelay({
        config: resolveConfig({ dataDir: dir, batch: { maxItems: 16 } }),
        store,
        seed: seedOf('pipe'),
      });
      const caller = new Caller(async (path, init) => core.app.request(path, init));
      const P = makeParty('P');
      const d = makeDevice(P, 'd', 'admin');
      await caller.publishParty(P, [d]);
      await caller.append(d, commit(d, ch, 0));
      const sender = await core.store.read((tx) => tx.getDevice(d.device));
      if (sender === undefined) throw new Error('no device');
      const envs = Array.from({ length: 200 }, () => envelope(d, ch));
      const submit = (env: (typeof envs)[number]) =>
        core.appender.submit({ env, sender, envelopeHash: sha256(env.wire) }).then(
          (a) => ({ ok: true as const, a }),
          (e: unknown) => ({ ok: false as const, e }),
        );
      poison = true;
      const first = await Promise.all(envs.map(submit));
      // The poisoned batch (16) and at least the one built behind it.
      const refused = first.filter((o) => !o.ok).length;
      expect(refused).toBeGreaterThan(16);
      // Retryable either way: the poisoned batch's own failure, or refused behind it.
      for (const o of first)
        if (!o.ok) expect(['INTERNAL', 'STORE_UNAVAILABLE']).toContain((o.e as RelayError).code);
      // Everyone retries (idempotent by msgId): the acknowledged keep their seq, the others land now.
      const acked = new Map<string, number>();
      first.forEach((o, i) => {
        if (o.ok) acked.set(envs[i]?.body.msgId as string, o.a.seq);
      });
      const again = await Promise.all(envs.map(submit));
      again.forEach((o, i) => {
        if (!o.ok) throw o.e;
        const id = envs[i]?.body.msgId as string;
        if (acked.has(id)) expect(o.a).toMatchObject({ seq: acked.get(id), duplicate: true });
        acked.set(id, o.a.seq);
      });
      const log = await readLog(caller, ch, d);
      expectAckedOnce(log, acked);
      const tip = await core.store.read((tx) => tx.getCheckpoint(ch));
      expect(tip?.size).toBe(201);
      await core.close();
      rmSync(dir, { recursive: true, force: true });
    },
  );
});

describe('relay receipt encoding', () => {
  const suite = nodeEd25519();
  const seed = new Uint8Array(randomBytes(32));
  const body = fc.record({
    v: fc.constant(1 as const),
    channel: fc.string({ unit: 'grapheme', maxLength: 40 }),
    msgId: fc.string({ unit: 'grapheme', maxLength: 40 }),
    envelopeHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    seq: fc.oneof(
      fc.nat(),
      fc.constantFrom(23, 24, 255, 256, 65_535, 65_536, 2 ** 32, Number.MAX_SAFE_INTEGER),
    ),
    receivedAt: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  });
  it('writes the same bytes as protocol signRelayReceipts + encodeRelayReceiptBytes, for any batch size', () => {
    fc.assert(
      fc.property(fc.array(body, { minLength: 1, maxLength: 70 }), (raw) => {
        const bodies = raw.map((b) => ({ ...b, channel: b.channel as never, msgId: b.msgId as never }));
        const fast = signReceipts(bodies, seed, suite);
        const reference = signRelayReceipts(bodies, seed, suite).map(encodeRelayReceiptBytes);
        expect(fast.map((b) => Buffer.from(b).toString('hex'))).toEqual(
          reference.map((b) => Buffer.from(b).toString('hex')),
        );
      }),
      { numRuns: 150 },
    );
  });
});

describe('replay cache and rate limiter', () => {
  it('refuses a signature seen before, and anything at or below the floor once it had to evict', () => {
    const c = new ReplayCache(3, 600_000);
    const now = 1_000_000;
    expect(c.check('d1', 's1', now - 10, now)).toBe('ok');
    expect(c.check('d1', 's1', now - 10, now)).toBe('replay');
    expect(c.check('d1', 's2', now - 5, now)).toBe('ok');
    expect(c.check('d1', 's3', now - 3, now)).toBe('ok');
    expect(c.check('d1', 's4', now - 1, now)).toBe('ok'); // evicts s1, d1's floor = now - 10
    expect(c.size).toBe(3);
    expect(c.check('d1', 's1', now - 10, now)).toBe('too-old');
    expect(c.check('d1', 's5', now - 11, now)).toBe('too-old');
    expect(c.check('d1', 's6', now, now)).toBe('ok');
    // entries older than the window are forgotten (the skew check refuses them anyway)
    expect(c.check('d1', 's7', now + 700_000, now + 700_000)).toBe('ok');
    expect(c.size).toBe(1);
  });

  it("keeps a floor per device: one device's evictions never refuse another's requests", () => {
    const c = new ReplayCache(2, 600_000);
    const now = 1_000_000;
    for (let i = 0; i < 5; i++) expect(c.check('fast', `f${i}`, now + 60_000 + i, now)).toBe('ok');
    expect(c.check('other', 'o1', now - 1000, now)).toBe('ok'); // evicts from 'fast', not a shared floor
    expect(c.check('fast', 'f0', now + 60_000, now)).toBe('too-old');
    expect(c.check('other', 'o2', now - 2000, now)).toBe('ok'); // evicts fast's last: fast keeps its floor
    expect(c.check('fast', 'f4', now + 60_004, now)).toBe('too-old');
    expect(c.check('other', 'o3', now - 3000, now)).toBe('ok'); // only 'other' left: evicts its own o1
    expect(c.check('other', 'o1', now - 1000, now)).toBe('too-old');
    expect(c.check('other', 'o2', now - 2000, now)).toBe('too-old');
    expect(c.check('other', 'o4', now, now)).toBe('ok');
    expect(c.size).toBe(2);
  });

  it('refills token buckets over time and says how long to wait', () => {
    const l = new RateLimiter({ perSecond: 10, burst: 2 });
    expect(l.take('k', 0)).toBe(0);
    expect(l.take('k', 0)).toBe(0);
    expect(l.take('k', 0)).toBe(100);
    expect(l.take('k', 100)).toBe(0);
    expect(l.take('other', 0)).toBe(0);
  });
});

describe('group commit', () => {
  it('writes concurrent appends in few batches with contiguous seqs, one checkpoint per batch', async () => {
    const r = await testRelay();
    const P = makeParty('P');
    const d = makeDevice(P, 'd', 'admin');
    await r.caller.publishParty(P, [d]);
    const ch = newChannel();
    await r.caller.append(d, commit(d, ch, 0));
    const sender = await r.core.store.read((tx) => tx.getDevice(d.device));
    if (sender === undefined) throw new Error('no device');
    const envs = Array.from({ length: 300 }, () => envelope(d, ch));
    const results = await Promise.all(
      envs.map((env) => r.core.appender.submit({ env, sender, envelopeHash: sha256(env.wire) })),
    );
    expect(results.map((x) => x.seq).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    const batches = (await r.core.metrics.batchSize.get()).values.find(
      (v) => v.metricName === 'bc_append_batch_size_count',
    )?.value as number;
    expect(batches).toBeLessThanOrEqual(4);
    const sizes = new Set(results.map((x) => x.size));
    expect(sizes.size).toBe(batches - 1);
    for (const size of sizes)
      expect(await r.core.store.read((tx) => tx.getCheckpoint(ch, size))).toBeDefined();
    await r.close();
  });

  it('rejects a whole batch whose transaction fails, then carries on from the durable state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-fail-'));
    const inner = openSqliteStore({ path: join(dir, 'relay.db') });
    let failNext = false;
    const store: Store = {
      kind: 'sqlite',
      shared: false,
      read: (fn) => inner.read(fn),
      write: (fn) =>
        inner.write(async (tx) => {
          const out = await fn(tx);
          if (failNext) {
            failNext = false;
            throw new Error('disk on fire');
          }
          return out;
        }),
      close: () => inner.close(),
    };
    const core = createRelay({ config: resolveConfig({ dataDir: dir }), store, seed: seedOf('fail') });
    const caller = new Caller(async (path, init) => core.app.request(path, init));
    const P = makeParty('P');
    const d = makeDevice(P, 'd', 'admin');
    await caller.publishParty(P, [d]);
    const ch = newChannel();
    await caller.append(d, commit(d, ch, 0));
    failNext = true;
    const failed = await Promise.all([caller.append(d, envelope(d, ch)), caller.append(d, envelope(d, ch))]);
    expect(failed.map((f) => [f.status, f.body.error?.code])).toEqual([
      [500, 'INTERNAL'],
      [500, 'INTERNAL'],
    ]);
    const ok = await caller.append(d, envelope(d, ch));
    expect(ok.body.seq).toBe(1);
    expect((await caller.get(`/v1/channels/${ch}/entries`, d)).body.size).toBe(2);
    await core.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("the PostgreSQL store's start deadline (withStartDeadline)", () => {
  const never = () => new Promise<never>(() => {});
  const code = (e: unknown) => (e as { code?: string }).code;

  it('passes on what settles in time, result or error', async () => {
    expect(await withStartDeadline(Promise.resolve(7), 50)).toBe(7);
    const failed = await withStartDeadline(Promise.reject(new Error('boom')), 50).catch((e) => e);
    expect((failed as Error).message).toBe('boom');
  });

  it('fails with STORE_UNAVAILABLE and calls onLate when the work has not started by then', async () => {
    let late = 0;
    const e = await withStartDeadline(
      never(),
      10,
      () => false,
      () => late++,
    ).catch((x) => x);
    expect(code(e)).toBe('STORE_UNAVAILABLE');
    expect(late).toBe(1);
  });

  it('waits for work that has started, however long it runs', async () => {
    let late = 0;
    const slow = new Promise<string>((r) => setTimeout(() => r('done'), 40));
    expect(
      await withStartDeadline(
        slow,
        5,
        () => true,
        () => late++,
      ),
    ).toBe('done');
    expect(late).toBe(0);
  });

  it('a late rejection of abandoned work is not an unhandled rejection', async () => {
    let fail: (e: Error) => void = () => {};
    const work = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const e = await withStartDeadline(work, 5).catch((x) => x);
    expect(code(e)).toBe('STORE_UNAVAILABLE');
    fail(new Error('connection came back and the transaction rolled back'));
    await new Promise((r) => setTimeout(r, 10)); // vitest reports an unhandled rejection as a failure
  });
});

describe('device directory: revocations heard of', () => {
  const d1 = 'd_AAAAAAAAAAAAAAAAAAAAAA' as DeviceId;
  const d2 = 'd_BBBBBBBBBBBBBBBBBBBBBB' as DeviceId;

  it('a revocation written here tells the listeners; one heard from another node only counts', () => {
    const dir = new DeviceDirectory({} as Store);
    const told: DeviceId[] = [];
    dir.onRevoked((d) => told.push(d));
    const before = dir.mark();
    dir.invalidate(d1, true);
    dir.heardRevoked(d2);
    // Both refuse appends checked before them; only the local one is passed on (to the fan-out:
    // passing on what came from it would echo between nodes for ever).
    expect(dir.revokedSince(d1, before)).toBe(true);
    expect(dir.revokedSince(d2, before)).toBe(true);
    expect(dir.revokedSince(d2, dir.mark())).toBe(false);
    expect(told).toEqual([d1]);
    // A certificate change is no revocation.
    const mark = dir.mark();
    dir.invalidate(d1);
    expect(dir.revokedSince(d1, mark)).toBe(false);
  });
});

describe('embedded store files', () => {
  it("are the operator's alone (0600), in a wider data folder and when made wider before", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-mode-'));
    chmodSync(dir, 0o755);
    const path = join(dir, 'relay.db');
    const store = openSqliteStore({ path });
    await store.write(async (tx) =>
      tx.putCard({
        party: 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId,
        rootPublicKey: new Uint8Array(32),
        card: new Uint8Array(1),
        issuedAt: 1,
      }),
    );
    const mode = (f: string) => statSync(f).mode & 0o777;
    expect(mode(path)).toBe(0o600);
    expect(mode(`${path}-wal`)).toBe(0o600);
    await store.close();
    chmodSync(path, 0o644);
    const again = openSqliteStore({ path });
    expect(mode(path)).toBe(0o600);
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('PostgreSQL failures a client may retry (isTransientPgError)', () => {
  it('retries lost connections, restarts, a full lock table, deadlocks and serialization conflicts only', () => {
    const transient = [
      'ECONNREFUSED',
      'CONNECTION_CLOSED',
      '08006',
      '57P01',
      '57P03',
      '53300',
      '53200',
      '40001',
      '40P01',
    ];
    const fatal = ['23505', '42P01', '42703', '22P02', 'XX000', '0A000'];
    for (const code of transient) expect(isTransientPgError({ code }), code).toBe(true);
    for (const code of fatal) expect(isTransientPgError({ code }), code).toBe(false);
    expect(isTransientPgError(new Error('no code'))).toBe(false);
    expect(isTransientPgError(undefined)).toBe(false);
    expect(isTransientPgError({ code: 7 })).toBe(false);
  });
});
